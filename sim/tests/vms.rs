//! Host and VM operations: the inventory as the VM list and host info show it, the state
//! machine (transition times, the old state during a transition, one state event and the reply
//! at the end, per-VM order), the real error codes (and the duplicate reply of forked
//! failures), access, cancel, events to every session that may see a VM, and the knobs.
//! Every wait is on a package or a condition; transitions are short.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use prl_protocol::codes::{cmd, flags, ErrorCode, VmState};
use prl_protocol::commands::{
    package_event, vm_info_request, vm_list_from_reply, vm_list_request, HostInfo, Reply,
    RequestSpec, SpecValue, VmEvent, VmEventKind, VmInfo, VmRequest, VmSummary,
};
use prl_protocol::handshake::SecurityLevel;
use prl_protocol::package::Package;
use prl_protocol::Uuid;
use prl_sim::{Access, Inventory, SimConfig, Simulator, UserDb, VmSpec, VmTiming};

const ALICE: &str = "alice";
const BOB: &str = "bob";
const PW: &str = "pw";

fn vm(name: &str, state: VmState) -> VmSpec {
    VmSpec {
        state,
        ..VmSpec::new(name)
    }
}

/// A simulator with alice and bob and these VMs, every operation taking `ms`.
fn config_with(vms: Vec<VmSpec>, ms: u64) -> SimConfig {
    let mut c = config();
    for u in [ALICE, BOB] {
        c.users
            .add(UserDb::parse_spec(&format!("{u}:{PW}")).unwrap())
            .unwrap();
    }
    c.inventory = Inventory {
        host: Inventory::demo().host,
        vms,
    };
    c.vm_behaviour.timing = VmTiming::all(Duration::from_millis(ms));
    c
}

fn lab() -> Vec<VmSpec> {
    vec![
        vm("stopped", VmState::STOPPED),
        vm("running", VmState::RUNNING),
        vm("paused", VmState::PAUSED),
        vm("suspended", VmState::SUSPENDED),
        VmSpec {
            owner: ALICE.into(),
            others: Access::None,
            ..vm("alices", VmState::STOPPED)
        },
        VmSpec {
            template: true,
            ..vm("template", VmState::STOPPED)
        },
    ]
}

fn id(name: &str) -> String {
    VmSpec::new(name).uuid_text()
}

async fn logged_in(sim: &Simulator, user: &str) -> Client {
    let mut c = Client::connect(sim, SecurityLevel::Normal).await.unwrap();
    let r = c.login(user, PW, "").await;
    assert_eq!(r.code, ErrorCode::SUCCESS);
    c
}

fn package(c: &Client, spec: &RequestSpec) -> Package {
    spec.to_package(Uuid::new_v4(), c.me(), &mut Uuid::new_v4)
        .unwrap()
}

fn op(c: &Client, request: VmRequest) -> Package {
    request.to_package(Uuid::new_v4(), c.me(), &mut Uuid::new_v4)
}

async fn list(c: &mut Client) -> Vec<VmSummary> {
    let p = package(c, &vm_list_request(0));
    let reply = c.request(p).await;
    assert_eq!(reply.code, ErrorCode::SUCCESS);
    vm_list_from_reply(&reply)
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

async fn state_of(c: &mut Client, uuid: &str) -> Result<VmState, ErrorCode> {
    let p = package(c, &vm_info_request(uuid));
    let reply = c.request(p).await;
    if reply.code.is_error() {
        assert!(reply.error_event().is_none(), "2062 errors are simple");
        return Err(reply.code);
    }
    Ok(VmInfo::from_reply(&reply).unwrap().state.unwrap())
}

/// The VM events in `packages`.
fn vm_events(packages: &[Package]) -> Vec<VmEvent> {
    packages
        .iter()
        .filter(|p| p.header.package_type == cmd::VM_EVENT)
        .filter_map(|p| VmEvent::from_package(p).unwrap())
        .collect()
}

/// Waits for the next VM event on `c` (other packages stay in the backlog).
async fn next_vm_event(c: &mut Client) -> VmEvent {
    if let Some(i) = c
        .backlog
        .iter()
        .position(|p| VmEvent::from_package(p).ok().flatten().is_some())
    {
        return VmEvent::from_package(&c.backlog.remove(i))
            .unwrap()
            .unwrap();
    }
    loop {
        let p = c.next().await.unwrap().unwrap();
        if let Some(e) = VmEvent::from_package(&p).unwrap() {
            return e;
        }
        c.backlog.push(p);
    }
}

/// Replies to `id` still in the backlog (after the first was taken).
fn more_replies_to(c: &Client, id: Uuid) -> Vec<Reply> {
    c.backlog
        .iter()
        .filter(|p| is_reply_to(p, id))
        .map(|p| Reply::parse(p).unwrap())
        .collect()
}

/// A round trip that everything queued before it on this connection precedes.
async fn round_trip(c: &mut Client) {
    let p = package(
        c,
        &RequestSpec::new(cmd::GET_VM_INFO, 0).with(
            "basic_vm_cmd_vm_uuid",
            SpecValue::String("{00000000-0000-4000-8000-000000000000}".into()),
        ),
    );
    c.request(p).await;
}

#[tokio::test]
async fn the_default_inventory_and_the_host_as_a_client_sees_them() {
    let sim = start(config()).await;
    let mut c = Client::connect(&sim, SecurityLevel::High).await.unwrap();
    c.login_ok().await;
    let vms = list(&mut c).await;
    assert!(vms.len() >= 3, "{}", vms.len());
    assert!(vms.iter().any(|v| v.state() == Some(VmState::RUNNING)));
    assert!(vms.iter().any(|v| v.state() == Some(VmState::STOPPED)));
    for v in &vms {
        let uuid = prl_protocol::parse_uuid(&v.uuid).unwrap();
        assert_eq!(Some(v.state().unwrap()), sim.vm_state(&uuid));
        assert!(!v.name.is_empty() && v.cpu_count >= 1 && v.ram_mb >= 512);
        assert!(matches!(v.os_type, 8 | 9), "{}", v.os_type);
        assert_eq!(v.valid_rc, ErrorCode::SUCCESS);
    }
    let p = package(&c, &prl_protocol::commands::host_info_request());
    let host = HostInfo::from_reply(&c.request(p).await).unwrap();
    assert!(host.cpu_count >= 1 && host.ram_mb > 0);
    assert_eq!(
        host.host_name, "",
        "a real Linux service reports no host name"
    );
    assert_eq!(host.os_type, 1);
    // The flags of PrlSrv_GetVmListEx: state-only info; only containers (none).
    let p = package(&c, &vm_list_request(flags::PGVLF_GET_STATE_INFO));
    let states = vm_list_from_reply(&c.request(p).await);
    let info = states[0].as_ref().unwrap().info.clone().unwrap();
    assert_eq!(info.state, vms[0].state());
    assert!(info.security_xml.is_empty());
    let p = package(&c, &vm_list_request(flags::PGVLF_GET_ONLY_CT));
    assert!(c.request(p).await.standard_params().is_empty());
}

#[tokio::test]
async fn a_start_reports_the_old_state_until_its_event_and_reply() {
    let sim = start(config_with(lab(), 1_000)).await;
    let mut c = logged_in(&sim, ALICE).await;
    let start = op(&c, VmRequest::start(&id("stopped")));
    let job = start.header.uuid;
    c.conn.send(start).await.unwrap();
    // During the transition (400 ms) getVmState still says stopped and nothing came yet.
    assert_eq!(state_of(&mut c, &id("stopped")).await, Ok(VmState::STOPPED));
    assert!(c.backlog.iter().all(|p| !is_reply_to(p, job)));
    assert!(vm_events(&c.backlog).is_empty());
    // Then one state event, then the reply (the default order).
    let reply = c.reply_to(job).await;
    assert_eq!((reply.code, reply.opcode), (ErrorCode::SUCCESS, 1001));
    assert!(reply.standard_params().is_empty());
    let events = vm_events(&c.backlog);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].vm_uuid, id("stopped"));
    assert_eq!(events[0].kind, VmEventKind::StateChanged(VmState::RUNNING));
    let event = c
        .backlog
        .iter()
        .find(|p| p.header.package_type == cmd::VM_EVENT)
        .unwrap();
    let e = package_event(event).unwrap();
    assert_eq!((e.code, e.issuer_type), (100_000, 1));
    assert!(event.header.parent_uuid.is_nil() && event.header.receiver_uuid.is_nil());
    assert_eq!(state_of(&mut c, &id("stopped")).await, Ok(VmState::RUNNING));
}

#[tokio::test]
async fn every_allowed_transition_ends_in_its_state_with_one_event() {
    let sim = start(config_with(lab(), 5)).await;
    let mut c = logged_in(&sim, ALICE).await;
    let steps: Vec<(VmRequest, &str, VmState)> = vec![
        (
            VmRequest::pause(&id("running"), false),
            "running",
            VmState::PAUSED,
        ),
        (
            VmRequest::resume(&id("running")),
            "running",
            VmState::RUNNING,
        ),
        (
            VmRequest::suspend(&id("running")),
            "running",
            VmState::SUSPENDED,
        ),
        (
            VmRequest::start(&id("running")),
            "running",
            VmState::RUNNING,
        ),
        (
            VmRequest::stop(&id("running"), true),
            "running",
            VmState::STOPPED,
        ),
        (
            VmRequest::start_ex(&id("running"), flags::PSM_VM_START, 0),
            "running",
            VmState::RUNNING,
        ),
        (
            VmRequest::stop(&id("running"), false),
            "running",
            VmState::STOPPED,
        ),
        (
            VmRequest::suspend(&id("paused")),
            "paused",
            VmState::SUSPENDED,
        ),
        (
            VmRequest::resume(&id("suspended")),
            "suspended",
            VmState::RUNNING,
        ),
        (
            VmRequest::pause(&id("suspended"), false),
            "suspended",
            VmState::PAUSED,
        ),
        // Reset of a paused VM runs it again.
        (
            VmRequest::reset(&id("suspended")),
            "suspended",
            VmState::RUNNING,
        ),
    ];
    for (request, vm, want) in steps {
        let reply = c.request(op(&c, request.clone())).await;
        assert_eq!(reply.code, ErrorCode::SUCCESS, "{request:?}");
        let e = next_vm_event(&mut c).await;
        assert_eq!(
            (e.vm_uuid.as_str(), e.kind),
            (id(vm).as_str(), VmEventKind::StateChanged(want)),
            "{request:?}"
        );
        assert_eq!(state_of(&mut c, &id(vm)).await, Ok(want));
    }
    // Reset and restart of a running VM: answered, no state event.
    for request in [
        VmRequest::reset(&id("suspended")),
        VmRequest::restart(&id("suspended")),
    ] {
        assert_eq!(c.request(op(&c, request)).await.code, ErrorCode::SUCCESS);
    }
    round_trip(&mut c).await;
    let events = vm_events(&c.backlog);
    assert!(events.is_empty(), "{events:?}");
}

#[tokio::test]
async fn refused_transitions_get_the_services_codes_and_duplicates() {
    let sim = start(config_with(lab(), 5)).await;
    let mut c = logged_in(&sim, ALICE).await;
    let unknown = "{00000000-0000-4000-8000-0000000000ff}";
    let cases: Vec<(VmRequest, ErrorCode, &str, bool)> = vec![
        (
            VmRequest::pause(&id("stopped"), false),
            ErrorCode::FAILURE,
            "VM pause from a non-running state is impossible",
            false,
        ),
        (
            VmRequest::start(&id("running")),
            ErrorCode::FAILURE,
            "VM is already running",
            false,
        ),
        (
            VmRequest::stop(&id("stopped"), false),
            ErrorCode::INVALID_ACTION_REQUESTED,
            "Requested operation is not valid: domain is not running",
            true,
        ),
        (
            VmRequest::stop(&id("suspended"), true),
            ErrorCode::DISP_VM_IS_NOT_RUNNING,
            "",
            true,
        ),
        (
            VmRequest::suspend(&id("stopped")),
            ErrorCode::INVALID_ACTION_REQUESTED,
            "Requested operation is not valid: domain is not running",
            true,
        ),
        (
            VmRequest::reset(&id("stopped")),
            ErrorCode::INVALID_ACTION_REQUESTED,
            "Requested operation is not valid: domain is not running",
            false,
        ),
        (
            VmRequest::restart(&id("suspended")),
            ErrorCode::INVALID_ACTION_REQUESTED,
            "Requested operation is not valid: domain is not running",
            false,
        ),
        (
            VmRequest::start(&id("template")),
            ErrorCode::CANT_TO_START_VM_TEMPLATE,
            "",
            false,
        ),
        (
            VmRequest::start(unknown),
            ErrorCode::VM_UUID_NOT_FOUND,
            "",
            true,
        ),
        (
            VmRequest::stop(unknown, false),
            ErrorCode::UNINITIALIZED,
            "Domain not found",
            true,
        ),
        (
            VmRequest::stop(unknown, true),
            ErrorCode::VM_GET_STATUS_FAILED,
            "",
            true,
        ),
        (
            VmRequest::pause(unknown, false),
            ErrorCode::FAILURE,
            "VM pause from a non-running state is impossible",
            false,
        ),
        (
            VmRequest::reset(unknown),
            ErrorCode::VM_GET_STATUS_FAILED,
            "",
            false,
        ),
        // The service looks a uuid up as given: upper case is another, unknown uuid.
        (
            VmRequest::start(&id("stopped").to_uppercase()),
            ErrorCode::VM_UUID_NOT_FOUND,
            "",
            true,
        ),
    ];
    for (request, code, details, duplicated) in cases {
        let p = op(&c, request.clone());
        let job = p.header.uuid;
        let reply = c.request(p).await;
        assert_eq!(reply.code, code, "{request:?}");
        assert_eq!(
            reply.error_details().as_deref(),
            Some(details),
            "{request:?}"
        );
        // Whatever the operation sent is queued before a later request's reply (operations
        // of one VM run in order; an unknown VM's are answered at once).
        // (A restart changes no state, whatever the VM's.)
        let again = op(&c, VmRequest::restart(&request.vm_uuid));
        c.request(again).await;
        let more = more_replies_to(&c, job);
        if duplicated {
            assert_eq!(more.len(), 1, "{request:?}");
            assert_eq!(more[0].code, ErrorCode::FAILURE);
            assert_eq!(more[0].error_details().as_deref(), Some(""));
        } else {
            assert!(more.is_empty(), "{request:?}: {more:?}");
        }
        c.backlog.clear();
    }
    // No state changed, no event was sent.
    for (name, state) in [
        ("stopped", VmState::STOPPED),
        ("running", VmState::RUNNING),
        ("suspended", VmState::SUSPENDED),
    ] {
        assert_eq!(state_of(&mut c, &id(name)).await, Ok(state));
    }
    // Routing: 1009 and unhandled VM commands, malformed VM commands; 2062 of an unknown VM.
    for spec in [
        VmRequest {
            action: prl_protocol::commands::VmAction::Resume,
            ..VmRequest::start(&id("paused"))
        }
        .to_spec(),
        RequestSpec::new(1003, 0).with("basic_vm_cmd_vm_uuid", SpecValue::String(id("paused"))),
        RequestSpec::new(1001, 0),
    ] {
        let reply = c.request(package(&c, &spec)).await;
        assert_eq!(reply.code, ErrorCode::UNRECOGNIZED_REQUEST, "{spec:?}");
        assert!(reply.error_event().is_none());
    }
    assert_eq!(
        state_of(&mut c, unknown).await,
        Err(ErrorCode::VM_UUID_NOT_FOUND)
    );
    assert_eq!(
        c.request(package(&c, &RequestSpec::new(2062, 0)))
            .await
            .code,
        ErrorCode::FAILURE
    );
}

#[tokio::test]
async fn access_is_checked_where_the_service_checks_it_and_events_follow_it() {
    let sim = start(config_with(lab(), 5)).await;
    let mut alice = logged_in(&sim, ALICE).await;
    let mut bob = logged_in(&sim, BOB).await;
    // Bob lists alice's VM as an inaccessible entry: no state, ValidRc set.
    let entry = list(&mut bob)
        .await
        .into_iter()
        .find(|v| v.uuid == id("alices"))
        .unwrap();
    assert_eq!(entry.valid_rc, ErrorCode::ACCESS_TO_VM_DENIED);
    assert_eq!(entry.name, "alices");
    assert_eq!(entry.state(), None);
    let mine = list(&mut alice)
        .await
        .into_iter()
        .find(|v| v.uuid == id("alices"))
        .unwrap();
    assert_eq!(mine.state(), Some(VmState::STOPPED));
    assert!(mine.security.unwrap().is_owner);
    // 2062, start and suspend check read access; the others do not.
    assert_eq!(
        state_of(&mut bob, &id("alices")).await,
        Err(ErrorCode::ACCESS_TO_VM_DENIED)
    );
    let p = op(&bob, VmRequest::start(&id("alices")));
    let job = p.header.uuid;
    assert_eq!(bob.request(p).await.code, ErrorCode::ACCESS_TO_VM_DENIED);
    assert_eq!(
        bob.reply_to(job).await.code,
        ErrorCode::FAILURE,
        "the duplicate"
    );
    // Alice starts it: only alice hears about it.
    assert_eq!(
        alice
            .request(op(&alice, VmRequest::start(&id("alices"))))
            .await
            .code,
        ErrorCode::SUCCESS
    );
    let e = next_vm_event(&mut alice).await;
    assert_eq!(e.kind, VmEventKind::StateChanged(VmState::RUNNING));
    round_trip(&mut bob).await;
    assert!(
        vm_events(&bob.backlog).is_empty(),
        "bob may not see alice's VM"
    );
    // Bob may stop it (Stop has no access check), and again only alice is told.
    assert_eq!(
        bob.request(op(&bob, VmRequest::stop(&id("alices"), false)))
            .await
            .code,
        ErrorCode::SUCCESS
    );
    assert_eq!(
        next_vm_event(&mut alice).await.kind,
        VmEventKind::StateChanged(VmState::STOPPED)
    );
    round_trip(&mut bob).await;
    assert!(vm_events(&bob.backlog).is_empty());
    // A shared VM's events reach both sessions, the one that asked included.
    assert_eq!(
        bob.request(op(&bob, VmRequest::start(&id("stopped"))))
            .await
            .code,
        ErrorCode::SUCCESS
    );
    for c in [&mut alice, &mut bob] {
        let e = next_vm_event(c).await;
        assert_eq!(
            (e.vm_uuid.clone(), e.kind),
            (id("stopped"), VmEventKind::StateChanged(VmState::RUNNING))
        );
    }
}

#[tokio::test]
async fn a_cancelled_start_is_not_a_task_and_completes() {
    let sim = start(config_with(lab(), 300)).await;
    let mut c = logged_in(&sim, ALICE).await;
    let start = op(&c, VmRequest::start(&id("stopped")));
    let job = start.header.uuid;
    c.conn.send(start).await.unwrap();
    let cancel = c.one_str(cmd::USER_CANCEL_OPERATION, &prl_protocol::uuid_string(&job));
    assert_eq!(c.request(cancel).await.code, ErrorCode::TASK_NOT_FOUND);
    assert_eq!(c.reply_to(job).await.code, ErrorCode::SUCCESS);
    assert_eq!(
        vm_events(&c.backlog)[0].kind,
        VmEventKind::StateChanged(VmState::RUNNING)
    );
}

#[tokio::test]
async fn operations_on_one_vm_run_in_order() {
    let sim = start(config_with(lab(), 100)).await;
    let mut c = logged_in(&sim, ALICE).await;
    let start = op(&c, VmRequest::start(&id("stopped")));
    let pause = op(&c, VmRequest::pause(&id("stopped"), false));
    let stop = op(&c, VmRequest::stop(&id("stopped"), false));
    let jobs = [start.header.uuid, pause.header.uuid, stop.header.uuid];
    for p in [start, pause, stop] {
        c.conn.send(p).await.unwrap();
    }
    // Each waits for the one before: the pause finds the VM running, the stop finds it paused.
    let mut replies = Vec::new();
    while replies.len() < 3 {
        let p = c.next().await.unwrap().unwrap();
        if let Some(i) = jobs.iter().position(|j| is_reply_to(&p, *j)) {
            replies.push((i, Reply::parse(&p).unwrap().code));
        } else {
            c.backlog.push(p);
        }
    }
    assert_eq!(
        replies,
        [
            (0, ErrorCode::SUCCESS),
            (1, ErrorCode::SUCCESS),
            (2, ErrorCode::SUCCESS)
        ]
    );
    let states: Vec<VmEventKind> = vm_events(&c.backlog).into_iter().map(|e| e.kind).collect();
    assert_eq!(
        states,
        [
            VmEventKind::StateChanged(VmState::RUNNING),
            VmEventKind::StateChanged(VmState::PAUSED),
            VmEventKind::StateChanged(VmState::STOPPED)
        ]
    );
}

#[tokio::test]
async fn the_knobs_transient_states_reply_first_and_single_replies() {
    let mut config = config_with(lab(), 1_000);
    config.vm_behaviour.transient_states = true;
    config.vm_behaviour.reply_before_event = true;
    config.vm_behaviour.duplicate_replies = false;
    let sim = start(config).await;
    let mut c = logged_in(&sim, ALICE).await;
    let start = op(&c, VmRequest::start(&id("paused")));
    let job = start.header.uuid;
    c.conn.send(start).await.unwrap();
    // The transient state is announced and reported during the transition.
    assert_eq!(
        next_vm_event(&mut c).await.kind,
        VmEventKind::StateChanged(VmState::CONTINUING)
    );
    assert_eq!(
        state_of(&mut c, &id("paused")).await,
        Ok(VmState::CONTINUING)
    );
    // The reply comes before the final event.
    let reply = loop {
        let p = c.next().await.unwrap().unwrap();
        assert!(
            VmEvent::from_package(&p).unwrap().is_none(),
            "the event came first"
        );
        if is_reply_to(&p, job) {
            break Reply::parse(&p).unwrap();
        }
    };
    assert_eq!(reply.code, ErrorCode::SUCCESS);
    assert_eq!(
        next_vm_event(&mut c).await.kind,
        VmEventKind::StateChanged(VmState::RUNNING)
    );
    // One reply to a forked failure.
    let p = op(
        &c,
        VmRequest::start("{00000000-0000-4000-8000-0000000000ee}"),
    );
    let job = p.header.uuid;
    assert_eq!(c.request(p).await.code, ErrorCode::VM_UUID_NOT_FOUND);
    round_trip(&mut c).await;
    assert!(more_replies_to(&c, job).is_empty());
}

#[tokio::test]
async fn registering_deleting_editing_and_outside_changes_send_their_events() {
    let sim = start(config_with(lab(), 5)).await;
    let mut alice = logged_in(&sim, ALICE).await;
    let mut bob = logged_in(&sim, BOB).await;
    let new = VmSpec {
        owner: ALICE.into(),
        others: Access::None,
        ..vm("new", VmState::STOPPED)
    };
    let uuid = new.uuid;
    assert!(sim.add_vm(new.clone()).await);
    assert!(!sim.add_vm(new).await, "taken");
    let e = next_vm_event(&mut alice).await;
    assert_eq!((e.vm_uuid, e.kind), (id("new"), VmEventKind::Added));
    assert!(sim.update_vm(&uuid, |s| s.ram_mb = 4096).await);
    assert_eq!(
        next_vm_event(&mut alice).await.kind,
        VmEventKind::ConfigChanged
    );
    let listed = list(&mut alice)
        .await
        .into_iter()
        .find(|v| v.name == "new")
        .unwrap();
    assert_eq!(listed.ram_mb, 4096);
    assert!(sim.set_vm_state(&uuid, VmState::RUNNING).await);
    assert_eq!(
        next_vm_event(&mut alice).await.kind,
        VmEventKind::StateChanged(VmState::RUNNING)
    );
    round_trip(&mut bob).await;
    assert!(
        vm_events(&bob.backlog).is_empty(),
        "bob may not see the new VM"
    );
    // A deletion reaches every session.
    assert!(sim.delete_vm(&uuid).await);
    assert!(!sim.delete_vm(&uuid).await);
    for c in [&mut alice, &mut bob] {
        let e = next_vm_event(c).await;
        assert_eq!(
            (e.vm_uuid.clone(), e.kind),
            (id("new"), VmEventKind::Deleted)
        );
    }
    assert_eq!(sim.vm_state(&uuid), None);
    let p = package(&alice, &vm_info_request(&id("new")));
    assert_eq!(alice.request(p).await.code, ErrorCode::VM_UUID_NOT_FOUND);
}

#[tokio::test]
async fn operations_are_bounded_per_vm() {
    let mut config = config_with(lab(), 2_000);
    config.vm_behaviour.max_queued_per_vm = 2;
    let sim = start(config).await;
    let mut c = logged_in(&sim, ALICE).await;
    let first = op(&c, VmRequest::start(&id("stopped")));
    let second = op(&c, VmRequest::pause(&id("stopped"), false));
    c.conn.send(first).await.unwrap();
    c.conn.send(second).await.unwrap();
    let third = op(&c, VmRequest::stop(&id("stopped"), false));
    let reply = c.request(third).await;
    assert_eq!(reply.code, ErrorCode::VM_IS_EXCLUSIVELY_LOCKED);
    // Another VM is not held up.
    let other = c
        .request(op(&c, VmRequest::pause(&id("paused"), false)))
        .await;
    assert_eq!(other.code, ErrorCode::FAILURE);
}

/// A list reply of many MiB (the sim accepts only small requests: 1 MiB).
#[tokio::test]
async fn hundreds_of_vms_are_listed_in_one_reply() {
    let vms: Vec<VmSpec> = (0..300)
        .map(|i| vm(&format!("vm-{i:04}"), VmState::STOPPED))
        .collect();
    let sim = start(config_with(vms, 5)).await;
    let mut client_config = client_config(SecurityLevel::Normal);
    client_config.stream.limits.max_package_len = 64 << 20;
    let mut c = Client::connect_with(&sim, client_config).await.unwrap();
    assert_eq!(c.login(ALICE, PW, "").await.code, ErrorCode::SUCCESS);
    let p = package(&c, &vm_list_request(0));
    let reply = c.request(p).await;
    let size: usize = reply.standard_params().iter().map(|s| s.len()).sum();
    assert!(size > 4 << 20, "{size} bytes");
    let listed: Vec<VmSummary> = vm_list_from_reply(&reply)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(listed.len(), 300);
    assert_eq!(listed[299].name, "vm-0299");
    assert!(listed.iter().all(|v| v.state() == Some(VmState::STOPPED)));
}
