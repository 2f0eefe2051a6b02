//! Known-answer tests: the CVmEvent payloads of real client bytes (tests/data, copied from the
//! shared captures) decode field by field and re-encode to the identical bytes, and events built
//! from the same fields encode to those bytes.
#![allow(clippy::unwrap_used)]

use base64::Engine as _;
use prl_protocol::event::{AttrOrder, Event, EventParam, ParamType, ParamValue};
use uuid::Uuid;

const LOW: &[u8] = include_bytes!("data/client-stream-low-login-logoff.bin");
const HIGH: &[u8] = include_bytes!("data/client-stream-high-login-logoff.bin");
const REPLY_5001: &[u8] = include_bytes!("data/accepted-logoff-reply-5001.bin");
const REPLY_5003: &[u8] = include_bytes!("data/accepted-login-reply-5003.bin");

/// One package read by hand: the 82-byte little-endian header (type at 64, buffer count at 76),
/// 8-byte descriptors (encoding, size), then the buffers.
struct RawPackage<'a> {
    package_type: u32,
    buffers: Vec<&'a [u8]>,
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

fn split_packages(mut stream: &[u8]) -> Vec<RawPackage<'_>> {
    let mut out = Vec::new();
    while !stream.is_empty() {
        let package_type = le32(stream, 64);
        let n = le32(stream, 76) as usize;
        let mut pos = 82 + 8 * n;
        let mut buffers = Vec::new();
        for i in 0..n {
            let size = le32(stream, 82 + 8 * i + 4) as usize;
            buffers.push(&stream[pos..pos + size]);
            pos += size;
        }
        out.push(RawPackage {
            package_type,
            buffers,
        });
        stream = &stream[pos..];
    }
    out
}

fn buffer0(stream: &[u8], package_type: u32) -> &[u8] {
    let packages = split_packages(stream);
    let p = packages
        .iter()
        .find(|p| p.package_type == package_type)
        .expect("package in capture");
    assert_eq!(p.buffers.len(), 1);
    p.buffers[0]
}

fn uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).unwrap()
}

fn param(e: &Event, i: usize) -> (&str, u32, &ParamValue) {
    let p = &e.params[i];
    (p.name.as_str(), p.param_type.0, &p.value)
}

fn plain(s: &str) -> ParamValue {
    ParamValue::Plain(s.to_owned())
}

/// The password the SDK sends: base64(utf8("testpass" NUL-padded to 1024)).
fn expected_password() -> String {
    let mut raw = b"testpass".to_vec();
    raw.resize(1024, 0);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn check_login(buf: &[u8], issuer: &str, request: &str) {
    assert_eq!(buf.last(), Some(&0), "buffer 0 is NUL-terminated");
    let e = Event::from_xml_buffer(buf).unwrap();
    assert_eq!(e.event_type, 100_000);
    assert_eq!(
        (e.level, e.code, e.need_response, e.issuer_type),
        (0, 0, 0, 0)
    );
    assert_eq!(e.issuer_id, format!("{{{issuer}}}"));
    assert_eq!(e.source, "");
    assert_eq!(e.initial_request_id, format!("{{{request}}}"));
    assert_eq!(e.item_id, -1);
    assert_eq!(e.event_id, 0);
    assert_eq!(e.attr_order, AttrOrder::DynListsFirst);
    assert_eq!(e.params.len(), 5);
    assert_eq!(param(&e, 0), ("proto_force_questions_sign", 0, &plain("0")));
    assert_eq!(param(&e, 1), ("proto_command_flags", 0, &plain("2048")));
    assert_eq!(param(&e, 2), ("login_cmd_username", 1, &plain("testuser")));
    assert_eq!(
        param(&e, 3),
        ("login_cmd_password", 1, &plain(&expected_password()))
    );
    assert_eq!(
        param(&e, 4),
        ("login_cmd_session_uuid_to_restore", 1, &plain(""))
    );
    assert_eq!(e.uint("proto_command_flags"), Some(2048));
    assert_eq!(e.string("login_cmd_username"), Some("testuser"));
    let password = base64::engine::general_purpose::STANDARD
        .decode(e.string("login_cmd_password").unwrap())
        .unwrap();
    assert_eq!(password.len(), 1024);
    assert!(password.starts_with(b"testpass"));
    assert!(password[8..].iter().all(|&b| b == 0));

    // Decoded and re-encoded: the identical buffer.
    assert_eq!(e.to_xml_buffer(), buf);

    // Built from the same fields, as the SDK's CProtoCommandDspCmdUserLogin does.
    let mut built = Event::default().with_ids(uuid(issuer), uuid(request));
    built
        .add_uint("proto_force_questions_sign", 0)
        .add_uint("proto_command_flags", 2048)
        .add_string("login_cmd_username", "testuser")
        .add_string("login_cmd_password", expected_password())
        .add_string("login_cmd_session_uuid_to_restore", "");
    assert_eq!(built, e);
    assert_eq!(built.to_xml_buffer(), buf);
}

fn check_logoff(buf: &[u8], issuer: &str, request: &str) {
    let e = Event::from_xml_buffer(buf).unwrap();
    assert_eq!(e.params.len(), 2);
    assert_eq!(param(&e, 0), ("proto_force_questions_sign", 0, &plain("0")));
    assert_eq!(param(&e, 1), ("proto_command_flags", 0, &plain("0")));
    assert_eq!(e.to_xml_buffer(), buf);

    let mut built = Event::default().with_ids(uuid(issuer), uuid(request));
    built
        .add_uint("proto_force_questions_sign", 0)
        .add_uint("proto_command_flags", 0);
    assert_eq!(built.to_xml_buffer(), buf);
}

#[test]
fn login_2039_low() {
    assert_eq!(&LOW[82 + 8..82 + 8 + 15], b"<ParallelsEvent");
    check_login(
        buffer0(LOW, 2039),
        "86a29edb-7444-491d-ac39-960bc30fa3e3",
        "434761f5-bfa9-4ea3-bfd7-a3824c634a6f",
    );
}

#[test]
fn login_2039_high() {
    check_login(
        buffer0(HIGH, 2039),
        "8c8563e0-0565-4711-96be-feb74e11c287",
        "d3c5a72f-6331-423a-8248-1258b6e02a9b",
    );
}

#[test]
fn logoff_2042_low() {
    check_logoff(
        buffer0(LOW, 2042),
        "454451c3-c8e7-407b-87f9-3f5631b1657a",
        "19623c9f-04f3-41e6-bfd5-c720913c276a",
    );
}

#[test]
fn logoff_2042_high() {
    let buf = buffer0(HIGH, 2042);
    let e = Event::from_xml_buffer(buf).unwrap();
    check_logoff(
        buf,
        e.issuer_id.trim_matches(['{', '}']),
        e.initial_request_id.trim_matches(['{', '}']),
    );
}

#[test]
fn logoff_reply_5001() {
    let buf = buffer0(REPLY_5001, 5001);
    let e = Event::from_xml_buffer(buf).unwrap();
    assert_eq!(e.attr_order, AttrOrder::IdFirst);
    assert_eq!(e.event_type, 100_000);
    assert_eq!(e.code, 0);
    assert_eq!(e.issuer_id, "");
    assert_eq!(e.initial_request_id, "");
    assert_eq!(e.params.len(), 3);
    assert_eq!(param(&e, 2), ("proto_request_op_code", 0, &plain("2042")));
    assert_eq!(e.uint("proto_request_op_code"), Some(2042));
    assert_eq!(e.to_xml_buffer(), buf);

    let mut built = Event {
        attr_order: AttrOrder::IdFirst,
        ..Event::default()
    };
    built
        .add_uint("proto_force_questions_sign", 0)
        .add_uint("proto_command_flags", 0)
        .add_uint("proto_request_op_code", 2042);
    assert_eq!(built.to_xml_buffer(), buf);
}

fn strings(e: &Event) -> Vec<(&str, ParamType, &str)> {
    e.params
        .iter()
        .map(|p| (p.name.as_str(), p.param_type, p.as_str().unwrap()))
        .collect()
}

#[test]
fn login_reply_5003_binary() {
    let body = buffer0(REPLY_5003, 5003);
    let (ws, used) = Event::decode_binary(body).unwrap();
    assert!(used < body.len());
    let (login, used2) = Event::decode_binary(&body[used..]).unwrap();
    assert_eq!(
        used + used2,
        body.len(),
        "every byte of the body is decoded"
    );

    for e in [&ws, &login] {
        assert_eq!(e.event_type, 100_000);
        assert_eq!(
            (e.level, e.code, e.need_response, e.issuer_type),
            (0, 0, 0, 0)
        );
        assert_eq!((e.issuer_id.as_str(), e.source.as_str()), ("", ""));
        assert_eq!(e.initial_request_id, "");
        assert!(e
            .params
            .iter()
            .all(|p| matches!(p.value, ParamValue::Plain(_))));
    }
    assert_eq!(
        strings(&ws),
        [
            ("proto_force_questions_sign", ParamType::UNSIGNED_INT, "0"),
            ("proto_command_flags", ParamType::UNSIGNED_INT, "0"),
            ("proto_request_op_code", ParamType::UNSIGNED_INT, "2039"),
        ]
    );
    assert_eq!(ws.uint("proto_request_op_code"), Some(2039));
    let s = ParamType::STRING;
    assert_eq!(
        strings(&login),
        [
            (
                "response_login_cmd_session_uuid",
                s,
                "{cc0102a7-ee99-45bf-be33-0ec1740fa217}"
            ),
            ("server_info_os_version", s, "Linux capture_server"),
            (
                "server_info_server_uuid",
                s,
                "{30147db3-ba8a-4dc6-b2b1-3038dc9923ac}"
            ),
            ("server_info_product_version", s, "7.0.0-capture"),
            ("server_info_confirmation_mode", s, "0"),
            ("server_info_app_execute_mode", s, "0"),
            ("server_info_start_time", s, "1795726379382"),
            ("server_info_start_time_monotonic", s, "1"),
            ("server_info_is_launchd_mode", s, "0"),
        ]
    );
    // The session uuid is the client's connection uuid: the capture's sender uuid (offset 32 of
    // the client's login header) in the reply's receiver field (offset 48).
    let session = uuid(
        login
            .string("response_login_cmd_session_uuid")
            .unwrap()
            .trim_matches(['{', '}']),
    );
    assert_eq!(session.as_bytes(), &REPLY_5003[48..64]);
    assert_eq!(session.as_bytes(), &LOW[32..48]);

    let all = Event::decode_binary_all(body).unwrap();
    assert_eq!(all, vec![ws.clone(), login.clone()]);

    // Re-encoded: the identical body.
    let mut out = ws.to_binary();
    login.encode_binary_into(&mut out);
    assert_eq!(out, body);

    // Built from the same fields, as CDspUserHelper::makeLoginResponsePacket does.
    let mut ws_built = Event::default();
    ws_built
        .add_uint("proto_force_questions_sign", 0)
        .add_uint("proto_command_flags", 0)
        .add_uint("proto_request_op_code", 2039);
    let mut login_built = Event::default();
    login_built
        .add_string(
            "response_login_cmd_session_uuid",
            prl_protocol::event::braced_uuid(&session),
        )
        .add_string("server_info_os_version", "Linux capture_server")
        .add_string(
            "server_info_server_uuid",
            prl_protocol::event::braced_uuid(&uuid("30147db3-ba8a-4dc6-b2b1-3038dc9923ac")),
        )
        .add_string("server_info_product_version", "7.0.0-capture")
        .add_string("server_info_confirmation_mode", "0")
        .add_string("server_info_app_execute_mode", "0")
        .add_string("server_info_start_time", "1795726379382")
        .add_string("server_info_start_time_monotonic", "1")
        .add_string("server_info_is_launchd_mode", "0");
    let mut built = ws_built.to_binary();
    login_built.encode_binary_into(&mut built);
    assert_eq!(built, body);
}

#[test]
fn login_reply_as_5001_xml_for_old_clients() {
    // Old clients get the login event as XML inside the String param ws_response_cmd_login_event:
    // nested XML is escaped as text and comes back unchanged.
    let body = buffer0(REPLY_5003, 5003);
    let events = Event::decode_binary_all(body).unwrap();
    let inner = events[1].to_xml();
    let mut outer = Event::default();
    outer
        .add_uint("proto_request_op_code", 2039)
        .add_string("ws_response_cmd_login_event", inner.clone());
    let xml = outer.to_xml();
    assert!(xml.contains("&lt;ParallelsEvent dyn_lists=\"\" id=\"-1\">\n &lt;EventType>"));
    let back = Event::from_xml(&xml).unwrap();
    assert_eq!(
        back.string("ws_response_cmd_login_event"),
        Some(inner.as_str())
    );
    let inner_back = Event::from_xml(&inner).unwrap();
    assert_eq!(inner_back.params, events[1].params);
}

#[test]
fn cdata_task_info_round_trips_both_ways() {
    // response_login_cmd_task_info: repeated CData params holding event XML.
    let mut task = Event::default();
    task.add_string(
        "response_login_cmd_task_id",
        "{00000000-0000-0000-0000-000000000001}",
    )
    .add_uint("response_login_cmd_task_type", 2039);
    let mut e = Event::default();
    e.add_cdata("response_login_cmd_task_info", task.to_xml())
        .add_cdata("response_login_cmd_task_info", "second")
        .add_param(EventParam::list(
            "a_list",
            ParamType::STRING,
            ["x", "", "y<z"],
        ));
    let xml = e.to_xml();
    let b64 = base64::engine::general_purpose::STANDARD.encode(task.to_xml());
    assert!(xml.contains(&format!(
        "<Type>3</Type>\n   <Value></Value>\n   <Data>{b64}</Data>"
    )));
    assert!(xml.contains(
        "  <EventParameter dyn_lists=\"\" id=\"2\">\n   <IsList>1</IsList>\n   <Name>a_list</Name>\n   <Type>1</Type>\n   <Value dyn_lists=\"ListItem\">\n    <ListItem>x</ListItem>\n    <ListItem></ListItem>\n    <ListItem>y&lt;z</ListItem>\n   </Value>\n  </EventParameter>\n"
    ));
    let from_xml = Event::from_xml(&xml).unwrap();
    assert_eq!(from_xml, e);
    let (from_bin, _) = Event::decode_binary(&e.to_binary()).unwrap();
    assert_eq!(from_bin.params, e.params);
    let infos = from_bin.strings("response_login_cmd_task_info");
    assert_eq!(infos.len(), 2);
    let parsed = Event::from_xml(infos[0]).unwrap();
    assert_eq!(parsed.uint("response_login_cmd_task_type"), Some(2039));
}
