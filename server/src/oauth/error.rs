//! The one mapping from OAuth errors to HTTP for the protocol endpoints: RFC 6749 §5.2 JSON,
//! `invalid_client` as 401 with `WWW-Authenticate`, and `Cache-Control: no-store` always.

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, PRAGMA, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};
use vestibule_core::oauth::{ErrorCode, OAuthError};

/// An [`OAuthError`] on its way to the client, or a path naming no workspace.
#[derive(Debug, thiserror::Error)]
pub enum OAuthResponse {
    #[error("{0}")]
    OAuth(OAuthError),
    #[error("no workspace named {0:?}")]
    UnknownWorkspace(String),
}

impl<E: Into<OAuthError>> From<E> for OAuthResponse {
    fn from(e: E) -> Self {
        Self::OAuth(e.into())
    }
}

impl ResponseError for OAuthResponse {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::UnknownWorkspace(_) => StatusCode::NOT_FOUND,
            Self::OAuth(e) => match e.code {
                ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
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
            Self::UnknownWorkspace(_) => ("invalid_request", self.to_string()),
            Self::OAuth(e) => (e.code.as_str(), e.description.clone()),
        };
        if code == ErrorCode::InvalidClient.as_str() {
            res.insert_header((WWW_AUTHENTICATE, r#"Basic realm="vestibule""#));
        }
        res.json(serde_json::json!({
            "error": code,
            "error_description": description,
        }))
    }
}

/// A JSON success response that must not be cached (it carries secrets).
pub fn no_store_json<T: serde::Serialize>(body: &T) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((CACHE_CONTROL, "no-store"))
        .insert_header((PRAGMA, "no-cache"))
        .json(body)
}
