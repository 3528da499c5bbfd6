//! Why the server refuses a protocol request, in the domain's words, and token type hints
//! (RFC 7009 §2.1). The server turns refusals into RFC error codes in one place.

use crate::types::Grant;

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
    #[error("the device authorization grant is disabled in this workspace")]
    DeviceFlowDisabled,
    #[error("the {} grant is not enabled for this client", .0.as_str())]
    GrantNotEnabled(Grant),
    /// The request came from outside the client's trusted networks (`device_networks`, BCP 247
    /// §6.1.8), or from an address not known while the client lists some.
    #[error("device authorization is not allowed from this network for this client")]
    DeviceNetworkRefused,
    /// Every user code drawn was taken: the workspace's code space is too small for its load.
    #[error(
        "no free user code could be drawn; the workspace's code space is too small for its load"
    )]
    NoFreeUserCode,
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
