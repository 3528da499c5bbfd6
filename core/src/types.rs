//! Domain types, parsed once at the edge: a value of one of these is valid by construction.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::error::Error;

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            #[must_use]
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// The rule every identifier a person or a client types must pass before it is looked up: no
/// control characters. No stored client_id, username or email holds one (their types below
/// refuse them), and PostgreSQL cannot even compare text holding NUL, so such input is
/// malformed, not merely unknown.
///
/// # Errors
/// `Invalid` naming `field`.
pub fn identifier<'a>(field: &'static str, value: &'a str) -> Result<&'a str, Error> {
    if value.chars().any(char::is_control) {
        Err(Error::invalid(
            field,
            format!("{field} must not contain control characters"),
        ))
    } else {
        Ok(value)
    }
}

/// A workspace slug: 1–63 lowercase letters, digits and inner dashes (a DNS label).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slug(String);
string_newtype!(Slug);

impl Slug {
    /// # Errors
    /// When the value is not a valid slug.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let ok = (1..=63).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !value.starts_with('-')
            && !value.ends_with('-');
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::invalid(
                "slug",
                format!(
                    "slug {value:?} must be 1–63 lowercase letters, digits or dashes, \
                     not starting or ending with a dash"
                ),
            ))
        }
    }
}

/// Alphabet of user codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodeCharset {
    /// `BCDFGHJKLMNPQRSTVWXZ`: no vowels (no words), no look-alikes.
    #[default]
    Base20,
    Digits,
}

impl CodeCharset {
    #[must_use]
    pub fn alphabet(self) -> &'static [u8] {
        match self {
            Self::Base20 => b"BCDFGHJKLMNPQRSTVWXZ",
            Self::Digits => b"0123456789",
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Base20 => "base20",
            Self::Digits => "digits",
        }
    }
}

impl FromStr for CodeCharset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "base20" => Ok(Self::Base20),
            "digits" => Ok(Self::Digits),
            other => Err(Error::invalid(
                "user_code_charset",
                format!("user code charset {other:?} must be base20 or digits"),
            )),
        }
    }
}

impl fmt::Display for CodeCharset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Number of characters in a user code: 6 to 12.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeLength(u8);

impl CodeLength {
    pub const MIN: u8 = 6;
    pub const MAX: u8 = 12;
    pub const DEFAULT: Self = Self(8);

    /// # Errors
    /// When the value is outside 6..=12.
    pub fn new(value: i64) -> Result<Self, Error> {
        u8::try_from(value)
            .ok()
            .filter(|v| (Self::MIN..=Self::MAX).contains(v))
            .map(Self)
            .ok_or_else(|| {
                Error::invalid(
                    "user_code_length",
                    format!("user code length must be from 6 to 12, not {value}"),
                )
            })
    }

    #[must_use]
    pub fn get(self) -> u8 {
        self.0
    }
}

/// A duration in whole seconds within the bounds of the setting it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(i64);

impl Seconds {
    /// # Errors
    /// When the value is not within `1..=max`.
    pub fn new(field: &'static str, value: i64, max: i64) -> Result<Self, Error> {
        if (1..=max).contains(&value) {
            Ok(Self(value))
        } else {
            Err(Error::invalid(
                field,
                format!(
                    "{} must be a whole number of seconds from 1 to {max}, not {value}",
                    field.replace('_', " ")
                ),
            ))
        }
    }

    /// For the built-in defaults, which are in range by construction.
    pub(crate) const fn trusted(value: i64) -> Self {
        Self(value)
    }

    #[must_use]
    pub fn get(self) -> i64 {
        self.0
    }
}

/// A client identifier: 1–128 unreserved URL characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientId(String);
string_newtype!(ClientId);

impl ClientId {
    /// # Errors
    /// When the value has other characters or the wrong length.
    pub fn parse(value: &str) -> Result<Self, Error> {
        identifier("client_id", value)?;
        let ok = (1..=128).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::invalid(
                "client_id",
                format!("client_id {value} must be 1–128 letters, digits or - . _ ~"),
            ))
        }
    }

    /// A fresh random identifier (128 bits, base64url).
    #[must_use]
    pub fn generate() -> Self {
        use base64::Engine as _;
        Self(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(crate::crypto::random_bytes::<16>()),
        )
    }
}

/// An end user's username within a workspace: 1–64 visible characters, no spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);
string_newtype!(Username);

impl Username {
    /// # Errors
    /// When empty, too long, or containing spaces or control characters.
    pub fn parse(value: &str) -> Result<Self, Error> {
        identifier("username", value)?;
        let ok = !value.is_empty()
            && value.chars().count() <= 64
            && !value.chars().any(char::is_whitespace);
        if ok {
            Ok(Self(value.to_owned()))
        } else {
            Err(Error::invalid(
                "username",
                "username must be 1–64 characters without spaces",
            ))
        }
    }
}

/// An email address, checked for shape only (local@domain), stored as given but trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);
string_newtype!(Email);

impl Email {
    /// # Errors
    /// When the value is not shaped like an address.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let v = identifier("email", value.trim())?;
        let ok = v.len() <= 254
            && v.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.is_empty()
                    && !domain.contains('@')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            })
            && !v.chars().any(char::is_whitespace);
        if ok {
            Ok(Self(v.to_owned()))
        } else {
            Err(Error::invalid(
                "email",
                format!("{v:?} is not an email address"),
            ))
        }
    }

    /// Admin emails compare case-insensitively.
    #[must_use]
    pub fn lowercase(&self) -> String {
        self.0.to_lowercase()
    }
}

/// A password as typed by a person: 8 to 1024 characters.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    /// # Errors
    /// When shorter than 8 or longer than 1024 characters.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let n = value.chars().count();
        if n == 0 {
            Err(Error::invalid("password", "password must not be empty"))
        } else if n < 8 {
            Err(Error::invalid(
                "password",
                "password must have at least 8 characters",
            ))
        } else if n > 1024 {
            Err(Error::invalid(
                "password",
                "password must have at most 1024 characters",
            ))
        } else {
            Ok(Self(value.to_owned()))
        }
    }

    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A human-readable name (workspace, client, user): 1–200 characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);
string_newtype!(DisplayName);

impl DisplayName {
    /// # Errors
    /// When empty after trimming, too long, or holding control characters.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, Error> {
        let v = value.trim();
        if v.is_empty() {
            Err(Error::invalid(field, format!("{field} must not be empty")))
        } else if v.chars().count() > 200 {
            Err(Error::invalid(
                field,
                format!("{field} must have at most 200 characters"),
            ))
        } else if v.chars().any(char::is_control) {
            Err(Error::invalid(
                field,
                format!("{field} must not contain control characters"),
            ))
        } else {
            Ok(Self(v.to_owned()))
        }
    }
}

/// A grant a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Grant {
    DeviceCode,
    RefreshToken,
    ClientCredentials,
    AuthorizationCode,
}

impl Grant {
    pub const ALL: [Self; 4] = [
        Self::DeviceCode,
        Self::RefreshToken,
        Self::ClientCredentials,
        Self::AuthorizationCode,
    ];

    /// The short name used by the CLI, the console and the database.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeviceCode => "device_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::AuthorizationCode => "authorization_code",
        }
    }

    /// The `grant_type` value of the token endpoint (RFC 6749, RFC 8628).
    #[must_use]
    pub fn grant_type(self) -> &'static str {
        match self {
            Self::DeviceCode => "urn:ietf:params:oauth:grant-type:device_code",
            other => other.as_str(),
        }
    }
}

impl FromStr for Grant {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == s || g.grant_type() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "grants",
                    format!(
                        "grant {s:?} must be one of device_code, refresh_token, \
                         client_credentials, authorization_code"
                    ),
                )
            })
    }
}

/// The set of grants enabled for a client.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GrantSet(BTreeSet<Grant>);

impl GrantSet {
    /// # Errors
    /// When a name is not a known grant.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, Error> {
        names
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(Grant::from_str)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Reads the stored form; unknown names (from a newer version) are ignored.
    #[must_use]
    pub fn from_stored(stored: &str) -> Self {
        Self(
            stored
                .split_whitespace()
                .filter_map(|s| s.parse().ok())
                .collect(),
        )
    }

    #[must_use]
    pub fn contains(&self, grant: Grant) -> bool {
        self.0.contains(&grant)
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = Grant> + '_ {
        self.0.iter().copied()
    }
}

impl FromIterator<Grant> for GrantSet {
    fn from_iter<I: IntoIterator<Item = Grant>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl fmt::Display for GrantSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|g| g.as_str()).collect();
        f.write_str(&names.join(" "))
    }
}

/// A set of scope tokens (RFC 6749 §3.3), kept sorted so that it prints the same way every time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScopeSet(BTreeSet<String>);

impl ScopeSet {
    /// Parses a space-separated scope string.
    ///
    /// # Errors
    /// When a token has characters RFC 6749 §3.3 forbids.
    pub fn parse(value: &str) -> Result<Self, Error> {
        value
            .split([' ', '\t', '\n', '\r'])
            .filter(|s| !s.is_empty())
            .map(|token| {
                let valid = token.len() <= 128
                    && token.bytes().all(|b| {
                        b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)
                    });
                if valid {
                    Ok(token.to_owned())
                } else {
                    Err(Error::invalid(
                        "scopes",
                        format!("scope {token} has characters a scope cannot have"),
                    ))
                }
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Reads the stored form.
    #[must_use]
    pub fn from_stored(stored: &str) -> Self {
        Self(stored.split_whitespace().map(str::to_owned).collect())
    }

    #[must_use]
    pub fn contains(&self, scope: &str) -> bool {
        self.0.contains(scope)
    }

    #[must_use]
    pub fn is_subset(&self, other: &Self) -> bool {
        self.0.is_subset(&other.0)
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.iter().map(String::as_str)
    }

    /// Scopes of `self` that `allowed` lacks.
    #[must_use]
    pub fn difference(&self, allowed: &Self) -> Vec<String> {
        self.0.difference(&allowed.0).cloned().collect()
    }

    /// The scopes in both sets.
    #[must_use]
    pub fn intersection(&self, other: &Self) -> Self {
        Self(self.0.intersection(&other.0).cloned().collect())
    }

    pub fn remove(&mut self, scope: &str) {
        self.0.remove(scope);
    }

    pub fn insert(&mut self, scope: &str) {
        self.0.insert(scope.to_owned());
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(String::as_str).collect();
        f.write_str(&names.join(" "))
    }
}

/// A registered redirect URI: absolute, no fragment; `https`, `http` on a loopback host, or a
/// private-use scheme of a native app (RFC 8252 §7.1, containing a dot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectUri(String);
string_newtype!(RedirectUri);

impl RedirectUri {
    /// # Errors
    /// When the URI is relative, has a fragment, or uses plain http off loopback.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let bad =
            |why: &str| Error::invalid("redirect_uris", format!("redirect URI {value:?} {why}"));
        let url = url::Url::parse(value).map_err(|_| bad("is not an absolute URI"))?;
        if url.fragment().is_some() {
            return Err(bad("must not have a fragment"));
        }
        match url.scheme() {
            "https" if url.host().is_some() => {}
            "http" => {
                if !on_loopback(&url) {
                    return Err(bad(
                        "must use https (plain http only on a loopback address)",
                    ));
                }
            }
            s if s.contains('.') => {}
            _ => {
                return Err(bad(
                    "must use https, http on loopback, or a private-use scheme such as com.example.app",
                ));
            }
        }
        Ok(Self(value.to_owned()))
    }
}

/// Whether a URL's host is this machine: `localhost`, 127.0.0.0/8 or `[::1]` (where plain
/// http is acceptable, RFC 8252 §8.3).
fn on_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Where a client sends the browser after an approval (SPEC §4 item 4): an absolute `https`
/// URL with a host, or `http` on a loopback host; no fragment, no user name or password, at
/// most [`AfterApprovalUrl::MAX_LEN`] characters. Held in the URL parser's serialization, so
/// it is ASCII and fit for a `Location` header as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfterApprovalUrl(String);
string_newtype!(AfterApprovalUrl);

impl AfterApprovalUrl {
    pub const MAX_LEN: usize = 2000;

    /// An empty (or blank) value means none.
    ///
    /// # Errors
    /// `Invalid` naming `after_approval_url`, saying what is wrong.
    pub fn parse_optional(value: &str) -> Result<Option<Self>, Error> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(None);
        }
        let bad =
            |why: &str| Error::invalid("after_approval_url", format!("after_approval_url {why}"));
        if value.chars().count() > Self::MAX_LEN {
            return Err(bad(&format!(
                "must be at most {} characters",
                Self::MAX_LEN
            )));
        }
        // The URL parser drops tabs and line breaks silently: what it would not keep is refused.
        if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("must not contain spaces or control characters"));
        }
        let url = url::Url::parse(value)
            .map_err(|_| bad("must be an absolute URL such as https://app.example/connected"))?;
        if url.fragment().is_some() {
            return Err(bad("must not have a fragment (#…)"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad("must not hold a user name or password"));
        }
        match url.scheme() {
            "https" if url.host().is_some() => {}
            "http" if on_loopback(&url) => {}
            "http" => return Err(bad("must use https (plain http only on a loopback host)")),
            _ => return Err(bad("must be an https URL (or http on a loopback host)")),
        }
        let url = String::from(url);
        if url.len() > Self::MAX_LEN {
            return Err(bad(&format!(
                "must be at most {} characters",
                Self::MAX_LEN
            )));
        }
        Ok(Some(Self(url)))
    }

    /// The URL's origin (`https://app.example:8443`), which the pages whose forms lead there
    /// must allow in their CSP `form-action`.
    #[must_use]
    pub fn origin(&self) -> String {
        url::Url::parse(&self.0)
            .map_or_else(|_| String::new(), |u| u.origin().ascii_serialization())
    }

    /// A stored value, trusted as it was validated when saved.
    #[must_use]
    pub fn from_stored(value: Option<&str>) -> Option<Self> {
        value.filter(|v| !v.is_empty()).map(|v| Self(v.to_owned()))
    }
}

#[cfg(test)]
mod after_approval_url_tests {
    use super::*;

    fn parsed(value: &str) -> Result<Option<String>, String> {
        AfterApprovalUrl::parse_optional(value)
            .map(|u| u.map(|u| u.as_str().to_owned()))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn https_anywhere_and_http_on_loopback_are_accepted() {
        for (given, kept) in [
            (
                "https://app.example/connected",
                "https://app.example/connected",
            ),
            (
                "  https://app.example/done?tv=1 ",
                "https://app.example/done?tv=1",
            ),
            ("https://APP.example", "https://app.example/"),
            ("http://localhost:3000/done", "http://localhost:3000/done"),
            ("http://127.0.0.9/done", "http://127.0.0.9/done"),
            ("http://[::1]:8080/", "http://[::1]:8080/"),
        ] {
            assert_eq!(parsed(given), Ok(Some(kept.to_owned())), "{given}");
        }
        assert_eq!(parsed(""), Ok(None));
        let origin = |u: &str| {
            AfterApprovalUrl::parse_optional(u)
                .unwrap()
                .unwrap()
                .origin()
        };
        assert_eq!(origin("https://app.example/a?b"), "https://app.example");
        assert_eq!(origin("http://localhost:3000/x"), "http://localhost:3000");
        assert_eq!(parsed("   "), Ok(None));
    }

    #[test]
    fn everything_else_is_refused_naming_the_field() {
        let long = format!(
            "https://app.example/{}",
            "a".repeat(AfterApprovalUrl::MAX_LEN)
        );
        for given in [
            "http://app.example/done",
            "http://10.0.0.1/done",
            "ftp://app.example/",
            "javascript:alert(1)",
            "data:text/html,hi",
            "/relative/path",
            "app.example/done",
            "https://app.example/done#frag",
            "https://user:pw@app.example/",
            "https://user@app.example/",
            "https://app.example/a\tb",
            "https://app.example/a b",
            "https://app.example/\u{0}",
            long.as_str(),
        ] {
            let refused = parsed(given).expect_err(given);
            assert!(refused.contains("after_approval_url"), "{given}: {refused}");
        }
    }
}

/// Who may approve a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Access {
    #[default]
    Everyone,
    Assigned,
}

impl Access {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Everyone => "everyone",
            Self::Assigned => "assigned",
        }
    }
}

impl FromStr for Access {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "everyone" => Ok(Self::Everyone),
            "assigned" => Ok(Self::Assigned),
            other => Err(Error::invalid(
                "access",
                format!("access {other:?} must be everyone or assigned"),
            )),
        }
    }
}

/// How the device's network is compared with the approving browser's (BCP 247 §6.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Proximity {
    Off,
    #[default]
    Warn,
    Require,
}

impl Proximity {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Warn => "warn",
            Self::Require => "require",
        }
    }

    /// The stored value; one that does not read (the row was edited by hand) is the strictest,
    /// `require`, so that it fails closed.
    #[must_use]
    pub fn from_stored(text: &str) -> Self {
        text.parse().unwrap_or_else(|_| {
            tracing::error!(%text, "a stored proximity does not parse; read as require");
            Self::Require
        })
    }
}

impl FromStr for Proximity {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "off" => Ok(Self::Off),
            "warn" => Ok(Self::Warn),
            "require" => Ok(Self::Require),
            other => Err(Error::invalid(
                "proximity",
                format!("proximity {other:?} must be off, warn or require"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["default", "a", "acme-tv", "x1"] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "Acme", "a b", "a_b", &"a".repeat(64)] {
            assert!(Slug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn code_lengths() {
        assert!(CodeLength::new(5).is_err());
        assert!(CodeLength::new(13).is_err());
        assert_eq!(CodeLength::new(12).unwrap().get(), 12);
        assert_eq!(CodeLength::new(6).unwrap().get(), 6);
    }

    #[test]
    fn charsets() {
        assert_eq!(
            "base20".parse::<CodeCharset>().unwrap().alphabet().len(),
            20
        );
        assert_eq!(
            "digits".parse::<CodeCharset>().unwrap().alphabet().len(),
            10
        );
        assert!("hex".parse::<CodeCharset>().is_err());
    }

    #[test]
    fn scopes_parse_sorted_and_reject_bad_tokens() {
        let s = ScopeSet::parse("openid  email openid").unwrap();
        assert_eq!(s.to_string(), "email openid");
        assert!(ScopeSet::parse("bad\"quote").is_err());
        assert!(ScopeSet::parse("back\\slash").is_err());
    }

    #[test]
    fn grants_accept_short_and_uri_names() {
        let g = GrantSet::parse([
            "device_code",
            "urn:ietf:params:oauth:grant-type:device_code",
            "refresh_token",
        ])
        .unwrap();
        assert_eq!(g.to_string(), "device_code refresh_token");
        assert!(GrantSet::parse(["password"]).is_err());
    }

    #[test]
    fn redirect_uris() {
        for ok in [
            "https://app.example/cb",
            "http://127.0.0.1/cb",
            "http://[::1]:8080/cb",
            "http://localhost:3000/cb",
            "com.example.app:/cb",
        ] {
            assert!(RedirectUri::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example/cb",
            "https://app.example/cb#x",
            "/cb",
            "javascript:alert(1)",
        ] {
            assert!(RedirectUri::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn identifiers_with_control_characters_are_refused_by_every_type() {
        for bad in ["a\0b", "\0", "a\u{7}", "a\nb", "a\u{7f}", "a\u{85}"] {
            let message = identifier("username", bad).unwrap_err().to_string();
            assert_eq!(message, "username must not contain control characters");
            assert!(ClientId::parse(bad).is_err(), "{bad:?}");
            assert!(Username::parse(bad).is_err(), "{bad:?}");
            assert!(
                Email::parse(&format!("{bad}@example.test")).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(
            identifier("email", "é@example.test").unwrap(),
            "é@example.test"
        );
    }

    #[test]
    fn passwords_and_emails() {
        assert!(Password::parse("").is_err());
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("long enough").is_ok());
        assert!(Email::parse("a@b").is_ok());
        assert!(Email::parse("ab").is_err());
        assert!(Email::parse("a@b@c").is_err());
        assert!(Email::parse("a b@c").is_err());
    }
}

/// A user code in normalized form: the workspace's alphabet only, upper case, no separators.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct UserCode(String);

impl fmt::Debug for UserCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("UserCode(<redacted>)")
    }
}

impl UserCode {
    /// Draws `length` characters uniformly from the charset (rejection sampling, a CSPRNG).
    #[must_use]
    pub fn generate(charset: CodeCharset, length: CodeLength) -> Self {
        let alphabet = charset.alphabet();
        let bound = u32::try_from(alphabet.len()).unwrap_or(u32::MAX);
        Self(
            (0..length.get())
                .map(|_| char::from(alphabet[crate::crypto::random_below(bound) as usize]))
                .collect(),
        )
    }

    /// Normalizes what a person typed: case, spaces and dashes are ignored. `None` when what
    /// is left cannot be a user code of any workspace (wrong characters or length).
    #[must_use]
    pub fn normalize(input: &str) -> Option<Self> {
        let code: String = input
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let len_ok =
            (usize::from(CodeLength::MIN)..=usize::from(CodeLength::MAX)).contains(&code.len());
        let chars_ok = code
            .bytes()
            .all(|b| CodeCharset::Base20.alphabet().contains(&b) || b.is_ascii_digit());
        (len_ok && chars_ok).then_some(Self(code))
    }

    /// The normalized form (what is hashed).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Grouped for reading: groups of 3 or 4, larger first (`BCDF-GHJK`, `123-456`,
    /// `1234-567-890`).
    #[must_use]
    pub fn display(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        let groups = chars.len().div_ceil(4).max(1);
        let (base, extra) = (chars.len() / groups, chars.len() % groups);
        let mut out = String::with_capacity(chars.len() + groups);
        let mut start = 0;
        for g in 0..groups {
            let size = base + usize::from(g < extra);
            if g > 0 {
                out.push('-');
            }
            out.extend(&chars[start..start + size]);
            start += size;
        }
        out
    }
}

#[cfg(test)]
mod user_code_tests {
    use super::*;

    #[test]
    fn generated_codes_have_the_shape_asked_for() {
        for (charset, len) in [
            (CodeCharset::Digits, 6),
            (CodeCharset::Base20, 12),
            (CodeCharset::Base20, 8),
        ] {
            let code = UserCode::generate(charset, CodeLength::new(len).unwrap());
            assert_eq!(code.as_str().len(), len as usize);
            assert!(
                code.as_str()
                    .bytes()
                    .all(|b| charset.alphabet().contains(&b))
            );
        }
    }

    #[test]
    fn grouping() {
        let show = |s: &str| UserCode::normalize(s).unwrap().display();
        assert_eq!(show("BCDFGHJK"), "BCDF-GHJK");
        assert_eq!(show("123456"), "123-456");
        assert_eq!(show("1234567"), "1234-567");
        assert_eq!(show("1234567890"), "1234-567-890");
        assert_eq!(show("BCDFGHJKLMNP"), "BCDF-GHJK-LMNP");
    }

    #[test]
    fn normalization_ignores_case_spaces_and_dashes() {
        assert_eq!(
            UserCode::normalize(" bcdf-ghjk ").unwrap().as_str(),
            "BCDFGHJK"
        );
        assert_eq!(UserCode::normalize("123 456").unwrap().as_str(), "123456");
        assert!(
            UserCode::normalize("AEIOUAEI").is_none(),
            "vowels are never in a code"
        );
        assert!(UserCode::normalize("12345").is_none());
        assert!(UserCode::normalize("").is_none());
    }

    #[test]
    fn draws_cover_the_alphabet_uniformly_enough() {
        let mut seen = std::collections::HashMap::new();
        for _ in 0..400 {
            for c in UserCode::generate(CodeCharset::Base20, CodeLength::new(10).unwrap())
                .as_str()
                .chars()
            {
                *seen.entry(c).or_insert(0) += 1;
            }
        }
        assert_eq!(seen.len(), 20);
        // 4000 draws over 20 letters: 200 expected each; far outside 100..300 means bias.
        assert!(seen.values().all(|n| (100..300).contains(n)), "{seen:?}");
    }
}

#[cfg(test)]
mod properties;
