//! Revocation endpoint (RFC 7009).

use actix_web::http::header::{CACHE_CONTROL, PRAGMA};
use actix_web::{HttpRequest, HttpResponse, web};
use vestibule_core::Core;
use vestibule_core::services::{clients, revocation};

use super::error::OAuthResponse;
use super::params::{Body, Params};

/// `POST /w/{slug}/revoke`: `token`, optional `token_type_hint`; the client authenticates as at
/// the token endpoint. 200 whether or not there was anything to revoke (RFC 7009 §2.2).
pub async fn revoke(
    req: HttpRequest,
    core: web::Data<Core>,
    slug: web::Path<String>,
    Body(body): Body,
) -> Result<HttpResponse, OAuthResponse> {
    let workspace = super::workspace(&core, &slug).await?;
    let params = Params::parse(&req, &body)?;
    let credentials = params.credentials(&req)?;
    let client = clients::authenticate(&core, workspace.id, &credentials).await?;
    let token = params.require("token")?;
    revocation::revoke(
        &core,
        &workspace,
        &client,
        token,
        params.get("token_type_hint"),
        vestibule_web::ClientAddress::of(&req).text(),
    )
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((PRAGMA, "no-cache"))
        .finish())
}
