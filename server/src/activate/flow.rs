//! The steps the pages share: which grant this browser is working on, who is signed in for it,
//! where to go next, and recording the decision.

use actix_web::{HttpRequest, HttpResponse};
use uuid::Uuid;
use vestibule_core::Core;
use vestibule_core::entities::{device_grant, user};
use vestibule_core::services::device_grants::{self, Decision, Lookup, PendingGrant, Status};
use vestibule_core::services::workspaces::Settings;
use vestibule_core::services::{consents, users};
use vestibule_core::types::ScopeSet;
use vestibule_web::ClientAddress;
use vestibule_web::html::see_other;

use super::error::ActivateError;
use super::session::{ActivateSession, CodeInProgress, Outcome};
use super::{CONSENT_PATH, DONE_PATH};

/// How long a sign-in at `/activate` lasts. The cookie store cannot expire sessions on the
/// server, so the age is checked here.
const SIGN_IN_LIFETIME: i64 = 12 * 3600;

/// The pending grant this browser is working on.
pub struct Current {
    pub pending: PendingGrant,
    pub code: CodeInProgress,
}

/// The grant of the session's code, still pending.
///
/// # Errors
/// `NoCodeInProgress` without a code; `CodeExpired` / `CodeUsed` once the grant is no longer
/// pending (the code is then forgotten).
pub async fn current(core: &Core, session: &ActivateSession) -> Result<Current, ActivateError> {
    let code = session.code().ok_or(ActivateError::NoCodeInProgress)?;
    match device_grants::find_by_user_code(&core.db, &core.keyring, &code.user_code).await? {
        Lookup::Pending(pending) if pending.grant.id == code.grant_id => Ok(Current {
            pending: *pending,
            code,
        }),
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
        Some(Status::Approved | Status::Denied | Status::Consumed) => ActivateError::CodeUsed,
        _ => ActivateError::CodeExpired,
    }
}

/// The user signed in to this browser session, if it is an active user of `workspace_id`
/// whose sign-in is recent enough.
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
        Some(user) if !user.disabled && user.workspace_id == workspace_id => Ok(Some(SignedUser {
            user,
            auth_time: signed_in.auth_time,
        })),
        _ => {
            session.sign_out();
            Ok(None)
        }
    }
}

/// After a typed code or a sign-in: approve at once when consent may be skipped, else show
/// the consent page.
///
/// # Errors
/// On a database failure, or when the grant stopped being pending meanwhile.
pub async fn after_sign_in(
    core: &Core,
    session: &ActivateSession,
    req: &HttpRequest,
    current: &Current,
    user: &SignedUser,
) -> Result<HttpResponse, ActivateError> {
    if may_skip_consent(core, current, &user.user).await? {
        return decide(
            core,
            session,
            req,
            current.code.grant_id,
            user,
            Decision::Approve,
        )
        .await;
    }
    Ok(see_other(CONSENT_PATH))
}

/// Consent is skipped only for a typed code (never one from `verification_uri_complete`, RFC
/// 8628 §5.4), when the workspace allows it and the user already granted these scopes.
async fn may_skip_consent(
    core: &Core,
    current: &Current,
    user: &user::Model,
) -> Result<bool, ActivateError> {
    if current.code.via_complete_uri
        || !Settings::from_model(&current.pending.workspace)?.consent_skip
    {
        return Ok(false);
    }
    let grant = &current.pending.grant;
    Ok(consents::covers(
        &core.db,
        user.id,
        grant.client_id,
        &ScopeSet::from_stored(&grant.scopes),
    )
    .await?)
}

/// Records the decision and sends the browser to the done page.
///
/// # Errors
/// `CodeExpired` / `CodeUsed` when the grant is no longer pending; database failures.
pub async fn decide(
    core: &Core,
    session: &ActivateSession,
    req: &HttpRequest,
    grant_id: Uuid,
    user: &SignedUser,
    decision: Decision,
) -> Result<HttpResponse, ActivateError> {
    let ip = ClientAddress::of(req).text();
    let recorded =
        device_grants::decide(core, grant_id, &user.user, user.auth_time, decision, ip).await?;
    if !recorded {
        session.clear_code();
        return Err(ended(core, grant_id).await);
    }
    session.finish(match decision {
        Decision::Approve => Outcome::Approved,
        Decision::Deny => Outcome::Denied,
    })?;
    Ok(see_other(DONE_PATH))
}
