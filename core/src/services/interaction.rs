//! The person's part of every grant that needs one, written once: who asks and for what, who
//! may use the client, whether remembered consent stands in for asking, and the decision
//! recorded as one unit of work. The device grant provides its request today (through
//! `/activate`); the authorization code flow provides another kind of [`Requested`] and reuses
//! every step.

use std::sync::Arc;

use crate::Core;
use crate::entities::{device_grant, user};
use crate::error::Error;
use crate::metrics::GrantEvent;
use crate::records::{Client, Workspace};
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

/// The person deciding: signed in to the request's workspace at `auth_time`, from `ip`.
#[derive(Debug, Clone, Copy)]
pub struct Approver<'a> {
    pub user: &'a user::Model,
    pub auth_time: i64,
    pub ip: Option<&'a str>,
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
    /// The request was decided elsewhere or expired meanwhile: nothing was recorded.
    NoLongerPending,
}

/// Who may use a client: every enabled user of its workspace. This is the one place that
/// decides it, for every grant.
///
/// `access = assigned` and `proximity = require` are refused when set, but a client stored
/// before may hold them: nobody can be assigned yet and networks are not compared for
/// approval yet, so nobody may use such a client (it fails closed, not open).
#[must_use]
pub fn may_use(request: &AuthorizationRequest, user: &user::Model) -> bool {
    !user.disabled
        && user.workspace_id == request.client.workspace_id
        && request.client.access == Access::Everyone.as_str()
        && request.client.proximity != Proximity::Require.as_str()
}

/// Whether the consent page may be skipped: the request allows it, the workspace skips
/// remembered consent, and the user already granted this client every scope asked for.
///
/// # Errors
/// On a database failure.
pub async fn consent_remembered(
    core: &Core,
    request: &AuthorizationRequest,
    user: &user::Model,
) -> Result<bool, Error> {
    if !request.consent_skippable || !request.workspace.settings.consent_skip {
        return Ok(false);
    }
    consents::covers(&core.db, user.id, request.client.id, &request.scopes).await
}

/// Records the approver's decision: the grant's own change, the remembered consent on
/// approval, and the audit event, in one transaction.
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
