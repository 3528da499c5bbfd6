//! Which address a request comes from, believing `X-Forwarded-For` only from trusted proxies,
//! and which budget an address spends.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv6Net};

/// The client's address: `peer`, or, when `peer` is a trusted proxy, the right-most address of
/// the `X-Forwarded-For` values that is not itself a trusted proxy.
#[must_use]
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = forwarded_for
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    forwarded
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .copied()
        .unwrap_or(peer)
}

/// The key of `address` in every per-address budget: an IPv4 address is its own, an IPv6 address
/// spends the budget of its network of `ipv6_prefix` bits (`security.ipv6_budget_prefix`), since
/// one subscriber commonly holds a whole /64 and would otherwise get a budget per address. An
/// IPv4 address written as IPv6 (`::ffff:198.51.100.7`) is the IPv4 address.
#[must_use]
pub fn budget_key(address: IpAddr, ipv6_prefix: u8) -> String {
    match address.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => Ipv6Net::new(v6, ipv6_prefix.min(128))
            .map_or_else(|_| v6.to_string(), |net| net.trunc().to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_share_the_budget_of_their_prefix() {
        let key = |s: &str, prefix| budget_key(s.parse().unwrap(), prefix);
        assert_eq!(key("2001:db8:1:2::1", 64), "2001:db8:1:2::/64");
        assert_eq!(
            key("2001:db8:1:2:ffff:ffff:ffff:ffff", 64),
            key("2001:db8:1:2::1", 64)
        );
        assert_ne!(key("2001:db8:1:3::1", 64), key("2001:db8:1:2::1", 64));
        assert_eq!(key("2001:db8:1:2::1", 48), "2001:db8:1::/48");
        assert_eq!(key("2001:db8:1:ff::1", 48), key("2001:db8:1:2::1", 48));
        assert_eq!(key("2001:db8::1", 128), "2001:db8::1/128");
        assert_ne!(key("2001:db8::1", 128), key("2001:db8::2", 128));
        assert_eq!(key("198.51.100.7", 64), "198.51.100.7");
        assert_ne!(key("198.51.100.7", 32), key("198.51.100.8", 32));
        assert_eq!(key("::ffff:198.51.100.7", 64), "198.51.100.7");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            client_address(ip("203.0.113.9"), ["198.51.100.1"], &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), ["198.51.100.1, 10.0.0.7"], &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), ["garbage"], &trusted),
            ip("10.0.0.2")
        );
    }

    fn any_ip() -> impl proptest::strategy::Strategy<Value = IpAddr> {
        use proptest::prelude::*;
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
        ]
    }

    proptest::proptest! {
        /// Whatever `X-Forwarded-For` holds, the address is the peer or one named there that is
        /// not a trusted proxy; an untrusted peer is never overridden.
        #[test]
        fn forwarded_for_never_names_a_trusted_or_unnamed_address(
            peer in proptest::sample::select(vec!["10.0.0.2", "203.0.113.9", "::1"]),
            forwarded in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::arbitrary::any::<String>(),
                    "((10|198|203)\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}|[0-9a-f:]{2,12})( ?, ?)?",
                ],
                0..4,
            ),
        ) {
            let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
            let peer: IpAddr = peer.parse().unwrap();
            let found = client_address(peer, forwarded.iter().map(String::as_str), &trusted);
            if found != peer {
                proptest::prop_assert!(trusted[0].contains(&peer));
                proptest::prop_assert!(!trusted[0].contains(&found));
                let named = forwarded
                    .iter()
                    .flat_map(|v| v.split(','))
                    .any(|s| s.trim().parse() == Ok(found));
                proptest::prop_assert!(named, "{found} in {forwarded:?}");
            }
        }

        /// Every address has a budget key, and addresses of one IPv6 network share it.
        #[test]
        fn budget_keys_group_ipv6_networks(a in any_ip(), b in any_ip(), prefix in 0u8..=255) {
            let key = budget_key(a, prefix);
            proptest::prop_assert!(!key.is_empty());
            if let (IpAddr::V6(a6), IpAddr::V6(b6)) = (a.to_canonical(), b.to_canonical()) {
                let bits = u32::from(prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                let same_network = u128::from(a6) & mask == u128::from(b6) & mask;
                proptest::prop_assert_eq!(same_network, key == budget_key(b, prefix));
            }
        }
    }
}
