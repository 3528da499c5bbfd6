//! The person's part of every grant that needs one, written once: who asks and for what, who
//! may use the client, whether remembered consent stands in for asking, and the decision
//! recorded as one unit of work. The device grant provides its request today (through
//! `/activate`); the authorization code flow provides another kind of [`Requested`] and reuses
//! every step.

use std::net::IpAddr;
use std::sync::Arc;

use crate::Core;
use crate::entities::{device_grant, user};
use crate::error::Error;
use crate::metrics::GrantEvent;
use crate::net::Network;
use crate::records::{Client, Workspace};
use crate::services::audit::{self, Action, Actor};
use crate::services::{consents, device_grants};
use crate::types::{Access, Proximity, ScopeSet, UserCode};

/// What a person is asked to approve, whichever grant asks.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub workspace: Arc<Workspace>,
    pub client: Arc<Client>,
    pub scopes: ScopeSet,
    /// Whether consent given before may stand in for asking again. Never for a device code
    /// that arrived through `verification_uri_complete` (a link or QR code someone else may
    /// have made, RFC 8628 §5.4).
    pub consent_skippable: bool,
    pub requested: Requested,
}

/// The grant behind a request, with what its consent page shows.
#[derive(Debug, Clone)]
pub enum Requested {
    /// A device waiting at the token endpoint (RFC 8628).
    Device(DeviceRequest),
}

/// A pending device authorization: the code the person compares, and when, from where and by
/// what the device asked.
#[derive(Debug, Clone)]
pub struct DeviceRequest {
    pub grant: device_grant::Model,
    pub user_code: UserCode,
}

/// The person deciding: signed in to the request's workspace at `auth_time`, from `ip` (the
/// browser's address after `server.trusted_proxies`).
#[derive(Debug, Clone, Copy)]
pub struct Approver<'a> {
    pub user: &'a user::Model,
    pub auth_time: i64,
    pub ip: Option<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
}

/// What became of a decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    Recorded,
    /// The user may not use this client: nothing was recorded.
    NoAccess,
    /// An approval from a browser that is not on the device's network, for a client with
    /// `proximity = require`: refused and audited, nothing recorded, the device keeps waiting.
    OtherNetwork,
    /// The request was decided elsewhere or expired meanwhile: nothing was recorded.
    NoLongerPending,
}

/// Who may use a client: every enabled user of its workspace. This is the one place that
/// decides it, for every grant.
///
/// `access = assigned` is refused when set, but a client stored before may hold it: nobody can
/// be assigned yet, so nobody may use such a client (it fails closed, not open).
#[must_use]
pub fn may_use(request: &AuthorizationRequest, user: &user::Model) -> bool {
    !user.disabled
        && user.workspace_id == request.client.workspace_id
        && request.client.access == Access::Everyone.as_str()
}

/// How near the approving browser is to the device that asked (BCP 247 §6.1.1), as the
/// client's `proximity` has it compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nearness {
    /// The device's network against the browser's; `None` when nothing is compared
    /// (`proximity = off`, or no device asked).
    pub network: Option<Network>,
    /// Whether an approval from this browser is refused: `proximity = require` and the browser
    /// is not on the device's network (or either address is unknown).
    pub blocks_approval: bool,
}

/// Compares the network the device asked from (stored with its request) with the approving
/// browser's at `browser`, if the client's `proximity` asks for it. The consent page and
/// [`decide`] both read this, so what the page says is what the decision enforces.
#[must_use]
pub fn nearness(request: &AuthorizationRequest, browser: Option<IpAddr>) -> Nearness {
    let proximity = request.client.proximity;
    let network = match (&request.requested, proximity) {
        (_, Proximity::Off) => None,
        (Requested::Device(device), _) => {
            let asked_from = device
                .grant
                .created_ip
                .as_deref()
                .and_then(|ip| ip.trim().parse::<IpAddr>().ok());
            Some(Network::between(asked_from, browser))
        }
    };
    Nearness {
        network,
        blocks_approval: proximity == Proximity::Require && network != Some(Network::Same),
    }
}

/// Whether the consent page may be skipped: the request allows it, the workspace skips
/// remembered consent, the approver's browser may approve it (see [`nearness`]; the page then
/// explains why it cannot), and the user already granted this client every scope asked for.
///
/// # Errors
/// On a database failure.
pub async fn consent_remembered(
    core: &Core,
    request: &AuthorizationRequest,
    approver: Approver<'_>,
) -> Result<bool, Error> {
    if !request.consent_skippable
        || !request.workspace.settings.consent_skip
        || nearness(request, approver.ip).blocks_approval
    {
        return Ok(false);
    }
    let user = approver.user;
    consents::covers(&core.db, user.id, request.client.id, &request.scopes).await
}

/// Records the approver's decision: the grant's own change, the remembered consent on
/// approval, and the audit event, in one transaction. An approval the client's `proximity`
/// refuses (see [`nearness`]) records nothing but its own audit event; a denial is always
/// taken, from anywhere.
///
/// # Errors
/// On a database failure.
pub async fn decide(
    core: &Core,
    request: &AuthorizationRequest,
    approver: Approver<'_>,
    decision: Decision,
) -> Result<Decided, Error> {
    if !may_use(request, approver.user) {
        return Ok(Decided::NoAccess);
    }
    if decision == Decision::Approve {
        let near = nearness(request, approver.ip);
        if near.blocks_approval {
            proximity_refused(core, request, approver, near).await?;
            return Ok(Decided::OtherNetwork);
        }
    }
    match &request.requested {
        Requested::Device(device) => {
            let mut txn = core.device_grants.begin(&core.db).await?;
            if !device_grants::record_decision(&mut txn, &device.grant, approver, decision).await? {
                return Ok(Decided::NoLongerPending);
            }
            if decision == Decision::Approve {
                consents::record(
                    txn.txn(),
                    approver.user.id,
                    request.client.id,
                    &request.scopes,
                )
                .await?;
            }
            txn.commit().await?;
            core.counters.grant(match decision {
                Decision::Approve => GrantEvent::Approved,
                Decision::Deny => GrantEvent::Denied,
            });
        }
    }
    Ok(Decided::Recorded)
}

/// The audit event of an approval refused by `proximity = require`: who tried, from where, and
/// where the device asked from.
async fn proximity_refused(
    core: &Core,
    request: &AuthorizationRequest,
    approver: Approver<'_>,
    near: Nearness,
) -> Result<(), Error> {
    let Requested::Device(device) = &request.requested;
    tracing::info!(client = %request.client.client_id, "approval refused: the browser is not on the device's network");
    audit::record(
        &core.db,
        audit::Event {
            actor: &Actor::User(approver.user.id),
            workspace_id: Some(request.workspace.id),
            action: Action::DeviceProximityRefused,
            target: Some(device.grant.id.to_string()),
            detail: serde_json::json!({
                "client": request.client.client_id,
                "device_ip": device.grant.created_ip,
                "network": near.network.map(Network::as_str),
            }),
            ip: approver.ip.map(|ip| ip.to_string()),
        },
    )
    .await
}
