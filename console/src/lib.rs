//! The management console at `/console`. Its pages arrive with the console capability; the
//! server already mounts this crate so that they plug in without touching the server.

use actix_web::web;

/// Registers the console's routes.
pub fn configure(_cfg: &mut web::ServiceConfig) {}
