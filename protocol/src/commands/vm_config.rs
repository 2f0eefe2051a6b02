//! The VM configuration XML (`CVmConfiguration`, libprlxmlmodel `Schema/VmConfig.xsd`): one
//! per VM in a VM list reply (2029). The client reads a [`VmSummary`] of it; the service side
//! writes a [`VmConfig`] into the real serializer's document.
//!
//! Format (ops-wire.md §7): root `<VirtuozzoVirtualMachine>` (the reader also accepts the legacy
//! `<ParallelsVirtualMachine>`), no prolog; the state is the `vminfo_vm_state` of the VM info
//! event nested in `Settings/Runtime/InternalVmInfo` (written `<ParallelsEvent>`). The real
//! parser rejects a document in which a present section lacks one of its required children, so
//! the writer fills the whole realistic document the real serializer produced
//! (`vm_config.xml`, made from ops-wire's `vm-config-example.xml`, which the real
//! `libprl_xml_model` re-parsed), replacing only its values.
//!
//! The reader is tolerant as the spec asks: it takes the first element of each name, reads
//! absent fields as 0 / empty, needs only `Identification/VmUuid`, and keeps the document
//! (`raw`).

use super::document::{fill_template, DocumentError, DocumentKind, Fields, Slot};
use super::vm_info::{VmInfo, VmSecurity};
use super::Reply;
use crate::codes::{ErrorCode, VmState};
use crate::event::xml::{read_element, ROOT_TAGS};
use crate::event::Event;
use crate::package::Package;
use uuid::Uuid;

/// The document's root tag as the writer writes it.
pub const VM_CONFIG_ROOT: &str = "VirtuozzoVirtualMachine";

const DOC: DocumentKind = DocumentKind {
    name: "vm configuration",
    roots: [VM_CONFIG_ROOT, "ParallelsVirtualMachine"],
    // root > Settings > Runtime > InternalVmInfo > ParallelsEvent > EventParameters >
    // EventParameter > Value > ListItem.
    depth: 9,
    keep: summary_elements,
};

/// The elements a [`VmSummary`] reads (a realistic configuration has ~570; these are ~60).
fn summary_elements(depth: usize, parent: &str, name: &str) -> bool {
    match depth {
        2 => matches!(
            name,
            "Identification" | "Security" | "Settings" | "Hardware" | "ValidRc" | "VmType"
        ),
        3 => match parent {
            "Identification" => matches!(name, "VmUuid" | "VmName" | "VmHome"),
            "Security" => true,
            "Settings" => matches!(name, "General" | "Runtime" | "GlobalNetwork"),
            "Hardware" => matches!(name, "Cpu" | "Memory"),
            _ => false,
        },
        4 => match parent {
            "General" => matches!(name, "OsType" | "OsNumber" | "IsTemplate" | "VmDescription"),
            "Runtime" => name == "InternalVmInfo",
            "GlobalNetwork" => name == "HostName",
            "Cpu" => name == "Number",
            "Memory" => name == "RAM",
            _ => false,
        },
        // Below depth 4 only the kept leaves' children and the InternalVmInfo event remain.
        _ => true,
    }
}

/// The real serializer's document with its values replaced by `{{slots}}`.
const TEMPLATE: &str = include_str!("vm_config.xml");

/// `VmType`: a virtual machine (`PVT_VM`).
pub const PVT_VM: u32 = 0;
/// `VmType`: a container (`PVT_CT`).
pub const PVT_CT: u32 = 1;

/// What a console needs of a VM configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmSummary {
    /// `Identification/VmUuid`, `{...}` as the service sends it (send it back unchanged).
    pub uuid: String,
    /// `Identification/VmName`.
    pub name: String,
    /// `Identification/VmHome`: the configuration file's path (empty when not sent).
    pub home: String,
    /// `Settings/General/VmDescription`.
    pub description: String,
    /// `Settings/General/OsType` (`PVS_GUEST_TYPE_*`: 8 Windows, 9 Linux, ...).
    pub os_type: u32,
    /// `Settings/General/OsNumber` (`PVS_GUEST_VER_*`, type << 8 | n).
    pub os_version: u32,
    /// `Hardware/Cpu/Number`.
    pub cpu_count: u32,
    /// `Hardware/Memory/RAM`, MiB.
    pub ram_mb: u32,
    /// `Settings/General/IsTemplate`.
    pub is_template: bool,
    /// `ValidRc`: not 0 for an entry the session cannot read (`PRL_ERR_ACCESS_TO_VM_DENIED`,
    /// ...), which then carries only name, uuid and type.
    pub valid_rc: ErrorCode,
    /// `VmType` ([`PVT_VM`] or [`PVT_CT`]).
    pub vm_type: u32,
    /// `Settings/GlobalNetwork/HostName`: the guest's host name.
    pub host_name: String,
    /// The `Security` section as filled for the session, if present.
    pub security: Option<VmSecurity>,
    /// The VM info event of `Settings/Runtime/InternalVmInfo`, if present.
    pub info: Option<VmInfo>,
    /// The document as received.
    pub raw: String,
}

impl VmSummary {
    /// The VM's state: `None` when the entry carries none (no info event, or one without
    /// `vminfo_vm_state`, as for a VM the session may not read).
    pub fn state(&self) -> Option<VmState> {
        self.info.as_ref().and_then(|i| i.state)
    }

    /// Reads a VM configuration document.
    pub fn from_xml(text: &str) -> Result<VmSummary, DocumentError> {
        let root = DOC.parse(text)?;
        let f = DOC.fields(&root);
        let uuid = f.required(&["Identification", "VmUuid"], "Identification/VmUuid")?;
        let security = match f.element(&["Security"]) {
            Some(_) => Some(security(&f)?),
            None => None,
        };
        let info = match f
            .element(&["Settings", "Runtime", "InternalVmInfo"])
            .and_then(|e| e.elements().find(|c| ROOT_TAGS.contains(&c.name.as_str())))
        {
            Some(event) => {
                let event = read_element(event).map_err(|source| DocumentError::Event {
                    document: DOC.name,
                    source,
                })?;
                Some(VmInfo::from_event(&event)?)
            }
            None => None,
        };
        Ok(VmSummary {
            uuid: uuid.to_owned(),
            name: f.text(&["Identification", "VmName"]).to_owned(),
            home: f.text(&["Identification", "VmHome"]).to_owned(),
            description: f.text(&["Settings", "General", "VmDescription"]).to_owned(),
            os_type: f.uint(&["Settings", "General", "OsType"], "OsType", 0)?,
            os_version: f.uint(&["Settings", "General", "OsNumber"], "OsNumber", 0)?,
            cpu_count: f.uint(&["Hardware", "Cpu", "Number"], "Cpu/Number", 0)?,
            ram_mb: f.uint(&["Hardware", "Memory", "RAM"], "Memory/RAM", 0)?,
            is_template: f.flag(&["Settings", "General", "IsTemplate"], "IsTemplate")?,
            valid_rc: ErrorCode(f.int(&["ValidRc"], "ValidRc", 0)? as u32),
            vm_type: f.uint(&["VmType"], "VmType", PVT_VM)?,
            host_name: f
                .text(&["Settings", "GlobalNetwork", "HostName"])
                .to_owned(),
            security,
            info,
            raw: text.to_owned(),
        })
    }
}

fn security(f: &Fields<'_>) -> Result<VmSecurity, DocumentError> {
    Ok(VmSecurity {
        owner: f.text(&["Security", "Owner"]).to_owned(),
        is_owner: f.flag(&["Security", "IsOwner"], "Security/IsOwner")?,
        access_for_others: f.uint(
            &["Security", "AccessForOthers"],
            "Security/AccessForOthers",
            0,
        )?,
        locked: f.flag(&["Security", "LockedSign"], "Security/LockedSign")?,
        parental_control: f.flag(
            &["Security", "ParentalControlEnabled"],
            "Security/ParentalControlEnabled",
        )?,
    })
}

/// Every VM of a VM list reply (2029), in order: one result per `ws_response_cmd_standard_param`
/// (an entry that does not read is an error of its own, as `PrlResult_GetParamByIndex` fails for
/// it while the others read).
pub fn vm_list_from_reply(reply: &Reply) -> Vec<Result<VmSummary, DocumentError>> {
    reply
        .standard_params()
        .into_iter()
        .map(VmSummary::from_xml)
        .collect()
}

/// A VM configuration as a service fills it before listing it (`appendAdvancedParamsToVmConfig`:
/// home, change data, `CtId`, the session's `Security`, the VM info event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmConfig {
    /// `{lower-case uuid}`.
    pub uuid: String,
    /// The name.
    pub name: String,
    /// The server uuid, `{...}`.
    pub server_uuid: String,
    /// The configuration file, e.g. `/vz/vmprivate/<uuid>/config.pvs`.
    pub home: String,
    /// `VmDescription`.
    pub description: String,
    /// `OsType`.
    pub os_type: u32,
    /// `OsNumber`.
    pub os_version: u32,
    /// `IsTemplate`.
    pub is_template: bool,
    /// CPUs.
    pub cpu_count: u32,
    /// RAM, MiB.
    pub ram_mb: u32,
    /// The one hard disk's size, MiB.
    pub disk_mb: u32,
    /// The one network adapter's MAC, 12 upper-case hex digits.
    pub mac: String,
    /// The guest's host name.
    pub host_name: String,
    /// `VmCreationDate`, `yyyy-MM-dd hh:mm:ss`.
    pub created: String,
    /// `ChangeDateTime`, `yyyy-MM-dd hh:mm:ss`.
    pub changed: String,
    /// `VmUptimeStartDateTime`, `yyyy-MM-dd hh:mm:ss`.
    pub started: String,
    /// `ValidRc`.
    pub valid_rc: ErrorCode,
    /// `VmType`.
    pub vm_type: u32,
    /// The session's view of the VM's security.
    pub security: VmSecurity,
    /// The event of `InternalVmInfo` ([`VmInfo::to_event`], [`VmInfo::state_only_event`], or
    /// an event without parameters for an entry without state).
    pub info: Event,
}

impl VmConfig {
    /// `CtId`: `Uuid::toVzid`, the uuid's first four bytes big-endian with the top bit cleared.
    pub fn ct_id(&self) -> String {
        crate::parse_uuid(&self.uuid)
            .map(|u| {
                let b = u.as_bytes();
                (u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & 0x7FFF_FFFF).to_string()
            })
            .unwrap_or_default()
    }

    /// The document, as the real serializer writes it (`CVmConfiguration::toString()`).
    pub fn to_xml(&self) -> String {
        let disk = match self.home.strip_suffix("/config.pvs") {
            Some(dir) => format!("{dir}/harddisk.hdd"),
            None => format!("{}/harddisk.hdd", self.home.trim_end_matches('/')),
        };
        let b = |v: bool| u8::from(v).to_string();
        fill_template(TEMPLATE, |key| {
            Some(match key {
                "uuid" => Slot::Text(self.uuid.clone()),
                "name" => Slot::Text(self.name.clone()),
                "server_uuid" => Slot::Text(self.server_uuid.clone()),
                "home" => Slot::Text(self.home.clone()),
                "changed" => Slot::Text(self.changed.clone()),
                "uptime_start" => Slot::Text(self.started.clone()),
                "created" => Slot::Text(self.created.clone()),
                "ct_id" => Slot::Text(self.ct_id()),
                "valid_rc" => Slot::Text(self.valid_rc.as_signed().to_string()),
                "vm_type" => Slot::Text(self.vm_type.to_string()),
                "security" => Slot::Raw(self.security.to_xml_at(1)),
                "os_type" => Slot::Text(self.os_type.to_string()),
                "os_number" => Slot::Text(self.os_version.to_string()),
                "description" => Slot::Text(self.description.clone()),
                "is_template" => Slot::Text(b(self.is_template)),
                "vm_info" => Slot::Raw(self.info.to_xml_nested(4)),
                "host_name" => Slot::Text(self.host_name.clone()),
                "cpu_count" => Slot::Text(self.cpu_count.to_string()),
                "ram_mb" => Slot::Text(self.ram_mb.to_string()),
                "disk_path" => Slot::Text(disk.clone()),
                "disk_mb" => Slot::Text(self.disk_mb.to_string()),
                "mac" => Slot::Text(self.mac.clone()),
                _ => return None,
            })
        })
    }
}

/// The reply to 2029: one standard parameter per configuration (`SetParamsList`).
pub fn vm_list_reply(
    request: &Package,
    sender: Uuid,
    reply_uuid: Uuid,
    entries: &[String],
    ids: &mut dyn FnMut() -> Uuid,
) -> Package {
    let entries: Vec<&str> = entries.iter().map(String::as_str).collect();
    super::simple_response(
        request,
        sender,
        reply_uuid,
        ErrorCode::SUCCESS,
        &entries,
        ids,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes::VmState;

    pub(crate) fn config() -> VmConfig {
        VmConfig {
            uuid: "{5e1c3c1a-0b7d-4c2e-9f5a-1d2c3b4a5f60}".into(),
            name: "web-01".into(),
            server_uuid: "{9a3e2f10-5b7c-4d8e-a1f2-3c4d5e6f7a80}".into(),
            home: "/vz/vmprivate/5e1c3c1a-0b7d-4c2e-9f5a-1d2c3b4a5f60/config.pvs".into(),
            description: "nginx front end".into(),
            os_type: 9,
            os_version: 2314,
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
            vm_type: PVT_VM,
            security: VmSecurity {
                owner: "root".into(),
                is_owner: true,
                access_for_others: 0,
                locked: false,
                parental_control: true,
            },
            info: VmInfo::new(
                VmState::RUNNING,
                &VmSecurity {
                    owner: "root".into(),
                    is_owner: true,
                    access_for_others: 0,
                    locked: false,
                    parental_control: true,
                },
            )
            .to_event(),
        }
    }

    #[test]
    fn the_template_has_no_slot_left_and_the_writer_reads_back() {
        let xml = config().to_xml();
        assert!(!xml.contains("{{"), "a slot is left");
        assert!(xml
            .starts_with("<VirtuozzoVirtualMachine dyn_lists=\"VirtualAppliance 0\" id=\"-1\">\n"));
        let s = VmSummary::from_xml(&xml).unwrap();
        assert_eq!(s.uuid, config().uuid);
        assert_eq!(s.name, "web-01");
        assert_eq!(s.state(), Some(VmState::RUNNING));
        assert_eq!(
            (s.os_type, s.os_version, s.cpu_count, s.ram_mb),
            (9, 2314, 2, 2048)
        );
        assert_eq!(s.security, Some(config().security));
        assert_eq!(s.raw, xml);
    }
}
