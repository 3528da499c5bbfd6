//! Which address a request comes from, believing `X-Forwarded-For` only from trusted proxies,
//! which budget an address spends, which networks a client's devices may ask from (BCP 247
//! §6.1.8), and whether two addresses share a network (§6.1.1).

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

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

/// How many networks a client's `device_networks` may list: enough for any site list, small
/// enough that checking a request against them stays trivial.
pub const MAX_DEVICE_NETWORKS: usize = 100;

/// A network as it is stored and compared: host bits cleared (`192.0.2.7/24` is
/// `192.0.2.0/24`), and an IPv4-mapped IPv6 network (`::ffff:192.0.2.0/120`) written as the
/// IPv4 network it is, since addresses are compared in their canonical form.
#[must_use]
pub fn normalize(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.addr().to_ipv4_mapped()
        && v6.prefix_len() >= 96
        && let Ok(mapped) = Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(mapped.trunc());
    }
    net.trunc()
}

/// Where a client's devices may start device authorizations (BCP 247 §6.1.8), read once from
/// the client's stored `device_networks`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeviceNetworks {
    /// None listed: anywhere.
    #[default]
    Anywhere,
    /// Only from these.
    Only(Vec<IpNet>),
}

impl DeviceNetworks {
    /// The stored list, one network a line. A line that does not read as a network (the row
    /// was edited by hand) matches no address, and the list stays a restriction: it fails
    /// closed, never open.
    #[must_use]
    pub fn from_stored(text: &str) -> Self {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if lines.is_empty() {
            return Self::Anywhere;
        }
        let nets = lines
            .iter()
            .filter_map(|line| match line.parse::<IpNet>() {
                Ok(net) => Some(normalize(net)),
                Err(_) => {
                    tracing::error!(%line, "a stored device network does not parse; it matches nothing");
                    None
                }
            })
            .collect();
        Self::Only(nets)
    }

    /// Whether a request from `address` may start a device authorization. An unknown address
    /// is allowed only when no network is listed; an IPv4-mapped IPv6 address counts as IPv4.
    #[must_use]
    pub fn allows(&self, address: Option<IpAddr>) -> bool {
        match (self, address) {
            (Self::Anywhere, _) => true,
            (Self::Only(nets), Some(ip)) => {
                let ip = ip.to_canonical();
                nets.iter().any(|net| net.contains(&ip))
            }
            (Self::Only(_), None) => false,
        }
    }
}

/// How the network of the device that asked relates to the approving browser's (BCP 247
/// §6.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Same,
    Different,
    /// One of the two addresses is not known.
    Unknown,
}

impl Network {
    /// Compares the two addresses: the same IPv4 /24 or IPv6 /56 is the same network (a home
    /// or office line), and an IPv4-mapped IPv6 address counts as its IPv4 address.
    #[must_use]
    pub fn between(device: Option<IpAddr>, browser: Option<IpAddr>) -> Self {
        match (device, browser) {
            (Some(d), Some(b)) if same_network(d, b) => Self::Same,
            (Some(_), Some(_)) => Self::Different,
            _ => Self::Unknown,
        }
    }

    /// As the consent page names it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Same => "same",
            Self::Different => "different",
            Self::Unknown => "unknown",
        }
    }
}

/// Whether two addresses are on one network: the same IPv4 /24 or IPv6 /56.
#[must_use]
pub fn same_network(a: IpAddr, b: IpAddr) -> bool {
    match (a.to_canonical(), b.to_canonical()) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            Ipv4Net::new_assert(a, 24).trunc() == Ipv4Net::new_assert(b, 24).trunc()
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            Ipv6Net::new_assert(a, 56).trunc() == Ipv6Net::new_assert(b, 56).trunc()
        }
        _ => false,
    }
}

/// The network of a stored address, never the address itself: `192.0.2.x` for its IPv4 /24,
/// `2001:db8:1:ab00::/56` for its IPv6 /56 (the networks [`same_network`] compares). An
/// IPv4-mapped IPv6 address is shown as its IPv4 network; an unreadable one as nothing.
#[must_use]
pub fn coarse_network(address: Option<&str>) -> Option<String> {
    let ip = address?.trim().parse::<IpAddr>().ok()?;
    Some(match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.x")
        }
        IpAddr::V6(v6) => Ipv6Net::new_assert(v6, 56).trunc().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_are_shown_without_the_address() {
        assert_eq!(
            coarse_network(Some("192.0.2.123")).as_deref(),
            Some("192.0.2.x")
        );
        assert_eq!(
            coarse_network(Some("::ffff:203.0.113.7")).as_deref(),
            Some("203.0.113.x")
        );
        assert_eq!(
            coarse_network(Some("2001:db8:1:abcd:1234:5678:9abc:def0")).as_deref(),
            Some("2001:db8:1:ab00::/56")
        );
        assert_eq!(coarse_network(Some("not an address")), None);
        assert_eq!(coarse_network(None), None);
    }

    #[test]
    fn ipv4_networks_are_slash_24() {
        assert!(same_network(ip("203.0.113.7"), ip("203.0.113.200")));
        assert!(!same_network(ip("203.0.113.7"), ip("203.0.114.7")));
        assert!(same_network(ip("::ffff:203.0.113.7"), ip("203.0.113.9")));
    }

    #[test]
    fn ipv6_networks_are_slash_56() {
        assert!(same_network(
            ip("2001:db8:1:ab00::1"),
            ip("2001:db8:1:abff:ffff::2")
        ));
        assert!(!same_network(
            ip("2001:db8:1:ab00::1"),
            ip("2001:db8:1:ac00::1")
        ));
        assert!(!same_network(ip("2001:db8::1"), ip("192.0.2.1")));
    }

    #[test]
    fn unknown_addresses_make_an_unknown_network() {
        let between = |d: Option<&str>, b: Option<&str>| Network::between(d.map(ip), b.map(ip));
        assert_eq!(
            between(Some("192.0.2.1"), Some("192.0.2.99")),
            Network::Same
        );
        assert_eq!(
            between(Some("192.0.2.1"), Some("198.51.100.1")),
            Network::Different
        );
        assert_eq!(between(None, Some("192.0.2.1")), Network::Unknown);
        assert_eq!(between(Some("192.0.2.1"), None), Network::Unknown);
    }

    #[test]
    fn networks_are_stored_without_host_bits_and_mapped_ones_as_ipv4() {
        let net = |s: &str| normalize(s.parse().unwrap()).to_string();
        assert_eq!(net("192.0.2.7/24"), "192.0.2.0/24");
        assert_eq!(net("2001:db8:1:2::9/48"), "2001:db8:1::/48");
        assert_eq!(net("::ffff:192.0.2.7/120"), "192.0.2.0/24");
        assert_eq!(net("::ffff:192.0.2.7/128"), "192.0.2.7/32");
        assert_eq!(net("::/0"), "::/0");
    }

    #[test]
    fn device_networks_allow_only_their_addresses() {
        assert!(DeviceNetworks::from_stored("").allows(None));
        assert!(DeviceNetworks::from_stored(" \n").allows(Some(ip("203.0.113.9"))));
        let only = DeviceNetworks::from_stored("192.0.2.0/24\n2001:db8::/32");
        assert!(only.allows(Some(ip("192.0.2.200"))));
        assert!(only.allows(Some(ip("::ffff:192.0.2.200"))));
        assert!(only.allows(Some(ip("2001:db8:ffff::1"))));
        assert!(!only.allows(Some(ip("192.0.3.1"))));
        assert!(!only.allows(Some(ip("2001:db9::1"))));
        assert!(
            !only.allows(None),
            "an unknown address is not on a listed network"
        );
        let broken = DeviceNetworks::from_stored("not a network");
        assert_eq!(broken, DeviceNetworks::Only(Vec::new()));
        assert!(!broken.allows(Some(ip("192.0.2.1"))), "fails closed");
    }

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
