//! Sessions, lost tasks and re-attaching (2090), cancel (2053), local login, desktop mode and
//! the logon limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use prl_protocol::codes::{cmd, event_type};
use prl_protocol::commands::{package_event, param, Reply};
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::package::Package;
use prl_protocol::{ErrorCode, Uuid};
use prl_sim::{
    start_long_task_command, ConfigError, Mode, TaskSpec, UserDb, PACF_CANCEL_TASK_ON_END_SESSION,
    SIM_CMD_START_LONG_TASK,
};

fn progress(p: &Package) -> Option<u32> {
    if p.header.package_type != cmd::VM_EVENT {
        return None;
    }
    let e = package_event(p).unwrap();
    assert_eq!(e.event_type, event_type::JOB_PROGRESS_CHANGED);
    e.uint(param::PROGRESS_CHANGED)
}

/// Reads packages until one is not a progress event of `parent`; returns the percentages
/// seen and that package.
async fn progress_until_reply(c: &mut Client, parent: Uuid) -> (Vec<u32>, Package) {
    let mut seen = Vec::new();
    loop {
        let p = c.next().await.unwrap().unwrap();
        match progress(&p) {
            Some(pct) => {
                assert_eq!(
                    p.header.parent_uuid, parent,
                    "progress events name the task's request"
                );
                assert_eq!(p.header.receiver_uuid, c.me());
                seen.push(pct);
            }
            None => return (seen, p),
        }
    }
}

#[tokio::test]
async fn a_task_survives_its_connection_and_is_reattached_after_relogin() {
    let sim = start(config()).await;
    let mut a = Client::connect(&sim, SecurityLevel::High).await.unwrap();
    let session_a = session_of(&a.login_ok().await);
    let start = start_long_task_command(20, 40, 0, Uuid::new_v4(), a.me());
    let request_uuid = start.header.uuid;
    a.conn.send(start).await.unwrap();
    // Two progress steps on the first connection, parented to the request.
    for expected in [5, 10] {
        let p = a.next().await.unwrap().unwrap();
        assert_eq!(progress(&p), Some(expected));
        assert_eq!(p.header.parent_uuid, request_uuid);
    }
    // The connection drops; its session dies with it, the task keeps running.
    a.conn.close().await;
    wait_until("the session ended", || sim.session_count() == 0).await;
    assert_eq!(sim.task_count(), 1);

    // A new connection logs in with the previous session uuid: a normal password login
    // (the old session is gone), with the lost task listed.
    let mut b = Client::connect(&sim, SecurityLevel::Normal).await.unwrap();
    let wrong = b.login(USER, "wrong", &session_a).await;
    assert_eq!(
        wrong.code,
        ErrorCode::AUTHENTICATION_FAILED,
        "a dead session is no free pass"
    );
    let reply = b.login(USER, PASSWORD, &session_a).await;
    assert_eq!(reply.code, ErrorCode::SUCCESS);
    let login = reply.login_response().unwrap();
    assert_eq!(login.session_uuid, braced(&b.me()), "a new session");
    assert_eq!(login.running_tasks.len(), 1);
    let task = &login.running_tasks[0];
    assert_eq!(task.task_type, SIM_CMD_START_LONG_TASK);
    assert!(prl_protocol::parse_uuid(&task.task_id).is_some());

    // Attaching to an unknown task, then to the real one.
    let p = b.one_str(cmd::ATTACH_TO_LOST_TASK, &braced(&Uuid::new_v4()));
    assert_eq!(b.request(p).await.code, ErrorCode::TASK_NOT_FOUND);
    let attach = b.one_str(cmd::ATTACH_TO_LOST_TASK, &task.task_id);
    let attach_uuid = attach.header.uuid;
    let r = b.request(attach).await;
    assert_eq!(r.code, ErrorCode::SUCCESS);
    assert_eq!(r.opcode, cmd::ATTACH_TO_LOST_TASK);
    // The remaining progress comes parented to the 2090 request, then the final result,
    // also a reply to the 2090 request, with the task's original opcode.
    b.backlog.retain(|p| progress(p).is_none());
    let (seen, last) = progress_until_reply(&mut b, attach_uuid).await;
    assert!(!seen.is_empty() && *seen.last().unwrap() == 100, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]));
    assert!(
        seen[0] > 10,
        "progress continued while nobody listened: {seen:?}"
    );
    assert_eq!(last.header.parent_uuid, attach_uuid);
    let done = Reply::parse(&last).unwrap();
    assert_eq!(done.code, ErrorCode::SUCCESS);
    assert_eq!(done.opcode, SIM_CMD_START_LONG_TASK);
    wait_until("the finished task is gone", || sim.task_count() == 0).await;
}

#[tokio::test]
async fn task_on_login_gives_every_new_session_a_task_to_lose_and_reattach() {
    let mut c = config();
    c.task_on_login = Some(TaskSpec {
        steps: 8,
        interval_ms: 60,
    });
    let sim = start(c).await;
    let mut a = Client::connect(&sim, SecurityLevel::Normal).await.unwrap();
    let session_a = session_of(&a.login_ok().await);
    // Progress of a task the client never asked for: addressed to it, parented to a request
    // it never sent (as if it had sent 9001 right after logging in).
    let p = a.next().await.unwrap().unwrap();
    assert_eq!(progress(&p), Some(12));
    assert_eq!(p.header.receiver_uuid, a.me());
    let hidden_request = p.header.parent_uuid;
    assert!(!hidden_request.is_nil());
    assert_eq!(sim.task_count(), 1);

    // Taking over the live session creates no session, so no second task (the reply goes to
    // the session's own connection).
    let t = Client::connect(&sim, SecurityLevel::Normal).await.unwrap();
    let p = t.login_package(USER, "wrong password, not checked", &session_a);
    let job = p.header.uuid;
    t.conn.send(p).await.unwrap();
    let r = a.reply_to(job).await;
    assert_eq!(r.code, ErrorCode::SUCCESS);
    assert_eq!(session_of(&r), session_a);
    assert_eq!(sim.task_count(), 1);
    drop(t);

    // The session dies with its connection; the task lives on and is listed at re-login.
    a.conn.close().await;
    wait_until("the session ended", || sim.session_count() == 0).await;
    assert_eq!(sim.task_count(), 1);
    let mut b = Client::connect(&sim, SecurityLevel::High).await.unwrap();
    let reply = b.login(USER, PASSWORD, &session_a).await;
    let login = reply.login_response().unwrap();
    assert_eq!(login.running_tasks.len(), 1, "{:?}", login.running_tasks);
    let task = &login.running_tasks[0];
    assert_eq!(task.task_type, SIM_CMD_START_LONG_TASK);
    // b's own login started b's own task.
    assert_eq!(sim.task_count(), 2);

    let attach = b.one_str(cmd::ATTACH_TO_LOST_TASK, &task.task_id);
    let attach_uuid = attach.header.uuid;
    assert_eq!(b.request(attach).await.code, ErrorCode::SUCCESS);
    // a's task now reports to b's 2090 request (b's own task interleaves: skip it).
    let mut seen = Vec::new();
    let done = loop {
        let p = if b.backlog.is_empty() {
            b.next().await.unwrap().unwrap()
        } else {
            b.backlog.remove(0)
        };
        if p.header.parent_uuid != attach_uuid {
            continue;
        }
        match progress(&p) {
            Some(pct) => seen.push(pct),
            None => break Reply::parse(&p).unwrap(),
        }
    };
    assert_eq!(seen.last(), Some(&100), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
    assert_eq!(done.code, ErrorCode::SUCCESS);
    assert_eq!(done.opcode, SIM_CMD_START_LONG_TASK);
}

#[test]
fn task_specs_parse_and_are_bounded() {
    assert_eq!(
        TaskSpec::parse("20:250").unwrap(),
        TaskSpec {
            steps: 20,
            interval_ms: 250
        }
    );
    assert_eq!(TaskSpec::parse("1:0").unwrap().interval_ms, 0);
    assert_eq!(TaskSpec::parse("10000:60000").unwrap().steps, 10_000);
    for bad in [
        "", "20", "20:", ":5", "0:5", "10001:5", "5:60001", "a:b", "5:5:5", "-1:5",
    ] {
        let e = TaskSpec::parse(bad).unwrap_err();
        assert_eq!(e.kind(), "invalid", "{bad}");
        assert!(e.to_string().contains("--task-on-login"), "{e}");
    }
}

#[tokio::test]
async fn tasks_are_capped_in_all_not_only_per_session() {
    // Tasks outlive their session: without a global cap, sessions that start tasks and drop
    // their connection would pile them up.
    let mut cfg = config();
    cfg.max_tasks = 3;
    let sim = start(cfg).await;
    let started = |c: &Client| start_long_task_command(1, 400, 0, Uuid::new_v4(), c.me());
    let mut a = Client::connect(&sim, SecurityLevel::Low).await.unwrap();
    a.login_ok().await;
    for _ in 0..2 {
        let p = started(&a);
        a.conn.send(p).await.unwrap();
    }
    let mut b = Client::connect(&sim, SecurityLevel::Low).await.unwrap();
    b.login_ok().await;
    let p = started(&b);
    b.conn.send(p).await.unwrap();
    wait_until("three tasks run", || sim.task_count() == 3).await;
    // A's session dies; its tasks keep running and still count.
    a.conn.close().await;
    wait_until("a's session ended", || sim.session_count() == 1).await;
    assert_eq!(sim.task_count(), 3);
    let mut c = Client::connect(&sim, SecurityLevel::Low).await.unwrap();
    c.login_ok().await;
    let p = started(&c);
    let refused = c.request(p).await;
    assert_eq!(refused.code, ErrorCode::TRY_AGAIN);
    assert_eq!(refused.opcode, SIM_CMD_START_LONG_TASK);
    assert_eq!(sim.task_count(), 3);
    // Once they are done, tasks start again.
    wait_until("the tasks finished", || sim.task_count() == 0).await;
    let p = started(&c);
    let job = p.header.uuid;
    c.conn.send(p).await.unwrap();
    c.backlog.retain(|p| progress(p).is_none());
    let done = c.reply_to(job).await;
    assert_eq!(done.code, ErrorCode::SUCCESS);
}

#[tokio::test]
async fn attach_needs_the_session_that_lost_the_task() {
    let sim = start(config()).await;
    let mut a = Client::connect(&sim, SecurityLevel::Low).await.unwrap();
    a.login_ok().await;
    let start = start_long_task_command(50, 50, 0, Uuid::new_v4(), a.me());
    a.conn.send(start).await.unwrap();
    a.next().await.unwrap().unwrap();
    let session_a = braced(&a.me());
    a.conn.close().await;
    wait_until("a's session ended", || sim.session_count() == 0).await;
    // A login without the previous session uuid sees no task and cannot attach.
    let mut b = Client::connect(&sim, SecurityLevel::Low).await.unwrap();
    let reply = b.login_ok().await;
    assert!(reply.login_response().unwrap().running_tasks.is_empty());
    // A re-login with the old session uuid lists it...
    let mut d = Client::connect(&sim, SecurityLevel::Low).await.unwrap();
    let r = d.login(USER, PASSWORD, &session_a).await;
    let id = r.login_response().unwrap().running_tasks[0].task_id.clone();
    // ...but only a session whose previous session owns the task may attach.
    let p = b.one_str(cmd::ATTACH_TO_LOST_TASK, &id);
    assert_eq!(
        b.request(p).await.code,
        ErrorCode::ATTACH_TO_TASK_BAD_SESSION
    );
    let p = d.one_str(cmd::ATTACH_TO_LOST_TASK, &id);
    assert_eq!(d.request(p).await.code, ErrorCode::SUCCESS);
}

#[tokio::test]
async fn cancel_ends_a_task_and_cancel_on_end_session_is_honoured() {
    let sim = start(config()).await;
    let mut a = Client::connect(&sim, SecurityLevel::High).await.unwrap();
    a.login_ok().await;
    let start = start_long_task_command(100, 30, 0, Uuid::new_v4(), a.me());
    let job = start.header.uuid;
    a.conn.send(start).await.unwrap();
    a.next().await.unwrap().unwrap();
    // Another session may not cancel it.
    let mut other = Client::connect(&sim, SecurityLevel::High).await.unwrap();
    other.login_ok().await;
    let p = other.one_str(cmd::USER_CANCEL_OPERATION, &braced(&job));
    assert_eq!(other.request(p).await.code, ErrorCode::ACCESS_DENIED);
    // The owner can.
    let cancel = a.one_str(cmd::USER_CANCEL_OPERATION, &braced(&job));
    let r = a.request(cancel).await;
    assert_eq!(r.code, ErrorCode::SUCCESS);
    assert_eq!(r.opcode, cmd::USER_CANCEL_OPERATION);
    a.backlog.retain(|p| progress(p).is_none());
    let done = a.reply_to(job).await;
    assert_eq!(done.code, ErrorCode::OPERATION_WAS_CANCELED);
    assert_eq!(done.opcode, SIM_CMD_START_LONG_TASK);

    // A task flagged PACF_CANCEL_TASK_ON_END_SESSION dies with its session.
    let start = start_long_task_command(
        100,
        30,
        PACF_CANCEL_TASK_ON_END_SESSION,
        Uuid::new_v4(),
        a.me(),
    );
    a.conn.send(start).await.unwrap();
    wait_until("the flagged task runs", || sim.task_count() == 1).await;
    let session_a = braced(&a.me());
    a.conn.close().await;
    wait_until("the flagged task ended with its session", || {
        sim.task_count() == 0
    })
    .await;
    assert_eq!(sim.session_count(), 1, "only `other` is left");
    let mut b = Client::connect(&sim, SecurityLevel::High).await.unwrap();
    let r = b.login(USER, PASSWORD, &session_a).await;
    assert!(r.login_response().unwrap().running_tasks.is_empty());
}

#[tokio::test]
async fn a_live_session_is_reused_without_a_password() {
    let sim = start(config()).await;
    let mut a = Client::connect(&sim, SecurityLevel::Low).await.unwrap();
    let session_a = session_of(&a.login_ok().await);
    let mut b = Client::connect(&sim, SecurityLevel::Normal).await.unwrap();
    // Names other than the exact `{lower-case}` handle do not match.
    let upper = session_a.to_uppercase();
    assert_eq!(
        b.login(USER, "wrong", &upper).await.code,
        ErrorCode::AUTHENTICATION_FAILED
    );
    // `processAuthorizeCmd` registers b with a's session object and sends the login reply
    // through it (`pClient->sendPackage`): to a's connection, with a's session uuid, as a
    // response to b's request (a binary one: broadcast-style, no receiver uuid). b hears
    // nothing.
    let p = b.login_package(USER, "wrong", &session_a);
    let job = p.header.uuid;
    b.conn.send(p).await.unwrap();
    let reply = loop {
        let p = a.next().await.unwrap().unwrap();
        if is_reply_to(&p, job) {
            break p;
        }
    };
    assert_eq!(reply.header.parent_uuid, job, "a response to b's request");
    assert_eq!(reply.header.receiver_uuid, Uuid::nil());
    let reply = Reply::parse(&reply).unwrap();
    assert_eq!(reply.code, ErrorCode::SUCCESS);
    assert_eq!(
        session_of(&reply),
        session_a,
        "the live session itself is reused"
    );
    // b is logged in as that session: what the dispatcher answers itself
    // (`sendSimpleResponseToClient(h, ...)`) comes to b ...
    let p = b.simple(cmd::USER_PING);
    assert_eq!(
        b.request(p).await.code,
        ErrorCode::UNIMPLEMENTED,
        "b is logged in"
    );
    assert_eq!(
        b.login(USER, PASSWORD, "").await.code,
        ErrorCode::USER_IS_ALREADY_LOGGED
    );
    assert!(
        !b.backlog.iter().any(|p| is_reply_to(p, job)),
        "b got no login reply"
    );
    // ... what the session answers (`pUser->sendSimpleResponse`) goes to a: cancel ...
    let p = b.one_str(cmd::USER_CANCEL_OPERATION, &braced(&Uuid::new_v4()));
    let id = p.header.uuid;
    b.conn.send(p).await.unwrap();
    assert_eq!(a.reply_to(id).await.code, ErrorCode::TASK_NOT_FOUND);
    // ... and logoff, which then closes a's connection, not b's.
    assert_eq!(sim.session_count(), 2);
    let p = b.simple(cmd::USER_LOGOFF);
    let id = p.header.uuid;
    b.conn.send(p).await.unwrap();
    assert_eq!(a.reply_to(id).await.code, ErrorCode::SUCCESS);
    assert!(a.until_closed().await.is_empty());
    let p = b.simple(cmd::USER_PING);
    assert_eq!(b.request(p).await.code, ErrorCode::UNIMPLEMENTED);
    assert_eq!(sim.session_count(), 1, "b is still logged in");
    assert!(!b
        .backlog
        .iter()
        .any(|p| p.header.package_type == cmd::WS_RESPONSE
            || p.header.package_type == cmd::WS_BINARY_RESPONSE));
}

#[tokio::test]
async fn a_restored_session_answers_in_its_own_connections_format() {
    // The login reply's format follows the protocol of the connection it goes out on (the
    // session's, `clientProtocolVersion(pSession->getClientHandle())`): XML 5001 for a client
    // below 6.2, even when the restoring client takes 5003.
    let sim = start(config()).await;
    let mut old = client_config(SecurityLevel::Low);
    old.version = prl_protocol::handshake::ProtocolVersion::new(6, 1, "old");
    let mut a = Client::connect_with(&sim, old).await.unwrap();
    // Below 6.9 the password travels as it is.
    let p = prl_protocol::commands::LoginRequest {
        user: USER.into(),
        password: prl_protocol::commands::Password::new(PASSWORD),
        prev_session_uuid: String::new(),
        flags: prl_protocol::commands::PCF_ORIGINAL_CLIENT,
    }
    .to_package(Uuid::new_v4(), a.me(), false, &mut Uuid::new_v4);
    let r = a.request(p).await;
    assert_eq!(r.code, ErrorCode::SUCCESS);
    let session_a = session_of(&r);
    let b = Client::connect(&sim, SecurityLevel::Low).await.unwrap();
    let p = b.login_package(USER, "", &session_a);
    let job = p.header.uuid;
    b.conn.send(p).await.unwrap();
    let reply = loop {
        let p = a.next().await.unwrap().unwrap();
        if is_reply_to(&p, job) {
            break p;
        }
    };
    assert_eq!(reply.header.package_type, cmd::WS_RESPONSE);
    assert_eq!(session_of(&Reply::parse(&reply).unwrap()), session_a);
    // The restoring client's own first login on a 6.10 connection gets 5003, as usual.
    let mut c = Client::connect(&sim, SecurityLevel::Low).await.unwrap();
    let p = c.login_package(USER, PASSWORD, "");
    let job = p.header.uuid;
    c.conn.send(p).await.unwrap();
    let p = c.next().await.unwrap().unwrap();
    assert!(is_reply_to(&p, job));
    assert_eq!(p.header.package_type, cmd::WS_BINARY_RESPONSE);
}

#[tokio::test]
async fn local_login_identifies_the_peer_uid() {
    let dir = temp_dir();
    let mut cfg = config();
    cfg.unix = Some(dir.join("prl.sock"));
    cfg.users
        .add(UserDb::parse_local_spec(&format!("localuser:{}", own_uid())).unwrap())
        .unwrap();
    let sim = start(cfg).await;
    let mut c = Client::connect_unix(&sim).await.unwrap();
    let r = c.login_local("").await;
    assert_eq!(r.code, ErrorCode::SUCCESS);
    assert_eq!(r.opcode, cmd::USER_EASY_LOGIN_LOCAL);
    assert_eq!(session_of(&r), braced(&c.me()));
    // Over TCP there is no peer uid: local login fails.
    let mut t = Client::connect(&sim, SecurityLevel::Low).await.unwrap();
    assert_eq!(
        t.login_local("").await.code,
        ErrorCode::LOCAL_AUTHENTICATION_FAILED
    );
    drop(sim);
    std::fs::remove_dir_all(&dir).unwrap();

    // A uid no user maps to.
    let dir = temp_dir();
    let mut cfg = config();
    cfg.unix = Some(dir.join("prl.sock"));
    cfg.users
        .add(UserDb::parse_local_spec(&format!("other:{}", own_uid().wrapping_add(4242))).unwrap())
        .unwrap();
    let sim = start(cfg).await;
    let mut c = Client::connect_unix(&sim).await.unwrap();
    assert_eq!(
        c.login_local("").await.code,
        ErrorCode::LOCAL_AUTHENTICATION_FAILED
    );
    // Password login works on the unix socket too.
    c.login_ok().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn desktop_mode_is_local_only_with_one_user() {
    let dir = temp_dir();
    let mut cfg = prl_sim::SimConfig::new();
    cfg.mode = Mode::Desktop;
    cfg.unix = Some(dir.join("prl.sock"));
    cfg.users
        .add(UserDb::parse_local_spec(&format!("owner:{}", own_uid())).unwrap())
        .unwrap();
    // TCP is refused by configuration: a desktop service has no remote listener.
    let e = prl_sim::Simulator::start(cfg.clone()).await.unwrap_err();
    assert!(matches!(e, ConfigError::Invalid(_)));
    assert!(e.to_string().contains("--listen"), "{e}");
    cfg.tcp = None;
    let sim = start(cfg.clone()).await;
    assert!(sim.tcp_addr().is_none());
    let mut c = Client::connect_unix(&sim).await.unwrap();
    let r = c.login_local("").await;
    assert_eq!(r.code, ErrorCode::SUCCESS);
    assert_eq!(
        r.login.unwrap().string(param::APP_EXECUTE_MODE),
        Some("1"),
        "desktop application mode"
    );
    drop(sim);
    // More than one user is refused.
    cfg.users
        .add(UserDb::parse_spec("second:pw").unwrap())
        .unwrap();
    let e = prl_sim::Simulator::start(cfg).await.unwrap_err();
    assert!(e.to_string().contains("exactly one user"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn more_than_16_logins_in_progress_are_refused() {
    let mut cfg = config();
    cfg.auth_delay = Duration::from_millis(600);
    let sim = start(cfg).await;
    let mut clients = Vec::new();
    for _ in 0..20 {
        clients.push(Client::connect(&sim, SecurityLevel::Low).await.unwrap());
    }
    let results = futures_join(clients).await;
    let ok = results.iter().filter(|c| **c == ErrorCode::SUCCESS).count();
    let limited = results
        .iter()
        .filter(|c| **c == ErrorCode::DISP_LOGON_ACTIONS_REACHED_UP_LIMIT)
        .count();
    assert_eq!((ok, limited), (16, 4), "{results:?}");
    // Once they are done, logins pass again.
    let mut late = Client::connect(&sim, SecurityLevel::Low).await.unwrap();
    late.login_ok().await;
}

async fn futures_join(clients: Vec<Client>) -> Vec<ErrorCode> {
    let mut handles = Vec::new();
    for mut c in clients {
        handles.push(tokio::spawn(async move {
            c.login(USER, PASSWORD, "").await.code
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn an_unpaced_task_streams_every_event_in_order() {
    // Interval 0: no timer between steps (what the relay-throughput benchmark needs).
    let sim = start(config()).await;
    let mut a = Client::connect(&sim, SecurityLevel::Low).await.unwrap();
    a.login_ok().await;
    let start = start_long_task_command(3000, 0, 0, Uuid::new_v4(), a.me());
    let request_uuid = start.header.uuid;
    a.conn.send(start).await.unwrap();
    let (seen, last) = progress_until_reply(&mut a, request_uuid).await;
    assert_eq!(seen.len(), 3000);
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "in order");
    assert_eq!(*seen.last().unwrap(), 100);
    assert_eq!(Reply::parse(&last).unwrap().code, ErrorCode::SUCCESS);
}
