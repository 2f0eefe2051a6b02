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
    s.remove_event_listener("statechange", &f).unwrap();
}

#[wasm_bindgen_test]
fn error_kinds_are_unique_snake_case() {
    let kinds = error_kinds();
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
    use prl_client_wasm::relay_json::{decode, DecodeError};
    use prl_protocol::handshake::SecurityLevel;
    use prl_protocol::relay::{
        Opened, ProxyMessage, RelayError, RelayErrorKind, Resumed, Secret, MAX_CONTROL_LEN,
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
            }),
            ProxyMessage::Resumed(Resumed {
                version: 1,
                resume_token: Secret("next".into()),
                replayed: 3,
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

    #[wasm_bindgen_test]
    fn decodes_every_core_form_to_the_same_value() {
        for m in samples() {
            assert_eq!(decode(&m.to_json()), Ok(m.clone()), "{m:?}");
        }
        for level in [SecurityLevel::Low, SecurityLevel::Normal] {
            let mut m = samples().remove(0);
            if let ProxyMessage::Opened(o) = &mut m {
                o.security_level = level;
            }
            assert_eq!(decode(&m.to_json()), Ok(m.clone()));
        }
    }

    #[wasm_bindgen_test]
    fn refuses_what_the_core_refuses() {
        let opened = samples().remove(0).to_json();
        let cases = [
            String::new(),
            "[]".into(),
            "{}".into(),
            "null".into(),
            r#"{"type":"bogus","version":1}"#.into(),
            opened.replace("\"cipher\"", "\"extra\":1,\"cipher\""),
            opened.replace("\"resumeWindowMs\":60000", "\"resumeWindowMs\":-1"),
            opened.replace("\"high\"", "\"ultra\""),
            r#"{"type":"error","kind":"nope","message":"x"}"#.into(),
            r#"{"type":"error","kind":"timeout","code":1.5,"message":"x"}"#.into(),
        ];
        for text in cases {
            assert!(
                matches!(decode(&text), Err(DecodeError::Malformed(_))),
                "{text}: {:?}",
                decode(&text)
            );
            // The core agrees.
            assert!(ProxyMessage::from_json(&text).is_err(), "{text}");
        }
        let v2 = opened.replace("\"version\":1", "\"version\":2");
        assert_eq!(decode(&v2), Err(DecodeError::UnsupportedVersion(2)));
        let long = format!(
            "{{\"type\":\"error\",\"message\":\"{}\"}}",
            "x".repeat(MAX_CONTROL_LEN)
        );
        assert_eq!(decode(&long), Err(DecodeError::TooLong(long.len())));
    }

    #[wasm_bindgen_test]
    fn errors_never_echo_values() {
        let text = r#"{"type":"resumed","version":1,"resumeToken":12345678,"replayed":0}"#;
        let err = decode(text).unwrap_err().to_string();
        assert!(!err.contains("12345678"), "{err}");
    }
}
