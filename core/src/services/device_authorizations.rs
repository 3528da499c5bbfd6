//! Device authorizations as an admin sees them: live and past requests of a workspace with
//! their client, user and grant, the timeline of one request, and cutting one off.

use sea_orm::{
    ColumnTrait as _, Condition, ConnectionTrait, EntityTrait as _, QueryFilter as _,
    QueryOrder as _,
};
use uuid::Uuid;

use crate::Core;
use crate::entities::{audit_event, client, device_grant, grant, user};
use crate::error::Error;
use crate::services::audit::{self, Action, Actor};
use crate::services::device_grants::Status;
use crate::services::{Page, by_id, consents, device_grants, fetch_page, grants, user_grants};

/// Which requests to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Pending, or approved and not yet redeemed, within the code's lifetime.
    Live,
    /// Denied, redeemed or expired.
    Past,
}

/// What to list; `None` parts match everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter {
    pub state: Option<State>,
    /// `clients.id`.
    pub client_id: Option<Uuid>,
}

/// One request with what the console shows beside it.
#[derive(Debug, Clone)]
pub struct DeviceAuthorization {
    pub device: device_grant::Model,
    pub client: Option<client::Model>,
    pub user: Option<user::Model>,
    /// The approval made when the device code was redeemed (same id).
    pub grant: Option<grant::Model>,
}

/// Where a request stands for the people watching it: its stored status, read with its expiry
/// and whether its approval was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Pending,
    Approved,
    Expired,
    Denied,
    Redeemed,
    Revoked,
}

impl Standing {
    /// The word the console shows (and filters on).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Expired => "expired",
            Self::Denied => "denied",
            Self::Redeemed => "redeemed",
            Self::Revoked => "revoked",
        }
    }
}

impl DeviceAuthorization {
    /// Where the request stands at `now`.
    #[must_use]
    pub fn standing(&self, now: i64) -> Standing {
        match self.device.status {
            Status::Pending | Status::Approved if self.device.expires_at <= now => {
                Standing::Expired
            }
            Status::Pending => Standing::Pending,
            Status::Approved => Standing::Approved,
            Status::Denied => Standing::Denied,
            Status::Consumed if self.grant.as_ref().is_some_and(|g| g.revoked_at.is_some()) => {
                Standing::Revoked
            }
            Status::Consumed => Standing::Redeemed,
        }
    }

    /// Whether revoking would still change something.
    #[must_use]
    pub fn revocable(&self, now: i64) -> bool {
        matches!(
            self.standing(now),
            Standing::Pending | Standing::Approved | Standing::Redeemed
        )
    }
}

fn live_condition(now: i64) -> Condition {
    Condition::all()
        .add(device_grant::Column::Status.is_in([Status::Pending, Status::Approved]))
        .add(device_grant::Column::ExpiresAt.gt(now))
}

/// Requests of a workspace matching `filter`, newest first.
///
/// # Errors
/// On a database failure.
pub async fn search(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    filter: Filter,
    per_page: u64,
    page: u64,
) -> Result<Page<DeviceAuthorization>, Error> {
    let now = crate::now();
    let mut query =
        device_grant::Entity::find().filter(device_grant::Column::WorkspaceId.eq(workspace_id));
    match filter.state {
        Some(State::Live) => query = query.filter(live_condition(now)),
        Some(State::Past) => query = query.filter(live_condition(now).not()),
        None => {}
    }
    if let Some(client_id) = filter.client_id {
        query = query.filter(device_grant::Column::ClientId.eq(client_id));
    }
    let query = query
        .order_by_desc(device_grant::Column::CreatedAt)
        .order_by_desc(device_grant::Column::Id);
    let found = fetch_page(db, query, per_page, page).await?;
    let items = with_parties(db, found.items).await?;
    Ok(Page {
        items,
        number: found.number,
        pages: found.pages,
        total: found.total,
    })
}

/// Joins each request with its client, user and grant: one query per table, not per row.
async fn with_parties(
    db: &impl ConnectionTrait,
    devices: Vec<device_grant::Model>,
) -> Result<Vec<DeviceAuthorization>, Error> {
    let client_ids: Vec<Uuid> = devices.iter().map(|d| d.client_id).collect();
    let user_ids: Vec<Uuid> = devices.iter().filter_map(|d| d.user_id).collect();
    let ids: Vec<Uuid> = devices.iter().map(|d| d.id).collect();
    let clients = by_id::<client::Entity, _>(db, client::Column::Id, client_ids, |c| c.id).await?;
    let users = by_id::<user::Entity, _>(db, user::Column::Id, user_ids, |u| u.id).await?;
    let grants = by_id::<grant::Entity, _>(db, grant::Column::Id, ids, |g| g.id).await?;
    Ok(devices
        .into_iter()
        .map(|device| DeviceAuthorization {
            client: clients.get(&device.client_id).cloned(),
            user: device.user_id.and_then(|id| users.get(&id).cloned()),
            grant: grants.get(&device.id).cloned(),
            device,
        })
        .collect())
}

/// One request of the workspace.
///
/// # Errors
/// `NotFound` when the workspace has no request with this id.
pub async fn get_in_workspace(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<DeviceAuthorization, Error> {
    let device = device_grant::Entity::find_by_id(id)
        .filter(device_grant::Column::WorkspaceId.eq(workspace_id))
        .one(db)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no device authorization {id} here")))?;
    with_parties(db, vec![device])
        .await?
        .pop()
        .ok_or_else(|| Error::internal("a joined row vanished"))
}

/// The audit events about one request (and the grant that shares its id), oldest first.
///
/// # Errors
/// On a database failure.
pub async fn events(
    db: &impl ConnectionTrait,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Vec<audit_event::Model>, Error> {
    Ok(audit_event::Entity::find()
        .filter(audit_event::Column::WorkspaceId.eq(workspace_id))
        .filter(audit_event::Column::Target.eq(id.to_string()))
        .order_by_asc(audit_event::Column::At)
        .order_by_asc(audit_event::Column::Id)
        .all(db)
        .await?)
}

/// What revoking did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// A pending or approved request is now denied: the device gets `access_denied`.
    Denied,
    /// A redeemed request: every token issued from it stopped working.
    TokensEnded,
    /// Denied, expired or revoked already: nothing changed.
    AlreadyEnded,
}

/// Cuts a request off, whatever its stage: a pending or approved one becomes denied (one
/// conditional update, so a redemption racing it either wins before or finds it denied), a
/// redeemed one has its grant revoked. Either way the user's remembered consent for the client
/// is forgotten. One transaction with its audit event.
///
/// # Errors
/// `NotFound` when the workspace has no request with this id.
pub async fn revoke(
    core: &Core,
    actor: &Actor,
    workspace_id: Uuid,
    id: Uuid,
    ip: Option<String>,
) -> Result<Revoked, Error> {
    let before = get_in_workspace(&core.db, workspace_id, id).await?;
    let now = crate::now();
    let mut txn = core.device_grants.begin(&core.db).await?;
    let outcome = if txn.revoke(&before.device, now).await? {
        // An approval not yet redeemed was remembered as consent: forget it with the approval.
        // Read again inside the transaction: it may have been approved since `before`.
        let approver = device_grants::find(txn.txn(), id)
            .await?
            .and_then(|d| d.user_id);
        if let Some(user_id) = approver {
            consents::forget(txn.txn(), user_id, before.device.client_id).await?;
        }
        audit::record(
            txn.txn(),
            audit::Event {
                actor,
                workspace_id: Some(workspace_id),
                action: Action::DeviceRevoked,
                target: Some(id.to_string()),
                detail: serde_json::json!({
                    "was": before.device.status.as_str(),
                    "client": before.device.client_id,
                    "user": before.device.user_id,
                }),
                ip,
            },
        )
        .await?;
        Revoked::Denied
    } else {
        match grants::find(txn.txn(), id).await? {
            Some(g) if g.workspace_id == workspace_id => {
                if user_grants::end(txn.txn(), &g, actor, ip).await? {
                    Revoked::TokensEnded
                } else {
                    Revoked::AlreadyEnded
                }
            }
            _ => Revoked::AlreadyEnded,
        }
    };
    txn.commit().await?;
    if outcome == Revoked::Denied {
        core.counters.grant(crate::metrics::GrantEvent::Revoked);
    }
    Ok(outcome)
}
