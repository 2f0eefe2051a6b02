//! Known-answer tests of the host and VM operations against the real formats: the real
//! serializer's VM configuration and host info documents (`data/ops-wire/`, see its README) and
//! the real SDK's requests and the events it accepted, as captured in the issue-8 research
//! (`ops-wire.md` §1.1, §4, §6.2).
#![allow(clippy::unwrap_used)]

use prl_protocol::codes::{cmd, event_type, ErrorCode, VmState};
use prl_protocol::commands::{
    error_with_details, forked_failure_replies, host_info_reply, host_info_request, package_event,
    vm_info_reply, vm_list_from_reply, vm_list_reply, HostInfo, Reply, ReplyView, VmConfig,
    VmEvent, VmEventKind, VmInfo, VmRequest, VmSecurity, VmSummary,
};
use prl_protocol::event::Event;
use prl_protocol::Uuid;

const VM_EXAMPLE: &str = include_str!("data/ops-wire/vm-config-example.xml");
const VM_DEFAULT: &str = include_str!("data/ops-wire/vm-config-default-serialization.xml");
const VM_MINIMAL: &str = include_str!("data/ops-wire/vm-config-minimal.xml");
const VM_MINIMAL_STATE: &str = include_str!("data/ops-wire/vm-config-minimal-with-state.xml");
const HOST_EXAMPLE: &str = include_str!("data/ops-wire/host-info-example.xml");
const HOST_DEFAULT: &str = include_str!("data/ops-wire/host-info-default-serialization.xml");
const HOST_MINIMAL: &str = include_str!("data/ops-wire/host-info-minimal.xml");

const WEB01: &str = "{5e1c3c1a-0b7d-4c2e-9f5a-1d2c3b4a5f60}";

fn root_security() -> VmSecurity {
    VmSecurity {
        owner: "root".into(),
        is_owner: true,
        access_for_others: 0,
        locked: false,
        parental_control: true,
    }
}

fn example_config() -> VmConfig {
    VmConfig {
        uuid: WEB01.into(),
        name: "web-01".into(),
        server_uuid: "{9a3e2f10-5b7c-4d8e-a1f2-3c4d5e6f7a80}".into(),
        home: "/vz/vmprivate/5e1c3c1a-0b7d-4c2e-9f5a-1d2c3b4a5f60/config.pvs".into(),
        description: "nginx front end".into(),
        os_type: 9,
        os_version: 0x090A,
        is_template: false,
        cpu_count: 2,
        ram_mb: 2048,
        disk_mb: 65536,
        mac: "001C42A1B2C3".into(),
        host_name: "web-01.example.test".into(),
        created: "2024-03-18 14:02:31".into(),
        changed: "2024-04-26 09:12:44".into(),
        started: "2024-04-26 09:12:40".into(),
        valid_rc: ErrorCode::SUCCESS,
        vm_type: 0,
        security: root_security(),
        info: VmInfo::new(VmState::RUNNING, &root_security()).to_event(),
    }
}

#[test]
fn the_vm_configuration_writer_reproduces_the_real_document() {
    // Byte for byte, the nested info event and the escaped <Security> value included.
    let written = example_config().to_xml();
    if written != VM_EXAMPLE {
        let line = written
            .lines()
            .zip(VM_EXAMPLE.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        panic!(
            "differs at line {}: {:?} vs {:?}",
            line + 1,
            written.lines().nth(line),
            VM_EXAMPLE.lines().nth(line)
        );
    }
    assert_eq!(example_config().ct_id(), "1578908698");
}

#[test]
fn the_realistic_vm_configuration_reads_as_the_real_sdk_read_it() {
    // The real SDK's getters on this document: name, uuid, OsType 9, OsVersion 2314, 2 CPUs,
    // 2048 MiB, state 0x30000004, home.
    let s = VmSummary::from_xml(VM_EXAMPLE).unwrap();
    assert_eq!(s.uuid, WEB01);
    assert_eq!(s.name, "web-01");
    assert_eq!((s.os_type, s.os_version), (9, 2314));
    assert_eq!((s.cpu_count, s.ram_mb), (2, 2048));
    assert_eq!(s.state(), Some(VmState::RUNNING));
    assert_eq!(
        s.home,
        "/vz/vmprivate/5e1c3c1a-0b7d-4c2e-9f5a-1d2c3b4a5f60/config.pvs"
    );
    assert_eq!(s.description, "nginx front end");
    assert_eq!(s.host_name, "web-01.example.test");
    assert!(!s.is_template);
    assert_eq!((s.valid_rc, s.vm_type), (ErrorCode::SUCCESS, 0));
    assert_eq!(s.security, Some(root_security()));
    let info = s.info.as_ref().unwrap();
    assert_eq!(info.security().unwrap(), Some(root_security()));
    assert_eq!(info.addition_state, 1);
    assert!(!info.is_invalid);
    assert_eq!(s.raw, VM_EXAMPLE);
}

#[test]
fn the_default_and_minimal_documents_read_with_defaults_and_no_state() {
    let d = VmSummary::from_xml(VM_DEFAULT).unwrap();
    assert_eq!(d.uuid, "{d0a8dcf0-c258-4df3-8748-01ea5667ef3d}");
    assert_eq!(
        (d.name.as_str(), d.os_type, d.cpu_count, d.ram_mb),
        ("", 0, 1, 256)
    );
    // An info event without parameters: PrlVmCfg_GetVmInfo gives PRL_ERR_NO_DATA.
    assert!(d.info.is_some());
    assert_eq!(d.state(), None);
    assert_eq!(d.security.as_ref().map(|s| s.is_owner), Some(false));

    let m = VmSummary::from_xml(VM_MINIMAL).unwrap();
    assert_eq!((m.uuid.as_str(), m.name.as_str()), (WEB01, "web-01"));
    assert_eq!(
        (m.os_type, m.os_version, m.cpu_count, m.ram_mb),
        (9, 2314, 2, 2048)
    );
    assert_eq!((m.info.is_none(), m.security.is_none()), (true, true));

    let w = VmSummary::from_xml(VM_MINIMAL_STATE).unwrap();
    assert_eq!(w.state(), Some(VmState::RUNNING));
}

#[test]
fn the_readers_accept_the_legacy_roots_and_refuse_others() {
    let legacy = VM_MINIMAL.replace("VirtuozzoVirtualMachine", "ParallelsVirtualMachine");
    assert_eq!(VmSummary::from_xml(&legacy).unwrap().name, "web-01");
    // What the real parser refuses (PRL_ERR_INVALID_ARG): ops-wire.md §0.
    let wrong = VM_MINIMAL.replace("VirtuozzoVirtualMachine", "ParallelsVmConfiguration");
    let e = VmSummary::from_xml(&wrong).unwrap_err();
    assert_eq!(e.kind(), "unexpected_root");
    assert!(
        e.to_string().contains("expected <VirtuozzoVirtualMachine>"),
        "{e}"
    );
    let legacy = HOST_MINIMAL.replace("VirtuozzoHostInfo", "ParallelsHostInfo");
    assert_eq!(HostInfo::from_xml(&legacy).unwrap().cpu_count, 16);
    assert_eq!(
        HostInfo::from_xml(VM_MINIMAL).unwrap_err().kind(),
        "unexpected_root"
    );
}

#[test]
fn hostile_documents_are_typed_errors() {
    let kind = |xml: &str| VmSummary::from_xml(xml).unwrap_err().kind();
    assert_eq!(kind(""), "xml_syntax");
    assert_eq!(kind(&VM_MINIMAL[..200]), "xml_syntax");
    assert_eq!(kind("<VirtuozzoVirtualMachine/>"), "missing_element");
    assert_eq!(
        kind(&VM_MINIMAL.replace("<RAM>2048</RAM>", "<RAM>lots</RAM>")),
        "bad_number"
    );
    assert_eq!(
        kind(&VM_MINIMAL.replace("<RAM>2048</RAM>", "<RAM>4294967296</RAM>")),
        "bad_number"
    );
    assert_eq!(
        kind(&VM_MINIMAL_STATE.replace("<EventCode>0</EventCode>", "")),
        "bad_event"
    );
    assert_eq!(
        kind(&VM_MINIMAL_STATE.replace("805306372", "running")),
        "bad_number"
    );
    // What the reader does not keep is still checked: references and attributes.
    assert_eq!(
        kind(&VM_EXAMPLE.replace("<Video dyn_lists=\"\">", "<Video dyn_lists=\"\">&bogus;")),
        "xml_syntax"
    );
    assert_eq!(
        kind(&VM_EXAMPLE.replace("<Video dyn_lists=\"\">", "<Video dyn_lists=\"\" x=>")),
        "xml_syntax"
    );
    assert_eq!(
        kind(&VM_EXAMPLE.replace("</Video>", "</Vidoe>")),
        "xml_syntax"
    );
    // Deep nesting beyond the model is checked, not kept.
    let deep = format!(
        "<VirtuozzoVirtualMachine><Identification><VmUuid>u</VmUuid></Identification>{}{}</VirtuozzoVirtualMachine>",
        "<a>".repeat(500),
        "</a>".repeat(500)
    );
    assert_eq!(VmSummary::from_xml(&deep).unwrap().uuid, "u");
}

#[test]
fn the_host_info_writer_reproduces_the_real_document() {
    let host = HostInfo {
        cpu_count: 16,
        cpu_model: "Intel(R) Xeon(R) Gold 6230R CPU @ 2.10GHz".into(),
        cpu_speed_mhz: 2100,
        cpu_mode: 1,
        vtx_mode: 1,
        ram_mb: 64216,
        os_type: 1,
        os_major: 5,
        os_minor: 14,
        os_sub_minor: 0,
        os_name: "Virtuozzo Linux release 9.0 (5.14.0-362.vz9.26.1.x86_64)".into(),
        host_name: "node1.example.test".into(),
        vz_running: true,
        raw: String::new(),
    };
    assert_eq!(host.to_xml(), HOST_EXAMPLE);
    // The real SDK's getters: 16 CPUs, the model, 64216 MiB, OS type 1, major 5, the string.
    let read = HostInfo::from_xml(HOST_EXAMPLE).unwrap();
    assert_eq!(
        read,
        HostInfo {
            raw: HOST_EXAMPLE.into(),
            ..host
        }
    );
    let min = HostInfo::from_xml(HOST_MINIMAL).unwrap();
    assert_eq!(
        (min.cpu_count, min.ram_mb, min.host_name.as_str()),
        (16, 64216, "")
    );
    let d = HostInfo::from_xml(HOST_DEFAULT).unwrap();
    assert_eq!((d.cpu_count, d.ram_mb, d.os_type), (1, 0, 0));
}

fn counter() -> impl FnMut() -> Uuid {
    let mut n = 0x1000u128;
    move || {
        n += 1;
        Uuid::from_u128(n)
    }
}

fn ids_from(list: Vec<Uuid>) -> impl FnMut() -> Uuid {
    let mut it = list.into_iter();
    move || it.next().unwrap_or_else(Uuid::nil)
}

#[test]
fn the_start_request_is_the_real_sdks_byte_for_byte() {
    // ops-wire.md §1.1: the real SDK's PrlVm_Start, captured by the mock.
    let expected = "<ParallelsEvent dyn_lists=\"\" id=\"-1\">\n <EventType>100000</EventType>\n \
        <EventLevel>0</EventLevel>\n <EventCode>0</EventCode>\n \
        <EventNeedResponse>0</EventNeedResponse>\n <EventIssuerType>0</EventIssuerType>\n \
        <EventIssuerId>{35d3079f-f131-4f93-86b8-f1f17ae7a0f9}</EventIssuerId>\n \
        <EventSource></EventSource>\n \
        <EventInitialRequestId>{08b7ec4d-82c9-4061-917e-8f213c5900bb}</EventInitialRequestId>\n \
        <EventParameters dyn_lists=\"EventParameter 3\">\n  \
        <EventParameter dyn_lists=\"\" id=\"0\">\n   <Name>proto_force_questions_sign</Name>\n   \
        <Type>0</Type>\n   <Value>0</Value>\n  </EventParameter>\n  \
        <EventParameter dyn_lists=\"\" id=\"1\">\n   <Name>proto_command_flags</Name>\n   \
        <Type>0</Type>\n   <Value>0</Value>\n  </EventParameter>\n  \
        <EventParameter dyn_lists=\"\" id=\"2\">\n   <Name>basic_vm_cmd_vm_uuid</Name>\n   \
        <Type>1</Type>\n   <Value>{0c9d2b3e-7f6a-4e1d-8c5b-2a3f4e5d6c7b}</Value>\n  \
        </EventParameter>\n </EventParameters>\n <EventId>0</EventId>\n</ParallelsEvent>\n";
    let mut ids = ids_from(vec![
        Uuid::parse_str("35d3079f-f131-4f93-86b8-f1f17ae7a0f9").unwrap(),
        Uuid::parse_str("08b7ec4d-82c9-4061-917e-8f213c5900bb").unwrap(),
    ]);
    let job = Uuid::from_u128(0x10);
    let sender = Uuid::from_u128(0x20);
    let p = VmRequest::start("{0c9d2b3e-7f6a-4e1d-8c5b-2a3f4e5d6c7b}")
        .to_package(job, sender, &mut ids);
    assert_eq!(p.header.package_type, cmd::VM_START);
    assert_eq!(p.header.uuid, job);
    assert_eq!(p.header.sender_uuid, sender);
    assert!(p.header.parent_uuid.is_nil() && p.header.receiver_uuid.is_nil());
    let mut buffer = expected.as_bytes().to_vec();
    buffer.push(0);
    assert_eq!(p.buffers[0].data, buffer);
}

#[test]
fn replies_read_as_the_sdk_reads_them() {
    let mut ids = counter();
    let request = host_info_request()
        .to_package(Uuid::from_u128(1), Uuid::from_u128(2), &mut ids)
        .unwrap();
    let reply = host_info_reply(
        &request,
        Uuid::from_u128(3),
        Uuid::from_u128(4),
        HOST_EXAMPLE,
        &mut ids,
    );
    assert_eq!(reply.header.parent_uuid, Uuid::from_u128(1));
    assert_eq!(reply.header.receiver_uuid, Uuid::from_u128(2));
    let parsed = Reply::parse(&reply).unwrap();
    assert_eq!(parsed.opcode, 2051);
    assert_eq!(HostInfo::from_reply(&parsed).unwrap().cpu_count, 16);
    // One parameter only: PrlResult_GetParamsCount = 1.
    assert_eq!(ReplyView::from_reply(&parsed).params.len(), 4);

    let list = prl_protocol::commands::vm_list_request(0)
        .to_package(Uuid::from_u128(5), Uuid::from_u128(2), &mut ids)
        .unwrap();
    let entries = vec![
        VM_EXAMPLE.to_owned(),
        "<Broken".to_owned(),
        VM_DEFAULT.to_owned(),
    ];
    let reply = vm_list_reply(
        &list,
        Uuid::from_u128(3),
        Uuid::from_u128(6),
        &entries,
        &mut ids,
    );
    let vms = vm_list_from_reply(&Reply::parse(&reply).unwrap());
    assert_eq!(vms.len(), 3);
    assert_eq!(vms[0].as_ref().unwrap().state(), Some(VmState::RUNNING));
    assert_eq!(vms[1].as_ref().unwrap_err().kind(), "xml_syntax");
    assert_eq!(vms[2].as_ref().unwrap().state(), None);

    let info = VmInfo::new(VmState::STOPPED, &root_security());
    let reply = vm_info_reply(
        &list,
        Uuid::from_u128(3),
        Uuid::from_u128(7),
        &info,
        &mut ids,
    );
    assert_eq!(
        VmInfo::from_reply(&Reply::parse(&reply).unwrap()).unwrap(),
        info
    );
}

#[test]
fn errors_carry_details_and_forked_failures_are_answered_twice() {
    let mut ids = counter();
    let start =
        VmRequest::start(WEB01).to_package(Uuid::from_u128(1), Uuid::from_u128(2), &mut ids);
    let p = error_with_details(
        &start,
        Uuid::from_u128(3),
        Uuid::from_u128(4),
        ErrorCode::FAILURE,
        "VM is already running",
        &mut ids,
    );
    let r = Reply::parse(&p).unwrap();
    assert_eq!((r.code, r.opcode), (ErrorCode::FAILURE, 1001));
    assert_eq!(r.error_details().as_deref(), Some("VM is already running"));
    let error = r.error_event().unwrap();
    // Error::Simple: one String parameter `Details`.
    assert_eq!(error.params.len(), 1);
    assert_eq!(error.event_type, 100_000);
    let [first, second] = forked_failure_replies(
        &start,
        Uuid::from_u128(3),
        [Uuid::from_u128(5), Uuid::from_u128(6)],
        ErrorCode::VM_UUID_NOT_FOUND,
        "",
        &mut ids,
    );
    let (a, b) = (
        Reply::parse(&first).unwrap(),
        Reply::parse(&second).unwrap(),
    );
    assert_eq!(a.code, ErrorCode::VM_UUID_NOT_FOUND);
    assert_eq!(b.code, ErrorCode::FAILURE);
    assert_eq!(first.header.parent_uuid, second.header.parent_uuid);
    assert_eq!(b.error_details().as_deref(), Some(""));
    let view = ReplyView::from_reply(&a);
    assert_eq!(view.error.unwrap().code, ErrorCode::VM_UUID_NOT_FOUND.0);
}

#[test]
fn the_mocks_state_event_the_real_sdk_accepted_reads() {
    // ops-wire.md §6.2.
    let xml = "<ParallelsEvent dyn_lists=\"\" id=\"-1\">\n <EventType>100001</EventType>\n \
        <EventLevel>0</EventLevel>\n <EventCode>100000</EventCode>\n \
        <EventNeedResponse>0</EventNeedResponse>\n <EventIssuerType>1</EventIssuerType>\n \
        <EventIssuerId>{5e1c3c1a-0b7d-4c2e-9f5a-1d2c3b4a5f60}</EventIssuerId>\n \
        <EventSource></EventSource>\n \
        <EventInitialRequestId>{c0b6a1e2-9d3f-4c55-8e1a-7b2d4f6a8c90}</EventInitialRequestId>\n \
        <EventParameters dyn_lists=\"EventParameter 1\">\n  \
        <EventParameter dyn_lists=\"\" id=\"0\">\n   <Name>vminfo_vm_state</Name>\n   \
        <Type>2</Type>\n   <Value>805306372</Value>\n  </EventParameter>\n \
        </EventParameters>\n <EventId>0</EventId>\n</ParallelsEvent>\n";
    let event = Event::from_xml(xml).unwrap();
    assert_eq!(event.event_type, event_type::VM_STATE_CHANGED);
    let e = VmEvent::from_event(&event).unwrap().unwrap();
    assert_eq!(e.vm_uuid, WEB01);
    assert_eq!(e.kind, VmEventKind::StateChanged(VmState::RUNNING));
    // The builder writes the same document, given the same initial request id.
    let mut ids = ids_from(vec![
        Uuid::from_u128(1),
        Uuid::parse_str("c0b6a1e2-9d3f-4c55-8e1a-7b2d4f6a8c90").unwrap(),
    ]);
    let p = prl_protocol::commands::vm_state_event(
        WEB01,
        VmState::RUNNING,
        Uuid::nil(),
        Uuid::nil(),
        &mut ids,
    );
    assert_eq!(package_event(&p).unwrap().to_xml(), xml);
}
