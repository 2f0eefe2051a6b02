//! Each fault mode, per run and per connection, and 200 concurrent sessions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::{ErrorCode, Uuid};
use prl_sim::Faults;
use prl_transport::Stage;

fn faults(specs: &[&str]) -> Faults {
    Faults::parse(specs.iter().copied()).unwrap()
}

fn short_budget(level: SecurityLevel) -> prl_transport::ClientConfig {
    client_config(level).with_budget(Some(Duration::from_millis(400)))
}

#[tokio::test]
async fn handshake_faults() {
    let mut cfg = config();
    cfg.faults = faults(&["refuse"]);
    let sim = start(cfg).await;
    let e = Client::connect(&sim, SecurityLevel::Low)
        .await
        .err()
        .unwrap();
    assert_eq!(e.prl_code(), ErrorCode::HANDSHAKE_FAILED, "{e}");

    sim.set_faults(faults(&["stall-handshake"]));
    let e = Client::connect_with(&sim, short_budget(SecurityLevel::Low))
        .await
        .err()
        .unwrap();
    assert_eq!(e.stage(), Stage::Handshake, "{e}");
    assert_eq!(e.kind(), "timeout");
    assert_eq!(e.prl_code(), ErrorCode::HANDSHAKE_FAILED);

    sim.set_faults(faults(&["stall-tls"]));
    let e = Client::connect_with(&sim, short_budget(SecurityLevel::High))
        .await
        .err()
        .unwrap();
    assert_eq!(e.stage(), Stage::Tls, "{e}");
    assert_eq!(e.prl_code(), ErrorCode::SSL_HANDSHAKE_FAILED);

    sim.set_faults(Faults::none());
    Client::connect(&sim, SecurityLevel::High)
        .await
        .unwrap()
        .login_ok()
        .await;
}

#[tokio::test]
async fn reply_faults() {
    let sim = start(config()).await;
    // delay
    sim.set_faults(faults(&["delay=300"]));
    let mut c = Client::connect(&sim, SecurityLevel::Normal).await.unwrap();
    let t = Instant::now();
    c.login_ok().await;
    assert!(t.elapsed() >= Duration::from_millis(300));

    // drop-after: the first package is answered, then the connection is dropped.
    sim.set_faults(faults(&["drop-after=1"]));
    let mut c = Client::connect(&sim, SecurityLevel::Normal).await.unwrap();
    c.login_ok().await;
    assert!(c.until_closed().await.is_empty());

    // garbage: not even a valid record.
    sim.set_faults(faults(&["garbage"]));
    let mut c = Client::connect(&sim, SecurityLevel::High).await.unwrap();
    let p = c.login_package(USER, PASSWORD, "");
    c.conn.send(p).await.unwrap();
    let e = c.next().await.unwrap().unwrap_err();
    assert_eq!(e.kind(), "record", "{e}");
    assert_eq!(e.prl_code(), ErrorCode::WS_DISP_CONNECTION_CLOSED);

    // bad-crc: a well-framed reply whose header checksum is wrong.
    sim.set_faults(faults(&["bad-crc"]));
    for level in [SecurityLevel::Low, SecurityLevel::High] {
        let mut c = Client::connect(&sim, level).await.unwrap();
        let p = c.login_package(USER, PASSWORD, "");
        c.conn.send(p).await.unwrap();
        let e = c.next().await.unwrap().unwrap_err();
        assert_eq!(e.kind(), "package", "{e}");
        assert!(e.to_string().contains("crc mismatch"), "{e}");
    }
}

#[tokio::test]
async fn per_connection_faults_touch_only_that_connection() {
    let sim = start(config()).await;
    let victim = Uuid::new_v4();
    sim.set_connection_faults(victim, faults(&["stall-tls"]));
    let e = Client::connect_with(
        &sim,
        short_budget(SecurityLevel::Low).with_connection_uuid(victim),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(e.prl_code(), ErrorCode::SSL_HANDSHAKE_FAILED, "{e}");
    // Everyone else is served.
    Client::connect(&sim, SecurityLevel::Low)
        .await
        .unwrap()
        .login_ok()
        .await;

    let victim = Uuid::new_v4();
    sim.set_connection_faults(victim, faults(&["delay=500", "drop-after=2"]));
    let mut v = Client::connect_with(
        &sim,
        client_config(SecurityLevel::High).with_connection_uuid(victim),
    )
    .await
    .unwrap();
    let mut other = Client::connect(&sim, SecurityLevel::High).await.unwrap();
    let t = Instant::now();
    other.login_ok().await;
    assert!(t.elapsed() < Duration::from_millis(450));
    let t = Instant::now();
    v.login_ok().await;
    assert!(t.elapsed() >= Duration::from_millis(500));
    let p = v.simple(prl_protocol::codes::cmd::USER_PING);
    assert_eq!(v.request(p).await.code, ErrorCode::UNIMPLEMENTED);
    assert!(v.until_closed().await.is_empty());
}

#[tokio::test]
async fn two_hundred_concurrent_sessions() {
    let sim = start(config()).await;
    let started = Instant::now();
    let mut handles = Vec::new();
    for i in 0..200 {
        let level = [
            SecurityLevel::Low,
            SecurityLevel::Normal,
            SecurityLevel::High,
        ][i % 3];
        let addr = sim.tcp_addr().unwrap();
        handles.push(tokio::spawn(async move {
            let conn = prl_transport::connect(
                &prl_transport::Endpoint::tcp("127.0.0.1", addr.port()),
                &client_config(level),
            )
            .await
            .unwrap();
            let mut c = Client {
                conn,
                backlog: Vec::new(),
            };
            let r = c.login_ok().await;
            assert_eq!(session_of(&r), braced(&c.me()));
            c
        }));
    }
    let mut clients = Vec::new();
    for h in handles {
        clients.push(h.await.unwrap());
    }
    assert_eq!(sim.session_count(), 200);
    eprintln!("200 sessions up in {:?}", started.elapsed());
    // All of them still answer, then log off.
    let mut handles = Vec::new();
    for mut c in clients {
        handles.push(tokio::spawn(async move {
            let p = c.simple(prl_protocol::codes::cmd::USER_PING);
            assert_eq!(c.request(p).await.code, ErrorCode::UNIMPLEMENTED);
            assert_eq!(c.logoff().await.code, ErrorCode::SUCCESS);
            c.until_closed().await;
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sim.session_count(), 0);
}
