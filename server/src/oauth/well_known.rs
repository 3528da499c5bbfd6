//! Discovery (OIDC Discovery 1.0 and RFC 8414) and the JWKS of each workspace.

use actix_web::http::header::CACHE_CONTROL;
use actix_web::{HttpResponse, web};
use vestibule_core::Core;
use vestibule_core::services::{keys, tokens};

use super::error::OAuthResponse;
use super::paths;

/// Discovery documents and keys change rarely; clients may cache them for a minute. A key
/// rotation never depends on this: the new key signs at once, and a verifier that meets an
/// unknown `kid` fetches the JWKS again; the retired key stays published far longer than this
/// (while tokens it signed live), so cached copies never lack a key still in use.
const CACHE: &str = "public, max-age=60";

/// `GET /w/{slug}/.well-known/openid-configuration` and
/// `GET /.well-known/oauth-authorization-server/w/{slug}`: the same document.
pub async fn openid_configuration(
    core: web::Data<Core>,
    slug: web::Path<String>,
) -> Result<HttpResponse, OAuthResponse> {
    let workspace = super::workspace(&core, &slug).await?;
    let issuer = tokens::issuer(&core.settings.server.public_url, &workspace.slug);
    let document = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}{}", paths::AUTHORIZE),
        "token_endpoint": format!("{issuer}{}", paths::TOKEN),
        "device_authorization_endpoint": format!("{issuer}{}", paths::DEVICE_AUTHORIZATION),
        "jwks_uri": format!("{issuer}{}", paths::JWKS),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "revocation_endpoint": format!("{issuer}{}", paths::REVOCATION),
        "introspection_endpoint": format!("{issuer}{}", paths::INTROSPECTION),
        "userinfo_endpoint": format!("{issuer}{}", paths::USERINFO),
        "grant_types_supported": [
            "urn:ietf:params:oauth:grant-type:device_code",
            "refresh_token",
            "client_credentials",
        ],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        // Resource servers are confidential clients: introspection needs the secret.
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "name", "preferred_username", "email"],
        // Vestibule's extension: device authorization responses carry
        // `verification_uri_complete_qr` (SVG, or PNG with `&format=png`).
        "verification_uri_complete_qr_supported": true,
    });
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, CACHE))
        .json(document))
}

/// `GET /w/{slug}/jwks`: the workspace's public signing keys.
pub async fn jwks(
    core: web::Data<Core>,
    slug: web::Path<String>,
) -> Result<HttpResponse, OAuthResponse> {
    let workspace = super::workspace(&core, &slug).await?;
    let set = keys::jwks(&core.db, &workspace, core.keys.ttl()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, CACHE))
        .json(set))
}

/// `GET /w/{slug}/authorize`: the authorization code flow is not offered yet. Discovery names
/// the endpoint because OpenID Connect Discovery requires it; this page says plainly that
/// browser sign-in is not available, rather than failing obscurely.
pub async fn authorize_unavailable() -> HttpResponse {
    HttpResponse::BadRequest()
        .content_type("text/plain; charset=utf-8")
        .body("This server does not offer the authorization code flow yet: sign devices in with the device authorization grant.\n")
}
