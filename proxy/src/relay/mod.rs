//! The relay: one browser WebSocket bridged to one IOService connection (prl-transport).
//!
//! Flow (`docs/relay-protocol.md`): the first message is `open` (policy, ticket, connect within
//! the budget, `opened`) or `resume` (take over a kept upstream connection, `resumed`, replay);
//! then whole IO packages both ways as binary messages. Every failure is one typed `error`
//! message followed by a close.
//!
//! Modules: [`serve`] (one WebSocket: first message, then the attached link), [`open`] (open,
//! resume, the transport error mapping), [`link`] (the upstream connection's state and the
//! attached / detached loops that drive its rules), [`rules`] (the sans-I/O rules and timers),
//! [`writer`] (the writer toward the browser, driven by the session's task), [`ring`] (the
//! replay ring).
//!
//! Memory is bounded everywhere: the session's task drains a bounded queue toward the browser
//! (package count and bytes); the relay reads the service only when that queue has room, and
//! reads the browser only when the queue toward the service has room, so a slow side slows the
//! other down instead of growing buffers. The replay ring that makes resume lossless is
//! bounded too; while detached, a full ring stops reading the service.

mod link;
mod open;
mod ring;
mod rules;
mod serve;
mod writer;

use std::sync::Arc;

use prl_protocol::relay::{RelayError, RelayErrorKind};

use crate::budget::ByteBudget;
use crate::config::LimitsConfig;
use crate::forwarded::ClientAddr;
use crate::registry::ResumeRegistry;
use crate::state::{ConnSlots, ProxyState};
use crate::ticket::Claims;

pub(crate) use link::ServiceLink;
pub(crate) use serve::serve;

/// What the relays of one proxy share: the budget of bytes queued toward all browsers and the
/// registry of parked links. (What all instances of a cluster share, the login throttles and
/// restore proofs included, is `ProxyState::shared`.)
#[derive(Debug)]
pub(crate) struct RelayHub {
    /// Bytes queued toward all browsers (`limits.max_queued_bytes_total`).
    pub(crate) to_browsers: Arc<ByteBudget>,
    pub(crate) parked: ResumeRegistry<Box<ServiceLink>>,
}

impl RelayHub {
    /// Sized from the limits in force at start (a reload does not change them).
    pub(crate) fn new(limits: &LimitsConfig) -> Arc<RelayHub> {
        Arc::new(RelayHub {
            to_browsers: ByteBudget::new(limits.max_queued_bytes_total, None, None),
            parked: ResumeRegistry::new(),
        })
    }
}

/// Everything the upgrade learned about a browser connection.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) state: Arc<ProxyState>,
    pub(crate) hub: Arc<RelayHub>,
    /// The client: the peer, or the client a trusted proxy named (`crate::forwarded`).
    pub(crate) client: ClientAddr,
    pub(crate) origin: String,
    /// A ticket offered in the subprotocol header, already verified and consumed.
    pub(crate) header_claims: Option<Claims>,
    pub(crate) slots: Arc<ConnSlots>,
    /// The relay protocol version the subprotocol negotiated: nothing newer is sent.
    pub(crate) version: u32,
}

fn err(kind: RelayErrorKind, message: impl Into<String>) -> RelayError {
    RelayError::new(kind, message)
}

/// The pools of connections that have not authenticated ([`crate::state::ConnCaps`]).
#[derive(Debug, Clone, Copy)]
enum Pool {
    /// Waiting for the first message (and its `open`).
    Preauth,
    /// Opened, not logged in yet.
    Unauthenticated,
}

/// The error of a connection whose slot a full pool gave to another client (counted as
/// `preauth_evicted` / `unauthenticated_evicted` when evicted).
fn evicted(pool: Pool) -> RelayError {
    let what = match pool {
        Pool::Preauth => "connections waiting for their first message",
        Pool::Unauthenticated => "connections waiting for a login",
    };
    err(
        RelayErrorKind::LimitReached,
        format!(
            "evicted: the proxy is full of {what}, and this one was the oldest of the client \
             holding the most; try again later"
        ),
    )
}
