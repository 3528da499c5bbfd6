//! Soak driver for `bench/soak.sh`: for minutes, a fleet of devices runs the device grant
//! (RFC 8628) against one or more Vestibule instances while people approve their codes at
//! `/activate`; it counts errors and lost approvals, reports latencies and samples the servers'
//! memory.
//!
//! - Devices: each asks for a device authorization, polls its code at the interval (5 s more
//!   after each `slow_down`, RFC 8628 §3.5) and, once it has tokens, starts over with a new
//!   authorization: a fleet that keeps arriving. They start spread over `--ramp`.
//! - People: `--people` browsers (a cookie store each) take the oldest waiting user code at
//!   `--approvals-per-sec` in all, and approve it as a person does: the entry form (typed, or
//!   every other time through `verification_uri_complete`), the sign-in the first time, the
//!   consent page when it is shown (it must show the code), the done page. Redirects are
//!   followed by hand, so that every page is a request of its own kind.
//! - Every request goes to the next `--base` URL, round robin (instances behind a notional load
//!   balancer that keeps no affinity: a browser's next page may come from another instance).
//! - Errors are every answer that is not a legitimate protocol answer (a transport failure, a
//!   5xx, a 429, an unexpected status, error or page). Lost approvals are approvals the server
//!   confirmed (the done page) whose device never got tokens: once `--duration` is over, nobody
//!   approves any more, and the devices with an approval in progress or made keep polling until
//!   they have their tokens or `--drain` has passed.
//! - Memory: the VmRSS of each `--pid`, every `--sample-every`; the figures say what it was at
//!   1 minute and at the end.
//!
//! The figures go to stdout. The exit status is 1 when there were errors or lost approvals, 2
//! when the run could not start; speed and memory never fail it.
//!
//! `cargo run --release --example soak -- --help` lists the options; `bench/soak.sh` provisions
//! the servers and runs it.

use std::collections::{HashSet, VecDeque};
use std::error::Error as _;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use clap::Parser;
use reqwest::header::{HeaderValue, LOCATION, USER_AGENT};
use reqwest::{Client, RequestBuilder, StatusCode, Url, redirect};
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::Instant;

#[derive(Parser)]
#[command(about = "Soak a Vestibule deployment: devices polling, people approving.")]
struct Args {
    /// Base URL of an instance; repeat it for several (requests go round robin).
    #[arg(long = "base", required = true)]
    bases: Vec<Url>,
    /// The workspace's slug.
    #[arg(long, default_value = "soak")]
    workspace: String,
    /// A public client of the workspace with the device_code grant.
    #[arg(long)]
    client_id: String,
    /// Person n (1..=people) signs in as `{user_prefix}{n}`.
    #[arg(long, default_value = "soak-person-")]
    user_prefix: String,
    /// The people's password (one for all).
    #[arg(long, env = "SOAK_PASSWORD", hide_env_values = true)]
    password: String,
    /// How many people approve, each in a browser session of their own.
    #[arg(long, default_value_t = 30)]
    people: usize,
    /// How many devices run the grant at any time.
    #[arg(long, default_value_t = 2000)]
    devices: usize,
    /// Approvals started per second, all people together.
    #[arg(long, default_value_t = 20.0)]
    approvals_per_sec: f64,
    /// How long people approve and new devices arrive (`90`, `90s`, `3m`, `1h`).
    #[arg(long, default_value = "3m", value_parser = parse_duration)]
    duration: Duration,
    /// After `duration`: how long devices with an approval may still poll for their tokens.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    drain: Duration,
    /// Devices start spread over this.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    ramp: Duration,
    /// A server process whose memory is sampled; repeat it for several.
    #[arg(long = "pid")]
    pids: Vec<u32>,
    /// How often the memory is sampled.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    sample_every: Duration,
    /// A name for the run in the figures (e.g. the backend).
    #[arg(long, default_value = "soak")]
    label: String,
}

/// `90` or `90s` (seconds), `3m`, `1h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 90s, 3m or 1h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{text:?}: the unit must be s, m or h")),
    };
    Ok(Duration::from_secs(seconds))
}

/// Every request waits at most this long for its answer; past it, it is an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Idle connections are dropped before actix-web's keep-alive (5 s) would close them, so that a
/// request never goes out on a connection the server is closing at that moment.
const POOL_IDLE: Duration = Duration::from_secs(3);

/// All people come from one address, and a sign-in spends the address's budget of failures
/// before it is decided (5 per address, given back on success): at most this many sign in at
/// once, so that people signing in together are not refused as a burst of guesses would be.
const CONCURRENT_SIGN_INS: usize = 4;

/// Error descriptions kept for the figures (and printed as they happen).
const ERRORS_SHOWN: usize = 20;

/// What RFC 8628 §3.5 says a device adds to its interval after `slow_down`.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// Requests and their figures

/// The kinds of request, each with its own figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    DeviceAuthorization,
    Poll,
    EntryPage,
    EnterCode,
    SignInPage,
    SignIn,
    ConsentPage,
    Consent,
    DonePage,
}

impl Kind {
    const ALL: [Self; 9] = [
        Self::DeviceAuthorization,
        Self::Poll,
        Self::EntryPage,
        Self::EnterCode,
        Self::SignInPage,
        Self::SignIn,
        Self::ConsentPage,
        Self::Consent,
        Self::DonePage,
    ];
    const COUNT: usize = Self::ALL.len();

    fn label(self) -> &'static str {
        match self {
            Self::DeviceAuthorization => "POST device_authorization",
            Self::Poll => "POST token (device_code)",
            Self::EntryPage => "GET /activate",
            Self::EnterCode => "POST /activate",
            Self::SignInPage => "GET /activate/sign-in",
            Self::SignIn => "POST /activate/sign-in",
            Self::ConsentPage => "GET /activate/consent",
            Self::Consent => "POST /activate/consent",
            Self::DonePage => "GET /activate/done",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// What the token endpoint answered to polls, by answer.
#[derive(Debug, Default, Clone, Copy)]
struct Answers {
    pending: u64,
    slow_down: u64,
    tokens: u64,
    expired: u64,
}

/// The figures of one task (a device or a person), merged at the end.
#[derive(Debug, Default)]
struct Recorder {
    requests: [u64; Kind::COUNT],
    errors: [u64; Kind::COUNT],
    /// Microseconds, per kind, of every request that got an answer.
    latencies: [Vec<u32>; Kind::COUNT],
    answers: Answers,
    shown_errors: Vec<String>,
}

/// Errors of the whole run so far (for progress lines and for which errors are printed).
static ERRORS: AtomicU64 = AtomicU64::new(0);

impl Recorder {
    fn error(&mut self, kind: Kind, what: impl Into<String>) {
        self.errors[kind.index()] += 1;
        let seen = ERRORS.fetch_add(1, Ordering::Relaxed);
        if usize::try_from(seen).is_ok_and(|n| n < ERRORS_SHOWN) {
            let line = format!("{}: {}", kind.label(), what.into());
            eprintln!("soak: error: {line}");
            self.shown_errors.push(line);
        }
    }

    fn merge(&mut self, other: Self) {
        for kind in Kind::ALL {
            let i = kind.index();
            self.requests[i] += other.requests[i];
            self.errors[i] += other.errors[i];
            self.latencies[i].extend_from_slice(&other.latencies[i]);
        }
        self.answers.pending += other.answers.pending;
        self.answers.slow_down += other.answers.slow_down;
        self.answers.tokens += other.answers.tokens;
        self.answers.expired += other.answers.expired;
        self.shown_errors.extend(other.shown_errors);
    }

    fn total_errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Sends `request` and reads its answer; `None` (counted as an error) when there is none.
    async fn send(&mut self, kind: Kind, request: RequestBuilder) -> Option<Reply> {
        self.requests[kind.index()] += 1;
        let started = Instant::now();
        let answer = async {
            let response = request.send().await?;
            let status = response.status();
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(str::to_owned);
            let body = response.text().await?;
            Ok::<_, reqwest::Error>(Reply {
                status,
                location,
                body,
            })
        }
        .await;
        match answer {
            Ok(reply) => {
                let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
                self.latencies[kind.index()].push(micros);
                Some(reply)
            }
            Err(e) => {
                self.error(kind, causes(&e));
                None
            }
        }
    }
}

/// An error with its causes, on one line.
fn causes(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

struct Reply {
    status: StatusCode,
    location: Option<String>,
    body: String,
}

impl Reply {
    /// What an unexpected answer was, briefly.
    fn describe(&self) -> String {
        let body: String = self.body.chars().take(160).collect();
        format!("HTTP {} {}", self.status.as_u16(), body.replace('\n', " "))
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

// ---------------------------------------------------------------------------------------------
// The deployment

/// The instances, each request to the next one.
struct Balancer {
    bases: Vec<Url>,
    next: AtomicUsize,
}

impl Balancer {
    /// `path` (with its query, if any) on the next instance.
    fn url(&self, path: &str) -> Url {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.bases.len();
        let mut url = self.bases[i].clone();
        match path.split_once('?') {
            Some((path, query)) => {
                url.set_path(path);
                url.set_query(Some(query));
            }
            None => {
                url.set_path(path);
                url.set_query(None);
            }
        }
        url
    }
}

/// The path (and query) of an absolute or relative URL the server gave.
fn path_of(link: &str) -> Option<String> {
    if link.starts_with('/') {
        return Some(link.to_owned());
    }
    let url = Url::parse(link).ok()?;
    Some(match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    })
}

/// The endpoints the devices use, from the workspace's discovery document.
struct Endpoints {
    device_authorization: String,
    token: String,
}

async fn discover(http: &Client, lb: &Balancer, slug: &str) -> Result<Endpoints, String> {
    let url = lb.url(&format!("/w/{slug}/.well-known/openid-configuration"));
    let response = http
        .get(url.clone())
        .send()
        .await
        .map_err(|e| format!("{url}: {}", causes(&e)))?;
    if !response.status().is_success() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let document: Value = response
        .json()
        .await
        .map_err(|e| format!("{url}: {}", causes(&e)))?;
    let endpoint = |name: &str| {
        document[name]
            .as_str()
            .and_then(path_of)
            .ok_or_else(|| format!("{url} has no {name}"))
    };
    Ok(Endpoints {
        device_authorization: endpoint("device_authorization_endpoint")?,
        token: endpoint("token_endpoint")?,
    })
}

// ---------------------------------------------------------------------------------------------
// Who approved what, and who got tokens

/// A device's code waiting for a person.
struct Waiting {
    id: u64,
    user_code: String,
    /// `verification_uri_complete`'s path and query.
    link: String,
    /// Past this, a person would approve too late for the device to redeem it in time.
    approve_before: Instant,
    expires_at: Instant,
}

/// Every authorization by the id the run gave it: handed to a person, approved (the server
/// confirmed it), failed (the approval did not go through), redeemed (its device got tokens).
#[derive(Default)]
struct LedgerState {
    taken: HashSet<u64>,
    approved: HashSet<u64>,
    failed: HashSet<u64>,
    redeemed: HashSet<u64>,
    /// When the last device got tokens.
    last_redeemed: Option<Instant>,
}

#[derive(Default)]
struct Ledger {
    state: Mutex<LedgerState>,
    next_id: AtomicU64,
    waiting: Mutex<VecDeque<Waiting>>,
    /// Codes past their `approve_before` when a person came to them.
    skipped: AtomicU64,
    /// Approval turns that found no device waiting.
    idle_turns: AtomicU64,
}

impl Ledger {
    fn state(&self) -> std::sync::MutexGuard<'_, LedgerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Waiting>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait_for_approval(&self, code: Waiting) {
        self.queue().push_back(code);
    }

    /// The oldest code that can still be approved in time, now handed to a person.
    fn take(&self) -> Option<Waiting> {
        let now = Instant::now();
        loop {
            let code = self.queue().pop_front()?;
            if code.approve_before > now {
                self.state().taken.insert(code.id);
                return Some(code);
            }
            self.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether the device of `id` still has an approval coming or made, and no tokens yet.
    fn awaited(&self, id: u64) -> bool {
        let state = self.state();
        state.taken.contains(&id) && !state.failed.contains(&id) && !state.redeemed.contains(&id)
    }

    /// Records tokens for `id`; false when nobody was ever given its code to approve.
    fn redeemed(&self, id: u64) -> bool {
        let mut state = self.state();
        state.redeemed.insert(id);
        state.last_redeemed = Some(Instant::now());
        state.taken.contains(&id)
    }
}

// ---------------------------------------------------------------------------------------------
// Devices

/// Shared by every task.
struct Run {
    lb: Balancer,
    devices: Client,
    endpoints: Endpoints,
    client_id: String,
    ledger: Ledger,
    /// People approve and new devices arrive until then.
    approving_until: Instant,
    /// Devices waiting for approved tokens give up then.
    drain_until: Instant,
}

/// Whether a code that expires at `expires_at` (by this process's clock) may have expired on
/// the server: lifetimes count whole seconds from when the server made the code.
fn expired(expires_at: Instant) -> bool {
    Instant::now() + Duration::from_secs(5) >= expires_at
}

/// A device authorization the device holds.
struct Authorization {
    device_code: String,
    interval: Duration,
    expires_at: Instant,
}

/// What a device does after a poll.
enum Next {
    Poll,
    SlowDown,
    /// Tokens, an expired code or an answer it cannot use: a new authorization.
    StartOver,
}

async fn device(run: Arc<Run>, start_at: Instant) -> Recorder {
    let mut rec = Recorder::default();
    tokio::time::sleep_until(start_at).await;
    while Instant::now() < run.approving_until {
        match authorize(&run, &mut rec).await {
            Some(authorization) => poll_until_done(&run, &mut rec, authorization).await,
            None => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    rec
}

/// A device authorization, its code put in line for a person.
async fn authorize(run: &Run, rec: &mut Recorder) -> Option<(u64, Authorization)> {
    let kind = Kind::DeviceAuthorization;
    let request = run
        .devices
        .post(run.lb.url(&run.endpoints.device_authorization))
        .form(&[("client_id", run.client_id.as_str())]);
    let reply = rec.send(kind, request).await?;
    let body = reply.json();
    let text = |name: &str| body[name].as_str().map(str::to_owned);
    let fields = (
        text("device_code"),
        text("user_code"),
        text("verification_uri_complete")
            .as_deref()
            .and_then(path_of),
        body["interval"].as_u64(),
        body["expires_in"].as_u64(),
    );
    let (Some(device_code), Some(user_code), Some(link), Some(interval), Some(expires_in)) = fields
    else {
        rec.error(kind, reply.describe());
        return None;
    };
    if reply.status != StatusCode::OK {
        rec.error(kind, reply.describe());
        return None;
    }
    let now = Instant::now();
    let interval = Duration::from_secs(interval);
    let expires_at = now + Duration::from_secs(expires_in);
    let id = run.ledger.next_id.fetch_add(1, Ordering::Relaxed);
    // A code approved later than this might not be polled again before it expires.
    let approve_before = expires_at
        .checked_sub(2 * interval + Duration::from_secs(10))
        .unwrap_or(now);
    run.ledger.wait_for_approval(Waiting {
        id,
        user_code,
        link,
        approve_before,
        expires_at,
    });
    Some((
        id,
        Authorization {
            device_code,
            interval,
            expires_at,
        },
    ))
}

/// Polls at the interval until tokens, expiry or (once approving is over) no approval coming.
async fn poll_until_done(run: &Run, rec: &mut Recorder, (id, auth): (u64, Authorization)) {
    let mut interval = auth.interval;
    loop {
        tokio::time::sleep(interval).await;
        let now = Instant::now();
        if now >= run.drain_until || (now >= run.approving_until && !run.ledger.awaited(id)) {
            return;
        }
        match poll(run, rec, id, &auth).await {
            Next::Poll => {}
            Next::SlowDown => interval += SLOW_DOWN_STEP,
            Next::StartOver => return,
        }
    }
}

async fn poll(run: &Run, rec: &mut Recorder, id: u64, auth: &Authorization) -> Next {
    let kind = Kind::Poll;
    let request = run.devices.post(run.lb.url(&run.endpoints.token)).form(&[
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("device_code", auth.device_code.as_str()),
        ("client_id", run.client_id.as_str()),
    ]);
    // No answer: a device tries again at its next interval.
    let Some(reply) = rec.send(kind, request).await else {
        return Next::Poll;
    };
    let body = reply.json();
    match (reply.status, body["error"].as_str()) {
        (StatusCode::OK, _) => {
            let bearer = body["token_type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("bearer"));
            if body["access_token"].as_str().is_none() || !bearer {
                rec.error(kind, reply.describe());
            } else if run.ledger.redeemed(id) {
                rec.answers.tokens += 1;
            } else {
                rec.error(kind, "tokens for a code nobody was given to approve");
            }
            Next::StartOver
        }
        (StatusCode::BAD_REQUEST, Some("authorization_pending")) => {
            rec.answers.pending += 1;
            Next::Poll
        }
        (StatusCode::BAD_REQUEST, Some("slow_down")) => {
            rec.answers.slow_down += 1;
            Next::SlowDown
        }
        (StatusCode::BAD_REQUEST, Some("expired_token")) if expired(auth.expires_at) => {
            rec.answers.expired += 1;
            Next::StartOver
        }
        (status, _) if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS => {
            rec.error(kind, reply.describe());
            Next::Poll
        }
        _ => {
            rec.error(kind, reply.describe());
            Next::StartOver
        }
    }
}

// ---------------------------------------------------------------------------------------------
// People

/// How a person reaches the code's page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arrival {
    Typed,
    /// Through `verification_uri_complete` (a QR code or a link).
    Link,
}

/// How an approval ended that was not an error.
enum Approval {
    Confirmed,
    /// The code expired while the person was on it (only near its lifetime's end).
    TooLate,
}

/// One person's browser: a cookie store, redirects followed by hand.
struct Person {
    browser: Client,
    username: String,
    password: String,
}

/// A step that did not go as a person's would: already recorded as an error.
struct Failed;

impl Person {
    async fn page(
        &self,
        run: &Run,
        rec: &mut Recorder,
        kind: Kind,
        path: &str,
    ) -> Result<Reply, Failed> {
        let reply = rec
            .send(kind, self.browser.get(run.lb.url(path)))
            .await
            .ok_or(Failed)?;
        expect(rec, kind, reply, StatusCode::OK)
    }

    async fn submit(
        &self,
        run: &Run,
        rec: &mut Recorder,
        kind: Kind,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<Reply, Failed> {
        rec.send(kind, self.browser.post(run.lb.url(path)).form(form))
            .await
            .ok_or(Failed)
    }

    /// Approves `code` from its entry page to the done page.
    async fn approve(
        &self,
        run: &Run,
        rec: &mut Recorder,
        sign_ins: &Semaphore,
        code: &Waiting,
        arrival: Arrival,
    ) -> Result<Approval, Failed> {
        let entry_path = match arrival {
            Arrival::Typed => "/activate",
            Arrival::Link => code.link.as_str(),
        };
        let page = self.page(run, rec, Kind::EntryPage, entry_path).await?;
        let csrf = field(rec, Kind::EntryPage, &page, "csrf_token")?;
        let mut form = vec![
            ("csrf_token", csrf.as_str()),
            ("user_code", &code.user_code),
        ];
        if arrival == Arrival::Link {
            let prefilled = page.body.contains(&format!("value=\"{}\"", code.user_code));
            if !prefilled {
                rec.error(Kind::EntryPage, "the link did not pre-fill the code");
                return Err(Failed);
            }
            form.push(("arrival", "link"));
        }
        let reply = self
            .submit(run, rec, Kind::EnterCode, "/activate", &form)
            .await?;
        if reply.status == StatusCode::GONE && expired(code.expires_at) {
            return Ok(Approval::TooLate);
        }
        let mut next = redirected(rec, Kind::EnterCode, reply)?;
        // Sign-in, consent and done, each at most once.
        for _ in 0..3 {
            next = match next.as_str() {
                "/activate/sign-in" => self.sign_in(run, rec, sign_ins).await?,
                "/activate/consent" => self.consent(run, rec, code).await?,
                "/activate/done" => {
                    let done = self.page(run, rec, Kind::DonePage, &next).await?;
                    if done.body.contains("You're all set") {
                        return Ok(Approval::Confirmed);
                    }
                    rec.error(Kind::DonePage, "the done page does not say approved");
                    return Err(Failed);
                }
                other => {
                    rec.error(Kind::EnterCode, format!("redirected to {other}"));
                    return Err(Failed);
                }
            };
        }
        rec.error(Kind::EnterCode, format!("still redirected to {next}"));
        Err(Failed)
    }

    async fn sign_in(
        &self,
        run: &Run,
        rec: &mut Recorder,
        sign_ins: &Semaphore,
    ) -> Result<String, Failed> {
        let _turn = sign_ins.acquire().await.map_err(|_| Failed)?;
        let page = self
            .page(run, rec, Kind::SignInPage, "/activate/sign-in")
            .await?;
        let csrf = field(rec, Kind::SignInPage, &page, "csrf_token")?;
        let form = [
            ("csrf_token", csrf.as_str()),
            ("username", &self.username),
            ("password", &self.password),
        ];
        let reply = self
            .submit(run, rec, Kind::SignIn, "/activate/sign-in", &form)
            .await?;
        redirected(rec, Kind::SignIn, reply)
    }

    async fn consent(
        &self,
        run: &Run,
        rec: &mut Recorder,
        code: &Waiting,
    ) -> Result<String, Failed> {
        let kind = Kind::ConsentPage;
        let page = self.page(run, rec, kind, "/activate/consent").await?;
        let marker = "data-field=\"user_code\">";
        let shown = page
            .body
            .split_once(marker)
            .and_then(|(_, rest)| rest.split_once('<'))
            .map(|(shown, _)| shown.trim());
        if shown != Some(code.user_code.as_str()) {
            rec.error(
                kind,
                format!("the consent page shows {shown:?}, not {}", code.user_code),
            );
            return Err(Failed);
        }
        let csrf = field(rec, kind, &page, "csrf_token")?;
        let grant = field(rec, kind, &page, "grant")?;
        let form = [
            ("csrf_token", csrf.as_str()),
            ("grant", grant.as_str()),
            ("decision", "approve"),
        ];
        let reply = self
            .submit(run, rec, Kind::Consent, "/activate/consent", &form)
            .await?;
        redirected(rec, Kind::Consent, reply)
    }
}

fn expect(
    rec: &mut Recorder,
    kind: Kind,
    reply: Reply,
    status: StatusCode,
) -> Result<Reply, Failed> {
    if reply.status == status {
        Ok(reply)
    } else {
        rec.error(kind, reply.describe());
        Err(Failed)
    }
}

/// The path a 303 sends the browser to.
fn redirected(rec: &mut Recorder, kind: Kind, reply: Reply) -> Result<String, Failed> {
    let reply = expect(rec, kind, reply, StatusCode::SEE_OTHER)?;
    match reply.location.as_deref().and_then(path_of) {
        Some(path) => Ok(path),
        None => {
            rec.error(kind, "a 303 without a usable Location");
            Err(Failed)
        }
    }
}

/// The value of the hidden form field `name` on a page.
fn field(rec: &mut Recorder, kind: Kind, page: &Reply, name: &str) -> Result<String, Failed> {
    let marker = format!("name=\"{name}\" value=\"");
    let value = page
        .body
        .split_once(&marker)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(value, _)| unescape(value));
    if value.is_none() {
        rec.error(kind, format!("no {name} on the page"));
    }
    value.ok_or(Failed)
}

/// Undoes the HTML escaping of an attribute value.
fn unescape(value: &str) -> String {
    value
        .replace("&#x2F;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A person: approves one waiting code per turn they are given, until the turns end.
async fn person(
    run: Arc<Run>,
    me: Person,
    turns: Arc<tokio::sync::Mutex<mpsc::Receiver<()>>>,
    sign_ins: Arc<Semaphore>,
) -> Recorder {
    let mut rec = Recorder::default();
    let mut arrivals = [Arrival::Typed, Arrival::Link].into_iter().cycle();
    loop {
        if turns.lock().await.recv().await.is_none() {
            return rec;
        }
        let Some(code) = run.ledger.take() else {
            run.ledger.idle_turns.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let arrival = arrivals.next().unwrap_or(Arrival::Typed);
        let outcome = me.approve(&run, &mut rec, &sign_ins, &code, arrival).await;
        let mut state = run.ledger.state();
        match outcome {
            Ok(Approval::Confirmed) => state.approved.insert(code.id),
            Ok(Approval::TooLate) | Err(Failed) => state.failed.insert(code.id),
        };
    }
}

/// Hands out `rate` approval turns a second until `until` (fewer when every person is busy).
async fn hand_out_turns(turns: mpsc::Sender<()>, rate: f64, until: Instant) {
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match tokio::time::timeout_at(until, turns.send(())).await {
            Ok(Ok(())) if Instant::now() < until => {}
            _ => return,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Memory

/// VmRSS of one process over the run: (seconds since the start, KiB; `None` once it is gone).
struct MemoryTrace {
    pid: u32,
    samples: Vec<(Duration, Option<u64>)>,
}

fn vm_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Samples every `every` until `stop` turns true, then once more.
async fn sample_memory(
    pids: Vec<u32>,
    every: Duration,
    started: Instant,
    mut stop: watch::Receiver<bool>,
) -> Vec<MemoryTrace> {
    let mut traces: Vec<MemoryTrace> = pids
        .into_iter()
        .map(|pid| MemoryTrace {
            pid,
            samples: Vec::new(),
        })
        .collect();
    loop {
        for trace in &mut traces {
            trace
                .samples
                .push((started.elapsed(), vm_rss_kib(trace.pid)));
        }
        if *stop.borrow() {
            return traces;
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.changed() => {}
        }
    }
}

/// A progress line every 30 s on stderr.
async fn report_progress(run: Arc<Run>, started: Instant, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(30));
    ticks.tick().await;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.changed() => return,
        }
        let (approved, redeemed) = {
            let state = run.ledger.state();
            (state.approved.len(), state.redeemed.len())
        };
        eprintln!(
            "soak: {:>4} s: {approved} approvals confirmed, {redeemed} devices got tokens, {} codes waiting, {} errors",
            started.elapsed().as_secs(),
            run.ledger.queue().len(),
            ERRORS.load(Ordering::Relaxed),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Figures

fn percentile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn ms(micros: Option<u32>) -> String {
    micros.map_or_else(
        || "-".to_owned(),
        |us| format!("{:.2} ms", f64::from(us) / 1000.0),
    )
}

#[allow(clippy::cast_precision_loss)]
fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[allow(clippy::cast_precision_loss)]
fn per_second(n: u64, over: Duration) -> f64 {
    n as f64 / over.as_secs_f64().max(0.001)
}

fn latency_row(label: &str, requests: u64, errors: u64, mut latencies: Vec<u32>, over: Duration) {
    latencies.sort_unstable();
    println!(
        "{label:<28} {requests:>9} {:>9.1} {errors:>7} {:>10} {:>10} {:>10}",
        per_second(requests, over),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99)),
        ms(latencies.last().copied()),
    );
}

fn memory_figures(trace: &MemoryTrace) -> String {
    let minute = Duration::from_secs(60);
    let at_minute = trace
        .samples
        .iter()
        .find(|(at, _)| *at >= minute)
        .and_then(|(_, kib)| *kib);
    let at_end = trace.samples.last().and_then(|(_, kib)| *kib);
    let peak = trace.samples.iter().filter_map(|(_, kib)| *kib).max();
    let mut text = format!("pid {}: ", trace.pid);
    match at_minute {
        Some(kib) => {
            let _ = write!(text, "{} at 1 min", mib(kib));
        }
        None => text.push_str("- at 1 min (the run was shorter, or the process was gone)"),
    }
    match at_end {
        Some(kib) => {
            let _ = write!(text, ", {} at the end", mib(kib));
        }
        None => text.push_str(", gone at the end"),
    }
    if let (Some(first), Some(last)) = (at_minute, at_end) {
        #[allow(clippy::cast_precision_loss)]
        let percent = (last as f64 - first as f64) * 100.0 / first.max(1) as f64;
        let sign = if last >= first { "+" } else { "-" };
        let _ = write!(
            text,
            ", after the first minute {sign}{} ({percent:+.1} %)",
            mib(last.abs_diff(first))
        );
    }
    if let Some(kib) = peak {
        let _ = write!(text, ", peak {}", mib(kib));
    }
    text
}

// ---------------------------------------------------------------------------------------------

fn http_client(builder: reqwest::ClientBuilder) -> Result<Client, String> {
    builder
        .redirect(redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .pool_idle_timeout(POOL_IDLE)
        .build()
        .map_err(|e| causes(&e))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    match soak(args).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(message) => {
            eprintln!("soak: {message}");
            ExitCode::from(2)
        }
    }
}

/// The run; `Ok(false)` when there were errors or lost approvals.
#[allow(clippy::too_many_lines)]
async fn soak(args: Args) -> Result<bool, String> {
    if args.approvals_per_sec.is_nan()
        || args.approvals_per_sec <= 0.0
        || args.people == 0
        || args.devices == 0
    {
        return Err("--approvals-per-sec, --people and --devices must be above 0".to_owned());
    }
    let lb = Balancer {
        bases: args.bases.clone(),
        next: AtomicUsize::new(0),
    };
    let devices = http_client(
        Client::builder().default_headers(
            [(
                USER_AGENT,
                HeaderValue::from_static("vestibule-soak-device/1"),
            )]
            .into_iter()
            .collect(),
        ),
    )?;
    let endpoints = discover(&devices, &lb, &args.workspace).await?;
    let started = Instant::now();
    let approving_until = started + args.duration;
    let run = Arc::new(Run {
        lb,
        devices,
        endpoints,
        client_id: args.client_id.clone(),
        ledger: Ledger::default(),
        approving_until,
        drain_until: approving_until + args.drain,
    });
    eprintln!(
        "soak: {}: {} devices, {} people, {} approvals/s for {} s (then a drain of up to {} s), against {}",
        args.label,
        args.devices,
        args.people,
        args.approvals_per_sec,
        args.duration.as_secs(),
        args.drain.as_secs(),
        args.bases
            .iter()
            .map(Url::as_str)
            .collect::<Vec<_>>()
            .join(", "),
    );

    let (stop, stopped) = watch::channel(false);
    let memory = tokio::spawn(sample_memory(
        args.pids.clone(),
        args.sample_every,
        started,
        stopped.clone(),
    ));
    let progress = tokio::spawn(report_progress(Arc::clone(&run), started, stopped));

    let mut tasks = Vec::new();
    let n = u32::try_from(args.devices).map_err(|_| "--devices is too large")?;
    for i in 0..n {
        let start_at = started + args.ramp * i / n;
        tasks.push(tokio::spawn(device(Arc::clone(&run), start_at)));
    }
    let (turns, taken) = mpsc::channel(1);
    let taken = Arc::new(tokio::sync::Mutex::new(taken));
    let sign_ins = Arc::new(Semaphore::new(CONCURRENT_SIGN_INS));
    for i in 1..=args.people {
        let me = Person {
            browser: http_client(Client::builder().cookie_store(true))?,
            username: format!("{}{i}", args.user_prefix),
            password: args.password.clone(),
        };
        tasks.push(tokio::spawn(person(
            Arc::clone(&run),
            me,
            Arc::clone(&taken),
            Arc::clone(&sign_ins),
        )));
    }
    hand_out_turns(turns, args.approvals_per_sec, approving_until).await;

    let mut rec = Recorder::default();
    for task in tasks {
        rec.merge(task.await.map_err(|e| format!("a task failed: {e}"))?);
    }
    let finished = Instant::now();
    let _ = stop.send(true);
    let memory = memory
        .await
        .map_err(|e| format!("memory sampling failed: {e}"))?;
    let _ = progress.await;

    let state = run.ledger.state();
    let lost = state.approved.difference(&state.redeemed).count();
    let unconfirmed = state.redeemed.difference(&state.approved).count();
    let drained = state
        .last_redeemed
        .map(|at| at.saturating_duration_since(approving_until));
    let over = args.duration;
    let errors = rec.total_errors();

    println!();
    println!(
        "soak {}: {} instance(s), {} devices, {} people, approvals at {} /s for {} s, drain up to {} s; ran {:.0} s",
        args.label,
        args.bases.len(),
        args.devices,
        args.people,
        args.approvals_per_sec,
        args.duration.as_secs(),
        args.drain.as_secs(),
        (finished - started).as_secs_f64(),
    );
    println!(
        "{:<28} {:>9} {:>9} {:>7} {:>10} {:>10} {:>10}",
        "request", "count", "req/s", "errors", "p50", "p99", "max"
    );
    let mut all = Vec::new();
    for kind in Kind::ALL {
        let i = kind.index();
        let latencies = std::mem::take(&mut rec.latencies[i]);
        all.extend_from_slice(&latencies);
        latency_row(
            kind.label(),
            rec.requests[i],
            rec.errors[i],
            latencies,
            over,
        );
    }
    latency_row("all", rec.requests.iter().sum(), errors, all, over);
    println!("(req/s over the {} s of approving)", over.as_secs());
    let answers = rec.answers;
    println!(
        "token answers: {} authorization_pending, {} slow_down, {} tokens, {} expired_token",
        answers.pending, answers.slow_down, answers.tokens, answers.expired
    );
    #[allow(clippy::cast_possible_truncation)]
    let confirmed = state.approved.len() as u64;
    println!(
        "approvals: {confirmed} confirmed ({:.1}/s), {} of their devices got tokens, {lost} lost; {} failed or too late; {} codes passed over as too close to expiry; {} turns found no code waiting",
        per_second(confirmed, over),
        state.approved.intersection(&state.redeemed).count(),
        state.failed.len(),
        run.ledger.skipped.load(Ordering::Relaxed),
        run.ledger.idle_turns.load(Ordering::Relaxed),
    );
    if unconfirmed > 0 {
        println!(
            "tokens without a confirmed approval: {unconfirmed} (each approval that did not confirm is an error above)"
        );
    }
    if let Some(drained) = drained {
        println!(
            "drain: the last device got its tokens {:.1} s after approving stopped",
            drained.as_secs_f64()
        );
    }
    for trace in &memory {
        println!("memory (VmRSS) {}", memory_figures(trace));
    }
    if !rec.shown_errors.is_empty() {
        println!("first errors:");
        for line in &rec.shown_errors {
            println!("  {line}");
        }
    }
    let pass = errors == 0 && lost == 0;
    println!(
        "result: {} ({errors} errors, {lost} lost approvals)",
        if pass { "PASS" } else { "FAIL" }
    );
    Ok(pass)
}
