//! The two binary parameters a login reply carries for clients of protocol >= 6.2: the guest
//! OS matrix (`prl_supported_oses_list`, a `COsesMatrix`) and the features matrix
//! (`prl_features_matrix`, a `CFeaturesMatrix`).
//!
//! Evidence: `prl-disp-service:Dispatcher/Dispatcher/CDspUserHelper.cpp`
//! (`makeLoginResponsePacket`), `CDspService.cpp` (`initFeaturesList`),
//! `libprlcommon:Libraries/PrlCommonUtilsBase/CGuestOsesHelper.{h,cpp}` (`COsesMatrix`,
//! `TOpaqueTypeList`, `CGuestOsesHelper`), `CFeaturesMatrix.cpp`,
//! `Libraries/PrlDataSerializer/CPrlOpaqueTypeDataSerializer.h`,
//! `Libraries/Messaging/CVmBinaryEventParameter.cpp` (`getBinaryDataStream`: a `QDataStream`
//! on the parameter's byte array, `Qt_4_0`, so big-endian), `libprlsdk:Sources/SDK/Include/
//! PrlOses.h` and `PrlEnums.h` (the values), `Sources/SDK/Handles/Disp/PrlHandleServer.cpp`
//! (`ProcessLoginResponse`: the reader).
//!
//! # Wire layout
//!
//! Each is the whole byte array of one binary event parameter (see [`crate::event`]); all
//! integers big-endian:
//!
//! ```text
//! oses_matrix := i32 n, guest_type * n                      (COsesMatrix::Serialize)
//! guest_type  := u8 os_type,                                 (quint8 PRL_UINT8 m_nGuestType)
//!                i32 m, u32 version * m,                     (TOpaqueTypeList<PRL_UINT16>: every
//!                                                             item widened to quint32)
//!                u16 default_version                         (quint16 m_nDefaultOsVersion)
//! features    := i32 n, u32 feature * n                      (CFeaturesMatrix::Serialize over
//!                                                             a QSet<PRL_FEATURES_MATRIX>)
//! ```
//!
//! The features are a `QSet`, written in its hash order; with Qt 5's per-process random hash
//! seed that order differs between service runs, so readers must treat it as a set.
//! [`FeaturesMatrix::linux_service`] lists them in ascending order (what Qt writes with the seed
//! 0: twelve small values in a 17-bucket table); [`FeaturesMatrix`] keeps whatever order it
//! decoded.
//!
//! # Reading hostile input
//!
//! The real readers never fail (`QDataStream` yields zeros past the end, a negative count reads
//! no items, a version is cut to 16 bits). The decoders here return typed errors instead: input
//! that ends early, a negative count, a version above 0xFFFF or bytes left over after the
//! matrix. Counts are checked against the bytes actually present before anything is
//! allocated.

use crate::reader::{Reader, Trailing, Truncated};

/// `PVS_GUEST_TYPE_*` (`PrlOses.h`): guest OS types.
pub mod guest_type {
    /// `PVS_GUEST_TYPE_MACOS`
    pub const MACOS: u8 = 0x07;
    /// `PVS_GUEST_TYPE_WINDOWS`
    pub const WINDOWS: u8 = 0x08;
    /// `PVS_GUEST_TYPE_LINUX`
    pub const LINUX: u8 = 0x09;
    /// `PVS_GUEST_TYPE_FREEBSD`
    pub const FREEBSD: u8 = 0x0A;
    /// `PVS_GUEST_TYPE_OS2`
    pub const OS2: u8 = 0x0B;
    /// `PVS_GUEST_TYPE_MSDOS`
    pub const MSDOS: u8 = 0x0C;
    /// `PVS_GUEST_TYPE_NETWARE`
    pub const NETWARE: u8 = 0x0D;
    /// `PVS_GUEST_TYPE_SOLARIS`
    pub const SOLARIS: u8 = 0x0E;
    /// `PVS_GUEST_TYPE_CHROMEOS`
    pub const CHROMEOS: u8 = 0x0F;
    /// `PVS_GUEST_TYPE_ANDROID`
    pub const ANDROID: u8 = 0x10;
    /// `PVS_GUEST_TYPE_OTHER`
    pub const OTHER: u8 = 0xFF;
}

/// `PRL_FEATURES_MATRIX` (`PrlEnums.h`): server features.
pub mod feature {
    /// `PFSM_UNKNOWN_FEATURE`
    pub const UNKNOWN_FEATURE: u32 = 0;
    /// `PFSM_SATA_HOTPLUG_SUPPORT` (= `PFSM_DEFAULT_SATA_ALLOWED`)
    pub const SATA_HOTPLUG_SUPPORT: u32 = 1;
    /// `PFSM_VM_CONFIG_MERGE_SUPPORT`
    pub const VM_CONFIG_MERGE_SUPPORT: u32 = 2;
    /// `PFSM_PSBM5`
    pub const PSBM5: u32 = 3;
    /// `PFSM_AUTOSTART_VM_AS_OWNER`
    pub const AUTOSTART_VM_AS_OWNER: u32 = 4;
    /// `PFSM_DEFAULT_PLAINDISK_ALLOWED`
    pub const DEFAULT_PLAINDISK_ALLOWED: u32 = 5;
    /// `PFSM_NO_SHARED_NETWORKING`
    pub const NO_SHARED_NETWORKING: u32 = 6;
    /// `PFSM_DISK_IO_LIMITS`
    pub const DISK_IO_LIMITS: u32 = 7;
    /// `PFSM_FINE_CPU_LIMITS`
    pub const FINE_CPU_LIMITS: u32 = 8;
    /// `PFSM_ROUTED_NETWORKING`
    pub const ROUTED_NETWORKING: u32 = 9;
    /// `PFSM_RAM_HOTPLUG_SUPPORT`
    pub const RAM_HOTPLUG_SUPPORT: u32 = 10;
    /// `PFSM_CPU_HOTPLUG_SUPPORT`
    pub const CPU_HOTPLUG_SUPPORT: u32 = 11;
    /// `PFSM_IPV6_SUPPORT`
    pub const IPV6_SUPPORT: u32 = 12;
    /// `PFSM_USB_PRINTER_SUPPORT`
    pub const USB_PRINTER_SUPPORT: u32 = 13;
    /// `PFSM_NIC_CHANGE_ALLOWED`
    pub const NIC_CHANGE_ALLOWED: u32 = 14;
    /// `PFSM_DESKTOP_CONTROL_SUPPORT`
    pub const DESKTOP_CONTROL_SUPPORT: u32 = 15;
}

/// `PAM_SERVER`, the application mode of a Virtuozzo server (`PrlEnums.h`).
const PAM_SERVER: u32 = 0;

/// Why bytes are not a matrix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatrixError {
    /// The input ends inside a field.
    #[error("truncated matrix: {what} needs {needed} bytes, {available} left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// A count (`qint32`) is negative.
    #[error("negative {what} in matrix: {value}")]
    NegativeCount {
        /// The count.
        what: &'static str,
        /// Its value.
        value: i32,
    },
    /// An OS version (written as `quint32`) does not fit the `PRL_UINT16` it stands for.
    #[error("os version {value:#x} of guest type {os_type:#04x} exceeds 16 bits")]
    VersionOutOfRange {
        /// The guest OS type it belongs to.
        os_type: u8,
        /// The value read.
        value: u32,
    },
    /// Bytes follow the matrix.
    #[error("{count} bytes after the end of the matrix")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

impl MatrixError {
    /// Stable name of the error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Truncated { .. } => "truncated",
            Self::NegativeCount { .. } => "negative_count",
            Self::VersionOutOfRange { .. } => "version_out_of_range",
            Self::TrailingBytes { .. } => "trailing_bytes",
        }
    }
}

/// One guest OS type of the OS matrix (`COsesMatrix::TGuestTypeDescription`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuestOsType {
    /// `PVS_GUEST_TYPE_*` ([`guest_type`]).
    pub os_type: u8,
    /// Supported `PVS_GUEST_VER_*` versions, in the service's order.
    pub versions: Vec<u16>,
    /// The default version for new VMs of this type.
    pub default_version: u16,
}

/// The guest OS matrix (`COsesMatrix`): supported guest OS types and their versions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OsesMatrix {
    /// The guest types, in the service's order.
    pub types: Vec<GuestOsType>,
}

/// `CGuestOsesHelper::GetSupportedOsesTypes` on Linux: the types, in this order.
const LINUX_SERVICE_TYPES: [u8; 9] = [
    guest_type::WINDOWS,
    guest_type::LINUX,
    guest_type::FREEBSD,
    guest_type::CHROMEOS,
    guest_type::OS2,
    guest_type::MSDOS,
    guest_type::NETWARE,
    guest_type::SOLARIS,
    guest_type::OTHER,
];

/// `CGuestOsesHelper::GetSupportedOsesVersions(PHO_LIN, os_type)`.
fn linux_service_versions(os_type: u8) -> &'static [u16] {
    match os_type {
        guest_type::WINDOWS => &[
            0x0806, // PVS_GUEST_VER_WIN_2K
            0x0807, // PVS_GUEST_VER_WIN_XP
            0x0808, // PVS_GUEST_VER_WIN_2003
            0x0809, // PVS_GUEST_VER_WIN_VISTA
            0x080A, // PVS_GUEST_VER_WIN_2008
            0x080B, // PVS_GUEST_VER_WIN_WINDOWS7
            0x080C, // PVS_GUEST_VER_WIN_WINDOWS8
            0x080D, // PVS_GUEST_VER_WIN_2012
            0x080E, // PVS_GUEST_VER_WIN_WINDOWS8_1
            0x080F, // PVS_GUEST_VER_WIN_WINDOWS10
            0x0813, // PVS_GUEST_VER_WIN_WINDOWS11
            0x0810, // PVS_GUEST_VER_WIN_2016
            0x0811, // PVS_GUEST_VER_WIN_2019
            0x0812, // PVS_GUEST_VER_WIN_2022
            0x08FF, // PVS_GUEST_VER_WIN_OTHER
        ],
        guest_type::CHROMEOS => &[0x0FFF], // PVS_GUEST_VER_CHROMEOS_OTHER
        guest_type::ANDROID => &[0x10FF],  // PVS_GUEST_VER_ANDROID_OTHER
        guest_type::LINUX => &[
            0x090A, // PVS_GUEST_VER_LIN_UBUNTU
            0x0907, // PVS_GUEST_VER_LIN_FEDORA
            0x0901, // PVS_GUEST_VER_LIN_REDHAT
            0x0913, // PVS_GUEST_VER_LIN_REDHAT_7
            0x091A, // PVS_GUEST_VER_LIN_REDHAT_8
            0x091F, // PVS_GUEST_VER_LIN_REDHAT_9
            0x0902, // PVS_GUEST_VER_LIN_SUSE
            0x0917, // PVS_GUEST_VER_LIN_SLES11
            0x0918, // PVS_GUEST_VER_LIN_SLES12
            0x0906, // PVS_GUEST_VER_LIN_DEBIAN
            0x090D, // PVS_GUEST_VER_LIN_CENTOS
            0x0914, // PVS_GUEST_VER_LIN_CENTOS_7
            0x091B, // PVS_GUEST_VER_LIN_CENTOS_8
            0x0915, // PVS_GUEST_VER_LIN_VZLINUX
            0x0916, // PVS_GUEST_VER_LIN_VZLINUX_7
            0x091C, // PVS_GUEST_VER_LIN_VZLINUX_8
            0x0919, // PVS_GUEST_VER_LIN_CLOUDLINUX
            0x091D, // PVS_GUEST_VER_LIN_CLOUDLINUX_7
            0x091E, // PVS_GUEST_VER_LIN_CLOUDLINUX_8
            0x0920, // PVS_GUEST_VER_LIN_ALMA_LINUX_9
            0x0910, // PVS_GUEST_VER_LIN_PSBM
            0x090F, // PVS_GUEST_VER_LIN_OPENSUSE
            0x090E, // PVS_GUEST_VER_LIN_RH_LEGACY
            0x0903, // PVS_GUEST_VER_LIN_MANDRAKE
            0x0909, // PVS_GUEST_VER_LIN_XANDROS
            0x0911, // PVS_GUEST_VER_LIN_MAGEIA
            0x0912, // PVS_GUEST_VER_LIN_MINT
            0x0904, // PVS_GUEST_VER_LIN_KRNL_24
            0x0905, // PVS_GUEST_VER_LIN_KRNL_26
            0x09FF, // PVS_GUEST_VER_LIN_OTHER
        ],
        guest_type::FREEBSD => &[0x0AFF], // PVS_GUEST_VER_BSD_OTHER
        guest_type::MSDOS => &[0x0CFF],   // PVS_GUEST_VER_DOS_OTHER
        guest_type::NETWARE => &[0x0DFF], // PVS_GUEST_VER_NET_OTHER
        guest_type::SOLARIS => &[0x0EFF], // PVS_GUEST_VER_SOL_OTHER
        // MACOS only on a Mac host; OS2 and OTHER have no case: an empty list.
        _ => &[],
    }
}

/// `CGuestOsesHelper::GetDefaultOsVersion(os_type)` under the service's application mode.
fn default_version(os_type: u8, app_execute_mode: u32) -> u16 {
    let desktop = app_execute_mode != PAM_SERVER;
    match os_type {
        guest_type::MACOS => 0x0703, // PVS_GUEST_VER_MACOS_SNOW_LEOPARD
        // PVS_GUEST_VER_WIN_WINDOWS7 / PVS_GUEST_VER_WIN_2012
        guest_type::WINDOWS if desktop => 0x080B,
        guest_type::WINDOWS => 0x080D,
        guest_type::CHROMEOS => 0x0F01, // PVS_GUEST_VER_CHROMEOS_1x
        guest_type::ANDROID => 0x1002,  // PVS_GUEST_VER_ANDROID_4_0
        // PVS_GUEST_VER_LIN_UBUNTU / PVS_GUEST_VER_LIN_REDHAT
        guest_type::LINUX if desktop => 0x090A,
        guest_type::LINUX => 0x0901,
        guest_type::FREEBSD => 0x0A04, // PVS_GUEST_VER_BSD_7X
        guest_type::OS2 => 0x0B03,     // PVS_GUEST_VER_OS2_WARP45
        guest_type::NETWARE => 0x0D02, // PVS_GUEST_VER_NET_5X
        guest_type::SOLARIS => 0x0E02, // PVS_GUEST_VER_SOL_10
        guest_type::MSDOS => 0x0C01,   // PVS_GUEST_VER_DOS_MS622
        guest_type::OTHER => 0xFF02,   // PVS_GUEST_VER_OTH_OPENSTEP
        _ => 0,
    }
}

impl OsesMatrix {
    /// The matrix a Linux service sends (`makeLoginResponsePacket`: every type of
    /// `GetSupportedOsesTypes(PHO_UNKNOWN)` added with `AddOsType(PHO_UNKNOWN, type)`, the host
    /// resolving to `PHO_LIN`). `app_execute_mode` is the service's `PRL_APPLICATION_MODE`
    /// (`PAM_SERVER` = 0 for Virtuozzo); any other mode picks the desktop default versions.
    pub fn linux_service(app_execute_mode: u32) -> Self {
        OsesMatrix {
            types: LINUX_SERVICE_TYPES
                .iter()
                .map(|&os_type| GuestOsType {
                    os_type,
                    versions: linux_service_versions(os_type).to_vec(),
                    default_version: default_version(os_type, app_execute_mode),
                })
                .collect(),
        }
    }

    /// The entry of a guest type (`COsesMatrix` looks up the first one).
    pub fn guest(&self, os_type: u8) -> Option<&GuestOsType> {
        self.types.iter().find(|t| t.os_type == os_type)
    }

    /// `COsesMatrix::Serialize`.
    pub fn encode(&self) -> Vec<u8> {
        let len = 4 + self
            .types
            .iter()
            .map(|t| 7 + 4 * t.versions.len())
            .sum::<usize>();
        let mut out = Vec::with_capacity(len);
        put_count(&mut out, self.types.len());
        for t in &self.types {
            out.push(t.os_type);
            put_count(&mut out, t.versions.len());
            for &v in &t.versions {
                out.extend_from_slice(&u32::from(v).to_be_bytes());
            }
            out.extend_from_slice(&t.default_version.to_be_bytes());
        }
        out
    }

    /// `COsesMatrix::Deserialize`, strict (see the module docs): the whole of `bytes`.
    pub fn decode(bytes: &[u8]) -> Result<Self, MatrixError> {
        let mut r = Reader::new(bytes);
        let n = count(&mut r, "guest type count")?;
        // A guest type takes at least 7 bytes: never reserve more than the input can hold.
        let mut types = Vec::with_capacity(n.min(r.remaining() / 7));
        for _ in 0..n {
            let os_type = r.u8("guest os type")?;
            let m = count(&mut r, "os version count")?;
            let mut versions = Vec::with_capacity(m.min(r.remaining() / 4));
            for _ in 0..m {
                let value = r.u32_be("os version")?;
                let v = u16::try_from(value)
                    .map_err(|_| MatrixError::VersionOutOfRange { os_type, value })?;
                versions.push(v);
            }
            let default_version = r.u16_be("default os version")?;
            types.push(GuestOsType {
                os_type,
                versions,
                default_version,
            });
        }
        r.finish("matrix")?;
        Ok(OsesMatrix { types })
    }
}

/// The features matrix (`CFeaturesMatrix`): a set of `PRL_FEATURES_MATRIX` values
/// ([`feature`]), kept in wire order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FeaturesMatrix {
    /// The features, in the order written (the service's `QSet` hash order; see module docs).
    pub features: Vec<u32>,
}

impl FeaturesMatrix {
    /// What `CDspService::initFeaturesList` puts in it, in ascending order.
    /// `default_plain_disk_allowed` is the service's `DefaultPlainDiskAllowed` preference
    /// (`DispConfig.xsd` default: false), which adds `PFSM_DEFAULT_PLAINDISK_ALLOWED`.
    pub fn linux_service(default_plain_disk_allowed: bool) -> Self {
        let mut features = vec![
            feature::SATA_HOTPLUG_SUPPORT,
            feature::VM_CONFIG_MERGE_SUPPORT,
            feature::PSBM5,
            feature::AUTOSTART_VM_AS_OWNER,
        ];
        if default_plain_disk_allowed {
            features.push(feature::DEFAULT_PLAINDISK_ALLOWED);
        }
        features.extend([
            feature::NO_SHARED_NETWORKING,
            feature::DISK_IO_LIMITS,
            feature::FINE_CPU_LIMITS,
            feature::ROUTED_NETWORKING,
            feature::RAM_HOTPLUG_SUPPORT,
            feature::CPU_HOTPLUG_SUPPORT,
            feature::IPV6_SUPPORT,
            feature::NIC_CHANGE_ALLOWED,
        ]);
        FeaturesMatrix { features }
    }

    /// `CFeaturesMatrix::IsFeatureSupported`.
    pub fn is_supported(&self, feature: u32) -> bool {
        self.features.contains(&feature)
    }

    /// `CFeaturesMatrix::Serialize`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 4 * self.features.len());
        put_count(&mut out, self.features.len());
        for f in &self.features {
            out.extend_from_slice(&f.to_be_bytes());
        }
        out
    }

    /// `CFeaturesMatrix::Deserialize`, strict (see the module docs): the whole of `bytes`.
    /// Duplicates are kept as written (the real reader's `QSet` would merge them).
    pub fn decode(bytes: &[u8]) -> Result<Self, MatrixError> {
        let mut r = Reader::new(bytes);
        let n = count(&mut r, "feature count")?;
        let mut features = Vec::with_capacity(n.min(r.remaining() / 4));
        for _ in 0..n {
            features.push(r.u32_be("feature")?);
        }
        r.finish("matrix")?;
        Ok(FeaturesMatrix { features })
    }
}

/// Both matrices of a service, as its login replies carry them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerMatrices {
    /// `prl_supported_oses_list`.
    pub oses: OsesMatrix,
    /// `prl_features_matrix`.
    pub features: FeaturesMatrix,
}

impl ServerMatrices {
    /// A Linux (Virtuozzo) service's matrices with the default configuration
    /// (`DefaultPlainDiskAllowed` false).
    pub fn linux_service(app_execute_mode: u32) -> Self {
        ServerMatrices {
            oses: OsesMatrix::linux_service(app_execute_mode),
            features: FeaturesMatrix::linux_service(false),
        }
    }
}

/// A container size: C++ `int` written as `qint32`. (Nothing near 2 GiB fits in a package,
/// whose limit is 1 GiB.)
fn put_count(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes());
}

impl From<Truncated> for MatrixError {
    fn from(e: Truncated) -> Self {
        MatrixError::Truncated {
            what: e.what,
            needed: e.needed,
            available: e.available,
        }
    }
}

impl From<Trailing> for MatrixError {
    fn from(e: Trailing) -> Self {
        MatrixError::TrailingBytes { count: e.count }
    }
}

/// A `qint32` count; negative is an error.
fn count(r: &mut Reader<'_>, what: &'static str) -> Result<usize, MatrixError> {
    let value = r.i32_be(what)?;
    usize::try_from(value).map_err(|_| MatrixError::NegativeCount { what, value })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(text: &str) -> Vec<u8> {
        let digits: Vec<u8> = text
            .bytes()
            .filter(u8::is_ascii_hexdigit)
            .map(|b| char::from(b).to_digit(16).unwrap() as u8)
            .collect();
        digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
    }

    /// `CFeaturesMatrix::Serialize` (libprlcommon `CFeaturesMatrix.cpp`) of the set
    /// `CDspService::initFeaturesList` (prl-disp-service `CDspService.cpp`) builds with the
    /// default `DefaultPlainDiskAllowed = false`: qint32 size, then each `PRL_FEATURES_MATRIX`
    /// as a big-endian quint32.
    #[test]
    fn features_matrix_known_answer() {
        let expected = hex("0000000c
             00000001 00000002 00000003 00000004 00000006 00000007
             00000008 00000009 0000000a 0000000b 0000000c 0000000e");
        let m = FeaturesMatrix::linux_service(false);
        assert_eq!(m.encode(), expected);
        assert_eq!(FeaturesMatrix::decode(&expected).unwrap(), m);
        assert!(m.is_supported(feature::IPV6_SUPPORT));
        assert!(!m.is_supported(feature::DEFAULT_PLAINDISK_ALLOWED));
        assert!(!m.is_supported(feature::USB_PRINTER_SUPPORT));
        let with_plain = FeaturesMatrix::linux_service(true);
        assert_eq!(with_plain.features.len(), 13);
        assert!(with_plain.is_supported(feature::DEFAULT_PLAINDISK_ALLOWED));
    }

    /// `COsesMatrix::Serialize` (libprlcommon `CGuestOsesHelper.cpp`/`.h`) of the matrix
    /// `CDspUserHelper::makeLoginResponsePacket` builds on a Linux PAM_SERVER service: qint32
    /// count; per type a quint8 type, the `TOpaqueTypeList<PRL_UINT16>` of versions (qint32
    /// count, every item as quint32) and the quint16 default version. Lists from
    /// `CGuestOsesHelper::GetSupportedOsesTypes` / `GetSupportedOsesVersions` /
    /// `GetDefaultOsVersion`, values from libprlsdk `PrlOses.h`.
    #[test]
    fn oses_matrix_known_answer() {
        let expected = hex("00000009
             08 0000000f
                00000806 00000807 00000808 00000809 0000080a 0000080b 0000080c 0000080d
                0000080e 0000080f 00000813 00000810 00000811 00000812 000008ff
                080d
             09 0000001e
                0000090a 00000907 00000901 00000913 0000091a 0000091f 00000902 00000917
                00000918 00000906 0000090d 00000914 0000091b 00000915 00000916 0000091c
                00000919 0000091d 0000091e 00000920 00000910 0000090f 0000090e 00000903
                00000909 00000911 00000912 00000904 00000905 000009ff
                0901
             0a 00000001 00000aff 0a04
             0f 00000001 00000fff 0f01
             0b 00000000 0b03
             0c 00000001 00000cff 0c01
             0d 00000001 00000dff 0d02
             0e 00000001 00000eff 0e02
             ff 00000000 ff02");
        let m = OsesMatrix::linux_service(PAM_SERVER);
        assert_eq!(m.encode(), expected);
        assert_eq!(OsesMatrix::decode(&expected).unwrap(), m);
        assert_eq!(m.guest(guest_type::LINUX).unwrap().default_version, 0x0901);
        assert!(m.guest(guest_type::MACOS).is_none());
        // A desktop mode changes only the Windows and Linux defaults.
        let desktop = OsesMatrix::linux_service(1);
        assert_eq!(
            desktop.guest(guest_type::WINDOWS).unwrap().default_version,
            0x080B
        );
        assert_eq!(
            desktop.guest(guest_type::LINUX).unwrap().default_version,
            0x090A
        );
        assert_eq!(desktop.types.len(), 9);
    }

    #[test]
    fn empty_matrices() {
        assert_eq!(OsesMatrix::default().encode(), [0, 0, 0, 0]);
        assert_eq!(FeaturesMatrix::default().encode(), [0, 0, 0, 0]);
        assert_eq!(OsesMatrix::decode(&[0; 4]).unwrap(), OsesMatrix::default());
        assert_eq!(
            FeaturesMatrix::decode(&[0; 4]).unwrap(),
            FeaturesMatrix::default()
        );
    }

    #[test]
    fn malformed_oses_matrix() {
        let kind = |bytes: &[u8]| OsesMatrix::decode(bytes).unwrap_err().kind();
        assert_eq!(kind(&[]), "truncated");
        assert_eq!(kind(&[0, 0, 0]), "truncated");
        // A huge count with no entries: an error, not an allocation.
        assert_eq!(
            OsesMatrix::decode(&hex("7fffffff")).unwrap_err(),
            MatrixError::Truncated {
                what: "guest os type",
                needed: 1,
                available: 0
            }
        );
        assert_eq!(
            OsesMatrix::decode(&hex("ffffffff")).unwrap_err(),
            MatrixError::NegativeCount {
                what: "guest type count",
                value: -1
            }
        );
        assert_eq!(
            OsesMatrix::decode(&hex("00000001 09 80000000")).unwrap_err(),
            MatrixError::NegativeCount {
                what: "os version count",
                value: i32::MIN
            }
        );
        assert_eq!(
            OsesMatrix::decode(&hex("00000001 09 7fffffff 00000901")).unwrap_err(),
            MatrixError::Truncated {
                what: "os version",
                needed: 4,
                available: 0
            }
        );
        assert_eq!(
            OsesMatrix::decode(&hex("00000001 09 00000001 00010901 0901")).unwrap_err(),
            MatrixError::VersionOutOfRange {
                os_type: 9,
                value: 0x1_0901
            }
        );
        // The default version is cut short.
        assert_eq!(
            OsesMatrix::decode(&hex("00000001 09 00000000 09")).unwrap_err(),
            MatrixError::Truncated {
                what: "default os version",
                needed: 2,
                available: 1
            }
        );
        assert_eq!(
            OsesMatrix::decode(&hex("00000000 00")).unwrap_err(),
            MatrixError::TrailingBytes { count: 1 }
        );
        // Every proper prefix of the real matrix is truncated.
        let full = OsesMatrix::linux_service(PAM_SERVER).encode();
        for end in 0..full.len() {
            assert_eq!(kind(&full[..end]), "truncated", "prefix of {end} bytes");
        }
    }

    #[test]
    fn malformed_features_matrix() {
        assert_eq!(
            FeaturesMatrix::decode(&hex("00000002 00000001")).unwrap_err(),
            MatrixError::Truncated {
                what: "feature",
                needed: 4,
                available: 0
            }
        );
        assert_eq!(
            FeaturesMatrix::decode(&hex("fffffffe")).unwrap_err().kind(),
            "negative_count"
        );
        assert_eq!(
            FeaturesMatrix::decode(&hex("00000001 00000001 ff")).unwrap_err(),
            MatrixError::TrailingBytes { count: 1 }
        );
        assert_eq!(
            FeaturesMatrix::decode(&hex("0000")).unwrap_err().kind(),
            "truncated"
        );
        // Wire order and duplicates are kept; any order reads as the same set.
        let m = FeaturesMatrix::decode(&hex("00000003 0000000c 00000001 0000000c")).unwrap();
        assert_eq!(m.features, [12, 1, 12]);
        assert_eq!(m.encode(), hex("00000003 0000000c 00000001 0000000c"));
    }

    fn guest() -> impl Strategy<Value = GuestOsType> {
        (
            any::<u8>(),
            proptest::collection::vec(any::<u16>(), 0..40),
            any::<u16>(),
        )
            .prop_map(|(os_type, versions, default_version)| GuestOsType {
                os_type,
                versions,
                default_version,
            })
    }

    proptest! {
        #[test]
        fn oses_matrix_round_trips(types in proptest::collection::vec(guest(), 0..12)) {
            let m = OsesMatrix { types };
            let bytes = m.encode();
            prop_assert_eq!(
                bytes.len(),
                4 + m.types.iter().map(|t| 7 + 4 * t.versions.len()).sum::<usize>()
            );
            prop_assert_eq!(OsesMatrix::decode(&bytes).unwrap(), m);
        }

        #[test]
        fn features_matrix_round_trips(features in proptest::collection::vec(any::<u32>(), 0..40)) {
            let m = FeaturesMatrix { features };
            prop_assert_eq!(FeaturesMatrix::decode(&m.encode()).unwrap(), m);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = OsesMatrix::decode(&bytes);
            let _ = FeaturesMatrix::decode(&bytes);
        }
    }
}
