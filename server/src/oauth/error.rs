//! The one mapping from OAuth errors to HTTP for the protocol endpoints: RFC 6749 §5.2 JSON,
//! `invalid_client` as 401 with `WWW-Authenticate: Basic`, RFC 6750 §3 challenges for
//! protected resources (userinfo), and `Cache-Control: no-store` always.

use actix_web::http::StatusCode;
use std::time::Duration;

use actix_web::http::header::{CACHE_CONTROL, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};
use vestibule_core::oauth::{ErrorCode, OAuthError};

/// The realm named in `WWW-Authenticate` challenges.
const REALM: &str = "vestibule";

/// An [`OAuthError`] on its way to the client, or a path naming no workspace.
#[derive(Debug, thiserror::Error)]
pub enum OAuthResponse {
    #[error("{0}")]
    OAuth(OAuthError),
    /// A protected resource refusing a request (RFC 6750 §3): `None` when it carried no
    /// token at all, which gets a bare challenge without an error code (§3.1).
    #[error("bearer token refused")]
    Bearer(Option<OAuthError>),
    #[error("no workspace named {0:?}")]
    UnknownWorkspace(String),
    /// Too many requests: 429 with `Retry-After` and the error `slow_down`.
    #[error("rate limited for {0:?}")]
    RateLimited(Duration),
}

impl<E: Into<OAuthError>> From<E> for OAuthResponse {
    fn from(e: E) -> Self {
        Self::OAuth(e.into())
    }
}

impl OAuthResponse {
    /// The same error, answered as a protected resource answers.
    #[must_use]
    pub fn bearer(e: impl Into<OAuthError>) -> Self {
        Self::Bearer(Some(e.into()))
    }
}

impl ResponseError for OAuthResponse {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::UnknownWorkspace(_) => StatusCode::NOT_FOUND,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Bearer(None) => StatusCode::UNAUTHORIZED,
            Self::OAuth(e) | Self::Bearer(Some(e)) => match e.code {
                ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
                ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
                ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((CACHE_CONTROL, "no-store"))
            .insert_header((PRAGMA, "no-cache"));
        let (code, description) = match self {
            Self::UnknownWorkspace(_) => (ErrorCode::InvalidRequest, self.to_string()),
            Self::RateLimited(wait) => {
                res.insert_header((RETRY_AFTER, wait.as_secs().max(1)));
                (
                    ErrorCode::SlowDown,
                    format!(
                        "too many device authorization requests from this client and address; \
                         try again in {} seconds",
                        wait.as_secs().max(1)
                    ),
                )
            }
            Self::Bearer(None) => {
                res.insert_header((WWW_AUTHENTICATE, format!("Bearer realm=\"{REALM}\"")));
                return res.finish();
            }
            Self::OAuth(e) | Self::Bearer(Some(e)) => (e.code, e.description.clone()),
        };
        match self {
            Self::Bearer(Some(_)) if code != ErrorCode::ServerError => {
                res.insert_header((
                    WWW_AUTHENTICATE,
                    format!(
                        "Bearer realm=\"{REALM}\", error=\"{}\", error_description=\"{}\"",
                        code.as_str(),
                        quotable(&description)
                    ),
                ));
            }
            _ if code == ErrorCode::InvalidClient => {
                res.insert_header((WWW_AUTHENTICATE, format!("Basic realm=\"{REALM}\"")));
            }
            _ => {}
        }
        res.json(serde_json::json!({
            "error": code.as_str(),
            "error_description": description,
        }))
    }
}

/// `error_description` inside a quoted string: RFC 6750 §3 allows printable ASCII except `"`
/// and `\`.
fn quotable(text: &str) -> String {
    text.chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .collect()
}

/// A JSON success response that must not be cached (it carries secrets).
pub fn no_store_json<T: serde::Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((PRAGMA, "no-cache"))
        .json(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(res: &HttpResponse) -> Option<String> {
        res.headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn bearer_challenges_follow_rfc_6750() {
        let none = OAuthResponse::Bearer(None).error_response();
        assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge(&none).as_deref(),
            Some("Bearer realm=\"vestibule\"")
        );

        let invalid =
            OAuthResponse::bearer(OAuthError::new(ErrorCode::InvalidToken, "bad \"token\"\n"))
                .error_response();
        assert_eq!(invalid.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge(&invalid).as_deref(),
            Some(
                "Bearer realm=\"vestibule\", error=\"invalid_token\", error_description=\"bad token\""
            )
        );

        let scope = OAuthResponse::bearer(OAuthError::new(ErrorCode::InsufficientScope, "x"))
            .error_response();
        assert_eq!(scope.status(), StatusCode::FORBIDDEN);
        assert!(
            challenge(&scope)
                .unwrap()
                .contains("error=\"insufficient_scope\"")
        );

        let client = OAuthResponse::OAuth(OAuthError::invalid_client("x")).error_response();
        assert_eq!(
            challenge(&client).as_deref(),
            Some("Basic realm=\"vestibule\"")
        );
        let grant = OAuthResponse::OAuth(OAuthError::invalid_grant("x")).error_response();
        assert_eq!(challenge(&grant), None);
    }
}
