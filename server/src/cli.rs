//! The `vestibule` command: `serve` (the default) and the provisioning commands. Each
//! provisioning command calls one core service, which is its own transaction, and prints JSON
//! on standard output.

use std::io::Read as _;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};
use vestibule_core::config::{ConfigError, Settings};
use vestibule_core::services::audit::Actor;
use vestibule_core::services::bootstrap::Report;
use vestibule_core::services::{admins, clients, keys, users, workspaces};
use vestibule_core::types::{
    Access, AfterApprovalUrl, ClientId, DisplayName, Email, GrantSet, Password, Proximity,
    RedirectUri, ScopeSet, Slug, Username,
};
use vestibule_core::{Core, Error, db};

#[derive(Debug, Parser)]
#[command(
    name = "vestibule",
    version,
    about = "OAuth 2.0 device authorization server"
)]
pub struct Cli {
    /// Configuration file (TOML). Default: $VESTIBULE_CONFIG, else ./vestibule.toml if present.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve HTTP (the default).
    Serve,
    /// Apply pending database migrations.
    Migrate,
    /// Console administrators.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Workspaces (issuers).
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Clients (service providers).
    #[command(subcommand)]
    Client(ClientCommand),
    /// End users.
    #[command(subcommand)]
    User(UserCommand),
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new signing key current; the replaced one stays in the JWKS while tokens it
    /// signed can still be valid.
    Rotate {
        #[arg(long)]
        workspace: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin; the password is read from standard input.
    Create {
        #[arg(long)]
        email: String,
        /// Read the password from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace.
    Create {
        slug: String,
        #[command(flatten)]
        options: WorkspaceOptions,
    },
    /// Change settings of a workspace.
    Update {
        slug: String,
        #[command(flatten)]
        options: WorkspaceOptions,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

impl From<OnOff> for bool {
    fn from(v: OnOff) -> Self {
        matches!(v, OnOff::On)
    }
}

#[derive(Debug, Args)]
pub struct WorkspaceOptions {
    #[arg(long)]
    name: Option<String>,
    /// Device flow enabled.
    #[arg(long, value_enum)]
    device_flow: Option<OnOff>,
    /// 6 to 12 characters.
    #[arg(long, allow_negative_numbers = true)]
    user_code_length: Option<i64>,
    /// base20 or digits.
    #[arg(long)]
    user_code_charset: Option<String>,
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    device_code_ttl: Option<i64>,
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    polling_interval: Option<i64>,
    /// Skip consent when the user already granted the same or wider scopes.
    #[arg(long, value_enum)]
    consent_skip: Option<OnOff>,
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    access_token_ttl: Option<i64>,
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    id_token_ttl: Option<i64>,
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    refresh_token_ttl: Option<i64>,
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    device_grant_max_age: Option<i64>,
    /// `aud` of access tokens (empty: the client_id).
    #[arg(long)]
    audience: Option<String>,
    #[arg(long, value_enum)]
    dynamic_registration: Option<OnOff>,
    #[arg(long, value_enum)]
    new_device_email: Option<OnOff>,
}

impl WorkspaceOptions {
    fn changes(self) -> workspaces::Changes {
        workspaces::Changes {
            name: self.name,
            device_flow_enabled: self.device_flow.map(Into::into),
            user_code_length: self.user_code_length,
            user_code_charset: self.user_code_charset,
            device_code_ttl: self.device_code_ttl,
            polling_interval: self.polling_interval,
            consent_skip: self.consent_skip.map(Into::into),
            access_token_ttl: self.access_token_ttl,
            id_token_ttl: self.id_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            device_grant_max_age: self.device_grant_max_age,
            audience: self.audience,
            dynamic_registration: self.dynamic_registration.map(Into::into),
            new_device_email: self.new_device_email.map(Into::into),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; a confidential client's secret is printed once.
    Create(ClientCreate),
    /// Change settings of a client; options not given keep their value, and the repeatable
    /// ones replace the whole list.
    Update(ClientUpdate),
}

#[derive(Debug, Args)]
pub struct ClientCreate {
    #[arg(long)]
    workspace: String,
    #[arg(long)]
    name: String,
    /// Chosen identifier (default: random).
    #[arg(long)]
    client_id: Option<String>,
    /// Allow authentication without the client secret (public client, no secret).
    #[arg(long)]
    public: bool,
    /// device_code, refresh_token, client_credentials or authorization_code; repeatable.
    /// Default: device_code.
    #[arg(long = "grant", value_name = "GRANT")]
    grants: Vec<String>,
    /// Repeatable; required with authorization_code.
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// A template for dynamic client registration.
    #[arg(long)]
    dcr_template: bool,
    /// everyone or assigned.
    #[arg(long, default_value = "everyone")]
    access: String,
    /// Space-separated scopes the client may ask for.
    #[arg(long, default_value = clients::DEFAULT_SCOPES)]
    scope: String,
    /// Networks (CIDR, or a single address) devices may start device authorizations from;
    /// repeatable; none (or `any`) means anywhere.
    #[arg(long = "device-network", value_name = "CIDR")]
    device_networks: Vec<String>,
    /// Whether the approving browser must be on the device's network: off, warn or require.
    #[arg(long, default_value = "warn")]
    proximity: String,
    /// Where the browser goes after an approval (https, or http on a loopback host).
    #[arg(long, value_name = "URL")]
    after_approval_url: Option<String>,
}

/// `--device-network` values: `any` alone clears the list (anywhere), else each is a network.
fn device_networks(values: &[String]) -> Result<Vec<ipnet::IpNet>, Error> {
    match values {
        [only] if only.trim() == ANY_NETWORK => Ok(Vec::new()),
        _ if values.iter().any(|v| v.trim() == ANY_NETWORK) => Err(Error::invalid(
            "device_networks",
            "--device-network any means anywhere: give it alone, not with networks",
        )),
        _ => clients::parse_device_networks(values.iter().map(String::as_str)),
    }
}

/// The `--device-network` value that means "anywhere".
const ANY_NETWORK: &str = "any";

#[derive(Debug, Args)]
pub struct ClientUpdate {
    #[arg(long)]
    workspace: String,
    #[arg(long)]
    client_id: String,
    #[arg(long)]
    name: Option<String>,
    /// Allow authentication without the client secret: `--public` or `--public=false`.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    public: Option<bool>,
    /// Replaces the grants; repeatable.
    #[arg(long = "grant", value_name = "GRANT")]
    grants: Vec<String>,
    /// Replaces the redirect URIs; repeatable.
    #[arg(long = "redirect-uri", value_name = "URI")]
    redirect_uris: Vec<String>,
    /// `--dcr-template` or `--dcr-template=false`.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    dcr_template: Option<bool>,
    /// everyone or assigned.
    #[arg(long)]
    access: Option<String>,
    /// Space-separated scopes the client may ask for.
    #[arg(long)]
    scope: Option<String>,
    /// Replaces the trusted networks; repeatable; `--device-network any` clears them
    /// (anywhere).
    #[arg(long = "device-network", value_name = "CIDR")]
    device_networks: Vec<String>,
    /// off, warn or require.
    #[arg(long)]
    proximity: Option<String>,
    /// Where the browser goes after an approval; an empty value clears it.
    #[arg(long, value_name = "URL")]
    after_approval_url: Option<String>,
}

impl ClientUpdate {
    /// The stored settings with the given options applied.
    fn apply(self, stored: clients::Edit) -> Result<clients::Edit, Error> {
        let mut edit = stored;
        if let Some(name) = &self.name {
            edit.name = DisplayName::parse("name", name)?;
        }
        if let Some(public) = self.public {
            edit.public = public;
        }
        if !self.grants.is_empty() {
            edit.grants = GrantSet::parse(self.grants.iter().map(String::as_str))?;
        }
        if !self.redirect_uris.is_empty() {
            edit.redirect_uris = self
                .redirect_uris
                .iter()
                .map(|u| RedirectUri::parse(u))
                .collect::<Result<_, _>>()?;
        }
        if let Some(dcr_template) = self.dcr_template {
            edit.dcr_template = dcr_template;
        }
        if let Some(access) = &self.access {
            edit.access = access.parse::<Access>()?;
        }
        if let Some(scope) = &self.scope {
            edit.scopes = ScopeSet::parse(scope)?;
        }
        if !self.device_networks.is_empty() {
            edit.device_networks = device_networks(&self.device_networks)?;
        }
        if let Some(proximity) = &self.proximity {
            edit.proximity = proximity.parse::<Proximity>()?;
        }
        if let Some(url) = &self.after_approval_url {
            edit.after_approval_url = AfterApprovalUrl::parse_optional(url)?;
        }
        Ok(edit)
    }
}

impl ClientCreate {
    fn parse(self) -> Result<(String, clients::NewClient), Error> {
        let grants = if self.grants.is_empty() {
            GrantSet::parse(["device_code"])?
        } else {
            GrantSet::parse(self.grants.iter().map(String::as_str))?
        };
        let device_networks = device_networks(&self.device_networks)?;
        Ok((
            self.workspace,
            clients::NewClient {
                name: DisplayName::parse("name", &self.name)?,
                client_id: self.client_id.as_deref().map(ClientId::parse).transpose()?,
                public: self.public,
                grants,
                scopes: ScopeSet::parse(&self.scope)?,
                redirect_uris: self
                    .redirect_uris
                    .iter()
                    .map(|u| RedirectUri::parse(u))
                    .collect::<Result<_, _>>()?,
                dcr_template: self.dcr_template,
                access: self.access.parse::<Access>()?,
                device_networks,
                proximity: self.proximity.parse::<Proximity>()?,
                after_approval_url: AfterApprovalUrl::parse_optional(
                    self.after_approval_url.as_deref().unwrap_or_default(),
                )?,
            },
        ))
    }
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an end user; the password is read from standard input.
    Create {
        #[arg(long)]
        workspace: String,
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Read the password from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

/// How a command failed, and so which exit status it gets.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Exit 2: the configuration is wrong.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Exit 1: anything else, with a message for the person at the terminal.
    #[error("{0}")]
    Command(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Self::Command(e.report().to_string())
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self::Command(format!("{e:#}"))
    }
}

impl Failure {
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Config(_) => 2,
            Self::Command(_) => 1,
        }
    }
}

/// Runs the parsed command line.
///
/// # Errors
/// A [`Failure`] whose message is printed on standard error.
pub async fn run(cli: Cli) -> Result<(), Failure> {
    let settings = Settings::load(cli.config.as_deref())?;
    crate::telemetry::init(&settings.log);
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Serve = command {
        let app = crate::Application::build(settings).await?;
        app.run_until_stopped()
            .await
            .map_err(|e| Failure::Command(format!("server error: {e}")))?;
        tracing::info!("stopped");
        return Ok(());
    }
    // Read the password before touching the database, so a missing one writes nothing.
    let password = match &command {
        Command::Admin(AdminCommand::Create { .. }) | Command::User(UserCommand::Create { .. }) => {
            Some(read_password()?)
        }
        _ => None,
    };
    let (core, report) = Core::open(settings).await?;
    announce_bootstrap(&report);
    let output = execute(&core, command, password).await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&output).unwrap_or_default()
    );
    Ok(())
}

async fn execute(
    core: &Core,
    command: Command,
    password: Option<Password>,
) -> Result<Value, Failure> {
    let actor = Actor::Cli;
    let output = match command {
        Command::Serve => {
            return Err(Failure::Command(
                "serve is not a provisioning command".into(),
            ));
        }
        Command::Migrate => json!({ "migrations": db::applied_migrations(&core.db).await? }),
        Command::Admin(AdminCommand::Create { email, .. }) => {
            let email = Email::parse(&email)?;
            let admin = admins::create(core, &actor, &email, &required(password)?).await?;
            json!({ "id": admin.id, "email": admin.email })
        }
        Command::Workspace(WorkspaceCommand::Create { slug, options }) => {
            let slug = Slug::parse(&slug)?;
            let ws = workspaces::create(core, &actor, &slug, &options.changes()).await?;
            workspaces::settings_json(&ws)
        }
        Command::Workspace(WorkspaceCommand::Update { slug, options }) => {
            let ws = workspaces::update(core, &actor, &slug, &options.changes()).await?;
            workspaces::settings_json(&ws)
        }
        Command::Client(ClientCommand::Create(args)) => {
            let (slug, new) = args.parse()?;
            let ws = workspaces::get(&core.db, &slug).await?;
            let created = clients::create(core, &actor, &ws, new).await?;
            let mut out = clients::to_json(&created.client, &ws.slug);
            out["client_secret"] = created.secret.map_or(Value::Null, Value::String);
            out
        }
        Command::Client(ClientCommand::Update(args)) => {
            let ws = workspaces::get(&core.db, &args.workspace).await?;
            let stored = clients::get_in_workspace(&core.db, ws.id, &args.client_id).await?;
            let client_id = stored.client_id.clone();
            let edit = args.apply(clients::Edit::stored(&stored)?)?;
            let updated = clients::update(core, &actor, &ws, &client_id, edit).await?;
            let mut out = clients::to_json(&updated.client, &ws.slug);
            // A client that just became confidential gets its first secret, shown once.
            out["client_secret"] = updated.secret.map_or(Value::Null, Value::String);
            out
        }
        Command::User(UserCommand::Create {
            workspace,
            username,
            email,
            name,
            ..
        }) => {
            let new = users::NewUser {
                username: Username::parse(&username)?,
                email: email.as_deref().map(Email::parse).transpose()?,
                name: name
                    .as_deref()
                    .map(|n| DisplayName::parse("name", n))
                    .transpose()?,
                password: required(password)?,
            };
            let ws = workspaces::get(&core.db, &workspace).await?;
            let user = users::create(core, &actor, &ws, new).await?;
            users::to_json(&user, &ws.slug)
        }
        Command::Keys(KeysCommand::Rotate { workspace }) => {
            let ws = workspaces::get(&core.db, &workspace).await?;
            let rotated = keys::rotate(core, &actor, &ws).await?;
            json!({ "workspace": ws.slug, "kid": rotated.key.kid, "retired_kids": rotated.retired })
        }
    };
    Ok(output)
}

fn required(password: Option<Password>) -> Result<Password, Failure> {
    password.ok_or_else(|| Failure::Command("a password is required (--password-stdin)".into()))
}

/// The password is the first line of standard input (a trailing newline is not part of it).
fn read_password() -> Result<Password, Failure> {
    let mut input = String::new();
    std::io::stdin()
        .take(64 * 1024)
        .read_to_string(&mut input)
        .map_err(|e| {
            Failure::Command(format!("cannot read the password from standard input: {e}"))
        })?;
    let line = input.lines().next().unwrap_or_default();
    Password::parse(line).map_err(|e| {
        Failure::Command(format!(
            "{e} (give it on standard input with --password-stdin)"
        ))
    })
}

/// Tells the operator what the first start created. A generated password goes to standard
/// error once, outside the structured log, and is never stored in clear.
pub fn announce_bootstrap(report: &Report) {
    if report.created_workspace {
        tracing::info!(
            workspace = workspaces::DEFAULT_SLUG,
            "created the default workspace"
        );
    }
    if let Some(email) = &report.created_admin {
        tracing::info!(%email, "created the bootstrap admin");
        if let Some(password) = &report.generated_password {
            eprintln!(
                "\n  Bootstrap admin created: {email}\n  Password (shown only this once): {password}\n  \
                 Sign in at /console and change it.\n"
            );
        }
    }
}
