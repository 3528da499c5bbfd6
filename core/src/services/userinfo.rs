//! The OIDC UserInfo endpoint's answer (OIDC Core §5.3): claims about the user a bearer token
//! acts for, as far as its scopes allow.

use serde::Serialize;

use crate::Core;
use crate::error::Error;
use crate::oauth::Refusal;
use crate::records::Workspace;
use crate::services::access_tokens;
use crate::types::ScopeSet;

/// Standard claims (OIDC Core §5.1) per granted scope: `sub` always, `name` and
/// `preferred_username` with `profile`, `email` with `email`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UserInfo {
    pub sub: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

/// The claims for a bearer token presented to the workspace, read from the user's current
/// record.
///
/// # Errors
/// [`Refusal::TokenInactive`] (RFC 6750 §3.1 `invalid_token`) for a token that is not active;
/// [`Refusal::UserinfoNeedsOpenid`] for one without `openid` (a `client_credentials` token
/// never has it); database failures.
pub async fn userinfo(core: &Core, workspace: &Workspace, token: &str) -> Result<UserInfo, Error> {
    let active = access_tokens::validate(core, workspace, token)
        .await?
        .ok_or(Refusal::TokenInactive)?;
    let scopes = ScopeSet::from_stored(&active.claims.scope);
    let user = active
        .user
        .filter(|_| scopes.contains("openid"))
        .ok_or(Refusal::UserinfoNeedsOpenid)?;
    Ok(UserInfo {
        sub: user.id.to_string(),
        name: user.name.filter(|_| scopes.contains("profile")),
        preferred_username: Some(user.username).filter(|_| scopes.contains("profile")),
        email: user.email.filter(|_| scopes.contains("email")),
    })
}
