//! The simulator's host and VMs: what `PrlSrv_GetSrvConfig`, `PrlSrv_GetVmList` and the VM
//! operations see. With no inventory file prl-sim serves [`Inventory::demo`] (four VMs: two
//! running, one stopped, one suspended); `--vms FILE` reads another from TOML:
//!
//! ```toml
//! [host]                      # optional; every field optional (default: this machine)
//! hostname = "node1.example.test"   # NetworkSettings/GlobalNetwork/HostName ("" on a real host)
//! cpu_count = 16
//! cpu_model = "Intel(R) Xeon(R) Gold 6230R CPU @ 2.10GHz"
//! cpu_speed_mhz = 2100
//! ram_mb = 65536
//! os = "Virtuozzo Linux release 9.0 (5.14.0-362.vz9.26.1.x86_64)"
//!
//! [[vm]]
//! name = "web-01"             # required, unique, at most 255 bytes
//! uuid = "5e1c3c1a-0b7d-4c2e-9f5a-1d2c3b4a5f60"   # optional (braces optional): default
//!                             # derived from the name, stable across runs
//! state = "running"           # stopped (default) | running | paused | suspended
//! os = "ubuntu"               # a guest OS name (see `GUEST_OSES`), or os_type + os_version
//! cpus = 2                    # 1..=256, default 1
//! ram_mb = 2048               # 64..=4194304, default 1024
//! disk_mb = 65536             # 1..=67108864, default 65536
//! description = "nginx front end"
//! hostname = "web-01.example.test"
//! owner = "alice"             # optional: the owning user (default: root, shared with all)
//! others = "none"             # access of other users: none | view | run | full (default full)
//! template = false            # a template: listed stopped, cannot be started
//! ```
//!
//! Unknown keys, duplicate names or uuids, a malformed uuid, an unknown state or OS and
//! out-of-range numbers are [`InventoryError`]s naming the VM.

use std::path::Path;

use openssl::sha::sha256;
use prl_protocol::codes::VmState;
use prl_protocol::commands::{
    HostInfo, PAO_VM_NOT_SHARED, PAO_VM_SHARED_ON_FULL_ACCESS, PAO_VM_SHARED_ON_VIEW,
    PAO_VM_SHARED_ON_VIEW_AND_RUN, PCM_CPU_MODE_64, PHO_LIN,
};
use prl_protocol::{parse_uuid, uuid_string, Uuid};
use serde::Deserialize;

/// Most VMs an inventory may hold.
pub const MAX_VMS: usize = 10_000;
/// Longest VM name, in bytes.
pub const MAX_VM_NAME_BYTES: usize = 255;

/// Guest OS names an inventory may use for `os`: (name, `PVS_GUEST_TYPE_*`,
/// `PVS_GUEST_VER_*`), from libprlsdk `PrlOses.h`.
pub const GUEST_OSES: &[(&str, u32, u32)] = &[
    ("windows10", 8, 0x080F),
    ("windows11", 8, 0x0813),
    ("win2016", 8, 0x0810),
    ("win2019", 8, 0x0811),
    ("win2022", 8, 0x0812),
    ("windows", 8, 0x08FF),
    ("ubuntu", 9, 0x090A),
    ("debian", 9, 0x0906),
    ("fedora", 9, 0x0907),
    ("opensuse", 9, 0x090F),
    ("centos7", 9, 0x0914),
    ("centos8", 9, 0x091B),
    ("rhel7", 9, 0x0913),
    ("rhel8", 9, 0x091A),
    ("rhel9", 9, 0x091F),
    ("almalinux9", 9, 0x0920),
    ("vzlinux8", 9, 0x091C),
    ("linux", 9, 0x09FF),
    ("other", 0xFF, 0xFF),
];

/// Why an inventory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The file cannot be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// Not TOML of the documented shape (unknown key, wrong type...).
    #[error("{0}")]
    Toml(String),
    /// More VMs than [`MAX_VMS`].
    #[error("{0} VMs, the limit is {MAX_VMS}")]
    TooMany(usize),
    /// A VM without a usable name.
    #[error("VM #{index}: the name is empty or longer than {MAX_VM_NAME_BYTES} bytes")]
    BadName {
        /// Its position in the file (from 1).
        index: usize,
    },
    /// Two VMs with the same name.
    #[error("VM {0:?}: the name is used twice")]
    DuplicateName(String),
    /// Two VMs with the same uuid.
    #[error("VM {name:?}: uuid {uuid} is used twice")]
    DuplicateUuid {
        /// The second VM's name.
        name: String,
        /// The uuid.
        uuid: String,
    },
    /// A uuid that does not parse.
    #[error("VM {name:?}: {uuid:?} is not a uuid")]
    BadUuid {
        /// The VM.
        name: String,
        /// What was given.
        uuid: String,
    },
    /// A state other than stopped, running, paused, suspended.
    #[error("VM {name:?}: state {state:?} is not one of stopped, running, paused, suspended")]
    BadState {
        /// The VM.
        name: String,
        /// What was given.
        state: String,
    },
    /// An OS name the table does not have, or `os` together with `os_type`.
    #[error("VM {name:?}: {why}")]
    BadOs {
        /// The VM.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// An access level other than none, view, run, full.
    #[error("VM {name:?}: others = {value:?} is not one of none, view, run, full")]
    BadAccess {
        /// The VM.
        name: String,
        /// What was given.
        value: String,
    },
    /// A number out of its range.
    #[error("VM {name:?}: {field} = {value} is out of range {min}..={max}")]
    OutOfRange {
        /// The VM (or `[host]`).
        name: String,
        /// The field.
        field: &'static str,
        /// What was given.
        value: u64,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
    },
}

impl InventoryError {
    /// A stable snake_case name of the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Read { .. } => "read",
            Self::Toml(_) => "toml",
            Self::TooMany(_) => "too_many",
            Self::BadName { .. } => "bad_name",
            Self::DuplicateName(_) => "duplicate_name",
            Self::DuplicateUuid { .. } => "duplicate_uuid",
            Self::BadUuid { .. } => "bad_uuid",
            Self::BadState { .. } => "bad_state",
            Self::BadOs { .. } => "bad_os",
            Self::BadAccess { .. } => "bad_access",
            Self::OutOfRange { .. } => "out_of_range",
        }
    }
}

/// Who may see and use a VM besides its owner (`PRL_VM_ACCESS_FOR_OTHERS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `PAO_VM_NOT_SHARED`: others cannot read the VM.
    None,
    /// `PAO_VM_SHARED_ON_VIEW`.
    View,
    /// `PAO_VM_SHARED_ON_VIEW_AND_RUN`.
    Run,
    /// `PAO_VM_SHARED_ON_FULL_ACCESS`.
    Full,
}

impl Access {
    fn parse(s: &str) -> Option<Access> {
        Some(match s {
            "none" => Access::None,
            "view" => Access::View,
            "run" => Access::Run,
            "full" => Access::Full,
            _ => return None,
        })
    }

    /// The `AccessForOthers` value.
    pub fn pao(self) -> u32 {
        match self {
            Access::None => PAO_VM_NOT_SHARED,
            Access::View => PAO_VM_SHARED_ON_VIEW,
            Access::Run => PAO_VM_SHARED_ON_VIEW_AND_RUN,
            Access::Full => PAO_VM_SHARED_ON_FULL_ACCESS,
        }
    }
}

/// The owner of VMs that name none.
pub const DEFAULT_OWNER: &str = "root";

/// One VM of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// Its uuid.
    pub uuid: Uuid,
    /// Its name.
    pub name: String,
    /// The state it is in when the simulator starts (a stable state).
    pub state: VmState,
    /// `PVS_GUEST_TYPE_*`.
    pub os_type: u32,
    /// `PVS_GUEST_VER_*`.
    pub os_version: u32,
    /// CPUs.
    pub cpus: u32,
    /// RAM, MiB.
    pub ram_mb: u32,
    /// Disk, MiB.
    pub disk_mb: u32,
    /// `VmDescription`.
    pub description: String,
    /// The guest's host name.
    pub hostname: String,
    /// The owning user.
    pub owner: String,
    /// Access of other users.
    pub others: Access,
    /// A template.
    pub template: bool,
}

impl VmSpec {
    /// A stopped VM called `name` with defaults (1 CPU, 1 GiB, Linux, root's, shared).
    pub fn new(name: &str) -> VmSpec {
        VmSpec {
            uuid: uuid_for_name(name),
            name: name.to_owned(),
            state: VmState::STOPPED,
            os_type: 9,
            os_version: 0x09FF,
            cpus: 1,
            ram_mb: 1024,
            disk_mb: 65536,
            description: String::new(),
            hostname: String::new(),
            owner: DEFAULT_OWNER.to_owned(),
            others: Access::Full,
            template: false,
        }
    }

    /// The uuid as the service writes it, `{lower-case}`.
    pub fn uuid_text(&self) -> String {
        uuid_string(&self.uuid)
    }

    /// Whether `user` may read the VM (the owner, or anyone when it is shared).
    pub fn readable_by(&self, user: &str) -> bool {
        self.owner == user || self.others != Access::None
    }
}

/// The host the simulator reports (`CHostHardwareInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// `GlobalNetwork/HostName`: empty by default, as a real Linux service reports it.
    pub hostname: String,
    /// Logical CPUs.
    pub cpu_count: u32,
    /// CPU model.
    pub cpu_model: String,
    /// MHz.
    pub cpu_speed_mhz: u32,
    /// RAM, MiB.
    pub ram_mb: u32,
    /// `StringPresentation`.
    pub os: String,
    /// Kernel version (major, minor, sub-minor).
    pub kernel: (u32, u32, u32),
}

impl HostSpec {
    /// This machine, read as the service reads it (`/proc/cpuinfo`, `/proc/meminfo`, the
    /// release file and `uname -r`), with fallbacks where that fails.
    pub fn this_machine() -> HostSpec {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |key: &str| {
            cpuinfo
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        };
        let cpu_count = std::thread::available_parallelism()
            .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
            .unwrap_or(1);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let ram_kb: u64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(4 << 20);
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|r| r.trim().to_owned())
            .unwrap_or_default();
        let mut numbers = release
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u32>().unwrap_or(0));
        let kernel = (
            numbers.next().unwrap_or(0),
            numbers.next().unwrap_or(0),
            numbers.next().unwrap_or(0),
        );
        let pretty = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_owned())
            });
        let os = match pretty {
            Some(p) => format!("{p} ({release})"),
            None => format!("Linux Version {release}"),
        };
        HostSpec {
            hostname: String::new(),
            cpu_count,
            cpu_model: field("model name").unwrap_or_else(|| "Unknown CPU".to_owned()),
            cpu_speed_mhz: field("cpu MHz")
                .and_then(|v| v.parse::<f64>().ok())
                .map(|v| v as u32)
                .unwrap_or(0),
            ram_mb: u32::try_from(ram_kb / 1024).unwrap_or(u32::MAX),
            os,
            kernel,
        }
    }

    /// What 2051 reports.
    pub fn host_info(&self) -> HostInfo {
        HostInfo {
            cpu_count: self.cpu_count,
            cpu_model: self.cpu_model.clone(),
            cpu_speed_mhz: self.cpu_speed_mhz,
            cpu_mode: PCM_CPU_MODE_64,
            vtx_mode: 1,
            ram_mb: self.ram_mb,
            os_type: PHO_LIN,
            os_major: self.kernel.0,
            os_minor: self.kernel.1,
            os_sub_minor: self.kernel.2,
            os_name: self.os.clone(),
            host_name: self.hostname.clone(),
            vz_running: false,
            raw: String::new(),
        }
    }
}

/// The host and its VMs, in list order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// The host.
    pub host: HostSpec,
    /// The VMs.
    pub vms: Vec<VmSpec>,
}

/// A stable uuid for a VM name (SHA-256 of it, as a version-4 uuid), so that a VM without a
/// configured uuid keeps its uuid across runs.
pub fn uuid_for_name(name: &str) -> Uuid {
    let digest = sha256(format!("prl-sim vm {name}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

impl Inventory {
    /// The default inventory (what `cargo xtask demo` shows): four realistic VMs owned by
    /// root and shared with every user.
    pub fn demo() -> Inventory {
        let vm =
            |name: &str, state, (os_type, os_version), cpus, ram_mb, description: &str| VmSpec {
                state,
                os_type,
                os_version,
                cpus,
                ram_mb,
                description: description.to_owned(),
                hostname: format!("{name}.example.test"),
                ..VmSpec::new(name)
            };
        Inventory {
            host: HostSpec::this_machine(),
            vms: vec![
                vm(
                    "web-01",
                    VmState::RUNNING,
                    (9, 0x090A),
                    2,
                    2048,
                    "nginx front end",
                ),
                vm(
                    "db-01",
                    VmState::RUNNING,
                    (9, 0x091F),
                    4,
                    8192,
                    "PostgreSQL 15 primary",
                ),
                vm(
                    "win-build",
                    VmState::STOPPED,
                    (8, 0x0812),
                    4,
                    8192,
                    "Windows build agent",
                ),
                vm(
                    "legacy-billing",
                    VmState::SUSPENDED,
                    (9, 0x0914),
                    1,
                    1024,
                    "CentOS 7 billing application",
                ),
            ],
        }
    }

    /// Reads an inventory file.
    pub fn load(path: &Path) -> Result<Inventory, InventoryError> {
        let text = std::fs::read_to_string(path).map_err(|e| InventoryError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Inventory::from_toml(&text)
    }

    /// Parses and validates the TOML format (module docs).
    pub fn from_toml(text: &str) -> Result<Inventory, InventoryError> {
        let file: File =
            toml::from_str(text).map_err(|e| InventoryError::Toml(e.message().to_owned()))?;
        if file.vm.len() > MAX_VMS {
            return Err(InventoryError::TooMany(file.vm.len()));
        }
        let mut host = HostSpec::this_machine();
        if let Some(h) = file.host {
            host.hostname = h.hostname.unwrap_or_default();
            if let Some(n) = h.cpu_count {
                host.cpu_count = range("[host]", "cpu_count", n, 1, 4096)?;
            }
            if let Some(m) = h.cpu_model {
                host.cpu_model = m;
            }
            if let Some(n) = h.cpu_speed_mhz {
                host.cpu_speed_mhz = range("[host]", "cpu_speed_mhz", n, 0, 100_000)?;
            }
            if let Some(n) = h.ram_mb {
                host.ram_mb = range("[host]", "ram_mb", n, 1, u64::from(u32::MAX))?;
            }
            if let Some(os) = h.os {
                host.os = os;
            }
        }
        let mut vms: Vec<VmSpec> = Vec::with_capacity(file.vm.len());
        for (i, entry) in file.vm.into_iter().enumerate() {
            let spec = entry.into_spec(i + 1)?;
            if vms.iter().any(|v| v.name == spec.name) {
                return Err(InventoryError::DuplicateName(spec.name));
            }
            if vms.iter().any(|v| v.uuid == spec.uuid) {
                return Err(InventoryError::DuplicateUuid {
                    uuid: spec.uuid_text(),
                    name: spec.name,
                });
            }
            vms.push(spec);
        }
        Ok(Inventory { host, vms })
    }
}

fn range(
    name: &str,
    field: &'static str,
    value: u64,
    min: u64,
    max: u64,
) -> Result<u32, InventoryError> {
    if (min..=max).contains(&value) {
        Ok(u32::try_from(value).unwrap_or(u32::MAX))
    } else {
        Err(InventoryError::OutOfRange {
            name: name.to_owned(),
            field,
            value,
            min,
            max,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    host: Option<HostEntry>,
    #[serde(default)]
    vm: Vec<VmEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostEntry {
    hostname: Option<String>,
    cpu_count: Option<u64>,
    cpu_model: Option<String>,
    cpu_speed_mhz: Option<u64>,
    ram_mb: Option<u64>,
    os: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VmEntry {
    name: String,
    uuid: Option<String>,
    state: Option<String>,
    os: Option<String>,
    os_type: Option<u32>,
    os_version: Option<u32>,
    cpus: Option<u64>,
    ram_mb: Option<u64>,
    disk_mb: Option<u64>,
    description: Option<String>,
    hostname: Option<String>,
    owner: Option<String>,
    others: Option<String>,
    template: Option<bool>,
}

impl VmEntry {
    fn into_spec(self, index: usize) -> Result<VmSpec, InventoryError> {
        let name = self.name;
        if name.trim().is_empty() || name.len() > MAX_VM_NAME_BYTES {
            return Err(InventoryError::BadName { index });
        }
        let mut spec = VmSpec::new(&name);
        if let Some(text) = self.uuid {
            spec.uuid = parse_uuid(&text).filter(|u| !u.is_nil()).ok_or_else(|| {
                InventoryError::BadUuid {
                    name: name.clone(),
                    uuid: text.clone(),
                }
            })?;
        }
        if let Some(state) = self.state {
            spec.state = match VmState::from_name(&state) {
                Some(s) if s.is_stable() => s,
                _ => return Err(InventoryError::BadState { name, state }),
            };
        }
        let bad_os = |why: String| InventoryError::BadOs {
            name: name.clone(),
            why,
        };
        match (self.os, self.os_type, self.os_version) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(bad_os("give os or os_type/os_version, not both".into()))
            }
            (Some(os), None, None) => {
                let (_, t, v) = GUEST_OSES
                    .iter()
                    .find(|(n, _, _)| *n == os)
                    .ok_or_else(|| bad_os(format!("unknown os {os:?}")))?;
                (spec.os_type, spec.os_version) = (*t, *v);
            }
            (None, Some(t), v) => {
                spec.os_type = t;
                spec.os_version = v.unwrap_or((t << 8) | 0xFF);
            }
            (None, None, Some(_)) => return Err(bad_os("os_version needs os_type".into())),
            (None, None, None) => {}
        }
        if let Some(n) = self.cpus {
            spec.cpus = range(&name, "cpus", n, 1, 256)?;
        }
        if let Some(n) = self.ram_mb {
            spec.ram_mb = range(&name, "ram_mb", n, 64, 4 << 20)?;
        }
        if let Some(n) = self.disk_mb {
            spec.disk_mb = range(&name, "disk_mb", n, 1, 64 << 20)?;
        }
        spec.description = self.description.unwrap_or_default();
        spec.hostname = self.hostname.unwrap_or_default();
        if let Some(owner) = self.owner.filter(|o| !o.is_empty()) {
            spec.owner = owner;
        }
        if let Some(value) = self.others {
            spec.others = Access::parse(&value).ok_or(InventoryError::BadAccess {
                name: name.clone(),
                value,
            })?;
        }
        spec.template = self.template.unwrap_or(false);
        if spec.template {
            // `fillVmState`: a template is always reported stopped.
            spec.state = VmState::STOPPED;
        }
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_inventory_has_running_and_stopped_vms() {
        let inv = Inventory::demo();
        assert!(inv.vms.len() >= 3);
        assert!(inv.vms.iter().any(|v| v.state == VmState::RUNNING));
        assert!(inv.vms.iter().any(|v| v.state == VmState::STOPPED));
        // Stable uuids: the same every run.
        assert_eq!(Inventory::demo().vms, inv.vms);
        assert_eq!(inv.vms[0].uuid.get_version_num(), 4);
    }

    #[test]
    fn a_file_defines_vms_with_defaults() {
        let inv = Inventory::from_toml(
            r#"
            [host]
            hostname = "node1"
            cpu_count = 8
            [[vm]]
            name = "a"
            uuid = "{5E1C3C1A-0b7d-4c2e-9f5a-1d2c3b4a5f60}"
            state = "paused"
            os = "win2022"
            owner = "alice"
            others = "none"
            [[vm]]
            name = "b"
            os_type = 9
            template = true
            state = "running"
            "#,
        )
        .unwrap();
        assert_eq!(
            (inv.host.hostname.as_str(), inv.host.cpu_count),
            ("node1", 8)
        );
        let a = &inv.vms[0];
        assert_eq!(a.uuid_text(), "{5e1c3c1a-0b7d-4c2e-9f5a-1d2c3b4a5f60}");
        assert_eq!(
            (a.state, a.os_type, a.os_version),
            (VmState::PAUSED, 8, 0x0812)
        );
        assert!(a.readable_by("alice") && !a.readable_by("bob"));
        let b = &inv.vms[1];
        assert_eq!((b.os_version, b.cpus, b.ram_mb), (0x09FF, 1, 1024));
        assert_eq!(b.state, VmState::STOPPED, "templates are stopped");
        assert!(b.readable_by("anyone"));
        assert_eq!(b.uuid, uuid_for_name("b"));
    }

    #[test]
    fn bad_files_are_typed_errors() {
        let kind = |t: &str| Inventory::from_toml(t).unwrap_err().kind();
        assert_eq!(kind("[[vm]]\nname = \"a\"\nbogus = 1"), "toml");
        assert_eq!(kind("[[vm]]\nname = \"\""), "bad_name");
        assert_eq!(
            kind("[[vm]]\nname = \"a\"\n[[vm]]\nname = \"a\""),
            "duplicate_name"
        );
        assert_eq!(
            kind("[[vm]]\nname = \"a\"\nuuid = \"{00000000-0000-4000-8000-000000000001}\"\n[[vm]]\nname = \"b\"\nuuid = \"00000000-0000-4000-8000-000000000001\""),
            "duplicate_uuid"
        );
        assert_eq!(kind("[[vm]]\nname = \"a\"\nuuid = \"nope\""), "bad_uuid");
        assert_eq!(
            kind("[[vm]]\nname = \"a\"\nstate = \"starting\""),
            "bad_state"
        );
        assert_eq!(kind("[[vm]]\nname = \"a\"\nos = \"beos\""), "bad_os");
        assert_eq!(
            kind("[[vm]]\nname = \"a\"\nos = \"ubuntu\"\nos_type = 9"),
            "bad_os"
        );
        assert_eq!(
            kind("[[vm]]\nname = \"a\"\nothers = \"some\""),
            "bad_access"
        );
        assert_eq!(kind("[[vm]]\nname = \"a\"\ncpus = 0"), "out_of_range");
        assert_eq!(kind("[[vm]]\nname = \"a\"\nram_mb = 1"), "out_of_range");
        assert_eq!(kind("[host]\ncpu_count = 0"), "out_of_range");
        let many = "[[vm]]\nname = \"x\"\n".repeat(MAX_VMS + 1);
        assert_eq!(kind(&many), "too_many");
        let e = Inventory::from_toml("[[vm]]\nname = \"db\"\ncpus = 999").unwrap_err();
        assert_eq!(
            e.to_string(),
            "VM \"db\": cpus = 999 is out of range 1..=256"
        );
        assert_eq!(
            Inventory::load(Path::new("/nonexistent/vms.toml"))
                .unwrap_err()
                .kind(),
            "read"
        );
    }
}
