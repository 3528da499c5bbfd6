//! The address of the party making a request, believing `X-Forwarded-For` only from
//! `server.trusted_proxies`.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The client's address: the peer, or, when the peer is a trusted proxy, the right-most
/// address of `X-Forwarded-For` that is not itself a trusted proxy.
#[must_use]
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr().map(|a| a.ip())?;
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    Some(vestibule_core::net::client_address(
        peer, forwarded, trusted,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let direct = TestRequest::default()
            .peer_addr("203.0.113.9:1000".parse().unwrap())
            .insert_header(("x-forwarded-for", "198.51.100.1"))
            .to_http_request();
        assert_eq!(client_ip(&direct, &trusted), "203.0.113.9".parse().ok());
        let proxied = TestRequest::default()
            .peer_addr("10.0.0.2:1000".parse().unwrap())
            .insert_header(("x-forwarded-for", "198.51.100.1, 10.0.0.7"))
            .to_http_request();
        assert_eq!(client_ip(&proxied, &trusted), "198.51.100.1".parse().ok());
    }
}
