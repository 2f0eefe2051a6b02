//! The service decodes login passwords with Qt's lenient base64 and UTF-8 decoders
//! (`CDspUserHelper::decodePassword`: `QString(QByteArray::fromBase64(password.toUtf8()))`).
//! `Password::decode` must give what Qt gives, for every input.
#![allow(clippy::unwrap_used)] // a failing unwrap is a failing test

use base64::Engine as _;
use prl_protocol::commands::{Password, MAX_ENCODED_PASSWORD_LENGTH};
use proptest::prelude::*;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn decode(wire: &str) -> String {
    Password::decode(wire, true).unwrap().expose().to_owned()
}

/// Qt 5's `QByteArray::fromBase64` loop (qbytearray.cpp), written out as Qt does it: one
/// 6-bit group per alphabet character, anything else skipped, a byte per full 8 bits.
fn qt_from_base64_reference(text: &[u8]) -> Vec<u8> {
    let mut buf: u32 = 0;
    let mut nbits = 0;
    let mut out = Vec::new();
    for &ch in text {
        let d = match ch {
            b'A'..=b'Z' => u32::from(ch - b'A'),
            b'a'..=b'z' => u32::from(ch - b'a') + 26,
            b'0'..=b'9' => u32::from(ch - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        buf = (buf << 6) | d;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((buf >> nbits) as u8);
            buf &= (1 << nbits) - 1;
        }
    }
    out
}

/// Qt 5's `QUtf8::convertToUnicode` + `QUtf8Functions::fromUtf8` (qutfcodec): skip a leading
/// BOM; at each position decode one sequence (lead byte ranges, continuation bytes, then the
/// overlong / surrogate / range checks); on any failure write U+FFFD and consume only the
/// lead byte.
fn qt_from_utf8_reference(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        if b < 0x80 {
            out.push(char::from(b));
            continue;
        }
        let (needed, min, mut uc) = match b {
            0xC2..=0xDF => (2, 0x80, u32::from(b & 0x1F)),
            0xE0..=0xEF => (3, 0x800, u32::from(b & 0x0F)),
            0xF0..=0xF4 => (4, 0x10000, u32::from(b & 0x07)),
            _ => {
                out.push('\u{FFFD}');
                continue;
            }
        };
        let cont = bytes.get(i..i + needed - 1);
        let ok = cont.is_some_and(|c| c.iter().all(|&x| x & 0xC0 == 0x80));
        if !ok {
            out.push('\u{FFFD}');
            continue;
        }
        for &x in cont.unwrap() {
            uc = (uc << 6) | u32::from(x & 0x3F);
        }
        match char::from_u32(uc).filter(|_| uc >= min) {
            Some(c) => {
                out.push(c);
                i += needed - 1;
            }
            None => out.push('\u{FFFD}'),
        }
    }
    out
}

/// The whole of `decodePassword` as Qt runs it.
fn qt_decode_reference(wire: &str) -> String {
    let bytes = qt_from_base64_reference(wire.as_bytes());
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    qt_from_utf8_reference(&bytes[..end])
}

#[test]
fn unpadded_base64_decodes() {
    assert_eq!(decode("dGVzdHBhc3M"), "testpass");
    assert_eq!(decode("dGVzdHBhc3M="), "testpass");
    // A lone trailing symbol holds 6 bits, no byte: dropped (a strict decoder refuses it).
    assert_eq!(decode("YWJjZ"), "abc");
}

#[test]
fn line_wrapped_base64_decodes() {
    let wire = Password::new("testpass").encode(true);
    let wrapped: String = wire
        .as_bytes()
        .chunks(76)
        .map(|line| format!("{}\r\n", std::str::from_utf8(line).unwrap()))
        .collect();
    assert!(wrapped.len() > wire.len() + 30);
    assert_eq!(decode(&wrapped), "testpass");
    assert_eq!(decode(" dGVz\n\tdHBh\nc3M=\n"), "testpass");
}

#[test]
fn stray_characters_are_skipped() {
    assert_eq!(decode("dGVz*dH!Bh c3M=@"), "testpass");
    // Non-ASCII characters are skipped too (their UTF-8 bytes are outside the alphabet).
    assert_eq!(decode("dGVz€dHBhc3Mé"), "testpass");
    // `=` is skipped wherever it is; decoding goes on after it.
    assert_eq!(decode("YQ==YQ=="), "a\u{6}\u{10}");
    // Nothing of the alphabet: the empty password (which matches no user).
    assert_eq!(decode("@@@"), "");
    assert_eq!(decode(""), "");
}

#[test]
fn the_password_ends_at_the_first_nul() {
    assert_eq!(decode(&b64(b"abc\0def")), "abc");
}

#[test]
fn bad_utf8_becomes_one_replacement_per_byte_as_in_qt() {
    // A truncated sequence: Qt gives one U+FFFD per byte, Rust's lossy decoding only one.
    assert_eq!(decode(&b64(&[0xE2, 0x82, b'A'])), "\u{FFFD}\u{FFFD}A");
    assert_eq!(
        decode(&b64(&[b'x', 0xF0, 0x9F, 0x98])),
        "x\u{FFFD}\u{FFFD}\u{FFFD}"
    );
    // Overlong and surrogate encodings are invalid, a byte at a time.
    assert_eq!(decode(&b64(&[0xC0, 0xAF])), "\u{FFFD}\u{FFFD}");
    assert_eq!(
        decode(&b64(&[0xED, 0xA0, 0x80])),
        "\u{FFFD}\u{FFFD}\u{FFFD}"
    );
    // Non-characters are allowed.
    assert_eq!(decode(&b64("\u{FFFE}".as_bytes())), "\u{FFFE}");
    // A leading BOM is dropped, a later one kept.
    assert_eq!(decode(&b64(b"\xEF\xBB\xBFpw\xEF\xBB\xBF")), "pw\u{FEFF}");
}

#[test]
fn the_length_limit_counts_decoded_utf16_units() {
    // 1368 replacement characters are allowed, one more is not.
    let ok = b64(&vec![0xFF; MAX_ENCODED_PASSWORD_LENGTH]);
    assert_eq!(decode(&ok).chars().count(), MAX_ENCODED_PASSWORD_LENGTH);
    let long = b64(&vec![0xFF; MAX_ENCODED_PASSWORD_LENGTH + 1]);
    assert_eq!(
        Password::decode(&long, true).unwrap_err().kind(),
        "password_too_long"
    );
}

fn wire_text() -> impl Strategy<Value = String> {
    prop_oneof![
        // Base64 of arbitrary bytes, then damaged: wrapped, padding removed or doubled,
        // characters inserted.
        (
            proptest::collection::vec(any::<u8>(), 0..64),
            0usize..4,
            "[ \r\n=*é.-]{0,6}"
        )
            .prop_map(|(bytes, how, junk)| {
                let s = b64(&bytes);
                match how {
                    0 => s,
                    1 => s.trim_end_matches('=').to_owned(),
                    2 => {
                        let mid = s.len() / 2;
                        format!("{}{junk}{}", &s[..mid], &s[mid..])
                    }
                    _ => format!("{junk}{s}{junk}=="),
                }
            }),
        // Anything at all.
        ".{0,80}",
    ]
}

proptest! {
    #[test]
    fn decode_equals_qt_for_any_wire_text(wire in wire_text()) {
        prop_assert_eq!(decode(&wire), qt_decode_reference(&wire));
    }

    #[test]
    fn decode_equals_qt_for_any_decoded_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let wire = b64(&bytes);
        prop_assert_eq!(decode(&wire), qt_decode_reference(&wire));
    }
}
