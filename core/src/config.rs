//! Configuration: built-in defaults, then a TOML file, then `VESTIBULE__SECTION__KEY` variables,
//! parsed once into typed settings. Every error names the key it is about.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use ipnet::IpNet;

/// Name of the variable that points at a configuration file.
pub const CONFIG_FILE_VAR: &str = "VESTIBULE_CONFIG";
/// The file read when neither `--config` nor [`CONFIG_FILE_VAR`] is given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "vestibule.toml";
const ENV_PREFIX: &str = "VESTIBULE";
/// `server.public_url` when none is configured (and `server.bind` names a port).
const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// A configuration problem: which key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "configuration error: {}: {}", self.key, self.message)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub security: SecuritySettings,
    pub mail: MailSettings,
    pub log: LogSettings,
    pub bootstrap: BootstrapSettings,
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub bind: SocketAddr,
    /// Base of every issuer and verification URI, without a trailing slash.
    pub public_url: String,
    pub data_dir: PathBuf,
    pub trusted_proxies: Vec<IpNet>,
    /// `bind` asks for any free port and no `public_url` was configured: the public URL is
    /// only known once the listener is bound.
    public_url_from_listener: bool,
}

impl ServerSettings {
    /// Cookies get `Secure` when the public URL is https.
    #[must_use]
    pub fn is_https(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// Records the address the listener got. When `bind` asked for port 0 and no `public_url`
    /// was configured, the public URL names that address, so that issuers and verification URIs
    /// reach this server (a wildcard address is reached through loopback).
    pub fn listening_on(&mut self, local: SocketAddr) {
        if !self.public_url_from_listener {
            return;
        }
        let ip = match local.ip() {
            ip if !ip.is_unspecified() => ip,
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        };
        self.public_url = format!("http://{}", SocketAddr::new(ip, local.port()));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: String,
    pub backend: Backend,
    pub max_connections: u32,
    /// The longest a request waits for the database (a free connection, PostgreSQL's connect
    /// included, or SQLite's write lock) before it is answered 503 with `Retry-After`.
    pub acquire_timeout: std::time::Duration,
}

#[derive(Clone)]
pub struct SecuritySettings {
    /// 32 bytes from `security.master_key`; `None` means `{data_dir}/master.key`.
    pub master_key: Option<[u8; 32]>,
    pub user_code_max_failures: u32,
    pub user_code_failure_window: u64,
    pub device_authorization_limit: u32,
    pub device_authorization_window: u64,
    /// The prefix length by which IPv6 client addresses share a per-address budget.
    pub ipv6_budget_prefix: u8,
    /// Seconds each instance uses its cached signing keys before reading them again.
    pub key_cache_ttl: u64,
}

impl fmt::Debug for SecuritySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecuritySettings")
            .field("master_key", &self.master_key.map(|_| "<redacted>"))
            .field("user_code_max_failures", &self.user_code_max_failures)
            .field("user_code_failure_window", &self.user_code_failure_window)
            .field(
                "device_authorization_limit",
                &self.device_authorization_limit,
            )
            .field(
                "device_authorization_window",
                &self.device_authorization_window,
            )
            .field("ipv6_budget_prefix", &self.ipv6_budget_prefix)
            .field("key_cache_ttl", &self.key_cache_ttl)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTransport {
    /// `.eml` files under `{data_dir}/outbox/`.
    File,
    Smtp {
        url: String,
    },
}

#[derive(Debug, Clone)]
pub struct MailSettings {
    pub transport: MailTransport,
    pub from: String,
    pub retry_initial: u64,
    pub retry_max: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A `tracing` filter directive such as `info` or `vestibule=debug,info`.
    pub level: String,
}

#[derive(Clone, Default)]
pub struct BootstrapSettings {
    pub admin_email: Option<String>,
    pub admin_password: Option<String>,
}

impl fmt::Debug for BootstrapSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BootstrapSettings")
            .field("admin_email", &self.admin_email)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

const DEFAULTS: &[(&str, &str)] = &[
    ("server.bind", "127.0.0.1:8080"),
    ("server.data_dir", "data"),
    ("database.acquire_timeout", "2"),
    ("security.user_code_max_failures", "10"),
    ("security.user_code_failure_window", "300"),
    ("security.device_authorization_limit", "30"),
    ("security.device_authorization_window", "60"),
    ("security.ipv6_budget_prefix", "64"),
    ("security.key_cache_ttl", "5"),
    ("mail.transport", "file"),
    ("mail.from", "Vestibule <no-reply@localhost>"),
    ("mail.retry_initial", "5"),
    ("mail.retry_max", "300"),
    ("log.format", "pretty"),
    ("log.level", "info"),
];

impl Settings {
    /// Loads the configuration the way the binary does: `explicit_file` (from `--config`), else
    /// `VESTIBULE_CONFIG`, else `./vestibule.toml` when present; then the process environment.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key (or the file) that is wrong.
    pub fn load(explicit_file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(explicit_file, std::env::vars().collect())
    }

    /// Like [`Settings::load`], with the environment given as a map (for tests).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key (or the file) that is wrong.
    pub fn load_from(
        explicit_file: Option<&Path>,
        env: HashMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        for (key, value) in DEFAULTS {
            builder = builder
                .set_default(*key, *value)
                .map_err(|e| ConfigError::new(*key, e.to_string()))?;
        }
        if let Some((origin, path)) = config_file(explicit_file, &env) {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::new(origin, format!("cannot read {}: {e}", path.display()))
            })?;
            builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
            let probe = config::Config::builder()
                .add_source(config::File::from_str(&text, config::FileFormat::Toml))
                .build();
            if let Err(e) = probe {
                return Err(ConfigError::new(
                    origin,
                    format!("{} is not valid TOML: {e}", path.display()),
                ));
            }
        }
        let env_vars: config::Map<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .source(Some(env_vars)),
        );
        let cfg = builder
            .build()
            .map_err(|e| ConfigError::new("configuration", e.to_string()))?;
        Self::from_config(&Reader(&cfg))
    }

    fn from_config(r: &Reader<'_>) -> Result<Self, ConfigError> {
        let bind: SocketAddr = r.parse("server.bind", "a socket address such as 127.0.0.1:8080")?;
        let public_url_configured = r.is_set("server.public_url");
        let public_url = if public_url_configured {
            r.required("server.public_url")?
        } else {
            DEFAULT_PUBLIC_URL.to_owned()
        };
        let server = ServerSettings {
            bind,
            public_url: parse_public_url(&public_url)
                .map_err(|m| ConfigError::new("server.public_url", m))?,
            public_url_from_listener: !public_url_configured && bind.port() == 0,
            data_dir: PathBuf::from(r.required("server.data_dir")?),
            trusted_proxies: r
                .list("server.trusted_proxies")?
                .iter()
                .map(|s| parse_cidr(s))
                .collect::<Result<_, _>>()
                .map_err(|m| ConfigError::new("server.trusted_proxies", m))?,
        };

        // The embedded database lives in the data directory unless a URL is given.
        let url = match r.optional("database.url")? {
            Some(url) => url,
            None => format!(
                "sqlite://{}/vestibule.db?mode=rwc",
                server.data_dir.display()
            ),
        };
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(ConfigError::new(
                "database.url",
                format!(
                    "unsupported scheme in {:?}: use sqlite://PATH or postgres://…",
                    redact_url(&url)
                ),
            ));
        };
        let max_connections = match r.optional("database.max_connections")? {
            None => match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            },
            Some(v) => parse_ranged(&v, 1, 1000)
                .map_err(|m| ConfigError::new("database.max_connections", m))?,
        };
        let database = DatabaseSettings {
            url,
            backend,
            max_connections,
            acquire_timeout: std::time::Duration::from_secs(r.ranged(
                "database.acquire_timeout",
                1,
                60,
            )?),
        };

        let master_key = r
            .optional("security.master_key")?
            .map(|v| parse_master_key(&v))
            .transpose()
            .map_err(|m| ConfigError::new("security.master_key", m))?;
        let security = SecuritySettings {
            master_key,
            user_code_max_failures: r.ranged("security.user_code_max_failures", 1, 1_000_000)?,
            user_code_failure_window: r.ranged("security.user_code_failure_window", 1, 86_400)?,
            device_authorization_limit: r.ranged(
                "security.device_authorization_limit",
                0,
                1_000_000,
            )?,
            device_authorization_window: r.ranged(
                "security.device_authorization_window",
                1,
                86_400,
            )?,
            ipv6_budget_prefix: r.ranged("security.ipv6_budget_prefix", 32, 128)?,
            // SPEC §1: a change (here a key rotation) reaches every instance within 5 seconds.
            key_cache_ttl: r.ranged("security.key_cache_ttl", 1, 5)?,
        };

        let transport = match r.required("mail.transport")?.as_str() {
            "file" => MailTransport::File,
            "smtp" => {
                let url = r.optional("mail.smtp_url")?.ok_or_else(|| {
                    ConfigError::new("mail.smtp_url", "required when mail.transport is smtp")
                })?;
                if !(url.starts_with("smtp://") || url.starts_with("smtps://")) {
                    return Err(ConfigError::new(
                        "mail.smtp_url",
                        "must start with smtp:// or smtps://",
                    ));
                }
                MailTransport::Smtp { url }
            }
            other => {
                return Err(ConfigError::new(
                    "mail.transport",
                    format!("{other:?} is not one of file, smtp"),
                ));
            }
        };
        let from = r.required("mail.from")?;
        if !from.contains('@') {
            return Err(ConfigError::new(
                "mail.from",
                "must contain an email address",
            ));
        }
        let retry_initial: u64 = r.ranged("mail.retry_initial", 1, 86_400)?;
        let retry_max: u64 = r.ranged("mail.retry_max", 1, 7 * 86_400)?;
        if retry_max < retry_initial {
            return Err(ConfigError::new(
                "mail.retry_max",
                "must not be smaller than mail.retry_initial",
            ));
        }
        let mail = MailSettings {
            transport,
            from,
            retry_initial,
            retry_max,
        };

        let format = match r.required("log.format")?.as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::new(
                    "log.format",
                    format!("{other:?} is not one of pretty, json"),
                ));
            }
        };
        let log = LogSettings {
            format,
            level: r.required("log.level")?,
        };

        let bootstrap = BootstrapSettings {
            admin_email: r
                .optional("bootstrap.admin_email")?
                .map(|v| crate::types::Email::parse(&v).map(|e| e.to_string()))
                .transpose()
                .map_err(|e| ConfigError::new("bootstrap.admin_email", e.to_string()))?,
            admin_password: r
                .optional_raw("bootstrap.admin_password")?
                .map(|v| crate::types::Password::parse(&v).map(|_| v))
                .transpose()
                .map_err(|e| ConfigError::new("bootstrap.admin_password", e.to_string()))?,
        };

        Ok(Self {
            server,
            database,
            security,
            mail,
            log,
            bootstrap,
        })
    }
}

fn config_file(
    explicit: Option<&Path>,
    env: &HashMap<String, String>,
) -> Option<(&'static str, PathBuf)> {
    if let Some(path) = explicit {
        return Some(("--config", path.to_path_buf()));
    }
    if let Some(path) = env.get(CONFIG_FILE_VAR).filter(|p| !p.is_empty()) {
        return Some((CONFIG_FILE_VAR, PathBuf::from(path)));
    }
    let default = PathBuf::from(DEFAULT_CONFIG_FILE);
    default.is_file().then_some((DEFAULT_CONFIG_FILE, default))
}

/// Typed access to the layered values; every failure names its key.
struct Reader<'a>(&'a config::Config);

impl Reader<'_> {
    /// Whether a file or the environment gives `key` a value, even an empty one.
    fn is_set(&self, key: &str) -> bool {
        !matches!(
            self.0.get_string(key),
            Err(config::ConfigError::NotFound(_))
        )
    }

    fn optional(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.0.get_string(key) {
            Ok(v) if v.trim().is_empty() => Ok(None),
            Ok(v) => Ok(Some(v.trim().to_owned())),
            Err(config::ConfigError::NotFound(_)) => Ok(None),
            Err(e) => Err(ConfigError::new(key, scrub(&e.to_string()))),
        }
    }

    /// Like `optional`, without trimming (passwords keep their spaces).
    fn optional_raw(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.0.get_string(key) {
            Ok(v) if v.is_empty() => Ok(None),
            Ok(v) => Ok(Some(v)),
            Err(config::ConfigError::NotFound(_)) => Ok(None),
            Err(e) => Err(ConfigError::new(key, scrub(&e.to_string()))),
        }
    }

    fn required(&self, key: &str) -> Result<String, ConfigError> {
        self.optional(key)?
            .ok_or_else(|| ConfigError::new(key, "must not be empty"))
    }

    fn parse<T: FromStr>(&self, key: &str, expected: &str) -> Result<T, ConfigError> {
        let v = self.required(key)?;
        v.parse()
            .map_err(|_| ConfigError::new(key, format!("{v:?} is not {expected}")))
    }

    fn ranged<T>(&self, key: &str, min: T, max: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + fmt::Display + Copy,
    {
        parse_ranged(&self.required(key)?, min, max).map_err(|m| ConfigError::new(key, m))
    }

    /// A TOML array, or a comma-separated string (the form environment variables take).
    fn list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        match self.0.get_array(key) {
            Ok(values) => values
                .into_iter()
                .map(|v| {
                    v.into_string()
                        .map(|s| s.trim().to_owned())
                        .map_err(|e| ConfigError::new(key, scrub(&e.to_string())))
                })
                .collect(),
            Err(config::ConfigError::NotFound(_)) => Ok(Vec::new()),
            Err(_) => Ok(self
                .optional(key)?
                .map(|s| {
                    s.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()),
        }
    }
}

/// `config`'s messages may end with "for key `x`"; the key is printed by us already.
fn scrub(message: &str) -> String {
    message
        .split(" for key")
        .next()
        .unwrap_or(message)
        .to_owned()
}

fn parse_ranged<T>(value: &str, min: T, max: T) -> Result<T, String>
where
    T: FromStr + PartialOrd + fmt::Display + Copy,
{
    match value.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(format!(
            "{value:?} is not a whole number from {min} to {max}"
        )),
    }
}

fn parse_public_url(value: &str) -> Result<String, String> {
    let url = url::Url::parse(value).map_err(|e| format!("{value:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!(
            "{value:?} must be an absolute http:// or https:// URL"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{value:?} must not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// A CIDR, or a single address (taken as /32 or /128).
fn parse_cidr(value: &str) -> Result<IpNet, String> {
    value
        .parse::<IpNet>()
        .or_else(|_| value.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{value:?} is not a CIDR such as 10.0.0.0/8"))
}

fn parse_master_key(value: &str) -> Result<[u8; 32], String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| "is not valid base64".to_owned())?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("must decode to 32 bytes, not {}", bytes.len()))
}

fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_match_the_spec() {
        let s = Settings::load_from(None, HashMap::new()).unwrap();
        assert_eq!(s.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.server.public_url, "http://127.0.0.1:8080");
        assert_eq!(s.database.backend, Backend::Sqlite);
        assert_eq!(s.database.url, "sqlite://data/vestibule.db?mode=rwc");
        assert_eq!(s.database.acquire_timeout.as_secs(), 2);
        assert_eq!(s.security.user_code_max_failures, 10);
        assert_eq!(s.security.user_code_failure_window, 300);
        assert_eq!(s.security.key_cache_ttl, 5);
        assert_eq!(s.security.ipv6_budget_prefix, 64);
        assert_eq!(s.mail.transport, MailTransport::File);
        assert_eq!(s.mail.retry_initial, 5);
        assert_eq!(s.mail.retry_max, 300);
        assert_eq!(s.log.format, LogFormat::Pretty);
        assert!(s.server.trusted_proxies.is_empty());
        assert!(s.security.master_key.is_none());
    }

    #[test]
    fn environment_overrides_and_lists() {
        let s = Settings::load_from(
            None,
            env(&[
                ("VESTIBULE__SERVER__BIND", "0.0.0.0:9000"),
                ("VESTIBULE__SERVER__PUBLIC_URL", "https://id.example.com/"),
                (
                    "VESTIBULE__SERVER__TRUSTED_PROXIES",
                    "10.0.0.0/8, 192.168.1.1",
                ),
                ("VESTIBULE__DATABASE__URL", "postgres://u:p@db/v"),
                ("VESTIBULE__SECURITY__USER_CODE_MAX_FAILURES", "3"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.bind.port(), 9000);
        assert_eq!(s.server.public_url, "https://id.example.com");
        assert!(s.server.is_https());
        assert_eq!(s.server.trusted_proxies.len(), 2);
        assert_eq!(s.database.backend, Backend::Postgres);
        assert_eq!(s.database.max_connections, 16);
        assert_eq!(s.security.user_code_max_failures, 3);
    }

    #[test]
    fn any_free_port_names_itself_unless_a_public_url_is_configured() {
        let bound: SocketAddr = "127.0.0.1:43210".parse().unwrap();
        let mut free = Settings::load_from(None, env(&[("VESTIBULE__SERVER__BIND", "0.0.0.0:0")]))
            .unwrap()
            .server;
        free.listening_on("0.0.0.0:43210".parse().unwrap());
        assert_eq!(free.public_url, "http://127.0.0.1:43210");

        let mut configured = Settings::load_from(
            None,
            env(&[
                ("VESTIBULE__SERVER__BIND", "127.0.0.1:0"),
                ("VESTIBULE__SERVER__PUBLIC_URL", "https://id.example.com"),
            ]),
        )
        .unwrap()
        .server;
        configured.listening_on(bound);
        assert_eq!(configured.public_url, "https://id.example.com");

        let mut fixed = Settings::load_from(None, HashMap::new()).unwrap().server;
        fixed.listening_on(bound);
        assert_eq!(fixed.public_url, "http://127.0.0.1:8080");

        let empty = Settings::load_from(None, env(&[("VESTIBULE__SERVER__PUBLIC_URL", "")]));
        assert_eq!(empty.unwrap_err().key, "server.public_url");
    }

    #[test]
    fn each_bad_value_names_its_key() {
        let cases = [
            ("VESTIBULE__DATABASE__URL", "mysql://x", "database.url"),
            ("VESTIBULE__SERVER__BIND", "not-an-address", "server.bind"),
            (
                "VESTIBULE__SERVER__PUBLIC_URL",
                "ftp://x",
                "server.public_url",
            ),
            (
                "VESTIBULE__SERVER__TRUSTED_PROXIES",
                "10.0.0.0/99",
                "server.trusted_proxies",
            ),
            (
                "VESTIBULE__DATABASE__MAX_CONNECTIONS",
                "0",
                "database.max_connections",
            ),
            (
                "VESTIBULE__DATABASE__ACQUIRE_TIMEOUT",
                "0",
                "database.acquire_timeout",
            ),
            (
                "VESTIBULE__DATABASE__ACQUIRE_TIMEOUT",
                "61",
                "database.acquire_timeout",
            ),
            (
                "VESTIBULE__SECURITY__MASTER_KEY",
                "c2hvcnQ=",
                "security.master_key",
            ),
            (
                "VESTIBULE__SECURITY__USER_CODE_MAX_FAILURES",
                "-1",
                "security.user_code_max_failures",
            ),
            (
                "VESTIBULE__SECURITY__USER_CODE_FAILURE_WINDOW",
                "0",
                "security.user_code_failure_window",
            ),
            (
                "VESTIBULE__SECURITY__KEY_CACHE_TTL",
                "6",
                "security.key_cache_ttl",
            ),
            (
                "VESTIBULE__SECURITY__IPV6_BUDGET_PREFIX",
                "31",
                "security.ipv6_budget_prefix",
            ),
            (
                "VESTIBULE__SECURITY__IPV6_BUDGET_PREFIX",
                "129",
                "security.ipv6_budget_prefix",
            ),
            ("VESTIBULE__MAIL__TRANSPORT", "pigeon", "mail.transport"),
            ("VESTIBULE__MAIL__TRANSPORT", "smtp", "mail.smtp_url"),
            ("VESTIBULE__MAIL__RETRY_MAX", "1", "mail.retry_max"),
            ("VESTIBULE__LOG__FORMAT", "xml", "log.format"),
        ];
        for (var, value, key) in cases {
            let err = Settings::load_from(None, env(&[(var, value)])).unwrap_err();
            assert_eq!(err.key, key, "{var}={value}: {err}");
        }
    }

    #[test]
    fn file_then_env_precedence() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("v.toml");
        std::fs::write(
            &file,
            "[server]\nbind = \"127.0.0.1:7000\"\npublic_url = \"http://file\"\n",
        )
        .unwrap();
        let s = Settings::load_from(
            Some(&file),
            env(&[("VESTIBULE__SERVER__BIND", "127.0.0.1:7001")]),
        )
        .unwrap();
        assert_eq!(s.server.bind.port(), 7001);
        assert_eq!(s.server.public_url, "http://file");

        let via_var =
            Settings::load_from(None, env(&[(CONFIG_FILE_VAR, file.to_str().unwrap())])).unwrap();
        assert_eq!(via_var.server.bind.port(), 7000);

        let missing =
            Settings::load_from(Some(&dir.path().join("nope.toml")), HashMap::new()).unwrap_err();
        assert_eq!(missing.key, "--config");

        std::fs::write(&file, "[server\nbind=").unwrap();
        let bad = Settings::load_from(Some(&file), HashMap::new()).unwrap_err();
        assert_eq!(bad.key, "--config");
    }
}
