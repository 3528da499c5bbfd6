//! The typed `/activate` session: the code in progress, who is signed in, the last outcome and
//! the CSRF token. No other code touches session keys.

use actix_session::{Session, SessionExt as _};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::ActivateError;

const CSRF: &str = "csrf";
const CODE: &str = "code";
const SIGNED_IN: &str = "signed_in";
const OUTCOME: &str = "outcome";

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
}

/// How the last code ended, for the done page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Approved,
    Denied,
}

pub struct ActivateSession(Session);

impl FromRequest for ActivateSession {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(Self(req.get_session())))
    }
}

impl ActivateSession {
    #[must_use]
    pub fn from_request_parts(req: &HttpRequest) -> Self {
        Self(req.get_session())
    }

    /// A value that does not read back (an older layout) counts as absent.
    fn read<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.0.get(key).ok().flatten()
    }

    /// The synchronizer token of this session, made on first use.
    ///
    /// # Errors
    /// When the session cannot be written.
    pub fn csrf_token(&self) -> Result<String, ActivateError> {
        if let Some(token) = self.read::<String>(CSRF) {
            return Ok(token);
        }
        self.new_csrf_token()
    }

    fn new_csrf_token(&self) -> Result<String, ActivateError> {
        let token = vestibule_core::crypto::random_token();
        self.0.insert(CSRF, &token)?;
        Ok(token)
    }

    /// # Errors
    /// `Csrf` unless `presented` is this session's token.
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), ActivateError> {
        let expected = self.read::<String>(CSRF).ok_or(ActivateError::Csrf)?;
        let presented = presented.ok_or(ActivateError::Csrf)?;
        if super::csrf::tokens_match(&expected, presented) {
            Ok(())
        } else {
            Err(ActivateError::Csrf)
        }
    }

    #[must_use]
    pub fn code(&self) -> Option<CodeInProgress> {
        self.read(CODE)
    }

    /// Starts work on a code; the previous outcome no longer applies.
    ///
    /// # Errors
    /// When the session cannot be written.
    pub fn set_code(&self, code: &CodeInProgress) -> Result<(), ActivateError> {
        self.0.remove(OUTCOME);
        self.0.insert(CODE, code)?;
        Ok(())
    }

    pub fn clear_code(&self) {
        self.0.remove(CODE);
    }

    #[must_use]
    pub fn signed_in(&self) -> Option<SignedIn> {
        self.read(SIGNED_IN)
    }

    /// Signs a user in under a new session id and a new CSRF token, so nothing planted in the
    /// browser before the sign-in carries over.
    ///
    /// # Errors
    /// When the session cannot be written.
    pub fn sign_in(&self, who: SignedIn) -> Result<(), ActivateError> {
        self.0.renew();
        self.0.insert(SIGNED_IN, who)?;
        self.new_csrf_token()?;
        Ok(())
    }

    pub fn sign_out(&self) {
        self.0.remove(SIGNED_IN);
    }

    #[must_use]
    pub fn outcome(&self) -> Option<Outcome> {
        self.read(OUTCOME)
    }

    /// Ends work on the code with its outcome.
    ///
    /// # Errors
    /// When the session cannot be written.
    pub fn finish(&self, outcome: Outcome) -> Result<(), ActivateError> {
        self.0.remove(CODE);
        self.0.insert(OUTCOME, outcome)?;
        Ok(())
    }
}
