//! Everything that can stop a console request, and the one place each becomes a response.
//! Validation errors are not here: handlers re-render their form with the message beside the
//! field.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::html;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No admin signed in (or the session timed out): to the sign-in page.
    #[error("sign-in required")]
    SignInRequired,
    /// A POST without the session's CSRF token.
    #[error("missing or wrong CSRF token")]
    Csrf,
    /// A form or query that does not parse.
    #[error("unreadable form: {0}")]
    BadForm(String),
    #[error("no such page")]
    NotFound,
    /// Too many failed sign-ins for this account or address.
    #[error("too many failed sign-ins")]
    Throttled { retry_after: Duration },
    /// A failure that is ours, not the admin's. Logged; the page says nothing of it.
    #[error("{0}")]
    Internal(String),
}

impl From<vestibule_core::Error> for ConsoleError {
    fn from(e: vestibule_core::Error) -> Self {
        match e {
            vestibule_core::Error::NotFound(_) => Self::NotFound,
            other => Self::Internal(other.report().to_string()),
        }
    }
}

impl From<vestibule_core::templates::RenderError> for ConsoleError {
    fn from(e: vestibule_core::templates::RenderError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<actix_session::SessionInsertError> for ConsoleError {
    fn from(e: actix_session::SessionInsertError) -> Self {
        Self::Internal(format!("cannot write the session: {e}"))
    }
}

/// What `console/problem.html` shows.
#[derive(Serialize)]
struct Problem {
    title: &'static str,
    message: String,
}

impl ConsoleError {
    fn problem(&self) -> Problem {
        let (title, message) = match self {
            Self::Csrf => (
                "This form has expired",
                "This form expired or was not sent by this site. Nothing was changed — go back, \
                 reload the page and try again."
                    .to_owned(),
            ),
            Self::BadForm(_) => (
                "That request could not be read",
                "The form that was sent is not one this page offers. Nothing was changed."
                    .to_owned(),
            ),
            Self::NotFound => (
                "Page not found",
                "There is nothing at this address. It may have been deleted.".to_owned(),
            ),
            Self::Throttled { retry_after } => (
                "Too many failed sign-ins",
                format!(
                    "Too many sign-ins failed for this account or from this address. Try again \
                     in {} minute(s).",
                    retry_after.as_secs().div_ceil(60).max(1)
                ),
            ),
            Self::SignInRequired | Self::Internal(_) => (
                "Something went wrong",
                "Something went wrong on our side. Please try again in a moment.".to_owned(),
            ),
        };
        Problem { title, message }
    }
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignInRequired => StatusCode::SEE_OTHER,
            Self::Csrf => StatusCode::FORBIDDEN,
            Self::BadForm(_) => StatusCode::BAD_REQUEST,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::SignInRequired => return html::see_other(crate::LOGIN_PATH),
            Self::Internal(message) => tracing::error!(error = %message, "/console failed"),
            Self::Csrf => {
                tracing::info!("/console: form refused for a missing or wrong CSRF token")
            }
            Self::BadForm(reason) => tracing::debug!(%reason, "/console: unreadable form"),
            _ => {}
        }
        let mut response = html::page(self.status_code(), "console/problem.html", &self.problem())
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot render the console error page");
                html::fallback_error_page()
            });
        if let Self::Throttled { retry_after } = self
            && let Ok(value) = header::HeaderValue::from_str(&retry_after.as_secs().to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
