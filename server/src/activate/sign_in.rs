//! Signing in to a workspace, for whatever needs it: the code being entered
//! (`GET/POST /activate/sign-in`) or a workspace's account page (`/w/{slug}/account`, see
//! [`super::account`]). One form, one check of the credentials under the same throttles, one
//! way of signing the session in (new session id, new CSRF token), whatever the sign-in is for.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use vestibule_core::Core;
use vestibule_core::records::Workspace;
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

/// What a sign-in is for, and so which workspace it opens and where its form posts.
pub enum Purpose<'a> {
    /// Deciding on the code in progress, in the code's workspace.
    Code(&'a Current),
    /// The account page of a workspace.
    Account(&'a Workspace),
}

impl Purpose<'_> {
    fn workspace(&self) -> &Workspace {
        match self {
            Self::Code(current) => &current.request.workspace,
            Self::Account(workspace) => workspace,
        }
    }
}

#[derive(Serialize)]
struct SignInPage<'a> {
    csrf_token: String,
    workspace_name: &'a str,
    workspace_slug: &'a str,
    /// The application asking, when the sign-in is for a code (the form then posts to
    /// `/activate/sign-in` and links to the account page; else it is the account page's).
    client_name: Option<&'a str>,
    username: &'a str,
    message: Option<&'a str>,
}

pub async fn show(
    core: web::Data<Core>,
    session: ActivateSession,
) -> Result<HttpResponse, ActivateError> {
    let current = flow::current(&core, &session).await?;
    form(&session, &Purpose::Code(&current), StatusCode::OK, "", None)
}

pub async fn submit(
    core: web::Data<Core>,
    session: ActivateSession,
    req: HttpRequest,
    CsrfForm(credentials): CsrfForm<SignInForm>,
) -> Result<HttpResponse, ActivateError> {
    let current = flow::current(&core, &session).await?;
    match attempt(
        &core,
        &session,
        &req,
        &Purpose::Code(&current),
        &credentials,
    )
    .await?
    {
        Attempt::SignedIn(user) => {
            flow::after_sign_in(
                &core,
                &session,
                &req,
                &current,
                &user,
                PostedFrom::ClientPage,
            )
            .await
        }
        Attempt::Refused(page) => Ok(page),
    }
}

/// How a sign-in attempt ended.
pub enum Attempt {
    /// The session is signed in to the purpose's workspace as this user.
    SignedIn(SignedUser),
    /// The form again, with the username kept and a message saying why.
    Refused(HttpResponse),
}

/// Checks `credentials` for the purpose's workspace under the sign-in throttles
/// (`services::attempts`) and, when they match, signs the session in under a new session id and
/// a new CSRF token.
///
/// # Errors
/// `Throttled` when the account or the address is over its budget; database failures.
pub async fn attempt(
    core: &Core,
    session: &ActivateSession,
    req: &HttpRequest,
    purpose: &Purpose<'_>,
    credentials: &SignInForm,
) -> Result<Attempt, ActivateError> {
    let refused = |status, username, message| {
        form(session, purpose, status, username, Some(message)).map(Attempt::Refused)
    };
    let username = credentials.username.trim();
    if username.is_empty() || credentials.password.is_empty() {
        return refused(
            StatusCode::BAD_REQUEST,
            username,
            "Enter your username and your password.",
        );
    }
    let workspace = purpose.workspace();
    let address = ClientAddress::of(req).text();
    let attempt =
        match attempts::user_sign_in(core, workspace, username, &credentials.password, address)
            .await
        {
            // A username no account can have (control characters): the form again, saying why.
            Err(vestibule_core::Error::Invalid { message, .. }) => {
                return refused(StatusCode::BAD_REQUEST, "", &message);
            }
            attempt => attempt?,
        };
    let user = match attempt {
        SignIn::Accepted(user) => user,
        SignIn::Rejected => {
            return refused(
                StatusCode::UNAUTHORIZED,
                username,
                "That username and password do not match. Check them and try again.",
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
    Ok(Attempt::SignedIn(SignedUser { user, auth_time }))
}

/// The sign-in form for `purpose`.
///
/// # Errors
/// When the session cannot be written or the page rendered.
pub fn form(
    session: &ActivateSession,
    purpose: &Purpose<'_>,
    status: StatusCode,
    username: &str,
    message: Option<&str>,
) -> Result<HttpResponse, ActivateError> {
    let workspace = purpose.workspace();
    let page = SignInPage {
        csrf_token: session.csrf_token()?,
        workspace_name: &workspace.name,
        workspace_slug: &workspace.slug,
        client_name: match purpose {
            Purpose::Code(current) => Some(current.request.client.name.as_str()),
            Purpose::Account(_) => None,
        },
        username,
        message,
    };
    // A sign-in for a code may approve at once (remembered consent) and send the browser on.
    let target = match purpose {
        Purpose::Code(current) => flow::form_target(&current.request),
        Purpose::Account(_) => None,
    };
    Ok(html::page_with_form_target(
        status,
        "activate/sign_in.html",
        &page,
        target.as_deref(),
    )?)
}
