//! The cross-device phishing defences of a workspace (BCP 247 §6.1) as they stand, read from
//! the stored settings: what the console's "phishing defences" panel shows. Nothing here
//! enforces anything; the device flow, `/activate` and the token lifecycle do.

use crate::Core;
use crate::entities::{client, workspace};
use crate::error::Error;
use crate::services::clients;
use crate::types::{Grant, GrantSet, Proximity};

/// What a workspace and the server configuration say about each mitigation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defences {
    pub device_flow_enabled: bool,
    /// The clients that may start device authorizations (those with the `device_code`
    /// grant), by name: the per-client mitigations concern only them.
    pub device_clients: Vec<DeviceClient>,
    /// Seconds a device code and its user code live.
    pub device_code_ttl: i64,
    /// Whether a typed code may skip consent the user already gave.
    pub consent_skip: bool,
    /// Seconds the refresh tokens of a device authorization work after its approval.
    pub device_grant_max_age: i64,
    /// Seconds an access token lives.
    pub access_token_ttl: i64,
    /// `None` when `security.device_authorization_limit` is `0` (off).
    pub rate_limit: Option<RateLimit>,
}

/// One client that may start device authorizations, with its per-client defences as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceClient {
    pub client_id: String,
    pub name: String,
    /// The stored `proximity`; `Err` holds a value this version does not know.
    pub proximity: Result<Proximity, String>,
    /// The stored `device_networks`, one CIDR each; empty means anywhere.
    pub device_networks: Vec<String>,
}

impl DeviceClient {
    fn of(m: &client::Model) -> Self {
        Self {
            client_id: m.client_id.clone(),
            name: m.name.clone(),
            proximity: m.proximity.parse().map_err(|_| m.proximity.clone()),
            device_networks: m
                .device_networks
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Proximity is in force when the consent page warns (`warn`) or approval is refused
    /// (`require`) on another network.
    #[must_use]
    pub fn proximity_in_force(&self) -> bool {
        matches!(self.proximity, Ok(Proximity::Warn | Proximity::Require))
    }

    /// Trusted networks are in force when the client names at least one.
    #[must_use]
    pub fn networks_in_force(&self) -> bool {
        !self.device_networks.is_empty()
    }
}

/// `security.device_authorization_limit` requests per `security.device_authorization_window`
/// seconds, per client and client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests: u32,
    pub window: u64,
}

/// How far a per-client mitigation reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// In force for every client that may start device authorizations.
    All,
    /// In force for some of them.
    Some,
    /// In force for none of them.
    None,
    /// No client may start device authorizations.
    NoClients,
}

impl Coverage {
    fn of<'a>(
        clients: impl ExactSizeIterator<Item = &'a DeviceClient>,
        in_force: fn(&DeviceClient) -> bool,
    ) -> Self {
        let total = clients.len();
        let on = clients.filter(|c| in_force(c)).count();
        match (total, on) {
            (0, _) => Self::NoClients,
            (t, o) if o == t => Self::All,
            (_, 0) => Self::None,
            _ => Self::Some,
        }
    }
}

impl Defences {
    #[must_use]
    pub fn proximity(&self) -> Coverage {
        Coverage::of(self.device_clients.iter(), DeviceClient::proximity_in_force)
    }

    #[must_use]
    pub fn trusted_networks(&self) -> Coverage {
        Coverage::of(self.device_clients.iter(), DeviceClient::networks_in_force)
    }
}

/// The defences of `workspace`, with the rate limit of the server's configuration.
///
/// # Errors
/// On a database failure.
pub async fn of(core: &Core, workspace: &workspace::Model) -> Result<Defences, Error> {
    let security = &core.settings.security;
    let device_clients = clients::list(&core.db, workspace.id)
        .await?
        .iter()
        .filter(|c| GrantSet::from_stored(&c.grants).contains(Grant::DeviceCode))
        .map(DeviceClient::of)
        .collect();
    Ok(Defences {
        device_flow_enabled: workspace.device_flow_enabled,
        device_clients,
        device_code_ttl: workspace.device_code_ttl,
        consent_skip: workspace.consent_skip,
        device_grant_max_age: workspace.device_grant_max_age,
        access_token_ttl: workspace.access_token_ttl,
        rate_limit: (security.device_authorization_limit > 0).then_some(RateLimit {
            requests: security.device_authorization_limit,
            window: security.device_authorization_window,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(proximity: &str, networks: &str) -> DeviceClient {
        DeviceClient::of(&client::Model {
            id: uuid::Uuid::nil(),
            workspace_id: uuid::Uuid::nil(),
            client_id: "tv".to_owned(),
            name: "TV".to_owned(),
            secret_hash: None,
            public: true,
            grants: "device_code".to_owned(),
            scopes: String::new(),
            redirect_uris: String::new(),
            dcr_template: false,
            registered_from: None,
            registration_token_hash: None,
            access: "everyone".to_owned(),
            device_networks: networks.to_owned(),
            proximity: proximity.to_owned(),
            after_approval_url: None,
            created_at: 0,
            updated_at: 0,
        })
    }

    #[test]
    fn proximity_is_in_force_when_it_warns_or_requires() {
        assert!(client("warn", "").proximity_in_force());
        assert!(client("require", "").proximity_in_force());
        assert!(!client("off", "").proximity_in_force());
        let odd = client("sometimes", "");
        assert!(!odd.proximity_in_force());
        assert_eq!(odd.proximity, Err("sometimes".to_owned()));
    }

    #[test]
    fn stored_networks_are_read_one_a_line_blank_lines_ignored() {
        let c = client("warn", "10.0.0.0/8\n\n 192.0.2.0/24 \n");
        assert_eq!(c.device_networks, ["10.0.0.0/8", "192.0.2.0/24"]);
        assert!(c.networks_in_force());
        assert!(!client("warn", "").networks_in_force());
    }

    #[test]
    fn coverage_says_all_some_none_or_no_clients() {
        let on = client("require", "10.0.0.0/8");
        let off = client("off", "");
        let cover = |cs: &[DeviceClient]| Coverage::of(cs.iter(), DeviceClient::proximity_in_force);
        assert_eq!(cover(&[]), Coverage::NoClients);
        assert_eq!(cover(&[on.clone(), on.clone()]), Coverage::All);
        assert_eq!(cover(&[on, off.clone()]), Coverage::Some);
        assert_eq!(cover(&[off]), Coverage::None);
    }
}
