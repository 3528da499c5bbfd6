//! Workspaces: each one an issuer with its own clients, users, keys and device-flow settings.

use sea_orm::{
    ActiveModelTrait as _, ColumnTrait as _, ConnectionTrait, EntityTrait as _,
    IntoActiveModel as _, QueryFilter as _, QueryOrder as _, Set,
};
use uuid::Uuid;

use crate::Core;
use crate::crypto::Keyring;
use crate::entities::workspace;
use crate::error::Error;
use crate::services::audit::{self, Action, Actor};
use crate::services::{clients, keys};
use crate::types::{CodeCharset, CodeLength, DisplayName, Seconds, Slug};

/// The slug of the workspace every fresh install has.
pub const DEFAULT_SLUG: &str = "default";

const DAY: i64 = 86_400;
const YEAR: i64 = 365 * DAY;

/// Every setting of a workspace, valid by construction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub name: DisplayName,
    pub device_flow_enabled: bool,
    pub user_code_length: CodeLength,
    pub user_code_charset: CodeCharset,
    pub device_code_ttl: Seconds,
    pub polling_interval: Seconds,
    pub consent_skip: bool,
    pub access_token_ttl: Seconds,
    pub id_token_ttl: Seconds,
    pub refresh_token_ttl: Seconds,
    pub device_grant_max_age: Seconds,
    /// The `aud` of access tokens; `None` means the client's `client_id`.
    pub audience: Option<String>,
    pub dynamic_registration: bool,
    pub new_device_email: bool,
}

/// Raw setting changes as they come from the CLI or a form; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub name: Option<String>,
    pub device_flow_enabled: Option<bool>,
    pub user_code_length: Option<i64>,
    pub user_code_charset: Option<String>,
    pub device_code_ttl: Option<i64>,
    pub polling_interval: Option<i64>,
    pub consent_skip: Option<bool>,
    pub access_token_ttl: Option<i64>,
    pub id_token_ttl: Option<i64>,
    pub refresh_token_ttl: Option<i64>,
    pub device_grant_max_age: Option<i64>,
    /// `Some("")` clears the audience.
    pub audience: Option<String>,
    pub dynamic_registration: Option<bool>,
    pub new_device_email: Option<bool>,
}

fn device_code_ttl(v: i64) -> Result<Seconds, Error> {
    Seconds::new("device_code_ttl", v, DAY)
}
fn polling_interval(v: i64) -> Result<Seconds, Error> {
    Seconds::new("polling_interval", v, 600)
}
fn access_token_ttl(v: i64) -> Result<Seconds, Error> {
    Seconds::new("access_token_ttl", v, 7 * DAY)
}
fn id_token_ttl(v: i64) -> Result<Seconds, Error> {
    Seconds::new("id_token_ttl", v, 7 * DAY)
}
fn refresh_token_ttl(v: i64) -> Result<Seconds, Error> {
    Seconds::new("refresh_token_ttl", v, 10 * YEAR)
}
fn device_grant_max_age(v: i64) -> Result<Seconds, Error> {
    Seconds::new("device_grant_max_age", v, 10 * YEAR)
}

fn audience(v: &str) -> Result<Option<String>, Error> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if v.len() > 512 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            "audience",
            "audience must be at most 512 characters without spaces",
        ));
    }
    Ok(Some(v.to_owned()))
}

impl Settings {
    /// The defaults of SPEC §3 with the given name.
    #[must_use]
    pub fn defaults(name: DisplayName) -> Self {
        Self {
            name,
            device_flow_enabled: true,
            user_code_length: CodeLength::DEFAULT,
            user_code_charset: CodeCharset::Base20,
            device_code_ttl: Seconds::trusted(600),
            polling_interval: Seconds::trusted(5),
            consent_skip: true,
            access_token_ttl: Seconds::trusted(3600),
            id_token_ttl: Seconds::trusted(3600),
            refresh_token_ttl: Seconds::trusted(30 * DAY),
            device_grant_max_age: Seconds::trusted(90 * DAY),
            audience: None,
            dynamic_registration: false,
            // SPEC §7 says on, but no mail is sent yet: off says what happens.
            new_device_email: false,
        }
    }

    /// Refuses the settings nothing would enforce yet: stored and ignored, they would promise
    /// an endpoint or a mail that never comes.
    ///
    /// # Errors
    /// `Invalid` naming the setting.
    pub fn refuse_unbuilt(&self) -> Result<(), Error> {
        if self.dynamic_registration {
            return Err(clients::unavailable(
                "dynamic_registration",
                "dynamic_registration (RFC 7591 client registration)",
                "leave it off",
            ));
        }
        if self.new_device_email {
            return Err(clients::unavailable(
                "new_device_email",
                "new_device_email (mail on a new device)",
                "leave it off",
            ));
        }
        Ok(())
    }

    /// Applies changes, validating each; the first invalid value is the error.
    ///
    /// # Errors
    /// `Invalid` naming the field.
    pub fn apply(mut self, c: &Changes) -> Result<Self, Error> {
        if let Some(v) = &c.name {
            self.name = DisplayName::parse("name", v)?;
        }
        if let Some(v) = c.device_flow_enabled {
            self.device_flow_enabled = v;
        }
        if let Some(v) = c.user_code_length {
            self.user_code_length = CodeLength::new(v)?;
        }
        if let Some(v) = &c.user_code_charset {
            self.user_code_charset = v.parse()?;
        }
        if let Some(v) = c.device_code_ttl {
            self.device_code_ttl = device_code_ttl(v)?;
        }
        if let Some(v) = c.polling_interval {
            self.polling_interval = polling_interval(v)?;
        }
        if let Some(v) = c.consent_skip {
            self.consent_skip = v;
        }
        if let Some(v) = c.access_token_ttl {
            self.access_token_ttl = access_token_ttl(v)?;
        }
        if let Some(v) = c.id_token_ttl {
            self.id_token_ttl = id_token_ttl(v)?;
        }
        if let Some(v) = c.refresh_token_ttl {
            self.refresh_token_ttl = refresh_token_ttl(v)?;
        }
        if let Some(v) = c.device_grant_max_age {
            self.device_grant_max_age = device_grant_max_age(v)?;
        }
        if let Some(v) = &c.audience {
            self.audience = audience(v)?;
        }
        if let Some(v) = c.dynamic_registration {
            self.dynamic_registration = v;
        }
        if let Some(v) = c.new_device_email {
            self.new_device_email = v;
        }
        Ok(self)
    }

    /// Reads the stored row. Values are validated on the way in, so a failure here means the
    /// row was edited by hand; it is reported rather than guessed around.
    ///
    /// # Errors
    /// `Internal` when a stored value is out of range.
    pub fn from_model(m: &workspace::Model) -> Result<Self, Error> {
        let corrupt = |e: Error| {
            Error::internal_from(format!("workspace {}: stored setting invalid", m.slug), e)
        };
        Ok(Self {
            name: DisplayName::parse("name", &m.name).map_err(corrupt)?,
            device_flow_enabled: m.device_flow_enabled,
            user_code_length: CodeLength::new(m.user_code_length.into()).map_err(corrupt)?,
            user_code_charset: m.user_code_charset.parse().map_err(corrupt)?,
            device_code_ttl: device_code_ttl(m.device_code_ttl).map_err(corrupt)?,
            polling_interval: polling_interval(m.polling_interval).map_err(corrupt)?,
            consent_skip: m.consent_skip,
            access_token_ttl: access_token_ttl(m.access_token_ttl).map_err(corrupt)?,
            id_token_ttl: id_token_ttl(m.id_token_ttl).map_err(corrupt)?,
            refresh_token_ttl: refresh_token_ttl(m.refresh_token_ttl).map_err(corrupt)?,
            device_grant_max_age: device_grant_max_age(m.device_grant_max_age).map_err(corrupt)?,
            audience: m.audience.clone(),
            dynamic_registration: m.dynamic_registration,
            new_device_email: m.new_device_email,
        })
    }

    fn write_to(&self, a: &mut workspace::ActiveModel) {
        a.name = Set(self.name.to_string());
        a.device_flow_enabled = Set(self.device_flow_enabled);
        a.user_code_length = Set(self.user_code_length.get().into());
        a.user_code_charset = Set(self.user_code_charset.as_str().to_owned());
        a.device_code_ttl = Set(self.device_code_ttl.get());
        a.polling_interval = Set(self.polling_interval.get());
        a.consent_skip = Set(self.consent_skip);
        a.access_token_ttl = Set(self.access_token_ttl.get());
        a.id_token_ttl = Set(self.id_token_ttl.get());
        a.refresh_token_ttl = Set(self.refresh_token_ttl.get());
        a.device_grant_max_age = Set(self.device_grant_max_age.get());
        a.audience = Set(self.audience.clone());
        a.dynamic_registration = Set(self.dynamic_registration);
        a.new_device_email = Set(self.new_device_email);
        a.updated_at = Set(crate::now());
    }
}

/// Creates a workspace with its first signing key. `changes` are applied over the defaults; the
/// name defaults to the slug.
///
/// # Errors
/// `Invalid` for a bad setting, `Conflict` when the slug is taken.
pub async fn create(
    core: &Core,
    actor: &Actor,
    slug: &Slug,
    changes: &Changes,
) -> Result<workspace::Model, Error> {
    let txn = crate::db::begin_write(&core.db).await?;
    let model = insert(&txn, &core.keyring, actor, slug, changes).await?;
    txn.commit().await?;
    // Its absence may be cached by the protocol endpoints.
    core.records.forget_workspace(&model.slug);
    Ok(model)
}

/// [`create`] in the caller's transaction (bootstrap runs before a [`Core`] exists).
///
/// # Errors
/// As [`create`].
pub(crate) async fn insert(
    db: &impl ConnectionTrait,
    keyring: &Keyring,
    actor: &Actor,
    slug: &Slug,
    changes: &Changes,
) -> Result<workspace::Model, Error> {
    let settings = Settings::defaults(DisplayName::parse("name", slug.as_str())?).apply(changes)?;
    settings.refuse_unbuilt()?;
    let duplicate = || {
        Error::conflict(
            "slug",
            format!("a workspace with slug {slug} already exists"),
        )
    };
    if find(db, slug.as_str()).await?.is_some() {
        return Err(duplicate());
    }
    let now = crate::now();
    let mut active = workspace::ActiveModel {
        id: Set(Uuid::now_v7()),
        slug: Set(slug.to_string()),
        created_at: Set(now),
        ..Default::default()
    };
    settings.write_to(&mut active);
    let model = active
        .insert(db)
        .await
        .map_err(|e| super::map_unique(e, "slug", duplicate().to_string()))?;
    keys::create(db, keyring, model.id).await?;
    audit::record(
        db,
        audit::Event {
            actor,
            workspace_id: Some(model.id),
            action: Action::WorkspaceCreated,
            target: Some(model.slug.clone()),
            detail: serde_json::json!({ "name": model.name }),
            ip: None,
        },
    )
    .await?;
    Ok(model)
}

/// Changes settings of an existing workspace; nothing is written when a value is invalid.
///
/// # Errors
/// `NotFound` for an unknown slug, `Invalid` for a bad setting.
pub async fn update(
    core: &Core,
    actor: &Actor,
    slug: &str,
    changes: &Changes,
) -> Result<workspace::Model, Error> {
    let txn = crate::db::begin_write(&core.db).await?;
    let current = get(&txn, slug).await?;
    let settings = Settings::from_model(&current)?.apply(changes)?;
    settings.refuse_unbuilt()?;
    let mut active = current.into_active_model();
    settings.write_to(&mut active);
    let model = active.update(&txn).await?;
    audit::record(
        &txn,
        audit::Event {
            actor,
            workspace_id: Some(model.id),
            action: Action::WorkspaceUpdated,
            target: Some(model.slug.clone()),
            detail: settings_json(&model),
            ip: None,
        },
    )
    .await?;
    txn.commit().await?;
    core.records.forget_workspace(&model.slug);
    Ok(model)
}

/// # Errors
/// On a database failure.
pub async fn find(
    db: &impl ConnectionTrait,
    slug: &str,
) -> Result<Option<workspace::Model>, Error> {
    // What cannot be a slug names no workspace; PostgreSQL would refuse some of it (a NUL).
    if Slug::parse(slug).is_err() {
        return Ok(None);
    }
    Ok(workspace::Entity::find()
        .filter(workspace::Column::Slug.eq(slug))
        .one(db)
        .await?)
}

/// # Errors
/// `NotFound` naming the slug.
pub async fn get(db: &impl ConnectionTrait, slug: &str) -> Result<workspace::Model, Error> {
    find(db, slug)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no workspace with slug {slug:?}")))
}

/// # Errors
/// On a database failure.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<workspace::Model>, Error> {
    Ok(workspace::Entity::find()
        .order_by_asc(workspace::Column::Slug)
        .all(db)
        .await?)
}

/// The public view of a workspace's settings (CLI output, audit detail).
#[must_use]
pub fn settings_json(m: &workspace::Model) -> serde_json::Value {
    serde_json::json!({
        "id": m.id,
        "slug": m.slug,
        "name": m.name,
        "device_flow_enabled": m.device_flow_enabled,
        "user_code_length": m.user_code_length,
        "user_code_charset": m.user_code_charset,
        "device_code_ttl": m.device_code_ttl,
        "polling_interval": m.polling_interval,
        "consent_skip": m.consent_skip,
        "access_token_ttl": m.access_token_ttl,
        "id_token_ttl": m.id_token_ttl,
        "refresh_token_ttl": m.refresh_token_ttl,
        "device_grant_max_age": m.device_grant_max_age,
        "audience": m.audience,
        "dynamic_registration": m.dynamic_registration,
        "new_device_email": m.new_device_email,
    })
}
