//! The device authorization grant (RFC 8628): starting a request, looking it up by user code,
//! the user's decision, and the device's polls. Every state change is one conditional update,
//! so a device code yields tokens exactly once however many polls race. Every status change
//! goes through the [`GrantStore`], which owns what this instance remembers of polled grants.

mod cursor;
mod memory;
mod store;
#[cfg(test)]
mod test_db;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _, Set};
use uuid::Uuid;

pub use crate::entities::device_grant::Status;
pub use memory::Stats;
pub(crate) use store::GrantTransaction;
pub use store::{FOLLOW_INTERVAL, GrantStore, SLOW_DOWN_STEP};
use store::{Sighting, Verdict};

use std::net::IpAddr;
use std::sync::Arc;

use crate::Core;
use crate::crypto::{self, Keyring, SecretKind};
use crate::entities::{client, device_grant, workspace};
use crate::error::Error;
use crate::metrics::{GrantEvent, PollAnswer};
use crate::oauth::Refusal;
use crate::records::{Client, Workspace};
use crate::services::audit::{self, Action, Actor};
use crate::services::interaction::{
    Approver, AuthorizationRequest, Decision, DeviceRequest, Requested,
};
use crate::services::tokens::{self, Issued};
use crate::services::{attempts, grants, users};
use crate::types::{Grant, ScopeSet, UserCode};

const DRAW_ATTEMPTS: usize = 16;

/// Where a request came from, for the trusted networks, the consent page and the timeline.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The client address, as rate limits see it (after `server.trusted_proxies`).
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// A started device authorization: the secrets exist only here, the database has their HMACs.
#[derive(Debug)]
pub struct Started {
    pub grant: device_grant::Model,
    pub device_code: String,
    pub user_code: UserCode,
}

/// The verification URI (RFC 8628 §3.2): `/activate`, one for every workspace.
#[must_use]
pub fn verification_uri(public_url: &str) -> String {
    format!("{public_url}/activate")
}

/// `verification_uri_complete`: `/activate` with the code pre-filled, grouped for reading.
#[must_use]
pub fn verification_uri_complete(public_url: &str, user_code: &UserCode) -> String {
    format!(
        "{}?user_code={}",
        verification_uri(public_url),
        user_code.display()
    )
}

/// Where the QR code of `verification_uri_complete` is served (Vestibule's extension of the
/// device authorization response): SVG, or PNG with `&format=png`.
#[must_use]
pub fn verification_uri_complete_qr(public_url: &str, user_code: &UserCode) -> String {
    format!("{public_url}/activate/qr?user_code={}", user_code.display())
}

/// Starts a device authorization for an authenticated client.
///
/// # Errors
/// [`Refusal::DeviceFlowDisabled`] or [`Refusal::GrantNotEnabled`] when the workspace or the
/// client may not use the grant; [`Refusal::DeviceNetworkRefused`] when the request comes from
/// outside the client's trusted networks (audited, see [`attempts::device_network_refused`]);
/// [`Refusal::NoFreeUserCode`] when every code drawn is taken.
pub async fn start(
    core: &Core,
    workspace: &Workspace,
    client: &Client,
    scopes: ScopeSet,
    origin: Origin,
) -> Result<Started, Error> {
    let settings = &workspace.settings;
    if !settings.device_flow_enabled {
        return Err(Refusal::DeviceFlowDisabled.into());
    }
    if !client.grants.contains(Grant::DeviceCode) {
        return Err(Refusal::GrantNotEnabled(Grant::DeviceCode).into());
    }
    if !client.device_networks.allows(origin.ip) {
        attempts::device_network_refused(core, workspace.id, client, origin.ip).await?;
        return Err(Refusal::DeviceNetworkRefused.into());
    }
    let keyring = &core.keyring;
    let device_code = crypto::random_token();
    let now = crate::now();
    for _ in 0..DRAW_ATTEMPTS {
        let user_code = UserCode::generate(settings.user_code_charset, settings.user_code_length);
        let code_hash = keyring.hash_secret(SecretKind::UserCode, user_code.as_str());
        // One unit of work: the code's check (and release), the grant and its audit event are
        // committed together or not at all.
        let mut txn = core.device_grants.begin(&core.db).await?;
        if !free_user_code(txn.txn(), &code_hash, now).await? {
            continue;
        }
        let grant = device_grant::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(workspace.id),
            client_id: Set(client.id),
            device_code_hash: Set(keyring.hash_secret(SecretKind::DeviceCode, &device_code)),
            user_code_hash: Set(Some(code_hash)),
            scopes: Set(scopes.to_string()),
            status: Set(Status::Pending),
            interval: Set(settings.polling_interval.get()),
            created_at: Set(now),
            expires_at: Set(now + settings.device_code_ttl.get()),
            user_id: Set(None),
            auth_time: Set(None),
            decided_at: Set(None),
            consumed_at: Set(None),
            created_ip: Set(origin.ip.map(|ip| ip.to_string())),
            user_agent: Set(origin
                .user_agent
                .as_ref()
                .map(|ua| ua.chars().take(512).collect())),
            approved_ip: Set(None),
            poll_count: Set(0),
            slow_downs: Set(0),
        };
        let grant = match txn.insert(grant).await {
            Ok(grant) => grant,
            // Another request drew the same code at the same moment: draw again (in a new
            // transaction; this one is dropped, which rolls it back).
            Err(e)
                if matches!(
                    e.sql_err(),
                    Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        audit::record(
            txn.txn(),
            audit::Event {
                actor: &Actor::Client(client.client_id.clone()),
                workspace_id: Some(workspace.id),
                action: Action::DeviceRequested,
                target: Some(grant.id.to_string()),
                detail: serde_json::json!({ "scopes": grant.scopes, "user_agent": grant.user_agent }),
                ip: grant.created_ip.clone(),
            },
        )
        .await?;
        txn.commit().await?;
        core.counters.grant(GrantEvent::Requested);
        return Ok(Started {
            grant,
            device_code,
            user_code,
        });
    }
    tracing::error!(workspace = %workspace.slug, "no free user code after {DRAW_ATTEMPTS} draws");
    Err(Refusal::NoFreeUserCode.into())
}

/// Whether a user code hash may be drawn: no grant holds it, or the one that does is past
/// its guard and lets go of it. A code is never issued again while a grant that had it is
/// younger than max(its own lifetime, its workspace's device code lifetime now) (BCP 247
/// §6.1.2–4): someone who enters an old code is told it was used, denied or expired, and is
/// never led to another device's request; raising the lifetime lengthens the guard of codes
/// already issued, lowering it never shortens it below their own lifetime.
pub(crate) async fn free_user_code(
    db: &impl ConnectionTrait,
    code_hash: &str,
    now: i64,
) -> Result<bool, Error> {
    let Some(holder) = device_grant::Entity::find()
        .filter(device_grant::Column::UserCodeHash.eq(code_hash))
        .one(db)
        .await?
    else {
        return Ok(true);
    };
    // Only a holder past its own lifetime needs its workspace read (the rare path).
    if holder.expires_at > now {
        return Ok(false);
    }
    let workspace_lifetime = workspace::Entity::find_by_id(holder.workspace_id)
        .one(db)
        .await?
        .map_or(0, |w| w.device_code_ttl);
    let guard = (holder.expires_at - holder.created_at).max(workspace_lifetime);
    if now - holder.created_at < guard {
        return Ok(false);
    }
    let released = device_grant::Entity::update_many()
        .col_expr(
            device_grant::Column::UserCodeHash,
            Expr::value(Option::<String>::None),
        )
        .filter(device_grant::Column::Id.eq(holder.id))
        .filter(device_grant::Column::UserCodeHash.eq(code_hash))
        .exec(db)
        .await?;
    Ok(released.rows_affected == 1)
}

/// What a user code leads to.
#[derive(Debug)]
pub enum Lookup {
    /// No grant has this code (or it could never be a code).
    Unknown,
    /// Still pending, but past its lifetime.
    Expired,
    /// Approved or redeemed: a code works once.
    AlreadyUsed,
    /// The person it was shown to denied it.
    Denied,
    Pending(Box<PendingGrant>),
}

/// A pending grant with its client and workspace.
#[derive(Debug, Clone)]
pub struct PendingGrant {
    pub grant: device_grant::Model,
    pub client: Arc<Client>,
    pub workspace: Arc<Workspace>,
    pub user_code: UserCode,
}

impl PendingGrant {
    /// The request a person approves or denies. A code that arrived through a link or QR code
    /// (`verification_uri_complete`) always gets the consent page (RFC 8628 §5.4).
    #[must_use]
    pub fn into_request(self, arrived_by_link: bool) -> AuthorizationRequest {
        AuthorizationRequest {
            scopes: ScopeSet::from_stored(&self.grant.scopes),
            workspace: self.workspace,
            client: self.client,
            consent_skippable: !arrived_by_link,
            requested: Requested::Device(DeviceRequest {
                grant: self.grant,
                user_code: self.user_code,
            }),
        }
    }
}

/// Looks a typed user code up across all workspaces (user codes are unique among live grants).
///
/// # Errors
/// On a database failure.
pub async fn find_by_user_code(
    db: &impl ConnectionTrait,
    keyring: &Keyring,
    typed: &str,
) -> Result<Lookup, Error> {
    let Some(code) = UserCode::normalize(typed) else {
        return Ok(Lookup::Unknown);
    };
    let hash = keyring.hash_secret(SecretKind::UserCode, code.as_str());
    let Some(grant) = device_grant::Entity::find()
        .filter(device_grant::Column::UserCodeHash.eq(hash))
        .one(db)
        .await?
    else {
        return Ok(Lookup::Unknown);
    };
    match grant.status {
        Status::Pending if grant.expires_at > crate::now() => {}
        Status::Pending => return Ok(Lookup::Expired),
        Status::Denied => return Ok(Lookup::Denied),
        Status::Approved | Status::Consumed => return Ok(Lookup::AlreadyUsed),
    }
    let client = client::Entity::find_by_id(grant.client_id).one(db).await?;
    let workspace = workspace::Entity::find_by_id(grant.workspace_id)
        .one(db)
        .await?;
    match (client, workspace) {
        (Some(client), Some(workspace)) => Ok(Lookup::Pending(Box::new(PendingGrant {
            grant,
            client: Arc::new(Client::parse(client)),
            workspace: Arc::new(Workspace::parse(workspace)?),
            user_code: code,
        }))),
        _ => Ok(Lookup::Unknown),
    }
}

/// Records the start of a surge of wrong user codes across the instance (RFC 8628 §5.1): the
/// alarm an admin finds in the audit log, with the per-address budget now in force.
///
/// # Errors
/// On a database failure.
pub async fn user_code_surge(
    core: &Core,
    failures: usize,
    ip: Option<String>,
) -> Result<(), Error> {
    let (budget, tightened) = core.user_code_guard.budgets();
    audit::record(
        &core.db,
        audit::Event {
            actor: &Actor::System,
            workspace_id: None,
            action: Action::ActivateUserCodeSurge,
            target: None,
            detail: serde_json::json!({
                "failures": failures,
                "window_seconds": core.settings.security.user_code_failure_window,
                "budget_per_address": budget,
                "tightened_to": tightened,
            }),
            ip,
        },
    )
    .await
}

/// # Errors
/// On a database failure.
pub async fn find(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> Result<Option<device_grant::Model>, Error> {
    Ok(device_grant::Entity::find_by_id(id).one(db).await?)
}

/// The device grant's step of an approval or a denial ([`interaction::decide`] makes it one
/// unit of work with the consent): the conditional status change and its audit event. `false`
/// when the grant is no longer pending in the approver's workspace (nothing was changed).
///
/// # Errors
/// On a database failure.
pub(crate) async fn record_decision(
    txn: &mut GrantTransaction<'_>,
    grant: &device_grant::Model,
    approver: Approver<'_>,
    decision: Decision,
) -> Result<bool, Error> {
    let (status, action) = match decision {
        Decision::Approve => (Status::Approved, Action::DeviceApproved),
        Decision::Deny => (Status::Denied, Action::DeviceDenied),
    };
    let verdict = Verdict {
        status,
        workspace_id: approver.user.workspace_id,
        user_id: approver.user.id,
        auth_time: approver.auth_time,
        ip: approver.ip.map(|ip| ip.to_string()),
    };
    let Some(grant) = txn.decide(grant.id, verdict, crate::now()).await? else {
        return Ok(false);
    };
    audit::record(
        txn.txn(),
        audit::Event {
            actor: &Actor::User(approver.user.id),
            workspace_id: Some(grant.workspace_id),
            action,
            target: Some(grant.id.to_string()),
            detail: serde_json::json!({ "client": grant.client_id, "scopes": grant.scopes }),
            ip: approver.ip.map(|ip| ip.to_string()),
        },
    )
    .await?;
    Ok(true)
}

/// What one poll of the token endpoint comes to (RFC 8628 §3.5); the server words it.
#[derive(Debug)]
pub enum Poll {
    /// Approved: the device code was redeemed just now.
    Tokens(Issued),
    /// `authorization_pending`.
    Pending,
    /// `slow_down`: the device must wait at least `interval` seconds from now on.
    SlowDown {
        interval: i64,
    },
    /// `access_denied`: the user denied the request, or an admin revoked it.
    Denied,
    /// `expired_token`.
    Expired,
    /// No such device code, or another client's or workspace's.
    UnknownCode,
    AlreadyRedeemed,
    /// Approved, but the approving user was deleted or disabled since.
    ApproverGone,
}

impl Poll {
    /// How `/metrics` counts this answer.
    #[must_use]
    pub fn answer(&self) -> PollAnswer {
        match self {
            Self::Tokens(_) => PollAnswer::Tokens,
            Self::Pending => PollAnswer::AuthorizationPending,
            Self::SlowDown { .. } => PollAnswer::SlowDown,
            Self::Denied => PollAnswer::AccessDenied,
            Self::Expired => PollAnswer::ExpiredToken,
            Self::UnknownCode | Self::AlreadyRedeemed | Self::ApproverGone => {
                PollAnswer::InvalidGrant
            }
        }
    }
}

/// One poll of the token endpoint by an authenticated client. A pending poll is answered from
/// this instance's memory when it knows the grant (see [`GrantStore`]), so also while the
/// database is unavailable; else it reads one row; it never writes.
///
/// # Errors
/// On a database failure.
pub async fn poll(
    core: &Core,
    workspace: &Workspace,
    client: &Client,
    device_code: &str,
) -> Result<Poll, Error> {
    let answer = answer_poll(core, workspace, client, device_code).await;
    core.counters
        .poll(answer.as_ref().map_or(PollAnswer::Other, Poll::answer));
    answer
}

async fn answer_poll(
    core: &Core,
    workspace: &Workspace,
    client: &Client,
    device_code: &str,
) -> Result<Poll, Error> {
    let hash = core
        .keyring
        .hash_secret(SecretKind::DeviceCode, device_code);
    let now = crate::now();
    Ok(
        match core
            .device_grants
            .poll(&core.db, &hash, workspace.id, client.id, now)
            .await?
        {
            Sighting::Unknown => Poll::UnknownCode,
            Sighting::Pending => Poll::Pending,
            Sighting::TooFast {
                grant,
                interval,
                slow_downs,
            } => {
                // A burst of too-fast polls is worth an audit line, not one per poll: the 1st,
                // 10th, 100th… slow_down of a grant (as this instance counts them) are recorded.
                if is_power_of_ten(slow_downs) {
                    let recorded = audit::record(
                        &core.db,
                        audit::Event {
                            actor: &Actor::Client(client.client_id.clone()),
                            workspace_id: Some(workspace.id),
                            action: Action::DeviceSlowDown,
                            target: Some(grant.to_string()),
                            detail: serde_json::json!({ "slow_downs": slow_downs, "interval": interval }),
                            ip: None,
                        },
                    )
                    .await;
                    // While the database is unavailable the sample is lost, not the answer: a
                    // pending poll needs no database.
                    match recorded {
                        Err(Error::Unavailable(e)) => tracing::warn!(
                            %grant,
                            error = %e,
                            "slow_down not audited: the database is unavailable"
                        ),
                        other => other?,
                    }
                }
                Poll::SlowDown { interval }
            }
            Sighting::Expired => Poll::Expired,
            Sighting::Denied => Poll::Denied,
            Sighting::Consumed => Poll::AlreadyRedeemed,
            Sighting::Approved(grant) => redeem(core, workspace, client, &grant, now).await?,
        },
    )
}

async fn redeem(
    core: &Core,
    workspace: &Workspace,
    client: &Client,
    grant: &device_grant::Model,
    now: i64,
) -> Result<Poll, Error> {
    // Everything that needs its own connection comes before the transaction takes one.
    let key = core
        .keys
        .current(&core.db, &core.keyring, workspace.id)
        .await?;
    let issuer = tokens::issuer(&core.settings.server.public_url, &workspace.slug);
    let mut txn = core.device_grants.begin(&core.db).await?;
    let Some(written) = txn.redeem(grant, now).await? else {
        // Another poll won the race.
        return Ok(Poll::AlreadyRedeemed);
    };
    let user_id = grant
        .user_id
        .ok_or_else(|| Error::internal("approved grant has no user"))?;
    let Some(user) = users::find_by_id(txn.txn(), user_id)
        .await?
        .filter(|u| !u.disabled)
    else {
        return Ok(Poll::ApproverGone);
    };
    // The approval every token from this redemption descends from (revoking it ends them all).
    let approval = grants::create_for_device(txn.txn(), grant, now).await?;
    let issued = tokens::issue_for_user(
        txn.txn(),
        &core.keyring,
        &key,
        &tokens::UserGrant {
            issuer: &issuer,
            settings: &workspace.settings,
            client,
            user: &user,
            grant: &approval,
            scopes: &ScopeSet::from_stored(&approval.scopes),
            replaces: None,
        },
    )
    .await?;
    audit::record(
        txn.txn(),
        audit::Event {
            actor: &Actor::Client(client.client_id.clone()),
            workspace_id: Some(workspace.id),
            action: Action::DeviceRedeemed,
            target: Some(grant.id.to_string()),
            detail: serde_json::json!({ "polls": written.polls, "slow_downs": written.slow_downs, "refresh_token": issued.refresh_token.is_some() }),
            ip: None,
        },
    )
    .await?;
    txn.commit().await?;
    core.counters.grant(GrantEvent::Redeemed);
    Ok(Poll::Tokens(issued))
}

fn is_power_of_ten(mut n: i64) -> bool {
    while n >= 10 && n % 10 == 0 {
        n /= 10;
    }
    n == 1
}

#[cfg(test)]
mod tests {
    use sea_orm::ActiveModelTrait as _;

    use super::test_db::database;
    use super::*;

    const LIFETIME: i64 = 600;

    /// A grant holding `code_hash`, `age` seconds old, asked with a lifetime of `LIFETIME`.
    async fn holder(
        db: &impl ConnectionTrait,
        workspace_id: Uuid,
        code_hash: &str,
        age: i64,
        status: Status,
    ) -> device_grant::Model {
        let created_at = crate::now() - age;
        device_grant::ActiveModel {
            id: Set(Uuid::now_v7()),
            workspace_id: Set(workspace_id),
            client_id: Set(Uuid::now_v7()),
            device_code_hash: Set(Uuid::new_v4().to_string()),
            user_code_hash: Set(Some(code_hash.to_owned())),
            scopes: Set(String::new()),
            status: Set(status),
            interval: Set(5),
            created_at: Set(created_at),
            expires_at: Set(created_at + LIFETIME),
            user_id: Set(None),
            auth_time: Set(None),
            decided_at: Set(None),
            consumed_at: Set(None),
            created_ip: Set(None),
            user_agent: Set(None),
            approved_ip: Set(None),
            poll_count: Set(0),
            slow_downs: Set(0),
        }
        .insert(db)
        .await
        .unwrap()
    }

    /// A workspace whose device code lifetime is now `ttl`.
    async fn workspace_with_lifetime(db: &impl ConnectionTrait, ttl: i64) -> Uuid {
        let id = Uuid::now_v7();
        let slug = format!("w{}", id.simple());
        workspace::ActiveModel {
            id: Set(id),
            slug: Set(slug[..20].to_owned()),
            name: Set("W".into()),
            device_flow_enabled: Set(true),
            user_code_length: Set(8),
            user_code_charset: Set("base20".into()),
            device_code_ttl: Set(ttl),
            polling_interval: Set(5),
            consent_skip: Set(true),
            access_token_ttl: Set(3600),
            id_token_ttl: Set(3600),
            refresh_token_ttl: Set(3600),
            device_grant_max_age: Set(3600),
            audience: Set(None),
            dynamic_registration: Set(false),
            new_device_email: Set(false),
            created_at: Set(0),
            updated_at: Set(0),
        }
        .insert(db)
        .await
        .unwrap();
        id
    }

    async fn still_held(db: &impl ConnectionTrait, grant: &device_grant::Model) -> bool {
        find(db, grant.id)
            .await
            .unwrap()
            .unwrap()
            .user_code_hash
            .is_some()
    }

    #[tokio::test]
    async fn a_code_no_grant_holds_is_free() {
        let test = database().await;
        assert!(
            free_user_code(&test.db, "nobody", crate::now())
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_code_is_not_reissued_while_its_grant_is_younger_than_its_lifetime_whatever_its_status()
     {
        let test = database().await;
        let db = &test.db;
        let ws = workspace_with_lifetime(db, LIFETIME).await;
        let now = crate::now();
        for (i, status) in [
            Status::Pending,
            Status::Approved,
            Status::Denied,
            Status::Consumed,
        ]
        .into_iter()
        .enumerate()
        {
            let hash = format!("young-{i}");
            let grant = holder(db, ws, &hash, LIFETIME - 2, status).await;
            assert!(
                !free_user_code(db, &hash, now).await.unwrap(),
                "a {status:?} grant younger than its lifetime lost its code"
            );
            assert!(still_held(db, &grant).await);
        }
    }

    #[tokio::test]
    async fn raising_the_workspace_lifetime_lengthens_the_guard_of_codes_already_issued() {
        let test = database().await;
        let db = &test.db;
        // Asked with 600 s; the workspace's lifetime is 1800 s now.
        let ws = workspace_with_lifetime(db, 3 * LIFETIME).await;
        let grant = holder(db, ws, "raised", LIFETIME + 60, Status::Denied).await;
        assert!(!free_user_code(db, "raised", crate::now()).await.unwrap());
        assert!(still_held(db, &grant).await);
        // Once older than the raised lifetime too, the code is free again.
        let later = grant.created_at + 3 * LIFETIME;
        assert!(free_user_code(db, "raised", later).await.unwrap());
        assert!(!still_held(db, &grant).await, "the old grant let go of it");
    }

    #[tokio::test]
    async fn lowering_the_workspace_lifetime_never_shortens_the_guard_below_the_grants_own() {
        let test = database().await;
        let db = &test.db;
        let ws = workspace_with_lifetime(db, 60).await;
        let grant = holder(db, ws, "lowered", LIFETIME - 2, Status::Approved).await;
        assert!(!free_user_code(db, "lowered", crate::now()).await.unwrap());
        assert!(still_held(db, &grant).await);
    }

    #[tokio::test]
    async fn a_code_older_than_every_lifetime_is_released_and_drawn_again() {
        let test = database().await;
        let db = &test.db;
        let ws = workspace_with_lifetime(db, LIFETIME).await;
        let grant = holder(db, ws, "old", LIFETIME, Status::Consumed).await;
        assert!(free_user_code(db, "old", crate::now()).await.unwrap());
        assert!(!still_held(db, &grant).await);
        // Of a deleted workspace only the grant's own lifetime counts.
        let orphan = holder(db, Uuid::now_v7(), "orphan", LIFETIME, Status::Denied).await;
        assert!(free_user_code(db, "orphan", crate::now()).await.unwrap());
        assert!(!still_held(db, &orphan).await);
    }

    #[test]
    fn slow_down_bursts_are_sampled_at_powers_of_ten() {
        let sampled: Vec<i64> = (1..=1000).filter(|n| is_power_of_ten(*n)).collect();
        assert_eq!(sampled, [1, 10, 100, 1000]);
    }
}
