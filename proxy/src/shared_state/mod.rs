//! The state that must outlive one process, behind one trait: the ticket replay cache, the
//! login throttles, the restore proofs, which instance holds a parked upstream connection, and
//! the cluster-wide count of upstream connections waiting for their first login.
//!
//! Two implementations: [`MemoryState`] (one proxy, everything in this process: the
//! behaviour of a proxy without `[cluster]`) and [`RedisState`] (several proxies behind a load
//! balancer share it through Redis, with TTLs and atomic scripts). The relay asks
//! [`SharedState`] and never knows which one it has; the same test suite runs against both
//! (`proxy/tests/shared_state.rs`).
//!
//! What goes in: never a raw token, ticket, user name or address. Keys are HMAC-SHA256 under
//! the cluster secret ([`keys::Keyring`]); a restore proof's session UUID is stored encrypted
//! under a pad only the resume token's holder can compute. What a failure means: an operation
//! that cannot reach the state answers [`Unavailable`] and the relay refuses what needed it
//! (fail closed); nothing is guessed.

pub mod keys;
mod memory;
mod redis_state;

use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::registry::TokenKeys;
use crate::util::Token;

pub use memory::{LoginThrottles, MemoryState, ReplayCache};
pub use redis_state::RedisState;

/// A boxed future (the trait is used as `dyn SharedState`).
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The shared state could not be reached in time, or answered something unusable. The
/// message is lower-case and never holds a key or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shared state unavailable: {0}")]
pub struct Unavailable(pub String);

/// Why a ticket id was not accepted as fresh.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketUseError {
    /// Used before (on any instance).
    #[error("ticket already used")]
    Replayed,
    /// Issued before the replay cache began (it may have been used before a restart, or
    /// before the shared state lost its data).
    #[error("ticket issued before the replay cache began")]
    BeforeStart,
    /// The in-memory cache is full of unexpired ids.
    #[error("ticket replay cache full")]
    CacheFull,
    /// The shared state cannot be reached: refused (fail closed).
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
}

/// A login-throttle bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThrottleKey {
    /// A client address (already reduced by [`crate::limits::client_key`]).
    Ip(IpAddr),
    /// A user name's [`crate::limits::user_key`].
    User([u8; 16]),
}

/// Why a restore proof was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreRefusal {
    /// No such proof: never issued, already used, rotated by a resume, expired or evicted.
    Unknown,
    /// The proof exists but belongs to another page origin or ticket subject (kept for its
    /// owner).
    Mismatch,
}

impl RestoreRefusal {
    /// Stable snake_case name (metrics label, logs).
    pub fn kind(self) -> &'static str {
        match self {
            RestoreRefusal::Unknown => "restore_unknown",
            RestoreRefusal::Mismatch => "restore_mismatch",
        }
    }
}

/// The answer to taking a restore proof that did not grant it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProofRefusal {
    /// Refused for good.
    Refused(RestoreRefusal),
    /// The upstream connection whose token this is still lives on this instance (cluster).
    HeldHere,
    /// ... or on another live instance (cluster): it may close it soon (resume window) or
    /// die (its registration expires), so the caller may ask again until
    /// [`SharedState::holder_grace`] has passed.
    HeldElsewhere,
    /// The shared state cannot be reached.
    Unavailable(Unavailable),
}

/// What a restore proof proves: the session, and whose it was.
#[derive(Debug, Clone, Copy)]
pub struct ProofFacts<'a> {
    /// The service session (= the upstream connection's UUID).
    pub session: Uuid,
    /// Normalised page origin of its browser.
    pub origin: &'a str,
    /// Its ticket subject, if any.
    pub subject: Option<&'a str>,
}

/// Why an upstream connection waiting for its first login got no cluster-wide slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseError {
    /// Everyone's or this client's share is taken: the `rejections_total` label.
    Full(&'static str),
    /// The shared state cannot be reached.
    Unavailable(Unavailable),
}

/// A cluster-wide slot of an upstream connection waiting for its first login: given back when
/// dropped (and in Redis it expires by itself, so an instance that dies cannot leak it).
pub struct Lease(Option<Box<dyn Send + Sync>>);

impl Lease {
    /// A lease that holds nothing (one process: the local caps are the limit).
    pub fn none() -> Lease {
        Lease(None)
    }

    pub(crate) fn holding(release: impl Send + Sync + 'static) -> Lease {
        Lease(Some(Box::new(release)))
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Lease(held)"
        } else {
            "Lease(local)"
        })
    }
}

/// State shared by every instance of a relay (one instance: this process). Futures that
/// return `'static` are fire-and-forget bookkeeping the relay spawns; everything they need is
/// computed when the method is called (so a raw token never goes into a task).
pub trait SharedState: fmt::Debug + Send + Sync + 'static {
    /// This instance's public relay URL in a cluster (`opened` / `resumed` name it); `None`
    /// for a single proxy.
    fn public_url(&self) -> Option<&str>;

    /// Whether the state answered the last time it was asked (always for memory).
    fn available(&self) -> bool;

    /// How long a proof held by another live instance is worth asking for again (that
    /// instance's registration lifetime: if it died, its proofs become usable by then).
    fn holder_grace(&self) -> Duration;

    /// Record the ticket `id` (issued at `issued_at`, expiring at `expires_at`, unix seconds)
    /// as used, everywhere, until it expires: `Ok` the first time only.
    fn consume_ticket<'a>(
        &'a self,
        id: &'a str,
        issued_at: u64,
        expires_at: u64,
        now: u64,
    ) -> BoxFut<'a, Result<(), TicketUseError>>;

    /// Take a token from the login bucket `key` at `now`: `Ok(false)` when it is empty.
    fn login_attempt(
        &self,
        key: ThrottleKey,
        now: Instant,
    ) -> BoxFut<'_, Result<bool, Unavailable>>;

    /// A login on a live upstream connection succeeded, or its tokens rotated: `keys` name
    /// the session `facts` now. A cluster records the proof as held by this instance, so it
    /// survives this instance's death; one process keeps nothing until the connection
    /// closes.
    fn hold_restore_proof(&self, keys: TokenKeys<'_>, facts: ProofFacts<'_>)
        -> BoxFut<'static, ()>;

    /// The upstream connection closed: `keys` prove ownership of `facts.session` for `ttl`
    /// (at most `max` proofs kept in memory; TTLs bound Redis). The in-memory table is
    /// updated before this returns.
    fn keep_restore_proof(
        &self,
        keys: TokenKeys<'_>,
        facts: ProofFacts<'_>,
        ttl: Duration,
        max: usize,
    ) -> BoxFut<'static, ()>;

    /// The browser showed it got the rotated token: `token` (the one it resumed with) names
    /// nothing any more.
    fn forget_token(&self, token: &Token) -> BoxFut<'static, ()>;

    /// Consume the proof `token` for a browser of `origin` and ticket `subject`: the session,
    /// once, everywhere. A proof presented from another origin or subject is refused and left
    /// for its owner.
    fn take_restore_proof<'a>(
        &'a self,
        token: &'a str,
        origin: &'a str,
        subject: Option<&'a str>,
    ) -> BoxFut<'a, Result<Uuid, ProofRefusal>>;

    /// A link was parked under `keys` for `window`: a resume reaching another instance is
    /// sent here. Nothing to do in one process.
    fn parked(&self, keys: TokenKeys<'_>, window: Duration) -> BoxFut<'static, ()>;

    /// The link parked under `keys` was claimed or closed.
    fn unparked(&self, keys: TokenKeys<'_>) -> BoxFut<'static, ()>;

    /// The public URL of the other live instance that holds the link `token` names parked,
    /// if any (only ever one of the configured instances' URLs).
    fn holder(&self, token: &str) -> BoxFut<'_, Result<Option<String>, Unavailable>>;

    /// A cluster-wide slot for an upstream connection of `client` waiting for its first
    /// login (`limits.max_unauthenticated_upstreams*` across every instance).
    fn unauthenticated_lease(&self, client: IpAddr) -> BoxFut<'_, Result<Lease, LeaseError>>;

    /// Stop background work and withdraw this instance's registration (graceful shutdown).
    fn shutdown(&self) -> BoxFut<'_, ()>;
}
