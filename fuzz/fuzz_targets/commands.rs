//! Command and reply recognition (and the login peek) on arbitrary packages never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prl_protocol::commands::{carried_event, Command, LoginRequest, Reply};
use prl_protocol::package::{Limits, Package};

fuzz_target!(|data: &[u8]| {
    if let Ok(package) = Package::decode(data, &Limits::default()) {
        let _ = Command::parse(&package, true);
        let _ = LoginRequest::peek(&package);
        let _ = carried_event(&package);
        if let Ok(reply) = Reply::parse(&package) {
            let _ = reply.login_response();
            let _ = reply.error_event();
        }
    }
});
