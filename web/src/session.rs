//! The session base both surfaces build their typed sessions on: actix-session's private
//! cookie store, typed values under string keys (a surface's typed session is the only code
//! that names its keys), and the CSRF synchronizer token.

use actix_session::config::{BrowserSession, CookieContentSecurity};
use actix_session::storage::CookieSessionStore;
use actix_session::{Session, SessionExt as _};
use actix_web::HttpRequest;
use actix_web::cookie::{Key, SameSite};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::WebError;

const CSRF: &str = "csrf";

/// The session middleware a surface wraps its scope in.
pub type SessionMiddleware = actix_session::SessionMiddleware<CookieSessionStore>;

/// What differs between the surfaces' session cookies. Every one is private (encrypted),
/// HttpOnly and ends with the browser; a cookie store cannot expire sessions on the server, so
/// each surface checks the ages it cares about itself.
pub struct SessionCookie<'a> {
    pub name: &'static str,
    /// 64 bytes by type, so `Key::from` (which panics below 64) cannot fail.
    pub key: &'a [u8; 64],
    pub same_site: SameSite,
    pub path: &'static str,
    /// Set when the public URL is https.
    pub secure: bool,
}

impl SessionCookie<'_> {
    #[must_use]
    pub fn middleware(&self) -> SessionMiddleware {
        SessionMiddleware::builder(CookieSessionStore::default(), Key::from(self.key))
            .cookie_name(self.name.to_owned())
            .cookie_content_security(CookieContentSecurity::Private)
            .cookie_http_only(true)
            .cookie_same_site(self.same_site)
            .cookie_secure(self.secure)
            .cookie_path(self.path.to_owned())
            .session_lifecycle(BrowserSession::default())
            .build()
    }
}

/// The session of the request's surface, as typed values.
pub struct TypedSession(Session);

impl TypedSession {
    #[must_use]
    pub fn of(req: &HttpRequest) -> Self {
        Self(req.get_session())
    }

    /// A value that does not read back (an older layout) counts as absent.
    #[must_use]
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.0.get(key).ok().flatten()
    }

    /// # Errors
    /// When the value cannot be written into the session.
    pub fn insert(&self, key: &str, value: impl Serialize) -> Result<(), WebError> {
        Ok(self.0.insert(key, value)?)
    }

    pub fn remove(&self, key: &str) {
        self.0.remove(key);
    }

    /// The value, once: it leaves the session as it is read.
    #[must_use]
    pub fn take<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.0.remove_as::<T>(key).and_then(Result::ok)
    }

    /// Forgets every value.
    pub fn clear(&self) {
        self.0.clear();
    }

    /// Moves the session to a new id, as at a sign-in.
    pub fn renew(&self) {
        self.0.renew();
    }

    /// The synchronizer token of this session, made on first use.
    ///
    /// # Errors
    /// When the session cannot be written.
    pub fn csrf_token(&self) -> Result<String, WebError> {
        match self.get::<String>(CSRF) {
            Some(token) => Ok(token),
            None => self.new_csrf_token(),
        }
    }

    /// Replaces the synchronizer token, so a token seen before a sign-in stops working.
    ///
    /// # Errors
    /// When the session cannot be written.
    pub fn new_csrf_token(&self) -> Result<String, WebError> {
        let token = vestibule_core::crypto::random_token();
        self.insert(CSRF, &token)?;
        Ok(token)
    }

    /// Whether `presented` is this session's token; a session without one matches nothing.
    #[must_use]
    pub fn csrf_matches(&self, presented: Option<&str>) -> bool {
        match (self.get::<String>(CSRF), presented) {
            (Some(expected), Some(presented)) => {
                vestibule_core::crypto::same_secret(&expected, presented)
            }
            _ => false,
        }
    }
}
