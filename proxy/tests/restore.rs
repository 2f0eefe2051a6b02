//! Logins naming a previous session, against prl-sim over loopback: allowed only with the
//! restore proof (the last resume token of the closed upstream connection, same origin, same
//! ticket subject), consumed on use; everything else is refused before it reaches the service.
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

#[path = "common/relay.rs"]
mod browser;
mod common;
use browser::*;

use std::time::{Duration, Instant};

use common::*;
use prl_protocol::codes::cmd;
use prl_protocol::commands::{self, Reply};
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::relay::{OpenRequest, RelayErrorKind, Secret};
use prl_protocol::{ErrorCode, Uuid};
use prl_proxy::config::DEFAULT_AUDIENCE;
use prl_proxy::ticket::{TicketIssuer, TicketOptions};
use prl_proxy::ProxyHandle;
use prl_sim::Simulator;

/// A proxy in front of `sim` with a short resume window and room for many logins.
fn config(sim: &Simulator, extra: &str) -> String {
    format!(
        "{}[resume]\nwindow_ms = 200\n[limits]\nlogin_burst_per_user = 100\nlogin_burst_per_ip = 100\n{extra}",
        sim_target(sim)
    )
}

fn open_req(restore: Option<&str>) -> OpenRequest {
    let mut r = open_request("sim", SecurityLevel::Normal);
    r.restore = restore.map(|t| Secret(t.into()));
    r
}

/// Wait (bounded) until the simulator has `n` sessions.
async fn sessions_become(sim: &Simulator, n: usize) {
    let t0 = Instant::now();
    while sim.session_count() != n {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "sim has {} sessions, expected {n}",
            sim.session_count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The browser vanishes and stays away past the resume window: its upstream connection (and
/// the service session) end. Returns its last resume token.
async fn lose(sim: &Simulator, b: Browser) -> String {
    let token = b.token.clone();
    let n = sim.session_count();
    drop(b);
    // The proxy keeps the proof before it closes the upstream connection.
    sessions_become(sim, n - 1).await;
    token
}

/// A login naming `prev` with the right password is refused by the proxy with
/// `restore_refused`, and never reaches the service (which would have accepted it): the proxy
/// counts every byte it forwards before it forwards it, and counted none for this login.
async fn assert_refused(h: &ProxyHandle, sim: &Simulator, b: &mut Browser, prev: &str) {
    let to_service = "prl_proxy_bytes_total{direction=\"to_service\"}";
    let forwarded = metric(&h.metrics_text(), to_service);
    let before = sim.session_count();
    let e = b.login(USER, PASSWORD, prev).await.unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::RestoreRefused, "{e:?}");
    assert!(e.code.is_none());
    assert!(
        e.message.contains("previous session"),
        "specific message: {}",
        e.message
    );
    assert!(!e.message.contains(&prev[1..9]), "no uuid in the message");
    assert_eq!(
        metric(&h.metrics_text(), to_service),
        forwarded,
        "the login reached the service"
    );
    assert_eq!(sim.session_count(), before);
}

#[tokio::test]
async fn restore_after_the_window_with_the_last_token_lists_the_lost_task() {
    let sim = sim().await;
    let h = start(&config(&sim, "")).await;
    let (mut a, session) = logged_in(&h, SecurityLevel::Normal).await;
    let job = Uuid::new_v4();
    a.send(&prl_sim::start_long_task_command(
        40,
        50,
        0,
        job,
        a.conn_uuid,
    ))
    .await;
    // Two progress events, then the browser is gone for longer than the window.
    let mut seen = 0;
    while seen < 2 {
        let p = a.recv().await;
        if p.header.package_type == cmd::VM_EVENT && p.header.parent_uuid == job {
            seen += 1;
        }
    }
    let token = lose(&sim, a).await;
    assert_eq!(sim.task_count(), 1, "the task outlives its session");

    // The SDK's way, through the proxy: a password login naming the previous session, on a
    // connection whose open proves this browser owned it.
    let mut b = Browser::open(&h, open_req(Some(&token))).await.unwrap();
    let reply = b.login(USER, PASSWORD, &session).await.unwrap();
    assert_eq!(reply.code, ErrorCode::SUCCESS);
    let login = reply.login_response().unwrap();
    assert_ne!(login.session_uuid, session, "a new session");
    assert_eq!(login.running_tasks.len(), 1, "the lost task is listed");
    let task = &login.running_tasks[0];
    assert_eq!(task.task_type, prl_sim::SIM_CMD_START_LONG_TASK);
    // ... and can be re-attached (2090), its result arriving on the new connection.
    let attach = Uuid::new_v4();
    b.send(&commands::one_str_command(
        cmd::ATTACH_TO_LOST_TASK,
        &task.task_id,
        attach,
        b.conn_uuid,
        &mut Uuid::new_v4,
    ))
    .await;
    assert_eq!(b.reply_to(attach).await.unwrap().code, ErrorCode::SUCCESS);
    let done: Reply = b.reply_to(attach).await.unwrap();
    assert_eq!(done.code, ErrorCode::SUCCESS);
    assert_eq!(done.opcode, prl_sim::SIM_CMD_START_LONG_TASK);

    // Consumed on use: the same proof does not work twice.
    let mut c = Browser::open(&h, open_req(Some(&token))).await.unwrap();
    assert_refused(&h, &sim, &mut c, &session).await;
    let m = h.metrics_text();
    assert_eq!(
        metric(&m, "prl_proxy_logins_total{outcome=\"refused\"}"),
        1.0
    );
    assert_eq!(
        metric(&m, "prl_proxy_rejections_total{reason=\"restore_unknown\"}"),
        1.0
    );
}

#[tokio::test]
async fn a_leaked_session_uuid_alone_is_useless() {
    let sim = sim().await;
    let h = start(&config(&sim, "")).await;
    let (a, session) = logged_in(&h, SecurityLevel::Normal).await;
    let token = lose(&sim, a).await;

    // No proof at all.
    let mut b = Browser::open(&h, open_req(None)).await.unwrap();
    assert_refused(&h, &sim, &mut b, &session).await;
    // A made-up proof; the session uuid itself as the proof.
    let forged = prl_proxy::util::Token::generate();
    for fake in [forged.expose(), session.as_str()] {
        let mut b = Browser::open(&h, open_req(Some(fake))).await.unwrap();
        assert_refused(&h, &sim, &mut b, &session).await;
    }
    // Something that is not a session uuid at all.
    let mut b = Browser::open(&h, open_req(Some(&token))).await.unwrap();
    let e = b.login(USER, PASSWORD, "not-a-uuid").await.unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::RestoreRefused);
    // That open consumed the proof: the owner starts afresh (an empty prevSessionId works).
    let mut b = Browser::open(&h, open_req(Some(&token))).await.unwrap();
    assert_refused(&h, &sim, &mut b, &session).await;
    let mut b = Browser::open(&h, open_req(None)).await.unwrap();
    b.login_ok("").await;
}

#[tokio::test]
async fn the_proof_survives_refusals_and_works_for_its_owner() {
    let sim = sim().await;
    let h = start(&config(&sim, "")).await;
    let (a, session) = logged_in(&h, SecurityLevel::Normal).await;
    let token = lose(&sim, a).await;
    for _ in 0..3 {
        let mut b = Browser::open(&h, open_req(None)).await.unwrap();
        assert_refused(&h, &sim, &mut b, &session).await;
    }
    let mut b = Browser::open(&h, open_req(Some(&token))).await.unwrap();
    // A mistyped password may be retried on the same connection.
    assert_eq!(
        b.login(USER, "wrong", &session).await.unwrap().code,
        ErrorCode::AUTHENTICATION_FAILED
    );
    b.login_ok(&session).await;
}

#[tokio::test]
async fn a_rotated_token_is_no_proof() {
    let sim = sim().await;
    let h = start(&config(&sim, "")).await;
    let (a, session) = logged_in(&h, SecurityLevel::Normal).await;
    let (first, received, conn) = (a.token.clone(), a.received, a.conn_uuid);
    drop(a);
    metric_becomes(&h, "prl_proxy_sessions_detached", 1.0).await;
    // Resumed inside the window: the token rotates.
    let (mut b, resumed) = Browser::resume(&h, &first, received, conn).await.unwrap();
    assert_ne!(resumed.resume_token.expose(), first);
    // A package on the resumed connection shows the browser got the new token.
    b.ping().await.unwrap();
    let latest = lose(&sim, b).await;
    // The first token was superseded.
    let mut c = Browser::open(&h, open_req(Some(&first))).await.unwrap();
    assert_refused(&h, &sim, &mut c, &session).await;
    // The latest one is the proof.
    let mut c = Browser::open(&h, open_req(Some(&latest))).await.unwrap();
    c.login_ok(&session).await;
}

#[tokio::test]
async fn the_token_of_another_session_is_refused() {
    let sim = sim().await;
    let h = start(&config(&sim, "")).await;
    let (a, session_a) = logged_in(&h, SecurityLevel::Normal).await;
    let (b, session_b) = logged_in(&h, SecurityLevel::Normal).await;
    let token_a = lose(&sim, a).await;
    let token_b = lose(&sim, b).await;
    let mut c = Browser::open(&h, open_req(Some(&token_a))).await.unwrap();
    assert_refused(&h, &sim, &mut c, &session_b).await;
    let mut c = Browser::open(&h, open_req(Some(&token_b))).await.unwrap();
    c.login_ok(&session_b).await;
    let _ = session_a;
}

#[tokio::test]
async fn a_proof_from_another_origin_is_refused() {
    let sim = sim().await;
    let h = start(&config(
        &sim,
        "[server]\nallowed_origins = [\"https://console.test\", \"https://evil.test\"]\n",
    ))
    .await;
    let mut a = Browser::open_from(&h, "https://console.test", open_req(None))
        .await
        .unwrap();
    let session = a.login_ok("").await;
    let token = lose(&sim, a).await;
    let mut e = Browser::open_from(&h, "https://evil.test", open_req(Some(&token)))
        .await
        .unwrap();
    assert_refused(&h, &sim, &mut e, &session).await;
    assert_eq!(
        metric(
            &h.metrics_text(),
            "prl_proxy_rejections_total{reason=\"restore_mismatch\"}"
        ),
        1.0
    );
    // The owner's proof was left in place.
    let mut b = Browser::open_from(&h, "https://console.test", open_req(Some(&token)))
        .await
        .unwrap();
    b.login_ok(&session).await;
}

#[tokio::test]
async fn a_proof_is_bound_to_the_ticket_subject() {
    let sim = sim().await;
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("k");
    std::fs::write(&key_path, [7u8; 48]).unwrap();
    let key = TicketIssuer::hs256_file(&key_path, None, DEFAULT_AUDIENCE).unwrap();
    let h = start(&config(
        &sim,
        &format!(
            "[tickets]\nkey_file = {:?}\nrequired = true\n",
            key_path.display().to_string()
        ),
    ))
    .await;
    let origin = own_origin(&h);
    let ticketed = |sub: &str, restore: Option<&str>| {
        let mut r = open_req(restore);
        let now = prl_proxy::util::unix_now();
        let options = TicketOptions {
            sub: Some(sub.into()),
            scope: None,
        };
        r.ticket = Some(Secret(key.remote("sim", 0, &origin, now, 60, options)));
        r
    };
    let mut a = Browser::open(&h, ticketed("user-1", None)).await.unwrap();
    let session = a.login_ok("").await;
    let token = lose(&sim, a).await;
    let mut m = Browser::open(&h, ticketed("user-2", Some(&token)))
        .await
        .unwrap();
    assert_refused(&h, &sim, &mut m, &session).await;
    let mut b = Browser::open(&h, ticketed("user-1", Some(&token)))
        .await
        .unwrap();
    b.login_ok(&session).await;
}

#[tokio::test]
async fn an_expired_proof_is_refused() {
    let sim = sim().await;
    let h = start(&format!(
        "{}[resume]\nwindow_ms = 100\nrestore_ttl_ms = 300\n[limits]\nlogin_burst_per_user = 100\n",
        sim_target(&sim)
    ))
    .await;
    let (a, session) = logged_in(&h, SecurityLevel::Normal).await;
    let token = lose(&sim, a).await;
    // Waiting for the proof's wall-clock expiry is what this test is about (the registry's
    // unit tests cover expiry with made-up instants).
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut b = Browser::open(&h, open_req(Some(&token))).await.unwrap();
    assert_refused(&h, &sim, &mut b, &session).await;
}

#[tokio::test]
async fn a_restore_inside_the_window_ends_the_parked_connection() {
    let sim = sim().await;
    let h = start(&format!(
        "{}[resume]\nwindow_ms = 10000\n[limits]\nlogin_burst_per_user = 100\n",
        sim_target(&sim)
    ))
    .await;
    let (a, session) = logged_in(&h, SecurityLevel::Normal).await;
    let (token, received, conn) = (a.token.clone(), a.received, a.conn_uuid);
    drop(a);
    metric_becomes(&h, "prl_proxy_sessions_detached", 1.0).await;
    assert_eq!(sim.session_count(), 1, "parked for resume");
    // The browser gave up resuming: its token ends the parked connection and proves it.
    let mut b = Browser::open(&h, open_req(Some(&token))).await.unwrap();
    sessions_become(&sim, 0).await;
    b.login_ok(&session).await;
    assert_eq!(
        metric(&h.metrics_text(), "prl_proxy_sessions_detached"),
        0.0
    );
    let e = Browser::resume(&h, &token, received, conn)
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, RelayErrorKind::ResumeFailed);
}

#[tokio::test]
async fn the_own_session_may_always_be_named() {
    // The public-key login's second step and a relogin name the connection's own session.
    let sim = sim().await;
    let h = start(&config(&sim, "")).await;
    let mut b = Browser::open(&h, open_req(None)).await.unwrap();
    let own = prl_protocol::uuid_string(&b.conn_uuid);
    assert_eq!(
        b.login(USER, "wrong", &own).await.unwrap().code,
        ErrorCode::AUTHENTICATION_FAILED
    );
    assert_eq!(b.login_ok(&own).await, own);
}
