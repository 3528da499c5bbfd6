//! Who is signed in: [`SignedIn`] is extracted only for an enabled admin whose session is
//! within its idle and absolute timeouts; otherwise the request goes to the sign-in page.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use futures_util::future::LocalBoxFuture;
use serde::Serialize;
use vestibule_core::Core;
use vestibule_core::entities::admin;
use vestibule_core::services::admins;
use vestibule_core::services::audit::Actor;

use crate::error::ConsoleError;
use crate::session::ConsoleSession;

/// A session unused this long ends.
pub const IDLE_TIMEOUT: i64 = 30 * 60;
/// A session ends this long after the sign-in, used or not.
pub const ABSOLUTE_TIMEOUT: i64 = 12 * 3600;
/// `last_seen` is rewritten at most this often, so not every page re-sends the cookie.
const SEEN_GRANULARITY: i64 = 60;

/// A signed-in, enabled admin and their session.
pub struct SignedIn {
    pub admin: admin::Model,
    pub session: ConsoleSession,
}

impl FromRequest for SignedIn {
    type Error = ConsoleError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let session = ConsoleSession::of(req);
        let core = req.app_data::<web::Data<Core>>().cloned();
        Box::pin(async move {
            let core = core.ok_or_else(|| {
                ConsoleError::Internal(vestibule_core::Error::internal("no Core in app data"))
            })?;
            let Some(mut signed_in) = session.admin() else {
                return Err(ConsoleError::SignInRequired);
            };
            let now = vestibule_core::now();
            if now - signed_in.signed_in_at >= ABSOLUTE_TIMEOUT
                || now - signed_in.last_seen >= IDLE_TIMEOUT
            {
                session.sign_out(Some("Your session ended. Sign in again to continue."))?;
                return Err(ConsoleError::SignInRequired);
            }
            let admin = admins::find(&core.db, signed_in.admin_id)
                .await?
                .filter(|a| !a.disabled);
            let Some(admin) = admin else {
                session.sign_out(None)?;
                return Err(ConsoleError::SignInRequired);
            };
            if now - signed_in.last_seen >= SEEN_GRANULARITY {
                signed_in.last_seen = now;
                session.set_admin(&signed_in)?;
            }
            Ok(Self { admin, session })
        })
    }
}

/// The parts of the layout every signed-in page shows.
#[derive(Debug, Serialize)]
pub struct Chrome {
    pub admin_email: String,
    pub csrf_token: String,
    /// The navigation entry to mark as current.
    pub section: &'static str,
    pub notice: Option<String>,
}

impl SignedIn {
    /// Who the audit log names for this admin's actions.
    #[must_use]
    pub fn actor(&self) -> Actor {
        Actor::Admin(self.admin.email.clone())
    }

    /// The layout's parts; takes the pending notice.
    ///
    /// # Errors
    /// When the session cannot be written.
    pub fn chrome(&self, section: &'static str) -> Result<Chrome, ConsoleError> {
        Ok(Chrome {
            admin_email: self.admin.email.clone(),
            csrf_token: self.session.csrf_token()?,
            section,
            notice: self.session.take_notice(),
        })
    }

    /// After a handled form: a notice for the next page, and `303` to it.
    ///
    /// # Errors
    /// When the session cannot be written.
    pub fn done(&self, notice: &str, location: &str) -> Result<HttpResponse, ConsoleError> {
        self.session.set_notice(notice)?;
        Ok(vestibule_web::html::see_other(location))
    }
}
