//! Session bookkeeping shared by all connections: upstream connections kept for resume, and
//! the service sessions created through this proxy (for the takeover check).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::util::Token;

/// How a resumer takes a detached session: it sends a reply channel, the detached task
/// answers with the session.
pub(crate) type Claim<S> = oneshot::Sender<oneshot::Sender<S>>;

type TokenHash = [u8; 32];
type CreatedTable = (HashMap<String, CreatedSession>, VecDeque<(Instant, String)>);

fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// A service session created through this proxy.
#[derive(Debug, Clone)]
pub(crate) struct CreatedSession {
    /// Normalised page origin of the browser that created it.
    pub origin: String,
    /// Ticket subject, if the connection had a ticket with one.
    pub subject: Option<String>,
    /// The relay lineage (random id shared by a session and its resumes).
    pub lineage: u64,
    /// Whether its upstream connection is still open (then the service session is live).
    pub alive: bool,
    at: Instant,
}

/// How long created sessions are remembered after their upstream closed.
const CREATED_TTL: Duration = Duration::from_secs(24 * 3600);
const CREATED_MAX: usize = 100_000;

/// Registry of detached sessions (by resume-token hash) and created sessions (by UUID).
#[derive(Debug)]
pub struct Registry {
    detached: Mutex<HashMap<TokenHash, Detached>>,
    created: Mutex<CreatedTable>,
}

#[derive(Debug)]
struct Detached {
    claim: Claim<Box<crate::relay::Session>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// Empty.
    pub fn new() -> Registry {
        Registry {
            detached: Mutex::new(HashMap::new()),
            created: Mutex::new((HashMap::new(), VecDeque::new())),
        }
    }

    /// Park a detached session under `token`; false if `max` are already parked.
    pub(crate) fn park(
        &self,
        token: &Token,
        claim: Claim<Box<crate::relay::Session>>,
        max: usize,
    ) -> bool {
        let mut g = self.detached.lock().unwrap_or_else(|p| p.into_inner());
        g.retain(|_, d| !d.claim.is_closed());
        if g.len() >= max {
            return false;
        }
        g.insert(hash(token.expose()), Detached { claim });
        true
    }

    /// Take the claim of a parked session (single use: the entry is removed).
    pub(crate) fn take(&self, token: &str) -> Option<Claim<Box<crate::relay::Session>>> {
        let mut g = self.detached.lock().unwrap_or_else(|p| p.into_inner());
        g.remove(&hash(token)).map(|d| d.claim)
    }

    /// Forget a parked session (window expired).
    pub(crate) fn unpark(&self, token: &Token) {
        let mut g = self.detached.lock().unwrap_or_else(|p| p.into_inner());
        g.remove(&hash(token.expose()));
    }

    /// Number of parked sessions.
    pub fn detached_count(&self) -> usize {
        let g = self.detached.lock().unwrap_or_else(|p| p.into_inner());
        g.values().filter(|d| !d.claim.is_closed()).count()
    }

    /// Record (or refresh) a service session created through the proxy.
    pub(crate) fn created(&self, uuid: &str, origin: &str, subject: Option<String>, lineage: u64) {
        let now = Instant::now();
        let mut g = self.created.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *g;
        while let Some((at, _)) = order.front() {
            if map.len() < CREATED_MAX && now.saturating_duration_since(*at) < CREATED_TTL {
                break;
            }
            if let Some((_, k)) = order.pop_front() {
                if map.get(&k).is_some_and(|s| !s.alive) {
                    map.remove(&k);
                }
            }
        }
        map.insert(
            uuid.to_string(),
            CreatedSession {
                origin: origin.to_string(),
                subject,
                lineage,
                alive: true,
                at: now,
            },
        );
        order.push_back((now, uuid.to_string()));
    }

    /// Mark a created session's upstream as closed.
    pub(crate) fn closed(&self, uuid: &str) {
        let mut g = self.created.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = g.0.get_mut(uuid) {
            s.alive = false;
            s.at = Instant::now();
        }
    }

    /// Look up a created session.
    pub(crate) fn lookup(&self, uuid: &str) -> Option<CreatedSession> {
        let g = self.created.lock().unwrap_or_else(|p| p.into_inner());
        g.0.get(uuid).cloned()
    }
}
