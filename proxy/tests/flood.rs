//! Floods from more addresses than a per-address share can hold off: a full pool of
//! connections that have not authenticated gives a newcomer from a client holding fewer
//! slots the oldest slot of the client holding the most (`proxy/src/fairpool.rs`), so a
//! legitimate browser from a new address still upgrades, opens and logs in, and the evicted
//! connection hears why (`limit_reached`, "evicted: ...").
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

#[path = "common/relay.rs"]
mod browser;
mod common;
use browser::*;

use std::time::Duration;

use common::*;
use prl_protocol::relay::{RelayError, RelayErrorKind};
use tokio::io::AsyncReadExt;

const RELAY: &str = "prl-relay.v1";

fn rejected(h: &prl_proxy::ProxyHandle, reason: &str) -> f64 {
    metric(
        &h.metrics_text(),
        &format!("prl_proxy_rejections_total{{reason=\"{reason}\"}}"),
    )
}

fn assert_evicted(e: RelayError, pool: &str) {
    assert_eq!(e.kind, RelayErrorKind::LimitReached, "{e:?}");
    assert!(e.message.starts_with("evicted: "), "{}", e.message);
    assert!(e.message.contains(pool), "{}", e.message);
}

#[tokio::test]
async fn opens_that_never_log_in_from_many_addresses_leave_room_for_a_login() {
    let sim = sim().await;
    // 6 unauthenticated upstreams, 2 per address: 3 addresses fill the pool.
    let h = start(&format!(
        "{}[limits]\nmax_unauthenticated_upstreams = 6\nmax_unauthenticated_upstreams_per_ip = 2\n",
        sim_target(&sim)
    ))
    .await;
    // The flood: opens that never log in, in rounds over 127.0.0.2-4 (the oldest first).
    let mut flood = Vec::new();
    for _ in 0..2 {
        for a in 2..=4 {
            flood.push(
                Browser::open_via(&h, &format!("127.0.0.{a}"))
                    .await
                    .unwrap(),
            );
        }
    }
    // A legitimate browser from a new address opens: every flooding address holds 2, so the
    // oldest of their slots (127.0.0.2's first) is taken back.
    let mut legit = Browser::open_via(&h, "127.0.0.10")
        .await
        .expect("a legitimate open while the pool is full");
    assert_evicted(
        next_relay_error(&mut flood[0].ws).await,
        "waiting for a login",
    );
    assert_eq!(rejected(&h, "unauthenticated_evicted"), 1.0);
    // The address that lost a slot cannot take one back from the others (it holds one
    // fewer, not two), and the legitimate browser holds only one: the refill is refused.
    let e = Browser::open_via(&h, "127.0.0.2").await.err().unwrap();
    assert_eq!(e.kind, RelayErrorKind::LimitReached, "{e:?}");
    assert!(!e.message.starts_with("evicted"), "{}", e.message);
    assert_eq!(rejected(&h, "unauthenticated_upstreams"), 1.0);
    assert_eq!(rejected(&h, "unauthenticated_evicted"), 1.0);
    legit.login_ok("").await;
    legit.ping().await.unwrap();
    // Logged in, it no longer holds a slot: the next open finds room without evicting.
    let _refill = Browser::open_via(&h, "127.0.0.2").await.unwrap();
    assert_eq!(rejected(&h, "unauthenticated_evicted"), 1.0);
    // A second legitimate browser gets in again, taking 127.0.0.3's oldest.
    let mut second = Browser::open_via(&h, "127.0.0.11").await.unwrap();
    assert_evicted(
        next_relay_error(&mut flood[1].ws).await,
        "waiting for a login",
    );
    second.login_ok("").await;
}

#[tokio::test]
async fn silent_websockets_from_many_addresses_leave_room_for_a_login() {
    let sim = sim().await;
    // 4 pre-auth connections, 2 per address: 2 addresses fill the pool.
    let h = start(&format!(
        "{}[limits]\nmax_preauth_connections = 4\nmax_preauth_per_ip = 2\n",
        sim_target(&sim)
    ))
    .await;
    let (addr, origin) = (h.local_addr(), own_origin(&h));
    // The flood: upgraded WebSockets that never send a message.
    let mut flood = Vec::new();
    for _ in 0..2 {
        for a in 2..=3 {
            let from = format!("127.0.0.{a}");
            let (ws, _) = ws_connect_from(&from, addr, Some(&origin), &[RELAY])
                .await
                .unwrap();
            flood.push(ws);
        }
    }
    // A legitimate browser from a new address upgrades (no 503), opens and logs in.
    let mut legit = Browser::open_via(&h, "127.0.0.10")
        .await
        .expect("a legitimate open while the pool is full");
    assert_evicted(
        next_relay_error(&mut flood[0]).await,
        "waiting for their first message",
    );
    assert_eq!(rejected(&h, "preauth_evicted"), 1.0);
    assert_eq!(rejected(&h, "preauth_connections"), 0.0);
    legit.login_ok("").await;
}

#[tokio::test]
async fn a_connection_evicted_before_its_upgrade_is_closed() {
    // Slowloris: connections that never finish a request head, held as long as the
    // handshake deadline (60 s here) allows.
    let h = start(
        "[limits]\nmax_preauth_connections = 2\nmax_preauth_per_ip = 2\n\
         handshake_timeout_ms = 60000\n",
    )
    .await;
    let addr = h.local_addr();
    let mut oldest = tcp_from("127.0.0.2", addr).await;
    let _other = tcp_from("127.0.0.2", addr).await;
    metric_becomes(&h, "prl_proxy_connections", 2.0).await;
    // The pool is full; a request from another address (127.0.0.1) is served...
    assert_eq!(get(addr, "/healthz").await.0, 200);
    assert_eq!(rejected(&h, "preauth_evicted"), 1.0);
    // ...and the oldest slowloris connection is closed.
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), oldest.read(&mut buf))
        .await
        .expect("the evicted connection is still open")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
}
