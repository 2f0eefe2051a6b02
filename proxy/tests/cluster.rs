//! Two proxies of one cluster (in this process, each on its own loopback port) sharing a
//! `redis-server` this test starts, in front of one prl-sim: what one instance decided holds
//! on the other (tickets, throttles, restore proofs), a resume reaching the wrong instance is
//! sent to the holder, and without Redis both fail closed, then recover. The browser-level
//! version (three instances behind HAProxy, headless Chromium) is `tests/e2e/cluster.test.mjs`.
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

#[path = "common/relay.rs"]
mod browser;
mod common;
#[path = "common/redis.rs"]
mod redis_server;
use browser::*;

use std::net::SocketAddr;

use common::*;
use prl_protocol::codes::cmd;
use prl_protocol::commands::{self, Reply};
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::relay::{
    ClientMessage, OpenRequest, ProxyMessage, RelayErrorKind, ResumeRequest, Secret, SUBPROTOCOL,
    SUBPROTOCOL_V1,
};
use prl_protocol::{ErrorCode, Uuid};
use prl_proxy::{Config, Proxy, ProxyHandle};
use prl_sim::Simulator;
use redis_server::RedisServer;

/// The page origin both instances serve (a balancer's).
const APP: &str = "https://app.example";

struct Cluster {
    _dir: tempfile::TempDir,
    a: ProxyHandle,
    b: ProxyHandle,
    ticket_key: std::path::PathBuf,
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/ws")
}

/// Instances `a` and `b` on `redis` in front of `sim`; `extra` TOML goes into both.
async fn cluster(redis: &RedisServer, sim: &Simulator, extra: &str) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cluster.key");
    std::fs::write(&secret, "cluster-secret-cluster-secret-cluster-secret").unwrap();
    let ticket_key = dir.path().join("ticket.key");
    std::fs::write(&ticket_key, [9u8; 32]).unwrap();
    let (aa, ab) = (free_addr(), free_addr());
    let toml = |me: &str, addr: SocketAddr, peer: &str, peer_addr: SocketAddr| {
        format!(
            "[server]\nallowed_origins = [\"{APP}\"]\n{}\
             [resume]\nwindow_ms = 300\n\
             [tickets]\nkey_file = \"{}\"\nrequired = false\n\
             [cluster]\nredis_url = \"{}\"\ninstance_id = \"{me}\"\npublic_url = \"{}\"\n\
             secret_file = \"{}\"\nheartbeat_ms = 100\npeers = {{ {peer} = \"{}\" }}\n{extra}",
            sim_target(sim),
            ticket_key.display(),
            redis.url(),
            url(addr),
            secret.display(),
            url(peer_addr),
        )
    };
    let bind = |text: String, addr: SocketAddr| async move {
        let mut config = Config::from_toml_str(&text).expect("test config");
        config.server.listen = addr;
        let proxy = Proxy::bind(config, None).await.expect("bind");
        let handle = proxy.handle();
        tokio::spawn(proxy.run());
        wait_until("the instance reaches redis", || {
            handle.shared_state_available()
        })
        .await;
        handle
    };
    let a = bind(toml("a", aa, "b", ab), aa).await;
    let b = bind(toml("b", ab, "a", aa), ab).await;
    Cluster {
        _dir: dir,
        a,
        b,
        ticket_key,
    }
}

/// The first message on `h` from the app's page, speaking relay version 2 (or 1).
async fn first(
    h: &ProxyHandle,
    v2: bool,
    message: ClientMessage,
) -> Result<(Browser, ProxyMessage), prl_protocol::relay::RelayError> {
    let protocol = if v2 { SUBPROTOCOL } else { SUBPROTOCOL_V1 };
    Browser::connect_offering("127.0.0.1", h.local_addr(), APP, &[protocol], &[], message).await
}

fn open_req() -> OpenRequest {
    open_request("sim", SecurityLevel::Low)
}

async fn open(
    h: &ProxyHandle,
    req: OpenRequest,
) -> Result<Browser, prl_protocol::relay::RelayError> {
    first(h, true, ClientMessage::Open(req))
        .await
        .map(|(b, _)| b)
}

fn resume(token: &str) -> ClientMessage {
    ClientMessage::Resume(ResumeRequest {
        version: 2,
        token: Secret(token.into()),
        received: 0,
    })
}

#[tokio::test]
async fn a_ticket_used_on_one_instance_is_refused_on_another() {
    let redis = RedisServer::start();
    let sim = sim().await;
    let c = cluster(&redis, &sim, "").await;
    let key = prl_proxy::ticket::TicketIssuer::hs256_file(
        &c.ticket_key,
        None,
        prl_proxy::config::DEFAULT_AUDIENCE,
    )
    .unwrap();
    let ticket = key.remote(
        "sim",
        0,
        APP,
        prl_proxy::util::unix_now(),
        60,
        Default::default(),
    );
    let mut req = open_req();
    req.ticket = Some(Secret(ticket.clone()));
    let mut b = open(&c.a, req.clone()).await.unwrap();
    b.login_ok("").await;
    let e = open(&c.b, req.clone()).await.err().unwrap();
    assert_eq!(e.kind, RelayErrorKind::TicketInvalid);
    assert!(
        e.message.starts_with("replayed: ticket already used"),
        "{}",
        e.message
    );
    // And on A itself, of course.
    assert_eq!(
        open(&c.a, req).await.err().unwrap().kind,
        RelayErrorKind::TicketInvalid
    );
}

#[tokio::test]
async fn a_resume_reaching_another_instance_is_sent_to_the_holder() {
    let redis = RedisServer::start();
    let sim = sim().await;
    let c = cluster(&redis, &sim, "").await;
    let (a_url, _b_url) = (url(c.a.local_addr()), url(c.b.local_addr()));
    let mut b = open(&c.a, open_req()).await.unwrap();
    assert_eq!(
        b.opened.as_ref().unwrap().instance.as_deref(),
        Some(a_url.as_str()),
        "opened names the holder"
    );
    b.login_ok("").await;
    let (token, conn) = (b.token.clone(), b.conn_uuid);
    drop(b);
    metric_becomes(&c.a, "prl_proxy_sessions_detached", 1.0).await;
    // The resume lands on B: sent to A, whose URL comes from B's configuration.
    let e = first(&c.b, true, resume(&token)).await.err().unwrap();
    assert_eq!(e.kind, RelayErrorKind::ResumeElsewhere);
    assert_eq!(e.instance.as_deref(), Some(a_url.as_str()));
    assert_eq!(
        metric(&c.b.metrics_text(), "prl_proxy_resume_redirects_total"),
        1.0
    );
    // A version-1 client cannot follow: it hears resume_failed, nothing new.
    let e = first(&c.b, false, resume(&token)).await.err().unwrap();
    assert_eq!(e.kind, RelayErrorKind::ResumeFailed);
    assert_eq!(e.instance, None);
    // The redirect took nothing away: the resume on A works, the session goes on.
    let (mut b, reply) = first(&c.a, true, resume(&token)).await.unwrap();
    let ProxyMessage::Resumed(r) = reply else {
        panic!("not resumed")
    };
    assert_eq!(r.instance.as_deref(), Some(a_url.as_str()));
    b.conn_uuid = conn;
    assert_eq!(b.ping().await.unwrap(), ErrorCode::UNIMPLEMENTED);
    // Once resumed, nothing is parked: B says the token is unknown.
    let e = first(&c.b, true, resume(&token)).await.err().unwrap();
    assert_eq!(e.kind, RelayErrorKind::ResumeFailed);
}

#[tokio::test]
async fn a_restore_through_another_instance_lists_the_lost_task_and_reattaches_it() {
    let redis = RedisServer::start();
    let sim = sim().await;
    let c = cluster(&redis, &sim, "").await;
    let mut a = open(&c.a, open_req()).await.unwrap();
    let session = a.login_ok("").await;
    let job = Uuid::new_v4();
    a.send(&prl_sim::start_long_task_command(
        40,
        50,
        0,
        job,
        a.conn_uuid,
    ))
    .await;
    let mut seen = 0;
    while seen < 2 {
        let p = a.recv().await;
        if p.header.package_type == cmd::VM_EVENT && p.header.parent_uuid == job {
            seen += 1;
        }
    }
    // The browser is gone past A's resume window: A closes the upstream connection.
    let token = a.token.clone();
    drop(a);
    wait_until("the session ended on the service", || {
        sim.session_count() == 0
    })
    .await;
    // Restored through B: B takes the proof A kept.
    let mut req = open_req();
    req.restore = Some(Secret(token.clone()));
    let mut b = open(&c.b, req.clone()).await.unwrap();
    let reply = b.login(USER, PASSWORD, &session).await.unwrap();
    assert_eq!(reply.code, ErrorCode::SUCCESS);
    let login = reply.login_response().unwrap();
    assert_eq!(login.running_tasks.len(), 1, "the lost task is listed");
    let attach = Uuid::new_v4();
    b.send(&commands::one_str_command(
        cmd::ATTACH_TO_LOST_TASK,
        &login.running_tasks[0].task_id,
        attach,
        b.conn_uuid,
        &mut Uuid::new_v4,
    ))
    .await;
    assert_eq!(b.reply_to(attach).await.unwrap().code, ErrorCode::SUCCESS);
    let done: Reply = b.reply_to(attach).await.unwrap();
    assert_eq!(done.code, ErrorCode::SUCCESS);
    // Spent everywhere: A refuses the same proof.
    let mut again = open(&c.a, req).await.unwrap();
    let e = again.login(USER, PASSWORD, &session).await.err().unwrap();
    assert_eq!(e.kind, RelayErrorKind::RestoreRefused);
}

#[tokio::test]
async fn a_per_user_throttle_holds_across_instances() {
    let redis = RedisServer::start();
    let sim = sim().await;
    let c = cluster(
        &redis,
        &sim,
        "[limits]\nlogin_burst_per_user = 2\nlogin_per_minute_per_user = 1\n",
    )
    .await;
    for h in [&c.a, &c.b] {
        let mut b = open(h, open_req()).await.unwrap();
        let reply = b.login(USER, "wrong", "").await.unwrap();
        assert_eq!(reply.code, ErrorCode::AUTHENTICATION_FAILED);
    }
    // The third attempt, wherever it lands, finds the user's bucket empty.
    for h in [&c.a, &c.b] {
        let mut b = open(h, open_req()).await.unwrap();
        let e = b.login(USER, PASSWORD, "").await.err().unwrap();
        assert_eq!(e.kind, RelayErrorKind::LimitReached);
        assert!(e.message.contains("this user"), "{}", e.message);
    }
}

#[tokio::test]
async fn without_redis_new_logins_fail_closed_sessions_go_on_and_it_recovers() {
    let mut redis = RedisServer::start();
    let sim = sim().await;
    let c = cluster(&redis, &sim, "").await;
    let mut live = open(&c.a, open_req()).await.unwrap();
    live.login_ok("").await;
    let mut waiting = open(&c.a, open_req()).await.unwrap();
    redis.stop();
    wait_until("A notices", || !c.a.shared_state_available()).await;
    let (status, _, body) = get(c.a.local_addr(), "/readyz").await;
    assert_eq!(
        (status, String::from_utf8_lossy(&body).as_ref()),
        (503, "degraded: shared state unavailable\n")
    );
    assert_eq!(
        metric(&c.a.metrics_text(), "prl_proxy_shared_state_up"),
        0.0
    );
    // A new connection cannot be counted cluster-wide: refused, typed.
    let e = open(&c.a, open_req()).await.err().unwrap();
    assert_eq!(e.kind, RelayErrorKind::StateUnavailable);
    // ... as `internal` to a version-1 client.
    let e = first(&c.a, false, ClientMessage::Open(open_req()))
        .await
        .err()
        .unwrap();
    assert_eq!(e.kind, RelayErrorKind::Internal);
    // A login on a connection opened before cannot be throttled: refused, not forwarded.
    let e = waiting.login(USER, PASSWORD, "").await.err().unwrap();
    assert_eq!(e.kind, RelayErrorKind::StateUnavailable);
    assert_eq!(
        metric(
            &c.a.metrics_text(),
            "prl_proxy_logins_total{outcome=\"unavailable\"}"
        ),
        1.0
    );
    // A logged-in session goes on.
    assert_eq!(live.ping().await.unwrap(), ErrorCode::UNIMPLEMENTED);

    // Redis returns (empty): no restart of the proxy.
    redis.restart();
    wait_until("A recovers", || c.a.shared_state_available()).await;
    let (status, _, _) = get(c.a.local_addr(), "/readyz").await;
    assert_eq!(status, 200);
    let mut b = open(&c.a, open_req()).await.unwrap();
    b.login_ok("").await;
    assert_eq!(live.ping().await.unwrap(), ErrorCode::UNIMPLEMENTED);
}
