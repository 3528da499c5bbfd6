//! Stored rows as the domain reads them: every stored string parsed once, when the row is
//! read, so the hot paths (a poll reads its workspace and client on every request) never
//! parse again. The caches in [`crate::cache`] hold these.

use std::ops::Deref;

use crate::entities::{client, workspace};
use crate::error::Error;
use crate::net::DeviceNetworks;
use crate::services::workspaces::Settings;
use crate::types::{GrantSet, Proximity, ScopeSet};

/// A workspace with its settings parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    row: workspace::Model,
    pub settings: Settings,
}

impl Workspace {
    /// # Errors
    /// `Internal` when a stored setting is out of range (the row was edited by hand).
    pub fn parse(row: workspace::Model) -> Result<Self, Error> {
        let settings = Settings::from_model(&row)?;
        Ok(Self { row, settings })
    }

    #[must_use]
    pub fn row(&self) -> &workspace::Model {
        &self.row
    }
}

/// The row's plain columns (`id`, `slug`, …) read through; its parsed values are fields.
impl Deref for Workspace {
    type Target = workspace::Model;

    fn deref(&self) -> &Self::Target {
        &self.row
    }
}

/// A client with its grants, scopes and phishing defences parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    row: client::Model,
    pub grants: GrantSet,
    pub scopes: ScopeSet,
    /// Where its devices may start device authorizations (BCP 247 §6.1.8).
    pub device_networks: DeviceNetworks,
    /// How the device's network is compared with the approving browser's (§6.1.1).
    pub proximity: Proximity,
}

impl Client {
    #[must_use]
    pub fn parse(row: client::Model) -> Self {
        Self {
            grants: GrantSet::from_stored(&row.grants),
            scopes: ScopeSet::from_stored(&row.scopes),
            device_networks: DeviceNetworks::from_stored(&row.device_networks),
            proximity: Proximity::from_stored(&row.proximity),
            row,
        }
    }

    #[must_use]
    pub fn row(&self) -> &client::Model {
        &self.row
    }
}

/// The row's plain columns (`id`, `client_id`, `public`, …) read through; its parsed values
/// are fields.
impl Deref for Client {
    type Target = client::Model;

    fn deref(&self) -> &Self::Target {
        &self.row
    }
}
