//! `/activate`: where a person enters a user code, signs in and approves or denies a device.
//!
//! `GET /activate` (`?user_code=` is `verification_uri_complete`) → `POST /activate` →
//! `/activate/sign-in` (unless signed in to the code's workspace) → `/activate/consent`
//! (skipped for typed codes already consented to) → `/activate/done`. Every POST carries the
//! session's CSRF token; every page works without JavaScript. `/activate/qr` serves the QR
//! codes of `verification_uri_complete`.

mod consent;
mod device;
mod done;
mod entry;
mod error;
mod flow;
mod qr;
mod session;
mod sign_in;

use actix_web::{HttpResponse, web};
use vestibule_core::Core;
use vestibule_web::CsrfConfig;

use error::ActivateError;

pub const ENTRY_PATH: &str = "/activate";
pub const SIGN_IN_PATH: &str = "/activate/sign-in";
pub const CONSENT_PATH: &str = "/activate/consent";
pub const DONE_PATH: &str = "/activate/done";

/// Form bodies here are a few short fields.
const FORM_LIMIT: usize = 16 * 1024;

/// Registers the `/activate` pages, with their session cookie keyed from `core`, and before
/// them (outside the session) the QR codes of user codes.
pub fn configure(cfg: &mut web::ServiceConfig, core: &Core) {
    cfg.service(web::resource(qr::QR_PATH).route(web::get().to(qr::show)));
    cfg.service(
        web::scope(ENTRY_PATH)
            .wrap(session::middleware(core))
            .app_data(
                web::FormConfig::default()
                    .limit(FORM_LIMIT)
                    .error_handler(|e, _| ActivateError::BadForm(e.to_string()).into()),
            )
            .app_data(CsrfConfig::refusing_with(|| ActivateError::Csrf.into()))
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| ActivateError::BadForm(e.to_string()).into()),
            )
            .service(
                web::resource("")
                    .route(web::get().to(entry::show))
                    .route(web::post().to(entry::submit)),
            )
            .service(
                web::resource("/sign-in")
                    .route(web::get().to(sign_in::show))
                    .route(web::post().to(sign_in::submit)),
            )
            .service(
                web::resource("/consent")
                    .route(web::get().to(consent::show))
                    .route(web::post().to(consent::submit)),
            )
            .service(web::resource("/done").route(web::get().to(done::show)))
            .default_service(web::to(not_found)),
    );
}

async fn not_found() -> Result<HttpResponse, ActivateError> {
    Err(ActivateError::NotFound)
}
