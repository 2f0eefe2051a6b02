//! Host information: `PrlSrv_GetSrvConfig` → `DspCmdUserGetHostHwInfo` (2051), answered with
//! the host hardware info XML (`CHostHardwareInfo`, libprlxmlmodel `Schema/HostHardwareInfo.xsd`)
//! in the String parameter `ws_response_cmd_host_hardware_info`
//! (`CDspShellHelper::sendHostHardwareInfo`).
//!
//! Format (ops-wire.md §8): root `<VirtuozzoHostInfo>` (legacy `<ParallelsHostInfo>` accepted),
//! no prolog, no schema version. A real Linux service never fills
//! `NetworkSettings/GlobalNetwork/HostName` (§8.3): an empty host name is normal. The service
//! adds a default CD-ROM when the host has none. The writer fills the realistic document the real
//! `libprl_xml_model` parsed (`host_info.xml`, from ops-wire's `host-info-example.xml`).

use uuid::Uuid;

use super::document::{fill_template, DocumentError, DocumentKind, Slot};
use super::reply::response_package;
use super::request::command_flags;
use super::spec::RequestSpec;
use super::{param, ws_response_event, CommandError, Reply};
use crate::codes::{cmd, ErrorCode};
use crate::event::{Event, ParamType};
use crate::package::Package;

/// The document's root tag as the writer writes it.
pub const HOST_INFO_ROOT: &str = "VirtuozzoHostInfo";

const DOC: DocumentKind = DocumentKind {
    name: "host hardware info",
    roots: [HOST_INFO_ROOT, "ParallelsHostInfo"],
    depth: 4,
    keep: crate::dom::keep_all,
};

const TEMPLATE: &str = include_str!("host_info.xml");

/// `PRL_HOST_OS_TYPE` `PHO_LIN`.
pub const PHO_LIN: u32 = 1;
/// `PRL_CPU_MODE` `PCM_CPU_MODE_64`.
pub const PCM_CPU_MODE_64: u32 = 1;

/// What `PrlSrvCfg_*` read of the host hardware info.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostInfo {
    /// `Cpu/Number`: logical CPUs (`PrlSrvCfg_GetCpuCount`).
    pub cpu_count: u32,
    /// `Cpu/Model` (`PrlSrvCfg_GetCpuModel`).
    pub cpu_model: String,
    /// `Cpu/Speed`, MHz (`PrlSrvCfg_GetCpuSpeed`).
    pub cpu_speed_mhz: u32,
    /// `Cpu/Mode` (`PCM_CPU_MODE_*`).
    pub cpu_mode: u32,
    /// `Cpu/VtxMode` (`PCM_CPU_NONE_HV` 0, Intel VT-x 1, AMD-V 2).
    pub vtx_mode: u32,
    /// `MemorySettings/HostRamSize`, MiB (`PrlSrvCfg_GetHostRamSize`).
    pub ram_mb: u32,
    /// `OsVersion/Type` (`PHO_*`: 0 Mac, 1 Linux, 2 Windows).
    pub os_type: u32,
    /// `OsVersion/Major`.
    pub os_major: u32,
    /// `OsVersion/Minor`.
    pub os_minor: u32,
    /// `OsVersion/SubMinor`.
    pub os_sub_minor: u32,
    /// `OsVersion/StringPresentation`, e.g. `Virtuozzo Linux release 9.0 (5.14.0-...)`.
    pub os_name: String,
    /// `NetworkSettings/GlobalNetwork/HostName` (`PrlSrvCfg_GetHostname`): empty from a real
    /// Linux service.
    pub host_name: String,
    /// `OsVersion/VzRunning`.
    pub vz_running: bool,
    /// The document as received (empty for one built to be written).
    pub raw: String,
}

impl HostInfo {
    /// Reads a host hardware info document.
    pub fn from_xml(text: &str) -> Result<HostInfo, DocumentError> {
        let root = DOC.parse(text)?;
        let f = DOC.fields(&root);
        Ok(HostInfo {
            cpu_count: f.uint(&["Cpu", "Number"], "Cpu/Number", 0)?,
            cpu_model: f.text(&["Cpu", "Model"]).to_owned(),
            cpu_speed_mhz: f.uint(&["Cpu", "Speed"], "Cpu/Speed", 0)?,
            cpu_mode: f.uint(&["Cpu", "Mode"], "Cpu/Mode", 0)?,
            vtx_mode: f.uint(&["Cpu", "VtxMode"], "Cpu/VtxMode", 0)?,
            ram_mb: f.uint(
                &["MemorySettings", "HostRamSize"],
                "MemorySettings/HostRamSize",
                0,
            )?,
            os_type: f.uint(&["OsVersion", "Type"], "OsVersion/Type", 0)?,
            os_major: f.uint(&["OsVersion", "Major"], "OsVersion/Major", 0)?,
            os_minor: f.uint(&["OsVersion", "Minor"], "OsVersion/Minor", 0)?,
            os_sub_minor: f.uint(&["OsVersion", "SubMinor"], "OsVersion/SubMinor", 0)?,
            os_name: f.text(&["OsVersion", "StringPresentation"]).to_owned(),
            host_name: f
                .text(&["NetworkSettings", "GlobalNetwork", "HostName"])
                .to_owned(),
            vz_running: f.flag(&["OsVersion", "VzRunning"], "OsVersion/VzRunning")?,
            raw: text.to_owned(),
        })
    }

    /// Reads the reply to 2051.
    pub fn from_reply(reply: &Reply) -> Result<HostInfo, CommandError> {
        let xml = reply.string_param(param::WS_RESPONSE_HOST_HW_INFO).ok_or(
            CommandError::MissingParam {
                package_type: cmd::WS_RESPONSE,
                name: param::WS_RESPONSE_HOST_HW_INFO,
                expected: ParamType::STRING,
            },
        )?;
        Ok(HostInfo::from_xml(xml)?)
    }

    /// The document as the real serializer writes it (`CHostHardwareInfo::toString()`), with
    /// the service's default CD-ROM; `raw` is not used.
    pub fn to_xml(&self) -> String {
        // What `RecommendedMaxMemory` is for the example host (57344 of 64216 MiB).
        let recommended = u64::from(self.ram_mb) * 57_344 / 64_216;
        fill_template(TEMPLATE, |key| {
            Some(Slot::Text(match key {
                "recommended_mb" => recommended.to_string(),
                "ram_mb" => self.ram_mb.to_string(),
                "host_name" => self.host_name.clone(),
                "cpu_count" => self.cpu_count.to_string(),
                "cpu_model" => self.cpu_model.clone(),
                "cpu_mode" => self.cpu_mode.to_string(),
                "cpu_speed" => self.cpu_speed_mhz.to_string(),
                "vtx_mode" => self.vtx_mode.to_string(),
                "os_type" => self.os_type.to_string(),
                "os_major" => self.os_major.to_string(),
                "os_minor" => self.os_minor.to_string(),
                "os_sub_minor" => self.os_sub_minor.to_string(),
                "os_name" => self.os_name.clone(),
                "vz_running" => u8::from(self.vz_running).to_string(),
                _ => return None,
            }))
        })
    }
}

/// `PrlSrv_GetSrvConfig` (2051): a command without parameters of its own, flags 0.
pub fn host_info_request() -> RequestSpec {
    RequestSpec::new(cmd::USER_GET_HOST_HW_INFO, 0)
}

/// Reads a command without parameters of its own (2051, 2029) as
/// `CProtoCommandWithoutParams::IsValid` does; returns its flags.
pub fn parse_without_params(package_type: u32, event: &Event) -> Result<u32, CommandError> {
    command_flags(package_type, event)
}

/// The reply to 2051: SUCCESS with `ws_response_cmd_host_hardware_info`.
pub fn host_info_reply(
    request: &Package,
    sender: Uuid,
    reply_uuid: Uuid,
    host_xml: &str,
    ids: &mut dyn FnMut() -> Uuid,
) -> Package {
    let mut event = ws_response_event(request.header.package_type, ErrorCode::SUCCESS, ids);
    event.add_string(param::WS_RESPONSE_HOST_HW_INFO, host_xml);
    response_package(request, sender, reply_uuid, &event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_fills_every_slot_and_reads_back() {
        let host = HostInfo {
            cpu_count: 4,
            cpu_model: "AMD EPYC <7763>".into(),
            cpu_speed_mhz: 2450,
            cpu_mode: PCM_CPU_MODE_64,
            vtx_mode: 2,
            ram_mb: 16_000,
            os_type: PHO_LIN,
            os_major: 6,
            os_minor: 1,
            os_sub_minor: 0,
            os_name: "Linux Version 6.1.0 & co".into(),
            host_name: String::new(),
            vz_running: false,
            raw: String::new(),
        };
        let xml = host.to_xml();
        assert!(!xml.contains("{{"));
        assert!(xml.contains("<Model>AMD EPYC &lt;7763></Model>"), "{xml}");
        let back = HostInfo::from_xml(&xml).unwrap();
        assert_eq!(
            back,
            HostInfo {
                raw: xml.clone(),
                ..host
            }
        );
    }
}
