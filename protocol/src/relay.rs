//! Messages between the browser client and prl-proxy (the relay protocol, versions 1 and 2).
//!
//! The WebSocket carries two kinds of messages (see `docs/relay-protocol.md`):
//! - text messages: one JSON control message each ([`ClientMessage`], [`ProxyMessage`]);
//! - binary messages: exactly one whole IO package each (the package codec's bytes).
//!
//! The first message of the browser is `open` or `resume`; the proxy answers `opened`,
//! `resumed` or `error`. After that, packages flow both ways as binary messages until either
//! side closes; a proxy-side failure is reported as one final `error` message.
//!
//! Secrets (password-free by design, but tickets and resume tokens are bearer secrets) are
//! redacted from `Debug` output.
//!
//! Versions: the browser offers the subprotocols of the versions it speaks, newest first
//! ([`SUBPROTOCOL`], [`SUBPROTOCOL_V1`]); the proxy selects the newest it speaks too. Version 2
//! is version 1 plus what a cluster of proxies needs: the optional `instance` of `opened`,
//! `resumed` and of a `resume_elsewhere` error, and the error kinds `resume_elsewhere` and
//! `state_unavailable`. The proxy never sends a version-2 field or kind on a version-1
//! connection ([`ProxyMessage::for_version`]), so a version-1 client keeps working unchanged.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::codes::ErrorCode;
use crate::handshake::SecurityLevel;
use crate::scope::CommandScope;

/// The newest relay protocol version this crate speaks.
pub const RELAY_VERSION: u32 = 2;
/// The oldest relay protocol version this crate still speaks.
pub const MIN_RELAY_VERSION: u32 = 1;
/// The WebSocket subprotocol name of [`RELAY_VERSION`].
pub const SUBPROTOCOL: &str = "prl-relay.v2";
/// The WebSocket subprotocol name of version 1.
pub const SUBPROTOCOL_V1: &str = "prl-relay.v1";

/// The relay version a subprotocol name stands for (`None`: not a relay subprotocol this crate
/// speaks).
pub fn subprotocol_version(name: &str) -> Option<u32> {
    match name {
        SUBPROTOCOL => Some(RELAY_VERSION),
        SUBPROTOCOL_V1 => Some(1),
        _ => None,
    }
}

/// The subprotocol name of a relay version this crate speaks (the newest for any other value).
pub fn subprotocol_name(version: u32) -> &'static str {
    if version == 1 {
        SUBPROTOCOL_V1
    } else {
        SUBPROTOCOL
    }
}
/// Prefix of a `Sec-WebSocket-Protocol` entry that carries a ticket (`prl-ticket.<ticket>`).
pub const TICKET_SUBPROTOCOL_PREFIX: &str = "prl-ticket.";
/// Largest control message accepted, in bytes.
pub const MAX_CONTROL_LEN: usize = 8 * 1024;

/// A secret string (ticket, resume token): never shown by `Debug`, wiped from memory on drop.
#[derive(
    Clone, PartialEq, Eq, Serialize, Deserialize, zeroize::Zeroize, zeroize::ZeroizeOnDrop,
)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where the proxy should connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Host name or IP literal (as the SDK's `host` argument), or a target name from the
    /// proxy's configuration.
    pub host: String,
    /// TCP port; 0 means the default 64000.
    #[serde(default)]
    pub port: u16,
}

impl Target {
    /// The port after applying the SDK rule "0 means 64000".
    pub fn effective_port(&self) -> u16 {
        if self.port == 0 {
            crate::DEFAULT_PORT
        } else {
            self.port
        }
    }
}

/// Which login the browser intends on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConnectMode {
    /// `login` (2039) over TCP.
    #[default]
    Remote,
    /// `login_local` (2186) to a co-located service (refused unless the operator enables it).
    Local,
}

/// The browser's request to open an upstream connection.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenRequest {
    /// The relay version of the connection (the negotiated subprotocol's), at most
    /// [`RELAY_VERSION`].
    pub version: u32,
    /// Target service (ignored for `mode = local`, which uses the configured local service).
    pub target: Target,
    /// Requested security level (routing table sent in the IOService handshake).
    pub security_level: SecurityLevel,
    /// Connect budget in ms (TCP + handshake + TLS); 0 = no deadline of the caller's (the
    /// proxy's ceiling applies).
    #[serde(default)]
    pub timeout_ms: u32,
    /// Remote or local login.
    #[serde(default)]
    pub mode: ConnectMode,
    /// Optional signed ticket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<Secret>,
    /// Proof that this browser session owned an earlier upstream connection: the last resume
    /// token it was given for it. Required for a login that names that connection's session
    /// as the previous session to restore (the proxy refuses restores it cannot tie to the
    /// same browser session, so a leaked session UUID is useless through it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<Secret>,
}

impl fmt::Debug for OpenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenRequest")
            .field("version", &self.version)
            .field("target", &self.target)
            .field("security_level", &self.security_level)
            .field("timeout_ms", &self.timeout_ms)
            .field("mode", &self.mode)
            .field("ticket", &self.ticket)
            .field("restore", &self.restore)
            .finish()
    }
}

/// The browser's request to take over a still-open upstream connection after a WebSocket drop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResumeRequest {
    /// The relay version of the connection, at most [`RELAY_VERSION`].
    pub version: u32,
    /// The resume token of the last `opened` / `resumed` reply.
    pub token: Secret,
    /// How many packages from the proxy the browser has fully received on this upstream
    /// connection; the proxy replays everything after that.
    pub received: u64,
}

/// A control message from the browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Open a new upstream connection.
    Open(OpenRequest),
    /// Resume an upstream connection kept across a WebSocket drop.
    Resume(ResumeRequest),
}

/// Facts about an opened upstream connection, for the console to show.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Opened {
    /// Relay protocol version.
    pub version: u32,
    /// The IO connection UUID the proxy presented to the service, `{...}` form. The service
    /// uses it as the session UUID; packages from the browser must carry it as sender.
    pub connection_uuid: String,
    /// The service's IOService protocol version, e.g. "6.10".
    pub service_protocol: String,
    /// The service's build text from its handshake.
    pub service_build: String,
    /// The security level in force (from the accepted routing table).
    pub security_level: SecurityLevel,
    /// The negotiated TLS cipher (OpenSSL name, e.g. "ADH-AES256-GCM-SHA384").
    pub cipher: String,
    /// The negotiated TLS version, e.g. "TLSv1.2".
    pub tls_version: String,
    /// Secret token to resume this upstream connection after a WebSocket drop.
    pub resume_token: Secret,
    /// How long the proxy keeps the upstream connection after a drop, in ms.
    pub resume_window_ms: u32,
    /// Version 2, proxies in a cluster: the public URL of the proxy instance that holds this
    /// upstream connection (where a resume must end up). Absent from a single proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("version", &self.version)
            .field("connection_uuid", &"<redacted>")
            .field("service_protocol", &self.service_protocol)
            .field("service_build", &self.service_build)
            .field("security_level", &self.security_level)
            .field("cipher", &self.cipher)
            .field("tls_version", &self.tls_version)
            .field("resume_token", &self.resume_token)
            .field("resume_window_ms", &self.resume_window_ms)
            .field("instance", &self.instance)
            .finish()
    }
}

/// Reply to a successful resume; the replayed packages follow as binary messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resumed {
    /// Relay protocol version.
    pub version: u32,
    /// The new resume token (tokens are single use).
    pub resume_token: Secret,
    /// Number of packages replayed right after this message.
    pub replayed: u64,
    /// Version 2, proxies in a cluster: the public URL of the instance that holds the
    /// connection (the one that answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

/// Why the proxy could not open, resume or keep a connection. Stable snake_case names
/// ([`RelayErrorKind::as_str`], which serde uses too: one table of names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelayErrorKind {
    /// The target (or local login) is not allowed by the proxy's policy.
    PolicyDenied,
    /// The page's Origin is not allowed.
    OriginDenied,
    /// The ticket is missing, malformed, expired, replayed or for another target/origin.
    TicketInvalid,
    /// The target name did not resolve.
    DnsFailed,
    /// The service refused or reset the TCP connection.
    ConnectionRefused,
    /// The connect budget expired (TCP + handshake + TLS).
    Timeout,
    /// The IOService handshake failed (including a security level below the service's minimum).
    HandshakeFailed,
    /// The service's protocol major version differs.
    WrongProtocolVersion,
    /// The in-band TLS handshake failed.
    TlsFailed,
    /// A peer broke the protocol (bad message, bad package).
    ProtocolViolation,
    /// A size, rate or count limit was reached.
    LimitReached,
    /// A login named a previous session this connection has no valid restore proof for
    /// (none, unknown, used, expired, another session's, or the proxy restarted).
    RestoreRefused,
    /// The resume token is unknown, used or expired, or the upstream connection is gone.
    ResumeFailed,
    /// The upstream connection closed.
    Closed,
    /// The proxy failed internally.
    Internal,
    /// Version 2: another instance of a proxy cluster holds the upstream connection this
    /// `resume` names; the error's `instance` is its public URL (from the proxies'
    /// configuration, never from the browser). The client resumes there, once.
    ResumeElsewhere,
    /// Version 2: the state the proxies of a cluster share (Redis) cannot be reached, and
    /// what was asked needs it (a ticket, a restore proof, a login throttle): refused, not
    /// guessed. Transient: a later attempt may succeed.
    StateUnavailable,
    /// A package the browser sent is a command outside this connection's command scope
    /// (`[policy] scope` and the ticket's `scope`): it was not forwarded. Unlike every other
    /// kind this one does not end the connection: the session stays up and the browser may
    /// go on. The message names the refused request ([`RelayError::refused_request`]).
    CommandRefused,
}

impl Serialize for RelayErrorKind {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RelayErrorKind {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = RelayErrorKind;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a relay error kind")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<RelayErrorKind, E> {
                RelayErrorKind::ALL
                    .into_iter()
                    .find(|k| k.as_str() == name)
                    .ok_or_else(|| {
                        E::invalid_value(serde::de::Unexpected::Str(name), &"a relay error kind")
                    })
            }
        }
        deserializer.deserialize_str(Name)
    }
}

impl RelayErrorKind {
    /// Every kind, for tables and tests.
    pub const ALL: [RelayErrorKind; 18] = [
        Self::PolicyDenied,
        Self::OriginDenied,
        Self::TicketInvalid,
        Self::DnsFailed,
        Self::ConnectionRefused,
        Self::Timeout,
        Self::HandshakeFailed,
        Self::WrongProtocolVersion,
        Self::TlsFailed,
        Self::ProtocolViolation,
        Self::LimitReached,
        Self::RestoreRefused,
        Self::ResumeFailed,
        Self::Closed,
        Self::Internal,
        Self::ResumeElsewhere,
        Self::StateUnavailable,
        Self::CommandRefused,
    ];

    /// The stable name (as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PolicyDenied => "policy_denied",
            Self::OriginDenied => "origin_denied",
            Self::TicketInvalid => "ticket_invalid",
            Self::DnsFailed => "dns_failed",
            Self::ConnectionRefused => "connection_refused",
            Self::Timeout => "timeout",
            Self::HandshakeFailed => "handshake_failed",
            Self::WrongProtocolVersion => "wrong_protocol_version",
            Self::TlsFailed => "tls_failed",
            Self::ProtocolViolation => "protocol_violation",
            Self::LimitReached => "limit_reached",
            Self::RestoreRefused => "restore_refused",
            Self::ResumeFailed => "resume_failed",
            Self::Closed => "closed",
            Self::Internal => "internal",
            Self::CommandRefused => "command_refused",
            Self::ResumeElsewhere => "resume_elsewhere",
            Self::StateUnavailable => "state_unavailable",
        }
    }

    /// The first relay version that has this kind.
    pub fn since_version(self) -> u32 {
        match self {
            Self::ResumeElsewhere | Self::StateUnavailable => 2,
            _ => 1,
        }
    }

    /// The `PRL_ERR_*` code the SDK would report for this failure, where it has one.
    /// This is the one mapping from relay failures to SDK codes.
    pub fn prl_code(self) -> Option<ErrorCode> {
        match self {
            Self::DnsFailed | Self::ConnectionRefused | Self::Timeout => {
                Some(ErrorCode::CANT_CONNECT_TO_DISPATCHER)
            }
            Self::HandshakeFailed => Some(ErrorCode::HANDSHAKE_FAILED),
            Self::WrongProtocolVersion => Some(ErrorCode::WRONG_PROTOCOL_VERSION),
            Self::TlsFailed => Some(ErrorCode::SSL_HANDSHAKE_FAILED),
            Self::Closed | Self::ResumeFailed => Some(ErrorCode::WS_DISP_CONNECTION_CLOSED),
            // What the service answers a session that lacks the rights for a command.
            Self::CommandRefused => Some(ErrorCode::ACCESS_DENIED),
            Self::PolicyDenied
            | Self::OriginDenied
            | Self::TicketInvalid
            | Self::ProtocolViolation
            | Self::LimitReached
            | Self::RestoreRefused
            | Self::Internal
            | Self::ResumeElsewhere
            | Self::StateUnavailable => None,
        }
    }

    /// Whether an error of this kind ends the connection (all but `command_refused`).
    pub fn is_fatal(self) -> bool {
        self != Self::CommandRefused
    }
}

impl fmt::Display for RelayErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A typed failure reported by the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[error("{kind}: {message}")]
pub struct RelayError {
    /// What failed.
    pub kind: RelayErrorKind,
    /// The `PRL_ERR_*` code, when the SDK has one for this failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u32>,
    /// Lower-case human message; never contains secrets.
    pub message: String,
    /// Version 2, `resume_elsewhere` only: the public URL of the instance that holds the
    /// connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
}

impl RelayError {
    /// An error of `kind` with its SDK code filled in.
    pub fn new(kind: RelayErrorKind, message: impl Into<String>) -> Self {
        RelayError {
            kind,
            code: kind.prl_code().map(|c| c.0),
            message: message.into(),
            instance: None,
        }
    }

    /// This error as a peer of relay `version` may see it: a kind newer than that version
    /// becomes the version-1 kind that means the same to such a peer (`resume_elsewhere` ->
    /// `resume_failed`: it cannot follow; `state_unavailable` -> `internal`), and the version-2
    /// `instance` is left out.
    pub fn for_version(mut self, version: u32) -> RelayError {
        if version >= 2 {
            return self;
        }
        self.instance = None;
        if self.kind.since_version() > version {
            let kind = match self.kind {
                RelayErrorKind::ResumeElsewhere => RelayErrorKind::ResumeFailed,
                _ => RelayErrorKind::Internal,
            };
            self.kind = kind;
            self.code = kind.prl_code().map(|c| c.0);
        }
        self
    }

    /// The `command_refused` error of the request package `request` (its uuid: the job it
    /// would have been) of type `package_type`, refused under `scope`. The message starts
    /// `request {uuid} ` so that [`RelayError::refused_request`] finds the job.
    pub fn command_refused(package_type: u32, request: uuid::Uuid, scope: CommandScope) -> Self {
        RelayError::new(
            RelayErrorKind::CommandRefused,
            format!(
                "request {} (command {package_type}) not forwarded: it needs the `{}` scope, \
                 this connection has `{scope}`",
                crate::uuid_string(&request),
                CommandScope::required_for(package_type)
            ),
        )
    }

    /// The request (job) uuid a `command_refused` error names; `None` for other errors.
    pub fn refused_request(&self) -> Option<uuid::Uuid> {
        if self.kind != RelayErrorKind::CommandRefused {
            return None;
        }
        let rest = self.message.strip_prefix("request ")?;
        crate::parse_uuid(rest.split(' ').next()?)
    }
}

/// A control message from the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProxyMessage {
    /// The upstream connection is ready (handshake and TLS done).
    Opened(Opened),
    /// A resume succeeded.
    Resumed(Resumed),
    /// A failure; the proxy closes the WebSocket after it, except after a `command_refused`
    /// ([`RelayErrorKind::is_fatal`]).
    Error(RelayError),
}

impl ProxyMessage {
    /// This message as a peer of relay `version` may see it: version-2 fields and kinds are
    /// never sent on a version-1 connection (see [`RelayError::for_version`]).
    pub fn for_version(self, version: u32) -> ProxyMessage {
        let version = version.clamp(MIN_RELAY_VERSION, RELAY_VERSION);
        match self {
            ProxyMessage::Opened(mut o) => {
                o.version = version;
                if version < 2 {
                    o.instance = None;
                }
                ProxyMessage::Opened(o)
            }
            ProxyMessage::Resumed(mut r) => {
                r.version = version;
                if version < 2 {
                    r.instance = None;
                }
                ProxyMessage::Resumed(r)
            }
            ProxyMessage::Error(e) => ProxyMessage::Error(e.for_version(version)),
        }
    }
}

/// Decoding failure of a control message.
#[derive(Debug, thiserror::Error)]
pub enum RelayMessageError {
    /// Longer than [`MAX_CONTROL_LEN`].
    #[error("control message too long: {len} bytes, limit {MAX_CONTROL_LEN}")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// Not valid JSON of a known message. Only the position is kept: serde's own messages can
    /// echo values, and values may be secrets.
    #[error("malformed control message: {category} error at line {line}, column {column}")]
    Malformed {
        /// "syntax", "data" (wrong fields or types) or "eof".
        category: &'static str,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A version this crate does not speak.
    #[error(
        "unsupported relay protocol version {0}, expected {MIN_RELAY_VERSION} to {RELAY_VERSION}"
    )]
    UnsupportedVersion(u32),
}

impl RelayMessageError {
    /// Stable name of the error.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooLong { .. } => "too_long",
            Self::Malformed { .. } => "malformed",
            Self::UnsupportedVersion(_) => "unsupported_version",
        }
    }
}

/// Refuse a control message longer than [`MAX_CONTROL_LEN`] before parsing it.
pub fn check_control_len(len: usize) -> Result<(), RelayMessageError> {
    if len > MAX_CONTROL_LEN {
        Err(RelayMessageError::TooLong { len })
    } else {
        Ok(())
    }
}

#[cfg(feature = "json")]
fn decode<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, RelayMessageError> {
    check_control_len(text.len())?;
    serde_json::from_str(text).map_err(|e| RelayMessageError::Malformed {
        category: match e.classify() {
            serde_json::error::Category::Io => "io",
            serde_json::error::Category::Syntax => "syntax",
            serde_json::error::Category::Data => "data",
            serde_json::error::Category::Eof => "eof",
        },
        line: e.line(),
        column: e.column(),
    })
}

#[cfg(feature = "json")]
fn encode<T: Serialize>(message: &T) -> String {
    // Serialising these plain structs cannot fail (no maps with non-string keys).
    serde_json::to_string(message).unwrap_or_default()
}

fn check_version(version: u32) -> Result<(), RelayMessageError> {
    if (MIN_RELAY_VERSION..=RELAY_VERSION).contains(&version) {
        Ok(())
    } else {
        Err(RelayMessageError::UnsupportedVersion(version))
    }
}

// The JSON text form uses serde_json (feature `json`, on by default). A browser build can turn
// the feature off and move the same serde types through the browser's own `JSON.parse` /
// `JSON.stringify` (e.g. with serde-wasm-bindgen), then call `validate`: one message
// definition, two JSON engines.

impl ClientMessage {
    /// The relay version the message says it speaks.
    pub fn version(&self) -> u32 {
        match self {
            ClientMessage::Open(o) => o.version,
            ClientMessage::Resume(r) => r.version,
        }
    }

    /// Set the relay version (the connection's negotiated one).
    pub fn set_version(&mut self, version: u32) {
        match self {
            ClientMessage::Open(o) => o.version = version,
            ClientMessage::Resume(r) => r.version = version,
        }
    }

    /// Checks what the types cannot: the protocol version.
    pub fn validate(&self) -> Result<(), RelayMessageError> {
        check_version(match self {
            ClientMessage::Open(o) => o.version,
            ClientMessage::Resume(r) => r.version,
        })
    }

    /// Parse a text message from the browser.
    #[cfg(feature = "json")]
    pub fn from_json(text: &str) -> Result<Self, RelayMessageError> {
        let message: ClientMessage = decode(text)?;
        message.validate()?;
        Ok(message)
    }

    /// Serialise as a text message.
    #[cfg(feature = "json")]
    pub fn to_json(&self) -> String {
        encode(self)
    }
}

impl ProxyMessage {
    /// Checks what the types cannot: the protocol version.
    pub fn validate(&self) -> Result<(), RelayMessageError> {
        match self {
            ProxyMessage::Opened(o) => check_version(o.version),
            ProxyMessage::Resumed(r) => check_version(r.version),
            ProxyMessage::Error(_) => Ok(()),
        }
    }

    /// Parse a text message from the proxy.
    #[cfg(feature = "json")]
    pub fn from_json(text: &str) -> Result<Self, RelayMessageError> {
        let message: ProxyMessage = decode(text)?;
        message.validate()?;
        Ok(message)
    }

    /// Serialise as a text message.
    #[cfg(feature = "json")]
    pub fn to_json(&self) -> String {
        encode(self)
    }
}

#[cfg(all(test, feature = "json"))]
mod tests {
    use super::*;

    fn open() -> ClientMessage {
        ClientMessage::Open(OpenRequest {
            version: 1,
            target: Target {
                host: "127.0.0.1".into(),
                port: 0,
            },
            security_level: SecurityLevel::Normal,
            timeout_ms: 5000,
            mode: ConnectMode::Remote,
            ticket: Some(Secret("t0ps3cret".into())),
            restore: Some(Secret("r3st0re".into())),
        })
    }

    #[test]
    fn open_has_a_stable_json_form() {
        let json = open().to_json();
        assert_eq!(
            json,
            r#"{"type":"open","version":1,"target":{"host":"127.0.0.1","port":0},"securityLevel":"normal","timeoutMs":5000,"mode":"remote","ticket":"t0ps3cret","restore":"r3st0re"}"#
        );
        assert_eq!(ClientMessage::from_json(&json).unwrap(), open());
    }

    #[test]
    fn defaults_apply() {
        let m = ClientMessage::from_json(
            r#"{"type":"open","version":1,"target":{"host":"h"},"securityLevel":"low"}"#,
        )
        .unwrap();
        let ClientMessage::Open(o) = m else {
            panic!("not open")
        };
        assert_eq!(o.target.effective_port(), 64000);
        assert_eq!(o.timeout_ms, 0);
        assert_eq!(o.mode, ConnectMode::Remote);
        assert!(o.ticket.is_none());
        assert!(o.restore.is_none());
    }

    #[test]
    fn debug_redacts_secrets() {
        let text = format!("{:?}", open());
        assert!(
            !text.contains("t0ps3cret") && !text.contains("r3st0re"),
            "{text}"
        );
        let opened = Opened {
            version: 1,
            connection_uuid: "{11111111-2222-3333-4444-555555555555}".into(),
            service_protocol: "6.10".into(),
            service_build: "x".into(),
            security_level: SecurityLevel::High,
            cipher: "ADH-AES256-GCM-SHA384".into(),
            tls_version: "TLSv1.2".into(),
            resume_token: Secret("r3sum3".into()),
            resume_window_ms: 60000,
            instance: None,
        };
        let text = format!("{opened:?}");
        assert!(
            !text.contains("r3sum3") && !text.contains("11111111"),
            "{text}"
        );
        let back = ProxyMessage::from_json(&ProxyMessage::Opened(opened.clone()).to_json());
        assert_eq!(back.unwrap(), ProxyMessage::Opened(opened));
    }

    #[test]
    fn errors_carry_the_sdk_code() {
        let e = RelayError::new(RelayErrorKind::Timeout, "connect budget of 5000 ms expired");
        assert_eq!(e.code, Some(0x8000_0249));
        let json = ProxyMessage::Error(e.clone()).to_json();
        assert_eq!(
            json,
            r#"{"type":"error","kind":"timeout","code":2147484233,"message":"connect budget of 5000 ms expired"}"#
        );
        assert_eq!(
            ProxyMessage::from_json(&json).unwrap(),
            ProxyMessage::Error(e)
        );
        for kind in RelayErrorKind::ALL {
            let name = serde_json::to_string(&kind).unwrap();
            assert_eq!(name, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<RelayErrorKind>(&name).unwrap(), kind);
        }
        // A kind this version does not know (or another type) is refused, not guessed.
        for unknown in [r#""no_such_kind""#, r#""Timeout""#, "7", "null"] {
            assert!(
                serde_json::from_str::<RelayErrorKind>(unknown).is_err(),
                "{unknown}"
            );
        }
    }

    #[test]
    fn a_refused_command_names_its_request_and_is_not_fatal() {
        let job = uuid::Uuid::from_u128(0xabc);
        let e = RelayError::command_refused(1001, job, CommandScope::Read);
        assert_eq!(e.kind, RelayErrorKind::CommandRefused);
        assert_eq!(e.code, Some(ErrorCode::ACCESS_DENIED.0));
        assert!(!e.kind.is_fatal());
        assert!(RelayErrorKind::ALL
            .iter()
            .all(|k| k.is_fatal() == (*k != RelayErrorKind::CommandRefused)));
        assert_eq!(
            e.message,
            "request {00000000-0000-0000-0000-000000000abc} (command 1001) not forwarded: it \
             needs the `operate` scope, this connection has `read`"
        );
        assert_eq!(e.refused_request(), Some(job));
        let back = ProxyMessage::from_json(&ProxyMessage::Error(e.clone()).to_json()).unwrap();
        assert_eq!(back, ProxyMessage::Error(e));
        let other = RelayError::new(RelayErrorKind::Closed, "request {x} gone");
        assert_eq!(other.refused_request(), None);
    }

    #[test]
    fn malformed_messages_are_typed() {
        let cases: &[(&str, &str)] = &[
            ("", "malformed"),
            ("{}", "malformed"),
            (r#"{"type":"bogus","version":1}"#, "malformed"),
            (
                r#"{"type":"open","version":1,"target":{"host":"h","port":70000},"securityLevel":"low"}"#,
                "malformed",
            ),
            (
                r#"{"type":"open","version":1,"target":{"host":"h"},"securityLevel":"low","extra":1}"#,
                "malformed",
            ),
            (
                r#"{"type":"open","version":3,"target":{"host":"h"},"securityLevel":"low"}"#,
                "unsupported_version",
            ),
            (
                r#"{"type":"open","version":0,"target":{"host":"h"},"securityLevel":"low"}"#,
                "unsupported_version",
            ),
            (
                r#"{"type":"resume","version":9,"token":"x","received":0}"#,
                "unsupported_version",
            ),
        ];
        for (text, kind) in cases {
            let err = ClientMessage::from_json(text).unwrap_err();
            assert_eq!(err.kind(), *kind, "{text}: {err}");
        }
        let long = format!(
            "{{\"type\":\"open\",\"pad\":\"{}\"}}",
            "x".repeat(MAX_CONTROL_LEN)
        );
        assert_eq!(
            ClientMessage::from_json(&long).unwrap_err().kind(),
            "too_long"
        );
    }

    fn opened(instance: Option<&str>) -> Opened {
        Opened {
            version: RELAY_VERSION,
            connection_uuid: "{11111111-2222-3333-4444-555555555555}".into(),
            service_protocol: "6.10".into(),
            service_build: "b".into(),
            security_level: SecurityLevel::Normal,
            cipher: "ADH-AES256-GCM-SHA384".into(),
            tls_version: "TLSv1.2".into(),
            resume_token: Secret("t".into()),
            resume_window_ms: 60000,
            instance: instance.map(str::to_string),
        }
    }

    #[test]
    fn subprotocols_name_their_versions() {
        assert_eq!(subprotocol_version("prl-relay.v2"), Some(2));
        assert_eq!(subprotocol_version("prl-relay.v1"), Some(1));
        for other in [
            "prl-relay.v3",
            "prl-relay.v0",
            "PRL-RELAY.V1",
            "",
            "prl-ticket.x",
        ] {
            assert_eq!(subprotocol_version(other), None, "{other}");
        }
        assert_eq!(subprotocol_name(1), SUBPROTOCOL_V1);
        assert_eq!(subprotocol_name(2), SUBPROTOCOL);
        assert_eq!(
            subprotocol_version(subprotocol_name(RELAY_VERSION)),
            Some(RELAY_VERSION)
        );
    }

    #[test]
    fn version_2_fields_have_a_stable_json_form_and_are_optional() {
        let url = "wss://relay-b.example.com/ws";
        let json = ProxyMessage::Opened(opened(Some(url))).to_json();
        assert!(
            json.ends_with(r#""resumeWindowMs":60000,"instance":"wss://relay-b.example.com/ws"}"#),
            "{json}"
        );
        // A single proxy leaves it out: the version-1 form.
        let plain = ProxyMessage::Opened(opened(None)).to_json();
        assert!(!plain.contains("instance"), "{plain}");
        assert_eq!(
            ProxyMessage::from_json(&json).unwrap(),
            ProxyMessage::Opened(opened(Some(url)))
        );
        let resumed = ProxyMessage::Resumed(Resumed {
            version: 2,
            resume_token: Secret("t".into()),
            replayed: 0,
            instance: Some(url.into()),
        });
        assert_eq!(
            resumed.to_json(),
            r#"{"type":"resumed","version":2,"resumeToken":"t","replayed":0,"instance":"wss://relay-b.example.com/ws"}"#
        );
        let mut e = RelayError::new(RelayErrorKind::ResumeElsewhere, "held by another instance");
        e.instance = Some(url.into());
        let json = ProxyMessage::Error(e.clone()).to_json();
        assert_eq!(
            json,
            r#"{"type":"error","kind":"resume_elsewhere","message":"held by another instance","instance":"wss://relay-b.example.com/ws"}"#
        );
        assert_eq!(
            ProxyMessage::from_json(&json).unwrap(),
            ProxyMessage::Error(e)
        );
        let e = RelayError::new(RelayErrorKind::StateUnavailable, "shared state unavailable");
        assert_eq!(
            ProxyMessage::Error(e).to_json(),
            r#"{"type":"error","kind":"state_unavailable","message":"shared state unavailable"}"#
        );
    }

    #[test]
    fn a_version_1_peer_never_sees_version_2_fields_or_kinds() {
        let url = "wss://relay-b.example.com/ws";
        let ProxyMessage::Opened(o) = ProxyMessage::Opened(opened(Some(url))).for_version(1) else {
            panic!("not opened")
        };
        assert_eq!((o.version, o.instance), (1, None));
        let ProxyMessage::Opened(o) = ProxyMessage::Opened(opened(Some(url))).for_version(2) else {
            panic!("not opened")
        };
        assert_eq!((o.version, o.instance.as_deref()), (2, Some(url)));
        for kind in RelayErrorKind::ALL {
            let mut e = RelayError::new(kind, "m");
            e.instance = Some(url.into());
            let ProxyMessage::Error(v1) = ProxyMessage::Error(e.clone()).for_version(1) else {
                panic!("not an error")
            };
            assert_eq!(v1.instance, None);
            assert_eq!(v1.kind.since_version(), 1, "{kind}");
            assert_eq!(v1.code, v1.kind.prl_code().map(|c| c.0));
            if kind.since_version() == 1 {
                assert_eq!(v1.kind, kind);
            }
            assert_eq!(v1.message, "m");
            // The JSON a version-1 decoder (exactly the version-1 shape) accepts.
            let json = ProxyMessage::Error(v1).to_json();
            assert!(!json.contains("instance"), "{json}");
            let ProxyMessage::Error(v2) = ProxyMessage::Error(e.clone()).for_version(2) else {
                panic!("not an error")
            };
            assert_eq!(v2, e);
        }
        let ProxyMessage::Error(e) =
            ProxyMessage::Error(RelayError::new(RelayErrorKind::ResumeElsewhere, "m"))
                .for_version(1)
        else {
            panic!("not an error")
        };
        assert_eq!(e.kind, RelayErrorKind::ResumeFailed);
        assert_eq!(e.code, Some(0x8000_0246));
    }

    #[test]
    fn both_versions_are_accepted_and_the_client_sets_its_own() {
        for v in [1, 2] {
            let text = format!(r#"{{"type":"resume","version":{v},"token":"x","received":0}}"#);
            let mut m = ClientMessage::from_json(&text).unwrap();
            assert_eq!(m.version(), v);
            m.set_version(3 - v);
            assert_eq!(m.version(), 3 - v);
        }
    }

    #[test]
    fn error_messages_do_not_echo_values() {
        let err = ClientMessage::from_json(
            r#"{"type":"resume","version":1,"token":12345678,"received":0}"#,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("12345678"), "{err}");
    }
}
