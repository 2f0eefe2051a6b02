//! The relay against prl-sim over real loopback sockets: logins at each security level,
//! policy denials, tickets, limits, timeouts, resume, takeover refusal, local login.
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

#[path = "common/relay.rs"]
mod browser;
mod common;
use browser::*;

use std::time::{Duration, Instant};

use common::*;
use futures_util::SinkExt;
use prl_protocol::codes::cmd;
use prl_protocol::commands::{self, LoginLocalRequest};
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::relay::{ClientMessage, ConnectMode, RelayErrorKind, Secret};
use prl_protocol::{ErrorCode, Uuid};
use prl_proxy::config::DEFAULT_AUDIENCE;
use prl_proxy::ticket::TicketIssuer;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn login_through_the_proxy_at_each_security_level() {
    let sim = sim().await;
    let h = start(&format!(
        "{}[limits]\nlogin_burst_per_user = 20\n",
        sim_target(&sim)
    ))
    .await;
    for level in [
        SecurityLevel::Low,
        SecurityLevel::Normal,
        SecurityLevel::High,
    ] {
        let mut b = Browser::open(&h, open_request("sim", level)).await.unwrap();
        let o = b.opened.clone().unwrap();
        assert_eq!(o.security_level, level);
        assert_eq!(o.service_protocol, "6.10");
        assert_eq!(o.tls_version, "TLSv1.2");
        assert!(o.cipher.starts_with("ADH-"), "{}", o.cipher);
        assert_eq!(o.resume_window_ms, 60_000);
        let reply = b.login(USER, PASSWORD, "").await.unwrap();
        assert_eq!(reply.code, ErrorCode::SUCCESS, "{level:?}");
        let login = reply.login_response().unwrap();
        assert_eq!(
            login.session_uuid, o.connection_uuid,
            "session uuid = proxy's connection uuid"
        );
        b.ping().await.unwrap(); // any reply: a round trip through the logged-in session
                                 // Wrong password is the service's answer, relayed untouched.
        let mut c = Browser::open(&h, open_request("sim", level)).await.unwrap();
        assert_eq!(
            c.login(USER, "wrong", "").await.unwrap().code,
            ErrorCode::AUTHENTICATION_FAILED
        );
        // Logoff: reply, then the service closes and the proxy reports it.
        let job = Uuid::new_v4();
        b.send(&commands::simple_command(
            cmd::USER_LOGOFF,
            job,
            b.conn_uuid,
            &mut Uuid::new_v4,
        ))
        .await;
        assert_eq!(b.reply_to(job).await.unwrap().code, ErrorCode::SUCCESS);
        let e = b.next().await.unwrap_err();
        assert_eq!(e.kind, RelayErrorKind::Closed);
    }
    let m = h.metrics_text();
    assert_eq!(
        metric(&m, "prl_proxy_logins_total{outcome=\"success\"}"),
        3.0
    );
    assert_eq!(
        metric(&m, "prl_proxy_logins_total{outcome=\"failure\"}"),
        3.0
    );
    assert_eq!(metric(&m, "prl_proxy_sessions_opened_total"), 6.0);
}

#[tokio::test]
async fn an_overlong_password_gets_the_services_answer() {
    // The proxy never decodes the password: the service's own refusal reaches the browser,
    // and the connection stays usable for another attempt.
    let sim = sim().await;
    let h = start(&sim_target(&sim)).await;
    let mut b = opened(&h, SecurityLevel::Normal).await;
    let long = "p".repeat(commands::MAX_ENCODED_PASSWORD_LENGTH + 1);
    let reply = b.login(USER, &long, "").await.unwrap();
    assert_eq!(reply.code, ErrorCode::INVALID_ARG);
    assert_eq!(
        b.login(USER, PASSWORD, "").await.unwrap().code,
        ErrorCode::SUCCESS
    );
}

#[tokio::test]
async fn policy_denials() {
    let sim = sim().await;
    let port = sim.tcp_addr().unwrap().port();
    let toml = format!(
        "{}[[policy.allow]]\ncidr = \"10.0.0.0/8\"\nports = [64000]\n[[policy.allow]]\ncidr = \"0.0.0.0/0\"\nports = [{port}]\n",
        sim_target(&sim)
    );
    let h = start(&toml).await;
    let cases: &[(&str, u16, &str)] = &[
        ("192.0.2.1", 0, "port"), // not in 10/8 at 64000, 0/0 only for the sim port
        ("10.0.0.1", 22, "port"), // port not allowed
        // A name resolving to a denied address: refused without saying what it resolved to.
        ("localhost", port, "not allowed by this proxy's policy"),
        ("127.0.0.1", port, "loopback"), // 0.0.0.0/0 does not open loopback
        ("::ffff:127.0.0.1", port, "loopback"), // IPv4-mapped IPv6
        ("[::ffff:7f00:1]", port, "loopback"),
        ("2130706433", port, "loopback"), // decimal
        ("0x7f000001", port, "loopback"), // hex
        ("0177.0.0.1", port, "loopback"), // octal
        ("127.1", port, "loopback"),      // short form
        ("169.254.169.254", port, "metadata"),
        ("0.0.0.0", port, "unspecified"),
        ("::1", port, "loopback"),
        ("sim", 1, "port"), // a named target at another port
        ("bad host!", 0, "malformed"),
    ];
    for (host, port, why) in cases {
        let mut req = open_request(host, SecurityLevel::Low);
        req.target.port = *port;
        let e = Browser::open(&h, req)
            .await
            .err()
            .unwrap_or_else(|| panic!("{host} was allowed"));
        assert_eq!(e.kind, RelayErrorKind::PolicyDenied, "{host}: {e:?}");
        assert!(e.message.contains(why), "{host}: {}", e.message);
        assert_eq!(e.code, None);
        if *host == "localhost" {
            for leak in ["127.0.0.1", "::1", "loopback"] {
                assert!(!e.message.contains(leak), "{host}: {}", e.message);
            }
        }
    }
    assert_eq!(
        metric(&h.metrics_text(), "prl_proxy_sessions_opened_total"),
        0.0
    );
    assert_eq!(
        metric(
            &h.metrics_text(),
            "prl_proxy_rejections_total{reason=\"policy_denied\"}"
        ),
        cases.len() as f64
    );
    // Unresolvable names are dns_failed.
    let e = Browser::open(
        &h,
        open_request("does-not-exist.invalid", SecurityLevel::Low),
    )
    .await
    .err()
    .unwrap();
    assert_eq!(e.kind, RelayErrorKind::DnsFailed);
    assert_eq!(e.code, Some(ErrorCode::CANT_CONNECT_TO_DISPATCHER.0));
    // Only the kind: no resolver detail.
    assert_eq!(e.message, "the target name did not resolve");
}

#[tokio::test]
async fn connect_failures_are_typed_with_sdk_codes() {
    let stalled = sim_with(|c| c.faults.stall_handshake = true).await;
    let strict = sim_with(|c| c.min_security = SecurityLevel::High).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let toml = format!(
        "[limits]\nconnect_timeout_ms = 400\n[[policy.target]]\nname = \"stalled\"\nhost = \"127.0.0.1\"\nport = {}\n\
[[policy.target]]\nname = \"strict\"\nhost = \"127.0.0.1\"\nport = {}\n[[policy.target]]\nname = \"closed\"\nhost = \"127.0.0.1\"\nport = {}\n",
        stalled.tcp_addr().unwrap().port(),
        strict.tcp_addr().unwrap().port(),
        closed.port()
    );
    let h = start(&toml).await;
    // The client's budget.
    let mut req = open_request("stalled", SecurityLevel::Low);
    req.timeout_ms = 200;
    let t0 = Instant::now();
    let e = Browser::open(&h, req.clone()).await.err().unwrap();
    assert_eq!(e.kind, RelayErrorKind::Timeout);
    assert_eq!(e.code, Some(ErrorCode::CANT_CONNECT_TO_DISPATCHER.0));
    assert!(
        t0.elapsed() < Duration::from_millis(380),
        "{:?}",
        t0.elapsed()
    );
    // 0 = the proxy's ceiling (400 ms here), and a larger budget is capped by it.
    for timeout_ms in [0, 30_000] {
        req.timeout_ms = timeout_ms;
        let t0 = Instant::now();
        let e = Browser::open(&h, req.clone()).await.err().unwrap();
        assert_eq!(e.kind, RelayErrorKind::Timeout);
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(380) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }
    // Below the service's minimum security level: it closes during the handshake.
    let e = Browser::open(&h, open_request("strict", SecurityLevel::Low))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, RelayErrorKind::HandshakeFailed, "{e:?}");
    assert_eq!(e.code, Some(ErrorCode::HANDSHAKE_FAILED.0));
    assert!(
        Browser::open(&h, open_request("strict", SecurityLevel::High))
            .await
            .is_ok()
    );
    let e = Browser::open(&h, open_request("closed", SecurityLevel::Low))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, RelayErrorKind::ConnectionRefused);
    assert_eq!(e.code, Some(ErrorCode::CANT_CONNECT_TO_DISPATCHER.0));
    // The address the target resolved to is not shown.
    assert!(!e.message.contains("127.0.0.1"), "{}", e.message);
    assert!(
        e.message.starts_with("cannot connect to the target"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn tickets_in_the_open_message() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("k");
    std::fs::write(&key_path, [9u8; 48]).unwrap();
    let key = TicketIssuer::hs256_file(&key_path, None, DEFAULT_AUDIENCE).unwrap();
    let toml = format!(
        "{}[tickets]\nkey_file = {:?}\nmax_ttl_secs = 60\n",
        sim_target(&sim),
        key_path.display().to_string()
    );
    let h = start(&toml).await;
    let origin = own_origin(&h);
    let now = prl_proxy::util::unix_now();
    // Required: none is refused.
    let e = Browser::open(&h, open_request("sim", SecurityLevel::Low))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, RelayErrorKind::TicketInvalid);
    let with = |t: String| {
        let mut r = open_request("sim", SecurityLevel::Low);
        r.ticket = Some(Secret(t));
        r
    };
    let good = key.remote("sim", 0, &origin, now, 30, Default::default());
    assert!(Browser::open(&h, with(good.clone())).await.is_ok());
    // Replayed, expired, other target, bad signature, another mode: the message starts with
    // the reason (docs/tickets.md, "Refusals").
    let bad = [
        (good, "replayed: "),
        (
            key.remote("sim", 0, &origin, now - 120, 30, Default::default()),
            "expired: ",
        ),
        (
            key.remote("other", 0, &origin, now, 30, Default::default()),
            "target_mismatch: ",
        ),
        (
            TicketIssuer::hs256(&[1; 32], None, DEFAULT_AUDIENCE).remote(
                "sim",
                0,
                &origin,
                now,
                30,
                Default::default(),
            ),
            "bad_signature: ",
        ),
        (
            key.local(&origin, now, 30, Default::default()),
            "mode_mismatch: ",
        ),
        ("a.b".to_string(), "malformed: "),
    ];
    for (t, reason) in bad {
        let e = Browser::open(&h, with(t)).await.err().unwrap();
        assert_eq!(e.kind, RelayErrorKind::TicketInvalid, "{e:?}");
        assert!(e.message.starts_with(reason), "{reason}: {}", e.message);
        assert!(
            !e.message.contains('.'),
            "no ticket text in the message: {}",
            e.message
        );
    }
    assert_eq!(
        metric(
            &h.metrics_text(),
            "prl_proxy_ticket_rejections_total{reason=\"missing\"}"
        ),
        1.0
    );
    // A header ticket is bound to its target too.
    let t = key.remote("other", 0, &origin, now, 30, Default::default());
    let (mut ws, _) = ws_connect(
        h.local_addr(),
        Some(&origin),
        &["prl-relay.v1", &format!("prl-ticket.{t}")],
    )
    .await
    .unwrap();
    ws.send(Message::Text(
        ClientMessage::Open(open_request("sim", SecurityLevel::Low))
            .to_json()
            .into(),
    ))
    .await
    .unwrap();
    match next_control(&mut ws).await {
        prl_protocol::relay::ProxyMessage::Error(e) => {
            assert_eq!(e.kind, RelayErrorKind::TicketInvalid)
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn tickets_bind_the_connection_mode() {
    // A local-mode open logs in as the proxy's OS user and names no target, so only a
    // ticket minted for the reserved local key authorises it, and that ticket authorises
    // nothing else.
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("k");
    std::fs::write(&key_path, [9u8; 48]).unwrap();
    let key = TicketIssuer::hs256_file(&key_path, None, DEFAULT_AUDIENCE).unwrap();
    let tcp = sim.tcp_addr().unwrap();
    let h = start(&format!(
        "{}[policy]\nlocal_login = true\nlocal_target = \"{tcp}\"\n[tickets]\nkey_file = {:?}\nmax_ttl_secs = 60\n",
        sim_target(&sim),
        key_path.display().to_string()
    ))
    .await;
    let origin = own_origin(&h);
    let now = prl_proxy::util::unix_now();
    let open = |host: &str, mode: ConnectMode, ticket: String| {
        let mut r = open_request(host, SecurityLevel::Low);
        r.mode = mode;
        r.ticket = Some(Secret(ticket));
        r
    };
    let refused = [
        // A remote ticket for a configured target, presented for a local open.
        open(
            "sim",
            ConnectMode::Local,
            key.remote("sim", 0, &origin, now, 30, Default::default()),
        ),
        // A ticket for any name at all, with the same name in the local open.
        open(
            "nonexistent.invalid",
            ConnectMode::Local,
            key.remote(
                "nonexistent.invalid",
                0,
                &origin,
                now,
                30,
                Default::default(),
            ),
        ),
        // A local ticket never opens a remote target, not even one spelled like the key.
        open(
            "sim",
            ConnectMode::Remote,
            key.local(&origin, now, 30, Default::default()),
        ),
        open(
            prl_proxy::ticket::LOCAL_TARGET,
            ConnectMode::Remote,
            key.local(&origin, now, 30, Default::default()),
        ),
    ];
    for req in refused {
        let e = Browser::open(&h, req.clone()).await.err().unwrap();
        assert_eq!(e.kind, RelayErrorKind::TicketInvalid, "{req:?}: {e:?}");
    }
    // The matching tickets work.
    Browser::open(
        &h,
        open(
            "sim",
            ConnectMode::Local,
            key.local(&origin, now, 30, Default::default()),
        ),
    )
    .await
    .unwrap();
    Browser::open(
        &h,
        open(
            "sim",
            ConnectMode::Remote,
            key.remote("sim", 0, &origin, now, 30, Default::default()),
        ),
    )
    .await
    .unwrap();
    // The subprotocol header ticket is bound the same way.
    let t = key.remote("sim", 0, &origin, now, 30, Default::default());
    let (mut ws, _) = ws_connect(
        h.local_addr(),
        Some(&origin),
        &["prl-relay.v1", &format!("prl-ticket.{t}")],
    )
    .await
    .unwrap();
    let mut req = open_request("sim", SecurityLevel::Low);
    req.mode = ConnectMode::Local;
    ws.send(Message::Text(ClientMessage::Open(req).to_json().into()))
        .await
        .unwrap();
    match next_control(&mut ws).await {
        prl_protocol::relay::ProxyMessage::Error(e) => {
            assert_eq!(e.kind, RelayErrorKind::TicketInvalid, "{e:?}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn oversize_frames_and_bad_first_messages() {
    let sim = sim().await;
    let h = start(&format!(
        "{}[limits]\nmax_message_bytes = 4096\nmax_frame_bytes = 4096\n",
        sim_target(&sim)
    ))
    .await;
    // After open.
    let mut b = opened(&h, SecurityLevel::Low).await;
    b.ws.send(Message::Binary(vec![0u8; 5000].into()))
        .await
        .unwrap();
    let e = b.next().await.unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::LimitReached, "{e:?}");
    // Before open: an oversize first message, a binary first message, garbage JSON.
    let origin = own_origin(&h);
    for first in [
        Message::Text("x".repeat(5000).into()),
        Message::Binary(vec![1, 2, 3].into()),
        Message::Text("{\"type\":\"open\"".into()),
    ] {
        let (mut ws, _) = ws_connect(h.local_addr(), Some(&origin), &["prl-relay.v1"])
            .await
            .unwrap();
        ws.send(first).await.unwrap();
        match next_control(&mut ws).await {
            prl_protocol::relay::ProxyMessage::Error(e) => {
                assert!(
                    matches!(
                        e.kind,
                        RelayErrorKind::LimitReached | RelayErrorKind::ProtocolViolation
                    ),
                    "{e:?}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
    // A malformed package after open.
    let mut b = opened(&h, SecurityLevel::Low).await;
    b.ws.send(Message::Binary(vec![0u8; 100].into()))
        .await
        .unwrap();
    assert_eq!(
        b.next().await.unwrap_err().kind,
        RelayErrorKind::ProtocolViolation
    );
}

#[tokio::test]
async fn packages_must_carry_the_proxys_connection_uuid() {
    let sim = sim().await;
    let h = start(&sim_target(&sim)).await;
    let mut b = opened(&h, SecurityLevel::Normal).await;
    // A nil sender is filled in.
    let job = Uuid::new_v4();
    let mut p = commands::simple_command(cmd::USER_PING, job, Uuid::nil(), &mut Uuid::new_v4);
    b.send(&p).await;
    assert_eq!(
        b.reply_to(job).await.unwrap().code,
        ErrorCode::USER_OPERATION_NOT_AUTHORISED
    );
    p.header.sender_uuid = Uuid::new_v4();
    b.send(&p).await;
    assert_eq!(
        b.next().await.unwrap_err().kind,
        RelayErrorKind::ProtocolViolation
    );
}

#[tokio::test]
async fn idle_and_lifetime_limits() {
    let sim = sim().await;
    let h = start(&format!(
        "{}[limits]\nidle_timeout_ms = 300\n",
        sim_target(&sim)
    ))
    .await;
    let mut b = opened(&h, SecurityLevel::Low).await;
    let t0 = Instant::now();
    let e = b.next().await.unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::LimitReached);
    assert!(e.message.contains("idle"), "{}", e.message);
    assert!(t0.elapsed() >= Duration::from_millis(250) && t0.elapsed() < Duration::from_secs(3));

    let h = start(&format!(
        "{}[limits]\nmax_lifetime_ms = 700\n",
        sim_target(&sim)
    ))
    .await;
    let mut b = opened(&h, SecurityLevel::Low).await;
    let t0 = Instant::now();
    assert_eq!(
        b.login(USER, PASSWORD, "").await.unwrap().code,
        ErrorCode::SUCCESS
    );
    let e = loop {
        match b.ping().await {
            Ok(_) => {}
            Err(e) => break e,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(e.kind, RelayErrorKind::LimitReached);
    assert!(e.message.contains("lifetime"), "{}", e.message);
    assert!(
        t0.elapsed() >= Duration::from_millis(650),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn local_login_is_refused_by_default() {
    let sim = sim().await;
    let h = start(&sim_target(&sim)).await;
    let mut req = open_request("sim", SecurityLevel::Low);
    req.mode = ConnectMode::Local;
    let e = Browser::open(&h, req).await.err().unwrap();
    assert_eq!(e.kind, RelayErrorKind::PolicyDenied);
    assert!(e.message.contains("local login"));
    // A 2186 package on a remote connection is refused too, and never reaches the service.
    let mut b = opened(&h, SecurityLevel::Low).await;
    let req = LoginLocalRequest {
        application_mode: 0,
        prev_session_uuid: String::new(),
        flags: 0,
    };
    b.send(&req.to_package(Uuid::new_v4(), b.conn_uuid, &mut Uuid::new_v4))
        .await;
    let e = b.next().await.unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::PolicyDenied);
    assert_eq!(
        metric(
            &h.metrics_text(),
            "prl_proxy_logins_total{outcome=\"refused\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn a_passwordless_takeover_of_another_live_session_is_refused() {
    let sim = sim().await;
    let h = start(&sim_target(&sim)).await;
    let (mut victim, session) = logged_in(&h, SecurityLevel::Normal).await;

    // Directly against the service, naming the live session takes it over without a password:
    // this is the hole the proxy closes. The service registers the direct connection with the
    // victim's session and sends the login reply through that session, i.e. to the victim's
    // connection (`processAuthorizeCmd`: `pClient->sendPackage`); the taker hears nothing.
    let mut direct = prl_transport::connect(
        &prl_transport::Endpoint::Addrs(vec![sim.tcp_addr().unwrap()]),
        &prl_transport::ClientConfig::new(SecurityLevel::Low),
    )
    .await
    .unwrap();
    let me = direct.info().local_connection_uuid;
    let job = Uuid::new_v4();
    let req = commands::LoginRequest {
        user: USER.into(),
        password: commands::Password::new("wrong"),
        prev_session_uuid: session.clone(),
        flags: commands::PCF_ORIGINAL_CLIENT,
    };
    direct
        .send(req.to_package(job, me, true, &mut Uuid::new_v4))
        .await
        .unwrap();
    let reply = victim.reply_to(job).await.unwrap();
    assert_eq!(
        reply.code,
        ErrorCode::SUCCESS,
        "the simulator should model the takeover"
    );
    assert_eq!(reply.login_response().unwrap().session_uuid, session);
    // The direct connection is now logged in as the victim's session: the dispatcher's own
    // answers (ping: UNIMPLEMENTED, not "not authorised") come back to it, its login reply
    // never did.
    let ping = Uuid::new_v4();
    direct
        .send(commands::simple_command(
            cmd::USER_PING,
            ping,
            me,
            &mut Uuid::new_v4,
        ))
        .await
        .unwrap();
    let answer = loop {
        let p = tokio::time::timeout(Duration::from_secs(10), direct.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_ne!(
            p.header.parent_uuid, job,
            "the takeover's reply reached the taker"
        );
        if p.header.parent_uuid == ping {
            break commands::Reply::parse(&p).unwrap();
        }
    };
    assert_eq!(answer.code, ErrorCode::UNIMPLEMENTED);

    // Through the proxy, from another browser session: refused before it reaches the service.
    let mut attacker = opened(&h, SecurityLevel::Normal).await;
    let e = attacker.login(USER, "wrong", &session).await.unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::RestoreRefused);
    // Also with the right password: naming a live foreign session is never needed.
    let mut other = opened(&h, SecurityLevel::Normal).await;
    assert_eq!(
        other
            .login(USER, PASSWORD, &session)
            .await
            .unwrap_err()
            .kind,
        RelayErrorKind::RestoreRefused
    );
    // And a session not created through this proxy at all.
    let mut third = opened(&h, SecurityLevel::Normal).await;
    let foreign = prl_protocol::uuid_string(&me);
    assert_eq!(
        third.login(USER, "wrong", &foreign).await.unwrap_err().kind,
        RelayErrorKind::RestoreRefused
    );
    // The victim is untouched.
    victim.ping().await.unwrap();
}

#[tokio::test]
async fn login_throttling_per_user() {
    let sim = sim().await;
    let h = start(&format!(
        "{}[limits]\nlogin_burst_per_user = 2\nlogin_per_minute_per_user = 1\n",
        sim_target(&sim)
    ))
    .await;
    for _ in 0..2 {
        let mut b = opened(&h, SecurityLevel::Low).await;
        assert_eq!(
            b.login(USER, "wrong", "").await.unwrap().code,
            ErrorCode::AUTHENTICATION_FAILED
        );
    }
    let mut b = opened(&h, SecurityLevel::Low).await;
    let e = b.login("ALICE", "wrong", "").await.unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::LimitReached);
    // Another user is not affected.
    let mut b = opened(&h, SecurityLevel::Low).await;
    assert_eq!(
        b.login("bob", "x", "").await.unwrap().code,
        ErrorCode::AUTHENTICATION_FAILED
    );
    assert_eq!(
        metric(
            &h.metrics_text(),
            "prl_proxy_logins_total{outcome=\"throttled\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn logins_the_proxy_refuses_do_not_spend_the_users_bucket() {
    // Refusals decided by the proxy itself (here: a previous session this browser cannot
    // restore) never reach the service, so they must not lock the named user out.
    let sim = sim().await;
    let h = start(&format!(
        "{}[limits]\nlogin_burst_per_user = 2\nlogin_per_minute_per_user = 1\nlogin_burst_per_ip = 100\n",
        sim_target(&sim)
    ))
    .await;
    let foreign = Uuid::new_v4().to_string();
    for (i, prev) in ["not-a-uuid", foreign.as_str()]
        .iter()
        .cycle()
        .take(6)
        .enumerate()
    {
        let mut b = opened(&h, SecurityLevel::Low).await;
        let user = if i % 2 == 0 { USER } else { "ALICE" };
        let e = b.login(user, "wrong", prev).await.unwrap_err();
        assert_eq!(e.kind, RelayErrorKind::RestoreRefused, "{e:?}");
    }
    logged_in(&h, SecurityLevel::Low).await;
    assert_eq!(
        metric(
            &h.metrics_text(),
            "prl_proxy_logins_total{outcome=\"throttled\"}"
        ),
        0.0
    );
}

#[tokio::test]
async fn a_browser_gone_before_any_login_is_closed_not_parked() {
    // Unauthenticated opens dropped without a close frame must not fill the resume slots
    // (`resume.max_detached`) or keep service connections.
    let sim = sim().await;
    let h = start(&format!(
        "{}[resume]\nwindow_ms = 20000\nmax_detached = 2\n",
        sim_target(&sim)
    ))
    .await;
    for _ in 0..3 {
        let b = opened(&h, SecurityLevel::Low).await;
        let (token, conn) = (b.token.clone(), b.conn_uuid);
        drop(b); // no close frame
                 // The proxy let go of the connection: it decided between parking and closing.
        metric_becomes(&h, "prl_proxy_connections", 0.0).await;
        assert_eq!(
            metric(&h.metrics_text(), "prl_proxy_sessions_detached"),
            0.0
        );
        let e = Browser::resume(&h, &token, 0, conn).await.err().unwrap();
        assert_eq!(e.kind, RelayErrorKind::ResumeFailed, "{e:?}");
    }
    // A logged-in session still gets its resume slot after those.
    let (b, _) = logged_in(&h, SecurityLevel::Low).await;
    let (token, received, conn) = (b.token.clone(), b.received, b.conn_uuid);
    drop(b);
    metric_becomes(&h, "prl_proxy_sessions_detached", 1.0).await;
    let (mut b, _) = Browser::resume(&h, &token, received, conn).await.unwrap();
    b.ping().await.unwrap();
}

#[tokio::test]
async fn a_session_without_a_login_ends_at_the_login_deadline() {
    let sim = sim().await;
    let h = start(&format!(
        "{}[limits]\nlogin_deadline_ms = 400\n",
        sim_target(&sim)
    ))
    .await;
    let t0 = Instant::now();
    let mut idle = opened(&h, SecurityLevel::Low).await;
    let mut user = opened(&h, SecurityLevel::Low).await;
    // The proxy set this session's deadline before it sent `opened`.
    let user_deadline = tokio::time::Instant::now() + Duration::from_millis(400);
    user.login_ok("").await;
    let e = idle.next().await.unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::LimitReached, "{e:?}");
    assert_eq!(e.message, "no login within 400 ms of opened");
    assert!(t0.elapsed() >= Duration::from_millis(400));
    assert_eq!(
        metric(
            &h.metrics_text(),
            "prl_proxy_rejections_total{reason=\"login_deadline\"}"
        ),
        1.0
    );
    // A logged-in session is not bound by it: past its deadline it still works (the rules'
    // unit tests cover this with virtual time).
    tokio::time::sleep_until(user_deadline).await;
    user.ping().await.unwrap();
    assert_eq!(
        metric(
            &h.metrics_text(),
            "prl_proxy_rejections_total{reason=\"login_deadline\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn opens_that_never_log_in_cannot_take_every_service_connection() {
    let sim = sim().await;
    let h = start(&format!(
        "{}[limits]\nmax_unauthenticated_upstreams = 3\nmax_unauthenticated_upstreams_per_ip = 2\n",
        sim_target(&sim)
    ))
    .await;
    let reason = |r: &str| {
        metric(
            &h.metrics_text(),
            &format!("prl_proxy_rejections_total{{reason=\"{r}\"}}"),
        )
    };
    let refused = |e: prl_protocol::relay::RelayError| {
        assert_eq!(e.kind, RelayErrorKind::LimitReached, "{e:?}");
        assert!(e.message.contains("waiting for a login"), "{}", e.message);
    };
    // One address: its share.
    let mut a1 = Browser::open_via(&h, "127.0.0.2").await.unwrap();
    let a2 = Browser::open_via(&h, "127.0.0.2").await.unwrap();
    refused(Browser::open_via(&h, "127.0.0.2").await.err().unwrap());
    assert_eq!(reason("unauthenticated_upstreams_per_ip"), 1.0);
    // A connection that ends gives its slot back.
    drop(a2);
    metric_becomes(&h, "prl_proxy_connections", 1.0).await;
    // All addresses together: the pool. Full, an open from a client holding as many slots
    // as anyone is refused (one holding fewer takes the oldest slot of the biggest holder:
    // tests/flood.rs).
    let _b1 = Browser::open_via(&h, "127.0.0.3").await.unwrap();
    let c1 = Browser::open_via(&h, "127.0.0.4").await.unwrap();
    refused(Browser::open_via(&h, "127.0.0.2").await.err().unwrap());
    assert_eq!(reason("unauthenticated_upstreams"), 1.0);
    assert_eq!(
        metric(&h.metrics_text(), "prl_proxy_sessions_opened_total"),
        4.0,
        "the refused opens never reached the service"
    );
    // A successful login gives the slot back...
    a1.login_ok("").await;
    let _d1 = Browser::open_via(&h, "127.0.0.5").await.unwrap();
    refused(Browser::open_via(&h, "127.0.0.3").await.err().unwrap());
    assert_eq!(reason("unauthenticated_upstreams"), 2.0);
    // ...and so does a connection that ends.
    drop(c1);
    // a1, b1, d1 (the refused connections are closed).
    metric_becomes(&h, "prl_proxy_connections", 3.0).await;
    let _b2 = Browser::open_via(&h, "127.0.0.3").await.unwrap();
    a1.ping().await.unwrap();
    assert_eq!(reason("unauthenticated_evicted"), 0.0);
}

fn progress(p: &prl_protocol::package::Package, job: Uuid) -> Option<u32> {
    (p.header.package_type == cmd::VM_EVENT && p.header.parent_uuid == job).then(|| {
        commands::package_event(p)
            .unwrap()
            .uint(commands::param::PROGRESS_CHANGED)
            .unwrap()
    })
}

fn is_reply(p: &prl_protocol::package::Package, job: Uuid) -> bool {
    p.header.parent_uuid == job
        && matches!(
            p.header.package_type,
            cmd::WS_RESPONSE | cmd::WS_BINARY_RESPONSE
        )
}

#[tokio::test]
async fn resume_inside_the_window_keeps_the_session_and_replays_in_order() {
    let sim = sim().await;
    let h = start(&format!("{}[resume]\nwindow_ms = 5000\n", sim_target(&sim))).await;
    let (mut b, session) = logged_in(&h, SecurityLevel::Normal).await;
    let job = Uuid::new_v4();
    b.send(&prl_sim::start_long_task_command(
        50,
        20,
        0,
        job,
        b.conn_uuid,
    ))
    .await;
    let mut percents = Vec::new();
    while percents.len() < 5 {
        let p = b.recv().await;
        if let Some(x) = progress(&p, job) {
            percents.push(x);
        }
    }
    let (token, received, conn) = (b.token.clone(), b.received, b.conn_uuid);
    drop(b); // the browser vanishes: no close frame
    metric_becomes(&h, "prl_proxy_sessions_detached", 1.0).await;
    // The task finishes while the browser is away: the rest of its events wait in the proxy.
    wait_until("the task finished", || sim.task_count() == 0).await;
    assert_eq!(
        sim.session_count(),
        1,
        "the service session survives the blip"
    );
    let (mut b, resumed) = Browser::resume(&h, &token, received, conn).await.unwrap();
    assert!(
        resumed.replayed >= 5,
        "events buffered while away: {}",
        resumed.replayed
    );
    assert_ne!(resumed.resume_token.expose(), token, "tokens rotate");
    let code = loop {
        let p = b.recv().await;
        if let Some(x) = progress(&p, job) {
            percents.push(x);
        } else if is_reply(&p, job) {
            break commands::Reply::parse(&p).unwrap().code;
        }
    };
    assert_eq!(code, ErrorCode::SUCCESS);
    assert_eq!(
        percents,
        (1..=50).map(|s| s * 2).collect::<Vec<u32>>(),
        "every event, in order, once"
    );
    // Same session, no second password entry.
    b.ping().await.unwrap();
    assert_eq!(sim.session_count(), 1);
    let m = h.metrics_text();
    assert_eq!(metric(&m, "prl_proxy_sessions_resumed_total"), 1.0);
    assert_eq!(
        metric(&m, "prl_proxy_logins_total{outcome=\"success\"}"),
        1.0
    );
    // The old token was single use.
    let e = Browser::resume(&h, &token, 0, conn).await.err().unwrap();
    assert_eq!(e.kind, RelayErrorKind::ResumeFailed);
    assert_eq!(e.code, Some(ErrorCode::WS_DISP_CONNECTION_CLOSED.0));
    // A second blip with the rotated token works again.
    let (token, received) = (b.token.clone(), b.received);
    drop(b);
    metric_becomes(&h, "prl_proxy_sessions_detached", 1.0).await;
    let (mut b, resumed) = Browser::resume(&h, &token, received, conn).await.unwrap();
    assert_eq!(resumed.replayed, 0);
    b.ping().await.unwrap();
    let _ = session;
}

/// A `resumed` message can be lost with the connection that carried it: until the browser
/// sends a package on the resumed connection, the token it presented still names the session.
#[tokio::test]
async fn the_presented_token_stays_valid_until_the_browser_uses_the_resumed_connection() {
    let sim = sim().await;
    let h = start(&format!("{}[resume]\nwindow_ms = 5000\n", sim_target(&sim))).await;
    let (b, _) = logged_in(&h, SecurityLevel::Normal).await;
    let (t0, received, conn) = (b.token.clone(), b.received, b.conn_uuid);
    drop(b);
    metric_becomes(&h, "prl_proxy_sessions_detached", 1.0).await;
    // Resumed, but the browser is gone again before it used the connection (as if the
    // `resumed` message never reached it).
    let (b, resumed) = Browser::resume(&h, &t0, received, conn).await.unwrap();
    let t1 = resumed.resume_token.expose().to_string();
    assert_ne!(t1, t0);
    drop(b);
    metric_becomes(&h, "prl_proxy_sessions_detached", 1.0).await;
    assert_eq!(
        metric(&h.metrics_text(), "prl_proxy_sessions_active"),
        0.0,
        "one parked session, whichever token names it"
    );
    // The token it still holds works.
    let (mut b, resumed) = Browser::resume(&h, &t0, received, conn).await.unwrap();
    let t2 = resumed.resume_token.expose().to_string();
    // This time it uses the connection: the presented token is spent.
    b.ping().await.unwrap();
    drop(b);
    metric_becomes(&h, "prl_proxy_sessions_detached", 1.0).await;
    for spent in [&t0, &t1] {
        let e = Browser::resume(&h, spent, received, conn)
            .await
            .err()
            .unwrap();
        assert_eq!(e.kind, RelayErrorKind::ResumeFailed);
    }
    let (mut b, _) = Browser::resume(&h, &t2, received, conn).await.unwrap();
    b.ping().await.unwrap();
    assert_eq!(sim.session_count(), 1);
}

#[tokio::test]
async fn after_the_window_the_service_session_is_gone() {
    let sim = sim().await;
    let h = start(&format!("{}[resume]\nwindow_ms = 300\n", sim_target(&sim))).await;
    let (b, session) = logged_in(&h, SecurityLevel::Low).await;
    assert_eq!(sim.session_count(), 1);
    let (token, received, conn) = (b.token.clone(), b.received, b.conn_uuid);
    drop(b);
    let t0 = Instant::now();
    while sim.session_count() != 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "service session outlived the window"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "closed before the window: {:?}",
        t0.elapsed()
    );
    let e = Browser::resume(&h, &token, received, conn)
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, RelayErrorKind::ResumeFailed);
    // The SDK's way: a fresh login naming the previous (dead) session, on a connection whose
    // open proves this browser owned it (its last resume token).
    let mut req = open_request("sim", SecurityLevel::Low);
    req.restore = Some(Secret(token));
    let mut c = Browser::open(&h, req).await.unwrap();
    let again = c
        .login(USER, PASSWORD, &session)
        .await
        .unwrap()
        .login_response()
        .unwrap();
    assert_ne!(again.session_uuid, session);
}

#[tokio::test]
async fn a_slow_browser_keeps_memory_bounded() {
    let sim = sim().await;
    let queue = 64 * 1024;
    let h = start(&format!(
        "{}[limits]\nqueue_bytes = {queue}\nqueue_packages = 16\n[resume]\nbuffer_bytes = 131072\n",
        sim_target(&sim)
    ))
    .await;
    let (mut b, _) = logged_in(&h, SecurityLevel::Normal).await;
    // 8 tasks x 4000 events, as fast as the service can send: ~25 MB toward a browser that
    // does not read.
    let jobs: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    for job in &jobs {
        b.send(&prl_sim::start_long_task_command(
            4000,
            0,
            0,
            *job,
            b.conn_uuid,
        ))
        .await;
    }
    // Each direction holds at most its budget plus one package, however long the pressure
    // lasts: watched until bytes have stayed queued for a while.
    let bound = (2 * queue + 2 * 4096) as f64;
    let mut full_samples = 0;
    let t0 = Instant::now();
    while full_samples < 20 {
        let queued = metric(&h.metrics_text(), "prl_proxy_queued_bytes");
        assert!(queued <= bound, "queued {queued} bytes");
        if queued > 0.0 {
            full_samples += 1;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the queue never filled: the test did not create pressure"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Nothing was lost: every event and every final reply arrives.
    let mut events = 0;
    let mut done = 0;
    while done < jobs.len() {
        let p = b.recv().await;
        if p.header.package_type == cmd::VM_EVENT {
            events += 1;
        } else if jobs.iter().any(|j| is_reply(&p, *j)) {
            done += 1;
        }
    }
    assert_eq!(events, 8 * 4000);
}

#[tokio::test]
async fn login_throttling_per_ip() {
    let sim = sim().await;
    let h = start(&format!(
        "{}[limits]\nlogin_burst_per_ip = 3\nlogin_per_minute_per_ip = 1\nlogin_burst_per_user = 100\n",
        sim_target(&sim)
    ))
    .await;
    for user in ["u1", "u2", "u3"] {
        let mut b = opened(&h, SecurityLevel::Low).await;
        assert_eq!(
            b.login(user, "x", "").await.unwrap().code,
            ErrorCode::AUTHENTICATION_FAILED
        );
    }
    let mut b = opened(&h, SecurityLevel::Low).await;
    let e = b.login("u4", "x", "").await.unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::LimitReached);
    assert!(e.message.contains("address"), "{}", e.message);
}

#[tokio::test]
async fn a_resume_token_from_another_origin_is_refused_and_ends_the_session() {
    let sim = sim().await;
    let h = start(&format!(
        "{}[server]\nallowed_origins = [\"http://a.test\", \"http://b.test\"]\n",
        sim_target(&sim)
    ))
    .await;
    let mut b = Browser::open_from(&h, "http://a.test", open_request("sim", SecurityLevel::Low))
        .await
        .unwrap();
    b.login_ok("").await;
    let (token, received) = (b.token.clone(), b.received);
    drop(b);
    metric_becomes(&h, "prl_proxy_sessions_detached", 1.0).await;
    let resume = |origin: &'static str| {
        let token = token.clone();
        let addr = h.local_addr();
        async move {
            Browser::connect_from(
                addr,
                origin,
                ClientMessage::Resume(prl_protocol::relay::ResumeRequest {
                    version: 1,
                    token: Secret(token),
                    received,
                }),
            )
            .await
            .err()
            .unwrap()
        }
    };
    let e = resume("http://b.test").await;
    assert_eq!(e.kind, RelayErrorKind::ResumeFailed);
    assert!(e.message.contains("another origin"), "{}", e.message);
    // The stolen token ended the session: its owner cannot resume it either.
    metric_becomes(&h, "prl_proxy_sessions_detached", 0.0).await;
    wait_until("the service session ended", || sim.session_count() == 0).await;
    let e = resume("http://a.test").await;
    assert_eq!(e.kind, RelayErrorKind::ResumeFailed);
}

/// A `resume` whose `received` count the proxy cannot serve exactly ends the session with
/// `resume_failed`, rather than replaying the wrong packages.
#[tokio::test]
async fn a_resume_with_a_stale_or_ahead_count_fails() {
    let sim = sim().await;
    let h = start(&format!(
        "{}[resume]\nwindow_ms = 5000\nbuffer_packages = 4\n[limits]\nlogin_burst_per_user = 20\n",
        sim_target(&sim)
    ))
    .await;
    // Ahead: more than the proxy ever sent on this connection.
    let (mut b, _) = logged_in(&h, SecurityLevel::Low).await;
    b.ping().await.unwrap();
    let (token, received, conn) = (b.token.clone(), b.received, b.conn_uuid);
    drop(b);
    metric_becomes(&h, "prl_proxy_sessions_detached", 1.0).await;
    let e = Browser::resume(&h, &token, received + 1, conn)
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, RelayErrorKind::ResumeFailed);
    assert_eq!(e.message, "received count is ahead of what was sent");
    metric_becomes(&h, "prl_proxy_sessions_detached", 0.0).await;
    // Stale: packages the browser claims not to have had are no longer buffered (the ring
    // holds the last 4; this browser received 10).
    let (mut b, _) = logged_in(&h, SecurityLevel::Low).await;
    let job = Uuid::new_v4();
    b.send(&prl_sim::start_long_task_command(8, 0, 0, job, b.conn_uuid))
        .await;
    while !is_reply(&b.recv().await, job) {}
    assert!(b.received >= 10, "{}", b.received);
    let (token, received, conn) = (b.token.clone(), b.received, b.conn_uuid);
    drop(b);
    metric_becomes(&h, "prl_proxy_sessions_detached", 1.0).await;
    let e = Browser::resume(&h, &token, received - 5, conn)
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, RelayErrorKind::ResumeFailed);
    assert_eq!(
        e.message,
        "packages the browser missed are no longer buffered"
    );
    assert_eq!(e.code, Some(ErrorCode::WS_DISP_CONNECTION_CLOSED.0));
    // Both sessions ended: nothing was replayed from the wrong place.
    metric_becomes(&h, "prl_proxy_sessions_detached", 0.0).await;
    wait_until("both service sessions ended", || sim.session_count() == 0).await;
    assert_eq!(
        metric(&h.metrics_text(), "prl_proxy_sessions_resumed_total"),
        0.0
    );
}

/// The log lines of this test process (the proxy and the simulator run in it). A global
/// subscriber: a thread-local one misses events whose callsite interest another test thread
/// cached first.
fn capture_logs() -> LogBuffer {
    static LOGS: std::sync::OnceLock<LogBuffer> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = LogBuffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buf.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
        buf
    })
    .clone()
}

#[derive(Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> LogBuffer {
        self.clone()
    }
}

/// An easy local login (2186) naming `prev`.
async fn login_local(
    b: &mut Browser,
    prev: &str,
) -> Result<commands::Reply, prl_protocol::relay::RelayError> {
    let job = Uuid::new_v4();
    let req = LoginLocalRequest {
        application_mode: 0,
        prev_session_uuid: prev.into(),
        flags: 0,
    };
    b.send(&req.to_package(job, b.conn_uuid, &mut Uuid::new_v4))
        .await;
    b.reply_to(job).await
}

#[tokio::test]
async fn local_login_over_the_unix_socket_is_the_os_user_mapped_to_the_proxys_uid() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    // The uid this test process (and so the in-process proxy) runs as.
    let uid = std::fs::metadata(dir.path()).unwrap().uid();
    let sock = dir.path().join("prl_disp_service.socket");
    let logs = capture_logs();
    let sim = sim_with(|c| {
        c.unix = Some(sock.clone());
        for spec in [
            format!("localbob:{uid}"),
            format!("someone-else:{}", uid.wrapping_add(1)),
        ] {
            c.users
                .add(prl_sim::UserDb::parse_local_spec(&spec).unwrap())
                .unwrap();
        }
    })
    .await;
    let h = start(&format!(
        "[policy]\nlocal_login = true\nlocal_socket = {:?}\n{}[resume]\nwindow_ms = 100\n",
        sock.display().to_string(),
        sim_target(&sim)
    ))
    .await;
    let mut local = open_request("ignored for local", SecurityLevel::Low);
    local.mode = ConnectMode::Local;
    let mut b = Browser::open(&h, local.clone()).await.unwrap();
    let reply = login_local(&mut b, "").await.unwrap();
    assert_eq!(reply.code, ErrorCode::SUCCESS);
    assert_eq!(reply.opcode, cmd::USER_EASY_LOGIN_LOCAL);
    let session = reply.login_response().unwrap().session_uuid;
    assert_eq!(session, prl_protocol::uuid_string(&b.conn_uuid));
    let text = logs.text();
    let started: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("session started") && l.contains("local=true"))
        .collect();
    assert!(
        started.len() == 1 && started[0].contains("user=localbob"),
        "the service saw the proxy's uid {uid}: {started:?}"
    );
    assert_eq!(
        metric(
            &h.metrics_text(),
            "prl_proxy_logins_total{outcome=\"success\"}"
        ),
        1.0
    );

    // 2186 naming a previous session follows the restore rule too.
    let token = b.token.clone();
    drop(b);
    // The proxy keeps the restore proof before it closes the upstream connection.
    wait_until("the service session ended", || sim.session_count() == 0).await;
    let mut c = Browser::open(&h, local.clone()).await.unwrap();
    let e = login_local(&mut c, &session).await.unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::RestoreRefused);
    assert_eq!(sim.session_count(), 0);
    let mut with_proof = local.clone();
    with_proof.restore = Some(Secret(token));
    let mut c = Browser::open(&h, with_proof).await.unwrap();
    assert_eq!(
        login_local(&mut c, &session).await.unwrap().code,
        ErrorCode::SUCCESS
    );

    // Over TCP (local_target) the service has no peer uid: no user.
    let tcp = sim.tcp_addr().unwrap();
    let h2 = start(&format!(
        "[policy]\nlocal_login = true\nlocal_target = \"{tcp}\"\n"
    ))
    .await;
    let mut d = Browser::open(&h2, local.clone()).await.unwrap();
    assert_eq!(
        login_local(&mut d, "").await.unwrap().code,
        ErrorCode::LOCAL_AUTHENTICATION_FAILED
    );
    // A socket that is not there: a typed error naming no path.
    let h3 =
        start("[policy]\nlocal_login = true\nlocal_socket = \"/nonexistent/prl.sock\"\n").await;
    let e = Browser::open(&h3, local).await.err().unwrap();
    assert_eq!(e.kind, RelayErrorKind::ConnectionRefused);
    assert_eq!(e.code, Some(ErrorCode::CANT_CONNECT_TO_DISPATCHER.0));
    assert!(!e.message.contains("nonexistent"), "{}", e.message);
}

#[tokio::test]
async fn a_browser_that_stops_answering_pings_is_detached_into_the_resume_window() {
    use futures_util::StreamExt;
    let sim = sim().await;
    let interval = 200u64;
    let h = start(&format!(
        "{}[limits]\nping_interval_ms = {interval}\n[resume]\nwindow_ms = 5000\n",
        sim_target(&sim)
    ))
    .await;
    let (mut alive, _) = logged_in(&h, SecurityLevel::Low).await;
    let mut dead = opened(&h, SecurityLevel::Normal).await;
    // Everything the proxy reads from `dead` from here on is later than t0.
    let t0 = Instant::now();
    dead.login_ok("").await;
    // `alive` keeps reading, so its WebSocket answers the proxy's pings; `dead` is never read
    // again: its pings pile up unanswered in its socket buffer.
    let pings = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = std::sync::Arc::clone(&pings);
    let reader = tokio::spawn(async move {
        while let Some(Ok(m)) = alive.ws.next().await {
            if m.is_ping() {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
    });
    let detached_at = loop {
        if metric(&h.metrics_text(), "prl_proxy_sessions_detached") == 1.0 {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "a silent browser was never detached"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // More than two intervals of silence, detected at the next tick.
    let ms = detached_at.as_millis() as u64;
    assert!(ms >= 2 * interval, "detached too early: {ms} ms");
    assert!(
        ms <= 3 * interval + 1500,
        "detached after {ms} ms with pings every {interval} ms"
    );
    // Four more pings later (well past two intervals), the answering browser is still
    // attached, and both service sessions live.
    let seen = pings.load(std::sync::atomic::Ordering::SeqCst);
    wait_until("the proxy pinged four more times", || {
        pings.load(std::sync::atomic::Ordering::SeqCst) >= seen + 4
    })
    .await;
    let m = h.metrics_text();
    assert_eq!(metric(&m, "prl_proxy_sessions_detached"), 1.0);
    assert_eq!(metric(&m, "prl_proxy_sessions_active"), 1.0);
    assert_eq!(sim.session_count(), 2);
    reader.abort();
    // The silent browser comes back within the window and resumes its session.
    let (token, received, conn) = (dead.token.clone(), dead.received, dead.conn_uuid);
    drop(dead);
    let (mut back, _) = Browser::resume(&h, &token, received, conn).await.unwrap();
    assert_eq!(back.ping().await.unwrap(), ErrorCode::UNIMPLEMENTED);
    assert_eq!(sim.session_count(), 2);
}

/// A logged-in browser on a socket with a tiny receive buffer that floods pings and never
/// reads a reply.
async fn stalled_browser(h: &prl_proxy::ProxyHandle) -> tokio::task::JoinHandle<()> {
    let addr = h.local_addr();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(1024).unwrap();
    let tcp = sock.connect(addr).await.unwrap();
    let req = ws_request(
        &format!("ws://{addr}"),
        Some(&format!("http://{addr}")),
        &["prl-relay.v1"],
    );
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
    ws.send(Message::Text(
        ClientMessage::Open(open_request("sim", SecurityLevel::Low))
            .to_json()
            .into(),
    ))
    .await
    .unwrap();
    let o = match next_control(&mut ws).await {
        prl_protocol::relay::ProxyMessage::Opened(o) => o,
        other => panic!("{other:?}"),
    };
    let mut b = Browser {
        conn_uuid: prl_protocol::parse_uuid(&o.connection_uuid).unwrap(),
        token: o.resume_token.expose().to_string(),
        opened: Some(o),
        received: 0,
        ws,
    };
    let ping = |b: &Browser| {
        commands::simple_command(
            cmd::USER_PING,
            Uuid::new_v4(),
            b.conn_uuid,
            &mut Uuid::new_v4,
        )
    };
    b.login_ok("").await;
    tokio::spawn(async move {
        loop {
            let p = ping(&b);
            if b.ws.send(Message::Binary(p.encode().into())).await.is_err() {
                break;
            }
        }
        // Hold the socket open, unread.
        std::future::pending::<()>().await;
    })
}

/// The proxy lets go of the browser: its connection, its session and its queued bytes
/// (lifetime 2 s + at most 2 s for the closing error + at most 2 s for the upstream flush).
///
/// The service session is not checked: prl-transport's connection task, stuck writing to a
/// service that is itself stuck writing to us, does not end when the proxy drops the
/// connection (a transport issue, not the relay's).
/// Waits until the proxy holds nothing of the session and the service's session is gone too
/// (the upstream connection really closed).
async fn wait_released(h: &prl_proxy::ProxyHandle, sim: &prl_sim::Simulator, within: Duration) {
    let t0 = Instant::now();
    loop {
        let m = h.metrics_text();
        let conns = metric(&m, "prl_proxy_connections");
        let active = metric(&m, "prl_proxy_sessions_active");
        let queued = metric(&m, "prl_proxy_queued_bytes");
        let service = sim.session_count();
        if conns == 0.0 && active == 0.0 && queued == 0.0 && service == 0 {
            return;
        }
        assert!(
            t0.elapsed() < within,
            "a browser that stops reading still pins its session: {conns} connections, \
             {active} sessions, {queued} queued bytes, {service} service sessions"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A browser that stops reading while the service floods it is ended by the limit `limits`
/// sets, and every resource of its session is released.
async fn a_stalled_browser_is_released_by(limits: &str) {
    let sim = sim().await;
    let h = start(&format!(
        "{}[limits]\nlogin_burst_per_user = 20\n{limits}",
        sim_target(&sim)
    ))
    .await;
    let flood = stalled_browser(&h).await;
    assert_eq!(sim.session_count(), 1);
    assert_eq!(metric(&h.metrics_text(), "prl_proxy_connections"), 1.0);
    wait_released(&h, &sim, Duration::from_secs(15)).await;
    flood.abort();
}

#[tokio::test]
async fn a_browser_that_stops_reading_is_ended_by_the_lifetime_limit() {
    a_stalled_browser_is_released_by("max_lifetime_ms = 2000\n").await;
}

#[tokio::test]
async fn a_browser_that_stops_reading_is_ended_by_the_write_stall_limit() {
    a_stalled_browser_is_released_by("write_stall_ms = 1000\n[resume]\nwindow_ms = 0\n").await;
}

#[tokio::test]
async fn an_overlong_user_name_is_refused_before_the_service() {
    let sim = sim().await;
    let h = start(&sim_target(&sim)).await;
    let mut b = opened(&h, SecurityLevel::Low).await;
    let e = b.login(&"u".repeat(2048), PASSWORD, "").await.unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::LimitReached);
    assert!(e.message.contains("user name too long"), "{}", e.message);
    assert_eq!(
        metric(
            &h.metrics_text(),
            "prl_proxy_logins_total{outcome=\"refused\"}"
        ),
        1.0
    );
    // A name at the limit reaches the service (which refuses it as unknown).
    let mut b = opened(&h, SecurityLevel::Low).await;
    let reply = b.login(&"u".repeat(1024), PASSWORD, "").await.unwrap();
    assert_ne!(reply.code, ErrorCode::SUCCESS);
}

#[tokio::test]
async fn service_traffic_keeps_a_session_from_idling_out() {
    let sim = sim().await;
    let h = start(&format!(
        "{}[limits]\nidle_timeout_ms = 1000\n",
        sim_target(&sim)
    ))
    .await;
    let (mut b, _) = logged_in(&h, SecurityLevel::Low).await;
    // 30 events 100 ms apart; the browser sends nothing more for 3 s.
    let start = prl_sim::start_long_task_command(30, 100, 0, Uuid::new_v4(), b.conn_uuid);
    b.send(&start).await;
    let t0 = Instant::now();
    // Every event and the final reply arrive, over about three idle limits.
    for packages in 0..31 {
        if let Err(e) = b.next().await {
            panic!("after {:?} and {packages} packages: {e:?}", t0.elapsed());
        }
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(2000),
        "{:?}",
        t0.elapsed()
    );
    // Then silence both ways: the idle limit applies.
    let e = b.next().await.unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::LimitReached);
    assert!(e.message.contains("idle"), "{}", e.message);
}

#[tokio::test]
async fn bytes_queued_toward_all_browsers_are_capped() {
    let sim = sim().await;
    // Per session the queue could hold megabytes; all browsers together only 32 KiB.
    let h = start(&format!(
        "{}[limits]\nqueue_packages = 100000\nmax_queued_bytes_total = 32768\n\
         login_burst_per_user = 20\n",
        sim_target(&sim)
    ))
    .await;
    let flood = stalled_browser(&h).await;
    // Watched until the flood has held the queue near the cap for a while: never more than
    // the cap, plus one package past it, plus the few packages toward the service.
    let mut full_samples = 0;
    let t0 = Instant::now();
    while full_samples < 20 {
        let queued = metric(&h.metrics_text(), "prl_proxy_queued_bytes");
        assert!(queued < 32768.0 + 16384.0, "{queued} bytes queued");
        if queued > 16384.0 {
            full_samples += 1;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the flood did not fill the queue"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    flood.abort();
}

#[tokio::test]
async fn a_framing_error_after_open_is_counted() {
    use tokio::io::AsyncWriteExt;
    let sim = sim().await;
    let h = start(&sim_target(&sim)).await;
    let mut b = opened(&h, SecurityLevel::Low).await;
    // A continuation frame with no message to continue (masked, as a browser's would be): a
    // WebSocket protocol error in the session, refused like one in the first message.
    b.ws.get_mut()
        .write_all(&[0x80, 0x81, 1, 2, 3, 4, b'x' ^ 1])
        .await
        .unwrap();
    metric_becomes(
        &h,
        "prl_proxy_rejections_total{reason=\"protocol_violation\"}",
        1.0,
    )
    .await;
}

#[tokio::test]
async fn a_browser_that_vanishes_is_no_protocol_violation() {
    let sim = sim().await;
    let h = start(&sim_target(&sim)).await;
    let (b, _) = logged_in(&h, SecurityLevel::Low).await;
    // The TCP connection ends without a close frame: a lost browser, parked for a resume.
    drop(b);
    metric_becomes(&h, "prl_proxy_sessions_detached", 1.0).await;
    assert_eq!(
        metric(
            &h.metrics_text(),
            "prl_proxy_rejections_total{reason=\"protocol_violation\"}"
        ),
        0.0
    );
}
