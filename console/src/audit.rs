//! `GET /console/audit`: every admin action and grant event, newest first, filterable by
//! workspace, actor and action, a page at a time.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use vestibule_core::Core;
use vestibule_core::services::audit::{self, Filter};
use vestibule_core::services::workspaces;

use crate::auth::SignedIn;
use crate::error::ConsoleError;
use crate::html;

pub use vestibule_web::html::timestamp;

const PER_PAGE: u64 = 50;

#[derive(Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    workspace: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    page: Option<u64>,
}

#[derive(Serialize)]
struct EventView {
    at: String,
    actor: String,
    workspace: String,
    action: String,
    target: String,
    ip: String,
    detail: String,
}

#[derive(Serialize)]
struct WorkspaceOption {
    slug: String,
}

#[derive(Serialize)]
struct AuditPage<'a> {
    events: Vec<EventView>,
    workspaces: Vec<WorkspaceOption>,
    workspace: &'a str,
    actor: &'a str,
    action: &'a str,
    page: u64,
    pages: u64,
    total: u64,
    prev: Option<String>,
    next: Option<String>,
}

pub async fn list(
    core: web::Data<Core>,
    signed_in: SignedIn,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let all = workspaces::list(&core.db).await?;
    let slugs: HashMap<_, _> = all.iter().map(|w| (w.id, w.slug.clone())).collect();
    let workspace_id = match query.workspace.as_str() {
        "" => None,
        slug => Some(
            all.iter()
                .find(|w| w.slug == slug)
                .map(|w| w.id)
                .ok_or(ConsoleError::NotFound)?,
        ),
    };
    let filter = Filter {
        workspace_id,
        actor: query.actor.clone(),
        action: query.action.clone(),
    };
    let found = audit::search(&core.db, &filter, PER_PAGE, query.page.unwrap_or(1)).await?;
    let link = |page: u64| {
        let q = serde_urlencoded::to_string([
            ("workspace", query.workspace.as_str()),
            ("actor", query.actor.as_str()),
            ("action", query.action.as_str()),
            ("page", &page.to_string()),
        ])
        .unwrap_or_default();
        format!("/console/audit?{q}")
    };
    let events = found
        .items
        .into_iter()
        .map(|e| EventView {
            at: timestamp(e.at),
            actor: e.actor,
            workspace: e
                .workspace_id
                .and_then(|id| slugs.get(&id).cloned())
                .unwrap_or_default(),
            action: e.action,
            target: e.target.unwrap_or_default(),
            ip: e.ip.unwrap_or_default(),
            detail: e.detail,
        })
        .collect();
    html::console_page(
        StatusCode::OK,
        "console/audit.html",
        &signed_in.chrome("audit")?,
        &AuditPage {
            events,
            workspaces: all
                .iter()
                .map(|w| WorkspaceOption {
                    slug: w.slug.clone(),
                })
                .collect(),
            workspace: &query.workspace,
            actor: &query.actor,
            action: &query.action,
            page: found.number,
            pages: found.pages,
            total: found.total,
            prev: (found.number > 1).then(|| link(found.number - 1)),
            next: (found.number < found.pages).then(|| link(found.number + 1)),
        },
    )
}
