//! Token endpoint (RFC 6749 §3.2). Grants arrive one by one; each is a branch here that calls
//! one service.

use actix_web::{HttpRequest, HttpResponse, web};
use vestibule_core::Core;
use vestibule_core::oauth::{ErrorCode, OAuthError};
use vestibule_core::services::{clients, device_grants};
use vestibule_core::types::{Grant, GrantSet};

use super::error::{OAuthResponse, no_store_json};
use super::params::Params;

/// `POST /w/{slug}/token`.
pub async fn token(
    req: HttpRequest,
    core: web::Data<Core>,
    slug: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, OAuthResponse> {
    let workspace = super::workspace(&core, &slug).await?;
    let params = Params::parse(&req, &body)?;
    let grant_type = params.require("grant_type")?;
    let credentials = params.credentials(&req)?;
    let client = clients::authenticate(&core, workspace.id, &credentials).await?;
    let grant = grant_type
        .parse::<Grant>()
        .ok()
        .filter(|g| g.grant_type() == grant_type && *g == Grant::DeviceCode)
        .ok_or_else(|| {
            OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!("grant_type {grant_type:?} is not supported by this endpoint"),
            )
        })?;
    if !GrantSet::from_stored(&client.grants).contains(grant) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            format!(
                "the {} grant is not enabled for this client",
                grant.as_str()
            ),
        )
        .into());
    }
    let device_code = params.require("device_code")?;
    let issued = device_grants::poll(&core, &workspace, &client, device_code).await?;
    Ok(no_store_json(&issued))
}
