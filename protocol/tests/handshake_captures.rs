//! Known-answer tests from the real SDK client captures, full handshakes between the two state
//! machines, and malformed input.

use prl_protocol::handshake::{
    ClientHandshake, Handshake, HandshakeError, HandshakeHeader, ProtocolVersion, Route, RouteName,
    RouteRequirement, RoutingTable, SecurityLevel, SenderType, ServerHandshake,
    PROTOCOL_VERSION_LEN, SERVER_HELLO_LEN,
};
use prl_protocol::record::{
    encode_plain, Record, RecordDecoder, RecordHeader, RecordPhase, MAX_RECORD_PAYLOAD,
};
use prl_protocol::{ErrorCode, Uuid};

const TEXT: &str = "6.0.0 (Fri, 06 Jun 2014 17:53:59)";

fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).expect("test uuid")
}

/// (file, level, connection uuid as captured).
const HELLOS: [(&str, SecurityLevel, &str); 3] = [
    (
        "client-hello-low.bin",
        SecurityLevel::Low,
        "b4d2b6da-a4e6-429c-9a81-c95bcf06333a",
    ),
    (
        "client-hello-normal.bin",
        SecurityLevel::Normal,
        "98f3cf7a-9f78-46e8-826c-a947f477e680",
    ),
    (
        "client-hello-high.bin",
        SecurityLevel::High,
        "956e1437-eab6-4a9b-8521-94a7532701e1",
    ),
];

/// The `QHash` seed (Qt 5 layout) under which the captured client iterated its NORMAL table in
/// the captured order; found offline by trying seeds against the capture's route order.
const CAPTURE_QHASH_SEED: u32 = 0x537e_0254;

fn sorted(routes: &[Route]) -> Vec<(u32, u32, u32, u32)> {
    let mut v: Vec<_> = routes
        .iter()
        .map(|r| (r.begin, r.end, r.name.0, r.requirement.0))
        .collect();
    v.sort_unstable();
    v
}

#[test]
fn client_hellos_decode_fully() {
    for (file, level, id) in HELLOS {
        let b = data(file);
        let mut v = [0u8; PROTOCOL_VERSION_LEN];
        v.copy_from_slice(&b[..72]);
        let version = ProtocolVersion::from_bytes(&v).expect("version");
        assert_eq!((version.major, version.minor), (6, 10), "{file}");
        assert_eq!(version.text, TEXT, "{file}");
        assert!(version.supports_new_product_name());
        let mut h = [0u8; 20];
        h.copy_from_slice(&b[72..92]);
        let header = HandshakeHeader::from_bytes(&h).expect("20 bytes");
        assert_eq!(header.sender_type, SenderType::CLIENT, "{file}");
        assert_eq!(header.connection_uuid, uuid(id), "{file}");
        header.check().expect("valid header");
        let table = RoutingTable::from_bytes(&b[92..]).expect("table");
        let expected = RoutingTable::client(level);
        assert_eq!(table.default_name, expected.default_name, "{file}");
        assert_eq!(
            table.default_requirement, expected.default_requirement,
            "{file}"
        );
        assert_eq!(sorted(&table.routes), sorted(&expected.routes), "{file}");
        assert_eq!(
            table.routes.len(),
            if level == SecurityLevel::Normal {
                10
            } else {
                0
            }
        );
    }
}

#[test]
fn client_hellos_reencode_byte_exact() {
    for (file, level, id) in HELLOS {
        let b = data(file);
        let version = ProtocolVersion::new(6, 10, TEXT);
        let c = ClientHandshake::new(version.clone(), uuid(id), level).expect("client");
        let hello = c.hello();
        if level == SecurityLevel::Normal {
            // Same bytes up to the route order (QHash order in the real client) ...
            assert_eq!(hello.len(), b.len());
            assert_eq!(hello[..101], b[..101]);
            let ours = RoutingTable::from_bytes(&hello[92..]).expect("ours");
            let theirs = RoutingTable::from_bytes(&b[92..]).expect("theirs");
            assert_eq!(sorted(&ours.routes), sorted(&theirs.routes));
            // ... and byte-exact in the capture's QHash order.
            let header = HandshakeHeader {
                sender_type: SenderType::CLIENT,
                connection_uuid: uuid(id),
            };
            let table = RoutingTable::client(level).in_qt5_hash_order(CAPTURE_QHASH_SEED);
            let c = ClientHandshake::with_table(version, header, &table).expect("client");
            assert_eq!(c.hello(), b, "{file}");
        } else {
            assert_eq!(hello, b, "{file}");
        }
    }
}

#[test]
fn low_server_accepts_captured_hellos_and_echoes_the_table() {
    for (file, level, id) in HELLOS {
        let b = data(file);
        let mut s = ServerHandshake::new(
            ProtocolVersion::current(),
            uuid("11111111-2222-3333-4444-555555555555"),
            SecurityLevel::Low,
        )
        .expect("server");
        let mut outcome = None;
        for (i, byte) in b.iter().enumerate() {
            let r = s.feed(std::slice::from_ref(byte)).expect("accepted");
            assert_eq!(r.is_some(), i == b.len() - 1, "{file} byte {i}");
            outcome = outcome.or(r);
        }
        let o = outcome.expect("outcome");
        assert_eq!(o.client_header.connection_uuid, uuid(id));
        assert_eq!(o.client_version.text, TEXT);
        assert_eq!(
            sorted(&o.accepted_table.routes),
            sorted(&RoutingTable::client(level).routes)
        );
        // A LOW server sends the client's own table back.
        assert_eq!(o.reply, b[92..], "{file}");
        assert!(s.take_leftover().is_empty());
    }
}

#[test]
fn capture_wire_demuxes_to_the_capture_stream() {
    let wire = data("client-wire-low-login-logoff.bin");
    let stream = data("client-stream-low-login-logoff.bin");
    let hello = data("client-hello-low.bin");
    // The wire starts with a 101-byte hello of the same shape (its own connection uuid).
    assert_eq!(wire[..72], hello[..72]);
    assert_eq!(wire[92..101], hello[92..101]);

    let mut dec = RecordDecoder::for_tls_handshake();
    // Irregular pushes: records split across calls.
    for chunk in wire[101..].chunks(7) {
        dec.push(chunk);
    }
    let mut plain = Vec::new();
    let mut tls = Vec::new();
    let mut after_ccs = None;
    while let Some(header) = dec.peek_header() {
        let record = dec.next_record().expect("valid record").expect("complete");
        match record {
            Record::Plain(p) => {
                assert_eq!(dec.phase(), RecordPhase::Established);
                assert!(p.len() <= MAX_RECORD_PAYLOAD);
                header.check().expect("plain record passes sslHeaderCheck");
                assert_eq!(header.to_bytes()[..3], [0xFF, 0x03, 0x00]);
                plain.extend_from_slice(&p);
            }
            Record::Tls(r) => {
                assert_eq!(r[..5], header.to_bytes());
                tls.push(r);
                if header.record_type == 0x14 {
                    after_ccs = Some(0);
                } else if let Some(n) = after_ccs.as_mut() {
                    *n += 1;
                    // The client's Finished ends its TLS 1.2 handshake flights.
                    dec.set_phase(RecordPhase::Established);
                }
            }
        }
    }
    assert_eq!(dec.buffered(), 0);
    assert_eq!(plain, stream);
    // TLS 1.2: ClientHello (record version 03 01, body version 03 03), then ClientKeyExchange,
    // ChangeCipherSpec and the encrypted Finished, all versioned 03 03.
    let types: Vec<u8> = tls.iter().map(|r| r[0]).collect();
    assert_eq!(types, [0x16, 0x16, 0x14, 0x16]);
    assert_eq!(tls[0][1..3], [3, 1]);
    assert_eq!(tls[0][5], 1, "client hello");
    assert_eq!(
        tls[0][9..11],
        [3, 3],
        "client hello legacy_version is TLS 1.2"
    );
    for r in &tls[1..] {
        assert_eq!(r[1..3], [3, 3]);
        let mut h = [0u8; 5];
        h.copy_from_slice(&r[..5]);
        RecordHeader::from_bytes(&h)
            .expect("5 bytes")
            .check()
            .expect("passes sslHeaderCheck");
    }
    // The ClientHello record would not pass sslHeaderCheck: the real code reads the TLS
    // handshake raw, which is why the decoder has a handshake phase.
    let mut h = [0u8; 5];
    h.copy_from_slice(&tls[0][..5]);
    assert_eq!(
        RecordHeader::from_bytes(&h)
            .expect("5 bytes")
            .check()
            .map_err(|e| e.kind()),
        Err("bad_record_version")
    );
    // The stream re-encodes to the same plain records when cut at the same part boundaries.
    let mut out = Vec::new();
    let mut at = 0;
    for len in [82, 8, 2559, 82, 8, 772] {
        encode_plain(&stream[at..at + len], &mut out);
        at += len;
    }
    let tls_len: usize = tls.iter().map(Vec::len).sum();
    assert_eq!(out, wire[101 + tls_len..]);
}

/// Runs both state machines against each other; returns (client result, server result).
fn run(
    client_level: SecurityLevel,
    server_level: SecurityLevel,
    byte_at_a_time: bool,
) -> (
    Result<prl_protocol::handshake::ClientOutcome, HandshakeError>,
    Result<prl_protocol::handshake::ServerOutcome, HandshakeError>,
) {
    let cu = uuid("aaaaaaaa-0000-4000-8000-000000000001");
    let su = uuid("bbbbbbbb-0000-4000-8000-000000000002");
    let mut c = ClientHandshake::new(ProtocolVersion::current(), cu, client_level).expect("c");
    let mut s = ServerHandshake::new(ProtocolVersion::current(), su, server_level).expect("s");
    let feed_s = |s: &mut ServerHandshake, b: &[u8]| {
        if byte_at_a_time {
            let mut last = Ok(None);
            for x in b {
                last = s.feed(std::slice::from_ref(x));
                if !matches!(last, Ok(None)) {
                    break;
                }
            }
            last
        } else {
            s.feed(b)
        }
    };
    // Both send first; the server's hello reaches the client before the verdict.
    let server_hello = s.hello();
    assert_eq!(server_hello.len(), SERVER_HELLO_LEN);
    for x in &server_hello {
        assert!(c
            .feed(std::slice::from_ref(x))
            .expect("server hello")
            .is_none());
    }
    let server = match feed_s(&mut s, &c.hello()) {
        Ok(Some(o)) => Ok(o),
        Ok(None) => panic!("server incomplete"),
        Err(e) => Err(e),
    };
    let client = match &server {
        Ok(o) => {
            let mut r = Ok(None);
            if byte_at_a_time {
                for x in &o.reply {
                    r = c.feed(std::slice::from_ref(x));
                }
            } else {
                r = c.feed(&o.reply);
            }
            r.map(|x| x.expect("client complete"))
        }
        // The real server closes the socket.
        Err(_) => Err(c.eof()),
    };
    (client, server)
}

#[test]
fn acceptance_matrix_between_the_state_machines() {
    use SecurityLevel::*;
    for byte_at_a_time in [false, true] {
        for server_level in [Low, Normal, High] {
            for client_level in [Low, Normal, High] {
                let (c, s) = run(client_level, server_level, byte_at_a_time);
                let ok = server_level == Low || server_level == client_level;
                let what = format!("server {server_level:?} client {client_level:?}");
                if ok {
                    let s = s.expect(&what);
                    let c = c.expect(&what);
                    assert_eq!(c.accepted_table, s.accepted_table, "{what}");
                    assert_eq!(
                        s.accepted_table,
                        RoutingTable::client(client_level),
                        "{what}"
                    );
                    assert_eq!(c.server_header.sender_type, SenderType::DISPATCHER);
                    assert_eq!(s.client_header.sender_type, SenderType::CLIENT);
                    assert_eq!(
                        s.client_header.connection_uuid,
                        uuid("aaaaaaaa-0000-4000-8000-000000000001")
                    );
                    assert_eq!(c.server_version, ProtocolVersion::current());
                    // Routing agrees with the level.
                    let t = &c.accepted_table;
                    let expect_ssl = |ty: u32| match client_level {
                        Low => false,
                        High => true,
                        Normal => ty == 2039 || ty == 5003,
                    };
                    for ty in [10u32, 2039, 5003] {
                        assert_eq!(t.route_for(ty).is_ssl(), expect_ssl(ty), "{what} {ty}");
                    }
                } else {
                    assert_eq!(
                        s.expect_err(&what).kind(),
                        "routing_table_rejected",
                        "{what}"
                    );
                    let e = c.expect_err(&what);
                    assert_eq!(e.kind(), "peer_closed", "{what}");
                    assert_eq!(e.prl_code(), ErrorCode::HANDSHAKE_FAILED, "{what}");
                }
            }
        }
    }
}

fn server() -> ServerHandshake {
    ServerHandshake::new(
        ProtocolVersion::current(),
        uuid("bbbbbbbb-0000-4000-8000-000000000002"),
        SecurityLevel::Low,
    )
    .expect("server")
}

fn client() -> ClientHandshake {
    ClientHandshake::new(
        ProtocolVersion::current(),
        uuid("aaaaaaaa-0000-4000-8000-000000000001"),
        SecurityLevel::Normal,
    )
    .expect("client")
}

/// A valid server-to-client handshake (hello + LOW-accepted NORMAL table).
fn server_bytes() -> Vec<u8> {
    let mut b = server().hello();
    RoutingTable::client(SecurityLevel::Normal)
        .encode(&mut b)
        .expect("table");
    b
}

fn client_err(bytes: &[u8]) -> HandshakeError {
    client().feed(bytes).expect_err("client must fail")
}

fn server_err(bytes: &[u8]) -> HandshakeError {
    server().feed(bytes).expect_err("server must fail")
}

#[test]
fn leftover_after_the_handshake() {
    let mut b = server_bytes();
    b.extend_from_slice(&[0x16, 3, 3, 0, 1, 2]);
    let mut c = client();
    assert!(c.feed(&b).expect("ok").is_some());
    assert!(c.is_complete());
    assert_eq!(c.take_leftover(), [0x16, 3, 3, 0, 1, 2]);
    assert_eq!(c.feed(b"x").map_err(|e| e.kind()), Err("already_complete"));

    let mut h = data("client-hello-low.bin");
    h.extend_from_slice(b"tls!");
    let mut s = server();
    assert!(s.feed(&h).expect("ok").is_some());
    assert_eq!(s.take_leftover(), b"tls!");
}

#[test]
fn bad_magic() {
    let mut b = server_bytes();
    b[0] = b'X';
    let e = client_err(&b);
    assert_eq!(e, HandshakeError::BadMagic { found: *b"XRLT" });
    assert_eq!(e.prl_code(), ErrorCode::HANDSHAKE_FAILED);
    let mut h = data("client-hello-low.bin");
    h[3] = 0;
    assert_eq!(server_err(&h).kind(), "bad_magic");
    // Reported as soon as the 72 bytes are in.
    assert_eq!(
        client().feed(&b[..72]).map_err(|e| e.kind()),
        Err("bad_magic")
    );
}

#[test]
fn major_mismatch_and_minor_tolerance() {
    let mut b = server_bytes();
    b[4..6].copy_from_slice(&7u16.to_le_bytes());
    let e = client_err(&b[..72]);
    assert_eq!(e.kind(), "major_version_mismatch");
    assert_eq!(e.prl_code(), ErrorCode::WRONG_PROTOCOL_VERSION);
    let mut h = data("client-hello-low.bin");
    h[4..6].copy_from_slice(&5u16.to_le_bytes());
    assert_eq!(server_err(&h).kind(), "major_version_mismatch");
    // Any minor is accepted on both sides.
    let mut b = server_bytes();
    b[6..8].copy_from_slice(&0u16.to_le_bytes());
    let o = client().feed(&b).expect("minor ignored").expect("complete");
    assert_eq!(o.server_version.minor, 0);
    assert!(!o.server_version.supports_heartbeat());
    let mut h = data("client-hello-low.bin");
    h[6..8].copy_from_slice(&99u16.to_le_bytes());
    assert_eq!(
        server()
            .feed(&h)
            .expect("minor ignored")
            .expect("done")
            .client_version
            .minor,
        99
    );
}

#[test]
fn bad_handshake_header() {
    for bad in [0u32, 11, 0xFFFF_FFFF] {
        let mut b = server_bytes();
        b[72..76].copy_from_slice(&bad.to_le_bytes());
        let e = client_err(&b);
        assert_eq!(e, HandshakeError::InvalidSenderType { value: bad });
        assert_eq!(e.prl_code(), ErrorCode::HANDSHAKE_FAILED);
        let mut h = data("client-hello-low.bin");
        h[72..76].copy_from_slice(&bad.to_le_bytes());
        assert_eq!(server_err(&h).kind(), "invalid_sender_type");
    }
    // Every known non-zero sender type is accepted (the source does not insist on Client).
    for ok in 1u32..=10 {
        let mut h = data("client-hello-low.bin");
        h[72..76].copy_from_slice(&ok.to_le_bytes());
        assert!(server().feed(&h).expect("valid").is_some());
    }
    let mut b = server_bytes();
    b[76..92].fill(0);
    assert_eq!(client_err(&b), HandshakeError::NilConnectionUuid);
    let mut h = data("client-hello-high.bin");
    h[76..92].fill(0);
    assert_eq!(server_err(&h), HandshakeError::NilConnectionUuid);
}

#[test]
fn bad_routing_tables() {
    let table_at = SERVER_HELLO_LEN;
    // routesNumber above 20: refused from the 9-byte header alone.
    let mut b = server_bytes();
    b[table_at + 8] = 21;
    assert_eq!(
        client().feed(&b[..table_at + 9]).map_err(|e| e.kind()),
        Err("too_many_routes")
    );
    let mut h = data("client-hello-low.bin");
    h[100] = 255;
    assert_eq!(server_err(&h).kind(), "too_many_routes");
    // Route rules of addRoute.
    let route = |b: u32, e: u32| {
        let mut v = Vec::new();
        for x in [b, e, 2, 1] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v
    };
    let hello_with = |routes: &[Vec<u8>]| {
        let mut h = data("client-hello-low.bin");
        h[100] = routes.len() as u8;
        for r in routes {
            h.extend_from_slice(r);
        }
        h
    };
    assert_eq!(
        server_err(&hello_with(&[route(9, 3)])).kind(),
        "inverted_route_range"
    );
    assert_eq!(
        server_err(&hello_with(&[route(1, 3), route(1, 3)])).kind(),
        "duplicate_route"
    );
    assert_eq!(
        server_err(&hello_with(&[route(1, 3), route(3, 9)])).kind(),
        "overlapping_route"
    );
    let mut b = server_bytes();
    b[table_at + 9..table_at + 13].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(client_err(&b).kind(), "inverted_route_range");
    assert_eq!(client_err(&b).prl_code(), ErrorCode::HANDSHAKE_FAILED);
    // A null table: RoutingTableAcceptError on the client.
    let mut b = server().hello();
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let e = client_err(&b);
    assert_eq!(e, HandshakeError::NullRoutingTable);
    assert_eq!(e.prl_code(), ErrorCode::WRONG_CONNECTION_SECURITY_LEVEL);
    let mut h = data("client-hello-low.bin");
    h[92..96].fill(0);
    assert_eq!(server_err(&h).kind(), "null_routing_table");
    // Standalone decoding needs the exact size.
    let t = RoutingTable::client(SecurityLevel::Normal)
        .to_bytes()
        .expect("bytes");
    assert_eq!(
        RoutingTable::from_bytes(&t[..t.len() - 1]),
        Err(HandshakeError::RoutingTableLength {
            expected: t.len(),
            found: t.len() - 1
        })
    );
    assert_eq!(
        RoutingTable::from_bytes(&t[..5]).map_err(|e| e.kind()),
        Err("routing_table_length")
    );
}

#[test]
fn errors_are_sticky_and_eof_is_reported() {
    let mut b = server_bytes();
    b[0] = 0;
    let mut c = client();
    assert!(c.feed(&b).is_err());
    assert_eq!(c.feed(&[]).map_err(|e| e.kind()), Err("bad_magic"));
    assert_eq!(c.eof().kind(), "bad_magic");
    let mut c = client();
    c.feed(&server_bytes()[..80]).expect("partial");
    let e = c.eof();
    assert_eq!(
        e,
        HandshakeError::PeerClosed {
            stage: "handshake header"
        }
    );
    assert_eq!(e.prl_code(), ErrorCode::HANDSHAKE_FAILED);
}

#[test]
fn server_knows_only_its_route_names() {
    // A HIGH server refuses an optional client route to a name it does not know only if the
    // route is required.
    let server = RoutingTable::server(SecurityLevel::High);
    let mut client = RoutingTable::new(RouteName::SSL, RouteRequirement::REQUIRED);
    client
        .add_route(10, 10, RouteName::PLAIN, RouteRequirement::OPTIONAL)
        .expect("route");
    let out = server
        .accept(&client)
        .expect("optional falls back to the default");
    assert_eq!(out.route_for(10), RouteName::SSL);
    let mut client = RoutingTable::new(RouteName::SSL, RouteRequirement::REQUIRED);
    client
        .add_route(10, 10, RouteName::PLAIN, RouteRequirement::REQUIRED)
        .expect("route");
    assert_eq!(
        server.accept(&client).map_err(|e| e.kind()),
        Err("routing_table_rejected")
    );
}

#[test]
fn malformed_records() {
    let cases: [(&[u8], &str); 5] = [
        (&[0xFF, 0x00, 0x03, 0x00, 0x01], "bad_record_version"),
        (&[0x17, 0x03, 0x01, 0x00, 0x01], "bad_record_version"),
        (&[0xFF, 0x03, 0x00, 0x40, 0x01], "oversize_record"),
        (&[0x17, 0x03, 0x03, 0x40, 0x18], "oversize_record"),
        (&[0xFF, 0x03, 0x00, 0x00, 0x00], "empty_record"),
    ];
    for (bytes, kind) in cases {
        let mut d = RecordDecoder::new();
        d.push(bytes);
        assert_eq!(
            d.next_record().map_err(|e| e.kind()),
            Err(kind),
            "{bytes:02x?}"
        );
        // Sticky.
        assert_eq!(d.next_record().map_err(|e| e.kind()), Err(kind));
    }
    // 16384 is the largest accepted payload, for plain and TLS records.
    for ty in [0xFFu8, 0x17] {
        let mut d = RecordDecoder::new();
        d.push(&[ty, 3, 3, 0x40, 0x00]);
        d.push(&vec![0u8; 16383]);
        assert_eq!(d.next_record().expect("so far valid"), None);
        d.push(&[0]);
        assert!(d.next_record().expect("valid").is_some());
    }
    let mut d = RecordDecoder::for_tls_handshake();
    d.push(&[0xFF, 3, 0, 0, 1, 0]);
    assert_eq!(
        d.next_record().map_err(|e| e.kind()),
        Err("plain_record_during_tls_handshake")
    );
    let mut d = RecordDecoder::for_tls_handshake();
    d.push(&[0x16, 2, 0, 0, 1, 0]);
    assert_eq!(
        d.next_record().map_err(|e| e.kind()),
        Err("bad_record_version")
    );
}
