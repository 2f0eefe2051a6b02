//! Browser tests of the WASM API surface (headless Chromium via wasm-bindgen-test-runner):
//! the JavaScript error class, option validation, state and events wiring, abort.
//! Tests against a real proxy and simulator live in `tests/e2e/` (node --test + Chromium).
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

use js_sys::{Array, Function, Object, Reflect};
use prl_client_wasm::{error_kinds, Server};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &JsValue::from_str(k), v).unwrap();
    }
    o.into()
}

fn get(v: &JsValue, key: &str) -> JsValue {
    Reflect::get(v, &JsValue::from_str(key)).unwrap()
}

/// A port nothing listens on: the WebSocket fails at once.
const DEAD_PROXY: &str = "ws://127.0.0.1:9/ws";

fn server(url: &str) -> Server {
    Server::new(obj(&[("proxyUrl", url.into())])).unwrap()
}

fn assert_parallels_error(err: &JsValue, kind: &str, code: u32, code_name: &str) {
    assert!(
        err.is_instance_of::<js_sys::Error>(),
        "not an Error: {err:?}"
    );
    assert_eq!(
        get(err, "name").as_string().as_deref(),
        Some("ParallelsError")
    );
    assert_eq!(
        get(err, "kind").as_string().as_deref(),
        Some(kind),
        "{err:?}"
    );
    assert_eq!(get(err, "code").as_f64(), Some(f64::from(code)), "{err:?}");
    assert_eq!(
        get(err, "codeName").as_string().as_deref(),
        Some(code_name),
        "{err:?}"
    );
    let message = get(err, "message").as_string().unwrap_or_default();
    // Lower-case prose (option names such as `proxyUrl` keep their spelling).
    assert!(
        message.starts_with(|c: char| c.is_ascii_lowercase()),
        "{message}"
    );
    assert!(!message.ends_with('.'), "{message}");
}

#[wasm_bindgen(
    inline_js = "export function isParallelsError(e) { return e instanceof Error && e.constructor.name === 'ParallelsError' && Object.getPrototypeOf(Object.getPrototypeOf(e)) === Error.prototype; }"
)]
extern "C" {
    #[wasm_bindgen(js_name = isParallelsError)]
    fn is_parallels_error(e: &JsValue) -> bool;
}

#[wasm_bindgen_test]
fn constructor_rejects_bad_options_with_a_parallels_error() {
    let err = Server::new(JsValue::UNDEFINED).unwrap_err();
    assert_parallels_error(&err, "invalid_argument", 0x8000_0003, "PRL_ERR_INVALID_ARG");
    assert!(is_parallels_error(&err));
    let err = Server::new(obj(&[("proxyUrl", "http://x/ws".into())])).unwrap_err();
    assert_parallels_error(&err, "invalid_argument", 0x8000_0003, "PRL_ERR_INVALID_ARG");
    let err = Server::new(obj(&[
        ("proxyUrl", DEAD_PROXY.into()),
        ("ticket", 5.into()),
    ]))
    .unwrap_err();
    assert!(get(&err, "message").as_string().unwrap().contains("ticket"));
    let err = Server::new(obj(&[
        ("proxyUrl", DEAD_PROXY.into()),
        ("autoRestore", "yes".into()),
    ]))
    .unwrap_err();
    assert!(get(&err, "message")
        .as_string()
        .unwrap()
        .contains("autoRestore"));
}

#[wasm_bindgen_test]
fn a_new_server_is_disconnected_without_a_session() {
    let s = server(DEAD_PROXY);
    assert_eq!(s.state(), "disconnected");
    assert_eq!(s.session_id(), None);
}

#[wasm_bindgen_test]
fn unknown_event_types_are_refused() {
    let s = server(DEAD_PROXY);
    let f = Function::new_no_args("");
    let err = s
        .add_event_listener("statechanged", &f, JsValue::UNDEFINED)
        .unwrap_err();
    assert_parallels_error(&err, "invalid_argument", 0x8000_0003, "PRL_ERR_INVALID_ARG");
    s.add_event_listener("statechange", &f, JsValue::UNDEFINED)
        .unwrap();
    s.remove_event_listener("statechange", &f, JsValue::UNDEFINED)
        .unwrap();
}

#[wasm_bindgen_test]
fn error_kinds_are_unique_snake_case() {
    let kinds: Vec<String> = error_kinds()
        .iter()
        .map(|k| k.as_string().unwrap())
        .collect();
    assert_eq!(kinds.len(), prl_client_wasm::error::ERROR_KINDS.len());
    for (i, k) in kinds.iter().enumerate() {
        assert!(k.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{k}");
        assert!(!kinds[i + 1..].contains(k), "duplicate {k}");
    }
}

async fn login_error(s: &Server, opts: JsValue) -> JsValue {
    JsFuture::from(s.login(opts)).await.unwrap_err()
}

fn login_opts(extra: &[(&str, JsValue)]) -> JsValue {
    let mut pairs = vec![
        ("host", JsValue::from_str("127.0.0.1")),
        ("user", JsValue::from_str("u")),
        ("password", JsValue::from_str("p")),
    ];
    pairs.extend(extra.iter().cloned());
    obj(&pairs)
}

#[wasm_bindgen_test]
async fn login_validates_its_options() {
    let s = server(DEAD_PROXY);
    for (extra, needle) in [
        (vec![("port", JsValue::from_f64(70000.0))], "port"),
        (vec![("port", JsValue::from_f64(1.5))], "port"),
        (
            vec![("securityLevel", JsValue::from_f64(3.0))],
            "securityLevel",
        ),
        (
            vec![("prevSessionId", JsValue::from_str("nope"))],
            "prevSessionId",
        ),
        (vec![("timeoutMs", JsValue::from_f64(-1.0))], "timeoutMs"),
        (vec![("signal", JsValue::from_str("x"))], "signal"),
    ] {
        let err = login_error(&s, login_opts(&extra)).await;
        assert_parallels_error(&err, "invalid_argument", 0x8000_0003, "PRL_ERR_INVALID_ARG");
        let message = get(&err, "message").as_string().unwrap();
        assert!(message.contains(needle), "{message}");
    }
    let err = login_error(&s, obj(&[("host", "h".into())])).await;
    assert!(get(&err, "message").as_string().unwrap().contains("user"));
    assert_eq!(s.state(), "disconnected");
}

#[wasm_bindgen_test]
async fn unreachable_proxy_fails_with_cant_connect_and_reports_states() {
    let s = server(DEAD_PROXY);
    let seen = Array::new();
    let record = Closure::<dyn FnMut(web_sys::CustomEvent)>::new({
        let seen = seen.clone();
        move |e: web_sys::CustomEvent| {
            seen.push(&get(&e.detail(), "state"));
        }
    });
    s.add_event_listener(
        "statechange",
        record.as_ref().unchecked_ref(),
        JsValue::UNDEFINED,
    )
    .unwrap();
    let err = login_error(&s, login_opts(&[])).await;
    assert_parallels_error(
        &err,
        "proxy_unreachable",
        0x8000_0249,
        "PRL_ERR_CANT_CONNECT_TO_DISPATCHER",
    );
    let states: Vec<String> = seen.iter().filter_map(|v| v.as_string()).collect();
    assert_eq!(states, ["connecting", "disconnected"]);
    assert_eq!(s.state(), "disconnected");
}

#[wasm_bindgen_test]
async fn an_aborted_signal_cancels_before_anything_is_sent() {
    let s = server(DEAD_PROXY);
    let controller = web_sys::AbortController::new().unwrap();
    controller.abort();
    let err = login_error(&s, login_opts(&[("signal", controller.signal().into())])).await;
    assert_parallels_error(
        &err,
        "canceled",
        0x8000_0275,
        "PRL_ERR_OPERATION_WAS_CANCELED",
    );
    assert_eq!(s.state(), "disconnected");
}

#[wasm_bindgen_test]
async fn logoff_and_attach_need_a_login() {
    let s = server(DEAD_PROXY);
    let err = JsFuture::from(s.logoff()).await.unwrap_err();
    assert_parallels_error(
        &err,
        "invalid_state",
        0x8000_0251,
        "PRL_ERR_NOT_CONNECTED_TO_DISPATCHER",
    );
    let err = JsFuture::from(s.attach_to_lost_task(
        "{00000000-0000-0000-0000-000000000001}".into(),
        JsValue::UNDEFINED,
    ))
    .await
    .unwrap_err();
    assert_parallels_error(
        &err,
        "invalid_state",
        0x8000_0251,
        "PRL_ERR_NOT_CONNECTED_TO_DISPATCHER",
    );
}

#[wasm_bindgen_test]
fn vm_event_types_can_be_listened_to() {
    let s = server(DEAD_PROXY);
    let f = Function::new_no_args("");
    for kind in ["vmstatechange", "vmadded", "vmremoved", "vmconfigchange"] {
        s.add_event_listener(kind, &f, JsValue::UNDEFINED).unwrap();
        s.remove_event_listener(kind, &f, JsValue::UNDEFINED)
            .unwrap();
    }
}

const VM: &str = "{0c9d2b3e-7f6a-4e1d-8c5b-2a3f4e5d6c7b}";

/// A rejection's kind and message.
async fn rejection(p: js_sys::Promise) -> (String, String) {
    let err = JsFuture::from(p).await.unwrap_err();
    (
        get(&err, "kind").as_string().unwrap_or_default(),
        get(&err, "message").as_string().unwrap_or_default(),
    )
}

fn param(name: &str, kind: &str, value: JsValue) -> JsValue {
    obj(&[
        ("name", name.into()),
        ("type", kind.into()),
        ("value", value),
    ])
}

#[wasm_bindgen_test]
async fn host_and_vm_operations_need_a_login() {
    let s = server(DEAD_PROXY);
    let u = JsValue::UNDEFINED;
    for p in [
        s.get_host_info(u.clone()),
        s.get_vm_list(u.clone()),
        s.get_vm_state(VM.into(), u.clone()),
        s.start_vm(VM.into(), u.clone()),
        s.stop_vm(VM.into(), u.clone()),
        s.pause_vm(VM.into(), u.clone()),
        s.resume_vm(VM.into(), u.clone()),
        s.suspend_vm(VM.into(), u.clone()),
        s.reset_vm(VM.into(), u.clone()),
        s.restart_vm(VM.into(), u.clone()),
        s.request(2051.into(), Array::new().into(), u.clone()),
    ] {
        let err = JsFuture::from(p).await.unwrap_err();
        assert_parallels_error(
            &err,
            "invalid_state",
            0x8000_0251,
            "PRL_ERR_NOT_CONNECTED_TO_DISPATCHER",
        );
    }
    assert_eq!(s.state(), "disconnected");
}

#[wasm_bindgen_test]
async fn operation_arguments_are_checked_as_the_sdk_checks_them() {
    let s = server(DEAD_PROXY);
    let u = JsValue::UNDEFINED;
    let opts = |pairs: &[(&str, JsValue)]| obj(pairs);
    let cases: Vec<(js_sys::Promise, &str)> = vec![
        (s.start_vm("".into(), u.clone()), "uuid"),
        (s.start_vm(5.into(), u.clone()), "uuid"),
        (s.get_vm_state(u.clone(), u.clone()), "uuid"),
        // PrlVm_StartEx refuses a mode above PSM_VM_START_FOR_REPAIR, PrlVm_StopEx above PSM_ACPI.
        (
            s.start_vm(VM.into(), opts(&[("mode", 32768.into())])),
            "mode",
        ),
        (s.stop_vm(VM.into(), opts(&[("mode", 3.into())])), "mode"),
        (
            s.stop_vm(
                VM.into(),
                opts(&[("graceful", true.into()), ("mode", 2.into())]),
            ),
            "not both",
        ),
        (
            s.stop_vm(VM.into(), opts(&[("flags", 2048.into())])),
            "needs `mode`",
        ),
        (
            s.pause_vm(VM.into(), opts(&[("acpi", "yes".into())])),
            "acpi",
        ),
        (s.get_vm_list(opts(&[("flags", (-1).into())])), "flags"),
        (s.get_vm_list(opts(&[("xml", 1.into())])), "xml"),
        (s.get_host_info(opts(&[("signal", "x".into())])), "signal"),
        (
            s.get_host_info(opts(&[("onProgress", 1.into())])),
            "onProgress",
        ),
        // The core refuses these descriptions: nothing would be sent.
        (
            s.request(2039.into(), u.clone(), u.clone()),
            "session command",
        ),
        (
            s.request(5001.into(), u.clone(), u.clone()),
            "not a command",
        ),
        (s.request(1.5.into(), u.clone(), u.clone()), "packageType"),
        (s.request(2062.into(), "x".into(), u.clone()), "params"),
        (
            s.request(
                2062.into(),
                [param("a", "float", 1.into())]
                    .iter()
                    .collect::<Array>()
                    .into(),
                u.clone(),
            ),
            "params[0]",
        ),
        (
            s.request(
                2062.into(),
                [param("a", "integer", (1u64 << 31).into())]
                    .iter()
                    .collect::<Array>()
                    .into(),
                u.clone(),
            ),
            "range",
        ),
        (
            s.request(
                2062.into(),
                [param("proto_command_flags", "unsignedInt", 1.into())]
                    .iter()
                    .collect::<Array>()
                    .into(),
                u.clone(),
            ),
            "common parameter",
        ),
        (
            s.request(
                2062.into(),
                (0..65)
                    .map(|_| param("a", "boolean", true.into()))
                    .collect::<Array>()
                    .into(),
                u.clone(),
            ),
            "limit is 64",
        ),
    ];
    for (p, needle) in cases {
        let (kind, message) = rejection(p).await;
        assert_eq!(kind, "invalid_argument", "{message}");
        assert!(message.contains(needle), "{needle}: {message}");
    }
    // Accepted shapes get as far as the login check.
    let list: Array = [
        param("s", "string", "x".into()),
        param("u", "unsignedInt", u32::MAX.into()),
        param("i", "integer", (-5).into()),
        param("b", "boolean", false.into()),
        param("l", "int64", js_sys::BigInt::from(i64::MIN).into()),
        param("ul", "uInt64", 9_007_199_254_740_991.0.into()),
        param(
            "list",
            "stringList",
            ["a", "b"]
                .iter()
                .map(|x| JsValue::from_str(x))
                .collect::<Array>()
                .into(),
        ),
    ]
    .iter()
    .collect();
    let (kind, message) = rejection(s.request(2062.into(), list.into(), u.clone())).await;
    assert_eq!(kind, "invalid_state", "{message}");
    let (kind, message) = rejection(s.stop_vm(
        VM.into(),
        opts(&[("mode", 2.into()), ("flags", 2048.into())]),
    ))
    .await;
    assert_eq!(kind, "invalid_state", "{message}");
}

#[wasm_bindgen_test]
async fn free_during_a_login_rejects_it_as_closed() {
    let s = server(DEAD_PROXY);
    let pending = s.login(login_opts(&[]));
    drop(s); // free()
    let err = JsFuture::from(pending).await.unwrap_err();
    let kind = js_sys::Reflect::get(&err, &"kind".into()).unwrap();
    assert_eq!(kind.as_string().as_deref(), Some("closed"));
}

#[wasm_bindgen_test]
async fn a_second_login_while_connecting_is_refused() {
    let s = server(DEAD_PROXY);
    let first = s.login(login_opts(&[]));
    let err = login_error(&s, login_opts(&[])).await;
    assert_parallels_error(
        &err,
        "invalid_state",
        0x8000_0252,
        "PRL_ERR_ALREADY_CONNECTED_TO_DISPATCHER",
    );
    let _ = JsFuture::from(first).await;
}

mod relay_json {
    use prl_client_wasm::relay_json::{decode, encode, proxy_tag};
    use prl_protocol::handshake::SecurityLevel;
    use prl_protocol::relay::{
        ClientMessage, ConnectMode, OpenRequest, Opened, ProxyMessage, RelayError, RelayErrorKind,
        ResumeRequest, Resumed, Secret, Target, MAX_CONTROL_LEN, RELAY_VERSION,
    };
    use wasm_bindgen_test::*;

    fn samples() -> Vec<ProxyMessage> {
        let mut v = vec![
            ProxyMessage::Opened(Opened {
                version: 1,
                connection_uuid: "{11111111-2222-3333-4444-555555555555}".into(),
                service_protocol: "6.10".into(),
                service_build: "sim \"1\" \\ é".into(),
                security_level: SecurityLevel::High,
                cipher: "ADH-AES256-GCM-SHA384".into(),
                tls_version: "TLSv1.2".into(),
                resume_token: Secret("r3sum3_-".into()),
                resume_window_ms: 60000,
                instance: None,
            }),
            ProxyMessage::Resumed(Resumed {
                version: 1,
                resume_token: Secret("next".into()),
                replayed: 3,
                instance: None,
            }),
            ProxyMessage::Error(RelayError {
                kind: RelayErrorKind::PolicyDenied,
                code: None,
                message: "no code".into(),
                instance: None,
            }),
            // Version 2: the instance of a cluster that holds the connection.
            ProxyMessage::Opened(Opened {
                version: 2,
                connection_uuid: "{11111111-2222-3333-4444-555555555555}".into(),
                service_protocol: "6.10".into(),
                service_build: "b".into(),
                security_level: SecurityLevel::Normal,
                cipher: "ADH-AES256-GCM-SHA384".into(),
                tls_version: "TLSv1.2".into(),
                resume_token: Secret("r".into()),
                resume_window_ms: 60000,
                instance: Some("wss://relay-b.example.com/ws".into()),
            }),
            ProxyMessage::Resumed(Resumed {
                version: 2,
                resume_token: Secret("next".into()),
                replayed: 0,
                instance: Some("wss://relay-b.example.com/ws".into()),
            }),
            ProxyMessage::Error(RelayError {
                kind: RelayErrorKind::ResumeElsewhere,
                code: None,
                message: "held by another instance".into(),
                instance: Some("wss://relay-b.example.com/ws".into()),
            }),
        ];
        for kind in RelayErrorKind::ALL {
            v.push(ProxyMessage::Error(RelayError::new(
                kind,
                "lower-case message",
            )));
        }
        v
    }

    fn open(host: &str, secrets: Option<&str>, level: SecurityLevel) -> ClientMessage {
        ClientMessage::Open(OpenRequest {
            version: RELAY_VERSION,
            target: Target {
                host: host.into(),
                port: 64001,
            },
            security_level: level,
            timeout_ms: u32::MAX,
            mode: ConnectMode::Local,
            ticket: secrets.map(|t| Secret(t.into())),
            restore: secrets.map(|t| Secret(format!("r{t}"))),
        })
    }

    const HOSTILE: [&str; 6] = [
        "quote\"back\\slash",
        "ctl\u{1}\u{1f}\n\r\t\u{8}\u{c}",
        "unicode é ✓ 𝄞",
        "</script>",
        "\u{7f}\u{2028}\u{2029}",
        "",
    ];

    #[wasm_bindgen_test]
    fn open_and_resume_encode_to_the_core_form_byte_for_byte() {
        let mut messages = vec![ClientMessage::Resume(ResumeRequest {
            version: RELAY_VERSION,
            token: Secret("abc_-".into()),
            received: (1 << 53) - 1,
        })];
        for level in [
            SecurityLevel::Low,
            SecurityLevel::Normal,
            SecurityLevel::High,
        ] {
            messages.push(open("127.0.0.1", Some("t0k.en"), level));
            messages.push(open("host", None, level));
        }
        for host in HOSTILE {
            messages.push(open(host, Some(host), SecurityLevel::Normal));
        }
        for c in (0u32..0x80).filter_map(char::from_u32) {
            messages.push(open(&format!("a{c}b"), None, SecurityLevel::Low));
        }
        for m in messages {
            let text = encode(&m).unwrap();
            assert_eq!(*text, m.to_json(), "{m:?}");
            assert_eq!(ClientMessage::from_json(&text).unwrap(), m);
        }
    }

    #[wasm_bindgen_test]
    fn encode_applies_the_core_checks() {
        let mut m = open("h", None, SecurityLevel::Low);
        if let ClientMessage::Open(o) = &mut m {
            o.version = RELAY_VERSION + 1;
        }
        assert_eq!(encode(&m).unwrap_err().kind(), "unsupported_version");
        let long = open(&"x".repeat(MAX_CONTROL_LEN), None, SecurityLevel::Low);
        assert_eq!(encode(&long).unwrap_err().kind(), "too_long");
        // A count JavaScript cannot represent exactly is refused, not rounded.
        let huge = ClientMessage::Resume(ResumeRequest {
            version: RELAY_VERSION,
            token: Secret("t".into()),
            received: 1 << 53,
        });
        assert_eq!(encode(&huge).unwrap_err().kind(), "encode");
    }

    #[wasm_bindgen_test]
    fn decodes_every_core_form_to_the_same_value() {
        for m in samples() {
            assert_eq!(decode(&m.to_json()).unwrap(), m, "{m:?}");
        }
        for level in [SecurityLevel::Low, SecurityLevel::Normal] {
            let mut m = samples().remove(0);
            if let ProxyMessage::Opened(o) = &mut m {
                o.security_level = level;
                o.service_build = HOSTILE.concat();
            }
            assert_eq!(decode(&m.to_json()).unwrap(), m);
        }
        // Whitespace and key order are JSON's business.
        let text = r#" { "message" : "m", "kind" : "closed", "type" : "error" } "#;
        assert_eq!(
            decode(text).unwrap(),
            ProxyMessage::Error(RelayError {
                kind: RelayErrorKind::Closed,
                code: None,
                message: "m".into(),
                instance: None,
            })
        );
    }

    #[wasm_bindgen_test]
    fn every_message_type_has_the_core_tag() {
        for m in samples() {
            let json = m.to_json();
            let prefix = format!("{{\"type\":\"{}\",", proxy_tag(&m));
            assert!(json.starts_with(&prefix), "{json}");
        }
    }

    /// xorshift64*: deterministic pseudo-random mutations.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
        }
    }

    #[wasm_bindgen_test]
    fn mutated_messages_decode_as_the_core_decodes() {
        // Everything the core accepts, the browser accepts as the same value; what the core
        // refuses, the browser refuses, except number spellings JavaScript reads as the same
        // integer (1.0, 1e3), which the browser may accept.
        const ALPHABET: &[u8] = b"{}[]:,\" 0123456789.-eEtrufalsn\\";
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut accepted, mut refused) = (0, 0);
        for round in 0..3000 {
            let base = samples()[round % samples().len()].to_json().into_bytes();
            let mut text = base.clone();
            for _ in 0..=rng.below(3) {
                let at = rng.below(text.len());
                match rng.below(3) {
                    0 => {
                        text.remove(at);
                    }
                    1 => text.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
                    _ => text[at] = ALPHABET[rng.below(ALPHABET.len())],
                }
            }
            let Ok(text) = String::from_utf8(text) else {
                continue;
            };
            let ours = decode(&text);
            match ProxyMessage::from_json(&text) {
                Ok(core) => {
                    accepted += 1;
                    assert_eq!(ours.as_ref().ok(), Some(&core), "{text}");
                }
                Err(core) => {
                    refused += 1;
                    if let Ok(m) = &ours {
                        let lenient = text.contains(['.', 'e', 'E']) || text.contains("-0");
                        assert!(lenient, "{text}: core {core}, browser {m:?}");
                    }
                }
            }
        }
        assert!(accepted > 100 && refused > 1000, "{accepted} / {refused}");
    }

    #[wasm_bindgen_test]
    fn refuses_what_the_core_refuses() {
        let opened = samples().remove(0).to_json();
        let cases = [
            (String::new(), "malformed"),
            ("{".into(), "malformed"),
            ("[]".into(), "malformed"),
            ("{}".into(), "malformed"),
            ("null".into(), "malformed"),
            ("\"opened\"".into(), "malformed"),
            (r#"{"type":"bogus","version":1}"#.into(), "malformed"),
            (
                r#"{"type":"open","version":1,"target":{"host":"h"},"securityLevel":"low"}"#.into(),
                "malformed",
            ),
            (
                opened.replace("\"cipher\"", "\"extra\":1,\"cipher\""),
                "malformed",
            ),
            (
                opened.replace(",\"cipher\":\"ADH-AES256-GCM-SHA384\"", ""),
                "malformed",
            ),
            (
                opened.replace("\"resumeWindowMs\":60000", "\"resumeWindowMs\":-1"),
                "malformed",
            ),
            (
                opened.replace("\"resumeWindowMs\":60000", "\"resumeWindowMs\":4294967296"),
                "malformed",
            ),
            (
                opened.replace("\"resumeWindowMs\":60000", "\"resumeWindowMs\":1.5"),
                "malformed",
            ),
            (
                opened.replace("\"resumeWindowMs\":60000", "\"resumeWindowMs\":\"60000\""),
                "malformed",
            ),
            (opened.replace("\"high\"", "\"ultra\""), "malformed"),
            (opened.replace("\"r3sum3_-\"", "null"), "malformed"),
            (
                r#"{"type":"error","kind":"nope","message":"x"}"#.into(),
                "malformed",
            ),
            (
                r#"{"type":"error","kind":"timeout","code":1.5,"message":"x"}"#.into(),
                "malformed",
            ),
            (
                opened.replace("\"version\":1", "\"version\":3"),
                "unsupported_version",
            ),
            (
                r#"{"type":"resumed","version":0,"resumeToken":"t","replayed":0}"#.into(),
                "unsupported_version",
            ),
        ];
        for (text, kind) in cases {
            let err = decode(&text).map(|m| format!("{m:?}")).unwrap_err();
            assert_eq!(err.kind(), kind, "{text}: {err}");
            // The core's serde_json decoder agrees.
            let core = ProxyMessage::from_json(&text).unwrap_err();
            assert_eq!(core.kind(), kind, "{text}: {core}");
        }
        // Beyond 2^53 JavaScript numbers are inexact: refused rather than rounded (serde_json
        // reads it exactly; no proxy sends such a count).
        let inexact =
            r#"{"type":"resumed","version":1,"resumeToken":"t","replayed":9007199254740993}"#;
        assert_eq!(decode(inexact).unwrap_err().kind(), "malformed");
        let long = format!(
            "{{\"type\":\"error\",\"message\":\"{}\"}}",
            "x".repeat(MAX_CONTROL_LEN)
        );
        assert_eq!(decode(&long).unwrap_err().kind(), "too_long");
        assert_eq!(
            ProxyMessage::from_json(&long).unwrap_err().kind(),
            "too_long"
        );
    }

    #[wasm_bindgen_test]
    fn errors_never_echo_values() {
        for text in [
            r#"{"type":"resumed","version":1,"resumeToken":12345678,"replayed":0}"#,
            r#"{"type":"resumed","version":1,"resumeToken":"t","replayed":"12345678"}"#,
            r#"{"type":"opened","version":1,"s3cr3t12345678":1}"#,
            r#"{"type":"s3cr3t12345678"}"#,
            r#"{"type":"error","kind":"s3cr3t12345678","message":""}"#,
            "s3cr3t12345678",
        ] {
            let err = decode(text).unwrap_err().to_string();
            assert!(!err.contains("12345678"), "{err}");
        }
    }
}
