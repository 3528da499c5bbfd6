//! UserInfo endpoint (OIDC Core §5.3), a protected resource: the access token comes as
//! `Authorization: Bearer` (RFC 6750 §2.1) or, for POST, as `access_token` in a form body
//! (§2.2).

use actix_web::http::Method;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
use actix_web::{HttpRequest, HttpResponse, web};
use vestibule_core::Core;
use vestibule_core::services::userinfo;

use super::error::{OAuthError, OAuthResponse, no_store_json};
use super::params::{Body, Params};

/// `GET` and `POST /w/{slug}/userinfo`.
pub async fn userinfo(
    req: HttpRequest,
    core: web::Data<Core>,
    slug: web::Path<String>,
    Body(body): Body,
) -> Result<HttpResponse, OAuthResponse> {
    let workspace = super::workspace(&core, &slug).await?;
    let token = bearer_token(&req, &body)?;
    let info = userinfo::userinfo(&core, &workspace, &token)
        .await
        .map_err(OAuthResponse::bearer)?;
    Ok(no_store_json(&info))
}

/// The one bearer token of the request. Using two ways at once is refused (RFC 6750 §2).
fn bearer_token(req: &HttpRequest, body: &[u8]) -> Result<String, OAuthResponse> {
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .filter(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "))
        .map(|v| v[7..].trim().to_owned())
        .filter(|t| !t.is_empty());
    // Only a form body can carry the token (§2.2); any other body is not ours to read.
    let form = req.method() == Method::POST
        && req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
    let in_body = if form {
        Params::parse(req, body)
            .map_err(OAuthResponse::bearer)?
            .get("access_token")
            .map(str::to_owned)
    } else {
        None
    };
    match (header, in_body) {
        (Some(_), Some(_)) => Err(OAuthResponse::bearer(OAuthError::invalid_request(
            "send the access token one way: the Authorization header or the form body",
        ))),
        (Some(token), None) | (None, Some(token)) => Ok(token),
        (None, None) => Err(OAuthResponse::Bearer(None)),
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;
    use proptest::prelude::*;

    use super::*;

    const FORM: &str = "application/x-www-form-urlencoded";

    /// `Bearer` in any case.
    fn bearer_scheme() -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<bool>(), 6).prop_map(|upper| {
            "bearer"
                .chars()
                .zip(upper)
                .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
                .collect()
        })
    }

    /// RFC 6750 §2.1's `b64token`.
    const B64TOKEN: &str = "[A-Za-z0-9._~+/-]+=*";

    fn token_of(authorization: Option<&str>, body: Option<&str>) -> Result<String, OAuthResponse> {
        let mut req = TestRequest::post();
        if let Some(value) = authorization {
            req = req.insert_header((AUTHORIZATION, value));
        }
        if body.is_some() {
            req = req.insert_header((CONTENT_TYPE, FORM));
        }
        bearer_token(&req.to_http_request(), body.unwrap_or("").as_bytes())
    }

    proptest! {
        /// Whatever the header and the body hold, the token is found or the request refused.
        #[test]
        fn any_header_and_body_are_answered(
            header in proptest::option::of(prop_oneof![
                "[ -~\t]{0,80}",
                bearer_scheme().prop_flat_map(|s| "[ -~]{0,40}".prop_map(move |t| format!("{s} {t}"))),
            ]),
            body in proptest::option::of(prop_oneof![any::<String>(), "(access_token=[ -~]{0,10}&?){0,3}"]),
        ) {
            let _ = token_of(header.as_deref(), body.as_deref());
        }

        #[test]
        fn the_header_token_is_read_as_sent(
            scheme in bearer_scheme(),
            spaces in " {1,3}",
            token in B64TOKEN,
        ) {
            let header = format!("{scheme}{spaces}{token}");
            prop_assert_eq!(token_of(Some(&header), None).unwrap(), token);
        }

        #[test]
        fn the_body_token_is_read_as_sent(token in "\\PC{1,60}") {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("access_token", &token)
                .finish();
            prop_assert_eq!(token_of(None, Some(&body)).unwrap(), token);
        }

        /// RFC 6750 §2: one way at a time.
        #[test]
        fn a_token_sent_two_ways_is_refused(header in B64TOKEN, body in B64TOKEN) {
            let body = format!("access_token={}", url::form_urlencoded::byte_serialize(body.as_bytes()).collect::<String>());
            let refused = token_of(Some(&format!("Bearer {header}")), Some(&body)).unwrap_err();
            prop_assert!(matches!(refused, OAuthResponse::Bearer(Some(_))));
        }
    }
}
