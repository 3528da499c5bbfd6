//! The device-flow simulator of a client: `POST …/clients/{client_id}/simulator` starts a
//! device authorization as that client, `GET …/simulator` shows its user code, the
//! `verification_uri_complete` as a link and a QR code, and where it stands (reloading itself
//! every few seconds while it waits, no JavaScript needed). The device code stays in the
//! encrypted session cookie; once the user approves, the page redeems it as the device would.

use actix_web::http::StatusCode;
use actix_web::http::header::USER_AGENT;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use vestibule_core::Core;
use vestibule_core::oauth::Refusal;
use vestibule_core::records::{Client, Workspace};
use vestibule_core::services::clients;
use vestibule_core::services::device_grants::{self, Origin};
use vestibule_core::services::simulator::{self, Progress};
use vestibule_core::types::Grant;
use vestibule_web::qr::Qr;
use vestibule_web::{ClientAddress, CsrfForm};

use crate::auth::SignedIn;
use crate::clients::ClientPath;
use crate::error::ConsoleError;
use crate::form::Fields;
use crate::html;
use crate::session::Simulation;
use crate::workspaces::{WorkspaceView, by_slug};

/// Seconds between the page's reloads while the request waits.
const REFRESH_SECONDS: u32 = 3;

fn simulator_path(slug: &str, client_id: &str) -> String {
    format!(
        "{}/{slug}/clients/{client_id}/simulator",
        crate::WORKSPACES_PATH
    )
}

/// The workspace and client a simulator path names, as the device-grant services read them.
async fn simulated(core: &Core, path: &ClientPath) -> Result<(Workspace, Client), ConsoleError> {
    let ws = by_slug(core, &path.slug).await?;
    let client = clients::get_in_workspace(&core.db, ws.id, &path.client_id).await?;
    Ok((Workspace::parse(ws)?, Client::parse(client)))
}

/// How the page words a refusal to start: the error the device would get, then why.
fn refused(refusal: &Refusal) -> String {
    let code = match refusal {
        Refusal::DeviceFlowDisabled
        | Refusal::GrantNotEnabled(_)
        | Refusal::DeviceNetworkRefused => "unauthorized_client",
        // The simulator asks for the client's own scopes, so anything else is the server's.
        _ => "server_error",
    };
    format!("{code}: {refusal}")
}

/// `uri` as an inline SVG QR code, labelled for screen readers.
fn qr_svg(uri: &str) -> Result<String, ConsoleError> {
    let qr = Qr::new(uri)
        .map_err(|e| vestibule_core::Error::internal_from("cannot encode a QR code", e))?;
    Ok(qr.svg("QR code of the verification link"))
}

/// What the page shows of a running simulation.
#[derive(Serialize)]
struct SimulationView {
    user_code: String,
    verification_uri_complete: String,
    qr_svg: String,
    /// `pending`, `issued`, `denied` or `expired`.
    state: &'static str,
    expires_in: i64,
    issued: Option<IssuedView>,
    grant_id: String,
}

#[derive(Serialize)]
struct IssuedView {
    scope: String,
    expires_in: i64,
    id_token: bool,
    refresh_token: bool,
}

#[derive(Serialize)]
struct SimulatorPage {
    ws: WorkspaceView,
    tab: &'static str,
    client_id: String,
    client_name: String,
    device_code_enabled: bool,
    simulation: Option<SimulationView>,
    refresh_seconds: Option<u32>,
    error: Option<String>,
}

impl SimulatorPage {
    fn new(
        ws: &Workspace,
        client: &Client,
        simulation: Option<SimulationView>,
        error: Option<String>,
    ) -> Self {
        let refresh_seconds = simulation
            .as_ref()
            .filter(|s| s.state == "pending")
            .map(|_| REFRESH_SECONDS);
        Self {
            ws: WorkspaceView::of(ws),
            tab: "clients",
            client_id: client.client_id.clone(),
            client_name: client.name.clone(),
            device_code_enabled: client.grants.contains(Grant::DeviceCode),
            simulation,
            refresh_seconds,
            error,
        }
    }
}

pub async fn show(
    core: web::Data<Core>,
    signed_in: SignedIn,
    path: web::Path<ClientPath>,
) -> Result<HttpResponse, ConsoleError> {
    let (ws, client) = simulated(&core, &path).await?;
    let running = signed_in.session.simulation(&ws.slug, &client.client_id);
    let simulation = match running {
        None => None,
        Some(mut running) => {
            let progress = if running.device_code.is_empty() {
                Progress::Redeemed
            } else {
                simulator::progress(&core, &ws, &client, running.grant_id, &running.device_code)
                    .await?
            };
            let (state, issued) = match progress {
                Progress::Pending => ("pending", None),
                Progress::TokensIssued {
                    scope,
                    expires_in,
                    id_token,
                    refresh_token,
                } => (
                    "issued",
                    Some(IssuedView {
                        scope,
                        expires_in,
                        id_token,
                        refresh_token,
                    }),
                ),
                Progress::Redeemed => ("issued", None),
                Progress::Denied => ("denied", None),
                Progress::Expired => ("expired", None),
            };
            if state != "pending" && !running.device_code.is_empty() {
                // Finished: the device code has nothing left to do.
                running.device_code.clear();
                signed_in.session.set_simulation(&running)?;
            }
            Some(SimulationView {
                qr_svg: qr_svg(&running.verification_uri_complete)?,
                user_code: running.user_code,
                verification_uri_complete: running.verification_uri_complete,
                state,
                expires_in: (running.expires_at - vestibule_core::now()).max(0),
                issued,
                grant_id: running.grant_id.to_string(),
            })
        }
    };
    html::console_page(
        StatusCode::OK,
        "console/simulator.html",
        &signed_in.chrome("workspaces")?,
        &SimulatorPage::new(&ws, &client, simulation, None),
    )
}

pub async fn start(
    req: HttpRequest,
    core: web::Data<Core>,
    signed_in: SignedIn,
    path: web::Path<ClientPath>,
    CsrfForm(_): CsrfForm<Fields>,
) -> Result<HttpResponse, ConsoleError> {
    let (ws, client) = simulated(&core, &path).await?;
    let origin = Origin {
        ip: ClientAddress::of(&req).ip(),
        user_agent: req
            .headers()
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| format!("Vestibule console simulator ({ua})")),
    };
    match simulator::start(&core, &signed_in.actor(), &ws, &client, origin).await {
        Ok(started) => {
            let user_code = started.user_code.display();
            signed_in.session.set_simulation(&Simulation {
                workspace: ws.slug.clone(),
                client_id: client.client_id.clone(),
                grant_id: started.grant.id,
                verification_uri_complete: device_grants::verification_uri_complete(
                    &core.settings.server.public_url,
                    &started.user_code,
                ),
                user_code,
                device_code: started.device_code,
                expires_at: started.grant.expires_at,
            })?;
            signed_in.done(
                "Device authorization started.",
                &simulator_path(&ws.slug, &client.client_id),
            )
        }
        Err(vestibule_core::Error::Refused(refusal)) => html::console_page(
            StatusCode::BAD_REQUEST,
            "console/simulator.html",
            &signed_in.chrome("workspaces")?,
            &SimulatorPage::new(&ws, &client, None, Some(refused(&refusal))),
        ),
        Err(e) => Err(e.into()),
    }
}
