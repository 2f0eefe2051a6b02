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
async fn refuse_is_a_refused_connection_and_close_on_accept_a_closed_one() {
    let dir = temp_dir();
    let mut cfg = config();
    cfg.unix = Some(dir.join("prl.sock"));
    cfg.faults = faults(&["refuse"]);
    let sim = start(cfg).await;
    // Nobody listens: the OS refuses, the SDK reports CANT_CONNECT_TO_DISPATCHER.
    let e = Client::connect(&sim, SecurityLevel::Low)
        .await
        .err()
        .unwrap();
    assert_eq!(e.stage(), Stage::Connect, "{e}");
    assert_eq!(e.kind(), "connect");
    assert_eq!(e.prl_code(), ErrorCode::CANT_CONNECT_TO_DISPATCHER, "{e}");
    let refused = |e: &std::io::Error| e.kind() == std::io::ErrorKind::ConnectionRefused;
    let tcp = std::net::TcpStream::connect(sim.tcp_addr().unwrap()).unwrap_err();
    assert!(refused(&tcp), "{tcp}");
    let unix = std::os::unix::net::UnixStream::connect(sim.unix_path().unwrap()).unwrap_err();
    assert!(refused(&unix), "{unix}");
    // Cleared: listening again on the same address and socket.
    sim.set_faults(Faults::none()).await;
    Client::connect(&sim, SecurityLevel::Low)
        .await
        .unwrap()
        .login_ok()
        .await;
    Client::connect_unix(&sim).await.unwrap().login_ok().await;
    // And refused again, while a connection made before goes on.
    let mut before = Client::connect(&sim, SecurityLevel::Low).await.unwrap();
    sim.set_faults(faults(&["refuse"])).await;
    let e = Client::connect(&sim, SecurityLevel::Low)
        .await
        .err()
        .unwrap();
    assert_eq!(e.prl_code(), ErrorCode::CANT_CONNECT_TO_DISPATCHER, "{e}");
    before.login_ok().await;

    // close-on-accept: the connection is accepted and closed before the handshake.
    sim.set_faults(faults(&["close-on-accept"])).await;
    let e = Client::connect(&sim, SecurityLevel::Low)
        .await
        .err()
        .unwrap();
    assert_eq!(e.stage(), Stage::Handshake, "{e}");
    assert_eq!(e.prl_code(), ErrorCode::HANDSHAKE_FAILED, "{e}");
    drop(sim);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn handshake_faults() {
    let sim = start(config()).await;
    sim.set_faults(faults(&["stall-handshake"])).await;
    let e = Client::connect_with(&sim, short_budget(SecurityLevel::Low))
        .await
        .err()
        .unwrap();
    assert_eq!(e.stage(), Stage::Handshake, "{e}");
    assert_eq!(e.kind(), "timeout");
    assert_eq!(e.prl_code(), ErrorCode::HANDSHAKE_FAILED);

    sim.set_faults(faults(&["stall-tls"])).await;
    let e = Client::connect_with(&sim, short_budget(SecurityLevel::High))
        .await
        .err()
        .unwrap();
    assert_eq!(e.stage(), Stage::Tls, "{e}");
    assert_eq!(e.prl_code(), ErrorCode::SSL_HANDSHAKE_FAILED);

    sim.set_faults(Faults::none()).await;
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
    sim.set_faults(faults(&["delay=300"])).await;
    let mut c = Client::connect(&sim, SecurityLevel::Normal).await.unwrap();
    let t = Instant::now();
    c.login_ok().await;
    assert!(t.elapsed() >= Duration::from_millis(300));

    // drop-after: the first package is answered, then the connection is dropped.
    sim.set_faults(faults(&["drop-after=1"])).await;
    let mut c = Client::connect(&sim, SecurityLevel::Normal).await.unwrap();
    c.login_ok().await;
    assert!(c.until_closed().await.is_empty());

    // garbage: not even a valid record.
    sim.set_faults(faults(&["garbage"])).await;
    let mut c = Client::connect(&sim, SecurityLevel::High).await.unwrap();
    let p = c.login_package(USER, PASSWORD, "");
    c.conn.send(p).await.unwrap();
    let e = c.next().await.unwrap().unwrap_err();
    assert_eq!(e.kind(), "record", "{e}");
    assert_eq!(e.prl_code(), ErrorCode::WS_DISP_CONNECTION_CLOSED);

    // bad-crc: a well-framed reply whose header checksum is wrong.
    sim.set_faults(faults(&["bad-crc"])).await;
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
    // A connection is known by its uuid only once its hello is in: per connection, `refuse`
    // and `close-on-accept` close it right after the hello.
    for spec in ["refuse", "close-on-accept"] {
        let victim = Uuid::new_v4();
        sim.set_connection_faults(victim, faults(&[spec]));
        let e = Client::connect_with(
            &sim,
            client_config(SecurityLevel::Low).with_connection_uuid(victim),
        )
        .await
        .err()
        .unwrap();
        assert_eq!(e.prl_code(), ErrorCode::HANDSHAKE_FAILED, "{spec}: {e}");
    }

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
    wait_until("every session ended", || sim.session_count() == 0).await;
}
