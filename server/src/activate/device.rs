//! What the consent page says about the device that asked: what kind of device it looks like,
//! whether it asked from the browser's network, and how long ago.

use std::net::IpAddr;

use ipnet::{Ipv4Net, Ipv6Net};

/// Command-line tools and HTTP libraries, by the product token their User-Agent starts with
/// (lowercase), and how to name them.
const TOOLS: [(&str, &str); 13] = [
    ("curl/", "curl"),
    ("wget/", "Wget"),
    ("httpie/", "HTTPie"),
    ("xh/", "xh"),
    ("python-requests/", "Python"),
    ("python-urllib/", "Python"),
    ("python-httpx/", "Python"),
    ("aiohttp/", "Python"),
    ("go-http-client/", "Go"),
    ("node", "Node.js"),
    ("axios/", "Node.js"),
    ("okhttp/", "OkHttp"),
    ("libwww-perl/", "Perl"),
];

/// Markers of TVs and streaming sticks, checked before phones: many run Android.
const TV_MARKERS: [&str; 16] = [
    "smart-tv",
    "smarttv",
    "smart tv",
    "googletv",
    "google tv",
    "android tv",
    "appletv",
    "apple tv",
    "tvos",
    "web0s",
    "roku",
    "bravia",
    "crkey",
    "hbbtv",
    "netcast",
    "; aft",
];

const CONSOLE_MARKERS: [&str; 3] = ["playstation", "xbox", "nintendo"];

/// A plain description of the device behind a User-Agent ("a TV", "an Android phone", …).
/// A User-Agent is whatever the device says it is: this is a hint to the person, never a check.
#[must_use]
pub fn kind(user_agent: Option<&str>) -> String {
    let ua = user_agent.unwrap_or_default().trim().to_ascii_lowercase();
    if ua.is_empty() {
        return "an unknown device".to_owned();
    }
    if let Some((_, tool)) = TOOLS.iter().find(|(token, _)| ua.starts_with(token)) {
        return format!("a command-line tool ({tool})");
    }
    if ua.contains("powershell") {
        return "a command-line tool (PowerShell)".to_owned();
    }
    let has = |marker: &str| ua.contains(marker);
    let kind = if TV_MARKERS.iter().any(|m| has(m)) || (has("tizen") && has("tv")) {
        "a TV"
    } else if CONSOLE_MARKERS.iter().any(|m| has(m)) {
        "a game console"
    } else if has("iphone") {
        "an iPhone"
    } else if has("ipad") {
        "an iPad"
    } else if has("android") && has("mobile") {
        "an Android phone"
    } else if has("android") {
        "an Android tablet"
    } else if has("cros") {
        "a Chromebook"
    } else if has("windows") {
        "a Windows computer"
    } else if has("macintosh") || has("mac os x") {
        "a Mac"
    } else if has("linux") {
        "a Linux computer"
    } else {
        "an unknown device"
    };
    kind.to_owned()
}

/// How the device's network relates to the browser's (BCP 247 §6.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    Same,
    Different,
    /// One of the two addresses is not known.
    Unknown,
}

/// Compares the device's stored address with the browser's: the same IPv4 /24 or IPv6 /56
/// is the same network. An IPv4-mapped IPv6 address counts as its IPv4 address.
#[must_use]
pub fn network(device: Option<&str>, browser: Option<IpAddr>) -> Network {
    let device = device.and_then(|s| s.trim().parse::<IpAddr>().ok());
    match (device, browser) {
        (Some(d), Some(b)) if same_network(d, b) => Network::Same,
        (Some(_), Some(_)) => Network::Different,
        _ => Network::Unknown,
    }
}

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

/// "just now", "1 minute ago", "3 hours ago"…
#[must_use]
pub fn ago(seconds: i64) -> String {
    let (n, unit) = match seconds {
        ..10 => return "just now".to_owned(),
        10..60 => (seconds, "second"),
        60..3600 => (seconds / 60, "minute"),
        3600..86_400 => (seconds / 3600, "hour"),
        _ => (seconds / 86_400, "day"),
    };
    let plural = if n == 1 { "" } else { "s" };
    format!("{n} {unit}{plural} ago")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_described_plainly() {
        let cases = [
            ("curl/8.5.0", "a command-line tool (curl)"),
            ("Wget/1.21.4", "a command-line tool (Wget)"),
            ("python-requests/2.31.0", "a command-line tool (Python)"),
            ("Go-http-client/2.0", "a command-line tool (Go)"),
            (
                "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1",
                "a command-line tool (PowerShell)",
            ),
            (
                "Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 SamsungBrowser/4.0 TV Safari/537.36",
                "a TV",
            ),
            (
                "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 Chrome/79.0 Safari/537.36",
                "a TV",
            ),
            (
                "Mozilla/5.0 (Linux; Android 9; AFTMM Build/PS7633) AppleWebKit/537.36 Chrome/108.0 Mobile Safari/537.36",
                "a TV",
            ),
            ("Roku/DVP-12.0 (12.0.0.4182-88)", "a TV"),
            ("AppleTV14,1/16.1", "a TV"),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 Edge/44.18363.8131",
                "a game console",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
                "an iPhone",
            ),
            (
                "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
                "an iPad",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/120.0 Mobile Safari/537.36",
                "an Android phone",
            ),
            (
                "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
                "an Android tablet",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
                "a Windows computer",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Version/17.1 Safari/605.1.15",
                "a Mac",
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
                "a Chromebook",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
                "a Linux computer",
            ),
            ("MyThermostat/1.0", "an unknown device"),
            ("", "an unknown device"),
        ];
        for (ua, expected) in cases {
            assert_eq!(kind(Some(ua)), expected, "{ua}");
        }
        assert_eq!(kind(None), "an unknown device");
    }

    #[test]
    fn a_tool_name_inside_another_agent_is_not_a_tool() {
        assert_eq!(
            kind(Some("Mozilla/5.0 (X11; Linux x86_64) curl-like/1.0")),
            "a Linux computer"
        );
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
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
        assert_eq!(
            network(Some("192.0.2.1"), Some(ip("192.0.2.99"))),
            Network::Same
        );
        assert_eq!(
            network(Some("192.0.2.1"), Some(ip("198.51.100.1"))),
            Network::Different
        );
        assert_eq!(network(None, Some(ip("192.0.2.1"))), Network::Unknown);
        assert_eq!(
            network(Some("not an address"), Some(ip("192.0.2.1"))),
            Network::Unknown
        );
        assert_eq!(network(Some("192.0.2.1"), None), Network::Unknown);
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
    fn ages_read_naturally() {
        assert_eq!(ago(-3), "just now");
        assert_eq!(ago(5), "just now");
        assert_eq!(ago(42), "42 seconds ago");
        assert_eq!(ago(60), "1 minute ago");
        assert_eq!(ago(150), "2 minutes ago");
        assert_eq!(ago(3600), "1 hour ago");
        assert_eq!(ago(2 * 86_400 + 5), "2 days ago");
    }
}
