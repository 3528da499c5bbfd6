//! Settings whose capability is not built yet are refused, through the CLI and the console
//! alike, instead of being stored and ignored (an admin would believe a defence is in force
//! while anyone may approve from anywhere). The values that describe what the server does
//! today stay accepted.

use reqwest::StatusCode;
use sea_orm::{
    ActiveModelTrait as _, EntityTrait as _, IntoActiveModel as _, PaginatorTrait as _, Set,
};
use vestibule_core::entities::{audit_event, client, workspace};
use vestibule_core::records::{Client, Workspace};
use vestibule_core::services::device_grants::{self, Origin};
use vestibule_core::services::interaction::{Decided, Decision};
use vestibule_core::services::{clients, workspaces};
use vestibule_core::types::ScopeSet;

use crate::console::{Console, field_error, post_settings, settings_form};
use crate::helpers::{Cli, TestApp, decide_device_code};

async fn counts(db: &sea_orm::DatabaseConnection) -> [u64; 3] {
    [
        workspace::Entity::find().count(db).await.unwrap(),
        client::Entity::find().count(db).await.unwrap(),
        audit_event::Entity::find().count(db).await.unwrap(),
    ]
}

const CLIENT: [&str; 6] = ["client", "create", "--workspace", "default", "--name", "TV"];

#[tokio::test]
async fn the_cli_refuses_unbuilt_settings_and_writes_nothing() {
    let cli = Cli::new().await;
    cli.run(&["migrate"]).json();
    let db = cli.connect().await;
    let before = counts(&db).await;
    let cases: &[(&[&str], &str)] = &[
        (&["--access", "assigned"], "access = assigned"),
        (&["--dcr-template"], "dcr_template"),
        (
            &[
                "--grant",
                "authorization_code",
                "--redirect-uri",
                "https://app.example/cb",
            ],
            "authorization_code grant",
        ),
        (
            &["--redirect-uri", "https://app.example/cb"],
            "redirect_uris",
        ),
    ];
    for (extra, setting) in cases {
        let args: Vec<&str> = CLIENT.iter().chain(extra.iter()).copied().collect();
        let run = cli.run(&args);
        run.fails(1, setting);
        run.fails(1, "is not available yet");
    }
    let workspace_cases: &[(&[&str], &str)] = &[
        (
            &["workspace", "create", "tv", "--dynamic-registration", "on"],
            "dynamic_registration",
        ),
        (
            &["workspace", "create", "tv", "--new-device-email", "on"],
            "new_device_email",
        ),
        (
            &[
                "workspace",
                "update",
                "default",
                "--dynamic-registration",
                "on",
            ],
            "dynamic_registration",
        ),
        (
            &["workspace", "update", "default", "--new-device-email", "on"],
            "new_device_email",
        ),
    ];
    for (args, setting) in workspace_cases {
        let run = cli.run(args);
        run.fails(1, setting);
        run.fails(1, "is not available yet");
    }
    assert_eq!(counts(&db).await, before, "refused commands wrote nothing");

    // What the server does today is accepted, spelled out.
    let made = cli
        .run(
            &CLIENT
                .iter()
                .chain(&["--access", "everyone", "--proximity", "warn"])
                .copied()
                .collect::<Vec<_>>(),
        )
        .json();
    assert_eq!(made["access"], "everyone");
    assert_eq!(made["proximity"], "warn");
    assert_eq!(made["device_networks"], serde_json::json!([]));
    let ws = cli
        .run(&[
            "workspace",
            "create",
            "tv",
            "--dynamic-registration",
            "off",
            "--new-device-email",
            "off",
        ])
        .json();
    assert_eq!(ws["dynamic_registration"], false);
    assert_eq!(ws["new_device_email"], false);
    let ws = cli.run(&["workspace", "create", "tv2"]).json();
    assert_eq!(ws["new_device_email"], false, "off until mail is sent");
}

#[tokio::test]
async fn the_console_refuses_unbuilt_client_settings_beside_the_form() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("home", workspaces::Changes::default()).await;
    let console = Console::signed_in(&app).await;
    let base = [
        ("name", "TV"),
        ("grants", "device_code"),
        ("scopes", "openid"),
        ("access", "everyone"),
    ];
    // The fields changed from `base`, the field the error stands beside, and what it names.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case<'_>] = &[
        (&[("access", "assigned")], "access", "access = assigned"),
        (&[("dcr_template", "on")], "dcr_template", "dcr_template"),
        (
            &[
                ("grants", "authorization_code"),
                ("redirect_uris", "https://app.example/cb"),
            ],
            "grants",
            "authorization_code grant",
        ),
        (
            &[("redirect_uris", "https://app.example/cb")],
            "redirect_uris",
            "redirect_uris",
        ),
    ];
    let path = "/console/workspaces/home/clients";
    for (changes, field, setting) in cases {
        let mut form: Vec<(&str, &str)> = base
            .iter()
            .filter(|(k, _)| !changes.iter().any(|(c, _)| c == k))
            .copied()
            .collect();
        form.extend_from_slice(changes);
        let page = console.post(path, &form).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{setting}");
        let error = field_error(&page.body, field)
            .unwrap_or_else(|| panic!("no error for {field}: {}", page.body));
        assert!(
            error.contains(setting) && error.contains("is not available yet"),
            "{error}"
        );
    }
    assert!(clients::list(&app.core.db, ws.id).await.unwrap().is_empty());

    // An existing client cannot be switched to one either.
    let created = console.post(path, &base).await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let location = created.location.unwrap();
    let mut edit = base.to_vec();
    edit.retain(|(k, _)| *k != "access");
    edit.push(("access", "assigned"));
    let page = console.post(&location, &edit).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(field_error(&page.body, "access").is_some(), "{}", page.body);
    let stored = &clients::list(&app.core.db, ws.id).await.unwrap()[0];
    assert_eq!(stored.access, "everyone");
}

#[tokio::test]
async fn the_console_refuses_unbuilt_workspace_settings_beside_the_field() {
    let app = TestApp::spawn().await;
    app.workspace("tv", workspaces::Changes::default()).await;
    let console = Console::signed_in(&app).await;
    for field in ["dynamic_registration", "new_device_email"] {
        let fields = settings_form(&console, "tv", &[(field, "on"), ("name", "Changed")]).await;
        let page = post_settings(&console, "tv", &fields).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
        let error = field_error(&page.body, field)
            .unwrap_or_else(|| panic!("no error for {field}: {}", page.body));
        assert!(error.contains("is not available yet"), "{error}");
    }
    let stored = workspaces::get(&app.core.db, "tv").await.unwrap();
    assert_eq!(stored.name, "tv", "nothing was written");
    assert!(!stored.dynamic_registration && !stored.new_device_email);
    // With both off, the form saves.
    let fields = settings_form(&console, "tv", &[("name", "Changed")]).await;
    let page = post_settings(&console, "tv", &fields).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
}

/// A workspace `home` with a public device client whose row an older version stored with
/// `stored` applied (the services refuse such values now), and the user `alice`.
async fn stored_client(
    app: &TestApp,
    stored: impl FnOnce(&mut client::ActiveModel),
) -> (
    workspace::Model,
    client::Model,
    vestibule_core::entities::user::Model,
) {
    let ws = app.workspace("home", workspaces::Changes::default()).await;
    let (client_id, _) = app.client(&ws, true, &["device_code"], "openid").await;
    let alice = app.user(&ws, "alice", "alice password").await;
    let mut row = clients::find(&app.core.db, &client_id)
        .await
        .unwrap()
        .unwrap()
        .into_active_model();
    stored(&mut row);
    let row = row.update(&app.core.db).await.unwrap();
    (ws, row, alice)
}

/// How alice's approval of a fresh device code of such a client ends.
async fn approval_of_a_stored_client(stored: impl FnOnce(&mut client::ActiveModel)) -> Decided {
    let app = TestApp::spawn().await;
    let (ws, row, alice) = stored_client(&app, stored).await;
    let started = device_grants::start(
        &app.core,
        &Workspace::parse(ws).unwrap(),
        &Client::parse(row),
        ScopeSet::parse("openid").unwrap(),
        Origin {
            ip: Some("192.0.2.1".parse().unwrap()),
            user_agent: None,
        },
    )
    .await
    .unwrap();
    decide_device_code(
        &app.core,
        started.user_code.as_str(),
        &alice,
        Decision::Approve,
    )
    .await
}

/// A client stored with `access = assigned` before the services refused it: nobody can be
/// assigned yet, so nobody may approve it (it used to let everyone).
#[tokio::test]
async fn a_client_stored_with_access_assigned_lets_nobody_approve() {
    let decided = approval_of_a_stored_client(|c| c.access = Set("assigned".to_owned())).await;
    assert_eq!(decided, Decided::NoAccess);
}
