//! Binary (QDataStream) CVmEvents: never panic; round trips are exact.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prl_protocol::event::Event;

fuzz_target!(|data: &[u8]| {
    if let Ok((event, used)) = Event::decode_binary(data) {
        assert!(used <= data.len());
        let bytes = event.to_binary();
        let (again, used_again) = Event::decode_binary(&bytes).expect("own bytes must decode");
        assert_eq!(used_again, bytes.len());
        assert_eq!(again, event);
    }
});
