//! The `refresh_token` grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700
//! §4.14.2), and what makes a refresh token active.
//!
//! Every refresh rotates: the presented token is marked used and a new one of the same family
//! (the grant) is returned. Reuse policy, decided here:
//! - a token that was **already used before this request began** (its row says so when the
//!   request reads it) is a replay: a copy of it is in someone else's hands, so the whole
//!   family is revoked — every refresh token and, through the grant, every access token
//!   descended from the approval — and the answer is `invalid_grant`;
//! - a request that read the token unused but **loses the race** to a concurrent refresh of
//!   the same token (the conditional update finds it used) only gets `invalid_grant`. Both
//!   requests came with the token at the same instant, most likely one client retrying; the
//!   winner's new tokens keep working.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _};
use uuid::Uuid;

use crate::Core;
use crate::crypto::SecretKind;
use crate::entities::{client, grant, refresh_token, user, workspace};
use crate::error::Error;
use crate::oauth::Refusal;
use crate::records::{Client, Workspace};
use crate::services::audit::{self, Action, Actor};
use crate::services::grants::{self, Reason};
use crate::services::tokens::{self, Issued};
use crate::services::users;
use crate::services::workspaces::Settings;
use crate::types::ScopeSet;

/// Where a refresh token stands, read before anything is changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Active,
    /// Revoked itself, or its grant was.
    Revoked,
    /// Rotated away earlier.
    Used,
    /// Past its own lifetime or its grant's end; the text says which.
    Ended(&'static str),
}

fn standing(
    row: &refresh_token::Model,
    grant: &grant::Model,
    settings: &Settings,
    now: i64,
) -> Standing {
    if row.revoked_at.is_some() || grant.revoked_at.is_some() {
        Standing::Revoked
    } else if row.used_at.is_some() {
        Standing::Used
    } else if row.expires_at <= now {
        Standing::Ended("this refresh token has expired")
    } else if !grants::is_live(grant, settings, now) {
        Standing::Ended(
            "this device authorization is older than the workspace allows (device_grant_max_age); sign the device in again",
        )
    } else {
        Standing::Active
    }
}

/// The refresh token with this value in the workspace, and its grant.
async fn find(
    core: &Core,
    workspace_id: Uuid,
    token: &str,
) -> Result<Option<(refresh_token::Model, grant::Model)>, Error> {
    let hash = core.keyring.hash_secret(SecretKind::RefreshToken, token);
    let Some(row) = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash))
        .one(&core.db)
        .await?
        .filter(|r| r.workspace_id == workspace_id)
    else {
        return Ok(None);
    };
    Ok(grants::find(&core.db, row.family_id)
        .await?
        .map(|grant| (row, grant)))
}

/// A refresh token that could be redeemed right now.
#[derive(Debug, Clone)]
pub struct ActiveRefreshToken {
    pub token: refresh_token::Model,
    pub grant: grant::Model,
    pub client: client::Model,
    pub user: user::Model,
    /// When it stops working: its own expiry or its grant's end, whichever is first.
    pub ends_at: i64,
}

/// The active refresh token with this value in the workspace: not revoked, not rotated away,
/// not expired, its grant live, its client still registered and its user enabled.
///
/// # Errors
/// On a database failure.
pub async fn active(
    core: &Core,
    workspace: &Workspace,
    token: &str,
) -> Result<Option<ActiveRefreshToken>, Error> {
    let Some((row, grant)) = find(core, workspace.id, token).await? else {
        return Ok(None);
    };
    if standing(&row, &grant, &workspace.settings, crate::now()) != Standing::Active {
        return Ok(None);
    }
    let Some(user) = users::find_by_id(&core.db, row.user_id)
        .await?
        .filter(|u| !u.disabled)
    else {
        return Ok(None);
    };
    let Some(client) = client::Entity::find_by_id(row.client_id)
        .one(&core.db)
        .await?
    else {
        return Ok(None);
    };
    let ends_at = grants::ends_at(&grant, &workspace.settings)
        .map_or(row.expires_at, |end| std::cmp::min(end, row.expires_at));
    Ok(Some(ActiveRefreshToken {
        token: row,
        grant,
        client,
        user,
        ends_at,
    }))
}

/// Revokes the grant a refresh token of this client belongs to, with everything issued from
/// it. Another client's token is left alone. `false` when the value names no refresh token of
/// the workspace.
///
/// # Errors
/// On a database failure.
pub async fn revoke_family(
    core: &Core,
    workspace: &workspace::Model,
    client: &client::Model,
    token: &str,
    ip: Option<String>,
) -> Result<bool, Error> {
    let Some((row, grant)) = find(core, workspace.id, token).await? else {
        return Ok(false);
    };
    if row.client_id != client.id {
        // Another client's token: RFC 7009 §2.1 says refuse; §2.2 says answer 200 regardless.
        tracing::info!(client = %client.client_id, "revocation of another client's refresh token ignored");
        return Ok(true);
    }
    let txn = crate::db::begin_write(&core.db).await?;
    grants::revoke(
        &txn,
        &grant,
        Reason::RevokedByClient,
        &Actor::Client(client.client_id.clone()),
        ip,
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}

/// `grant_type=refresh_token`: rotates the presented token and issues new tokens. `scope` may
/// narrow the access token's scope, never widen it; the new refresh token keeps the grant's.
///
/// # Errors
/// `invalid_grant` for an unknown, foreign, revoked, reused (the family is then revoked) or
/// expired token, a grant past `device_grant_max_age`, a disabled user, or a lost race;
/// `invalid_scope` for a widening `scope`.
pub async fn refresh(
    core: &Core,
    workspace: &Workspace,
    client: &Client,
    presented: &str,
    requested_scope: Option<&str>,
    ip: Option<String>,
) -> Result<Issued, Error> {
    let (row, grant) = find(core, workspace.id, presented)
        .await?
        .filter(|(row, _)| row.client_id == client.id)
        .ok_or(Refusal::UnknownRefreshToken)?;
    let settings = &workspace.settings;
    let now = crate::now();
    match standing(&row, &grant, settings, now) {
        Standing::Active => {}
        Standing::Revoked => return Err(Refusal::RefreshTokenRevoked.into()),
        Standing::Used => {
            reused(core, client, &row, &grant, ip).await?;
            return Err(Refusal::RefreshTokenReused.into());
        }
        Standing::Ended(why) => return Err(Refusal::RefreshTokenEnded(why).into()),
    }
    let user = users::find_by_id(&core.db, row.user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(Refusal::UserGone)?;
    let scopes = narrowed(client, &row, requested_scope)?;
    // Everything that needs its own connection comes before the transaction takes one.
    let key = core
        .keys
        .current(&core.db, &core.keyring, workspace.id)
        .await?;
    let issuer = tokens::issuer(&core.settings.server.public_url, &workspace.slug);

    let txn = crate::db::begin_write(&core.db).await?;
    // The grant first, as revocation does (same lock order, no deadlock): a grant revoked in
    // the meantime stops this refresh, and a revocation that comes after sees the new token.
    let live = grant::Entity::update_many()
        .col_expr(grant::Column::LastRefreshAt, Expr::value(now))
        .filter(grant::Column::Id.eq(grant.id))
        .filter(grant::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    if !live {
        return Err(Refusal::RefreshTokenRevoked.into());
    }
    // Exactly once: of all requests presenting this token, one flips it to used.
    let rotated = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
        .filter(refresh_token::Column::Id.eq(row.id))
        .filter(refresh_token::Column::UsedAt.is_null())
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    if !rotated {
        // Lost the race to a concurrent refresh: not a replay, the winner keeps its tokens.
        return Err(Refusal::RefreshTokenRaced.into());
    }
    let issued = tokens::issue_for_user(
        &txn,
        &core.keyring,
        &key,
        &tokens::UserGrant {
            issuer: &issuer,
            settings,
            client,
            user: &user,
            grant: &grant,
            scopes: &scopes,
            replaces: Some(row.id),
        },
    )
    .await?;
    audit::record(
        &txn,
        audit::Event {
            actor: &Actor::Client(client.client_id.clone()),
            workspace_id: Some(workspace.id),
            action: Action::RefreshTokenRotated,
            target: Some(grant.id.to_string()),
            detail: serde_json::json!({ "replaced": row.id, "scope": issued.scope }),
            ip,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(issued)
}

/// The access token's scopes: those asked for (all of the refresh token's when none are),
/// which must have been granted; scopes an admin has since disabled for the client are
/// dropped.
fn narrowed(
    client: &Client,
    row: &refresh_token::Model,
    requested: Option<&str>,
) -> Result<ScopeSet, Refusal> {
    let granted = ScopeSet::from_stored(&row.scopes);
    let scopes = match requested.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => {
            let asked = ScopeSet::parse(s).map_err(|e| Refusal::ScopeMalformed(e.to_string()))?;
            let extra = asked.difference(&granted);
            if !extra.is_empty() {
                return Err(Refusal::ScopeWidened(extra));
            }
            asked
        }
        None => granted,
    };
    Ok(scopes.intersection(&client.scopes))
}

/// A replayed refresh token: revoke the family and say so in the audit log.
async fn reused(
    core: &Core,
    client: &client::Model,
    row: &refresh_token::Model,
    grant: &grant::Model,
    ip: Option<String>,
) -> Result<(), Error> {
    let actor = Actor::Client(client.client_id.clone());
    let txn = crate::db::begin_write(&core.db).await?;
    grants::revoke(&txn, grant, Reason::RefreshTokenReused, &actor, ip.clone()).await?;
    audit::record(
        &txn,
        audit::Event {
            actor: &actor,
            workspace_id: Some(grant.workspace_id),
            action: Action::RefreshTokenReused,
            target: Some(grant.id.to_string()),
            detail: serde_json::json!({ "token": row.id, "used_at": row.used_at }),
            ip,
        },
    )
    .await?;
    txn.commit().await?;
    tracing::warn!(grant = %grant.id, client = %client.client_id, "refresh token reused: its family is revoked");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::DisplayName;

    fn row(used: bool, revoked: bool, expires_at: i64) -> refresh_token::Model {
        refresh_token::Model {
            id: Uuid::nil(),
            family_id: Uuid::nil(),
            parent_id: None,
            workspace_id: Uuid::nil(),
            client_id: Uuid::nil(),
            user_id: Uuid::nil(),
            device_grant_id: Some(Uuid::nil()),
            token_hash: String::new(),
            scopes: "openid offline_access".into(),
            auth_time: 0,
            created_at: 0,
            expires_at,
            used_at: used.then_some(10),
            revoked_at: revoked.then_some(20),
        }
    }

    fn grant(created_at: i64, revoked: bool) -> grant::Model {
        grant::Model {
            id: Uuid::nil(),
            workspace_id: Uuid::nil(),
            client_id: Uuid::nil(),
            user_id: Some(Uuid::nil()),
            device_grant_id: Some(Uuid::nil()),
            scopes: "openid offline_access".into(),
            auth_time: 0,
            created_at,
            last_refresh_at: None,
            revoked_at: revoked.then_some(30),
            revoked_reason: None,
        }
    }

    #[test]
    fn standing_checks_revocation_then_use_then_lifetimes() {
        let mut settings = Settings::defaults(DisplayName::parse("name", "t").unwrap());
        settings.device_grant_max_age = crate::types::Seconds::new("m", 100, 1000).unwrap();
        let now = 50;
        let s = |r, g| standing(&r, &g, &settings, now);
        assert_eq!(s(row(false, false, 60), grant(0, false)), Standing::Active);
        assert_eq!(s(row(true, true, 60), grant(0, false)), Standing::Revoked);
        assert_eq!(s(row(false, false, 60), grant(0, true)), Standing::Revoked);
        // A used token is a replay even once expired.
        assert_eq!(s(row(true, false, 40), grant(0, false)), Standing::Used);
        assert!(matches!(
            s(row(false, false, 50), grant(0, false)),
            Standing::Ended(_)
        ));
        // Approved at -60: the grant ended at 40, before the token would have.
        assert!(matches!(
            s(row(false, false, 60), grant(-60, false)),
            Standing::Ended(_)
        ));
    }
}
