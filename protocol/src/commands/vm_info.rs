//! The VM info event (`CDspVmDirHelper::fillVmInfo`): what `PrlVm_GetState` (2062) answers
//! and what every VM configuration of a VM list carries in `Settings/Runtime/InternalVmInfo`;
//! and the `<Security>` document it holds (`FillVmSecurity`).
//!
//! Evidence: `prl-disp-service:Dispatcher/Dispatcher/CDspVmDirHelper.cpp` (`fillVmInfo`
//! l.1345-1441, `sendVmInfo` l.1450-1489, `FillVmSecurity` l.3392-3470), `libprlsdk:Sources/
//! SDK/Handles/Vm/PrlHandleVmInfo.cpp` (the getters).

use uuid::Uuid;

use super::document::{parse_i32, parse_u32, DocumentError, DocumentKind};
use super::reply::response_package;
use super::{param, ws_response_event, CommandError, Reply};
use crate::codes::{ErrorCode, VmState};
use crate::event::xml::push_text;
use crate::event::{Event, ParamType};
use crate::package::Package;

const INFO: &str = "vm info event";

/// `VIRTUAL_MACHINE_ADDITION_STATE` `VMAS_NOSTATE`: what the service reports without guest
/// tools.
pub const VMAS_NOSTATE: u32 = 1;

/// `PRL_VM_ACCESS_FOR_OTHERS` (`PrlEnums.h`): `PAO_VM_NOT_SHARED`.
pub const PAO_VM_NOT_SHARED: u32 = 0;
/// `PAO_VM_SHARED_ON_VIEW`: others can see the VM.
pub const PAO_VM_SHARED_ON_VIEW: u32 = 1;
/// `PAO_VM_SHARED_ON_VIEW_AND_RUN`: others can see and run it.
pub const PAO_VM_SHARED_ON_VIEW_AND_RUN: u32 = 2;
/// `PAO_VM_SHARED_ON_FULL_ACCESS`: others have full access.
pub const PAO_VM_SHARED_ON_FULL_ACCESS: u32 = 3;

/// A VM's `<Security>` as the service fills it for one session (`CVmSecurity`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmSecurity {
    /// `Owner`: the owner's user name.
    pub owner: String,
    /// `IsOwner`: the session's user owns the VM.
    pub is_owner: bool,
    /// `AccessForOthers` (`PAO_VM_*`).
    pub access_for_others: u32,
    /// `LockedSign`.
    pub locked: bool,
    /// `ParentalControlEnabled`.
    pub parental_control: bool,
}

const SECURITY: DocumentKind = DocumentKind {
    name: "vm security",
    roots: ["Security", "Security"],
    depth: 3,
    keep: crate::dom::keep_all,
};

impl VmSecurity {
    /// Reads a `<Security>` document (`vminfo_vm_security`).
    pub fn from_xml(text: &str) -> Result<VmSecurity, DocumentError> {
        let root = SECURITY.parse(text)?;
        let f = SECURITY.fields(&root);
        Ok(VmSecurity {
            owner: f.text(&["Owner"]).to_owned(),
            is_owner: f.flag(&["IsOwner"], "IsOwner")?,
            access_for_others: f.uint(&["AccessForOthers"], "AccessForOthers", 0)?,
            locked: f.flag(&["LockedSign"], "LockedSign")?,
            parental_control: f.flag(&["ParentalControlEnabled"], "ParentalControlEnabled")?,
        })
    }

    /// The `<Security>` element at `depth` of a document (`id="-1"` only as a document of its
    /// own, as `CVmSecurity::toString` writes it), with a final newline.
    pub fn to_xml_at(&self, depth: usize) -> String {
        let pad = " ".repeat(depth);
        let mut out = String::with_capacity(400);
        out.push_str(&pad);
        out.push_str(if depth == 0 {
            "<Security dyn_lists=\"\" id=\"-1\">\n"
        } else {
            "<Security dyn_lists=\"\">\n"
        });
        out.push_str(&pad);
        out.push_str(" <AccessControlList dyn_lists=\"AccessControl\"/>\n");
        out.push_str(&pad);
        out.push_str(" <LockedOperationsList dyn_lists=\"LockedOperation\"/>\n");
        let leaf = |out: &mut String, name: &str, value: &str| {
            out.push_str(&pad);
            out.push_str(" <");
            out.push_str(name);
            out.push('>');
            push_text(out, value);
            out.push_str("</");
            out.push_str(name);
            out.push_str(">\n");
        };
        leaf(&mut out, "Owner", &self.owner);
        leaf(&mut out, "IsOwner", bit(self.is_owner));
        leaf(
            &mut out,
            "AccessForOthers",
            &self.access_for_others.to_string(),
        );
        leaf(&mut out, "LockedSign", bit(self.locked));
        leaf(
            &mut out,
            "ParentalControlEnabled",
            bit(self.parental_control),
        );
        out.push_str(&pad);
        out.push_str("</Security>\n");
        out
    }
}

fn bit(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

/// The VM info event of `fillVmInfo`, read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmInfo {
    /// `vminfo_vm_state`; `None` when the event has no state (`PrlVmInfo_GetState` then fails
    /// with `PRL_ERR_NO_DATA`), e.g. the entry of a VM the session may not read.
    pub state: Option<VmState>,
    /// `vminfo_vm_is_invalid`: the access check failed.
    pub is_invalid: bool,
    /// `vminfo_vm_valid_rc`: the access check's result.
    pub valid_rc: ErrorCode,
    /// `vminfo_vm_security`: the `<Security>` XML ([`VmInfo::security`] reads it).
    pub security_xml: String,
    /// `vminfo_vm_is_vnc_server_started`.
    pub vnc_server_started: bool,
    /// `vminfo_vm_addition_state` (`VIRTUAL_MACHINE_ADDITION_STATE`).
    pub addition_state: u32,
    /// `vminfo_is_vm_waiting_for_answer`.
    pub waiting_for_answer: bool,
}

impl VmInfo {
    /// The info of a VM in `state` that the session may read, as a service fills it.
    pub fn new(state: VmState, security: &VmSecurity) -> VmInfo {
        VmInfo {
            state: Some(state),
            is_invalid: false,
            valid_rc: ErrorCode::SUCCESS,
            security_xml: security.to_xml_at(0),
            vnc_server_started: false,
            addition_state: VMAS_NOSTATE,
            waiting_for_answer: false,
        }
    }

    /// The state, [`VmState::UNKNOWN`] when the event has none.
    pub fn state_or_unknown(&self) -> VmState {
        self.state.unwrap_or(VmState::UNKNOWN)
    }

    /// Reads the event (tolerant like the SDK's getters: an absent parameter reads as its
    /// default; a malformed number is an error).
    pub fn from_event(event: &Event) -> Result<VmInfo, DocumentError> {
        let int = |name: &'static str| -> Result<Option<i32>, DocumentError> {
            event
                .string(name)
                .filter(|t| !t.is_empty())
                .map(|t| parse_i32(INFO, name, t))
                .transpose()
        };
        let uint = |name: &'static str| -> Result<Option<u32>, DocumentError> {
            event
                .string(name)
                .filter(|t| !t.is_empty())
                .map(|t| parse_u32(INFO, name, t))
                .transpose()
        };
        Ok(VmInfo {
            state: int(param::VMINFO_STATE)?.map(|v| VmState(v as u32)),
            is_invalid: int(param::VMINFO_IS_INVALID)?.unwrap_or(0) != 0,
            valid_rc: ErrorCode(int(param::VMINFO_VALID_RC)?.unwrap_or(0) as u32),
            security_xml: event
                .string(param::VMINFO_SECURITY)
                .unwrap_or_default()
                .to_owned(),
            vnc_server_started: uint(param::VMINFO_VNC_SERVER_STARTED)?.unwrap_or(0) != 0,
            addition_state: uint(param::VMINFO_ADDITION_STATE)?.unwrap_or(0),
            waiting_for_answer: uint(param::VMINFO_WAITING_FOR_ANSWER)?.unwrap_or(0) != 0,
        })
    }

    /// The `<Security>` the event carries, if any.
    pub fn security(&self) -> Result<Option<VmSecurity>, DocumentError> {
        if self.security_xml.trim().is_empty() {
            return Ok(None);
        }
        VmSecurity::from_xml(&self.security_xml).map(Some)
    }

    /// The event as `fillVmInfo` builds it: `setDefaults()` with `EventIssuerId` and
    /// `EventInitialRequestId` emptied, then the seven parameters in the service's order.
    /// Without a state (`state: None`) the event has no parameters at all, as the entry of a
    /// VM whose `fillVmInfo` failed.
    pub fn to_event(&self) -> Event {
        let mut e = Event::default();
        let Some(state) = self.state else {
            return e;
        };
        e.add_int(param::VMINFO_IS_INVALID, i32::from(self.is_invalid))
            .add_int(param::VMINFO_VALID_RC, self.valid_rc.as_signed())
            .add_int(param::VMINFO_STATE, state.as_signed())
            .add_string(param::VMINFO_SECURITY, self.security_xml.as_str())
            .add_uint(
                param::VMINFO_VNC_SERVER_STARTED,
                u32::from(self.vnc_server_started),
            )
            .add_uint(param::VMINFO_ADDITION_STATE, self.addition_state)
            .add_uint(
                param::VMINFO_WAITING_FOR_ANSWER,
                u32::from(self.waiting_for_answer),
            );
        e
    }

    /// The event of a list entry asked for with `PGVLF_GET_STATE_INFO`: only the state.
    pub fn state_only_event(state: VmState) -> Event {
        let mut e = Event::default();
        e.add_int(param::VMINFO_STATE, state.as_signed());
        e
    }

    /// Reads the reply to 2062 (`ws_response_cmd_vm_event`).
    pub fn from_reply(reply: &Reply) -> Result<VmInfo, CommandError> {
        let t = crate::codes::cmd::WS_RESPONSE;
        let xml =
            reply
                .string_param(param::WS_RESPONSE_VM_EVENT)
                .ok_or(CommandError::MissingParam {
                    package_type: t,
                    name: param::WS_RESPONSE_VM_EVENT,
                    expected: ParamType::STRING,
                })?;
        let event = Event::from_xml(xml).map_err(|source| CommandError::Event {
            package_type: t,
            source,
        })?;
        Ok(VmInfo::from_event(&event)?)
    }
}

/// The successful reply to 2062 (`sendVmInfo`): one String parameter
/// `ws_response_cmd_vm_event` holding the info event's XML.
pub fn vm_info_reply(
    request: &Package,
    sender: Uuid,
    reply_uuid: Uuid,
    info: &VmInfo,
    ids: &mut dyn FnMut() -> Uuid,
) -> Package {
    let mut event = ws_response_event(request.header.package_type, ErrorCode::SUCCESS, ids);
    event.add_string(param::WS_RESPONSE_VM_EVENT, info.to_event().to_xml());
    response_package(request, sender, reply_uuid, &event)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security() -> VmSecurity {
        VmSecurity {
            owner: "root".into(),
            is_owner: true,
            access_for_others: 0,
            locked: false,
            parental_control: true,
        }
    }

    #[test]
    fn security_is_written_as_the_service_writes_it() {
        // `vminfo_vm_security` of ops-wire/vm-config-example.xml (unescaped).
        let expected = "<Security dyn_lists=\"\" id=\"-1\">\n \
            <AccessControlList dyn_lists=\"AccessControl\"/>\n \
            <LockedOperationsList dyn_lists=\"LockedOperation\"/>\n <Owner>root</Owner>\n \
            <IsOwner>1</IsOwner>\n <AccessForOthers>0</AccessForOthers>\n \
            <LockedSign>0</LockedSign>\n <ParentalControlEnabled>1</ParentalControlEnabled>\n\
            </Security>\n";
        assert_eq!(security().to_xml_at(0), expected);
        assert_eq!(VmSecurity::from_xml(expected).unwrap(), security());
        assert!(security()
            .to_xml_at(1)
            .starts_with(" <Security dyn_lists=\"\">\n"));
    }

    #[test]
    fn info_event_round_trips_and_missing_state_reads_as_none() {
        let info = VmInfo::new(VmState::RUNNING, &security());
        let event = info.to_event();
        let names: Vec<&str> = event.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "vminfo_vm_is_invalid",
                "vminfo_vm_valid_rc",
                "vminfo_vm_state",
                "vminfo_vm_security",
                "vminfo_vm_is_vnc_server_started",
                "vminfo_vm_addition_state",
                "vminfo_is_vm_waiting_for_answer"
            ]
        );
        assert!(event.issuer_id.is_empty() && event.initial_request_id.is_empty());
        let back = VmInfo::from_event(&Event::from_xml(&event.to_xml()).unwrap()).unwrap();
        assert_eq!(back, info);
        assert_eq!(back.security().unwrap(), Some(security()));
        let none = VmInfo::from_event(&Event::default()).unwrap();
        assert_eq!(none.state, None);
        assert_eq!(none.state_or_unknown(), VmState::UNKNOWN);
        assert_eq!(none.security().unwrap(), None);
        assert!(VmInfo {
            state: None,
            ..info
        }
        .to_event()
        .params
        .is_empty());
    }

    #[test]
    fn bad_numbers_are_typed_errors() {
        let mut e = Event::default();
        e.add_string(param::VMINFO_STATE, "running");
        let err = VmInfo::from_event(&e).unwrap_err();
        assert_eq!(err.kind(), "bad_number");
        // Unsigned printing of a state reads like the signed one.
        let mut e = Event::default();
        e.add_string(param::VMINFO_STATE, "805306372");
        e.add_string(param::VMINFO_VALID_RC, "2147484217");
        let info = VmInfo::from_event(&e).unwrap();
        assert_eq!(info.state, Some(VmState::RUNNING));
        assert_eq!(info.valid_rc, ErrorCode::ACCESS_TO_VM_DENIED);
    }
}
