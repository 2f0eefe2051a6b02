//! Both handshake state machines accept arbitrary peer bytes without panicking.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prl_protocol::handshake::{
    ClientHandshake, Handshake, ProtocolVersion, SecurityLevel, ServerHandshake,
};
use prl_protocol::Uuid;

fuzz_target!(|data: &[u8]| {
    let (Ok(mut server), Ok(mut client)) = (
        ServerHandshake::new(
            ProtocolVersion::current(),
            Uuid::from_u128(1),
            SecurityLevel::Low,
        ),
        ClientHandshake::new(
            ProtocolVersion::current(),
            Uuid::from_u128(2),
            SecurityLevel::Normal,
        ),
    ) else {
        panic!("valid handshake set-up")
    };
    for chunk in data.chunks(13) {
        if server.feed(chunk).is_err() {
            break;
        }
    }
    for chunk in data.chunks(29) {
        if client.feed(chunk).is_err() {
            break;
        }
    }
});
