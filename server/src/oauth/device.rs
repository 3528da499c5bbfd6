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
    let verification_uri = format!("{}/activate", core.settings.server.public_url);
    let shown = started.user_code.display();
    Ok(no_store_json(&DeviceAuthorizationResponse {
        verification_uri_complete: format!("{verification_uri}?user_code={shown}"),
        verification_uri,
        device_code: started.device_code,
        user_code: shown,
        expires_in: started.grant.expires_at - started.grant.created_at,
        interval: started.grant.interval,
    }))
}
