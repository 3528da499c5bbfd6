//! `GET/POST /console/login` and `POST /console/logout`.
//!
//! The attempt itself is core's ([`attempts::admin_sign_in`]): failed sign-ins are throttled
//! per account and per client address, with counts every instance shares; unknown emails cost
//! the same time as known ones, and disabled admins fail like wrong passwords.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use vestibule_core::Core;
use vestibule_core::services::attempts::{self, SignIn};
use vestibule_web::html::see_other;
use vestibule_web::{ClientAddress, CsrfForm};

use crate::auth::{Chrome, SignedIn};
use crate::error::ConsoleError;
use crate::form::Fields;
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
        return Ok(see_other(crate::WORKSPACES_PATH));
    }
    form(&session, StatusCode::OK, "", None)
}

pub async fn submit(
    core: web::Data<Core>,
    session: ConsoleSession,
    client: ClientAddress,
    CsrfForm(fields): CsrfForm<Fields>,
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
    let address = client.text();
    let attempt = match attempts::admin_sign_in(&core, email, password, address).await {
        // An email no admin can have (control characters): the form again, saying why.
        Err(vestibule_core::Error::Invalid { message, .. }) => {
            return form(&session, StatusCode::BAD_REQUEST, "", Some(&message));
        }
        attempt => attempt?,
    };
    match attempt {
        SignIn::Accepted(admin) => {
            session.sign_in(admin.id, vestibule_core::now())?;
            Ok(see_other(crate::WORKSPACES_PATH))
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
    CsrfForm(_): CsrfForm<Fields>,
) -> Result<HttpResponse, ConsoleError> {
    session.sign_out(Some("You are signed out."))?;
    Ok(see_other(crate::LOGIN_PATH))
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
