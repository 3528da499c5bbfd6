//! The audit log: every admin action and grant event, written in the same transaction as the
//! change it describes.

use sea_orm::sea_query::{Expr, ExprTrait as _, Func};
use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, ConnectionTrait, EntityTrait as _, QueryFilter as _,
    QueryOrder as _, Set,
};
use serde_json::Value;
use uuid::Uuid;

use crate::entities::audit_event;
use crate::error::Error;
use crate::services::{Page, contains_pattern, fetch_page};

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

/// What happened, as the audit log names it (`area.event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    AccessTokenRevoked,
    ActivateUserCodeSurge,
    AdminCreated,
    AdminSignInThrottled,
    AdminSignedIn,
    AdminDisabled,
    AdminEnabled,
    ClientCreated,
    ClientDeleted,
    ClientSecretRegenerated,
    ClientUpdated,
    DeviceApproved,
    DeviceDenied,
    DeviceNetworkRefused,
    DeviceProximityRefused,
    DeviceRedeemed,
    DeviceRequested,
    DeviceRevoked,
    DeviceSimulated,
    DeviceSlowDown,
    GrantRevoked,
    KeysRotated,
    RefreshTokenReused,
    RefreshTokenRotated,
    UserCreated,
    UserSignInThrottled,
    UserUpdated,
    UserDisabled,
    UserEnabled,
    UserPasswordSet,
    WorkspaceCreated,
    WorkspaceUpdated,
}

impl Action {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessTokenRevoked => "access_token.revoked",
            Self::ActivateUserCodeSurge => "activate.user_code_surge",
            Self::AdminCreated => "admin.created",
            Self::AdminSignInThrottled => "admin.sign_in_throttled",
            Self::AdminSignedIn => "admin.signed_in",
            Self::AdminDisabled => "admin.disabled",
            Self::AdminEnabled => "admin.enabled",
            Self::ClientCreated => "client.created",
            Self::ClientDeleted => "client.deleted",
            Self::ClientSecretRegenerated => "client.secret_regenerated",
            Self::ClientUpdated => "client.updated",
            Self::DeviceApproved => "device.approved",
            Self::DeviceDenied => "device.denied",
            Self::DeviceNetworkRefused => "device.network_refused",
            Self::DeviceProximityRefused => "device.proximity_refused",
            Self::DeviceRedeemed => "device.redeemed",
            Self::DeviceRequested => "device.requested",
            Self::DeviceRevoked => "device.revoked",
            Self::DeviceSimulated => "device.simulated",
            Self::DeviceSlowDown => "device.slow_down",
            Self::GrantRevoked => "grant.revoked",
            Self::KeysRotated => "keys.rotated",
            Self::RefreshTokenReused => "refresh_token.reused",
            Self::RefreshTokenRotated => "refresh_token.rotated",
            Self::UserCreated => "user.created",
            Self::UserSignInThrottled => "user.sign_in_throttled",
            Self::UserUpdated => "user.updated",
            Self::UserDisabled => "user.disabled",
            Self::UserEnabled => "user.enabled",
            Self::UserPasswordSet => "user.password_set",
            Self::WorkspaceCreated => "workspace.created",
            Self::WorkspaceUpdated => "workspace.updated",
        }
    }
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub actor: &'a Actor,
    pub workspace_id: Option<Uuid>,
    pub action: Action,
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
        action: Set(event.action.as_str().to_owned()),
        target: Set(event.target),
        detail: Set(event.detail.to_string()),
        ip: Set(event.ip),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Which events to list; empty parts match everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Events of this workspace only.
    pub workspace_id: Option<Uuid>,
    /// Actors containing this text (case-insensitive), e.g. `admin:` or an email.
    pub actor: String,
    /// Actions equal to this or starting with it and a dot (`device` matches
    /// `device.requested`).
    pub action: String,
}

/// Events matching `filter`, newest first.
///
/// # Errors
/// On a database failure.
pub async fn search(
    db: &impl ConnectionTrait,
    filter: &Filter,
    per_page: u64,
    page: u64,
) -> Result<Page<audit_event::Model>, Error> {
    let mut query = audit_event::Entity::find();
    if let Some(id) = filter.workspace_id {
        query = query.filter(audit_event::Column::WorkspaceId.eq(id));
    }
    let actor = filter.actor.trim();
    if !actor.is_empty() {
        query = query.filter(
            Func::lower(Expr::col((audit_event::Entity, audit_event::Column::Actor)))
                .like(contains_pattern(actor)),
        );
    }
    // No action holds a control character, and PostgreSQL refuses a NUL in a comparison.
    let action: String = filter.action.chars().filter(|c| !c.is_control()).collect();
    let action = action.trim().trim_end_matches(['.', '*']);
    if !action.is_empty() {
        query = query.filter(
            audit_event::Column::Action
                .eq(action)
                .or(audit_event::Column::Action.starts_with(format!("{action}."))),
        );
    }
    let query = query
        .order_by_desc(audit_event::Column::At)
        .order_by_desc(audit_event::Column::Id);
    fetch_page(db, query, per_page, page).await
}
