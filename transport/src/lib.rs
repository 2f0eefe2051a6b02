//! The native IOService connection: the one implementation of the Parallels Service transport
//! used by the relay (client role), the simulator (server role) and the benchmarks.
//!
//! A connection is a TCP or unix socket on which both sides first exchange a plaintext
//! handshake (protocol version, sender type and connection UUID, routing table), then run an
//! in-band TLS handshake (OpenSSL, anonymous DH, TLS <= 1.2, see [`tls`]), then exchange IO
//! packages in 5-byte records: `0xFF` records carry plaintext, others are TLS records, and the
//! accepted routing table decides per package type which way a package goes (this is how the
//! LOW, NORMAL and HIGH security levels work).
//!
//! - Client: [`connect`] (or [`connect_stream`] on a socket you connected) with a
//!   [`ClientConfig`]; the connect budget covers connect, handshake and TLS.
//! - Server: [`accept_tcp`], [`accept_unix`] or [`accept`] with a [`ServerConfig`].
//! - Either way you get a [`Connection`]: [`Connection::send`] / [`Connection::recv`] with real
//!   backpressure (bounded queues; the socket is not read while the receiver is full),
//!   [`ConnectionInfo`] about the peer and the negotiated security, heartbeats every 10 s to
//!   peers of protocol >= 6.1 (received heartbeats are consumed, never delivered).
//! - Errors are [`TransportError`]s with [`TransportError::prl_code`] giving the code the SDK
//!   reports (`PRL_ERR_CANT_CONNECT_TO_DISPATCHER`, `PRL_ERR_HANDSHAKE_FAILED`, ...).
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod client;
pub mod connection;
pub mod error;
mod gcm;
#[cfg(feature = "fuzzing")]
pub use gcm::fuzzing;
pub mod inline;
pub mod server;
pub mod tls;

pub use client::{connect, connect_inline, connect_stream, ClientConfig, Endpoint};
pub use connection::{
    security_level_of, Connection, ConnectionInfo, PackageReceiver, PackageSender, PeerAddress,
    PeerCredentials, Role, StreamOptions, WRITE_HIGH_WATER,
};
pub use error::{Stage, TransportError};
pub use inline::{Event, InlineConnection};
pub use server::{
    accept, accept_tcp, accept_unix, AcceptAll, AcceptPolicy, Admission, Peer, ServerConfig,
};
pub use tls::{Credentials, KeyExchange, TlsConfig, TlsError};
