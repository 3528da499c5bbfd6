//! The steps the pages share: which request this browser is working on, who is signed in for
//! it, where to go next, and recording the decision. The steps themselves are core's
//! [`interaction`]; this module keeps the browser's place in them.

use actix_web::{HttpRequest, HttpResponse};
use uuid::Uuid;
use vestibule_core::Core;
use vestibule_core::entities::{device_grant, user};
use vestibule_core::services::device_grants::{self, Lookup, Status};
use vestibule_core::services::interaction::{
    self, Approver, AuthorizationRequest, Decided, Decision,
};
use vestibule_core::services::users;
use vestibule_core::types::AfterApprovalUrl;
use vestibule_web::ClientAddress;
use vestibule_web::html::see_other;

use super::error::ActivateError;
use super::session::{ActivateSession, CodeInProgress, Outcome};
use super::{CONSENT_PATH, DONE_PATH};

/// How long a sign-in at `/activate` lasts. The cookie store cannot expire sessions on the
/// server, so the age is checked here.
const SIGN_IN_LIFETIME: i64 = 12 * 3600;

/// The request this browser is working on: the device code entered, still pending.
pub struct Current {
    pub request: AuthorizationRequest,
    pub code: CodeInProgress,
}

impl Current {
    /// The request of a code just looked up.
    #[must_use]
    pub fn of(pending: device_grants::PendingGrant, code: CodeInProgress) -> Self {
        Self {
            request: pending.into_request(code.via_complete_uri),
            code,
        }
    }
}

/// The request of the session's code, still pending.
///
/// # Errors
/// `NoCodeInProgress` without a code; `CodeExpired` / `CodeUsed` / `CodeDenied` once the grant is no longer
/// pending (the code is then forgotten).
pub async fn current(core: &Core, session: &ActivateSession) -> Result<Current, ActivateError> {
    let code = session.code().ok_or(ActivateError::NoCodeInProgress)?;
    match device_grants::find_by_user_code(&core.db, &core.keyring, &code.user_code).await? {
        Lookup::Pending(pending) if pending.grant.id == code.grant_id => {
            Ok(Current::of(*pending, code))
        }
        _ => {
            session.clear_code();
            Err(ended(core, code.grant_id).await)
        }
    }
}

/// Why a grant can no longer be decided.
async fn ended(core: &Core, grant_id: Uuid) -> ActivateError {
    match device_grants::find(&core.db, grant_id).await {
        Ok(grant) => why_ended(grant.as_ref()),
        Err(e) => e.into(),
    }
}

fn why_ended(grant: Option<&device_grant::Model>) -> ActivateError {
    match grant.map(|g| g.status) {
        Some(Status::Approved | Status::Consumed) => ActivateError::CodeUsed,
        Some(Status::Denied) => ActivateError::CodeDenied,
        _ => ActivateError::CodeExpired,
    }
}

/// The user signed in to this browser session, if it is an active user of `workspace_id`
/// whose sign-in is recent enough and of their current session generation.
pub struct SignedUser {
    pub user: user::Model,
    pub auth_time: i64,
}

/// # Errors
/// On a database failure.
pub async fn signed_in_user(
    core: &Core,
    session: &ActivateSession,
    workspace_id: Uuid,
) -> Result<Option<SignedUser>, ActivateError> {
    let Some(signed_in) = session.signed_in() else {
        return Ok(None);
    };
    if signed_in.workspace_id != workspace_id {
        return Ok(None);
    }
    if vestibule_core::now() - signed_in.auth_time > SIGN_IN_LIFETIME {
        session.sign_out();
        return Ok(None);
    }
    match users::find_by_id(&core.db, signed_in.user_id).await? {
        Some(user)
            if !user.disabled
                && user.workspace_id == workspace_id
                && user.session_generation == signed_in.session_generation =>
        {
            Ok(Some(SignedUser {
                user,
                auth_time: signed_in.auth_time,
            }))
        }
        _ => {
            session.sign_out();
            Ok(None)
        }
    }
}

/// Which page's form asked for a decision. A browser holds the whole navigation a form
/// starts, redirects included, to that page's CSP `form-action`, so only a page that knew the
/// client when it was shown could allow its `after_approval_url` (see [`form_target`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostedFrom {
    /// The code entry page, shown before any client was known.
    CodeEntry,
    /// The sign-in or consent page of the code in progress.
    ClientPage,
}

/// The origin the sign-in and consent pages of `request` let their forms lead to: the
/// client's `after_approval_url`'s, if it has one.
#[must_use]
pub fn form_target(request: &AuthorizationRequest) -> Option<String> {
    after_approval_url(request).map(|url| url.origin())
}

fn after_approval_url(request: &AuthorizationRequest) -> Option<AfterApprovalUrl> {
    AfterApprovalUrl::from_stored(request.client.after_approval_url.as_deref())
}

/// After a typed code or a sign-in: approve at once when remembered consent stands in for
/// asking, else show the consent page.
///
/// # Errors
/// On a database failure, or when the grant stopped being pending meanwhile.
pub async fn after_sign_in(
    core: &Core,
    session: &ActivateSession,
    req: &HttpRequest,
    current: &Current,
    user: &SignedUser,
    posted_from: PostedFrom,
) -> Result<HttpResponse, ActivateError> {
    let approver = Approver {
        user: &user.user,
        auth_time: user.auth_time,
        ip: ClientAddress::of(req).ip(),
    };
    if interaction::consent_remembered(core, &current.request, approver).await? {
        return decide(
            core,
            session,
            req,
            current,
            user,
            Decision::Approve,
            posted_from,
        )
        .await;
    }
    Ok(see_other(CONSENT_PATH))
}

/// Records the decision and sends the browser on: to the done page, or after an approval to
/// the client's `after_approval_url`.
///
/// # Errors
/// `NoAccess` when the user may not use the client; `OtherNetwork` when the client requires the
/// browser to be on the device's network and it is not; `CodeExpired` / `CodeUsed` when the grant
/// is no longer pending; database failures.
pub async fn decide(
    core: &Core,
    session: &ActivateSession,
    req: &HttpRequest,
    current: &Current,
    user: &SignedUser,
    decision: Decision,
    posted_from: PostedFrom,
) -> Result<HttpResponse, ActivateError> {
    let approver = Approver {
        user: &user.user,
        auth_time: user.auth_time,
        ip: ClientAddress::of(req).ip(),
    };
    match interaction::decide(core, &current.request, approver, decision).await? {
        Decided::Recorded => {}
        Decided::NoAccess => {
            return Err(ActivateError::NoAccess {
                client: current.request.client.name.clone(),
            });
        }
        Decided::OtherNetwork => {
            return Err(ActivateError::OtherNetwork {
                client: current.request.client.name.clone(),
            });
        }
        Decided::NoLongerPending => {
            session.clear_code();
            return Err(ended(core, current.code.grant_id).await);
        }
    }
    let slug = &current.request.workspace.slug;
    let (outcome, forward) = match decision {
        Decision::Approve => (Outcome::Approved, after_approval_url(&current.request)),
        Decision::Deny => (Outcome::Denied, None),
    };
    // After an approval the browser goes to the client's `after_approval_url` (SPEC §4 item
    // 4): straight from a page that allowed it, else through the done page, which forwards it.
    match (forward, posted_from) {
        (Some(url), PostedFrom::ClientPage) => {
            session.finish(outcome, slug, None)?;
            Ok(see_other(url.as_str()))
        }
        (Some(url), PostedFrom::CodeEntry) => {
            session.finish(outcome, slug, Some(url.as_str()))?;
            Ok(see_other(DONE_PATH))
        }
        (None, _) => {
            session.finish(outcome, slug, None)?;
            Ok(see_other(DONE_PATH))
        }
    }
}
