//! `GET/POST /console/login` and `POST /console/logout`.
//!
//! The attempt itself is core's ([`attempts::admin_sign_in`]): failed sign-ins are throttled
//! per account and per client address, with counts every instance shares; unknown emails cost
//! the same time as known ones, and disabled admins fail like wrong passwords.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use vestibule_core::Core;
use vestibule_core::services::attempts::{self, SignIn};

use crate::auth::{Chrome, SignedIn};
use crate::error::ConsoleError;
use crate::form::CsrfForm;
use crate::html;
use crate::session::ConsoleSession;

#[derive(Serialize)]
struct LoginPage<'a> {
    email: &'a str,
    message: Option<&'a str>,
}

pub async fn show(
    signed_in: Option<SignedIn>,
    session: ConsoleSession,
) -> Result<HttpResponse, ConsoleError> {
    if signed_in.is_some() {
        return Ok(html::see_other(crate::WORKSPACES_PATH));
    }
    form(&session, StatusCode::OK, "", None)
}

pub async fn submit(
    core: web::Data<Core>,
    session: ConsoleSession,
    req: HttpRequest,
    CsrfForm(fields): CsrfForm,
) -> Result<HttpResponse, ConsoleError> {
    let email = fields.text("email").trim();
    let password = fields.text("password");
    if email.is_empty() || password.is_empty() {
        return form(
            &session,
            StatusCode::BAD_REQUEST,
            email,
            Some("Enter your email address and your password."),
        );
    }
    let address = client_address(&req, &core);
    match attempts::admin_sign_in(&core, email, password, address).await? {
        SignIn::Accepted(admin) => {
            session.sign_in(admin.id, vestibule_core::now())?;
            Ok(html::see_other(crate::WORKSPACES_PATH))
        }
        SignIn::Rejected => form(
            &session,
            StatusCode::UNAUTHORIZED,
            email,
            Some("That email address and password do not match. Check them and try again."),
        ),
        SignIn::Throttled { retry_after } => Err(ConsoleError::Throttled { retry_after }),
    }
}

pub async fn logout(
    session: ConsoleSession,
    CsrfForm(_): CsrfForm,
) -> Result<HttpResponse, ConsoleError> {
    session.sign_out(Some("You are signed out."))?;
    Ok(html::see_other(crate::LOGIN_PATH))
}

fn form(
    session: &ConsoleSession,
    status: StatusCode,
    email: &str,
    message: Option<&str>,
) -> Result<HttpResponse, ConsoleError> {
    let chrome = Chrome {
        admin_email: String::new(),
        csrf_token: session.csrf_token()?,
        section: "login",
        notice: session.take_notice(),
    };
    html::console_page(
        status,
        "console/login.html",
        &chrome,
        &LoginPage { email, message },
    )
}

/// The address the request came from, after `server.trusted_proxies`.
pub(crate) fn client_address(req: &HttpRequest, core: &Core) -> Option<String> {
    let peer = req.peer_addr()?.ip();
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    Some(
        vestibule_core::net::client_address(peer, forwarded, &core.settings.server.trusted_proxies)
            .to_string(),
    )
}
