//! A client's `after_approval_url` (SPEC §4 item 4) set through the CLI and the console: valid
//! URLs are kept, shown and cleared; anything else is refused naming the field, writing
//! nothing. Where the browser goes after a decision is tested with `/activate` (activate.rs).

use reqwest::StatusCode;
use sea_orm::{EntityTrait as _, PaginatorTrait as _};
use vestibule_core::entities::{audit_event, client};
use vestibule_core::services::{clients, workspaces};

use crate::console::{Console, data_field, field_error, input_value};
use crate::helpers::{Cli, TestApp};

const CREATE: [&str; 8] = [
    "client",
    "create",
    "--workspace",
    "default",
    "--name",
    "TV",
    "--client-id",
    "tv",
];
const UPDATE: [&str; 6] = [
    "client",
    "update",
    "--workspace",
    "default",
    "--client-id",
    "tv",
];

/// URLs that are not acceptable, and a word of the reason each is refused for.
const REFUSED: [(&str, &str); 5] = [
    ("http://app.example/done", "https"),
    ("https://app.example/done#tab", "fragment"),
    ("https://me:pw@app.example/done", "user name or password"),
    ("javascript:alert(1)", "https"),
    ("/activate/done", "absolute URL"),
];

fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(extra).copied().collect()
}

#[tokio::test]
async fn the_cli_sets_changes_keeps_and_clears_the_after_approval_url() {
    let cli = Cli::new().await;
    let created = cli
        .run(&with(
            &CREATE,
            &[
                "--public",
                "--after-approval-url",
                "https://tv.example/connected",
            ],
        ))
        .json();
    assert_eq!(
        created["after_approval_url"],
        "https://tv.example/connected"
    );

    let changed = cli
        .run(&with(
            &UPDATE,
            &["--after-approval-url", "http://localhost:3000/ok"],
        ))
        .json();
    assert_eq!(changed["after_approval_url"], "http://localhost:3000/ok");
    // Another option leaves it as it is.
    let renamed = cli
        .run(&with(&UPDATE, &["--name", "Living Room TV"]))
        .json();
    assert_eq!(renamed["name"], "Living Room TV");
    assert_eq!(renamed["after_approval_url"], "http://localhost:3000/ok");
    assert_eq!(renamed["public"], true);
    // An empty value clears it.
    let cleared = cli
        .run(&with(&UPDATE, &["--after-approval-url", ""]))
        .json();
    assert_eq!(cleared["after_approval_url"], serde_json::Value::Null);
}

#[tokio::test]
async fn the_cli_refuses_a_bad_after_approval_url_and_writes_nothing() {
    let cli = Cli::new().await;
    cli.run(&with(
        &CREATE,
        &["--after-approval-url", "https://tv.example/ok"],
    ))
    .json();
    let db = cli.connect().await;
    let audit_before = audit_event::Entity::find().count(&db).await.unwrap();
    for (url, reason) in REFUSED {
        let run = cli.run(&[
            "client",
            "create",
            "--workspace",
            "default",
            "--name",
            "Other",
            "--after-approval-url",
            url,
        ]);
        run.fails(1, "after_approval_url");
        run.fails(1, reason);
        let run = cli.run(&with(
            &UPDATE,
            &["--name", "Renamed", "--after-approval-url", url],
        ));
        run.fails(1, "after_approval_url");
    }
    let stored = client::Entity::find().all(&db).await.unwrap();
    assert_eq!(stored.len(), 1, "no client was created");
    assert_eq!(
        stored[0].name, "TV",
        "nothing of a refused update was written"
    );
    assert_eq!(
        stored[0].after_approval_url.as_deref(),
        Some("https://tv.example/ok")
    );
    assert_eq!(
        audit_event::Entity::find().count(&db).await.unwrap(),
        audit_before
    );
    // A client that is not there is named as such.
    cli.run(&[
        "client",
        "update",
        "--workspace",
        "default",
        "--client-id",
        "nope",
        "--name",
        "X",
    ])
    .fails(1, "nope");
}

#[tokio::test]
async fn the_console_sets_shows_refuses_and_clears_the_after_approval_url() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("home", workspaces::Changes::default()).await;
    let console = Console::signed_in(&app).await;
    let path = "/console/workspaces/home/clients";
    let form = |url: &'static str| {
        vec![
            ("name", "TV"),
            ("grants", "device_code"),
            ("public", "on"),
            ("scopes", "openid"),
            ("access", "everyone"),
            ("after_approval_url", url),
        ]
    };

    // Refused beside the field, the typed value kept, nothing written.
    for (url, reason) in REFUSED {
        let page = console.post(path, &form(url)).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{url}");
        let error = field_error(&page.body, "after_approval_url")
            .unwrap_or_else(|| panic!("no error beside after_approval_url: {}", page.body));
        assert!(error.contains(reason), "{url}: {error}");
        assert_eq!(
            unescape(&input_value(&page.body, "after_approval_url")),
            url,
            "the typed URL is kept"
        );
    }
    assert!(clients::list(&app.core.db, ws.id).await.unwrap().is_empty());

    let created = console
        .post(path, &form("https://tv.example/connected"))
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let location = created.location.unwrap();
    let page = console.get(&location).await;
    assert_eq!(
        data_field(&page.body, "after_approval_url").map(|v| unescape(&v)),
        Some("https://tv.example/connected".to_owned())
    );

    // An edit with a bad URL keeps the stored one; an empty field clears it.
    let refused = console.post(&location, &form("http://tv.example/")).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(field_error(&refused.body, "after_approval_url").is_some());
    let stored = &clients::list(&app.core.db, ws.id).await.unwrap()[0];
    assert_eq!(
        stored.after_approval_url.as_deref(),
        Some("https://tv.example/connected")
    );
    let cleared = console.post(&location, &form("")).await;
    assert_eq!(cleared.status, StatusCode::SEE_OTHER, "{}", cleared.body);
    let stored = &clients::list(&app.core.db, ws.id).await.unwrap()[0];
    assert_eq!(stored.after_approval_url, None);
    let page = console.get(&location).await;
    assert!(data_field(&page.body, "after_approval_url").is_none());
}

/// Undoes the templates' HTML escaping of a value.
fn unescape(html: &str) -> String {
    html.replace("&#x2F;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
