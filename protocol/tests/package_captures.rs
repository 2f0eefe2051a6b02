//! Known-answer tests of the IOPackage codec against real client bytes, and malformed input.
//!
//! `tests/data/` holds copies of the shared captures (see the captures README): the
//! application streams of the real libprlsdk client (login 2039 + logoff 2042) at PSL_LOW and
//! PSL_HIGH, its raw PSL_LOW socket bytes, and the 5003/5001 replies that client accepted.

#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

use std::collections::BTreeSet;

use prl_protocol::package::{
    text_buffer, Buffer, Limits, Package, PackageDecoder, PackageError, PackageHeader,
    DESCRIPTOR_LEN, ENCODING_RAW, HEADER_LEN, MAX_BUFFERS,
};
use prl_protocol::Uuid;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn capture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// All packages of a stream, fed to the incremental decoder in `chunk`-byte pieces.
fn decode_stream(bytes: &[u8], chunk: usize) -> Result<Vec<Package>, PackageError> {
    let mut decoder = PackageDecoder::new(Limits::default());
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk) {
        decoder.push(piece);
        while let Some(p) = decoder.next_package()? {
            out.push(p);
        }
    }
    assert_eq!(
        decoder.buffered_len(),
        0,
        "bytes left after the last package"
    );
    Ok(out)
}

fn check_client_stream(name: &str) -> TestResult {
    let stream = capture(name);
    let packages = decode_stream(&stream, stream.len())?;
    for chunk in [1, 2, 7, 81, 82, 83, 90, 1000] {
        assert_eq!(
            decode_stream(&stream, chunk)?,
            packages,
            "chunk size {chunk}"
        );
    }

    // The capture holds no heartbeat: only login and logoff.
    let types: Vec<u32> = packages.iter().map(|p| p.header.package_type).collect();
    assert_eq!(types, [2039, 2042]);

    let connection = packages[0].header.sender_uuid;
    assert!(!connection.is_nil());
    for p in &packages {
        let h = &p.header;
        assert!(!h.uuid.is_nil(), "request uuid = job id");
        assert!(!h.is_response());
        assert!(h.receiver_uuid.is_nil());
        assert_eq!(h.sender_uuid, connection);
        assert_eq!(h.numeric_id, 0);
        assert_eq!(p.buffers.len(), 1);
        assert_eq!(p.buffers[0].encoding, ENCODING_RAW);
        let text = p.text(0).ok_or("no buffer 0")??;
        assert!(text.starts_with("<ParallelsEvent"), "{text:.40}");
        assert!(text.ends_with("</ParallelsEvent>\n"));
        assert_eq!(p.buffers[0].data.len(), text.len() + 1);
    }
    assert_eq!(packages[0].buffers[0].data.len(), 2559);
    assert_eq!(packages[1].buffers[0].data.len(), 772);
    assert_eq!(packages[0].encoded_len(), 2649);

    // Re-encode to identical bytes, both from the decoded values and from the same fields
    // passed through the constructors.
    let mut reencoded = Vec::new();
    let mut rebuilt = Vec::new();
    for p in &packages {
        p.encode_into(&mut reencoded);
        let text = p.text(0).ok_or("no buffer 0")??;
        Package::request(p.header.package_type, p.header.uuid, connection, vec![])
            .with_text(text)
            .encode_into(&mut rebuilt);
    }
    assert_eq!(reencoded, stream);
    assert_eq!(rebuilt, stream);

    // Each package alone decodes one-shot; the whole stream has trailing bytes.
    let first_len = packages[0].encoded_len();
    assert_eq!(
        Package::decode(&stream[..first_len], &Limits::default())?,
        packages[0]
    );
    assert_eq!(
        Package::decode(&stream[first_len..], &Limits::default())?,
        packages[1]
    );
    assert_eq!(
        Package::decode(&stream, &Limits::default()),
        Err(PackageError::TrailingBytes(stream.len() - first_len))
    );
    Ok(())
}

#[test]
fn client_stream_low() -> TestResult {
    check_client_stream("client-stream-low-login-logoff.bin")
}

#[test]
fn client_stream_high() -> TestResult {
    check_client_stream("client-stream-high-login-logoff.bin")
}

/// The raw PSL_LOW socket bytes: after the hello and the TLS handshake records, every write
/// of the sender is its own `ff 03 00 LEN` record. `write_parts` must yield those writes.
#[test]
fn write_parts_match_plain_records_on_the_wire() -> TestResult {
    let wire = capture("client-wire-low-login-logoff.bin");
    // ProtocolVersion (72) + HandshakeHeader (20) + routing table (9 + 16 per route).
    let routes = usize::from(wire[100]);
    let mut off = 101 + 16 * routes;
    let mut plain_records = Vec::new();
    while off < wire.len() {
        let len = usize::from(u16::from_be_bytes([wire[off + 3], wire[off + 4]]));
        if wire[off] == 0xff {
            assert_eq!(&wire[off + 1..off + 3], [0x03, 0x00]);
            plain_records.push(wire[off + 5..off + 5 + len].to_vec());
        }
        off += 5 + len;
    }
    assert_eq!(off, wire.len());

    let packages = decode_stream(&capture("client-stream-low-login-logoff.bin"), 4096)?;
    let mut parts = Vec::new();
    for p in &packages {
        p.write_parts(|part| parts.push(part.to_vec()));
    }
    let lens: Vec<usize> = parts.iter().map(Vec::len).collect();
    assert_eq!(
        lens,
        [
            HEADER_LEN,
            DESCRIPTOR_LEN,
            2559,
            HEADER_LEN,
            DESCRIPTOR_LEN,
            772
        ]
    );
    assert_eq!(parts, plain_records);
    Ok(())
}

fn check_reply(reply_name: &str, request_index: usize, reply_type: u32) -> TestResult {
    let bytes = capture(reply_name);
    let reply = Package::decode(&bytes, &Limits::default())?;
    let requests = decode_stream(&capture("client-stream-low-login-logoff.bin"), 512)?;
    let request = &requests[request_index];

    assert_eq!(reply.header.package_type, reply_type);
    assert!(reply.header.is_response());
    assert_eq!(reply.header.parent_uuid, request.header.uuid);
    assert_eq!(reply.header.receiver_uuid, request.header.sender_uuid);
    assert_eq!(reply.buffers.len(), 1);
    assert_eq!(reply.encode(), bytes);

    let rebuilt = Package::direct_response(
        request,
        reply_type,
        reply.header.uuid,
        reply.header.sender_uuid,
        reply.buffers.clone(),
    );
    assert_eq!(rebuilt.encode(), bytes);
    Ok(())
}

#[test]
fn accepted_login_reply_5003() -> TestResult {
    check_reply("accepted-login-reply-5003.bin", 0, 5003)
}

#[test]
fn accepted_logoff_reply_5001() -> TestResult {
    check_reply("accepted-logoff-reply-5001.bin", 1, 5001)?;
    let reply = Package::decode(
        &capture("accepted-logoff-reply-5001.bin"),
        &Limits::default(),
    )?;
    let text = reply.text(0).ok_or("no buffer 0")??;
    assert!(text.contains("<EventCode>0</EventCode>"), "{text}");
    assert!(text.contains("2042"), "{text}");
    Ok(())
}

/// The login package of the PSL_LOW stream.
fn login() -> Vec<u8> {
    capture("client-stream-low-login-logoff.bin")[..2649].to_vec()
}

/// Header bytes with the given fields, `buffersNumber` and a valid CRC.
fn header_with(buffers_number: u32) -> [u8; HEADER_LEN] {
    PackageHeader {
        package_type: 2039,
        ..PackageHeader::default()
    }
    .to_bytes(buffers_number)
}

#[test]
fn bad_crc() {
    let mut bytes = login();
    let found = u16::from_le_bytes([bytes[80], bytes[81]]);
    bytes[64] ^= 1; // type 2039 -> 2038
    let expected = prl_protocol::crc::crc16_x25(&bytes[..80]);
    let err = Package::decode(&bytes, &Limits::default()).unwrap_err();
    assert_eq!(err, PackageError::BadCrc { expected, found });
    assert_eq!(err.kind(), "bad_crc");
    assert_eq!(
        err.to_string(),
        format!("package header crc mismatch: expected {expected:#06x}, found 0x7192")
    );

    // Corrupting the crc field itself.
    let mut bytes = login();
    bytes[81] ^= 0x80;
    let err = Package::decode(&bytes, &Limits::default()).unwrap_err();
    assert_eq!(err.kind(), "bad_crc");
}

#[test]
fn truncated() {
    let bytes = login();
    let limits = Limits::default();
    for (len, needed) in [
        (0, 82),
        (81, 82),
        (82, 90),
        (89, 90),
        (90, 2649),
        (2648, 2649),
    ] {
        let err = Package::decode(&bytes[..len], &limits).unwrap_err();
        assert_eq!(
            err,
            PackageError::Truncated {
                needed,
                available: len
            },
            "len {len}"
        );
        assert_eq!(err.kind(), "truncated");
    }
}

#[test]
fn trailing_bytes() {
    let mut bytes = Package::heartbeat().encode();
    bytes.extend_from_slice(&[0, 0, 0]);
    let err = Package::decode(&bytes, &Limits::default()).unwrap_err();
    assert_eq!(err, PackageError::TrailingBytes(3));
    assert_eq!(err.kind(), "trailing_bytes");
}

#[test]
fn too_many_buffers_is_rejected_on_the_header_alone() {
    let header = header_with(MAX_BUFFERS as u32 + 1);
    let expected = PackageError::TooManyBuffers {
        declared: 1025,
        limit: 1024,
    };
    assert_eq!(
        Package::decode(&header, &Limits::protocol()),
        Err(expected.clone())
    );
    assert_eq!(expected.kind(), "too_many_buffers");

    let mut decoder = PackageDecoder::new(Limits::protocol());
    decoder.push(&header);
    assert_eq!(decoder.next_package(), Err(expected));

    // Exactly the limit is fine (here: truncated, since no descriptors follow).
    let header = header_with(MAX_BUFFERS as u32);
    assert_eq!(
        Package::decode(&header, &Limits::protocol())
            .unwrap_err()
            .kind(),
        "truncated"
    );
    let max = Package {
        header: PackageHeader::default(),
        buffers: vec![Buffer::default(); MAX_BUFFERS],
    };
    assert_eq!(Package::decode(&max.encode(), &Limits::protocol()), Ok(max));
}

#[test]
fn too_large_is_rejected_before_any_buffer_byte() {
    let bytes = login();
    let tight = Limits {
        max_package_len: 2648,
        max_buffers: MAX_BUFFERS,
    };
    let err = Package::decode(&bytes, &tight).unwrap_err();
    assert_eq!(
        err,
        PackageError::TooLarge {
            declared: 2649,
            limit: 2648
        }
    );
    assert_eq!(err.kind(), "too_large");
    // The boundary itself is accepted (`SIZE_LIMIT < fullPackageSize()` is the reject test).
    let exact = Limits {
        max_package_len: 2649,
        ..tight
    };
    assert!(Package::decode(&bytes, &exact).is_ok());

    // A hostile peer declaring 4 GiB - 1: rejected as soon as header + descriptor are in.
    let mut hostile = header_with(1).to_vec();
    hostile.extend_from_slice(&0u32.to_le_bytes());
    hostile.extend_from_slice(&u32::MAX.to_le_bytes());
    let mut decoder = PackageDecoder::new(Limits::default());
    decoder.push(&hostile[..89]);
    assert_eq!(decoder.next_package(), Ok(None));
    decoder.push(&hostile[89..]);
    assert_eq!(
        decoder.next_package(),
        Err(PackageError::TooLarge {
            declared: 90 + u64::from(u32::MAX),
            limit: 16 << 20
        })
    );

    // 1024 descriptors of u32::MAX each: summed without overflow.
    let mut hostile = header_with(1024).to_vec();
    for _ in 0..1024 {
        hostile.extend_from_slice(&8u32.to_le_bytes());
        hostile.extend_from_slice(&u32::MAX.to_le_bytes());
    }
    assert_eq!(
        Package::decode(&hostile, &Limits::protocol()),
        Err(PackageError::TooLarge {
            declared: 82 + 8 * 1024 + 1024 * u64::from(u32::MAX),
            limit: 1 << 30
        })
    );
}

#[test]
fn decoder_stays_failed() {
    let mut bytes = login();
    bytes[0] ^= 0xff;
    let mut decoder = PackageDecoder::new(Limits::default());
    decoder.push(&Package::heartbeat().encode());
    decoder.push(&bytes);
    assert_eq!(decoder.next_package(), Ok(Some(Package::heartbeat())));
    let err = decoder.next_package().unwrap_err();
    assert_eq!(err.kind(), "bad_crc");
    decoder.push(&Package::heartbeat().encode());
    assert_eq!(decoder.buffered_len(), 0, "input is dropped after an error");
    assert_eq!(decoder.next_package(), Err(err));
}

#[test]
fn text_buffers() {
    let p = Package::heartbeat().with_text("héllo");
    assert_eq!(p.buffers[0], text_buffer("héllo"));
    assert_eq!(p.buffers[0].data, b"h\xc3\xa9llo\0");
    assert_eq!(p.text(0), Some(Ok("héllo")));
    assert_eq!(p.text(1), None);

    // Read as a C string: stops at the first NUL.
    let p = Package {
        header: PackageHeader::default(),
        buffers: vec![
            Buffer::raw(b"ab\0cd\0".to_vec()),
            Buffer::raw(b"no nul".to_vec()),
            Buffer::raw(b"\xff\xfe\0".to_vec()),
            Buffer::raw(Vec::new()),
        ],
    };
    assert_eq!(p.text(0), Some(Ok("ab")));
    let unterminated = p.text(1).and_then(Result::err);
    assert_eq!(
        unterminated,
        Some(PackageError::TextUnterminated { index: 1 })
    );
    assert_eq!(unterminated.map(|e| e.kind()), Some("text_unterminated"));
    let not_utf8 = p.text(2).and_then(Result::err);
    assert_eq!(
        not_utf8,
        Some(PackageError::TextNotUtf8 {
            index: 2,
            valid_up_to: 0
        })
    );
    assert_eq!(not_utf8.map(|e| e.kind()), Some("text_not_utf8"));
    assert_eq!(
        p.text(3),
        Some(Err(PackageError::TextUnterminated { index: 3 }))
    );
}

#[test]
fn empty_buffers_are_described_but_not_written() -> TestResult {
    let p = Package::request(
        2039,
        Uuid::from_u128(1),
        Uuid::from_u128(2),
        vec![
            Buffer::raw(vec![]),
            Buffer::raw(vec![7; 3]),
            Buffer::default(),
        ],
    );
    let mut parts = Vec::new();
    p.write_parts(|part| parts.push(part.to_vec()));
    assert_eq!(parts.len(), 3, "header, descriptors, one non-empty buffer");
    assert_eq!(
        parts[1],
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(parts[2], [7, 7, 7]);
    assert_eq!(Package::decode(&p.encode(), &Limits::default())?, p);
    Ok(())
}

#[test]
fn check_limits_on_send() {
    let p = Package::heartbeat().with_text("0123456789");
    assert_eq!(p.encoded_len(), 82 + 8 + 11);
    assert_eq!(p.check_limits(&Limits::default()), Ok(()));
    let err = p
        .check_limits(&Limits {
            max_package_len: 100,
            max_buffers: 1,
        })
        .unwrap_err();
    assert_eq!(
        err,
        PackageError::TooLarge {
            declared: 101,
            limit: 100
        }
    );
    let err = p
        .check_limits(&Limits {
            max_package_len: 101,
            max_buffers: 0,
        })
        .unwrap_err();
    assert_eq!(
        err,
        PackageError::TooManyBuffers {
            declared: 1,
            limit: 0
        }
    );
}

#[test]
fn constructors() {
    let req = Package::request(2039, Uuid::from_u128(1), Uuid::from_u128(2), vec![]);
    assert!(!req.header.is_response());
    let resp = Package::direct_response(&req, 5001, Uuid::from_u128(3), Uuid::from_u128(4), vec![]);
    assert_eq!(resp.header.uuid, Uuid::from_u128(3));
    assert_eq!(resp.header.parent_uuid, Uuid::from_u128(1));
    assert_eq!(resp.header.sender_uuid, Uuid::from_u128(4));
    assert_eq!(resp.header.receiver_uuid, Uuid::from_u128(2));
    assert_eq!(resp.header.package_type, 5001);
    assert!(resp.header.is_response());
    let hb = Package::heartbeat();
    assert_eq!(hb.header.package_type, prl_protocol::package::MNG_HEARTBEAT);
    assert_eq!(hb.header.package_type, 10);
    assert!(hb.buffers.is_empty());
}

#[test]
fn error_kinds_are_distinct() {
    let errors = [
        PackageError::BadCrc {
            expected: 0,
            found: 1,
        },
        PackageError::Truncated {
            needed: 1,
            available: 0,
        },
        PackageError::TrailingBytes(1),
        PackageError::TooManyBuffers {
            declared: 2,
            limit: 1,
        },
        PackageError::TooLarge {
            declared: 2,
            limit: 1,
        },
        PackageError::TextUnterminated { index: 0 },
        PackageError::TextNotUtf8 {
            index: 0,
            valid_up_to: 0,
        },
    ];
    let kinds: BTreeSet<&str> = errors.iter().map(PackageError::kind).collect();
    assert_eq!(kinds.len(), errors.len());
    let messages: BTreeSet<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), errors.len());
    for m in &messages {
        assert!(m.chars().next().is_some_and(|c| !c.is_uppercase()), "{m}");
    }
}
