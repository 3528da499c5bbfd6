//! Token endpoint (RFC 6749 §3.2). Each grant is a branch here that calls one service.

use actix_web::{HttpRequest, HttpResponse, web};
use vestibule_core::Core;
use vestibule_core::oauth::Refusal;
use vestibule_core::services::attempts::{self, DeviceCodePoll};
use vestibule_core::services::device_grants::Poll;
use vestibule_core::services::tokens::Issued;
use vestibule_core::services::{client_credentials, clients, refresh};
use vestibule_core::types::Grant;

use super::error::{ErrorCode, OAuthError, OAuthResponse, no_store_json};
use super::params::{Body, Params};

/// The grants this endpoint serves.
const SUPPORTED: [Grant; 3] = [
    Grant::DeviceCode,
    Grant::RefreshToken,
    Grant::ClientCredentials,
];

/// `POST /w/{slug}/token`.
pub async fn token(
    req: HttpRequest,
    core: web::Data<Core>,
    slug: web::Path<String>,
    Body(body): Body,
) -> Result<HttpResponse, OAuthResponse> {
    let workspace = super::workspace(&core, &slug).await?;
    let params = Params::parse(&req, &body)?;
    let grant_type = params.require("grant_type")?;
    let credentials = params.credentials(&req)?;
    let client = clients::authenticate(&core, workspace.id, &credentials).await?;
    let grant = SUPPORTED
        .into_iter()
        .find(|g| g.grant_type() == grant_type)
        .ok_or_else(|| {
            OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                format!("grant_type {grant_type} is not supported by this endpoint"),
            )
        })?;
    if !client.grants.contains(grant) {
        return Err(Refusal::GrantNotEnabled(grant).into());
    }
    let issued = match grant {
        Grant::DeviceCode => {
            let device_code = params.require("device_code")?;
            let address = vestibule_web::ClientAddress::of(&req).text();
            match attempts::poll_device_code(
                &core,
                &workspace,
                &client,
                device_code,
                address.as_deref(),
            )
            .await?
            {
                DeviceCodePoll::Answered(poll) => device_answer(poll)?,
                DeviceCodePoll::Throttled { retry_after } => {
                    return Err(OAuthResponse::UnknownDeviceCodes(retry_after));
                }
            }
        }
        Grant::RefreshToken => {
            refresh::refresh(
                &core,
                &workspace,
                &client,
                params.require("refresh_token")?,
                params.get("scope"),
                vestibule_web::ClientAddress::of(&req).text(),
            )
            .await?
        }
        Grant::ClientCredentials => {
            client_credentials::issue(&core, &workspace, &client, params.get("scope")).await?
        }
        Grant::AuthorizationCode => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "the authorization_code grant is not offered yet",
            )
            .into());
        }
    };
    Ok(no_store_json(&issued))
}

/// The one wording of a device-code poll's outcome (RFC 8628 §3.5).
fn device_answer(poll: Poll) -> Result<Issued, OAuthError> {
    Err(match poll {
        Poll::Tokens(issued) => return Ok(issued),
        Poll::Pending => OAuthError::new(
            ErrorCode::AuthorizationPending,
            "the user has not decided yet",
        ),
        Poll::SlowDown { interval } => OAuthError::new(
            ErrorCode::SlowDown,
            format!("polling too fast: wait at least {interval} seconds between requests"),
        ),
        Poll::Denied => OAuthError::new(ErrorCode::AccessDenied, "the user denied the request"),
        Poll::Expired => OAuthError::new(
            ErrorCode::ExpiredToken,
            "the device_code has expired; start over",
        ),
        Poll::UnknownCode => OAuthError::invalid_grant("unknown device_code"),
        Poll::AlreadyRedeemed => OAuthError::invalid_grant("this device_code was already redeemed"),
        Poll::ApproverGone => {
            OAuthError::invalid_grant("the approving user no longer exists or is disabled")
        }
    })
}
