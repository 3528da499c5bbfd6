//! `/w/{slug}/account`: where a person reviews the devices and applications they have approved
//! in a workspace and cuts any of them off (BCP 247 §6.1.6, detect and remediate).
//!
//! - `GET /w/{slug}/account`: the approvals whose tokens may still work, and the device
//!   approvals whose device has not collected its tokens yet (marked as waiting for it), each
//!   with its application, the access in plain words, when it was approved, from which network
//!   and by what kind of device the device asked, from which network it was approved, and its
//!   last use; each with a revoke button. Not signed in to this workspace: the sign-in form
//!   instead.
//! - `GET/POST /w/{slug}/account/sign-in`: the form posts here (the GET leads back to the
//!   page). The sign-in is the one of `/activate` ([`super::sign_in`]): same session, same
//!   throttles, same lifetime, so signing in at either place signs in at both, for one
//!   workspace at a time.
//! - `POST /w/{slug}/account/grants/{id}/revoke`: ends every token of that approval at once and
//!   forgets the consent it gave, with an audit event naming the user; then back to the page,
//!   which says what was revoked. `{id}` is a device authorization's id, which is also the id of
//!   the grant its redemption makes, so one id covers both stages: an approval not yet redeemed
//!   is denied (the device's next poll gets `access_denied`), a redeemed one has its tokens
//!   ended, whichever it is by the time the button is pressed. An approval that is not the signed-in user's in this
//!   workspace is not found, whether or not it exists; without a sign-in to this workspace the
//!   browser is sent to the page (its sign-in form) and nothing changes.
//! - `POST /w/{slug}/account/sign-out`: signs out and forgets what the browser was doing.
//!
//! Every POST carries the session's CSRF token. An unknown workspace is a 404 page. Problem
//! pages here lead back to this page (see [`super::error::lead_back_to_account`]).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use uuid::Uuid;
use vestibule_core::Core;
use vestibule_core::entities::device_grant;
use vestibule_core::records::Workspace;
use vestibule_core::services::audit::Actor;
use vestibule_core::services::device_authorizations::Revoked;
use vestibule_core::services::user_grants::{self, ActiveGrant, AwaitingDevice};
use vestibule_core::types::ScopeSet;
use vestibule_web::html::{self, see_other, timestamp};
use vestibule_web::{ClientAddress, CsrfForm, CsrfProtected};

use super::consent::scope_words;
use super::device;
use super::error::ActivateError;
use super::flow::{self, SignedUser};
use super::session::ActivateSession;
use super::sign_in::{self, Attempt, Purpose, SignInForm};

/// The account page of the workspace `slug`.
#[must_use]
pub fn path(slug: &str) -> String {
    format!("/w/{slug}/account")
}

#[derive(Deserialize)]
pub struct AccountPath {
    slug: String,
}

#[derive(Deserialize)]
pub struct GrantPath {
    slug: String,
    id: String,
}

/// A form that is only a button: its CSRF token and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonForm {
    csrf_token: Option<String>,
}

impl CsrfProtected for ButtonForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

#[derive(Serialize)]
struct AccountPage<'a> {
    csrf_token: String,
    workspace_name: &'a str,
    workspace_slug: &'a str,
    signed_in_as: &'a str,
    /// What the last action did (after a revocation).
    notice: Option<String>,
    approvals: Vec<Approval>,
}

/// One approval as the person sees it. Addresses are shown as their networks only.
#[derive(Serialize)]
struct Approval {
    /// The grant's id (for a device, its request's id), in the revoke form's path.
    id: Uuid,
    client_name: String,
    scopes: Vec<String>,
    approved: Moment,
    /// `None` while the device has not collected its tokens yet: not used yet.
    last_used: Option<Moment>,
    /// Present for a device authorization.
    device: Option<DeviceFacts>,
    /// Approved, but the device has not collected its tokens yet.
    waiting: bool,
    /// When it was approved (unix seconds), to order the list.
    #[serde(skip)]
    approved_unix: i64,
}

#[derive(Serialize)]
struct DeviceFacts {
    kind: String,
    asked_from: Option<String>,
    approved_from: Option<String>,
}

/// A moment, relative ("3 hours ago") and absolute.
#[derive(Serialize)]
struct Moment {
    ago: String,
    at: String,
}

impl Moment {
    fn of(unix: i64, now: i64) -> Self {
        Self {
            ago: device::ago(now - unix),
            at: timestamp(unix),
        }
    }
}

impl DeviceFacts {
    fn of(device: &device_grant::Model) -> Self {
        Self {
            kind: device::kind(device.user_agent.as_deref()),
            asked_from: vestibule_core::net::coarse_network(device.created_ip.as_deref()),
            approved_from: vestibule_core::net::coarse_network(device.approved_ip.as_deref()),
        }
    }
}

fn client_name(client: Option<&vestibule_core::entities::client::Model>) -> String {
    client.map_or_else(
        || "An application that no longer exists".to_owned(),
        |c| c.name.clone(),
    )
}

impl Approval {
    fn of(active: &ActiveGrant, now: i64) -> Self {
        let grant = &active.grant;
        Self {
            id: grant.id,
            client_name: client_name(active.client.as_ref()),
            scopes: scope_words(&ScopeSet::from_stored(&grant.scopes)),
            approved: Moment::of(grant.created_at, now),
            last_used: Some(Moment::of(
                grant.last_refresh_at.unwrap_or(grant.created_at),
                now,
            )),
            device: active.device.as_ref().map(DeviceFacts::of),
            waiting: false,
            approved_unix: grant.created_at,
        }
    }

    /// A device approved that has not collected its tokens: listed under its request's id,
    /// which its grant will share.
    fn waiting(awaiting: &AwaitingDevice, now: i64) -> Self {
        let device = &awaiting.device;
        let approved = device.decided_at.unwrap_or(device.created_at);
        Self {
            id: device.id,
            client_name: client_name(awaiting.client.as_ref()),
            scopes: scope_words(&ScopeSet::from_stored(&device.scopes)),
            approved: Moment::of(approved, now),
            last_used: None,
            device: Some(DeviceFacts::of(device)),
            waiting: true,
            approved_unix: approved,
        }
    }
}

/// The workspace a `/w/{slug}/account` path names; what cannot be a slug names none.
async fn workspace(core: &Core, slug: &str) -> Result<Arc<Workspace>, ActivateError> {
    core.records
        .workspace(&core.db, slug)
        .await?
        .ok_or(ActivateError::NotFound)
}

pub async fn show(
    core: web::Data<Core>,
    session: ActivateSession,
    path: web::Path<AccountPath>,
) -> Result<HttpResponse, ActivateError> {
    let ws = workspace(&core, &path.slug).await?;
    match flow::signed_in_user(&core, &session, ws.id).await? {
        Some(user) => page(&core, &session, &ws, &user).await,
        None => sign_in::form(&session, &Purpose::Account(&ws), StatusCode::OK, "", None),
    }
}

async fn page(
    core: &Core,
    session: &ActivateSession,
    ws: &Workspace,
    user: &SignedUser,
) -> Result<HttpResponse, ActivateError> {
    let now = vestibule_core::now();
    let waiting = user_grants::awaiting_redemption(&core.db, ws.id, user.user.id).await?;
    let mut approvals: Vec<Approval> = user_grants::active(&core.db, ws.row(), user.user.id)
        .await?
        .iter()
        .map(|g| Approval::of(g, now))
        .chain(waiting.iter().map(|d| Approval::waiting(d, now)))
        .collect();
    approvals.sort_by_key(|a| std::cmp::Reverse(a.approved_unix));
    let page = AccountPage {
        csrf_token: session.csrf_token()?,
        workspace_name: &ws.name,
        workspace_slug: &ws.slug,
        signed_in_as: user.user.name.as_deref().unwrap_or(&user.user.username),
        notice: session.take_notice(),
        approvals,
    };
    Ok(html::page(StatusCode::OK, "activate/account.html", &page)?)
}

/// The sign-in form's URL opened directly (a reload after a failed attempt): the page. The
/// workspace is looked up first, so that only a real slug goes into the `Location` header.
pub async fn sign_in_again(
    core: web::Data<Core>,
    path: web::Path<AccountPath>,
) -> Result<HttpResponse, ActivateError> {
    let ws = workspace(&core, &path.slug).await?;
    Ok(see_other(&self::path(&ws.slug)))
}

pub async fn sign_in(
    core: web::Data<Core>,
    session: ActivateSession,
    req: HttpRequest,
    path: web::Path<AccountPath>,
    CsrfForm(credentials): CsrfForm<SignInForm>,
) -> Result<HttpResponse, ActivateError> {
    let ws = workspace(&core, &path.slug).await?;
    match sign_in::attempt(&core, &session, &req, &Purpose::Account(&ws), &credentials).await? {
        Attempt::SignedIn(_) => Ok(see_other(&self::path(&ws.slug))),
        Attempt::Refused(page) => Ok(page),
    }
}

pub async fn revoke(
    core: web::Data<Core>,
    session: ActivateSession,
    req: HttpRequest,
    path: web::Path<GrantPath>,
    CsrfForm(_): CsrfForm<ButtonForm>,
) -> Result<HttpResponse, ActivateError> {
    let ws = workspace(&core, &path.slug).await?;
    let Some(user) = flow::signed_in_user(&core, &session, ws.id).await? else {
        return Ok(see_other(&self::path(&ws.slug)));
    };
    let grant_id = Uuid::parse_str(&path.id).map_err(|_| ActivateError::NotFound)?;
    let revoked = user_grants::revoke_approval(
        &core,
        &Actor::User(user.user.id),
        ws.id,
        user.user.id,
        grant_id,
        ClientAddress::of(&req).text(),
    )
    .await?;
    let client = revoked
        .client
        .map_or_else(|| "That application".to_owned(), |c| c.name);
    session.set_notice(&match revoked.outcome {
        Revoked::Denied => format!(
            "{client} was cut off before it collected its access: it gets none. If it asks \
             again, you will be asked to approve it again."
        ),
        Revoked::TokensEnded => format!(
            "{client} was cut off: every token of that approval stopped working. If it asks \
             again, you will be asked to approve it again."
        ),
        Revoked::AlreadyEnded => format!("{client} had already been cut off from that approval."),
    })?;
    Ok(see_other(&self::path(&ws.slug)))
}

pub async fn sign_out(
    core: web::Data<Core>,
    session: ActivateSession,
    path: web::Path<AccountPath>,
    CsrfForm(_): CsrfForm<ButtonForm>,
) -> Result<HttpResponse, ActivateError> {
    let ws = workspace(&core, &path.slug).await?;
    session.end();
    Ok(see_other(&self::path(&ws.slug)))
}
