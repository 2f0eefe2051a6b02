//! Relay control messages from either side: never panic; parsed messages round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prl_protocol::relay::{ClientMessage, ProxyMessage};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = ClientMessage::from_json(text) {
        assert_eq!(ClientMessage::from_json(&m.to_json()).ok(), Some(m));
    }
    if let Ok(m) = ProxyMessage::from_json(text) {
        assert_eq!(ProxyMessage::from_json(&m.to_json()).ok(), Some(m));
    }
});
