//! `GET /console/workspaces/{slug}/defences`: the workspace's "phishing defences" panel. Each
//! mitigation of BCP 247 §6.1 that the server applies on its own, by its name and section:
//! whether it is in force (and for which clients), and where its setting lives (a field of
//! the workspace's settings, a field of each client, or a key of the server configuration).
//!
//! It reads the stored settings ([`vestibule_core::services::defences`]) and changes nothing.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Serialize;
use vestibule_core::Core;
use vestibule_core::services::defences::{self, Coverage, Defences, DeviceClient};
use vestibule_core::types::Proximity;

use crate::auth::SignedIn;
use crate::error::ConsoleError;
use crate::html;
use crate::workspaces::{WorkspaceView, by_slug};

/// Whether a mitigation is in force, worded for the page; `class` styles it.
#[derive(Serialize)]
struct State {
    label: &'static str,
    class: &'static str,
}

const ALWAYS: State = State {
    label: "In force (always)",
    class: "on",
};
const ON: State = State {
    label: "In force",
    class: "on",
};
const OFF: State = State {
    label: "Off",
    class: "off",
};

impl State {
    fn of(coverage: Coverage) -> Self {
        match coverage {
            Coverage::All => Self {
                label: "In force for every device client",
                class: "on",
            },
            Coverage::Some => Self {
                label: "In force for some clients",
                class: "partial",
            },
            Coverage::None => Self {
                label: "Off for every device client",
                class: "off",
            },
            Coverage::NoClients => Self {
                label: "No client has the device_code grant",
                class: "off",
            },
        }
    }
}

/// A client and its value of a per-client setting, linking to the field on its page.
#[derive(Serialize)]
struct ClientLine {
    name: String,
    client_id: String,
    href: String,
    value: String,
    in_force: bool,
}

/// Where a mitigation is set: a link to a form field, or a configuration key.
#[derive(Serialize)]
struct Setting {
    label: String,
    href: Option<String>,
    /// Configuration keys, e.g. `security.device_authorization_limit`.
    keys: Vec<&'static str>,
}

impl Setting {
    fn link(label: impl Into<String>, href: String) -> Self {
        Self {
            label: label.into(),
            href: Some(href),
            keys: Vec::new(),
        }
    }
}

/// One row of the panel.
#[derive(Serialize)]
struct Mitigation {
    /// `6.1.1`.
    section: &'static str,
    /// The name BCP 247 gives it.
    name: &'static str,
    state: State,
    /// What the server does, with the values in force.
    summary: String,
    /// Further links (e.g. the pages where grants are revoked).
    links: Vec<Setting>,
    /// The clients a per-client mitigation concerns.
    clients: Vec<ClientLine>,
    settings: Vec<Setting>,
}

#[derive(Serialize)]
struct Page {
    ws: WorkspaceView,
    tab: &'static str,
    device_flow_enabled: bool,
    mitigations: Vec<Mitigation>,
}

pub async fn show(
    core: web::Data<Core>,
    signed_in: SignedIn,
    slug: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(&core, &slug).await?;
    let found = defences::of(&core, &ws).await?;
    html::console_page(
        StatusCode::OK,
        "console/defences.html",
        &signed_in.chrome("workspaces")?,
        &Page {
            ws: WorkspaceView::of(&ws),
            tab: "defences",
            device_flow_enabled: found.device_flow_enabled,
            mitigations: mitigations(&ws.slug, &found),
        },
    )
}

/// The rows, in the order of BCP 247 §6.1.
fn mitigations(slug: &str, d: &Defences) -> Vec<Mitigation> {
    let workspace = format!("{}/{slug}", crate::WORKSPACES_PATH);
    let field = |name: &str, label: &str| Setting::link(label, format!("{workspace}#{name}"));
    let ttl = span(d.device_code_ttl);
    vec![
        Mitigation {
            section: "6.1.1",
            name: "Establish Proximity",
            state: State::of(d.proximity()),
            summary: "The network a device asked from is compared with the browser's at \
                      /activate (IPv4 /24, IPv6 /56). warn: the consent page says plainly when \
                      they differ; require: a browser on another network cannot approve; off: \
                      nothing is compared."
                .to_owned(),
            links: Vec::new(),
            clients: per_client(&workspace, d, "proximity", |c| {
                (
                    match &c.proximity {
                        Ok(p) => p.as_str().to_owned(),
                        Err(stored) => format!("unrecognised value {stored:?}"),
                    },
                    c.proximity_in_force(),
                )
            }),
            settings: vec![Setting::link(
                format!(
                    "proximity of each client (default {})",
                    Proximity::default().as_str()
                ),
                format!("{workspace}/clients"),
            )],
        },
        Mitigation {
            section: "6.1.2",
            name: "Short-Lived/Timebound QR or User Codes",
            state: ALWAYS,
            summary: format!(
                "Device codes and user codes (and the QR link that carries one) live {ttl}."
            ),
            links: Vec::new(),
            clients: Vec::new(),
            settings: vec![field("device_code_ttl", "Device code lifetime")],
        },
        Mitigation {
            section: "6.1.3",
            name: "One-Time or Limited Use Codes",
            state: ALWAYS,
            summary: "A user code can be approved or denied once; a device code is redeemed for \
                      tokens once, also when polls race."
                .to_owned(),
            links: Vec::new(),
            clients: Vec::new(),
            settings: Vec::new(),
        },
        Mitigation {
            section: "6.1.4",
            name: "Unique Codes",
            state: ALWAYS,
            summary: format!(
                "A user code is never issued again while a grant that had it is younger than the \
                 device code lifetime ({ttl}); entering a used or denied code says so."
            ),
            links: Vec::new(),
            clients: Vec::new(),
            settings: vec![field("device_code_ttl", "Device code lifetime")],
        },
        Mitigation {
            section: "6.1.6",
            name: "Detect and Remediate",
            state: ALWAYS,
            summary: "Every approval records when and from where the device asked and who \
                      approved from where. Ending an approval ends every token issued from it at \
                      once: the user on their account page, an admin on the Devices page."
                .to_owned(),
            links: vec![
                Setting::link("Users' account page", format!("/w/{slug}/account")),
                Setting::link("Devices", format!("{workspace}/devices")),
            ],
            clients: Vec::new(),
            settings: Vec::new(),
        },
        Mitigation {
            section: "6.1.8",
            name: "Trusted Networks",
            state: State::of(d.trusted_networks()),
            summary: "A client with networks may start device authorizations only from them; \
                      a request from elsewhere is refused. Without networks: from anywhere."
                .to_owned(),
            links: Vec::new(),
            clients: per_client(&workspace, d, "device_networks", |c| {
                if c.device_networks.is_empty() {
                    ("anywhere".to_owned(), false)
                } else {
                    (c.device_networks.join(", "), true)
                }
            }),
            settings: vec![Setting::link(
                "device_networks of each client",
                format!("{workspace}/clients"),
            )],
        },
        Mitigation {
            section: "6.1.10",
            name: "Short-Lived Tokens",
            state: ON,
            summary: format!(
                "The refresh tokens of a device authorization stop working {} after the \
                 approval, whatever their rotation; access tokens live {}.",
                span(d.device_grant_max_age),
                span(d.access_token_ttl)
            ),
            links: Vec::new(),
            clients: Vec::new(),
            settings: vec![
                field("device_grant_max_age", "Device authorization maximum age"),
                field("access_token_ttl", "Access token lifetime"),
            ],
        },
        Mitigation {
            section: "6.1.11",
            name: "Rate Limits",
            state: if d.rate_limit.is_some() { ON } else { OFF },
            summary: d.rate_limit.map_or_else(
                || "Off: security.device_authorization_limit is 0.".to_owned(),
                |limit| {
                    format!(
                        "At most {} device authorization requests per client and client \
                         address per {}; then 429 slow_down with Retry-After.",
                        limit.requests,
                        span(i64::try_from(limit.window).unwrap_or(i64::MAX))
                    )
                },
            ),
            links: Vec::new(),
            clients: Vec::new(),
            settings: vec![Setting {
                label: "Server configuration".to_owned(),
                href: None,
                keys: vec![
                    "security.device_authorization_limit",
                    "security.device_authorization_window",
                ],
            }],
        },
        Mitigation {
            section: "6.1.14",
            name: "User Experience",
            state: ALWAYS,
            summary: format!(
                "The consent page names the client and the workspace, shows the user code to \
                 compare with the device, when and from where the device asked, and warns to \
                 approve only a code on a device the user holds and just started; approve and \
                 deny are equally prominent. A code opened from a link or QR code always shows \
                 it. {}",
                if d.consent_skip {
                    "A typed code skips it when the user already granted the same scopes to the \
                     client."
                } else {
                    "Every code shows it (consent is never skipped)."
                }
            ),
            links: Vec::new(),
            clients: Vec::new(),
            settings: vec![field("consent_skip", "Skip consent")],
        },
    ]
}

/// Each device client's value of `field`, linking to the field on its page.
fn per_client(
    workspace: &str,
    d: &Defences,
    field: &str,
    value: impl Fn(&DeviceClient) -> (String, bool),
) -> Vec<ClientLine> {
    d.device_clients
        .iter()
        .map(|c| {
            let (value, in_force) = value(c);
            ClientLine {
                name: c.name.clone(),
                client_id: c.client_id.clone(),
                href: format!("{workspace}/clients/{}#{field}", c.client_id),
                value,
                in_force,
            }
        })
        .collect()
}

/// `600` → `600 s (10 minutes)`: the stored seconds, and a round unit when there is one.
fn span(seconds: i64) -> String {
    const UNITS: [(i64, &str); 3] = [(86_400, "day"), (3_600, "hour"), (60, "minute")];
    UNITS
        .iter()
        .find(|(unit, _)| seconds >= *unit && seconds % unit == 0)
        .map_or_else(
            || format!("{seconds} s"),
            |(unit, name)| {
                let n = seconds / unit;
                let plural = if n == 1 { "" } else { "s" };
                format!("{seconds} s ({n} {name}{plural})")
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_in_round_units() {
        assert_eq!(span(600), "600 s (10 minutes)");
        assert_eq!(span(7_776_000), "7776000 s (90 days)");
        assert_eq!(span(3_600), "3600 s (1 hour)");
        assert_eq!(span(61), "61 s");
        assert_eq!(span(1), "1 s");
    }
}
