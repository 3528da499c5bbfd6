//! CSRF protection for every `/activate` form: a POST handler takes its form as
//! [`CsrfForm`], which exists only once the form's `csrf_token` matched the session's.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use aws_lc_rs::constant_time;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use super::session::ActivateSession;

/// A form that carries the hidden `csrf_token` field.
pub trait CsrfProtected {
    fn csrf_token(&self) -> Option<&str>;
}

/// A form whose CSRF token was checked.
pub struct CsrfForm<T>(pub T);

impl<T> FromRequest for CsrfForm<T>
where
    T: CsrfProtected + DeserializeOwned + 'static,
{
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let form = web::Form::<T>::from_request(req, payload);
        let session = ActivateSession::from_request_parts(req);
        Box::pin(async move {
            let web::Form(form) = form.await?;
            session.check_csrf(form.csrf_token())?;
            Ok(Self(form))
        })
    }
}

/// Constant-time comparison, so the time taken says nothing about how much of a guess was right.
#[must_use]
pub fn tokens_match(expected: &str, presented: &str) -> bool {
    constant_time::verify_slices_are_equal(expected.as_bytes(), presented.as_bytes()).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_must_match_exactly() {
        assert!(tokens_match("abc", "abc"));
        assert!(!tokens_match("abc", "abd"));
        assert!(!tokens_match("abc", "ab"));
        assert!(!tokens_match("abc", ""));
    }
}
