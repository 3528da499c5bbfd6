//! The audit log: every admin action and grant event, written in the same transaction as the
//! change it describes.

use sea_orm::{ActiveModelTrait as _, ConnectionTrait, Set};
use serde_json::Value;
use uuid::Uuid;

use crate::entities::audit_event;
use crate::error::Error;

/// Who caused an event.
#[derive(Debug, Clone)]
pub enum Actor {
    /// The provisioning command line.
    Cli,
    /// The server itself (bootstrap, background work).
    System,
    Admin(String),
    User(Uuid),
    Client(String),
}

impl Actor {
    fn label(&self) -> String {
        match self {
            Self::Cli => "cli".into(),
            Self::System => "system".into(),
            Self::Admin(email) => format!("admin:{email}"),
            Self::User(id) => format!("user:{id}"),
            Self::Client(id) => format!("client:{id}"),
        }
    }
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub actor: &'a Actor,
    pub workspace_id: Option<Uuid>,
    pub action: &'a str,
    pub target: Option<String>,
    pub detail: Value,
    pub ip: Option<String>,
}

/// # Errors
/// When the insert fails.
pub async fn record(db: &impl ConnectionTrait, event: Event<'_>) -> Result<(), Error> {
    audit_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        at: Set(crate::now()),
        actor: Set(event.actor.label()),
        workspace_id: Set(event.workspace_id),
        action: Set(event.action.to_owned()),
        target: Set(event.target),
        detail: Set(event.detail.to_string()),
        ip: Set(event.ip),
    }
    .insert(db)
    .await?;
    Ok(())
}
