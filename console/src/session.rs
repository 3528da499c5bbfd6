//! The console's typed session, in its own cookie (`vestibule_console`), separate from
//! `/activate`'s and keyed with its own key: who is signed in and since when, the CSRF token,
//! a one-line notice for the next page, a just-made client secret on its way to the one
//! page that shows it, and the device-flow simulator's request (its device code stays in this
//! encrypted cookie, never in a page or a log). No other code touches session keys.

use actix_web::cookie::SameSite;
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vestibule_core::Core;
use vestibule_web::{SessionCookie, SessionMiddleware, TypedSession};

use crate::error::ConsoleError;

const COOKIE_NAME: &str = "vestibule_console";
const ADMIN: &str = "admin";
const NOTICE: &str = "notice";
const SECRET: &str = "secret";
const SIMULATION: &str = "simulation";

/// The console's session cookie: SameSite=Strict and sent to `/console` only, under a key of
/// its own. The idle and absolute timeouts are checked in [`crate::auth`].
pub fn middleware(core: &Core) -> SessionMiddleware {
    SessionCookie {
        name: COOKIE_NAME,
        key: core.keyring.console_session_key(),
        same_site: SameSite::Strict,
        path: crate::ROOT,
        secure: core.settings.server.is_https(),
    }
    .middleware()
}

/// The admin signed in to this browser.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdminSession {
    pub admin_id: Uuid,
    /// Unix seconds of the sign-in (for the absolute timeout).
    pub signed_in_at: i64,
    /// Unix seconds of the last request (for the idle timeout).
    pub last_seen: i64,
}

/// A client secret just made, for the one page that shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OneTimeSecret {
    pub client_id: String,
    pub secret: String,
}

/// The simulator's running request: what its page shows, and the device code it redeems
/// with once the user approves.
#[derive(Clone, Serialize, Deserialize)]
pub struct Simulation {
    pub workspace: String,
    pub client_id: String,
    pub grant_id: Uuid,
    pub device_code: String,
    /// As shown, grouped (`BCDF-GHJK`).
    pub user_code: String,
    pub verification_uri_complete: String,
    pub expires_at: i64,
}

impl std::fmt::Debug for Simulation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulation")
            .field("workspace", &self.workspace)
            .field("client_id", &self.client_id)
            .field("grant_id", &self.grant_id)
            .finish_non_exhaustive()
    }
}

pub struct ConsoleSession(TypedSession);

impl FromRequest for ConsoleSession {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(Self::of(req)))
    }
}

impl ConsoleSession {
    #[must_use]
    pub fn of(req: &HttpRequest) -> Self {
        Self(TypedSession::of(req))
    }

    /// The synchronizer token of this session, made on first use.
    ///
    /// # Errors
    /// When the session cannot be written.
    pub fn csrf_token(&self) -> Result<String, ConsoleError> {
        Ok(self.0.csrf_token()?)
    }

    #[must_use]
    pub fn admin(&self) -> Option<AdminSession> {
        self.0.get(ADMIN)
    }

    /// Signs an admin in under a new session id and a new CSRF token, so nothing planted in
    /// the browser before the sign-in carries over.
    ///
    /// # Errors
    /// When the session cannot be written.
    pub fn sign_in(&self, admin_id: Uuid, now: i64) -> Result<(), ConsoleError> {
        self.0.clear();
        self.0.renew();
        self.set_admin(&AdminSession {
            admin_id,
            signed_in_at: now,
            last_seen: now,
        })?;
        self.0.new_csrf_token()?;
        Ok(())
    }

    /// # Errors
    /// When the session cannot be written.
    pub fn set_admin(&self, admin: &AdminSession) -> Result<(), ConsoleError> {
        Ok(self.0.insert(ADMIN, admin)?)
    }

    /// Forgets everything under a new session id, keeping only `notice` for the next page.
    ///
    /// # Errors
    /// When the session cannot be written.
    pub fn sign_out(&self, notice: Option<&str>) -> Result<(), ConsoleError> {
        self.0.clear();
        self.0.renew();
        if let Some(notice) = notice {
            self.set_notice(notice)?;
        }
        Ok(())
    }

    /// A line for the next page ("Workspace created.").
    ///
    /// # Errors
    /// When the session cannot be written.
    pub fn set_notice(&self, notice: &str) -> Result<(), ConsoleError> {
        Ok(self.0.insert(NOTICE, notice)?)
    }

    /// The notice, once.
    #[must_use]
    pub fn take_notice(&self) -> Option<String> {
        self.0.take(NOTICE)
    }

    /// # Errors
    /// When the session cannot be written.
    pub fn set_secret(&self, secret: &OneTimeSecret) -> Result<(), ConsoleError> {
        Ok(self.0.insert(SECRET, secret)?)
    }

    /// The secret made for `client_id`, once: it leaves the session as it is shown.
    #[must_use]
    pub fn take_secret(&self, client_id: &str) -> Option<String> {
        let held = self.0.get::<OneTimeSecret>(SECRET)?;
        self.0.remove(SECRET);
        (held.client_id == client_id).then_some(held.secret)
    }

    /// # Errors
    /// When the session cannot be written.
    pub fn set_simulation(&self, simulation: &Simulation) -> Result<(), ConsoleError> {
        Ok(self.0.insert(SIMULATION, simulation)?)
    }

    /// The simulator's request for this client of this workspace, if it is the one running.
    #[must_use]
    pub fn simulation(&self, workspace: &str, client_id: &str) -> Option<Simulation> {
        self.0
            .get::<Simulation>(SIMULATION)
            .filter(|s| s.workspace == workspace && s.client_id == client_id)
    }
}
