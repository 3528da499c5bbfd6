//! CSRF protection of every form: a POST handler takes its form as [`CsrfForm`], which exists
//! only once the form's `csrf_token` matched the session's synchronizer token (compared in
//! constant time). The body is read as `web::Form`, so the scope's `FormConfig` sets its limit
//! and its refusal; the scope's [`CsrfConfig`] sets the refusal of a wrong token.

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::TypedSession;

/// A form that carries the hidden `csrf_token` field.
pub trait CsrfProtected {
    fn csrf_token(&self) -> Option<&str>;
}

/// How a scope refuses a form whose token is missing or wrong: with its own problem page,
/// registered beside its `FormConfig`. Without one, a bare 403.
#[derive(Clone, Copy)]
pub struct CsrfConfig {
    refusal: fn() -> actix_web::Error,
}

impl CsrfConfig {
    #[must_use]
    pub fn refusing_with(refusal: fn() -> actix_web::Error) -> Self {
        Self { refusal }
    }
}

impl Default for CsrfConfig {
    fn default() -> Self {
        Self::refusing_with(|| actix_web::error::ErrorForbidden("missing or wrong CSRF token"))
    }
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
        let session = TypedSession::of(req);
        let config = req.app_data::<CsrfConfig>().copied().unwrap_or_default();
        Box::pin(async move {
            let web::Form(form) = form.await?;
            if session.csrf_matches(form.csrf_token()) {
                Ok(Self(form))
            } else {
                Err((config.refusal)())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use actix_web::cookie::{Cookie, SameSite};
    use actix_web::http::StatusCode;
    use actix_web::test::{self, TestRequest};
    use actix_web::{App, HttpResponse};
    use serde::Deserialize;

    use super::*;
    use crate::{SessionCookie, SessionMiddleware};

    #[derive(Deserialize)]
    struct Note {
        text: String,
        csrf_token: Option<String>,
    }

    impl CsrfProtected for Note {
        fn csrf_token(&self) -> Option<&str> {
            self.csrf_token.as_deref()
        }
    }

    async fn token(req: HttpRequest) -> HttpResponse {
        match TypedSession::of(&req).csrf_token() {
            Ok(token) => HttpResponse::Ok().body(token),
            Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
        }
    }

    async fn post(CsrfForm(note): CsrfForm<Note>) -> HttpResponse {
        HttpResponse::Ok().body(note.text)
    }

    const KEY: [u8; 64] = [7; 64];

    fn sessions() -> SessionMiddleware {
        SessionCookie {
            name: "test_session",
            key: &KEY,
            same_site: SameSite::Lax,
            path: "/",
            secure: false,
        }
        .middleware()
    }

    #[actix_web::test]
    async fn only_the_sessions_own_token_lets_a_form_through() {
        let app = test::init_service(
            App::new()
                .wrap(sessions())
                .app_data(CsrfConfig::refusing_with(|| {
                    actix_web::error::InternalError::from_response(
                        "refused",
                        HttpResponse::build(StatusCode::IM_A_TEAPOT).finish(),
                    )
                    .into()
                }))
                .route("/token", web::get().to(token))
                .route("/note", web::post().to(post)),
        )
        .await;

        let issued = test::call_service(&app, TestRequest::get().uri("/token").to_request()).await;
        let cookie = issued
            .response()
            .cookies()
            .find(|c| c.name() == "test_session")
            .map(Cookie::into_owned)
            .unwrap();
        let token = String::from_utf8(test::read_body(issued).await.to_vec()).unwrap();

        let send = |form: Vec<(&'static str, String)>, cookie: Option<Cookie<'static>>| {
            let mut req = TestRequest::post().uri("/note").set_form(form);
            if let Some(cookie) = cookie {
                req = req.cookie(cookie);
            }
            test::call_service(&app, req.to_request())
        };
        let text = ("text", "hello".to_owned());

        let accepted = send(
            vec![text.clone(), ("csrf_token", token.clone())],
            Some(cookie.clone()),
        )
        .await;
        assert_eq!(accepted.status(), StatusCode::OK);
        assert_eq!(test::read_body(accepted).await, "hello");

        for (form, cookie) in [
            (vec![text.clone()], Some(cookie.clone())),
            (
                vec![text.clone(), ("csrf_token", format!("{token}x"))],
                Some(cookie.clone()),
            ),
            (
                vec![text.clone(), ("csrf_token", String::new())],
                Some(cookie.clone()),
            ),
            (vec![text.clone(), ("csrf_token", token.clone())], None),
        ] {
            let refused = send(form, cookie).await;
            assert_eq!(refused.status(), StatusCode::IM_A_TEAPOT);
        }
    }

    #[actix_web::test]
    async fn without_a_config_a_wrong_token_is_a_bare_403() {
        let app = test::init_service(
            App::new()
                .wrap(sessions())
                .route("/note", web::post().to(post)),
        )
        .await;
        let refused = test::call_service(
            &app,
            TestRequest::post()
                .uri("/note")
                .set_form([("text", "hi"), ("csrf_token", "guess")])
                .to_request(),
        )
        .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    }
}
