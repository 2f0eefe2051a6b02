//! Sans-I/O core of the Parallels Service wire protocol ("IOService").
//!
//! No sockets, no clock, no async runtime: bytes and time values go in, bytes and events come
//! out. Shared by the browser client (WASM), the WebSocket relay and the simulator.
//! The wire facts are documented in `ARCHITECTURE.md` and in the module docs.
#![forbid(unsafe_code)]

pub mod codes;
pub mod crc;
pub mod package;

pub use codes::ErrorCode;
pub use uuid::Uuid;
