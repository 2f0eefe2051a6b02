//! A pool of slots shared among clients, with a per-client share and fair-share eviction;
//! sans-I/O: plain data, no lock, no task, no clock (the caller locks it and tells the
//! evicted holders).
//!
//! A per-client share alone cannot keep a pool from filling: 32 addresses holding 8 slots
//! each fill 256. So when the pool is full, a newcomer may take the oldest slot of the
//! client holding the most (ties: the one whose oldest slot is oldest) if its own client
//! holds none, or holds at least two fewer than that biggest holder; otherwise it is refused.
//! Like the pruning of a full SYN queue, this only ever takes from whoever holds more than
//! the newcomer, so slots converge to an even split (within one) among the clients asking for
//! them: a client with a single slot keeps it as long as some other client holds two or more,
//! and a client with none always gets one. The margin of two stops a flood from churning:
//! a flooding client that lost a slot holds one fewer than its peers and may not take one
//! back from them, so one eviction does not set off another. When every client holds one
//! (as many clients as slots), a newcomer with none takes the oldest slot.
//! The pools this serves hold connections that have not authenticated yet, each with a short
//! deadline, and a legitimate browser leaves them within about a second: the oldest slots of
//! the biggest holder are the ones a flood has held longest.
//!
//! Clients are keyed by [`client_key`] (IPv6 per /64). A slot taken without a client (a
//! trusted proxy's connection before a request has named its client) counts toward the pool
//! and toward one group of its own, with no per-client cap; [`FairPool::rebind`] moves it
//! to the client once known.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use crate::limits::client_key;

/// A slot's id: ids grow with time, so the smallest is the oldest.
pub(crate) type SlotId = u64;

/// Why a slot was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The client already holds its share.
    OwnShare,
    /// The pool is full and no client holds more slots than this one.
    Full,
}

/// A slot taken from the pool.
#[derive(Debug)]
pub(crate) struct Taken<T> {
    /// The new slot.
    pub(crate) id: SlotId,
    /// The holder of the slot taken back to make room, if any (tell it to go).
    pub(crate) evicted: Option<T>,
}

/// The pool; `T` is what a holder leaves to be told by when its slot is taken back.
#[derive(Debug)]
pub(crate) struct FairPool<T> {
    capacity: usize,
    per_client: usize,
    evicts: bool,
    next: SlotId,
    /// Every slot: its client key and its holder's handle.
    slots: BTreeMap<SlotId, (Option<IpAddr>, T)>,
    /// The slots of each client key, oldest first.
    by_client: HashMap<Option<IpAddr>, BTreeSet<SlotId>>,
}

impl<T> FairPool<T> {
    /// A pool of `capacity` slots, at most `per_client` (at least 1) per client; full, it
    /// evicts as described in the module documentation if `evicts`, or refuses.
    pub(crate) fn new(capacity: usize, per_client: usize, evicts: bool) -> FairPool<T> {
        FairPool {
            capacity,
            per_client: per_client.max(1),
            evicts,
            next: 0,
            slots: BTreeMap::new(),
            by_client: HashMap::new(),
        }
    }

    /// Slots held.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Slots `client` holds (`None`: the slots with no client yet).
    #[cfg(test)]
    pub(crate) fn held(&self, client: Option<IpAddr>) -> usize {
        self.count(client.map(client_key))
    }

    fn count(&self, key: Option<IpAddr>) -> usize {
        self.by_client.get(&key).map_or(0, BTreeSet::len)
    }

    /// A slot for `client`, its holder told through `handle` if it is ever evicted.
    pub(crate) fn take(&mut self, client: Option<IpAddr>, handle: T) -> Result<Taken<T>, Refusal> {
        let key = client.map(client_key);
        let held = self.count(key);
        if key.is_some() && held >= self.per_client {
            return Err(Refusal::OwnShare);
        }
        let evicted = if self.slots.len() < self.capacity {
            None
        } else if !self.evicts {
            return Err(Refusal::Full);
        } else {
            let victim = self.victim(key, held).ok_or(Refusal::Full)?;
            self.remove(victim)
        };
        let id = self.next;
        self.next += 1;
        self.slots.insert(id, (key, handle));
        self.by_client.entry(key).or_default().insert(id);
        Ok(Taken { id, evicted })
    }

    /// The oldest slot of the client holding the most, if the newcomer's client `key`, which
    /// holds `held`, may take it: it holds none, or at least two fewer.
    fn victim(&self, key: Option<IpAddr>, held: usize) -> Option<SlotId> {
        let margin = if held == 0 { 1 } else { 2 };
        self.by_client
            .iter()
            .filter(|(k, ids)| **k != key && ids.len() >= held + margin)
            .filter_map(|(_, ids)| Some((ids.len(), *ids.first()?)))
            // Most slots first; among equals, the oldest slot.
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
            .map(|(_, oldest)| oldest)
    }

    fn remove(&mut self, id: SlotId) -> Option<T> {
        let (key, handle) = self.slots.remove(&id)?;
        if let Some(ids) = self.by_client.get_mut(&key) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_client.remove(&key);
            }
        }
        Some(handle)
    }

    /// Give slot `id` back (nothing if it was evicted already).
    pub(crate) fn release(&mut self, id: SlotId) {
        self.remove(id);
    }

    /// Count slot `id` against `client` from now on; `false` (and no change) if that client
    /// already holds its share. An evicted slot stays evicted (`true`: nothing to count).
    pub(crate) fn rebind(&mut self, id: SlotId, client: IpAddr) -> bool {
        let key = Some(client_key(client));
        let Some((old, _)) = self.slots.get(&id) else {
            return true;
        };
        let old = *old;
        if old == key {
            return true;
        }
        if self.count(key) >= self.per_client {
            return false;
        }
        if let Some(ids) = self.by_client.get_mut(&old) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_client.remove(&old);
            }
        }
        self.by_client.entry(key).or_default().insert(id);
        if let Some(slot) = self.slots.get_mut(&id) {
            slot.0 = key;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    /// Fill `pool` with `per` slots from each of `n` addresses 10.0.0.x; the ids in order.
    fn fill(pool: &mut FairPool<&'static str>, n: u8, per: usize) -> Vec<SlotId> {
        let mut ids = Vec::new();
        for _ in 0..per {
            for a in 1..=n {
                let t = pool.take(ip(&format!("10.0.0.{a}")), "flood").unwrap();
                assert!(t.evicted.is_none());
                ids.push(t.id);
            }
        }
        ids
    }

    #[test]
    fn the_share_and_the_pool_bound_without_eviction() {
        let mut p = FairPool::new(3, 2, false);
        p.take(ip("10.0.0.1"), ()).unwrap();
        p.take(ip("10.0.0.1"), ()).unwrap();
        assert_eq!(p.take(ip("10.0.0.1"), ()).err(), Some(Refusal::OwnShare));
        p.take(ip("10.0.0.2"), ()).unwrap();
        // Full, and this pool never evicts.
        assert_eq!(p.take(ip("10.0.0.3"), ()).err(), Some(Refusal::Full));
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn a_full_pool_gives_a_newcomer_the_oldest_slot_of_the_biggest_holder() {
        // 32 addresses x 8 fill 256: the per-address share alone lets them in.
        let mut p = FairPool::new(256, 8, true);
        let flood = fill(&mut p, 32, 8);
        assert_eq!(p.len(), 256);
        // A newcomer from a fresh address gets in: every address holds 8, so the one whose
        // oldest slot is oldest (10.0.0.1, the very first slot) gives it up.
        let t = p.take(ip("192.0.2.1"), "legit").unwrap();
        assert_eq!(t.evicted, Some("flood"));
        assert_eq!(p.len(), 256);
        assert_eq!(p.held(ip("10.0.0.1")), 7);
        assert_eq!(p.held(ip("192.0.2.1")), 1);
        // Its slot is gone from the pool: releasing it later changes nothing.
        p.release(flood[0]);
        assert_eq!(p.len(), 256);
        // The next newcomer takes from one still holding 8: 10.0.0.2's oldest.
        assert_eq!(
            p.take(ip("192.0.2.2"), "legit").unwrap().evicted,
            Some("flood")
        );
        assert_eq!(p.held(ip("10.0.0.2")), 7);
        assert_eq!(p.held(ip("10.0.0.1")), 7);
    }

    #[test]
    fn a_flood_that_lost_a_slot_cannot_take_one_back_from_its_peers() {
        let mut p = FairPool::new(6, 3, true);
        let a = p.take(ip("10.0.0.1"), 'a').unwrap().id;
        p.take(ip("10.0.0.1"), 'a').unwrap();
        p.take(ip("10.0.0.1"), 'a').unwrap();
        p.take(ip("10.0.0.2"), 'b').unwrap();
        p.take(ip("10.0.0.2"), 'b').unwrap();
        p.take(ip("10.0.0.2"), 'b').unwrap();
        // The legitimate client (none held): 10.0.0.1's oldest goes.
        let legit = p.take(ip("192.0.2.1"), 'l').unwrap();
        assert_eq!(legit.evicted, Some('a'));
        assert_eq!(p.held(ip("10.0.0.1")), 2);
        // 10.0.0.1 comes back holding 2 against 10.0.0.2's 3: not enough to evict, so one
        // eviction does not set off a chain of them.
        assert_eq!(p.take(ip("10.0.0.1"), 'a').err(), Some(Refusal::Full));
        assert_eq!(p.take(ip("10.0.0.2"), 'b').err(), Some(Refusal::OwnShare));
        // A second legitimate client takes from 10.0.0.2, the biggest holder now.
        assert_eq!(p.take(ip("192.0.2.2"), 'l').unwrap().evicted, Some('b'));
        // Every client holds within one of the others: nobody evicts anybody.
        assert_eq!(p.take(ip("192.0.2.1"), 'l').err(), Some(Refusal::Full));
        assert_eq!(p.held(ip("192.0.2.1")), 1);
        // The evicted first slot stays gone.
        p.release(a);
        assert_eq!(p.len(), 6);
    }

    #[test]
    fn a_client_may_take_from_one_holding_two_more() {
        let mut p = FairPool::new(5, 4, true);
        for _ in 0..4 {
            p.take(ip("10.0.0.1"), 1).unwrap();
        }
        p.take(ip("10.0.0.2"), 2).unwrap();
        // 10.0.0.2 holds 1, 10.0.0.1 holds 4: it may take one.
        assert_eq!(p.take(ip("10.0.0.2"), 2).unwrap().evicted, Some(1));
        // 2 against 3: no longer.
        assert_eq!(p.take(ip("10.0.0.2"), 2).err(), Some(Refusal::Full));
        assert_eq!(p.held(ip("10.0.0.1")), 3);
        assert_eq!(p.held(ip("10.0.0.2")), 2);
    }

    #[test]
    fn no_one_holding_more_than_the_newcomer_means_refused() {
        let mut p = FairPool::new(4, 3, true);
        p.take(ip("10.0.0.1"), ()).unwrap();
        p.take(ip("10.0.0.1"), ()).unwrap();
        p.take(ip("10.0.0.2"), ()).unwrap();
        p.take(ip("10.0.0.2"), ()).unwrap();
        // 10.0.0.1 holds 2, so does everyone else: no one to take from.
        assert_eq!(p.take(ip("10.0.0.1"), ()).err(), Some(Refusal::Full));
        // A newcomer holding none does get in.
        assert_eq!(p.take(ip("10.0.0.3"), ()).unwrap().evicted, Some(()));
        assert_eq!(p.held(ip("10.0.0.1")), 1);
        assert_eq!(p.len(), 4);
    }

    #[test]
    fn as_many_clients_as_slots_turn_over_oldest_first() {
        let mut p = FairPool::new(3, 8, true);
        let first = p.take(ip("10.0.0.1"), 1).unwrap().id;
        p.take(ip("10.0.0.2"), 2).unwrap();
        p.take(ip("10.0.0.3"), 3).unwrap();
        assert_eq!(p.take(ip("10.0.0.4"), 4).unwrap().evicted, Some(1));
        assert_eq!(p.take(ip("10.0.0.5"), 5).unwrap().evicted, Some(2));
        assert_eq!(p.held(ip("10.0.0.1")), 0);
        p.release(first);
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn an_ipv6_slash_64_is_one_client() {
        let mut p = FairPool::new(4, 2, true);
        p.take(ip("2001:db8:0:1::1"), ()).unwrap();
        p.take(ip("2001:db8:0:1::2"), ()).unwrap();
        assert_eq!(
            p.take(ip("2001:db8:0:1::3"), ()).err(),
            Some(Refusal::OwnShare)
        );
        p.take(ip("2001:db8:0:2::1"), ()).unwrap();
        p.take(ip("::ffff:10.0.0.1"), ()).unwrap();
        // The v4-mapped address is 10.0.0.1.
        assert_eq!(p.held(ip("10.0.0.1")), 1);
        // Full: a newcomer takes from the /64 holding 2 (the biggest), not from the other.
        assert_eq!(p.take(ip("10.0.0.2"), ()).unwrap().evicted, Some(()));
        assert_eq!(p.held(ip("2001:db8:0:1::9")), 1);
        assert_eq!(p.held(ip("2001:db8:0:2::9")), 1);
    }

    #[test]
    fn slots_without_a_client_are_one_group_until_rebound() {
        let mut p = FairPool::new(3, 1, true);
        // A trusted proxy's connections before their requests name a client: no share.
        let a = p.take(None, 'a').unwrap().id;
        let b = p.take(None, 'b').unwrap().id;
        assert_eq!(p.held(None), 2);
        // Rebound to their clients, within each client's share.
        assert!(p.rebind(a, "10.0.0.1".parse().unwrap()));
        assert!(p.rebind(a, "10.0.0.1".parse().unwrap()));
        assert!(!p.rebind(b, "10.0.0.1".parse().unwrap()));
        assert_eq!(p.held(None), 1);
        p.take(ip("10.0.0.2"), 'c').unwrap();
        // Full: 10.0.0.3 (0) takes the oldest of the biggest; all hold 1, 'a' is oldest.
        assert_eq!(p.take(ip("10.0.0.3"), 'd').unwrap().evicted, Some('a'));
        // An evicted slot stays evicted when its request names a client.
        assert!(p.rebind(a, "10.0.0.4".parse().unwrap()));
        assert_eq!(p.held(ip("10.0.0.4")), 0);
        p.release(b);
        assert_eq!(p.held(None), 0);
        assert_eq!(p.len(), 2);
    }
}
