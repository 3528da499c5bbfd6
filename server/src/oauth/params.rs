//! Form parameters of the protocol endpoints and client authentication from them.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use actix_web::dev::Payload;
use actix_web::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use actix_web::{FromRequest, HttpRequest, web};
use base64::Engine as _;
use futures_util::StreamExt as _;
use futures_util::future::LocalBoxFuture;
use vestibule_core::services::clients::Credentials;

use super::error::{OAuthError, OAuthResponse};

/// The most a protocol request body may hold. Its parameters are a few short values; the
/// bound keeps what is read and parsed before the client is authenticated small.
pub const BODY_LIMIT: usize = 16 * 1024;

/// The body of a protocol request, read only up to [`BODY_LIMIT`]: a longer one (declared or
/// streamed) is refused with [`OAuthResponse::BodyTooLarge`] before any handler runs.
#[derive(Debug)]
pub struct Body(pub web::Bytes);

impl FromRequest for Body {
    type Error = OAuthResponse;
    type Future = LocalBoxFuture<'static, Result<Self, OAuthResponse>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let mut stream = payload.take();
        Box::pin(async move {
            if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
                return Err(OAuthResponse::BodyTooLarge);
            }
            let mut body = web::BytesMut::new();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    OAuthError::invalid_request(format!("the request body could not be read: {e}"))
                })?;
                if body.len() + chunk.len() > BODY_LIMIT {
                    return Err(OAuthResponse::BodyTooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Self(body.freeze()))
        })
    }
}

/// The `application/x-www-form-urlencoded` body of a protocol request. A parameter sent twice
/// is refused (RFC 6749 §3.1), and empty values count as absent.
#[derive(Debug)]
pub struct Params(HashMap<String, String>);

impl Params {
    /// # Errors
    /// `invalid_request` for another content type or a repeated parameter.
    pub fn parse(req: &HttpRequest, body: &[u8]) -> Result<Self, OAuthError> {
        let form = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form {
            return Err(OAuthError::invalid_request(
                "the request body must be application/x-www-form-urlencoded",
            ));
        }
        // One hash lookup per parameter: a flood of distinct keys costs linear time.
        let mut params = HashMap::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            if v.is_empty() {
                continue;
            }
            match params.entry(k.into_owned()) {
                Entry::Occupied(seen) => {
                    return Err(OAuthError::invalid_request(format!(
                        "parameter {} is repeated",
                        seen.key()
                    )));
                }
                Entry::Vacant(slot) => {
                    slot.insert(v.into_owned());
                }
            }
        }
        Ok(Self(params))
    }

    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// # Errors
    /// `invalid_request` naming the missing parameter.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter {name}")))
    }

    /// How the client authenticates: HTTP Basic (`client_secret_basic`), `client_secret` in the
    /// body (`client_secret_post`), or only `client_id` (`none`). Using two methods at once is
    /// refused.
    ///
    /// # Errors
    /// `invalid_request` for mixed methods; `invalid_client` for a malformed header or no client.
    pub fn credentials(&self, req: &HttpRequest) -> Result<Credentials, OAuthError> {
        let basic = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| v.len() > 6 && v[..6].eq_ignore_ascii_case("basic "))
            .map(|v| decode_basic(&v[6..]))
            .transpose()?;
        match (basic, self.get("client_secret")) {
            (Some(_), Some(_)) => Err(OAuthError::invalid_request(
                "use one client authentication method, not both Basic and client_secret",
            )),
            (Some((client_id, secret)), None) => {
                if self.get("client_id").is_some_and(|id| id != client_id) {
                    return Err(OAuthError::invalid_request(
                        "client_id in the body differs from the Basic credentials",
                    ));
                }
                Ok(Credentials::Secret { client_id, secret })
            }
            (None, Some(secret)) => Ok(Credentials::Secret {
                client_id: self.require("client_id")?.to_owned(),
                secret: secret.to_owned(),
            }),
            (None, None) => self
                .get("client_id")
                .map(|id| Credentials::None {
                    client_id: id.to_owned(),
                })
                .ok_or_else(|| OAuthError::invalid_client("client authentication is required")),
        }
    }
}

/// RFC 6749 §2.3.1: base64 of `urlencode(id):urlencode(secret)`.
fn decode_basic(encoded: &str) -> Result<(String, String), OAuthError> {
    let malformed = || OAuthError::invalid_client("malformed Basic credentials");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| malformed())?;
    let text = String::from_utf8(raw).map_err(|_| malformed())?;
    let (id, secret) = text.split_once(':').ok_or_else(malformed)?;
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let (id, secret) = (decode(id), decode(secret));
    if id.is_empty() {
        return Err(malformed());
    }
    Ok((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn form(body: &str) -> Result<Params, OAuthError> {
        let req = TestRequest::default()
            .insert_header((CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .to_http_request();
        Params::parse(&req, body.as_bytes())
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(form("a=1&a=2").is_err());
        assert_eq!(form("a=1&b=%20x").unwrap().get("b"), Some(" x"));
        assert_eq!(form("a=&a=1").unwrap().get("a"), Some("1"));
    }

    /// Far more keys than a body within the limit can hold: the check compares each key once,
    /// where comparing each with every earlier one would take billions of steps.
    #[test]
    fn a_repeat_is_found_among_a_hundred_thousand_distinct_keys() {
        let flood: String = (0..100_000).map(|i| format!("k{i}=1&")).collect();
        let params = form(&flood).unwrap();
        assert_eq!(params.get("k99999"), Some("1"));
        let err = form(&format!("{flood}k0=2")).unwrap_err();
        assert_eq!(err.description, "parameter k0 is repeated");
    }

    #[test]
    fn basic_credentials_are_url_decoded() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("my%20id:s%3Acret");
        let req = TestRequest::default()
            .insert_header((AUTHORIZATION, format!("Basic {b64}")))
            .to_http_request();
        let creds = form("").unwrap().credentials(&req).unwrap();
        assert_eq!(
            creds,
            Credentials::Secret {
                client_id: "my id".into(),
                secret: "s:cret".into()
            }
        );
    }

    #[test]
    fn two_methods_at_once_are_refused() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("id:secret");
        let req = TestRequest::default()
            .insert_header((AUTHORIZATION, format!("Basic {b64}")))
            .to_http_request();
        let err = form("client_secret=x")
            .unwrap()
            .credentials(&req)
            .unwrap_err();
        assert_eq!(err.code, crate::oauth::error::ErrorCode::InvalidRequest);
    }
}
