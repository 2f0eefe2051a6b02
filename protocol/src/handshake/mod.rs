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
//!
//! # Modules
//! - `version`: [`ProtocolVersion`] (and the feature gates), [`SenderType`], [`HandshakeHeader`];
//! - `routing`: [`SecurityLevel`], routes and [`RoutingTable`]: the helper tables, `addRoute`,
//!   the wire form, `accept` and `findRoute`;
//! - `qhash`: [`RoutingTable::in_qt5_hash_order`], the Qt 5 `QHash` iteration order;
//! - `peer`: the incremental reader of the peer's parts both roles share, and the [`Handshake`]
//!   trait whose default methods drive it;
//! - `client` / `server`: [`ClientHandshake`] and [`ServerHandshake`], which add only their
//!   hello and what a complete peer hello means to them;
//! - `error`: [`HandshakeError`] and its SDK code.

mod client;
mod error;
mod peer;
mod qhash;
mod routing;
mod server;
mod version;

pub use client::{ClientHandshake, ClientOutcome};
pub use error::HandshakeError;
pub use peer::Handshake;
pub use routing::{
    Route, RouteName, RouteRequirement, RoutingTable, SecurityLevel, UnknownSecurityLevel,
};
pub use server::{ServerHandshake, ServerOutcome};
pub use version::{HandshakeHeader, ProtocolVersion, SenderType};

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
