//! The console's device-flow simulator: an admin plays a client's device, through the same
//! functions the device authorization and token endpoints use, to try a workspace end to end.

use uuid::Uuid;

use crate::Core;
use crate::records::{Client, Workspace};
use crate::services::audit::{self, Action, Actor};
use crate::services::device_grants::{self, Origin, Poll, Started, Status};
use crate::services::scopes;

/// Starts a device authorization as `client` (with all its scopes) on an admin's behalf: the
/// console holds the client's authority, so a confidential client needs no secret here. The
/// request's own `device.requested` event names the client; this adds `device.simulated`
/// naming the admin.
///
/// # Errors
/// The refusals of [`device_grants::start`], for the console to word.
pub async fn start(
    core: &Core,
    actor: &Actor,
    workspace: &Workspace,
    client: &Client,
    origin: Origin,
) -> Result<Started, crate::Error> {
    let scopes = scopes::grantable(client, None)?;
    let ip = origin.ip.map(|ip| ip.to_string());
    let started = device_grants::start(core, workspace, client, scopes, origin).await?;
    audit::record(
        &core.db,
        audit::Event {
            actor,
            workspace_id: Some(workspace.id),
            action: Action::DeviceSimulated,
            target: Some(started.grant.id.to_string()),
            detail: serde_json::json!({ "client": client.client_id }),
            ip,
        },
    )
    .await?;
    Ok(started)
}

/// Where a simulated request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The user has not decided yet.
    Pending,
    /// Approved and redeemed just now: tokens were issued (and dropped by the simulator).
    TokensIssued {
        scope: String,
        expires_in: i64,
        id_token: bool,
        refresh_token: bool,
    },
    /// Redeemed earlier (on a previous look at the page).
    Redeemed,
    Denied,
    Expired,
}

/// Looks at a simulated request by id, and once it is approved redeems its device code as
/// the device would, so the page can say that tokens were issued. A pending request is only
/// read (no poll is counted, so reloading the page never earns a `slow_down`).
///
/// # Errors
/// `NotFound` when the request is not this client's in this workspace.
pub async fn progress(
    core: &Core,
    workspace: &Workspace,
    client: &Client,
    grant_id: Uuid,
    device_code: &str,
) -> Result<Progress, crate::Error> {
    let grant = device_grants::find(&core.db, grant_id)
        .await?
        .filter(|g| g.workspace_id == workspace.id && g.client_id == client.id)
        .ok_or_else(|| crate::Error::NotFound(format!("no simulated request {grant_id}")))?;
    let now = crate::now();
    match grant.status {
        Status::Denied => return Ok(Progress::Denied),
        Status::Consumed => return Ok(Progress::Redeemed),
        _ if grant.expires_at <= now => return Ok(Progress::Expired),
        Status::Pending => return Ok(Progress::Pending),
        Status::Approved => {}
    }
    Ok(
        match device_grants::poll(core, workspace, client, device_code).await? {
            Poll::Tokens(issued) => Progress::TokensIssued {
                scope: issued.scope,
                expires_in: issued.expires_in,
                id_token: issued.id_token.is_some(),
                refresh_token: issued.refresh_token.is_some(),
            },
            Poll::Denied => Progress::Denied,
            Poll::Expired => Progress::Expired,
            Poll::Pending | Poll::SlowDown { .. } => Progress::Pending,
            Poll::UnknownCode | Poll::AlreadyRedeemed | Poll::ApproverGone => Progress::Redeemed,
        },
    )
}
