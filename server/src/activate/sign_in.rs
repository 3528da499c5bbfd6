//! `GET/POST /activate/sign-in`: signing in to the workspace of the code being entered.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use vestibule_core::Core;
use vestibule_core::services::attempts::{self, SignIn};
use vestibule_web::html;
use vestibule_web::{ClientAddress, CsrfForm, CsrfProtected};

use super::error::{ActivateError, Throttled};
use super::flow::{self, Current, PostedFrom, SignedUser};
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
    let workspace = &current.request.workspace;
    let address = ClientAddress::of(&req).text();
    let attempt =
        match attempts::user_sign_in(&core, workspace, username, &credentials.password, address)
            .await
        {
            // A username no account can have (control characters): the form again, saying why.
            Err(vestibule_core::Error::Invalid { message, .. }) => {
                return form(
                    &session,
                    &current,
                    StatusCode::BAD_REQUEST,
                    "",
                    Some(&message),
                );
            }
            attempt => attempt?,
        };
    let user = match attempt {
        SignIn::Accepted(user) => user,
        SignIn::Rejected => {
            return form(
                &session,
                &current,
                StatusCode::UNAUTHORIZED,
                username,
                Some("That username and password do not match. Check them and try again."),
            );
        }
        SignIn::Throttled { retry_after } => {
            return Err(ActivateError::Throttled {
                what: Throttled::SignIns,
                retry_after,
            });
        }
    };
    let auth_time = vestibule_core::now();
    session.sign_in(SignedIn {
        workspace_id: workspace.id,
        user_id: user.id,
        auth_time,
        session_generation: user.session_generation,
    })?;
    flow::after_sign_in(
        &core,
        &session,
        &req,
        &current,
        &SignedUser { user, auth_time },
        PostedFrom::ClientPage,
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
        workspace_name: &current.request.workspace.name,
        client_name: &current.request.client.name,
        workspace_slug: &current.request.workspace.slug,
        username,
        message,
    };
    // A sign-in may approve at once (remembered consent) and send the browser on.
    let target = flow::form_target(&current.request);
    Ok(html::page_with_form_target(
        status,
        "activate/sign_in.html",
        &page,
        target.as_deref(),
    )?)
}
