//! Property tests of the host and VM operations: every builder's output reads back through its
//! parser (requests, replies, VM configurations, host info, VM info and VM events), the
//! document readers never panic on any input, and the scope classification is monotonic.
#![allow(clippy::unwrap_used)]

use prl_protocol::codes::{ErrorCode, VmState};
use prl_protocol::commands::{
    package_event, vm_event_package, vm_list_from_reply, vm_list_reply, vm_state_event, Command,
    HostInfo, Reply, ReplyView, RequestSpec, SpecParam, SpecValue, VmAction, VmConfig, VmEvent,
    VmEventKind, VmInfo, VmRequest, VmSecurity, VmSummary,
};
use prl_protocol::event::{Event, ParamValue};
use prl_protocol::scope::CommandScope;
use prl_protocol::Uuid;
use proptest::prelude::*;

/// Text with markup characters, `]]>`, CR / LF / TAB, NUL, whitespace runs and non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9_{}-]{0,12}",
        3 => proptest::collection::vec(
            prop_oneof![
                Just('<'), Just('>'), Just('&'), Just('"'), Just(']'), Just('\r'), Just('\n'),
                Just('\t'), Just(' '), Just('\0'), Just('é'), Just('中'), Just('😀'), Just('x'),
            ],
            0..16,
        )
        .prop_map(|v| v.into_iter().collect()),
        1 => any::<String>(),
    ]
}

/// What QDom reads back of a text node we wrote: NUL became a space; whitespace-only text does
/// not exist.
fn xml_text(s: &str) -> String {
    let s = s.replace('\0', " ");
    if s.chars().all(char::is_whitespace) {
        String::new()
    } else {
        s
    }
}

fn ids() -> impl FnMut() -> Uuid {
    let mut n = 0u128;
    move || {
        n += 1;
        Uuid::from_u128(n)
    }
}

fn action() -> impl Strategy<Value = VmAction> {
    prop_oneof![
        Just(VmAction::Start),
        (any::<u32>(), any::<u32>())
            .prop_map(|(mode, reserved)| VmAction::StartEx { mode, reserved }),
        any::<u32>().prop_map(|mode| VmAction::Stop { mode }),
        any::<bool>().prop_map(|acpi| VmAction::Pause { acpi }),
        Just(VmAction::Suspend),
        Just(VmAction::Reset),
        Just(VmAction::RestartGuest),
        Just(VmAction::Resume),
    ]
}

fn security() -> impl Strategy<Value = VmSecurity> {
    (
        text(),
        any::<bool>(),
        any::<u32>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(owner, is_owner, access_for_others, locked, parental_control)| VmSecurity {
                owner: xml_text(&owner),
                is_owner,
                access_for_others,
                locked,
                parental_control,
            },
        )
}

fn state() -> impl Strategy<Value = VmState> {
    prop_oneof![
        proptest::sample::select(VmState::ALL.to_vec()),
        any::<u32>().prop_map(VmState),
    ]
}

fn info() -> impl Strategy<Value = VmInfo> {
    (
        proptest::option::of(state()),
        any::<bool>(),
        any::<u32>(),
        security(),
        (any::<bool>(), any::<u32>(), any::<bool>()),
    )
        .prop_map(
            |(state, is_invalid, rc, sec, (vnc, addition, waiting))| VmInfo {
                state,
                is_invalid,
                valid_rc: ErrorCode(rc),
                security_xml: sec.to_xml_at(0),
                vnc_server_started: vnc,
                addition_state: addition,
                waiting_for_answer: waiting,
            },
        )
}

fn config() -> impl Strategy<Value = (VmConfig, Option<VmInfo>)> {
    (
        (text(), text(), text(), text(), text()),
        (
            any::<u32>(),
            any::<u32>(),
            any::<bool>(),
            any::<u32>(),
            any::<u32>(),
        ),
        (any::<u32>(), any::<u32>(), any::<u32>()),
        security(),
        proptest::option::of(info()),
    )
        .prop_map(
            |(
                (uuid, name, home, description, host_name),
                (os_type, os_version, is_template, cpu_count, ram_mb),
                (rc, vm_type, disk_mb),
                security,
                info,
            )| {
                (
                    VmConfig {
                        uuid: format!("{{u{uuid}}}"),
                        name,
                        server_uuid: "{s}".into(),
                        home,
                        description,
                        os_type,
                        os_version,
                        is_template,
                        cpu_count,
                        ram_mb,
                        disk_mb,
                        mac: "001C42000001".into(),
                        host_name,
                        created: "2025-01-01 00:00:00".into(),
                        changed: "2025-01-02 00:00:00".into(),
                        started: "2025-01-02 00:00:01".into(),
                        valid_rc: ErrorCode(rc),
                        vm_type,
                        security,
                        info: info.as_ref().map(VmInfo::to_event).unwrap_or_default(),
                    },
                    info,
                )
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn vm_requests_round_trip(uuid in text(), flags in any::<u32>(), action in action()) {
        let request = VmRequest { vm_uuid: format!("{{{uuid}}}"), flags, action };
        let package = request.to_package(Uuid::from_u128(1), Uuid::from_u128(2), &mut ids());
        let back = match Command::parse(&package, true).unwrap() {
            Command::Vm(r) => r,
            other => panic!("{other:?}"),
        };
        let expected = VmRequest { vm_uuid: xml_text(&request.vm_uuid), ..request.clone() };
        prop_assert_eq!(back, expected);
    }

    #[test]
    fn described_requests_carry_their_typed_params(
        t in prop_oneof![1000u32..=1999, 2000u32..=2038, 2043u32..=2185, 2187u32..=2999],
        flags in any::<u32>(),
        params in proptest::collection::vec((
            "[a-z_]{1,20}",
            prop_oneof![
                text().prop_map(SpecValue::String),
                any::<u32>().prop_map(SpecValue::UnsignedInt),
                any::<i32>().prop_map(SpecValue::Integer),
                any::<bool>().prop_map(SpecValue::Boolean),
                any::<i64>().prop_map(SpecValue::Int64),
                any::<u64>().prop_map(SpecValue::UInt64),
                proptest::collection::vec(text(), 0..4).prop_map(SpecValue::StringList),
            ],
        ), 0..8),
    ) {
        let spec = RequestSpec {
            package_type: t,
            flags,
            params: params.into_iter().map(|(n, v)| SpecParam::new(n, v)).collect(),
        };
        let package = spec.to_package(Uuid::from_u128(1), Uuid::from_u128(2), &mut ids()).unwrap();
        prop_assert_eq!(package.header.package_type, t);
        let event = package_event(&package).unwrap();
        prop_assert_eq!(event.uint("proto_command_flags"), Some(flags));
        prop_assert_eq!(event.params.len(), spec.params.len() + 2);
        for (p, e) in spec.params.iter().zip(&event.params[2..]) {
            prop_assert_eq!(&p.name, &e.name);
            let want = match &p.value {
                SpecValue::String(s) => ParamValue::Plain(xml_text(s)),
                SpecValue::UnsignedInt(v) => ParamValue::Plain(v.to_string()),
                SpecValue::Integer(v) => ParamValue::Plain(v.to_string()),
                SpecValue::Boolean(b) => ParamValue::Plain(u8::from(*b).to_string()),
                SpecValue::Int64(v) => ParamValue::Plain(v.to_string()),
                SpecValue::UInt64(v) => ParamValue::Plain(v.to_string()),
                SpecValue::StringList(v) => ParamValue::List(v.iter().map(|s| xml_text(s)).collect()),
            };
            prop_assert_eq!(&e.value, &want);
        }
    }

    #[test]
    fn vm_configurations_round_trip((config, info) in config()) {
        let xml = config.to_xml();
        let s = VmSummary::from_xml(&xml).unwrap();
        prop_assert_eq!(&s.uuid, &xml_text(&config.uuid));
        prop_assert_eq!(&s.name, &xml_text(&config.name));
        prop_assert_eq!(&s.home, &xml_text(&config.home));
        prop_assert_eq!(&s.description, &xml_text(&config.description));
        prop_assert_eq!(&s.host_name, &xml_text(&config.host_name));
        prop_assert_eq!((s.os_type, s.os_version, s.cpu_count, s.ram_mb), (config.os_type, config.os_version, config.cpu_count, config.ram_mb));
        prop_assert_eq!((s.is_template, s.valid_rc, s.vm_type), (config.is_template, config.valid_rc, config.vm_type));
        prop_assert_eq!(s.security.as_ref(), Some(&config.security));
        prop_assert_eq!(s.state(), info.as_ref().and_then(|i| i.state));
        match &info {
            // An info without a state is written as an event without parameters.
            Some(info) if info.state.is_some() => {
                prop_assert_eq!(s.info.as_ref(), Some(info));
                prop_assert_eq!(s.info.as_ref().unwrap().security().unwrap(), info.security().unwrap());
            }
            _ => prop_assert_eq!(s.info.clone(), Some(VmInfo::default())),
        }
        // Through a list reply.
        let list = prl_protocol::commands::vm_list_request(0)
            .to_package(Uuid::from_u128(1), Uuid::from_u128(2), &mut ids()).unwrap();
        let reply = vm_list_reply(&list, Uuid::from_u128(3), Uuid::from_u128(4), &[xml.clone(), xml], &mut ids());
        let vms = vm_list_from_reply(&Reply::parse(&reply).unwrap());
        prop_assert_eq!(vms.len(), 2);
        prop_assert_eq!(vms[1].as_ref().unwrap(), &s);
    }

    #[test]
    fn host_info_round_trips(
        n in any::<[u32; 9]>(),
        (model, os_name, host_name) in (text(), text(), text()),
        vz in any::<bool>(),
    ) {
        let host = HostInfo {
            cpu_count: n[0], cpu_model: model, cpu_speed_mhz: n[1], cpu_mode: n[2],
            vtx_mode: n[3], ram_mb: n[4], os_type: n[5], os_major: n[6], os_minor: n[7],
            os_sub_minor: n[8], os_name, host_name, vz_running: vz, raw: String::new(),
        };
        let xml = host.to_xml();
        let back = HostInfo::from_xml(&xml).unwrap();
        let expected = HostInfo {
            cpu_model: xml_text(&host.cpu_model),
            os_name: xml_text(&host.os_name),
            host_name: xml_text(&host.host_name),
            raw: xml,
            ..host
        };
        prop_assert_eq!(back, expected);
    }

    #[test]
    fn vm_events_round_trip(uuid in "[a-z0-9{}-]{1,40}", state in state(), t in 0usize..5) {
        let package = match t {
            0 => vm_state_event(&uuid, state, Uuid::nil(), Uuid::nil(), &mut ids()),
            _ => vm_event_package([100_002, 100_005, 100_006, 100_026][t - 1], &uuid, &[], Uuid::nil(), Uuid::nil(), &mut ids()),
        };
        let e = VmEvent::from_package(&package).unwrap().unwrap();
        prop_assert_eq!(&e.vm_uuid, &uuid);
        let kind = [
            VmEventKind::StateChanged(state), VmEventKind::ConfigChanged, VmEventKind::Added,
            VmEventKind::Deleted, VmEventKind::Unregistered,
        ][t];
        prop_assert_eq!(e.kind, kind);
    }

    #[test]
    fn document_readers_never_panic(s in any::<String>(), tail in text()) {
        let _ = VmSummary::from_xml(&s);
        let _ = HostInfo::from_xml(&s);
        let _ = VmSecurity::from_xml(&s);
        // Mangled real documents: cut anywhere, text appended.
        let real = include_str!("data/ops-wire/vm-config-minimal-with-state.xml");
        let cut = s.len() % real.len();
        if let Some(prefix) = real.get(..cut) {
            let _ = VmSummary::from_xml(&format!("{prefix}{tail}"));
        }
    }

    #[test]
    fn event_readers_never_panic(t in prop_oneof![Just(100_001u32), Just(100_056), any::<u32>()], values in proptest::collection::vec((text(), text()), 0..6)) {
        let mut e = Event::new(t);
        for (n, v) in values {
            e.add_string(n, v);
        }
        let _ = VmEvent::from_event(&e);
        let _ = VmInfo::from_event(&e);
    }

    #[test]
    fn reply_views_never_panic(code in any::<u32>(), params in proptest::collection::vec(text(), 0..4)) {
        let request = RequestSpec::new(2029, 0).to_package(Uuid::nil(), Uuid::nil(), &mut ids()).unwrap();
        let refs: Vec<&str> = params.iter().map(String::as_str).collect();
        let reply = prl_protocol::commands::simple_response(&request, Uuid::nil(), Uuid::nil(), ErrorCode(code), &refs, &mut ids());
        let view = ReplyView::from_reply(&Reply::parse(&reply).unwrap());
        prop_assert_eq!(view.code, code);
        prop_assert_eq!(view.standard_params.len(), params.len());
    }

    #[test]
    fn scopes_are_nested(t in any::<u32>()) {
        let allowed: Vec<bool> = CommandScope::ALL.iter().map(|s| s.allows(t)).collect();
        prop_assert!(allowed[2]);
        prop_assert!(!allowed[0] || allowed[1]);
        prop_assert_eq!(CommandScope::required_for(t).allows(t), true);
    }
}
