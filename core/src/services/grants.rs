//! Grants: one approval and every token issued from it. Revoking a grant ends its refresh
//! tokens at once and its access tokens at their next validation (they carry its id as `gid`).

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _,
    Set,
};
use uuid::Uuid;

use crate::entities::{device_grant, grant, refresh_token};
use crate::error::Error;
use crate::services::audit::{self, Action, Actor};
use crate::services::consents;
use crate::services::workspaces::Settings;

/// Why a grant was revoked (kept on the row and in the audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A refresh token of the family was presented again after it had been rotated away.
    RefreshTokenReused,
    /// The client revoked one of its tokens (RFC 7009).
    RevokedByClient,
    /// An admin ended it in the console.
    RevokedByAdmin,
    /// Its user ended it on their account page.
    RevokedByUser,
    /// An admin disabled its user (SPEC §3: disabling ends every grant of the user).
    UserDisabled,
}

impl Reason {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::RevokedByClient => "revoked_by_client",
            Self::RevokedByAdmin => "revoked_by_admin",
            Self::RevokedByUser => "revoked_by_user",
            Self::UserDisabled => "user_disabled",
        }
    }
}

/// Records the approval behind a redeemed device code. Its id is the device grant's, so a
/// device authorization and the tokens it produced are revoked together. Call in the
/// redemption's transaction.
///
/// # Errors
/// When the insert fails, or the device grant has no approving user.
pub async fn create_for_device(
    db: &impl ConnectionTrait,
    device: &device_grant::Model,
    now: i64,
) -> Result<grant::Model, Error> {
    let user_id = device.user_id.ok_or_else(|| {
        Error::internal(format!("approved device grant {} has no user", device.id))
    })?;
    Ok(grant::ActiveModel {
        id: Set(device.id),
        workspace_id: Set(device.workspace_id),
        client_id: Set(device.client_id),
        user_id: Set(Some(user_id)),
        device_grant_id: Set(Some(device.id)),
        scopes: Set(device.scopes.clone()),
        auth_time: Set(device.auth_time.unwrap_or(now)),
        created_at: Set(device.decided_at.unwrap_or(now)),
        last_refresh_at: Set(None),
        revoked_at: Set(None),
        revoked_reason: Set(None),
    }
    .insert(db)
    .await?)
}

/// # Errors
/// On a database failure.
pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<grant::Model>, Error> {
    Ok(grant::Entity::find_by_id(id).one(db).await?)
}

/// When tokens of the grant stop working whatever their own lifetime: a device authorization
/// lasts `device_grant_max_age` from its approval (BCP 247 §6.1.10). The setting is read now,
/// so shortening it applies to grants already made.
#[must_use]
pub fn ends_at(grant: &grant::Model, settings: &Settings) -> Option<i64> {
    grant
        .device_grant_id
        .map(|_| grant.created_at + settings.device_grant_max_age.get())
}

/// Whether tokens of the grant may still be used at `now`.
#[must_use]
pub fn is_live(grant: &grant::Model, settings: &Settings, now: i64) -> bool {
    grant.revoked_at.is_none() && ends_at(grant, settings).is_none_or(|end| now < end)
}

/// Revokes a grant and every refresh token of its family; its access tokens become inactive
/// because validation checks the grant. The user's remembered consent for the client goes too:
/// a revoked approval must not approve the next request of that client without asking (a
/// phished code typed again). Writes before it reads, so on SQLite a transaction opened just
/// before takes the write lock at once. `false` when it was already revoked.
///
/// # Errors
/// On a database failure.
pub async fn revoke(
    db: &impl ConnectionTrait,
    grant: &grant::Model,
    reason: Reason,
    actor: &Actor,
    ip: Option<String>,
) -> Result<bool, Error> {
    let now = crate::now();
    let changed = grant::Entity::update_many()
        .col_expr(grant::Column::RevokedAt, Expr::value(now))
        .col_expr(grant::Column::RevokedReason, Expr::value(reason.as_str()))
        .filter(grant::Column::Id.eq(grant.id))
        .filter(grant::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected
        == 1;
    let tokens = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::FamilyId.eq(grant.id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected;
    if changed {
        if let Some(user_id) = grant.user_id {
            consents::forget(db, user_id, grant.client_id).await?;
        }
        audit::record(
            db,
            audit::Event {
                actor,
                workspace_id: Some(grant.workspace_id),
                action: Action::GrantRevoked,
                target: Some(grant.id.to_string()),
                detail: serde_json::json!({
                    "reason": reason.as_str(),
                    "client": grant.client_id,
                    "user": grant.user_id,
                    "refresh_tokens_revoked": tokens,
                }),
                ip,
            },
        )
        .await?;
    }
    Ok(changed)
}

/// Revokes every unrevoked grant of a user in the workspace (see [`revoke`]); how many were
/// ended. Call in the unit of work that asks for it.
///
/// # Errors
/// On a database failure.
pub async fn revoke_all_of_user(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    user_id: Uuid,
    reason: Reason,
    actor: &Actor,
    ip: Option<String>,
) -> Result<u64, Error> {
    let unrevoked = grant::Entity::find()
        .filter(grant::Column::WorkspaceId.eq(workspace_id))
        .filter(grant::Column::UserId.eq(user_id))
        .filter(grant::Column::RevokedAt.is_null())
        .all(db)
        .await?;
    let mut ended = 0;
    for g in &unrevoked {
        if revoke(db, g, reason, actor, ip.clone()).await? {
            ended += 1;
        }
    }
    Ok(ended)
}
