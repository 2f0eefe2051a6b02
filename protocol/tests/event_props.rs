//! Property tests for both event serialisations, and one malformed-input test per error kind.
#![allow(clippy::unwrap_used)]

use prl_protocol::event::{AttrOrder, Event, EventError, EventParam, ParamType, ParamValue};
use proptest::prelude::*;

// ------------------------------------------------------------------------------------------------
// Strategies

/// Text with everything that needs care: markup characters, `]]>`, CR/LF/TAB, NUL, other
/// control characters, whitespace-only runs, non-ASCII and non-BMP characters.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9_{}-]{0,12}",
        3 => proptest::collection::vec(
            prop_oneof![
                Just('<'), Just('>'), Just('&'), Just('"'), Just('\''), Just(']'),
                Just('\r'), Just('\n'), Just('\t'), Just(' '), Just('\0'), Just('\u{1}'),
                Just('\u{a0}'), Just('\u{2028}'), Just('é'), Just('Ж'), Just('中'),
                Just('😀'), Just('\u{fffd}'), Just(';'), Just('#'), Just('x'),
            ],
            0..16,
        )
        .prop_map(|v| v.into_iter().collect()),
        1 => any::<String>(),
    ]
}

fn param_type() -> impl Strategy<Value = ParamType> {
    prop_oneof![
        (0u32..=20).prop_map(ParamType),
        any::<u32>().prop_map(ParamType),
    ]
}

fn data_type() -> impl Strategy<Value = ParamType> {
    prop_oneof![Just(ParamType::CDATA), Just(ParamType::VM_CONFIGURATION)]
}

/// Parameters that both serialisations can carry (no `Binary`; `CData` under a data type).
fn portable_param() -> impl Strategy<Value = EventParam> {
    prop_oneof![
        (text(), param_type(), text()).prop_map(|(n, t, v)| EventParam::plain(n, t, v)),
        (
            text(),
            param_type(),
            proptest::collection::vec(text(), 0..5)
        )
            .prop_map(|(n, t, v)| EventParam::list(n, t, v)),
        (
            text(),
            data_type(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(n, t, b)| EventParam {
                name: n,
                param_type: t,
                value: ParamValue::CData(b),
            }),
    ]
}

fn event_with(params: impl Strategy<Value = Vec<EventParam>>) -> impl Strategy<Value = Event> {
    (
        any::<[u32; 5]>(),
        (text(), text(), text()),
        params,
        any::<i32>(),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(
            |(n, (issuer_id, source, initial), params, item_id, event_id, id_first)| Event {
                event_type: n[0],
                level: n[1],
                code: n[2],
                need_response: n[3],
                issuer_type: n[4],
                issuer_id,
                source,
                initial_request_id: initial,
                params,
                item_id,
                event_id,
                attr_order: if id_first {
                    AttrOrder::IdFirst
                } else {
                    AttrOrder::DynListsFirst
                },
            },
        )
}

fn xml_event() -> impl Strategy<Value = Event> {
    event_with(proptest::collection::vec(portable_param(), 0..6))
}

/// Strings, CData and binary parameters the binary form carries exactly: no NUL in strings
/// (the reader stops at the first one), valid UTF-8 in CData.
fn binary_param() -> impl Strategy<Value = EventParam> {
    let s = || text().prop_map(|s| s.replace('\0', ""));
    prop_oneof![
        (s(), param_type(), s()).prop_map(|(n, t, v)| EventParam::plain(n, t, v)),
        (s(), param_type(), proptest::collection::vec(s(), 0..5))
            .prop_map(|(n, t, v)| EventParam::list(n, t, v)),
        (s(), param_type(), s()).prop_map(|(n, t, v)| EventParam {
            name: n,
            param_type: t,
            value: ParamValue::CData(v.into_bytes()),
        }),
        (
            s(),
            param_type(),
            proptest::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(n, t, b)| EventParam {
                name: n,
                param_type: t,
                value: ParamValue::Binary(b),
            }),
    ]
}

fn binary_event() -> impl Strategy<Value = Event> {
    let s = || text().prop_map(|s| s.replace('\0', ""));
    (
        any::<[u32; 5]>(),
        (s(), s(), s()),
        proptest::collection::vec(binary_param(), 0..6),
    )
        .prop_map(|(n, (issuer_id, source, initial), params)| Event {
            event_type: n[0],
            level: n[1],
            code: n[2],
            need_response: n[3],
            issuer_type: n[4],
            issuer_id,
            source,
            initial_request_id: initial,
            params,
            ..Event::default()
        })
}

// ------------------------------------------------------------------------------------------------
// What each form is documented to preserve

/// XML text as QDom reads back what it wrote: NUL was patched to a space, and whitespace-only
/// text nodes do not exist.
fn xml_text(s: &str) -> String {
    let s = s.replace('\0', " ");
    if s.chars().all(char::is_whitespace) {
        String::new()
    } else {
        s
    }
}

fn xml_expected(e: &Event) -> Event {
    let mut x = e.clone();
    x.issuer_id = xml_text(&e.issuer_id);
    x.source = xml_text(&e.source);
    x.initial_request_id = xml_text(&e.initial_request_id);
    for p in &mut x.params {
        p.name = xml_text(&p.name);
        let carries = p.param_type.carries_data();
        p.value = match &p.value {
            ParamValue::List(v) => ParamValue::List(v.iter().map(|s| xml_text(s)).collect()),
            ParamValue::Plain(s) if !carries || !xml_text(s).is_empty() => {
                ParamValue::Plain(xml_text(s))
            }
            ParamValue::CData(b) if carries => ParamValue::CData(b.clone()),
            _ if carries => ParamValue::CData(Vec::new()),
            _ => ParamValue::Plain(String::new()),
        };
    }
    x
}

fn binary_expected(e: &Event) -> Event {
    let mut x = Event {
        params: e.params.clone(),
        ..e.clone()
    };
    x.item_id = -1;
    x.event_id = 0;
    x.attr_order = AttrOrder::DynListsFirst;
    for p in &mut x.params {
        let carries = p.param_type.carries_data();
        p.value = match &p.value {
            ParamValue::Plain(s) if s.is_empty() && carries => ParamValue::CData(Vec::new()),
            ParamValue::CData(b) if b.is_empty() && !carries => ParamValue::Plain(String::new()),
            v => v.clone(),
        };
    }
    x
}

fn without_newlines(mut e: Event) -> Event {
    let strip = |s: &mut String| s.retain(|c| c != '\n');
    strip(&mut e.issuer_id);
    strip(&mut e.source);
    strip(&mut e.initial_request_id);
    for p in &mut e.params {
        strip(&mut p.name);
        match &mut p.value {
            ParamValue::Plain(s) => strip(s),
            ParamValue::List(v) => v.iter_mut().for_each(strip),
            ParamValue::CData(_) | ParamValue::Binary(_) => {}
        }
    }
    e
}

// ------------------------------------------------------------------------------------------------
// Round trips

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn xml_round_trip(e in xml_event()) {
        let xml = e.to_xml();
        let back = Event::from_xml(&xml).unwrap();
        prop_assert_eq!(&back, &xml_expected(&e));
        // What was read back is written the way the expected event is, and reads back unchanged.
        prop_assert_eq!(back.to_xml(), xml_expected(&e).to_xml());
        prop_assert_eq!(Event::from_xml(&back.to_xml()).unwrap(), back.clone());
        // Buffer form: NUL-terminated, read as a C string.
        let buf = e.to_xml_buffer();
        prop_assert_eq!(buf.last(), Some(&0));
        prop_assert_eq!(&buf[..buf.len() - 1], xml.as_bytes());
        prop_assert_eq!(Event::from_xml_buffer(&buf).unwrap(), back);
    }

    #[test]
    fn xml_accepts_other_layouts(e in xml_event().prop_map(without_newlines)) {
        // Another writer's layout: no indentation, CRLF, other root name, extra attributes,
        // unknown elements, prolog and comments. (Values hold no LF, so the text replacements
        // below only touch markup.)
        let xml = e.to_xml()
            .replace(">\n ", ">\r\n")
            .replace("\n  ", "\n")
            .replace("<ParallelsEvent ", "<?xml version=\"1.0\"?>\n<!-- x --><VirtuozzoEvent extra='1' ")
            .replace("</ParallelsEvent>", "<Unknown a=\"b\"><EventType>7</EventType></Unknown></VirtuozzoEvent>\n<!-- y -->");
        let back = Event::from_xml(&xml).unwrap();
        let expected = xml_expected(&e);
        prop_assert_eq!(back.params, expected.params);
        prop_assert_eq!(back.code, e.code);
        prop_assert_eq!(back.item_id, e.item_id);
    }

    #[test]
    fn binary_round_trip(e in binary_event(), f in binary_event()) {
        let bin = e.to_binary();
        let (back, used) = Event::decode_binary(&bin).unwrap();
        prop_assert_eq!(used, bin.len());
        prop_assert_eq!(&back, &binary_expected(&e));
        prop_assert_eq!(back.to_binary(), bin.clone());

        // Back to back, as in a 5003 body.
        let mut two = bin.clone();
        f.encode_binary_into(&mut two);
        let all = Event::decode_binary_all(&two).unwrap();
        prop_assert_eq!(all, vec![binary_expected(&e), binary_expected(&f)]);
    }

    #[test]
    fn binary_every_strict_prefix_is_truncated(e in binary_event(), cut in any::<prop::sample::Index>()) {
        let bin = e.to_binary();
        let cut = cut.index(bin.len());
        let err = Event::decode_binary(&bin[..cut]).unwrap_err();
        prop_assert_eq!(err.kind(), "truncated");
    }

    #[test]
    fn binary_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok((_, used)) = Event::decode_binary(&bytes) {
            prop_assert!(used <= bytes.len());
        }
        let _ = Event::decode_binary_all(&bytes);
    }

    #[test]
    fn binary_decoder_survives_mutations(
        e in binary_event(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let mut bin = e.to_binary();
        for (at, byte) in edits {
            let i = at.index(bin.len());
            bin[i] = byte;
        }
        if let Ok((_, used)) = Event::decode_binary(&bin) {
            prop_assert!(used <= bin.len());
        }
    }

    #[test]
    fn xml_decoder_never_panics(s in any::<String>(), bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = Event::from_xml(&s);
        let _ = Event::from_xml_buffer(&bytes);
    }

    #[test]
    fn xml_decoder_survives_mutations(
        e in xml_event(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), prop_oneof![
            Just("<"), Just(">"), Just("&"), Just("/"), Just("\""), Just(""), Just("<a>"),
            Just("</a>"), Just("<![CDATA["), Just("]]>"), Just("&#x0;"), Just("&bogus;"), Just("x"),
        ]), 1..4),
    ) {
        let mut xml = e.to_xml();
        for (at, s) in edits {
            let mut i = at.index(xml.len() + 1);
            while !xml.is_char_boundary(i) {
                i -= 1;
            }
            // Replace one character (or insert at the end).
            let end = xml[i..].chars().next().map_or(i, |c| i + c.len_utf8());
            xml.replace_range(i..end, s);
        }
        let _ = Event::from_xml(&xml);
    }
}

// ------------------------------------------------------------------------------------------------
// Malformed input: one test per error kind

const MINIMAL: &str = "<ParallelsEvent><EventType>1</EventType><EventLevel>0</EventLevel>\
<EventCode>0</EventCode><EventNeedResponse>0</EventNeedResponse><EventIssuerType>0</EventIssuerType>\
<EventIssuerId/><EventSource/><EventInitialRequestId/>PARAMS</ParallelsEvent>";

fn doc(params: &str) -> String {
    MINIMAL.replace("PARAMS", params)
}

fn xml_err(text: &str) -> EventError {
    Event::from_xml(text).unwrap_err()
}

#[test]
fn minimal_document_is_accepted() {
    let e = Event::from_xml(&doc("")).unwrap();
    assert_eq!(e.event_type, 1);
    assert!(e.params.is_empty());
    assert_eq!((e.item_id, e.event_id), (-1, 0));
}

#[test]
fn malformed_xml_syntax() {
    for bad in [
        "",
        "   ",
        "<ParallelsEvent>",
        "<ParallelsEvent></Other>",
        "<ParallelsEvent/><ParallelsEvent/>",
        "junk<ParallelsEvent/>",
        "<ParallelsEvent/>junk",
        "<ParallelsEvent a=\"1\" a=\"2\"/>",
        "<ParallelsEvent a=1/>",
        "</ParallelsEvent>",
    ] {
        let err = xml_err(bad);
        assert_eq!(err.kind(), "xml_syntax", "{bad:?}: {err}");
    }
    assert!(xml_err("<ParallelsEvent></Other>")
        .to_string()
        .ends_with(": mismatched end tag"));
    assert!(xml_err("<ParallelsEvent><a></ParallelsEvent>")
        .to_string()
        .ends_with(": mismatched end tag"));
    let err = xml_err(&doc("<X>&bogus;</X>"));
    assert_eq!(err.kind(), "xml_syntax");
    assert!(
        err.to_string().ends_with(": unknown entity reference"),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with("event xml syntax error at byte "),
        "{err}"
    );
}

#[test]
fn malformed_unexpected_root() {
    let err = xml_err(&doc("").replace("ParallelsEvent", "ParallelsEvents"));
    assert_eq!(
        err,
        EventError::UnexpectedRoot {
            found: "ParallelsEvents".into()
        }
    );
    assert_eq!(err.kind(), "unexpected_root");
    assert_eq!(xml_err("<a:ParallelsEvent/>").kind(), "unexpected_root");
}

#[test]
fn malformed_missing_element() {
    let err = xml_err(&doc("").replace("<EventCode>0</EventCode>", ""));
    assert_eq!(
        err,
        EventError::MissingElement {
            parent: "ParallelsEvent",
            element: "EventCode"
        }
    );
    assert_eq!(err.kind(), "missing_element");
    let err = xml_err(&doc(
        "<EventParameters><EventParameter><Type>1</Type></EventParameter></EventParameters>",
    ));
    assert_eq!(
        err,
        EventError::MissingElement {
            parent: "EventParameter",
            element: "Name"
        }
    );
    let err = xml_err(&doc(
        "<EventParameters><EventParameter><Name>n</Name></EventParameter></EventParameters>",
    ));
    assert_eq!(
        err.to_string(),
        "event xml is missing the required <Type> element of <EventParameter>"
    );
}

#[test]
fn malformed_bad_number() {
    for (field, text) in [
        ("EventCode", "abc"),
        ("EventCode", ""),
        ("EventCode", "99999999999999999999"),
        ("EventCode", "0x10"),
        ("EventType", "1.5"),
    ] {
        let xml = doc("").replace(
            &format!(
                "<{field}>{}</{field}>",
                if field == "EventType" { "1" } else { "0" }
            ),
            &format!("<{field}>{text}</{field}>"),
        );
        assert_eq!(
            xml_err(&xml),
            EventError::BadNumber {
                field: if field == "EventType" {
                    "EventType"
                } else {
                    "EventCode"
                },
                text: text.into()
            },
            "{text:?}"
        );
    }
    assert_eq!(xml_err(&doc("<EventId>-1</EventId>")).kind(), "bad_number");
    assert_eq!(
        xml_err(&doc("").replace("<ParallelsEvent>", "<ParallelsEvent id=\"x\">")).kind(),
        "bad_number"
    );
    let err = xml_err(&doc(
        "<EventParameters><EventParameter><Name>n</Name><Type>str</Type></EventParameter></EventParameters>",
    ));
    assert_eq!(err.to_string(), "bad number in event field Type: \"str\"");
    assert_eq!(err.kind(), "bad_number");
}

#[test]
fn malformed_bad_base64() {
    let err = xml_err(&doc(
        "<EventParameters><EventParameter><Name>a</Name><Type>1</Type></EventParameter>\
         <EventParameter><Name>b</Name><Type>3</Type><Data>AB!D</Data></EventParameter></EventParameters>",
    ));
    assert_eq!(err, EventError::BadBase64 { index: 1 });
    assert_eq!(err.kind(), "bad_base64");
    // Whitespace and missing padding are accepted, as QByteArray::fromBase64 does.
    let e = Event::from_xml(&doc(
        "<EventParameters><EventParameter><Name>b</Name><Type>3</Type><Data>\n dGVz\n dA </Data></EventParameter></EventParameters>",
    ))
    .unwrap();
    assert_eq!(e.cdata("b"), Some(&b"test"[..]));
}

fn binary_login_reply() -> Vec<u8> {
    let mut e = Event::default();
    e.add_uint("proto_request_op_code", 2039)
        .add_list("l", ParamType::STRING, ["a", "b"])
        .add_binary("bin", vec![1, 2, 3]);
    e.to_binary()
}

#[test]
fn malformed_truncated() {
    let bin = binary_login_reply();
    let err = Event::decode_binary(&bin[..bin.len() - 1]).unwrap_err();
    assert_eq!(
        err,
        EventError::Truncated {
            what: "binary parameter data",
            needed: 3,
            available: 2
        }
    );
    assert_eq!(err.kind(), "truncated");
    assert_eq!(
        Event::decode_binary(&[0, 1]).unwrap_err().to_string(),
        "truncated binary event: event type needs 4 bytes, 2 left"
    );
    // A declared length far beyond the input is refused without allocating it.
    let mut huge = vec![0u8; 8];
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    let err = Event::decode_binary(&huge).unwrap_err();
    assert_eq!(err.kind(), "truncated");
}

#[test]
fn malformed_bad_param_class() {
    let mut e = Event::default();
    e.add_string("a", "b");
    let mut bin = e.to_binary();
    // 9 fields before the count: 5 u32 + 3 empty strings = 32 bytes, then the i32 count.
    assert_eq!(&bin[32..36], &[0, 0, 0, 1]);
    bin[36..40].copy_from_slice(&3u32.to_be_bytes());
    let err = Event::decode_binary(&bin).unwrap_err();
    assert_eq!(err, EventError::BadParamClass { class: 3 });
    assert_eq!(err.kind(), "bad_param_class");
}

#[test]
fn malformed_invalid_utf8() {
    let e = Event {
        issuer_id: "ab".into(),
        ..Event::default()
    };
    let mut bin = e.to_binary();
    assert_eq!(&bin[8..14], &[0, 0, 0, 2, b'a', b'b']);
    bin[12] = 0xff;
    let err = Event::decode_binary(&bin).unwrap_err();
    assert_eq!(err, EventError::InvalidUtf8 { field: "issuer id" });
    assert_eq!(err.kind(), "invalid_utf8");

    let mut buf = doc("").into_bytes();
    buf[30] = 0xc3;
    buf.push(0);
    assert_eq!(
        Event::from_xml_buffer(&buf).unwrap_err().kind(),
        "invalid_utf8"
    );
}

#[test]
fn malformed_negative_length() {
    let mut bin = Event::default().to_binary();
    let n = bin.len();
    bin[n - 4..].copy_from_slice(&(-1i32).to_be_bytes());
    let err = Event::decode_binary(&bin).unwrap_err();
    assert_eq!(
        err,
        EventError::NegativeLength {
            field: "parameter count",
            value: -1
        }
    );
    assert_eq!(err.kind(), "negative_length");
}

#[test]
fn error_kinds_are_distinct() {
    let errors = [
        xml_err(""),
        xml_err("<x/>"),
        xml_err("<ParallelsEvent/>"),
        xml_err(&doc("<EventId>x</EventId>")),
        xml_err(&doc("<EventParameters><EventParameter><Name>b</Name><Type>3</Type><Data>*</Data></EventParameter></EventParameters>")),
        Event::decode_binary(&[]).unwrap_err(),
        EventError::BadParamClass { class: 9 },
        Event::from_xml_buffer(&[0xff]).unwrap_err(),
        EventError::NegativeLength { field: "x", value: -1 },
    ];
    let mut kinds: Vec<_> = errors.iter().map(EventError::kind).collect();
    kinds.sort_unstable();
    kinds.dedup();
    assert_eq!(kinds.len(), errors.len(), "{kinds:?}");
}

#[test]
fn deep_nesting_does_not_overflow() {
    let depth = 200_000;
    let xml = doc(&format!("{}{}", "<a>".repeat(depth), "</a>".repeat(depth)));
    let e = Event::from_xml(&xml).unwrap();
    assert!(e.params.is_empty());
    let unclosed = doc(&"<a>".repeat(depth));
    assert_eq!(xml_err(&unclosed).kind(), "xml_syntax");
}
