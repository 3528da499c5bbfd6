//! A user's grants as an admin sees them: the approvals whose tokens may still work, and
//! revoking one or all of them.

use std::collections::HashMap;

use sea_orm::{
    ColumnTrait as _, ConnectionTrait, DatabaseConnection, EntityTrait as _, QueryFilter as _,
    QueryOrder as _,
};
use uuid::Uuid;

use crate::entities::{client, grant, refresh_token, workspace};
use crate::error::Error;
use crate::services::audit::Actor;
use crate::services::grants;
use crate::services::workspaces::Settings;

/// A grant whose tokens may still work, with its client.
#[derive(Debug, Clone)]
pub struct ActiveGrant {
    pub grant: grant::Model,
    pub client: Option<client::Model>,
}

/// The user's grants in `workspace` that are not revoked, not past `device_grant_max_age`,
/// and still have a live refresh token or an access token within its lifetime; newest first.
///
/// # Errors
/// On a database failure or unreadable workspace settings.
pub async fn active(
    db: &impl ConnectionTrait,
    workspace: &workspace::Model,
    user_id: Uuid,
) -> Result<Vec<ActiveGrant>, Error> {
    let settings = Settings::from_model(workspace)?;
    let now = crate::now();
    let candidates: Vec<grant::Model> = grant::Entity::find()
        .filter(grant::Column::WorkspaceId.eq(workspace.id))
        .filter(grant::Column::UserId.eq(user_id))
        .filter(grant::Column::RevokedAt.is_null())
        .order_by_desc(grant::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .filter(|g| grants::is_live(g, &settings, now))
        .collect();
    let ids: Vec<Uuid> = candidates.iter().map(|g| g.id).collect();
    let with_refresh: Vec<Uuid> = refresh_token::Entity::find()
        .filter(refresh_token::Column::FamilyId.is_in(ids))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .filter(refresh_token::Column::UsedAt.is_null())
        .filter(refresh_token::Column::ExpiresAt.gt(now))
        .all(db)
        .await?
        .into_iter()
        .map(|t| t.family_id)
        .collect();
    // Tokens of a device grant are minted at redemption, up to a code lifetime after approval.
    let access_window = settings.access_token_ttl.get() + settings.device_code_ttl.get();
    let live: Vec<grant::Model> = candidates
        .into_iter()
        .filter(|g| {
            with_refresh.contains(&g.id)
                || g.last_refresh_at.unwrap_or(g.created_at) + access_window > now
        })
        .collect();
    let client_ids: Vec<Uuid> = live.iter().map(|g| g.client_id).collect();
    let clients: HashMap<Uuid, client::Model> = client::Entity::find()
        .filter(client::Column::Id.is_in(client_ids))
        .all(db)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    Ok(live
        .into_iter()
        .map(|grant| ActiveGrant {
            client: clients.get(&grant.client_id).cloned(),
            grant,
        })
        .collect())
}

/// Ends a grant on an admin's word (see [`grants::revoke`]). `false` when it was already revoked.
///
/// # Errors
/// On a database failure.
pub async fn end(
    db: &impl ConnectionTrait,
    grant: &grant::Model,
    actor: &Actor,
    ip: Option<String>,
) -> Result<bool, Error> {
    grants::revoke(db, grant, grants::Reason::RevokedByAdmin, actor, ip).await
}

/// Revokes one grant of a user. `false` when it was already revoked.
///
/// # Errors
/// `NotFound` unless the grant is the user's, in this workspace.
pub async fn revoke(
    db: &DatabaseConnection,
    actor: &Actor,
    workspace_id: Uuid,
    user_id: Uuid,
    grant_id: Uuid,
    ip: Option<String>,
) -> Result<bool, Error> {
    let grant = grants::find(db, grant_id)
        .await?
        .filter(|g| g.workspace_id == workspace_id && g.user_id == Some(user_id))
        .ok_or_else(|| Error::NotFound(format!("no grant {grant_id} of this user")))?;
    let txn = crate::db::begin_write(db).await?;
    let ended = end(&txn, &grant, actor, ip).await?;
    txn.commit().await?;
    Ok(ended)
}

/// Revokes every grant of a user in the workspace, in one transaction; how many were ended.
///
/// # Errors
/// On a database failure.
pub async fn revoke_all(
    db: &DatabaseConnection,
    actor: &Actor,
    workspace_id: Uuid,
    user_id: Uuid,
    ip: Option<String>,
) -> Result<u64, Error> {
    let txn = crate::db::begin_write(db).await?;
    let ended = grants::revoke_all_of_user(
        &txn,
        workspace_id,
        user_id,
        grants::Reason::RevokedByAdmin,
        actor,
        ip,
    )
    .await?;
    txn.commit().await?;
    Ok(ended)
}
