//! The inputs of the codec benchmarks: real client bytes from `protocol/tests/data/` (copies of
//! the shared captures) and a synthetic 1 MiB package.

use prl_protocol::codes::cmd;
use prl_protocol::package::{Buffer, Limits, Package, PackageDecoder, DESCRIPTOR_LEN, HEADER_LEN};
use prl_protocol::Uuid;

/// The real SDK client's application stream at PSL_LOW: login 2039, heartbeat, logoff 2042.
pub const CLIENT_STREAM_LOW: &[u8] =
    include_bytes!("../../protocol/tests/data/client-stream-low-login-logoff.bin");
/// A complete 5003 login reply package the real client accepted.
pub const LOGIN_REPLY_5003: &[u8] =
    include_bytes!("../../protocol/tests/data/accepted-login-reply-5003.bin");

/// Size of the synthetic large package, header and descriptor included.
pub const LARGE_PACKAGE_LEN: usize = 1 << 20;
/// The chunk size the decoder is fed in: the largest TLS record plaintext (2^14), which is
/// how a large package arrives from the record layer.
pub const RECORD_CHUNK: usize = 1 << 14;

/// The first package of `stream`.
fn first_package(stream: &[u8]) -> Option<Package> {
    let mut decoder = PackageDecoder::new(Limits::default());
    decoder.push(stream);
    decoder.next_package().ok().flatten()
}

/// The captured login package (2039) and its exact wire bytes (2649 bytes).
pub fn login_package() -> (Package, Vec<u8>) {
    let package = first_package(CLIENT_STREAM_LOW).unwrap_or_default();
    let len = package.encoded_len().min(CLIENT_STREAM_LOW.len());
    let bytes = CLIENT_STREAM_LOW.get(..len).unwrap_or_default().to_vec();
    (package, bytes)
}

/// Buffer 0 of the captured login package: its CVmEvent XML with the trailing NUL.
pub fn login_event_xml() -> Vec<u8> {
    login_package()
        .0
        .buffers
        .into_iter()
        .next()
        .map(|b| b.data)
        .unwrap_or_default()
}

/// The body of the 5003 login reply: two big-endian QDataStream CVmEvents.
pub fn login_reply_body() -> Vec<u8> {
    first_package(LOGIN_REPLY_5003)
        .and_then(|p| p.buffers.into_iter().next())
        .map(|b| b.data)
        .unwrap_or_default()
}

/// A one-buffer binary event package (3008) of exactly [`LARGE_PACKAGE_LEN`] bytes, filled
/// with a non-repeating byte pattern, and its wire bytes.
pub fn large_package() -> (Package, Vec<u8>) {
    let body_len = LARGE_PACKAGE_LEN - HEADER_LEN - DESCRIPTOR_LEN;
    let mut state = 0x9e37_79b9_u32;
    let data = (0..body_len)
        .map(|_| {
            // xorshift32: cheap, deterministic, not compressible by accident.
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state.to_le_bytes()[0]
        })
        .collect();
    let package = Package::request(
        cmd::VM_BINARY_EVENT,
        Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        Uuid::from_u128(0xfeed_beef_0000_0000_0000_0000_0000_0001),
        vec![Buffer::raw(data)],
    );
    let bytes = package.encode();
    (package, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prl_protocol::event::Event;

    #[test]
    fn the_login_package_is_the_captured_one_byte_for_byte() {
        let (p, bytes) = login_package();
        assert_eq!(p.header.package_type, cmd::USER_LOGIN);
        assert_eq!(bytes.len(), 2649);
        assert_eq!(p.encode(), bytes);
        assert_eq!(Package::decode(&bytes, &Limits::default()).unwrap(), p);
        let xml = login_event_xml();
        assert_eq!(xml.len(), 2559);
        let e = Event::from_xml_buffer(&xml).unwrap();
        assert_eq!(e.to_xml_buffer(), xml);
    }

    #[test]
    fn the_5003_body_holds_two_events() {
        let body = login_reply_body();
        assert!(!body.is_empty());
        assert_eq!(Event::decode_binary_all(&body).unwrap().len(), 2);
    }

    #[test]
    fn the_large_package_is_one_mib_and_decodes_in_record_chunks() {
        let (p, bytes) = large_package();
        assert_eq!(bytes.len(), LARGE_PACKAGE_LEN);
        assert_eq!(p.encoded_len(), LARGE_PACKAGE_LEN);
        let mut d = PackageDecoder::new(Limits::default());
        let mut out = Vec::new();
        for chunk in bytes.chunks(RECORD_CHUNK) {
            d.push(chunk);
            while let Some(p) = d.next_package().unwrap() {
                out.push(p);
            }
        }
        assert_eq!(out, [p]);
        assert_eq!(d.buffered_len(), 0);
    }
}
