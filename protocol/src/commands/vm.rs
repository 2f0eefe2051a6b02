//! VM commands: the VM list (2029) and VM info (2062) requests, the power operations (1001 start,
//! 1036 start-ex, 1002 stop, 1007 pause, 1008 suspend, 1006 reset, 1039 restart-guest; 1009
//! resume exists but no SDK call sends it), and the VM events (3003: state changed, config
//! changed, added, deleted, unregistered, addition state changed).
//!
//! Requests are built through [`RequestSpec`] exactly as the SDK's `CProtoCommand` classes build
//! them (`libprlcommon:Libraries/ProtoSerializer/CProtoCommands.cpp`: `CProtoBasicVmCommand`
//! l.712-727, `CProtoVmCommandWithAcpiSign` l.730-749, `CProtoVmCommandStop` l.752-784,
//! `CProtoVmStartExCommand` l.1480-1502) and parsed on the service side with the same
//! `IsValid` rules. The SDK calls and what they send (`libprlsdk:Sources/SDK/Handles/Vm/
//! PrlApiVm.cpp`): `PrlVm_Start` 1001, `PrlVm_Resume` **1001** too (it calls `PrlVm_Start`),
//! `PrlVm_StartEx` 1036, `PrlVm_Stop(h, graceful)` 1002 with `PSM_SHUTDOWN` / `PSM_KILL`,
//! `PrlVm_StopEx(mode, flags)` 1002, `PrlVm_Pause(h, acpi)` 1007, `PrlVm_Suspend` 1008,
//! `PrlVm_Reset` 1006, `PrlVm_Restart` **1039** (`RestartGuest`). Flags are passed through
//! unchanged; the SDK adds none.
//!
//! Events: `CDspVmStateSender::slotSendVmStateChanged` (the state event: type 100001,
//! `EventCode` 100000, issuer type `PIE_DISPATCHER`, issuer id the VM uuid, a random initial
//! request id, one Integer `vminfo_vm_state`), `sendVmConfigChangedEvent`,
//! `Vm::Proclamation::reactRegistered` (added), `sendVmRemovedEvent` (deleted, unregistered).

use uuid::Uuid;

use super::document::DocumentError;
use super::request::{carried_event, command_flags, fresh_event, request_package};
use super::spec::{RequestSpec, SpecValue};
use super::{param, CommandError, ISSUER_DISPATCHER};
use crate::codes::{cmd, event_type, flags, VmState};
use crate::event::{qt_parse_u64, Event, ParamType};
use crate::package::{text_buffer, Package};

/// `PET_VM_INF_UNINITIALIZED_EVENT_CODE`: the `EventCode` of every event the
/// `CVmEvent(type, issuer, issuer_type)` constructor makes, the state event's included.
pub const UNINITIALIZED_EVENT_CODE: u32 = 100_000;

/// A power operation on a VM, with what its command carries besides the VM uuid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmAction {
    /// 1001 `DspCmdVmStart` (`PrlVm_Start`, and `PrlVm_Resume`).
    Start,
    /// 1036 `DspCmdVmStartEx` (`PrlVm_StartEx`).
    StartEx {
        /// `vm_start_ex_cmd_start_mode` (`PSM_VM_START`, ...).
        mode: u32,
        /// `vm_start_ex_cmd_reserved_parameter` (`PNSF_*`).
        reserved: u32,
    },
    /// 1002 `DspCmdVmStop`.
    Stop {
        /// `vm_cmd_vm_stop_mode`: `PSM_KILL`, `PSM_SHUTDOWN` or `PSM_ACPI` (its low byte counts;
        /// see [`VmRequest::stop_mode`]).
        mode: u32,
    },
    /// 1007 `DspCmdVmPause`.
    Pause {
        /// `vm_cmd_with_acpi_sign_is_use_acpi` (the service ignores it).
        acpi: bool,
    },
    /// 1008 `DspCmdVmSuspend`.
    Suspend,
    /// 1006 `DspCmdVmReset`.
    Reset,
    /// 1039 `DspCmdVmRestartGuest` (`PrlVm_Restart`).
    RestartGuest,
    /// 1009 `DspCmdVmResume`: no SDK call sends it; parsed so a service can refuse it.
    Resume,
}

impl VmAction {
    /// The command's package type.
    pub fn package_type(self) -> u32 {
        match self {
            VmAction::Start => cmd::VM_START,
            VmAction::StartEx { .. } => cmd::VM_START_EX,
            VmAction::Stop { .. } => cmd::VM_STOP,
            VmAction::Pause { .. } => cmd::VM_PAUSE,
            VmAction::Suspend => cmd::VM_SUSPEND,
            VmAction::Reset => cmd::VM_RESET,
            VmAction::RestartGuest => cmd::VM_RESTART_GUEST,
            VmAction::Resume => cmd::VM_RESUME,
        }
    }

    /// A stable lower-case name (`start`, `start_ex`, `stop`, `pause`, `suspend`, `reset`,
    /// `restart_guest`, `resume`).
    pub fn name(self) -> &'static str {
        match self {
            VmAction::Start => "start",
            VmAction::StartEx { .. } => "start_ex",
            VmAction::Stop { .. } => "stop",
            VmAction::Pause { .. } => "pause",
            VmAction::Suspend => "suspend",
            VmAction::Reset => "reset",
            VmAction::RestartGuest => "restart_guest",
            VmAction::Resume => "resume",
        }
    }
}

/// A VM power operation request: the VM, the command flags and the action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmRequest {
    /// `basic_vm_cmd_vm_uuid`: the VM's uuid exactly as its configuration holds it
    /// (`{lower-case}`; the service looks it up as given).
    pub vm_uuid: String,
    /// `proto_command_flags`.
    pub flags: u32,
    /// What to do.
    pub action: VmAction,
}

impl VmRequest {
    fn new(vm_uuid: &str, flags: u32, action: VmAction) -> VmRequest {
        VmRequest {
            vm_uuid: vm_uuid.to_owned(),
            flags,
            action,
        }
    }

    /// `PrlVm_Start`.
    pub fn start(vm_uuid: &str) -> VmRequest {
        Self::new(vm_uuid, 0, VmAction::Start)
    }

    /// `PrlVm_StartEx(mode, reserved)`.
    pub fn start_ex(vm_uuid: &str, mode: u32, reserved: u32) -> VmRequest {
        Self::new(vm_uuid, 0, VmAction::StartEx { mode, reserved })
    }

    /// `PrlVm_Resume`: the SDK sends a start (1001); the service unpauses a paused VM and
    /// restores a suspended one on start.
    pub fn resume(vm_uuid: &str) -> VmRequest {
        Self::start(vm_uuid)
    }

    /// `PrlVm_Stop(h, graceful)`: `PSM_SHUTDOWN` or `PSM_KILL`, no flags.
    pub fn stop(vm_uuid: &str, graceful: bool) -> VmRequest {
        let mode = if graceful {
            flags::PSM_SHUTDOWN
        } else {
            flags::PSM_KILL
        };
        Self::stop_ex(vm_uuid, mode, 0)
    }

    /// `PrlVm_StopEx(mode, flags)`.
    pub fn stop_ex(vm_uuid: &str, mode: u32, flags: u32) -> VmRequest {
        Self::new(vm_uuid, flags, VmAction::Stop { mode })
    }

    /// `PrlVm_Pause(h, acpi)`.
    pub fn pause(vm_uuid: &str, acpi: bool) -> VmRequest {
        Self::new(vm_uuid, 0, VmAction::Pause { acpi })
    }

    /// `PrlVm_Suspend`.
    pub fn suspend(vm_uuid: &str) -> VmRequest {
        Self::new(vm_uuid, 0, VmAction::Suspend)
    }

    /// `PrlVm_Reset`.
    pub fn reset(vm_uuid: &str) -> VmRequest {
        Self::new(vm_uuid, 0, VmAction::Reset)
    }

    /// `PrlVm_Restart`: restart the guest OS (1039).
    pub fn restart(vm_uuid: &str) -> VmRequest {
        Self::new(vm_uuid, 0, VmAction::RestartGuest)
    }

    /// The stop mode the service acts on (`CProtoVmCommandStop::GetStopMode`): the mode's low
    /// byte with the flags' other bits. Not a stop: `None`.
    pub fn stop_mode(&self) -> Option<u32> {
        match self.action {
            VmAction::Stop { mode } => {
                Some((mode & flags::STOP_MODE_MASK) | (self.flags & !flags::STOP_MODE_MASK))
            }
            _ => None,
        }
    }

    /// A graceful stop (`PSM_SHUTDOWN` or `PSM_ACPI`: the guest is asked to shut down) rather
    /// than a kill. Not a stop: `false`.
    pub fn is_graceful_stop(&self) -> bool {
        self.stop_mode().is_some_and(|m| {
            let m = m & flags::STOP_MODE_MASK;
            m == flags::PSM_SHUTDOWN || m == flags::PSM_ACPI
        })
    }

    /// The request as a description: the parameters of its `CProtoCommand` class in order.
    pub fn to_spec(&self) -> RequestSpec {
        let spec = RequestSpec::new(self.action.package_type(), self.flags).with(
            param::BASIC_VM_CMD_VM_UUID,
            SpecValue::String(self.vm_uuid.clone()),
        );
        match self.action {
            VmAction::StartEx { mode, reserved } => spec
                .with(param::VM_START_EX_MODE, SpecValue::UnsignedInt(mode))
                .with(
                    param::VM_START_EX_RESERVED,
                    SpecValue::UnsignedInt(reserved),
                ),
            VmAction::Stop { mode } => spec
                .with(param::VM_CMD_STOP_MODE, SpecValue::UnsignedInt(mode))
                .with(
                    param::VM_CMD_WITH_ACPI_SIGN,
                    SpecValue::Boolean(mode & flags::STOP_MODE_MASK != flags::PSM_KILL),
                ),
            VmAction::Pause { acpi } => {
                spec.with(param::VM_CMD_WITH_ACPI_SIGN, SpecValue::Boolean(acpi))
            }
            VmAction::Start
            | VmAction::Suspend
            | VmAction::Reset
            | VmAction::RestartGuest
            | VmAction::Resume => spec,
        }
    }

    /// The request package; its uuid `job_uuid` is the job the reply names as parent.
    pub fn to_package(
        &self,
        job_uuid: Uuid,
        sender: Uuid,
        ids: &mut dyn FnMut() -> Uuid,
    ) -> Package {
        let spec = self.to_spec();
        request_package(spec.package_type, &spec.to_event(ids), job_uuid, sender)
    }

    /// Reads a VM command as the service does (`IsValid` of its class, then the getters):
    /// `None` for a package type that is not one of the power operations. An invalid request
    /// is [`CommandError::MissingParam`] (the service answers `PRL_ERR_UNRECOGNIZED_REQUEST`).
    /// Numbers read like `QString::toUInt()`: text that is not one reads as 0.
    pub fn from_event(package_type: u32, event: &Event) -> Result<Option<VmRequest>, CommandError> {
        let t = package_type;
        let vm_uuid = |e: &Event| basic_vm_uuid(t, e);
        let action = match t {
            cmd::VM_START => VmAction::Start,
            cmd::VM_SUSPEND => VmAction::Suspend,
            cmd::VM_RESET => VmAction::Reset,
            cmd::VM_RESTART_GUEST => VmAction::RestartGuest,
            cmd::VM_RESUME => VmAction::Resume,
            cmd::VM_PAUSE => {
                let acpi = typed(t, event, param::VM_CMD_WITH_ACPI_SIGN, ParamType::BOOLEAN)?;
                VmAction::Pause {
                    acpi: to_uint(acpi) != 0,
                }
            }
            cmd::VM_STOP => {
                let acpi = typed(t, event, param::VM_CMD_WITH_ACPI_SIGN, ParamType::BOOLEAN)?;
                let mode = match event.param(param::VM_CMD_STOP_MODE) {
                    Some(p) if p.param_type == ParamType::UNSIGNED_INT => {
                        to_uint(p.as_str().unwrap_or_default())
                    }
                    // The old schema: only the Boolean.
                    _ if to_uint(acpi) != 0 => flags::PSM_SHUTDOWN,
                    _ => flags::PSM_KILL,
                };
                VmAction::Stop { mode }
            }
            cmd::VM_START_EX => VmAction::StartEx {
                mode: to_uint(typed(
                    t,
                    event,
                    param::VM_START_EX_MODE,
                    ParamType::UNSIGNED_INT,
                )?),
                reserved: to_uint(typed(
                    t,
                    event,
                    param::VM_START_EX_RESERVED,
                    ParamType::UNSIGNED_INT,
                )?),
            },
            _ => return Ok(None),
        };
        Ok(Some(VmRequest {
            vm_uuid: vm_uuid(event)?,
            flags: command_flags(t, event)?,
            action,
        }))
    }
}

/// `GetUnsignedIntParamValue`: `toUInt()`, 0 for anything that is not a number in range.
fn to_uint(text: &str) -> u32 {
    qt_parse_u64(text)
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(0)
}

/// A parameter `CheckWhetherParamPresents(name, type)` requires: present with that type.
fn typed<'a>(
    package_type: u32,
    event: &'a Event,
    name: &'static str,
    expected: ParamType,
) -> Result<&'a str, CommandError> {
    match event.param(name) {
        Some(p) if p.param_type == expected => Ok(p.as_str().unwrap_or_default()),
        _ => Err(CommandError::MissingParam {
            package_type,
            name,
            expected,
        }),
    }
}

/// `CProtoBasicVmCommand::IsValid`: the common parameters and a String VM uuid.
fn basic_vm_uuid(package_type: u32, event: &Event) -> Result<String, CommandError> {
    command_flags(package_type, event)?;
    Ok(typed(
        package_type,
        event,
        param::BASIC_VM_CMD_VM_UUID,
        ParamType::STRING,
    )?
    .to_owned())
}

/// `PrlSrv_GetVmListEx(flags)` (2029; `PrlSrv_GetVmList` sends flags 0): a command without
/// parameters of its own.
pub fn vm_list_request(flags: u32) -> RequestSpec {
    RequestSpec::new(cmd::DIR_GET_VM_LIST, flags)
}

/// `PrlVm_GetState` (2062, `DspCmdGetVmInfo`): a basic VM command.
pub fn vm_info_request(vm_uuid: &str) -> RequestSpec {
    RequestSpec::new(cmd::GET_VM_INFO, 0).with(
        param::BASIC_VM_CMD_VM_UUID,
        SpecValue::String(vm_uuid.to_owned()),
    )
}

/// Reads a VM info request (2062) as `CProtoBasicVmCommand::IsValid` does: returns the VM uuid.
pub fn parse_vm_info_request(event: &Event) -> Result<String, CommandError> {
    basic_vm_uuid(cmd::GET_VM_INFO, event)
}

/// A VM event (3003) for `vm_uuid` of `event_type`, as `CVmEvent(type, vmUuid,
/// PIE_DISPATCHER)` makes it: `EventCode` 100000, the VM uuid as issuer id, a fresh initial
/// request id, no parameters. `parentUuid` and `receiverUuid` stay nil (not a response).
pub fn vm_event_package(
    event_type: u32,
    vm_uuid: &str,
    params: &[crate::event::EventParam],
    sender: Uuid,
    event_uuid: Uuid,
    ids: &mut dyn FnMut() -> Uuid,
) -> Package {
    let mut event = fresh_event(ids);
    event.event_type = event_type;
    event.code = UNINITIALIZED_EVENT_CODE;
    event.issuer_type = ISSUER_DISPATCHER;
    event.issuer_id = vm_uuid.to_owned();
    event.params.extend(params.iter().cloned());
    Package::request(
        cmd::VM_EVENT,
        event_uuid,
        sender,
        vec![text_buffer(&event.to_xml())],
    )
}

/// `PET_DSP_EVT_VM_STATE_CHANGED` (100001) for `vm_uuid` now in `state`: one Integer
/// `vminfo_vm_state` (signed decimal).
pub fn vm_state_event(
    vm_uuid: &str,
    state: VmState,
    sender: Uuid,
    event_uuid: Uuid,
    ids: &mut dyn FnMut() -> Uuid,
) -> Package {
    let state = crate::event::EventParam::plain(
        param::VMINFO_STATE,
        ParamType::INTEGER,
        state.as_signed().to_string(),
    );
    vm_event_package(
        event_type::VM_STATE_CHANGED,
        vm_uuid,
        &[state],
        sender,
        event_uuid,
        ids,
    )
}

/// What a VM event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmEventKind {
    /// 100001: the VM is now in this state.
    StateChanged(VmState),
    /// 100002: its configuration changed.
    ConfigChanged,
    /// 100005: it was added (registered or created).
    Added,
    /// 100006: it was deleted.
    Deleted,
    /// 100026: it was unregistered.
    Unregistered,
    /// 100056: its guest tools' state (`VIRTUAL_MACHINE_ADDITION_STATE`) changed.
    AdditionStateChanged(u32),
}

impl VmEventKind {
    /// A stable name: `state_changed`, `config_changed`, `added`, `deleted`, `unregistered`,
    /// `addition_state_changed`.
    pub fn name(self) -> &'static str {
        match self {
            VmEventKind::StateChanged(_) => "state_changed",
            VmEventKind::ConfigChanged => "config_changed",
            VmEventKind::Added => "added",
            VmEventKind::Deleted => "deleted",
            VmEventKind::Unregistered => "unregistered",
            VmEventKind::AdditionStateChanged(_) => "addition_state_changed",
        }
    }
}

/// A VM event as a client reads it (the SDK dispatches on `EventType` only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmEvent {
    /// The VM (`EventIssuerId`).
    pub vm_uuid: String,
    /// What happened.
    pub kind: VmEventKind,
}

const EVENT: &str = "vm event";

impl VmEvent {
    /// Reads an event: `Ok(None)` when its type is not a VM event. A state event without its
    /// state (or with a malformed one) is an error; `EventCode` is not checked.
    pub fn from_event(event: &Event) -> Result<Option<VmEvent>, DocumentError> {
        let number = |name: &'static str| -> Result<i32, DocumentError> {
            let text = event.string(name).ok_or(DocumentError::Missing {
                document: EVENT,
                element: name,
            })?;
            super::document::parse_i32(EVENT, name, text)
        };
        let kind = match event.event_type {
            event_type::VM_STATE_CHANGED => {
                VmEventKind::StateChanged(VmState(number(param::VMINFO_STATE)? as u32))
            }
            event_type::VM_CONFIG_CHANGED => VmEventKind::ConfigChanged,
            event_type::VM_ADDED => VmEventKind::Added,
            event_type::VM_DELETED => VmEventKind::Deleted,
            event_type::VM_UNREGISTERED => VmEventKind::Unregistered,
            event_type::VM_ADDITION_STATE_CHANGED => {
                VmEventKind::AdditionStateChanged(number(param::VMINFO_ADDITION_STATE)? as u32)
            }
            _ => return Ok(None),
        };
        Ok(Some(VmEvent {
            vm_uuid: event.issuer_id.clone(),
            kind,
        }))
    }

    /// Reads the event a package carries (3003 / 3008): `Ok(None)` for other packages and
    /// other events.
    pub fn from_package(package: &Package) -> Result<Option<VmEvent>, CommandError> {
        match carried_event(package)? {
            Some(event) => Ok(VmEvent::from_event(&event)?),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::package_event;

    fn ids() -> impl FnMut() -> Uuid {
        let mut n = 0u128;
        move || {
            n += 1;
            Uuid::from_u128(n)
        }
    }

    const VM: &str = "{0c9d2b3e-7f6a-4e1d-8c5b-2a3f4e5d6c7b}";

    fn params(r: &VmRequest) -> Vec<(String, u32, String)> {
        let p = r.to_package(Uuid::from_u128(1), Uuid::from_u128(2), &mut ids());
        package_event(&p)
            .unwrap()
            .params
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.param_type.0,
                    p.as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    fn tail(r: &VmRequest) -> Vec<(String, u32, String)> {
        params(r).into_iter().skip(3).collect()
    }

    fn p(name: &str, t: u32, v: &str) -> (String, u32, String) {
        (name.into(), t, v.into())
    }

    #[test]
    fn every_operation_carries_the_sdks_parameters() {
        // ops-wire.md §1.1 and §5: the parameter lists the real SDK sends (captured).
        let head = vec![
            p("proto_force_questions_sign", 0, "0"),
            p("proto_command_flags", 0, "0"),
            p("basic_vm_cmd_vm_uuid", 1, VM),
        ];
        for r in [
            VmRequest::start(VM),
            VmRequest::resume(VM),
            VmRequest::suspend(VM),
            VmRequest::reset(VM),
            VmRequest::restart(VM),
        ] {
            assert_eq!(params(&r), head, "{r:?}");
        }
        assert_eq!(VmRequest::resume(VM).action.package_type(), 1001);
        assert_eq!(VmRequest::restart(VM).action.package_type(), 1039);
        assert_eq!(
            tail(&VmRequest::stop(VM, false)),
            [
                p("vm_cmd_vm_stop_mode", 0, "0"),
                p("vm_cmd_with_acpi_sign_is_use_acpi", 6, "0")
            ]
        );
        assert_eq!(
            tail(&VmRequest::stop(VM, true)),
            [
                p("vm_cmd_vm_stop_mode", 0, "1"),
                p("vm_cmd_with_acpi_sign_is_use_acpi", 6, "1")
            ]
        );
        assert_eq!(
            tail(&VmRequest::pause(VM, false)),
            [p("vm_cmd_with_acpi_sign_is_use_acpi", 6, "0")]
        );
        assert_eq!(
            tail(&VmRequest::start_ex(VM, flags::PSM_VM_START, 0)),
            [
                p("vm_start_ex_cmd_start_mode", 0, "2048"),
                p("vm_start_ex_cmd_reserved_parameter", 0, "0")
            ]
        );
        let forced = VmRequest::stop_ex(VM, flags::PSM_ACPI, flags::PSF_FORCE);
        assert_eq!(params(&forced)[1], p("proto_command_flags", 0, "2048"));
        assert_eq!(forced.stop_mode(), Some(2 | 2048));
        assert!(forced.is_graceful_stop());
        assert!(!VmRequest::stop(VM, false).is_graceful_stop());
    }

    #[test]
    fn the_service_reads_what_the_builders_write() {
        for r in [
            VmRequest::start(VM),
            VmRequest::start_ex(VM, flags::PSM_VM_SAFE_START, flags::PNSF_VM_START_WAIT),
            VmRequest::stop_ex(VM, flags::PSM_SHUTDOWN, flags::PSF_NOFORCE),
            VmRequest::pause(VM, true),
            VmRequest::suspend(VM),
            VmRequest::reset(VM),
            VmRequest::restart(VM),
            VmRequest::new(VM, 0, VmAction::Resume),
        ] {
            let package = r.to_package(Uuid::from_u128(1), Uuid::from_u128(2), &mut ids());
            let event = package_event(&package).unwrap();
            let back = VmRequest::from_event(package.header.package_type, &event).unwrap();
            assert_eq!(back, Some(r));
        }
        assert_eq!(
            VmRequest::from_event(1003, &Event::default()).unwrap(),
            None
        );
    }

    #[test]
    fn the_service_validates_like_is_valid() {
        let event = |r: &VmRequest| {
            package_event(&r.to_package(Uuid::nil(), Uuid::nil(), &mut ids())).unwrap()
        };
        // No uuid.
        let mut e = event(&VmRequest::start(VM));
        e.params.retain(|p| p.name != param::BASIC_VM_CMD_VM_UUID);
        assert_eq!(
            VmRequest::from_event(1001, &e).unwrap_err().kind(),
            "missing_param"
        );
        // Missing common parameters are added by ParsePackage; a wrong type is invalid.
        let mut e = event(&VmRequest::start(VM));
        e.params.retain(|p| p.name != param::COMMAND_FLAGS);
        assert!(VmRequest::from_event(1001, &e).is_ok());
        let mut e = event(&VmRequest::start(VM));
        e.params[1].param_type = ParamType::STRING;
        assert!(VmRequest::from_event(1001, &e).is_err());
        // Pause needs its Boolean; stop needs the Boolean, its mode is optional (old schema).
        let mut e = event(&VmRequest::pause(VM, false));
        e.params.pop();
        assert!(VmRequest::from_event(1007, &e).is_err());
        let mut e = event(&VmRequest::stop(VM, true));
        e.params.retain(|p| p.name != param::VM_CMD_STOP_MODE);
        let stop = VmRequest::from_event(1002, &e).unwrap().unwrap();
        assert_eq!(stop.stop_mode(), Some(flags::PSM_SHUTDOWN));
        let mut e = event(&VmRequest::stop(VM, true));
        e.params.retain(|p| p.name != param::VM_CMD_WITH_ACPI_SIGN);
        assert!(VmRequest::from_event(1002, &e).is_err());
        // Numbers read like toUInt: junk is 0.
        let mut e = event(&VmRequest::stop(VM, true));
        for p in &mut e.params {
            if p.name == param::VM_CMD_STOP_MODE {
                p.value = crate::event::ParamValue::Plain("soft".into());
            }
        }
        let stop = VmRequest::from_event(1002, &e).unwrap().unwrap();
        assert_eq!(stop.stop_mode(), Some(flags::PSM_KILL));
        // 2029 / 2062.
        let list = vm_list_request(flags::PGVLF_GET_STATE_INFO)
            .to_package(Uuid::nil(), Uuid::nil(), &mut ids())
            .unwrap();
        assert_eq!(list.header.package_type, 2029);
        assert_eq!(
            crate::commands::parse_without_params(2029, &package_event(&list).unwrap()).unwrap(),
            flags::PGVLF_GET_STATE_INFO
        );
        let info = vm_info_request(VM)
            .to_package(Uuid::nil(), Uuid::nil(), &mut ids())
            .unwrap();
        assert_eq!(info.header.package_type, 2062);
        assert_eq!(
            parse_vm_info_request(&package_event(&info).unwrap()).unwrap(),
            VM
        );
        assert!(parse_vm_info_request(&Event::default()).is_err());
    }

    #[test]
    fn the_state_event_is_the_services() {
        let p = vm_state_event(
            VM,
            VmState::RUNNING,
            Uuid::from_u128(9),
            Uuid::from_u128(10),
            &mut ids(),
        );
        assert_eq!(p.header.package_type, 3003);
        assert!(p.header.parent_uuid.is_nil() && p.header.receiver_uuid.is_nil());
        let xml = p.text(0).unwrap().unwrap();
        // ops-wire.md §6.2, the mock's event the real SDK accepted (ids from `ids`).
        let expected = format!(
            "<ParallelsEvent dyn_lists=\"\" id=\"-1\">\n <EventType>100001</EventType>\n \
             <EventLevel>0</EventLevel>\n <EventCode>100000</EventCode>\n \
             <EventNeedResponse>0</EventNeedResponse>\n <EventIssuerType>1</EventIssuerType>\n \
             <EventIssuerId>{VM}</EventIssuerId>\n <EventSource></EventSource>\n \
             <EventInitialRequestId>{{00000000-0000-0000-0000-000000000002}}</EventInitialRequestId>\n \
             <EventParameters dyn_lists=\"EventParameter 1\">\n  \
             <EventParameter dyn_lists=\"\" id=\"0\">\n   <Name>vminfo_vm_state</Name>\n   \
             <Type>2</Type>\n   <Value>805306372</Value>\n  </EventParameter>\n \
             </EventParameters>\n <EventId>0</EventId>\n</ParallelsEvent>\n"
        );
        assert_eq!(xml, expected);
        let e = VmEvent::from_package(&p).unwrap().unwrap();
        assert_eq!(e.vm_uuid, VM);
        assert_eq!(e.kind, VmEventKind::StateChanged(VmState::RUNNING));
    }

    #[test]
    fn vm_events_are_read_by_type() {
        for (t, kind) in [
            (event_type::VM_CONFIG_CHANGED, VmEventKind::ConfigChanged),
            (event_type::VM_ADDED, VmEventKind::Added),
            (event_type::VM_DELETED, VmEventKind::Deleted),
            (event_type::VM_UNREGISTERED, VmEventKind::Unregistered),
        ] {
            let p = vm_event_package(t, VM, &[], Uuid::nil(), Uuid::nil(), &mut ids());
            let e = VmEvent::from_package(&p).unwrap().unwrap();
            assert_eq!((e.vm_uuid.as_str(), e.kind), (VM, kind));
        }
        let mut e = Event::new(event_type::VM_ADDITION_STATE_CHANGED);
        e.add_int(param::VMINFO_ADDITION_STATE, 2);
        assert_eq!(
            VmEvent::from_event(&e).unwrap().unwrap().kind,
            VmEventKind::AdditionStateChanged(2)
        );
        // Not a VM event; a state event without a state; a progress event.
        assert_eq!(VmEvent::from_event(&Event::default()).unwrap(), None);
        let e = Event::new(event_type::VM_STATE_CHANGED);
        assert_eq!(
            VmEvent::from_event(&e).unwrap_err().kind(),
            "missing_element"
        );
        // An unknown state is kept raw.
        let mut e = Event::new(event_type::VM_STATE_CHANGED);
        e.add_string(param::VMINFO_STATE, "-1");
        assert_eq!(
            VmEvent::from_event(&e).unwrap().unwrap().kind,
            VmEventKind::StateChanged(VmState(u32::MAX))
        );
        let reply = crate::commands::simple_command(2042, Uuid::nil(), Uuid::nil(), &mut ids());
        assert_eq!(VmEvent::from_package(&reply).unwrap(), None);
    }
}
