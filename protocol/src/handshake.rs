//! The plaintext IOService connection handshake (sans-I/O).
//!
//! Ported from OpenVZ/libprlcommon, `Libraries/IOService/src/IOCommunication/`:
//! - `IOProtocolCommon.h` `struct ProtocolVersion` (72 bytes) and `IOProtocol.cpp`
//!   `IOProtocolVersion` (`"PRLT"`, 6.10); the feature gates are the `IOPROTOCOL_*_SUPPORT`
//!   macros of `IOProtocol.h`;
//! - `IOProtocol.h` `struct HandshakeHeader` (20 bytes) and `enum IOSender::Type`;
//! - `IORoutingTable.h/.cpp`: the table layout (`Header`, `DirectRangeRoute`), `addRoute`,
//!   `fromBuffer`, `validateHeader`, `accept`/`acceptRoutePair` and `findRoute`;
//! - `IORoutingTableHelper.cpp`: `GetClientRoutingTable` / `GetServerRoutingTable`;
//! - `Socket/SocketClient_p.cpp`: `cli_sendHandshake`, `cli_parseHandshake`,
//!   `srv_sendHandshake`, `srv_parseHandshake`, `srv_sendRoutingTable` (the order of the checks
//!   and which `IOSender::Error` each failure sets);
//! - libprlsdk `CPveControl::CheckConnectionStatusHelper` for the SDK error codes.
//!
//! All structures are packed little-endian; UUIDs are the 16 raw RFC-4122 bytes.
//!
//! # Wire order
//! Neither side waits before sending its first part. The client sends
//! `ProtocolVersion + HandshakeHeader + RoutingTable` ([`ClientHandshake::hello`]); the server
//! sends `ProtocolVersion + HandshakeHeader` ([`ServerHandshake::hello`]), reads the client's
//! three parts, and answers with the *accepted* routing table ([`ServerOutcome::reply`]). The
//! in-band TLS handshake starts right after (see [`crate::record`]).
//!
//! # Checks
//! Each side checks, in this order and as soon as each part is complete: the magic, the
//! **major** number only (the minor is only logged), a non-nil connection UUID, a sender type in
//! `1..=10`, the routing table header (`routesNumber <= 20`), the routes (as `addRoute` does), a
//! non-null table (`defaultRouteName != 0`), and on the server `accept()`. A server that fails any
//! check just closes the socket; the client maps its own failures to SDK codes with
//! [`HandshakeError::prl_code`].
//!
//! # Route order
//! The real tables live in a Qt 5 `QHash`, so the order of routes on the wire is the hash's
//! iteration order, which depends on a per-process random seed. Peers parse routes as a set.
//! [`RoutingTable`] keeps routes in a `Vec` and writes them in that order;
//! [`RoutingTable::client`]/[`RoutingTable::server`] use the insertion order of
//! `IORoutingTableHelper.cpp`, and [`RoutingTable::in_qt5_hash_order`] reproduces the order a real
//! peer with a given `QHash` seed writes (seed 0 is what `QT_HASH_SEED=0` gives).

use std::fmt;

use uuid::Uuid;

/// `PRL_ERR_HANDSHAKE_FAILED`.
pub const PRL_ERR_HANDSHAKE_FAILED: u32 = 0x8000_0412;
/// `PRL_ERR_WRONG_PROTOCOL_VERSION`.
pub const PRL_ERR_WRONG_PROTOCOL_VERSION: u32 = 0x8000_0413;
/// `PRL_ERR_WRONG_CONNECTION_SECURITY_LEVEL`.
pub const PRL_ERR_WRONG_CONNECTION_SECURITY_LEVEL: u32 = 0x8000_0277;

/// The magic of [`ProtocolVersion`] (`whoWeAre`).
pub const MAGIC: [u8; 4] = *b"PRLT";
/// Size of [`ProtocolVersion`] on the wire.
pub const PROTOCOL_VERSION_LEN: usize = 72;
/// Size of the `whatWeAre` text field.
pub const VERSION_TEXT_LEN: usize = 64;
/// Size of [`HandshakeHeader`] on the wire.
pub const HANDSHAKE_HEADER_LEN: usize = 20;
/// Size of the routing table header (`u32 name, u32 requirement, u8 routesNumber`).
pub const ROUTING_TABLE_HEADER_LEN: usize = 9;
/// Size of one `DirectRangeRoute`.
pub const ROUTE_LEN: usize = 16;
/// `IORoutingTable::MaxRoutesNumber`.
pub const MAX_ROUTES: usize = 20;
/// Largest legal routing table on the wire.
pub const MAX_ROUTING_TABLE_LEN: usize = ROUTING_TABLE_HEADER_LEN + MAX_ROUTES * ROUTE_LEN;
/// Largest legal client hello (version + header + largest table).
pub const MAX_CLIENT_HELLO_LEN: usize =
    PROTOCOL_VERSION_LEN + HANDSHAKE_HEADER_LEN + MAX_ROUTING_TABLE_LEN;
/// Size of the server hello (version + header).
pub const SERVER_HELLO_LEN: usize = PROTOCOL_VERSION_LEN + HANDSHAKE_HEADER_LEN;

/// Current protocol major number (`IOProtocolVersion`).
pub const CURRENT_MAJOR: u16 = 6;
/// Current protocol minor number (`IOProtocolVersion`).
pub const CURRENT_MINOR: u16 = 10;
/// The build text the real open-source SDK client sends (observed, see the captures).
pub const SDK_VERSION_TEXT: &str = "6.0.0 (Fri, 06 Jun 2014 17:53:59)";

/// Connection security level (`PRL_SECURITY_LEVEL`, libprlsdk `PrlCommandsFlags.h`).
/// Serialised (relay messages, configs) as `"low"`, `"normal"`, `"high"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u32)]
pub enum SecurityLevel {
    /// `PSL_LOW_SECURITY`: everything plain (TLS is still negotiated).
    Low = 0,
    /// `PSL_NORMAL_SECURITY`: commands, responses and events through TLS.
    Normal = 1,
    /// `PSL_HIGH_SECURITY`: everything through TLS.
    High = 2,
}

/// A `u32` that is not a [`SecurityLevel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown security level {0}: expected 0 (low), 1 (normal) or 2 (high)")]
pub struct UnknownSecurityLevel(pub u32);

impl UnknownSecurityLevel {
    /// Stable error kind.
    pub fn kind(&self) -> &'static str {
        "unknown_security_level"
    }
}

impl TryFrom<u32> for SecurityLevel {
    type Error = UnknownSecurityLevel;

    fn try_from(value: u32) -> Result<Self, Self::Error> {
        match value {
            0 => Ok(Self::Low),
            1 => Ok(Self::Normal),
            2 => Ok(Self::High),
            other => Err(UnknownSecurityLevel(other)),
        }
    }
}

impl From<SecurityLevel> for u32 {
    fn from(level: SecurityLevel) -> u32 {
        level as u32
    }
}

/// Why a handshake failed. The server side of the real code has no error codes (it closes the
/// socket); [`HandshakeError::prl_code`] gives what the SDK client reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// `whoWeAre` is not `"PRLT"` (`HandshakeError` on the client).
    #[error("protocol version magic mismatch: expected \"PRLT\", found {found:02x?}")]
    BadMagic {
        /// The four bytes received.
        found: [u8; 4],
    },
    /// The peer's major number differs from ours (`ProtocolVersionError` on the client).
    #[error("protocol major version mismatch: expected {expected}, found {found}.{found_minor}")]
    MajorVersionMismatch {
        /// Our major number.
        expected: u16,
        /// The peer's major number.
        found: u16,
        /// The peer's minor number (informational).
        found_minor: u16,
    },
    /// The peer's connection UUID is nil.
    #[error("handshake header carries a nil connection uuid")]
    NilConnectionUuid,
    /// The peer's sender type is 0 or not below `IOSender::EndTypeBound` (11).
    #[error("handshake header sender type {value} is invalid: expected 1..=10")]
    InvalidSenderType {
        /// The value received.
        value: u32,
    },
    /// `routesNumber` above `MaxRoutesNumber`, or a table with more routes than fit.
    #[error("routing table declares {count} routes: at most 20 allowed")]
    TooManyRoutes {
        /// The number declared or held.
        count: usize,
    },
    /// A routing table buffer whose size does not match its header (`fromBuffer`).
    #[error("routing table length mismatch: header needs {expected} bytes, found {found}")]
    RoutingTableLength {
        /// Size the header implies.
        expected: usize,
        /// Size given.
        found: usize,
    },
    /// A route with `begin > end` (`addRoute`).
    #[error("routing table route [{begin}, {end}] has begin > end")]
    InvertedRouteRange {
        /// First package type.
        begin: u32,
        /// Last package type.
        end: u32,
    },
    /// The same range twice (`addRoute`).
    #[error("routing table route [{begin}, {end}] is listed twice")]
    DuplicateRoute {
        /// First package type.
        begin: u32,
        /// Last package type.
        end: u32,
    },
    /// A range whose begin or end falls inside an earlier range (`addRoute`).
    #[error("routing table route [{begin}, {end}] overlaps an earlier route")]
    OverlappingRoute {
        /// First package type.
        begin: u32,
        /// Last package type.
        end: u32,
    },
    /// A table whose default route name is 0 (`isNull`). On the client this is
    /// `RoutingTableAcceptError`.
    #[error("routing table is null: default route name is 0")]
    NullRoutingTable,
    /// The server's table cannot accept the client's (`IORoutingTable::accept`).
    #[error(
        "routing table rejected at {at}: server route {server_name}/{server_requirement}, \
         client route {client_name}/{client_requirement}"
    )]
    RoutingTableRejected {
        /// Where: `"default route"` or `"route [begin, end]"`.
        at: String,
        /// The server side of the conflicting pair.
        server_name: RouteName,
        /// The server side of the conflicting pair.
        server_requirement: RouteRequirement,
        /// The client side of the conflicting pair.
        client_name: RouteName,
        /// The client side of the conflicting pair.
        client_requirement: RouteRequirement,
    },
    /// A local version text longer than the 64-byte field.
    #[error("protocol version text is {len} bytes: at most 64 fit")]
    VersionTextTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A local version text with a NUL byte (it would be cut there on the wire).
    #[error("protocol version text contains a nul byte")]
    VersionTextContainsNul,
    /// The peer closed the connection before the handshake completed.
    #[error("peer closed the connection during the handshake, while reading the {stage}")]
    PeerClosed {
        /// What was being read.
        stage: &'static str,
    },
    /// `feed` was called after the handshake had completed.
    #[error("handshake already complete: further bytes belong to the record layer")]
    AlreadyComplete,
}

impl HandshakeError {
    /// Stable snake_case kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::BadMagic { .. } => "bad_magic",
            Self::MajorVersionMismatch { .. } => "major_version_mismatch",
            Self::NilConnectionUuid => "nil_connection_uuid",
            Self::InvalidSenderType { .. } => "invalid_sender_type",
            Self::TooManyRoutes { .. } => "too_many_routes",
            Self::RoutingTableLength { .. } => "routing_table_length",
            Self::InvertedRouteRange { .. } => "inverted_route_range",
            Self::DuplicateRoute { .. } => "duplicate_route",
            Self::OverlappingRoute { .. } => "overlapping_route",
            Self::NullRoutingTable => "null_routing_table",
            Self::RoutingTableRejected { .. } => "routing_table_rejected",
            Self::VersionTextTooLong { .. } => "version_text_too_long",
            Self::VersionTextContainsNul => "version_text_contains_nul",
            Self::PeerClosed { .. } => "peer_closed",
            Self::AlreadyComplete => "already_complete",
        }
    }

    /// The SDK result code a client reports for this failure
    /// (`CPveControl::CheckConnectionStatusHelper`): `ProtocolVersionError` →
    /// `PRL_ERR_WRONG_PROTOCOL_VERSION`, `RoutingTableAcceptError` (a null table received) →
    /// `PRL_ERR_WRONG_CONNECTION_SECURITY_LEVEL`, every other handshake failure (including the
    /// server closing the socket after rejecting us) → `PRL_ERR_HANDSHAKE_FAILED`.
    pub fn prl_code(&self) -> u32 {
        match self {
            Self::MajorVersionMismatch { .. } => PRL_ERR_WRONG_PROTOCOL_VERSION,
            Self::NullRoutingTable => PRL_ERR_WRONG_CONNECTION_SECURITY_LEVEL,
            _ => PRL_ERR_HANDSHAKE_FAILED,
        }
    }
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

/// `struct ProtocolVersion` (72 bytes): `"PRLT"`, u16 major, u16 minor, 64-byte text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProtocolVersion {
    /// `majorNumber`: must be equal on both sides.
    pub major: u16,
    /// `minorNumber`: selects features, never rejected.
    pub minor: u16,
    /// `whatWeAre`: free build text, at most 64 bytes without NUL.
    pub text: String,
}

impl ProtocolVersion {
    /// 6.10 with the text of the real SDK client ([`SDK_VERSION_TEXT`]).
    pub fn current() -> Self {
        Self::new(CURRENT_MAJOR, CURRENT_MINOR, SDK_VERSION_TEXT)
    }

    /// A version with the given numbers and text (validated when encoded).
    pub fn new(major: u16, minor: u16, text: impl Into<String>) -> Self {
        Self {
            major,
            minor,
            text: text.into(),
        }
    }

    fn at_least(&self, minor: u16) -> bool {
        self.major > 6 || (self.major == 6 && self.minor >= minor)
    }

    /// `IOPROTOCOL_HEART_BEAT_SUPPORT` (>= 6.1).
    pub fn supports_heartbeat(&self) -> bool {
        self.at_least(1)
    }

    /// `IOPROTOCOL_BINARY_RESPONSE_SUPPORT` (>= 6.2): login reply is `DspWsBinaryResponse`.
    pub fn supports_binary_response(&self) -> bool {
        self.at_least(2)
    }

    /// `IOPROTOCOL_EVENT_NUMERIC_ID_SUPPORT` (>= 6.8): `numericId` in the package header.
    pub fn supports_numeric_id(&self) -> bool {
        self.at_least(8)
    }

    /// `IOPROTOCOL_NEW_LOGIN_SUPPORT` (>= 6.9): the login password is base64 encoded.
    pub fn supports_base64_password(&self) -> bool {
        self.at_least(9)
    }

    /// `IOPROTOCOL_NEW_PRODUCT_NAME_SUPPORT` (>= 6.10): not a "legacy product client".
    pub fn supports_new_product_name(&self) -> bool {
        self.at_least(10)
    }

    /// Checks the text fits the field. As in the source (a C array initialised from a string
    /// literal), up to 64 bytes are allowed; exactly 64 leaves no NUL terminator.
    pub fn validate(&self) -> Result<(), HandshakeError> {
        if self.text.len() > VERSION_TEXT_LEN {
            return Err(HandshakeError::VersionTextTooLong {
                len: self.text.len(),
            });
        }
        if self.text.as_bytes().contains(&0) {
            return Err(HandshakeError::VersionTextContainsNul);
        }
        Ok(())
    }

    /// The 72 wire bytes.
    pub fn to_bytes(&self) -> Result<[u8; PROTOCOL_VERSION_LEN], HandshakeError> {
        self.validate()?;
        let mut b = [0u8; PROTOCOL_VERSION_LEN];
        b[..4].copy_from_slice(&MAGIC);
        b[4..6].copy_from_slice(&self.major.to_le_bytes());
        b[6..8].copy_from_slice(&self.minor.to_le_bytes());
        b[8..8 + self.text.len()].copy_from_slice(self.text.as_bytes());
        Ok(b)
    }

    /// Parses 72 wire bytes, checking only the magic (the major is checked against the local
    /// version by the state machines). The text is read up to its first NUL; invalid UTF-8 is
    /// replaced (the source never interprets it).
    pub fn from_bytes(b: &[u8; PROTOCOL_VERSION_LEN]) -> Result<Self, HandshakeError> {
        let mut found = [0u8; 4];
        found.copy_from_slice(&b[..4]);
        if found != MAGIC {
            return Err(HandshakeError::BadMagic { found });
        }
        let text = &b[8..];
        let end = text.iter().position(|&c| c == 0).unwrap_or(text.len());
        Ok(Self {
            major: le_u16(b, 4),
            minor: le_u16(b, 6),
            text: String::from_utf8_lossy(&text[..end]).into_owned(),
        })
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{} ({:?})", self.major, self.minor, self.text)
    }
}

/// `IOSender::Type`, kept as the raw `u32` so unknown values survive a round trip.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SenderType(pub u32);

impl SenderType {
    /// `UnknownType` (invalid in a handshake).
    pub const UNKNOWN: Self = Self(0);
    /// `Vm`.
    pub const VM: Self = Self(1);
    /// `Dispatcher`: what `prl_disp_service` listens as.
    pub const DISPATCHER: Self = Self(2);
    /// `Client`: what the SDK connects as.
    pub const CLIENT: Self = Self(3);
    /// `IOClient`.
    pub const IO_CLIENT: Self = Self(4);
    /// `FileTransfer`.
    pub const FILE_TRANSFER: Self = Self(5);
    /// `PTAgent`.
    pub const PT_AGENT: Self = Self(6);
    /// `PTClient`.
    pub const PT_CLIENT: Self = Self(7);
    /// `ProxyManager`.
    pub const PROXY_MANAGER: Self = Self(8);
    /// `IOCtClient`.
    pub const IO_CT_CLIENT: Self = Self(9);
    /// `VmConverter`.
    pub const VM_CONVERTER: Self = Self(10);
    /// `EndTypeBound`: first invalid value.
    pub const END_TYPE_BOUND: u32 = 11;

    /// What the handshake accepts: not `UnknownType` and below `EndTypeBound`.
    pub fn is_valid(self) -> bool {
        self.0 != 0 && self.0 < Self::END_TYPE_BOUND
    }

    /// The source's name for a known value.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "UnknownType",
            1 => "Vm",
            2 => "Dispatcher",
            3 => "Client",
            4 => "IOClient",
            5 => "FileTransfer",
            6 => "PTAgent",
            7 => "PTClient",
            8 => "ProxyManager",
            9 => "IOCtClient",
            10 => "VmConverter",
            _ => return None,
        })
    }
}

impl fmt::Debug for SenderType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "SenderType::{n}({})", self.0),
            None => write!(f, "SenderType({})", self.0),
        }
    }
}

/// `struct HandshakeHeader` (20 bytes): u32 sender type, 16-byte connection UUID.
///
/// A client's connection UUID is its session id, so `Debug` redacts it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct HandshakeHeader {
    /// `senderType`.
    pub sender_type: SenderType,
    /// `connectionUuid` (RFC-4122 byte order).
    pub connection_uuid: Uuid,
}

impl fmt::Debug for HandshakeHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandshakeHeader")
            .field("sender_type", &self.sender_type)
            .field("connection_uuid", &"<redacted>")
            .finish()
    }
}

impl HandshakeHeader {
    /// The 20 wire bytes.
    pub fn to_bytes(&self) -> [u8; HANDSHAKE_HEADER_LEN] {
        let mut b = [0u8; HANDSHAKE_HEADER_LEN];
        b[..4].copy_from_slice(&self.sender_type.0.to_le_bytes());
        b[4..].copy_from_slice(self.connection_uuid.as_bytes());
        b
    }

    /// Parses 20 wire bytes without checking them (see [`HandshakeHeader::check`]).
    pub fn from_bytes(b: &[u8; HANDSHAKE_HEADER_LEN]) -> Self {
        let mut u = [0u8; 16];
        u.copy_from_slice(&b[4..]);
        Self {
            sender_type: SenderType(le_u32(b, 0)),
            connection_uuid: Uuid::from_bytes(u),
        }
    }

    /// The checks of `cli_parseHandshake`/`srv_parseHandshake`, in source order: non-nil UUID,
    /// then a valid sender type.
    pub fn check(&self) -> Result<(), HandshakeError> {
        if self.connection_uuid.is_nil() {
            return Err(HandshakeError::NilConnectionUuid);
        }
        if !self.sender_type.is_valid() {
            return Err(HandshakeError::InvalidSenderType {
                value: self.sender_type.0,
            });
        }
        Ok(())
    }
}

/// `IORoutingTable::RouteName`, kept raw (any `u32` can arrive; only `SSL` selects TLS).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteName(pub u32);

impl RouteName {
    /// `UnknownRoute`.
    pub const UNKNOWN: Self = Self(0);
    /// `PlainRoute`: 0xFF records.
    pub const PLAIN: Self = Self(1);
    /// `SSLRoute`: through TLS.
    pub const SSL: Self = Self(2);

    /// Whether data on this route goes through TLS (the writer tests `== SSLRoute` only).
    pub fn is_ssl(self) -> bool {
        self == Self::SSL
    }
}

impl fmt::Display for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("unknown"),
            1 => f.write_str("plain"),
            2 => f.write_str("ssl"),
            n => write!(f, "route {n}"),
        }
    }
}

impl fmt::Debug for RouteName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RouteName({self})")
    }
}

/// `IORoutingTable::RouteRequirement`, kept raw (the source treats every non-zero value as
/// required: it only ever tests `== OptionalRoute`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteRequirement(pub u32);

impl RouteRequirement {
    /// `OptionalRoute`.
    pub const OPTIONAL: Self = Self(0);
    /// `RequiredRoute`.
    pub const REQUIRED: Self = Self(1);

    /// `== OptionalRoute`.
    pub fn is_optional(self) -> bool {
        self == Self::OPTIONAL
    }
}

impl fmt::Display for RouteRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("optional"),
            1 => f.write_str("required"),
            n => write!(f, "requirement {n}"),
        }
    }
}

impl fmt::Debug for RouteRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RouteRequirement({self})")
    }
}

/// `DirectRangeRoute`: package types `begin..=end` go by `name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// `pkgTypeBegin`.
    pub begin: u32,
    /// `pkgTypeEnd` (inclusive).
    pub end: u32,
    /// `routeName`.
    pub name: RouteName,
    /// `routeReq`.
    pub requirement: RouteRequirement,
}

impl Route {
    fn pair(&self) -> (RouteName, RouteRequirement) {
        (self.name, self.requirement)
    }
}

/// `IORoutingTable`: a default route plus at most 20 range routes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoutingTable {
    /// `defaultRouteName`; 0 makes the table null.
    pub default_name: RouteName,
    /// `defaultRouteReq`.
    pub default_requirement: RouteRequirement,
    /// The routes, in wire order.
    pub routes: Vec<Route>,
    /// Route names this side knows without a route for them (the third constructor argument of
    /// `IORoutingTable`, e.g. `SSLRoute` in the LOW server table). Never on the wire; used only
    /// by [`RoutingTable::accept`] (`m_routeNameMap`).
    pub extra_route_names: Vec<RouteName>,
}

/// The package type ranges of the NORMAL table, in `IORoutingTableHelper.cpp` order.
const NORMAL_ROUTES: [(u32, u32); 10] = [
    (200_106, 200_106), // PET_IO_CLI_KEYBOARD_SCANCODE
    (200_115, 200_115), // PET_IO_CLI_TOOLS_CLIPBOARD_DATA
    (200_100, 200_100), // PET_IO_CLI_AUTHENTICATE_SESSION
    (200_101, 200_101), // PET_IO_CLI_ATTACH_TO_VM
    (1000, 1999),       // DspClientToVmCommandRange
    (2000, 2999),       // DspClientToDispatcherCommandRange
    (3000, 3999),       // DspVmToClientCommandRange
    (4000, 4999),       // DspCtlCommandRange
    (5000, 5999),       // DspWsCommandRange
    (6000, 7000),       // DispToDispRange
];

/// Qt 5 `prime_deltas` (qhash.cpp), for [`RoutingTable::in_qt5_hash_order`].
const QT5_PRIME_DELTAS: [u32; 32] = [
    0, 0, 1, 3, 1, 5, 3, 3, 1, 9, 7, 5, 3, 17, 27, 3, 1, 29, 3, 21, 7, 17, 15, 9, 43, 35, 15, 0, 0,
    0, 0, 0,
];

impl RoutingTable {
    /// `IORoutingTable(name, requirement)`: only a default route.
    pub fn new(default_name: RouteName, default_requirement: RouteRequirement) -> Self {
        Self {
            default_name,
            default_requirement,
            routes: Vec::new(),
            extra_route_names: Vec::new(),
        }
    }

    fn normal() -> Self {
        let mut t = Self::new(RouteName::PLAIN, RouteRequirement::REQUIRED);
        t.routes = NORMAL_ROUTES
            .iter()
            .map(|&(begin, end)| Route {
                begin,
                end,
                name: RouteName::SSL,
                requirement: RouteRequirement::REQUIRED,
            })
            .collect();
        t
    }

    /// `IORoutingTableHelper::GetClientRoutingTable`: LOW = Plain/Required; NORMAL =
    /// Plain/Required + 10 SSL/Required routes; HIGH = SSL/Required.
    pub fn client(level: SecurityLevel) -> Self {
        match level {
            SecurityLevel::Low => Self::new(RouteName::PLAIN, RouteRequirement::REQUIRED),
            SecurityLevel::Normal => Self::normal(),
            SecurityLevel::High => Self::new(RouteName::SSL, RouteRequirement::REQUIRED),
        }
    }

    /// `IORoutingTableHelper::GetServerRoutingTable`: LOW = Plain/Optional knowing SSL;
    /// NORMAL = the client NORMAL table; HIGH = SSL/Required.
    pub fn server(min_level: SecurityLevel) -> Self {
        match min_level {
            SecurityLevel::Low => {
                let mut t = Self::new(RouteName::PLAIN, RouteRequirement::OPTIONAL);
                t.extra_route_names.push(RouteName::SSL);
                t
            }
            SecurityLevel::Normal => Self::normal(),
            SecurityLevel::High => Self::new(RouteName::SSL, RouteRequirement::REQUIRED),
        }
    }

    /// `isNull`: the default route name is `UnknownRoute`.
    pub fn is_null(&self) -> bool {
        self.default_name == RouteName::UNKNOWN
    }

    /// `addRoute`: rejects `begin > end`, a full table, a range already present, and a range
    /// whose begin or end lies inside an existing range (exactly the source's overlap test,
    /// which lets a new range enclose an old one).
    pub fn add_route(
        &mut self,
        begin: u32,
        end: u32,
        name: RouteName,
        requirement: RouteRequirement,
    ) -> Result<(), HandshakeError> {
        if begin > end {
            return Err(HandshakeError::InvertedRouteRange { begin, end });
        }
        if self.routes.len() >= MAX_ROUTES {
            return Err(HandshakeError::TooManyRoutes {
                count: self.routes.len() + 1,
            });
        }
        if self.routes.iter().any(|r| r.begin == begin && r.end == end) {
            return Err(HandshakeError::DuplicateRoute { begin, end });
        }
        let inside = |r: &Route, t: u32| r.begin <= t && r.end >= t;
        if self
            .routes
            .iter()
            .any(|r| inside(r, begin) || inside(r, end))
        {
            return Err(HandshakeError::OverlappingRoute { begin, end });
        }
        self.routes.push(Route {
            begin,
            end,
            name,
            requirement,
        });
        Ok(())
    }

    /// `validateHeader`: the full table size implied by `routesNumber`.
    pub fn wire_len(routes_number: u8) -> Result<usize, HandshakeError> {
        let n = usize::from(routes_number);
        if n > MAX_ROUTES {
            return Err(HandshakeError::TooManyRoutes { count: n });
        }
        Ok(ROUTING_TABLE_HEADER_LEN + n * ROUTE_LEN)
    }

    /// Size of this table on the wire.
    pub fn encoded_len(&self) -> usize {
        ROUTING_TABLE_HEADER_LEN + self.routes.len() * ROUTE_LEN
    }

    /// `toBuffer`: appends the wire bytes (fails above 20 routes, like the source).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), HandshakeError> {
        let n = self.routes.len();
        let count = u8::try_from(n)
            .ok()
            .filter(|&c| usize::from(c) <= MAX_ROUTES)
            .ok_or(HandshakeError::TooManyRoutes { count: n })?;
        out.reserve(self.encoded_len());
        out.extend_from_slice(&self.default_name.0.to_le_bytes());
        out.extend_from_slice(&self.default_requirement.0.to_le_bytes());
        out.push(count);
        for r in &self.routes {
            out.extend_from_slice(&r.begin.to_le_bytes());
            out.extend_from_slice(&r.end.to_le_bytes());
            out.extend_from_slice(&r.name.0.to_le_bytes());
            out.extend_from_slice(&r.requirement.0.to_le_bytes());
        }
        Ok(())
    }

    /// The wire bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, HandshakeError> {
        let mut v = Vec::with_capacity(self.encoded_len().min(MAX_ROUTING_TABLE_LEN));
        self.encode(&mut v)?;
        Ok(v)
    }

    /// `fromBuffer`: `bytes` must be exactly the size its header implies; routes are added with
    /// [`RoutingTable::add_route`]. A null table parses (callers check [`RoutingTable::is_null`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, HandshakeError> {
        let header =
            bytes
                .get(..ROUTING_TABLE_HEADER_LEN)
                .ok_or(HandshakeError::RoutingTableLength {
                    expected: ROUTING_TABLE_HEADER_LEN,
                    found: bytes.len(),
                })?;
        let count = header[8];
        let expected = Self::wire_len(count)?;
        if bytes.len() != expected {
            return Err(HandshakeError::RoutingTableLength {
                expected,
                found: bytes.len(),
            });
        }
        let mut t = Self::new(
            RouteName(le_u32(header, 0)),
            RouteRequirement(le_u32(header, 4)),
        );
        for r in bytes[ROUTING_TABLE_HEADER_LEN..].chunks_exact(ROUTE_LEN) {
            t.add_route(
                le_u32(r, 0),
                le_u32(r, 4),
                RouteName(le_u32(r, 8)),
                RouteRequirement(le_u32(r, 12)),
            )?;
        }
        Ok(t)
    }

    /// `m_routeNameMap`: the default name, the extra names and every route's name.
    fn knows(&self, name: RouteName) -> bool {
        self.default_name == name
            || self.extra_route_names.contains(&name)
            || self.routes.iter().any(|r| r.name == name)
    }

    fn route(&self, begin: u32, end: u32) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.begin == begin && r.end == end)
    }

    /// `acceptRoutePair`.
    fn accept_pair(
        &self,
        server: (RouteName, RouteRequirement),
        client: (RouteName, RouteRequirement),
    ) -> Option<(RouteName, RouteRequirement)> {
        if server.1.is_optional() {
            let known = self.knows(client.0);
            if client.1.is_optional() {
                Some(if known { client } else { server })
            } else if known {
                Some(client)
            } else {
                None
            }
        } else if server.0 == client.0 || client.1.is_optional() {
            Some(server)
        } else {
            None
        }
    }

    /// `IORoutingTable::accept`, with `self` the server table: returns the table both sides use
    /// afterwards (the server sends it back). Output routes are the client's ranges in client
    /// order, then the server-only ranges in server order (the source's order is `QHash`
    /// order; peers parse routes as a set).
    ///
    /// Consequences for the helper tables: a LOW server accepts every client and echoes its
    /// table; a NORMAL server accepts only NORMAL clients; a HIGH server only HIGH clients.
    pub fn accept(&self, client: &RoutingTable) -> Result<RoutingTable, HandshakeError> {
        let rejected =
            |at: String, s: (RouteName, RouteRequirement), c: (RouteName, RouteRequirement)| {
                HandshakeError::RoutingTableRejected {
                    at,
                    server_name: s.0,
                    server_requirement: s.1,
                    client_name: c.0,
                    client_requirement: c.1,
                }
            };

        // Default route first of all.
        let server_default = (self.default_name, self.default_requirement);
        let client_default = (client.default_name, client.default_requirement);
        let out_default = self
            .accept_pair(server_default, client_default)
            .ok_or_else(|| rejected("default route".into(), server_default, client_default))?;

        // Merge the server's ranges the client does not list.
        let mut incoming: Vec<Route> = client.routes.clone();
        for s in &self.routes {
            if client.route(s.begin, s.end).is_some() {
                continue;
            }
            let (name, requirement) = if self.default_requirement.is_optional() {
                out_default
            } else {
                server_default
            };
            incoming.push(Route {
                begin: s.begin,
                end: s.end,
                name,
                requirement,
            });
        }

        // Check the incoming routes.
        let mut out = RoutingTable::new(out_default.0, out_default.1);
        for r in &incoming {
            let pair = if let Some(s) = self.route(r.begin, r.end) {
                self.accept_pair(s.pair(), r.pair()).ok_or_else(|| {
                    rejected(
                        format!("route [{}, {}]", r.begin, r.end),
                        s.pair(),
                        r.pair(),
                    )
                })?
            } else if r.requirement.is_optional() {
                if self.knows(r.name) {
                    r.pair()
                } else {
                    out_default
                }
            } else if self.knows(r.name) {
                r.pair()
            } else {
                return Err(rejected(
                    format!("route [{}, {}]", r.begin, r.end),
                    out_default,
                    r.pair(),
                ));
            };
            out.routes.push(Route {
                begin: r.begin,
                end: r.end,
                name: pair.0,
                requirement: pair.1,
            });
        }
        Ok(out)
    }

    /// `findRoute`: an exact single-type route first, then the first range containing the type
    /// (in wire order; the source walks its `QHash`), then the default route.
    pub fn find_route(&self, package_type: u32) -> (RouteName, RouteRequirement) {
        if let Some(r) = self.route(package_type, package_type) {
            return r.pair();
        }
        self.routes
            .iter()
            .find(|r| r.begin <= package_type && r.end >= package_type)
            .map_or((self.default_name, self.default_requirement), Route::pair)
    }

    /// The route name [`RoutingTable::find_route`] picks.
    pub fn route_for(&self, package_type: u32) -> RouteName {
        self.find_route(package_type).0
    }

    /// Reorders the routes as a Qt 5 `QHash<QPair<quint32, quint32>, _>` filled in the current
    /// order with hash seed `seed` iterates them (what `toBuffer` writes). Qt 5 hashes a pair as
    /// `rot16(first ^ seed) ^ (second ^ seed) ^ seed` into `2^bits + prime_deltas[bits]` chained
    /// buckets (at least 17), appending to chains and growing when `size >= buckets`.
    pub fn in_qt5_hash_order(mut self, seed: u32) -> Self {
        let hash = |r: &Route| (r.begin ^ seed).rotate_left(16) ^ (r.end ^ seed) ^ seed;
        let buckets_for = |bits: usize| {
            (1u32 << bits).saturating_add(QT5_PRIME_DELTAS.get(bits).copied().unwrap_or(0))
        };
        let mut bits = 0usize;
        let mut buckets: Vec<Vec<Route>> = Vec::new();
        let mut size = 0usize;
        for r in std::mem::take(&mut self.routes) {
            if let Some(existing) = buckets
                .iter_mut()
                .flatten()
                .find(|e| e.begin == r.begin && e.end == r.end)
            {
                *existing = r;
                continue;
            }
            if size >= buckets.len() {
                bits = (bits + 1).max(4);
                let n = buckets_for(bits) as usize;
                let mut grown: Vec<Vec<Route>> = vec![Vec::new(); n];
                for old in buckets.into_iter().flatten() {
                    grown[hash(&old) as usize % n].push(old);
                }
                buckets = grown;
            }
            let n = buckets.len();
            buckets[hash(&r) as usize % n].push(r);
            size += 1;
        }
        self.routes = buckets.into_iter().flatten().collect();
        self
    }
}

/// Incremental reader of the fixed-size parts of a handshake (bounded by the largest part).
#[derive(Debug, Default)]
struct PartReader {
    buf: Vec<u8>,
}

impl PartReader {
    /// Moves bytes from `input` until `want` are buffered; returns them once complete.
    fn fill(&mut self, input: &mut &[u8], want: usize) -> Option<Vec<u8>> {
        let need = want.saturating_sub(self.buf.len());
        let take = need.min(input.len());
        self.buf.extend_from_slice(&input[..take]);
        *input = &input[take..];
        if self.buf.len() >= want {
            Some(std::mem::take(&mut self.buf))
        } else {
            None
        }
    }
}

/// What is being read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stage {
    Version,
    Header,
    TableHeader,
    Routes(usize),
    Done,
    Failed(HandshakeError),
}

impl Stage {
    fn name(&self) -> &'static str {
        match self {
            Stage::Version => "protocol version",
            Stage::Header => "handshake header",
            Stage::TableHeader => "routing table header",
            Stage::Routes(_) => "routing table routes",
            Stage::Done | Stage::Failed(_) => "record layer",
        }
    }
}

/// The shared parsing core: version, header, table.
#[derive(Debug)]
struct PeerReader {
    local_major: u16,
    stage: Stage,
    part: PartReader,
    version: Option<ProtocolVersion>,
    header: Option<HandshakeHeader>,
    table_header: Vec<u8>,
    leftover: Vec<u8>,
}

impl PeerReader {
    fn new(local_major: u16) -> Self {
        Self {
            local_major,
            stage: Stage::Version,
            part: PartReader::default(),
            version: None,
            header: None,
            table_header: Vec::new(),
            leftover: Vec::new(),
        }
    }

    /// Reads the peer's version, header and routing table.
    fn feed(&mut self, mut input: &[u8]) -> Result<Option<RoutingTable>, HandshakeError> {
        loop {
            match &self.stage {
                Stage::Failed(e) => return Err(e.clone()),
                Stage::Done => return Err(HandshakeError::AlreadyComplete),
                _ => {}
            }
            match self.step(&mut input) {
                Ok(Some(table)) => {
                    self.stage = Stage::Done;
                    self.leftover.extend_from_slice(input);
                    return Ok(Some(table));
                }
                Ok(None) if input.is_empty() => return Ok(None),
                Ok(None) => {}
                Err(e) => {
                    self.stage = Stage::Failed(e.clone());
                    return Err(e);
                }
            }
        }
    }

    /// Advances by at most one part.
    fn step(&mut self, input: &mut &[u8]) -> Result<Option<RoutingTable>, HandshakeError> {
        match self.stage {
            Stage::Version => {
                if let Some(b) = self.part.fill(input, PROTOCOL_VERSION_LEN) {
                    let mut a = [0u8; PROTOCOL_VERSION_LEN];
                    a.copy_from_slice(&b);
                    let v = ProtocolVersion::from_bytes(&a)?;
                    if v.major != self.local_major {
                        return Err(HandshakeError::MajorVersionMismatch {
                            expected: self.local_major,
                            found: v.major,
                            found_minor: v.minor,
                        });
                    }
                    self.version = Some(v);
                    self.stage = Stage::Header;
                }
            }
            Stage::Header => {
                if let Some(b) = self.part.fill(input, HANDSHAKE_HEADER_LEN) {
                    let mut a = [0u8; HANDSHAKE_HEADER_LEN];
                    a.copy_from_slice(&b);
                    let h = HandshakeHeader::from_bytes(&a);
                    h.check()?;
                    self.header = Some(h);
                    self.stage = Stage::TableHeader;
                }
            }
            Stage::TableHeader => {
                if let Some(b) = self.part.fill(input, ROUTING_TABLE_HEADER_LEN) {
                    let count = b.get(8).copied().unwrap_or(0);
                    let len = RoutingTable::wire_len(count)?;
                    self.table_header = b;
                    if len == ROUTING_TABLE_HEADER_LEN {
                        return self.finish_table(Vec::new()).map(Some);
                    }
                    self.stage = Stage::Routes(len - ROUTING_TABLE_HEADER_LEN);
                }
            }
            Stage::Routes(len) => {
                if let Some(b) = self.part.fill(input, len) {
                    return self.finish_table(b).map(Some);
                }
            }
            Stage::Done | Stage::Failed(_) => {}
        }
        Ok(None)
    }

    fn finish_table(&mut self, routes: Vec<u8>) -> Result<RoutingTable, HandshakeError> {
        let mut all = std::mem::take(&mut self.table_header);
        all.extend_from_slice(&routes);
        let table = RoutingTable::from_bytes(&all)?;
        if table.is_null() {
            return Err(HandshakeError::NullRoutingTable);
        }
        Ok(table)
    }

    fn eof(&mut self) -> HandshakeError {
        let e = match &self.stage {
            Stage::Failed(e) => return e.clone(),
            Stage::Done => HandshakeError::AlreadyComplete,
            s => HandshakeError::PeerClosed { stage: s.name() },
        };
        if self.stage != Stage::Done {
            self.stage = Stage::Failed(e.clone());
        }
        e
    }
}

/// The client result: what the server said and the table both sides now route by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOutcome {
    /// The server's protocol version (same major as ours).
    pub server_version: ProtocolVersion,
    /// The server's sender type and connection UUID.
    pub server_header: HandshakeHeader,
    /// The accepted routing table the server sent (the client routes by it, unchecked).
    pub accepted_table: RoutingTable,
}

/// Client side of the handshake (`cli_sendHandshake` + `cli_parseHandshake`).
pub struct ClientHandshake {
    hello: Vec<u8>,
    reader: PeerReader,
}

impl fmt::Debug for ClientHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHandshake")
            .field("stage", &self.reader.stage)
            .field("hello_len", &self.hello.len())
            .field("leftover_len", &self.reader.leftover.len())
            .finish_non_exhaustive()
    }
}

impl ClientHandshake {
    /// A client (`SenderType::CLIENT`) with the helper table for `level`.
    pub fn new(
        version: ProtocolVersion,
        connection_uuid: Uuid,
        level: SecurityLevel,
    ) -> Result<Self, HandshakeError> {
        let header = HandshakeHeader {
            sender_type: SenderType::CLIENT,
            connection_uuid,
        };
        Self::with_table(version, header, &RoutingTable::client(level))
    }

    /// A client with any header and table (e.g. a table in a given `QHash` order).
    pub fn with_table(
        version: ProtocolVersion,
        header: HandshakeHeader,
        table: &RoutingTable,
    ) -> Result<Self, HandshakeError> {
        let mut hello = Vec::with_capacity(SERVER_HELLO_LEN + table.encoded_len());
        hello.extend_from_slice(&version.to_bytes()?);
        hello.extend_from_slice(&header.to_bytes());
        table.encode(&mut hello)?;
        Ok(Self {
            hello,
            reader: PeerReader::new(version.major),
        })
    }

    /// The bytes the client sends first: version (72) + header (20) + routing table.
    pub fn hello(&self) -> Vec<u8> {
        self.hello.clone()
    }

    /// Feeds bytes from the server. Returns the outcome once the server's version, header and
    /// accepted table are complete; bytes after them are kept for [`ClientHandshake::take_leftover`].
    /// After an error every call returns that error.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<ClientOutcome>, HandshakeError> {
        let Some(accepted_table) = self.reader.feed(bytes)? else {
            return Ok(None);
        };
        match (self.reader.version.clone(), self.reader.header) {
            (Some(server_version), Some(server_header)) => Ok(Some(ClientOutcome {
                server_version,
                server_header,
                accepted_table,
            })),
            _ => Err(self.reader.eof()),
        }
    }

    /// The error to report when the server closes the connection now.
    pub fn eof(&mut self) -> HandshakeError {
        self.reader.eof()
    }

    /// Whether the handshake has completed.
    pub fn is_complete(&self) -> bool {
        self.reader.stage == Stage::Done
    }

    /// Bytes received after the handshake (the start of the TLS handshake).
    pub fn take_leftover(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.reader.leftover)
    }
}

/// What both roles of the plaintext handshake have in common, so one driver that owns the
/// socket can run either: send `hello`, `feed` what arrives until an outcome, `eof` when the
/// peer closes first.
pub trait Handshake {
    /// What a completed handshake yields.
    type Outcome;
    /// The bytes this side sends first.
    fn hello(&self) -> Vec<u8>;
    /// Feeds bytes from the peer; the outcome once complete.
    fn feed(&mut self, bytes: &[u8]) -> Result<Option<Self::Outcome>, HandshakeError>;
    /// The error to report when the peer closes the connection now.
    fn eof(&mut self) -> HandshakeError;
    /// Bytes received after the handshake.
    fn take_leftover(&mut self) -> Vec<u8>;
}

impl Handshake for ClientHandshake {
    type Outcome = ClientOutcome;
    fn hello(&self) -> Vec<u8> {
        ClientHandshake::hello(self)
    }
    fn feed(&mut self, bytes: &[u8]) -> Result<Option<ClientOutcome>, HandshakeError> {
        ClientHandshake::feed(self, bytes)
    }
    fn eof(&mut self) -> HandshakeError {
        ClientHandshake::eof(self)
    }
    fn take_leftover(&mut self) -> Vec<u8> {
        ClientHandshake::take_leftover(self)
    }
}

impl Handshake for ServerHandshake {
    type Outcome = ServerOutcome;
    fn hello(&self) -> Vec<u8> {
        ServerHandshake::hello(self)
    }
    fn feed(&mut self, bytes: &[u8]) -> Result<Option<ServerOutcome>, HandshakeError> {
        ServerHandshake::feed(self, bytes)
    }
    fn eof(&mut self) -> HandshakeError {
        ServerHandshake::eof(self)
    }
    fn take_leftover(&mut self) -> Vec<u8> {
        ServerHandshake::take_leftover(self)
    }
}

/// The server result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOutcome {
    /// The client's protocol version (same major as ours).
    pub client_version: ProtocolVersion,
    /// The client's sender type and connection UUID (the future session id).
    pub client_header: HandshakeHeader,
    /// The table both sides route by.
    pub accepted_table: RoutingTable,
    /// The accepted table's bytes, to send to the client (`srv_sendRoutingTable`).
    pub reply: Vec<u8>,
}

/// Server side of the handshake (`srv_sendHandshake` + `srv_parseHandshake` +
/// `srv_sendRoutingTable`).
pub struct ServerHandshake {
    hello: Vec<u8>,
    table: RoutingTable,
    reader: PeerReader,
}

impl fmt::Debug for ServerHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandshake")
            .field("stage", &self.reader.stage)
            .field("table", &self.table)
            .field("leftover_len", &self.reader.leftover.len())
            .finish_non_exhaustive()
    }
}

impl ServerHandshake {
    /// A dispatcher (`SenderType::DISPATCHER`) with the helper server table for `min_level`.
    pub fn new(
        version: ProtocolVersion,
        server_uuid: Uuid,
        min_level: SecurityLevel,
    ) -> Result<Self, HandshakeError> {
        let header = HandshakeHeader {
            sender_type: SenderType::DISPATCHER,
            connection_uuid: server_uuid,
        };
        Self::with_table(version, header, RoutingTable::server(min_level))
    }

    /// A server with any header and table.
    pub fn with_table(
        version: ProtocolVersion,
        header: HandshakeHeader,
        table: RoutingTable,
    ) -> Result<Self, HandshakeError> {
        let mut hello = Vec::with_capacity(SERVER_HELLO_LEN);
        hello.extend_from_slice(&version.to_bytes()?);
        hello.extend_from_slice(&header.to_bytes());
        Ok(Self {
            hello,
            table,
            reader: PeerReader::new(version.major),
        })
    }

    /// The bytes the server sends right after accept: version (72) + header (20).
    pub fn hello(&self) -> Vec<u8> {
        self.hello.clone()
    }

    /// The server's own routing table.
    pub fn table(&self) -> &RoutingTable {
        &self.table
    }

    /// Feeds bytes from the client. Returns the outcome once the client's hello is complete
    /// and accepted; on any error the real server just closes the socket.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<ServerOutcome>, HandshakeError> {
        let Some(client_table) = self.reader.feed(bytes)? else {
            return Ok(None);
        };
        let accepted = self.table.accept(&client_table).and_then(|accepted_table| {
            let reply = accepted_table.to_bytes()?;
            Ok((accepted_table, reply))
        });
        let (accepted_table, reply) = match accepted {
            Ok(ok) => ok,
            Err(e) => {
                self.reader.stage = Stage::Failed(e.clone());
                return Err(e);
            }
        };
        match (self.reader.version.clone(), self.reader.header) {
            (Some(client_version), Some(client_header)) => Ok(Some(ServerOutcome {
                client_version,
                client_header,
                accepted_table,
                reply,
            })),
            _ => Err(self.reader.eof()),
        }
    }

    /// The error to report when the client closes the connection now.
    pub fn eof(&mut self) -> HandshakeError {
        self.reader.eof()
    }

    /// Whether the handshake has completed.
    pub fn is_complete(&self) -> bool {
        self.reader.stage == Stage::Done
    }

    /// Bytes received after the client's hello (the start of the TLS handshake).
    pub fn take_leftover(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.reader.leftover)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uuid(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    #[test]
    fn feature_gates_follow_the_macros() {
        let v = |maj, min| ProtocolVersion::new(maj, min, "");
        assert!(!v(6, 0).supports_heartbeat());
        assert!(v(6, 1).supports_heartbeat());
        assert!(!v(6, 1).supports_binary_response());
        assert!(v(6, 2).supports_binary_response());
        assert!(!v(6, 7).supports_numeric_id());
        assert!(v(6, 8).supports_numeric_id());
        assert!(!v(6, 8).supports_base64_password());
        assert!(v(6, 9).supports_base64_password());
        assert!(!v(6, 9).supports_new_product_name());
        assert!(v(6, 10).supports_new_product_name());
        assert!(v(7, 0).supports_new_product_name());
        assert!(!v(5, 99).supports_heartbeat());
        let c = ProtocolVersion::current();
        assert_eq!((c.major, c.minor), (6, 10));
    }

    #[test]
    fn version_text_limits() {
        let ok = ProtocolVersion::new(6, 10, "x".repeat(64));
        let b = ok.to_bytes().expect("64 bytes fit");
        assert_eq!(ProtocolVersion::from_bytes(&b).expect("parses"), ok);
        let long = ProtocolVersion::new(6, 10, "x".repeat(65));
        assert_eq!(
            long.to_bytes().map_err(|e| e.kind()),
            Err("version_text_too_long")
        );
        let nul = ProtocolVersion::new(6, 10, "a\0b");
        assert_eq!(
            nul.to_bytes().map_err(|e| e.kind()),
            Err("version_text_contains_nul")
        );
    }

    #[test]
    fn add_route_rules() {
        let mut t = RoutingTable::new(RouteName::PLAIN, RouteRequirement::REQUIRED);
        let (s, r) = (RouteName::SSL, RouteRequirement::REQUIRED);
        t.add_route(10, 20, s, r).expect("first");
        assert_eq!(
            t.add_route(5, 4, s, r).map_err(|e| e.kind()),
            Err("inverted_route_range")
        );
        assert_eq!(
            t.add_route(10, 20, s, r).map_err(|e| e.kind()),
            Err("duplicate_route")
        );
        assert_eq!(
            t.add_route(15, 30, s, r).map_err(|e| e.kind()),
            Err("overlapping_route")
        );
        assert_eq!(
            t.add_route(0, 10, s, r).map_err(|e| e.kind()),
            Err("overlapping_route")
        );
        // The source's overlap test misses a range enclosing an earlier one.
        t.add_route(0, 100, s, r)
            .expect("enclosing range is allowed by the source");
        for i in 0..18 {
            t.add_route(1000 + i, 1000 + i, s, r).expect("room");
        }
        assert_eq!(
            t.add_route(5000, 5000, s, r).map_err(|e| e.kind()),
            Err("too_many_routes")
        );
    }

    #[test]
    fn find_route_prefers_exact_then_range_then_default() {
        let mut t = RoutingTable::new(RouteName::PLAIN, RouteRequirement::OPTIONAL);
        t.add_route(50, 50, RouteName(7), RouteRequirement::REQUIRED)
            .expect("exact");
        t.add_route(0, 100, RouteName::SSL, RouteRequirement::REQUIRED)
            .expect("range");
        assert_eq!(t.route_for(50), RouteName(7));
        assert_eq!(t.route_for(49), RouteName::SSL);
        assert_eq!(
            t.find_route(101),
            (RouteName::PLAIN, RouteRequirement::OPTIONAL)
        );
        let n = RoutingTable::client(SecurityLevel::Normal);
        assert_eq!(n.route_for(2039), RouteName::SSL);
        assert_eq!(n.route_for(5003), RouteName::SSL);
        assert_eq!(n.route_for(10), RouteName::PLAIN);
        assert_eq!(n.route_for(200_106), RouteName::SSL);
        assert_eq!(n.route_for(200_107), RouteName::PLAIN);
        assert_eq!(
            RoutingTable::client(SecurityLevel::High).route_for(10),
            RouteName::SSL
        );
    }

    #[test]
    fn accept_matrix_matches_the_source() {
        use SecurityLevel::*;
        for server in [Low, Normal, High] {
            for client in [Low, Normal, High] {
                let r = RoutingTable::server(server).accept(&RoutingTable::client(client));
                let expect_ok = server == Low || server == client;
                assert_eq!(
                    r.is_ok(),
                    expect_ok,
                    "server {server:?} client {client:?}: {r:?}"
                );
                if let Ok(t) = r {
                    assert_eq!(t, RoutingTable::client(client));
                }
            }
        }
    }

    #[test]
    fn accept_optional_routes() {
        // Server optional default, client optional route with an unknown name: falls back to
        // the accepted default route.
        let server = RoutingTable::server(SecurityLevel::Low);
        let mut client = RoutingTable::new(RouteName::SSL, RouteRequirement::OPTIONAL);
        client
            .add_route(1, 2, RouteName(9), RouteRequirement::OPTIONAL)
            .expect("route");
        client
            .add_route(3, 4, RouteName::SSL, RouteRequirement::OPTIONAL)
            .expect("route");
        let out = server.accept(&client).expect("accepted");
        assert_eq!(out.default_name, RouteName::SSL);
        assert_eq!(
            out.routes[0].pair(),
            (RouteName::SSL, RouteRequirement::OPTIONAL)
        );
        assert_eq!(
            out.routes[1].pair(),
            (RouteName::SSL, RouteRequirement::OPTIONAL)
        );
        // A required route with an unknown name is refused.
        let mut client = RoutingTable::new(RouteName::PLAIN, RouteRequirement::REQUIRED);
        client
            .add_route(1, 2, RouteName(9), RouteRequirement::REQUIRED)
            .expect("route");
        assert_eq!(
            server.accept(&client).map_err(|e| e.kind()),
            Err("routing_table_rejected")
        );
        // Server required routes override optional client ones listed for the same range.
        let server = RoutingTable::server(SecurityLevel::Normal);
        let mut client = RoutingTable::new(RouteName::PLAIN, RouteRequirement::OPTIONAL);
        for &(b, e) in &NORMAL_ROUTES {
            client
                .add_route(b, e, RouteName::PLAIN, RouteRequirement::OPTIONAL)
                .expect("route");
        }
        let out = server.accept(&client).expect("accepted");
        assert_eq!(out, RoutingTable::client(SecurityLevel::Normal));
        // But ranges the client omits are merged in with the server's *default* pair
        // (Plain/Required), which then conflicts with the server's SSL/Required route.
        let client = RoutingTable::new(RouteName::PLAIN, RouteRequirement::OPTIONAL);
        let err = server.accept(&client).expect_err("rejected");
        assert_eq!(err.kind(), "routing_table_rejected");
        assert_eq!(err.prl_code(), PRL_ERR_HANDSHAKE_FAILED);
    }

    #[test]
    fn server_checks_in_order() {
        let mut s = ServerHandshake::new(ProtocolVersion::current(), uuid(2), SecurityLevel::Low)
            .expect("server");
        let mut hello =
            ClientHandshake::new(ProtocolVersion::current(), uuid(1), SecurityLevel::Low)
                .expect("client")
                .hello();
        hello[72..76].copy_from_slice(&0u32.to_le_bytes());
        hello[76..92].copy_from_slice(&[0; 16]);
        // Both the sender type and the uuid are bad: the uuid is checked first.
        assert_eq!(
            s.feed(&hello).map_err(|e| e.kind()),
            Err("nil_connection_uuid")
        );
        // Poisoned afterwards.
        assert_eq!(
            s.feed(&[]).map_err(|e| e.kind()),
            Err("nil_connection_uuid")
        );
    }
}
