//! The resume registry, shared by all connections: upstream connections kept for resume
//! (parked, by resume-token hash), and the restore proofs of closed ones (for the takeover
//! check). Generic over what is parked, so it depends on nothing of the relay.
//!
//! The service lets a login naming a *live* session take it over without a password, and a
//! login naming a *dead* one inherits its lost tasks. Through the proxy, a login may name a
//! previous session only with proof that the browser owned it: the last resume token the
//! proxy gave out for that session's upstream connection. When such a connection closes (the
//! browser left, the resume window ended, the service hung up), the proxy keeps the hash of
//! that token, bound to the session UUID, the page origin and the ticket subject, in a
//! bounded, expiring table. An `open` carrying the token as `restore` consumes the entry.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::util::Token;

/// How a resumer takes a detached session: it sends a reply channel, the detached task
/// answers with the session.
pub(crate) type Claim<S> = oneshot::Sender<oneshot::Sender<S>>;

type TokenHash = [u8; 32];

fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

/// A kept restore proof (the token itself is never stored, only its hash, as the key).
#[derive(Clone)]
struct Proof {
    /// The service session (= the closed upstream connection's UUID).
    session: Uuid,
    /// Normalised page origin of the browser that owned it.
    origin: String,
    /// Ticket subject of the connection, if it had a ticket with one.
    subject: Option<String>,
    expires: Instant,
    /// The other key of the same proof (the resume token before the last rotation, while the
    /// browser had not yet shown it got the new one); taking either removes both.
    twin: Option<TokenHash>,
}

impl std::fmt::Debug for Proof {
    /// The session UUID is a secret: never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proof")
            .field("session", &"<redacted>")
            .field("origin", &self.origin)
            .field("subject", &self.subject)
            .field("expires", &self.expires)
            .finish()
    }
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

#[derive(Debug, Default)]
struct ProofTable {
    by_token: HashMap<TokenHash, Proof>,
    /// Insertion order, for expiry and eviction (entries already taken are skipped).
    order: VecDeque<TokenHash>,
}

impl ProofTable {
    /// Drop expired entries at the front, and the oldest beyond `max`.
    fn purge(&mut self, now: Instant, max: usize) {
        while let Some(front) = self.order.front() {
            let drop = match self.by_token.get(front) {
                None => true,
                Some(p) => p.expires <= now || self.by_token.len() > max,
            };
            if !drop {
                break;
            }
            if let Some(k) = self.order.pop_front() {
                self.by_token.remove(&k);
            }
        }
        // Taken entries leave stale keys behind in `order`; keep it proportional to the map.
        if self.order.len() > 2 * self.by_token.len() + 64 {
            let map = &self.by_token;
            self.order.retain(|k| map.contains_key(k));
        }
    }
}

/// The resume tokens that name one session: the current one and, until the browser has shown
/// that it received the current one (by sending a package after its resume), the one it
/// presented to resume. A `resumed` message lost with the connection that carried it would
/// otherwise leave the browser holding only a spent token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenKeys<'a> {
    pub current: &'a Token,
    pub previous: Option<&'a Token>,
}

impl TokenKeys<'_> {
    fn hashes(&self) -> (TokenHash, Option<TokenHash>) {
        (
            hash(self.current.expose()),
            self.previous.map(|t| hash(t.expose())),
        )
    }
}

/// Registry of parked (detached) upstream connections `T` (by resume-token hash) and restore
/// proofs (by token hash).
#[derive(Debug)]
pub struct ResumeRegistry<T> {
    detached: Mutex<Parked<T>>,
    proofs: Mutex<ProofTable>,
}

/// Parked sessions: each under the hash of its current token, and through `aliases` under
/// the hash of the token it was resumed with, while that one is still valid.
#[derive(Debug)]
struct Parked<T> {
    by_token: HashMap<TokenHash, Detached<T>>,
    /// Previous-token hash -> current-token hash.
    aliases: HashMap<TokenHash, TokenHash>,
}

impl<T> Default for Parked<T> {
    fn default() -> Self {
        Parked {
            by_token: HashMap::new(),
            aliases: HashMap::new(),
        }
    }
}

#[derive(Debug)]
struct Detached<T> {
    claim: Claim<T>,
    /// The previous-token hash that also names this session, if any.
    alias: Option<TokenHash>,
}

impl<T> Parked<T> {
    /// Remove the session `key` (a current-token hash) and its alias.
    fn remove(&mut self, key: &TokenHash) -> Option<Detached<T>> {
        let d = self.by_token.remove(key)?;
        if let Some(alias) = &d.alias {
            self.aliases.remove(alias);
        }
        Some(d)
    }
}

impl<T> Default for ResumeRegistry<T> {
    fn default() -> Self {
        ResumeRegistry::new()
    }
}

impl<T> ResumeRegistry<T> {
    /// Empty.
    pub fn new() -> ResumeRegistry<T> {
        ResumeRegistry {
            detached: Mutex::new(Parked::default()),
            proofs: Mutex::new(ProofTable::default()),
        }
    }

    /// Park a detached session under its token(s); false if `max` are already parked.
    pub(crate) fn park(&self, keys: TokenKeys<'_>, claim: Claim<T>, max: usize) -> bool {
        let mut g = self.detached.lock().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<TokenHash> = g
            .by_token
            .iter()
            .filter(|(_, d)| d.claim.is_closed())
            .map(|(k, _)| *k)
            .collect();
        for k in &gone {
            g.remove(k);
        }
        if g.by_token.len() >= max {
            return false;
        }
        let (current, alias) = keys.hashes();
        if let Some(alias) = alias {
            g.aliases.insert(alias, current);
        }
        g.by_token.insert(current, Detached { claim, alias });
        true
    }

    /// Take the claim of a parked session by either of its tokens (single use: every key of
    /// the session is removed).
    pub(crate) fn take(&self, token: &str) -> Option<Claim<T>> {
        let mut g = self.detached.lock().unwrap_or_else(|p| p.into_inner());
        let h = hash(token);
        let key = g.aliases.get(&h).copied().unwrap_or(h);
        g.remove(&key).map(|d| d.claim)
    }

    /// Forget a parked session (window expired).
    pub(crate) fn unpark(&self, keys: TokenKeys<'_>) {
        let mut g = self.detached.lock().unwrap_or_else(|p| p.into_inner());
        g.remove(&keys.hashes().0);
    }

    /// Number of parked sessions.
    pub fn detached_count(&self) -> usize {
        let g = self.detached.lock().unwrap_or_else(|p| p.into_inner());
        g.by_token.values().filter(|d| !d.claim.is_closed()).count()
    }

    /// Keep a restore proof: `token` was the last resume token of the closed upstream
    /// connection whose logged-in service session is `session`. At most `max` proofs are
    /// kept (the oldest go first); a `ttl` of zero keeps none.
    pub(crate) fn keep_restore_proof(
        &self,
        keys: TokenKeys<'_>,
        session: Uuid,
        origin: &str,
        subject: Option<String>,
        ttl: Duration,
        max: usize,
    ) {
        self.keep_restore_proof_at(Instant::now(), keys, session, origin, subject, ttl, max);
    }

    #[allow(clippy::too_many_arguments)]
    fn keep_restore_proof_at(
        &self,
        now: Instant,
        keys: TokenKeys<'_>,
        session: Uuid,
        origin: &str,
        subject: Option<String>,
        ttl: Duration,
        max: usize,
    ) {
        if ttl.is_zero() || max == 0 {
            return;
        }
        let mut g = self.proofs.lock().unwrap_or_else(|p| p.into_inner());
        let (key, twin) = keys.hashes();
        g.purge(now, max.saturating_sub(1 + usize::from(twin.is_some())));
        let proof = Proof {
            session,
            origin: origin.to_string(),
            subject,
            expires: now + ttl,
            twin,
        };
        if let Some(twin) = twin {
            let mut other = proof.clone();
            other.twin = Some(key);
            if g.by_token.insert(twin, other).is_none() {
                g.order.push_back(twin);
            }
        }
        if g.by_token.insert(key, proof).is_none() {
            g.order.push_back(key);
        }
    }

    /// Consume the restore proof `token` for a browser of `origin` (and ticket `subject`):
    /// the session it proves ownership of. A proof presented from another origin or subject
    /// is refused and left in place for its owner.
    pub(crate) fn take_restore_proof(
        &self,
        token: &str,
        origin: &str,
        subject: Option<&str>,
    ) -> Result<Uuid, RestoreRefusal> {
        self.take_restore_proof_at(Instant::now(), token, origin, subject)
    }

    fn take_restore_proof_at(
        &self,
        now: Instant,
        token: &str,
        origin: &str,
        subject: Option<&str>,
    ) -> Result<Uuid, RestoreRefusal> {
        let mut g = self.proofs.lock().unwrap_or_else(|p| p.into_inner());
        let key = hash(token);
        let proof = match g.by_token.get(&key) {
            None => return Err(RestoreRefusal::Unknown),
            Some(p) if p.expires <= now => {
                g.by_token.remove(&key);
                return Err(RestoreRefusal::Unknown);
            }
            Some(p) => p,
        };
        if proof.origin != origin || proof.subject.as_deref() != subject {
            return Err(RestoreRefusal::Mismatch);
        }
        let (session, twin) = (proof.session, proof.twin);
        g.by_token.remove(&key);
        if let Some(twin) = twin {
            g.by_token.remove(&twin);
        }
        Ok(session)
    }

    /// Number of restore proofs held (expired ones may still be counted until purged).
    pub fn restore_proof_count(&self) -> usize {
        let g = self.proofs.lock().unwrap_or_else(|p| p.into_inner());
        g.by_token.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: &str = "https://console.example";
    const TTL: Duration = Duration::from_secs(600);

    fn one(t: &Token) -> TokenKeys<'_> {
        TokenKeys {
            current: t,
            previous: None,
        }
    }

    type Registry = ResumeRegistry<()>;

    fn keep(r: &Registry, now: Instant, t: &Token, s: Uuid, max: usize) {
        r.keep_restore_proof_at(now, one(t), s, O, None, TTL, max);
    }

    #[test]
    fn a_proof_is_single_use_and_names_its_session() {
        let r = Registry::new();
        let now = Instant::now();
        let (t, s) = (Token::generate(), Uuid::new_v4());
        keep(&r, now, &t, s, 10);
        assert_eq!(r.take_restore_proof_at(now, t.expose(), O, None), Ok(s));
        assert_eq!(
            r.take_restore_proof_at(now, t.expose(), O, None),
            Err(RestoreRefusal::Unknown)
        );
        assert_eq!(
            r.take_restore_proof_at(now, Token::generate().expose(), O, None),
            Err(RestoreRefusal::Unknown)
        );
    }

    #[test]
    fn only_hashes_are_stored() {
        let r = Registry::new();
        let t = Token::generate();
        keep(&r, Instant::now(), &t, Uuid::new_v4(), 10);
        let text = format!("{r:?}");
        assert!(!text.contains(t.expose()), "{text}");
        let s = Uuid::new_v4();
        let t2 = Token::generate();
        keep(&r, Instant::now(), &t2, s, 10);
        let text = format!("{r:?}");
        assert!(!text.contains(&s.simple().to_string()[..8]), "{text}");
        assert!(!text.contains(&s.to_string()[..8]), "{text}");
    }

    #[test]
    fn proofs_expire() {
        let r = Registry::new();
        let now = Instant::now();
        let t = Token::generate();
        keep(&r, now, &t, Uuid::new_v4(), 10);
        assert_eq!(
            r.take_restore_proof_at(now + TTL, t.expose(), O, None),
            Err(RestoreRefusal::Unknown)
        );
        assert_eq!(r.restore_proof_count(), 0);
        // Expired entries are purged when new ones arrive.
        let t2 = Token::generate();
        keep(&r, now, &t2, Uuid::new_v4(), 10);
        keep(&r, now + TTL, &Token::generate(), Uuid::new_v4(), 10);
        assert_eq!(r.restore_proof_count(), 1);
    }

    #[test]
    fn another_origin_or_subject_is_refused_and_the_proof_survives() {
        let r = Registry::new();
        let now = Instant::now();
        let (t, s) = (Token::generate(), Uuid::new_v4());
        r.keep_restore_proof_at(now, one(&t), s, O, Some("bob".into()), TTL, 10);
        let other = "https://evil.example";
        for (origin, subject) in [
            (other, Some("bob")),
            (O, None),
            (O, Some("mallory")),
            (other, None),
        ] {
            assert_eq!(
                r.take_restore_proof_at(now, t.expose(), origin, subject),
                Err(RestoreRefusal::Mismatch),
                "{origin} {subject:?}"
            );
        }
        assert_eq!(
            r.take_restore_proof_at(now, t.expose(), O, Some("bob")),
            Ok(s)
        );
    }

    #[test]
    fn the_table_is_bounded_oldest_first() {
        let r = Registry::new();
        let now = Instant::now();
        let tokens: Vec<Token> = (0..5).map(|_| Token::generate()).collect();
        for t in &tokens {
            keep(&r, now, t, Uuid::new_v4(), 3);
        }
        assert_eq!(r.restore_proof_count(), 3);
        for (i, t) in tokens.iter().enumerate() {
            let got = r.take_restore_proof_at(now, t.expose(), O, None);
            assert_eq!(got.is_ok(), i >= 2, "token {i}: {got:?}");
        }
        // Taking entries leaves the order list bounded too.
        for _ in 0..1000 {
            let t = Token::generate();
            keep(&r, now, &t, Uuid::new_v4(), 3);
            r.take_restore_proof_at(now, t.expose(), O, None).unwrap();
        }
        let g = r.proofs.lock().unwrap();
        assert!(
            g.order.len() <= 2 * g.by_token.len() + 65,
            "{}",
            g.order.len()
        );
    }

    #[test]
    fn zero_ttl_keeps_nothing() {
        let r = Registry::new();
        let t = Token::generate();
        r.keep_restore_proof_at(
            Instant::now(),
            one(&t),
            Uuid::new_v4(),
            O,
            None,
            Duration::ZERO,
            10,
        );
        assert_eq!(r.restore_proof_count(), 0);
    }

    #[test]
    fn a_proof_with_two_keys_is_taken_by_either_once() {
        let r = Registry::new();
        let now = Instant::now();
        let (new, old, s) = (Token::generate(), Token::generate(), Uuid::new_v4());
        let keys = TokenKeys {
            current: &new,
            previous: Some(&old),
        };
        r.keep_restore_proof_at(now, keys, s, O, None, TTL, 10);
        assert_eq!(r.restore_proof_count(), 2);
        assert_eq!(r.take_restore_proof_at(now, old.expose(), O, None), Ok(s));
        assert_eq!(
            r.take_restore_proof_at(now, new.expose(), O, None),
            Err(RestoreRefusal::Unknown)
        );
        assert_eq!(r.restore_proof_count(), 0);
        // And the other way round.
        r.keep_restore_proof_at(now, keys, s, O, None, TTL, 10);
        assert_eq!(r.take_restore_proof_at(now, new.expose(), O, None), Ok(s));
        assert_eq!(
            r.take_restore_proof_at(now, old.expose(), O, None),
            Err(RestoreRefusal::Unknown)
        );
    }

    #[test]
    fn a_parked_session_is_claimed_by_either_token_once_and_counted_once() {
        let r = Registry::new();
        let (new, old) = (Token::generate(), Token::generate());
        let keys = TokenKeys {
            current: &new,
            previous: Some(&old),
        };
        let (tx, _rx) = oneshot::channel();
        assert!(r.park(keys, tx, 2));
        assert_eq!(r.detached_count(), 1);
        // The cap counts sessions, not keys.
        let other = Token::generate();
        let (tx2, _rx2) = oneshot::channel();
        assert!(r.park(one(&other), tx2, 2));
        let (tx3, _rx3) = oneshot::channel();
        assert!(!r.park(one(&Token::generate()), tx3, 2));
        assert!(r.take(old.expose()).is_some());
        assert!(r.take(new.expose()).is_none());
        assert!(r.take(old.expose()).is_none());
        assert_eq!(r.detached_count(), 1);
        r.unpark(one(&other));
        assert_eq!(r.detached_count(), 0);
    }
}
