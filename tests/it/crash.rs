//! Crash safety (ignored: `cargo test --test it crash -- --ignored`, run by CI on both
//! backends): the real `vestibule` binary is killed with SIGKILL at random moments while
//! devices are authorized, approved or denied at `/activate`, polled and refreshed. After every
//! restart each grant is pending, approved, denied or consumed with the columns, change-log
//! rows, audit events and issuance that status requires; every decision the server confirmed
//! holds; no device code yields two token responses; a refresh token the server confirmed keeps
//! working. At the end the database passes its integrity checks.
//!
//! What the server cannot promise is spelled out where it is checked: a request cut by the kill
//! may or may not have been committed, so its outcome is only ever taken as "maybe". In
//! particular a redemption committed just before a kill whose response never left the process
//! is a token response lost in flight, like one lost to the network: the grant is consumed and
//! its issuance recorded, and the device code is not honoured a second time (RFC 8628 §3.5).

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sea_orm::{
    ConnectionTrait as _, Database, DatabaseConnection, DbBackend, EntityTrait as _, Statement,
};
use serde_json::Value;
use vestibule_core::crypto::{Keyring, MasterKey, SecretKind};
use vestibule_core::entities::{
    audit_event, device_grant, device_grant_change, grant, refresh_token,
};
use vestibule_core::services::device_grants::Status;

use crate::helpers::{TestDb, base_env, run_binary};

/// How many times the server is killed (at least 50; `VESTIBULE_CRASH_KILLS` may ask for more).
const KILLS: u32 = 50;
/// Concurrent drivers of the random mix.
const DRIVERS: usize = 6;
/// How long a server lives after it said it is ready, in milliseconds: log-uniform between
/// these, so most kills come within a few hundred ms and some late enough for a person to get
/// through sign-in and consent (a debug build takes a few hundred ms for that).
const LIFE_MS: (f64, f64) = (5.0, 2000.0);
/// Undecided devices the drivers keep at most: enough for every action to find work.
const UNDECIDED: usize = 12;
const SLUG: &str = "crash";
const SCOPE: &str = "openid offline_access";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The people at `/activate`: (username, password); a username may have several browsers.
const PEOPLE: [(&str, &str); 4] = [
    ("alice", "alice-password-1"),
    ("alice", "alice-password-1"),
    ("bob", "bob-password-22"),
    ("carol", "carol-password-333"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "kills the server 50 times: cargo test --test it crash -- --ignored"]
async fn grants_survive_sigkill_at_random_moments() {
    let began = Instant::now();
    let seed = seed();
    println!("crash: seed {seed} (VESTIBULE_CRASH_SEED={seed} replays the kill schedule)");
    let kills = std::env::var("VESTIBULE_CRASH_KILLS")
        .ok()
        .and_then(|k| k.parse().ok())
        .map_or(KILLS, |k: u32| k.max(KILLS));
    let mut rng = Rng(seed);
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let env = server_env(&db, &dir.path().join("data"));
    let client_id = provision(dir.path(), &env);
    let keyring = Keyring::new(
        &MasterKey::load_or_create(None, &dir.path().join("data")).expect("the master key"),
    )
    .expect("keyring");
    let world = Arc::new(Mutex::new(World::new(client_id)));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");

    let mut cut_kills = 0;
    for kill in 1..=kills {
        let starting = Instant::now();
        let mut server = Server::start(dir.path(), &env).await;
        let up = starting.elapsed().as_millis();
        let census = check(&db, &keyring, &world).await;
        fail_on_violations(&world, &server, seed, kill);
        let stop = Arc::new(AtomicBool::new(false));
        let drivers: Vec<_> = (0..DRIVERS)
            .map(|_| {
                let driver = Driver {
                    world: world.clone(),
                    http: http.clone(),
                    base: server.base.clone(),
                    stop: stop.clone(),
                    rng: Rng(rng.next()),
                };
                tokio::spawn(driver.run())
            })
            .collect();
        let life = if kill == 1 {
            // The first life is spent until every browser has signed in and decided once
            // (sign-ins outlast the short lives that follow; their sessions survive restarts).
            warm_up(&world).await
        } else {
            let life = rng.life();
            tokio::time::sleep(Duration::from_millis(life)).await;
            life
        };
        stop.store(true, Ordering::SeqCst);
        server.kill();
        for driver in drivers {
            driver.await.expect("driver task");
        }
        let cut = std::mem::take(&mut lock(&world).cut_now);
        if cut > 0 {
            cut_kills += 1;
        }
        println!(
            "crash: kill {kill}/{kills}: ready in {up} ms, killed {life} ms later, {cut} \
             requests cut; before it: {}",
            census.line()
        );
        fail_on_violations(&world, &server, seed, kill);
    }

    // After the last kill: every confirmed approval still yields its tokens, every redeemed
    // code still yields none, every confirmed refresh token still works.
    let mut server = Server::start(dir.path(), &env).await;
    check(&db, &keyring, &world).await;
    settle(&world, &http, &server.base).await;
    fail_on_violations(&world, &server, seed, kills + 1);
    let census = check(&db, &keyring, &world).await;
    fail_on_violations(&world, &server, seed, kills + 1);
    server.kill();
    integrity(&db).await;

    let world = lock(&world);
    println!(
        "crash: {kills} kills ({cut_kills} of them cut requests in flight) in {:.1} s, seed \
         {seed}\n\
         crash: grants {}\n\
         crash: {} devices known to the driver; {} token responses, {} refreshes, {} decisions \
         confirmed ({} denials); {} redemptions lost in flight; {} requests cut in all",
        began.elapsed().as_secs_f64(),
        census.line(),
        world.devices.len(),
        world.token_responses,
        world.refreshes,
        world.decisions,
        world.denials,
        world.lost_in_flight,
        world.cut_total,
    );
    assert!(world.token_responses > 0, "no device ever got tokens");
    assert!(cut_kills > 0, "no kill ever landed on a request in flight");
}

/// Lets the drivers work until every browser is signed in; returns how long that took (ms).
async fn warm_up(world: &Mutex<World>) -> u64 {
    let began = Instant::now();
    loop {
        {
            let mut world = lock(world);
            if world.signed_in.iter().all(|s| *s) {
                break;
            }
            if began.elapsed() > Duration::from_secs(120) {
                world.violation("the browsers did not all sign in within 2 minutes".into());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    u64::try_from(began.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The seed of this run: `VESTIBULE_CRASH_SEED`, else from the clock.
fn seed() -> u64 {
    std::env::var("VESTIBULE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            u64::try_from(now.as_nanos() % u128::from(u64::MAX)).unwrap_or(1)
        })
}

/// SplitMix64: small, seedable, and good enough to pick actions and delays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(len as u64)).unwrap_or(0)
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    /// A server's life in ms, log-uniform over [`LIFE_MS`].
    fn life(&mut self) -> u64 {
        let (shortest, longest) = LIFE_MS;
        let uniform = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (shortest * (longest / shortest).powf(uniform)) as u64
    }
}

/// The server's settings: JSON logs that announce the bound port, and budgets a single
/// driving address cannot trip (it is every device and every browser at once).
fn server_env(db: &TestDb, data_dir: &Path) -> HashMap<String, String> {
    let mut env = base_env(db, data_dir);
    for (key, value) in [
        ("VESTIBULE__LOG__FORMAT", "json"),
        (
            "VESTIBULE__LOG__LEVEL",
            "warn,vestibule_server::startup=info",
        ),
        ("VESTIBULE__SECURITY__USER_CODE_MAX_FAILURES", "1000000"),
        ("VESTIBULE__SECURITY__DEVICE_AUTHORIZATION_LIMIT", "0"),
    ] {
        env.insert(key.into(), value.into());
    }
    env
}

/// Provisions through the binary, as an operator's script would: a workspace with a 1-second
/// polling interval and day-long device codes (none expires during the run), a public TV app
/// with refresh tokens, and the people's accounts. Returns the app's client_id.
fn provision(cwd: &Path, env: &HashMap<String, String>) -> String {
    let run = |args: &[&str], stdin: Option<&str>| {
        let run = run_binary(cwd, args, stdin, env);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        run
    };
    run(
        &[
            "workspace",
            "create",
            SLUG,
            "--polling-interval",
            "1",
            "--device-code-ttl",
            "86400",
        ],
        None,
    );
    let client = run(
        &[
            "client",
            "create",
            "--workspace",
            SLUG,
            "--name",
            "Crash TV",
            "--public",
            "--grant",
            "device_code",
            "--grant",
            "refresh_token",
            "--scope",
            SCOPE,
        ],
        None,
    )
    .json();
    let mut created = Vec::new();
    for (username, password) in PEOPLE {
        if created.contains(&username) {
            continue;
        }
        let email = format!("{username}@example.test");
        run(
            &[
                "user",
                "create",
                "--workspace",
                SLUG,
                "--username",
                username,
                "--email",
                &email,
                "--password-stdin",
            ],
            Some(password),
        );
        created.push(username);
    }
    client["client_id"]
        .as_str()
        .expect("a client_id")
        .to_owned()
}

/// A running `vestibule serve`, killed with SIGKILL (also when dropped).
struct Server {
    child: Child,
    base: String,
    /// The last lines it logged, for a failure's message.
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    /// Starts the binary, learns its port from the line it logs once it listens, and waits
    /// until `/readyz` answers 200. A server that does not come back after a kill fails the test.
    async fn start(cwd: &Path, env: &HashMap<String, String>) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_vestibule"));
        for (key, _) in std::env::vars() {
            if key.starts_with("VESTIBULE") || key == "RUST_LOG" {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .current_dir(cwd)
            .arg("serve")
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vestibule");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (port_tx, port_rx) = tokio::sync::oneshot::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            let mut port_tx = Some(port_tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = listening_port(&line)
                    && let Some(tx) = port_tx.take()
                {
                    let _ = tx.send(port);
                }
                let mut lines = lock(&lines);
                if lines.len() == 40 {
                    lines.pop_front();
                }
                lines.push_back(line);
            }
        });
        let mut server = Self {
            child,
            base: String::new(),
            log,
        };
        let port = match tokio::time::timeout(Duration::from_secs(60), port_rx).await {
            Ok(Ok(port)) => port,
            _ => panic!(
                "the server did not start (exit: {:?}); its log:\n{}",
                server.child.try_wait(),
                server.log_tail()
            ),
        };
        server.base = format!("http://127.0.0.1:{port}");
        let ready = format!("{}/readyz", server.base);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match reqwest::get(&ready).await {
                Ok(res) if res.status() == StatusCode::OK => break,
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                _ => panic!(
                    "the server never got ready; its log:\n{}",
                    server.log_tail()
                ),
            }
        }
        server
    }

    /// SIGKILL (what `Child::kill` sends on Unix), and reaping it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_tail(&self) -> String {
        lock(&self.log)
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The port of the JSON log line `listening`.
fn listening_port(line: &str) -> Option<u16> {
    let event: Value = serde_json::from_str(line).ok()?;
    if event["message"] != "listening" {
        return None;
    }
    u16::try_from(event["port"].as_u64()?).ok()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the driver knows of one device: only what the server confirmed, plus which requests
/// were cut by a kill (their outcome unknown).
struct Device {
    device_code: String,
    user_code: String,
    hash: String,
    interval: Duration,
    next_poll: Instant,
    /// A decision was tried (its request may have been cut).
    approve_tried: bool,
    deny_tried: bool,
    /// The last decision tried was cut by a kill.
    decide_cut: bool,
    /// The decision the server confirmed, and when the confirmation arrived.
    confirmed: Option<(Decided, Instant)>,
    /// 200 token responses received for this device code.
    tokens: u32,
    /// A poll was cut: a redemption may have been committed unseen.
    poll_cut: bool,
    /// Answered `invalid_grant` after a cut poll and no token response: redeemed in flight.
    lost_in_flight: bool,
    /// Answered `access_denied`.
    denied: bool,
    refresh: Option<RefreshChain>,
    deciding: bool,
    polling: bool,
}

impl Device {
    /// Nobody decided it yet, or a kill cut the decision (then the same one is tried again).
    fn decidable(&self) -> bool {
        let tried = self.approve_tried || self.deny_tried;
        !self.deciding && self.confirmed.is_none() && (!tried || self.decide_cut)
    }

    /// Polls no more, as a real device would: it got its final answer.
    fn stopped(&self) -> bool {
        self.tokens > 0 || self.denied || self.lost_in_flight
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decided {
    Approve,
    Deny,
}

/// The refresh token the device holds.
struct RefreshChain {
    token: String,
    /// The last refresh with `token` was cut: it may have rotated it away, and presenting it
    /// again then counts as reuse, which revokes the family.
    cut: bool,
    /// Revoked as reused after a cut: the device would have to sign in again.
    ended: bool,
    busy: bool,
}

struct World {
    client_id: String,
    devices: Vec<Device>,
    /// Browsers not in use by a driver.
    people: Vec<Person>,
    /// Which people's browsers hold a sign-in (had a decision confirmed).
    signed_in: [bool; PEOPLE.len()],
    /// Sign-ins cut by a kill.
    sign_ins_cut: u32,
    violations: Vec<String>,
    cut_now: u32,
    cut_total: u32,
    token_responses: u32,
    refreshes: u32,
    decisions: u32,
    denials: u32,
    lost_in_flight: u32,
}

impl World {
    fn new(client_id: String) -> Self {
        Self {
            client_id,
            devices: Vec::new(),
            people: (0..PEOPLE.len()).map(Person::new).collect(),
            signed_in: [false; PEOPLE.len()],
            sign_ins_cut: 0,
            violations: Vec::new(),
            cut_now: 0,
            cut_total: 0,
            token_responses: 0,
            refreshes: 0,
            decisions: 0,
            denials: 0,
            lost_in_flight: 0,
        }
    }

    fn violation(&mut self, what: String) {
        self.violations.push(what);
    }

    fn cut(&mut self) {
        self.cut_now += 1;
        self.cut_total += 1;
    }
}

fn fail_on_violations(world: &Mutex<World>, server: &Server, seed: u64, kill: u32) {
    let world = lock(world);
    assert!(
        world.violations.is_empty(),
        "crash safety broken around kill {kill} (seed {seed}):\n{}\nlast server log:\n{}",
        world.violations.join("\n"),
        server.log_tail()
    );
}

/// What one request came to: a response, or cut (the server died before answering; it may or
/// may not have done the work).
enum Answer {
    Got(StatusCode, Value),
    Cut,
}

async fn post_form(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Answer {
    match http.post(url).form(form).send().await {
        Ok(res) => {
            let status = res.status();
            match res.json().await {
                Ok(body) => Answer::Got(status, body),
                Err(e) if e.is_decode() => Answer::Got(status, Value::Null),
                Err(_) => Answer::Cut,
            }
        }
        Err(_) => Answer::Cut,
    }
}

/// One of the drivers of the random mix, until told to stop.
struct Driver {
    world: Arc<Mutex<World>>,
    http: reqwest::Client,
    base: String,
    stop: Arc<AtomicBool>,
    rng: Rng,
}

impl Driver {
    async fn run(mut self) {
        while !self.stop.load(Ordering::SeqCst) {
            let worked = match self.rng.below(10) {
                0..=1 => self.authorize().await,
                2..=4 => self.decide().await,
                5..=8 => self.poll().await,
                _ => self.refresh().await,
            };
            if !worked {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }

    /// A device asks for authorization, while fewer than [`UNDECIDED`] wait for a person.
    async fn authorize(&mut self) -> bool {
        let client_id = {
            let world = lock(&self.world);
            let undecided = world
                .devices
                .iter()
                .filter(|d| !d.approve_tried && !d.deny_tried)
                .count();
            if undecided >= UNDECIDED {
                return false;
            }
            world.client_id.clone()
        };
        let url = format!("{}/w/{SLUG}/device_authorization", self.base);
        let answer = post_form(
            &self.http,
            &url,
            &[("client_id", &client_id), ("scope", SCOPE)],
        )
        .await;
        let mut world = lock(&self.world);
        match answer {
            Answer::Got(StatusCode::OK, body) => {
                let device_code = body["device_code"].as_str().unwrap_or_default().to_owned();
                let interval = body["interval"].as_u64().unwrap_or(1);
                world.devices.push(Device {
                    hash: String::new(),
                    user_code: body["user_code"].as_str().unwrap_or_default().to_owned(),
                    device_code,
                    interval: Duration::from_secs(interval),
                    next_poll: Instant::now() + poll_after(interval),
                    approve_tried: false,
                    deny_tried: false,
                    decide_cut: false,
                    confirmed: None,
                    tokens: 0,
                    poll_cut: false,
                    lost_in_flight: false,
                    denied: false,
                    refresh: None,
                    deciding: false,
                    polling: false,
                });
            }
            Answer::Got(status, body) => {
                world.violation(format!("device authorization answered {status}: {body}"));
            }
            Answer::Cut => world.cut(),
        }
        true
    }

    /// A person enters the code of an undecided device at `/activate` and approves (mostly) or
    /// denies it, or tries again the decision a kill cut.
    async fn decide(&mut self) -> bool {
        let deny = self.rng.percent(15);
        let fresh_browser = self.rng.percent(5);
        let by_link = self.rng.percent(40);
        let (index, user_code, wanted, person) = {
            let mut world = lock(&self.world);
            let candidates: Vec<usize> = (0..world.devices.len())
                .filter(|&i| world.devices[i].decidable())
                .collect();
            if candidates.is_empty() || world.people.is_empty() {
                return false;
            }
            let index = candidates[self.rng.index(candidates.len())];
            let chosen = self.rng.index(world.people.len());
            let person = world.people.swap_remove(chosen);
            let device = &mut world.devices[index];
            device.deciding = true;
            let wanted = if device.deny_tried || (deny && !device.approve_tried) {
                device.deny_tried = true;
                Decided::Deny
            } else {
                device.approve_tried = true;
                Decided::Approve
            };
            (index, device.user_code.clone(), wanted, person)
        };
        // Now and then the person uses another browser (one more sign-in, also cut by kills).
        let other_browser = Person::new(person.id);
        let browser = if fresh_browser {
            &other_browser
        } else {
            &person
        };
        // Denying needs the consent page, which a code arriving by link always gets; an
        // approval comes either way.
        let by_link = by_link || wanted == Decided::Deny;
        let outcome = browser
            .decide(&self.base, &user_code, by_link, wanted)
            .await;
        let confirmed = matches!(outcome, Activation::Decided(_)) && !fresh_browser;
        let mut world = lock(&self.world);
        let sign_ins_cut = world.sign_ins_cut;
        let device = &mut world.devices[index];
        device.deciding = false;
        match outcome {
            Activation::Decided(decided) => {
                device.confirmed = Some((decided, Instant::now()));
                if decided != wanted {
                    let what = format!("{user_code}: asked to {wanted:?}, recorded {decided:?}");
                    world.violation(what);
                }
                world.decisions += 1;
                if decided == Decided::Deny {
                    world.denials += 1;
                }
            }
            // Only a decision cut earlier can have used the code: it was committed.
            Activation::AlreadyUsed if device.decide_cut => device.decide_cut = false,
            Activation::AlreadyUsed => {
                world.violation(format!("{user_code}: already used before any decision"));
            }
            // Sign-in attempts are counted before the password is checked and given back after
            // a success (so parallel guesses cannot outrun the budget): one a kill cut stays
            // counted, and a few of them use up the address's budget for a while (fail closed).
            Activation::SignInThrottled if sign_ins_cut > 0 => device.decide_cut = true,
            Activation::SignInThrottled => {
                world.violation(format!("{user_code}: sign-in throttled, none was cut"));
            }
            Activation::Refused(what) => world.violation(format!("{user_code}: {what}")),
            Activation::Cut { signing_in } => {
                device.decide_cut = true;
                world.cut();
                if signing_in {
                    world.sign_ins_cut += 1;
                }
            }
        }
        if confirmed {
            world.signed_in[person.id] = true;
        }
        world.people.push(person);
        true
    }

    /// A device polls when its interval allows.
    async fn poll(&mut self) -> bool {
        let (index, device_code, client_id, sent) = {
            let mut world = lock(&self.world);
            let now = Instant::now();
            // Mostly devices still waiting; sometimes one that stopped, which must get the
            // same final answer again (never a second token response).
            let stopped = self.rng.percent(10);
            let candidates: Vec<usize> = (0..world.devices.len())
                .filter(|&i| {
                    let d = &world.devices[i];
                    !d.polling && d.next_poll <= now && d.stopped() == stopped
                })
                .collect();
            if candidates.is_empty() {
                return false;
            }
            let index = candidates[self.rng.index(candidates.len())];
            let device = &mut world.devices[index];
            device.polling = true;
            let code = device.device_code.clone();
            (index, code, world.client_id.clone(), now)
        };
        let url = format!("{}/w/{SLUG}/token", self.base);
        let answer = post_form(
            &self.http,
            &url,
            &[
                ("grant_type", DEVICE_GRANT),
                ("device_code", &device_code),
                ("client_id", &client_id),
            ],
        )
        .await;
        let mut world = lock(&self.world);
        let verdict = {
            let device = &mut world.devices[index];
            device.polling = false;
            device.next_poll = Instant::now() + poll_after(device.interval.as_secs());
            judge_poll(device, sent, answer)
        };
        match verdict {
            Judged::Fine => {}
            Judged::Tokens => world.token_responses += 1,
            Judged::LostInFlight => world.lost_in_flight += 1,
            Judged::Cut => world.cut(),
            Judged::Violation(what) => world.violation(what),
        }
        true
    }

    /// A device that holds a refresh token rotates it.
    async fn refresh(&mut self) -> bool {
        let (index, token, client_id) = {
            let mut world = lock(&self.world);
            let candidates: Vec<usize> = (0..world.devices.len())
                .filter(|&i| {
                    world.devices[i]
                        .refresh
                        .as_ref()
                        .is_some_and(|r| !r.busy && !r.ended)
                })
                .collect();
            if candidates.is_empty() {
                return false;
            }
            let index = candidates[self.rng.index(candidates.len())];
            let client_id = world.client_id.clone();
            let Some(chain) = world.devices[index].refresh.as_mut() else {
                return false;
            };
            chain.busy = true;
            (index, chain.token.clone(), client_id)
        };
        let answer = refresh(&self.http, &self.base, &token, &client_id).await;
        let mut world = lock(&self.world);
        let verdict = world.devices[index]
            .refresh
            .as_mut()
            .map(|chain| judge_refresh(chain, answer));
        match verdict {
            Some(Judged::Tokens) => world.refreshes += 1,
            Some(Judged::Cut) => world.cut(),
            Some(Judged::Violation(what)) => world.violation(what),
            _ => {}
        }
        true
    }
}

/// When to poll next: the interval and a margin, so that a poll is never early by the
/// server's clock (an early one would get `slow_down`, which the driver honours anyway).
fn poll_after(interval: u64) -> Duration {
    Duration::from_secs(interval) + Duration::from_millis(150)
}

async fn refresh(http: &reqwest::Client, base: &str, token: &str, client_id: &str) -> Answer {
    let url = format!("{base}/w/{SLUG}/token");
    post_form(
        http,
        &url,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", token),
            ("client_id", client_id),
        ],
    )
    .await
}

enum Judged {
    Fine,
    Tokens,
    LostInFlight,
    Cut,
    Violation(String),
}

/// What a poll's answer says about the server, given what it confirmed before the poll was
/// sent (`sent`).
fn judge_poll(device: &mut Device, sent: Instant, answer: Answer) -> Judged {
    let code = device.user_code.clone();
    let (status, body) = match answer {
        Answer::Cut => {
            device.poll_cut = true;
            return Judged::Cut;
        }
        Answer::Got(status, body) => (status, body),
    };
    let confirmed_before = device
        .confirmed
        .filter(|(_, at)| *at < sent)
        .map(|(d, _)| d);
    if status == StatusCode::OK {
        device.tokens += 1;
        if device.tokens > 1 {
            return Judged::Violation(format!("{code}: a second token response"));
        }
        if !device.approve_tried || confirmed_before == Some(Decided::Deny) {
            return Judged::Violation(format!("{code}: tokens without an approval"));
        }
        let Some(token) = body["refresh_token"].as_str() else {
            return Judged::Violation(format!("{code}: no refresh token: {body}"));
        };
        device.refresh = Some(RefreshChain {
            token: token.to_owned(),
            cut: false,
            ended: false,
            busy: false,
        });
        return Judged::Tokens;
    }
    let error = body["error"].as_str().unwrap_or_default();
    match (status, error) {
        (StatusCode::BAD_REQUEST, "authorization_pending" | "slow_down") => {
            if error == "slow_down" {
                device.interval += Duration::from_secs(5);
            }
            match confirmed_before {
                Some(decided) => Judged::Violation(format!(
                    "{code}: {error} after the server confirmed {decided:?}"
                )),
                None if device.tokens > 0 => {
                    Judged::Violation(format!("{code}: {error} after its tokens"))
                }
                None => Judged::Fine,
            }
        }
        (StatusCode::BAD_REQUEST, "access_denied") => {
            if device.deny_tried && confirmed_before != Some(Decided::Approve) {
                device.denied = true;
                Judged::Fine
            } else {
                Judged::Violation(format!("{code}: access_denied without a denial"))
            }
        }
        (StatusCode::BAD_REQUEST, "invalid_grant") if device.tokens > 0 => Judged::Fine,
        // The redemption committed, but the kill cut its response: the tokens are recorded
        // (checked in the database) and the code is not honoured twice.
        (StatusCode::BAD_REQUEST, "invalid_grant") if device.poll_cut && device.approve_tried => {
            if device.lost_in_flight {
                return Judged::Fine;
            }
            device.lost_in_flight = true;
            Judged::LostInFlight
        }
        _ => Judged::Violation(format!(
            "{code}: poll answered {status} {body} (confirmed before: {confirmed_before:?}, \
             approve tried: {}, polls cut: {})",
            device.approve_tried, device.poll_cut
        )),
    }
}

fn judge_refresh(chain: &mut RefreshChain, answer: Answer) -> Judged {
    chain.busy = false;
    match answer {
        Answer::Cut => {
            chain.cut = true;
            Judged::Cut
        }
        Answer::Got(StatusCode::OK, body) => match body["refresh_token"].as_str() {
            Some(token) => {
                chain.token = token.to_owned();
                chain.cut = false;
                Judged::Tokens
            }
            None => Judged::Violation(format!("a refresh without a refresh token: {body}")),
        },
        // The cut refresh had rotated the token: presenting it again is reuse.
        Answer::Got(StatusCode::BAD_REQUEST, body)
            if chain.cut && body["error"] == "invalid_grant" =>
        {
            chain.ended = true;
            Judged::Fine
        }
        Answer::Got(status, body) => Judged::Violation(format!(
            "a refresh token the server confirmed answered {status} {body}"
        )),
    }
}

/// A person's browser at `/activate` (cookies kept, redirects looked at, not followed).
struct Person {
    username: String,
    password: String,
    browser: reqwest::Client,
    /// Which of [`PEOPLE`] this is.
    id: usize,
}

/// Where a person's attempt at `/activate` ended.
enum Activation {
    /// The server answered a decision with the done page: it is recorded.
    Decided(Decided),
    AlreadyUsed,
    /// Sign-ins from this address or for this account are over their budget.
    SignInThrottled,
    Refused(String),
    /// A kill cut a request: its work may or may not have been done.
    Cut {
        signing_in: bool,
    },
}

impl Person {
    fn new(id: usize) -> Self {
        let (username, password) = PEOPLE[id];
        Self {
            username: username.to_owned(),
            password: password.to_owned(),
            browser: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .expect("browser"),
            id,
        }
    }

    /// Enters `user_code` (typed, or confirming the pre-filled link form), signs in when asked
    /// and presses `wanted` on the consent page. A code typed by someone who consented before
    /// is approved without the page. The decision is confirmed by the redirect to the done
    /// page that answers the POST which made it.
    async fn decide(
        &self,
        base: &str,
        user_code: &str,
        by_link: bool,
        wanted: Decided,
    ) -> Activation {
        let entry = if by_link {
            format!("{base}/activate?user_code={user_code}")
        } else {
            format!("{base}/activate")
        };
        let cut = Activation::Cut { signing_in: false };
        let csrf = match self.get(&entry).await {
            None => return cut,
            Some(Step::Page(StatusCode::OK, html)) => field(&html, "csrf_token"),
            Some(_) => None,
        };
        let Some(csrf) = csrf else {
            return Activation::Refused("no entry form".into());
        };
        let mut form = vec![("csrf_token", csrf.as_str()), ("user_code", user_code)];
        if by_link {
            form.push(("arrival", "link"));
        }
        let mut pressed = Decided::Approve;
        let mut signing_in = false;
        let mut step = self.post(&format!("{base}/activate"), &form).await;
        for _ in 0..8 {
            let location = match step {
                None => return Activation::Cut { signing_in },
                Some(Step::Page(StatusCode::TOO_MANY_REQUESTS, _)) if signing_in => {
                    return Activation::SignInThrottled;
                }
                // A decision a kill cut may have been committed: its code is then spent.
                Some(Step::Page(StatusCode::CONFLICT, html))
                    if html.contains("already used") || html.contains("was denied") =>
                {
                    return Activation::AlreadyUsed;
                }
                Some(Step::Page(status, html)) => {
                    return Activation::Refused(format!("answered {status}: {}", text_of(&html)));
                }
                Some(Step::Redirect(location)) => location,
            };
            let path = location.split('?').next().unwrap_or_default().to_owned();
            if path.ends_with("/activate/done") {
                return Activation::Decided(pressed);
            }
            let url = format!("{base}{path}");
            signing_in = false;
            let (csrf, html) = match self.get(&url).await {
                None => return cut,
                Some(redirect @ Step::Redirect(_)) => {
                    step = Some(redirect);
                    continue;
                }
                Some(Step::Page(StatusCode::OK, html)) => (field(&html, "csrf_token"), html),
                Some(Step::Page(status, html)) => {
                    return Activation::Refused(format!("{path} {status}: {}", text_of(&html)));
                }
            };
            let Some(csrf) = csrf else {
                return Activation::Refused(format!("no form on {path}"));
            };
            step = if path.ends_with("/activate/sign-in") {
                let form = [
                    ("csrf_token", csrf.as_str()),
                    ("username", self.username.as_str()),
                    ("password", self.password.as_str()),
                ];
                signing_in = true;
                self.post(&url, &form).await
            } else if path.ends_with("/activate/consent") {
                let Some(grant) = field(&html, "grant") else {
                    return Activation::Refused("no grant on the consent page".into());
                };
                pressed = wanted;
                let decision = match wanted {
                    Decided::Approve => "approve",
                    Decided::Deny => "deny",
                };
                let form = [
                    ("csrf_token", csrf.as_str()),
                    ("grant", grant.as_str()),
                    ("decision", decision),
                ];
                self.post(&url, &form).await
            } else {
                return Activation::Refused(format!("sent to {location}"));
            };
        }
        Activation::Refused("too many steps".into())
    }

    async fn get(&self, url: &str) -> Option<Step> {
        Step::of(self.browser.get(url).send().await.ok()?).await
    }

    async fn post(&self, url: &str, form: &[(&str, &str)]) -> Option<Step> {
        Step::of(self.browser.post(url).form(form).send().await.ok()?).await
    }
}

/// A response at `/activate`; `None` when the kill cut it.
enum Step {
    Redirect(String),
    Page(StatusCode, String),
}

impl Step {
    async fn of(res: reqwest::Response) -> Option<Self> {
        let status = res.status();
        if status == StatusCode::SEE_OTHER {
            let location = res.headers().get(reqwest::header::LOCATION)?;
            return Some(Self::Redirect(location.to_str().ok()?.to_owned()));
        }
        Some(Self::Page(status, res.text().await.ok()?))
    }
}

/// The value of a hidden form field, if the page has it.
fn field(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')? + start;
    Some(html[start..end].to_owned())
}

/// The start of a page's main content, for a failure's message.
fn text_of(html: &str) -> String {
    let body = html.find("<main").map_or(html, |start| &html[start..]);
    body.chars().take(400).collect()
}

/// After the last restart: each confirmed approval not yet redeemed is polled until it gets
/// its tokens; every other device is polled once; each live refresh token is used once.
async fn settle(world: &Mutex<World>, http: &reqwest::Client, base: &str) {
    let client_id = lock(world).client_id.clone();
    let count = lock(world).devices.len();
    let url = format!("{base}/w/{SLUG}/token");
    for index in 0..count {
        let (device_code, skip) = {
            let world = lock(world);
            let d = &world.devices[index];
            (d.device_code.clone(), d.lost_in_flight)
        };
        if skip {
            continue;
        }
        let sent = Instant::now();
        let answer = post_form(
            http,
            &url,
            &[
                ("grant_type", DEVICE_GRANT),
                ("device_code", &device_code),
                ("client_id", &client_id),
            ],
        )
        .await;
        let mut world = lock(world);
        let verdict = judge_poll(&mut world.devices[index], sent, answer);
        match verdict {
            Judged::Tokens => world.token_responses += 1,
            Judged::LostInFlight => world.lost_in_flight += 1,
            Judged::Violation(what) => world.violation(what),
            Judged::Cut => world.violation("a poll failed after the last restart".into()),
            Judged::Fine => {}
        }
        let device = &world.devices[index];
        if device.confirmed.is_some_and(|(d, _)| d == Decided::Approve)
            && device.tokens == 0
            && !device.lost_in_flight
        {
            let what = format!("{}: approved, yet no tokens", device.user_code);
            world.violation(what);
        }
    }
    for index in 0..count {
        let token = {
            let world = lock(world);
            match &world.devices[index].refresh {
                Some(chain) if !chain.ended => chain.token.clone(),
                _ => continue,
            }
        };
        let answer = refresh(http, base, &token, &client_id).await;
        let mut world = lock(world);
        let verdict = world.devices[index]
            .refresh
            .as_mut()
            .map(|chain| judge_refresh(chain, answer));
        match verdict {
            Some(Judged::Tokens) => world.refreshes += 1,
            Some(Judged::Cut) => world.violation("a refresh failed after the last restart".into()),
            Some(Judged::Violation(what)) => world.violation(what),
            _ => {}
        }
    }
}

/// Grants per status.
#[derive(Default)]
struct Census {
    by_status: HashMap<&'static str, usize>,
    refresh_tokens: usize,
}

impl Census {
    fn line(&self) -> String {
        let mut parts: Vec<String> = ["pending", "approved", "denied", "consumed"]
            .iter()
            .map(|s| format!("{s} {}", self.by_status.get(s).copied().unwrap_or(0)))
            .collect();
        parts.push(format!("refresh tokens {}", self.refresh_tokens));
        parts.join(", ")
    }
}

/// Reads every device grant and what hangs off it, and records in the world each one that is
/// not whole: its status, columns, change-log rows, audit events and issuance must agree, and
/// with what the server confirmed to the driver.
async fn check(db: &TestDb, keyring: &Keyring, world: &Mutex<World>) -> Census {
    let conn = Database::connect(db.url.as_str())
        .await
        .expect("connect to the database");
    let grants = device_grant::Entity::find()
        .all(&conn)
        .await
        .expect("grants");
    let approvals = grant::Entity::find().all(&conn).await.expect("approvals");
    let tokens = refresh_token::Entity::find()
        .all(&conn)
        .await
        .expect("tokens");
    let changes = device_grant_change::Entity::find()
        .all(&conn)
        .await
        .expect("changes");
    let events = audit_event::Entity::find().all(&conn).await.expect("audit");
    let _ = conn.close().await;

    let mut problems = Vec::new();
    let mut census = Census {
        refresh_tokens: tokens.len(),
        ..Census::default()
    };
    let mut changes_of: HashMap<&str, Vec<Status>> = HashMap::new();
    let mut sorted = changes.iter().collect::<Vec<_>>();
    sorted.sort_by_key(|c| c.id);
    for change in sorted {
        changes_of
            .entry(change.device_code_hash.as_str())
            .or_default()
            .push(change.status);
    }
    let events_of = |target: &str, action: &str| {
        events
            .iter()
            .filter(|e| e.target.as_deref() == Some(target) && e.action == action)
            .count()
    };
    let by_hash: HashMap<&str, &device_grant::Model> = grants
        .iter()
        .map(|g| (g.device_code_hash.as_str(), g))
        .collect();
    for g in &grants {
        *census.by_status.entry(g.status.as_str()).or_default() += 1;
        let id = g.id.to_string();
        let approval = approvals.iter().filter(|a| a.id == g.id).count();
        let roots = tokens
            .iter()
            .filter(|t| t.family_id == g.id && t.parent_id.is_none())
            .count();
        let logged = changes_of
            .get(g.device_code_hash.as_str())
            .cloned()
            .unwrap_or_default();
        let decided = g.user_id.is_some() && g.decided_at.is_some();
        let whole = match g.status {
            Status::Pending => {
                g.user_id.is_none()
                    && g.decided_at.is_none()
                    && g.auth_time.is_none()
                    && g.consumed_at.is_none()
                    && approval == 0
                    && roots == 0
                    && logged.is_empty()
            }
            Status::Approved => {
                decided
                    && g.auth_time.is_some()
                    && g.consumed_at.is_none()
                    && approval == 0
                    && roots == 0
                    && logged == [Status::Approved]
                    && events_of(&id, "device.approved") == 1
            }
            Status::Denied => {
                decided
                    && g.consumed_at.is_none()
                    && approval == 0
                    && roots == 0
                    && logged == [Status::Denied]
                    && events_of(&id, "device.denied") == 1
            }
            Status::Consumed => {
                decided
                    && g.consumed_at.is_some()
                    && approval == 1
                    && roots == 1
                    && logged == [Status::Approved, Status::Consumed]
                    && events_of(&id, "device.approved") == 1
                    && events_of(&id, "device.redeemed") == 1
            }
        };
        if !whole {
            problems.push(format!(
                "grant {id} is not whole: {g:?}; approvals {approval}, first refresh tokens \
                 {roots}, change log {logged:?}"
            ));
        }
    }
    for a in &approvals {
        let consumed = a
            .device_grant_id
            .and_then(|id| grants.iter().find(|g| g.id == id))
            .is_some_and(|g| g.status == Status::Consumed && g.user_id == a.user_id);
        // The driver reuses a refresh token whose rotation a kill cut: reuse revokes it all.
        let revoked_fairly =
            a.revoked_at.is_none() || a.revoked_reason.as_deref() == Some("refresh_token_reused");
        if !consumed || !revoked_fairly {
            problems.push(format!(
                "approval {} has no consumed device grant: {a:?}",
                a.id
            ));
        }
    }
    let mut children: HashMap<uuid::Uuid, usize> = HashMap::new();
    let mut live: HashMap<uuid::Uuid, usize> = HashMap::new();
    for t in &tokens {
        if !approvals.iter().any(|a| a.id == t.family_id) {
            problems.push(format!("refresh token {} has no approval", t.id));
        }
        if let Some(parent) = t.parent_id {
            *children.entry(parent).or_default() += 1;
            let rotated = tokens
                .iter()
                .any(|p| p.id == parent && p.family_id == t.family_id && p.used_at.is_some());
            if !rotated {
                problems.push(format!(
                    "refresh token {} descends from no used token",
                    t.id
                ));
            }
        }
        if t.used_at.is_none() && t.revoked_at.is_none() {
            *live.entry(t.family_id).or_default() += 1;
        }
    }
    problems.extend(
        children
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(parent, n)| format!("refresh token {parent} was rotated {n} times")),
    );
    problems.extend(
        live.iter()
            .filter(|(_, n)| **n > 1)
            .map(|(family, n)| format!("family {family} has {n} live refresh tokens")),
    );

    let mut world = lock(world);
    for device in &mut world.devices {
        if device.hash.is_empty() {
            device.hash = keyring.hash_secret(SecretKind::DeviceCode, &device.device_code);
        }
        let code = &device.user_code;
        let Some(g) = by_hash.get(device.hash.as_str()) else {
            problems.push(format!(
                "{code}: its authorization was answered but is not stored"
            ));
            continue;
        };
        let allowed: &[Status] = match (device.confirmed.map(|(d, _)| d), device.tokens) {
            (_, 1..) => &[Status::Consumed],
            (Some(Decided::Approve), _) => &[Status::Approved, Status::Consumed],
            (Some(Decided::Deny), _) => &[Status::Denied],
            (None, _) if device.approve_tried => {
                &[Status::Pending, Status::Approved, Status::Consumed]
            }
            (None, _) if device.deny_tried => &[Status::Pending, Status::Denied],
            (None, _) => &[Status::Pending],
        };
        if !allowed.contains(&g.status) || (device.lost_in_flight && g.status != Status::Consumed) {
            problems.push(format!(
                "{code}: stored {:?}, but the server confirmed {:?} and {} token responses",
                g.status, device.confirmed, device.tokens
            ));
        }
    }
    world.violations.extend(problems);
    census
}

/// The database as a whole after the last kill: SQLite's own checks; on PostgreSQL (which
/// enforces foreign keys itself) that no row points nowhere.
async fn integrity(db: &TestDb) {
    let conn: DatabaseConnection = Database::connect(db.url.as_str())
        .await
        .expect("connect to the database");
    let backend = conn.get_database_backend();
    let texts = async |sql: &str| -> Vec<String> {
        conn.query_all_raw(Statement::from_string(backend, sql))
            .await
            .expect(sql)
            .iter()
            .map(|row| {
                row.try_get_by_index::<String>(0)
                    .or_else(|_| row.try_get_by_index::<i64>(0).map(|n| n.to_string()))
                    .unwrap_or_default()
            })
            .collect()
    };
    if backend == DbBackend::Sqlite {
        assert_eq!(texts("PRAGMA integrity_check").await, ["ok"]);
        assert_eq!(
            texts("PRAGMA foreign_key_check").await,
            Vec::<String>::new()
        );
        println!("crash: SQLite integrity_check ok, foreign_key_check empty");
    }
    let orphans = texts(
        "SELECT 'refresh token ' || CAST(t.id AS TEXT) FROM refresh_tokens t \
         LEFT JOIN grants g ON g.id = t.family_id WHERE g.id IS NULL \
         UNION ALL SELECT 'approval ' || CAST(g.id AS TEXT) FROM grants g \
         LEFT JOIN device_grants d ON d.id = g.device_grant_id \
         WHERE g.device_grant_id IS NOT NULL AND d.id IS NULL \
         UNION ALL SELECT 'device grant ' || CAST(d.id AS TEXT) FROM device_grants d \
         LEFT JOIN clients c ON c.id = d.client_id WHERE c.id IS NULL",
    )
    .await;
    assert!(orphans.is_empty(), "rows pointing nowhere: {orphans:?}");
    println!("crash: no refresh token, approval or device grant points nowhere");
    let _ = conn.close().await;
}
