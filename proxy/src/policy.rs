//! Target policy: which service addresses the browser may reach through the proxy.
//!
//! Default deny. A target is either a configured name, or a host the browser names directly
//! that must fall in a CIDR + port allow-list. Names are resolved once, every address is
//! checked, and the connect goes to the checked addresses (no DNS rebinding between check and
//! use). Loopback, link-local, cloud metadata, multicast and unspecified addresses are denied
//! unless explicitly listed: as the IP literal of a named target, or by an allow rule whose
//! network lies entirely inside that special range (`0.0.0.0/0` never opens `127.0.0.1`).
//! IPv4-mapped / -compatible / NAT64 IPv6 forms are checked as the IPv4 address they carry,
//! and the legacy `inet_aton` spellings (`2130706433`, `0x7f.1`, `0177.0.0.1`) are read as
//! the address they mean, never passed to the resolver as a "name".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::config::{ConfigError, PolicyConfig};

/// Why a target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The host string is neither a valid DNS name nor an IP literal.
    #[error("malformed target host")]
    MalformedHost,
    /// The host looks numeric but is not a valid IP address in any spelling.
    #[error("malformed ip literal")]
    MalformedIp,
    /// A DNS name that is not a configured target, and names are not allowed.
    #[error("target is not a configured name and name resolution is disabled")]
    NameNotAllowed,
    /// The address (or a resolved address) is not in the allow-list.
    #[error("address {0} is not allowed")]
    AddressDenied(IpAddr),
    /// The address is special (loopback, link-local, metadata, ...) and not explicitly listed.
    #[error("{category} address {addr} is not allowed")]
    SpecialDenied {
        /// loopback, link_local, metadata, unspecified, multicast, reserved, broadcast.
        category: &'static str,
        /// The address.
        addr: IpAddr,
    },
    /// The port is not allowed for this address or target.
    #[error("port {port} is not allowed for {addr}")]
    PortDenied {
        /// The address.
        addr: IpAddr,
        /// The port.
        port: u16,
    },
    /// A named target was asked for with another port.
    #[error("port {0} is not the configured port of this target")]
    TargetPortMismatch(u16),
    /// The name did not resolve.
    #[error("name did not resolve: {0}")]
    DnsFailed(String),
    /// Name resolution returned no address.
    #[error("name resolved to no address")]
    NoAddress,
}

impl PolicyError {
    /// Stable snake_case name.
    pub fn kind(&self) -> &'static str {
        match self {
            PolicyError::MalformedHost => "malformed_host",
            PolicyError::MalformedIp => "malformed_ip",
            PolicyError::NameNotAllowed => "name_not_allowed",
            PolicyError::AddressDenied(_) => "address_denied",
            PolicyError::SpecialDenied { .. } => "special_address_denied",
            PolicyError::PortDenied { .. } => "port_denied",
            PolicyError::TargetPortMismatch(_) => "target_port_mismatch",
            PolicyError::DnsFailed(_) => "dns_failed",
            PolicyError::NoAddress => "no_address",
        }
    }

    /// Whether this is a resolution failure (reported as `dns_failed`) rather than a denial.
    pub fn is_dns(&self) -> bool {
        matches!(self, PolicyError::DnsFailed(_) | PolicyError::NoAddress)
    }
}

/// How a browser-supplied host reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IP address (any accepted spelling, already canonical: mapped v6 -> v4).
    Ip(IpAddr),
    /// A syntactically valid DNS name, lower-cased, without a trailing dot.
    Name(String),
}

/// Parse a host the way the proxy interprets it (never leaving a numeric form to the resolver).
pub fn parse_host(host: &str) -> Result<Host, PolicyError> {
    let h = host.trim();
    if h.is_empty() || h.len() > 253 {
        return Err(PolicyError::MalformedHost);
    }
    if let Some(inner) = h.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(PolicyError::MalformedHost)?;
        return Ipv6Addr::from_str(inner)
            .map(|a| Host::Ip(canonical(IpAddr::V6(a))))
            .map_err(|_| PolicyError::MalformedIp);
    }
    if h.contains(':') {
        return Ipv6Addr::from_str(h)
            .map(|a| Host::Ip(canonical(IpAddr::V6(a))))
            .map_err(|_| PolicyError::MalformedIp);
    }
    let h = h.strip_suffix('.').unwrap_or(h);
    let last = h.rsplit('.').next().unwrap_or(h);
    if looks_numeric(last) {
        return parse_inet_aton(h)
            .map(|a| Host::Ip(IpAddr::V4(a)))
            .ok_or(PolicyError::MalformedIp);
    }
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if h.split('.').all(valid_label) {
        Ok(Host::Name(h.to_ascii_lowercase()))
    } else {
        Err(PolicyError::MalformedHost)
    }
}

/// WHATWG rule: a last label of digits or `0x` hex makes the whole host an IPv4 attempt.
fn looks_numeric(label: &str) -> bool {
    if label.is_empty() {
        return false;
    }
    if let Some(hex) = label
        .strip_prefix("0x")
        .or_else(|| label.strip_prefix("0X"))
    {
        return hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    label.bytes().all(|b| b.is_ascii_digit())
}

fn parse_part(part: &str) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) =
        if let Some(h) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (h, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        // "0x" alone is 0 in inet_aton.
        return if radix == 16 { Some(0) } else { None };
    }
    if digits.len() > 12 {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// `inet_aton` semantics: 1 to 4 parts, decimal / octal / hex, the last part fills the rest.
pub fn parse_inet_aton(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for p in &parts {
        values.push(parse_part(p)?);
    }
    let (last, head) = values.split_last()?;
    let mut addr: u64 = 0;
    for (i, v) in head.iter().enumerate() {
        if *v > 255 {
            return None;
        }
        addr |= v << (24 - 8 * i);
    }
    let rest_bits = 32 - 8 * head.len() as u32;
    if *last >= (1u64 << rest_bits) {
        return None;
    }
    addr |= last;
    u32::try_from(addr).ok().map(Ipv4Addr::from)
}

/// A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), or a bare address (`/32` or
/// `/128`). Host bits are kept: callers decide whether to truncate or refuse them.
pub fn parse_net(s: &str) -> Option<IpNet> {
    IpNet::from_str(s)
        .ok()
        .or_else(|| match IpAddr::from_str(s) {
            Ok(IpAddr::V4(v4)) => Some(IpNet::V4(Ipv4Net::from(v4))),
            Ok(IpAddr::V6(v6)) => Some(IpNet::V6(Ipv6Net::from(v6))),
            Err(_) => None,
        })
}

/// The address a v6 form stands for when it embeds IPv4 (mapped, compatible, NAT64).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            // Deprecated IPv4-compatible ::a.b.c.d (but not :: and ::1).
            if s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1) {
                return IpAddr::V4(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                ));
            }
            ip
        }
    }
}

/// For NAT64 (`64:ff9b::/96`) the IPv4 address it reaches.
fn nat64_embedded(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| {
                Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8)
            })
        }
        IpAddr::V4(_) => None,
    }
}

fn net(s: &str) -> IpNet {
    // Only called with the constant list below.
    IpNet::from_str(s).unwrap_or(IpNet::V4(Ipv4Net::default()))
}

/// Special ranges, most specific first: (network, category).
fn special_ranges() -> Vec<(IpNet, &'static str)> {
    [
        ("169.254.169.254/32", "metadata"),
        ("169.254.170.2/32", "metadata"),
        ("100.100.100.200/32", "metadata"),
        ("168.63.129.16/32", "metadata"),
        ("fd00:ec2::254/128", "metadata"),
        ("255.255.255.255/32", "broadcast"),
        ("0.0.0.0/8", "unspecified"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link_local"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("fe80::/10", "link_local"),
        ("ff00::/8", "multicast"),
        // IPv6 forms that carry or reach an IPv4 address through a translator or tunnel
        // (SIIT ::ffff:0:a.b.c.d, local-use NAT64, 6to4, Teredo): where they lead is not
        // the address the allow-list sees, so they need an explicit listing.
        ("::ffff:0:0:0/96", "ipv4_embedded"),
        ("64:ff9b:1::/48", "ipv4_embedded"),
        ("2002::/16", "ipv4_embedded"),
        ("2001::/32", "ipv4_embedded"),
        // Unique local addresses: the IPv6 private network (fd00:ec2::254 above stays metadata).
        ("fc00::/7", "unique_local"),
    ]
    .iter()
    .map(|(n, c)| (net(n), *c))
    .collect()
}

#[derive(Debug, Clone)]
struct AllowRule {
    net: IpNet,
    ports: Vec<u16>,
}

#[derive(Debug, Clone)]
struct NamedTarget {
    name: String,
    host: Host,
    port: u16,
}

/// What to do to reach a checked target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Connect to these already checked addresses, in order.
    Connect(Vec<SocketAddr>),
    /// Resolve this name once, then check with [`TargetPolicy::check_resolved`].
    Resolve {
        /// The DNS name.
        name: String,
        /// The port.
        port: u16,
        /// Whether it is a configured target (non-special addresses need no allow rule).
        named: bool,
    },
}

/// The compiled target policy.
#[derive(Debug, Clone)]
pub struct TargetPolicy {
    targets: Vec<NamedTarget>,
    allow: Vec<AllowRule>,
    resolve_names: bool,
    special: Vec<(IpNet, &'static str)>,
}

impl TargetPolicy {
    /// Compile `[policy]`, naming the bad key on error.
    pub fn from_config(c: &PolicyConfig) -> Result<TargetPolicy, ConfigError> {
        let mut targets = Vec::with_capacity(c.target.len());
        for (i, t) in c.target.iter().enumerate() {
            if t.name.trim().is_empty() {
                return Err(ConfigError::invalid(
                    format!("policy.target[{i}].name"),
                    "empty",
                ));
            }
            let host = parse_host(&t.host).map_err(|e| {
                ConfigError::invalid(format!("policy.target[{i}].host"), e.to_string())
            })?;
            if t.port == 0 {
                return Err(ConfigError::invalid(
                    format!("policy.target[{i}].port"),
                    "must be > 0",
                ));
            }
            targets.push(NamedTarget {
                name: t.name.trim().to_ascii_lowercase(),
                host,
                port: t.port,
            });
        }
        let mut allow = Vec::with_capacity(c.allow.len());
        for (i, a) in c.allow.iter().enumerate() {
            let key = format!("policy.allow[{i}].cidr");
            let net = parse_net(&a.cidr)
                .ok_or_else(|| ConfigError::invalid(key, "not a CIDR network"))?;
            if a.ports.is_empty() || a.ports.contains(&0) {
                return Err(ConfigError::invalid(
                    format!("policy.allow[{i}].ports"),
                    "must list ports > 0",
                ));
            }
            allow.push(AllowRule {
                net: net.trunc(),
                ports: a.ports.clone(),
            });
        }
        Ok(TargetPolicy {
            targets,
            allow,
            resolve_names: c.resolve_names,
            special: special_ranges(),
        })
    }

    /// The special category of an address, if any.
    pub fn special_category(&self, ip: IpAddr) -> Option<(IpNet, &'static str)> {
        let ip = canonical(ip);
        let mut candidates = vec![ip];
        if let Some(v4) = nat64_embedded(ip) {
            candidates.push(IpAddr::V4(v4));
        }
        for c in candidates {
            if let Some(hit) = self.special.iter().find(|(n, _)| n.contains(&c)) {
                return Some(*hit);
            }
        }
        None
    }

    /// Check one address + port against the allow rules (for directly named hosts).
    pub fn check_addr(
        &self,
        ip: IpAddr,
        port: u16,
        named: bool,
    ) -> Result<SocketAddr, PolicyError> {
        let ip = canonical(ip);
        let special = self.special_category(ip);
        let matching: Vec<&AllowRule> = self
            .allow
            .iter()
            .filter(|r| r.net.contains(&ip))
            .filter(|r| match special {
                // Only a rule inside the special range lists a special address explicitly.
                Some((range, _)) => range.contains(&r.net),
                None => true,
            })
            .collect();
        if let Some((_, category)) = special {
            if matching.is_empty() {
                return Err(PolicyError::SpecialDenied { category, addr: ip });
            }
        } else if named {
            return Ok(SocketAddr::new(ip, port));
        }
        if matching.is_empty() {
            return Err(PolicyError::AddressDenied(ip));
        }
        if matching.iter().any(|r| r.ports.contains(&port)) {
            Ok(SocketAddr::new(ip, port))
        } else {
            Err(PolicyError::PortDenied { addr: ip, port })
        }
    }

    /// Decide how to reach `host:port` (port 0 = 64000), before any resolution.
    pub fn plan(&self, host: &str, port: u16) -> Result<Plan, PolicyError> {
        let port = if port == 0 {
            crate::config::prl_protocol_default_port()
        } else {
            port
        };
        let lowered = host.trim().to_ascii_lowercase();
        if let Some(t) = self.targets.iter().find(|t| t.name == lowered) {
            if port != t.port && host_port_given(port) {
                return Err(PolicyError::TargetPortMismatch(port));
            }
            return Ok(match &t.host {
                // An IP literal in a named target is explicitly listed.
                Host::Ip(ip) => Plan::Connect(vec![SocketAddr::new(*ip, t.port)]),
                Host::Name(n) => Plan::Resolve {
                    name: n.clone(),
                    port: t.port,
                    named: true,
                },
            });
        }
        match parse_host(host)? {
            Host::Ip(ip) => Ok(Plan::Connect(vec![self.check_addr(ip, port, false)?])),
            Host::Name(name) => {
                if !self.resolve_names {
                    return Err(PolicyError::NameNotAllowed);
                }
                Ok(Plan::Resolve {
                    name,
                    port,
                    named: false,
                })
            }
        }
    }

    /// Check every resolved address; all must pass (a mixed answer is refused).
    pub fn check_resolved(
        &self,
        addrs: &[SocketAddr],
        port: u16,
        named: bool,
    ) -> Result<Vec<SocketAddr>, PolicyError> {
        if addrs.is_empty() {
            return Err(PolicyError::NoAddress);
        }
        let mut out: Vec<SocketAddr> = Vec::with_capacity(addrs.len().min(16));
        for a in addrs.iter().take(16) {
            let checked = self.check_addr(a.ip(), port, named)?;
            if !out.contains(&checked) {
                out.push(checked);
            }
        }
        Ok(out)
    }

    /// Plan, resolve (once) and check: the addresses to connect to.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, PolicyError> {
        match self.plan(host, port)? {
            Plan::Connect(addrs) => Ok(addrs),
            Plan::Resolve { name, port, named } => {
                let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), port))
                    .await
                    .map_err(|e| PolicyError::DnsFailed(e.kind().to_string()))?
                    .collect();
                self.check_resolved(&addrs, port, named)
            }
        }
    }
}

/// A named target asked for with port 0 / its default means "the target's port".
fn host_port_given(port: u16) -> bool {
    port != crate::config::prl_protocol_default_port()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AllowConfig, TargetConfig};

    fn policy() -> TargetPolicy {
        TargetPolicy::from_config(&PolicyConfig {
            target: vec![
                TargetConfig {
                    name: "Lab".into(),
                    host: "127.0.0.1".into(),
                    port: 64001,
                },
                TargetConfig {
                    name: "byname".into(),
                    host: "localhost".into(),
                    port: 64000,
                },
            ],
            allow: vec![
                AllowConfig {
                    cidr: "10.0.0.0/8".into(),
                    ports: vec![64000],
                },
                AllowConfig {
                    cidr: "0.0.0.0/0".into(),
                    ports: vec![7777],
                },
                AllowConfig {
                    cidr: "::/0".into(),
                    ports: vec![7777],
                },
                AllowConfig {
                    cidr: "127.0.0.2/32".into(),
                    ports: vec![64000],
                },
            ],
            ..PolicyConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn inet_aton_spellings() {
        let lo = Ipv4Addr::new(127, 0, 0, 1);
        for s in [
            "2130706433",
            "0x7f000001",
            "0177.0.0.1",
            "127.1",
            "127.0.1",
            "0x7f.1",
            "0x7F.0.0.01",
        ] {
            assert_eq!(parse_inet_aton(s), Some(lo), "{s}");
            assert_eq!(parse_host(s), Ok(Host::Ip(IpAddr::V4(lo))), "{s}");
        }
        for s in ["256.0.0.1", "1.2.3.4.5", "08.0.0.1", "4294967296", "1..2"] {
            assert_eq!(parse_host(s), Err(PolicyError::MalformedIp), "{s}");
        }
        assert_eq!(
            parse_host("0"),
            Ok(Host::Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
        );
    }

    #[test]
    fn names_and_malformed_hosts() {
        assert_eq!(
            parse_host("Srv-1.Example.com."),
            Ok(Host::Name("srv-1.example.com".into()))
        );
        for s in ["", "a b", "fe80::1%eth0", "x..y", "-a.b", "a/b", "[::1"] {
            assert!(parse_host(s).is_err(), "{s}");
        }
        assert_eq!(parse_host("1e100.net"), Ok(Host::Name("1e100.net".into())));
    }

    #[test]
    fn mapped_and_compatible_v6_are_checked_as_v4() {
        let p = policy();
        for s in [
            "::ffff:127.0.0.1",
            "[::ffff:7f00:1]",
            "::127.0.0.1",
            "64:ff9b::7f00:1",
            "::ffff:169.254.169.254",
        ] {
            let err = p.plan(s, 7777).unwrap_err();
            assert_eq!(err.kind(), "special_address_denied", "{s}: {err}");
        }
        assert_eq!(
            p.plan("::ffff:10.1.2.3", 0).unwrap(),
            Plan::Connect(vec!["10.1.2.3:64000".parse().unwrap()])
        );
    }

    #[test]
    fn v6_forms_reaching_v4_and_unique_local_are_special() {
        let p = policy();
        for (s, category) in [
            ("::ffff:0:7f00:1", "ipv4_embedded"),
            ("::ffff:0:a01:203", "ipv4_embedded"),
            ("64:ff9b:1::a01:203", "ipv4_embedded"),
            ("2002:7f00:1::1", "ipv4_embedded"),
            ("2001:0:4136:e378::1", "ipv4_embedded"),
            ("fd12:3456::1", "unique_local"),
            ("fc00::1", "unique_local"),
        ] {
            // ::/0 is allowed at 7777, but does not open these.
            let err = p.plan(s, 7777).unwrap_err();
            assert_eq!(
                err,
                PolicyError::SpecialDenied {
                    category,
                    addr: s.parse().unwrap()
                },
                "{s}"
            );
        }
        // A rule inside the range lists them explicitly.
        let listed = TargetPolicy::from_config(&PolicyConfig {
            allow: vec![AllowConfig {
                cidr: "fd12:3456::/48".into(),
                ports: vec![64000],
            }],
            ..PolicyConfig::default()
        })
        .unwrap();
        assert!(listed.plan("fd12:3456::1", 0).is_ok());
        // An ordinary global address is still governed by the allow rules.
        assert!(p.plan("2001:db8::1", 7777).is_ok());
    }

    #[test]
    fn special_addresses_need_an_explicit_listing() {
        let p = policy();
        for (host, cat) in [
            ("127.0.0.1", "loopback"),
            ("2130706433", "loopback"),
            ("0x7f.1", "loopback"),
            ("169.254.169.254", "metadata"),
            ("169.254.1.1", "link_local"),
            ("0.0.0.0", "unspecified"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fe80::1", "link_local"),
            ("224.0.0.1", "multicast"),
            ("fd00:ec2::254", "metadata"),
        ] {
            match p.plan(host, 7777) {
                Err(PolicyError::SpecialDenied { category, .. }) => {
                    assert_eq!(category, cat, "{host}")
                }
                other => panic!("{host}: {other:?}"),
            }
        }
        // Listed explicitly by a rule inside the loopback range.
        assert_eq!(
            p.plan("127.0.0.2", 0).unwrap(),
            Plan::Connect(vec!["127.0.0.2:64000".parse().unwrap()])
        );
        assert_eq!(p.plan("127.0.0.2", 7777).unwrap_err().kind(), "port_denied");
        // Named target with an IP literal.
        assert_eq!(
            p.plan("lab", 0).unwrap(),
            Plan::Connect(vec!["127.0.0.1:64001".parse().unwrap()])
        );
        assert_eq!(
            p.plan("LAB", 64001).unwrap(),
            Plan::Connect(vec!["127.0.0.1:64001".parse().unwrap()])
        );
        assert_eq!(p.plan("lab", 5).unwrap_err().kind(), "target_port_mismatch");
    }

    #[test]
    fn allow_rules_check_address_and_port() {
        let p = policy();
        assert!(matches!(p.plan("10.9.9.9", 0), Ok(Plan::Connect(_))));
        assert_eq!(p.plan("10.9.9.9", 22).unwrap_err().kind(), "port_denied");
        // 0.0.0.0/0 covers it, but only for port 7777.
        assert_eq!(p.plan("192.168.1.1", 0).unwrap_err().kind(), "port_denied");
        assert!(matches!(p.plan("8.8.8.8", 7777), Ok(Plan::Connect(_))));
    }

    #[test]
    fn resolved_names_are_checked_address_by_address() {
        let p = policy();
        let plan = p.plan("service.example", 0).unwrap();
        assert_eq!(
            plan,
            Plan::Resolve {
                name: "service.example".into(),
                port: 64000,
                named: false
            }
        );
        let good: SocketAddr = "10.0.0.5:64000".parse().unwrap();
        let bad: SocketAddr = "127.0.0.1:64000".parse().unwrap();
        assert_eq!(p.check_resolved(&[good], 64000, false).unwrap(), vec![good]);
        assert_eq!(
            p.check_resolved(&[good, bad], 64000, false)
                .unwrap_err()
                .kind(),
            "special_address_denied"
        );
        assert_eq!(
            p.check_resolved(&[], 64000, false).unwrap_err().kind(),
            "no_address"
        );
        // A named target that is a DNS name: its non-special addresses are allowed, special not.
        assert_eq!(
            p.plan("byname", 0).unwrap(),
            Plan::Resolve {
                name: "localhost".into(),
                port: 64000,
                named: true
            }
        );
        let public: SocketAddr = "192.0.2.7:64000".parse().unwrap();
        assert!(p.check_resolved(&[public], 64000, true).is_ok());
        assert!(p.check_resolved(&[bad], 64000, true).is_err());
    }

    #[tokio::test]
    async fn localhost_name_resolving_to_loopback_is_denied() {
        let p = policy();
        let err = p.resolve("localhost", 7777).await.unwrap_err();
        assert_eq!(err.kind(), "special_address_denied", "{err}");
    }

    #[test]
    fn name_resolution_can_be_disabled() {
        let p = TargetPolicy::from_config(&PolicyConfig {
            resolve_names: false,
            ..PolicyConfig::default()
        })
        .unwrap();
        assert_eq!(
            p.plan("service.example", 0).unwrap_err().kind(),
            "name_not_allowed"
        );
        assert_eq!(p.plan("10.0.0.1", 0).unwrap_err().kind(), "address_denied");
    }
}
