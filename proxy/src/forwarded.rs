//! The client's address behind a trusted reverse proxy (`server.trusted_proxies`).
//!
//! Behind a TLS front end every browser reaches the proxy from the front end's address. From a
//! peer inside `server.trusted_proxies` (and only from one), the client address is read from
//! the one header `server.forwarded_header` names: `X-Forwarded-For` (the default) or
//! `Forwarded` (RFC 7239, its `for=` parameter). The other header, and both headers from any
//! other peer, are ignored.
//!
//! The algorithm (the standard spoof-resistant one): the header is a list of hops, each
//! proxy appending the address it received the request from. Everything left of the entry
//! a trusted proxy appended is whatever the client sent, so the list is walked **from the
//! right**, skipping addresses that are themselves trusted proxies; the first untrusted address
//! is the client. A client can prepend any entries it likes: they are never reached. If
//! every entry is a trusted proxy, the leftmost one is the client (a request a trusted proxy
//! made itself).
//!
//! Failing closed: if the entry the walk stops at is `unknown` or an obfuscated identifier
//! (RFC 7239 `_hidden`), if the header is missing, or if what was walked is malformed (not an
//! address, a `Forwarded` value that breaks RFC 7239's grammar anywhere, non-ASCII), the
//! client address is the peer itself: never an address the request chose. Each such case is
//! counted (`prl_proxy_forwarded_total{outcome}`) and logged by the listener.
//!
//! Entries are read as an address (`192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`) with an
//! optional port (`192.0.2.1:4711`, `[2001:db8::1]:4711`); `Forwarded` values follow RFC 7239
//! §6 (an IPv6 address or a port needs the quoted form, `for="[2001:db8::1]:4711"`).
//! IPv4-mapped IPv6 addresses count as the IPv4 address.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use hyper::header::{HeaderMap, HeaderName};
use ipnet::IpNet;
use serde::Deserialize;

use crate::config::{ConfigError, ServerConfig};
use crate::policy::canonical;

/// Which header a trusted proxy names the client in (`server.forwarded_header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx `$proxy_add_x_forwarded_for`, Caddy,
    /// HAProxy `option forwardfor`, most load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239). Only behind a front end that writes it
    /// on every request: nginx and Caddy pass a client's own `Forwarded` through untouched.
    Forwarded,
}

impl ForwardedHeader {
    fn name(self) -> HeaderName {
        match self {
            ForwardedHeader::XForwardedFor => HeaderName::from_static("x-forwarded-for"),
            ForwardedHeader::Forwarded => hyper::header::FORWARDED,
        }
    }
}

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The client's address: per-address limits, throttles and logs use it.
    pub ip: IpAddr,
    /// The trusted proxy it came through, when the address came from its header.
    pub via: Option<IpAddr>,
}

impl ClientAddr {
    /// A client that connected directly.
    pub fn direct(ip: IpAddr) -> ClientAddr {
        ClientAddr {
            ip: canonical(ip),
            via: None,
        }
    }
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.via {
            None => write!(f, "{}", self.ip),
            Some(via) => write!(f, "{} via {via}", self.ip),
        }
    }
}

/// How the client address of a request was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The peer is not a trusted proxy and sent no forwarding header.
    Direct,
    /// The peer is not a trusted proxy; its forwarding headers were ignored.
    Ignored,
    /// A trusted proxy named the client.
    Forwarded,
    /// A trusted proxy sent no `server.forwarded_header`: the peer is the client.
    Missing,
    /// The hop the walk stopped at is `unknown` or obfuscated: the peer is the client.
    Unknown,
    /// The header is malformed (the reason): the peer is the client.
    Malformed(&'static str),
}

impl Outcome {
    /// The `prl_proxy_forwarded_total{outcome}` label (`None`: not counted).
    pub fn label(self) -> Option<&'static str> {
        match self {
            Outcome::Direct => None,
            Outcome::Ignored => Some("ignored"),
            Outcome::Forwarded => Some("client"),
            Outcome::Missing => Some("missing"),
            Outcome::Unknown => Some("unknown"),
            Outcome::Malformed(_) => Some("malformed"),
        }
    }
}

/// The compiled `server.trusted_proxies` and `server.forwarded_header`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ForwardedHeader,
}

/// Headers that say a request was forwarded (only one of them is ever read).
const FORWARDING_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

impl TrustedProxies {
    /// Compile `[server]`'s list, naming the bad entry on error.
    pub fn from_config(s: &ServerConfig) -> Result<TrustedProxies, ConfigError> {
        let mut nets = Vec::with_capacity(s.trusted_proxies.len());
        for (i, text) in s.trusted_proxies.iter().enumerate() {
            let key = format!("server.trusted_proxies[{i}]");
            let net = crate::policy::parse_net(text).ok_or_else(|| {
                ConfigError::invalid(&key, format!("{text:?} is not a CIDR network or address"))
            })?;
            if net.trunc() != net {
                return Err(ConfigError::invalid(
                    key,
                    format!(
                        "{text:?} has host bits set (the network is {})",
                        net.trunc()
                    ),
                ));
            }
            if net.prefix_len() == 0 {
                return Err(ConfigError::invalid(
                    key,
                    format!("{text:?} trusts every address: any client could choose its address"),
                ));
            }
            nets.push(net);
        }
        Ok(TrustedProxies {
            nets,
            header: s.forwarded_header,
        })
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client address of a request that arrived from `peer` with `headers`.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> (ClientAddr, Outcome) {
        let direct = ClientAddr::direct(peer);
        if !self.trusts(peer) {
            let sent = FORWARDING_HEADERS.iter().any(|h| headers.contains_key(*h));
            return (
                direct,
                if sent {
                    Outcome::Ignored
                } else {
                    Outcome::Direct
                },
            );
        }
        let mut values = Vec::new();
        for v in headers.get_all(self.header.name()) {
            match v.to_str() {
                Ok(s) => values.push(s),
                Err(_) => return (direct, Outcome::Malformed("not visible ascii")),
            }
        }
        if values.is_empty() {
            return (direct, Outcome::Missing);
        }
        let hop = match self.header {
            ForwardedHeader::XForwardedFor => self.walk(xff_entries(&values).map(xff_node)),
            ForwardedHeader::Forwarded => match forwarded_for_values(&values) {
                Ok(fors) => self.walk(fors.into_iter().rev().map(|v| match v {
                    Some(v) => forwarded_node(&v),
                    None => Ok(Node::Unknown),
                })),
                Err(why) => Err(why),
            },
        };
        match hop {
            Ok(Node::Ip(ip)) => (
                ClientAddr {
                    ip,
                    via: Some(canonical(peer)),
                },
                Outcome::Forwarded,
            ),
            Ok(Node::Unknown) => (direct, Outcome::Unknown),
            Err(why) => (direct, Outcome::Malformed(why)),
        }
    }

    /// The first hop from the right (`nodes` come right to left) that is not a trusted proxy,
    /// or the leftmost if all are. Entries beyond it are never looked at.
    fn walk<'a>(
        &self,
        nodes: impl Iterator<Item = Result<Node, &'static str>> + 'a,
    ) -> Result<Node, &'static str> {
        let mut leftmost = None;
        for node in nodes {
            match node? {
                Node::Ip(ip) if self.trusts(ip) => leftmost = Some(ip),
                other => return Ok(other),
            }
        }
        leftmost.map(Node::Ip).ok_or("no address in the header")
    }
}

/// One hop of a forwarding header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    /// An address (canonical: IPv4-mapped IPv6 is the IPv4 address).
    Ip(IpAddr),
    /// `unknown`, an obfuscated identifier, or a `Forwarded` element without `for`.
    Unknown,
}

/// The `X-Forwarded-For` entries, right to left, empty list elements skipped.
fn xff_entries<'a>(values: &'a [&'a str]) -> impl Iterator<Item = &'a str> + 'a {
    values
        .iter()
        .rev()
        .flat_map(|v| v.rsplit(','))
        .map(|e| e.trim_matches([' ', '\t']))
        .filter(|e| !e.is_empty())
}

/// An `X-Forwarded-For` entry: an address, optionally bracketed (IPv6) and with a port, or
/// `unknown`.
fn xff_node(entry: &str) -> Result<Node, &'static str> {
    if entry.eq_ignore_ascii_case("unknown") {
        return Ok(Node::Unknown);
    }
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(Node::Ip(canonical(ip)));
    }
    if let Ok(sa) = entry.parse::<SocketAddr>() {
        return Ok(Node::Ip(canonical(sa.ip())));
    }
    if let Some(v6) = entry
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse::<Ipv6Addr>().ok())
    {
        return Ok(Node::Ip(canonical(IpAddr::V6(v6))));
    }
    Err("an x-forwarded-for entry is not an address")
}

/// RFC 7239 §6 `node` (the value of `for=`, unquoted).
fn forwarded_node(value: &str) -> Result<Node, &'static str> {
    const BAD: &str = "a forwarded for= value is not a node (RFC 7239 section 6)";
    let (name, port) = if let Some(rest) = value.strip_prefix('[') {
        let (v6, tail) = rest.split_once(']').ok_or(BAD)?;
        let port = match tail {
            "" => None,
            t => Some(t.strip_prefix(':').ok_or(BAD)?),
        };
        let ip: Ipv6Addr = v6.parse().map_err(|_| BAD)?;
        (Node::Ip(canonical(IpAddr::V6(ip))), port)
    } else {
        let (name, port) = match value.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (value, None),
        };
        let node = if name.eq_ignore_ascii_case("unknown") || is_obfuscated(name) {
            Node::Unknown
        } else {
            // IPv4 only: an IPv6 address must be bracketed.
            Node::Ip(canonical(IpAddr::V4(name.parse().map_err(|_| BAD)?)))
        };
        (node, port)
    };
    match port {
        None => Ok(name),
        Some(p) if is_obfuscated(p) => Ok(name),
        Some(p) if (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => Ok(name),
        Some(_) => Err(BAD),
    }
}

/// RFC 7239 `obfnode` / `obfport`: `_` then letters, digits, `.`, `_`, `-`.
fn is_obfuscated(s: &str) -> bool {
    s.strip_prefix('_').is_some_and(|r| {
        !r.is_empty()
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    })
}

/// Every element's `for=` value (unquoted), left to right; `None` for an element without one.
/// The whole header is parsed: a quoted string decides where elements end, so a syntax error
/// anywhere makes the header malformed.
fn forwarded_for_values(values: &[&str]) -> Result<Vec<Option<String>>, &'static str> {
    let mut out = Vec::new();
    for v in values {
        let mut p = Parser {
            s: v.as_bytes(),
            i: 0,
        };
        loop {
            p.skip_ows();
            match p.peek() {
                None => break,
                // An empty list element.
                Some(b',') => p.i += 1,
                Some(_) => {
                    out.push(p.element()?);
                    if out.len() > 128 {
                        return Err("too many forwarded elements");
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A cursor over one `Forwarded` header value.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    /// `forwarded-element = [ forwarded-pair ] *( ";" [ forwarded-pair ] )`, up to the `,`
    /// that ends it (consumed) or the end; its `for` value.
    fn element(&mut self) -> Result<Option<String>, &'static str> {
        let mut for_value = None;
        loop {
            self.skip_ows();
            match self.peek() {
                None => return Ok(for_value),
                Some(b',') => {
                    self.i += 1;
                    return Ok(for_value);
                }
                Some(b';') => {
                    self.i += 1;
                    continue;
                }
                Some(_) => {}
            }
            let name = self.token().ok_or("expected a forwarded parameter name")?;
            if self.peek() != Some(b'=') {
                return Err("expected '=' after a forwarded parameter name");
            }
            self.i += 1;
            let value = if self.peek() == Some(b'"') {
                self.quoted()?
            } else {
                self.token()
                    .ok_or("expected a token or quoted string as a forwarded value")?
                    .to_string()
            };
            if name.eq_ignore_ascii_case("for") {
                if for_value.is_some() {
                    return Err("a forwarded element has more than one for=");
                }
                for_value = Some(value);
            }
            self.skip_ows();
            match self.peek() {
                None | Some(b';') | Some(b',') => {}
                Some(_) => return Err("unexpected character after a forwarded value"),
            }
        }
    }

    /// `token = 1*tchar`.
    fn token(&mut self) -> Option<&'a str> {
        let s: &'a [u8] = self.s;
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        (self.i > start)
            .then(|| std::str::from_utf8(&s[start..self.i]).ok())
            .flatten()
    }

    /// `quoted-string`, unescaped.
    fn quoted(&mut self) -> Result<String, &'static str> {
        const UNTERMINATED: &str = "unterminated quoted string in forwarded";
        self.i += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(UNTERMINATED),
                Some(b'"') => {
                    self.i += 1;
                    return String::from_utf8(out).map_err(|_| "not utf-8");
                }
                Some(b'\\') => {
                    let c = self.s.get(self.i + 1).copied().ok_or(UNTERMINATED)?;
                    if !(c == b'\t' || (0x20..0x7f).contains(&c)) {
                        return Err("bad quoted pair in forwarded");
                    }
                    out.push(c);
                    self.i += 2;
                }
                Some(c) if c == b'\t' || (0x20..0x7f).contains(&c) => {
                    out.push(c);
                    self.i += 1;
                }
                Some(_) => return Err("bad character in a forwarded quoted string"),
            }
        }
    }
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;
    use proptest::prelude::*;

    fn trusted(nets: &[&str], header: ForwardedHeader) -> TrustedProxies {
        let s = ServerConfig {
            trusted_proxies: nets.iter().map(|n| n.to_string()).collect(),
            forwarded_header: header,
            ..Default::default()
        };
        TrustedProxies::from_config(&s).unwrap()
    }

    fn xff_proxies() -> TrustedProxies {
        trusted(
            &["127.0.0.1", "10.0.0.0/8", "2001:db8:ffff::/48"],
            ForwardedHeader::XForwardedFor,
        )
    }

    fn fwd_proxies() -> TrustedProxies {
        trusted(
            &["127.0.0.1", "10.0.0.0/8", "2001:db8:ffff::/48"],
            ForwardedHeader::Forwarded,
        )
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const LOCAL: &str = "127.0.0.1";

    fn resolve(t: &TrustedProxies, peer: &str, pairs: &[(&str, &str)]) -> (IpAddr, Outcome) {
        let (c, o) = t.resolve(ip(peer), &headers(pairs));
        if o == Outcome::Forwarded {
            assert_eq!(c.via, Some(canonical(ip(peer))));
        } else {
            assert_eq!(c, ClientAddr::direct(ip(peer)), "{o:?}");
        }
        (c.ip, o)
    }

    fn client(t: &TrustedProxies, pairs: &[(&str, &str)]) -> IpAddr {
        let (c, o) = resolve(t, LOCAL, pairs);
        assert_eq!(o, Outcome::Forwarded, "{pairs:?}");
        c
    }

    fn malformed(t: &TrustedProxies, pairs: &[(&str, &str)]) {
        let (c, o) = resolve(t, LOCAL, pairs);
        assert!(matches!(o, Outcome::Malformed(_)), "{pairs:?}: {o:?}");
        assert_eq!(c, ip(LOCAL));
    }

    #[test]
    fn headers_from_untrusted_peers_are_ignored() {
        let t = xff_proxies();
        for h in ["x-forwarded-for", "forwarded", "x-real-ip"] {
            assert_eq!(
                resolve(&t, "192.0.2.7", &[(h, "198.51.100.1")]),
                (ip("192.0.2.7"), Outcome::Ignored)
            );
        }
        assert_eq!(
            resolve(&t, "192.0.2.7", &[]),
            (ip("192.0.2.7"), Outcome::Direct)
        );
        // No trusted proxies at all: nobody is trusted, loopback included.
        let none = TrustedProxies::default();
        assert_eq!(
            resolve(&none, LOCAL, &[("x-forwarded-for", "198.51.100.1")]),
            (ip(LOCAL), Outcome::Ignored)
        );
    }

    #[test]
    fn x_forwarded_for_is_walked_from_the_right() {
        let t = xff_proxies();
        let c = |v: &str| client(&t, &[("x-forwarded-for", v)]);
        assert_eq!(c("198.51.100.1"), ip("198.51.100.1"));
        // Whatever the client prepended is never reached.
        assert_eq!(c("203.0.113.9, 198.51.100.1"), ip("198.51.100.1"));
        assert_eq!(c("garbage, 198.51.100.1"), ip("198.51.100.1"));
        assert_eq!(c("127.0.0.1, 198.51.100.1"), ip("198.51.100.1"));
        // Trusted hops on the right are skipped.
        assert_eq!(c("203.0.113.9, 198.51.100.1, 10.1.2.3"), ip("198.51.100.1"));
        assert_eq!(
            c("198.51.100.1,10.1.2.3 ,  10.9.9.9,127.0.0.1"),
            ip("198.51.100.1")
        );
        // All trusted: the leftmost.
        assert_eq!(c("10.1.2.3, 10.9.9.9"), ip("10.1.2.3"));
        // Several header lines are one list, in order.
        assert_eq!(
            client(
                &t,
                &[
                    ("x-forwarded-for", "203.0.113.9"),
                    ("x-forwarded-for", "198.51.100.1, 10.0.0.1")
                ]
            ),
            ip("198.51.100.1")
        );
        // Ports and brackets; IPv6 (untrusted /48 neighbour), IPv4-mapped.
        assert_eq!(c("198.51.100.1:4711"), ip("198.51.100.1"));
        assert_eq!(c("2001:db8::1"), ip("2001:db8::1"));
        assert_eq!(c("[2001:db8::1]"), ip("2001:db8::1"));
        assert_eq!(c("[2001:db8::1]:4711, 2001:db8:ffff::2"), ip("2001:db8::1"));
        assert_eq!(c("::ffff:198.51.100.1"), ip("198.51.100.1"));
        // A mapped spelling of a trusted proxy is that proxy.
        assert_eq!(c("198.51.100.1, ::ffff:10.0.0.1"), ip("198.51.100.1"));
        // Empty list elements are skipped.
        assert_eq!(c("198.51.100.1,, 10.0.0.1,"), ip("198.51.100.1"));
    }

    #[test]
    fn malformed_or_unknown_hops_give_the_peer() {
        let t = xff_proxies();
        for v in [
            "198.51.100.1, nonsense",
            "198.51.100.1, 300.1.1.1",
            "198.51.100.1, 010.0.0.1",
            "fe80::1%eth0",
            "[2001:db8::1",
            "198.51.100.1 10.0.0.1",
            "",
            " , ",
            "_hidden",
        ] {
            malformed(&t, &[("x-forwarded-for", v)]);
        }
        assert_eq!(
            resolve(&t, LOCAL, &[("x-forwarded-for", "198.51.100.1, unknown")]),
            (ip(LOCAL), Outcome::Unknown)
        );
        // unknown left of the client is never reached.
        assert_eq!(
            client(&t, &[("x-forwarded-for", "unknown, 198.51.100.1")]),
            ip("198.51.100.1")
        );
        // Non-ASCII bytes.
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"198.51.100.1\xff").unwrap(),
        );
        let (c, o) = t.resolve(ip(LOCAL), &h);
        assert_eq!(
            (c.ip, o),
            (ip(LOCAL), Outcome::Malformed("not visible ascii"))
        );
        // The header the configuration did not choose is not read.
        assert_eq!(
            resolve(&t, LOCAL, &[("forwarded", "for=198.51.100.1")]),
            (ip(LOCAL), Outcome::Missing)
        );
        assert_eq!(
            resolve(&t, LOCAL, &[("x-real-ip", "198.51.100.1")]),
            (ip(LOCAL), Outcome::Missing)
        );
    }

    #[test]
    fn forwarded_follows_rfc_7239() {
        let t = fwd_proxies();
        let c = |v: &str| client(&t, &[("forwarded", v)]);
        assert_eq!(c("for=198.51.100.1"), ip("198.51.100.1"));
        assert_eq!(
            c("For=198.51.100.1;proto=https;by=10.0.0.1"),
            ip("198.51.100.1")
        );
        assert_eq!(c("for=\"198.51.100.1:4711\""), ip("198.51.100.1"));
        assert_eq!(
            c("for=\"[2001:db8:cafe::17]:4711\""),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(c("for=\"[2001:db8:cafe::17]\""), ip("2001:db8:cafe::17"));
        assert_eq!(c("for=\"198.51.100.1:_port\""), ip("198.51.100.1"));
        // The RFC's examples of a chain, walked from the right.
        assert_eq!(
            c("for=192.0.2.43, for=198.51.100.17;by=10.0.0.1, for=10.0.0.1"),
            ip("198.51.100.17")
        );
        assert_eq!(
            c("for=192.0.2.43,for=\"[2001:db8:cafe::17]\";proto=http"),
            ip("2001:db8:cafe::17")
        );
        // Separators inside quoted strings do not end an element.
        assert_eq!(
            c("for=198.51.100.1;host=\"a,b;c=\\\"d\", for=10.0.0.1"),
            ip("198.51.100.1")
        );
        // Whitespace around ';' and ',' and empty elements.
        assert_eq!(
            c(" , for=198.51.100.1 ; proto=https ,, "),
            ip("198.51.100.1")
        );
        // Several lines are one list.
        assert_eq!(
            client(
                &t,
                &[
                    ("forwarded", "for=203.0.113.9"),
                    ("forwarded", "for=198.51.100.1")
                ]
            ),
            ip("198.51.100.1")
        );
        // Obfuscated identifiers and unknown are unknown: the peer is the client.
        for v in [
            "for=_hidden",
            "for=unknown",
            "for=\"_x.y-z:4711\"",
            "for=198.51.100.1, proto=https",
        ] {
            assert_eq!(
                resolve(&t, LOCAL, &[("forwarded", v)]),
                (ip(LOCAL), Outcome::Unknown),
                "{v}"
            );
        }
        // Malformed anywhere: the peer.
        for v in [
            "for=2001:db8::1",
            "for=\"2001:db8::1\"",
            "for=[2001:db8::1]",
            "for=198.51.100.1:80",
            "for=\"198.51.100.1:123456\"",
            "for=\"198.51.100.1:\"",
            "for=\"[2001:db8::1]x\"",
            "for=\"_\"",
            "for=\"198.51.100.1",
            "for=\"a, for=198.51.100.1",
            "for=198.51.100.1;for=198.51.100.2",
            "for = 198.51.100.1",
            "for=",
            "=198.51.100.1",
            "for=198.51.100.1 proto=https",
            "for=bogus",
            "for=\"\\",
        ] {
            malformed(&t, &[("forwarded", v)]);
        }
        // X-Forwarded-For is not read when Forwarded is chosen.
        assert_eq!(
            resolve(&t, LOCAL, &[("x-forwarded-for", "198.51.100.1")]),
            (ip(LOCAL), Outcome::Missing)
        );
        let many = vec!["for=10.0.0.1"; 200].join(",");
        malformed(&t, &[("forwarded", &many)]);
    }

    #[test]
    fn config_errors_name_the_entry() {
        let bad = |v: &str| {
            let s = ServerConfig {
                trusted_proxies: vec!["10.0.0.0/8".into(), v.into()],
                ..Default::default()
            };
            match TrustedProxies::from_config(&s) {
                Err(ConfigError::Invalid { key, reason }) => {
                    assert_eq!(key, "server.trusted_proxies[1]");
                    reason
                }
                other => panic!("{v}: {other:?}"),
            }
        };
        assert!(bad("10.0.0.0/33").contains("not a CIDR"));
        assert!(bad("nginx").contains("not a CIDR"));
        assert!(bad("10.0.0.1/8").contains("host bits"));
        assert!(bad("0.0.0.0/0").contains("every address"));
        assert!(bad("::/0").contains("every address"));
        let s = ServerConfig {
            trusted_proxies: vec!["192.0.2.1".into(), "2001:db8::/32".into()],
            ..Default::default()
        };
        let t = TrustedProxies::from_config(&s).unwrap();
        assert!(t.trusts(ip("192.0.2.1")) && !t.trusts(ip("192.0.2.2")));
        assert!(t.trusts(ip("::ffff:192.0.2.1")));
        assert!(t.trusts(ip("2001:db8:1::1")) && !t.trusts(ip("2001:db9::1")));
    }

    fn arb_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
            // Inside the trusted ranges.
            any::<[u8; 3]>().prop_map(|b| IpAddr::from([10, b[0], b[1], b[2]])),
            Just(ip("127.0.0.1")),
        ]
    }

    /// RFC 7239's `node` for an address, in every form a proxy may write.
    fn rfc_node(ip: IpAddr, port: Option<u16>, quote_v4: bool) -> String {
        match (ip, port) {
            (IpAddr::V4(v4), None) if !quote_v4 => format!("for={v4}"),
            (IpAddr::V4(v4), None) => format!("for=\"{v4}\""),
            (IpAddr::V4(v4), Some(p)) => format!("for=\"{v4}:{p}\""),
            (IpAddr::V6(v6), None) => format!("for=\"[{v6}]\""),
            (IpAddr::V6(v6), Some(p)) => format!("for=\"[{v6}]:{p}\""),
        }
    }

    proptest! {
        /// Whatever a client prepends, the walk from the right finds the first untrusted hop
        /// the trusted proxies appended, for both headers.
        #[test]
        fn the_client_cannot_choose_its_address(
            prefix in proptest::collection::vec("[ -~]{0,20}", 0..4),
            real in arb_ip(),
            hops in proptest::collection::vec(any::<[u8; 3]>(), 0..4),
            port in proptest::option::of(1u16..),
            quote in any::<bool>(),
        ) {
            let hops: Vec<IpAddr> = hops.iter().map(|b| IpAddr::from([10, b[0], b[1], b[2]])).collect();
            let t = xff_proxies();
            let expected = if t.trusts(real) {
                None // a trusted "client": the walk goes on into the client's own text
            } else {
                Some(canonical(real))
            };
            // X-Forwarded-For: the client's text, then what each proxy appended.
            let mut xff: Vec<String> = prefix.clone();
            xff.push(match (real, port) {
                (IpAddr::V6(v6), Some(p)) => format!("[{v6}]:{p}"),
                (IpAddr::V4(v4), Some(p)) => format!("{v4}:{p}"),
                (a, None) => a.to_string(),
            });
            xff.extend(hops.iter().map(IpAddr::to_string));
            let (c, o) = t.resolve(ip(LOCAL), &headers(&[("x-forwarded-for", &xff.join(", "))]));
            if let Some(e) = expected {
                prop_assert_eq!((c.ip, o), (e, Outcome::Forwarded));
            }
            // Forwarded: the client's (arbitrary) header line, then the proxies' line.
            let mut line: Vec<String> = vec![rfc_node(real, port, quote)];
            line.extend(hops.iter().map(|h| rfc_node(*h, None, false)));
            let mut h = HeaderMap::new();
            for p in &prefix {
                if let Ok(v) = HeaderValue::from_str(p) {
                    h.append("forwarded", v);
                }
            }
            h.append("forwarded", HeaderValue::from_str(&line.join(", ")).unwrap());
            let (c, o) = fwd_proxies().resolve(ip(LOCAL), &h);
            if let Some(e) = expected {
                // A prefix that breaks the grammar makes the whole header malformed: the
                // peer, never an address the client chose.
                prop_assert!(
                    (c.ip, o) == (e, Outcome::Forwarded)
                        || (c.ip == ip(LOCAL) && matches!(o, Outcome::Malformed(_))),
                    "{:?} {:?}", c, o
                );
                if prefix.is_empty() {
                    prop_assert_eq!((c.ip, o), (e, Outcome::Forwarded));
                }
            }
        }

        /// Any header text from any peer: no panic, and the client is either the peer or an
        /// address found in the header (never from an untrusted peer).
        #[test]
        fn arbitrary_headers_never_fail_open(
            text in "[ -~]{0,80}",
            peer in arb_ip(),
            which in any::<bool>(),
        ) {
            let (t, name) = if which {
                (fwd_proxies(), "forwarded")
            } else {
                (xff_proxies(), "x-forwarded-for")
            };
            let Ok(v) = HeaderValue::from_str(&text) else { return Ok(()) };
            let mut h = HeaderMap::new();
            h.insert(name, v);
            let (c, o) = t.resolve(peer, &h);
            if !t.trusts(peer) {
                prop_assert_eq!(c, ClientAddr::direct(peer));
                prop_assert_eq!(o, Outcome::Ignored);
            } else if o == Outcome::Forwarded {
                prop_assert!(c.via == Some(canonical(peer)));
            } else {
                prop_assert_eq!(c, ClientAddr::direct(peer));
            }
        }
    }
}
