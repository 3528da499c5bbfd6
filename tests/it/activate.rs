//! `/activate`: code entry, sign-in, consent and the done page, driven like a browser.

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, LOCATION, RETRY_AFTER, SET_COOKIE};
use sea_orm::{ActiveModelTrait as _, EntityTrait as _, IntoActiveModel as _, Set};
use vestibule_core::entities::{audit_event, client, device_grant, user, workspace};
use vestibule_core::records::{Client, Workspace};
use vestibule_core::services::audit::Actor;
use vestibule_core::services::device_grants::{self, Origin, Started};
use vestibule_core::services::interaction::Decision;
use vestibule_core::services::{clients, workspaces};
use vestibule_core::types::{Access, AfterApprovalUrl, DisplayName, GrantSet, Proximity, ScopeSet};

use crate::helpers::TestApp;

pub(crate) const PASSWORD: &str = "alice password";
const SCOPES: &str = "openid profile email offline_access";

/// An app with a workspace, a client of it and a user.
struct Setup {
    app: TestApp,
    ws: workspace::Model,
    client: client::Model,
    alice: user::Model,
}

async fn setup() -> Setup {
    setup_with(workspaces::Changes::default(), "Living Room TV").await
}

async fn setup_with(changes: workspaces::Changes, client_name: &str) -> Setup {
    setup_on(TestApp::spawn().await, changes, client_name).await
}

/// Requests come through a proxy on 127.0.0.1 that names the browser's address
/// (`X-Forwarded-For`, see [`Browser::at`]); `max_failures` wrong user codes per address.
async fn setup_behind_proxy(max_failures: u32) -> Setup {
    let app = TestApp::behind_proxy(max_failures).await;
    setup_on(app, workspaces::Changes::default(), "Living Room TV").await
}

async fn setup_on(app: TestApp, changes: workspaces::Changes, client_name: &str) -> Setup {
    let ws = app
        .workspace(
            "home",
            workspaces::Changes {
                name: Some("Home Cloud".into()),
                ..changes
            },
        )
        .await;
    let client = new_client(&app, &ws, client_name).await;
    let alice = app.user(&ws, "alice", PASSWORD).await;
    Setup {
        app,
        ws,
        client,
        alice,
    }
}

async fn new_client(app: &TestApp, ws: &workspace::Model, name: &str) -> client::Model {
    clients::create(
        &app.core,
        &Actor::Cli,
        ws,
        clients::NewClient {
            name: DisplayName::parse("name", name).unwrap(),
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
}

impl Setup {
    /// A device asks, from curl on this machine.
    async fn device_asks(&self) -> Started {
        self.device_asks_from("127.0.0.1").await
    }

    async fn device_asks_from(&self, ip: &str) -> Started {
        start(&self.app, &self.ws, &self.client, ip).await
    }

    async fn status(&self, started: &Started) -> String {
        device_grants::find(&self.app.core.db, started.grant.id)
            .await
            .unwrap()
            .unwrap()
            .status
            .as_str()
            .to_owned()
    }

    async fn grant(&self, started: &Started) -> device_grant::Model {
        device_grants::find(&self.app.core.db, started.grant.id)
            .await
            .unwrap()
            .unwrap()
    }
}

async fn start(app: &TestApp, ws: &workspace::Model, client: &client::Model, ip: &str) -> Started {
    device_grants::start(
        &app.core,
        &Workspace::parse(ws.clone()).unwrap(),
        &Client::parse(client.clone()),
        ScopeSet::parse(SCOPES).unwrap(),
        Origin {
            ip: Some(ip.parse().unwrap()),
            user_agent: Some("curl/8.5".into()),
        },
    )
    .await
    .unwrap()
}

/// A browser of its own: cookies kept, redirects not followed.
pub(crate) struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self::with_headers(app, reqwest::header::HeaderMap::new())
    }

    /// A browser at `address`, behind the trusted proxy of [`setup_behind_proxy`].
    pub(crate) fn at(app: &TestApp, address: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", address.parse().unwrap());
        Self::with_headers(app, headers)
    }

    fn with_headers(app: &TestApp, headers: reqwest::header::HeaderMap) -> Self {
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

    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    pub(crate) async fn page(&self, path: &str) -> (StatusCode, String) {
        let res = self.get(path).await;
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

    /// Fills in the form of the page at `form_page` (taking its CSRF token) and posts it to `to`.
    async fn submit(
        &self,
        form_page: &str,
        to: &str,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let (status, html) = self.page(form_page).await;
        assert_eq!(status, StatusCode::OK, "{form_page}: {html}");
        let token = csrf_token(&html);
        let mut form = fields.to_vec();
        form.push(("csrf_token", &token));
        self.post(to, &form).await
    }

    /// Opens `verification_uri_complete` (which only pre-fills the form) and confirms the code,
    /// as a person does.
    async fn follow_link(&self, link: &str) -> reqwest::Response {
        let (status, html) = self.page(link).await;
        assert_eq!(status, StatusCode::OK, "{link}: {html}");
        assert!(
            html.contains("name=\"arrival\" value=\"link\""),
            "the form says the code came by link: {html}"
        );
        let code = user_code_value(&html);
        self.post(
            "/activate",
            &[
                ("user_code", &code),
                ("arrival", "link"),
                ("csrf_token", &csrf_token(&html)),
            ],
        )
        .await
    }

    pub(crate) async fn enter_code(&self, code: &str) -> reqwest::Response {
        self.submit("/activate", "/activate", &[("user_code", code)])
            .await
    }

    pub(crate) async fn sign_in(&self, username: &str, password: &str) -> reqwest::Response {
        self.submit(
            "/activate/sign-in",
            "/activate/sign-in",
            &[("username", username), ("password", password)],
        )
        .await
    }

    pub(crate) async fn decide(&self, decision: &str) -> reqwest::Response {
        self.submit(
            "/activate/consent",
            "/activate/consent",
            &[("decision", decision)],
        )
        .await
    }

    /// Enters the code and signs in as alice: the browser is then at the consent page (or done).
    async fn through_sign_in(&self, started: &Started) -> reqwest::Response {
        see_other(
            &self.enter_code(started.user_code.as_str()).await,
            "/activate/sign-in",
        );
        self.sign_in("alice", PASSWORD).await
    }
}

fn csrf_token(html: &str) -> String {
    value_after(html, "name=\"csrf_token\" value=\"")
}

/// The attribute value that `marker` (ending in `value="`) opens.
fn value_after(html: &str, marker: &str) -> String {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

/// The code pre-filled in the entry form.
fn user_code_value(html: &str) -> String {
    value_after(html, "name=\"user_code\" type=\"text\" value=\"")
}

#[track_caller]
pub(crate) fn see_other(res: &reqwest::Response, location: &str) {
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "expected a redirect to {location}"
    );
    assert_eq!(res.headers()[LOCATION], location);
}

pub(crate) async fn body(res: reqwest::Response, status: StatusCode) -> String {
    let got = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    text
}

/// Every page is a complete, accessible, uncached HTML document.
#[track_caller]
fn assert_page_basics(html: &str) {
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains("<html lang=\"en\">"));
    assert!(
        html.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
    );
    assert!(html.contains("href=\"/static/vestibule.css\""));
}

#[tokio::test]
async fn approve_from_code_entry_to_done() {
    let s = setup().await;
    let started = s.device_asks().await;
    let b = Browser::new(&s.app);

    let entry = b.get("/activate").await;
    assert_eq!(entry.headers()[CACHE_CONTROL], "no-store");
    assert_eq!(entry.headers()["x-frame-options"], "DENY");
    let entry = body(entry, StatusCode::OK).await;
    assert_page_basics(&entry);
    assert!(entry.contains("<label for=\"user_code\">"));
    assert!(entry.contains("name=\"user_code\""));

    see_other(
        &b.enter_code(started.user_code.as_str()).await,
        "/activate/sign-in",
    );
    let (status, sign_in) = b.page("/activate/sign-in").await;
    assert_eq!(status, StatusCode::OK);
    assert_page_basics(&sign_in);
    assert!(sign_in.contains("Sign in to Home Cloud"), "{sign_in}");
    assert!(
        sign_in.contains("<label for=\"username\">")
            && sign_in.contains("<label for=\"password\">")
    );
    assert!(sign_in.contains("href=\"/w/home/password-reset\""));

    see_other(&b.sign_in("alice", PASSWORD).await, "/activate/consent");
    let consent = b.get("/activate/consent").await;
    assert_eq!(consent.headers()[CACHE_CONTROL], "no-store");
    let consent = body(consent, StatusCode::OK).await;
    assert_page_basics(&consent);
    assert!(consent.contains(&started.user_code.display()), "{consent}");
    assert!(consent.contains("Living Room TV"));
    assert!(consent.contains("Home Cloud"));
    for words in [
        "Confirm your identity",
        "Your name and username",
        "Your email address",
        "Stay signed in on this device (until you revoke it)",
    ] {
        assert!(consent.contains(words), "{words}");
    }
    assert!(consent.contains("a command-line tool (curl)"));
    assert!(consent.contains("just now") || consent.contains("seconds ago"));
    assert!(consent.contains("the network you are on now"));
    assert!(consent.contains("Only approve if you started this just now"));
    assert!(consent.contains("choose Deny"));
    assert!(consent.contains("name=\"decision\" value=\"approve\""));
    assert!(consent.contains("name=\"decision\" value=\"deny\""));
    assert!(!consent.contains("autofocus"));
    assert!(!consent.contains("checked"));
    assert_eq!(s.status(&started).await, "pending");

    see_other(&b.decide("approve").await, "/activate/done");
    let (status, done) = b.page("/activate/done").await;
    assert_eq!(status, StatusCode::OK);
    assert_page_basics(&done);
    assert!(
        done.contains("You're all set — return to your device"),
        "{done}"
    );

    let grant = s.grant(&started).await;
    assert_eq!(grant.status.as_str(), "approved");
    assert_eq!(grant.user_id, Some(s.alice.id));
    assert_eq!(grant.approved_ip.as_deref(), Some("127.0.0.1"));
    assert!(grant.auth_time.is_some());

    // The stylesheet the pages link to is there.
    let css = b.get("/static/vestibule.css").await;
    assert_eq!(css.status(), StatusCode::OK);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
}

#[tokio::test]
async fn deny_tells_the_user_and_the_grant() {
    let s = setup().await;
    let started = s.device_asks().await;
    let b = Browser::new(&s.app);
    see_other(&b.through_sign_in(&started).await, "/activate/consent");
    see_other(&b.decide("deny").await, "/activate/done");
    let (_, done) = b.page("/activate/done").await;
    assert!(
        done.contains("Request denied — the device will not get access"),
        "{done}"
    );
    assert_eq!(s.status(&started).await, "denied");

    // The code is spent: entering it again says so.
    let again = body(
        b.enter_code(started.user_code.as_str()).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(again.contains("This code was denied"), "{again}");
}

#[tokio::test]
async fn after_an_approval_the_browser_goes_to_the_clients_after_approval_url() {
    let s = setup().await;
    let url = "https://tv.example:8443/connected?from=vestibule";
    let mut edit = clients::Edit::stored(&s.client).unwrap();
    edit.after_approval_url = AfterApprovalUrl::parse_optional(url).unwrap();
    clients::update(&s.app.core, &Actor::Cli, &s.ws, &s.client.client_id, edit)
        .await
        .unwrap();
    // Browsers hold a form's whole navigation, redirects included, to its page's
    // `form-action`: the pages that may send the browser there must allow its origin.
    let allows_target = |res: &reqwest::Response| {
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("form-action 'self' https://tv.example:8443;")
    };
    let b = Browser::new(&s.app);

    // A typed code, approved on the consent page.
    let typed = s.device_asks().await;
    see_other(
        &b.enter_code(typed.user_code.as_str()).await,
        "/activate/sign-in",
    );
    assert!(allows_target(&b.get("/activate/sign-in").await));
    see_other(&b.sign_in("alice", PASSWORD).await, "/activate/consent");
    assert!(allows_target(&b.get("/activate/consent").await));
    assert!(
        !allows_target(&b.get("/activate").await),
        "no client known yet"
    );
    see_other(&b.decide("approve").await, url);
    assert_eq!(s.status(&typed).await, "approved");

    // Consent remembered: a code typed on the entry page (whose policy could not name the
    // site) is approved at once, and the done page forwards the browser.
    let skipped = s.device_asks().await;
    see_other(
        &b.enter_code(skipped.user_code.as_str()).await,
        "/activate/done",
    );
    assert_eq!(s.status(&skipped).await, "approved");
    let (status, done) = b.page("/activate/done").await;
    assert_eq!(status, StatusCode::OK);
    let escaped = url.replace('/', "&#x2F;");
    assert!(
        done.contains(&format!(
            "<meta http-equiv=\"refresh\" content=\"0; url={escaped}\">"
        )),
        "{done}"
    );
    assert!(
        done.contains(&format!("href=\"{escaped}\" data-field=\"forward\"")),
        "{done}"
    );

    // Consent remembered, approved by the sign-in: straight there.
    let fresh = Browser::new(&s.app);
    let signed = s.device_asks().await;
    see_other(&fresh.through_sign_in(&signed).await, url);
    assert_eq!(s.status(&signed).await, "approved");

    // A link always asks first; its approval goes there as well.
    let linked = s.device_asks().await;
    let link = format!("/activate?user_code={}", linked.user_code.display());
    see_other(&b.follow_link(&link).await, "/activate/consent");
    see_other(&b.decide("approve").await, url);
    assert_eq!(s.status(&linked).await, "approved");

    // A denial ends on the done page as always, which forwards nowhere.
    let denied = s.device_asks().await;
    let link = format!("/activate?user_code={}", denied.user_code.display());
    see_other(&b.follow_link(&link).await, "/activate/consent");
    see_other(&b.decide("deny").await, "/activate/done");
    assert_eq!(s.status(&denied).await, "denied");
    let (_, done) = b.page("/activate/done").await;
    assert!(
        !done.contains("refresh") && !done.contains("tv.example"),
        "{done}"
    );
}

#[tokio::test]
async fn codes_are_read_regardless_of_case_spaces_and_dashes() {
    let s = setup().await;
    let started = s.device_asks().await;
    let shown = started.user_code.display().to_lowercase();
    let sloppy = format!(" {} ", shown.replace('-', " - "));
    let b = Browser::new(&s.app);
    see_other(&b.enter_code(&sloppy).await, "/activate/sign-in");
    see_other(&b.sign_in("alice", PASSWORD).await, "/activate/consent");
    see_other(&b.decide("approve").await, "/activate/done");
    assert_eq!(s.status(&started).await, "approved");
}

#[tokio::test]
async fn pasted_codes_in_lower_case_with_a_space_or_a_dash_are_accepted() {
    let s = setup().await;
    for separator in [" ", "-"] {
        let started = s.device_asks().await;
        let pasted = started
            .user_code
            .display()
            .to_lowercase()
            .replace('-', separator);
        assert!(pasted.contains(separator) && pasted != started.user_code.as_str());
        let b = Browser::new(&s.app);
        see_other(&b.enter_code(&pasted).await, "/activate/sign-in");
    }
}

#[tokio::test]
async fn the_code_field_is_a_one_time_code_field_with_a_number_pad_for_digit_codes() {
    let s = setup().await;
    let b = Browser::new(&s.app);
    let (_, plain) = b.page("/activate").await;
    for attribute in [
        "autocomplete=\"one-time-code\"",
        "autocapitalize=\"characters\"",
        "autocorrect=\"off\"",
        "spellcheck=\"false\"",
        "<label for=\"user_code\">",
        "aria-describedby=\"user_code-hint\"",
        "id=\"user_code-hint\"",
    ] {
        assert!(plain.contains(attribute), "{attribute}: {plain}");
    }
    // Letters cannot be typed on a number pad: only a code known to be digits gets one.
    assert!(!plain.contains("inputmode"), "{plain}");
    let (_, letters) = b.page("/activate?user_code=BCDF-GHJK").await;
    assert!(!letters.contains("inputmode"), "{letters}");
    let (_, digits) = b.page("/activate?user_code=123-456").await;
    assert!(digits.contains("inputmode=\"numeric\""), "{digits}");

    // A refused code's message is linked to the field.
    let wrong = body(b.enter_code("BCDF-GHJK").await, StatusCode::BAD_REQUEST).await;
    assert!(
        wrong.contains("aria-describedby=\"user_code-hint user_code-message\"")
            && wrong.contains("id=\"user_code-message\"")
            && wrong.contains("aria-invalid=\"true\""),
        "{wrong}"
    );
}

#[tokio::test]
async fn wrong_and_used_codes_get_clear_messages() {
    let s = setup().await;
    let b = Browser::new(&s.app);

    let unknown = body(b.enter_code("BCDF-GHJK").await, StatusCode::BAD_REQUEST).await;
    assert!(
        // The message is escaped like every value: ' is &#x27;.
        unknown.contains("We don&#x27;t know that code — check the code shown on your device"),
        "{unknown}"
    );
    assert!(
        unknown.contains("value=\"BCDF-GHJK\""),
        "the typed code is kept to fix it"
    );
    let garbage = body(b.enter_code("not a code!").await, StatusCode::BAD_REQUEST).await;
    assert!(garbage.contains("We don&#x27;t know that code"));
    let empty = body(b.enter_code("  ").await, StatusCode::BAD_REQUEST).await;
    assert!(empty.contains("Enter the code shown on your device."));

    let used = s.device_asks().await;
    s.app
        .decide(used.user_code.as_str(), &s.alice, Decision::Approve)
        .await;
    let page = body(
        b.enter_code(used.user_code.as_str()).await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(page.contains("This code was already used"), "{page}");
    let page = body(
        b.follow_link(&format!("/activate?user_code={}", used.user_code.display()))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(page.contains("This code was already used"), "{page}");
}

#[tokio::test]
async fn a_spent_code_says_how_it_was_spent_whether_typed_or_by_link() {
    let s = setup().await;
    let approved = s.device_asks().await;
    s.app
        .decide(approved.user_code.as_str(), &s.alice, Decision::Approve)
        .await;
    let redeemed = s.device_asks().await;
    s.app
        .decide(redeemed.user_code.as_str(), &s.alice, Decision::Approve)
        .await;
    let poll = device_grants::poll(
        &s.app.core,
        &Workspace::parse(s.ws.clone()).unwrap(),
        &Client::parse(s.client.clone()),
        &redeemed.device_code,
    )
    .await
    .unwrap();
    assert!(matches!(poll, device_grants::Poll::Tokens(_)), "{poll:?}");
    assert_eq!(s.status(&redeemed).await, "consumed");
    let denied = s.device_asks().await;
    s.app
        .decide(denied.user_code.as_str(), &s.alice, Decision::Deny)
        .await;
    let expired = s.device_asks().await;
    let mut grant = expired.grant.clone().into_active_model();
    grant.expires_at = Set(vestibule_core::now() - 1);
    grant.update(&s.app.core.db).await.unwrap();

    let b = Browser::new(&s.app);
    for (started, status, says) in [
        (
            &approved,
            StatusCode::CONFLICT,
            "This code was already used",
        ),
        (
            &redeemed,
            StatusCode::CONFLICT,
            "This code was already used",
        ),
        (&denied, StatusCode::CONFLICT, "This code was denied"),
        (&expired, StatusCode::GONE, "This code has expired"),
    ] {
        let typed = body(b.enter_code(started.user_code.as_str()).await, status).await;
        let link = format!("/activate?user_code={}", started.user_code.display());
        let linked = body(b.follow_link(&link).await, status).await;
        for page in [typed, linked] {
            assert!(page.contains(says), "{says}: {page}");
            assert!(!page.contains("know that code"), "{page}");
        }
    }
}

#[tokio::test]
async fn a_code_denied_while_its_consent_page_was_open_says_denied() {
    let s = setup().await;
    let started = s.device_asks().await;
    let b = Browser::new(&s.app);
    see_other(&b.through_sign_in(&started).await, "/activate/consent");
    let consent_page = b.page("/activate/consent").await.1;
    s.app
        .decide(started.user_code.as_str(), &s.alice, Decision::Deny)
        .await;
    let res = b
        .post(
            "/activate/consent",
            &[
                ("decision", "approve"),
                ("csrf_token", &csrf_token(&consent_page)),
            ],
        )
        .await;
    let page = body(res, StatusCode::CONFLICT).await;
    assert!(page.contains("This code was denied"), "{page}");
    assert_eq!(s.status(&started).await, "denied");
}

#[tokio::test]
async fn expired_codes_get_a_clear_message_also_mid_flow() {
    let s = setup().await;
    let at_entry = s.device_asks().await;
    let mid_flow = s.device_asks().await;
    let b = Browser::new(&s.app);
    see_other(&b.through_sign_in(&mid_flow).await, "/activate/consent");
    let consent_page = b.page("/activate/consent").await.1;

    // Both codes reach the end of their lifetime now (the database is the clock's authority;
    // moving the deadline keeps the test exact however loaded the machine is).
    for started in [&at_entry, &mid_flow] {
        let mut grant = started.grant.clone().into_active_model();
        grant.expires_at = Set(vestibule_core::now() - 1);
        grant.update(&s.app.core.db).await.unwrap();
    }
    let page = body(
        b.enter_code(at_entry.user_code.as_str()).await,
        StatusCode::GONE,
    )
    .await;
    assert!(
        page.contains("This code has expired — start again on your device"),
        "{page}"
    );

    // The consent page was open when the code expired: approving it now changes nothing.
    let res = b
        .post(
            "/activate/consent",
            &[
                ("decision", "approve"),
                ("csrf_token", &csrf_token(&consent_page)),
            ],
        )
        .await;
    let page = body(res, StatusCode::GONE).await;
    assert!(page.contains("This code has expired"), "{page}");
    assert_eq!(s.status(&mid_flow).await, "pending");
}

#[tokio::test]
async fn a_link_always_shows_consent_but_a_typed_code_skips_it_once_granted() {
    let s = setup().await;
    let b = Browser::new(&s.app);
    let first = s.device_asks().await;
    see_other(&b.through_sign_in(&first).await, "/activate/consent");
    see_other(&b.decide("approve").await, "/activate/done");

    // Through verification_uri_complete: the consent page, although consent was given before.
    let linked = s.device_asks().await;
    let link = format!("/activate?user_code={}", linked.user_code.display());
    see_other(&b.follow_link(&link).await, "/activate/consent");
    let (status, consent) = b.page("/activate/consent").await;
    assert_eq!(status, StatusCode::OK);
    assert!(consent.contains(&linked.user_code.display()));
    // Typing the same code afterwards does not turn the link into a typed code.
    see_other(
        &b.enter_code(linked.user_code.as_str()).await,
        "/activate/consent",
    );
    assert_eq!(s.status(&linked).await, "pending");

    // A typed code of the same client with the same scopes: straight to done.
    let typed = s.device_asks().await;
    see_other(
        &b.enter_code(typed.user_code.as_str()).await,
        "/activate/done",
    );
    assert_eq!(s.status(&typed).await, "approved");
    let (_, done) = b.page("/activate/done").await;
    assert!(done.contains("You're all set"));
    // The linked one was not touched by any of this.
    assert_eq!(s.status(&linked).await, "pending");
}

#[tokio::test]
async fn a_linked_code_is_not_skipped_at_sign_in_either() {
    let s = setup().await;
    let first = s.device_asks().await;
    s.app
        .decide(first.user_code.as_str(), &s.alice, Decision::Approve)
        .await;
    let linked = s.device_asks().await;
    let b = Browser::new(&s.app);
    let link = format!(
        "/activate?user_code={}",
        linked.user_code.as_str().to_lowercase()
    );
    see_other(&b.follow_link(&link).await, "/activate/sign-in");
    see_other(&b.sign_in("alice", PASSWORD).await, "/activate/consent");
    assert_eq!(s.status(&linked).await, "pending");

    // The same user typing a code at sign-in is skipped to done.
    let typed = s.device_asks().await;
    let other = Browser::new(&s.app);
    see_other(&other.through_sign_in(&typed).await, "/activate/done");
    assert_eq!(s.status(&typed).await, "approved");
}

#[tokio::test]
async fn no_skip_when_the_workspace_turns_it_off() {
    let s = setup_with(
        workspaces::Changes {
            consent_skip: Some(false),
            ..Default::default()
        },
        "Living Room TV",
    )
    .await;
    let first = s.device_asks().await;
    s.app
        .decide(first.user_code.as_str(), &s.alice, Decision::Approve)
        .await;
    let typed = s.device_asks().await;
    let b = Browser::new(&s.app);
    see_other(&b.through_sign_in(&typed).await, "/activate/consent");
    see_other(
        &b.enter_code(typed.user_code.as_str()).await,
        "/activate/consent",
    );
    assert_eq!(s.status(&typed).await, "pending");
}

#[tokio::test]
async fn posts_without_the_right_csrf_token_are_refused() {
    let s = setup().await;
    let started = s.device_asks().await;
    let b = Browser::new(&s.app);
    let code = started.user_code.as_str();

    // No session at all, then a session but no token, then a wrong token.
    let res = b.post("/activate", &[("user_code", code)]).await;
    let page = body(res, StatusCode::FORBIDDEN).await;
    assert!(
        page.contains("This form expired or was not sent by this site — go back and try again"),
        "{page}"
    );
    assert_page_basics(&page);
    b.get("/activate").await;
    let res = b.post("/activate", &[("user_code", code)]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = b
        .post(
            "/activate",
            &[("user_code", code), ("csrf_token", "forged")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // A token of another browser's session is no good either.
    let other = Browser::new(&s.app);
    let (_, other_page) = other.page("/activate").await;
    let res = b
        .post(
            "/activate",
            &[
                ("user_code", code),
                ("csrf_token", &csrf_token(&other_page)),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // Nothing was started: there is no code in progress.
    see_other(&b.get("/activate/sign-in").await, "/activate");

    // Sign-in without a token signs nobody in.
    see_other(&b.enter_code(code).await, "/activate/sign-in");
    let res = b
        .post(
            "/activate/sign-in",
            &[("username", "alice"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    see_other(&b.get("/activate/consent").await, "/activate/sign-in");

    // A decision without the right token decides nothing.
    see_other(&b.sign_in("alice", PASSWORD).await, "/activate/consent");
    for token in [None, Some("forged"), Some("")] {
        let mut form = vec![("decision", "approve")];
        if let Some(t) = token {
            form.push(("csrf_token", t));
        }
        let res = b.post("/activate/consent", &form).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{token:?}");
    }
    assert_eq!(s.status(&started).await, "pending");
}

#[tokio::test]
async fn signing_in_renews_the_csrf_token() {
    let s = setup().await;
    let started = s.device_asks().await;
    let b = Browser::new(&s.app);
    see_other(
        &b.enter_code(started.user_code.as_str()).await,
        "/activate/sign-in",
    );
    let before = csrf_token(&b.page("/activate/sign-in").await.1);
    see_other(&b.sign_in("alice", PASSWORD).await, "/activate/consent");
    let after = csrf_token(&b.page("/activate/consent").await.1);
    assert_ne!(before, after);
    let res = b
        .post(
            "/activate/consent",
            &[("decision", "approve"), ("csrf_token", &before)],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(s.status(&started).await, "pending");
}

#[tokio::test]
async fn a_wrong_password_keeps_the_username_and_approves_nothing() {
    let s = setup().await;
    let started = s.device_asks().await;
    let b = Browser::new(&s.app);
    see_other(
        &b.enter_code(started.user_code.as_str()).await,
        "/activate/sign-in",
    );
    for (username, password) in [("alice", "wrong password"), ("nobody", PASSWORD)] {
        let page = body(
            b.sign_in(username, password).await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert!(
            page.contains("That username and password do not match"),
            "{page}"
        );
        assert!(page.contains(&format!("value=\"{username}\"")));
        assert!(!page.contains(password), "the password is never sent back");
    }
    let page = body(b.sign_in("alice", "").await, StatusCode::BAD_REQUEST).await;
    assert!(page.contains("Enter your username and your password."));
    see_other(&b.get("/activate/consent").await, "/activate/sign-in");
    let res = b
        .post(
            "/activate/consent",
            &[("decision", "approve"), ("csrf_token", &csrf_token(&page))],
        )
        .await;
    see_other(&res, "/activate/sign-in");
    assert_eq!(s.status(&started).await, "pending");
}

#[tokio::test]
async fn a_disabled_user_cannot_sign_in_or_stay_signed_in() {
    let s = setup().await;
    let first = s.device_asks().await;
    let b = Browser::new(&s.app);
    see_other(&b.through_sign_in(&first).await, "/activate/consent");
    let consent = b.page("/activate/consent").await.1;

    let mut alice = s.alice.clone().into_active_model();
    alice.disabled = Set(true);
    alice.update(&s.app.core.db).await.unwrap();

    // The open consent page no longer works…
    let res = b
        .post(
            "/activate/consent",
            &[
                ("decision", "approve"),
                ("csrf_token", &csrf_token(&consent)),
            ],
        )
        .await;
    see_other(&res, "/activate/sign-in");
    // …and signing in again fails like a wrong password.
    let page = body(b.sign_in("alice", PASSWORD).await, StatusCode::UNAUTHORIZED).await;
    assert!(page.contains("That username and password do not match"));
    assert_eq!(s.status(&first).await, "pending");
}

#[tokio::test]
async fn a_user_of_another_workspace_cannot_approve() {
    let s = setup().await;
    let work = s
        .app
        .workspace("work", workspaces::Changes::default())
        .await;
    let work_client = new_client(&s.app, &work, "Office Printer").await;
    s.app.user(&work, "bob", "bob password").await;
    let b = Browser::new(&s.app);

    // Bob signs in to his workspace through one of its codes, and approves it.
    let his = start(&s.app, &work, &work_client, "127.0.0.1").await;
    see_other(
        &b.enter_code(his.user_code.as_str()).await,
        "/activate/sign-in",
    );
    see_other(&b.sign_in("bob", "bob password").await, "/activate/consent");
    see_other(&b.decide("approve").await, "/activate/done");

    // A code of the home workspace needs a home sign-in: bob's session does not count…
    let theirs = s.device_asks().await;
    see_other(
        &b.enter_code(theirs.user_code.as_str()).await,
        "/activate/sign-in",
    );
    see_other(&b.get("/activate/consent").await, "/activate/sign-in");
    let sign_in_page = b.page("/activate/sign-in").await.1;
    let res = b
        .post(
            "/activate/consent",
            &[
                ("decision", "approve"),
                ("csrf_token", &csrf_token(&sign_in_page)),
            ],
        )
        .await;
    see_other(&res, "/activate/sign-in");
    // …and his password does not open the home workspace.
    let page = body(
        b.sign_in("bob", "bob password").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(page.contains("That username and password do not match"));
    assert_eq!(
        device_grants::find(&s.app.core.db, theirs.grant.id)
            .await
            .unwrap()
            .unwrap()
            .status
            .as_str(),
        "pending"
    );
}

#[tokio::test]
async fn the_session_cookie_is_http_only_lax_and_encrypted() {
    let s = setup().await;
    let started = s.device_asks().await;
    let b = Browser::new(&s.app);
    let res = b.get("/activate").await;
    let cookie = res.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("vestibule_activate="), "{cookie}");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http in tests: {cookie}");
    let csrf = csrf_token(&res.text().await.unwrap());
    assert!(
        !cookie.contains(&csrf),
        "the session is encrypted: {cookie}"
    );

    let res = b.enter_code(started.user_code.as_str()).await;
    let cookie = res.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    assert!(!cookie.contains(started.user_code.as_str()));
    assert!(!cookie.contains(&started.grant.id.to_string()));
}

#[tokio::test]
async fn names_are_html_escaped() {
    let s = setup_with(workspaces::Changes::default(), "<script>alert(1)</script>").await;
    let started = s.device_asks().await;
    let b = Browser::new(&s.app);
    see_other(
        &b.enter_code(started.user_code.as_str()).await,
        "/activate/sign-in",
    );
    let (_, sign_in) = b.page("/activate/sign-in").await;
    see_other(&b.sign_in("alice", PASSWORD).await, "/activate/consent");
    let (_, consent) = b.page("/activate/consent").await;
    for page in [sign_in, consent] {
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;"),
            "{page}"
        );
        assert!(!page.contains("<script"), "{page}");
    }
    // What a user typed comes back escaped too.
    let page = body(b.enter_code("\"><b>hi</b>").await, StatusCode::BAD_REQUEST).await;
    assert!(
        page.contains("&quot;&gt;&lt;b&gt;hi&lt;&#x2F;b&gt;"),
        "{page}"
    );
    assert!(!page.contains("<b>hi"));
}

#[tokio::test]
async fn a_device_on_another_network_is_pointed_out() {
    let s = setup().await;
    let started = s.device_asks_from("203.0.113.5").await;
    let b = Browser::new(&s.app);
    see_other(&b.through_sign_in(&started).await, "/activate/consent");
    let (_, consent) = b.page("/activate/consent").await;
    assert!(
        consent.contains("a different network than the one you are on now"),
        "{consent}"
    );
    assert!(!consent.contains("the network you are on now<"));
}

#[tokio::test]
async fn bad_forms_and_pages_get_html_errors_not_500s() {
    let s = setup().await;
    let started = s.device_asks().await;
    let b = Browser::new(&s.app);
    let entry = b.page("/activate").await.1;
    let token = csrf_token(&entry);

    let res = b
        .post(
            "/activate",
            &[
                ("user_code", "BCDF"),
                ("csrf_token", &token),
                ("admin", "1"),
            ],
        )
        .await;
    let page = body(res, StatusCode::BAD_REQUEST).await;
    assert_page_basics(&page);
    let res = b
        .http
        .post(s.app.url("/activate"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    see_other(&b.through_sign_in(&started).await, "/activate/consent");
    let token = csrf_token(&b.page("/activate/consent").await.1);
    for form in [
        vec![("decision", "maybe"), ("csrf_token", token.as_str())],
        vec![("csrf_token", token.as_str())],
        vec![
            ("decision", "approve"),
            ("grant", "not-a-uuid"),
            ("csrf_token", token.as_str()),
        ],
    ] {
        let res = b.post("/activate/consent", &form).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{form:?}");
    }
    assert_eq!(s.status(&started).await, "pending");

    let (status, page) = b.page("/activate/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_page_basics(&page);
    // Step pages without a code in progress lead back to the start.
    let fresh = Browser::new(&s.app);
    for path in ["/activate/sign-in", "/activate/consent", "/activate/done"] {
        see_other(&fresh.get(path).await, "/activate");
    }
}

#[tokio::test]
async fn an_old_consent_tab_cannot_approve_a_code_entered_later() {
    let s = setup().await;
    let first = s.device_asks().await;
    let second = s.device_asks().await;
    let b = Browser::new(&s.app);
    see_other(&b.through_sign_in(&first).await, "/activate/consent");
    let old_tab = b.page("/activate/consent").await.1;
    let shown = first.grant.id.to_string();
    assert!(old_tab.contains(&format!("name=\"grant\" value=\"{shown}\"")));

    // In another tab, the user enters the second code.
    see_other(
        &b.enter_code(second.user_code.as_str()).await,
        "/activate/consent",
    );
    let res = b
        .post(
            "/activate/consent",
            &[
                ("decision", "approve"),
                ("grant", &shown),
                ("csrf_token", &csrf_token(&old_tab)),
            ],
        )
        .await;
    see_other(&res, "/activate/consent");
    assert_eq!(s.status(&first).await, "pending");
    assert_eq!(s.status(&second).await, "pending");
}

async fn audited(app: &TestApp, action: &str) -> Vec<audit_event::Model> {
    audit_event::Entity::find()
        .all(&app.core.db)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.action == action)
        .collect()
}

#[track_caller]
fn retry_after(res: &reqwest::Response) -> u64 {
    res.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn wrong_user_codes_are_throttled_per_address() {
    let s = setup_behind_proxy(3).await;
    let started = s.device_asks().await;
    let guesser = Browser::at(&s.app, "198.51.100.7");
    for guess in ["BCDF-GHJK", "BCDF-GHJL", "BCDF-GHJM"] {
        body(guesser.enter_code(guess).await, StatusCode::BAD_REQUEST).await;
    }
    // Out of budget: refused before any lookup, a right code and a link included.
    let res = guesser.enter_code(started.user_code.as_str()).await;
    let wait = retry_after(&res);
    assert!((1..=300).contains(&wait), "Retry-After {wait}");
    let page = body(res, StatusCode::TOO_MANY_REQUESTS).await;
    assert_page_basics(&page);
    assert!(page.contains("Too many wrong codes"), "{page}");
    let res = guesser
        .follow_link(&format!(
            "/activate?user_code={}",
            started.user_code.as_str()
        ))
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&res) >= 1);
    // Expired and used codes are real codes, not guesses: they cost nothing.
    let neighbour = Browser::at(&s.app, "198.51.100.8");
    let used = s.device_asks().await;
    s.app
        .decide(used.user_code.as_str(), &s.alice, Decision::Approve)
        .await;
    for _ in 0..4 {
        body(
            neighbour.enter_code(used.user_code.as_str()).await,
            StatusCode::CONFLICT,
        )
        .await;
    }
    // Another address is not affected.
    see_other(
        &neighbour.enter_code(started.user_code.as_str()).await,
        "/activate/sign-in",
    );
    assert_eq!(s.app.core.user_code_guard.failures_total(), 3);
    let metrics = s.app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("vestibule_throttled_total{limit=\"user_codes\"} 2"),
        "{metrics}"
    );
}

/// Any web page can make a browser fetch the link (an `<img>` will do): the GET only pre-fills
/// the form, so it neither looks the code up nor spends the address's budget.
#[tokio::test]
async fn a_link_only_prefills_the_form_and_spends_no_budget() {
    let s = setup_behind_proxy(3).await;
    let started = s.device_asks().await;
    let victim = Browser::at(&s.app, "198.51.100.7");
    for guess in [
        "BCDF-GHJK",
        "BCDF-GHJL",
        "BCDF-GHJM",
        "BCDF-GHJN",
        "BCDF-GHJP",
    ] {
        let (status, page) = victim.page(&format!("/activate?user_code={guess}")).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_eq!(user_code_value(&page), guess);
        assert!(!page.contains("We don&#x27;t know that code"), "{page}");
    }
    // The real code's link does not say more than a wrong one's: nothing was looked up.
    let link = format!("/activate?user_code={}", started.user_code.as_str());
    let res = victim.get(&link).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(s.app.core.user_code_guard.failures_total(), 0);
    assert_eq!(s.status(&started).await, "pending");
    // The address's budget is whole: confirming the code still works.
    see_other(&victim.follow_link(&link).await, "/activate/sign-in");
}

/// The budget is shared by every instance on the database: guessing on two does not double it.
#[tokio::test]
async fn the_wrong_code_budget_is_shared_by_every_instance() {
    let s = setup_behind_proxy(3).await;
    let peer = s.app.peer().await;
    let on_a = Browser::at(&s.app, "198.51.100.70");
    let on_b = Browser::at(&peer, "198.51.100.70");
    body(on_a.enter_code("BCDF-GHJK").await, StatusCode::BAD_REQUEST).await;
    body(on_b.enter_code("BCDF-GHJL").await, StatusCode::BAD_REQUEST).await;
    body(on_a.enter_code("BCDF-GHJM").await, StatusCode::BAD_REQUEST).await;
    body(
        on_b.enter_code("BCDF-GHJN").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    body(
        on_a.enter_code("BCDF-GHJP").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
}

#[tokio::test]
async fn a_surge_of_wrong_codes_raises_the_alarm_and_tightens_budgets_without_locking_out() {
    // Budget 9 per address; a surge is 90 wrong codes across the instance; then 3 per address.
    let s = setup_behind_proxy(9).await;
    for i in 0..45 {
        let b = Browser::at(&s.app, &format!("198.51.100.{i}"));
        for guess in ["BCDF-GHJK", "BCDF-GHJL"] {
            body(b.enter_code(guess).await, StatusCode::BAD_REQUEST).await;
        }
    }
    let alarms = audited(&s.app, "activate.user_code_surge").await;
    assert_eq!(alarms.len(), 1, "one alarm per surge");
    let detail: serde_json::Value = serde_json::from_str(&alarms[0].detail).unwrap();
    assert_eq!(detail["failures"], 90);
    assert_eq!(detail["tightened_to"], 3);
    assert!(alarms[0].workspace_id.is_none());
    let metrics = s.app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("vestibule_user_code_surge 1"), "{metrics}");
    assert!(metrics.contains("vestibule_user_code_failures_total 90"));
    assert!(metrics.contains("vestibule_user_code_surges_total 1"));

    // An address that guessed twice has one try left instead of seven.
    let guesser = Browser::at(&s.app, "198.51.100.0");
    body(
        guesser.enter_code("BCDF-GHJN").await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let res = guesser.enter_code("BCDF-GHJP").await;
    body(res, StatusCode::TOO_MANY_REQUESTS).await;
    // Nobody is locked out: a person who has not guessed enters a right code.
    let started = s.device_asks().await;
    let person = Browser::at(&s.app, "203.0.113.20");
    see_other(
        &person.enter_code(started.user_code.as_str()).await,
        "/activate/sign-in",
    );
}

#[tokio::test]
async fn failed_sign_ins_are_throttled_per_account_and_per_address() {
    let s = setup_behind_proxy(10).await;
    let started = s.device_asks().await;
    let attacker = Browser::at(&s.app, "198.51.100.9");
    see_other(
        &attacker.enter_code(started.user_code.as_str()).await,
        "/activate/sign-in",
    );
    for _ in 0..vestibule_core::SIGN_IN_MAX_FAILURES {
        body(
            attacker.sign_in("alice", "guessed password").await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
    }
    // The account is closed for a while, even with the right password and from elsewhere.
    let res = attacker.sign_in("alice", PASSWORD).await;
    assert!(retry_after(&res) >= 1);
    let page = body(res, StatusCode::TOO_MANY_REQUESTS).await;
    assert!(page.contains("Too many failed sign-ins"), "{page}");
    let alice = Browser::at(&s.app, "203.0.113.21");
    see_other(
        &alice.enter_code(started.user_code.as_str()).await,
        "/activate/sign-in",
    );
    body(
        alice.sign_in("alice", PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    let metrics = s.app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("vestibule_throttled_total{limit=\"sign_ins\"} 2"),
        "{metrics}"
    );
    let throttled = audited(&s.app, "user.sign_in_throttled").await;
    assert_eq!(throttled.len(), 1, "audited once when the limit is reached");
    assert_eq!(throttled[0].target.as_deref(), Some("alice"));
    assert_eq!(throttled[0].workspace_id, Some(s.ws.id));
    // The attacker's address is closed for other accounts too.
    s.app.user(&s.ws, "bob", "bob's password").await;
    body(
        attacker.sign_in("bob", "bob's password").await,
        StatusCode::TOO_MANY_REQUESTS,
    )
    .await;
    // Another account from another address is unaffected.
    let carol = s.app.user(&s.ws, "carol", "carol's password").await;
    let b = Browser::at(&s.app, "203.0.113.22");
    see_other(
        &b.enter_code(started.user_code.as_str()).await,
        "/activate/sign-in",
    );
    see_other(
        &b.sign_in(&carol.username, "carol's password").await,
        "/activate/consent",
    );
}
