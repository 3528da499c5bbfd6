//! Hostile protocol input: oversized bodies and floods of parameters, error descriptions that
//! must stay within RFC 6749 §5.2's character set whatever was sent, and identifiers holding
//! control characters (NUL among them, which PostgreSQL cannot store or compare), each answered
//! with a 4xx that says what is wrong, never a 500.

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use serde_json::Value;
use vestibule_core::services::workspaces::Changes;

use crate::console::{Console, hidden};
use crate::helpers::{ADMIN_PASSWORD, TestApp};

const PROTOCOL_ENDPOINTS: [&str; 5] = [
    "/w/home/token",
    "/w/home/device_authorization",
    "/w/home/revoke",
    "/w/home/introspect",
    "/w/home/userinfo",
];

/// The largest protocol request body the server reads.
const BODY_LIMIT: usize = 16 * 1024;

/// Values no identifier, grant type, scope or hint may hold.
const HOSTILE: [&str; 6] = [
    "quo\"te",
    "back\\slash",
    "nul\0byte",
    "bell\u{7}\ttab\r\nline",
    "del\u{7f}",
    "accent é, snowman ☃",
];

/// An app with the workspace `home`, a public device client and a confidential client with
/// `client_credentials`.
struct Lab {
    app: TestApp,
    public_id: String,
    confidential: (String, String),
}

async fn lab() -> Lab {
    let app = TestApp::spawn().await;
    let ws = app.workspace("home", Changes::default()).await;
    let (public_id, _) = app
        .client(
            &ws,
            true,
            &["device_code", "refresh_token"],
            "openid profile",
        )
        .await;
    let (id, secret) = app
        .client(&ws, false, &["client_credentials"], "api:read")
        .await;
    app.user(&ws, "alice", "alice password").await;
    Lab {
        app,
        public_id,
        confidential: (id, secret.unwrap()),
    }
}

/// A form body of `n` bytes or more made of distinct keys, as a flood would be.
fn distinct_keys(n: usize) -> String {
    let mut body = String::with_capacity(n + 16);
    let mut i = 0;
    while body.len() < n {
        body.push_str(&format!("k{i}=1&"));
        i += 1;
    }
    body
}

async fn post_raw(app: &TestApp, path: &str, body: String) -> (StatusCode, HeaderMap, String) {
    let res = app
        .client
        .post(app.url(path))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (
        res.status(),
        res.headers().clone(),
        res.text().await.unwrap(),
    )
}

/// The body as an RFC 6749 §5.2 error with `code`, not to be cached.
#[track_caller]
fn oauth_error(headers: &HeaderMap, body: &str, code: &str) -> String {
    assert_eq!(headers[CONTENT_TYPE], "application/json", "{body}");
    assert_eq!(headers[CACHE_CONTROL], "no-store");
    let json: Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["error"], code, "{json}");
    json["error_description"].as_str().unwrap().to_owned()
}

/// RFC 6749 §5.2: `error_description` is %x20-21 / %x23-5B / %x5D-7E.
#[track_caller]
fn assert_describable(description: &str) {
    assert!(
        description
            .bytes()
            .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e)),
        "outside RFC 6749 §5.2: {description:?}"
    );
}

#[tokio::test]
async fn oversized_bodies_get_an_oauth_error_at_every_protocol_endpoint() {
    let lab = lab().await;
    for path in PROTOCOL_ENDPOINTS {
        for size in [BODY_LIMIT + 1, 2 * 1024 * 1024] {
            let (status, headers, body) = post_raw(&lab.app, path, distinct_keys(size)).await;
            assert_eq!(
                status,
                StatusCode::PAYLOAD_TOO_LARGE,
                "{path}, {size}: {body}"
            );
            let description = oauth_error(&headers, &body, "invalid_request");
            assert!(description.contains("16 KiB"), "{description}");
        }
    }
}

#[tokio::test]
async fn a_repeated_parameter_is_found_among_many_distinct_ones() {
    let lab = lab().await;
    let flood = distinct_keys(BODY_LIMIT - 200);
    let body = format!(
        "grant_type=client_credentials&{flood}client_id={}&grant_type=refresh_token",
        lab.public_id
    );
    assert!(body.len() <= BODY_LIMIT);
    let (status, headers, body) = post_raw(&lab.app, "/w/home/token", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let description = oauth_error(&headers, &body, "invalid_request");
    assert!(
        description.contains("grant_type is repeated"),
        "{description}"
    );

    // A body just within the limit is read.
    let body = format!(
        "{}client_id={}",
        distinct_keys(BODY_LIMIT - 100),
        lab.public_id
    );
    assert!(body.len() <= BODY_LIMIT);
    let (status, headers, body) = post_raw(&lab.app, "/w/home/token", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let description = oauth_error(&headers, &body, "invalid_request");
    assert!(description.contains("grant_type"), "{description}");
}

#[tokio::test]
async fn error_descriptions_stay_within_the_rfc_6749_character_set() {
    let lab = lab().await;
    let (rs, rs_secret) = (&lab.confidential.0, lab.confidential.1.as_str());
    for value in HOSTILE {
        let (status, body, headers) = lab
            .app
            .post_form(
                "/w/home/token",
                &[("grant_type", value), ("client_id", &lab.public_id)],
                None,
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "unsupported_grant_type");
        assert_eq!(headers[CACHE_CONTROL], "no-store");
        assert_describable(body["error_description"].as_str().unwrap());

        for (path, form, basic) in [
            (
                "/w/home/device_authorization",
                vec![("client_id", lab.public_id.as_str()), ("scope", value)],
                None,
            ),
            (
                "/w/home/token",
                vec![("grant_type", "client_credentials"), ("scope", value)],
                Some((rs.as_str(), rs_secret)),
            ),
        ] {
            let (status, body, _) = lab.app.post_form(path, &form, basic).await;
            assert_eq!(status, 400, "{path}: {body}");
            assert_eq!(body["error"], "invalid_scope", "{path}");
            assert_describable(body["error_description"].as_str().unwrap());
        }

        for path in ["/w/home/revoke", "/w/home/introspect"] {
            let (status, body, _) = lab
                .app
                .post_form(
                    path,
                    &[("token", value), ("token_type_hint", value)],
                    Some((rs, rs_secret)),
                )
                .await;
            assert_eq!(status, 200, "{path}: {body}");
        }
        // Hostile parameter names come back in the repeated-parameter description.
        let (status, body, _) = lab
            .app
            .post_form("/w/home/token", &[(value, "1"), (value, "2")], None)
            .await;
        assert_eq!(status, 400, "{body}");
        assert_describable(body["error_description"].as_str().unwrap());
    }
}

#[tokio::test]
async fn bearer_challenges_keep_their_description_within_the_character_set() {
    // A parameter sent twice is named in the description; here its name is hostile.
    let lab = lab().await;
    for value in HOSTILE {
        let res = lab
            .app
            .client
            .post(lab.app.url("/w/home/userinfo"))
            .form(&[(value, "1"), (value, "2")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST);
        let challenge = res.headers()[WWW_AUTHENTICATE].to_str().unwrap().to_owned();
        let description = challenge
            .split_once("error_description=\"")
            .and_then(|(_, rest)| rest.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{challenge}"));
        assert_describable(description);
        let json: Value = res.json().await.unwrap();
        assert_describable(json["error_description"].as_str().unwrap());
    }
}

/// Client identifiers with control characters, in the body and in Basic credentials, at every
/// endpoint that authenticates a client.
#[tokio::test]
async fn client_ids_with_control_characters_are_malformed_requests() {
    let lab = lab().await;
    for id in ["nul\0id", "\0", "bell\u{7}", "line\nfeed", "del\u{7f}"] {
        for path in &PROTOCOL_ENDPOINTS[..4] {
            for (form, basic) in [
                (
                    vec![
                        ("client_id", id),
                        ("grant_type", "client_credentials"),
                        ("token", "t"),
                    ],
                    None,
                ),
                (
                    vec![
                        ("client_id", id),
                        ("client_secret", "s"),
                        ("grant_type", "client_credentials"),
                        ("token", "t"),
                    ],
                    None,
                ),
                (
                    vec![("grant_type", "client_credentials"), ("token", "t")],
                    Some((id, "secret")),
                ),
            ] {
                let (status, body, headers) = lab.app.post_form(path, &form, basic).await;
                assert_eq!(status, 400, "{path} {id:?} {basic:?}: {body}");
                assert_eq!(body["error"], "invalid_request", "{path} {id:?}");
                assert_eq!(headers[CACHE_CONTROL], "no-store");
                let description = body["error_description"].as_str().unwrap();
                assert!(
                    description.contains("client_id") && description.contains("control"),
                    "{description}"
                );
                assert_describable(description);
            }
        }
    }
}

#[tokio::test]
async fn a_workspace_path_with_control_characters_is_not_found() {
    let lab = lab().await;
    for path in [
        "/w/ho%00me/token",
        "/w/%01/token",
        "/w/%0A/device_authorization",
    ] {
        let (status, body, _) = lab
            .app
            .post_form(path, &[("client_id", &lab.public_id)], None)
            .await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["error"], "invalid_request");
        assert_describable(body["error_description"].as_str().unwrap());
    }
}

/// Fills in the form of the page at `path` in `browser` (taking its CSRF token) and posts it
/// there.
async fn submit(
    browser: &reqwest::Client,
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let page = browser.get(app.url(path)).send().await.unwrap();
    let token = hidden(&page.text().await.unwrap(), "csrf_token");
    let mut form = fields.to_vec();
    form.push(("csrf_token", &token));
    browser
        .post(app.url(path))
        .form(&form)
        .send()
        .await
        .unwrap()
}

/// A person at `/activate` with a user code entered, at the sign-in form.
async fn at_sign_in(lab: &Lab) -> reqwest::Client {
    let (status, body, _) = lab
        .app
        .post_form(
            "/w/home/device_authorization",
            &[("client_id", &lab.public_id)],
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let code = body["user_code"].as_str().unwrap();
    let page = submit(&browser, &lab.app, "/activate", &[("user_code", code)]).await;
    assert_eq!(page.url().path(), "/activate/sign-in");
    browser
}

async fn sign_in(browser: &reqwest::Client, app: &TestApp, username: &str) -> reqwest::Response {
    let fields = [("username", username), ("password", "alice password")];
    submit(browser, app, "/activate/sign-in", &fields).await
}

#[tokio::test]
async fn usernames_with_control_characters_get_the_sign_in_form_back() {
    let lab = lab().await;
    let browser = at_sign_in(&lab).await;
    for username in ["ali\0ce", "\0", "alice\u{7}", "al\u{1b}ice"] {
        let res = sign_in(&browser, &lab.app, username).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{username:?}");
        let page = res.text().await.unwrap();
        assert!(page.contains("control characters"), "{page}");
    }
    // Nothing was counted against the browser: the real account still signs in.
    assert_eq!(
        sign_in(&browser, &lab.app, "alice").await.url().path(),
        "/activate/consent"
    );
}

#[tokio::test]
async fn console_emails_with_control_characters_get_the_sign_in_form_back() {
    let lab = lab().await;
    let console = Console::new(&lab.app);
    for email in ["root\0@example.test", "\0", "root@example.test\u{7}"] {
        let token = hidden(&console.get("/console/login").await.body, "csrf_token");
        let page = console
            .post_raw(
                "/console/login",
                &[
                    ("csrf_token", &token),
                    ("email", email),
                    ("password", ADMIN_PASSWORD),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{email:?}");
        assert!(page.body.contains("control characters"), "{}", page.body);
    }
}

#[tokio::test]
async fn console_paths_and_searches_with_control_characters_never_fail() {
    let app = TestApp::spawn().await;
    app.workspace("home", Changes::default()).await;
    let console = Console::signed_in(&app).await;
    for (path, expected) in [
        ("/console/workspaces/ho%00me", StatusCode::NOT_FOUND),
        (
            "/console/workspaces/home/clients/tv%00app",
            StatusCode::NOT_FOUND,
        ),
        ("/console/workspaces/home/users?q=al%00ice", StatusCode::OK),
        ("/console/workspaces/home/devices?q=%00", StatusCode::OK),
        (
            "/console/audit?actor=ad%00min&action=cl%00ient",
            StatusCode::OK,
        ),
    ] {
        let page = console.get(path).await;
        assert_eq!(page.status, expected, "{path}: {}", page.body);
    }
}

mod corpus;
mod raw;

/// A request asking to switch protocols has a body with no declared end: a handler reading it
/// would wait until the client hangs up. Every surface refuses it at once, in its own form, and
/// the server goes on serving.
#[tokio::test]
async fn protocol_upgrade_requests_are_refused_before_their_body_is_read() {
    let lab = lab().await;
    let address = lab.app.address.trim_start_matches("http://").to_owned();
    let upgrade = |method: &str, path: &str| {
        raw::Request::new(method, path)
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
    };
    for path in ["/w/home/token", "/w/home/device_authorization"] {
        let reply = raw::send_holding_open(&address, &upgrade("POST", path))
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        assert_eq!(reply.status, 400, "POST {path}: {}", reply.head());
        let body: Value = serde_json::from_str(&reply.body()).expect("JSON error");
        assert_eq!(body["error"], "invalid_request", "POST {path}");
    }
    for (method, path) in [("POST", "/activate"), ("POST", "/console/login")] {
        let reply = raw::send_holding_open(&address, &upgrade(method, path))
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert_eq!(reply.status, 400, "{method} {path}: {}", reply.head());
    }
    // Other upgrades are ignored (RFC 9110 §7.8): the request is answered as any other.
    let h2c = raw::Request::new("POST", "/w/home/token")
        .header("Upgrade", "h2c")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=nonsense&client_id={}", lab.public_id));
    let reply = raw::send_holding_open(&address, &h2c).await.expect("h2c");
    let body: Value = serde_json::from_str(&reply.body()).expect("JSON error");
    assert_eq!(body["error"], "unsupported_grant_type", "{}", reply.head());
    assert_eq!(lab.app.get("/healthz").await.status(), StatusCode::OK);
}
