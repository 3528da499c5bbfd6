//! OAuth 2.0 error codes (RFC 6749 §5.2, RFC 8628 §3.5, RFC 6750 §3.1) and token type hints
//! (RFC 7009 §2.1) as domain values. The server renders them in one place.

use std::fmt;

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

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }
}

/// Why the server refuses a protocol request, in the domain's words. Core services return
/// these inside [`crate::Error::Refused`]; the protocol surface turns each into its RFC error
/// code and status in one place. The text is the description a client's developer reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Unknown client, wrong secret, or a public client presenting one.
    #[error("client authentication failed")]
    ClientAuthenticationFailed,
    #[error(
        "this client is confidential: authenticate with its secret (client_secret_basic or client_secret_post)"
    )]
    ClientSecretRequired,
    #[error("client_credentials needs a confidential client")]
    ConfidentialClientRequired,
    #[error(
        "only confidential clients (resource servers with a client secret) may introspect tokens"
    )]
    IntrospectionNeedsConfidentialClient,
    /// The `scope` parameter does not parse.
    #[error("{0}")]
    ScopeMalformed(String),
    #[error("scope not enabled for this client: {}", .0.join(" "))]
    ScopeNotEnabled(Vec<String>),
    #[error("a refresh may narrow the scope, never widen it; not granted: {}", .0.join(" "))]
    ScopeWidened(Vec<String>),
    #[error("unknown refresh token")]
    UnknownRefreshToken,
    #[error("this refresh token was revoked")]
    RefreshTokenRevoked,
    #[error(
        "this refresh token was already used; every token of this authorization is now revoked"
    )]
    RefreshTokenReused,
    #[error("this refresh token was used by a concurrent request")]
    RefreshTokenRaced,
    /// The refresh token or the authorization it came from has run its course.
    #[error("{0}")]
    RefreshTokenEnded(&'static str),
    #[error("the user no longer exists or is disabled")]
    UserGone,
    /// A bearer token that is malformed, expired, revoked or foreign (RFC 6750 §3.1).
    #[error("the access token is malformed, expired, revoked or not of this workspace")]
    TokenInactive,
    #[error("userinfo needs an access token with the openid scope")]
    UserinfoNeedsOpenid,
}

/// The two kinds of token a client can hold, as named by `token_type_hint` (RFC 7009 §2.1,
/// RFC 7662 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    AccessToken,
    RefreshToken,
}

impl TokenType {
    /// The order in which to look a token up: the hinted type first, then the other one (a
    /// hint is only a guess, RFC 7009 §2.1). Without a usable hint, refresh tokens come first:
    /// finding one costs one indexed lookup, an access token a signature check.
    #[must_use]
    pub fn lookup_order(hint: Option<&str>) -> [Self; 2] {
        match hint {
            Some("access_token") => [Self::AccessToken, Self::RefreshToken],
            _ => [Self::RefreshToken, Self::AccessToken],
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::RefreshToken => "refresh_token",
        }
    }
}

impl fmt::Display for OAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.description)
    }
}

impl std::error::Error for OAuthError {}

impl Refusal {
    /// The RFC error code a client is answered with.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::ClientAuthenticationFailed
            | Self::ClientSecretRequired
            | Self::IntrospectionNeedsConfidentialClient => ErrorCode::InvalidClient,
            Self::ConfidentialClientRequired => ErrorCode::UnauthorizedClient,
            Self::ScopeMalformed(_) | Self::ScopeNotEnabled(_) | Self::ScopeWidened(_) => {
                ErrorCode::InvalidScope
            }
            Self::UnknownRefreshToken
            | Self::RefreshTokenRevoked
            | Self::RefreshTokenReused
            | Self::RefreshTokenRaced
            | Self::RefreshTokenEnded(_)
            | Self::UserGone => ErrorCode::InvalidGrant,
            Self::TokenInactive => ErrorCode::InvalidToken,
            Self::UserinfoNeedsOpenid => ErrorCode::InsufficientScope,
        }
    }
}

/// Refusals keep their code and text; internal failures become `server_error` without
/// details (they are logged instead, with their causes).
impl From<crate::Error> for OAuthError {
    fn from(e: crate::Error) -> Self {
        match e {
            crate::Error::Refused(refusal) => Self::new(refusal.code(), refusal.to_string()),
            crate::Error::Invalid { message, .. } => Self::invalid_request(message),
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

impl From<sea_orm::DbErr> for OAuthError {
    fn from(e: sea_orm::DbErr) -> Self {
        crate::Error::from(e).into()
    }
}
