//! The generic request: the command event every request carries, request packages, reading
//! the event of a package, and [`Command`], which recognises a request.

use uuid::Uuid;

use super::{param, CommandError, LoginLocalRequest, LoginRequest, VmRequest};
use crate::codes::cmd;
use crate::event::{Event, ParamType};
use crate::package::{text_buffer, Package};
use crate::uuid_string;

/// `PIE_DISPATCHER` issuer type.
pub const ISSUER_DISPATCHER: u32 = 1;
/// `PIE_UNKNOWN` issuer type.
pub const ISSUER_UNKNOWN: u32 = 0xFF;

/// A command recognised by [`Command::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// 2039.
    Login(LoginRequest),
    /// 2186.
    LoginLocal(LoginLocalRequest),
    /// 2042.
    Logoff,
    /// 2052.
    Ping,
    /// 2053 with the job uuid to cancel.
    Cancel {
        /// The job (request package) uuid, `{...}`.
        job_uuid: String,
    },
    /// 2090 with the task to attach to.
    AttachToLostTask {
        /// The task id, `{...}`.
        task_id: String,
    },
    /// 2051 (`PrlSrv_GetSrvConfig`).
    GetHostInfo {
        /// `proto_command_flags`.
        flags: u32,
    },
    /// 2029 (`PrlSrv_GetVmList`).
    GetVmList {
        /// `proto_command_flags` (`PGVLF_*`).
        flags: u32,
    },
    /// 2062 (`PrlVm_GetState`).
    GetVmInfo {
        /// The VM's uuid as sent.
        vm_uuid: String,
    },
    /// A VM power operation (1001, 1002, 1006, 1007, 1008, 1009, 1036, 1039).
    Vm(VmRequest),
    /// Any other package type.
    Other(u32),
}

/// A fresh command event: `CProtoCommandBase(bForceQuestionsSign = false, flags)`.
pub fn command_event(flags: u32, ids: &mut dyn FnMut() -> Uuid) -> Event {
    let mut event = fresh_event(ids);
    event.add_uint(param::FORCE_QUESTIONS_SIGN, 0);
    event.add_uint(param::COMMAND_FLAGS, flags);
    event
}

/// A default CVmEvent as the real constructor makes it (random issuer and request ids).
pub fn fresh_event(ids: &mut dyn FnMut() -> Uuid) -> Event {
    Event {
        issuer_id: uuid_string(&ids()),
        initial_request_id: uuid_string(&ids()),
        ..Event::default()
    }
}

/// A request package carrying `event` as NUL-terminated XML in buffer 0.
pub fn request_package(package_type: u32, event: &Event, job_uuid: Uuid, sender: Uuid) -> Package {
    Package::request(
        package_type,
        job_uuid,
        sender,
        vec![text_buffer(&event.to_xml())],
    )
}

/// A command without parameters of its own (logoff, ping).
pub fn simple_command(
    package_type: u32,
    job_uuid: Uuid,
    sender: Uuid,
    ids: &mut dyn FnMut() -> Uuid,
) -> Package {
    request_package(package_type, &command_event(0, ids), job_uuid, sender)
}

/// A command with one string parameter (cancel: the job uuid; attach: the task id).
pub fn one_str_command(
    package_type: u32,
    value: &str,
    job_uuid: Uuid,
    sender: Uuid,
    ids: &mut dyn FnMut() -> Uuid,
) -> Package {
    let mut event = command_event(0, ids);
    event.add_string(param::FIRST_STR_PARAM, value);
    request_package(package_type, &event, job_uuid, sender)
}

/// The XML event in buffer 0 of a package.
pub fn package_event(package: &Package) -> Result<Event, CommandError> {
    let t = package.header.package_type;
    let text = match package.text(0) {
        None => return Err(CommandError::NoPayload(t)),
        Some(Err(_)) => return Err(CommandError::NotUtf8(t)),
        Some(Ok(text)) => text,
    };
    Event::from_xml(text).map_err(|source| CommandError::Event {
        package_type: t,
        source,
    })
}

/// The event a service package carries: the XML of a 3003 (`DspVmEvent`) or the binary
/// CVmEvent of a 3008 (`DspVmBinaryEvent`, whose event id is the header's `numericId`);
/// `None` for other package types.
pub fn carried_event(package: &Package) -> Result<Option<Event>, CommandError> {
    let t = package.header.package_type;
    match t {
        cmd::VM_EVENT => package_event(package).map(Some),
        cmd::VM_BINARY_EVENT => {
            let body = package
                .buffers
                .first()
                .map(|b| b.data.as_slice())
                .ok_or(CommandError::NoPayload(t))?;
            let (mut event, _) =
                Event::decode_binary(body).map_err(|source| CommandError::Event {
                    package_type: t,
                    source,
                })?;
            event.event_id = package.header.numeric_id;
            Ok(Some(event))
        }
        _ => Ok(None),
    }
}

impl Command {
    /// Recognise a command package. `base64_password` is the peer's protocol >= 6.9.
    pub fn parse(package: &Package, base64_password: bool) -> Result<Command, CommandError> {
        let t = package.header.package_type;
        Ok(match t {
            cmd::USER_LOGIN => Command::Login(LoginRequest::from_event(
                &package_event(package)?,
                base64_password,
            )?),
            cmd::USER_EASY_LOGIN_LOCAL => {
                Command::LoginLocal(LoginLocalRequest::from_event(&package_event(package)?)?)
            }
            cmd::USER_LOGOFF => Command::Logoff,
            cmd::USER_PING => Command::Ping,
            cmd::USER_CANCEL_OPERATION => Command::Cancel {
                job_uuid: required(
                    &package_event(package)?,
                    t,
                    param::FIRST_STR_PARAM,
                    ParamType::STRING,
                )?
                .to_owned(),
            },
            cmd::ATTACH_TO_LOST_TASK => Command::AttachToLostTask {
                task_id: required(
                    &package_event(package)?,
                    t,
                    param::FIRST_STR_PARAM,
                    ParamType::STRING,
                )?
                .to_owned(),
            },
            cmd::USER_GET_HOST_HW_INFO => Command::GetHostInfo {
                flags: command_flags(t, &package_event(package)?)?,
            },
            cmd::DIR_GET_VM_LIST => Command::GetVmList {
                flags: command_flags(t, &package_event(package)?)?,
            },
            cmd::GET_VM_INFO => Command::GetVmInfo {
                vm_uuid: super::vm::parse_vm_info_request(&package_event(package)?)?,
            },
            other if cmd::is_vm_command(other) => {
                match VmRequest::from_event(other, &package_event(package)?)? {
                    Some(request) => Command::Vm(request),
                    None => Command::Other(other),
                }
            }
            other => Command::Other(other),
        })
    }
}

/// The two common parameters as `CProtoCommandBase::ParsePackage` and
/// `CProtoCommandWithoutParams::IsValid` see them: a missing one is added (0), one of another
/// type than UnsignedInt makes the command invalid. Returns the flags, read like
/// `QString::toUInt()` (0 for text that is not a number).
pub(super) fn command_flags(package_type: u32, event: &Event) -> Result<u32, CommandError> {
    for name in [param::FORCE_QUESTIONS_SIGN, param::COMMAND_FLAGS] {
        match event.param(name) {
            Some(p) if p.param_type != ParamType::UNSIGNED_INT => {
                return Err(CommandError::MissingParam {
                    package_type,
                    name,
                    expected: ParamType::UNSIGNED_INT,
                })
            }
            _ => {}
        }
    }
    Ok(event.uint(param::COMMAND_FLAGS).unwrap_or(0))
}

pub(super) fn required<'a>(
    event: &'a Event,
    package_type: u32,
    name: &'static str,
    expected: ParamType,
) -> Result<&'a str, CommandError> {
    match event.param(name) {
        Some(p) if p.param_type == expected => p.as_str().ok_or(CommandError::MissingParam {
            package_type,
            name,
            expected,
        }),
        _ => Err(CommandError::MissingParam {
            package_type,
            name,
            expected,
        }),
    }
}

pub(super) fn optional_uint(
    event: &Event,
    package_type: u32,
    name: &'static str,
) -> Result<Option<u32>, CommandError> {
    match event.string(name) {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| CommandError::BadNumber { package_type, name }),
    }
}
