//! UserInfo endpoint (OIDC Core §5.3), a protected resource: the access token comes as
//! `Authorization: Bearer` (RFC 6750 §2.1) or, for POST, as `access_token` in a form body
//! (§2.2).

use actix_web::http::Method;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use vestibule_core::Core;
use vestibule_core::services::userinfo;

use super::error::{OAuthError, OAuthResponse, no_store_json};
use super::params::{Body, Params};

/// `GET` and `POST /w/{slug}/userinfo`.
pub async fn userinfo(
    req: HttpRequest,
    core: web::Data<Core>,
    slug: web::Path<String>,
    Body(body): Body,
) -> Result<HttpResponse, OAuthResponse> {
    let workspace = super::workspace(&core, &slug).await?;
    let token = bearer_token(&req, &body)?;
    let info = userinfo::userinfo(&core, &workspace, &token)
        .await
        .map_err(OAuthResponse::bearer)?;
    Ok(no_store_json(&info))
}

/// The one bearer token of the request. Using two ways at once is refused (RFC 6750 §2).
fn bearer_token(req: &HttpRequest, body: &[u8]) -> Result<String, OAuthResponse> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "))
        .map(|v| v[7..].trim().to_owned())
        .filter(|t| !t.is_empty());
    // Only a form body can carry the token (§2.2); any other body is not ours to read.
    let form = req.method() == Method::POST
        && req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
    let in_body = if form {
        Params::parse(req, body)
            .map_err(OAuthResponse::bearer)?
            .get("access_token")
            .map(str::to_owned)
    } else {
        None
    };
    match (header, in_body) {
        (Some(_), Some(_)) => Err(OAuthResponse::bearer(OAuthError::invalid_request(
            "send the access token one way: the Authorization header or the form body",
        ))),
        (Some(token), None) | (None, Some(token)) => Ok(token),
        (None, None) => Err(OAuthResponse::Bearer(None)),
    }
}
