//! The transport's error type and its mapping to the SDK's `PRL_ERR_*` codes.

use std::fmt;
use std::io;
use std::time::Duration;

use prl_protocol::handshake::HandshakeError;
use prl_protocol::package::PackageError;
use prl_protocol::record::RecordError;
use prl_protocol::ErrorCode;

use crate::tls::TlsError;

/// Where in the life of a connection something happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Resolving the host name.
    Resolve,
    /// The TCP or unix-socket connect.
    Connect,
    /// The plaintext IOService handshake (versions, headers, routing tables).
    Handshake,
    /// The in-band TLS handshake.
    Tls,
    /// After both handshakes: exchanging packages.
    Established,
}

impl Stage {
    /// A stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Resolve => "resolve",
            Stage::Connect => "connect",
            Stage::Handshake => "handshake",
            Stage::Tls => "tls handshake",
            Stage::Established => "established connection",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that can go wrong with an IOService connection.
///
/// [`TransportError::prl_code`] gives the code the real SDK client reports for the same failure
/// (`CPveControl::CheckConnectionStatusHelper` and the IO layer's error states).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The host name could not be resolved.
    #[error("cannot resolve {host:?}: {source}")]
    Resolve {
        /// The name.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// The host name resolved to no address.
    #[error("{host:?} resolved to no address")]
    NoAddress {
        /// The name.
        host: String,
    },
    /// Connecting failed (refused, unreachable, no such socket file, ...). With several
    /// addresses this is the last address's error.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The address (`ip:port` or the socket path).
        addr: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The connect budget expired.
    #[error("connect budget of {} ms expired during the {stage}", budget.as_millis())]
    Timeout {
        /// The stage that was running.
        stage: Stage,
        /// The whole budget.
        budget: Duration,
    },
    /// The plaintext handshake failed (the peer closed it, sent a wrong version or magic, or
    /// refused our routing table).
    #[error("iohandshake failed: {0}")]
    Handshake(#[source] HandshakeError),
    /// The TLS handshake failed.
    #[error("tls handshake failed: {0}")]
    TlsHandshake(#[source] RecordError),
    /// The peer closed the connection during the TLS handshake.
    #[error("peer closed the connection during the tls handshake")]
    TlsHandshakeClosed,
    /// A socket read or write failed.
    #[error("i/o error during the {stage}: {source}")]
    Io {
        /// The stage that was running.
        stage: Stage,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The record layer refused what the peer sent (bad record header, TLS failure).
    #[error("record layer: {0}")]
    Record(#[source] RecordError),
    /// The package stream from the peer is malformed (bad CRC, over the limits).
    #[error("package stream: {0}")]
    Package(#[source] PackageError),
    /// A package to send is over what the IO protocol accepts (1 GiB, 1024 buffers).
    #[error("package not sent: {0}")]
    Oversize(#[source] PackageError),
    /// The connection is closed (by either side).
    #[error("connection closed")]
    Closed,
    /// The server refused the connection (its accept policy).
    #[error("connection refused by the server's accept policy")]
    Refused,
    /// The server held the connection without answering until its stall limit (fault injection).
    #[error("connection stalled on purpose during the {0} stage")]
    Stalled(Stage),
    /// TLS context or engine setup failed.
    #[error("tls setup: {0}")]
    TlsSetup(#[source] TlsError),
    /// A local configuration error.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl TransportError {
    /// A stable snake_case name of the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            TransportError::Resolve { .. } => "resolve",
            TransportError::NoAddress { .. } => "no_address",
            TransportError::Connect { .. } => "connect",
            TransportError::Timeout { .. } => "timeout",
            TransportError::Handshake(_) => "handshake",
            TransportError::TlsHandshake(_) => "tls_handshake",
            TransportError::TlsHandshakeClosed => "tls_handshake_closed",
            TransportError::Io { .. } => "io",
            TransportError::Record(_) => "record",
            TransportError::Package(_) => "package",
            TransportError::Oversize(_) => "oversize",
            TransportError::Closed => "closed",
            TransportError::Refused => "refused",
            TransportError::Stalled(_) => "stalled",
            TransportError::TlsSetup(_) => "tls_setup",
            TransportError::Config(_) => "config",
        }
    }

    /// The stage the error belongs to.
    pub fn stage(&self) -> Stage {
        match self {
            TransportError::Resolve { .. } | TransportError::NoAddress { .. } => Stage::Resolve,
            TransportError::Connect { .. } | TransportError::Config(_) => Stage::Connect,
            TransportError::Timeout { stage, .. } | TransportError::Io { stage, .. } => *stage,
            TransportError::Stalled(stage) => *stage,
            TransportError::Handshake(_) | TransportError::Refused => Stage::Handshake,
            TransportError::TlsHandshake(_)
            | TransportError::TlsHandshakeClosed
            | TransportError::TlsSetup(_) => Stage::Tls,
            TransportError::Record(_)
            | TransportError::Package(_)
            | TransportError::Oversize(_)
            | TransportError::Closed => Stage::Established,
        }
    }

    /// The `PRL_RESULT` the SDK client reports for this failure.
    ///
    /// - name resolution, connect failures and a budget expiring while connecting:
    ///   `PRL_ERR_CANT_CONNECT_TO_DISPATCHER` (`IOSender::ConnectionTimeout` and connect errors);
    /// - anything in the plaintext handshake, including the server closing the socket (how a
    ///   service refuses a too-low security level) and a read timing out there:
    ///   `PRL_ERR_HANDSHAKE_FAILED`; a different major version: `PRL_ERR_WRONG_PROTOCOL_VERSION`;
    ///   a null routing table: `PRL_ERR_WRONG_CONNECTION_SECURITY_LEVEL`;
    /// - anything in the TLS handshake, including a timeout: `PRL_ERR_SSL_HANDSHAKE_FAILED`;
    /// - an established connection that breaks: `PRL_ERR_WS_DISP_CONNECTION_CLOSED`.
    pub fn prl_code(&self) -> ErrorCode {
        match self {
            TransportError::Handshake(e) => e.prl_code(),
            TransportError::Oversize(_) => ErrorCode::INVALID_ARG,
            TransportError::TlsSetup(_) | TransportError::Config(_) => ErrorCode::UNEXPECTED,
            other => match other.stage() {
                Stage::Resolve | Stage::Connect => ErrorCode::CANT_CONNECT_TO_DISPATCHER,
                Stage::Handshake => ErrorCode::HANDSHAKE_FAILED,
                Stage::Tls => ErrorCode::SSL_HANDSHAKE_FAILED,
                Stage::Established => ErrorCode::WS_DISP_CONNECTION_CLOSED,
            },
        }
    }

    pub(crate) fn io(stage: Stage, source: io::Error) -> Self {
        TransportError::Io { stage, source }
    }
}
