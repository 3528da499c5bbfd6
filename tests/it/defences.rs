//! The console's "phishing defences" panel (`/console/workspaces/{slug}/defences`): every BCP
//! 247 §6.1 mitigation the server applies on its own, whether it is in force and for which
//! clients, read from the stored settings and the server configuration.

use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait as _, IntoActiveModel as _, Set};
use vestibule_core::entities::workspace;
use vestibule_core::services::{clients, workspaces};

use crate::console::{Console, post_settings, settings_form};
use crate::helpers::TestApp;

/// The row of section `section` (`6.1.8`), from its `<tr>` to its `</tr>`.
fn row<'a>(html: &'a str, section: &str) -> &'a str {
    let marker = format!("data-section=\"{section}\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no row for §{section}: {html}"));
    let end = html[start..].find("</tr>").expect("the row ends") + start;
    &html[start..end]
}

/// The panel of `slug` as the signed-in admin sees it, with the slashes tera escapes in
/// text and attributes read back.
async fn panel(console: &Console, slug: &str) -> String {
    let page = console
        .get(&format!("/console/workspaces/{slug}/defences"))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.body.replace("&#x2F;", "/")
}

/// A client of `ws` named `name` with the device grant, then `proximity` and
/// `device_networks` written straight to its row (the forms of this version refuse them).
async fn stored_client(
    app: &TestApp,
    ws: &workspace::Model,
    name: &str,
    proximity: &str,
    device_networks: &str,
) -> String {
    let (client_id, _) = app.client(ws, true, &["device_code"], "openid").await;
    let mut row = clients::find(&app.core.db, &client_id)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    row.name = Set(name.to_owned());
    row.proximity = Set(proximity.to_owned());
    row.device_networks = Set(device_networks.to_owned());
    row.update(&app.core.db).await.unwrap();
    client_id
}

#[tokio::test]
async fn the_panel_names_every_mitigation_by_its_bcp_247_section_and_links_its_setting() {
    let app = TestApp::spawn().await;
    app.workspace("home", workspaces::Changes::default()).await;
    let console = Console::signed_in(&app).await;

    let settings = console.get("/console/workspaces/home").await;
    assert!(
        settings
            .body
            .contains("href=\"/console/workspaces/home/defences\""),
        "the workspace's tabs link to the panel"
    );
    let html = panel(&console, "home").await;
    assert!(html.contains("<caption>"), "the table has a caption");
    assert!(html.contains("<th scope=\"row\">Establish Proximity</th>"));
    for (section, name) in [
        ("6.1.1", "Establish Proximity"),
        ("6.1.2", "Short-Lived/Timebound QR or User Codes"),
        ("6.1.3", "One-Time or Limited Use Codes"),
        ("6.1.4", "Unique Codes"),
        ("6.1.6", "Detect and Remediate"),
        ("6.1.8", "Trusted Networks"),
        ("6.1.10", "Short-Lived Tokens"),
        ("6.1.11", "Rate Limits"),
        ("6.1.14", "User Experience"),
    ] {
        let row = row(&html, section);
        assert!(row.contains(&format!("§{section}")), "{section}: {row}");
        assert!(row.contains(name), "{section} is named {name}: {row}");
    }
    // Always in force, with the workspace's values and the fields that set them.
    for (section, field) in [
        ("6.1.2", "device_code_ttl"),
        ("6.1.4", "device_code_ttl"),
        ("6.1.10", "device_grant_max_age"),
        ("6.1.14", "consent_skip"),
    ] {
        let row = row(&html, section);
        assert!(row.contains("data-state=\"on\""), "{section}: {row}");
        assert!(
            row.contains(&format!("href=\"/console/workspaces/home#{field}\"")),
            "{section} links to {field}: {row}"
        );
    }
    assert!(row(&html, "6.1.2").contains("600 s (10 minutes)"));
    assert!(row(&html, "6.1.3").contains("In force (always)"));
    let remediate = row(&html, "6.1.6");
    assert!(
        remediate.contains("href=\"/w/home/account\""),
        "{remediate}"
    );
    assert!(
        remediate.contains("href=\"/console/workspaces/home/devices\""),
        "{remediate}"
    );
    assert!(
        row(&html, "6.1.10").contains("7776000 s (90 days)"),
        "the default max age"
    );
    assert!(
        row(&html, "6.1.14").contains("A typed code skips it"),
        "consent skip is on by default"
    );
    // The linked fields exist on the settings page.
    for field in [
        "device_code_ttl",
        "device_grant_max_age",
        "access_token_ttl",
        "consent_skip",
        "device_flow_enabled",
    ] {
        assert!(
            settings.body.contains(&format!("id=\"{field}\"")),
            "the settings page has #{field}"
        );
    }
    // No client yet: the per-client mitigations say so.
    for section in ["6.1.1", "6.1.8"] {
        let row = row(&html, section);
        assert!(row.contains("No client has the device_code grant"), "{row}");
        assert!(row.contains("data-state=\"off\""), "{row}");
    }
    assert!(!html.contains("data-warning=\"device-flow-off\""));

    // The page only reads: there is nothing to POST to it.
    let posted = console.post("/console/workspaces/home/defences", &[]).await;
    assert_eq!(posted.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        console
            .get("/console/workspaces/nope/defences")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn stored_networks_and_proximity_show_as_in_force_for_their_clients_only() {
    let app = TestApp::spawn().await;
    let ws = app
        .workspace("office", workspaces::Changes::default())
        .await;
    let kiosk = stored_client(
        &app,
        &ws,
        "Lobby kiosk",
        "require",
        "10.0.0.0/8\n192.0.2.0/24",
    )
    .await;
    let tv = stored_client(&app, &ws, "Meeting-room TV", "warn", "").await;
    let printer = stored_client(&app, &ws, "Printer", "off", "").await;
    // Without the device grant a client starts no device flow: it is not listed.
    let (backend, _) = app
        .client(&ws, false, &["client_credentials"], "openid")
        .await;
    let console = Console::signed_in(&app).await;
    let html = panel(&console, "office").await;

    let networks = row(&html, "6.1.8");
    assert!(networks.contains("data-state=\"partial\""), "{networks}");
    assert!(networks.contains("In force for some clients"), "{networks}");
    let line = client_line(networks, &kiosk);
    assert!(line.contains("data-in-force=\"true\""), "{line}");
    assert!(line.contains("Lobby kiosk"), "{line}");
    assert!(line.contains("10.0.0.0/8, 192.0.2.0/24"), "{line}");
    assert!(
        line.contains(&format!(
            "href=\"/console/workspaces/office/clients/{kiosk}#device_networks\""
        )),
        "{line}"
    );
    for other in [&tv, &printer] {
        let line = client_line(networks, other);
        assert!(line.contains("data-in-force=\"false\""), "{line}");
        assert!(line.contains("anywhere"), "{line}");
    }

    let proximity = row(&html, "6.1.1");
    assert!(proximity.contains("data-state=\"partial\""), "{proximity}");
    for (client, value, in_force) in [
        (&kiosk, "require", true),
        (&tv, "warn", true),
        (&printer, "off", false),
    ] {
        let line = client_line(proximity, client);
        assert!(line.contains(&format!(": {value}</li>")), "{line}");
        assert!(
            line.contains(&format!("data-in-force=\"{in_force}\"")),
            "{line}"
        );
        assert!(
            line.contains(&format!(
                "href=\"/console/workspaces/office/clients/{client}#proximity\""
            )),
            "{line}"
        );
    }
    assert!(
        !html.contains(&backend),
        "a client without the device grant is not listed"
    );

    // Every device client covered: in force for every one.
    stored_client(&app, &ws, "Kiosk 2", "warn", "198.51.100.0/24").await;
    let mut all = clients::find(&app.core.db, &tv)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    all.device_networks = Set("203.0.113.0/24".to_owned());
    all.update(&app.core.db).await.unwrap();
    let mut row_printer = clients::find(&app.core.db, &printer)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    row_printer.device_networks = Set("203.0.113.0/24".to_owned());
    row_printer.proximity = Set("warn".to_owned());
    row_printer.update(&app.core.db).await.unwrap();
    let html = panel(&console, "office").await;
    for section in ["6.1.1", "6.1.8"] {
        let row = row(&html, section);
        assert!(row.contains("In force for every device client"), "{row}");
        assert!(!row.contains("data-in-force=\"false\""), "{row}");
    }
}

/// The `<li>` of `client_id` in a row.
fn client_line<'a>(row: &'a str, client_id: &str) -> &'a str {
    let marker = format!("data-client=\"{client_id}\"");
    let start = row
        .find(&marker)
        .unwrap_or_else(|| panic!("no line for {client_id}: {row}"));
    let end = row[start..].find("</li>").expect("the line ends") + start + "</li>".len();
    &row[start..end]
}

#[tokio::test]
async fn the_panel_shows_the_workspaces_max_age_and_the_configured_rate_limit() {
    let app = TestApp::spawn_with(|env| {
        env.insert(
            "VESTIBULE__SECURITY__DEVICE_AUTHORIZATION_LIMIT".into(),
            "7".into(),
        );
        env.insert(
            "VESTIBULE__SECURITY__DEVICE_AUTHORIZATION_WINDOW".into(),
            "45".into(),
        );
    })
    .await;
    app.workspace(
        "home",
        workspaces::Changes {
            device_code_ttl: Some(300),
            consent_skip: Some(false),
            ..workspaces::Changes::default()
        },
    )
    .await;
    let console = Console::signed_in(&app).await;

    // The max age as the settings form saves it.
    let fields = settings_form(&console, "home", &[("device_grant_max_age", "86400")]).await;
    let saved = post_settings(&console, "home", &fields).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(
        workspaces::get(&app.core.db, "home")
            .await
            .unwrap()
            .device_grant_max_age,
        86_400
    );

    let html = panel(&console, "home").await;
    assert!(row(&html, "6.1.2").contains("300 s (5 minutes)"));
    assert!(row(&html, "6.1.10").contains("86400 s (1 day)"));
    assert!(row(&html, "6.1.14").contains("consent is never skipped"));
    let limits = row(&html, "6.1.11");
    assert!(limits.contains("data-state=\"on\""), "{limits}");
    assert!(
        limits.contains("At most 7 device authorization requests"),
        "{limits}"
    );
    assert!(limits.contains("per 45 s"), "{limits}");
    for key in [
        "security.device_authorization_limit",
        "security.device_authorization_window",
    ] {
        assert!(
            limits.contains(&format!("data-config-key=\"{key}\"")),
            "{limits}"
        );
    }

    let unlimited = TestApp::spawn_with(|env| {
        env.insert(
            "VESTIBULE__SECURITY__DEVICE_AUTHORIZATION_LIMIT".into(),
            "0".into(),
        );
    })
    .await;
    unlimited
        .workspace(
            "home",
            workspaces::Changes {
                device_flow_enabled: Some(false),
                ..workspaces::Changes::default()
            },
        )
        .await;
    let html = panel(&Console::signed_in(&unlimited).await, "home").await;
    let limits = row(&html, "6.1.11");
    assert!(limits.contains("data-state=\"off\""), "{limits}");
    assert!(
        limits.contains("device_authorization_limit is 0"),
        "{limits}"
    );
    assert!(
        html.contains("data-warning=\"device-flow-off\""),
        "a workspace without the device flow says so"
    );
}

#[tokio::test]
async fn a_signed_out_admin_is_sent_to_sign_in_from_the_panel() {
    let app = TestApp::spawn().await;
    app.workspace("home", workspaces::Changes::default()).await;
    let page = Console::new(&app)
        .get("/console/workspaces/home/defences")
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location.as_deref(), Some("/console/login"));
    assert!(!page.body.contains("Establish Proximity"));
}
