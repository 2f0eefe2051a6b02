//! Exact `Origin` allow-list (cross-site WebSocket hijacking defence).
//!
//! Origins are compared as normalised `scheme://host[:port]` strings: scheme and host
//! lower-cased, the scheme's default port dropped. Nothing else is folded: no wildcards, no
//! suffix matching, and the request's `Host` header is never trusted to say what "our own
//! origin" is (that would let a DNS-rebinding page pass). A missing Origin or `null` is refused.

use std::collections::BTreeSet;
use std::net::SocketAddr;

/// Normalise an origin: `Some("https://example.com:8443")`, or `None` if it is not one.
pub fn normalize_origin(origin: &str) -> Option<String> {
    let (scheme, rest) = origin.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => "80",
        "https" => "443",
        _ => return None,
    };
    if rest.is_empty()
        || rest.contains(['/', '?', '#', '@', ' ', '\\'])
        || !rest.is_ascii()
        || rest.bytes().any(|b| b.is_ascii_control())
    {
        return None;
    }
    let rest = rest.to_ascii_lowercase();
    // Split host and port (IPv6 literals are bracketed).
    let (host, port) = if let Some(after) = rest.strip_prefix('[') {
        let (h, tail) = after.split_once(']')?;
        let port = match tail {
            "" => None,
            t => Some(t.strip_prefix(':')?),
        };
        (format!("[{h}]"), port)
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (rest.clone(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return None;
    }
    match port {
        None => Some(format!("{scheme}://{host}")),
        Some(p) => {
            let n: u16 = p.parse().ok()?;
            if p.is_empty() || n == 0 {
                return None;
            }
            if p == default_port {
                Some(format!("{scheme}://{host}"))
            } else {
                Some(format!("{scheme}://{host}:{n}"))
            }
        }
    }
}

/// The allowed origins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPolicy {
    allowed: BTreeSet<String>,
}

impl OriginPolicy {
    /// From the configured list; empty = the proxy's own origin: `public_origin`, or else the
    /// listen address (plus `localhost` for a loopback listener).
    pub fn new(
        allowed: &[String],
        public_origin: Option<&str>,
        listen: SocketAddr,
        tls: bool,
    ) -> OriginPolicy {
        let mut set: BTreeSet<String> =
            allowed.iter().filter_map(|o| normalize_origin(o)).collect();
        if set.is_empty() {
            if let Some(p) = public_origin.and_then(normalize_origin) {
                set.insert(p);
            } else {
                let scheme = if tls { "https" } else { "http" };
                let port = listen.port();
                let host = match listen {
                    SocketAddr::V4(a) => a.ip().to_string(),
                    SocketAddr::V6(a) => format!("[{}]", a.ip()),
                };
                if let Some(o) = normalize_origin(&format!("{scheme}://{host}:{port}")) {
                    set.insert(o);
                }
                if listen.ip().is_loopback() {
                    if let Some(o) = normalize_origin(&format!("{scheme}://localhost:{port}")) {
                        set.insert(o);
                    }
                }
            }
        }
        OriginPolicy { allowed: set }
    }

    /// Whether this `Origin` header value is allowed (exact match after normalisation).
    pub fn allows(&self, origin: Option<&str>) -> bool {
        match origin.and_then(normalize_origin) {
            Some(o) => self.allowed.contains(&o),
            None => false,
        }
    }

    /// The allowed origins (normalised).
    pub fn allowed(&self) -> impl Iterator<Item = &str> {
        self.allowed.iter().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        assert_eq!(
            normalize_origin("HTTPS://Example.COM:443").as_deref(),
            Some("https://example.com")
        );
        assert_eq!(
            normalize_origin("http://a:8080").as_deref(),
            Some("http://a:8080")
        );
        assert_eq!(
            normalize_origin("http://[::1]:80").as_deref(),
            Some("http://[::1]")
        );
        for bad in [
            "null",
            "",
            "ftp://a",
            "http://",
            "http://a/",
            "http://a:0",
            "http://a:x",
            "http://u@a",
            "https://a:99999",
        ] {
            assert_eq!(normalize_origin(bad), None, "{bad}");
        }
    }

    #[test]
    fn default_is_own_origin_only() {
        let p = OriginPolicy::new(&[], None, "127.0.0.1:8443".parse().unwrap(), true);
        assert!(p.allows(Some("https://127.0.0.1:8443")));
        assert!(p.allows(Some("https://localhost:8443")));
        assert!(!p.allows(Some("http://localhost:8443")));
        assert!(!p.allows(Some("https://localhost:8444")));
        assert!(!p.allows(Some("https://evil.example")));
        assert!(!p.allows(Some("null")));
        assert!(!p.allows(None));
        let p = OriginPolicy::new(
            &[],
            Some("https://proxy.example.com"),
            "0.0.0.0:443".parse().unwrap(),
            true,
        );
        assert!(p.allows(Some("https://proxy.example.com")));
        assert!(!p.allows(Some("https://proxy.example.com.evil.example")));
        assert!(!p.allows(Some("https://0.0.0.0")));
    }

    #[test]
    fn configured_list_is_exact() {
        let p = OriginPolicy::new(
            &["https://console.example.com".into()],
            Some("https://proxy.example.com"),
            "127.0.0.1:1".parse().unwrap(),
            true,
        );
        assert!(p.allows(Some("https://console.example.com:443")));
        assert!(!p.allows(Some("https://proxy.example.com")));
        assert!(!p.allows(Some("https://sub.console.example.com")));
        assert!(!p.allows(Some("http://console.example.com")));
    }
}
