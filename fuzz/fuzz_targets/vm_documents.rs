//! The host and VM decoders never panic: VM configurations, host info, `<Security>`, the VM info
//! event, VM events and the replies that carry them. The first byte picks the input's form.
#![no_main]
use libfuzzer_sys::fuzz_target;
use prl_protocol::commands::{
    vm_list_from_reply, HostInfo, Reply, ReplyView, VmEvent, VmInfo, VmSecurity, VmSummary,
};
use prl_protocol::event::Event;
use prl_protocol::package::{Limits, Package};

fuzz_target!(|data: &[u8]| {
    let Some((&form, rest)) = data.split_first() else {
        return;
    };
    match form % 3 {
        // A document (or an event) as text.
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            if let Ok(vm) = VmSummary::from_xml(text) {
                assert_eq!(vm.raw, text);
                if let Some(info) = &vm.info {
                    let _ = info.security();
                }
            }
            if let Ok(host) = HostInfo::from_xml(text) {
                assert_eq!(host.raw, text);
            }
            let _ = VmSecurity::from_xml(text);
            if let Ok(event) = Event::from_xml(text) {
                let _ = VmEvent::from_event(&event);
                if let Ok(info) = VmInfo::from_event(&event) {
                    let _ = info.security();
                }
            }
        }
        // A package: an event, or a reply carrying documents.
        _ => {
            let Ok(package) = Package::decode(rest, &Limits::default()) else {
                return;
            };
            let _ = VmEvent::from_package(&package);
            if let Ok(reply) = Reply::parse(&package) {
                let _ = HostInfo::from_reply(&reply);
                let _ = VmInfo::from_reply(&reply);
                for vm in vm_list_from_reply(&reply) {
                    let _ = vm.map(|v| v.state());
                }
                let _ = ReplyView::from_reply(&reply);
                let _ = reply.error_details();
            }
        }
    }
});
