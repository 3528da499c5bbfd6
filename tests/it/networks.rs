//! Cross-device phishing defences that compare networks: trusted networks (BCP 247 §6.1.8, a
//! client's devices may start device authorizations only from listed networks) and proximity
//! (§6.1.1, the approving browser against the device's network). Device and browser sit on
//! different networks behind a trusted proxy on 127.0.0.1 that names them in
//! `X-Forwarded-For`.

use std::time::Duration;

use reqwest::StatusCode;
use sea_orm::{ColumnTrait as _, EntityTrait as _, PaginatorTrait as _, QueryFilter as _};
use serde_json::Value;
use vestibule_core::entities::{audit_event, client, device_grant, user, workspace};
use vestibule_core::services::audit::Actor;
use vestibule_core::services::device_grants::{self, Lookup};
use vestibule_core::services::{clients, workspaces};
use vestibule_core::types::{Access, DisplayName, GrantSet, Proximity, ScopeSet};

use crate::activate::{Browser, PASSWORD, body, see_other};
use crate::console::{Console, data_field, field_error};
use crate::helpers::{Cli, TestApp};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// An app behind a trusted proxy, with a workspace `home` and its user alice.
struct Lab {
    app: TestApp,
    ws: workspace::Model,
    alice: user::Model,
}

async fn lab() -> Lab {
    let app = TestApp::behind_proxy(10).await;
    let ws = app.workspace("home", workspaces::Changes::default()).await;
    let alice = app.user(&ws, "alice", PASSWORD).await;
    Lab { app, ws, alice }
}

impl Lab {
    /// A public device client with these trusted networks and proximity; its client_id.
    async fn client(&self, networks: &[&str], proximity: Proximity) -> String {
        clients::create(
            &self.app.core,
            &Actor::Cli,
            &self.ws,
            clients::NewClient {
                name: DisplayName::parse("name", "Hall TV").unwrap(),
                client_id: None,
                public: true,
                grants: GrantSet::parse(["device_code"]).unwrap(),
                scopes: ScopeSet::parse("openid profile").unwrap(),
                redirect_uris: Vec::new(),
                dcr_template: false,
                access: Access::Everyone,
                device_networks: clients::parse_device_networks(networks.iter().copied()).unwrap(),
                proximity,
                after_approval_url: None,
            },
        )
        .await
        .unwrap()
        .client
        .client_id
    }

    /// A device authorization request of `client_id` from `address`: status and JSON body.
    async fn device_asks(&self, client_id: &str, address: &str) -> (u16, Value) {
        self.post_from(
            address,
            "/w/home/device_authorization",
            &[("client_id", client_id), ("scope", "openid")],
        )
        .await
    }

    /// A device authorization that must succeed: its response.
    async fn started(&self, client_id: &str, address: &str) -> Value {
        let (status, body) = self.device_asks(client_id, address).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The device polls the token endpoint once from `address`.
    async fn poll(&self, client_id: &str, device_code: &str, address: &str) -> (u16, Value) {
        self.post_from(
            address,
            "/w/home/token",
            &[
                ("grant_type", DEVICE_GRANT),
                ("client_id", client_id),
                ("device_code", device_code),
            ],
        )
        .await
    }

    async fn post_from(&self, address: &str, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let res = self
            .app
            .client
            .post(self.app.url(path))
            .header("x-forwarded-for", address)
            .form(form)
            .send()
            .await
            .unwrap();
        (
            res.status().as_u16(),
            res.json().await.unwrap_or(Value::Null),
        )
    }

    /// Audit events of `action`, oldest first.
    async fn audited(&self, action: &str) -> Vec<audit_event::Model> {
        let mut events = audit_event::Entity::find()
            .filter(audit_event::Column::Action.eq(action))
            .all(&self.app.core.db)
            .await
            .unwrap();
        events.sort_by_key(|e| e.id);
        events
    }

    async fn device_grants(&self) -> u64 {
        device_grant::Entity::find()
            .count(&self.app.core.db)
            .await
            .unwrap()
    }

    /// Where the grant whose user code the device shows stands: `pending`, or `decided`.
    async fn status(&self, started: &Value) -> &'static str {
        let code = started["user_code"].as_str().unwrap();
        let core = &self.app.core;
        match device_grants::find_by_user_code(&core.db, &core.keyring, code)
            .await
            .unwrap()
        {
            Lookup::Pending(_) => "pending",
            Lookup::AlreadyUsed | Lookup::Denied => "decided",
            other => panic!("{code}: {other:?}"),
        }
    }
}

/// A browser at `address` that entered the device's code and signed in as alice: the response
/// to the sign-in (the consent page's redirect, or the done page's when consent was skipped).
async fn signed_in_browser(
    lab: &Lab,
    address: &str,
    started: &Value,
) -> (Browser, reqwest::Response) {
    let b = Browser::at(&lab.app, address);
    let code = started["user_code"].as_str().unwrap();
    see_other(&b.enter_code(code).await, "/activate/sign-in");
    let res = b.sign_in("alice", PASSWORD).await;
    (b, res)
}

/// A browser at `address` on the consent page of the device's code: the browser and the page.
async fn at_consent(lab: &Lab, address: &str, started: &Value) -> (Browser, String) {
    let (b, res) = signed_in_browser(lab, address, started).await;
    see_other(&res, "/activate/consent");
    let (status, page) = b.page("/activate/consent").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    (b, page)
}

// ---- trusted networks ----

#[tokio::test]
async fn device_authorization_is_allowed_only_from_the_clients_trusted_networks() {
    let lab = lab().await;
    let client_id = lab
        .client(&["192.0.2.0/24", "2001:db8:1::/48"], Proximity::Warn)
        .await;
    for inside in ["192.0.2.77", "::ffff:192.0.2.8", "2001:db8:1:ff::1"] {
        lab.started(&client_id, inside).await;
    }
    assert_eq!(lab.device_grants().await, 3);

    for outside in ["198.51.100.1", "192.0.3.1", "2001:db8:2::1", "198.51.100.1"] {
        let (status, body) = lab.device_asks(&client_id, outside).await;
        assert_eq!(status, 400, "{outside}: {body}");
        assert_eq!(body["error"], "unauthorized_client", "{outside}");
        assert_eq!(
            body["error_description"],
            "device authorization is not allowed from this network for this client"
        );
    }
    assert_eq!(
        lab.device_grants().await,
        3,
        "refused requests start nothing"
    );

    // One event per client and address however often it knocks (198.51.100.1 asked twice).
    let refused = lab.audited("device.network_refused").await;
    let addresses: Vec<_> = refused.iter().map(|e| e.ip.clone().unwrap()).collect();
    assert_eq!(addresses, ["198.51.100.1", "192.0.3.1", "2001:db8:2::1"]);
    for event in &refused {
        assert_eq!(event.target.as_deref(), Some(client_id.as_str()));
        assert_eq!(event.actor, format!("client:{client_id}"));
        assert_eq!(event.workspace_id, Some(lab.ws.id));
        let detail: Value = serde_json::from_str(&event.detail).unwrap();
        assert_eq!(detail["client"], client_id.as_str());
        assert_eq!(detail["address"], event.ip.clone().unwrap().as_str());
    }

    // Another client without networks may ask from anywhere.
    let anywhere = lab.client(&[], Proximity::Warn).await;
    lab.started(&anywhere, "198.51.100.1").await;
}

#[tokio::test]
async fn a_change_of_trusted_networks_applies_to_the_next_request() {
    let lab = lab().await;
    let client_id = lab.client(&["192.0.2.0/24"], Proximity::Warn).await;
    assert_eq!(lab.device_asks(&client_id, "198.51.100.1").await.0, 400);
    let stored = clients::find(&lab.app.core.db, &client_id)
        .await
        .unwrap()
        .unwrap();
    let mut edit = clients::Edit::stored(&stored).unwrap();
    edit.device_networks = clients::parse_device_networks(["198.51.100.0/24"]).unwrap();
    clients::update(&lab.app.core, &Actor::Cli, &lab.ws, &client_id, edit)
        .await
        .unwrap();
    lab.started(&client_id, "198.51.100.1").await;
    assert_eq!(lab.device_asks(&client_id, "192.0.2.1").await.0, 400);
}

#[tokio::test]
async fn the_cli_sets_normalizes_replaces_and_clears_device_networks() {
    let cli = Cli::new().await;
    let made = cli
        .run(&[
            "client",
            "create",
            "--workspace",
            "default",
            "--name",
            "TV",
            "--public",
            "--device-network",
            "192.0.2.7/24",
            "--device-network",
            "2001:db8::1",
            "--device-network",
            " 192.0.2.0/24 ",
            "--proximity",
            "require",
        ])
        .json();
    assert_eq!(
        made["device_networks"],
        serde_json::json!(["192.0.2.0/24", "2001:db8::1/128"]),
        "host bits cleared, a single address is its /32 or /128, duplicates dropped"
    );
    assert_eq!(made["proximity"], "require");
    let client_id = made["client_id"].as_str().unwrap();
    let update = |extra: &[&str]| {
        let mut args = vec![
            "client",
            "update",
            "--workspace",
            "default",
            "--client-id",
            client_id,
        ];
        args.extend_from_slice(extra);
        cli.run(&args)
    };

    let kept = update(&["--name", "Hall TV"]).json();
    assert_eq!(kept["name"], "Hall TV");
    assert_eq!(kept["device_networks"], made["device_networks"], "kept");
    assert_eq!(kept["proximity"], "require", "kept");
    assert_eq!(kept["public"], true, "kept");

    let replaced = update(&["--device-network", "10.1.2.3/8", "--proximity", "off"]).json();
    assert_eq!(
        replaced["device_networks"],
        serde_json::json!(["10.0.0.0/8"])
    );
    assert_eq!(replaced["proximity"], "off");

    // Refusals name the field and the value, and change nothing.
    let db = cli.connect().await;
    let audit_before = audit_event::Entity::find().count(&db).await.unwrap();
    let bad = update(&[
        "--device-network",
        "10.0.0.0/8",
        "--device-network",
        "10.0.0.300/8",
    ]);
    bad.fails(1, "device_networks");
    bad.fails(1, "10.0.0.300/8");
    update(&["--device-network", "any", "--device-network", "10.0.0.0/8"])
        .fails(1, "--device-network any means anywhere");
    update(&["--proximity", "nearby"])
        .fails(1, "proximity \"nearby\" must be off, warn or require");
    let many: Vec<String> = (0..101).map(|i| format!("10.{i}.0.0/16")).collect();
    let mut args = Vec::new();
    for net in &many {
        args.extend(["--device-network", net.as_str()]);
    }
    update(&args).fails(1, "at most 100");
    let create_bad = cli.run(&[
        "client",
        "create",
        "--workspace",
        "default",
        "--name",
        "Bad",
        "--device-network",
        "somewhere",
    ]);
    create_bad.fails(1, "device_networks: \"somewhere\" is not a network");
    cli.run(&[
        "client",
        "update",
        "--workspace",
        "default",
        "--client-id",
        "nope",
        "--proximity",
        "off",
    ])
    .fails(1, "no client \"nope\"");
    assert_eq!(
        audit_event::Entity::find().count(&db).await.unwrap(),
        audit_before,
        "nothing written"
    );
    let stored = clients::find(&db, client_id).await.unwrap().unwrap();
    assert_eq!(stored.device_networks, "10.0.0.0/8");
    assert_eq!(stored.proximity, "off");

    // Exactly 100 are fine; `any` clears them.
    let hundred: Vec<String> = (0..100).map(|i| format!("10.{i}.0.0/16")).collect();
    let mut args = Vec::new();
    for net in &hundred {
        args.extend(["--device-network", net.as_str()]);
    }
    let listed = update(&args).json();
    assert_eq!(listed["device_networks"].as_array().unwrap().len(), 100);
    let cleared = update(&["--device-network", "any"]).json();
    assert_eq!(cleared["device_networks"], serde_json::json!([]));
    let stored = clients::find(&db, client_id).await.unwrap().unwrap();
    assert_eq!(stored.device_networks, "");
    let updates = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("client.updated"))
        .all(&db)
        .await
        .unwrap();
    let last: Value = serde_json::from_str(&updates.last().unwrap().detail).unwrap();
    assert_eq!(last["device_networks"], serde_json::json!([]));
    assert_eq!(last["proximity"], "off");
}

/// The contents of the textarea named `name`, as the page shows it (escaped).
fn textarea(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no textarea {name}"));
    let open = html[start..].find('>').unwrap() + start + 1;
    let close = html[open..].find("</textarea>").unwrap() + open;
    html[open..close].to_owned()
}

/// The value of the selected option of the select named `name`.
fn selected(html: &str, name: &str) -> String {
    let start = html
        .find(&format!("<select id=\"{name}\" name=\"{name}\""))
        .unwrap_or_else(|| panic!("no select {name}"));
    let end = html[start..].find("</select>").unwrap() + start;
    let select = &html[start..end];
    let at = select.find(" selected>").expect("an option is selected");
    let value = select[..at].rfind("value=\"").unwrap() + "value=\"".len();
    select[value..select[value..].find('"').unwrap() + value].to_owned()
}

#[tokio::test]
async fn the_console_validates_device_networks_and_proximity_keeping_what_was_typed() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("home", workspaces::Changes::default()).await;
    let console = Console::signed_in(&app).await;
    let path = "/console/workspaces/home/clients";

    let form = console.get(path).await.body;
    assert_eq!(textarea(&form, "device_networks"), "");
    assert_eq!(selected(&form, "proximity"), "warn", "the default");

    let base = [
        ("name", "TV"),
        ("grants", "device_code"),
        ("public", "on"),
        ("scopes", "openid"),
        ("access", "everyone"),
    ];
    let many = (0..101)
        .map(|i| format!("10.{i}.0.0/16"))
        .collect::<Vec<_>>()
        .join("\n");
    let cases: [(&str, &str, &str, &str); 3] = [
        (
            "192.0.2.0/24\n\n2001:db8::/33 bad\n",
            "require",
            "device_networks",
            "&quot;2001:db8::&#x2F;33 bad&quot; is not a network",
        ),
        (&many, "warn", "device_networks", "at most 100"),
        (
            "192.0.2.0/24",
            "nearby",
            "proximity",
            "must be off, warn or require",
        ),
    ];
    for (networks, proximity, field, needle) in cases {
        let mut fields = base.to_vec();
        fields.extend([("device_networks", networks), ("proximity", proximity)]);
        let page = console.post(path, &fields).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{field}");
        let error = field_error(&page.body, field)
            .unwrap_or_else(|| panic!("no error beside {field}: {}", page.body));
        assert!(error.contains(needle), "{error}");
        let kept = textarea(&page.body, "device_networks");
        assert_eq!(
            kept.replace("&#x2F;", "/"),
            networks,
            "the typed text is kept"
        );
        if proximity != "nearby" {
            assert_eq!(selected(&page.body, "proximity"), proximity, "kept");
        }
    }
    assert!(clients::list(&app.core.db, ws.id).await.unwrap().is_empty());

    let mut fields = base.to_vec();
    fields.extend([
        (
            "device_networks",
            "192.0.2.9/24\r\n\r\n  2001:db8::/32 \r\n",
        ),
        ("proximity", "require"),
    ]);
    let created = console.post(path, &fields).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let location = created.location.unwrap();
    let page = console.get(&location).await.body;
    assert_eq!(
        data_field(&page, "device_networks")
            .unwrap()
            .replace("&#x2F;", "/"),
        "192.0.2.0/24, 2001:db8::/32",
        "the client page lists the normalized networks"
    );
    assert_eq!(data_field(&page, "proximity").unwrap(), "require");
    assert_eq!(
        textarea(&page, "device_networks").replace("&#x2F;", "/"),
        "192.0.2.0/24\n2001:db8::/32"
    );
    assert_eq!(selected(&page, "proximity"), "require");
    let stored: client::Model = clients::list(&app.core.db, ws.id).await.unwrap().remove(0);
    assert_eq!(stored.device_networks, "192.0.2.0/24\n2001:db8::/32");
    assert_eq!(stored.proximity, "require");

    // Editing: an empty list means anywhere again.
    let mut fields = base.to_vec();
    fields.extend([("device_networks", "\n \n"), ("proximity", "off")]);
    let saved = console.post(&location, &fields).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let page = console.get(&location).await.body;
    assert_eq!(data_field(&page, "device_networks").unwrap(), "anywhere");
    assert_eq!(data_field(&page, "proximity").unwrap(), "off");
    // An invalid edit changes nothing.
    let mut fields = base.to_vec();
    fields.extend([("device_networks", "300.0.0.0/8"), ("proximity", "warn")]);
    let refused = console.post(&location, &fields).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(field_error(&refused.body, "device_networks").is_some());
    assert_eq!(
        textarea(&refused.body, "device_networks").replace("&#x2F;", "/"),
        "300.0.0.0/8"
    );
    let stored = clients::list(&app.core.db, ws.id).await.unwrap().remove(0);
    assert_eq!(
        (stored.device_networks.as_str(), stored.proximity.as_str()),
        ("", "off")
    );
}

// ---- proximity ----

const DEVICE: &str = "203.0.113.5";
/// On the device's IPv4 /24.
const NEIGHBOUR: &str = "203.0.113.200";
const ELSEWHERE: &str = "198.51.100.7";

#[tokio::test]
async fn proximity_off_compares_and_shows_nothing() {
    let lab = lab().await;
    let client_id = lab.client(&[], Proximity::Off).await;
    let started = lab.started(&client_id, DEVICE).await;
    let (b, consent) = at_consent(&lab, ELSEWHERE, &started).await;
    assert!(!consent.contains("<dt>Network</dt>"), "{consent}");
    assert!(!consent.contains("network you are on"));
    assert!(!consent.contains("data-proximity"));
    assert!(consent.contains("name=\"decision\" value=\"approve\""));
    see_other(&b.decide("approve").await, "/activate/done");
    assert_eq!(lab.status(&started).await, "decided");
}

#[tokio::test]
async fn proximity_warn_warns_plainly_when_the_device_asked_from_another_network() {
    let lab = lab().await;
    let client_id = lab.client(&[], Proximity::Warn).await;

    let started = lab.started(&client_id, DEVICE).await;
    let (_, near) = at_consent(&lab, NEIGHBOUR, &started).await;
    assert!(near.contains("the network you are on now"), "{near}");
    assert!(
        !near.contains("data-proximity"),
        "no warning on the same network"
    );

    let (b, far) = at_consent(&lab, ELSEWHERE, &started).await;
    assert!(far.contains("data-proximity=\"warning\""), "{far}");
    assert!(far.contains(
        "Warning: this device asked from a different network than the one you are on\n  now."
    ));
    assert!(far.contains("a different network than the one you are on now"));
    // A warning, not a refusal: both buttons stay, and approving works.
    assert!(far.contains("name=\"decision\" value=\"approve\""));
    assert!(far.contains("name=\"decision\" value=\"deny\""));
    see_other(&b.decide("approve").await, "/activate/done");
    assert_eq!(lab.status(&started).await, "decided");
    assert!(lab.audited("device.proximity_refused").await.is_empty());
}

#[tokio::test]
async fn proximity_require_lets_only_a_browser_on_the_devices_network_approve() {
    let lab = lab().await;
    let client_id = lab.client(&[], Proximity::Require).await;
    let started = lab.started(&client_id, DEVICE).await;
    let device_code = started["device_code"].as_str().unwrap();

    let (b, page) = at_consent(&lab, ELSEWHERE, &started).await;
    assert!(page.contains("data-proximity=\"blocked\""), "{page}");
    assert!(page.contains("You cannot approve this from here."));
    assert!(!page.contains("value=\"approve\""), "no approve button");
    assert!(
        page.contains("name=\"decision\" value=\"deny\""),
        "deny stays possible"
    );

    // Posting approve anyway is refused, audited, and records nothing.
    let refused = body(b.decide("approve").await, StatusCode::FORBIDDEN).await;
    assert!(
        refused.contains("You cannot approve this from here"),
        "{refused}"
    );
    assert!(refused.contains("nothing was approved"));
    assert_eq!(lab.status(&started).await, "pending");
    let events = lab.audited("device.proximity_refused").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].ip.as_deref(), Some(ELSEWHERE));
    assert_eq!(events[0].actor, format!("user:{}", lab.alice.id));
    let detail: Value = serde_json::from_str(&events[0].detail).unwrap();
    assert_eq!(detail["client"], client_id.as_str());
    assert_eq!(detail["device_ip"], DEVICE);
    assert_eq!(detail["network"], "different");
    assert!(lab.audited("device.approved").await.is_empty());
    // Intervals count whole seconds: 1 s is the least a workspace allows.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, polled) = lab.poll(&client_id, device_code, DEVICE).await;
    assert_eq!(
        (status, polled["error"].as_str()),
        (400, Some("authorization_pending"))
    );

    // Deny is taken from anywhere.
    see_other(&b.decide("deny").await, "/activate/done");
    assert_eq!(lab.status(&started).await, "decided");
    assert_eq!(lab.audited("device.denied").await.len(), 1);

    // From the device's own network it is approved as usual.
    let started = lab.started(&client_id, DEVICE).await;
    let (b, page) = at_consent(&lab, NEIGHBOUR, &started).await;
    assert!(page.contains("the network you are on now"), "{page}");
    assert!(!page.contains("data-proximity"));
    see_other(&b.decide("approve").await, "/activate/done");
    assert_eq!(lab.status(&started).await, "decided");
    // IPv6 networks are /56: alice's consent is now remembered, and it stands in there.
    let started = lab.started(&client_id, "2001:db8:1:ab00::1").await;
    let (_, res) = signed_in_browser(&lab, "2001:db8:1:abff::2", &started).await;
    see_other(&res, "/activate/done");
    assert_eq!(lab.status(&started).await, "decided");
    // An IPv6 browser outside the device's /56 cannot.
    let started = lab.started(&client_id, "2001:db8:1:ab00::1").await;
    let (b, page) = at_consent(&lab, "2001:db8:1:ac00::1", &started).await;
    assert!(page.contains("data-proximity=\"blocked\""));
    body(b.decide("approve").await, StatusCode::FORBIDDEN).await;
    assert_eq!(lab.status(&started).await, "pending");
    assert_eq!(lab.audited("device.proximity_refused").await.len(), 2);
}

#[tokio::test]
async fn remembered_consent_does_not_bypass_proximity_require() {
    let lab = lab().await;
    let client_id = lab.client(&[], Proximity::Require).await;
    // Alice approves once, from the device's network: her consent is remembered.
    let first = lab.started(&client_id, DEVICE).await;
    let (b, _) = at_consent(&lab, NEIGHBOUR, &first).await;
    see_other(&b.decide("approve").await, "/activate/done");

    // On the device's network the next code she types skips consent...
    let second = lab.started(&client_id, DEVICE).await;
    let (_, res) = signed_in_browser(&lab, NEIGHBOUR, &second).await;
    see_other(&res, "/activate/done");
    assert_eq!(lab.status(&second).await, "decided");

    // ...but from elsewhere she gets the consent page that cannot approve, and nothing is
    // recorded.
    let third = lab.started(&client_id, DEVICE).await;
    let (b, res) = signed_in_browser(&lab, ELSEWHERE, &third).await;
    see_other(&res, "/activate/consent");
    let (_, page) = b.page("/activate/consent").await;
    assert!(page.contains("data-proximity=\"blocked\""), "{page}");
    assert_eq!(lab.status(&third).await, "pending");
    body(b.decide("approve").await, StatusCode::FORBIDDEN).await;
    assert_eq!(lab.status(&third).await, "pending");
}
