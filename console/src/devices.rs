//! Device authorizations of a workspace: `GET …/devices` (live and past, filterable by client),
//! `GET …/devices/{id}` (the timeline of one request) and `POST …/devices/{id}/revoke`.
//! A request of another workspace is a 404.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vestibule_core::Core;
use vestibule_core::services::clients;
use vestibule_core::services::device_authorizations::{
    self, DeviceAuthorization, Filter, Revoked, State,
};
use vestibule_web::{ClientAddress, CsrfForm};

use crate::audit::timestamp;
use crate::auth::SignedIn;
use crate::error::ConsoleError;
use crate::form::Fields;
use crate::html;
use crate::workspaces::{WorkspaceView, by_slug};

/// Live requests shown at most (they last minutes, so more means something is wrong).
const LIVE_LIMIT: u64 = 100;
const PER_PAGE: u64 = 50;

#[derive(Deserialize)]
pub struct DevicePath {
    slug: String,
    id: Uuid,
}

#[derive(Deserialize)]
pub struct ListQuery {
    /// A client_id to show only that client's requests.
    #[serde(default)]
    client: String,
    page: Option<u64>,
}

/// One request as the pages show it.
#[derive(Serialize)]
struct DeviceView {
    id: Uuid,
    client_id: String,
    client_name: String,
    user_id: Option<Uuid>,
    username: String,
    status: &'static str,
    scopes: String,
    created: String,
    expires: String,
    decided: String,
    redeemed: String,
    revoked: String,
    polls: i64,
    slow_downs: i64,
    interval: i64,
    created_ip: String,
    user_agent: String,
    approved_ip: String,
    revocable: bool,
}

fn when(t: Option<i64>) -> String {
    t.map(timestamp).unwrap_or_default()
}

impl DeviceView {
    fn of(core: &Core, d: &DeviceAuthorization, now: i64) -> Self {
        let device = &d.device;
        let seen = core
            .device_grants
            .stats(&device.device_code_hash)
            .unwrap_or_default();
        Self {
            id: device.id,
            client_id: d
                .client
                .as_ref()
                .map(|c| c.client_id.clone())
                .unwrap_or_default(),
            client_name: d
                .client
                .as_ref()
                .map_or_else(|| "(deleted client)".to_owned(), |c| c.name.clone()),
            user_id: d.user.as_ref().map(|u| u.id),
            username: d
                .user
                .as_ref()
                .map(|u| u.username.clone())
                .unwrap_or_default(),
            status: d.standing(now).as_str(),
            scopes: device.scopes.clone(),
            created: timestamp(device.created_at),
            expires: timestamp(device.expires_at),
            decided: when(device.decided_at),
            redeemed: when(device.consumed_at),
            revoked: when(d.grant.as_ref().and_then(|g| g.revoked_at)),
            // Until redemption these live in this instance's memory only.
            polls: device.poll_count.max(seen.polls),
            slow_downs: device.slow_downs.max(seen.slow_downs),
            interval: device.interval.max(seen.interval),
            created_ip: device.created_ip.clone().unwrap_or_default(),
            user_agent: device.user_agent.clone().unwrap_or_default(),
            approved_ip: device.approved_ip.clone().unwrap_or_default(),
            revocable: d.revocable(now),
        }
    }
}

fn list_path(slug: &str) -> String {
    format!("{}/{slug}/devices", crate::WORKSPACES_PATH)
}

fn device_path(slug: &str, id: Uuid) -> String {
    format!("{}/{id}", list_path(slug))
}

#[derive(Serialize)]
struct ClientOption {
    client_id: String,
    name: String,
}

#[derive(Serialize)]
struct ListPage<'a> {
    ws: WorkspaceView,
    tab: &'static str,
    live: Vec<DeviceView>,
    live_total: u64,
    past: Vec<DeviceView>,
    past_total: u64,
    clients: Vec<ClientOption>,
    client: &'a str,
    page: u64,
    pages: u64,
    prev: Option<String>,
    next: Option<String>,
}

pub async fn list(
    core: web::Data<Core>,
    signed_in: SignedIn,
    slug: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(&core, &slug).await?;
    let all_clients = clients::list(&core.db, ws.id).await?;
    let client_id = match query.client.as_str() {
        "" => None,
        wanted => Some(
            all_clients
                .iter()
                .find(|c| c.client_id == wanted)
                .map(|c| c.id)
                .ok_or(ConsoleError::NotFound)?,
        ),
    };
    let live = device_authorizations::search(
        &core.db,
        ws.id,
        Filter {
            state: Some(State::Live),
            client_id,
        },
        LIVE_LIMIT,
        1,
    )
    .await?;
    let past = device_authorizations::search(
        &core.db,
        ws.id,
        Filter {
            state: Some(State::Past),
            client_id,
        },
        PER_PAGE,
        query.page.unwrap_or(1),
    )
    .await?;
    let now = vestibule_core::now();
    let link = |page: u64| {
        let q = serde_urlencoded::to_string([
            ("client", query.client.as_str()),
            ("page", &page.to_string()),
        ])
        .unwrap_or_default();
        format!("{}?{q}", list_path(&ws.slug))
    };
    html::console_page(
        StatusCode::OK,
        "console/devices.html",
        &signed_in.chrome("workspaces")?,
        &ListPage {
            ws: WorkspaceView::of(&ws),
            tab: "devices",
            live: live
                .items
                .iter()
                .map(|d| DeviceView::of(&core, d, now))
                .collect(),
            live_total: live.total,
            past: past
                .items
                .iter()
                .map(|d| DeviceView::of(&core, d, now))
                .collect(),
            past_total: past.total,
            clients: all_clients
                .iter()
                .map(|c| ClientOption {
                    client_id: c.client_id.clone(),
                    name: c.name.clone(),
                })
                .collect(),
            client: &query.client,
            page: past.number,
            pages: past.pages,
            prev: (past.number > 1).then(|| link(past.number - 1)),
            next: (past.number < past.pages).then(|| link(past.number + 1)),
        },
    )
}

/// One audit event on the timeline.
#[derive(Serialize)]
struct EventView {
    at: String,
    actor: String,
    action: String,
    ip: String,
    detail: String,
}

#[derive(Serialize)]
struct DevicePage {
    ws: WorkspaceView,
    tab: &'static str,
    device: DeviceView,
    events: Vec<EventView>,
}

pub async fn show(
    core: web::Data<Core>,
    signed_in: SignedIn,
    path: web::Path<DevicePath>,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(&core, &path.slug).await?;
    let device = device_authorizations::get_in_workspace(&core.db, ws.id, path.id).await?;
    let events = device_authorizations::events(&core.db, ws.id, path.id).await?;
    html::console_page(
        StatusCode::OK,
        "console/device.html",
        &signed_in.chrome("workspaces")?,
        &DevicePage {
            ws: WorkspaceView::of(&ws),
            tab: "devices",
            device: DeviceView::of(&core, &device, vestibule_core::now()),
            events: events
                .into_iter()
                .map(|e| EventView {
                    at: timestamp(e.at),
                    actor: e.actor,
                    action: e.action,
                    ip: e.ip.unwrap_or_default(),
                    detail: e.detail,
                })
                .collect(),
        },
    )
}

pub async fn revoke(
    address: ClientAddress,
    core: web::Data<Core>,
    signed_in: SignedIn,
    path: web::Path<DevicePath>,
    CsrfForm(_): CsrfForm<Fields>,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(&core, &path.slug).await?;
    let revoked =
        device_authorizations::revoke(&core, &signed_in.actor(), ws.id, path.id, address.text())
            .await?;
    let notice = match revoked {
        Revoked::Denied => "Device authorization revoked: the device will be refused.",
        Revoked::TokensEnded => {
            "Device authorization revoked: every token issued from it stopped working."
        }
        Revoked::AlreadyEnded => "This device authorization had already ended; nothing changed.",
    };
    signed_in.done(notice, &device_path(&ws.slug, path.id))
}
