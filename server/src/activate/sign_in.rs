//! `GET/POST /activate/sign-in`: signing in to the workspace of the code being entered.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use vestibule_core::Core;
use vestibule_core::services::users;
use vestibule_core::throttle::Limit;
use vestibule_web::html;
use vestibule_web::{ClientAddress, CsrfForm, CsrfProtected};

use super::error::{ActivateError, Throttled};
use super::flow::{self, Current, SignedUser};
use super::session::{ActivateSession, SignedIn};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    csrf_token: Option<String>,
}

impl CsrfProtected for SignInForm {
    fn csrf_token(&self) -> Option<&str> {
        self.csrf_token.as_deref()
    }
}

#[derive(Serialize)]
struct SignInPage<'a> {
    csrf_token: String,
    workspace_name: &'a str,
    client_name: &'a str,
    workspace_slug: &'a str,
    username: &'a str,
    message: Option<&'a str>,
}

pub async fn show(
    core: web::Data<Core>,
    session: ActivateSession,
) -> Result<HttpResponse, ActivateError> {
    let current = flow::current(&core, &session).await?;
    form(&session, &current, StatusCode::OK, "", None)
}

pub async fn submit(
    core: web::Data<Core>,
    session: ActivateSession,
    req: HttpRequest,
    CsrfForm(credentials): CsrfForm<SignInForm>,
) -> Result<HttpResponse, ActivateError> {
    let current = flow::current(&core, &session).await?;
    let username = credentials.username.trim();
    if username.is_empty() || credentials.password.is_empty() {
        return form(
            &session,
            &current,
            StatusCode::BAD_REQUEST,
            username,
            Some("Enter your username and your password."),
        );
    }
    let workspace = &current.pending.workspace;
    let limit = &core.sign_in_limit;
    let account_key = format!(
        "activate:account:{}:{}",
        workspace.id,
        username.to_lowercase()
    );
    let address = ClientAddress::of(&req).text();
    let address_key = format!(
        "activate:address:{}",
        address.as_deref().unwrap_or("unknown")
    );
    let keys = [account_key.as_str(), address_key.as_str()];
    if let Some(retry_after) = limit.blocked_for_any(&core.db, &keys).await? {
        tracing::warn!(address = ?address, "/activate: sign-in throttled");
        core.counters
            .throttled(vestibule_core::metrics::Throttled::SignIns);
        return Err(ActivateError::Throttled {
            what: Throttled::SignIns,
            retry_after,
        });
    }
    let Some(user) =
        users::authenticate(&core.db, workspace.id, username, &credentials.password).await?
    else {
        if limit.fail_all(&core.db, &keys).await? {
            users::sign_in_throttled(&core.db, workspace.id, username, address).await?;
        }
        return form(
            &session,
            &current,
            StatusCode::UNAUTHORIZED,
            username,
            Some("That username and password do not match. Check them and try again."),
        );
    };
    Limit::clear(&core.db, &account_key).await?;
    let auth_time = vestibule_core::now();
    session.sign_in(SignedIn {
        workspace_id: workspace.id,
        user_id: user.id,
        auth_time,
    })?;
    flow::after_sign_in(
        &core,
        &session,
        &req,
        &current,
        &SignedUser { user, auth_time },
    )
    .await
}

fn form(
    session: &ActivateSession,
    current: &Current,
    status: StatusCode,
    username: &str,
    message: Option<&str>,
) -> Result<HttpResponse, ActivateError> {
    let page = SignInPage {
        csrf_token: session.csrf_token()?,
        workspace_name: &current.pending.workspace.name,
        client_name: &current.pending.client.name,
        workspace_slug: &current.pending.workspace.slug,
        username,
        message,
    };
    Ok(html::page(status, "activate/sign_in.html", &page)?)
}
