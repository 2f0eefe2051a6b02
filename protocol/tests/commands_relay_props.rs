//! Property tests: login requests, replies and relay control messages round-trip; arbitrary
//! input never panics the parsers.
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

use prl_protocol::codes::{cmd, ErrorCode};
use prl_protocol::commands::{
    login_event, login_reply, simple_response, Command, LoginRequest, LostTask, Password, Reply,
    ServerInfo,
};
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::package::{Limits, Package};
use prl_protocol::relay::{
    ClientMessage, ConnectMode, OpenRequest, ProxyMessage, RelayError, RelayErrorKind,
    ResumeRequest, Secret, Target, RELAY_VERSION,
};
use prl_protocol::Uuid;
use proptest::prelude::*;

fn counter() -> impl FnMut() -> Uuid {
    let mut n = 0u128;
    move || {
        n += 1;
        Uuid::from_u128(n)
    }
}

fn text() -> impl Strategy<Value = String> {
    // Printable text including XML-special characters and non-ASCII; no NUL (a C string).
    proptest::string::string_regex("[a-zA-Z0-9 <>&\"'\\]\\[{}é€漢-]{0,40}").unwrap()
}

fn level() -> impl Strategy<Value = SecurityLevel> {
    prop_oneof![
        Just(SecurityLevel::Low),
        Just(SecurityLevel::Normal),
        Just(SecurityLevel::High)
    ]
}

proptest! {
    #[test]
    fn login_request_round_trips(user in text(), password in text(), prev in text(),
                                 flags in any::<u32>(), base64 in any::<bool>()) {
        // Whitespace-only values read back empty, as with QDom (which drops such text nodes).
        let request = LoginRequest {
            user: format!("x{user}"),
            password: Password::new(format!("x{password}")),
            prev_session_uuid: format!("x{prev}"),
            flags,
        };
        let mut ids = counter();
        let package = request.to_package(Uuid::from_u128(7), Uuid::from_u128(8), base64, &mut ids);
        let bytes = package.encode();
        let decoded = Package::decode(&bytes, &Limits::default()).unwrap();
        prop_assert_eq!(Command::parse(&decoded, base64).unwrap(), Command::Login(request));
    }

    #[test]
    fn replies_round_trip(code in any::<u32>(), params in proptest::collection::vec(text(), 0..4),
                          tasks in proptest::collection::vec((text(), any::<u32>(), text()), 0..3),
                          binary in any::<bool>()) {
        let mut ids = counter();
        let request = prl_protocol::commands::simple_command(cmd::USER_PING, ids(), ids(), &mut ids);
        // Whitespace-only values read back empty, as with QDom (which drops such text nodes).
        let params: Vec<String> = params.into_iter().map(|p| format!("x{p}")).collect();
        let refs: Vec<&str> = params.iter().map(String::as_str).collect();
        let reply = simple_response(&request, ids(), ids(), ErrorCode(code), &refs, &mut ids);
        let parsed = Reply::parse(&Package::decode(&reply.encode(), &Limits::default()).unwrap()).unwrap();
        prop_assert_eq!(parsed.code, ErrorCode(code));
        prop_assert_eq!(parsed.opcode, cmd::USER_PING);
        prop_assert_eq!(parsed.standard_params(), refs);

        let tasks: Vec<LostTask> = tasks
            .into_iter()
            .map(|(task_id, task_type, task_params)| LostTask {
                task_id: format!("x{task_id}"),
                task_type,
                task_params: format!("x{task_params}"),
            })
            .collect();
        let info = ServerInfo { server_uuid: "{s}".into(), ..ServerInfo::default() };
        let event = login_event("{session}", &info, &tasks, &mut ids);
        let reply = login_reply(&request, ids(), ids(), &event, binary, &mut ids);
        let login = Reply::parse(&reply).unwrap().login_response().unwrap();
        prop_assert_eq!(login.session_uuid, "{session}");
        prop_assert_eq!(login.running_tasks, tasks);
    }

    #[test]
    fn relay_messages_round_trip(host in text(), port in any::<u16>(), timeout in any::<u32>(),
                                 level in level(), local in any::<bool>(), ticket in proptest::option::of(text()),
                                 token in text(), received in any::<u64>(), message in text(),
                                 kind in 0usize..RelayErrorKind::ALL.len()) {
        let open = ClientMessage::Open(OpenRequest {
            version: RELAY_VERSION,
            target: Target { host, port },
            security_level: level,
            timeout_ms: timeout,
            mode: if local { ConnectMode::Local } else { ConnectMode::Remote },
            ticket: ticket.clone().map(Secret),
            restore: ticket.map(Secret),
        });
        prop_assert_eq!(ClientMessage::from_json(&open.to_json()).unwrap(), open);
        let resume = ClientMessage::Resume(ResumeRequest { version: RELAY_VERSION, token: Secret(token), received });
        prop_assert_eq!(ClientMessage::from_json(&resume.to_json()).unwrap(), resume);
        let error = ProxyMessage::Error(RelayError::new(RelayErrorKind::ALL[kind], message));
        prop_assert_eq!(ProxyMessage::from_json(&error.to_json()).unwrap(), error);
    }

    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                    s in ".{0,200}") {
        let _ = ClientMessage::from_json(&s);
        let _ = ProxyMessage::from_json(&s);
        let package = Package::request(cmd::USER_LOGIN, Uuid::nil(), Uuid::nil(), vec![])
            .with_text(&s);
        let _ = Command::parse(&package, true);
        for t in [cmd::WS_RESPONSE, cmd::WS_BINARY_RESPONSE] {
            let mut p = Package::request(t, Uuid::nil(), Uuid::nil(), vec![prl_protocol::package::Buffer::raw(bytes.clone())]);
            let _ = Reply::parse(&p).map(|r| (r.login_response(), r.error_event()));
            p = p.with_text(&s);
            let _ = Reply::parse(&p);
        }
        let _ = Password::decode(&s, true);
    }
}
