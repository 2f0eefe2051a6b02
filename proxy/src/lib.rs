//! prl-proxy: the secure WebSocket relay between browsers and Parallels Service.
//!
//! The browser cannot open TCP or speak the service's anonymous-DH TLS, so the proxy
//! terminates the IOService connection toward the service and carries whole IO packages to
//! and from the browser over a WebSocket (`docs/relay-protocol.md`). It sits in front of
//! hypervisors, so every safety feature is on by default: targets only from the
//! configuration (no open relay, no SSRF, no DNS rebinding), an exact Origin allow-list
//! checked before the upgrade, optional signed single-use tickets, bounded memory
//! everywhere, login throttling, refusal of password-less session takeover and of local
//! login, and secrets that never reach the logs.
//!
//! Entry points: [`config::Config::load`], [`server::Proxy::bind`], [`server::Proxy::run`].
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used))] // a failing unwrap is a failing test

mod batch;
mod budget;
pub mod config;
mod fairpool;
mod firstcap;
pub mod forwarded;
pub mod jws;
pub mod limits;
pub mod login;
pub mod metrics;
pub mod origin;
pub mod policy;
mod readahead;
pub mod registry;
pub(crate) mod relay;
pub mod server;
pub mod shared_state;
pub mod state;
pub mod static_files;
pub mod ticket;
pub mod ticket_keys;
pub mod tls;
pub mod util;

pub use config::Config;
pub use server::{Proxy, ProxyHandle, StartError};
