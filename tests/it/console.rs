//! `/console`: sign-in, sessions and CSRF, workspaces, clients, users, admins and the audit
//! log, driven over HTTP like a browser (cookies kept, redirects not followed).

use reqwest::StatusCode;
use reqwest::header::{LOCATION, RETRY_AFTER, SET_COOKIE};
use vestibule_core::services::workspaces;

use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _};
use vestibule_core::entities::audit_event;

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp};

/// An admin's browser on the console.
pub(crate) struct Console {
    http: reqwest::Client,
    base: String,
}

/// A response read to its end.
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) location: Option<String>,
    pub(crate) body: String,
}

impl Console {
    pub(crate) fn new(app: &TestApp) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .cookie_store(true)
                .build()
                .unwrap(),
            base: app.address.clone(),
        }
    }

    /// A browser signed in as the bootstrap admin.
    pub(crate) async fn signed_in(app: &TestApp) -> Self {
        let console = Self::new(app);
        let page = console.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(page.location.as_deref(), Some("/console/workspaces"));
        console
    }

    async fn read(res: reqwest::Response) -> Page {
        Page {
            status: res.status(),
            location: res
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_owned()),
            body: res.text().await.unwrap(),
        }
    }

    pub(crate) async fn get(&self, path: &str) -> Page {
        Self::read(
            self.http
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// POSTs exactly these fields.
    pub(crate) async fn post_raw(&self, path: &str, form: &[(&str, &str)]) -> Page {
        Self::read(
            self.http
                .post(format!("{}{path}", self.base))
                .form(form)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// The session's CSRF token, read from a page's form.
    pub(crate) async fn csrf(&self, path: &str) -> String {
        let page = self.get(path).await;
        hidden(&page.body, "csrf_token")
    }

    /// POSTs the fields with the session's CSRF token, as the page's form would.
    pub(crate) async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let token = self.csrf("/console/workspaces").await;
        let mut fields = vec![("csrf_token", token.as_str())];
        fields.extend_from_slice(form);
        self.post_raw(path, &fields).await
    }

    async fn sign_in(&self, email: &str, password: &str) -> Page {
        let token = hidden(&self.get("/console/login").await.body, "csrf_token");
        self.post_raw(
            "/console/login",
            &[
                ("csrf_token", &token),
                ("email", email),
                ("password", password),
            ],
        )
        .await
    }
}

/// The value of a hidden form field.
pub(crate) fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

/// The text of the element carrying `data-error-for="{field}"`, if any.
pub(crate) fn field_error(html: &str, field: &str) -> Option<String> {
    let marker = format!("data-error-for=\"{field}\"");
    let start = html.find(&marker)?;
    let open = html[start..].find('>')? + start + 1;
    let close = html[open..].find('<')? + open;
    Some(html[open..close].to_owned())
}

/// The value attribute of the input named `name`.
pub(crate) fn input_value(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no input {name}"));
    let tag_end = html[start..].find('>').unwrap() + start;
    let tag = &html[start..tag_end];
    let v = tag
        .find("value=\"")
        .unwrap_or_else(|| panic!("no value in {tag}"))
        + "value=\"".len();
    let e = tag[v..].find('"').unwrap() + v;
    tag[v..e].to_owned()
}

/// The text of the element carrying `data-field="{field}"`.
pub(crate) fn data_field(html: &str, field: &str) -> Option<String> {
    let marker = format!("data-field=\"{field}\"");
    let start = html.find(&marker)?;
    let open = html[start..].find('>')? + start + 1;
    let close = html[open..].find('<')? + open;
    Some(html[open..close].trim().to_owned())
}

// ---- sign-in and sessions ----

#[tokio::test]
async fn pages_need_a_signed_in_admin() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("home", workspaces::Changes::default()).await;
    let (client_id, _) = app.client(&ws, true, &["device_code"], "openid").await;
    let anonymous = Console::new(&app);
    for path in [
        "/console".to_owned(),
        "/console/workspaces".to_owned(),
        "/console/workspaces/home".to_owned(),
        "/console/workspaces/home/clients".to_owned(),
        format!("/console/workspaces/home/clients/{client_id}"),
        format!("/console/workspaces/home/clients/{client_id}/delete"),
        "/console/workspaces/home/users".to_owned(),
        "/console/workspaces/home/defences".to_owned(),
        "/console/admins".to_owned(),
        "/console/audit".to_owned(),
    ] {
        let page = anonymous.get(&path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location.as_deref(), Some("/console/login"), "{path}");
    }
    // A POST without a session changes nothing either.
    let page = anonymous
        .post_raw("/console/workspaces", &[("slug", "evil"), ("name", "Evil")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location.as_deref(), Some("/console/login"));
    assert!(
        workspaces::find(&app.core.db, "evil")
            .await
            .unwrap()
            .is_none()
    );

    let console = Console::signed_in(&app).await;
    let page = console.get("/console/workspaces").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body.contains(ADMIN_EMAIL),
        "the layout names who is signed in"
    );
    assert!(page.body.contains("href=\"/console/admins\""), "navigation");
    assert!(page.body.contains("href=\"/console/audit\""), "navigation");
}

#[tokio::test]
async fn sign_in_refuses_wrong_passwords_unknown_emails_and_disabled_admins_alike() {
    let app = TestApp::spawn().await;
    let console = Console::new(&app);
    let login = console.get("/console/login").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("name=\"email\"") && login.body.contains("name=\"password\""));

    let wrong = console.sign_in(ADMIN_EMAIL, "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("do not match"));
    assert_eq!(input_value(&wrong.body, "email"), ADMIN_EMAIL, "email kept");
    let unknown = console.sign_in("nobody@example.test", ADMIN_PASSWORD).await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert!(unknown.body.contains("do not match"));
    assert_eq!(
        console.get("/console/workspaces").await.status,
        StatusCode::SEE_OTHER,
        "still signed out"
    );

    // A second admin, disabled by the first, cannot sign in even with the right password.
    let root = Console::signed_in(&app).await;
    let created = root
        .post(
            "/console/admins",
            &[
                ("email", "second@example.test"),
                ("password", "second password"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let second =
        vestibule_core::services::admins::find_by_email(&app.core.db, "second@example.test")
            .await
            .unwrap()
            .unwrap();
    let disabled = root
        .post(
            &format!("/console/admins/{}/status", second.id),
            &[("status", "disabled")],
        )
        .await;
    assert_eq!(disabled.status, StatusCode::SEE_OTHER, "{}", disabled.body);
    let refused = Console::new(&app)
        .sign_in("second@example.test", "second password")
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert!(
        refused.body.contains("do not match"),
        "same answer as a wrong password"
    );
}

#[tokio::test]
async fn repeated_sign_in_failures_are_throttled() {
    let app = TestApp::spawn().await;
    let console = Console::new(&app);
    for _ in 0..vestibule_core::SIGN_IN_MAX_FAILURES {
        let page = console.sign_in(ADMIN_EMAIL, "wrong password").await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let token = hidden(&console.get("/console/login").await.body, "csrf_token");
    let res = console
        .http
        .post(format!("{}/console/login", console.base))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", ADMIN_EMAIL),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    let retry: u64 = res.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Too many failed sign-ins")
    );
    // Reaching the limit is audited once, not every refused attempt.
    let throttled = audit_event::Entity::find()
        .filter(audit_event::Column::Action.eq("admin.sign_in_throttled"))
        .all(&app.core.db)
        .await
        .unwrap();
    assert_eq!(throttled.len(), 1, "{throttled:?}");
    assert_eq!(throttled[0].target.as_deref(), Some(ADMIN_EMAIL));
}

#[tokio::test]
async fn the_console_cookie_is_its_own_and_logout_ends_the_session() {
    let app = TestApp::spawn().await;
    let console = Console::new(&app);
    let token = hidden(&console.get("/console/login").await.body, "csrf_token");
    let res = console
        .http
        .post(format!("{}/console/login", console.base))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", ADMIN_EMAIL),
            ("password", ADMIN_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let cookie = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("vestibule_console="))
        .expect("a console session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/console"), "{cookie}");
    assert_ne!(
        hidden(&console.get("/console/workspaces").await.body, "csrf_token"),
        token,
        "the CSRF token is renewed on sign-in"
    );

    // Logging out needs the CSRF token too.
    let refused = console.post_raw("/console/logout", &[]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        console.get("/console/workspaces").await.status,
        StatusCode::OK
    );
    let out = console.post("/console/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location.as_deref(), Some("/console/login"));
    assert_eq!(
        console.get("/console/workspaces").await.status,
        StatusCode::SEE_OTHER
    );
}

// ---- workspaces ----

#[tokio::test]
async fn workspaces_are_created_and_listed_with_names_escaped() {
    let app = TestApp::spawn().await;
    let console = Console::signed_in(&app).await;
    let created = console
        .post(
            "/console/workspaces",
            &[("slug", "acme"), ("name", "<script>alert(1)</script>")],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    assert_eq!(
        created.location.as_deref(),
        Some("/console/workspaces/acme")
    );
    let page = console.get("/console/workspaces/acme").await;
    assert!(page.body.contains("Workspace acme created."));
    assert!(!page.body.contains("<script>alert(1)</script>"));
    assert!(
        page.body
            .contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;")
    );
    let list = console.get("/console/workspaces").await;
    assert!(list.body.contains("/console/workspaces/acme"));
    assert!(!list.body.contains("<script>alert(1)</script>"));
    // The discovery document exists at once (the cached absence was forgotten).
    let discovery = app.get("/w/acme/.well-known/openid-configuration").await;
    assert_eq!(discovery.status(), StatusCode::OK);

    // Invalid and duplicate slugs: message beside the field, typed values kept.
    let bad = console
        .post(
            "/console/workspaces",
            &[("slug", "Bad Slug"), ("name", "Kept")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        field_error(&bad.body, "slug")
            .unwrap()
            .contains("lowercase")
    );
    assert_eq!(input_value(&bad.body, "slug"), "Bad Slug");
    assert_eq!(input_value(&bad.body, "name"), "Kept");
    let duplicate = console
        .post(
            "/console/workspaces",
            &[("slug", "acme"), ("name", "Again")],
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::BAD_REQUEST);
    assert!(
        field_error(&duplicate.body, "slug")
            .unwrap()
            .contains("already exists")
    );
    assert_eq!(
        workspaces::get(&app.core.db, "acme").await.unwrap().name,
        "<script>alert(1)</script>",
        "the duplicate changed nothing"
    );

    // Without the CSRF token: 403 and nothing created.
    let forged = console
        .post_raw("/console/workspaces", &[("slug", "forged"), ("name", "F")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let wrong = console
        .post_raw(
            "/console/workspaces",
            &[("csrf_token", "guess"), ("slug", "forged"), ("name", "F")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert!(wrong.body.contains("expired"));
    assert!(
        workspaces::find(&app.core.db, "forged")
            .await
            .unwrap()
            .is_none()
    );
}

/// Every settings field as the form shows it, for `slug`, with `overrides` applied.
pub(crate) async fn settings_form(
    console: &Console,
    slug: &str,
    overrides: &[(&str, &str)],
) -> Vec<(String, String)> {
    let page = console.get(&format!("/console/workspaces/{slug}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let mut fields: Vec<(String, String)> = [
        "name",
        "user_code_length",
        "device_code_ttl",
        "polling_interval",
        "access_token_ttl",
        "id_token_ttl",
        "refresh_token_ttl",
        "device_grant_max_age",
        "audience",
    ]
    .iter()
    .map(|n| ((*n).to_owned(), input_value(&page.body, n)))
    .collect();
    let charset = if page.body.contains("value=\"digits\" selected") {
        "digits"
    } else {
        "base20"
    };
    fields.push(("user_code_charset".into(), charset.into()));
    for checkbox in [
        "device_flow_enabled",
        "consent_skip",
        "dynamic_registration",
        "new_device_email",
    ] {
        let marker = format!("name=\"{checkbox}\" type=\"checkbox\" value=\"on\" checked");
        if page.body.contains(&marker) {
            fields.push((checkbox.into(), "on".into()));
        }
    }
    for (name, value) in overrides {
        fields.retain(|(n, _)| n != name);
        if !value.is_empty() || *name == "audience" {
            fields.push(((*name).to_owned(), (*value).to_owned()));
        }
    }
    fields
}

pub(crate) async fn post_settings(
    console: &Console,
    slug: &str,
    fields: &[(String, String)],
) -> Page {
    let borrowed: Vec<(&str, &str)> = fields
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    console
        .post(&format!("/console/workspaces/{slug}"), &borrowed)
        .await
}

#[tokio::test]
async fn settings_change_what_the_device_endpoint_returns_at_once() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("tv", workspaces::Changes::default()).await;
    let (client_id, _) = app.client(&ws, true, &["device_code"], "openid").await;
    let ask = || async {
        let res = reqwest::Client::new()
            .post(app.url("/w/tv/device_authorization"))
            .form(&[("client_id", client_id.as_str()), ("scope", "openid")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        res.json::<serde_json::Value>().await.unwrap()
    };
    let before = ask().await;
    assert_eq!(
        before["user_code"].as_str().unwrap().replace('-', "").len(),
        8,
        "the default, now cached"
    );

    let console = Console::signed_in(&app).await;
    let fields = settings_form(
        &console,
        "tv",
        &[
            ("user_code_length", "10"),
            ("user_code_charset", "digits"),
            ("name", "Living room"),
            ("consent_skip", ""),
        ],
    )
    .await;
    let saved = post_settings(&console, "tv", &fields).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    assert_eq!(saved.location.as_deref(), Some("/console/workspaces/tv"));
    let page = console.get("/console/workspaces/tv").await;
    assert!(page.body.contains("Settings saved."));
    assert_eq!(input_value(&page.body, "user_code_length"), "10");
    let stored = workspaces::get(&app.core.db, "tv").await.unwrap();
    assert_eq!(stored.name, "Living room");
    assert!(
        !stored.consent_skip,
        "an unticked box turns the setting off"
    );
    assert_eq!(
        stored.device_code_ttl, 600,
        "untouched fields keep their values"
    );

    let after = ask().await;
    let code = after["user_code"].as_str().unwrap().replace('-', "");
    assert_eq!(code.len(), 10, "{after}");
    assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
}

#[tokio::test]
async fn settings_errors_show_beside_the_field_and_change_nothing() {
    let app = TestApp::spawn().await;
    app.workspace("home", workspaces::Changes::default()).await;
    let console = Console::signed_in(&app).await;
    for (field, typed, needle) in [
        ("user_code_length", "13", "6 to 12"),
        ("user_code_length", "eight", "whole number"),
        ("device_code_ttl", "0", "from 1 to"),
        ("polling_interval", "-5", "from 1 to"),
        ("access_token_ttl", "99999999999", "from 1 to"),
        ("device_grant_max_age", "0", "from 1 to"),
        ("device_grant_max_age", "", "whole number"),
        ("user_code_charset", "hex", "base20 or digits"),
        ("audience", "has spaces in it", "without spaces"),
        ("name", "   ", "must not be empty"),
    ] {
        let fields = settings_form(
            &console,
            "home",
            &[(field, typed), ("id_token_ttl", "1234")],
        )
        .await;
        let page = post_settings(&console, "home", &fields).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{field}={typed}");
        let message = field_error(&page.body, field)
            .unwrap_or_else(|| panic!("no error beside {field}: {}", page.body));
        assert!(message.contains(needle), "{field}: {message}");
        if field != "user_code_charset" {
            assert_eq!(
                input_value(&page.body, field),
                typed,
                "{field}: typed value kept"
            );
        }
        assert_eq!(
            input_value(&page.body, "id_token_ttl"),
            "1234",
            "other typed values kept"
        );
        let stored = workspaces::get(&app.core.db, "home").await.unwrap();
        assert_eq!(stored.user_code_length, 8);
        assert_eq!(stored.id_token_ttl, 3600, "nothing was saved");
    }

    // Without a CSRF token: 403, nothing saved.
    let page = console
        .post_raw(
            "/console/workspaces/home",
            &[("name", "Forged"), ("user_code_length", "6")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert_eq!(
        workspaces::get(&app.core.db, "home").await.unwrap().name,
        "home"
    );
    assert_eq!(
        console.get("/console/workspaces/nope").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_entropy_guardrail_warns_about_weak_codes() {
    let app = TestApp::spawn().await;
    app.workspace("home", workspaces::Changes::default()).await;
    let console = Console::signed_in(&app).await;
    let page = console.get("/console/workspaces/home").await;
    assert_eq!(
        data_field(&page.body, "keyspace").as_deref(),
        Some("25,600,000,000")
    );
    assert!(
        data_field(&page.body, "entropy_bits")
            .unwrap()
            .starts_with("34.6")
    );
    assert!(
        page.body.contains("one attacker address"),
        "the assumption is stated"
    );
    assert!(!page.body.contains("data-warning=\"weak-user-codes\""));

    let fields = settings_form(
        &console,
        "home",
        &[
            ("user_code_length", "6"),
            ("user_code_charset", "digits"),
            ("device_code_ttl", "3600"),
        ],
    )
    .await;
    assert_eq!(
        post_settings(&console, "home", &fields).await.status,
        StatusCode::SEE_OTHER
    );
    let page = console.get("/console/workspaces/home").await;
    assert_eq!(
        data_field(&page.body, "keyspace").as_deref(),
        Some("1,000,000")
    );
    assert_eq!(data_field(&page.body, "attempts").as_deref(), Some("120"));
    assert!(
        page.body.contains("data-warning=\"weak-user-codes\""),
        "{}",
        page.body
    );
}

// ---- clients ----

/// What the token endpoint says to these client credentials with a device code it never
/// issued: `invalid_grant` (400) once the client authenticated, `invalid_client` (401) if not.
async fn token_status(app: &TestApp, slug: &str, client_id: &str, secret: &str) -> StatusCode {
    reqwest::Client::new()
        .post(app.url(&format!("/w/{slug}/token")))
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", "never-issued"),
        ])
        .send()
        .await
        .unwrap()
        .status()
}

async fn create_client(console: &Console, slug: &str, form: &[(&str, &str)]) -> Page {
    console
        .post(&format!("/console/workspaces/{slug}/clients"), form)
        .await
}

#[tokio::test]
async fn a_client_secret_is_shown_once_and_a_new_one_replaces_it() {
    let app = TestApp::spawn().await;
    app.workspace("home", workspaces::Changes::default()).await;
    let console = Console::signed_in(&app).await;
    let created = create_client(
        &console,
        "home",
        &[
            ("name", "Backend"),
            ("grants", "device_code"),
            ("grants", "client_credentials"),
            ("scopes", "openid profile"),
            ("redirect_uris", ""),
            ("access", "everyone"),
        ],
    )
    .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let location = created.location.unwrap();
    let page = console.get(&location).await;
    let client_id = data_field(&page.body, "client_id").unwrap();
    assert_eq!(
        location,
        format!("/console/workspaces/home/clients/{client_id}")
    );
    let secret = data_field(&page.body, "client_secret").expect("the secret, shown once");
    assert!(secret.len() >= 43, "{secret}");
    let again = console.get(&location).await;
    assert_eq!(data_field(&again.body, "client_id").unwrap(), client_id);
    assert!(
        data_field(&again.body, "client_secret").is_none(),
        "only once"
    );
    assert!(!again.body.contains(&secret));
    assert_eq!(
        token_status(&app, "home", &client_id, &secret).await,
        StatusCode::BAD_REQUEST
    );

    let secret_path = format!("{location}/secret");
    assert_eq!(
        console.post_raw(&secret_path, &[]).await.status,
        StatusCode::FORBIDDEN,
        "a new secret needs the CSRF token"
    );
    assert_eq!(
        token_status(&app, "home", &client_id, &secret).await,
        StatusCode::BAD_REQUEST
    );
    let made = console.post(&secret_path, &[]).await;
    assert_eq!(made.status, StatusCode::SEE_OTHER);
    assert_eq!(made.location.as_deref(), Some(location.as_str()));
    let page = console.get(&location).await;
    let new_secret = data_field(&page.body, "client_secret").expect("the new secret");
    assert_ne!(new_secret, secret);
    assert_eq!(
        token_status(&app, "home", &client_id, &secret).await,
        StatusCode::UNAUTHORIZED,
        "the old secret stops working at once"
    );
    assert_eq!(
        token_status(&app, "home", &client_id, &new_secret).await,
        StatusCode::BAD_REQUEST
    );
    assert!(data_field(&console.get(&location).await.body, "client_secret").is_none());

    // A public client has no secret to show.
    let public = create_client(
        &console,
        "home",
        &[
            ("name", "TV"),
            ("grants", "device_code"),
            ("public", "on"),
            ("scopes", "openid"),
            ("access", "everyone"),
        ],
    )
    .await;
    let page = console.get(&public.location.unwrap()).await;
    assert!(data_field(&page.body, "client_id").is_some());
    assert!(data_field(&page.body, "client_secret").is_none());
}

#[tokio::test]
async fn client_forms_validate_beside_the_field_and_escape_names() {
    let app = TestApp::spawn().await;
    let ws = app.workspace("home", workspaces::Changes::default()).await;
    let console = Console::signed_in(&app).await;
    for (form, field, needle) in [
        (
            vec![
                ("name", "No grants"),
                ("scopes", "openid"),
                ("access", "everyone"),
            ],
            "grants",
            "at least one grant",
        ),
        (
            vec![
                ("name", "Public CC"),
                ("grants", "client_credentials"),
                ("public", "on"),
                ("scopes", "openid"),
                ("access", "everyone"),
            ],
            "grants",
            "public client",
        ),
        (
            vec![
                ("name", "Web"),
                ("grants", "authorization_code"),
                ("redirect_uris", "http://example.com/cb"),
                ("scopes", "openid"),
                ("access", "everyone"),
            ],
            "redirect_uris",
            "https",
        ),
        (
            vec![
                ("name", "Bad scope"),
                ("grants", "device_code"),
                ("scopes", "a\"b"),
                ("access", "everyone"),
            ],
            "scopes",
            "scope",
        ),
        (
            vec![
                ("name", ""),
                ("grants", "device_code"),
                ("scopes", "openid"),
                ("access", "everyone"),
            ],
            "name",
            "must not be empty",
        ),
        (
            vec![
                ("name", "Who"),
                ("grants", "device_code"),
                ("scopes", "openid"),
                ("access", "nobody"),
            ],
            "access",
            "everyone or assigned",
        ),
    ] {
        let page = create_client(&console, "home", &form).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{field}");
        let message =
            field_error(&page.body, field).unwrap_or_else(|| panic!("no error beside {field}"));
        assert!(message.contains(needle), "{field}: {message}");
        let typed_name = form.iter().find(|(k, _)| *k == "name").unwrap().1;
        assert_eq!(
            input_value(&page.body, "name"),
            typed_name,
            "typed name kept"
        );
    }
    assert!(
        vestibule_core::services::clients::list(&app.core.db, ws.id)
            .await
            .unwrap()
            .is_empty()
    );

    // Escaping, then an invalid edit that changes nothing.
    let created = create_client(
        &console,
        "home",
        &[
            ("name", "<script>alert(1)</script>"),
            ("grants", "device_code"),
            ("public", "on"),
            ("scopes", "openid"),
            ("access", "everyone"),
        ],
    )
    .await;
    let location = created.location.unwrap();
    for path in [
        location.clone(),
        "/console/workspaces/home/clients".to_owned(),
        format!("{location}/delete"),
    ] {
        let body = console.get(&path).await.body;
        assert!(!body.contains("<script>alert(1)</script>"), "{path}");
        assert!(body.contains("&lt;script&gt;"), "{path}");
    }
    let edit = console
        .post(
            &location,
            &[
                ("name", "Renamed"),
                ("scopes", "openid"),
                ("access", "everyone"),
            ],
        )
        .await;
    assert_eq!(edit.status, StatusCode::BAD_REQUEST);
    assert!(field_error(&edit.body, "grants").is_some());
    assert_eq!(
        input_value(&edit.body, "name"),
        "Renamed",
        "typed value kept"
    );
    let client_id = location.rsplit('/').next().unwrap();
    let stored = vestibule_core::services::clients::find(&app.core.db, client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, "<script>alert(1)</script>", "nothing saved");

    // A valid edit, and one refused for its CSRF token.
    let forged = console
        .post_raw(
            &location,
            &[
                ("name", "Forged"),
                ("grants", "device_code"),
                ("scopes", "openid"),
                ("access", "everyone"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let saved = console
        .post(
            &location,
            &[
                ("name", "Kitchen TV"),
                ("grants", "device_code"),
                ("grants", "refresh_token"),
                ("public", "on"),
                ("scopes", "openid offline_access"),
                ("access", "everyone"),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let stored = vestibule_core::services::clients::find(&app.core.db, client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, "Kitchen TV");
    assert_eq!(stored.grants, "device_code refresh_token");
    assert_eq!(stored.access, "everyone");
    assert!(stored.public && stored.secret_hash.is_none());
}

#[tokio::test]
async fn clients_are_reachable_only_through_their_own_workspace_and_deleted_after_confirmation() {
    let app = TestApp::spawn().await;
    let a = app.workspace("alpha", workspaces::Changes::default()).await;
    app.workspace("beta", workspaces::Changes::default()).await;
    let (client_id, secret) = app.client(&a, false, &["device_code"], "openid").await;
    let secret = secret.unwrap();
    let console = Console::signed_in(&app).await;
    let foreign = format!("/console/workspaces/beta/clients/{client_id}");
    assert_eq!(console.get(&foreign).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        console.get(&format!("{foreign}/delete")).await.status,
        StatusCode::NOT_FOUND
    );
    let edit = console
        .post(
            &foreign,
            &[
                ("name", "Stolen"),
                ("grants", "device_code"),
                ("scopes", "openid"),
                ("access", "everyone"),
            ],
        )
        .await;
    assert_eq!(edit.status, StatusCode::NOT_FOUND);
    assert_eq!(
        console.post(&format!("{foreign}/secret"), &[]).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        console
            .post(&format!("{foreign}/delete"), &[("confirm", "yes")])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let list = console.get("/console/workspaces/beta/clients").await;
    assert!(
        !list.body.contains(&client_id),
        "not listed in another workspace"
    );
    let stored = vestibule_core::services::clients::find(&app.core.db, &client_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, "Test TV");
    assert_eq!(
        token_status(&app, "alpha", &client_id, &secret).await,
        StatusCode::BAD_REQUEST
    );

    let own = format!("/console/workspaces/alpha/clients/{client_id}");
    let confirm = console.get(&format!("{own}/delete")).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("name=\"confirm\""));
    let unconfirmed = console.post(&format!("{own}/delete"), &[]).await;
    assert_eq!(unconfirmed.status, StatusCode::BAD_REQUEST);
    assert!(field_error(&unconfirmed.body, "confirm").is_some());
    let forged = console
        .post_raw(&format!("{own}/delete"), &[("confirm", "yes")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(
        vestibule_core::services::clients::find(&app.core.db, &client_id)
            .await
            .unwrap()
            .is_some()
    );

    let deleted = console
        .post(&format!("{own}/delete"), &[("confirm", "yes")])
        .await;
    assert_eq!(deleted.status, StatusCode::SEE_OTHER);
    assert_eq!(
        deleted.location.as_deref(),
        Some("/console/workspaces/alpha/clients")
    );
    assert!(
        vestibule_core::services::clients::find(&app.core.db, &client_id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(console.get(&own).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        token_status(&app, "alpha", &client_id, &secret).await,
        StatusCode::UNAUTHORIZED,
        "a deleted client authenticates no more"
    );
}

// ---- users ----

#[tokio::test]
async fn users_are_created_searched_edited_disabled_and_isolated() {
    let app = TestApp::spawn().await;
    let home = app.workspace("home", workspaces::Changes::default()).await;
    let other = app.workspace("other", workspaces::Changes::default()).await;
    let stranger = app.user(&other, "stranger", "stranger password").await;
    let console = Console::signed_in(&app).await;
    let created = console
        .post(
            "/console/workspaces/home/users",
            &[
                ("username", "alice"),
                ("email", "alice@example.test"),
                ("name", "<script>x</script>"),
                ("password", "alice password"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER, "{}", created.body);
    let alice_page = created.location.unwrap();
    let page = console.get(&alice_page).await;
    assert!(page.body.contains("User alice created."));
    assert!(!page.body.contains("<script>x</script>"));
    app.user(&home, "bob", "bob password").await;

    let search = console.get("/console/workspaces/home/users?q=ALICE@").await;
    assert!(
        search.body.contains(">alice<") && !search.body.contains(">bob<"),
        "{}",
        search.body
    );
    let all = console.get("/console/workspaces/home/users").await;
    assert!(all.body.contains(">alice<") && all.body.contains(">bob<"));
    assert!(
        !all.body.contains("stranger"),
        "users of other workspaces are not listed"
    );
    let wildcard = console.get("/console/workspaces/home/users?q=%25").await;
    assert!(!wildcard.body.contains(">alice<"), "% is taken literally");

    // Validation: beside the field, typed values kept, nothing created.
    let bad = console
        .post(
            "/console/workspaces/home/users",
            &[
                ("username", "carol"),
                ("email", "not-an-email"),
                ("name", "Carol"),
                ("password", "carol password"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(field_error(&bad.body, "email").is_some());
    assert_eq!(input_value(&bad.body, "username"), "carol");
    let short = console
        .post(
            "/console/workspaces/home/users",
            &[("username", "carol"), ("password", "short")],
        )
        .await;
    assert!(
        field_error(&short.body, "password")
            .unwrap()
            .contains("8 characters")
    );
    let taken = console
        .post(
            "/console/workspaces/home/users",
            &[("username", "bob"), ("password", "long enough")],
        )
        .await;
    assert!(
        field_error(&taken.body, "username")
            .unwrap()
            .contains("already taken")
    );
    assert!(
        vestibule_core::services::users::find_by_username(&app.core.db, home.id, "carol")
            .await
            .unwrap()
            .is_none()
    );

    // Profile, password and status.
    let saved = console
        .post(
            &alice_page,
            &[("email", "alice@new.example"), ("name", "Alice")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    let clash = console
        .post(
            &alice_page,
            &[("email", "bob@example.test"), ("name", "Typed")],
        )
        .await;
    assert_eq!(clash.status, StatusCode::BAD_REQUEST);
    assert!(
        field_error(&clash.body, "email")
            .unwrap()
            .contains("already belongs")
    );
    assert_eq!(input_value(&clash.body, "name"), "Typed");
    let alice = vestibule_core::services::users::find_by_username(&app.core.db, home.id, "alice")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.email.as_deref(), Some("alice@new.example"));
    assert_eq!(alice.name.as_deref(), Some("Alice"));

    let password = console
        .post(
            &format!("{alice_page}/password"),
            &[("password", "a new password")],
        )
        .await;
    assert_eq!(password.status, StatusCode::SEE_OTHER);
    let authenticate = |pw: &'static str| {
        vestibule_core::services::users::authenticate(&app.core.db, home.id, "alice", pw)
    };
    assert!(authenticate("a new password").await.unwrap().is_some());
    assert!(authenticate("alice password").await.unwrap().is_none());

    assert_eq!(
        console
            .post_raw(&format!("{alice_page}/status"), &[("status", "disabled")])
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert!(
        authenticate("a new password").await.unwrap().is_some(),
        "CSRF refusal changed nothing"
    );
    let disabled = console
        .post(&format!("{alice_page}/status"), &[("status", "disabled")])
        .await;
    assert_eq!(disabled.status, StatusCode::SEE_OTHER);
    assert!(
        authenticate("a new password").await.unwrap().is_none(),
        "a disabled user cannot sign in"
    );
    assert!(
        console
            .get(&alice_page)
            .await
            .body
            .contains("User disabled.")
    );

    // Another workspace's user through this workspace's URLs: 404, unchanged.
    let foreign = format!("/console/workspaces/home/users/{}", stranger.id);
    assert_eq!(console.get(&foreign).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        console
            .post(&foreign, &[("email", "x@example.test"), ("name", "X")])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        console
            .post(&format!("{foreign}/status"), &[("status", "disabled")])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let unchanged = vestibule_core::services::users::find_by_id(&app.core.db, stranger.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!unchanged.disabled);
    assert_eq!(unchanged.email.as_deref(), Some("stranger@example.test"));
}

// ---- admins and the audit log ----

#[tokio::test]
async fn an_admin_cannot_disable_themself_and_adds_others() {
    let app = TestApp::spawn().await;
    let console = Console::signed_in(&app).await;
    let me = vestibule_core::services::admins::find_by_email(&app.core.db, ADMIN_EMAIL)
        .await
        .unwrap()
        .unwrap();
    let page = console.get("/console/admins").await;
    assert!(
        page.body.contains("outbox"),
        "says why there is no mail invitation yet"
    );
    assert!(
        !page
            .body
            .contains(&format!("/console/admins/{}/status", me.id)),
        "no button to disable oneself"
    );
    let refused = console
        .post(
            &format!("/console/admins/{}/status", me.id),
            &[("status", "disabled")],
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("cannot disable yourself"));
    let me = vestibule_core::services::admins::find(&app.core.db, me.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!me.disabled);
    assert_eq!(
        console.get("/console/admins").await.status,
        StatusCode::OK,
        "still signed in"
    );

    let bad = console
        .post(
            "/console/admins",
            &[("email", "nope"), ("password", "long enough")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(field_error(&bad.body, "email").is_some());
    assert_eq!(input_value(&bad.body, "email"), "nope");
    let dup = console
        .post(
            "/console/admins",
            &[("email", ADMIN_EMAIL), ("password", "long enough")],
        )
        .await;
    assert!(
        field_error(&dup.body, "email")
            .unwrap()
            .contains("already exists")
    );
    let forged = console
        .post_raw(
            "/console/admins",
            &[("email", "x@example.test"), ("password", "long enough")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(
        vestibule_core::services::admins::find_by_email(&app.core.db, "x@example.test")
            .await
            .unwrap()
            .is_none()
    );

    let created = console
        .post(
            "/console/admins",
            &[("email", "ops@example.test"), ("password", "ops password")],
        )
        .await;
    assert_eq!(created.status, StatusCode::SEE_OTHER);
    let ops = Console::new(&app)
        .sign_in("ops@example.test", "ops password")
        .await;
    assert_eq!(ops.status, StatusCode::SEE_OTHER, "the new admin signs in");
}

#[tokio::test]
async fn the_audit_log_shows_console_actions_newest_first_and_filters() {
    let app = TestApp::spawn().await;
    let console = Console::signed_in(&app).await;
    console
        .post("/console/workspaces", &[("slug", "acme"), ("name", "Acme")])
        .await;
    create_client(
        &console,
        "acme",
        &[
            ("name", "Acme TV"),
            ("grants", "device_code"),
            ("public", "on"),
            ("scopes", "openid"),
            ("access", "everyone"),
        ],
    )
    .await;
    let page = console.get("/console/audit").await;
    assert_eq!(page.status, StatusCode::OK);
    let client_at = page
        .body
        .find("data-action=\"client.created\"")
        .expect("client.created");
    let workspace_at = page
        .body
        .find("data-action=\"workspace.created\"")
        .expect("workspace.created");
    assert!(client_at < workspace_at, "newest first");
    assert!(page.body.contains(&format!("admin:{ADMIN_EMAIL}")));
    assert!(page.body.contains("data-action=\"admin.signed_in\""));

    let clients_only = console.get("/console/audit?action=client").await;
    assert!(clients_only.body.contains("data-action=\"client.created\""));
    assert!(
        !clients_only
            .body
            .contains("data-action=\"workspace.created\"")
    );
    let acme_only = console
        .get("/console/audit?workspace=acme&actor=admin%3A")
        .await;
    assert!(acme_only.body.contains("data-action=\"workspace.created\""));
    assert!(
        !acme_only.body.contains("data-action=\"admin.signed_in\""),
        "no workspace"
    );
    let cli = console.get("/console/audit?actor=cli").await;
    assert!(!cli.body.contains("data-action=\"client.created\""));
    assert_eq!(
        console.get("/console/audit?workspace=nope").await.status,
        StatusCode::NOT_FOUND
    );
}
