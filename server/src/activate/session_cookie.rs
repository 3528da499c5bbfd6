//! The `/activate` session cookie: actix-session's private cookie store, keyed from the
//! master key of the app's [`Core`].

use actix_session::SessionMiddleware;
use actix_session::config::{BrowserSession, CookieContentSecurity};
use actix_session::storage::CookieSessionStore;
use actix_web::cookie::{Key, SameSite};
use vestibule_core::Core;

const COOKIE_NAME: &str = "vestibule_activate";

/// The session middleware of `/activate`: encrypted, HttpOnly, SameSite=Lax, Secure on https.
pub fn middleware(core: &Core) -> SessionMiddleware<CookieSessionStore> {
    // 64 bytes by type, so `Key::from` (which panics below 64) cannot fail here.
    let key = Key::from(core.keyring.session_key());
    SessionMiddleware::builder(CookieSessionStore::default(), key)
        .cookie_name(COOKIE_NAME.to_owned())
        .cookie_content_security(CookieContentSecurity::Private)
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .cookie_secure(core.settings.server.is_https())
        .cookie_path("/".to_owned())
        .session_lifecycle(BrowserSession::default())
        .build()
}
