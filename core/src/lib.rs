//! Vestibule's domain: configuration, types, entities and services. Knows nothing of HTTP.

pub mod cache;
pub mod config;
pub mod crypto;
pub mod db;
pub mod entities;
pub mod error;
pub mod metrics;
pub mod net;
pub mod oauth;
pub mod records;
pub mod services;
pub mod templates;
pub mod throttle;
pub mod types;

use std::sync::Arc;

use sea_orm::DatabaseConnection;

pub use error::{Error, Result};

/// Current time as Unix seconds, the unit of every timestamp in the database.
#[must_use]
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Everything a process needs once configuration is loaded: the database (migrated and
/// bootstrapped) and the keys derived from the master key.
#[derive(Clone)]
pub struct Core {
    pub settings: Arc<config::Settings>,
    pub db: DatabaseConnection,
    pub keyring: Arc<crypto::Keyring>,
    /// Every status change of a device grant, and the polls answered from memory while a
    /// grant is pending (per instance).
    pub device_grants: Arc<services::device_grants::GrantStore>,
    /// Unsealed signing keys, briefly cached.
    pub keys: Arc<services::keys::KeyCache>,
    /// Workspaces and clients, briefly cached for the protocol endpoints.
    pub records: Arc<cache::Records>,
    /// The budget of failed sign-ins (console and `/activate`, keys named per surface) per
    /// account and per client address, shared by every instance.
    pub(crate) sign_in_limit: throttle::Limit,
    /// What happened since start, for `/metrics`.
    pub counters: Arc<metrics::Counters>,
    /// Device authorization requests per client and client address (`None`: no limit).
    pub(crate) device_authorization_limit: Option<throttle::Limit>,
    /// Wrong user codes at `/activate` per client address, and their instance-wide surges.
    pub user_code_guard: Arc<throttle::UserCodeGuard>,
    /// Unknown device codes at the token endpoint per client address.
    pub(crate) device_code_guard: Arc<throttle::DeviceCodeGuard>,
}

/// Sign-in failures (console or `/activate`) allowed per account and per address in
/// [`SIGN_IN_WINDOW`].
pub const SIGN_IN_MAX_FAILURES: u32 = 5;
/// The sliding window of [`SIGN_IN_MAX_FAILURES`].
pub const SIGN_IN_WINDOW: std::time::Duration = std::time::Duration::from_secs(300);

impl Core {
    /// Loads the master key, connects, migrates and ensures the bootstrap state. Every command
    /// (the server too) starts here.
    ///
    /// # Errors
    /// When the master key, the database or the bootstrap fails.
    pub async fn open(settings: config::Settings) -> Result<(Self, services::bootstrap::Report)> {
        let master = crypto::MasterKey::load_or_create(
            settings.security.master_key,
            &settings.server.data_dir,
        )?;
        let keyring = crypto::Keyring::new(&master)?;
        let db = db::connect(&settings.database).await?;
        db::migrate(&db).await?;
        let report = services::bootstrap::ensure(&db, &keyring, &settings.bootstrap).await?;
        let security = &settings.security;
        let device_authorization_limit = (security.device_authorization_limit > 0).then(|| {
            throttle::Limit::new(
                security.device_authorization_limit,
                std::time::Duration::from_secs(security.device_authorization_window),
            )
        });
        let keys = Arc::new(services::keys::KeyCache::new(
            std::time::Duration::from_secs(security.key_cache_ttl),
        ));
        let user_code_guard = Arc::new(throttle::UserCodeGuard::new(
            settings.security.user_code_max_failures,
            std::time::Duration::from_secs(settings.security.user_code_failure_window),
        ));
        // Wrong device codes spend a budget like wrong user codes do, counted apart.
        let device_code_guard = Arc::new(throttle::DeviceCodeGuard::new(
            settings.security.user_code_max_failures,
            std::time::Duration::from_secs(settings.security.user_code_failure_window),
        ));
        Ok((
            Self {
                settings: Arc::new(settings),
                db,
                keyring: Arc::new(keyring),
                device_grants: Arc::default(),
                keys,
                records: Arc::default(),
                sign_in_limit: throttle::Limit::new(SIGN_IN_MAX_FAILURES, SIGN_IN_WINDOW),
                counters: Arc::default(),
                device_authorization_limit,
                user_code_guard,
                device_code_guard,
            },
            report,
        ))
    }
}
