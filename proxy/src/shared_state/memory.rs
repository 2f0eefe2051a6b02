//! One proxy: the shared state lives in this process (what a proxy without `[cluster]` uses).
//! Bounded tables with expiry: the ticket replay cache, the login buckets, the restore proofs.
//! Nothing can fail, so nothing is ever [`Unavailable`](super::Unavailable); a restart empties
//! everything (tickets issued before it are refused, proofs are gone).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::LimitsConfig;
use crate::limits::RateLimiter;
use crate::registry::TokenKeys;
use crate::util::Token;

use super::{
    BoxFut, Lease, LeaseError, ProofFacts, ProofRefusal, RestoreRefusal, SharedState, ThrottleKey,
    TicketUseError, Unavailable,
};

/// Everything in this process.
#[derive(Debug)]
pub struct MemoryState {
    replay: ReplayCache,
    throttles: LoginThrottles,
    proofs: Mutex<ProofTable>,
}

impl MemoryState {
    /// Sized from the limits at start; tickets issued before `started` (unix seconds) are
    /// refused.
    pub fn new(limits: &LimitsConfig, replay_capacity: usize, started: u64) -> MemoryState {
        MemoryState {
            replay: ReplayCache::new(replay_capacity, started),
            throttles: LoginThrottles::new(limits),
            proofs: Mutex::new(ProofTable::default()),
        }
    }

    /// Number of restore proofs held (expired ones may still be counted until purged).
    pub fn restore_proof_count(&self) -> usize {
        self.proofs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_token
            .len()
    }

    fn keep_at(
        &self,
        now: Instant,
        keys: TokenKeys<'_>,
        facts: ProofFacts<'_>,
        ttl: Duration,
        max: usize,
    ) {
        if ttl.is_zero() || max == 0 {
            return;
        }
        let mut g = self.proofs.lock().unwrap_or_else(|p| p.into_inner());
        let (key, twin) = hashes(keys);
        g.purge(now, max.saturating_sub(1 + usize::from(twin.is_some())));
        let proof = Proof {
            session: facts.session,
            origin: facts.origin.to_string(),
            subject: facts.subject.map(str::to_string),
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

    fn take_at(
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
}

fn ready<T: Send + 'static>(v: T) -> BoxFut<'static, T> {
    Box::pin(std::future::ready(v))
}

impl SharedState for MemoryState {
    fn public_url(&self) -> Option<&str> {
        None
    }

    fn available(&self) -> bool {
        true
    }

    fn holder_grace(&self) -> Duration {
        Duration::ZERO
    }

    fn consume_ticket<'a>(
        &'a self,
        id: &'a str,
        issued_at: u64,
        expires_at: u64,
        now: u64,
    ) -> BoxFut<'a, Result<(), TicketUseError>> {
        ready(self.replay.consume(id, issued_at, expires_at, now))
    }

    fn login_attempt(
        &self,
        key: ThrottleKey,
        now: Instant,
    ) -> BoxFut<'_, Result<bool, Unavailable>> {
        ready(Ok(self.throttles.check(key, now)))
    }

    fn hold_restore_proof(&self, _: TokenKeys<'_>, _: ProofFacts<'_>) -> BoxFut<'static, ()> {
        // This process cannot die and keep its memory: the proof is kept when the link closes.
        ready(())
    }

    fn keep_restore_proof(
        &self,
        keys: TokenKeys<'_>,
        facts: ProofFacts<'_>,
        ttl: Duration,
        max: usize,
    ) -> BoxFut<'static, ()> {
        self.keep_at(Instant::now(), keys, facts, ttl, max);
        ready(())
    }

    fn forget_token(&self, _: &Token) -> BoxFut<'static, ()> {
        ready(())
    }

    fn take_restore_proof<'a>(
        &'a self,
        token: &'a str,
        origin: &'a str,
        subject: Option<&'a str>,
    ) -> BoxFut<'a, Result<Uuid, ProofRefusal>> {
        ready(
            self.take_at(Instant::now(), token, origin, subject)
                .map_err(ProofRefusal::Refused),
        )
    }

    fn parked(&self, _: TokenKeys<'_>, _: Duration) -> BoxFut<'static, ()> {
        ready(())
    }

    fn unparked(&self, _: TokenKeys<'_>) -> BoxFut<'static, ()> {
        ready(())
    }

    fn holder(&self, _: &str) -> BoxFut<'_, Result<Option<String>, Unavailable>> {
        // One process: a link that is not parked here is parked nowhere.
        ready(Ok(None))
    }

    fn unauthenticated_lease(&self, _: IpAddr) -> BoxFut<'_, Result<Lease, LeaseError>> {
        // The local caps (`state::ConnCaps`) are the whole limit.
        ready(Ok(Lease::none()))
    }

    fn shutdown(&self) -> BoxFut<'_, ()> {
        ready(())
    }
}

/// The login throttles: per client address (IPv6 per /64) and per user name. Time is passed
/// in.
#[derive(Debug)]
pub struct LoginThrottles {
    /// Per client key.
    pub per_ip: RateLimiter<IpAddr>,
    /// Per user key.
    pub per_user: RateLimiter<[u8; 16]>,
}

impl LoginThrottles {
    /// Sized from `[limits]`.
    pub fn new(l: &LimitsConfig) -> LoginThrottles {
        LoginThrottles {
            per_ip: RateLimiter::new(l.login_burst_per_ip, l.login_per_minute_per_ip, 100_000),
            per_user: RateLimiter::new(
                l.login_burst_per_user,
                l.login_per_minute_per_user,
                100_000,
            ),
        }
    }

    /// Take a token from `key`'s bucket at `now`.
    pub fn check(&self, key: ThrottleKey, now: Instant) -> bool {
        match key {
            ThrottleKey::Ip(ip) => self.per_ip.check(&ip, now),
            ThrottleKey::User(u) => self.per_user.check(&u, now),
        }
    }
}

/// Used ticket ids, remembered until they expire; bounded. Keyed on the ticket id and its
/// expiry only, whatever the ticket's format.
#[derive(Debug)]
pub struct ReplayCache {
    inner: Mutex<ReplayInner>,
    capacity: usize,
    /// Unix seconds when this cache began: older tickets are refused (a restart empties the
    /// cache, and a ticket used before it must not work again).
    started: u64,
}

#[derive(Debug, Default)]
struct ReplayInner {
    seen: HashMap<String, u64>,
    order: VecDeque<(u64, String)>,
}

impl ReplayCache {
    /// A cache holding at most `capacity` unexpired ids, started at `started` (unix seconds):
    /// tickets issued before then are refused.
    pub fn new(capacity: usize, started: u64) -> ReplayCache {
        ReplayCache {
            inner: Mutex::new(ReplayInner::default()),
            capacity: capacity.max(1),
            started,
        }
    }

    /// Record the ticket `id` as used until `expires_at`; `Replayed` if it was used before,
    /// `BeforeStart` if it was issued (`issued_at`) before this cache began.
    pub fn consume(
        &self,
        id: &str,
        issued_at: u64,
        expires_at: u64,
        now: u64,
    ) -> Result<(), TicketUseError> {
        if issued_at < self.started {
            return Err(TicketUseError::BeforeStart);
        }
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        // Forget expired ids (ordered by insertion; expiry is bounded by the max TTL so a
        // linear sweep of the front is enough in practice, and a full sweep when full).
        while let Some((exp, _)) = g.order.front() {
            if *exp > now {
                break;
            }
            if let Some((_, id)) = g.order.pop_front() {
                g.seen.remove(&id);
            }
        }
        if g.seen.contains_key(id) {
            return Err(TicketUseError::Replayed);
        }
        if g.seen.len() >= self.capacity {
            g.order.retain(|(exp, _)| *exp > now);
            g.seen.retain(|_, exp| *exp > now);
            if g.seen.len() >= self.capacity {
                return Err(TicketUseError::CacheFull);
            }
        }
        g.seen.insert(id.to_string(), expires_at);
        g.order.push_back((expires_at, id.to_string()));
        Ok(())
    }

    /// Number of remembered ids.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|g| g.seen.len()).unwrap_or(0)
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

type TokenHash = [u8; 32];

fn hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

fn hashes(keys: TokenKeys<'_>) -> (TokenHash, Option<TokenHash>) {
    (
        hash(keys.current.expose()),
        keys.previous.map(|t| hash(t.expose())),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    const O: &str = "https://console.example";
    const TTL: Duration = Duration::from_secs(600);

    fn state() -> MemoryState {
        MemoryState::new(&LimitsConfig::default(), 10, 1000)
    }

    fn one(t: &Token) -> TokenKeys<'_> {
        TokenKeys {
            current: t,
            previous: None,
        }
    }

    fn facts(s: Uuid) -> ProofFacts<'static> {
        ProofFacts {
            session: s,
            origin: O,
            subject: None,
        }
    }

    fn keep(r: &MemoryState, now: Instant, t: &Token, s: Uuid, max: usize) {
        r.keep_at(now, one(t), facts(s), TTL, max);
    }

    #[test]
    fn a_proof_is_single_use_and_names_its_session() {
        let r = state();
        let now = Instant::now();
        let (t, s) = (Token::generate(), Uuid::new_v4());
        keep(&r, now, &t, s, 10);
        assert_eq!(r.take_at(now, t.expose(), O, None), Ok(s));
        assert_eq!(
            r.take_at(now, t.expose(), O, None),
            Err(RestoreRefusal::Unknown)
        );
        assert_eq!(
            r.take_at(now, Token::generate().expose(), O, None),
            Err(RestoreRefusal::Unknown)
        );
    }

    #[test]
    fn only_hashes_are_stored() {
        let r = state();
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
        let r = state();
        let now = Instant::now();
        let t = Token::generate();
        keep(&r, now, &t, Uuid::new_v4(), 10);
        assert_eq!(
            r.take_at(now + TTL, t.expose(), O, None),
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
        let r = state();
        let now = Instant::now();
        let (t, s) = (Token::generate(), Uuid::new_v4());
        let bob = ProofFacts {
            subject: Some("bob"),
            ..facts(s)
        };
        r.keep_at(now, one(&t), bob, TTL, 10);
        let other = "https://evil.example";
        for (origin, subject) in [
            (other, Some("bob")),
            (O, None),
            (O, Some("mallory")),
            (other, None),
        ] {
            assert_eq!(
                r.take_at(now, t.expose(), origin, subject),
                Err(RestoreRefusal::Mismatch),
                "{origin} {subject:?}"
            );
        }
        assert_eq!(r.take_at(now, t.expose(), O, Some("bob")), Ok(s));
    }

    #[test]
    fn the_table_is_bounded_oldest_first() {
        let r = state();
        let now = Instant::now();
        let tokens: Vec<Token> = (0..5).map(|_| Token::generate()).collect();
        for t in &tokens {
            keep(&r, now, t, Uuid::new_v4(), 3);
        }
        assert_eq!(r.restore_proof_count(), 3);
        for (i, t) in tokens.iter().enumerate() {
            let got = r.take_at(now, t.expose(), O, None);
            assert_eq!(got.is_ok(), i >= 2, "token {i}: {got:?}");
        }
        // Taking entries leaves the order list bounded too.
        for _ in 0..1000 {
            let t = Token::generate();
            keep(&r, now, &t, Uuid::new_v4(), 3);
            r.take_at(now, t.expose(), O, None).unwrap();
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
        let r = state();
        let t = Token::generate();
        r.keep_at(
            Instant::now(),
            one(&t),
            facts(Uuid::new_v4()),
            Duration::ZERO,
            10,
        );
        assert_eq!(r.restore_proof_count(), 0);
    }

    #[test]
    fn a_proof_with_two_keys_is_taken_by_either_once() {
        let r = state();
        let now = Instant::now();
        let (new, old, s) = (Token::generate(), Token::generate(), Uuid::new_v4());
        let keys = TokenKeys {
            current: &new,
            previous: Some(&old),
        };
        r.keep_at(now, keys, facts(s), TTL, 10);
        assert_eq!(r.restore_proof_count(), 2);
        assert_eq!(r.take_at(now, old.expose(), O, None), Ok(s));
        assert_eq!(
            r.take_at(now, new.expose(), O, None),
            Err(RestoreRefusal::Unknown)
        );
        assert_eq!(r.restore_proof_count(), 0);
        // And the other way round.
        r.keep_at(now, keys, facts(s), TTL, 10);
        assert_eq!(r.take_at(now, new.expose(), O, None), Ok(s));
        assert_eq!(
            r.take_at(now, old.expose(), O, None),
            Err(RestoreRefusal::Unknown)
        );
    }

    #[test]
    fn single_use_and_bounded() {
        let cache = ReplayCache::new(2, 1000);
        cache.consume("t1", 1000, 1060, 1000).unwrap();
        assert_eq!(
            cache.consume("t1", 1000, 1060, 1001),
            Err(TicketUseError::Replayed)
        );
        cache.consume("t2", 1000, 1010, 1000).unwrap();
        assert_eq!(
            cache.consume("t3", 1000, 1060, 1001),
            Err(TicketUseError::CacheFull)
        );
        // t2 expired at 1010: room again, and t1 is still remembered.
        cache.consume("t3", 1000, 1060, 1011).unwrap();
        assert_eq!(
            cache.consume("t1", 1000, 1060, 1012),
            Err(TicketUseError::Replayed)
        );
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn a_restarted_cache_refuses_tickets_issued_before_it() {
        // Used before the restart...
        ReplayCache::new(10, 990)
            .consume("t", 1000, 1060, 1005)
            .unwrap();
        // ...and presented again to the restarted proxy, whose cache is empty.
        let restarted = ReplayCache::new(10, 1001);
        assert_eq!(
            restarted.consume("t", 1000, 1060, 1006),
            Err(TicketUseError::BeforeStart)
        );
        // Issued in the second it started: accepted.
        restarted.consume("fresh", 1001, 1061, 1002).unwrap();
    }
}
