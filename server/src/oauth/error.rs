//! The protocol endpoints' errors: OAuth error codes (RFC 6749 §5.2, RFC 8628 §3.5, RFC 6750
//! §3.1), the one mapping from domain errors to them, and the one mapping from them to HTTP:
//! RFC 6749 §5.2 JSON, `invalid_client` as 401 with `WWW-Authenticate: Basic`, RFC 6750 §3
//! challenges for protected resources (userinfo), `temporarily_unavailable` as 503 with
//! `Retry-After` while the database is unavailable, and `Cache-Control: no-store` always. Every
//! `error_description` leaves here within RFC 6749 §5.2's character set, whatever it echoes.

use std::fmt;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};
use vestibule_core::oauth::Refusal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    InvalidScope,
    AuthorizationPending,
    SlowDown,
    AccessDenied,
    ExpiredToken,
    /// RFC 6750 §3.1: a bearer token that is malformed, expired, revoked or foreign.
    InvalidToken,
    /// RFC 6750 §3.1: a valid bearer token without the scope the resource needs.
    InsufficientScope,
    ServerError,
    /// RFC 6749 §4.1.2.1: the server cannot handle the request now (the database is
    /// unavailable); answered 503 with `Retry-After`.
    TemporarilyUnavailable,
}

impl ErrorCode {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::AccessDenied => "access_denied",
            Self::ExpiredToken => "expired_token",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }

    /// The code a client is answered with when the domain refuses its request.
    #[must_use]
    pub fn of(refusal: &Refusal) -> Self {
        match refusal {
            Refusal::ClientAuthenticationFailed
            | Refusal::ClientSecretRequired
            | Refusal::IntrospectionNeedsConfidentialClient => Self::InvalidClient,
            Refusal::ConfidentialClientRequired
            | Refusal::DeviceFlowDisabled
            | Refusal::GrantNotEnabled(_)
            | Refusal::DeviceNetworkRefused => Self::UnauthorizedClient,
            Refusal::ScopeMalformed(_) | Refusal::ScopeNotEnabled(_) | Refusal::ScopeWidened(_) => {
                Self::InvalidScope
            }
            Refusal::UnknownRefreshToken
            | Refusal::RefreshTokenRevoked
            | Refusal::RefreshTokenReused
            | Refusal::RefreshTokenRaced
            | Refusal::RefreshTokenEnded(_)
            | Refusal::UserGone => Self::InvalidGrant,
            Refusal::TokenInactive => Self::InvalidToken,
            Refusal::UserinfoNeedsOpenid => Self::InsufficientScope,
            Refusal::NoFreeUserCode => Self::ServerError,
        }
    }
}

/// An OAuth error with a description for the developer of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self {
            code,
            description: description.into(),
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidClient, description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

/// A refusal keeps its text, under its RFC code.
impl From<Refusal> for OAuthError {
    fn from(refusal: Refusal) -> Self {
        Self::new(ErrorCode::of(&refusal), refusal.to_string())
    }
}

/// The one mapping of domain errors for the protocol endpoints: refusals keep their code and
/// text, invalid input is `invalid_request`, an unavailable database is
/// `temporarily_unavailable`, and anything else is `server_error` without details (logged here
/// instead, with its causes).
impl From<vestibule_core::Error> for OAuthError {
    fn from(e: vestibule_core::Error) -> Self {
        match e {
            vestibule_core::Error::Refused(refusal) => refusal.into(),
            vestibule_core::Error::Invalid { message, .. } => Self::invalid_request(message),
            unavailable @ vestibule_core::Error::Unavailable(_) => {
                tracing::warn!(error = %unavailable.report(), "OAuth endpoint: database unavailable");
                Self::new(
                    ErrorCode::TemporarilyUnavailable,
                    "the server cannot handle the request right now; try again later",
                )
            }
            other => {
                tracing::error!(error = %other.report(), "internal error in an OAuth endpoint");
                Self::new(
                    ErrorCode::ServerError,
                    "the server could not complete the request",
                )
            }
        }
    }
}

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
    #[error("no workspace named {0}")]
    UnknownWorkspace(String),
    /// A body longer than [`super::params::BODY_LIMIT`]: 413, with the error `invalid_request`.
    #[error(
        "the request body is larger than {} KiB; send only the parameters of the request",
        super::params::BODY_LIMIT / 1024
    )]
    BodyTooLarge,
    /// Too many requests: 429 with `Retry-After` and the error `slow_down`.
    #[error("rate limited for {0:?}")]
    RateLimited(Duration),
    /// Too many unknown device codes polled from one address (RFC 8628 §5.2): answered as
    /// [`Self::RateLimited`] is, with a description fitting polls.
    #[error("unknown device codes rate limited for {0:?}")]
    UnknownDeviceCodes(Duration),
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
            Self::RateLimited(_) | Self::UnknownDeviceCodes(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Bearer(None) => StatusCode::UNAUTHORIZED,
            Self::OAuth(e) | Self::Bearer(Some(e)) => match e.code {
                ErrorCode::InvalidClient | ErrorCode::InvalidToken => StatusCode::UNAUTHORIZED,
                ErrorCode::InsufficientScope => StatusCode::FORBIDDEN,
                ErrorCode::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::BAD_REQUEST,
            },
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((CACHE_CONTROL, "no-store"))
            .insert_header((PRAGMA, "no-cache"));
        let (code, description) = match self {
            Self::UnknownWorkspace(_) | Self::BodyTooLarge => {
                (ErrorCode::InvalidRequest, self.to_string())
            }
            Self::RateLimited(wait) | Self::UnknownDeviceCodes(wait) => {
                let wait = wait.as_secs().max(1);
                res.insert_header((RETRY_AFTER, wait));
                let description = if let Self::UnknownDeviceCodes(_) = self {
                    format!(
                        "too many unknown device codes from this address; \
                         poll again in {wait} seconds"
                    )
                } else {
                    format!(
                        "too many device authorization requests from this client and address; \
                         try again in {wait} seconds"
                    )
                };
                (ErrorCode::SlowDown, description)
            }
            Self::Bearer(None) => {
                res.insert_header((WWW_AUTHENTICATE, format!("Bearer realm=\"{REALM}\"")));
                return res.finish();
            }
            Self::OAuth(e) | Self::Bearer(Some(e)) => (e.code, e.description.clone()),
        };
        let description = describable(&description);
        let ours = matches!(
            code,
            ErrorCode::ServerError | ErrorCode::TemporarilyUnavailable
        );
        if code == ErrorCode::TemporarilyUnavailable {
            res.insert_header((
                RETRY_AFTER,
                vestibule_core::error::RETRY_UNAVAILABLE_AFTER.as_secs(),
            ));
        }
        match self {
            Self::Bearer(Some(_)) if !ours => {
                res.insert_header((
                    WWW_AUTHENTICATE,
                    format!(
                        "Bearer realm=\"{REALM}\", error=\"{}\", error_description=\"{}\"",
                        code.as_str(),
                        description
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

/// `error_description` as RFC 6749 §5.2 and RFC 6750 §3 allow it: printable ASCII except `"`
/// and `\\` (so it also fits a quoted string in a challenge). Dashes become `-`; any other
/// character outside the set, such as one echoed from hostile input, becomes `?`, which keeps
/// its place visible.
fn describable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '"' | '\\' => '?',
            ' '..='~' => c,
            '\u{2010}'..='\u{2015}' => '-',
            _ => '?',
        })
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
                "Bearer realm=\"vestibule\", error=\"invalid_token\", error_description=\"bad ?token??\""
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

    #[test]
    fn an_unavailable_database_is_503_temporarily_unavailable_with_retry_after() {
        let lost = sea_orm::DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout);
        let e = OAuthResponse::from(vestibule_core::Error::from(lost));
        assert_eq!(e.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        let res = e.error_response();
        assert_eq!(res.headers().get(RETRY_AFTER).unwrap(), "5");
        assert_eq!(challenge(&res), None);
        let bearer = OAuthResponse::bearer(vestibule_core::Error::from(
            sea_orm::DbErr::ConnectionAcquire(sea_orm::error::ConnAcquireErr::Timeout),
        ))
        .error_response();
        assert_eq!(bearer.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(challenge(&bearer), None, "an outage is no bearer challenge");
        let other = OAuthResponse::from(vestibule_core::Error::from(sea_orm::DbErr::Custom(
            "bad row".into(),
        )));
        assert_eq!(other.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn descriptions_keep_to_the_rfc_6749_character_set() {
        assert_eq!(
            describable("grant_type a\"b\\c\u{0}\u{7f}\té is 1–2 ~!"),
            "grant_type a?b?c???? is 1-2 ~!"
        );
    }

    #[test]
    fn domain_errors_become_oauth_errors_in_one_place() {
        let refused = |r: Refusal| OAuthError::from(vestibule_core::Error::from(r));
        assert_eq!(
            refused(Refusal::GrantNotEnabled(
                vestibule_core::types::Grant::DeviceCode
            )),
            OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "the device_code grant is not enabled for this client"
            )
        );
        assert_eq!(
            refused(Refusal::DeviceFlowDisabled).to_string(),
            "unauthorized_client: the device authorization grant is disabled in this workspace"
        );
        let exhausted = OAuthResponse::from(Refusal::NoFreeUserCode);
        assert_eq!(exhausted.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            OAuthError::from(vestibule_core::Error::invalid("scope", "bad")),
            OAuthError::invalid_request("bad")
        );
        let internal = OAuthError::from(vestibule_core::Error::internal(
            "the signing key is unreadable",
        ));
        assert_eq!(internal.code, ErrorCode::ServerError);
        assert!(!internal.description.contains("signing key"));
    }

    const CODES: [ErrorCode; 13] = [
        ErrorCode::InvalidRequest,
        ErrorCode::InvalidClient,
        ErrorCode::InvalidGrant,
        ErrorCode::UnauthorizedClient,
        ErrorCode::UnsupportedGrantType,
        ErrorCode::InvalidScope,
        ErrorCode::AuthorizationPending,
        ErrorCode::SlowDown,
        ErrorCode::AccessDenied,
        ErrorCode::ExpiredToken,
        ErrorCode::InvalidToken,
        ErrorCode::InsufficientScope,
        ErrorCode::ServerError,
    ];

    proptest::proptest! {
        /// Whatever a description echoes, the response is the error it stands for (a header
        /// value the description spoiled would turn it into a 500) and its description keeps
        /// to the character set, in the body and in the challenge.
        #[test]
        fn any_description_makes_a_well_formed_response(
            code in proptest::sample::select(CODES.to_vec()),
            description in proptest::arbitrary::any::<String>(),
            bearer in proptest::arbitrary::any::<bool>(),
        ) {
            let error = OAuthError::new(code, description);
            let response = if bearer { OAuthResponse::bearer(error) } else { OAuthResponse::OAuth(error) };
            let res = response.error_response();
            proptest::prop_assert_eq!(res.status(), response.status_code());
            let allowed = |s: &str| s.bytes().all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e));
            if let Some(challenge) = challenge(&res) {
                let described = challenge.split("error_description=\"").nth(1).unwrap_or("\"");
                proptest::prop_assert!(allowed(described.strip_suffix('"').unwrap()), "{challenge}");
            }
            let body = actix_web::body::to_bytes(res.into_body());
            let body = actix_web::rt::System::new().block_on(body).unwrap();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            proptest::prop_assert_eq!(json["error"].as_str(), Some(code.as_str()));
            proptest::prop_assert!(allowed(json["error_description"].as_str().unwrap()));
        }
    }
}
