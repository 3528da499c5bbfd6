//! What every HTML surface (`/console`, `/activate`) shares: the session base and its cookie,
//! the CSRF check of every form, page and problem rendering with the headers every page
//! carries, the client's address, and QR codes of links. No business rules live here.

pub mod address;
pub mod csrf;
pub mod html;
pub mod qr;
pub mod session;

pub use address::ClientAddress;
pub use csrf::{CsrfConfig, CsrfForm, CsrfProtected};
pub use session::{SessionCookie, SessionMiddleware, TypedSession};

/// A failure of the web layer itself: ours, never the visitor's. Each surface maps it into its
/// own error, as an internal failure.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(transparent)]
    Render(#[from] vestibule_core::templates::RenderError),
    #[error("cannot write the session: {0}")]
    Session(#[from] actix_session::SessionInsertError),
}
