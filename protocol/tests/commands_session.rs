//! Commands, replies and the client session against the real client's bytes.
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

use prl_protocol::codes::{cmd, ErrorCode};
use prl_protocol::commands::{
    self, login_event, login_reply, param, simple_response, Command, LoginLocalRequest,
    LoginRequest, LostTask, Password, Reply, ServerInfo, PCF_ORIGINAL_CLIENT,
};
use prl_protocol::package::{Limits, Package, PackageDecoder};
use prl_protocol::session::{
    ClientSession, JobKind, JobResult, SessionConfig, SessionEvent, SessionState,
};
use prl_protocol::{parse_uuid, Uuid};

fn data(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn packages(bytes: &[u8]) -> Vec<Package> {
    let mut decoder = PackageDecoder::new(Limits::default());
    decoder.push(bytes);
    let mut out = Vec::new();
    while let Some(p) = decoder.next_package().unwrap() {
        out.push(p);
    }
    out
}

fn u(text: &str) -> Uuid {
    parse_uuid(text).unwrap()
}

/// A UUID source replaying the given ids, then counting up.
fn ids(list: &[&str]) -> impl FnMut() -> Uuid {
    let mut list: Vec<Uuid> = list.iter().map(|s| u(s)).collect();
    list.reverse();
    let mut n = 0u128;
    move || {
        list.pop().unwrap_or_else(|| {
            n += 1;
            Uuid::from_u128(0xabcd_0000_0000_4000_8000_0000_0000_0000 + n)
        })
    }
}

const JOB: &str = "29368b3a-dfe4-4175-8d41-35a58632e7b0";
const SENDER: &str = "cc0102a7-ee99-45bf-be33-0ec1740fa217";

#[test]
fn login_package_is_byte_identical_to_the_sdk() {
    let stream = data("client-stream-low-login-logoff.bin");
    let captured = packages(&stream);
    let request = LoginRequest {
        user: "testuser".into(),
        password: Password::new("testpass"),
        prev_session_uuid: String::new(),
        flags: PCF_ORIGINAL_CLIENT,
    };
    let mut source = ids(&[
        "86a29edb-7444-491d-ac39-960bc30fa3e3",
        "434761f5-bfa9-4ea3-bfd7-a3824c634a6f",
    ]);
    let built = request.to_package(u(JOB), u(SENDER), true, &mut source);
    assert_eq!(built.encode(), captured[0].encode());

    let Command::Login(parsed) = Command::parse(&captured[0], true).unwrap() else {
        panic!("not a login")
    };
    assert_eq!(parsed, request);
    assert_eq!(parsed.password.expose(), "testpass");
    assert!(!format!("{parsed:?}").contains("testpass"));
}

#[test]
fn logoff_package_is_byte_identical_to_the_sdk() {
    let captured = packages(&data("client-stream-low-login-logoff.bin"));
    let logoff = captured.last().unwrap();
    let mut source = ids(&[
        "454451c3-c8e7-407b-87f9-3f5631b1657a",
        "19623c9f-04f3-41e6-bfd5-c720913c276a",
    ]);
    let built = commands::simple_command(
        cmd::USER_LOGOFF,
        u("89359163-ea97-4bcc-9912-b9f4ba560faf"),
        u(SENDER),
        &mut source,
    );
    assert_eq!(built.encode(), logoff.encode());
    assert_eq!(Command::parse(logoff, true).unwrap(), Command::Logoff);
}

#[test]
fn accepted_replies_parse() {
    let reply =
        Package::decode(&data("accepted-login-reply-5003.bin"), &Limits::default()).unwrap();
    let reply = Reply::parse(&reply).unwrap();
    assert_eq!(reply.opcode, cmd::USER_LOGIN);
    assert_eq!(reply.code, ErrorCode::SUCCESS);
    let login = reply.login_response().unwrap();
    assert_eq!(login.session_uuid, format!("{{{SENDER}}}"));
    assert!(login.running_tasks.is_empty());

    let logoff =
        Package::decode(&data("accepted-logoff-reply-5001.bin"), &Limits::default()).unwrap();
    let logoff = Reply::parse(&logoff).unwrap();
    assert_eq!(logoff.opcode, cmd::USER_LOGOFF);
    assert_eq!(logoff.code, ErrorCode::SUCCESS);
    assert!(logoff.login.is_none());
}

#[test]
fn password_encoding_matches_the_sdk_rules() {
    let wire = Password::new("testpass").encode(true);
    assert_eq!(wire.len(), 1368);
    assert_eq!(Password::decode(&wire, true).unwrap().expose(), "testpass");
    // UTF-16 units decide the padding, as QString::leftJustified does.
    let wire = Password::new("pässwörd€").encode(true);
    let raw = base64_decode(&wire);
    assert_eq!(raw.len(), "pässwörd€".len() + 1024 - 9);
    assert_eq!(Password::decode(&wire, true).unwrap().expose(), "pässwörd€");
    // Too long is the one failure, with the service's code; like Qt, text that is no base64
    // at all decodes (to whatever is left: here nothing), it is not an error.
    let long = Password::new("A".repeat(1369)).encode(true);
    let err = Password::decode(&long, true).unwrap_err();
    assert_eq!(err.kind(), "password_too_long");
    assert_eq!(err.service_code(), ErrorCode::INVALID_ARG);
    assert_eq!(Password::decode("@@@", true).unwrap().expose(), "");
    let longest = Password::new("A".repeat(1368)).encode(true);
    assert_eq!(
        Password::decode(&longest, true).unwrap().expose().len(),
        1368
    );
    // Old protocol: plain text.
    assert_eq!(&*Password::new("x").encode(false), "x");
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

#[test]
fn invalid_login_requests_are_typed() {
    let mut source = ids(&[]);
    // A login event without the password parameter.
    let mut event = commands::command_event(PCF_ORIGINAL_CLIENT, &mut source);
    event.add_string(param::LOGIN_USERNAME, "u");
    event.add_string(param::LOGIN_SESSION_TO_RESTORE, "");
    let package = commands::request_package(cmd::USER_LOGIN, &event, source(), source());
    let err = Command::parse(&package, true).unwrap_err();
    assert_eq!(err.kind(), "missing_param");
    assert_eq!(err.service_code(), ErrorCode::FAILURE);
    // No payload at all.
    let empty = Package::request(cmd::USER_LOGIN, source(), source(), vec![]);
    assert_eq!(
        Command::parse(&empty, true).unwrap_err().kind(),
        "no_payload"
    );
    // Payload that is not XML.
    let junk =
        Package::request(cmd::USER_LOGIN, source(), source(), vec![]).with_text("not xml at all");
    assert_eq!(Command::parse(&junk, true).unwrap_err().kind(), "bad_event");
    // A reply parser given a command.
    assert_eq!(Reply::parse(&package).unwrap_err().kind(), "not_a_reply");
}

fn server_info() -> ServerInfo {
    ServerInfo {
        os_version: "Linux 6.1".into(),
        server_uuid: "{30147db3-ba8a-4dc6-b2b1-3038dc9923ac}".into(),
        product_version: "7.0.0".into(),
        start_time_ms: 1_700_000_000_000,
        ..ServerInfo::default()
    }
}

#[test]
fn login_reply_round_trips_with_lost_tasks_binary_and_xml() {
    let mut source = ids(&[]);
    let request = LoginRequest {
        user: "u".into(),
        password: Password::new("p"),
        prev_session_uuid: "{00000000-0000-0000-0000-0000000000aa}".into(),
        flags: PCF_ORIGINAL_CLIENT,
    }
    .to_package(u(JOB), u(SENDER), true, &mut source);
    let tasks = vec![LostTask {
        task_id: "{00000000-0000-0000-0000-0000000000bb}".into(),
        task_type: 4242,
        task_params: String::new(),
    }];
    let event = login_event(
        &format!("{{{SENDER}}}"),
        &server_info(),
        &tasks,
        &mut source,
    );
    for binary in [true, false] {
        let reply = login_reply(&request, source(), source(), &event, binary, &mut source);
        assert_eq!(
            reply.header.package_type,
            if binary {
                cmd::WS_BINARY_RESPONSE
            } else {
                cmd::WS_RESPONSE
            }
        );
        assert_eq!(reply.header.parent_uuid, u(JOB));
        // The binary reply is a broadcast response (no receiver), the XML one a direct one.
        let receiver = if binary { Uuid::nil() } else { u(SENDER) };
        assert_eq!(reply.header.receiver_uuid, receiver);
        let parsed = Reply::parse(&reply).unwrap();
        assert_eq!(parsed.opcode, cmd::USER_LOGIN);
        let login = parsed.login_response().unwrap();
        assert_eq!(login.server_uuid, server_info().server_uuid);
        assert_eq!(login.host_os_version, "Linux 6.1");
        assert_eq!(login.product_version, "7.0.0");
        assert_eq!(login.start_time_ms, Some(1_700_000_000_000));
        assert_eq!(login.running_tasks, tasks);
        assert!(!format!("{login:?}").contains(SENDER));
    }
}

#[test]
fn error_replies_carry_code_and_params() {
    let mut source = ids(&[]);
    let request = commands::simple_command(cmd::USER_PING, source(), source(), &mut source);
    let reply = simple_response(
        &request,
        source(),
        source(),
        ErrorCode::USER_OPERATION_NOT_AUTHORISED,
        &["a", "b"],
        &mut source,
    );
    let parsed = Reply::parse(&reply).unwrap();
    assert_eq!(parsed.code, ErrorCode::USER_OPERATION_NOT_AUTHORISED);
    assert_eq!(parsed.opcode, cmd::USER_PING);
    assert_eq!(parsed.standard_params(), vec!["a", "b"]);
    // EventCode is printed signed, as the service does.
    let xml = reply.text(0).unwrap().unwrap();
    assert!(xml.contains("<EventCode>-2147483559</EventCode>"), "{xml}");
}

#[test]
fn local_login_and_one_string_commands_round_trip() {
    let mut source = ids(&[]);
    let request = LoginLocalRequest {
        application_mode: 0,
        prev_session_uuid: "{00000000-0000-0000-0000-0000000000aa}".into(),
        flags: PCF_ORIGINAL_CLIENT,
    };
    let package = request.to_package(source(), source(), &mut source);
    assert_eq!(package.header.package_type, cmd::USER_EASY_LOGIN_LOCAL);
    assert_eq!(
        Command::parse(&package, true).unwrap(),
        Command::LoginLocal(request)
    );
    let attach = commands::one_str_command(
        cmd::ATTACH_TO_LOST_TASK,
        "{t}",
        source(),
        source(),
        &mut source,
    );
    assert_eq!(
        Command::parse(&attach, true).unwrap(),
        Command::AttachToLostTask {
            task_id: "{t}".into()
        }
    );
    let cancel = commands::one_str_command(
        cmd::USER_CANCEL_OPERATION,
        "{j}",
        source(),
        source(),
        &mut source,
    );
    assert_eq!(
        Command::parse(&cancel, true).unwrap(),
        Command::Cancel {
            job_uuid: "{j}".into()
        }
    );
    let other = commands::simple_command(2000, source(), source(), &mut source);
    assert_eq!(Command::parse(&other, true).unwrap(), Command::Other(2000));
}

// ---- the session state machine ----

struct Fixture {
    session: ClientSession,
    ids: Box<dyn FnMut() -> Uuid>,
    server: Uuid,
}

impl Fixture {
    fn connected(config: SessionConfig) -> Fixture {
        let mut session = ClientSession::new(config);
        session.connecting(0, 5_000).unwrap();
        session.connected(100, u(SENDER), true).unwrap();
        Fixture {
            session,
            ids: Box::new(ids(&[])),
            server: u("30147db3-ba8a-4dc6-b2b1-3038dc9923ac"),
        }
    }

    fn events(&mut self) -> Vec<SessionEvent> {
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }

    fn sent(&mut self) -> Vec<Package> {
        std::iter::from_fn(|| self.session.poll_transmit()).collect()
    }

    fn login(&mut self) -> (Uuid, Package) {
        let job = (self.ids)();
        let request = LoginRequest {
            user: "testuser".into(),
            password: Password::new("testpass"),
            prev_session_uuid: String::new(),
            flags: PCF_ORIGINAL_CLIENT,
        };
        self.session.login(job, &request, &mut *self.ids).unwrap();
        let sent = self.sent();
        assert_eq!(sent.len(), 1);
        (job, sent.into_iter().next().unwrap())
    }

    /// Logged in, with a 2090 sent and answered SUCCESS: the fixture, the 2090 job and its
    /// package (its events up to here drained except `TaskAttached`).
    fn attached() -> (Fixture, Uuid, Package) {
        let mut f = Fixture::connected(SessionConfig {
            heartbeat_interval_ms: None,
        });
        let (_, request) = f.login();
        f.accept_login(&request);
        f.events();
        let job = (f.ids)();
        f.session
            .attach_to_lost_task(job, "{00000000-0000-0000-0000-0000000000bb}", &mut *f.ids)
            .unwrap();
        let attach = f.sent().remove(0);
        let (a, b) = ((f.ids)(), f.server);
        let reply = simple_response(&attach, b, a, ErrorCode::SUCCESS, &[], &mut *f.ids);
        f.session.handle_package(reply).unwrap();
        (f, job, attach)
    }

    fn accept_login(&mut self, request: &Package) {
        let event = login_event(
            &format!("{{{SENDER}}}"),
            &server_info(),
            &[],
            &mut *self.ids,
        );
        let (a, b) = ((self.ids)(), self.server);
        let reply = login_reply(request, b, a, &event, true, &mut *self.ids);
        self.session.handle_package(reply).unwrap();
    }
}

#[test]
fn session_logs_in_and_off() {
    let mut f = Fixture::connected(SessionConfig {
        heartbeat_interval_ms: None,
    });
    assert_eq!(f.session.state(), SessionState::Connected);
    let (job, request) = f.login();
    assert_eq!(request.header.uuid, job);
    assert_eq!(request.header.sender_uuid, u(SENDER));
    assert_eq!(f.session.state(), SessionState::LoggingIn);
    f.events();
    f.accept_login(&request);
    let events = f.events();
    assert!(events.contains(&SessionEvent::StateChanged(SessionState::LoggedIn)));
    assert!(events.iter().any(|e| matches!(e,
        SessionEvent::JobFinished { job: j, kind: JobKind::Login, result: JobResult::LoggedIn(r) }
        if *j == job && r.session_uuid == format!("{{{SENDER}}}"))));
    assert_eq!(
        f.session.session_uuid(),
        Some(format!("{{{SENDER}}}").as_str())
    );

    let logoff = (f.ids)();
    f.session.logoff(logoff, &mut *f.ids).unwrap();
    let sent = f.sent();
    assert_eq!(sent[0].header.package_type, cmd::USER_LOGOFF);
    let (a, b) = ((f.ids)(), f.server);
    let reply = simple_response(&sent[0], b, a, ErrorCode::SUCCESS, &[], &mut *f.ids);
    f.session.handle_package(reply).unwrap();
    assert_eq!(f.session.state(), SessionState::Closed);
    assert!(f.session.session_uuid().is_none());
}

#[test]
fn wrong_password_is_reported_with_its_code() {
    let mut f = Fixture::connected(SessionConfig {
        heartbeat_interval_ms: None,
    });
    let (job, request) = f.login();
    let (a, b) = ((f.ids)(), f.server);
    let reply = simple_response(
        &request,
        b,
        a,
        ErrorCode::AUTHENTICATION_FAILED,
        &[],
        &mut *f.ids,
    );
    f.session.handle_package(reply).unwrap();
    let events = f.events();
    assert!(events.iter().any(|e| matches!(e,
        SessionEvent::JobFinished { job: j, result: JobResult::Failed { code, .. }, .. }
        if *j == job && *code == ErrorCode::AUTHENTICATION_FAILED)));
    assert_eq!(f.session.state(), SessionState::Connected);
}

#[test]
fn connect_budget_is_measured_from_connecting_and_zero_means_sixty_seconds() {
    let mut s = ClientSession::new(SessionConfig::default());
    s.connecting(1_000, 0).unwrap();
    assert_eq!(s.poll_timeout(), Some(61_000));
    s.handle_timeout(60_999);
    assert_eq!(s.state(), SessionState::Connecting);
    s.handle_timeout(61_000);
    assert_eq!(s.state(), SessionState::Disconnected);
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(events.contains(&SessionEvent::ConnectTimedOut));

    let mut s = ClientSession::new(SessionConfig::default());
    s.connecting(0, 250).unwrap();
    assert_eq!(s.poll_timeout(), Some(250));
    // Once connected the budget no longer applies: the login reply may take longer.
    s.connected(200, u(SENDER), true).unwrap();
    s.handle_timeout(10_000);
    assert_eq!(s.state(), SessionState::Connected);
}

#[test]
fn heartbeats_go_out_every_ten_seconds() {
    let mut f = Fixture::connected(SessionConfig::default());
    assert_eq!(f.session.poll_timeout(), Some(10_100));
    f.session.handle_timeout(10_099);
    assert!(f.sent().is_empty());
    f.session.handle_timeout(10_100);
    let sent = f.sent();
    assert_eq!(sent, vec![Package::heartbeat()]);
    assert_eq!(f.session.poll_timeout(), Some(20_100));
    // Incoming heartbeats are consumed silently.
    f.session.handle_package(Package::heartbeat()).unwrap();
    assert!(f
        .events()
        .iter()
        .all(|e| !matches!(e, SessionEvent::ServiceEvent { .. })));
}

#[test]
fn lost_connection_fails_pending_jobs() {
    let mut f = Fixture::connected(SessionConfig {
        heartbeat_interval_ms: None,
    });
    let (job, _) = f.login();
    f.session.connection_lost();
    let events = f.events();
    assert!(events.iter().any(|e| matches!(e,
        SessionEvent::JobFinished { job: j, result: JobResult::Failed { code, .. }, .. }
        if *j == job && *code == ErrorCode::WS_DISP_CONNECTION_CLOSED)));
    assert!(events.contains(&SessionEvent::ConnectionLost));
    assert_eq!(f.session.state(), SessionState::Disconnected);
}

#[test]
fn cancel_sends_2053_and_fails_the_job() {
    let mut f = Fixture::connected(SessionConfig {
        heartbeat_interval_ms: None,
    });
    let (job, request) = f.login();
    let cancel = (f.ids)();
    f.session.cancel(job, cancel, &mut *f.ids).unwrap();
    let sent = f.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        Command::parse(&sent[0], true).unwrap(),
        Command::Cancel {
            job_uuid: prl_protocol::uuid_string(&job)
        }
    );
    assert!(f.events().iter().any(|e| matches!(e,
        SessionEvent::JobFinished { job: j, result: JobResult::Failed { code, .. }, .. }
        if *j == job && *code == ErrorCode::OPERATION_WAS_CANCELED)));
    // A late reply to the canceled login is not matched to anything pending.
    f.accept_login(&request);
    assert!(!f
        .events()
        .iter()
        .any(|e| matches!(e, SessionEvent::JobFinished { .. })));
    assert_eq!(
        f.session
            .cancel(job, cancel, &mut *f.ids)
            .unwrap_err()
            .kind(),
        "unknown_job"
    );
}

#[test]
fn attach_to_lost_task_streams_progress_then_result() {
    let (mut f, job, attach) = Fixture::attached();
    assert!(f.events().contains(&SessionEvent::TaskAttached { job }));
    let (a, b) = ((f.ids)(), f.server);
    let progress = commands::progress_event(job, u(SENDER), b, a, "{vm}", 40, &mut *f.ids);
    f.session.handle_package(progress).unwrap();
    assert!(f
        .events()
        .contains(&SessionEvent::Progress { job, percent: 40 }));
    let (a, b) = ((f.ids)(), f.server);
    f.session
        .handle_package(simple_response(
            &attach,
            b,
            a,
            ErrorCode::SUCCESS,
            &[],
            &mut *f.ids,
        ))
        .unwrap();
    assert!(f.events().iter().any(|e| matches!(e,
        SessionEvent::JobFinished { job: j, kind: JobKind::AttachedTask, result: JobResult::Done(_) }
        if *j == job)));
}

#[test]
fn calls_in_the_wrong_state_are_refused() {
    let mut s = ClientSession::new(SessionConfig::default());
    let mut source = ids(&[]);
    let request = LoginRequest {
        user: "u".into(),
        password: Password::new("p"),
        prev_session_uuid: String::new(),
        flags: 0,
    };
    assert_eq!(
        s.login(source(), &request, &mut source).unwrap_err().kind(),
        "wrong_state"
    );
    assert_eq!(
        s.logoff(source(), &mut source).unwrap_err().kind(),
        "wrong_state"
    );
    assert_eq!(
        s.connected(0, source(), true).unwrap_err().kind(),
        "wrong_state"
    );
}

#[test]
fn binary_events_are_read_like_xml_events() {
    let (mut f, job, _) = Fixture::attached();
    f.events();
    // A 3008 progress event parented to the job.
    let mut event =
        prl_protocol::event::Event::new(prl_protocol::codes::event_type::JOB_PROGRESS_CHANGED);
    event.add_uint(param::PROGRESS_CHANGED, 70);
    let mut package = Package::request(
        cmd::VM_BINARY_EVENT,
        (f.ids)(),
        f.server,
        vec![prl_protocol::package::Buffer::raw(event.to_binary())],
    );
    package.header.parent_uuid = job;
    package.header.numeric_id = 42;
    f.session.handle_package(package.clone()).unwrap();
    assert!(f
        .events()
        .contains(&SessionEvent::Progress { job, percent: 70 }));
    // Unaddressed, it is a service event carrying the decoded event and its numeric id.
    package.header.parent_uuid = Uuid::nil();
    f.session.handle_package(package).unwrap();
    let events = f.events();
    assert!(events.iter().any(|e| matches!(e,
        SessionEvent::ServiceEvent { package_type, event: Some(ev) }
        if *package_type == cmd::VM_BINARY_EVENT && ev.event_id == 42 && ev.uint(param::PROGRESS_CHANGED) == Some(70))));
    // A broken binary event addressed to a job is an error, not a silent drop.
    let mut broken = Package::request(
        cmd::VM_BINARY_EVENT,
        (f.ids)(),
        f.server,
        vec![prl_protocol::package::Buffer::raw(vec![0, 0, 1])],
    );
    broken.header.parent_uuid = job;
    assert_eq!(
        f.session.handle_package(broken).unwrap_err().kind(),
        "bad_reply"
    );
}
