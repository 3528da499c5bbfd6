//! `/activate`: where a person enters a user code, signs in and approves or denies a device.

use actix_web::web;

/// Registers the `/activate` pages.
pub fn configure(_cfg: &mut web::ServiceConfig) {}
