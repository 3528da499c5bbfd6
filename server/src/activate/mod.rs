//! The end user's pages: `/activate`, where a person enters a user code, signs in and approves
//! or denies a device, and each workspace's account page (`/w/{slug}/account`, see
//! [`account`]), where they review and revoke what they approved. Both share one session and
//! one sign-in.
//!
//! `GET /activate` (`?user_code=` is `verification_uri_complete`) → `POST /activate` →
//! `/activate/sign-in` (unless signed in to the code's workspace) → `/activate/consent`
//! (skipped for typed codes already consented to) → `/activate/done`. Every POST carries the
//! session's CSRF token; every page works without JavaScript. `/activate/qr` serves the QR
//! codes of `verification_uri_complete`.

pub mod account;
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

/// Registers the `/activate` pages and the account pages, with their session cookie keyed from
/// `core`, and before them (outside the session) the QR codes of user codes. The account scope
/// must be registered before the protocol's `/w/{slug}` scope, which would otherwise take its
/// paths.
pub fn configure(cfg: &mut web::ServiceConfig, core: &Core) {
    cfg.service(web::resource(qr::QR_PATH).route(web::get().to(qr::show)));
    cfg.service(
        end_user_scope("/w/{slug}/account")
            .wrap(actix_web::middleware::from_fn(error::lead_back_to_account))
            .wrap(session::middleware(core))
            .service(web::resource("").route(web::get().to(account::show)))
            .service(
                web::resource("/sign-in")
                    .route(web::get().to(account::sign_in_again))
                    .route(web::post().to(account::sign_in)),
            )
            .service(web::resource("/grants/{id}/revoke").route(web::post().to(account::revoke)))
            .service(web::resource("/sign-out").route(web::post().to(account::sign_out)))
            .default_service(web::to(not_found)),
    );
    cfg.service(
        end_user_scope(ENTRY_PATH)
            .wrap(session::middleware(core))
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

/// A scope of the end user's pages (wrapped in their session by the caller), with their pages
/// for unreadable forms, queries and paths and for a missing or wrong CSRF token.
fn end_user_scope(path: &str) -> actix_web::Scope {
    web::scope(path)
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
        .app_data(web::PathConfig::default().error_handler(|_, _| ActivateError::NotFound.into()))
}

async fn not_found() -> Result<HttpResponse, ActivateError> {
    Err(ActivateError::NotFound)
}
