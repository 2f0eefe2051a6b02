//! The client session with host and VM commands: described requests as jobs, the first reply
//! ends a job, late and duplicate replies are dropped, cancel is a job of its own, VM events
//! reach the caller.
#![allow(clippy::unwrap_used)]

use prl_protocol::codes::{cmd, ErrorCode, VmState};
use prl_protocol::commands::{
    error_with_details, forked_failure_replies, host_info_request, simple_response, vm_state_event,
    Command, LoginRequest, Password, RequestSpec, VmEvent, VmEventKind, VmRequest,
};
use prl_protocol::package::Package;
use prl_protocol::session::{ClientSession, JobKind, JobResult, SessionConfig, SessionEvent};
use prl_protocol::Uuid;

const VM: &str = "{0c9d2b3e-7f6a-4e1d-8c5b-2a3f4e5d6c7b}";

struct F {
    session: ClientSession,
    n: u128,
}

impl F {
    fn logged_in() -> F {
        let mut f = F {
            session: ClientSession::new(SessionConfig {
                heartbeat_interval_ms: None,
            }),
            n: 0,
        };
        f.session.connecting(0, 1000).unwrap();
        f.session.connected(1, Uuid::from_u128(0xc0), true).unwrap();
        let job = f.id();
        let login = LoginRequest {
            user: "u".into(),
            password: Password::new("p"),
            prev_session_uuid: String::new(),
            flags: 0,
        };
        f.session.login(job, &login, &mut counter()).unwrap();
        let request = f.sent().remove(0);
        let mut ids = counter();
        let event = prl_protocol::commands::login_event(
            "{00000000-0000-0000-0000-0000000000c0}",
            &Default::default(),
            &[],
            &mut ids,
        );
        let reply = prl_protocol::commands::login_reply(
            &request,
            Uuid::from_u128(0x5e),
            Uuid::from_u128(0x5f),
            &event,
            true,
            &mut ids,
        );
        f.session.handle_package(reply).unwrap();
        f.events();
        f
    }

    fn id(&mut self) -> Uuid {
        self.n += 1;
        Uuid::from_u128(0x1000 + self.n)
    }

    fn sent(&mut self) -> Vec<Package> {
        std::iter::from_fn(|| self.session.poll_transmit()).collect()
    }

    fn events(&mut self) -> Vec<SessionEvent> {
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }

    fn request(&mut self, spec: &RequestSpec) -> (Uuid, Package) {
        let job = self.id();
        self.session.request(job, spec, &mut counter()).unwrap();
        (job, self.sent().remove(0))
    }
}

fn counter() -> impl FnMut() -> Uuid {
    let mut n = 0x9000u128;
    move || {
        n += 1;
        Uuid::from_u128(n)
    }
}

fn finished(events: &[SessionEvent]) -> Vec<(Uuid, JobKind, Result<ErrorCode, ErrorCode>)> {
    events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::JobFinished { job, kind, result } => Some((
                *job,
                *kind,
                match result {
                    JobResult::Done(r) => Ok(r.code),
                    JobResult::Failed { code, .. } => Err(*code),
                    JobResult::LoggedIn(_) => Ok(ErrorCode::SUCCESS),
                },
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn a_described_command_is_a_job_ended_by_its_reply() {
    let mut f = F::logged_in();
    let (job, request) = f.request(&host_info_request());
    assert_eq!(request.header.package_type, cmd::USER_GET_HOST_HW_INFO);
    assert_eq!(request.header.sender_uuid, Uuid::from_u128(0xc0));
    assert_eq!(
        Command::parse(&request, true).unwrap(),
        Command::GetHostInfo { flags: 0 }
    );
    assert!(f
        .session
        .pending_jobs()
        .any(|(j, k)| j == job && k == JobKind::Command(2051)));
    let reply = simple_response(
        &request,
        Uuid::from_u128(0x5e),
        Uuid::from_u128(0x60),
        ErrorCode::SUCCESS,
        &[],
        &mut counter(),
    );
    f.session.handle_package(reply).unwrap();
    assert_eq!(
        finished(&f.events()),
        [(job, JobKind::Command(2051), Ok(ErrorCode::SUCCESS))]
    );
    // Descriptions are checked; login is the session's own call.
    let next = f.id();
    let e = f
        .session
        .request(next, &RequestSpec::new(cmd::USER_LOGIN, 0), &mut counter())
        .unwrap_err();
    assert_eq!(e.kind(), "invalid_request");
}

#[test]
fn the_first_reply_counts_and_the_duplicate_is_dropped() {
    let mut f = F::logged_in();
    let (job, start) = f.request(&VmRequest::start("{unknown}").to_spec());
    let [first, second] = forked_failure_replies(
        &start,
        Uuid::from_u128(0x5e),
        [Uuid::from_u128(1), Uuid::from_u128(2)],
        ErrorCode::VM_UUID_NOT_FOUND,
        "",
        &mut counter(),
    );
    f.session.handle_package(first).unwrap();
    f.session.handle_package(second).unwrap();
    let events = f.events();
    assert_eq!(
        finished(&events),
        [(
            job,
            JobKind::Command(1001),
            Err(ErrorCode::VM_UUID_NOT_FOUND)
        )]
    );
    assert_eq!(events.len(), 1, "{events:?}");
    // The error event's Details reach the caller.
    let (_, pause) = f.request(&VmRequest::pause(VM, false).to_spec());
    let reply = error_with_details(
        &pause,
        Uuid::from_u128(0x5e),
        Uuid::from_u128(3),
        ErrorCode::FAILURE,
        "VM pause from a non-running state is impossible",
        &mut counter(),
    );
    f.session.handle_package(reply).unwrap();
    let events = f.events();
    let Some(SessionEvent::JobFinished {
        result: JobResult::Failed {
            error: Some(error), ..
        },
        ..
    }) = events.first()
    else {
        panic!("{events:?}")
    };
    assert_eq!(
        error.string("Details"),
        Some("VM pause from a non-running state is impossible")
    );
}

#[test]
fn a_cancelled_start_fails_at_once_its_cancel_is_answered_and_the_start_goes_on() {
    let mut f = F::logged_in();
    let (job, start) = f.request(&VmRequest::start(VM).to_spec());
    let cancel_job = f.id();
    f.session.cancel(job, cancel_job, &mut counter()).unwrap();
    let cancel = f.sent().remove(0);
    assert_eq!(
        Command::parse(&cancel, true).unwrap(),
        Command::Cancel {
            job_uuid: prl_protocol::uuid_string(&job)
        }
    );
    assert_eq!(
        finished(&f.events()),
        [(
            job,
            JobKind::Command(1001),
            Err(ErrorCode::OPERATION_WAS_CANCELED)
        )]
    );
    // The service: the cancel finds no task; the start completes, its event comes.
    let s = Uuid::from_u128(0x5e);
    let no_task = simple_response(
        &cancel,
        s,
        Uuid::from_u128(4),
        ErrorCode::TASK_NOT_FOUND,
        &[],
        &mut counter(),
    );
    let event = vm_state_event(VM, VmState::RUNNING, s, Uuid::from_u128(5), &mut counter());
    let done = simple_response(
        &start,
        s,
        Uuid::from_u128(6),
        ErrorCode::SUCCESS,
        &[],
        &mut counter(),
    );
    for p in [no_task, event, done] {
        f.session.handle_package(p).unwrap();
    }
    let events = f.events();
    assert_eq!(
        finished(&events),
        [(cancel_job, JobKind::Cancel, Err(ErrorCode::TASK_NOT_FOUND))]
    );
    let vm_events: Vec<VmEvent> = events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::ServiceEvent { event: Some(e), .. } => VmEvent::from_event(e).unwrap(),
            _ => None,
        })
        .collect();
    assert_eq!(vm_events.len(), 1);
    assert_eq!(
        vm_events[0].kind,
        VmEventKind::StateChanged(VmState::RUNNING)
    );
    // Nothing else: the late start reply was dropped.
    assert_eq!(events.len(), 2, "{events:?}");
}

#[test]
fn ended_jobs_are_remembered_in_a_bounded_window() {
    let mut f = F::logged_in();
    let (first_job, first) = f.request(&VmRequest::reset(VM).to_spec());
    let reply = |p: &Package, n| {
        simple_response(
            p,
            Uuid::from_u128(0x5e),
            Uuid::from_u128(n),
            ErrorCode::SUCCESS,
            &[],
            &mut counter(),
        )
    };
    f.session.handle_package(reply(&first, 1)).unwrap();
    for i in 0..prl_protocol::session::FINISHED_JOBS_KEPT {
        let (_, p) = f.request(&VmRequest::reset(VM).to_spec());
        f.session.handle_package(reply(&p, 10 + i as u128)).unwrap();
    }
    f.events();
    // The first job fell out of the window: a reply to it is an unmatched service package.
    f.session.handle_package(reply(&first, 2)).unwrap();
    let events = f.events();
    assert!(
        matches!(
            events.as_slice(),
            [SessionEvent::ServiceEvent {
                package_type: 5001,
                ..
            }]
        ),
        "{events:?} for {first_job}"
    );
}

#[test]
fn a_request_the_relay_refused_fails_its_job_and_the_session_goes_on() {
    let mut f = F::logged_in();
    let (job, start) = f.request(&VmRequest::start(VM).to_spec());
    let refusal = prl_protocol::relay::RelayError::command_refused(
        start.header.package_type,
        start.header.uuid,
        prl_protocol::scope::CommandScope::Read,
    );
    assert_eq!(refusal.refused_request(), Some(job));
    let code = ErrorCode(refusal.code.unwrap());
    f.session.refused_by_relay(job, code).unwrap();
    assert_eq!(
        finished(&f.events()),
        [(job, JobKind::Command(1001), Err(ErrorCode::ACCESS_DENIED))]
    );
    assert_eq!(
        f.session.refused_by_relay(job, code).unwrap_err().kind(),
        "unknown_job"
    );
    assert_eq!(
        f.session.state(),
        prl_protocol::session::SessionState::LoggedIn
    );
    let (next, _) = f.request(&host_info_request());
    assert!(f.session.pending_jobs().any(|(j, _)| j == next));
}

#[test]
fn a_cancel_the_caller_stopped_waiting_for_ends_with_its_code_and_its_late_reply_is_dropped() {
    let mut f = F::logged_in();
    let (job, _) = f.request(&VmRequest::start(VM).to_spec());
    let cancel_job = f.id();
    f.session.cancel(job, cancel_job, &mut counter()).unwrap();
    let cancel = f.sent().remove(0);
    f.events();
    // No answer came in time: the caller gives the cancel up.
    f.session.fail_job(cancel_job, ErrorCode::TIMEOUT).unwrap();
    assert_eq!(
        finished(&f.events()),
        [(cancel_job, JobKind::Cancel, Err(ErrorCode::TIMEOUT))]
    );
    assert_eq!(f.session.pending_jobs().count(), 0);
    assert_eq!(
        f.session
            .fail_job(cancel_job, ErrorCode::TIMEOUT)
            .unwrap_err()
            .kind(),
        "unknown_job"
    );
    // The answer after all is dropped silently.
    let reply = simple_response(
        &cancel,
        Uuid::from_u128(0x5e),
        Uuid::from_u128(7),
        ErrorCode::TASK_NOT_FOUND,
        &[],
        &mut counter(),
    );
    f.session.handle_package(reply).unwrap();
    assert_eq!(f.events(), []);
}
