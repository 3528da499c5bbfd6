//! Everything that can stop an `/activate` or account page request, and the one place each
//! becomes a page.

use std::borrow::Cow;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError, web};
use vestibule_core::Core;
use vestibule_web::html::{self, Link, Problem};

#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// A POST without the session's CSRF token.
    #[error("missing or wrong CSRF token")]
    Csrf,
    /// A form or query that does not parse (unknown or malformed fields).
    #[error("unreadable form: {0}")]
    BadForm(String),
    /// A form value outside what the page offers (e.g. a `decision` that is neither button).
    #[error("unexpected value for {0}")]
    BadValue(&'static str),
    /// A step page reached without a code in progress: back to the start.
    #[error("no user code in progress")]
    NoCodeInProgress,
    #[error("the user code has expired")]
    CodeExpired,
    #[error("the user code was already used")]
    CodeUsed,
    #[error("the user code was denied")]
    CodeDenied,
    #[error("no such page")]
    NotFound,
    /// The signed-in user may not use the client that asks.
    #[error("no access to {client}")]
    NoAccess { client: String },
    /// An approval from a browser that is not on the network of the device that asked, for a
    /// client that requires it (`proximity = require`). The code stays pending: the user may
    /// still deny it.
    #[error("{client} may only be approved from the device's network")]
    OtherNetwork { client: String },
    /// Too many failures from this address (or for this account): wait `retry_after`.
    #[error("throttled: {what:?}")]
    Throttled {
        what: Throttled,
        retry_after: Duration,
    },
    /// The database is unavailable: 503 with `Retry-After`, a page that says to come back.
    #[error(transparent)]
    Unavailable(vestibule_core::Error),
    /// A failure that is ours, not the user's, with its causes. Logged; the page says nothing
    /// of it.
    #[error(transparent)]
    Internal(vestibule_core::Error),
    /// The web layer could not render a page or write the session. Logged; the page says
    /// nothing of it.
    #[error(transparent)]
    Web(#[from] vestibule_web::WebError),
}

impl From<vestibule_core::Error> for ActivateError {
    fn from(e: vestibule_core::Error) -> Self {
        match e {
            vestibule_core::Error::NotFound(_) => Self::NotFound,
            e if e.retry_after().is_some() => Self::Unavailable(e),
            e => Self::Internal(e),
        }
    }
}

/// What was attempted too often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Throttled {
    /// Wrong user codes from one address (RFC 8628 §5.1).
    UserCodes,
    /// Failed sign-ins for one account or from one address.
    SignIns,
}

/// The way on from a problem at `/activate`.
const START_AGAIN: Option<Link> = Some(Link {
    href: Cow::Borrowed(super::ENTRY_PATH),
    text: "Enter another code",
});

impl ActivateError {
    /// What `activate/problem.html` shows; `way_on` is the link of the problems after which
    /// the person starts over (at `/activate`, [`START_AGAIN`]).
    fn problem(&self, way_on: Option<Link>) -> Problem {
        match self {
            Self::Csrf => Problem {
                title: "This form has expired",
                message: Cow::Borrowed(
                    "This form expired or was not sent by this site — go back and try again.",
                ),
                next: way_on,
            },
            Self::BadForm(_) | Self::BadValue(_) => Problem {
                title: "That request could not be read",
                message: Cow::Borrowed(
                    "The form that was sent is not one this page offers. Go back and try again.",
                ),
                next: way_on,
            },
            Self::CodeExpired => Problem {
                title: "This code has expired",
                message: Cow::Borrowed(
                    "This code has expired — start again on your device to get a new code.",
                ),
                next: way_on,
            },
            Self::CodeUsed => Problem {
                title: "This code was already used",
                message: Cow::Borrowed(
                    "This code was already used. Each code works once — if you did not use it, \
                          start again on your device.",
                ),
                next: way_on,
            },
            Self::CodeDenied => Problem {
                title: "This code was denied",
                message: Cow::Borrowed(
                    "This code was denied, so it no longer works. If you do want to connect the \
                     device, start again on it to get a new code.",
                ),
                next: way_on,
            },
            Self::NoAccess { client } => Problem {
                title: "You cannot use this application",
                message: Cow::Owned(format!(
                    "Your account does not have access to {client}, so nothing was approved. \
                     Ask your administrator for access."
                )),
                next: way_on,
            },
            Self::OtherNetwork { client } => Problem {
                title: "You cannot approve this from here",
                message: Cow::Owned(format!(
                    "{client} can only be approved from the network of the device that asked \
                     (for example the same Wi-Fi), and you are on another one, so nothing was \
                     approved. Connect to the device's network and try again — or, if you did not \
                     start this yourself just now, deny it."
                )),
                next: Some(Link {
                    href: Cow::Borrowed(super::CONSENT_PATH),
                    text: "Back to the request",
                }),
            },
            Self::NotFound => Problem {
                title: "Page not found",
                message: Cow::Borrowed("There is no page at this address."),
                next: way_on,
            },
            Self::Throttled { what, retry_after } => {
                let minutes = retry_after.as_secs().div_ceil(60).max(1);
                let wait = if minutes == 1 {
                    "a minute".to_owned()
                } else {
                    format!("{minutes} minutes")
                };
                match what {
                    Throttled::UserCodes => Problem {
                        title: "Too many wrong codes",
                        message: Cow::Owned(format!(
                            "Too many codes that do not exist were entered from your network. \
                             Wait {wait}, then enter the code shown on your device again."
                        )),
                        next: way_on,
                    },
                    Throttled::SignIns => Problem {
                        title: "Too many failed sign-ins",
                        message: Cow::Owned(format!(
                            "Too many sign-ins failed for this account or from your network. \
                             Wait {wait}, then try again."
                        )),
                        next: None,
                    },
                }
            }
            Self::Unavailable(_) => Problem {
                title: "Temporarily unavailable",
                message: Cow::Borrowed(
                    "We cannot handle this right now. Nothing was lost — please try again in a \
                     moment.",
                ),
                next: None,
            },
            Self::NoCodeInProgress | Self::Internal(_) | Self::Web(_) => Problem {
                title: "Something went wrong",
                message: Cow::Borrowed(
                    "Something went wrong on our side. Please try again in a moment.",
                ),
                next: None,
            },
        }
    }
}

impl ResponseError for ActivateError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Csrf | Self::NoAccess { .. } | Self::OtherNetwork { .. } => StatusCode::FORBIDDEN,
            Self::BadForm(_) | Self::BadValue(_) => StatusCode::BAD_REQUEST,
            Self::NoCodeInProgress => StatusCode::SEE_OTHER,
            Self::CodeExpired => StatusCode::GONE,
            Self::CodeUsed | Self::CodeDenied => StatusCode::CONFLICT,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) | Self::Web(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            Self::NoCodeInProgress => return html::see_other(super::ENTRY_PATH),
            Self::Unavailable(e) => {
                tracing::warn!(error = %e.report(), "/activate: database unavailable")
            }
            Self::Internal(e) => tracing::error!(error = %e.report(), "/activate failed"),
            Self::Web(e) => tracing::error!(error = %e, "/activate failed"),
            Self::Csrf => {
                tracing::info!("/activate: form refused for a missing or wrong CSRF token")
            }
            Self::BadForm(reason) => tracing::debug!(%reason, "/activate: unreadable form"),
            _ => {}
        }
        let mut page = self.page(START_AGAIN);
        match self {
            Self::Throttled { retry_after, .. } => html::retry_after(&mut page, *retry_after),
            Self::Unavailable(e) => {
                if let Some(wait) = e.retry_after() {
                    html::retry_after(&mut page, wait);
                }
            }
            _ => {}
        }
        page
    }
}

impl ActivateError {
    /// The problem page of this error (its status, without the headers some errors add),
    /// whose way on is `way_on` (see [`Self::problem`]).
    fn page(&self, way_on: Option<Link>) -> HttpResponse {
        html::problem_page(
            self.status_code(),
            "activate/problem.html",
            &self.problem(way_on),
        )
    }
}

/// Middleware of the account pages: their problem pages lead back to the account page of the
/// workspace the path names rather than to `/activate` — or nowhere when it names no
/// workspace, so as not to link to a page that does not exist. Only the page's body changes:
/// status, headers and the error (for the request log) stay those of the original response.
pub async fn lead_back_to_account(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let core = req.app_data::<web::Data<Core>>().cloned();
    let slug = req.match_info().get("slug").map(str::to_owned);
    let res = next.call(req).await?.map_into_boxed_body();
    let Some(error) = res
        .response()
        .error()
        .and_then(|e| e.as_error::<ActivateError>())
    else {
        return Ok(res);
    };
    if matches!(error, ActivateError::NoCodeInProgress) {
        return Ok(res);
    }
    let workspace = match (core, slug) {
        (Some(core), Some(slug)) => core.records.workspace(&core.db, &slug).await.ok().flatten(),
        _ => None,
    };
    let way_on = workspace.map(|ws| Link {
        href: Cow::Owned(super::account::path(&ws.slug)),
        text: "Back to your devices and applications",
    });
    let body = error.page(way_on).into_body();
    Ok(res.map_body(|_, _| body))
}
