//! Device authorization endpoint (RFC 8628 §3.1–3.2).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use vestibule_core::Core;
use vestibule_core::services::{attempts, clients, device_grants, scopes};

use super::error::{OAuthResponse, no_store_json};
use super::params::{Body, Params};

#[derive(Serialize)]
struct DeviceAuthorizationResponse {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: String,
    /// Vestibule's extension: the QR code of `verification_uri_complete`, as SVG (or PNG with
    /// `&format=png`), for devices that can show an image but not render a QR code.
    verification_uri_complete_qr: String,
    expires_in: i64,
    interval: i64,
}

/// `POST /w/{slug}/device_authorization`: authenticates the client, checks its grant and
/// scopes, applies the per client and address rate limit (BCP 247 §6.1.11:
/// `security.device_authorization_limit` per `security.device_authorization_window`, shared by
/// every instance), refuses a request from outside the client's trusted networks (BCP 247
/// §6.1.8, in [`device_grants::start`]), and answers with a fresh device code and user code.
pub async fn authorize(
    req: HttpRequest,
    core: web::Data<Core>,
    slug: web::Path<String>,
    Body(body): Body,
) -> Result<HttpResponse, OAuthResponse> {
    let workspace = super::workspace(&core, &slug).await?;
    let params = Params::parse(&req, &body)?;
    let credentials = params.credentials(&req)?;
    let client = clients::authenticate(&core, workspace.id, &credentials).await?;
    let scopes = scopes::grantable(&client, params.get("scope"))?;
    let origin = device_grants::Origin {
        ip: vestibule_web::ClientAddress::of(&req).ip(),
        user_agent: req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    if let Some(wait) = attempts::device_authorization(&core, &client, origin.ip).await? {
        return Err(OAuthResponse::RateLimited(wait));
    }
    let started = device_grants::start(&core, &workspace, &client, scopes, origin).await?;
    let public_url = &core.settings.server.public_url;
    let code = &started.user_code;
    Ok(no_store_json(&DeviceAuthorizationResponse {
        verification_uri: device_grants::verification_uri(public_url),
        verification_uri_complete: device_grants::verification_uri_complete(public_url, code),
        verification_uri_complete_qr: device_grants::verification_uri_complete_qr(public_url, code),
        user_code: code.display(),
        device_code: started.device_code,
        expires_in: started.grant.expires_at - started.grant.created_at,
        interval: started.grant.interval,
    }))
}
