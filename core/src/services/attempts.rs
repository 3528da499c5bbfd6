//! Attempts that spend a budget, each named for its action: a sign-in (console or `/activate`),
//! a user code typed at `/activate`, a device authorization request. Each owns its keys, its
//! audit event and its metric, so a surface only says who is trying and from where.

use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

use uuid::Uuid;

use crate::entities::{admin, client, user, workspace};
use crate::error::Error;
use crate::metrics::Throttled;
use crate::records::{Client, Workspace};
use crate::services::audit::{self, Action, Actor};
use crate::services::device_grants::{self, Lookup, Poll};
use crate::services::{admins, users};
use crate::throttle::{Limit, Surge, UserCodeGuard};
use crate::{Core, net};

/// Where an unknown client address is counted (every such request shares one budget).
const UNKNOWN_ADDRESS: &str = "unknown";

/// The one place every per-address budget gets its key from the client address: IPv4 per
/// address, IPv6 per network of `security.ipv6_budget_prefix` bits (see [`net::budget_key`]).
fn address_key(core: &Core, address: Option<&str>) -> String {
    match address.map(|a| (a, a.parse::<IpAddr>())) {
        Some((_, Ok(ip))) => ip_key(core, Some(ip)),
        Some((text, Err(_))) => text.to_owned(),
        None => ip_key(core, None),
    }
}

/// [`address_key`] of an address already read.
fn ip_key(core: &Core, address: Option<IpAddr>) -> String {
    address.map_or_else(
        || UNKNOWN_ADDRESS.to_owned(),
        |ip| net::budget_key(ip, core.settings.security.ipv6_budget_prefix),
    )
}

/// The answer to a sign-in attempt.
#[derive(Debug)]
pub enum SignIn<T> {
    /// The credentials match an enabled account; its failures are forgotten.
    Accepted(T),
    /// They do not (or the account is disabled); the failure is counted.
    Rejected,
    /// Too many failures for this account or from this address: the credentials were not
    /// checked. `retry_after` is how long until the budget's window ends.
    Throttled { retry_after: Duration },
}

/// Where a sign-in happens: each surface has budgets of its own.
#[derive(Debug, Clone, Copy)]
enum Surface {
    Console,
    Activate { workspace_id: Uuid },
}

impl Surface {
    fn name(self) -> &'static str {
        match self {
            Self::Console => "console",
            Self::Activate { .. } => "activate",
        }
    }

    fn throttled_action(self) -> Action {
        match self {
            Self::Console => Action::AdminSignInThrottled,
            Self::Activate { .. } => Action::UserSignInThrottled,
        }
    }

    fn workspace_id(self) -> Option<Uuid> {
        match self {
            Self::Console => None,
            Self::Activate { workspace_id } => Some(workspace_id),
        }
    }
}

/// The failure budgets one sign-in spends: its account's and its address's. The keys are the
/// rows' identities, so they keep their shape.
struct SignInBudget {
    surface: Surface,
    /// The account as typed, lower-cased: the audit event's target.
    account: String,
    account_key: String,
    address_key: String,
    address: Option<String>,
}

impl SignInBudget {
    fn new(core: &Core, surface: Surface, account: &str, address: Option<String>) -> Self {
        let account = account.to_lowercase();
        let name = surface.name();
        let account_key = match surface {
            Surface::Console => format!("{name}:account:{account}"),
            Surface::Activate { workspace_id } => {
                format!("{name}:account:{workspace_id}:{account}")
            }
        };
        let address_key = format!("{name}:address:{}", address_key(core, address.as_deref()));
        Self {
            surface,
            account,
            account_key,
            address_key,
            address,
        }
    }

    /// Spends both budgets, then checks the credentials (`authenticate` runs only when
    /// neither budget is over); the audit event is written when a failure uses the last of one.
    /// A success gives the attempt back with [`Self::succeeded`].
    async fn attempt<T>(
        &self,
        core: &Core,
        authenticate: impl Future<Output = Result<Option<T>, Error>>,
    ) -> Result<SignIn<T>, Error> {
        let limit = &core.sign_in_limit;
        let account = limit.spend(&core.db, &self.account_key).await?;
        let address = limit.spend(&core.db, &self.address_key).await?;
        if let Some(retry_after) = account.refused().max(address.refused()) {
            tracing::warn!(address = ?self.address, "/{}: sign-in throttled", self.surface.name());
            core.counters.throttled(Throttled::SignIns);
            return Ok(SignIn::Throttled { retry_after });
        }
        if let Some(account) = authenticate.await? {
            return Ok(SignIn::Accepted(account));
        }
        if account.ran_out() || address.ran_out() {
            audit::record(
                &core.db,
                audit::Event {
                    actor: &Actor::System,
                    workspace_id: self.surface.workspace_id(),
                    action: self.surface.throttled_action(),
                    target: Some(self.account.clone()),
                    detail: serde_json::json!({}),
                    ip: self.address.clone(),
                },
            )
            .await?;
        }
        Ok(SignIn::Rejected)
    }

    /// After a success: the account's failures are forgotten, and the address gets back what
    /// the attempt spent.
    async fn succeeded(&self, db: &impl sea_orm::ConnectionTrait) -> Result<(), Error> {
        Limit::clear(db, &self.account_key).await?;
        Limit::refund(db, &self.address_key).await
    }
}

/// A console sign-in with `email` and `password` from `address`; a success is audited.
///
/// # Errors
/// `Invalid` for an email no admin can have (nothing is looked up or counted); on a database
/// failure.
pub async fn admin_sign_in(
    core: &Core,
    email: &str,
    password: &str,
    address: Option<String>,
) -> Result<SignIn<admin::Model>, Error> {
    let email = crate::types::identifier("email", email)?;
    let budget = SignInBudget::new(core, Surface::Console, email, address);
    let outcome = budget
        .attempt(core, admins::authenticate(&core.db, email, password))
        .await?;
    if let SignIn::Accepted(admin) = &outcome {
        let txn = crate::db::begin_write(&core.db).await?;
        budget.succeeded(&txn).await?;
        audit::record(
            &txn,
            audit::Event {
                actor: &Actor::Admin(admin.email.clone()),
                workspace_id: None,
                action: Action::AdminSignedIn,
                target: Some(admin.email.clone()),
                detail: serde_json::json!({}),
                ip: budget.address.clone(),
            },
        )
        .await?;
        txn.commit().await?;
    }
    Ok(outcome)
}

/// An `/activate` sign-in to `workspace` with `username` and `password` from `address`.
///
/// # Errors
/// `Invalid` for a username no user can have (nothing is looked up or counted); on a database
/// failure.
pub async fn user_sign_in(
    core: &Core,
    workspace: &workspace::Model,
    username: &str,
    password: &str,
    address: Option<String>,
) -> Result<SignIn<user::Model>, Error> {
    let username = crate::types::identifier("username", username)?;
    let surface = Surface::Activate {
        workspace_id: workspace.id,
    };
    let budget = SignInBudget::new(core, surface, username, address);
    let outcome = budget
        .attempt(
            core,
            users::authenticate(&core.db, workspace.id, username, password),
        )
        .await?;
    if let SignIn::Accepted(_) = &outcome {
        budget.succeeded(&core.db).await?;
    }
    Ok(outcome)
}

/// The answer to a user code typed (or linked) at `/activate`.
#[derive(Debug)]
pub enum UserCodeEntry {
    /// What the code names.
    Entered(Lookup),
    /// Too many wrong codes from this address (fewer during a surge): the code was not looked
    /// up.
    Throttled { retry_after: Duration },
}

/// Looks up a user code entered from `address`. Each code spends the address's budget before
/// it is looked up; one that exists is given back. A wrong one counts in the instance's surge
/// watch, whose start is audited once.
///
/// # Errors
/// On a database failure.
pub async fn enter_user_code(
    core: &Core,
    typed: &str,
    address: Option<String>,
) -> Result<UserCodeEntry, Error> {
    let guard = &core.user_code_guard;
    let key = address_key(core, address.as_deref());
    if let Some(retry_after) = guard.spend(&core.db, &key).await? {
        tracing::warn!(address = ?address, "/activate: wrong user codes throttled");
        core.counters.throttled(Throttled::UserCodes);
        return Ok(UserCodeEntry::Throttled { retry_after });
    }
    let lookup = device_grants::find_by_user_code(&core.db, &core.keyring, typed).await?;
    if !matches!(lookup, Lookup::Unknown) {
        UserCodeGuard::refund(&core.db, &key).await?;
    } else if let Surge::Started { failures } = guard.wrong_code() {
        tracing::warn!(
            failures,
            "/activate: surge of wrong user codes; per-address budgets tightened"
        );
        device_grants::user_code_surge(core, failures, address).await?;
    }
    Ok(UserCodeEntry::Entered(lookup))
}

/// Counts a device authorization request of `client` from `address` against
/// `security.device_authorization_limit` (BCP 247 §6.1.11), shared by every instance.
/// `Some(wait)` when it is refused.
///
/// # Errors
/// On a database failure.
pub async fn device_authorization(
    core: &Core,
    client: &client::Model,
    address: Option<IpAddr>,
) -> Result<Option<Duration>, Error> {
    let Some(limit) = &core.device_authorization_limit else {
        return Ok(None);
    };
    let key = format!(
        "device_authorization:{}:{}",
        client.id,
        ip_key(core, address)
    );
    let wait = limit.spend(&core.db, &key).await?.refused();
    if wait.is_some() {
        tracing::warn!(client = %client.client_id, address = ?address, "device authorization requests throttled");
        core.counters.throttled(Throttled::DeviceAuthorizations);
    }
    Ok(wait)
}

/// The answer to a device code polled at the token endpoint.
#[derive(Debug)]
pub enum DeviceCodePoll {
    /// What the code's grant says.
    Answered(Poll),
    /// Too many unknown device codes from this address: refused without reading the code's
    /// grant. `retry_after` is how long until the budget's window ends.
    Throttled { retry_after: Duration },
}

/// A poll of `device_code` by `client` from `address` (RFC 8628 §3.4). A code that matches no
/// grant spends the address's budget of `security.user_code_max_failures` per
/// `security.user_code_failure_window` (RFC 8628 §5.2); codes of grants never do. An address
/// this instance knows to be over it is refused before any code is looked up.
///
/// # Errors
/// On a database failure.
pub async fn poll_device_code(
    core: &Core,
    workspace: &Workspace,
    client: &Client,
    device_code: &str,
    address: Option<&str>,
) -> Result<DeviceCodePoll, Error> {
    let guard = &core.device_code_guard;
    // The address key is only built when it is needed: while nobody is barred, a poll of a
    // real code costs nothing here.
    let barred = guard
        .anyone_barred()
        .then(|| guard.barred_for(&address_key(core, address)))
        .flatten();
    let retry_after = match barred {
        Some(wait) => wait,
        None => {
            let poll = device_grants::poll(core, workspace, client, device_code).await?;
            if !matches!(poll, Poll::UnknownCode) {
                return Ok(DeviceCodePoll::Answered(poll));
            }
            match guard
                .unknown_code(&core.db, &address_key(core, address))
                .await?
            {
                Some(wait) => wait,
                None => return Ok(DeviceCodePoll::Answered(poll)),
            }
        }
    };
    tracing::warn!(client = %client.client_id, address = ?address, "unknown device codes throttled");
    core.counters.throttled(Throttled::DeviceCodes);
    Ok(DeviceCodePoll::Throttled { retry_after })
}

/// How long one audited refusal of a client's device authorizations from one address stands
/// for the others: within it, more refusals from that address are logged, not audited again, so
/// a device (or anyone) knocking from the wrong network cannot flood the audit log.
const NETWORK_REFUSAL_AUDIT_WINDOW: Duration = Duration::from_secs(300);

/// Records that a device authorization request of `client` from `address` was refused because
/// the address is outside the client's trusted networks (BCP 247 §6.1.8): a
/// `device.network_refused` audit event naming the client and the address, once per client,
/// address and [`NETWORK_REFUSAL_AUDIT_WINDOW`] on every instance.
///
/// # Errors
/// On a database failure.
pub(crate) async fn device_network_refused(
    core: &Core,
    workspace_id: Uuid,
    client: &client::Model,
    address: Option<IpAddr>,
) -> Result<(), Error> {
    let key = format!(
        "device_network_refused:{}:{}",
        client.id,
        ip_key(core, address)
    );
    let address = address.map(|ip| ip.to_string());
    tracing::info!(client = %client.client_id, address = ?address, "device authorization refused: not from a trusted network");
    let first = Limit::new(1, NETWORK_REFUSAL_AUDIT_WINDOW)
        .spend(&core.db, &key)
        .await?
        .ran_out();
    if first {
        audit::record(
            &core.db,
            audit::Event {
                actor: &Actor::Client(client.client_id.clone()),
                workspace_id: Some(workspace_id),
                action: Action::DeviceNetworkRefused,
                target: Some(client.client_id.clone()),
                detail: serde_json::json!({
                    "client": client.client_id,
                    "address": address,
                }),
                ip: address.clone(),
            },
        )
        .await?;
    }
    Ok(())
}
