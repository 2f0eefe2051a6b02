//! Known-answer tests from the service side: bytes sent by the real open-source IOService
//! server (libprlcommon `IOServer`, used the way the dispatcher uses it) to our client, see
//! `tests/data/real-server/README.md`. Our client-side decoders must accept every byte, and our
//! service-side encoders must rebuild the same replies from the same fields.

use prl_protocol::codes::{cmd, ErrorCode};
use prl_protocol::commands::{
    login_event, login_reply_with_matrices, simple_response, LoginRequest, Password, Reply,
    ServerInfo, PCF_ORIGINAL_CLIENT,
};
use prl_protocol::event::{AttrOrder, Event};
use prl_protocol::handshake::{
    ClientHandshake, Handshake, ProtocolVersion, RoutingTable, SecurityLevel, SenderType,
    ServerHandshake,
};
use prl_protocol::matrices::{FeaturesMatrix, OsesMatrix, ServerMatrices};
use prl_protocol::package::{text_buffer, Limits, Package, PackageDecoder, MNG_HEARTBEAT};
use prl_protocol::record::{Record, RecordDecoder, RecordPhase};
use prl_protocol::session::{ClientSession, JobResult, SessionConfig, SessionEvent};
use prl_protocol::Uuid;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TEXT: &str = "6.0.0 (Fri, 06 Jun 2014 17:53:59)";
/// The connection UUID of the real server process that answered every capture.
const SERVER_UUID: &str = "d9dd2f92-ad7c-457b-b91b-ba1aa2eebe0c";

fn data(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/data/real-server/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

fn uuid(s: &str) -> Uuid {
    Uuid::parse_str(s).expect("test uuid")
}

fn sorted(table: &RoutingTable) -> Vec<(u32, u32, u32, u32)> {
    let mut v: Vec<_> = table
        .routes
        .iter()
        .map(|r| (r.begin, r.end, r.name.0, r.requirement.0))
        .collect();
    v.sort_unstable();
    v
}

/// One side of a captured connection after its handshake: the TLS records and the plaintext
/// (0xFF) record payloads, in order.
struct Demuxed {
    tls_types: Vec<u8>,
    plain_records: Vec<usize>,
    plain: Vec<u8>,
}

/// Splits what one side wrote after its `hello_len`-byte handshake. Its TLS handshake ends
/// with the first handshake record after its ChangeCipherSpec (the Finished message).
fn demux(wire: &[u8], hello_len: usize) -> Demuxed {
    let mut dec = RecordDecoder::for_tls_handshake();
    for chunk in wire[hello_len..].chunks(11) {
        dec.push(chunk);
    }
    let mut out = Demuxed {
        tls_types: Vec::new(),
        plain_records: Vec::new(),
        plain: Vec::new(),
    };
    let mut after_ccs = false;
    while dec.peek_header().is_some() {
        match dec.next_record().expect("valid record").expect("complete") {
            Record::Plain(p) => {
                assert_eq!(dec.phase(), RecordPhase::Established);
                out.plain_records.push(p.len());
                out.plain.extend_from_slice(&p);
            }
            Record::Tls(r) => {
                out.tls_types.push(r[0]);
                if r[0] == 0x14 {
                    after_ccs = true;
                } else if after_ccs {
                    dec.set_phase(RecordPhase::Established);
                }
            }
        }
    }
    assert_eq!(dec.buffered(), 0, "bytes left after the last record");
    out
}

fn packages(stream: &[u8]) -> Vec<Package> {
    let mut decoder = PackageDecoder::new(Limits::default());
    let mut out = Vec::new();
    for piece in stream.chunks(97) {
        decoder.push(piece);
        while let Some(p) = decoder.next_package().expect("valid package") {
            out.push(p);
        }
    }
    assert_eq!(
        decoder.buffered_len(),
        0,
        "bytes left after the last package"
    );
    out
}

/// Both directions of a captured LOW connection, decoded.
struct Conversation {
    client_uuid: Uuid,
    server_uuid: Uuid,
    server_tls_types: Vec<u8>,
    server_plain_records: Vec<usize>,
    from_client: Vec<Package>,
    from_server: Vec<Package>,
    server_stream: Vec<u8>,
}

fn conversation(name: &str) -> Conversation {
    let c2s = data(&format!("{name}.c2s.bin"));
    let s2c = data(&format!("{name}.s2c.bin"));
    let mut server = ServerHandshake::new(
        ProtocolVersion::current(),
        uuid("11111111-2222-3333-4444-555555555555"),
        SecurityLevel::Low,
    )
    .expect("server");
    let client_hello = server
        .feed(&c2s[..101])
        .expect("client hello")
        .expect("complete");
    let mut client = ClientHandshake::new(
        ProtocolVersion::current(),
        client_hello.client_header.connection_uuid,
        SecurityLevel::Low,
    )
    .expect("client");
    let server_hello = client
        .feed(&s2c[..101])
        .expect("server hello")
        .expect("complete");
    let server_side = demux(&s2c, 101);
    let client_side = demux(&c2s, 101);
    Conversation {
        client_uuid: client_hello.client_header.connection_uuid,
        server_uuid: server_hello.server_header.connection_uuid,
        server_tls_types: server_side.tls_types,
        server_plain_records: server_side.plain_records,
        from_client: packages(&client_side.plain),
        from_server: packages(&server_side.plain),
        server_stream: server_side.plain,
    }
}

fn types(packages: &[Package]) -> Vec<u32> {
    packages.iter().map(|p| p.header.package_type).collect()
}

const HANDSHAKES: [(&str, SecurityLevel); 3] = [
    ("server-handshake-low.bin", SecurityLevel::Low),
    ("server-handshake-normal.bin", SecurityLevel::Normal),
    ("server-handshake-high.bin", SecurityLevel::High),
];

#[test]
fn our_client_accepts_the_real_server_handshakes() {
    for (file, level) in HANDSHAKES {
        let b = data(file);
        let mut c = ClientHandshake::new(
            ProtocolVersion::current(),
            uuid("aaaaaaaa-0000-4000-8000-000000000001"),
            level,
        )
        .expect("client");
        let mut outcome = None;
        for (i, byte) in b.iter().enumerate() {
            let r = c.feed(std::slice::from_ref(byte)).expect("accepted");
            assert_eq!(r.is_some(), i == b.len() - 1, "{file} byte {i}");
            outcome = outcome.or(r);
        }
        let o = outcome.expect("outcome");
        assert!(c.take_leftover().is_empty());
        assert_eq!(
            o.server_version,
            ProtocolVersion::new(6, 10, TEXT),
            "{file}"
        );
        assert_eq!(
            o.server_header.sender_type,
            SenderType::DISPATCHER,
            "{file}"
        );
        assert_eq!(o.server_header.connection_uuid, uuid(SERVER_UUID), "{file}");
        // A LOW service accepts every level and answers with the client's own table.
        let asked = RoutingTable::client(level);
        assert_eq!(o.accepted_table.default_name, asked.default_name, "{file}");
        assert_eq!(
            o.accepted_table.default_requirement, asked.default_requirement,
            "{file}"
        );
        assert_eq!(sorted(&o.accepted_table), sorted(&asked), "{file}");
    }
}

#[test]
fn our_server_handshake_sends_the_same_bytes() {
    for (file, level) in HANDSHAKES {
        let b = data(file);
        let mut ours = ServerHandshake::new(
            ProtocolVersion::current(),
            uuid(SERVER_UUID),
            SecurityLevel::Low,
        )
        .expect("server");
        assert_eq!(ours.hello(), b[..92], "{file}");
        let client = ClientHandshake::new(
            ProtocolVersion::current(),
            uuid("aaaaaaaa-0000-4000-8000-000000000001"),
            level,
        )
        .expect("client");
        let o = ours.feed(&client.hello()).expect("accepted").expect("done");
        if level == SecurityLevel::Normal {
            // The routes go out in each process's QHash order; the peer reads them as a set.
            assert_eq!(o.reply.len(), b.len() - 92);
            assert_eq!(o.reply[..9], b[92..101]);
            let theirs = RoutingTable::from_bytes(&b[92..]).expect("theirs");
            assert_eq!(sorted(&o.accepted_table), sorted(&theirs));
        } else {
            assert_eq!(o.reply, b[92..], "{file}");
        }
    }
}

#[test]
fn login_idle_logoff_decodes_fully() -> TestResult {
    let c = conversation("low-login-idle-logoff");
    assert_eq!(c.server_uuid, uuid(SERVER_UUID));
    // ServerHello, ServerKeyExchange, ServerHelloDone, NewSessionTicket, then
    // ChangeCipherSpec and the encrypted Finished.
    assert_eq!(c.server_tls_types, [0x16, 0x16, 0x16, 0x16, 0x14, 0x16]);
    assert_eq!(
        types(&c.from_client),
        [
            cmd::USER_LOGIN,
            MNG_HEARTBEAT,
            MNG_HEARTBEAT,
            cmd::USER_LOGOFF
        ]
    );
    assert_eq!(
        types(&c.from_server),
        [
            cmd::WS_BINARY_RESPONSE,
            MNG_HEARTBEAT,
            MNG_HEARTBEAT,
            cmd::WS_RESPONSE
        ]
    );
    // The IO layer writes header, descriptors and each buffer as separate records.
    assert_eq!(
        c.server_plain_records,
        [82, 8, 1315, 82, 82, 82, 8, 910],
        "server records"
    );

    let (login, logoff) = (&c.from_client[0], &c.from_client[3]);
    let (reply, bye) = (&c.from_server[0], &c.from_server[3]);
    // The login reply is built from a QDataStream (`DispatcherPackage::createInstance(type,
    // stream, size, parent)` -> `IOPackage::createInstance(type, 1, parent)`, whose default
    // is a broadcast response): parentUuid only, receiverUuid stays zero.
    assert_eq!(reply.header.parent_uuid, login.header.uuid);
    assert_eq!(reply.header.receiver_uuid, Uuid::nil());
    assert_eq!(reply.header.sender_uuid, c.server_uuid);
    // `SocketServerPrivate::sendPackage` stamps a process-wide numeric id (1, 2, ...).
    assert_eq!(reply.header.numeric_id, 1);
    // Every other reply is a direct response.
    assert_eq!(bye.header.parent_uuid, logoff.header.uuid);
    assert_eq!(bye.header.receiver_uuid, c.client_uuid);
    assert_eq!(bye.header.sender_uuid, c.server_uuid);
    assert_eq!(bye.header.numeric_id, 2);
    // Heartbeats are not stamped: both sides send the same 82 bytes.
    for p in [&c.from_server[1], &c.from_server[2], &c.from_client[1]] {
        assert_eq!(p.encode(), Package::heartbeat().encode());
    }
    // Every package re-encodes to the captured bytes.
    let again: Vec<u8> = c.from_server.iter().flat_map(Package::encode).collect();
    assert_eq!(again, c.server_stream);

    let r = Reply::parse(reply)?;
    assert_eq!(r.opcode, cmd::USER_LOGIN);
    assert_eq!(r.code, ErrorCode::SUCCESS);
    let lr = r.login_response()?;
    assert_eq!(lr.session_uuid, format!("{{{}}}", c.client_uuid));
    assert_eq!(lr.server_uuid, "{7f5ac1e0-2d3b-4c1a-9e0f-1234567890ab}");
    assert_eq!(lr.product_version, "7.0.200");
    assert_eq!(lr.host_os_version, "Linux realsrv-fixture");
    assert_eq!(lr.start_time_ms, Some(1_700_000_000_000));
    assert!(lr.running_tasks.is_empty());
    let features = lr.features().ok_or("no features matrix")??;
    let mut ids: Vec<u32> = features.features.clone();
    ids.sort_unstable();
    // initFeaturesList's twelve features (PFSM_DEFAULT_PLAINDISK_ALLOWED is config-dependent).
    assert_eq!(ids, [1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 14]);
    let oses = lr.supported_oses().ok_or("no OS matrix")??;
    assert_eq!(oses.types.len(), 9);

    let r = Reply::parse(bye)?;
    assert_eq!((r.opcode, r.code), (cmd::USER_LOGOFF, ErrorCode::SUCCESS));
    assert!(r.login.is_none());
    Ok(())
}

#[test]
fn our_session_logs_in_and_off_on_the_real_replies() -> TestResult {
    let c = conversation("low-login-idle-logoff");
    let mut s = ClientSession::new(SessionConfig {
        heartbeat_interval_ms: None,
    });
    s.connecting(0, 60_000)?;
    s.connected(0, c.client_uuid, true)?;
    let request = LoginRequest {
        user: "testuser".into(),
        password: Password::new("testpass"),
        prev_session_uuid: String::new(),
        flags: PCF_ORIGINAL_CLIENT,
    };
    let mut n = 0u128;
    let mut ids = move || {
        n += 1;
        Uuid::from_u128(n)
    };
    let login_job = c.from_client[0].header.uuid;
    s.login(login_job, &request, &mut ids)?;
    let sent = s.poll_transmit().ok_or("no login package")?;
    assert_eq!(sent.header.uuid, login_job);
    for p in &c.from_server[..3] {
        s.handle_package(p.clone())?;
    }
    let finished: Vec<_> = std::iter::from_fn(|| s.poll_event())
        .filter_map(|e| match e {
            SessionEvent::JobFinished { job, result, .. } => Some((job, result)),
            _ => None,
        })
        .collect();
    let [(job, JobResult::LoggedIn(lr))] = finished.as_slice() else {
        return Err(format!("expected one login result, got {finished:?}").into());
    };
    assert_eq!(*job, login_job);
    assert_eq!(lr.session_uuid, format!("{{{}}}", c.client_uuid));
    assert_eq!(s.session_uuid(), Some(lr.session_uuid.as_str()));

    let logoff_job = c.from_client[3].header.uuid;
    s.logoff(logoff_job, &mut ids)?;
    s.handle_package(c.from_server[3].clone())?;
    let done = std::iter::from_fn(|| s.poll_event()).any(|e| {
        matches!(e, SessionEvent::JobFinished { job, result: JobResult::Done(ref r), .. }
            if job == logoff_job && r.code == ErrorCode::SUCCESS)
    });
    assert!(done, "logoff did not finish with success");
    Ok(())
}

#[test]
fn wrong_password_is_authentication_failed() -> TestResult {
    let c = conversation("low-auth-failed");
    assert_eq!(types(&c.from_client), [cmd::USER_LOGIN]);
    assert_eq!(types(&c.from_server), [cmd::WS_RESPONSE]);
    let (login, reply) = (&c.from_client[0], &c.from_server[0]);
    assert_eq!(reply.header.parent_uuid, login.header.uuid);
    assert_eq!(reply.header.receiver_uuid, c.client_uuid);
    assert_eq!(
        reply.header.numeric_id, 3,
        "the numeric id counter is per process"
    );
    let r = Reply::parse(reply)?;
    assert_eq!(r.opcode, cmd::USER_LOGIN);
    assert_eq!(r.code, ErrorCode::AUTHENTICATION_FAILED);
    assert_eq!(r.code.0, 0x8000_0330);
    assert!(
        r.error_event().is_none(),
        "sendSimpleResponse attaches no error event"
    );

    // Our encoder rebuilds the reply from the same fields (the IO layer adds the numeric id).
    let mut captured_ids = vec![
        uuid(r.response.initial_request_id.trim_matches(['{', '}'])),
        uuid(r.response.issuer_id.trim_matches(['{', '}'])),
    ];
    let mut ids = move || captured_ids.pop().expect("two ids");
    let mut ours = simple_response(
        login,
        c.server_uuid,
        reply.header.uuid,
        ErrorCode::AUTHENTICATION_FAILED,
        &[],
        &mut ids,
    );
    ours.header.numeric_id = reply.header.numeric_id;
    assert_eq!(ours.header, reply.header);
    // QDom writes the two attributes in a per-process random order (`AttrOrder`): this
    // service process happened to write `id` first. Same order, same bytes.
    assert_eq!(r.response.attr_order, AttrOrder::IdFirst);
    let mut event = Reply::parse(&ours)?.response;
    event.attr_order = r.response.attr_order;
    ours.buffers = vec![text_buffer(&event.to_xml())];
    assert_eq!(ours.encode(), reply.encode());
    Ok(())
}

#[test]
fn our_encoders_rebuild_the_real_login_reply() -> TestResult {
    let c = conversation("low-login-idle-logoff");
    let (login, reply) = (&c.from_client[0], &c.from_server[0]);
    let body = reply.buffers.first().ok_or("no buffer")?;
    let events = Event::decode_binary_all(&body.data)?;
    let [response, theirs] = events.as_slice() else {
        return Err(format!("expected two events, got {}", events.len()).into());
    };
    let param = |name: &str| theirs.string(name).ok_or(format!("no {name}"));
    let info = ServerInfo {
        os_version: param("server_info_os_version")?.to_owned(),
        server_uuid: param("server_info_server_uuid")?.to_owned(),
        product_version: param("server_info_product_version")?.to_owned(),
        confirmation_mode: param("server_info_confirmation_mode")? == "1",
        app_execute_mode: param("server_info_app_execute_mode")?.parse()?,
        start_time_ms: param("server_info_start_time")?.parse()?,
        start_time_monotonic: param("server_info_start_time_monotonic")?.parse()?,
        launchd_mode: param("server_info_is_launchd_mode")? == "1",
    };
    let lr = Reply::parse(reply)?.login_response()?;
    let matrices = ServerMatrices {
        oses: lr.supported_oses().ok_or("no OS matrix")??,
        features: lr.features().ok_or("no features matrix")??,
    };
    // The matrices re-encode byte-exact.
    assert_eq!(
        OsesMatrix::decode(&matrices.oses.encode())?,
        matrices.oses,
        "oses round trip"
    );
    assert_eq!(
        FeaturesMatrix::decode(&matrices.features.encode())?,
        matrices.features
    );
    // The service draws the login event's ids first, then the reply event's.
    let mut captured_ids: Vec<Uuid> = [response, theirs]
        .iter()
        .flat_map(|e| [&e.initial_request_id, &e.issuer_id])
        .map(|s| uuid(s.trim_matches(['{', '}'])))
        .collect();
    let mut ids = move || captured_ids.pop().expect("four ids");
    let event = login_event(&lr.session_uuid, &info, &[], &mut ids);
    let mut ours = login_reply_with_matrices(
        login,
        c.server_uuid,
        reply.header.uuid,
        &event,
        &matrices,
        true,
        &mut ids,
    );
    ours.header.numeric_id = reply.header.numeric_id;
    assert_eq!(ours.header, reply.header);
    assert_eq!(ours.encode(), reply.encode());
    Ok(())
}
