//! Real-browser tests: Debian's Chromium, headless, driven through chromedriver (WebDriver) with
//! fantoccini. Ignored unless asked for (`cargo test --test it browser -- --ignored`); under
//! `CI=true` a missing Chromium or chromedriver fails them. Screenshots go to
//! `target/tmp/browser-screenshots/`: the README's tour after a pass, the last page after a
//! failure. With `VESTIBULE_REFRESH_SCREENSHOTS=1` (outside CI) a pass refreshes the tour in
//! `docs/screenshots/` instead.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use vestibule_core::services::workspaces;

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, TestApp};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Set to `1` to write the tour's screenshots over `docs/screenshots/`.
const REFRESH_SCREENSHOTS: &str = "VESTIBULE_REFRESH_SCREENSHOTS";

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
    async fn browser(&self, profile: &Path) -> anyhow::Result<Client> {
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-quic".to_owned(),
            "--window-size=1280,1400".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({ "binary": CHROMIUM, "args": args }),
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

/// One page of the scenario, with its screenshot for the README.
struct Tour {
    browser: Client,
    base: String,
    shots: Vec<(String, Vec<u8>)>,
}

impl Tour {
    async fn go(&self, path: &str) -> anyhow::Result<()> {
        self.browser.goto(&format!("{}{path}", self.base)).await?;
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
}

/// The console and `/activate` end to end: an admin sets a workspace up, runs the simulator,
/// and a user approves the simulated device from the QR code's link.
async fn scenario(tour: &mut Tour, app: &TestApp) -> anyhow::Result<()> {
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
    tour.browser.goto(&link).await?;
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
    let driver = Driver::start().await.expect("chromedriver");
    let profile = tempfile::tempdir().expect("a profile directory");
    let browser = driver.browser(profile.path()).await.expect("chromium");
    let mut tour = Tour {
        browser,
        base: app.address.clone(),
        shots: Vec::new(),
    };
    let outcome = scenario(&mut tour, &app).await;
    if let Err(e) = &outcome {
        let saved = save_screenshot(&tour.browser, &scratch_screenshots_dir(), TEST).await;
        let _ = tour.browser.clone().close().await;
        panic!("{e:#}\nscreenshot: {saved:?}");
    }
    let dir = tour_screenshots_dir();
    std::fs::create_dir_all(&dir).expect("a screenshot directory");
    for (name, png) in &tour.shots {
        std::fs::write(dir.join(format!("{name}.png")), png).expect("save a screenshot");
    }
    eprintln!("{TEST}: tour screenshots in {}", dir.display());
    tour.browser.close().await.expect("close the browser");
}
