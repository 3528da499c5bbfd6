//! A user's grants as an admin (console) and the user (account page) see them: the approvals
//! whose tokens may still work, the device approvals whose device has not collected its tokens
//! yet, and revoking one or all of them.

use sea_orm::{
    ColumnTrait as _, ConnectionTrait, DatabaseConnection, EntityTrait as _, QueryFilter as _,
    QueryOrder as _,
};
use uuid::Uuid;

use crate::Core;
use crate::entities::{client, device_grant, grant, refresh_token, workspace};
use crate::error::Error;
use crate::services::audit::Actor;
use crate::services::device_authorizations;
use crate::services::device_grants::Status;
use crate::services::workspaces::Settings;
use crate::services::{by_id, grants};

/// A grant whose tokens may still work, with its client and, for a device authorization, the
/// request it came from (when, from where and by what the device asked; who approved from
/// where).
#[derive(Debug, Clone)]
pub struct ActiveGrant {
    pub grant: grant::Model,
    pub client: Option<client::Model>,
    pub device: Option<device_grant::Model>,
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
    let clients = by_id::<client::Entity, _>(db, client::Column::Id, client_ids, |c| c.id).await?;
    let device_ids: Vec<Uuid> = live.iter().filter_map(|g| g.device_grant_id).collect();
    let devices =
        by_id::<device_grant::Entity, _>(db, device_grant::Column::Id, device_ids, |d| d.id)
            .await?;
    Ok(live
        .into_iter()
        .map(|grant| ActiveGrant {
            client: clients.get(&grant.client_id).cloned(),
            device: grant
                .device_grant_id
                .and_then(|id| devices.get(&id).cloned()),
            grant,
        })
        .collect())
}

/// A device authorization the user approved whose device has not redeemed its code yet: no
/// `grants` row exists until it does, yet the device will get tokens at its next poll.
#[derive(Debug, Clone)]
pub struct AwaitingDevice {
    pub device: device_grant::Model,
    pub client: Option<client::Model>,
}

/// The user's approved device authorizations in `workspace` that are within their code's
/// lifetime and not yet redeemed; newest approval first.
///
/// # Errors
/// On a database failure.
pub async fn awaiting_redemption(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    user_id: Uuid,
) -> Result<Vec<AwaitingDevice>, Error> {
    let devices = device_grant::Entity::find()
        .filter(device_grant::Column::WorkspaceId.eq(workspace_id))
        .filter(device_grant::Column::UserId.eq(user_id))
        .filter(device_grant::Column::Status.eq(Status::Approved))
        .filter(device_grant::Column::ExpiresAt.gt(crate::now()))
        .order_by_desc(device_grant::Column::DecidedAt)
        .order_by_desc(device_grant::Column::Id)
        .all(db)
        .await?;
    let client_ids: Vec<Uuid> = devices.iter().map(|d| d.client_id).collect();
    let clients = by_id::<client::Entity, _>(db, client::Column::Id, client_ids, |c| c.id).await?;
    Ok(devices
        .into_iter()
        .map(|device| AwaitingDevice {
            client: clients.get(&device.client_id).cloned(),
            device,
        })
        .collect())
}

/// Ends a grant on the word of `actor` (see [`grants::revoke`]): its user, from their account
/// page, or an admin. `false` when it was already revoked.
///
/// # Errors
/// On a database failure.
pub async fn end(
    db: &impl ConnectionTrait,
    grant: &grant::Model,
    actor: &Actor,
    ip: Option<String>,
) -> Result<bool, Error> {
    let reason = match actor {
        Actor::User(_) => grants::Reason::RevokedByUser,
        _ => grants::Reason::RevokedByAdmin,
    };
    grants::revoke(db, grant, reason, actor, ip).await
}

/// What revoking one grant did.
#[derive(Debug, Clone)]
pub struct Revoked {
    /// `false` when the grant had been revoked already: nothing changed.
    pub ended: bool,
    /// The client the grant was given to, to say what was revoked (`None` once deleted).
    pub client: Option<client::Model>,
}

/// Revokes one grant of a user, on the word of `actor` (an admin, or the user themself).
///
/// # Errors
/// `NotFound` unless the grant is the user's, in this workspace (the same for a grant that
/// does not exist and one of someone else).
pub async fn revoke(
    db: &DatabaseConnection,
    actor: &Actor,
    workspace_id: Uuid,
    user_id: Uuid,
    grant_id: Uuid,
    ip: Option<String>,
) -> Result<Revoked, Error> {
    let grant = grants::find(db, grant_id)
        .await?
        .filter(|g| g.workspace_id == workspace_id && g.user_id == Some(user_id))
        .ok_or_else(|| Error::NotFound(format!("no grant {grant_id} of this user")))?;
    let client = client::Entity::find_by_id(grant.client_id).one(db).await?;
    let txn = crate::db::begin_write(db).await?;
    let ended = end(&txn, &grant, actor, ip).await?;
    txn.commit().await?;
    Ok(Revoked { ended, client })
}

/// What revoking one approval of a user did, whatever its stage.
#[derive(Debug, Clone)]
pub struct ApprovalRevoked {
    pub outcome: device_authorizations::Revoked,
    /// The client the approval was given to, to say what was revoked (`None` once deleted).
    pub client: Option<client::Model>,
}

/// Revokes one approval of a user on the word of `actor`, by the id the account page shows:
/// a device authorization's id (which is also the id of the grant its redemption makes) or a
/// grant's. A device authorization of the user goes through [`device_authorizations::revoke`]
/// at whatever stage it is now: approved and not yet redeemed, it becomes denied and the device
/// gets `access_denied`; redeemed meanwhile, its grant's tokens end. Any other id is revoked as
/// a grant ([`revoke`]). Either way the remembered consent is forgotten.
///
/// # Errors
/// `NotFound` unless the approval is the user's, in this workspace (the same for one that does
/// not exist and one of someone else).
pub async fn revoke_approval(
    core: &Core,
    actor: &Actor,
    workspace_id: Uuid,
    user_id: Uuid,
    id: Uuid,
    ip: Option<String>,
) -> Result<ApprovalRevoked, Error> {
    let device = device_grant::Entity::find_by_id(id)
        .filter(device_grant::Column::WorkspaceId.eq(workspace_id))
        .filter(device_grant::Column::UserId.eq(user_id))
        .one(&core.db)
        .await?;
    let Some(device) = device else {
        let revoked = revoke(&core.db, actor, workspace_id, user_id, id, ip).await?;
        return Ok(ApprovalRevoked {
            outcome: if revoked.ended {
                device_authorizations::Revoked::TokensEnded
            } else {
                device_authorizations::Revoked::AlreadyEnded
            },
            client: revoked.client,
        });
    };
    let outcome = device_authorizations::revoke(core, actor, workspace_id, id, ip).await?;
    let client = client::Entity::find_by_id(device.client_id)
        .one(&core.db)
        .await?;
    Ok(ApprovalRevoked { outcome, client })
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
