//! `GET/POST /console/workspaces` (list, create) and `GET/POST /console/workspaces/{slug}`
//! (device-flow settings, with the user-code guessing odds beside the code settings).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use vestibule_core::Core;
use vestibule_core::entities::workspace;
use vestibule_core::services::entropy;
use vestibule_core::services::workspaces::{self, Changes, Settings};
use vestibule_core::types::Slug;
use vestibule_web::CsrfForm;

use crate::auth::SignedIn;
use crate::error::ConsoleError;
use crate::form::{Errors, Fields, errors_for, validated};
use crate::html;

/// What pages show of a workspace besides its settings.
#[derive(Serialize)]
pub struct WorkspaceView {
    pub slug: String,
    pub name: String,
    pub device_flow_enabled: bool,
    pub user_code: String,
}

impl WorkspaceView {
    #[must_use]
    pub fn of(m: &workspace::Model) -> Self {
        Self {
            slug: m.slug.clone(),
            name: m.name.clone(),
            device_flow_enabled: m.device_flow_enabled,
            user_code: format!("{} × {}", m.user_code_length, m.user_code_charset),
        }
    }
}

#[derive(Serialize)]
struct ListPage<'a> {
    workspaces: Vec<WorkspaceView>,
    slug: &'a str,
    name: &'a str,
    errors: Errors,
}

pub async fn list(
    core: web::Data<Core>,
    signed_in: SignedIn,
) -> Result<HttpResponse, ConsoleError> {
    list_page(&core, &signed_in, StatusCode::OK, "", "", Errors::new()).await
}

async fn list_page(
    core: &Core,
    signed_in: &SignedIn,
    status: StatusCode,
    slug: &str,
    name: &str,
    errors: Errors,
) -> Result<HttpResponse, ConsoleError> {
    let all = workspaces::list(&core.db).await?;
    html::console_page(
        status,
        "console/workspaces.html",
        &signed_in.chrome("workspaces")?,
        &ListPage {
            workspaces: all.iter().map(WorkspaceView::of).collect(),
            slug,
            name,
            errors,
        },
    )
}

pub async fn create(
    core: web::Data<Core>,
    signed_in: SignedIn,
    CsrfForm(fields): CsrfForm<Fields>,
) -> Result<HttpResponse, ConsoleError> {
    let (slug, name) = (fields.text("slug").trim(), fields.text("name").trim());
    let created = match Slug::parse(slug) {
        Ok(slug) => {
            let changes = Changes {
                name: (!name.is_empty()).then(|| name.to_owned()),
                ..Changes::default()
            };
            validated(workspaces::create(&core, &signed_in.actor(), &slug, &changes).await)?
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(ws) => signed_in.done(
            &format!("Workspace {} created.", ws.slug),
            &settings_path(&ws.slug),
        ),
        Err(e) => {
            let errors = errors_for(&e, &["slug", "name"]);
            list_page(
                &core,
                &signed_in,
                StatusCode::BAD_REQUEST,
                slug,
                name,
                errors,
            )
            .await
        }
    }
}

fn settings_path(slug: &str) -> String {
    format!("{}/{slug}", crate::WORKSPACES_PATH)
}

/// The workspace named in the path, or 404.
///
/// # Errors
/// `NotFound` for an unknown slug.
pub async fn by_slug(core: &Core, slug: &str) -> Result<workspace::Model, ConsoleError> {
    workspaces::find(&core.db, slug)
        .await?
        .ok_or(ConsoleError::NotFound)
}

/// The settings form's values, as stored or as typed.
#[derive(Serialize)]
struct SettingsValues {
    name: String,
    device_flow_enabled: bool,
    user_code_length: String,
    user_code_charset: String,
    device_code_ttl: String,
    polling_interval: String,
    consent_skip: bool,
    access_token_ttl: String,
    id_token_ttl: String,
    refresh_token_ttl: String,
    device_grant_max_age: String,
    audience: String,
    dynamic_registration: bool,
    new_device_email: bool,
}

const SETTINGS_FIELDS: [&str; 14] = [
    "name",
    "device_flow_enabled",
    "user_code_length",
    "user_code_charset",
    "device_code_ttl",
    "polling_interval",
    "consent_skip",
    "access_token_ttl",
    "id_token_ttl",
    "refresh_token_ttl",
    "device_grant_max_age",
    "audience",
    "dynamic_registration",
    "new_device_email",
];

impl SettingsValues {
    fn stored(m: &workspace::Model) -> Self {
        Self {
            name: m.name.clone(),
            device_flow_enabled: m.device_flow_enabled,
            user_code_length: m.user_code_length.to_string(),
            user_code_charset: m.user_code_charset.clone(),
            device_code_ttl: m.device_code_ttl.to_string(),
            polling_interval: m.polling_interval.to_string(),
            consent_skip: m.consent_skip,
            access_token_ttl: m.access_token_ttl.to_string(),
            id_token_ttl: m.id_token_ttl.to_string(),
            refresh_token_ttl: m.refresh_token_ttl.to_string(),
            device_grant_max_age: m.device_grant_max_age.to_string(),
            audience: m.audience.clone().unwrap_or_default(),
            dynamic_registration: m.dynamic_registration,
            new_device_email: m.new_device_email,
        }
    }

    fn typed(f: &Fields) -> Self {
        let text = |name: &str| f.text(name).to_owned();
        Self {
            name: text("name"),
            device_flow_enabled: f.checked("device_flow_enabled"),
            user_code_length: text("user_code_length"),
            user_code_charset: text("user_code_charset"),
            device_code_ttl: text("device_code_ttl"),
            polling_interval: text("polling_interval"),
            consent_skip: f.checked("consent_skip"),
            access_token_ttl: text("access_token_ttl"),
            id_token_ttl: text("id_token_ttl"),
            refresh_token_ttl: text("refresh_token_ttl"),
            device_grant_max_age: text("device_grant_max_age"),
            audience: text("audience"),
            dynamic_registration: f.checked("dynamic_registration"),
            new_device_email: f.checked("new_device_email"),
        }
    }
}

/// Every setting of the form; a number that does not parse is the error.
fn changes(f: &Fields) -> Result<Changes, vestibule_core::Error> {
    Ok(Changes {
        name: Some(f.text("name").to_owned()),
        device_flow_enabled: Some(f.checked("device_flow_enabled")),
        user_code_length: Some(f.number("user_code_length")?),
        user_code_charset: Some(f.text("user_code_charset").to_owned()),
        device_code_ttl: Some(f.number("device_code_ttl")?),
        polling_interval: Some(f.number("polling_interval")?),
        consent_skip: Some(f.checked("consent_skip")),
        access_token_ttl: Some(f.number("access_token_ttl")?),
        id_token_ttl: Some(f.number("id_token_ttl")?),
        refresh_token_ttl: Some(f.number("refresh_token_ttl")?),
        device_grant_max_age: Some(f.number("device_grant_max_age")?),
        audience: Some(f.text("audience").to_owned()),
        dynamic_registration: Some(f.checked("dynamic_registration")),
        new_device_email: Some(f.checked("new_device_email")),
    })
}

/// The guessing odds of the stored code settings, worded for the page.
#[derive(Serialize)]
struct Guardrail {
    keyspace: String,
    bits: String,
    attempts: String,
    probability: String,
    one_in: String,
    weak: bool,
    threshold: String,
    max_failures: u32,
    window: u64,
    lifetime: i64,
}

fn guardrail(core: &Core, ws: &workspace::Model) -> Result<Guardrail, ConsoleError> {
    let settings = Settings::from_model(ws)?;
    let security = &core.settings.security;
    let odds = entropy::odds(
        settings.user_code_charset,
        settings.user_code_length,
        settings.device_code_ttl.get(),
        security.user_code_max_failures,
        security.user_code_failure_window,
    );
    Ok(Guardrail {
        keyspace: grouped(odds.keyspace),
        bits: format!("{:.1}", odds.bits),
        attempts: grouped(u128::from(odds.attempts)),
        probability: format!("{:.1e}", odds.probability),
        one_in: one_in(odds.probability),
        weak: odds.is_weak(),
        threshold: format!("{:.0e}", entropy::WEAK_ABOVE),
        max_failures: security.user_code_max_failures,
        window: security.user_code_failure_window,
        lifetime: settings.device_code_ttl.get(),
    })
}

/// `25600000000` → `25,600,000,000`.
fn grouped(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A probability as "1 in N".
fn one_in(p: f64) -> String {
    if p <= 0.0 {
        return "none".to_owned();
    }
    if p >= 1.0 {
        return "certain".to_owned();
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 1/p > 1, finite
    let n = (1.0 / p).round() as u128;
    format!("1 in {}", grouped(n))
}

#[derive(Serialize)]
struct SettingsPage {
    ws: WorkspaceView,
    tab: &'static str,
    values: SettingsValues,
    errors: Errors,
    guardrail: Guardrail,
}

pub async fn show(
    core: web::Data<Core>,
    signed_in: SignedIn,
    slug: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(&core, &slug).await?;
    let values = SettingsValues::stored(&ws);
    settings_page(
        &core,
        &signed_in,
        &ws,
        StatusCode::OK,
        values,
        Errors::new(),
    )
}

fn settings_page(
    core: &Core,
    signed_in: &SignedIn,
    ws: &workspace::Model,
    status: StatusCode,
    values: SettingsValues,
    errors: Errors,
) -> Result<HttpResponse, ConsoleError> {
    html::console_page(
        status,
        "console/workspace.html",
        &signed_in.chrome("workspaces")?,
        &SettingsPage {
            ws: WorkspaceView::of(ws),
            tab: "settings",
            values,
            errors,
            guardrail: guardrail(core, ws)?,
        },
    )
}

pub async fn update(
    core: web::Data<Core>,
    signed_in: SignedIn,
    slug: web::Path<String>,
    CsrfForm(fields): CsrfForm<Fields>,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(&core, &slug).await?;
    let updated = match changes(&fields) {
        Ok(changes) => {
            validated(workspaces::update(&core, &signed_in.actor(), &ws.slug, &changes).await)?
        }
        Err(e) => Err(e),
    };
    match updated {
        Ok(ws) => signed_in.done("Settings saved.", &settings_path(&ws.slug)),
        Err(e) => settings_page(
            &core,
            &signed_in,
            &ws,
            StatusCode::BAD_REQUEST,
            SettingsValues::typed(&fields),
            errors_for(&e, &SETTINGS_FIELDS),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_grouped() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(25_600_000_000), "25,600,000,000");
        assert_eq!(one_in(2e-5), "1 in 50,000");
        assert_eq!(one_in(1.0), "certain");
    }
}
