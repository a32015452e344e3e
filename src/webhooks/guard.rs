//! The SSRF guard for webhook destinations and the dispatcher's HTTP client (SPEC §8).
//!
//! A webhook URL is chosen by whoever subscribes, so without a guard sessiond could be
//! made to POST into its own network (metadata services, databases, admin consoles).
//!
//! # Rules
//! - **URL syntax** ([`Guard::validate_url`], synchronous): the scheme is `http` or `https`;
//!   no username or password; a host is required; at most [`MAX_URL_LEN`] characters; no
//!   fragment. A host that is an IP literal (including the WHATWG forms such as
//!   `http://2130706433/`, which parse to `127.0.0.1`, and `[::1]`) is checked at once.
//! - **Forbidden addresses** ([`is_forbidden`]): unspecified, loopback, private (RFC 1918),
//!   carrier-grade NAT, link-local, unique-local, site-local, multicast, broadcast, the
//!   IETF protocol assignments block `192.0.0.0/24`, benchmarking, documentation and
//!   reserved (`240.0.0.0/4`) ranges ([`FORBIDDEN_V4`], [`FORBIDDEN_V6`]), and any IPv6
//!   address that embeds a forbidden IPv4 address: IPv4-mapped `::ffff:a.b.c.d`,
//!   IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96` and 6to4 `2002::/16`.
//!   Everything else is public and allowed.
//! - **The allow-list** (`webhooks.allow_networks` /
//!   `SESSIOND_WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8,::1/128"`, parsed by [`parse_networks`])
//!   lets forbidden addresses through when they lie inside one of its networks; for an
//!   IPv4-mapped IPv6 address its IPv4 address is matched too. The default allows nothing.
//! - **After DNS** ([`Guard::resolve`], [`Guard::check_url`]): every address a host name
//!   resolves to must pass [`Guard::check_ip`]; a name with even one internal address is
//!   refused as a whole, so an attacker cannot mix a public and an internal record.
//! - **On every connect** ([`client`]): the dispatcher's client resolves host names only
//!   through [`GuardedResolver`], which applies the same check and hands reqwest only
//!   checked addresses. reqwest calls the resolver for every new connection, so a name
//!   that later rebinds to an internal address (DNS rebinding) is refused at connect
//!   time. Redirects are never followed and proxies from the environment are ignored, so
//!   the checked address is the one connected to.
//! - **IP-literal URLs skip the resolver**: reqwest connects to `http://10.0.0.1/` without
//!   asking any resolver, so the dispatcher must call [`Guard::validate_url`] before every
//!   send (subscription-time checks alone would miss a changed allow-list).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

/// The longest webhook URL accepted, in characters.
pub const MAX_URL_LEN: usize = 2048;

/// The longest connect timeout the dispatcher's client uses.
pub const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The user agent of the dispatcher's client.
pub const USER_AGENT: &str = concat!("sessiond-webhooks/", env!("CARGO_PKG_VERSION"));

/// IPv4 networks that webhooks may not reach unless allowed.
pub const FORBIDDEN_V4: [Ipv4Net; 15] = [
    // "This network" / unspecified.
    Ipv4Net::new_assert(Ipv4Addr::new(0, 0, 0, 0), 8),
    // Private (RFC 1918).
    Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 8),
    // Carrier-grade NAT shared address space (RFC 6598).
    Ipv4Net::new_assert(Ipv4Addr::new(100, 64, 0, 0), 10),
    // Loopback.
    Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8),
    // Link-local (cloud metadata services live here).
    Ipv4Net::new_assert(Ipv4Addr::new(169, 254, 0, 0), 16),
    // Private (RFC 1918).
    Ipv4Net::new_assert(Ipv4Addr::new(172, 16, 0, 0), 12),
    // IETF protocol assignments.
    Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 0, 0), 24),
    // Documentation TEST-NET-1.
    Ipv4Net::new_assert(Ipv4Addr::new(192, 0, 2, 0), 24),
    // Private (RFC 1918).
    Ipv4Net::new_assert(Ipv4Addr::new(192, 168, 0, 0), 16),
    // Benchmarking.
    Ipv4Net::new_assert(Ipv4Addr::new(198, 18, 0, 0), 15),
    // Documentation TEST-NET-2.
    Ipv4Net::new_assert(Ipv4Addr::new(198, 51, 100, 0), 24),
    // Documentation TEST-NET-3.
    Ipv4Net::new_assert(Ipv4Addr::new(203, 0, 113, 0), 24),
    // Multicast.
    Ipv4Net::new_assert(Ipv4Addr::new(224, 0, 0, 0), 4),
    // Reserved for future use.
    Ipv4Net::new_assert(Ipv4Addr::new(240, 0, 0, 0), 4),
    // Limited broadcast (also inside 240.0.0.0/4; listed for the reader).
    Ipv4Net::new_assert(Ipv4Addr::new(255, 255, 255, 255), 32),
];

/// IPv6 networks that webhooks may not reach unless allowed (IPv6 addresses that embed
/// an IPv4 address are judged by that address, see [`is_forbidden`]).
pub const FORBIDDEN_V6: [Ipv6Net; 8] = [
    // Unspecified.
    Ipv6Net::new_assert(Ipv6Addr::UNSPECIFIED, 128),
    // Loopback.
    Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128),
    // Unique-local.
    Ipv6Net::new_assert(Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
    // Link-local.
    Ipv6Net::new_assert(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
    // Site-local (deprecated, still routed internally by some networks).
    Ipv6Net::new_assert(Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10),
    // Multicast.
    Ipv6Net::new_assert(Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),
    // Documentation.
    Ipv6Net::new_assert(Ipv6Addr::new(0x2001, 0x0db8, 0, 0, 0, 0, 0, 0), 32),
    // NAT64 local-use prefix (RFC 8215): translates into the operator's own IPv4 space.
    Ipv6Net::new_assert(Ipv6Addr::new(0x0064, 0xff9b, 0x0001, 0, 0, 0, 0, 0), 48),
];

/// The reason a destination is refused, written into [`GuardError`] and [`UrlError`].
const INTERNAL: &str = "a loopback, private, link-local or otherwise internal address \
                        (allow it with webhooks.allow_networks)";

/// Why the guard refused an address or a host, or could not build the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// The address is internal and not inside an allowed network.
    #[error("{ip} is a loopback, private, link-local or otherwise internal address (allow it with webhooks.allow_networks)")]
    Forbidden {
        /// The refused address.
        ip: IpAddr,
    },
    /// The host name could not be resolved, or resolved to no address.
    #[error("{host} could not be resolved: {message}")]
    Unresolvable {
        /// The host name as given.
        host: String,
        /// What the resolver said.
        message: String,
    },
    /// An entry of an allow-list is neither a network (`10.0.0.0/8`) nor an address.
    #[error("{entry:?} is not a network such as 10.0.0.0/8 or ::1/128, nor an IP address")]
    InvalidNetwork {
        /// The offending entry, trimmed.
        entry: String,
    },
    /// reqwest could not build the HTTP client (e.g. the TLS backend failed to load).
    #[error("could not build the webhook HTTP client: {message}")]
    Client {
        /// reqwest's error message.
        message: String,
    },
}

/// Why a webhook URL is refused. Messages read well after a field name
/// (`url: must use http or https`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The string is not an absolute URL.
    #[error("is not a valid absolute URL ({message})")]
    Invalid {
        /// The parser's message.
        message: String,
    },
    /// The scheme is neither `http` nor `https`.
    #[error("must use http or https, not {scheme:?}")]
    Scheme {
        /// The scheme found.
        scheme: String,
    },
    /// The URL carries a username or a password.
    #[error("must not contain a username or password")]
    Credentials,
    /// The URL has no host.
    #[error("must have a host")]
    NoHost,
    /// The URL is longer than [`MAX_URL_LEN`] characters.
    #[error("must be at most 2048 characters long, not {len}")]
    TooLong {
        /// The length found.
        len: usize,
    },
    /// The URL has a `#fragment` (never sent, so always a mistake).
    #[error("must not contain a fragment (#...)")]
    Fragment,
    /// The host is, or resolves to, a forbidden address.
    #[error("must not point to {ip}, {INTERNAL}")]
    Forbidden {
        /// The refused address.
        ip: IpAddr,
    },
    /// The host could not be resolved.
    #[error("has a host, {host}, that could not be resolved: {message}")]
    Unresolvable {
        /// The host name.
        host: String,
        /// What the resolver said.
        message: String,
    },
}

impl From<GuardError> for UrlError {
    fn from(err: GuardError) -> Self {
        match err {
            GuardError::Forbidden { ip } => UrlError::Forbidden { ip },
            GuardError::Unresolvable { host, message } => UrlError::Unresolvable { host, message },
            other @ (GuardError::InvalidNetwork { .. } | GuardError::Client { .. }) => {
                UrlError::Invalid {
                    message: other.to_string(),
                }
            }
        }
    }
}

/// Parses a comma-separated allow-list such as `"127.0.0.0/8, ::1/128"`.
///
/// Whitespace around entries and empty entries are ignored (so `""` is the empty list);
/// a bare address such as `10.0.0.1` means that one address (`/32` or `/128`). Host bits
/// of a network are cleared (`10.1.2.3/8` is `10.0.0.0/8`).
pub fn parse_networks(s: &str) -> Result<Vec<IpNet>, GuardError> {
    s.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .map(|net| net.trunc())
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| GuardError::InvalidNetwork {
                    entry: entry.to_owned(),
                })
        })
        .collect()
}

/// Whether webhooks may not reach `ip` unless it is allowed: the networks of
/// [`FORBIDDEN_V4`] and [`FORBIDDEN_V6`], and IPv6 addresses embedding a forbidden IPv4
/// address (IPv4-mapped, IPv4-compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`).
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => {
            FORBIDDEN_V6.iter().any(|net| net.contains(&v6))
                || embedded_v4(v6).is_some_and(is_forbidden_v4)
        }
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    FORBIDDEN_V4.iter().any(|net| net.contains(&ip))
}

/// The IPv4 address an IPv6 address stands for, if it embeds one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = |hi: u16, lo: u16| {
        let [a, b] = hi.to_be_bytes();
        let [c, d] = lo.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match s {
        // IPv4-mapped ::ffff:a.b.c.d.
        [0, 0, 0, 0, 0, 0xffff, hi, lo] => Some(low(hi, lo)),
        // IPv4-compatible ::a.b.c.d (deprecated; :: and ::1 are judged as IPv6 too).
        [0, 0, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        // NAT64 well-known prefix 64:ff9b::/96.
        [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        // 6to4 2002:a.b.c.d::/48.
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

/// Strips the brackets of an IPv6 host (`[::1]` -> `::1`).
fn unbracket(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The SSRF guard: refuses internal destinations unless they lie inside an allowed network.
///
/// `Guard::default()` allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guard {
    allow: Vec<IpNet>,
}

impl Guard {
    /// A guard that lets the forbidden addresses inside `allow` through.
    pub fn new(allow: Vec<IpNet>) -> Self {
        Self { allow }
    }

    /// The allowed networks.
    pub fn allowed(&self) -> &[IpNet] {
        &self.allow
    }

    /// Ok when `ip` is public, or inside an allowed network (for an IPv4-mapped IPv6
    /// address, also when its IPv4 address is); else [`GuardError::Forbidden`].
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), GuardError> {
        if !is_forbidden(ip) || self.is_allowed(ip) {
            Ok(())
        } else {
            Err(GuardError::Forbidden { ip })
        }
    }

    fn is_allowed(&self, ip: IpAddr) -> bool {
        let mapped = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allow
            .iter()
            .any(|net| net.contains(&ip) || mapped.is_some_and(|v4| net.contains(&v4)))
    }

    /// Resolves `host` (a name, an IP literal or a bracketed IPv6 literal; literals are
    /// not looked up) and checks every address.
    ///
    /// If any address is refused the whole resolution fails with
    /// [`GuardError::Forbidden`] naming it; a failed lookup or one without addresses is
    /// [`GuardError::Unresolvable`].
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, GuardError> {
        let bare = unbracket(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            self.check_ip(ip)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|err| GuardError::Unresolvable {
                host: host.to_owned(),
                message: err.to_string(),
            })?
            .collect();
        if addrs.is_empty() {
            return Err(GuardError::Unresolvable {
                host: host.to_owned(),
                message: "no addresses".to_owned(),
            });
        }
        for addr in &addrs {
            self.check_ip(addr.ip())?;
        }
        Ok(addrs)
    }

    /// Checks a webhook URL's syntax (see the module rules) without any I/O; an IP-literal
    /// host is checked with [`Guard::check_ip`].
    ///
    /// The dispatcher calls this before every send, because reqwest never asks the
    /// resolver about IP-literal hosts.
    pub fn validate_url(&self, raw: &str) -> Result<Url, UrlError> {
        if raw.len() > MAX_URL_LEN {
            return Err(UrlError::TooLong { len: raw.len() });
        }
        let url = Url::parse(raw).map_err(|err| UrlError::Invalid {
            message: err.to_string(),
        })?;
        // Normalisation (percent-encoding) can make the URL longer than what was given.
        if url.as_str().len() > MAX_URL_LEN {
            return Err(UrlError::TooLong {
                len: url.as_str().len(),
            });
        }
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlError::Scheme {
                scheme: url.scheme().to_owned(),
            });
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Credentials);
        }
        let host = match url.host_str() {
            Some(host) if !host.is_empty() => host,
            _ => return Err(UrlError::NoHost),
        };
        if url.fragment().is_some() {
            return Err(UrlError::Fragment);
        }
        if let Ok(ip) = unbracket(host).parse::<IpAddr>() {
            self.check_ip(ip)?;
        }
        Ok(url)
    }

    /// [`Guard::validate_url`], then resolves the host and checks every address (the
    /// subscription-time check; refused URLs are answered 422).
    pub async fn check_url(&self, raw: &str) -> Result<Url, UrlError> {
        let url = self.validate_url(raw)?;
        let host = url.host_str().ok_or(UrlError::NoHost)?;
        let port = url
            .port_or_known_default()
            .unwrap_or(if url.scheme() == "https" { 443 } else { 80 });
        self.resolve(host, port).await?;
        Ok(url)
    }
}

/// A reqwest resolver that resolves through [`Guard::resolve`] and hands back only checked
/// addresses; a refusal becomes the connect error (its source chain holds the
/// [`GuardError`]).
///
/// reqwest asks it for every new connection to a host name, which is how destinations are
/// "checked again on every connect".
#[derive(Debug, Clone)]
pub struct GuardedResolver(Guard);

impl GuardedResolver {
    /// A resolver applying `guard`.
    pub fn new(guard: Guard) -> Self {
        Self(guard)
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port (or the scheme's default) in its place.
            match guard.resolve(&host, 0).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as Addrs),
                Err(err) => {
                    tracing::debug!(host = %host, error = %err, "webhook destination refused");
                    Err(Box::new(err) as Box<dyn std::error::Error + Send + Sync>)
                }
            }
        })
    }
}

/// The dispatcher's HTTP client: no redirects, no proxies, `timeout` per request, a
/// connect timeout of at most [`MAX_CONNECT_TIMEOUT`], at most `max_idle_per_host` idle
/// connections per host, every host name resolved through [`GuardedResolver`].
///
/// IP-literal URLs bypass the resolver: call [`Guard::validate_url`] before every send.
pub fn client(
    guard: &Guard,
    timeout: Duration,
    max_idle_per_host: usize,
) -> Result<reqwest::Client, GuardError> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
        .pool_max_idle_per_host(max_idle_per_host)
        .dns_resolver(Arc::new(GuardedResolver(guard.clone())))
        .no_proxy()
        .user_agent(USER_AGENT)
        .build()
        .map_err(|err| GuardError::Client {
            message: err.to_string(),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn assert_all_forbidden(addrs: &[&str]) {
        for a in addrs {
            assert!(is_forbidden(ip(a)), "{a} should be forbidden");
            assert_eq!(
                Guard::default().check_ip(ip(a)),
                Err(GuardError::Forbidden { ip: ip(a) }),
                "{a}"
            );
        }
    }

    fn assert_all_allowed(addrs: &[&str]) {
        for a in addrs {
            assert!(!is_forbidden(ip(a)), "{a} should be allowed");
            assert_eq!(Guard::default().check_ip(ip(a)), Ok(()), "{a}");
        }
    }

    fn loopback_guard() -> Guard {
        Guard::new(parse_networks("127.0.0.0/8,::1/128").unwrap())
    }

    #[test]
    fn unspecified_addresses_are_forbidden() {
        assert_all_forbidden(&["0.0.0.0", "0.1.2.3", "::"]);
    }

    #[test]
    fn loopback_addresses_are_forbidden() {
        assert_all_forbidden(&["127.0.0.1", "127.255.255.254", "::1"]);
    }

    #[test]
    fn private_addresses_are_forbidden_and_their_neighbours_are_not() {
        assert_all_forbidden(&[
            "10.0.0.1",
            "10.255.255.255",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
        ]);
        assert_all_allowed(&["172.15.255.255", "172.32.0.0", "192.169.0.1", "11.0.0.1"]);
    }

    #[test]
    fn carrier_grade_nat_addresses_are_forbidden() {
        assert_all_forbidden(&["100.64.0.1", "100.127.255.255"]);
        assert_all_allowed(&["100.63.255.255", "100.128.0.0"]);
    }

    #[test]
    fn link_local_addresses_are_forbidden() {
        assert_all_forbidden(&["169.254.169.254", "fe80::1", "febf::1"]);
    }

    #[test]
    fn unique_local_and_site_local_addresses_are_forbidden() {
        assert_all_forbidden(&["fc00::1", "fd12:3456::1", "fec0::1", "feff::1"]);
    }

    #[test]
    fn multicast_and_broadcast_addresses_are_forbidden() {
        assert_all_forbidden(&["224.0.0.1", "239.255.255.250", "255.255.255.255", "ff02::1"]);
    }

    #[test]
    fn protocol_assignment_benchmarking_and_reserved_addresses_are_forbidden() {
        assert_all_forbidden(&["192.0.0.8", "198.18.0.1", "198.19.255.255", "240.0.0.1"]);
        assert_all_allowed(&["198.17.255.255", "198.20.0.0"]);
    }

    #[test]
    fn documentation_addresses_are_forbidden() {
        assert_all_forbidden(&["192.0.2.1", "198.51.100.7", "203.0.113.9", "2001:db8::1"]);
    }

    #[test]
    fn ipv6_addresses_embedding_a_forbidden_ipv4_address_are_forbidden() {
        assert_all_forbidden(&[
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "64:ff9b::7f00:1",
            "2002:7f00:1::1",
            "64:ff9b:1::8.8.8.8",
        ]);
    }

    #[test]
    fn ipv6_addresses_embedding_a_public_ipv4_address_are_allowed() {
        assert_all_allowed(&["::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1"]);
    }

    #[test]
    fn public_addresses_are_allowed() {
        assert_all_allowed(&["8.8.8.8", "1.1.1.1", "2606:4700::1111", "2a00:1450:4001::1"]);
    }

    #[test]
    fn the_forbidden_message_names_the_address_and_the_setting() {
        // Given / When a loopback address is refused
        let err = Guard::default().check_ip(ip("127.0.0.1")).unwrap_err();
        // Then the message says why and how to allow it
        assert_eq!(
            err.to_string(),
            "127.0.0.1 is a loopback, private, link-local or otherwise internal address \
             (allow it with webhooks.allow_networks)"
        );
    }

    #[test]
    fn an_allow_list_lets_its_networks_through_and_nothing_else() {
        // Given an allow-list of the loopback networks
        let guard = loopback_guard();
        // When / Then loopback passes, other internal addresses do not
        assert_eq!(guard.check_ip(ip("127.0.0.1")), Ok(()));
        assert_eq!(guard.check_ip(ip("::1")), Ok(()));
        assert_eq!(
            guard.check_ip(ip("10.0.0.1")),
            Err(GuardError::Forbidden { ip: ip("10.0.0.1") })
        );
        assert_eq!(guard.check_ip(ip("8.8.8.8")), Ok(()));
    }

    #[test]
    fn an_allowed_ipv4_network_also_allows_its_ipv4_mapped_form() {
        // Given only 127.0.0.0/8 allowed
        let guard = Guard::new(parse_networks("127.0.0.0/8").unwrap());
        // When / Then the v4-mapped loopback passes, the v4-mapped private address does not
        assert_eq!(guard.check_ip(ip("::ffff:127.0.0.1")), Ok(()));
        assert!(guard.check_ip(ip("::ffff:10.0.0.1")).is_err());
    }

    #[test]
    fn the_default_guard_allows_nothing_internal() {
        assert!(Guard::default().allowed().is_empty());
        assert!(Guard::default().check_ip(ip("127.0.0.1")).is_err());
    }

    #[test]
    fn parse_networks_reads_networks_bare_addresses_and_whitespace() {
        // Given a list with spaces, a bare v4 and v6 address and a trailing comma
        let nets = parse_networks(" 127.0.0.0/8 , ::1/128,10.0.0.1, fd00::1 ,10.1.2.3/8,").unwrap();
        // Then each entry is a network, bare addresses are single-address networks
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "127.0.0.0/8",
                "::1/128",
                "10.0.0.1/32",
                "fd00::1/128",
                "10.0.0.0/8"
            ]
        );
    }

    #[test]
    fn parse_networks_of_an_empty_string_is_the_empty_list() {
        assert_eq!(parse_networks(""), Ok(vec![]));
        assert_eq!(parse_networks("  "), Ok(vec![]));
    }

    #[test]
    fn parse_networks_rejects_malformed_entries_by_name() {
        for (input, entry) in [
            ("127.0.0.0/33", "127.0.0.0/33"),
            ("10.0.0.0/8, localhost", "localhost"),
            ("10.0.0", "10.0.0"),
            ("::1/129", "::1/129"),
        ] {
            assert_eq!(
                parse_networks(input),
                Err(GuardError::InvalidNetwork {
                    entry: entry.to_owned()
                }),
                "{input}"
            );
        }
    }

    #[test]
    fn validate_url_rejects_other_schemes() {
        let err = Guard::default()
            .validate_url("ftp://example.com/x")
            .unwrap_err();
        assert_eq!(
            err,
            UrlError::Scheme {
                scheme: "ftp".to_owned()
            }
        );
        assert_eq!(
            format!("url: {err}"),
            "url: must use http or https, not \"ftp\""
        );
    }

    #[test]
    fn validate_url_rejects_credentials() {
        let guard = Guard::default();
        assert_eq!(
            guard.validate_url("http://user:pw@example.com/"),
            Err(UrlError::Credentials)
        );
        assert_eq!(
            guard.validate_url("http://user@example.com/"),
            Err(UrlError::Credentials)
        );
    }

    #[test]
    fn validate_url_rejects_a_fragment() {
        assert_eq!(
            Guard::default().validate_url("https://example.com/hook#part"),
            Err(UrlError::Fragment)
        );
    }

    #[test]
    fn validate_url_rejects_urls_longer_than_2048_characters() {
        // Given a URL of 2049 characters
        let base = "https://example.com/";
        let raw = format!("{base}{}", "a".repeat(MAX_URL_LEN + 1 - base.len()));
        // When / Then
        assert_eq!(
            Guard::default().validate_url(&raw),
            Err(UrlError::TooLong { len: 2049 })
        );
        // And one of exactly 2048 passes
        assert!(Guard::default().validate_url(&raw[..MAX_URL_LEN]).is_ok());
    }

    #[test]
    fn validate_url_rejects_strings_that_are_not_absolute_urls() {
        for raw in ["", "example.com/hook", "http://", "http://exa mple.com/"] {
            assert!(
                matches!(
                    Guard::default().validate_url(raw),
                    Err(UrlError::Invalid { .. })
                ),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn validate_url_accepts_a_public_https_url() {
        let url = Guard::default()
            .validate_url("https://hooks.example.com:8443/path?q=1")
            .unwrap();
        assert_eq!(url.as_str(), "https://hooks.example.com:8443/path?q=1");
    }

    #[test]
    fn validate_url_refuses_a_loopback_literal_unless_it_is_allowed() {
        // Given no allow-list
        assert_eq!(
            Guard::default().validate_url("http://127.0.0.1/"),
            Err(UrlError::Forbidden {
                ip: ip("127.0.0.1")
            })
        );
        // When 127.0.0.0/8 is allowed, then it passes
        let guard = Guard::new(parse_networks("127.0.0.0/8").unwrap());
        assert!(guard.validate_url("http://127.0.0.1/").is_ok());
    }

    #[test]
    fn validate_url_checks_bracketed_ipv6_literals() {
        assert_eq!(
            Guard::default().validate_url("http://[::1]:8080/x"),
            Err(UrlError::Forbidden { ip: ip("::1") })
        );
        assert_eq!(
            Guard::default().validate_url("http://[::ffff:127.0.0.1]/"),
            Err(UrlError::Forbidden {
                ip: ip("::ffff:7f00:1")
            })
        );
        assert!(loopback_guard().validate_url("http://[::1]:8080/x").is_ok());
    }

    #[test]
    fn validate_url_sees_through_numeric_ipv4_spellings() {
        // Given the decimal and hex spellings of 127.0.0.1, which the URL parser normalises
        for raw in ["http://2130706433/", "http://0x7f.1/", "http://127.1/"] {
            assert_eq!(
                Guard::default().validate_url(raw),
                Err(UrlError::Forbidden {
                    ip: ip("127.0.0.1")
                }),
                "{raw}"
            );
        }
    }

    #[test]
    fn url_error_messages_read_well_after_a_field_name() {
        let err = UrlError::Forbidden { ip: ip("10.0.0.1") };
        assert_eq!(
            format!("url: {err}"),
            "url: must not point to 10.0.0.1, a loopback, private, link-local or otherwise \
             internal address (allow it with webhooks.allow_networks)"
        );
        assert_eq!(
            format!("url: {}", UrlError::NoHost),
            "url: must have a host"
        );
    }

    #[tokio::test]
    async fn resolve_does_not_look_up_ip_literals() {
        let guard = Guard::default();
        assert_eq!(
            guard.resolve("8.8.8.8", 443).await,
            Ok(vec!["8.8.8.8:443".parse().unwrap()])
        );
        assert_eq!(
            guard.resolve("[2606:4700::1111]", 80).await,
            Ok(vec!["[2606:4700::1111]:80".parse().unwrap()])
        );
        assert_eq!(
            guard.resolve("[::1]", 80).await,
            Err(GuardError::Forbidden { ip: ip("::1") })
        );
    }

    #[tokio::test]
    async fn resolve_refuses_a_name_with_an_internal_address() {
        // Given localhost, which resolves to loopback only
        // When it is resolved without an allow-list
        let result = Guard::default().resolve("localhost", 80).await;
        // Then the resolution is refused naming a loopback address
        match result {
            Err(GuardError::Forbidden { ip }) => assert!(ip.is_loopback(), "{ip}"),
            other => panic!("expected Forbidden, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn resolve_reports_a_name_that_does_not_exist_as_unresolvable() {
        // Given a name under the reserved .invalid TLD
        let result = Guard::default().resolve("no-such-host.invalid", 80).await;
        // Then it is unresolvable
        assert!(
            matches!(result, Err(GuardError::Unresolvable { ref host, .. }) if host == "no-such-host.invalid"),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn check_url_refuses_localhost_unless_loopback_is_allowed() {
        // Given no allow-list, then localhost is refused
        let refused = Guard::default().check_url("http://localhost:1/").await;
        assert!(
            matches!(refused, Err(UrlError::Forbidden { ip }) if ip.is_loopback()),
            "{refused:?}"
        );
        // Given the loopback networks allowed, then it passes
        let url = loopback_guard()
            .check_url("http://localhost:1/")
            .await
            .unwrap();
        assert_eq!(url.port(), Some(1));
    }

    #[tokio::test]
    async fn check_url_runs_the_syntax_rules_first() {
        assert_eq!(
            Guard::default().check_url("ftp://localhost/").await,
            Err(UrlError::Scheme {
                scheme: "ftp".to_owned()
            })
        );
    }

    /// A local HTTP server answering every request with `200 ok`.
    async fn serve_ok() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                        )
                        .await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        port
    }

    fn guard_error_in_chain(err: &(dyn std::error::Error + 'static)) -> Option<GuardError> {
        let mut cur = Some(err);
        while let Some(e) = cur {
            if let Some(found) = e.downcast_ref::<GuardError>() {
                return Some(found.clone());
            }
            cur = e.source();
        }
        None
    }

    #[tokio::test]
    async fn the_client_refuses_to_connect_to_localhost_without_an_allow_list() {
        // Given a real local server and a client with the default guard
        let port = serve_ok().await;
        let http = client(&Guard::default(), Duration::from_secs(10), 1).unwrap();
        // When a request to localhost is sent
        let err = http
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        // Then the connect fails with the guard's refusal in the cause chain
        assert!(err.is_connect(), "{err:?}");
        match guard_error_in_chain(&err) {
            Some(GuardError::Forbidden { ip }) => assert!(ip.is_loopback(), "{ip}"),
            other => panic!("expected a Forbidden cause, got {other:?} in {err:?}"),
        }
    }

    #[tokio::test]
    async fn the_client_reaches_localhost_when_loopback_is_allowed() {
        // Given a real local server and a client allowing the loopback networks
        let port = serve_ok().await;
        let http = client(&loopback_guard(), Duration::from_secs(10), 1).unwrap();
        // When a request to localhost is sent
        let response = http
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap();
        // Then the server's answer arrives
        assert_eq!(response.status(), reqwest::StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "ok");
    }

    #[tokio::test]
    async fn the_client_does_not_follow_redirects() {
        // Given a server answering 302 to an internal address, reachable because allowed
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            if let Ok((mut stream, _)) = listener.accept().await {
                let mut chunk = [0u8; 1024];
                let _ = stream.read(&mut chunk).await;
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/\r\n\
                          content-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
            }
        });
        let http = client(&loopback_guard(), Duration::from_secs(10), 1).unwrap();
        // When a request is sent
        let response = http
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap();
        // Then the redirect is returned, not followed
        assert_eq!(response.status(), reqwest::StatusCode::FOUND);
    }
}
