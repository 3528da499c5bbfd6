//! Introspection endpoint (RFC 7662).

use actix_web::{HttpRequest, HttpResponse, web};
use vestibule_core::Core;
use vestibule_core::services::{clients, introspection};

use super::error::{OAuthResponse, no_store_json};
use super::params::{Body, Params};

/// `POST /w/{slug}/introspect`: `token`, optional `token_type_hint`; the caller is a
/// confidential client of the workspace (`client_secret_basic` or `client_secret_post`).
pub async fn introspect(
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
    let answer = introspection::introspect(
        &core,
        &workspace,
        &client,
        token,
        params.get("token_type_hint"),
    )
    .await?;
    Ok(no_store_json(&answer))
}
