//! Why a handshake failed, and what the SDK client reports for it.

use crate::codes::ErrorCode;
use crate::reader::{Trailing, Truncated};

use super::{RouteName, RouteRequirement};

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
    /// A part of the handshake ends early (a decoder given fewer bytes than the part has).
    #[error("handshake {what} truncated: needs {needed} bytes, {available} available")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// Bytes follow a part of the handshake given to a decoder that takes exactly one part.
    #[error("{count} trailing bytes after the {after}")]
    TrailingBytes {
        /// The part read.
        after: &'static str,
        /// How many bytes follow it.
        count: usize,
    },
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
            Self::Truncated { .. } => "truncated",
            Self::TrailingBytes { .. } => "trailing_bytes",
            Self::PeerClosed { .. } => "peer_closed",
            Self::AlreadyComplete => "already_complete",
        }
    }

    /// The SDK result code a client reports for this failure
    /// (`CPveControl::CheckConnectionStatusHelper`): `ProtocolVersionError` →
    /// `PRL_ERR_WRONG_PROTOCOL_VERSION`, `RoutingTableAcceptError` (a null table received) →
    /// `PRL_ERR_WRONG_CONNECTION_SECURITY_LEVEL`, every other handshake failure (including the
    /// server closing the socket after rejecting us) → `PRL_ERR_HANDSHAKE_FAILED`.
    pub fn prl_code(&self) -> ErrorCode {
        match self {
            Self::MajorVersionMismatch { .. } => ErrorCode::WRONG_PROTOCOL_VERSION,
            Self::NullRoutingTable => ErrorCode::WRONG_CONNECTION_SECURITY_LEVEL,
            _ => ErrorCode::HANDSHAKE_FAILED,
        }
    }
}

impl From<Truncated> for HandshakeError {
    fn from(e: Truncated) -> Self {
        Self::Truncated {
            what: e.what,
            needed: e.needed,
            available: e.available,
        }
    }
}

impl From<Trailing> for HandshakeError {
    fn from(e: Trailing) -> Self {
        Self::TrailingBytes {
            after: e.after,
            count: e.count,
        }
    }
}
