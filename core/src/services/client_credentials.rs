//! The `client_credentials` grant (RFC 6749 §4.4): a confidential client gets an access token
//! for itself, to call APIs on its own behalf.

use crate::Core;
use crate::error::Error;
use crate::oauth::Refusal;
use crate::records::{Client, Workspace};
use crate::services::scopes;
use crate::services::tokens::{self, Issued};

/// Scopes that only make sense for a user, never granted to a client acting for itself.
const USER_ONLY_SCOPES: [&str; 2] = ["openid", "offline_access"];

/// Issues an access token (no ID token, no refresh token) with `sub` = the client_id and the
/// requested scopes (all enabled ones when none are asked for), minus `openid` and
/// `offline_access`.
///
/// # Errors
/// [`Refusal::ConfidentialClientRequired`] for a public client; a scope refusal for scopes not
/// enabled for it.
pub async fn issue(
    core: &Core,
    workspace: &Workspace,
    client: &Client,
    requested_scope: Option<&str>,
) -> Result<Issued, Error> {
    if client.public {
        return Err(Refusal::ConfidentialClientRequired.into());
    }
    let mut scopes = scopes::grantable(client, requested_scope)?;
    for scope in USER_ONLY_SCOPES {
        scopes.remove(scope);
    }
    let key = core
        .keys
        .current(&core.db, &core.keyring, workspace.id)
        .await?;
    let issuer = tokens::issuer(&core.settings.server.public_url, &workspace.slug);
    tokens::issue_for_client(&key, &issuer, &workspace.settings, client, &scopes)
}
