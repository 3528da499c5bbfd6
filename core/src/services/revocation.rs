//! Token revocation (RFC 7009): a client ends one of its own tokens. Unknown tokens and other
//! clients' tokens are answered like successes and change nothing (RFC 7009 §2.2).

use crate::Core;
use crate::error::Error;
use crate::oauth::TokenType;
use crate::records::{Client, Workspace};
use crate::services::access_tokens;
use crate::services::audit::Actor;
use crate::services::refresh;

/// Revokes `token` if it is one of `client`'s. A refresh token takes its whole family with it
/// (every refresh and access token of its grant, RFC 7009 §2.1); an access token becomes
/// inactive on its own. `token_type_hint` decides which kind is looked for first.
///
/// # Errors
/// On a database failure.
pub async fn revoke(
    core: &Core,
    workspace: &Workspace,
    client: &Client,
    token: &str,
    hint: Option<&str>,
    ip: Option<String>,
) -> Result<(), Error> {
    for kind in TokenType::lookup_order(hint) {
        match kind {
            TokenType::RefreshToken => {
                if refresh::revoke_family(core, workspace, client, token, ip.clone()).await? {
                    return Ok(());
                }
            }
            TokenType::AccessToken => {
                if let Some(active) = access_tokens::validate(core, workspace, token).await? {
                    if active.claims.client_id == client.client_id {
                        access_tokens::revoke(
                            &core.db,
                            workspace.id,
                            &active,
                            &Actor::Client(client.client_id.clone()),
                            ip,
                        )
                        .await?;
                    } else {
                        tracing::info!(client = %client.client_id, "revocation of another client's access token ignored");
                    }
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}
