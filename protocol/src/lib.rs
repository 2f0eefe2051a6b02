//! Sans-I/O core of the Parallels Service wire protocol ("IOService").
//!
//! No sockets, no clock, no async runtime: bytes and time values go in, bytes and events come
//! out. Shared by the browser client (WASM), the WebSocket relay and the simulator.
//! The wire facts are documented in `ARCHITECTURE.md` and in the module docs.
#![forbid(unsafe_code)]

pub mod codes;
pub mod commands;
pub mod crc;
mod dom;
pub mod event;
pub mod handshake;
pub mod matrices;
pub mod package;
mod reader;
pub mod record;
pub mod relay;
pub mod scope;
pub mod session;

pub use codes::ErrorCode;
pub use uuid::Uuid;

/// The service's default TCP port (`PRL_DISPATCHER_LISTEN_PORT`); port 0 means this one.
pub const DEFAULT_PORT: u16 = 64000;

/// A UUID as the protocol writes it in text: lower-case in braces (`Uuid::toString`).
pub fn uuid_string(uuid: &Uuid) -> String {
    uuid.braced().to_string()
}

/// Parse a UUID from its text form, with or without braces (as `Uuid(QString)` accepts).
pub fn parse_uuid(text: &str) -> Option<Uuid> {
    let t = text.trim();
    let inner = t
        .strip_prefix('{')
        .and_then(|rest| rest.strip_suffix('}'))
        .unwrap_or(t);
    Uuid::try_parse(inner).ok()
}
