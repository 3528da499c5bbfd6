//! The management console at `/console`: admins sign in, then manage workspaces and their
//! device-flow settings, clients (with a device-flow simulator), end users and their grants,
//! device authorizations, admins, and read the audit log.
//!
//! Every page is server-rendered and works without JavaScript. Every POST carries the
//! session's CSRF token and, once handled, redirects (303) to a page that shows the result.
//! Handlers are thin: parse the form, call one core service, render.

mod admins;
mod audit;
mod auth;
mod clients;
mod defences;
mod devices;
mod error;
mod form;
mod html;
mod login;
mod session;
mod simulator;
mod users;
mod workspaces;

use actix_web::{HttpResponse, web};
use vestibule_core::Core;
use vestibule_web::CsrfConfig;

use error::ConsoleError;

/// Where the console lives.
pub const ROOT: &str = "/console";
pub const LOGIN_PATH: &str = "/console/login";
pub const WORKSPACES_PATH: &str = "/console/workspaces";

/// Console forms are a few short fields; a list of redirect URIs is the longest.
const FORM_LIMIT: usize = 64 * 1024;

/// Registers the console's routes, with their session cookie keyed from `core`.
pub fn configure(cfg: &mut web::ServiceConfig, core: &Core) {
    cfg.service(
        web::scope(ROOT)
            .wrap(session::middleware(core))
            .app_data(
                web::FormConfig::default()
                    .limit(FORM_LIMIT)
                    .error_handler(|e, _| ConsoleError::BadForm(e.to_string()).into()),
            )
            .app_data(CsrfConfig::refusing_with(|| ConsoleError::Csrf.into()))
            .app_data(
                web::QueryConfig::default()
                    .error_handler(|e, _| ConsoleError::BadForm(e.to_string()).into()),
            )
            .app_data(
                web::PathConfig::default().error_handler(|_, _| ConsoleError::NotFound.into()),
            )
            .service(web::resource("").route(web::get().to(home)))
            .service(web::resource("/").route(web::get().to(home)))
            .service(
                web::resource("/login")
                    .route(web::get().to(login::show))
                    .route(web::post().to(login::submit)),
            )
            .service(web::resource("/logout").route(web::post().to(login::logout)))
            .service(
                web::resource("/workspaces")
                    .route(web::get().to(workspaces::list))
                    .route(web::post().to(workspaces::create)),
            )
            .service(
                web::resource("/workspaces/{slug}")
                    .route(web::get().to(workspaces::show))
                    .route(web::post().to(workspaces::update)),
            )
            .service(
                web::resource("/workspaces/{slug}/clients")
                    .route(web::get().to(clients::list))
                    .route(web::post().to(clients::create)),
            )
            .service(
                web::resource("/workspaces/{slug}/clients/{client_id}")
                    .route(web::get().to(clients::show))
                    .route(web::post().to(clients::update)),
            )
            .service(
                web::resource("/workspaces/{slug}/clients/{client_id}/secret")
                    .route(web::post().to(clients::regenerate_secret)),
            )
            .service(
                web::resource("/workspaces/{slug}/clients/{client_id}/delete")
                    .route(web::get().to(clients::confirm_delete))
                    .route(web::post().to(clients::delete)),
            )
            .service(
                web::resource("/workspaces/{slug}/clients/{client_id}/simulator")
                    .route(web::get().to(simulator::show))
                    .route(web::post().to(simulator::start)),
            )
            .service(
                web::resource("/workspaces/{slug}/defences").route(web::get().to(defences::show)),
            )
            .service(
                web::resource("/workspaces/{slug}/devices").route(web::get().to(devices::list)),
            )
            .service(
                web::resource("/workspaces/{slug}/devices/{id}")
                    .route(web::get().to(devices::show)),
            )
            .service(
                web::resource("/workspaces/{slug}/devices/{id}/revoke")
                    .route(web::post().to(devices::revoke)),
            )
            .service(
                web::resource("/workspaces/{slug}/users")
                    .route(web::get().to(users::list))
                    .route(web::post().to(users::create)),
            )
            .service(
                web::resource("/workspaces/{slug}/users/{id}")
                    .route(web::get().to(users::show))
                    .route(web::post().to(users::update)),
            )
            .service(
                web::resource("/workspaces/{slug}/users/{id}/password")
                    .route(web::post().to(users::set_password)),
            )
            .service(
                web::resource("/workspaces/{slug}/users/{id}/status")
                    .route(web::post().to(users::set_status)),
            )
            .service(
                web::resource("/workspaces/{slug}/users/{id}/grants/revoke-all")
                    .route(web::post().to(users::revoke_all_grants)),
            )
            .service(
                web::resource("/workspaces/{slug}/users/{id}/grants/{grant_id}/revoke")
                    .route(web::post().to(users::revoke_grant)),
            )
            .service(
                web::resource("/admins")
                    .route(web::get().to(admins::list))
                    .route(web::post().to(admins::create)),
            )
            .service(web::resource("/admins/{id}/status").route(web::post().to(admins::set_status)))
            .service(web::resource("/audit").route(web::get().to(audit::list)))
            .default_service(web::to(not_found)),
    );
}

async fn home(_: auth::SignedIn) -> HttpResponse {
    vestibule_web::html::see_other(WORKSPACES_PATH)
}

async fn not_found() -> Result<HttpResponse, ConsoleError> {
    Err(ConsoleError::NotFound)
}
