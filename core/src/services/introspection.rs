//! Token introspection (RFC 7662): how resource servers (confidential clients of the workspace)
//! learn whether a token is active and what it carries.

use serde::Serialize;

use crate::Core;
use crate::entities::client;
use crate::error::Error;
use crate::oauth::{Refusal, TokenType};
use crate::records::Workspace;
use crate::services::{access_tokens, refresh, tokens};

/// The introspection response: only `active: false` for anything not active (RFC 7662 §2.2).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `Bearer` for access tokens, `refresh_token` for refresh tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// Introspects `token` for `caller`, which must be a confidential client of the workspace.
/// Revoked, expired, malformed and other workspaces' tokens are inactive.
///
/// # Errors
/// [`Refusal::IntrospectionNeedsConfidentialClient`] for a public caller; database failures.
pub async fn introspect(
    core: &Core,
    workspace: &Workspace,
    caller: &client::Model,
    token: &str,
    hint: Option<&str>,
) -> Result<Introspection, Error> {
    if caller.public {
        return Err(Refusal::IntrospectionNeedsConfidentialClient.into());
    }
    for kind in TokenType::lookup_order(hint) {
        if let Some(found) = lookup(core, workspace, token, kind).await? {
            return Ok(found);
        }
    }
    Ok(Introspection::default())
}

async fn lookup(
    core: &Core,
    workspace: &Workspace,
    token: &str,
    kind: TokenType,
) -> Result<Option<Introspection>, Error> {
    let iss = Some(tokens::issuer(
        &core.settings.server.public_url,
        &workspace.slug,
    ));
    Ok(match kind {
        TokenType::AccessToken => access_tokens::validate(core, workspace, token)
            .await?
            .map(|t| Introspection {
                active: true,
                scope: Some(t.claims.scope),
                client_id: Some(t.claims.client_id),
                username: t.user.map(|u| u.username),
                token_type: Some("Bearer"),
                exp: Some(t.claims.exp),
                iat: Some(t.claims.iat),
                sub: Some(t.claims.sub),
                aud: Some(t.claims.aud),
                iss,
                jti: Some(t.claims.jti),
            }),
        TokenType::RefreshToken => {
            refresh::active(core, workspace, token)
                .await?
                .map(|t| Introspection {
                    active: true,
                    scope: Some(t.token.scopes),
                    client_id: Some(t.client.client_id),
                    username: Some(t.user.username),
                    token_type: Some("refresh_token"),
                    exp: Some(t.ends_at),
                    iat: Some(t.token.created_at),
                    sub: Some(t.user.id.to_string()),
                    aud: None,
                    iss,
                    jti: None,
                })
        }
    })
}
