//! OAuth 2.0 / OpenID Connect endpoints of each workspace (`/w/{slug}/…`).

use actix_web::web;

/// Registers the protocol endpoints.
pub fn configure(_cfg: &mut web::ServiceConfig) {}
