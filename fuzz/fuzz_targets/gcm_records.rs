//! The proxy's TLS 1.2 AES-GCM record layer (the one that takes over from OpenSSL after the
//! handshake) never panics, and hands out exactly the application data of the records before
//! the first bad one. The input is a script: each step seals a record of a chosen type (or
//! forges one: bytes the fuzzer chose, or a sealed record with a byte flipped), and the wire
//! is delivered in chunks of a chosen size.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prl_transport::fuzzing::GcmPair;

const APPLICATION_DATA: u8 = 23;
const ALERT: u8 = 21;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, mut script)) = data.split_first() else {
        return;
    };
    let mut pair = GcmPair::new();
    let mut wire = Vec::new();
    // What the client must hand out: the application data before the first record that ends
    // the stream (a forged or tampered record, an alert other than a warning, another type).
    let mut expected = Vec::new();
    let mut ended = false;
    while let [op, len, rest @ ..] = script {
        let len = usize::from(*len) * 64 % 20_000;
        let (body, rest) = rest.split_at(len.min(rest.len()));
        script = rest;
        match op % 4 {
            // A sealed record of a type the fuzzer chose (most often application data).
            0 | 1 => {
                let typ = if op % 4 == 0 {
                    APPLICATION_DATA
                } else {
                    op / 4
                };
                let record = pair.seal(typ, body);
                let plain = &body[..body.len().min(15 * 1024)];
                if !ended {
                    match typ {
                        APPLICATION_DATA => expected.extend_from_slice(plain),
                        ALERT if plain.len() == 2 && plain[0] == 1 && plain[1] != 0 => {}
                        _ => ended = true,
                    }
                }
                wire.extend_from_slice(&record);
            }
            // A sealed record with one byte flipped: authentication must fail (or, in the
            // header, the record's framing).
            2 => {
                let mut record = pair.seal(APPLICATION_DATA, body);
                let at = usize::from(op / 4) % record.len();
                record[at] ^= 0x80;
                ended = true;
                wire.extend_from_slice(&record);
            }
            // Raw bytes: anything at all.
            _ => {
                if !body.is_empty() {
                    ended = true;
                }
                wire.extend_from_slice(body);
            }
        }
    }
    let mut out = Vec::new();
    let mut failed = false;
    for piece in wire.chunks(usize::from(chunk).max(1)) {
        if pair.receive(piece, &mut out).is_err() {
            failed = true;
            break;
        }
    }
    // Only what was sealed before the end, in order; all of it when nothing ended the stream.
    assert!(
        expected.starts_with(&out),
        "data the fuzzer never sealed came out"
    );
    if !ended {
        assert!(!failed, "a well-formed stream was refused");
        assert_eq!(out, expected);
    }
});
