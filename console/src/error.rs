//! Everything that can stop a console request, and the one place each becomes a response.
//! Validation errors are not here: handlers re-render their form with the message beside the
//! field.

use std::borrow::Cow;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use vestibule_web::html::{self, Problem};

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
    /// The database is unavailable: 503 with `Retry-After`, a page that says to come back.
    #[error(transparent)]
    Unavailable(vestibule_core::Error),
    /// A failure that is ours, not the admin's, with its causes. Logged; the page says nothing
    /// of it.
    #[error(transparent)]
    Internal(vestibule_core::Error),
    /// The web layer could not render a page or write the session. Logged; the page says
    /// nothing of it.
    #[error(transparent)]
    Web(#[from] vestibule_web::WebError),
}

impl From<vestibule_core::Error> for ConsoleError {
    fn from(e: vestibule_core::Error) -> Self {
        match e {
            vestibule_core::Error::NotFound(_) => Self::NotFound,
            other if other.retry_after().is_some() => Self::Unavailable(other),
            other => Self::Internal(other),
        }
    }
}

impl ConsoleError {
    /// What `console/problem.html` shows.
    fn problem(&self) -> Problem {
        let (title, message) = match self {
            Self::Csrf => (
                "This form has expired",
                Cow::Borrowed(
                    "This form expired or was not sent by this site. Nothing was changed — go \
                     back, reload the page and try again.",
                ),
            ),
            Self::BadForm(_) => (
                "That request could not be read",
                Cow::Borrowed(
                    "The form that was sent is not one this page offers. Nothing was changed.",
                ),
            ),
            Self::NotFound => (
                "Page not found",
                Cow::Borrowed("There is nothing at this address. It may have been deleted."),
            ),
            Self::Throttled { retry_after } => (
                "Too many failed sign-ins",
                Cow::Owned(format!(
                    "Too many sign-ins failed for this account or from this address. Try again \
                     in {} minute(s).",
                    retry_after.as_secs().div_ceil(60).max(1)
                )),
            ),
            Self::Unavailable(_) => (
                "Temporarily unavailable",
                Cow::Borrowed(
                    "The console cannot reach its database right now. Nothing was changed — \
                     try again in a moment.",
                ),
            ),
            Self::SignInRequired | Self::Internal(_) | Self::Web(_) => (
                "Something went wrong",
                Cow::Borrowed("Something went wrong on our side. Please try again in a moment."),
            ),
        };
        Problem {
            title,
            message,
            next: None,
        }
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
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) | Self::Web(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::SignInRequired => return html::see_other(crate::LOGIN_PATH),
            Self::Unavailable(e) => {
                tracing::warn!(error = %e.report(), "/console: database unavailable")
            }
            Self::Internal(e) => tracing::error!(error = %e.report(), "/console failed"),
            Self::Web(e) => tracing::error!(error = %e, "/console failed"),
            Self::Csrf => {
                tracing::info!("/console: form refused for a missing or wrong CSRF token")
            }
            Self::BadForm(reason) => tracing::debug!(%reason, "/console: unreadable form"),
            _ => {}
        }
        let mut response =
            html::problem_page(self.status_code(), "console/problem.html", &self.problem());
        match self {
            Self::Throttled { retry_after } => html::retry_after(&mut response, *retry_after),
            Self::Unavailable(e) => {
                if let Some(wait) = e.retry_after() {
                    html::retry_after(&mut response, wait);
                }
            }
            _ => {}
        }
        response
    }
}
