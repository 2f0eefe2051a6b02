//! Client keys and login throttling (the connection caps: `crate::fairpool`).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Longest user name a login may carry through the proxy (the service documents no limit;
/// real account names are far shorter).
pub const MAX_USER_NAME_BYTES: usize = 1024;

/// The login-throttle key of a user name: a fixed-size digest of its lower-cased form, so a
/// huge name costs the table no more than a short one and the table holds no names.
pub fn user_key(name: &str) -> [u8; 16] {
    let digest = Sha256::digest(name.to_lowercase().as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// How often a rate limiter forgets buckets that have refilled completely.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The per-client key of an address: the address itself for IPv4, its /64 for IPv6 (one
/// subscriber usually owns a whole /64).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match crate::policy::canonical(ip) {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// Token buckets per key: `burst` at once, then `per_minute`. Bounded number of keys; when the
/// table is full of active buckets, new keys are refused (fail closed). Buckets that have
/// refilled completely are forgotten every minute (and whenever the table is full), so the
/// table follows the active set.
#[derive(Debug)]
pub struct RateLimiter<K: Eq + Hash> {
    burst: f64,
    per_sec: f64,
    max_keys: usize,
    buckets: Mutex<Buckets<K>>,
}

#[derive(Debug)]
struct Buckets<K> {
    map: HashMap<K, (f64, Instant)>,
    pruned: Option<Instant>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// A limiter; `burst` 0 disables it (everything allowed).
    pub fn new(burst: u32, per_minute: u32, max_keys: usize) -> RateLimiter<K> {
        RateLimiter {
            burst: f64::from(burst),
            per_sec: f64::from(per_minute) / 60.0,
            max_keys: max_keys.max(1),
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                pruned: None,
            }),
        }
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map
            .len()
    }

    /// No key tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Take one token for `key` at `now`; false if none is left.
    pub fn check(&self, key: &K, now: Instant) -> bool {
        if self.burst <= 0.0 {
            return true;
        }
        let mut guard = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = &mut *guard;
        let full = !b.map.contains_key(key) && b.map.len() >= self.max_keys;
        let due = b
            .pruned
            .is_none_or(|t| now.saturating_duration_since(t) >= PRUNE_EVERY);
        if full || due {
            let (burst, per_sec) = (self.burst, self.per_sec);
            b.map.retain(|_, (tokens, last)| {
                *tokens + now.saturating_duration_since(*last).as_secs_f64() * per_sec < burst
            });
            b.pruned = Some(now);
            if !b.map.contains_key(key) && b.map.len() >= self.max_keys {
                return false;
            }
        }
        let entry = b.map.entry(key.clone()).or_insert((self.burst, now));
        let refill = now.saturating_duration_since(entry.1).as_secs_f64() * self.per_sec;
        entry.0 = (entry.0 + refill).min(self.burst);
        entry.1 = now;
        if entry.0 >= 1.0 {
            entry.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn token_bucket() {
        let r: RateLimiter<String> = RateLimiter::new(2, 60, 10);
        let t0 = Instant::now();
        let k = "u".to_string();
        assert!(r.check(&k, t0));
        assert!(r.check(&k, t0));
        assert!(!r.check(&k, t0));
        assert!(r.check(&"v".to_string(), t0));
        assert!(r.check(&k, t0 + Duration::from_millis(1100)));
        assert!(!r.check(&k, t0 + Duration::from_millis(1200)));
    }

    #[test]
    fn key_table_is_bounded() {
        let r: RateLimiter<u32> = RateLimiter::new(1, 1, 2);
        let t0 = Instant::now();
        assert!(r.check(&1, t0));
        assert!(r.check(&2, t0));
        assert!(!r.check(&3, t0));
        // After refilling, old keys are forgotten and new ones fit.
        assert!(r.check(&3, t0 + Duration::from_secs(120)));
    }

    #[test]
    fn refilled_buckets_are_forgotten_below_the_cap() {
        // Burst 2, then one token a minute.
        let r: RateLimiter<u32> = RateLimiter::new(2, 1, 100_000);
        let t0 = Instant::now();
        for k in 0..1000 {
            assert!(r.check(&k, t0));
        }
        // Key 1000 spends its whole burst.
        assert!(r.check(&1000, t0));
        assert!(r.check(&1000, t0));
        assert_eq!(r.len(), 1001);
        // Within the minute nothing is pruned.
        assert!(r.check(&2000, t0 + Duration::from_secs(30)));
        assert_eq!(r.len(), 1002);
        // A minute on, the refilled buckets go; 1000 and 2000 are still below their burst.
        assert!(r.check(&3000, t0 + Duration::from_secs(61)));
        assert_eq!(r.len(), 3);
        // And 1000 still remembers it is nearly empty.
        assert!(r.check(&1000, t0 + Duration::from_secs(61)));
        assert!(!r.check(&1000, t0 + Duration::from_secs(61)));
    }

    #[test]
    fn user_keys_are_fixed_size_and_case_blind() {
        assert_eq!(user_key("Alice"), user_key("alice"));
        assert_ne!(user_key("alice"), user_key("alicf"));
        let huge = "a".repeat(1 << 20);
        assert_eq!(user_key(&huge).len(), 16);
        let r: RateLimiter<[u8; 16]> = RateLimiter::new(1, 1, 10);
        let t0 = Instant::now();
        assert!(r.check(&user_key("Bob"), t0));
        assert!(!r.check(&user_key("BOB"), t0));
    }
}
