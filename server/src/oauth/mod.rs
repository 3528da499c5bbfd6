//! OAuth 2.0 / OpenID Connect endpoints of each workspace (`/w/{slug}/…`).

pub mod device;
pub mod error;
pub mod introspect;
pub mod params;
pub mod revoke;
pub mod token;
pub mod userinfo;
pub mod well_known;

use actix_web::web;
use std::sync::Arc;
use vestibule_core::Core;
use vestibule_core::records::Workspace;
use vestibule_core::types::Slug;

use error::OAuthResponse;

/// Paths of the endpoints under a workspace's issuer, shared by the routes and discovery.
pub mod paths {
    pub const DEVICE_AUTHORIZATION: &str = "/device_authorization";
    pub const TOKEN: &str = "/token";
    pub const JWKS: &str = "/jwks";
    pub const AUTHORIZE: &str = "/authorize";
    pub const REVOCATION: &str = "/revoke";
    pub const INTROSPECTION: &str = "/introspect";
    pub const USERINFO: &str = "/userinfo";
}

/// Registers the protocol endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/w/{slug}")
            .route(
                paths::DEVICE_AUTHORIZATION,
                web::post().to(device::authorize),
            )
            .route(paths::TOKEN, web::post().to(token::token))
            .route(paths::REVOCATION, web::post().to(revoke::revoke))
            .route(paths::INTROSPECTION, web::post().to(introspect::introspect))
            .service(
                web::resource(paths::USERINFO)
                    .route(web::get().to(userinfo::userinfo))
                    .route(web::post().to(userinfo::userinfo)),
            )
            .route(paths::JWKS, web::get().to(well_known::jwks))
            .route(
                paths::AUTHORIZE,
                web::get().to(well_known::authorize_unavailable),
            )
            .route(
                "/.well-known/openid-configuration",
                web::get().to(well_known::openid_configuration),
            ),
    )
    .route(
        "/.well-known/oauth-authorization-server/w/{slug}",
        web::get().to(well_known::openid_configuration),
    );
}

/// The workspace a `/w/{slug}` path names. What cannot be a slug names none and is not looked
/// up (a NUL byte cannot even be compared in PostgreSQL).
async fn workspace(core: &Core, slug: &str) -> Result<Arc<Workspace>, OAuthResponse> {
    let unknown = || OAuthResponse::UnknownWorkspace(slug.to_owned());
    Slug::parse(slug).map_err(|_| unknown())?;
    core.records
        .workspace(&core.db, slug)
        .await?
        .ok_or_else(unknown)
}
