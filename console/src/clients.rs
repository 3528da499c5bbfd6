//! Service providers (clients) of a workspace: `GET/POST …/clients` (list, create),
//! `GET/POST …/clients/{client_id}` (edit), `POST …/secret` (a new secret), and
//! `GET/POST …/delete` (confirm, delete). A new secret is shown once, on the next page.
//!
//! Every lookup is by workspace and client_id together: a client of another workspace is a 404.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use vestibule_core::Core;
use vestibule_core::entities::{client, workspace};
use vestibule_core::services::clients::{self, Edit, NewClient};
use vestibule_core::types::{
    Access, AfterApprovalUrl, DisplayName, Grant, GrantSet, Proximity, RedirectUri, ScopeSet,
};
use vestibule_web::CsrfForm;

use crate::auth::SignedIn;
use crate::error::ConsoleError;
use crate::form::{Errors, Fields, errors_for, validated};
use crate::html;
use crate::session::OneTimeSecret;
use crate::workspaces::{WorkspaceView, by_slug};

const FORM_FIELDS: [&str; 10] = [
    "name",
    "grants",
    "public",
    "scopes",
    "redirect_uris",
    "dcr_template",
    "access",
    "device_networks",
    "proximity",
    "after_approval_url",
];

#[derive(Deserialize)]
pub struct ClientPath {
    pub(crate) slug: String,
    pub(crate) client_id: String,
}

/// The client form's values, as stored or as typed.
#[derive(Serialize)]
struct ClientValues {
    name: String,
    grants: Vec<String>,
    public: bool,
    scopes: String,
    redirect_uris: String,
    dcr_template: bool,
    access: String,
    device_networks: String,
    proximity: String,
    after_approval_url: String,
}

impl ClientValues {
    fn defaults() -> Self {
        Self {
            name: String::new(),
            grants: vec![Grant::DeviceCode.as_str().to_owned()],
            public: false,
            scopes: clients::DEFAULT_SCOPES.to_owned(),
            redirect_uris: String::new(),
            dcr_template: false,
            access: Access::Everyone.as_str().to_owned(),
            device_networks: String::new(),
            proximity: Proximity::default().as_str().to_owned(),
            after_approval_url: String::new(),
        }
    }

    fn stored(c: &client::Model) -> Self {
        Self {
            name: c.name.clone(),
            grants: c.grants.split_whitespace().map(str::to_owned).collect(),
            public: c.public,
            scopes: c.scopes.clone(),
            redirect_uris: c.redirect_uris.clone(),
            dcr_template: c.dcr_template,
            access: c.access.clone(),
            device_networks: c.device_networks.clone(),
            proximity: c.proximity.clone(),
            after_approval_url: c.after_approval_url.clone().unwrap_or_default(),
        }
    }

    fn typed(f: &Fields) -> Self {
        Self {
            name: f.text("name").to_owned(),
            grants: f.all("grants").into_iter().map(str::to_owned).collect(),
            public: f.checked("public"),
            scopes: f.text("scopes").to_owned(),
            redirect_uris: f.text("redirect_uris").to_owned(),
            dcr_template: f.checked("dcr_template"),
            access: f.text("access").to_owned(),
            device_networks: f.text("device_networks").to_owned(),
            proximity: Some(f.text("proximity"))
                .filter(|p| !p.is_empty())
                .unwrap_or(Proximity::default().as_str())
                .to_owned(),
            after_approval_url: f.text("after_approval_url").to_owned(),
        }
    }

    /// Parses every field; the first invalid one is the error.
    fn parse(&self) -> Result<Edit, vestibule_core::Error> {
        let redirect_uris = non_empty_lines(&self.redirect_uris)
            .map(RedirectUri::parse)
            .collect::<Result<_, _>>()?;
        let device_networks = clients::parse_device_networks(self.device_networks.lines())?;
        Ok(Edit {
            name: DisplayName::parse("name", &self.name)?,
            public: self.public,
            grants: GrantSet::parse(self.grants.iter().map(String::as_str))?,
            scopes: ScopeSet::parse(&self.scopes)?,
            redirect_uris,
            dcr_template: self.dcr_template,
            access: self.access.parse()?,
            device_networks,
            proximity: self.proximity.parse()?,
            after_approval_url: AfterApprovalUrl::parse_optional(&self.after_approval_url)?,
        })
    }
}

/// The lines of a one-a-line field, trimmed, blank ones left out.
fn non_empty_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines().map(str::trim).filter(|l| !l.is_empty())
}

/// What the pages show of a client: never its secret hash.
#[derive(Serialize)]
struct ClientView {
    client_id: String,
    name: String,
    public: bool,
    grants: String,
    scopes: String,
    access: String,
    dcr_template: bool,
    dynamic: bool,
    /// Trusted networks (empty: anywhere).
    device_networks: Vec<String>,
    proximity: String,
    after_approval_url: Option<String>,
}

impl ClientView {
    fn of(c: &client::Model) -> Self {
        Self {
            client_id: c.client_id.clone(),
            name: c.name.clone(),
            public: c.public,
            grants: c.grants.replace(' ', ", "),
            scopes: c.scopes.clone(),
            access: c.access.clone(),
            dcr_template: c.dcr_template,
            dynamic: c.registered_from.is_some(),
            device_networks: c.device_networks.lines().map(str::to_owned).collect(),
            proximity: c.proximity.clone(),
            after_approval_url: c.after_approval_url.clone(),
        }
    }
}

fn list_path(slug: &str) -> String {
    format!("{}/{slug}/clients", crate::WORKSPACES_PATH)
}

fn client_path(slug: &str, client_id: &str) -> String {
    format!("{}/{client_id}", list_path(slug))
}

#[derive(Serialize)]
struct ListPage {
    ws: WorkspaceView,
    tab: &'static str,
    clients: Vec<ClientView>,
    values: ClientValues,
    errors: Errors,
    grant_names: [&'static str; 4],
}

const GRANT_NAMES: [&str; 4] = [
    "device_code",
    "refresh_token",
    "client_credentials",
    "authorization_code",
];

pub async fn list(
    core: web::Data<Core>,
    signed_in: SignedIn,
    slug: web::Path<String>,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(&core, &slug).await?;
    list_page(
        &core,
        &signed_in,
        &ws,
        StatusCode::OK,
        ClientValues::defaults(),
        Errors::new(),
    )
    .await
}

async fn list_page(
    core: &Core,
    signed_in: &SignedIn,
    ws: &workspace::Model,
    status: StatusCode,
    values: ClientValues,
    errors: Errors,
) -> Result<HttpResponse, ConsoleError> {
    let clients = clients::list(&core.db, ws.id).await?;
    html::console_page(
        status,
        "console/clients.html",
        &signed_in.chrome("workspaces")?,
        &ListPage {
            ws: WorkspaceView::of(ws),
            tab: "clients",
            clients: clients.iter().map(ClientView::of).collect(),
            values,
            errors,
            grant_names: GRANT_NAMES,
        },
    )
}

pub async fn create(
    core: web::Data<Core>,
    signed_in: SignedIn,
    slug: web::Path<String>,
    CsrfForm(fields): CsrfForm<Fields>,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(&core, &slug).await?;
    let values = ClientValues::typed(&fields);
    let created = match values.parse() {
        Ok(edit) => {
            let new = NewClient {
                name: edit.name,
                client_id: None,
                public: edit.public,
                grants: edit.grants,
                scopes: edit.scopes,
                redirect_uris: edit.redirect_uris,
                dcr_template: edit.dcr_template,
                access: edit.access,
                device_networks: edit.device_networks,
                proximity: edit.proximity,
                after_approval_url: edit.after_approval_url,
            };
            validated(clients::create(&core, &signed_in.actor(), &ws, new).await)?
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(created) => {
            let client_id = created.client.client_id;
            if let Some(secret) = created.secret {
                signed_in.session.set_secret(&OneTimeSecret {
                    client_id: client_id.clone(),
                    secret,
                })?;
            }
            signed_in.done("Client created.", &client_path(&ws.slug, &client_id))
        }
        Err(e) => {
            let errors = errors_for(&e, &FORM_FIELDS);
            list_page(
                &core,
                &signed_in,
                &ws,
                StatusCode::BAD_REQUEST,
                values,
                errors,
            )
            .await
        }
    }
}

#[derive(Serialize)]
struct ClientPage {
    ws: WorkspaceView,
    tab: &'static str,
    client: ClientView,
    /// Shown once, right after it was made.
    secret: Option<String>,
    values: ClientValues,
    errors: Errors,
    grant_names: [&'static str; 4],
}

pub async fn show(
    core: web::Data<Core>,
    signed_in: SignedIn,
    path: web::Path<ClientPath>,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(&core, &path.slug).await?;
    let client = clients::get_in_workspace(&core.db, ws.id, &path.client_id).await?;
    let secret = signed_in.session.take_secret(&client.client_id);
    let values = ClientValues::stored(&client);
    client_page(
        &signed_in,
        &ws,
        &client,
        StatusCode::OK,
        secret,
        values,
        Errors::new(),
    )
}

fn client_page(
    signed_in: &SignedIn,
    ws: &workspace::Model,
    client: &client::Model,
    status: StatusCode,
    secret: Option<String>,
    values: ClientValues,
    errors: Errors,
) -> Result<HttpResponse, ConsoleError> {
    html::console_page(
        status,
        "console/client.html",
        &signed_in.chrome("workspaces")?,
        &ClientPage {
            ws: WorkspaceView::of(ws),
            tab: "clients",
            client: ClientView::of(client),
            secret,
            values,
            errors,
            grant_names: GRANT_NAMES,
        },
    )
}

pub async fn update(
    core: web::Data<Core>,
    signed_in: SignedIn,
    path: web::Path<ClientPath>,
    CsrfForm(fields): CsrfForm<Fields>,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(&core, &path.slug).await?;
    let client = clients::get_in_workspace(&core.db, ws.id, &path.client_id).await?;
    let values = ClientValues::typed(&fields);
    let updated = match values.parse() {
        Ok(edit) => validated(
            clients::update(&core, &signed_in.actor(), &ws, &client.client_id, edit).await,
        )?,
        Err(e) => Err(e),
    };
    match updated {
        Ok(updated) => {
            if let Some(secret) = updated.secret {
                signed_in.session.set_secret(&OneTimeSecret {
                    client_id: client.client_id.clone(),
                    secret,
                })?;
            }
            signed_in.done("Client saved.", &client_path(&ws.slug, &client.client_id))
        }
        Err(e) => client_page(
            &signed_in,
            &ws,
            &client,
            StatusCode::BAD_REQUEST,
            None,
            values,
            errors_for(&e, &FORM_FIELDS),
        ),
    }
}

pub async fn regenerate_secret(
    core: web::Data<Core>,
    signed_in: SignedIn,
    path: web::Path<ClientPath>,
    CsrfForm(_): CsrfForm<Fields>,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(&core, &path.slug).await?;
    let client = clients::get_in_workspace(&core.db, ws.id, &path.client_id).await?;
    let made = validated(
        clients::regenerate_secret(&core, &signed_in.actor(), &ws, &client.client_id).await,
    )?;
    match made {
        Ok(secret) => {
            signed_in.session.set_secret(&OneTimeSecret {
                client_id: client.client_id.clone(),
                secret,
            })?;
            signed_in.done(
                "New secret made: the old one no longer works.",
                &client_path(&ws.slug, &client.client_id),
            )
        }
        Err(e) => client_page(
            &signed_in,
            &ws,
            &client,
            StatusCode::BAD_REQUEST,
            None,
            ClientValues::stored(&client),
            Errors::from([("form", e.to_string())]),
        ),
    }
}

#[derive(Serialize)]
struct DeletePage {
    ws: WorkspaceView,
    tab: &'static str,
    client: ClientView,
    errors: Errors,
}

pub async fn confirm_delete(
    core: web::Data<Core>,
    signed_in: SignedIn,
    path: web::Path<ClientPath>,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(&core, &path.slug).await?;
    let client = clients::get_in_workspace(&core.db, ws.id, &path.client_id).await?;
    delete_page(&signed_in, &ws, &client, StatusCode::OK, Errors::new())
}

fn delete_page(
    signed_in: &SignedIn,
    ws: &workspace::Model,
    client: &client::Model,
    status: StatusCode,
    errors: Errors,
) -> Result<HttpResponse, ConsoleError> {
    html::console_page(
        status,
        "console/client_delete.html",
        &signed_in.chrome("workspaces")?,
        &DeletePage {
            ws: WorkspaceView::of(ws),
            tab: "clients",
            client: ClientView::of(client),
            errors,
        },
    )
}

pub async fn delete(
    core: web::Data<Core>,
    signed_in: SignedIn,
    path: web::Path<ClientPath>,
    CsrfForm(fields): CsrfForm<Fields>,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(&core, &path.slug).await?;
    let client = clients::get_in_workspace(&core.db, ws.id, &path.client_id).await?;
    if !fields.checked("confirm") {
        let errors = Errors::from([(
            "confirm",
            "Tick the box to confirm that this client and its tokens are to be deleted.".to_owned(),
        )]);
        return delete_page(&signed_in, &ws, &client, StatusCode::BAD_REQUEST, errors);
    }
    let deleted = clients::delete(&core, &signed_in.actor(), &ws, &client.client_id).await?;
    signed_in.done(
        &format!("Client {} deleted.", deleted.name),
        &list_path(&ws.slug),
    )
}
