//! `/w/{slug}/account`: the end user's approved devices and applications, reviewed and revoked
//! (BCP 247 §6.1.6), signed in as at `/activate`. Driven like a browser, with the device and a
//! resource server speaking OAuth beside it, behind a trusted proxy so that each party has an
//! address of its own.

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, LOCATION, RETRY_AFTER};
use sea_orm::{ColumnTrait as _, EntityTrait as _, QueryFilter as _};
use serde_json::Value;
use vestibule_core::entities::{audit_event, consent, device_grant, grant, user, workspace};
use vestibule_core::services::audit::Actor;
use vestibule_core::services::interaction::Decision;
use vestibule_core::services::workspaces::Changes;
use vestibule_core::services::{clients, users};
use vestibule_core::types::{Access, DisplayName, GrantSet, Proximity, ScopeSet};

use crate::helpers::{TestApp, hidden};

const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const SCOPES: &str = "openid profile offline_access";
const ALICE_PASSWORD: &str = "alice password";
const BOB_PASSWORD: &str = "bob password";
/// Where the device asks from, and where the person's browser is.
const DEVICE_ADDRESS: &str = "198.51.100.77";
const BROWSER_ADDRESS: &str = "203.0.113.45";
const ACCOUNT: &str = "/w/home/account";

/// A workspace `home` with a TV app (device and refresh grants), a resource server that may
/// introspect, and two users; a second workspace `other` with its own user.
struct Setup {
    app: TestApp,
    ws: workspace::Model,
    tv: String,
    rs: (String, String),
    alice: user::Model,
}

async fn setup() -> Setup {
    let app = TestApp::behind_proxy(10).await;
    let ws = app
        .workspace(
            "home",
            Changes {
                name: Some("Home Cloud".into()),
                ..Changes::default()
            },
        )
        .await;
    let tv = clients::create(
        &app.core,
        &Actor::Cli,
        &ws,
        clients::NewClient {
            name: DisplayName::parse("name", "Living Room TV").unwrap(),
            client_id: None,
            public: true,
            grants: GrantSet::parse(["device_code", "refresh_token"]).unwrap(),
            scopes: ScopeSet::parse(SCOPES).unwrap(),
            redirect_uris: Vec::new(),
            dcr_template: false,
            access: Access::Everyone,
            device_networks: Vec::new(),
            proximity: Proximity::Warn,
            after_approval_url: None,
        },
    )
    .await
    .unwrap()
    .client
    .client_id;
    let (rs_id, rs_secret) = app
        .client(&ws, false, &["client_credentials"], "api:read")
        .await;
    let alice = app.user(&ws, "alice", ALICE_PASSWORD).await;
    app.user(&ws, "bob", BOB_PASSWORD).await;
    let other = app.workspace("other", Changes::default()).await;
    app.user(&other, "alice", "other alice password").await;
    Setup {
        app,
        ws,
        tv,
        rs: (rs_id, rs_secret.unwrap()),
        alice,
    }
}

/// Tokens a device got, and the id of its approval (the device request's id).
struct Tokens {
    access: String,
    refresh: String,
    grant: String,
}

impl Setup {
    /// An endpoint's path, from discovery.
    async fn endpoint(&self, field: &str) -> String {
        let meta: Value = self
            .app
            .get("/w/home/.well-known/openid-configuration")
            .await
            .json()
            .await
            .unwrap();
        meta[field]
            .as_str()
            .unwrap()
            .strip_prefix(&self.app.address)
            .unwrap()
            .to_owned()
    }

    /// The TV asks from [`DEVICE_ADDRESS`], as curl: its device code and user code.
    async fn device_asks(&self) -> (String, String) {
        let res = reqwest::Client::new()
            .post(
                self.app
                    .url(&self.endpoint("device_authorization_endpoint").await),
            )
            .header("x-forwarded-for", DEVICE_ADDRESS)
            .header("user-agent", "curl/8.5.0")
            .form(&[("client_id", self.tv.as_str()), ("scope", SCOPES)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: Value = res.json().await.unwrap();
        (
            body["device_code"].as_str().unwrap().to_owned(),
            body["user_code"].as_str().unwrap().to_owned(),
        )
    }

    /// The TV redeems its approved device code.
    async fn redeem(&self, device_code: &str) -> Tokens {
        let (status, body, _) = self
            .app
            .post_form(
                &self.endpoint("token_endpoint").await,
                &[
                    ("grant_type", DEVICE_GRANT),
                    ("device_code", device_code),
                    ("client_id", self.tv.as_str()),
                ],
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let access = body["access_token"].as_str().unwrap().to_owned();
        let claims = access.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims)
                .unwrap(),
        )
        .unwrap();
        Tokens {
            access,
            refresh: body["refresh_token"].as_str().unwrap().to_owned(),
            grant: claims["gid"].as_str().unwrap().to_owned(),
        }
    }

    /// The TV polls with its device code once: the token endpoint's status and answer.
    async fn poll(&self, device_code: &str) -> (u16, Value) {
        let (status, body, _) = self
            .app
            .post_form(
                &self.endpoint("token_endpoint").await,
                &[
                    ("grant_type", DEVICE_GRANT),
                    ("device_code", device_code),
                    ("client_id", self.tv.as_str()),
                ],
                None,
            )
            .await;
        (status, body)
    }

    /// A device approved by alice in `browser` (signing in if asked) that has not polled
    /// since: its device code and its request's id (the id its grant will have).
    async fn approved_not_redeemed(&self, browser: &Browser) -> (String, String) {
        let (device_code, user_code) = self.device_asks().await;
        let mut next = location(&browser.enter_code(&user_code).await);
        if next == "/activate/sign-in" {
            next = location(&browser.sign_in("alice", ALICE_PASSWORD).await);
        }
        if next == "/activate/consent" {
            next = location(&browser.decide("approve").await);
        }
        assert_eq!(next, "/activate/done");
        let approved = device_grant::Entity::find()
            .filter(device_grant::Column::Status.eq("approved"))
            .all(&self.app.core.db)
            .await
            .unwrap();
        assert_eq!(approved.len(), 1, "{approved:?}");
        (device_code, approved[0].id.to_string())
    }

    /// A device approved by alice in `browser` (signing in if asked) and redeemed.
    async fn approved_device(&self, browser: &Browser) -> Tokens {
        let (device_code, _) = self.approved_not_redeemed(browser).await;
        self.redeem(&device_code).await
    }

    async fn active(&self, token: &str) -> bool {
        let (status, body, _) = self
            .app
            .post_form(
                &self.endpoint("introspection_endpoint").await,
                &[("token", token)],
                Some((&self.rs.0, &self.rs.1)),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["active"].as_bool().unwrap()
    }

    async fn refresh(&self, token: &str) -> (u16, Value) {
        let (status, body, _) = self
            .app
            .post_form(
                &self.endpoint("token_endpoint").await,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token),
                    ("client_id", self.tv.as_str()),
                ],
                None,
            )
            .await;
        (status, body)
    }

    async fn userinfo(&self, token: &str) -> StatusCode {
        self.app
            .client
            .get(self.app.url(&self.endpoint("userinfo_endpoint").await))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn events(&self, action: &str) -> Vec<audit_event::Model> {
        audit_event::Entity::find()
            .filter(audit_event::Column::Action.eq(action))
            .all(&self.app.core.db)
            .await
            .unwrap()
    }

    async fn remembers_consent(&self) -> bool {
        consent::Entity::find()
            .filter(consent::Column::UserId.eq(self.alice.id))
            .one(&self.app.core.db)
            .await
            .unwrap()
            .is_some()
    }
}

/// A browser at `address` behind the trusted proxy: cookies kept, redirects not followed.
struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    fn at(app: &TestApp, address: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", address.parse().unwrap());
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .cookie_store(true)
                .default_headers(headers)
                .build()
                .unwrap(),
            base: app.address.clone(),
        }
    }

    fn new(app: &TestApp) -> Self {
        Self::at(app, BROWSER_ADDRESS)
    }

    async fn page(&self, path: &str) -> (StatusCode, String) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        (res.status(), res.text().await.unwrap())
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Takes the CSRF token of the page at `form_page` and posts `fields` with it to `to`.
    async fn submit(
        &self,
        form_page: &str,
        to: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let (status, html) = self.page(form_page).await;
        assert_eq!(status, StatusCode::OK, "{form_page}: {html}");
        let token = hidden(&html, "csrf_token");
        let mut form = fields.to_vec();
        form.push(("csrf_token", &token));
        self.post(to, &form).await
    }

    async fn enter_code(&self, code: &str) -> reqwest::Response {
        self.submit("/activate", "/activate", &[("user_code", code)])
            .await
    }

    async fn sign_in(&self, username: &str, password: &str) -> reqwest::Response {
        self.submit(
            "/activate/sign-in",
            "/activate/sign-in",
            &[("username", username), ("password", password)],
        )
        .await
    }

    async fn decide(&self, decision: &str) -> reqwest::Response {
        self.submit(
            "/activate/consent",
            "/activate/consent",
            &[("decision", decision)],
        )
        .await
    }

    /// Signs in through the account page of `slug`.
    async fn account_sign_in(
        &self,
        slug: &str,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        let page = format!("/w/{slug}/account");
        self.submit(
            &page,
            &format!("{page}/sign-in"),
            &[("username", username), ("password", password)],
        )
        .await
    }

    /// Presses the revoke button of approval `grant` on the account page.
    async fn revoke(&self, grant: &str) -> reqwest::Response {
        self.submit(ACCOUNT, &revoke_path(grant), &[]).await
    }
}

fn revoke_path(grant: &str) -> String {
    format!("{ACCOUNT}/grants/{grant}/revoke")
}

#[track_caller]
fn location(res: &reqwest::Response) -> String {
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "a redirect");
    res.headers()[LOCATION].to_str().unwrap().to_owned()
}

async fn body(res: reqwest::Response, status: StatusCode) -> String {
    let got = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    text
}

/// The account page shows the sign-in form, not the approvals.
#[track_caller]
fn asks_to_sign_in(html: &str, workspace_name: &str, action: &str) {
    assert!(
        html.contains(&format!("Sign in to {workspace_name}")),
        "{html}"
    );
    assert!(
        html.contains(&format!("action=\"{action}\"")),
        "the form posts to {action}: {html}"
    );
    assert!(!html.contains("Revoke"), "{html}");
}

#[tokio::test]
async fn a_sign_in_at_activate_opens_the_account_page_which_lists_the_device() {
    let s = setup().await;
    let b = Browser::new(&s.app);
    let tokens = s.approved_device(&b).await;

    // The done page leads there.
    let (_, done) = b.page("/activate/done").await;
    assert!(
        done.contains(&format!(
            "<a href=\"{ACCOUNT}\">Review the devices you have approved</a>"
        )),
        "{done}"
    );

    let res = b
        .http
        .get(format!("{}{ACCOUNT}", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    let page = body(res, StatusCode::OK).await;
    assert!(page.starts_with("<!doctype html>"), "{page}");
    assert!(page.contains("Your devices and applications in Home Cloud"));
    assert!(page.contains("Signed in as <strong>alice Example</strong>"));
    assert!(
        page.contains("<h2 id=\"approval-1\">Living Room TV</h2>"),
        "{page}"
    );
    for words in [
        "Confirm your identity",
        "Your name and username",
        "Stay signed in on this device (until you revoke it)",
    ] {
        assert!(page.contains(words), "{words}: {page}");
    }
    assert!(page.contains("a command-line tool (curl)"), "{page}");
    assert!(
        page.contains("network 198.51.100.x"),
        "the device's network: {page}"
    );
    assert!(
        page.contains("network 203.0.113.x"),
        "the browser's network: {page}"
    );
    assert!(
        !page.contains(DEVICE_ADDRESS) && !page.contains(BROWSER_ADDRESS),
        "never a whole address: {page}"
    );
    assert!(page.contains("just now") || page.contains("seconds ago"));
    assert!(page.contains(" UTC)"), "an absolute time too: {page}");
    assert!(
        page.contains(&format!("action=\"{}\"", revoke_path(&tokens.grant))),
        "{page}"
    );
    assert!(
        page.contains("Revoke Living Room TV<span class=\"visually-hidden\">"),
        "the button says what it revokes: {page}"
    );
    assert!(!page.contains(&tokens.access) && !page.contains(&tokens.refresh));
    assert!(page.contains(&format!("action=\"{ACCOUNT}/sign-out\"")));
}

#[tokio::test]
async fn a_sign_in_at_the_account_page_holds_at_activate_too() {
    let s = setup().await;
    let (device_code, user_code) = s.device_asks().await;
    s.app.decide(&user_code, &s.alice, Decision::Approve).await;
    s.redeem(&device_code).await;

    let b = Browser::new(&s.app);
    let (status, page) = b.page(ACCOUNT).await;
    assert_eq!(status, StatusCode::OK);
    asks_to_sign_in(&page, "Home Cloud", "/w/home/account/sign-in");
    assert!(page.contains("To review the devices and applications you have approved"));
    assert!(
        !page.contains("Review the devices you have approved</a>"),
        "{page}"
    );

    let page = body(
        b.account_sign_in("home", "alice", "wrong password").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(
        page.contains("That username and password do not match"),
        "{page}"
    );
    assert!(
        page.contains("value=\"alice\""),
        "the username is kept: {page}"
    );
    let page = body(
        b.account_sign_in("home", "", "").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(page.contains("Enter your username and your password."));

    assert_eq!(
        location(&b.account_sign_in("home", "alice", ALICE_PASSWORD).await),
        ACCOUNT
    );
    let (_, page) = b.page(ACCOUNT).await;
    assert!(page.contains("Living Room TV"), "{page}");
    // The sign-in form's own address leads back to the page.
    let res = b
        .http
        .get(format!("{}{ACCOUNT}/sign-in", b.base))
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), ACCOUNT);

    // At /activate she is signed in already: a new code needs no sign-in (and her remembered
    // consent approves it at once).
    let (_, user_code) = s.device_asks().await;
    assert_eq!(location(&b.enter_code(&user_code).await), "/activate/done");

    // The /activate sign-in page leads to the account page.
    let fresh = Browser::new(&s.app);
    let (_, user_code) = s.device_asks().await;
    assert_eq!(
        location(&fresh.enter_code(&user_code).await),
        "/activate/sign-in"
    );
    let (_, sign_in) = fresh.page("/activate/sign-in").await;
    assert!(
        sign_in.contains("<a href=\"/w/home/account\">Review the devices you have approved</a>"),
        "{sign_in}"
    );
    assert!(
        sign_in.contains("action=\"/activate/sign-in\""),
        "{sign_in}"
    );
}

#[tokio::test]
async fn a_sign_in_to_another_workspace_does_not_open_this_account_page() {
    let s = setup().await;
    let b = Browser::new(&s.app);
    assert_eq!(
        location(
            &b.account_sign_in("other", "alice", "other alice password")
                .await
        ),
        "/w/other/account"
    );
    let (_, page) = b.page("/w/other/account").await;
    assert!(
        page.contains("You have no approved devices or applications"),
        "{page}"
    );

    let (status, page) = b.page(ACCOUNT).await;
    assert_eq!(status, StatusCode::OK);
    asks_to_sign_in(&page, "Home Cloud", "/w/home/account/sign-in");
    // Her password in the other workspace does not open this one.
    body(
        b.account_sign_in("home", "alice", "other alice password")
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Unknown workspaces are pages that do not exist.
    for path in [
        "/w/nowhere/account",
        "/w/nowhere/account/sign-in",
        "/w/a%00b/account/sign-in",
        "/w/NOT%20A%20SLUG/account",
        "/w/%FF/account",
        "/w/home/account/nowhere",
    ] {
        let (status, page) = b.page(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.contains("Page not found"), "{path}: {page}");
    }
}

#[tokio::test]
async fn revoking_ends_every_token_of_the_approval_and_forgets_the_consent() {
    let s = setup().await;
    let b = Browser::new(&s.app);
    let tokens = s.approved_device(&b).await;
    assert!(s.active(&tokens.access).await);
    assert_eq!(s.userinfo(&tokens.access).await, StatusCode::OK);
    assert!(s.remembers_consent().await);
    // Remembered, the consent stands in for asking when a code is typed.
    let (_, user_code) = s.device_asks().await;
    assert_eq!(location(&b.enter_code(&user_code).await), "/activate/done");

    assert_eq!(location(&b.revoke(&tokens.grant).await), ACCOUNT);
    let (_, page) = b.page(ACCOUNT).await;
    assert!(
        page.contains("Living Room TV was cut off: every token of that approval stopped working."),
        "{page}"
    );
    assert!(!page.contains(&revoke_path(&tokens.grant)), "{page}");
    // The notice is said once.
    let (_, page) = b.page(ACCOUNT).await;
    assert!(!page.contains("was cut off"), "{page}");

    assert!(!s.active(&tokens.access).await, "introspection: inactive");
    assert_eq!(s.userinfo(&tokens.access).await, StatusCode::UNAUTHORIZED);
    let (status, body) = s.refresh(&tokens.refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(!s.remembers_consent().await);

    let events = s.events("grant.revoked").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor, format!("user:{}", s.alice.id));
    assert_eq!(events[0].target.as_deref(), Some(tokens.grant.as_str()));
    assert_eq!(events[0].workspace_id, Some(s.ws.id));
    assert_eq!(events[0].ip.as_deref(), Some(BROWSER_ADDRESS));
    let detail: Value = serde_json::from_str(&events[0].detail).unwrap();
    assert_eq!(detail["reason"], "revoked_by_user");

    // The next typed code of that application asks again.
    let (_, user_code) = s.device_asks().await;
    assert_eq!(
        location(&b.enter_code(&user_code).await),
        "/activate/consent"
    );

    // Pressing the button again (an old tab) changes nothing and says so.
    assert_eq!(
        location(
            &b.post(
                &revoke_path(&tokens.grant),
                &[(
                    "csrf_token",
                    &hidden(&b.page(ACCOUNT).await.1, "csrf_token")
                )]
            )
            .await
        ),
        ACCOUNT
    );
    let (_, page) = b.page(ACCOUNT).await;
    assert!(
        page.contains("Living Room TV had already been cut off"),
        "{page}"
    );
    assert_eq!(s.events("grant.revoked").await.len(), 1);
}

#[tokio::test]
async fn another_users_approval_cannot_be_revoked_and_is_not_found() {
    let s = setup().await;
    let alices = s.approved_device(&Browser::new(&s.app)).await;

    let bob = Browser::at(&s.app, "192.0.2.10");
    assert_eq!(
        location(&bob.account_sign_in("home", "bob", BOB_PASSWORD).await),
        ACCOUNT
    );
    let (_, page) = bob.page(ACCOUNT).await;
    assert!(!page.contains("Living Room TV"), "only his own: {page}");
    let mut not_found = Vec::new();
    for grant in [
        alices.grant.as_str(),
        "00000000-0000-0000-0000-000000000000",
        "not-a-uuid",
    ] {
        let page = body(bob.revoke(grant).await, StatusCode::NOT_FOUND).await;
        assert!(page.contains("Page not found"), "{page}");
        not_found.push(page);
    }
    assert_eq!(
        not_found[0], not_found[1],
        "theirs or none: the same answer"
    );

    assert!(s.active(&alices.access).await);
    assert_eq!(s.refresh(&alices.refresh).await.0, 200);
    assert!(s.remembers_consent().await);
    assert!(s.events("grant.revoked").await.is_empty());
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let s = setup().await;
    let b = Browser::new(&s.app);
    let tokens = s.approved_device(&b).await;
    for form in [vec![], vec![("csrf_token", "guessed")]] {
        let page = body(
            b.post(&revoke_path(&tokens.grant), &form).await,
            StatusCode::FORBIDDEN,
        )
        .await;
        assert!(page.contains("This form has expired"), "{page}");
        body(
            b.post(&format!("{ACCOUNT}/sign-out"), &form).await,
            StatusCode::FORBIDDEN,
        )
        .await;
        let mut credentials = vec![("username", "alice"), ("password", ALICE_PASSWORD)];
        credentials.extend(form.iter().copied());
        body(
            b.post(&format!("{ACCOUNT}/sign-in"), &credentials).await,
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    assert!(s.active(&tokens.access).await);
    let (_, page) = b.page(ACCOUNT).await;
    assert!(page.contains("Living Room TV"), "still signed in: {page}");
    // An unknown field is not a form this page offers.
    let token = hidden(&page, "csrf_token");
    body(
        b.post(
            &revoke_path(&tokens.grant),
            &[("csrf_token", token.as_str()), ("everything", "yes")],
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(s.active(&tokens.access).await);
}

#[tokio::test]
async fn signing_out_ends_the_sign_in_here_and_at_activate() {
    let s = setup().await;
    let b = Browser::new(&s.app);
    let tokens = s.approved_device(&b).await;
    let (_, page) = b.page(ACCOUNT).await;
    let old_token = hidden(&page, "csrf_token");
    assert_eq!(
        location(&b.submit(ACCOUNT, &format!("{ACCOUNT}/sign-out"), &[]).await),
        ACCOUNT
    );
    let (_, page) = b.page(ACCOUNT).await;
    asks_to_sign_in(&page, "Home Cloud", "/w/home/account/sign-in");
    let (_, user_code) = s.device_asks().await;
    assert_eq!(
        location(&b.enter_code(&user_code).await),
        "/activate/sign-in"
    );
    // A revoke form of before the sign-out no longer works.
    body(
        b.post(
            &revoke_path(&tokens.grant),
            &[("csrf_token", old_token.as_str())],
        )
        .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(s.active(&tokens.access).await);
}

#[tokio::test]
async fn a_disabled_user_is_signed_out_of_the_account_page() {
    let s = setup().await;
    let b = Browser::new(&s.app);
    s.approved_device(&b).await;
    let (_, page) = b.page(ACCOUNT).await;
    assert!(page.contains("Living Room TV"));
    users::update(
        &s.app.core,
        &Actor::Cli,
        &s.ws,
        s.alice.id,
        users::Change::Disabled(true),
    )
    .await
    .unwrap();
    let (_, page) = b.page(ACCOUNT).await;
    asks_to_sign_in(&page, "Home Cloud", "/w/home/account/sign-in");
}

#[tokio::test]
async fn failed_sign_ins_at_the_account_page_share_the_activate_budget() {
    let s = setup().await;
    let attacker = Browser::at(&s.app, "198.51.100.9");
    let (_, user_code) = s.device_asks().await;
    assert_eq!(
        location(&attacker.enter_code(&user_code).await),
        "/activate/sign-in"
    );
    // Failures at /activate and at the account page count against one budget.
    body(
        attacker.sign_in("alice", "guessed password").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    for _ in 1..vestibule_core::SIGN_IN_MAX_FAILURES {
        body(
            attacker
                .account_sign_in("home", "alice", "guessed password")
                .await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    let res = attacker
        .account_sign_in("home", "alice", ALICE_PASSWORD)
        .await;
    let wait: u64 = res.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait >= 1);
    let page = body(res, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(page.contains("Too many failed sign-ins"), "{page}");
    // The account is closed from elsewhere too, at both doors.
    let alice = Browser::at(&s.app, "203.0.113.21");
    body(
        alice.account_sign_in("home", "alice", ALICE_PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    let throttled = s.events("user.sign_in_throttled").await;
    assert_eq!(throttled.len(), 1, "{throttled:?}");
    assert_eq!(throttled[0].target.as_deref(), Some("alice"));
}

/// The approvals the account page lists, by the id in their revoke form.
fn listed(page: &str) -> Vec<String> {
    page.split(&format!("action=\"{ACCOUNT}/grants/"))
        .skip(1)
        .map(|rest| rest.split('/').next().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_device_approved_but_not_yet_collected_is_listed_and_revoking_it_denies_the_device() {
    let s = setup().await;
    let b = Browser::new(&s.app);
    let (device_code, id) = s.approved_not_redeemed(&b).await;
    assert!(s.remembers_consent().await);

    let (_, page) = b.page(ACCOUNT).await;
    assert_eq!(listed(&page), [id.as_str()], "{page}");
    assert!(
        page.contains("<h2 id=\"approval-1\">Living Room TV</h2>"),
        "{page}"
    );
    assert!(
        page.contains("Approved, waiting for the device to collect its access."),
        "{page}"
    );
    assert!(
        page.contains("<dt>Last used</dt>\n    <dd>not used yet</dd>"),
        "{page}"
    );
    for words in [
        "Stay signed in on this device (until you revoke it)",
        "a command-line tool (curl)",
        "network 198.51.100.x",
        "network 203.0.113.x",
        " UTC)",
    ] {
        assert!(page.contains(words), "{words}: {page}");
    }
    assert!(!page.contains(DEVICE_ADDRESS) && !page.contains(BROWSER_ADDRESS));

    assert_eq!(location(&b.revoke(&id).await), ACCOUNT);
    let (_, page) = b.page(ACCOUNT).await;
    assert!(
        page.contains("Living Room TV was cut off before it collected its access: it gets none."),
        "{page}"
    );
    assert!(listed(&page).is_empty(), "{page}");

    // The device's next poll is refused, and so is every later one: no token, ever.
    for _ in 0..2 {
        let (status, body) = s.poll(&device_code).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("access_denied")),
            "{body}"
        );
        assert!(body.get("access_token").is_none(), "{body}");
    }
    assert!(
        grant::Entity::find()
            .all(&s.app.core.db)
            .await
            .unwrap()
            .is_empty(),
        "no approval was ever made of it"
    );
    assert!(!s.remembers_consent().await);

    let events = s.events("device.revoked").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].actor, format!("user:{}", s.alice.id));
    assert_eq!(events[0].target.as_deref(), Some(id.as_str()));
    assert_eq!(events[0].workspace_id, Some(s.ws.id));
    assert_eq!(events[0].ip.as_deref(), Some(BROWSER_ADDRESS));
    let detail: Value = serde_json::from_str(&events[0].detail).unwrap();
    assert_eq!(detail["was"], "approved");

    // The next typed code of that application asks again.
    let (_, user_code) = s.device_asks().await;
    assert_eq!(
        location(&b.enter_code(&user_code).await),
        "/activate/consent"
    );

    // Pressing the button again changes nothing and says so.
    assert_eq!(location(&b.revoke(&id).await), ACCOUNT);
    let (_, page) = b.page(ACCOUNT).await;
    assert!(
        page.contains("Living Room TV had already been cut off"),
        "{page}"
    );
    assert_eq!(s.events("device.revoked").await.len(), 1);
    assert!(s.events("grant.revoked").await.is_empty());
}

#[tokio::test]
async fn a_device_that_collects_its_tokens_after_the_page_was_shown_is_still_cut_off() {
    let s = setup().await;
    let b = Browser::new(&s.app);
    let (device_code, id) = s.approved_not_redeemed(&b).await;
    let (_, page) = b.page(ACCOUNT).await;
    assert_eq!(listed(&page), [id.as_str()], "{page}");
    let token = hidden(&page, "csrf_token");

    // The device polls between the page and the button.
    let tokens = s.redeem(&device_code).await;
    assert_eq!(tokens.grant, id, "one id for both stages");
    assert!(s.active(&tokens.access).await);

    assert_eq!(
        location(&b.post(&revoke_path(&id), &[("csrf_token", &token)]).await),
        ACCOUNT
    );
    let (_, page) = b.page(ACCOUNT).await;
    assert!(
        page.contains("Living Room TV was cut off: every token of that approval stopped working."),
        "{page}"
    );
    assert!(!s.active(&tokens.access).await);
    let (status, body) = s.refresh(&tokens.refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(!s.remembers_consent().await);
    let events = s.events("grant.revoked").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].actor, format!("user:{}", s.alice.id));
    assert_eq!(events[0].target.as_deref(), Some(id.as_str()));
}

#[tokio::test]
async fn another_users_device_not_yet_collected_cannot_be_revoked_and_is_not_found() {
    let s = setup().await;
    let (device_code, alices) = s.approved_not_redeemed(&Browser::new(&s.app)).await;

    let bob = Browser::at(&s.app, "192.0.2.10");
    assert_eq!(
        location(&bob.account_sign_in("home", "bob", BOB_PASSWORD).await),
        ACCOUNT
    );
    let (_, page) = bob.page(ACCOUNT).await;
    assert!(listed(&page).is_empty(), "only his own: {page}");
    let theirs = body(bob.revoke(&alices).await, StatusCode::NOT_FOUND).await;
    let none = body(
        bob.revoke("00000000-0000-0000-0000-000000000000").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(theirs.contains("Page not found"), "{theirs}");
    assert_eq!(theirs, none, "theirs or none: the same answer");

    // Alice in the other workspace cannot reach it from there either.
    let elsewhere = Browser::new(&s.app);
    elsewhere
        .account_sign_in("other", "alice", "other alice password")
        .await;
    let page = body(
        elsewhere
            .submit(
                "/w/other/account",
                &format!("/w/other/account/grants/{alices}/revoke"),
                &[],
            )
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(page.contains("Page not found"), "{page}");

    assert!(s.events("device.revoked").await.is_empty());
    assert!(s.remembers_consent().await);
    s.redeem(&device_code).await;
}

#[tokio::test]
async fn problem_pages_of_the_account_page_lead_back_to_it() {
    let s = setup().await;
    let b = Browser::new(&s.app);
    let tokens = s.approved_device(&b).await;
    // Tera escapes the slashes of the link.
    let back =
        "<a href=\"&#x2F;w&#x2F;home&#x2F;account\">Back to your devices and applications</a>";

    let expired = body(
        b.post(&revoke_path(&tokens.grant), &[("csrf_token", "guessed")])
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(expired.contains("This form has expired"), "{expired}");
    assert!(expired.contains(back), "{expired}");
    assert!(!expired.contains("Enter another code"), "{expired}");
    for path in [
        revoke_path("00000000-0000-0000-0000-000000000000"),
        format!("{ACCOUNT}/nowhere"),
    ] {
        let page = body(b.submit(ACCOUNT, &path, &[]).await, StatusCode::NOT_FOUND).await;
        assert!(page.contains("Page not found"), "{path}: {page}");
        assert!(page.contains(back), "{path}: {page}");
    }
    // Of a workspace that does not exist there is no page to go back to.
    let (status, page) = b.page("/w/nowhere/account").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!page.contains("Back to your devices"), "{page}");
    assert!(!page.contains("Enter another code"), "{page}");
    // At /activate the way on is still a new code.
    let (status, page) = b.page("/activate/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("Enter another code"), "{page}");
    assert!(s.active(&tokens.access).await);
}
