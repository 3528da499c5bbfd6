//! Test harness: fresh databases, the app on port 0, and the `vestibule` binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sea_orm::{
    ConnectOptions, ConnectionTrait as _, Database, DatabaseConnection, DbBackend, Statement,
};
use vestibule_core::Core;
use vestibule_core::config::Settings;
use vestibule_core::entities::{user, workspace};
use vestibule_core::services::audit::Actor;
use vestibule_core::services::device_grants::{self, Lookup};
use vestibule_core::services::interaction::{self, Approver, Decided, Decision};
use vestibule_core::services::{clients, users, workspaces};
use vestibule_core::types::{
    Access, DisplayName, Email, GrantSet, Password, Proximity, ScopeSet, Slug, Username,
};
use vestibule_server::Application;

pub const ADMIN_EMAIL: &str = "root@example.test";
pub const ADMIN_PASSWORD: &str = "bootstrap-password";

/// A database used by one test only, removed afterwards.
pub struct TestDb {
    pub url: String,
    /// For PostgreSQL: the server URL to drop the database through, and its name.
    postgres: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A fresh database: PostgreSQL when `VESTIBULE_TEST_DATABASE_URL` is set (already migrated,
    /// cloned from a template), else SQLite in a temporary directory. An unreachable PostgreSQL
    /// fails the test.
    pub async fn new() -> Self {
        Self::fresh(true).await
    }

    /// A fresh database without any migration applied, on either backend.
    pub async fn unmigrated() -> Self {
        Self::fresh(false).await
    }

    async fn fresh(migrated: bool) -> Self {
        match std::env::var("VESTIBULE_TEST_DATABASE_URL") {
            Ok(server) if !server.is_empty() => Self::postgres(server, migrated).await,
            _ => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}/test.db?mode=rwc", dir.path().display());
                Self {
                    url,
                    postgres: None,
                    _dir: Some(dir),
                }
            }
        }
    }

    /// When `migrated`, a clone of the run's migrated template, so each test skips the
    /// migrations; else an empty database.
    async fn postgres(server: String, migrated: bool) -> Self {
        let name = format!("vestibule_test_{}", uuid::Uuid::new_v4().simple());
        let create = if migrated {
            let template = TEMPLATE.get_or_init(|| migrated_template(&server)).await;
            format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"")
        } else {
            format!("CREATE DATABASE \"{name}\"")
        };
        let admin = connect_server(&server).await;
        admin
            .execute_unprepared(&create)
            .await
            .expect("create test database");
        let _ = admin.close().await;
        Self {
            url: database_url(&server, &name),
            postgres: Some((server, name)),
            _dir: None,
        }
    }
}

/// The template of this process's test databases, migrated once.
static TEMPLATE: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();

/// Serialises template builds across test processes on one PostgreSQL server ("vestib" in
/// ASCII, a key no other lock of ours uses).
const TEMPLATE_LOCK: i64 = 0x7665_7374_6962;

/// The migrated template database named after the migration sources, built unless an earlier
/// run already did. Concurrent test processes wait for each other on an advisory lock; the
/// build happens under a scratch name and is renamed once complete, so an interrupted build is
/// never cloned. Templates of older migration sets stay until dropped by hand.
async fn migrated_template(server: &str) -> String {
    let name = format!("vestibule_template_{}", migration_set_digest());
    // On one connection: the advisory lock belongs to the session that took it.
    let admin = connect_server(server).await;
    admin
        .execute_unprepared(&format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))
        .await
        .expect("lock the template");
    let exists = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [name.clone().into()],
        ))
        .await
        .expect("look for the template")
        .is_some();
    if !exists {
        let scratch = format!("{name}_partial");
        for sql in [
            format!("DROP DATABASE IF EXISTS \"{scratch}\" WITH (FORCE)"),
            format!("CREATE DATABASE \"{scratch}\""),
        ] {
            admin
                .execute_unprepared(&sql)
                .await
                .expect("prepare the template");
        }
        let db = Database::connect(database_url(server, &scratch))
            .await
            .expect("connect to the template");
        vestibule_core::db::migrate(&db)
            .await
            .expect("migrate the template");
        db.close().await.expect("close the template");
        admin
            .execute_unprepared(&format!(
                "ALTER DATABASE \"{scratch}\" RENAME TO \"{name}\""
            ))
            .await
            .expect("name the template");
    }
    admin
        .execute_unprepared(&format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"))
        .await
        .expect("unlock the template");
    let _ = admin.close().await;
    name
}

/// A short digest of the migrations' sources: a new or edited migration makes a new template.
fn migration_set_digest() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/src");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the migrations' sources")
        .map(|entry| entry.expect("a migration source").path())
        .collect();
    files.sort();
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for file in files {
        digest.update(file.file_name().unwrap_or_default().as_encoded_bytes());
        digest.update(&std::fs::read(&file).expect("read a migration source"));
    }
    digest.finish().as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One connection to the PostgreSQL server of `VESTIBULE_TEST_DATABASE_URL`.
async fn connect_server(server: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(server);
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options)
        .await
        .unwrap_or_else(|e| panic!("VESTIBULE_TEST_DATABASE_URL is set but unreachable: {e}"))
}

/// The URL of database `name` on `server`.
fn database_url(server: &str, name: &str) -> String {
    let mut url = url::Url::parse(server).expect("VESTIBULE_TEST_DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((server, name)) = self.postgres.take() else {
            return;
        };
        // Drop needs its own runtime: the test's may be shutting down.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(admin) = Database::connect(server.as_str()).await {
                    let _ = admin
                        .execute_unprepared(&format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        ))
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

/// Environment for a test instance: its own data directory and database.
pub fn base_env(db: &TestDb, data_dir: &Path) -> HashMap<String, String> {
    HashMap::from([
        ("VESTIBULE__SERVER__BIND".into(), "127.0.0.1:0".into()),
        (
            "VESTIBULE__SERVER__DATA_DIR".into(),
            data_dir.display().to_string(),
        ),
        ("VESTIBULE__DATABASE__URL".into(), db.url.clone()),
        ("VESTIBULE__DATABASE__MAX_CONNECTIONS".into(), "5".into()),
        (
            "VESTIBULE__BOOTSTRAP__ADMIN_EMAIL".into(),
            ADMIN_EMAIL.into(),
        ),
        (
            "VESTIBULE__BOOTSTRAP__ADMIN_PASSWORD".into(),
            ADMIN_PASSWORD.into(),
        ),
        (
            "VESTIBULE__LOG__LEVEL".into(),
            std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
        ),
    ])
}

/// A running application.
pub struct TestApp {
    pub address: String,
    pub core: Core,
    pub client: reqwest::Client,
    /// The settings it was started with, for [`TestApp::peer`].
    env: HashMap<String, String>,
    /// Owned by the first instance of a database; peers borrow them.
    _db: Option<TestDb>,
    _data_dir: Option<tempfile::TempDir>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts the app with extra environment settings applied by `customize`.
    pub async fn spawn_with(customize: impl FnOnce(&mut HashMap<String, String>)) -> Self {
        let db = TestDb::new().await;
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut env = base_env(&db, data_dir.path());
        customize(&mut env);
        let mut app = Self::start(env).await;
        app._db = Some(db);
        app._data_dir = Some(data_dir);
        app
    }

    /// The app behind a proxy on 127.0.0.1 whose `X-Forwarded-For` names the client's address,
    /// with a budget of `max_failures` wrong codes per address.
    pub async fn behind_proxy(max_failures: u32) -> Self {
        Self::spawn_with(|env| {
            env.insert(
                "VESTIBULE__SERVER__TRUSTED_PROXIES".into(),
                "127.0.0.1/32".into(),
            );
            env.insert(
                "VESTIBULE__SECURITY__USER_CODE_MAX_FAILURES".into(),
                max_failures.to_string(),
            );
        })
        .await
    }

    /// Another instance on the same database and master key, as behind a load balancer (same
    /// public URL, its own port).
    pub async fn peer(&self) -> Self {
        let mut env = self.env.clone();
        env.insert("VESTIBULE__SERVER__BIND".into(), "127.0.0.1:0".into());
        Self::start(env).await
    }

    /// Starts an instance. Without a public URL in `env` the app names the port it bound; the
    /// environment kept for peers and CLI runs then carries that URL.
    async fn start(mut env: HashMap<String, String>) -> Self {
        let settings = Settings::load_from(None, env.clone()).expect("test settings");
        if std::env::var_os("TEST_LOG").is_some() {
            vestibule_server::telemetry::init(&settings.log);
        }
        let app = Application::build(settings).await.expect("app builds");
        let port = app.port();
        let core = app.core().clone();
        env.insert(
            "VESTIBULE__SERVER__PUBLIC_URL".into(),
            core.settings.server.public_url.clone(),
        );
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_store(true)
            .build()
            .expect("http client");
        Self {
            address: format!("http://127.0.0.1:{port}"),
            core,
            client,
            env,
            _db: None,
            _data_dir: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request")
    }

    /// Posts a form, with HTTP Basic client credentials if given; returns the status, the JSON
    /// body (`Null` when there is none) and the headers.
    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
        let mut req = self.client.post(self.url(path)).form(form);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        (
            status,
            res.json().await.unwrap_or(serde_json::Value::Null),
            headers,
        )
    }

    /// Runs the `vestibule` binary against this running app's database and data directory
    /// (so with its master key), off the async executor.
    pub async fn cli(&self, args: &[&str]) -> Run {
        let dir = PathBuf::from(&self.env["VESTIBULE__SERVER__DATA_DIR"]);
        let env = self.env.clone();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_binary(&dir, &args, None, &env)
        })
        .await
        .expect("cli task")
    }
}

/// The `vestibule` binary run against one database and data directory.
pub struct Cli {
    pub db: TestDb,
    pub dir: tempfile::TempDir,
    pub env: HashMap<String, String>,
}

/// What a command printed and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        assert_eq!(self.code, 0, "command failed: {}", self.stderr);
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    /// Asserts a failure with the given status whose message contains `needle`.
    pub fn fails(&self, code: i32, needle: &str) {
        assert_eq!(
            self.code, code,
            "stdout: {} stderr: {}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "stderr should mention {needle:?}: {}",
            self.stderr
        );
        assert!(
            self.stdout.trim().is_empty(),
            "nothing on stdout after a failure: {}",
            self.stdout
        );
    }
}

impl Cli {
    pub async fn new() -> Self {
        Self::on(TestDb::new().await)
    }

    /// On a database no migration has touched yet.
    pub async fn unmigrated() -> Self {
        Self::on(TestDb::unmigrated().await)
    }

    fn on(db: TestDb) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let env = base_env(&db, &dir.path().join("data"));
        Self { db, dir, env }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, None, &self.env)
    }

    pub fn run_stdin(&self, args: &[&str], stdin: &str) -> Run {
        self.run_with(args, Some(stdin), &self.env)
    }

    pub fn run_with(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        env: &HashMap<String, String>,
    ) -> Run {
        run_binary(self.dir.path(), args, stdin, env)
    }

    /// A connection to the same database, to check what was (not) written.
    pub async fn connect(&self) -> sea_orm::DatabaseConnection {
        Database::connect(self.db.url.as_str())
            .await
            .expect("connect to test database")
    }
}

/// Runs the binary in `cwd` with only the given `VESTIBULE*` variables.
pub fn run_binary(
    cwd: &Path,
    args: &[&str],
    stdin: Option<&str>,
    env: &HashMap<String, String>,
) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vestibule"));
    for (key, _) in std::env::vars() {
        if key.starts_with("VESTIBULE") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(cwd)
        .args(args)
        .envs(env)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn vestibule");
    if let Some(input) = stdin {
        use std::io::Write as _;
        let mut pipe = child.stdin.take().expect("stdin");
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("wait for vestibule");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Fixtures made through the core services, as the CLI and console would make them.
impl TestApp {
    /// A workspace with a 1-second polling interval (so polling tests stay fast) plus `changes`.
    pub async fn workspace(
        &self,
        slug: &str,
        mut changes: workspaces::Changes,
    ) -> workspace::Model {
        changes.polling_interval = changes.polling_interval.or(Some(1));
        workspaces::create(
            &self.core,
            &Actor::Cli,
            &Slug::parse(slug).unwrap(),
            &changes,
        )
        .await
        .unwrap()
    }

    /// A client; returns its client_id and, for a confidential one, its secret.
    pub async fn client(
        &self,
        ws: &workspace::Model,
        public: bool,
        grants: &[&str],
        scopes: &str,
    ) -> (String, Option<String>) {
        let created = clients::create(
            &self.core,
            &Actor::Cli,
            ws,
            clients::NewClient {
                name: DisplayName::parse("name", "Test TV").unwrap(),
                client_id: None,
                public,
                grants: GrantSet::parse(grants.iter().copied()).unwrap(),
                scopes: ScopeSet::parse(scopes).unwrap(),
                redirect_uris: Vec::new(),
                dcr_template: false,
                access: Access::Everyone,
                device_networks: Vec::new(),
                proximity: Proximity::Warn,
                after_approval_url: None,
            },
        )
        .await
        .unwrap();
        (created.client.client_id, created.secret)
    }

    pub async fn user(&self, ws: &workspace::Model, username: &str, password: &str) -> user::Model {
        users::create(
            &self.core,
            &Actor::Cli,
            ws,
            users::NewUser {
                username: Username::parse(username).unwrap(),
                email: Some(Email::parse(&format!("{username}@example.test")).unwrap()),
                name: Some(DisplayName::parse("name", &format!("{username} Example")).unwrap()),
                password: Password::parse(password).unwrap(),
            },
        )
        .await
        .unwrap()
    }

    pub fn issuer(&self, slug: &str) -> String {
        format!("{}/w/{slug}", self.address)
    }

    /// Decides a pending grant as `user` would at /activate.
    pub async fn decide(&self, user_code: &str, user: &user::Model, decision: Decision) {
        let decided = decide_device_code(&self.core, user_code, user, decision).await;
        assert_eq!(decided, Decided::Recorded);
    }
}

/// Decides the pending grant of `user_code` as `user` would at /activate (through the one
/// interaction every grant uses), typed in rather than arrived by link.
pub async fn decide_device_code(
    core: &Core,
    user_code: &str,
    user: &user::Model,
    decision: Decision,
) -> Decided {
    let Lookup::Pending(pending) =
        device_grants::find_by_user_code(&core.db, &core.keyring, user_code)
            .await
            .unwrap()
    else {
        panic!("user code {user_code} is not pending");
    };
    let approver = Approver {
        user,
        auth_time: vestibule_core::now(),
        ip: Some(std::net::Ipv4Addr::LOCALHOST.into()),
    };
    interaction::decide(core, &pending.into_request(false), approver, decision)
        .await
        .unwrap()
}

/// A person's browser at `/activate`: follows redirects, keeps cookies, fills the forms.
pub struct Browser {
    client: reqwest::Client,
}

impl Browser {
    pub fn new() -> Self {
        Self::with_headers(reqwest::header::HeaderMap::new())
    }

    /// A browser at `address`, for an app that trusts 127.0.0.1 as its proxy (so that its
    /// budgets are not those of the test's other requests).
    pub fn at(address: &str) -> Self {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            address.parse().expect("an address header"),
        );
        Self::with_headers(headers)
    }

    fn with_headers(headers: reqwest::header::HeaderMap) -> Self {
        Self {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .default_headers(headers)
                .build()
                .expect("browser client"),
        }
    }

    /// Opens `url`, signs in with `username`/`password` when asked, and presses `decision`
    /// (`approve` or `deny`) on the consent page. Returns the final page.
    pub async fn activate(
        &self,
        url: &str,
        username: &str,
        password: &str,
        decision: &str,
    ) -> String {
        let mut page = self.client.get(url).send().await.unwrap();
        if page.url().path() == "/activate" {
            // The link only pre-fills the code: confirm it, as a person does.
            let target = page.url().clone();
            let html = page.text().await.unwrap();
            let marker = "name=\"user_code\" type=\"text\" value=\"";
            let start = html.find(marker).expect("a pre-filled code") + marker.len();
            let code = &html[start..start + html[start..].find('"').unwrap()];
            page = self
                .client
                .post(target)
                .form(&[
                    ("csrf_token", hidden(&html, "csrf_token").as_str()),
                    ("arrival", hidden(&html, "arrival").as_str()),
                    ("user_code", code),
                ])
                .send()
                .await
                .unwrap();
        }
        if page.url().path() == "/activate/sign-in" {
            let target = page.url().clone();
            let html = page.text().await.unwrap();
            page = self
                .client
                .post(target)
                .form(&[
                    ("csrf_token", hidden(&html, "csrf_token").as_str()),
                    ("username", username),
                    ("password", password),
                ])
                .send()
                .await
                .unwrap();
        }
        assert_eq!(page.url().path(), "/activate/consent", "consent is shown");
        let target = page.url().clone();
        let html = page.text().await.unwrap();
        let done = self
            .client
            .post(target)
            .form(&[
                ("csrf_token", hidden(&html, "csrf_token").as_str()),
                ("grant", hidden(&html, "grant").as_str()),
                ("decision", decision),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(done.status(), 200);
        done.text().await.unwrap()
    }
}

/// Waits until whatever was given a 1-second lifetime just before has expired. Lifetimes count
/// whole seconds from a timestamp in whole seconds, so that is just over 2 s, whenever in its
/// second it started; 1 s is the shortest lifetime a workspace allows.
pub async fn outlive_a_one_second_lifetime() {
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
}

/// The value of a hidden form field.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}
