//! The address of the party making a request, believing `X-Forwarded-For` only from
//! `server.trusted_proxies`: applied here, once, for every surface and endpoint.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::IpAddr;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use ipnet::IpNet;
use vestibule_core::Core;

/// The client's address: the peer, or, when the peer is a trusted proxy, the right-most
/// address of `X-Forwarded-For` that is not itself a trusted proxy. Unknown when the request
/// did not come through a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddress(Option<IpAddr>);

impl ClientAddress {
    /// The trusted proxies are those of the app's [`Core`]; an app without one trusts none.
    #[must_use]
    pub fn of(req: &HttpRequest) -> Self {
        let trusted = req
            .app_data::<web::Data<Core>>()
            .map_or(&[][..], |core| &core.settings.server.trusted_proxies);
        Self::behind(req, trusted)
    }

    fn behind(req: &HttpRequest, trusted: &[IpNet]) -> Self {
        let Some(peer) = req.peer_addr().map(|a| a.ip()) else {
            return Self(None);
        };
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok());
        Self(Some(vestibule_core::net::client_address(
            peer, forwarded, trusted,
        )))
    }

    #[must_use]
    pub fn ip(self) -> Option<IpAddr> {
        self.0
    }

    /// As the audit log and the throttle keys write it.
    #[must_use]
    pub fn text(self) -> Option<String> {
        self.0.map(|ip| ip.to_string())
    }
}

impl FromRequest for ClientAddress {
    type Error = Infallible;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Ok(Self::of(req)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use actix_web::test::TestRequest;

    fn from(peer: &str, forwarded_for: &str) -> TestRequest {
        TestRequest::default()
            .peer_addr(peer.parse().unwrap())
            .insert_header(("x-forwarded-for", forwarded_for))
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let direct = from("203.0.113.9:1000", "198.51.100.1").to_http_request();
        assert_eq!(
            ClientAddress::behind(&direct, &trusted).ip(),
            ip("203.0.113.9")
        );
        let proxied = from("10.0.0.2:1000", "198.51.100.1, 10.0.0.7").to_http_request();
        assert_eq!(
            ClientAddress::behind(&proxied, &trusted).text().as_deref(),
            Some("198.51.100.1")
        );
        let no_socket = TestRequest::default().to_http_request();
        assert_eq!(ClientAddress::behind(&no_socket, &trusted).ip(), None);
    }

    #[actix_web::test]
    async fn the_extractor_applies_the_configured_trusted_proxies() {
        let data_dir = tempfile::tempdir().unwrap();
        let env = HashMap::from([
            (
                "VESTIBULE__SERVER__DATA_DIR".to_owned(),
                data_dir.path().display().to_string(),
            ),
            (
                "VESTIBULE__SERVER__TRUSTED_PROXIES".to_owned(),
                "10.0.0.0/8".to_owned(),
            ),
        ]);
        let settings = vestibule_core::config::Settings::load_from(None, env).unwrap();
        let (core, _) = Core::open(settings).await.unwrap();
        let core = web::Data::new(core);

        let extract = |req: TestRequest| async {
            let (req, mut payload) = req.app_data(core.clone()).to_http_parts();
            ClientAddress::from_request(&req, &mut payload)
                .await
                .unwrap()
        };
        assert_eq!(
            extract(from("10.0.0.2:1000", "198.51.100.1")).await.ip(),
            ip("198.51.100.1")
        );
        assert_eq!(
            extract(from("203.0.113.9:1000", "198.51.100.1")).await.ip(),
            ip("203.0.113.9")
        );
        let (req, mut payload) = from("10.0.0.2:1000", "198.51.100.1").to_http_parts();
        assert_eq!(
            ClientAddress::from_request(&req, &mut payload)
                .await
                .unwrap()
                .ip(),
            ip("10.0.0.2"),
            "an app without a Core trusts no proxy"
        );
    }
}
