//! The order of routes on the wire: Qt 5 `QHash` iteration order.
//!
//! The real tables keep their routes in a `QHash<QPair<quint32, quint32>, _>`, and `toBuffer`
//! writes them in its iteration order, which depends on a per-process random seed
//! (`QT_HASH_SEED=0` gives seed 0). Peers parse routes as a set; this reproduces the order a
//! real peer writes, for byte-exact tests against captures.

use super::{Route, RoutingTable};

/// Qt 5 `prime_deltas` (qhash.cpp), for [`RoutingTable::in_qt5_hash_order`].
const QT5_PRIME_DELTAS: [u32; 32] = [
    0, 0, 1, 3, 1, 5, 3, 3, 1, 9, 7, 5, 3, 17, 27, 3, 1, 29, 3, 21, 7, 17, 15, 9, 43, 35, 15, 0, 0,
    0, 0, 0,
];

impl RoutingTable {
    /// Reorders the routes as a Qt 5 `QHash<QPair<quint32, quint32>, _>` filled in the current
    /// order with hash seed `seed` iterates them (what `toBuffer` writes). Qt 5 hashes a pair as
    /// `rot16(first ^ seed) ^ (second ^ seed) ^ seed` into `2^bits + prime_deltas[bits]` chained
    /// buckets (at least 17), appending to chains and growing when `size >= buckets`.
    pub fn in_qt5_hash_order(mut self, seed: u32) -> Self {
        let hash = |r: &Route| (r.begin ^ seed).rotate_left(16) ^ (r.end ^ seed) ^ seed;
        let buckets_for = |bits: usize| {
            (1u32 << bits).saturating_add(QT5_PRIME_DELTAS.get(bits).copied().unwrap_or(0))
        };
        let mut bits = 0usize;
        let mut buckets: Vec<Vec<Route>> = Vec::new();
        let mut size = 0usize;
        for r in std::mem::take(&mut self.routes) {
            if let Some(existing) = buckets
                .iter_mut()
                .flatten()
                .find(|e| e.begin == r.begin && e.end == r.end)
            {
                *existing = r;
                continue;
            }
            if size >= buckets.len() {
                bits = (bits + 1).max(4);
                let n = buckets_for(bits) as usize;
                let mut grown: Vec<Vec<Route>> = vec![Vec::new(); n];
                for old in buckets.into_iter().flatten() {
                    grown[hash(&old) as usize % n].push(old);
                }
                buckets = grown;
            }
            let n = buckets.len();
            buckets[hash(&r) as usize % n].push(r);
            size += 1;
        }
        self.routes = buckets.into_iter().flatten().collect();
        self
    }
}
