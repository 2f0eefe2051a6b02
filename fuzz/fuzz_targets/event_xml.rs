//! XML CVmEvents: never panic; what parses re-serialises to something that parses the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prl_protocol::event::Event;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(event) = Event::from_xml(text) {
        let again = Event::from_xml(&event.to_xml()).expect("own xml must parse");
        assert_eq!(again, event);
    }
});
