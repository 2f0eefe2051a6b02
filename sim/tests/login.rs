//! Logins, error codes and security levels against the simulator over real loopback sockets,
//! with the `prl-transport` client role.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use prl_protocol::codes::cmd;
use prl_protocol::commands::{param, Reply};
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::package::{text_buffer, Package, MNG_HEARTBEAT};
use prl_protocol::{ErrorCode, Uuid};
use prl_transport::{connect, Endpoint};

#[tokio::test]
async fn login_at_each_level_routes_packages_plain_or_tls_on_the_wire() {
    let mut cfg = config();
    cfg.heartbeat_interval = Duration::from_millis(30);
    let sim = start(cfg).await;
    for level in [
        SecurityLevel::Low,
        SecurityLevel::Normal,
        SecurityLevel::High,
    ] {
        let tap = Tap::start(sim.tcp_addr().unwrap()).await;
        let conn = connect(
            &Endpoint::tcp("127.0.0.1", tap.addr.port()),
            &client_config(level).with_heartbeat(Some(Duration::from_millis(30))),
        )
        .await
        .unwrap();
        assert_eq!(conn.info().security_level, level);
        let mut c = Client {
            conn,
            backlog: Vec::new(),
        };
        let reply = c.login_ok().await;
        assert_eq!(reply.opcode, cmd::USER_LOGIN);
        let heartbeats = |w: &Wire| {
            w.plain_types
                .iter()
                .filter(|t| **t == MNG_HEARTBEAT)
                .count()
        };
        // Heartbeats travel plain below HIGH: wait until two went each way (at HIGH they are
        // inside TLS, where the tap cannot count them).
        if level != SecurityLevel::High {
            wait_until("two heartbeats each way", || {
                let up = dissect(&tap.client_to_server.lock().unwrap());
                let down = dissect(&tap.server_to_client.lock().unwrap());
                heartbeats(&up) >= 2 && heartbeats(&down) >= 2
            })
            .await;
        }
        assert_eq!(c.logoff().await.code, ErrorCode::SUCCESS);
        c.until_closed().await;
        wait_until("the tap relayed both directions to their end", || {
            tap.finished()
        })
        .await;

        let up = dissect(&tap.client_to_server.lock().unwrap());
        let down = dissect(&tap.server_to_client.lock().unwrap());
        match level {
            SecurityLevel::Low => {
                // Everything plain; the login went as 3 writes (header, descriptors, buffer).
                assert_eq!(up.tls_app_records, 0);
                assert_eq!(down.tls_app_records, 0);
                assert!(up.plain_types.contains(&cmd::USER_LOGIN));
                assert!(up.plain_types.contains(&cmd::USER_LOGOFF));
                assert_eq!(&up.plain_records[..2], &[82, 8]);
                assert!(down.plain_types.contains(&cmd::WS_BINARY_RESPONSE));
                assert!(down.plain_types.contains(&cmd::WS_RESPONSE));
                assert!(heartbeats(&up) >= 2 && heartbeats(&down) >= 2);
            }
            SecurityLevel::Normal => {
                // Commands and replies through TLS, heartbeats plain.
                assert!(up.plain_types.iter().all(|t| *t == MNG_HEARTBEAT), "{up:?}");
                assert!(
                    down.plain_types.iter().all(|t| *t == MNG_HEARTBEAT),
                    "{down:?}"
                );
                assert!(heartbeats(&up) >= 2 && heartbeats(&down) >= 2);
                assert!(up.tls_app_records >= 6, "login and logoff, 3 records each");
                assert!(down.tls_app_records >= 2);
            }
            SecurityLevel::High => {
                assert!(up.plain_records.is_empty() && down.plain_records.is_empty());
                assert!(up.tls_app_records >= 6 && down.tls_app_records >= 2);
            }
        }
        assert!(up.tls_handshake_records >= 2 && down.tls_handshake_records >= 2);
    }
}

#[tokio::test]
async fn login_reply_carries_the_session_and_server_info() {
    let mut cfg = config();
    cfg.server_uuid = Uuid::from_u128(0x1234);
    cfg.product_version = "7.0.1".into();
    cfg.os_version = "Linux test".into();
    let sim = start(cfg).await;
    let mut c = Client::connect(&sim, SecurityLevel::High).await.unwrap();
    let p = c.login_package(USER, PASSWORD, "");
    let job = p.header.uuid;
    c.conn.send(p).await.unwrap();
    let raw = c.next().await.unwrap().unwrap();
    // A binary response to the login job, broadcast-style like the real one (no receiver).
    assert_eq!(raw.header.package_type, cmd::WS_BINARY_RESPONSE);
    assert_eq!(raw.header.parent_uuid, job);
    assert_eq!(raw.header.receiver_uuid, Uuid::nil());
    assert_eq!(raw.header.sender_uuid, c.conn.info().peer_connection_uuid);
    let reply = Reply::parse(&raw).unwrap();
    assert_eq!(reply.code, ErrorCode::SUCCESS);
    assert_eq!(reply.opcode, cmd::USER_LOGIN);
    let login = reply.login_response().unwrap();
    // The session id is the client's connection uuid.
    assert_eq!(login.session_uuid, braced(&c.me()));
    assert_eq!(login.server_uuid, braced(&Uuid::from_u128(0x1234)));
    assert_eq!(login.product_version, "7.0.1");
    assert_eq!(login.host_os_version, "Linux test");
    assert!(login.start_time_ms.unwrap() > 1_600_000_000_000);
    assert!(login.running_tasks.is_empty());
    let event = reply.login.unwrap();
    assert_eq!(event.string(param::APP_EXECUTE_MODE), Some("0"));
    assert!(event.string(param::START_TIME_MONOTONIC).is_some());
    assert_eq!(sim.session_count(), 1);
}

#[tokio::test]
async fn login_failures_have_the_service_codes() {
    let sim = start(config()).await;
    let mut c = Client::connect(&sim, SecurityLevel::Normal).await.unwrap();
    // Wrong password, unknown user, empty user.
    for (user, pw) in [(USER, "wrong"), ("nobody", PASSWORD), ("", "")] {
        let r = c.login(user, pw, "").await;
        assert_eq!(r.code, ErrorCode::AUTHENTICATION_FAILED, "{user:?}");
        assert_eq!(r.opcode, cmd::USER_LOGIN);
        assert!(r.login.is_none());
    }
    // A login event missing login_cmd_session_uuid_to_restore: PRL_ERR_FAILURE.
    let mut event = prl_protocol::commands::command_event(0, &mut Uuid::new_v4);
    event.add_string(param::LOGIN_USERNAME, USER);
    event.add_string(param::LOGIN_PASSWORD, PASSWORD);
    let p =
        prl_protocol::commands::request_package(cmd::USER_LOGIN, &event, Uuid::new_v4(), c.me());
    assert_eq!(c.request(p).await.code, ErrorCode::FAILURE);
    // Not XML at all.
    let p = Package::request(
        cmd::USER_LOGIN,
        Uuid::new_v4(),
        c.me(),
        vec![text_buffer("<nope")],
    );
    assert_eq!(c.request(p).await.code, ErrorCode::FAILURE);
    // A password over 1368 characters: INVALID_ARG with an error event.
    let long = "x".repeat(1369);
    let r = c.login(USER, &long, "").await;
    assert_eq!(r.code, ErrorCode::INVALID_ARG);
    let err = r.error_event().unwrap();
    assert!(err.string("Details").unwrap().contains("1024"));
    // Still not logged in, still served.
    assert_eq!(sim.session_count(), 0);
    c.login_ok().await;
}

#[tokio::test]
async fn second_login_logoff_and_commands_before_login() {
    let sim = start(config()).await;
    let mut c = Client::connect(&sim, SecurityLevel::Low).await.unwrap();
    // Before login: everything but the logins is refused.
    for t in [
        cmd::USER_PING,
        cmd::USER_LOGOFF,
        cmd::ATTACH_TO_LOST_TASK,
        2999,
    ] {
        let p = c.simple(t);
        let r = c.request(p).await;
        assert_eq!(r.code, ErrorCode::USER_OPERATION_NOT_AUTHORISED, "type {t}");
        assert_eq!(r.opcode, t);
    }
    c.login_ok().await;
    let r = c.login(USER, PASSWORD, "").await;
    assert_eq!(r.code, ErrorCode::USER_IS_ALREADY_LOGGED);
    let r = c.login_local("").await;
    assert_eq!(r.code, ErrorCode::USER_IS_ALREADY_LOGGED);
    // After login: ping and unknown commands are not implemented by the service.
    for t in [cmd::USER_PING, 2999, 4242] {
        let p = c.simple(t);
        assert_eq!(
            c.request(p).await.code,
            ErrorCode::UNIMPLEMENTED,
            "type {t}"
        );
    }
    // Malformed cancel / attach payloads.
    let p = Package::request(
        cmd::USER_CANCEL_OPERATION,
        Uuid::new_v4(),
        c.me(),
        vec![text_buffer("x")],
    );
    assert_eq!(c.request(p).await.code, ErrorCode::UNRECOGNIZED_REQUEST);
    let p = Package::request(
        cmd::ATTACH_TO_LOST_TASK,
        Uuid::new_v4(),
        c.me(),
        vec![text_buffer("x")],
    );
    assert_eq!(c.request(p).await.code, ErrorCode::FAILURE);
    // Cancel of a job that is no task.
    let p = c.one_str(cmd::USER_CANCEL_OPERATION, &braced(&Uuid::new_v4()));
    assert_eq!(c.request(p).await.code, ErrorCode::TASK_NOT_FOUND);
    // Logoff: SUCCESS, then the service closes the connection.
    let r = c.logoff().await;
    assert_eq!(r.code, ErrorCode::SUCCESS);
    assert_eq!(r.opcode, cmd::USER_LOGOFF);
    assert!(c.until_closed().await.is_empty());
    wait_until("the session ended", || sim.session_count() == 0).await;
}

#[tokio::test]
async fn refusal_below_the_minimum_security_level() {
    let mut cfg = config();
    cfg.min_security = SecurityLevel::Normal;
    let sim = start(cfg).await;
    let e = Client::connect(&sim, SecurityLevel::Low)
        .await
        .err()
        .unwrap();
    assert_eq!(e.prl_code(), ErrorCode::HANDSHAKE_FAILED, "{e}");
    let mut c = Client::connect(&sim, SecurityLevel::Normal).await.unwrap();
    c.login_ok().await;
    // A quirk of the real `IORoutingTable::accept`: a NORMAL server's default route is
    // Plain/Required, which conflicts with a HIGH client's SSL/Required default, so a HIGH
    // client is refused as well.
    let e = Client::connect(&sim, SecurityLevel::High)
        .await
        .err()
        .unwrap();
    assert_eq!(e.prl_code(), ErrorCode::HANDSHAKE_FAILED, "{e}");

    let mut cfg = config();
    cfg.min_security = SecurityLevel::High;
    let sim = start(cfg).await;
    for level in [SecurityLevel::Low, SecurityLevel::Normal] {
        let e = Client::connect(&sim, level).await.err().unwrap();
        assert_eq!(e.prl_code(), ErrorCode::HANDSHAKE_FAILED, "{e}");
    }
    let mut c = Client::connect(&sim, SecurityLevel::High).await.unwrap();
    c.login_ok().await;
}

#[tokio::test]
async fn heartbeats_are_sent_and_the_clients_are_ignored() {
    let mut cfg = config();
    cfg.heartbeat_interval = Duration::from_millis(25);
    let sim = start(cfg).await;
    let tap = Tap::start(sim.tcp_addr().unwrap()).await;
    let conn = connect(
        &Endpoint::tcp("127.0.0.1", tap.addr.port()),
        &client_config(SecurityLevel::Low).with_heartbeat(Some(Duration::from_millis(10))),
    )
    .await
    .unwrap();
    let mut c = Client {
        conn,
        backlog: Vec::new(),
    };
    let count = |w: &Wire| {
        w.plain_types
            .iter()
            .filter(|t| **t == MNG_HEARTBEAT)
            .count()
    };
    // Several heartbeats each way before the login.
    wait_until("heartbeats each way on the wire", || {
        let up = dissect(&tap.client_to_server.lock().unwrap());
        let down = dissect(&tap.server_to_client.lock().unwrap());
        count(&up) >= 5 && count(&down) >= 3
    })
    .await;
    // The client's heartbeats got no answer: the first package we see is the login reply.
    let p = c.login_package(USER, PASSWORD, "");
    let id = p.header.uuid;
    c.conn.send(p).await.unwrap();
    let first = c.next().await.unwrap().unwrap();
    assert_eq!(first.header.parent_uuid, id);
    let up = dissect(&tap.client_to_server.lock().unwrap());
    let down = dissect(&tap.server_to_client.lock().unwrap());
    assert!(count(&up) >= 5, "client heartbeats: {}", count(&up));
    assert!(count(&down) >= 3, "service heartbeats: {}", count(&down));
}

#[tokio::test]
async fn a_hostile_client_only_closes_its_own_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sim = start(config()).await;
    let mut good = Client::connect(&sim, SecurityLevel::High).await.unwrap();
    good.login_ok().await;
    // Plaintext garbage instead of a hello.
    let mut raw = tokio::net::TcpStream::connect(sim.tcp_addr().unwrap())
        .await
        .unwrap();
    raw.write_all(&[0xAB; 200]).await.unwrap();
    let mut sink = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut sink))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 92, "only the server hello came back before the close");
    // A package that declares a 512 MiB buffer, after a proper handshake.
    let mut bad = Client::connect(&sim, SecurityLevel::Low).await.unwrap();
    let mut header = Package::request(2000, Uuid::new_v4(), bad.me(), vec![])
        .header
        .to_bytes(1);
    header[80..82].copy_from_slice(&[0, 0]);
    let crc = prl_protocol::crc::crc16_x25(&header[..80]);
    header[80..82].copy_from_slice(&crc.to_le_bytes());
    let mut descriptor = 0u32.to_le_bytes().to_vec();
    descriptor.extend_from_slice(&(512u32 << 20).to_le_bytes());
    bad.conn
        .sender()
        .send_raw_parts(2000, vec![header.to_vec(), descriptor])
        .await
        .unwrap();
    bad.until_closed().await;
    // Garbage records after the handshake.
    let bad2 = Client::connect(&sim, SecurityLevel::Low).await.unwrap();
    bad2.conn
        .sender()
        .send_raw_wire(vec![0x01; 300])
        .await
        .unwrap();
    let mut bad2 = bad2;
    bad2.until_closed().await;
    // The good session is still served.
    let p = good.simple(cmd::USER_PING);
    assert_eq!(good.request(p).await.code, ErrorCode::UNIMPLEMENTED);
    assert_eq!(sim.session_count(), 1);
}
