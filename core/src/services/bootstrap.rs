//! First-start state: the `default` workspace and the first admin, so that a fresh install works
//! end to end at once. Idempotent, and safe when several processes start together.

use sea_orm::{DatabaseConnection, EntityTrait as _, PaginatorTrait as _};

use crate::config::BootstrapSettings;
use crate::crypto::{self, Keyring, password};
use crate::entities::workspace;
use crate::error::Error;
use crate::services::audit::Actor;
use crate::services::{admins, workspaces};
use crate::types::{Email, Slug};

/// Email of the admin created when none is configured.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@localhost";

/// What bootstrap created, for the caller to report.
#[derive(Debug, Default)]
pub struct Report {
    pub created_workspace: bool,
    pub created_admin: Option<String>,
    /// Set only when the password was generated: the one time it can be shown.
    pub generated_password: Option<String>,
}

/// # Errors
/// On a database failure, or when the configured bootstrap admin is invalid.
pub async fn ensure(
    db: &DatabaseConnection,
    keyring: &Keyring,
    settings: &BootstrapSettings,
) -> Result<Report, Error> {
    let mut report = Report::default();
    let txn = crate::db::begin_write(db).await?;
    if workspace::Entity::find().count(&txn).await? == 0 {
        match workspaces::insert(
            &txn,
            keyring,
            &Actor::System,
            &Slug::parse(workspaces::DEFAULT_SLUG)?,
            &workspaces::Changes {
                name: Some("Default".into()),
                ..Default::default()
            },
        )
        .await
        {
            Ok(_) => report.created_workspace = true,
            Err(Error::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    txn.commit().await?;

    if admins::count(db).await? > 0 {
        return Ok(report);
    }
    let email = Email::parse(
        settings
            .admin_email
            .as_deref()
            .unwrap_or(DEFAULT_ADMIN_EMAIL),
    )?;
    let (secret, generated) = match &settings.admin_password {
        Some(p) => (p.clone(), false),
        None => (crypto::random_token(), true),
    };
    let hash = password::hash_blocking(secret.clone()).await?;
    let txn = crate::db::begin_write(db).await?;
    match admins::insert(&txn, &Actor::System, &email, hash).await {
        Ok(_) => {
            txn.commit().await?;
            report.created_admin = Some(email.lowercase());
            report.generated_password = generated.then_some(secret);
        }
        // Another process bootstrapped first.
        Err(Error::Conflict { .. }) => {}
        Err(e) => return Err(e),
    }
    Ok(report)
}
