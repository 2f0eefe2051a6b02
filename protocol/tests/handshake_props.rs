//! Property tests: round trips of every handshake structure and of the record framing, and
//! robustness of the state machines and the decoder against arbitrary input and splits.

use proptest::prelude::*;

use prl_protocol::handshake::{
    ClientHandshake, Handshake, HandshakeHeader, ProtocolVersion, Route, RouteName,
    RouteRequirement, RoutingTable, SecurityLevel, SenderType, ServerHandshake, MAX_ROUTES,
    PROTOCOL_VERSION_LEN,
};
use prl_protocol::record::{encode_plain, Record, RecordDecoder, RecordHeader, RECORD_HEADER_LEN};
use prl_protocol::Uuid;

fn level() -> impl Strategy<Value = SecurityLevel> {
    prop_oneof![
        Just(SecurityLevel::Low),
        Just(SecurityLevel::Normal),
        Just(SecurityLevel::High)
    ]
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    (any::<u16>(), any::<u16>(), "[^\u{0}]{0,40}")
        .prop_filter("fits 64 bytes", |(_, _, t)| t.len() <= 64)
        .prop_map(|(major, minor, text)| ProtocolVersion::new(major, minor, text))
}

fn route_name() -> impl Strategy<Value = RouteName> + Clone {
    prop_oneof![Just(1u32), Just(2), any::<u32>()].prop_map(RouteName)
}

fn requirement() -> impl Strategy<Value = RouteRequirement> + Clone {
    prop_oneof![Just(0u32), Just(1), any::<u32>()].prop_map(RouteRequirement)
}

/// Valid tables: routes added through `add_route`, invalid candidates skipped.
fn table_with(
    names: impl Strategy<Value = RouteName> + Clone,
    reqs: impl Strategy<Value = RouteRequirement> + Clone,
) -> impl Strategy<Value = RoutingTable> {
    let candidate = (0u32..5000, 0u32..300, names.clone(), reqs.clone());
    (names, reqs, proptest::collection::vec(candidate, 0..30)).prop_map(|(dn, dr, cands)| {
        let mut t = RoutingTable::new(dn, dr);
        for (begin, width, n, r) in cands {
            let _ = t.add_route(begin, begin + width, n, r);
        }
        t
    })
}

fn table() -> impl Strategy<Value = RoutingTable> {
    table_with(route_name(), requirement())
}

fn sorted(routes: &[Route]) -> Vec<(u32, u32, u32, u32)> {
    let mut v: Vec<_> = routes
        .iter()
        .map(|r| (r.begin, r.end, r.name.0, r.requirement.0))
        .collect();
    v.sort_unstable();
    v
}

/// Feeds `bytes` cut at `cuts` (positions modulo the length).
fn chunks<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|c| if bytes.is_empty() { 0 } else { c % bytes.len() })
        .collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.dedup();
    at.windows(2).map(|w| &bytes[w[0]..w[1]]).collect()
}

proptest! {
    #[test]
    fn protocol_version_round_trip(v in version()) {
        let b = v.to_bytes().expect("valid");
        prop_assert_eq!(&b[..4], b"PRLT");
        prop_assert_eq!(ProtocolVersion::from_bytes(&b).expect("decodes"), v);
    }

    #[test]
    fn protocol_version_decode_never_panics(raw in proptest::collection::vec(any::<u8>(), 72)) {
        let mut b = [0u8; PROTOCOL_VERSION_LEN];
        b.copy_from_slice(&raw);
        match ProtocolVersion::from_bytes(&b) {
            Ok(v) => {
                prop_assert_eq!(&raw[..4], b"PRLT");
                prop_assert!(v.text.len() <= 64 * 3);
            }
            Err(e) => prop_assert_eq!(e.kind(), "bad_magic"),
        }
    }

    #[test]
    fn handshake_header_round_trip(t in any::<u32>(), u in any::<[u8; 16]>()) {
        let h = HandshakeHeader { sender_type: SenderType(t), connection_uuid: Uuid::from_bytes(u) };
        let b = h.to_bytes();
        prop_assert_eq!(HandshakeHeader::from_bytes(&b).expect("20 bytes"), h);
        prop_assert_eq!(h.check().is_ok(), (1..=10).contains(&t) && u != [0; 16]);
    }

    #[test]
    fn routing_table_round_trip(t in table()) {
        prop_assert!(t.routes.len() <= MAX_ROUTES);
        let b = t.to_bytes().expect("encodes");
        prop_assert_eq!(b.len(), t.encoded_len());
        prop_assert_eq!(RoutingTable::from_bytes(&b).expect("decodes"), t);
    }

    #[test]
    fn routing_table_decode_never_panics(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(t) = RoutingTable::from_bytes(&raw) {
            prop_assert_eq!(t.to_bytes().expect("re-encodes"), raw);
        }
    }

    #[test]
    fn qt5_hash_order_is_a_permutation(t in table(), seed in any::<u32>()) {
        let reordered = t.clone().in_qt5_hash_order(seed);
        prop_assert_eq!(sorted(&reordered.routes), sorted(&t.routes));
        prop_assert_eq!(reordered.default_name, t.default_name);
        // Deterministic for a given seed.
        prop_assert_eq!(t.clone().in_qt5_hash_order(seed), reordered);
    }

    #[test]
    fn low_server_echoes_any_plain_or_ssl_client_table(
        t in table_with(
            prop_oneof![Just(RouteName::PLAIN), Just(RouteName::SSL)],
            prop_oneof![Just(RouteRequirement::OPTIONAL), Just(RouteRequirement::REQUIRED)],
        )
    ) {
        let out = RoutingTable::server(SecurityLevel::Low).accept(&t).expect("LOW accepts");
        prop_assert_eq!(out, t);
    }

    #[test]
    fn accepted_tables_route_every_type_like_the_client_asked(
        c in level(), ty in prop_oneof![0u32..8000, 200_000u32..200_200, any::<u32>()]
    ) {
        let client = RoutingTable::client(c);
        let out = RoutingTable::server(SecurityLevel::Low).accept(&client).expect("accepted");
        prop_assert_eq!(out.route_for(ty), client.route_for(ty));
    }

    #[test]
    fn handshake_completes_under_any_split(
        c in level(),
        cu in any::<[u8; 16]>().prop_filter("non-nil", |u| *u != [0; 16]),
        su in any::<[u8; 16]>().prop_filter("non-nil", |u| *u != [0; 16]),
        cv in version().prop_map(|v| ProtocolVersion::new(6, v.minor, v.text)),
        tail in proptest::collection::vec(any::<u8>(), 0..40),
        cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        let mut client = ClientHandshake::new(cv.clone(), Uuid::from_bytes(cu), c).expect("client");
        let mut server = ServerHandshake::new(ProtocolVersion::current(), Uuid::from_bytes(su), SecurityLevel::Low).expect("server");
        let mut c2s = client.hello();
        c2s.extend_from_slice(&tail);
        let mut outcome = None;
        for part in chunks(&c2s, &cuts) {
            if outcome.is_none() {
                outcome = server.feed(part).expect("server accepts");
            } else {
                prop_assert!(server.feed(part).is_err(), "feeding after completion");
            }
        }
        // Bytes after the hello only reach the leftover in the call that completed it.
        let so = outcome.expect("server complete");
        prop_assert_eq!(so.client_version, cv);
        prop_assert_eq!(so.client_header.connection_uuid, Uuid::from_bytes(cu));
        let mut s2c = server.hello();
        s2c.extend_from_slice(&so.reply);
        s2c.extend_from_slice(&tail);
        let mut co = None;
        let mut leftover = Vec::new();
        for part in chunks(&s2c, &cuts) {
            if co.is_none() {
                co = client.feed(part).expect("client accepts");
                leftover.extend(client.take_leftover());
            } else {
                leftover.extend_from_slice(part);
            }
        }
        prop_assert_eq!(&leftover, &tail);
        let co = co.expect("client complete");
        prop_assert_eq!(co.accepted_table, so.accepted_table);
        prop_assert_eq!(co.server_header.connection_uuid, Uuid::from_bytes(su));
    }

    #[test]
    fn state_machines_survive_garbage(
        raw in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        prefix_valid in any::<bool>(),
    ) {
        // Optionally start with a valid version so the later stages see garbage too.
        let mut bytes = Vec::new();
        if prefix_valid {
            bytes.extend_from_slice(&ProtocolVersion::current().to_bytes().expect("v"));
        }
        bytes.extend_from_slice(&raw);
        let mut s = ServerHandshake::new(ProtocolVersion::current(), Uuid::from_bytes([7; 16]), SecurityLevel::Normal).expect("s");
        let mut c = ClientHandshake::new(ProtocolVersion::current(), Uuid::from_bytes([8; 16]), SecurityLevel::High).expect("c");
        let mut s_failed = false;
        let mut c_failed = false;
        for part in chunks(&bytes, &cuts) {
            if !s_failed {
                s_failed = matches!(s.feed(part), Err(_) | Ok(Some(_)));
            }
            if !c_failed {
                c_failed = matches!(c.feed(part), Err(_) | Ok(Some(_)));
            }
        }
    }

    #[test]
    fn record_header_round_trip(raw in any::<[u8; 5]>()) {
        let h = RecordHeader::from_bytes(&raw).expect("5 bytes");
        prop_assert_eq!(h.to_bytes(), raw);
        let ok = (raw[1..3] == [3, 0] || raw[1..3] == [3, 3])
            && u16::from_be_bytes([raw[3], raw[4]]) != 0
            && u16::from_be_bytes([raw[3], raw[4]]) <= 16384;
        prop_assert_eq!(h.check().is_ok(), ok);
    }

    #[test]
    fn plain_records_round_trip(
        parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40000), 0..4),
        cuts in proptest::collection::vec(any::<usize>(), 0..16),
    ) {
        let mut wire = Vec::new();
        let mut expected_records = 0;
        for p in &parts {
            encode_plain(p, &mut wire);
            expected_records += p.len().div_ceil(16384);
        }
        let mut d = RecordDecoder::new();
        let mut got = Vec::new();
        let mut records = 0;
        for part in chunks(&wire, &cuts) {
            d.push(part);
            while let Some(r) = d.next_record().expect("valid") {
                match r {
                    Record::Plain(p) => {
                        prop_assert!(!p.is_empty() && p.len() <= 16384);
                        got.extend_from_slice(&p);
                        records += 1;
                    }
                    Record::Tls(_) => prop_assert!(false, "only plain records were written"),
                }
            }
        }
        prop_assert_eq!(d.buffered(), 0);
        prop_assert_eq!(records, expected_records);
        prop_assert_eq!(got, parts.concat());
    }

    #[test]
    fn decoder_never_panics_and_returns_whole_records(
        raw in proptest::collection::vec(any::<u8>(), 0..3000),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        handshake_phase in any::<bool>(),
    ) {
        let mut d = if handshake_phase { RecordDecoder::for_tls_handshake() } else { RecordDecoder::new() };
        let mut consumed = 0;
        'outer: for part in chunks(&raw, &cuts) {
            d.push(part);
            loop {
                match d.next_record() {
                    Ok(Some(Record::Plain(p))) => consumed += RECORD_HEADER_LEN + p.len(),
                    Ok(Some(Record::Tls(r))) => {
                        prop_assert_eq!(&raw[consumed..consumed + r.len()], &r[..]);
                        consumed += r.len();
                    }
                    Ok(None) => break,
                    Err(_) => break 'outer,
                }
            }
        }
        prop_assert!(consumed <= raw.len());
    }
}
