//! `RelayRules` with virtual time: instants are made up, nothing sleeps.

use super::*;
use crate::shared_state::LoginThrottles;
use prl_protocol::codes::ErrorCode;
use prl_protocol::commands::{self, LoginLocalRequest, LoginRequest, Password, ServerInfo};
use prl_protocol::scope::CommandScope;

const MS: Duration = Duration::from_millis(1);

fn limits() -> LimitsConfig {
    LimitsConfig {
        idle_timeout_ms: 1_000,
        max_lifetime_ms: 10_000,
        login_deadline_ms: 500,
        ..LimitsConfig::default()
    }
}

fn rules_with(l: &LimitsConfig, local_login: bool, restore: Restore, t0: Instant) -> RelayRules {
    let config = RulesConfig::from_limits(
        l,
        Uuid::new_v4(),
        "192.0.2.7".parse().unwrap(),
        local_login,
        restore,
    );
    RelayRules::new(config, t0)
}

fn rules(t0: Instant) -> RelayRules {
    rules_with(&limits(), false, Restore::Absent, t0)
}

fn throttles() -> LoginThrottles {
    LoginThrottles::new(&LimitsConfig {
        login_burst_per_ip: 100,
        login_burst_per_user: 100,
        ..LimitsConfig::default()
    })
}

fn events(r: &mut RelayRules) -> Vec<Event> {
    std::iter::from_fn(|| r.poll_event()).collect()
}

fn login(r: &RelayRules, user: &str, prev: &str) -> Package {
    LoginRequest {
        user: user.into(),
        password: Password::new("pw"),
        prev_session_uuid: prev.into(),
        flags: commands::PCF_ORIGINAL_CLIENT,
    }
    .to_package(Uuid::new_v4(), r.config.conn_uuid, true, &mut Uuid::new_v4)
}

fn ping(sender: Uuid) -> Package {
    commands::simple_command(cmd::USER_PING, Uuid::new_v4(), sender, &mut Uuid::new_v4)
}

fn success_reply(request: &Package, session: Uuid) -> Package {
    let ids = &mut Uuid::new_v4;
    let event = commands::login_event(
        &prl_protocol::uuid_string(&session),
        &ServerInfo::default(),
        &[],
        ids,
    );
    commands::login_reply(request, Uuid::new_v4(), Uuid::new_v4(), &event, true, ids)
}

fn failure_reply(request: &Package) -> Package {
    commands::simple_response(
        request,
        Uuid::new_v4(),
        Uuid::new_v4(),
        ErrorCode::AUTHENTICATION_FAILED,
        &[],
        &mut Uuid::new_v4,
    )
}

/// Send `p` from the browser at `now`, a login's buckets taken from `t` (as the shell asks
/// the shared state); forwarded or the error.
fn browser(
    r: &mut RelayRules,
    now: Instant,
    p: &Package,
    t: &LoginThrottles,
) -> Result<Verdict, RelayError> {
    match r.handle_browser_package(now, &p.encode())? {
        Verdict::Login(p, mut gate) => {
            while let Some(key) = gate.next() {
                gate.record(Ok(t.check(key, now)));
            }
            r.finish_login(now, gate).map(|()| Verdict::Forward(p))
        }
        v => Ok(v),
    }
}

/// Log in successfully at `now`, the reply arriving `rtt` later.
fn log_in(r: &mut RelayRules, now: Instant, rtt: Duration) {
    let p = login(r, "alice", "");
    assert!(matches!(
        browser(r, now, &p, &throttles()),
        Ok(Verdict::Forward(_))
    ));
    let session = r.config.conn_uuid;
    r.handle_service_package(now + rtt, &success_reply(&p, session));
}

#[test]
fn the_login_deadline_fires_unless_a_login_succeeds_first() {
    let t0 = Instant::now();
    let mut r = rules(t0);
    assert_eq!(r.poll_timeout(), Some(t0 + 500 * MS));
    assert_eq!(r.handle_timeout(t0 + 499 * MS), None);
    assert_eq!(
        r.handle_timeout(t0 + 500 * MS),
        Some(Expired::LoginDeadline)
    );
    let e = r.expiry_error(Expired::LoginDeadline);
    assert_eq!(e.kind, RelayErrorKind::LimitReached);
    assert_eq!(e.message, "no login within 500 ms of opened");

    // Logged in before the deadline: only idle and lifetime remain.
    let mut r = rules(t0);
    log_in(&mut r, t0 + 100 * MS, 50 * MS);
    assert!(r.logged_in());
    let ev = events(&mut r);
    assert_eq!(
        ev,
        vec![
            Event::LoginReplied {
                outcome: LoginOutcome::Success,
                elapsed: 50 * MS
            },
            Event::LoggedIn
        ]
    );
    assert_eq!(r.poll_timeout(), Some(t0 + 1150 * MS));
    assert_eq!(r.handle_timeout(t0 + 600 * MS), None);
}

#[test]
fn a_failed_login_keeps_the_deadline() {
    let t0 = Instant::now();
    let mut r = rules(t0);
    let p = login(&r, "alice", "");
    browser(&mut r, t0, &p, &throttles()).unwrap();
    r.handle_service_package(t0 + 10 * MS, &failure_reply(&p));
    assert!(!r.logged_in());
    assert_eq!(
        events(&mut r),
        vec![Event::LoginReplied {
            outcome: LoginOutcome::Failure,
            elapsed: 10 * MS
        }]
    );
    assert_eq!(
        r.handle_timeout(t0 + 500 * MS),
        Some(Expired::LoginDeadline)
    );
}

#[test]
fn idle_counts_packages_either_way_but_not_heartbeats() {
    let t0 = Instant::now();
    let mut r = rules(t0);
    log_in(&mut r, t0, MS);
    let t = throttles();
    let me = r.config.conn_uuid;
    // A browser package at 800 ms moves the idle deadline.
    assert!(matches!(
        browser(&mut r, t0 + 800 * MS, &ping(me), &t),
        Ok(Verdict::Forward(_))
    ));
    assert_eq!(r.poll_timeout(), Some(t0 + 1800 * MS));
    // Heartbeats from either side do not.
    assert!(matches!(
        browser(&mut r, t0 + 1500 * MS, &Package::heartbeat(), &t),
        Ok(Verdict::Ignore)
    ));
    r.handle_service_package(t0 + 1600 * MS, &Package::heartbeat());
    assert_eq!(r.poll_timeout(), Some(t0 + 1800 * MS));
    // A service package does.
    r.handle_service_package(t0 + 1700 * MS, &ping(Uuid::new_v4()));
    assert_eq!(r.poll_timeout(), Some(t0 + 2700 * MS));
    assert_eq!(r.handle_timeout(t0 + 2699 * MS), None);
    assert_eq!(r.handle_timeout(t0 + 2700 * MS), Some(Expired::Idle));
    assert!(r
        .expiry_error(Expired::Idle)
        .message
        .contains("idle timeout"));
}

#[test]
fn the_lifetime_ends_even_a_busy_connection() {
    let t0 = Instant::now();
    let mut r = rules(t0);
    log_in(&mut r, t0, MS);
    let t = throttles();
    let me = r.config.conn_uuid;
    for i in 1..=20u32 {
        let now = t0 + i * 500 * MS;
        if i < 20 {
            browser(&mut r, now, &ping(me), &t).unwrap();
            assert_eq!(r.handle_timeout(now), None, "{i}");
        } else {
            assert_eq!(r.handle_timeout(now), Some(Expired::Lifetime));
        }
    }
    assert!(r
        .expiry_error(Expired::Lifetime)
        .message
        .contains("lifetime"));
}

#[test]
fn detached_the_resume_window_and_the_lifetime_apply_not_idle() {
    let t0 = Instant::now();
    let mut r = rules(t0);
    log_in(&mut r, t0, MS);
    r.handle_detached(t0 + 100 * MS, 5_000 * MS);
    assert!(r.is_detached());
    assert_eq!(r.poll_timeout(), Some(t0 + 5100 * MS));
    assert_eq!(r.handle_timeout(t0 + 3_000 * MS), None, "idle is off");
    // Resumed: idle counts from the resume.
    r.handle_resumed(t0 + 4_000 * MS);
    assert!(!r.is_detached());
    assert_eq!(r.poll_timeout(), Some(t0 + 5_000 * MS));
    // Detached again near the end of the lifetime: the lifetime comes first.
    r.handle_detached(t0 + 9_000 * MS, 5_000 * MS);
    assert_eq!(r.poll_timeout(), Some(t0 + 10_000 * MS));
    assert_eq!(r.handle_timeout(t0 + 10_000 * MS), Some(Expired::Lifetime));
    let mut r = rules(t0);
    log_in(&mut r, t0, MS);
    r.handle_detached(t0, 200 * MS);
    assert_eq!(r.handle_timeout(t0 + 200 * MS), Some(Expired::ResumeWindow));
}

#[test]
fn packages_must_come_from_this_connection() {
    let t0 = Instant::now();
    let mut r = rules(t0);
    let t = throttles();
    // A nil sender is filled in.
    match browser(&mut r, t0, &ping(Uuid::nil()), &t) {
        Ok(Verdict::Forward(p)) => assert_eq!(p.header.sender_uuid, r.config.conn_uuid),
        other => panic!("{other:?}"),
    }
    let e = browser(&mut r, t0, &ping(Uuid::new_v4()), &t).unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::ProtocolViolation);
    let e = r.handle_browser_package(t0, &[0u8; 100]).unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::ProtocolViolation);
    assert!(e.message.starts_with("malformed package"), "{}", e.message);
    // Over the message limit.
    let l = LimitsConfig {
        max_message_bytes: 100,
        ..limits()
    };
    let mut small = rules_with(&l, false, Restore::Absent, t0);
    let p = login(&small, "alice", "");
    assert!(p.encoded_len() > 100);
    let e = browser(&mut small, t0, &p, &t).unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::ProtocolViolation);
}

#[test]
fn local_logins_are_refused_unless_enabled() {
    let t0 = Instant::now();
    let local = |r: &RelayRules| {
        LoginLocalRequest {
            application_mode: 0,
            prev_session_uuid: String::new(),
            flags: 0,
        }
        .to_package(Uuid::new_v4(), r.config.conn_uuid, &mut Uuid::new_v4)
    };
    let mut r = rules(t0);
    let p = local(&r);
    let e = browser(&mut r, t0, &p, &throttles()).unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::PolicyDenied);
    assert_eq!(events(&mut r), vec![Event::LoginRefused]);
    let mut r = rules_with(&limits(), true, Restore::Absent, t0);
    let p = local(&r);
    assert!(matches!(
        browser(&mut r, t0, &p, &throttles()),
        Ok(Verdict::Forward(_))
    ));
}

#[test]
fn an_overlong_user_name_is_refused_without_touching_the_throttles() {
    let t0 = Instant::now();
    let mut r = rules(t0);
    let t = LoginThrottles::new(&LimitsConfig {
        login_burst_per_ip: 1,
        login_burst_per_user: 1,
        ..LimitsConfig::default()
    });
    let p = login(&r, &"u".repeat(MAX_USER_NAME_BYTES + 1), "");
    let e = browser(&mut r, t0, &p, &t).unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::LimitReached);
    assert!(e.message.contains("user name too long"), "{}", e.message);
    assert_eq!(events(&mut r), vec![Event::LoginRefused]);
    assert!(t.per_ip.is_empty() && t.per_user.is_empty());
    // At the limit it goes through.
    let p = login(&r, &"u".repeat(MAX_USER_NAME_BYTES), "");
    assert!(matches!(
        browser(&mut r, t0, &p, &t),
        Ok(Verdict::Forward(_))
    ));
}

#[test]
fn an_overlong_password_is_the_services_to_refuse() {
    // The proxy only peeks at a login: a password longer than the service accepts is
    // forwarded (the service answers PRL_ERR_INVALID_ARG), not refused as malformed.
    let t0 = Instant::now();
    let mut r = rules(t0);
    let p = LoginRequest {
        user: "alice".into(),
        password: Password::new("p".repeat(4 * commands::MAX_PASSWORD_LENGTH)),
        prev_session_uuid: String::new(),
        flags: commands::PCF_ORIGINAL_CLIENT,
    }
    .to_package(Uuid::new_v4(), r.config.conn_uuid, true, &mut Uuid::new_v4);
    assert!(matches!(
        browser(&mut r, t0, &p, &throttles()),
        Ok(Verdict::Forward(_))
    ));
    assert_eq!(events(&mut r), vec![]);
}

#[test]
fn throttles_per_address_and_per_user() {
    let t0 = Instant::now();
    let t = LoginThrottles::new(&LimitsConfig {
        login_burst_per_ip: 3,
        login_per_minute_per_ip: 60,
        login_burst_per_user: 2,
        login_per_minute_per_user: 60,
        ..LimitsConfig::default()
    });
    let mut r = rules(t0);
    for _ in 0..2 {
        let p = login(&r, "Alice", "");
        browser(&mut r, t0, &p, &t).unwrap();
    }
    let p = login(&r, "ALICE", "");
    let e = browser(&mut r, t0, &p, &t).unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::LimitReached);
    assert!(e.message.contains("this user"), "{}", e.message);
    let p = login(&r, "bob", "");
    let e = browser(&mut r, t0, &p, &t).unwrap_err();
    assert!(e.message.contains("this address"), "{}", e.message);
    assert_eq!(
        events(&mut r),
        vec![Event::LoginThrottled, Event::LoginThrottled]
    );
    // A second later the address has a token again (60 a minute).
    let p = login(&r, "bob", "");
    browser(&mut r, t0 + 1_000 * MS, &p, &t).unwrap();
}

#[test]
fn previous_sessions_need_this_connections_proof() {
    let t0 = Instant::now();
    let t = throttles();
    let granted = Uuid::new_v4();
    let text = |u: &Uuid| prl_protocol::uuid_string(u);
    // No proof: another session is refused, before the per-user bucket is charged.
    let tight = LoginThrottles::new(&LimitsConfig {
        login_burst_per_ip: 100,
        login_burst_per_user: 1,
        ..LimitsConfig::default()
    });
    let mut r = rules(t0);
    for prev in [text(&granted), "not-a-uuid".to_string()] {
        let p = login(&r, "alice", &prev);
        let e = browser(&mut r, t0, &p, &tight).unwrap_err();
        assert_eq!(e.kind, RelayErrorKind::RestoreRefused, "{prev}");
        assert!(e.message.contains("previous session"), "{}", e.message);
    }
    assert_eq!(
        events(&mut r),
        vec![
            Event::LoginRefused,
            Event::PreviousSessionRefused("the open carried no restore proof"),
            Event::LoginRefused,
            Event::PreviousSessionRefused("the previous session id is not a uuid"),
        ]
    );
    assert!(tight.per_user.is_empty());
    // Its own session may always be named.
    let own = text(&r.config.conn_uuid);
    let p = login(&r, "alice", &own);
    assert!(matches!(
        browser(&mut r, t0, &p, &t),
        Ok(Verdict::Forward(_))
    ));

    // With a proof: that session (and no other), once a login succeeded.
    let mut r = rules_with(&limits(), false, Restore::Granted(granted), t0);
    let p = login(&r, "alice", &text(&Uuid::new_v4()));
    assert_eq!(
        browser(&mut r, t0, &p, &t).unwrap_err().kind,
        RelayErrorKind::RestoreRefused
    );
    let p = login(&r, "alice", &text(&granted));
    browser(&mut r, t0, &p, &t).unwrap();
    // A failed attempt does not spend the proof.
    r.handle_service_package(t0, &failure_reply(&p));
    let p = login(&r, "alice", &text(&granted));
    browser(&mut r, t0, &p, &t).unwrap();
    r.handle_service_package(t0, &success_reply(&p, Uuid::new_v4()));
    let p = login(&r, "alice", &text(&granted));
    let e = browser(&mut r, t0, &p, &t).unwrap_err();
    assert!(e.message.contains("already used"), "{}", e.message);
    // A refused proof says so.
    let mut r = rules_with(
        &limits(),
        false,
        Restore::Refused(RestoreRefusal::Unknown),
        t0,
    );
    let p = login(&r, "alice", &text(&granted));
    let e = browser(&mut r, t0, &p, &t).unwrap_err();
    assert!(e.message.contains("unknown"), "{}", e.message);
}

#[test]
fn only_replies_to_forwarded_logins_count() {
    let t0 = Instant::now();
    let mut r = rules(t0);
    // A reply to something that was never a login does not log the connection in.
    let other = ping(r.config.conn_uuid);
    r.handle_service_package(t0, &success_reply(&other, Uuid::new_v4()));
    assert!(!r.logged_in());
    assert!(events(&mut r).is_empty());
    // The bytes to send are the package as encoded.
    let p = ping(Uuid::new_v4());
    assert_eq!(r.handle_service_package(t0, &p), Bytes::from(p.encode()));
}

#[test]
fn restore_proofs_are_redacted_in_debug() {
    let u = Uuid::new_v4();
    let text = format!("{:?}", Restore::Granted(u));
    assert!(!text.contains(&u.simple().to_string()[..8]), "{text}");
}

#[test]
fn a_login_the_throttles_cannot_check_is_refused_and_not_forwarded() {
    let t0 = Instant::now();
    let mut r = rules(t0);
    let p = login(&r, "alice", "");
    let Ok(Verdict::Login(_, mut gate)) = r.handle_browser_package(t0, &p.encode()) else {
        panic!("a login is gated")
    };
    assert_eq!(
        gate.next(),
        Some(ThrottleKey::Ip(client_key(r.config.client_ip)))
    );
    gate.record(Err(Unavailable("redis refused the connection".into())));
    assert_eq!(gate.next(), None);
    let e = r.finish_login(t0, gate).unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::StateUnavailable);
    assert!(!e.message.contains("redis"), "{}", e.message);
    assert_eq!(events(&mut r), vec![Event::LoginUnavailable]);
    // The per-user bucket failing is refused the same way; nothing is pending either way.
    let p = login(&r, "alice", "");
    let Ok(Verdict::Login(_, mut gate)) = r.handle_browser_package(t0, &p.encode()) else {
        panic!("a login is gated")
    };
    gate.record(Ok(true));
    assert!(matches!(gate.next(), Some(ThrottleKey::User(_))));
    gate.record(Err(Unavailable("late".into())));
    assert_eq!(
        r.finish_login(t0, gate).unwrap_err().kind,
        RelayErrorKind::StateUnavailable
    );
    // A gate finished before every bucket was asked admits nothing.
    let p = login(&r, "alice", "");
    let Ok(Verdict::Login(_, gate)) = r.handle_browser_package(t0, &p.encode()) else {
        panic!("a login is gated")
    };
    assert_eq!(
        r.finish_login(t0, gate).unwrap_err().kind,
        RelayErrorKind::StateUnavailable
    );
    assert!(r.pending_logins.is_empty());
}

fn vm_start(sender: Uuid) -> Package {
    prl_protocol::commands::VmRequest::start("{00000000-0000-4000-8000-000000000001}").to_package(
        Uuid::new_v4(),
        sender,
        &mut Uuid::new_v4,
    )
}

fn with_scope(scope: CommandScope, t0: Instant) -> RelayRules {
    let mut r = rules(t0);
    r.config.scope = scope;
    r
}

#[test]
fn a_command_outside_the_scope_is_refused_and_the_connection_goes_on() {
    let t0 = Instant::now();
    let t = throttles();
    let mut r = with_scope(CommandScope::Read, t0);
    log_in(&mut r, t0, MS);
    events(&mut r);
    let me = r.config.conn_uuid;
    let start = vm_start(me);
    let verdict = browser(&mut r, t0 + 100 * MS, &start, &t).unwrap();
    let Verdict::Refuse(e) = verdict else {
        panic!("{verdict:?}")
    };
    assert_eq!(e.kind, RelayErrorKind::CommandRefused);
    assert_eq!(e.refused_request(), Some(start.header.uuid));
    assert_eq!(events(&mut r), vec![Event::CommandRefused(1001)]);
    // A refused package is browser activity: the idle deadline moves.
    assert_eq!(r.poll_timeout(), Some(t0 + 1100 * MS));
    // What the read scope allows is forwarded: ping, the VM list, a cancel, a heartbeat.
    assert!(matches!(
        browser(&mut r, t0 + 200 * MS, &ping(me), &t),
        Ok(Verdict::Forward(_))
    ));
    let list = prl_protocol::commands::vm_list_request(0)
        .to_package(Uuid::new_v4(), me, &mut Uuid::new_v4)
        .unwrap();
    assert!(matches!(
        browser(&mut r, t0 + 300 * MS, &list, &t),
        Ok(Verdict::Forward(_))
    ));
    let cancel = commands::one_str_command(
        cmd::USER_CANCEL_OPERATION,
        "{x}",
        Uuid::new_v4(),
        me,
        &mut Uuid::new_v4,
    );
    assert!(matches!(
        browser(&mut r, t0 + 400 * MS, &cancel, &t),
        Ok(Verdict::Forward(_))
    ));
    assert!(matches!(
        browser(&mut r, t0 + 500 * MS, &Package::heartbeat(), &t),
        Ok(Verdict::Ignore)
    ));
    assert!(events(&mut r).is_empty());
    // A package of another connection is still a violation, scope or not.
    let e = browser(&mut r, t0 + 600 * MS, &vm_start(Uuid::new_v4()), &t).unwrap_err();
    assert_eq!(e.kind, RelayErrorKind::ProtocolViolation);
}

#[test]
fn each_scope_allows_its_commands() {
    let t0 = Instant::now();
    let t = throttles();
    let cases = [
        (CommandScope::Read, 1001, false),
        (CommandScope::Operate, 1001, true),
        (CommandScope::Operate, 1002, true),
        (CommandScope::Operate, 2125, false),
        (CommandScope::Operate, 9001, false),
        (CommandScope::All, 9001, true),
        (CommandScope::All, 1003, true),
    ];
    for (scope, package_type, forwarded) in cases {
        let mut r = with_scope(scope, t0);
        let me = r.config.conn_uuid;
        let p = commands::simple_command(package_type, Uuid::new_v4(), me, &mut Uuid::new_v4);
        let verdict = browser(&mut r, t0, &p, &t).unwrap();
        assert_eq!(
            matches!(verdict, Verdict::Forward(_)),
            forwarded,
            "{scope} {package_type}"
        );
    }
    // Logins pass every scope (and get the proxy's own login checks).
    let mut r = with_scope(CommandScope::Read, t0);
    let p = login(&r, "alice", "");
    assert!(matches!(
        browser(&mut r, t0, &p, &t),
        Ok(Verdict::Forward(_))
    ));
}
