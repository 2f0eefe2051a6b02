//! What a VM power operation does, decided from the VM's state alone (no I/O): the outcome
//! table of the libvirt service (ops-wire.md §4.5 and §6.1, from `CDspVmManager.cpp`'s
//! `Command::Dispatcher` map, `Body<Special<Start>>`, `Body<Special<Pause>>`, the forked
//! `Essence<Stop | Suspend | Reset | RestartGuest>` and `CDspLibvirtAgent.cpp`'s results).
//!
//! | state | start | stop kill | stop graceful | pause | suspend | reset | restart |
//! |---|---|---|---|---|---|---|---|
//! | running | FAILURE "VM is already running" | → stopped | → stopped | → paused | → suspended | at once, no event | at once, no event |
//! | stopped | → running | INVALID_ACTION ‡ | DISP_VM_IS_NOT_RUNNING ‡ | FAILURE "…non-running…" | INVALID_ACTION ‡ | INVALID_ACTION | INVALID_ACTION |
//! | paused | → running | → stopped | DISP_VM_IS_NOT_RUNNING ‡ | FAILURE "…non-running…" | → suspended | → running | at once, stays paused (sim choice) |
//! | suspended | → running | INVALID_ACTION ‡ | DISP_VM_IS_NOT_RUNNING ‡ | FAILURE "…non-running…" | INVALID_ACTION ‡ | INVALID_ACTION | INVALID_ACTION |
//! | unknown uuid | VM_UUID_NOT_FOUND ‡ | UNINITIALIZED ‡ | VM_GET_STATUS_FAILED ‡ | FAILURE "…non-running…" | VM_UUID_NOT_FOUND ‡ | VM_GET_STATUS_FAILED | UNINITIALIZED |
//! | no read access | ACCESS_TO_VM_DENIED ‡ | not checked | not checked | not checked | ACCESS_TO_VM_DENIED ‡ | not checked | not checked |
//!
//! ‡: a forked operation's synchronous failure, answered twice (the error, then
//! `PRL_ERR_FAILURE`). A template cannot be started (`PRL_ERR_CANT_TO_START_VM_TEMPLATE`,
//! from the legacy path; unverified for the libvirt one, ops-wire.md §12.3).

use prl_protocol::codes::{ErrorCode, VmState};
use prl_protocol::commands::{VmAction, VmRequest};

/// libvirt's message for an operation on a domain that does not run.
pub(super) const NOT_RUNNING: &str = "Requested operation is not valid: domain is not running";
/// `Body<Special<Start>>` on a running VM.
pub(super) const ALREADY_RUNNING: &str = "VM is already running";
/// `Body<Special<Pause>>` on a VM that does not run.
pub(super) const PAUSE_NOT_RUNNING: &str = "VM pause from a non-running state is impossible";

/// The operations, as the service distinguishes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    /// 1001, 1036 (and `PrlVm_Resume`).
    Start,
    /// 1002 with a kill mode.
    Kill,
    /// 1002 with `PSM_SHUTDOWN` / `PSM_ACPI`.
    Shutdown,
    /// 1007.
    Pause,
    /// 1008.
    Suspend,
    /// 1006.
    Reset,
    /// 1039.
    Restart,
}

impl Op {
    /// The operation of a request; `None` for 1009 (no handler in the service).
    pub(super) fn of(request: &VmRequest) -> Option<Op> {
        Some(match request.action {
            VmAction::Start | VmAction::StartEx { .. } => Op::Start,
            VmAction::Stop { .. } if request.is_graceful_stop() => Op::Shutdown,
            VmAction::Stop { .. } => Op::Kill,
            VmAction::Pause { .. } => Op::Pause,
            VmAction::Suspend => Op::Suspend,
            VmAction::Reset => Op::Reset,
            VmAction::RestartGuest => Op::Restart,
            VmAction::Resume => return None,
        })
    }

    /// The transient state a legacy dispatcher reported while the operation ran from `from`.
    fn transient(self, from: VmState) -> Option<VmState> {
        Some(match self {
            Op::Start if from == VmState::PAUSED => VmState::CONTINUING,
            Op::Start if from == VmState::SUSPENDED => VmState::RESUMING,
            Op::Start => VmState::STARTING,
            Op::Kill | Op::Shutdown => VmState::STOPPING,
            Op::Pause => VmState::PAUSING,
            Op::Suspend => VmState::SUSPENDING,
            Op::Reset => VmState::RESETTING,
            Op::Restart => return None,
        })
    }
}

/// What the service knows of the VM an operation names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct VmView {
    /// Its state.
    pub(super) state: VmState,
    /// The session's user may read it.
    pub(super) readable: bool,
    /// It is a template.
    pub(super) template: bool,
}

/// The outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plan {
    /// Refuse with `code` and an error event with `details`; `forked`: answered twice.
    Fail {
        code: ErrorCode,
        details: &'static str,
        forked: bool,
    },
    /// Run the operation: after its transition time the VM is in `to`; `event`: a state event
    /// is sent (the state changed); `transient`: the state reported meanwhile with
    /// `--transient-states`.
    Go {
        to: VmState,
        event: bool,
        transient: Option<VmState>,
    },
}

fn fail(code: ErrorCode, details: &'static str, forked: bool) -> Plan {
    Plan::Fail {
        code,
        details,
        forked,
    }
}

/// The outcome of `op` on `vm` (`None`: a uuid the service does not know).
pub(super) fn plan(op: Op, vm: Option<VmView>) -> Plan {
    use VmState as S;
    let Some(vm) = vm else {
        return match op {
            Op::Start | Op::Suspend => fail(ErrorCode::VM_UUID_NOT_FOUND, "", true),
            Op::Kill => fail(ErrorCode::UNINITIALIZED, "Domain not found", true),
            Op::Shutdown => fail(ErrorCode::VM_GET_STATUS_FAILED, "", true),
            Op::Pause => fail(ErrorCode::FAILURE, PAUSE_NOT_RUNNING, false),
            Op::Reset => fail(ErrorCode::VM_GET_STATUS_FAILED, "", false),
            Op::Restart => fail(ErrorCode::UNINITIALIZED, "Domain not found", false),
        };
    };
    let go = |to: VmState| Plan::Go {
        to,
        event: to != vm.state,
        transient: op.transient(vm.state),
    };
    let stopped = matches!(vm.state, S::STOPPED | S::SUSPENDED);
    match op {
        // The state check comes first (`Special<Start>`), the configuration (access) after.
        Op::Start if vm.state == S::RUNNING => fail(ErrorCode::FAILURE, ALREADY_RUNNING, false),
        Op::Start | Op::Suspend if !vm.readable => fail(ErrorCode::ACCESS_TO_VM_DENIED, "", true),
        Op::Start if vm.template => fail(ErrorCode::CANT_TO_START_VM_TEMPLATE, "", false),
        Op::Start => go(S::RUNNING),
        Op::Kill if stopped => fail(ErrorCode::INVALID_ACTION_REQUESTED, NOT_RUNNING, true),
        Op::Kill => go(S::STOPPED),
        Op::Shutdown if vm.state != S::RUNNING => fail(ErrorCode::DISP_VM_IS_NOT_RUNNING, "", true),
        Op::Shutdown => go(S::STOPPED),
        Op::Pause if vm.state != S::RUNNING => fail(ErrorCode::FAILURE, PAUSE_NOT_RUNNING, false),
        Op::Pause => go(S::PAUSED),
        Op::Suspend if stopped => fail(ErrorCode::INVALID_ACTION_REQUESTED, NOT_RUNNING, true),
        Op::Suspend => go(S::SUSPENDED),
        Op::Reset | Op::Restart if stopped => {
            fail(ErrorCode::INVALID_ACTION_REQUESTED, NOT_RUNNING, false)
        }
        Op::Reset => go(S::RUNNING),
        Op::Restart => Plan::Go {
            to: vm.state,
            event: false,
            transient: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use VmState as S;

    fn vm(state: VmState) -> Option<VmView> {
        Some(VmView {
            state,
            readable: true,
            template: false,
        })
    }

    fn code(p: Plan) -> (ErrorCode, bool) {
        match p {
            Plan::Fail { code, forked, .. } => (code, forked),
            Plan::Go { .. } => (ErrorCode::SUCCESS, false),
        }
    }

    fn to(p: Plan) -> Option<(VmState, bool)> {
        match p {
            Plan::Go { to, event, .. } => Some((to, event)),
            Plan::Fail { .. } => None,
        }
    }

    #[test]
    fn the_allowed_transitions_of_the_spec() {
        for (op, from, want) in [
            (Op::Start, S::STOPPED, S::RUNNING),
            (Op::Start, S::SUSPENDED, S::RUNNING),
            (Op::Start, S::PAUSED, S::RUNNING),
            (Op::Pause, S::RUNNING, S::PAUSED),
            (Op::Suspend, S::RUNNING, S::SUSPENDED),
            (Op::Suspend, S::PAUSED, S::SUSPENDED),
            (Op::Kill, S::RUNNING, S::STOPPED),
            (Op::Kill, S::PAUSED, S::STOPPED),
            (Op::Shutdown, S::RUNNING, S::STOPPED),
            (Op::Reset, S::PAUSED, S::RUNNING),
        ] {
            assert_eq!(
                to(plan(op, vm(from))),
                Some((want, true)),
                "{op:?} from {from:?}"
            );
        }
        // No state event: the state does not change.
        assert_eq!(
            to(plan(Op::Reset, vm(S::RUNNING))),
            Some((S::RUNNING, false))
        );
        assert_eq!(
            to(plan(Op::Restart, vm(S::RUNNING))),
            Some((S::RUNNING, false))
        );
    }

    #[test]
    fn the_refusals_of_the_spec() {
        let f = ErrorCode::FAILURE;
        let inv = ErrorCode::INVALID_ACTION_REQUESTED;
        for (op, from, want) in [
            (Op::Start, Some(S::RUNNING), (f, false)),
            (Op::Kill, Some(S::STOPPED), (inv, true)),
            (Op::Kill, Some(S::SUSPENDED), (inv, true)),
            (
                Op::Shutdown,
                Some(S::STOPPED),
                (ErrorCode::DISP_VM_IS_NOT_RUNNING, true),
            ),
            (
                Op::Shutdown,
                Some(S::PAUSED),
                (ErrorCode::DISP_VM_IS_NOT_RUNNING, true),
            ),
            (Op::Pause, Some(S::STOPPED), (f, false)),
            (Op::Pause, Some(S::PAUSED), (f, false)),
            (Op::Suspend, Some(S::STOPPED), (inv, true)),
            (Op::Reset, Some(S::STOPPED), (inv, false)),
            (Op::Restart, Some(S::SUSPENDED), (inv, false)),
            (Op::Start, None, (ErrorCode::VM_UUID_NOT_FOUND, true)),
            (Op::Kill, None, (ErrorCode::UNINITIALIZED, true)),
            (Op::Shutdown, None, (ErrorCode::VM_GET_STATUS_FAILED, true)),
            (Op::Pause, None, (f, false)),
            (Op::Suspend, None, (ErrorCode::VM_UUID_NOT_FOUND, true)),
            (Op::Reset, None, (ErrorCode::VM_GET_STATUS_FAILED, false)),
            (Op::Restart, None, (ErrorCode::UNINITIALIZED, false)),
        ] {
            assert_eq!(
                code(plan(op, from.and_then(vm))),
                want,
                "{op:?} from {from:?}"
            );
        }
    }

    #[test]
    fn access_is_checked_by_start_and_suspend_only_and_after_the_running_check() {
        let hidden = |state| {
            Some(VmView {
                state,
                readable: false,
                template: false,
            })
        };
        let denied = (ErrorCode::ACCESS_TO_VM_DENIED, true);
        assert_eq!(code(plan(Op::Start, hidden(S::STOPPED))), denied);
        assert_eq!(code(plan(Op::Suspend, hidden(S::RUNNING))), denied);
        assert_eq!(
            code(plan(Op::Start, hidden(S::RUNNING))),
            (ErrorCode::FAILURE, false)
        );
        assert_eq!(
            to(plan(Op::Kill, hidden(S::RUNNING))),
            Some((S::STOPPED, true))
        );
        assert_eq!(
            to(plan(Op::Pause, hidden(S::RUNNING))),
            Some((S::PAUSED, true))
        );
        let template = Some(VmView {
            state: S::STOPPED,
            readable: true,
            template: true,
        });
        assert_eq!(
            code(plan(Op::Start, template)),
            (ErrorCode::CANT_TO_START_VM_TEMPLATE, false)
        );
    }

    #[test]
    fn transient_states_follow_the_legacy_dispatcher() {
        let t = |op, from| match plan(op, vm(from)) {
            Plan::Go { transient, .. } => transient,
            Plan::Fail { .. } => None,
        };
        assert_eq!(t(Op::Start, S::STOPPED), Some(S::STARTING));
        assert_eq!(t(Op::Start, S::PAUSED), Some(S::CONTINUING));
        assert_eq!(t(Op::Start, S::SUSPENDED), Some(S::RESUMING));
        assert_eq!(t(Op::Kill, S::RUNNING), Some(S::STOPPING));
        assert_eq!(t(Op::Pause, S::RUNNING), Some(S::PAUSING));
        assert_eq!(t(Op::Suspend, S::PAUSED), Some(S::SUSPENDING));
        assert_eq!(t(Op::Reset, S::RUNNING), Some(S::RESETTING));
        assert_eq!(t(Op::Restart, S::RUNNING), None);
    }
}
