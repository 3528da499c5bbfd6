//! The typed end-user session, in its own cookie (`vestibule_activate`, shared by `/activate`
//! and the account pages `/w/{slug}/account`): the code in progress, who is signed in, the
//! last outcome, a one-time notice and the CSRF token. No other code touches session keys.

use actix_web::cookie::SameSite;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vestibule_core::Core;
use vestibule_web::{SessionCookie, SessionMiddleware, TypedSession};

use super::error::ActivateError;

const COOKIE_NAME: &str = "vestibule_activate";
const CODE: &str = "code";
const SIGNED_IN: &str = "signed_in";
const OUTCOME: &str = "outcome";
const OUTCOME_WORKSPACE: &str = "outcome_workspace";
const NOTICE: &str = "notice";
const FORWARD: &str = "forward";

/// The end-user session cookie: SameSite=Lax, on every path (`/activate` and the account pages
/// share it), under the session key.
pub fn middleware(core: &Core) -> SessionMiddleware {
    SessionCookie {
        name: COOKIE_NAME,
        key: core.keyring.session_key(),
        same_site: SameSite::Lax,
        path: "/",
        secure: core.settings.server.is_https(),
    }
    .middleware()
}

/// A user code the browser is working on, bound to the grant it named when entered (a code
/// can later name another grant once its lifetime has passed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeInProgress {
    pub grant_id: Uuid,
    /// Normalized; the cookie is encrypted.
    pub user_code: String,
    /// Arrived through `verification_uri_complete` (a link or QR code): consent is never
    /// skipped for it (RFC 8628 §5.4).
    pub via_complete_uri: bool,
}

/// The end user signed in to one workspace.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SignedIn {
    pub workspace_id: Uuid,
    pub user_id: Uuid,
    /// Unix seconds of the sign-in (OIDC `auth_time`).
    pub auth_time: i64,
    /// The user's session generation at sign-in: a password change or a disable since then
    /// moved it on, and the sign-in has ended.
    #[serde(default)]
    pub session_generation: i64,
}

/// How the last code ended, for the done page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Approved,
    Denied,
}

pub struct ActivateSession(TypedSession);

impl FromRequest for ActivateSession {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(Self(TypedSession::of(req))))
    }
}

impl ActivateSession {
    /// The synchronizer token of this session, made on first use.
    ///
    /// # Errors
    /// When the session cannot be written.
    pub fn csrf_token(&self) -> Result<String, ActivateError> {
        Ok(self.0.csrf_token()?)
    }

    #[must_use]
    pub fn code(&self) -> Option<CodeInProgress> {
        self.0.get(CODE)
    }

    /// Starts work on a code; the previous outcome no longer applies.
    ///
    /// # Errors
    /// When the session cannot be written.
    pub fn set_code(&self, code: &CodeInProgress) -> Result<(), ActivateError> {
        self.0.remove(OUTCOME);
        self.0.remove(FORWARD);
        Ok(self.0.insert(CODE, code)?)
    }

    pub fn clear_code(&self) {
        self.0.remove(CODE);
    }

    #[must_use]
    pub fn signed_in(&self) -> Option<SignedIn> {
        self.0.get(SIGNED_IN)
    }

    /// Signs a user in under a new session id and a new CSRF token, so nothing planted in the
    /// browser before the sign-in carries over.
    ///
    /// # Errors
    /// When the session cannot be written.
    pub fn sign_in(&self, who: SignedIn) -> Result<(), ActivateError> {
        self.0.renew();
        self.0.insert(SIGNED_IN, who)?;
        self.0.new_csrf_token()?;
        Ok(())
    }

    pub fn sign_out(&self) {
        self.0.remove(SIGNED_IN);
    }

    /// Signs out at the person's request and forgets everything this browser was doing (the
    /// code in progress, the last outcome), under a new session id: the session is then as
    /// good as a new one.
    pub fn end(&self) {
        self.0.clear();
        self.0.renew();
    }

    #[must_use]
    pub fn outcome(&self) -> Option<Outcome> {
        self.0.get(OUTCOME)
    }

    /// Where the done page sends the browser on, if anywhere (see [`Self::finish`]).
    #[must_use]
    pub fn forward(&self) -> Option<String> {
        self.0.get(FORWARD)
    }

    /// Ends work on the code with its outcome, in the workspace (slug) the code belonged to, and
    /// where the done page is to send the browser on (an approval's `after_approval_url` that the
    /// posting page could not lead to).
    ///
    /// # Errors
    /// When the session cannot be written.
    pub fn finish(
        &self,
        outcome: Outcome,
        workspace_slug: &str,
        forward: Option<&str>,
    ) -> Result<(), ActivateError> {
        self.0.remove(CODE);
        self.0.insert(OUTCOME_WORKSPACE, workspace_slug)?;
        match forward {
            Some(url) => self.0.insert(FORWARD, url)?,
            None => self.0.remove(FORWARD),
        }
        Ok(self.0.insert(OUTCOME, outcome)?)
    }

    /// The slug of the workspace of the last outcome, for the done page's account link.
    #[must_use]
    pub fn outcome_workspace(&self) -> Option<String> {
        self.0.get(OUTCOME_WORKSPACE)
    }

    /// Leaves a message for the next page shown (after a redirect), once.
    ///
    /// # Errors
    /// When the session cannot be written.
    pub fn set_notice(&self, notice: &str) -> Result<(), ActivateError> {
        Ok(self.0.insert(NOTICE, notice)?)
    }

    /// The message left for this page, if any; it is shown once.
    #[must_use]
    pub fn take_notice(&self) -> Option<String> {
        self.0.take(NOTICE)
    }
}
