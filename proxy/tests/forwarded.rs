//! Behind a reverse proxy (`server.trusted_proxies`): per-address limits apply per real client
//! named by a trusted proxy, and forwarding headers from anyone else change nothing.
//!
//! The "front end" here is a loopback address in `trusted_proxies` (127.0.0.2) sending the
//! headers nginx or Caddy would; other loopback addresses are untrusted peers.

#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

#[path = "common/relay.rs"]
mod browser;
mod common;
use browser::*;

use std::time::Duration;

use common::*;
use prl_protocol::relay::RelayErrorKind;
use prl_protocol::ErrorCode;
use tokio::io::AsyncReadExt;

const RELAY: &str = "prl-relay.v1";
const FRONT: &str = "127.0.0.2";
const XFF: &str = "x-forwarded-for";

fn count(h: &prl_proxy::ProxyHandle, family: &str, label: &str) -> f64 {
    metric(&h.metrics_text(), &format!("prl_proxy_{family}{{{label}}}"))
}

fn rejected(h: &prl_proxy::ProxyHandle, reason: &str) -> f64 {
    count(h, "rejections_total", &format!("reason=\"{reason}\""))
}

fn forwarded(h: &prl_proxy::ProxyHandle, outcome: &str) -> f64 {
    count(h, "forwarded_total", &format!("outcome=\"{outcome}\""))
}

/// A WebSocket upgrade from `from` with `headers`: `Ok` if upgraded, else the HTTP status.
async fn upgrade(
    h: &prl_proxy::ProxyHandle,
    from: &str,
    headers: &[(&str, &str)],
) -> Result<Ws, u16> {
    let origin = own_origin(h);
    ws_connect_with(from, h.local_addr(), Some(&origin), &[RELAY], headers)
        .await
        .map(|(ws, _)| ws)
}

/// A connection from `from` that the proxy closes at accept, without an answer.
async fn closed_at_accept(h: &prl_proxy::ProxyHandle, from: &str) {
    let mut s = tcp_from(from, h.local_addr()).await;
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("not closed at accept")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed at accept");
}

#[tokio::test]
async fn connection_caps_apply_per_client_behind_a_trusted_proxy() {
    let h = start(&format!(
        "[server]\ntrusted_proxies = [\"{FRONT}/32\"]\n[limits]\nmax_connections_per_ip = 2\n"
    ))
    .await;
    // Two clients behind the front end: each has its own share.
    let a = [(XFF, "198.51.100.1")];
    let b = [(XFF, "203.0.113.9, 198.51.100.2")];
    let a1 = upgrade(&h, FRONT, &a).await.unwrap();
    let a2 = upgrade(&h, FRONT, &a).await.unwrap();
    // The front end's third connection for client A is refused once its header is read.
    assert_eq!(upgrade(&h, FRONT, &a).await.err(), Some(503));
    assert_eq!(rejected(&h, "per_ip_connections"), 1.0);
    // ...and closed, giving its slot back.
    metric_becomes(&h, "prl_proxy_connections", 2.0).await;
    // Client B is not held back by A (whatever B's client prepended to its header).
    let _b1 = upgrade(&h, FRONT, &b).await.unwrap();
    let _b2 = upgrade(&h, FRONT, &b).await.unwrap();
    assert_eq!(upgrade(&h, FRONT, &b).await.err(), Some(503));
    assert_eq!(forwarded(&h, "client"), 6.0);
    drop((a1, a2));
    metric_becomes(&h, "prl_proxy_connections", 2.0).await;
    let _a3 = upgrade(&h, FRONT, &a).await.unwrap();

    // An untrusted peer's headers are ignored: a new X-Forwarded-For per connection does
    // not give it a new share.
    let _s1 = upgrade(&h, "127.0.0.3", &[(XFF, "192.0.2.1")])
        .await
        .unwrap();
    let _s2 = upgrade(&h, "127.0.0.3", &[(XFF, "192.0.2.2")])
        .await
        .unwrap();
    closed_at_accept(&h, "127.0.0.3").await;
    assert_eq!(rejected(&h, "per_ip_connections"), 3.0);
    assert_eq!(forwarded(&h, "ignored"), 2.0);
}

#[tokio::test]
async fn the_preauth_share_applies_per_client_behind_a_trusted_proxy() {
    let h = start(&format!(
        "[server]\ntrusted_proxies = [\"{FRONT}\"]\n[limits]\nmax_preauth_per_ip = 2\nmax_preauth_connections = 5\n"
    ))
    .await;
    // Silent WebSockets (no first message) from client A through the front end.
    let a = [(XFF, "198.51.100.1")];
    let mut a1 = upgrade(&h, FRONT, &a).await.unwrap();
    let _a2 = upgrade(&h, FRONT, &a).await.unwrap();
    assert_eq!(upgrade(&h, FRONT, &a).await.err(), Some(503));
    assert_eq!(rejected(&h, "preauth_per_ip"), 1.0);
    // The refused connection is closed, giving its slots back.
    metric_becomes(&h, "prl_proxy_connections", 2.0).await;
    // Client B behind the same front end still gets in.
    let b = [(XFF, "198.51.100.2")];
    let _b1 = upgrade(&h, FRONT, &b).await.unwrap();
    let _b2 = upgrade(&h, FRONT, &b).await.unwrap();
    // A direct peer claiming to be B through a spoofed header counts as itself.
    let _c = upgrade(&h, "127.0.0.3", &b).await.unwrap();
    // The pool is full now (5): a sixth connection from a client holding fewer slots than
    // the biggest holder takes that holder's oldest slot, and the holder is a client behind
    // the front end (A), not the front end.
    let (status, _, _) = get(h.local_addr(), "/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(rejected(&h, "preauth_evicted"), 1.0);
    let e = next_relay_error(&mut a1).await;
    assert_eq!(e.kind, RelayErrorKind::LimitReached, "{e:?}");
    assert!(e.message.starts_with("evicted"), "{}", e.message);
    assert_eq!(rejected(&h, "preauth_connections"), 0.0);
    assert_eq!(rejected(&h, "preauth_per_ip"), 1.0);
}

#[tokio::test]
async fn unauthenticated_upstreams_are_capped_per_client_behind_a_trusted_proxy() {
    let sim = sim().await;
    let h = start(&format!(
        "[server]\ntrusted_proxies = [\"{FRONT}\"]\n{}[limits]\nmax_unauthenticated_upstreams_per_ip = 2\n",
        sim_target(&sim)
    ))
    .await;
    let a = [(XFF, "198.51.100.1")];
    let _a1 = Browser::open_with(&h, FRONT, &a).await.unwrap();
    let _a2 = Browser::open_with(&h, FRONT, &a).await.unwrap();
    let e = Browser::open_with(&h, FRONT, &a).await.err().unwrap();
    assert_eq!(e.kind, RelayErrorKind::LimitReached, "{e:?}");
    assert_eq!(rejected(&h, "unauthenticated_upstreams_per_ip"), 1.0);
    let mut b = Browser::open_with(&h, FRONT, &[(XFF, "198.51.100.2")])
        .await
        .unwrap();
    b.login_ok("").await;
}

#[tokio::test]
async fn login_throttles_apply_per_client_behind_a_trusted_proxy() {
    let sim = sim().await;
    let h = start(&format!(
        "[server]\ntrusted_proxies = [\"{FRONT}\"]\n{}[limits]\nlogin_burst_per_ip = 2\nlogin_per_minute_per_ip = 1\nlogin_burst_per_user = 100\n",
        sim_target(&sim)
    ))
    .await;
    async fn attempt(
        h: &prl_proxy::ProxyHandle,
        from: &str,
        xff: &str,
    ) -> Result<ErrorCode, RelayErrorKind> {
        let mut b = Browser::open_with(h, from, &[(XFF, xff)]).await.unwrap();
        b.login("nobody", "wrong", "")
            .await
            .map(|r| r.code)
            .map_err(|e| e.kind)
    }
    let failed = Ok(ErrorCode::AUTHENTICATION_FAILED);
    let throttled = Err(RelayErrorKind::LimitReached);
    // Client A spends its burst...
    assert_eq!(attempt(&h, FRONT, "198.51.100.1").await, failed);
    assert_eq!(attempt(&h, FRONT, "198.51.100.1").await, failed);
    assert_eq!(attempt(&h, FRONT, "198.51.100.1").await, throttled);
    // ...which leaves client B behind the same front end alone.
    assert_eq!(attempt(&h, FRONT, "198.51.100.2").await, failed);
    // An untrusted peer cannot escape its bucket by naming new addresses.
    assert_eq!(attempt(&h, "127.0.0.3", "192.0.2.1").await, failed);
    assert_eq!(attempt(&h, "127.0.0.3", "192.0.2.2").await, failed);
    assert_eq!(attempt(&h, "127.0.0.3", "192.0.2.3").await, throttled);
}

#[tokio::test]
async fn the_forwarded_header_is_read_when_configured() {
    let h = start(&format!(
        "[server]\ntrusted_proxies = [\"{FRONT}\"]\nforwarded_header = \"forwarded\"\n[limits]\nmax_connections_per_ip = 1\n"
    ))
    .await;
    let fwd = "forwarded";
    let _a = upgrade(
        &h,
        FRONT,
        &[(
            fwd,
            "for=192.0.2.60;proto=https, for=\"[2001:db8:cafe::17]:4711\"",
        )],
    )
    .await
    .unwrap();
    // The same /64: the same client.
    assert_eq!(
        upgrade(&h, FRONT, &[(fwd, "for=\"[2001:db8:cafe::18]\"")])
            .await
            .err(),
        Some(503)
    );
    let _b = upgrade(&h, FRONT, &[(fwd, "for=198.51.100.1")])
        .await
        .unwrap();
    assert_eq!(forwarded(&h, "client"), 3.0);
    // X-Forwarded-For is not read now: the front end itself is the client.
    let _c = upgrade(&h, FRONT, &[(XFF, "198.51.100.7")]).await.unwrap();
    assert_eq!(forwarded(&h, "missing"), 1.0);
    assert_eq!(
        upgrade(&h, FRONT, &[(XFF, "198.51.100.8")]).await.err(),
        Some(503)
    );
}

#[tokio::test]
async fn malformed_headers_from_a_trusted_proxy_count_as_the_proxy() {
    let h = start(&format!(
        "[server]\ntrusted_proxies = [\"{FRONT}\"]\n[limits]\nmax_connections_per_ip = 1\n"
    ))
    .await;
    // Garbage gets no share of its own: all of it is the front end's one share.
    let _a = upgrade(&h, FRONT, &[(XFF, "198.51.100.1, not-an-address")])
        .await
        .unwrap();
    assert_eq!(
        upgrade(&h, FRONT, &[(XFF, "something else")]).await.err(),
        Some(503)
    );
    assert_eq!(
        upgrade(&h, FRONT, &[(XFF, "198.51.100.1, unknown")])
            .await
            .err(),
        Some(503)
    );
    assert_eq!(forwarded(&h, "malformed"), 2.0);
    assert_eq!(forwarded(&h, "unknown"), 1.0);
    // A well-formed header still names its client.
    let _b = upgrade(&h, FRONT, &[(XFF, "garbage, 198.51.100.2")])
        .await
        .unwrap();
}

#[tokio::test]
async fn metrics_refuse_requests_from_a_trusted_proxy() {
    let h = start("[server]\ntrusted_proxies = [\"127.0.0.1\"]\n").await;
    let metrics = |from: &'static str, extra: &'static str| {
        let addr = h.local_addr();
        async move {
            let mut s = tcp_from(from, addr).await;
            let req = format!(
                "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
            );
            tokio::io::AsyncWriteExt::write_all(&mut s, req.as_bytes())
                .await
                .unwrap();
            let mut buf = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
            String::from_utf8_lossy(&buf)
                .split(' ')
                .nth(1)
                .unwrap_or("")
                .to_string()
        }
    };
    // From the front end: remote, with or without a forwarding header, whatever client it
    // names (here a loopback one).
    assert_eq!(metrics("127.0.0.1", "").await, "403");
    assert_eq!(
        metrics("127.0.0.1", "X-Forwarded-For: 127.0.0.1\r\n").await,
        "403"
    );
    // A local scraper on another loopback address still gets them.
    assert_eq!(metrics("127.0.0.9", "").await, "200");
    assert_eq!(
        metrics("127.0.0.9", "X-Forwarded-For: 127.0.0.1\r\n").await,
        "403"
    );
    let h2 = start("[server]\ntrusted_proxies = [\"127.0.0.1\"]\n[metrics]\nallow_remote = true\n")
        .await;
    assert_eq!(get(h2.local_addr(), "/metrics").await.0, 200);
}

#[tokio::test]
async fn a_reload_changes_the_trusted_proxies() {
    let text = "[limits]\nmax_connections_per_ip = 1\n";
    let h = start(text).await;
    let config = |extra: &str| {
        let mut c = prl_proxy::Config::from_toml_str(&format!("{extra}{text}")).unwrap();
        c.server.listen = h.local_addr();
        c
    };
    // Not trusted yet: one connection from the front end in all.
    let _a = upgrade(&h, FRONT, &[(XFF, "198.51.100.1")]).await.unwrap();
    closed_at_accept(&h, FRONT).await;
    h.reload_with(config(&format!(
        "[server]\ntrusted_proxies = [\"{FRONT}\"]\n"
    )))
    .unwrap();
    let _b = upgrade(&h, FRONT, &[(XFF, "198.51.100.2")]).await.unwrap();
    // A bad list is refused, naming the key, and the previous one stays in force.
    let mut bad = config("");
    bad.server.trusted_proxies = vec![FRONT.into(), "10.0.0.0/33".into()];
    match h.reload_with(bad) {
        Err(prl_proxy::StartError::Config(prl_proxy::config::ConfigError::Invalid {
            key, ..
        })) => assert_eq!(key, "server.trusted_proxies[1]"),
        other => panic!("{other:?}"),
    }
    let _c = upgrade(&h, FRONT, &[(XFF, "198.51.100.3")]).await.unwrap();
    // Trust withdrawn: the headers are ignored again.
    h.reload_with(config("")).unwrap();
    closed_at_accept(&h, FRONT).await;
}
