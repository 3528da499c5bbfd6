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
    // Decoded as a form value, where a `&` would end it: one sent unencoded is itself.
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={}", s.replace('&', "%26")).as_bytes())
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
    use std::collections::BTreeMap;

    use super::*;
    use actix_web::test::TestRequest;
    use proptest::prelude::*;

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

    /// A request whose `Authorization` header is `value`.
    fn authorized(value: &str) -> HttpRequest {
        TestRequest::default()
            .insert_header((AUTHORIZATION, value))
            .to_http_request()
    }

    /// `scheme credentials` as RFC 6749 §2.3.1 has a client send them: each part
    /// form-urlencoded, then base64.
    fn basic(scheme: &str, id: &str, secret: &str) -> String {
        let encode =
            |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!("{}:{}", encode(id), encode(secret));
        format!(
            "{scheme} {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        )
    }

    /// `Basic` in any case.
    fn basic_scheme() -> impl Strategy<Value = String> {
        proptest::collection::vec(any::<bool>(), 5).prop_map(|upper| {
            "basic"
                .chars()
                .zip(upper)
                .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
                .collect()
        })
    }

    /// Distinct parameter names with their values.
    fn pairs() -> impl Strategy<Value = BTreeMap<String, String>> {
        proptest::collection::btree_map(any::<String>(), any::<String>(), 0..12)
    }

    fn encoded<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> String {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            form.append_pair(k, v);
        }
        form.finish()
    }

    /// The body as read by [`Body`], with `declared` as its `Content-Length` header.
    fn read_body(body: Vec<u8>, declared: Option<&str>) -> Result<web::Bytes, OAuthResponse> {
        let mut req = TestRequest::default().set_payload(body);
        if let Some(declared) = declared {
            req = req.insert_header((CONTENT_LENGTH, declared));
        }
        let (req, mut payload) = req.to_http_parts();
        actix_web::rt::System::new()
            .block_on(Body::from_request(&req, &mut payload))
            .map(|Body(bytes)| bytes)
    }

    proptest! {
        #[test]
        fn any_body_is_parsed_or_refused(body in any::<Vec<u8>>()) {
            let req = TestRequest::default()
                .insert_header((CONTENT_TYPE, "application/x-www-form-urlencoded"))
                .to_http_request();
            let _ = Params::parse(&req, &body);
        }

        /// Every name reads back its value; an empty value is an absent parameter.
        #[test]
        fn encoded_pairs_read_back(pairs in pairs()) {
            let params = form(&encoded(&pairs)).unwrap();
            for (k, v) in &pairs {
                prop_assert_eq!(params.get(k), Some(v.as_str()).filter(|v| !v.is_empty()));
            }
        }

        /// A name sent twice with values is refused, wherever the second one is.
        #[test]
        fn a_repeated_parameter_is_always_refused(
            pairs in pairs(),
            name in any::<String>(),
            values in ("\\PC{1,10}", "\\PC{1,10}"),
            at in any::<prop::sample::Index>(),
        ) {
            let mut list: Vec<(String, String)> =
                pairs.into_iter().filter(|(k, _)| *k != name).collect();
            list.insert(0, (name.clone(), values.0));
            list.insert(at.index(list.len()) + 1, (name, values.1));
            let err = form(&encoded(list.iter().map(|(k, v)| (k, v)))).unwrap_err();
            prop_assert_eq!(err.code, crate::oauth::error::ErrorCode::InvalidRequest);
            prop_assert!(err.description.ends_with("is repeated"));
        }

        /// Only a form body is read, whatever the `Content-Type` says otherwise.
        #[test]
        fn only_form_bodies_are_read(
            form_type in "(?i)application/x-www-form-urlencoded",
            params in "( ?; ?charset=utf-8)?",
            other in "[ -~]{0,60}",
        ) {
            let parse = |content_type: &str| {
                let req = TestRequest::default()
                    .insert_header((CONTENT_TYPE, content_type))
                    .to_http_request();
                Params::parse(&req, b"a=1")
            };
            let content_type = format!("{form_type}{params}");
            prop_assert!(parse(&content_type).is_ok(), "{}", content_type);
            if !other.to_ascii_lowercase().contains("x-www-form-urlencoded") {
                prop_assert!(parse(&other).is_err());
            }
        }

        /// A body is read whole when it is within the limit and its declared length is not
        /// over it; else it is refused, whatever `Content-Length` holds.
        #[test]
        fn bodies_are_read_within_the_limit(
            len in prop_oneof![0..=BODY_LIMIT + 2, BODY_LIMIT - 2..=BODY_LIMIT + 2],
            declared in proptest::option::of(prop_oneof![
                any::<u64>().prop_map(|n| n.to_string()),
                (0..=BODY_LIMIT as u64 + 2).prop_map(|n| n.to_string()),
                "[ -~]{0,30}",
            ]),
        ) {
            let body = vec![b'a'; len];
            let declared_over = declared
                .as_deref()
                .and_then(|d| d.parse::<u64>().ok())
                .is_some_and(|n| n > BODY_LIMIT as u64);
            match read_body(body.clone(), declared.as_deref()) {
                Ok(read) => {
                    prop_assert!(len <= BODY_LIMIT && !declared_over);
                    prop_assert_eq!(&read[..], &body[..]);
                }
                Err(e) => {
                    prop_assert!(matches!(e, OAuthResponse::BodyTooLarge));
                    prop_assert!(len > BODY_LIMIT || declared_over);
                }
            }
        }

        /// Whatever the `Authorization` header holds, client authentication answers.
        #[test]
        fn any_authorization_header_is_answered(
            value in prop_oneof![
                "[ -~]{0,80}",
                basic_scheme().prop_flat_map(|s| "[A-Za-z0-9+/=\\- ]{0,80}".prop_map(move |v| format!("{s} {v}"))),
                (basic_scheme(), any::<Vec<u8>>()).prop_map(|(s, raw)| {
                    format!("{s} {}", base64::engine::general_purpose::STANDARD.encode(raw))
                }),
            ],
            body in prop_oneof![Just(String::new()), Just("client_id=x".to_owned()), Just("client_secret=s".to_owned())],
        ) {
            let _ = form(&body).unwrap().credentials(&authorized(&value));
        }

        /// Encoded as RFC 6749 §2.3.1 says, any client_id and secret arrive as sent.
        #[test]
        fn basic_credentials_round_trip(
            scheme in basic_scheme(),
            id in "\\PC{1,40}",
            secret in prop_oneof![any::<String>(), "[:%+& =a-z0-9]{0,40}"],
        ) {
            let creds = form("").unwrap().credentials(&authorized(&basic(&scheme, &id, &secret))).unwrap();
            prop_assert_eq!(creds, Credentials::Secret { client_id: id, secret });
        }

        /// Clients that skip the encoding still work for values encoding leaves alone or
        /// that have no other meaning: anything but `%` and `+` (and `:` in the id).
        #[test]
        fn unencoded_basic_credentials_arrive_as_sent(
            id in "[^%+:\\p{Cc}]{1,40}",
            secret in "[^%+\\p{Cc}]{0,40}",
        ) {
            let raw = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
            let creds = form("").unwrap().credentials(&authorized(&format!("Basic {raw}"))).unwrap();
            prop_assert_eq!(creds, Credentials::Secret { client_id: id, secret });
        }
    }
}
