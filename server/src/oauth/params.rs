//! Form parameters of the protocol endpoints and client authentication from them.

use actix_web::HttpRequest;
use actix_web::http::header::{AUTHORIZATION, CONTENT_TYPE};
use base64::Engine as _;
use vestibule_core::services::clients::Credentials;

use super::error::OAuthError;

/// The `application/x-www-form-urlencoded` body of a protocol request. A parameter sent twice
/// is refused (RFC 6749 §3.1), and empty values count as absent.
#[derive(Debug)]
pub struct Params(Vec<(String, String)>);

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
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in url::form_urlencoded::parse(body) {
            if v.is_empty() {
                continue;
            }
            if pairs.iter().any(|(seen, _)| *seen == k) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter {k} is repeated"
                )));
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Self(pairs))
    }

    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
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
