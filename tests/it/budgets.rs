//! Failure budgets that hold: IPv6 addresses share a budget per prefix, a concurrent burst
//! cannot overshoot a budget, and unknown device codes at the token endpoint spend one.

use reqwest::StatusCode;
use reqwest::header::RETRY_AFTER;
use vestibule_core::services::workspaces;

use crate::helpers::TestApp;

const PASSWORD: &str = "alice password";
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// An app behind a proxy on 127.0.0.1 that names the client's address, with `max_failures`
/// wrong codes per address, a workspace `home`, a public device client and the user alice.
struct Setup {
    app: TestApp,
    client_id: String,
}

async fn setup(max_failures: u32) -> Setup {
    let app = TestApp::behind_proxy(max_failures).await;
    let ws = app.workspace("home", workspaces::Changes::default()).await;
    let (client_id, _) = app
        .client(&ws, true, &["device_code"], "openid profile")
        .await;
    app.user(&ws, "alice", PASSWORD).await;
    Setup { app, client_id }
}

/// A browser at `address` (as the trusted proxy says): cookies kept, redirects not followed.
fn browser(address: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("x-forwarded-for", address.parse().unwrap());
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .default_headers(headers)
        .build()
        .unwrap()
}

/// How many of `answers` have the status `checked`, and how many are 429; nothing else.
fn tally(answers: &[reqwest::Response], checked: StatusCode) -> (usize, usize) {
    let statuses: Vec<StatusCode> = answers.iter().map(reqwest::Response::status).collect();
    let count = |wanted: StatusCode| statuses.iter().filter(|s| **s == wanted).count();
    let tally = (count(checked), count(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(tally.0 + tally.1, statuses.len(), "{statuses:?}");
    tally
}

impl Setup {
    /// The form of the page at `path` as `browser` gets it, with its CSRF token filled in.
    async fn form(&self, browser: &reqwest::Client, path: &str) -> String {
        let html = browser
            .get(self.app.url(path))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let marker = "name=\"csrf_token\" value=\"";
        let start = html.find(marker).expect("a CSRF token") + marker.len();
        let end = html[start..].find('"').unwrap() + start;
        html[start..end].to_owned()
    }

    async fn post(
        &self,
        browser: &reqwest::Client,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        browser
            .post(self.app.url(path))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// `/activate` with `code` from `browser`; the status of the answer.
    async fn enter_code(&self, browser: &reqwest::Client, code: &str) -> StatusCode {
        let token = self.form(browser, "/activate").await;
        self.post(
            browser,
            "/activate",
            &[("user_code", code), ("csrf_token", &token)],
        )
        .await
        .status()
    }

    /// Posts `fields` to `path` from each browser of `ready` (with its CSRF token) at once.
    async fn all_at_once(
        &self,
        ready: &[(reqwest::Client, String)],
        path: &str,
        fields: &[(&str, &str)],
    ) -> Vec<reqwest::Response> {
        futures_util::future::join_all(ready.iter().map(|(browser, token)| async move {
            let mut form = fields.to_vec();
            form.push(("csrf_token", token));
            self.post(browser, path, &form).await
        }))
        .await
    }

    /// A sign-in as alice with `password` from `browser`, at the sign-in form; the status.
    async fn sign_in(&self, browser: &reqwest::Client, password: &str) -> StatusCode {
        let token = self.form(browser, "/activate/sign-in").await;
        self.post(
            browser,
            "/activate/sign-in",
            &[
                ("username", "alice"),
                ("password", password),
                ("csrf_token", &token),
            ],
        )
        .await
        .status()
    }

    /// A device authorization from `address`: its device code and user code.
    async fn device_asks(&self, address: &str) -> (String, String) {
        let res = browser(address)
            .post(self.app.url("/w/home/device_authorization"))
            .form(&[("client_id", self.client_id.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body: serde_json::Value = res.json().await.unwrap();
        (
            body["device_code"].as_str().unwrap().to_owned(),
            body["user_code"].as_str().unwrap().to_owned(),
        )
    }

    /// A poll of `device_code` from `address`: the status, the JSON body and `Retry-After`.
    async fn poll(
        &self,
        address: &str,
        device_code: &str,
    ) -> (StatusCode, serde_json::Value, Option<u64>) {
        let res = browser(address)
            .post(self.app.url("/w/home/token"))
            .form(&[
                ("grant_type", DEVICE_CODE_GRANT),
                ("client_id", self.client_id.as_str()),
                ("device_code", device_code),
            ])
            .send()
            .await
            .unwrap();
        let status = res.status();
        let retry_after = res
            .headers()
            .get(RETRY_AFTER)
            .map(|v| v.to_str().unwrap().parse().unwrap());
        (status, res.json().await.unwrap(), retry_after)
    }
}

#[tokio::test]
async fn addresses_of_one_ipv6_prefix_share_a_budget() {
    let s = setup(2).await;
    let (one, two) = (browser("2001:db8:1:2::1"), browser("2001:db8:1:2:ffff::9"));
    assert_eq!(
        s.enter_code(&one, "BCDF-GHJK").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        s.enter_code(&two, "BCDF-GHJL").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        s.enter_code(&browser("2001:db8:1:2::abcd"), "BCDF-GHJM")
            .await,
        StatusCode::TOO_MANY_REQUESTS,
        "a third address of the same /64 finds the budget spent"
    );
    assert_eq!(
        s.enter_code(&browser("2001:db8:1:3::1"), "BCDF-GHJN").await,
        StatusCode::BAD_REQUEST,
        "the neighbouring /64 has a budget of its own"
    );
    assert_eq!(
        s.enter_code(&browser("198.51.100.1"), "BCDF-GHJP").await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        s.enter_code(&browser("198.51.100.2"), "BCDF-GHJQ").await,
        StatusCode::BAD_REQUEST,
    );
    assert_eq!(
        s.enter_code(&browser("198.51.100.2"), "BCDF-GHJR").await,
        StatusCode::BAD_REQUEST,
        "IPv4 addresses keep a budget each"
    );
}

#[tokio::test]
async fn a_burst_of_wrong_passwords_checks_at_most_the_budget() {
    let s = setup(10).await;
    let (_, user_code) = s.device_asks("192.0.2.1").await;
    // Twenty browsers, each at its own address and at the sign-in form, post at once.
    let mut ready = Vec::new();
    for i in 0..20 {
        let b = browser(&format!("198.51.100.{i}"));
        assert_eq!(s.enter_code(&b, &user_code).await, StatusCode::SEE_OTHER);
        let token = s.form(&b, "/activate/sign-in").await;
        ready.push((b, token));
    }
    let answers = s
        .all_at_once(
            &ready,
            "/activate/sign-in",
            &[("username", "alice"), ("password", "guessed password")],
        )
        .await;
    assert_eq!(
        tally(&answers, StatusCode::UNAUTHORIZED),
        (vestibule_core::SIGN_IN_MAX_FAILURES as usize, 15),
        "passwords checked, attempts refused"
    );
    let metrics = s.app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("vestibule_throttled_total{limit=\"sign_ins\"} 15"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_successful_sign_in_forgets_the_accounts_failures_and_costs_its_address_nothing() {
    let s = setup(10).await;
    let (_, user_code) = s.device_asks("192.0.2.1").await;
    let b = browser("198.51.100.7");
    assert_eq!(s.enter_code(&b, &user_code).await, StatusCode::SEE_OTHER);
    for _ in 0..4 {
        assert_eq!(
            s.sign_in(&b, "guessed password").await,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(s.sign_in(&b, PASSWORD).await, StatusCode::SEE_OTHER);
    // The account starts afresh; the address spent four of its five.
    let again = browser("198.51.100.7");
    assert_eq!(
        s.enter_code(&again, &user_code).await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        s.sign_in(&again, "guessed password").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.sign_in(&again, "guessed password").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_burst_of_wrong_user_codes_spends_at_most_the_budget() {
    let s = setup(5).await;
    let mut ready = Vec::new();
    for _ in 0..30 {
        let b = browser("198.51.100.9");
        let token = s.form(&b, "/activate").await;
        ready.push((b, token));
    }
    let answers = s
        .all_at_once(&ready, "/activate", &[("user_code", "BCDF-GHJK")])
        .await;
    assert_eq!(
        tally(&answers, StatusCode::BAD_REQUEST),
        (5, 25),
        "codes looked up, codes refused"
    );
    let metrics = s.app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("vestibule_user_code_failures_total 5"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_right_user_code_costs_nothing() {
    let s = setup(2).await;
    let (_, user_code) = s.device_asks("192.0.2.1").await;
    let b = browser("198.51.100.9");
    for _ in 0..5 {
        assert_eq!(s.enter_code(&b, &user_code).await, StatusCode::SEE_OTHER);
    }
    assert_eq!(s.enter_code(&b, "BCDF-GHJK").await, StatusCode::BAD_REQUEST);
    assert_eq!(s.enter_code(&b, "BCDF-GHJL").await, StatusCode::BAD_REQUEST);
    assert_eq!(
        s.enter_code(&b, "BCDF-GHJM").await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn unknown_device_codes_spend_a_per_address_budget() {
    let s = setup(3).await;
    let (device_code, _) = s.device_asks("192.0.2.1").await;
    let (untouched, _) = s.device_asks("192.0.2.2").await;
    let attacker = "2001:db8:7:7::1";
    // Polls of a real code never count, however many.
    for _ in 0..6 {
        let (status, body, _) = s.poll(attacker, &device_code).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            ["authorization_pending", "slow_down"].contains(&body["error"].as_str().unwrap()),
            "{body}"
        );
    }
    for i in 0..3 {
        let (status, body, _) = s.poll(attacker, &format!("guessed-{i}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_grant");
    }
    let (status, body, retry_after) = s.poll("2001:db8:7:7::2", "guessed-3").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "slow_down");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("unknown device codes"),
        "{body}"
    );
    assert!((1..=300).contains(&retry_after.unwrap()));
    // The address is refused before any code is looked up, a real one included.
    let (status, _, _) = s.poll(attacker, &device_code).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // Another address polls as before (once its grant's interval of a second has passed).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, body, _) = s.poll("192.0.2.2", &untouched).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "authorization_pending");
    let (status, body, _) = s.poll("198.51.100.3", "guessed-4").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let metrics = s.app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("vestibule_throttled_total{limit=\"device_codes\"} 2"),
        "{metrics}"
    );
}
