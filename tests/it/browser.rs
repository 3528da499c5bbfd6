//! Real-browser tests: Debian's Chromium, headless, driven through chromedriver (WebDriver) with
//! fantoccini. Ignored unless asked for (`cargo test --test it browser -- --ignored`); under
//! `CI=true` a missing Chromium or chromedriver fails them. Screenshots go to
//! `target/tmp/browser-screenshots/`: the README's tour after a pass, the last page after a
//! failure. With `VESTIBULE_REFRESH_SCREENSHOTS=1` (outside CI) a pass refreshes the tour in
//! `docs/screenshots/` instead.
//!
//! The tests of `/activate` and the account page run on a phone's viewport and check every
//! page they reach with axe-core (no `serious` or `critical` violation). axe-core is the pinned
//! npm package that `.ci/run` installs under `target/axe/` (`VESTIBULE_AXE_JS` names another
//! `axe.min.js`); without it they are skipped, and fail under `CI=true`.
//!
//! A scenario drives one [`Page`] (go, fill, click, arrive, audit, shot) in a [`Session`],
//! which starts chromedriver and Chromium and, at the end, saves the screenshots or, on a
//! failure, the last page.

use std::cell::Cell;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;
use vestibule_core::entities::workspace;
use vestibule_core::services::audit::Actor;
use vestibule_core::services::{clients, workspaces};
use vestibule_core::types::{Access, DisplayName, GrantSet, Proximity, ScopeSet};

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Set to `1` to write the tour's screenshots over `docs/screenshots/`.
const REFRESH_SCREENSHOTS: &str = "VESTIBULE_REFRESH_SCREENSHOTS";
/// The path of another `axe.min.js` than the one `.ci/run` installs.
const AXE_JS: &str = "VESTIBULE_AXE_JS";

fn under_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// Whether Chromium and chromedriver are installed; prints why the test is skipped when not.
/// Under CI their absence fails the test instead.
fn browser_installed(test: &str) -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| !Path::new(p).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !under_ci(),
        "{test}: {} missing under CI=true (apt-get install chromium chromium-driver)",
        missing.join(" and ")
    );
    eprintln!(
        "{test}: skipped ({} missing; apt-get install chromium chromium-driver)",
        missing.join(" and ")
    );
    false
}

/// axe-core's script, injected into the pages it checks.
#[derive(Clone)]
struct Axe(String);

impl Axe {
    /// The script `.ci/run` installs (or `VESTIBULE_AXE_JS`); `None`, with the reason printed,
    /// when it is missing. Under CI its absence fails the test instead.
    fn load(test: &str) -> Option<Self> {
        let path = std::env::var_os(AXE_JS).map_or_else(
            || repo_root().join("target/axe/node_modules/axe-core/axe.min.js"),
            PathBuf::from,
        );
        match std::fs::read_to_string(&path) {
            Ok(source) => Some(Self(source)),
            Err(e) => {
                let install = "npm install --no-save --prefix \"$PWD/target/axe\" axe-core@VERSION \
                               (the version .ci/run pins)";
                assert!(
                    !under_ci(),
                    "{test}: axe-core missing under CI=true ({}: {e}); {install}",
                    path.display()
                );
                eprintln!(
                    "{test}: skipped (axe-core missing at {}: {e}; {install}, or set {AXE_JS})",
                    path.display()
                );
                None
            }
        }
    }
}

/// Where the tour's screenshots go: the README's `docs/screenshots/` only when asked for, and
/// never under CI (a test run must not rewrite tracked files); otherwise the target directory.
fn tour_screenshots_dir() -> PathBuf {
    if std::env::var(REFRESH_SCREENSHOTS).as_deref() != Ok("1") {
        return scratch_screenshots_dir();
    }
    if under_ci() {
        eprintln!("{REFRESH_SCREENSHOTS}=1 is ignored under CI=true");
        return scratch_screenshots_dir();
    }
    repo_root().join("docs/screenshots")
}

fn scratch_screenshots_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots")
}

/// The window a session browses in.
#[derive(Clone, Copy)]
enum Viewport {
    /// A desktop window, for the console.
    Desktop,
    /// A phone (390 × 844 CSS pixels, touch, a phone's user agent), as people use `/activate`.
    Phone,
}

impl Viewport {
    /// The capabilities' `goog:chromeOptions` for this viewport, beside the common `args`.
    fn chrome_options(self, mut args: Vec<String>) -> Value {
        match self {
            Self::Desktop => {
                args.push("--window-size=1280,1400".to_owned());
                serde_json::json!({ "binary": CHROMIUM, "args": args })
            }
            Self::Phone => serde_json::json!({
                "binary": CHROMIUM,
                "args": args,
                "mobileEmulation": {
                    "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 2.0, "touch": true },
                    "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 \
                                  (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
                },
            }),
        }
    }
}

/// A chromedriver of our own on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    /// Starts chromedriver on port 0, so that it binds a free port itself, and learns which
    /// from the line it prints once it listens.
    async fn start() -> anyhow::Result<Self> {
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("start chromedriver")?;
        let stdout = child.stdout.take().context("chromedriver's output")?;
        // Owned from here, so that it is stopped whatever happens next.
        let mut driver = Self { child, port: 0 };
        let announced = tokio::task::spawn_blocking(move || announced_port(stdout));
        // Late, the reading thread gone, or no port in what it said.
        driver.port = tokio::time::timeout(Duration::from_secs(20), announced)
            .await
            .context("chromedriver did not say where it listens")???;
        Ok(driver)
    }

    /// A headless Chromium session with a fresh profile in `profile`.
    async fn browser(&self, profile: &Path, viewport: Viewport) -> anyhow::Result<Client> {
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-quic".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            viewport.chrome_options(args),
        );
        ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .context("open a WebDriver session")
    }
}

/// The port in chromedriver's "started successfully on port N." line. The rest of its output
/// is read on a thread of its own, so that it never waits on a full pipe.
fn announced_port(stdout: ChildStdout) -> anyhow::Result<u16> {
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next() {
        let line = line?;
        if let Some(rest) = line.split("started successfully on port ").nth(1) {
            let port = rest.trim().trim_end_matches('.').parse()?;
            std::thread::spawn(move || lines.for_each(drop));
            return Ok(port);
        }
    }
    bail!("chromedriver stopped before it listened")
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the server crate sits in the workspace")
        .to_owned()
}

/// The page's HTML and a PNG of it.
async fn save_screenshot(browser: &Client, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, browser.screenshot().await?)?;
    Ok(path)
}

/// The browser as a scenario drives it, collecting screenshots for the README as it goes.
struct Page {
    browser: Client,
    base: String,
    shots: Vec<(String, Vec<u8>)>,
    /// Set for sessions that check accessibility.
    axe: Option<Axe>,
}

impl Page {
    /// Opens `path` on the app (or an absolute URL).
    async fn go(&self, path: &str) -> anyhow::Result<()> {
        if path.starts_with("http") {
            self.browser.goto(path).await?;
        } else {
            self.browser.goto(&format!("{}{path}", self.base)).await?;
        }
        Ok(())
    }

    async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let field = self
            .browser
            .find(Locator::Css(css))
            .await
            .context(css.to_owned())?;
        field.clear().await?;
        field.send_keys(text).await?;
        Ok(())
    }

    async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.browser
            .find(Locator::Css(css))
            .await
            .context(css.to_owned())?
            .click()
            .await?;
        Ok(())
    }

    /// Clicks the element (a form's button) and waits until the page it leads to has
    /// replaced this one, also when both have the same path (a form shown again).
    async fn submit(&self, css: &str) -> anyhow::Result<()> {
        const LEAVING: &str = "document.documentElement.dataset.leaving = 'yes';";
        const ARRIVED: &str = "return document.readyState === 'complete' \
                               && document.documentElement.dataset.leaving !== 'yes';";
        self.browser.execute(LEAVING, Vec::new()).await?;
        self.click(css).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        // While the next page loads, a script may fail: that is not yet an answer.
        while self.browser.execute(ARRIVED, Vec::new()).await.ok() != Some(Value::Bool(true)) {
            ensure!(
                Instant::now() < deadline,
                "{css}: no new page after the click"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    async fn text(&self, css: &str) -> anyhow::Result<String> {
        Ok(self
            .browser
            .find(Locator::Css(css))
            .await
            .context(css.to_owned())?
            .text()
            .await?
            .trim()
            .to_owned())
    }

    /// Scrolls so that the element is in the middle of the window (for a screenshot).
    async fn scroll_to(&self, css: &str) -> anyhow::Result<()> {
        let element = self
            .browser
            .find(Locator::Css(css))
            .await
            .context(css.to_owned())?;
        self.browser
            .execute(
                "arguments[0].scrollIntoView({block: 'center'});",
                vec![serde_json::to_value(element)?],
            )
            .await?;
        Ok(())
    }

    async fn path(&self) -> anyhow::Result<String> {
        Ok(self.browser.current_url().await?.path().to_owned())
    }

    /// Waits for a navigation (a click may return before the page it leads to has loaded).
    async fn arrive(&self, what: &str, at: impl Fn(&str) -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let path = self.path().await?;
            let ready = self
                .browser
                .execute("return document.readyState;", Vec::new())
                .await?;
            if at(&path) && ready == "complete" {
                return Ok(());
            }
            ensure!(Instant::now() < deadline, "{what}: still at {path}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn shot(&mut self, name: &str) -> anyhow::Result<()> {
        let png = self.browser.screenshot().await?;
        self.shots.push((name.to_owned(), png));
        Ok(())
    }

    /// Checks the page as it stands: it fits the window's width (nothing to scroll sideways
    /// on a phone) and, when the session has axe-core, has no `serious` or `critical`
    /// accessibility violation. `what` names the page in the failure, which lists them.
    async fn audit(&self, what: &str) -> anyhow::Result<()> {
        let overflow = self
            .browser
            .execute(
                "return document.documentElement.scrollWidth - window.innerWidth;",
                Vec::new(),
            )
            .await?;
        ensure!(
            overflow.as_i64().is_some_and(|px| px <= 0),
            "{what}: wider than the window by {overflow} px"
        );
        let Some(Axe(source)) = &self.axe else {
            return Ok(());
        };
        self.browser.execute(source, Vec::new()).await?;
        let found = self
            .browser
            .execute_async(
                r"const done = arguments[arguments.length - 1];
                axe.run(document, { resultTypes: ['violations'] })
                  .then((r) => done(r.violations
                    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
                    .map((v) => ({ id: v.id, impact: v.impact, help: v.help,
                                   nodes: v.nodes.map((n) => n.target.join(' ')) }))))
                  .catch((e) => done({ error: String(e) }));",
                Vec::new(),
            )
            .await?;
        let violations = found
            .as_array()
            .with_context(|| format!("{what}: axe-core failed: {found}"))?;
        ensure!(
            violations.is_empty(),
            "{what} ({}): serious or critical accessibility violations:\n{}",
            self.path().await?,
            violations
                .iter()
                .map(|v| format!(
                    "- {} ({}): {} at {}",
                    v["id"].as_str().unwrap_or_default(),
                    v["impact"].as_str().unwrap_or_default(),
                    v["help"].as_str().unwrap_or_default(),
                    v["nodes"]
                ))
                .collect::<Vec<_>>()
                .join("\n")
        );
        Ok(())
    }
}

/// chromedriver, Chromium and the page a scenario drives. [`Session::finish`] saves the
/// screenshots of a pass or panics with the last page's screenshot.
struct Session {
    test: &'static str,
    page: Page,
    _driver: Driver,
    _profile: tempfile::TempDir,
}

impl Session {
    async fn open(test: &'static str, app: &TestApp, viewport: Viewport, axe: Option<Axe>) -> Self {
        let driver = Driver::start().await.expect("chromedriver");
        let profile = tempfile::tempdir().expect("a profile directory");
        let browser = driver
            .browser(profile.path(), viewport)
            .await
            .expect("chromium");
        Self {
            test,
            page: Page {
                browser,
                base: app.address.clone(),
                shots: Vec::new(),
                axe,
            },
            _driver: driver,
            _profile: profile,
        }
    }

    async fn finish(self, outcome: anyhow::Result<()>) {
        let Self { test, page, .. } = self;
        if let Err(e) = &outcome {
            let saved = save_screenshot(&page.browser, &scratch_screenshots_dir(), test).await;
            let _ = page.browser.clone().close().await;
            panic!("{e:#}\nscreenshot: {saved:?}");
        }
        let dir = tour_screenshots_dir();
        std::fs::create_dir_all(&dir).expect("a screenshot directory");
        for (name, png) in &page.shots {
            std::fs::write(dir.join(format!("{name}.png")), png).expect("save a screenshot");
        }
        eprintln!("{test}: screenshots in {}", dir.display());
        page.browser.close().await.expect("close the browser");
    }
}

/// The console and `/activate` end to end: an admin sets a workspace up, runs the simulator,
/// a user approves the simulated device from the QR code's link, and the admin looks at the
/// workspace's phishing defences.
async fn console_tour(tour: &mut Page, app: &TestApp) -> anyhow::Result<()> {
    tour.go("/console/login").await?;
    tour.fill("#email", ADMIN_EMAIL).await?;
    tour.fill("#password", ADMIN_PASSWORD).await?;
    tour.click("form[action='/console/login'] button[type=submit]")
        .await?;
    tour.arrive("signed in", |p| p == "/console/workspaces")
        .await?;

    tour.fill("#slug", "living-room").await?;
    tour.fill("#name", "Living room").await?;
    tour.click("form[action='/console/workspaces'] button[type=submit]")
        .await?;
    tour.arrive("workspace created", |p| {
        p == "/console/workspaces/living-room"
    })
    .await?;
    tour.go("/console/workspaces").await?;
    tour.shot("console-workspaces").await?;

    tour.go("/console/workspaces/living-room").await?;
    tour.fill("#user_code_length", "10").await?;
    tour.browser
        .find(Locator::Css("#user_code_charset"))
        .await?
        .select_by_value("digits")
        .await?;
    tour.click("form[action='/console/workspaces/living-room'] button[type=submit]")
        .await?;
    tour.browser
        .wait()
        .for_element(Locator::Css("[data-notice]"))
        .await?;
    let keyspace = tour.text("[data-field=keyspace]").await?;
    ensure!(keyspace == "10,000,000,000", "10 digits saved: {keyspace}");
    tour.scroll_to("[data-guardrail]").await?;
    tour.shot("workspace-settings").await?;

    tour.go("/console/workspaces/living-room/clients").await?;
    tour.fill("#name", "Living-room TV").await?;
    tour.click("#public").await?;
    tour.click("form[action='/console/workspaces/living-room/clients'] button[type=submit]")
        .await?;
    tour.arrive("client created", |p| {
        p.starts_with("/console/workspaces/living-room/clients/")
    })
    .await?;
    let client_id = tour.text("[data-field=client_id]").await?;
    tour.click("form[action$='/simulator'] button[type=submit]")
        .await?;
    tour.arrive("simulator open", |p| p.ends_with("/simulator"))
        .await?;
    let user_code = tour.text("[data-field=user_code]").await?;
    let digits: String = user_code.chars().filter(char::is_ascii_digit).collect();
    ensure!(digits.len() == 10, "a 10-digit user code: {user_code}");
    tour.browser
        .find(Locator::Css("[data-field=qr] svg"))
        .await
        .context("the QR code")?;
    let link = tour
        .browser
        .find(Locator::Css("[data-field=verification_uri_complete]"))
        .await?
        .attr("href")
        .await?
        .context("the link has an href")?;
    tour.shot("client-simulator").await?;
    let simulator = format!("/console/workspaces/living-room/clients/{client_id}/simulator");

    let ws = workspaces::find(&app.core.db, "living-room")
        .await?
        .context("the workspace exists")?;
    app.user(&ws, "alice", "alice password").await;
    tour.go(&link).await?;
    // The link only pre-fills the code; the person confirms it.
    tour.arrive("code pre-filled", |p| p == "/activate").await?;
    tour.click("button[type=submit]").await?;
    tour.arrive("sign-in asked", |p| p == "/activate/sign-in")
        .await?;
    tour.fill("#username", "alice").await?;
    tour.fill("#password", "alice password").await?;
    tour.click("button[type=submit]").await?;
    tour.arrive("consent shown", |p| p == "/activate/consent")
        .await?;
    let source = tour.browser.source().await?;
    ensure!(
        source.contains("Living-room TV"),
        "consent names the client"
    );
    tour.shot("activate-consent").await?;
    tour.click("button[name=decision][value=approve]").await?;
    tour.arrive("done page", |p| p == "/activate/done").await?;
    let done = tour.browser.source().await?;
    ensure!(done.to_lowercase().contains("device"), "done page");

    tour.go(&simulator).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = tour.text("[data-field=simulator_status]").await?;
        if status == "approved — tokens issued" {
            break;
        }
        if Instant::now() > deadline {
            bail!("the simulator still says {status:?}");
        }
        // The page reloads itself every 3 s; wait for that, not a manual reload.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    tour.go("/console/workspaces/living-room/defences").await?;
    let proximity = tour.text("tr[data-section='6.1.1']").await?;
    ensure!(
        proximity.contains("Living-room TV: warn"),
        "the panel lists the client's proximity: {proximity}"
    );
    tour.shot("console-defences").await?;
    Ok(())
}

#[tokio::test]
#[ignore = "drives Chromium: cargo test --test it browser -- --ignored"]
async fn console_simulator_and_activate_in_chromium() {
    const TEST: &str = "console_simulator_and_activate_in_chromium";
    if !browser_installed(TEST) {
        return;
    }
    let app = TestApp::spawn().await;
    let mut session = Session::open(TEST, &app, Viewport::Desktop, None).await;
    let outcome = console_tour(&mut session.page, &app).await;
    session.finish(outcome).await;
}

/// A device of the phone scenarios: it asks over HTTP as a TV would, and polls.
struct Device<'a> {
    app: &'a TestApp,
    client_id: String,
    /// The scope it asks for.
    scope: &'static str,
    /// The address the trusted proxy names in `X-Forwarded-For`, for a device on another
    /// network than the browser's; `None` asks from the browser's address (127.0.0.1).
    forwarded_for: Option<&'static str>,
    http: reqwest::Client,
}

/// What the device shows its user.
struct Shown {
    device_code: String,
    user_code: String,
    verification_uri_complete: String,
    /// When the device last asked or polled: the next poll waits the interval from then.
    last: Cell<Instant>,
}

/// The polling interval of the scenarios' workspaces (`TestApp::workspace`).
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// A TV's user agent: the pages name the device "a TV".
const TV_USER_AGENT: &str =
    "Mozilla/5.0 (SMART-TV; Linux; Tizen 7.0) AppleWebKit/537.36 TV Safari/537.36";

impl<'a> Device<'a> {
    /// A TV of `client_id` asking for `scope` from the browser's address.
    fn tv(app: &'a TestApp, client_id: String, scope: &'static str) -> anyhow::Result<Self> {
        Ok(Self {
            app,
            client_id,
            scope,
            forwarded_for: None,
            http: reqwest::Client::builder()
                .user_agent(TV_USER_AGENT)
                .build()?,
        })
    }

    /// A request to the app, from [`Device::forwarded_for`] when set.
    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.post(self.app.url(path));
        match self.forwarded_for {
            Some(address) => request.header("x-forwarded-for", address),
            None => request,
        }
    }

    async fn ask(&self) -> anyhow::Result<Shown> {
        let res = self
            .post("/w/home/device_authorization")
            .form(&[
                ("client_id", self.client_id.as_str()),
                ("scope", self.scope),
            ])
            .send()
            .await?;
        ensure!(
            res.status() == 200,
            "device authorization: {}",
            res.status()
        );
        let body: Value = res.json().await?;
        let field = |name: &str| {
            body[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("no {name} in {body}"))
        };
        Ok(Shown {
            device_code: field("device_code")?,
            user_code: field("user_code")?,
            verification_uri_complete: field("verification_uri_complete")?,
            last: Cell::new(Instant::now()),
        })
    }

    /// One poll of the token endpoint, sent `interval` after the device last asked or polled
    /// (sooner would be answered `slow_down`).
    async fn poll(&self, shown: &Shown, interval: Duration) -> anyhow::Result<Value> {
        tokio::time::sleep_until((shown.last.get() + interval).into()).await;
        let body = self
            .post("/w/home/token")
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", shown.device_code.as_str()),
                ("client_id", self.client_id.as_str()),
            ])
            .send()
            .await?
            .json()
            .await?;
        shown.last.set(Instant::now());
        Ok(body)
    }

    /// Polls as RFC 8628 says until the answer is no longer "pending" (or "slow down").
    async fn outcome(&self, shown: &Shown) -> anyhow::Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut interval = POLL_INTERVAL;
        loop {
            let body = self.poll(shown, interval).await?;
            match body["error"].as_str() {
                Some("authorization_pending") => {}
                Some("slow_down") => interval += Duration::from_secs(5),
                _ => return Ok(body),
            }
            ensure!(Instant::now() < deadline, "still pending: {body}");
        }
    }
}

/// A typed code's user code as a hurried person types it on a phone: lowercase, a space for
/// the dash.
fn typed_carelessly(user_code: &str) -> String {
    user_code.to_lowercase().replace('-', " ")
}

/// Wrong codes an address may enter in the phone scenarios before it is throttled.
const USER_CODE_BUDGET: u32 = 3;

/// `/activate` on a phone: a typed code, a QR link (consent shown although given before),
/// a denial, and the page of an address that entered too many wrong codes; every page checked
/// with axe-core.
async fn activate_on_a_phone(page: &mut Page, app: &TestApp) -> anyhow::Result<()> {
    let ws = app
        .workspace(
            "home",
            workspaces::Changes {
                name: Some("Home".to_owned()),
                ..workspaces::Changes::default()
            },
        )
        .await;
    let (client_id, _) = app
        .client(&ws, true, &["device_code"], "openid profile")
        .await;
    app.user(&ws, "alice", "alice password").await;
    let device = Device::tv(app, client_id, "openid profile")?;

    // A typed code: the entry page, sign-in, consent, done; the device gets its tokens.
    let shown = device.ask().await?;
    page.go("/activate").await?;
    page.audit("code entry").await?;
    page.shot("phone-activate-entry").await?;
    page.fill("#user_code", &typed_carelessly(&shown.user_code))
        .await?;
    page.submit("form[action='/activate'] button[type=submit]")
        .await?;
    page.arrive("sign-in asked", |p| p == "/activate/sign-in")
        .await?;
    page.audit("sign-in").await?;
    page.fill("#username", "alice").await?;
    page.fill("#password", "alice password").await?;
    page.shot("phone-activate-sign-in").await?;
    page.submit("form[action='/activate/sign-in'] button[type=submit]")
        .await?;
    page.arrive("consent shown", |p| p == "/activate/consent")
        .await?;
    page.audit("consent").await?;
    let code = page.text("[data-field=user_code]").await?;
    ensure!(code == shown.user_code, "consent shows {code}");
    let request = page.text("dl.facts").await?;
    ensure!(
        request.contains("a TV"),
        "consent names the device: {request}"
    );
    page.shot("phone-activate-consent").await?;
    page.submit("button[name=decision][value=approve]").await?;
    page.arrive("done page", |p| p == "/activate/done").await?;
    page.audit("done").await?;
    page.shot("phone-activate-done").await?;
    let tokens = device.outcome(&shown).await?;
    ensure!(tokens["access_token"].is_string(), "tokens: {tokens}");

    // The QR code's link, although alice already consented to these scopes (a typed code
    // would skip consent now): consent is shown all the same, with the code to compare.
    let shown = device.ask().await?;
    page.go(&shown.verification_uri_complete).await?;
    page.arrive("code pre-filled", |p| p == "/activate").await?;
    page.audit("code entry from a link").await?;
    page.submit("form[action='/activate'] button[type=submit]")
        .await?;
    page.arrive("consent shown after a link", |p| p == "/activate/consent")
        .await?;
    let code = page.text("[data-field=user_code]").await?;
    ensure!(code == shown.user_code, "consent shows {code}");
    page.submit("button[name=decision][value=approve]").await?;
    page.arrive("done page", |p| p == "/activate/done").await?;
    let tokens = device.outcome(&shown).await?;
    ensure!(tokens["access_token"].is_string(), "tokens: {tokens}");

    // The skip is real: a typed code of the same client goes straight to done...
    let shown = device.ask().await?;
    page.go("/activate").await?;
    page.fill("#user_code", &shown.user_code).await?;
    page.submit("form[action='/activate'] button[type=submit]")
        .await?;
    page.arrive("consent skipped", |p| p == "/activate/done")
        .await?;
    let tokens = device.outcome(&shown).await?;
    ensure!(tokens["access_token"].is_string(), "tokens: {tokens}");

    // ...while a link still asks, and a denial reaches the device.
    let shown = device.ask().await?;
    page.go(&shown.verification_uri_complete).await?;
    page.arrive("code pre-filled", |p| p == "/activate").await?;
    page.submit("form[action='/activate'] button[type=submit]")
        .await?;
    page.arrive("consent shown", |p| p == "/activate/consent")
        .await?;
    page.submit("button[name=decision][value=deny]").await?;
    page.arrive("denied page", |p| p == "/activate/done")
        .await?;
    let h1 = page.text("h1").await?;
    ensure!(h1.contains("Request denied"), "the denied page says {h1:?}");
    page.audit("denied").await?;
    let denied = device.outcome(&shown).await?;
    ensure!(denied["error"] == "access_denied", "the device: {denied}");

    // Wrong codes: a message beside the field, then the throttled page.
    page.go("/activate").await?;
    let mut throttled = false;
    for attempt in 1..=USER_CODE_BUDGET + 1 {
        page.fill("#user_code", "BCDF-GHJK").await?;
        page.submit("form[action='/activate'] button[type=submit]")
            .await?;
        page.arrive("a wrong code's answer", |p| p == "/activate")
            .await?;
        if page.text("h1").await? == "Too many wrong codes" {
            throttled = true;
            break;
        }
        ensure!(
            page.text("#user_code-message").await.is_ok(),
            "attempt {attempt}: the wrong code is named beside the field"
        );
        if attempt == 1 {
            page.audit("a wrong code").await?;
        }
    }
    ensure!(
        throttled,
        "not throttled after {USER_CODE_BUDGET} wrong codes"
    );
    page.audit("throttled").await?;
    let message = page.text("[role=alert]").await?;
    ensure!(
        message.contains("Wait") && message.contains("minute"),
        "the throttled page says how long to wait: {message}"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "drives Chromium: cargo test --test it browser -- --ignored"]
async fn activate_on_a_phone_in_chromium_passes_axe() {
    const TEST: &str = "activate_on_a_phone_in_chromium_passes_axe";
    if !browser_installed(TEST) {
        return;
    }
    let Some(axe) = Axe::load(TEST) else {
        return;
    };
    let app = TestApp::spawn_with(|env| {
        env.insert(
            "VESTIBULE__SECURITY__USER_CODE_MAX_FAILURES".into(),
            USER_CODE_BUDGET.to_string(),
        );
    })
    .await;
    let mut session = Session::open(TEST, &app, Viewport::Phone, Some(axe)).await;
    let outcome = activate_on_a_phone(&mut session.page, &app).await;
    session.finish(outcome).await;
}

/// Where the refused device asks from: another network than the browser's (127.0.0.1), named
/// by the trusted proxy on 127.0.0.1.
const ELSEWHERE: &str = "198.51.100.7";
const ACCOUNT: &str = "/w/home/account";

/// A public TV app of `ws` that may refresh its tokens, with this proximity; its client_id.
async fn tv_client(
    app: &TestApp,
    ws: &workspace::Model,
    name: &str,
    proximity: Proximity,
) -> anyhow::Result<String> {
    let created = clients::create(
        &app.core,
        &Actor::Cli,
        ws,
        clients::NewClient {
            name: DisplayName::parse("name", name)?,
            client_id: None,
            public: true,
            grants: GrantSet::parse(["device_code", "refresh_token"])?,
            scopes: ScopeSet::parse("openid profile offline_access")?,
            redirect_uris: Vec::new(),
            dcr_template: false,
            access: Access::Everyone,
            device_networks: Vec::new(),
            proximity,
            after_approval_url: None,
        },
    )
    .await?;
    Ok(created.client.client_id)
}

/// Types the device's code at `/activate` and signs in as alice: the page that follows.
async fn enter_code_and_sign_in(page: &Page, shown: &Shown) -> anyhow::Result<()> {
    page.go("/activate").await?;
    page.fill("#user_code", &shown.user_code).await?;
    page.submit("form[action='/activate'] button[type=submit]")
        .await?;
    page.arrive("sign-in asked", |p| p == "/activate/sign-in")
        .await?;
    page.fill("#username", "alice").await?;
    page.fill("#password", "alice password").await?;
    page.submit("form[action='/activate/sign-in'] button[type=submit]")
        .await
}

/// Whether nothing on the page matches `css`.
async fn absent(page: &Page, css: &str) -> anyhow::Result<bool> {
    Ok(page.browser.find_all(Locator::Css(css)).await?.is_empty())
}

/// The account page on a phone: its sign-in page before anyone signed in; then a TV approved
/// with a typed code, found from the done page's link with its network and kind, revoked (its
/// tokens stop working at once), and the sign-out.
async fn account_on_a_phone(
    page: &mut Page,
    app: &TestApp,
    ws: &workspace::Model,
) -> anyhow::Result<()> {
    let (rs_id, rs_secret) = app
        .client(ws, false, &["client_credentials"], "api:read")
        .await;
    let rs_secret = rs_secret.context("a confidential client's secret")?;
    let active = |token: String| {
        let (id, secret) = (rs_id.clone(), rs_secret.clone());
        async move {
            let (status, body, _) = app
                .post_form(
                    "/w/home/introspect",
                    &[("token", token.as_str())],
                    Some((&id, &secret)),
                )
                .await;
            ensure!(status == 200, "introspection: {status} {body}");
            body["active"]
                .as_bool()
                .with_context(|| format!("introspection: {body}"))
        }
    };
    let client_id = tv_client(app, ws, "Living Room TV", Proximity::Warn).await?;
    let device = Device::tv(app, client_id.clone(), "openid profile offline_access")?;

    // Not signed in yet: the account page asks to sign in.
    page.go(ACCOUNT).await?;
    page.arrive("account sign-in", |p| p == ACCOUNT).await?;
    let h1 = page.text("h1").await?;
    ensure!(h1 == "Sign in to Home", "the account page asks: {h1:?}");
    ensure!(
        !absent(page, "form[action='/w/home/account/sign-in']").await?,
        "the account page's own sign-in form"
    );
    page.audit("account sign-in").await?;

    // A TV approved with a typed code, which gets tokens.
    let shown = device.ask().await?;
    enter_code_and_sign_in(page, &shown).await?;
    page.arrive("consent shown", |p| p == "/activate/consent")
        .await?;
    page.submit("button[name=decision][value=approve]").await?;
    page.arrive("done page", |p| p == "/activate/done").await?;
    let tokens = device.outcome(&shown).await?;
    let field = |name: &str| {
        tokens[name]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no {name} in {tokens}"))
    };
    let (access, refresh) = (field("access_token")?, field("refresh_token")?);
    ensure!(active(access.clone()).await?, "the new access token works");

    // The done page leads to the account page, which shows the TV.
    let link = format!("a[href='{ACCOUNT}']");
    let words = page.text(&link).await?;
    ensure!(
        words == "Review the devices you have approved",
        "the done page's link says {words:?}"
    );
    page.submit(&link).await?;
    page.arrive("account page", |p| p == ACCOUNT).await?;
    page.audit("account").await?;
    let approval = page.text("section.approval").await?;
    for fact in ["Living Room TV", "a TV", "network 127.0.0.x"] {
        ensure!(
            approval.contains(fact),
            "the approval shows {fact:?}: {approval}"
        );
    }
    // The heading kept in view, scrolled just enough to show the whole approval.
    page.browser
        .execute(
            "document.querySelector('section.approval').scrollIntoView({block: 'end'});",
            Vec::new(),
        )
        .await?;
    page.shot("phone-account").await?;

    // Revoked: the page confirms, and every token of the approval stops working.
    page.submit("section.approval form[action$='/revoke'] button[type=submit]")
        .await?;
    page.arrive("account after a revoke", |p| p == ACCOUNT)
        .await?;
    let notice = page.text("[role=status]").await?;
    ensure!(
        notice.contains("Living Room TV was cut off"),
        "the page confirms the revoke: {notice:?}"
    );
    ensure!(
        absent(page, "section.approval").await?,
        "the approval is gone"
    );
    page.audit("account after a revoke").await?;
    ensure!(!active(access).await?, "the access token is inactive");
    let (status, body, _) = app
        .post_form(
            "/w/home/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("client_id", client_id.as_str()),
            ],
            None,
        )
        .await;
    ensure!(
        status == 400 && body["error"] == "invalid_grant",
        "the refresh token: {status} {body}"
    );

    // Signing out leaves the account page asking to sign in again.
    page.submit("form[action='/w/home/account/sign-out'] button[type=submit]")
        .await?;
    page.arrive("signed out", |p| p == ACCOUNT).await?;
    let h1 = page.text("h1").await?;
    ensure!(h1 == "Sign in to Home", "after the sign-out: {h1:?}");
    ensure!(
        absent(page, "form[action='/w/home/account/sign-out']").await?,
        "no sign-out form once signed out"
    );
    Ok(())
}

/// Proximity `require` on a phone: a TV asking from another network than the browser's cannot
/// be approved from it. The page says so with no approve button, the device keeps waiting,
/// and a denial reaches it.
async fn proximity_refused_on_a_phone(
    page: &mut Page,
    app: &TestApp,
    ws: &workspace::Model,
) -> anyhow::Result<()> {
    let client_id = tv_client(app, ws, "Hall TV", Proximity::Require).await?;
    let device = Device {
        forwarded_for: Some(ELSEWHERE),
        ..Device::tv(app, client_id, "openid profile")?
    };
    let shown = device.ask().await?;
    enter_code_and_sign_in(page, &shown).await?;
    page.arrive("consent shown", |p| p == "/activate/consent")
        .await?;
    let refusal = page.text("[data-proximity=blocked]").await?;
    ensure!(
        refusal.contains("You cannot approve this from here."),
        "the page says it cannot approve: {refusal}"
    );
    let request = page.text("dl.facts").await?;
    ensure!(
        request.contains("a different network than the one you are on now"),
        "the request names the network: {request}"
    );
    ensure!(
        absent(page, "button[value=approve]").await?,
        "no approve button"
    );
    page.audit("proximity refusal").await?;
    page.shot("phone-activate-proximity-refused").await?;

    let polled = device.poll(&shown, POLL_INTERVAL).await?;
    ensure!(
        polled["error"] == "authorization_pending",
        "the device still waits: {polled}"
    );

    page.submit("button[name=decision][value=deny]").await?;
    page.arrive("denied page", |p| p == "/activate/done")
        .await?;
    let h1 = page.text("h1").await?;
    ensure!(h1.contains("Request denied"), "the denied page says {h1:?}");
    let denied = device.outcome(&shown).await?;
    ensure!(denied["error"] == "access_denied", "the device: {denied}");
    Ok(())
}

#[tokio::test]
#[ignore = "drives Chromium: cargo test --test it browser -- --ignored"]
async fn the_account_page_and_a_proximity_refusal_on_a_phone_in_chromium_pass_axe() {
    const TEST: &str = "the_account_page_and_a_proximity_refusal_on_a_phone_in_chromium_pass_axe";
    if !browser_installed(TEST) {
        return;
    }
    let Some(axe) = Axe::load(TEST) else {
        return;
    };
    // Behind a trusted proxy on 127.0.0.1: Chromium's requests come from there, and a device
    // may name another address in `X-Forwarded-For`.
    let app = TestApp::spawn_with(|env| {
        env.insert(
            "VESTIBULE__SERVER__TRUSTED_PROXIES".into(),
            "127.0.0.1/32".into(),
        );
    })
    .await;
    let ws = app
        .workspace(
            "home",
            workspaces::Changes {
                name: Some("Home".to_owned()),
                ..workspaces::Changes::default()
            },
        )
        .await;
    app.user(&ws, "alice", "alice password").await;
    let mut session = Session::open(TEST, &app, Viewport::Phone, Some(axe)).await;
    let mut outcome = account_on_a_phone(&mut session.page, &app, &ws).await;
    if outcome.is_ok() {
        outcome = proximity_refused_on_a_phone(&mut session.page, &app, &ws).await;
    }
    session.finish(outcome).await;
}
