//! End users of a workspace: `GET/POST …/users` (search, paginated list, create),
//! `GET/POST …/users/{id}` (email and name, and the user's active grants), `POST …/password`,
//! `POST …/status` (disable, enable), `POST …/grants/{grant_id}/revoke` and
//! `POST …/grants/revoke-all`. A user or grant of another workspace is a 404.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vestibule_core::Core;
use vestibule_core::entities::{user, workspace};
use vestibule_core::services::user_grants;
use vestibule_core::services::users::{self, Change, NewUser};
use vestibule_core::types::{DisplayName, Email, Password, Username};
use vestibule_web::{ClientAddress, CsrfForm};

use crate::audit::timestamp;
use crate::auth::SignedIn;
use crate::error::ConsoleError;
use crate::form::{Errors, Fields, errors_for, validated};
use crate::html;
use crate::workspaces::{WorkspaceView, by_slug};

const PER_PAGE: u64 = 50;

#[derive(Deserialize)]
pub struct UserPath {
    slug: String,
    id: Uuid,
}

#[derive(Deserialize)]
pub struct GrantPath {
    slug: String,
    id: Uuid,
    grant_id: Uuid,
}

#[derive(Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    page: Option<u64>,
}

#[derive(Serialize)]
struct UserView {
    id: Uuid,
    username: String,
    email: String,
    name: String,
    disabled: bool,
}

impl UserView {
    fn of(u: &user::Model) -> Self {
        Self {
            id: u.id,
            username: u.username.clone(),
            email: u.email.clone().unwrap_or_default(),
            name: u.name.clone().unwrap_or_default(),
            disabled: u.disabled,
        }
    }
}

/// The create form's values as typed (never the password).
#[derive(Serialize, Default)]
struct NewValues {
    username: String,
    email: String,
    name: String,
}

#[derive(Serialize)]
struct ListPage<'a> {
    ws: WorkspaceView,
    tab: &'static str,
    users: Vec<UserView>,
    q: &'a str,
    page: u64,
    pages: u64,
    total: u64,
    prev: Option<String>,
    next: Option<String>,
    values: NewValues,
    errors: Errors,
}

fn list_path(slug: &str) -> String {
    format!("{}/{slug}/users", crate::WORKSPACES_PATH)
}

fn user_path(slug: &str, id: Uuid) -> String {
    format!("{}/{id}", list_path(slug))
}

/// `?q=…&page=N` for another page of the same search.
fn page_link(slug: &str, q: &str, page: u64) -> String {
    let query =
        serde_urlencoded::to_string([("q", q), ("page", &page.to_string())]).unwrap_or_default();
    format!("{}?{query}", list_path(slug))
}

pub async fn list(
    core: web::Data<Core>,
    signed_in: SignedIn,
    slug: web::Path<String>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(&core, &slug).await?;
    let page = query.page.unwrap_or(1);
    list_page(
        &core,
        &signed_in,
        &ws,
        StatusCode::OK,
        &query.q,
        page,
        NewValues::default(),
        Errors::new(),
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn list_page(
    core: &Core,
    signed_in: &SignedIn,
    ws: &workspace::Model,
    status: StatusCode,
    q: &str,
    page: u64,
    values: NewValues,
    errors: Errors,
) -> Result<HttpResponse, ConsoleError> {
    let found = users::search(&core.db, ws.id, q, PER_PAGE, page).await?;
    html::console_page(
        status,
        "console/users.html",
        &signed_in.chrome("workspaces")?,
        &ListPage {
            ws: WorkspaceView::of(ws),
            tab: "users",
            users: found.items.iter().map(UserView::of).collect(),
            q,
            page: found.number,
            pages: found.pages,
            total: found.total,
            prev: (found.number > 1).then(|| page_link(&ws.slug, q, found.number - 1)),
            next: (found.number < found.pages).then(|| page_link(&ws.slug, q, found.number + 1)),
            values,
            errors,
        },
    )
}

fn optional<T>(
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, vestibule_core::Error>,
) -> Result<Option<T>, vestibule_core::Error> {
    let text = text.trim();
    if text.is_empty() {
        Ok(None)
    } else {
        parse(text).map(Some)
    }
}

fn profile(f: &Fields) -> Result<(Option<Email>, Option<DisplayName>), vestibule_core::Error> {
    Ok((
        optional(f.text("email"), Email::parse)?,
        optional(f.text("name"), |n| DisplayName::parse("name", n))?,
    ))
}

pub async fn create(
    core: web::Data<Core>,
    signed_in: SignedIn,
    slug: web::Path<String>,
    CsrfForm(fields): CsrfForm<Fields>,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(&core, &slug).await?;
    let parsed = Username::parse(fields.text("username").trim()).and_then(|username| {
        let (email, name) = profile(&fields)?;
        Ok((
            username,
            email,
            name,
            Password::parse(fields.text("password"))?,
        ))
    });
    let created = match parsed {
        Ok((username, email, name, password)) => {
            let new = NewUser {
                username,
                email,
                name,
                password,
            };
            validated(users::create(&core, &signed_in.actor(), &ws, new).await)?
        }
        Err(e) => Err(e),
    };
    match created {
        Ok(user) => signed_in.done(
            &format!("User {} created.", user.username),
            &user_path(&ws.slug, user.id),
        ),
        Err(e) => {
            let values = NewValues {
                username: fields.text("username").to_owned(),
                email: fields.text("email").to_owned(),
                name: fields.text("name").to_owned(),
            };
            let errors = errors_for(&e, &["username", "email", "name", "password"]);
            list_page(
                &core,
                &signed_in,
                &ws,
                StatusCode::BAD_REQUEST,
                "",
                1,
                values,
                errors,
            )
            .await
        }
    }
}

/// A grant whose tokens may still work, as the user page lists it.
#[derive(Serialize)]
struct GrantView {
    id: Uuid,
    client_id: String,
    client_name: String,
    scopes: String,
    since: String,
    last_refresh: String,
    device: bool,
}

impl GrantView {
    fn of(g: &user_grants::ActiveGrant) -> Self {
        Self {
            id: g.grant.id,
            client_id: g
                .client
                .as_ref()
                .map(|c| c.client_id.clone())
                .unwrap_or_default(),
            client_name: g
                .client
                .as_ref()
                .map_or_else(|| "(deleted client)".to_owned(), |c| c.name.clone()),
            scopes: g.grant.scopes.clone(),
            since: timestamp(g.grant.created_at),
            last_refresh: g.grant.last_refresh_at.map(timestamp).unwrap_or_default(),
            device: g.grant.device_grant_id.is_some(),
        }
    }
}

#[derive(Serialize)]
struct UserPage {
    ws: WorkspaceView,
    tab: &'static str,
    user: UserView,
    grants: Vec<GrantView>,
    /// The profile form's values, as stored or as typed.
    email: String,
    name: String,
    errors: Errors,
}

pub async fn show(
    core: web::Data<Core>,
    signed_in: SignedIn,
    path: web::Path<UserPath>,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(&core, &path.slug).await?;
    let user = users::get_in_workspace(&core.db, ws.id, path.id).await?;
    let view = UserView::of(&user);
    let (email, name) = (view.email.clone(), view.name.clone());
    user_page(
        &core,
        &signed_in,
        &ws,
        view,
        StatusCode::OK,
        email,
        name,
        Errors::new(),
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn user_page(
    core: &Core,
    signed_in: &SignedIn,
    ws: &workspace::Model,
    user: UserView,
    status: StatusCode,
    email: String,
    name: String,
    errors: Errors,
) -> Result<HttpResponse, ConsoleError> {
    let grants = user_grants::active(&core.db, ws, user.id).await?;
    html::console_page(
        status,
        "console/user.html",
        &signed_in.chrome("workspaces")?,
        &UserPage {
            ws: WorkspaceView::of(ws),
            tab: "users",
            user,
            grants: grants.iter().map(GrantView::of).collect(),
            email,
            name,
            errors,
        },
    )
}

/// Applies one change and redirects to the user's page, or re-renders it with the error.
async fn change(
    core: &Core,
    signed_in: &SignedIn,
    path: &UserPath,
    fields: &Fields,
    parsed: Result<Change, vestibule_core::Error>,
    done: &str,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(core, &path.slug).await?;
    let user = users::get_in_workspace(&core.db, ws.id, path.id).await?;
    let result = match parsed {
        Ok(change) => {
            validated(users::update(core, &signed_in.actor(), &ws, user.id, change).await)?
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => signed_in.done(done, &user_path(&ws.slug, user.id)),
        Err(e) => {
            let view = UserView::of(&user);
            // Typed profile values are kept; other forms show the stored ones.
            let (email, name) = if fields.checked("email") || fields.checked("name") {
                (
                    fields.text("email").to_owned(),
                    fields.text("name").to_owned(),
                )
            } else {
                (view.email.clone(), view.name.clone())
            };
            let errors = errors_for(&e, &["email", "name", "password", "status"]);
            user_page(
                core,
                signed_in,
                &ws,
                view,
                StatusCode::BAD_REQUEST,
                email,
                name,
                errors,
            )
            .await
        }
    }
}

pub async fn update(
    core: web::Data<Core>,
    signed_in: SignedIn,
    path: web::Path<UserPath>,
    CsrfForm(fields): CsrfForm<Fields>,
) -> Result<HttpResponse, ConsoleError> {
    let parsed = profile(&fields).map(|(email, name)| Change::Profile { email, name });
    change(&core, &signed_in, &path, &fields, parsed, "User saved.").await
}

pub async fn set_password(
    core: web::Data<Core>,
    signed_in: SignedIn,
    path: web::Path<UserPath>,
    CsrfForm(fields): CsrfForm<Fields>,
) -> Result<HttpResponse, ConsoleError> {
    let parsed = Password::parse(fields.text("password")).map(Change::Password);
    change(&core, &signed_in, &path, &fields, parsed, "Password set.").await
}

pub async fn set_status(
    core: web::Data<Core>,
    signed_in: SignedIn,
    path: web::Path<UserPath>,
    CsrfForm(fields): CsrfForm<Fields>,
) -> Result<HttpResponse, ConsoleError> {
    let (parsed, done) = match fields.text("status") {
        "disabled" => (Change::Disabled(true), "User disabled."),
        "active" => (Change::Disabled(false), "User enabled."),
        other => return Err(ConsoleError::BadForm(format!("status {other:?}"))),
    };
    change(&core, &signed_in, &path, &fields, Ok(parsed), done).await
}

pub async fn revoke_grant(
    address: ClientAddress,
    core: web::Data<Core>,
    signed_in: SignedIn,
    path: web::Path<GrantPath>,
    CsrfForm(_): CsrfForm<Fields>,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(&core, &path.slug).await?;
    let user = users::get_in_workspace(&core.db, ws.id, path.id).await?;
    let ended = user_grants::revoke(
        &core.db,
        &signed_in.actor(),
        ws.id,
        user.id,
        path.grant_id,
        address.text(),
    )
    .await?
    .ended;
    let notice = if ended {
        "Grant revoked: its tokens stopped working."
    } else {
        "That grant had already been revoked."
    };
    signed_in.done(notice, &user_path(&ws.slug, user.id))
}

pub async fn revoke_all_grants(
    address: ClientAddress,
    core: web::Data<Core>,
    signed_in: SignedIn,
    path: web::Path<UserPath>,
    CsrfForm(_): CsrfForm<Fields>,
) -> Result<HttpResponse, ConsoleError> {
    let ws = by_slug(&core, &path.slug).await?;
    let user = users::get_in_workspace(&core.db, ws.id, path.id).await?;
    let ended =
        user_grants::revoke_all(&core.db, &signed_in.actor(), ws.id, user.id, address.text())
            .await?;
    signed_in.done(
        &format!("{ended} grant(s) of {} revoked.", user.username),
        &user_path(&ws.slug, user.id),
    )
}
