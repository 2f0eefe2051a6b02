//! The replay ring that makes a resume lossless: the last packages sent (or to be sent) to
//! the browser, by sequence number (1 = the first package of this upstream connection),
//! bounded in count and bytes.

use std::collections::VecDeque;

use bytes::Bytes;

#[derive(Debug)]
pub(crate) struct ReplayRing {
    items: VecDeque<(u64, Bytes)>,
    bytes: usize,
    next_seq: u64,
    max_items: usize,
    max_bytes: usize,
}

/// Why a resume's `received` count cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReplayError {
    /// The browser claims more than was sent.
    Ahead,
    /// Packages the browser missed were already dropped.
    Lost,
}

impl ReplayRing {
    pub(crate) fn new(max_items: usize, max_bytes: usize) -> ReplayRing {
        ReplayRing {
            items: VecDeque::new(),
            bytes: 0,
            next_seq: 1,
            max_items: max_items.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    fn full(&self) -> bool {
        self.items.len() >= self.max_items || self.bytes >= self.max_bytes
    }

    fn front_seq(&self) -> u64 {
        self.items.front().map(|(s, _)| *s).unwrap_or(self.next_seq)
    }

    /// The sequence number of the last package pushed (0 before the first).
    pub(crate) fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Append, dropping the oldest entries beyond the bounds; returns its sequence number.
    pub(crate) fn push(&mut self, data: Bytes) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += data.len();
        self.items.push_back((seq, data));
        while self.items.len() > 1
            && (self.items.len() > self.max_items || self.bytes > self.max_bytes)
        {
            if let Some((_, d)) = self.items.pop_front() {
                self.bytes -= d.len();
            }
        }
        seq
    }

    /// While detached: room for one more without dropping a package never handed to the
    /// browser (`sent` = highest sequence number handed to the old WebSocket).
    pub(crate) fn can_accept_detached(&self, sent: u64) -> bool {
        !self.full() || self.front_seq() <= sent
    }

    /// The packages after `received`.
    pub(crate) fn replay_from(&self, received: u64) -> Result<Vec<Bytes>, ReplayError> {
        if received > self.last_seq() {
            return Err(ReplayError::Ahead);
        }
        if received + 1 < self.front_seq() {
            return Err(ReplayError::Lost);
        }
        Ok(self
            .items
            .iter()
            .filter(|(s, _)| *s > received)
            .map(|(_, d)| d.clone())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(n: u8, len: usize) -> Bytes {
        Bytes::from(vec![n; len])
    }

    #[test]
    fn ring_replays_in_order_and_knows_what_it_lost() {
        let mut r = ReplayRing::new(3, 1000);
        for i in 1..=5u8 {
            assert_eq!(r.push(b(i, 10)), u64::from(i));
        }
        // Holds 3, 4, 5.
        assert_eq!(
            r.replay_from(2).unwrap(),
            vec![b(3, 10), b(4, 10), b(5, 10)]
        );
        assert_eq!(r.replay_from(4).unwrap(), vec![b(5, 10)]);
        assert!(r.replay_from(5).unwrap().is_empty());
        assert_eq!(r.replay_from(1), Err(ReplayError::Lost));
        assert_eq!(r.replay_from(6), Err(ReplayError::Ahead));
    }

    #[test]
    fn ring_is_bounded_by_bytes() {
        let mut r = ReplayRing::new(100, 25);
        r.push(b(1, 10));
        r.push(b(2, 10));
        r.push(b(3, 10));
        assert_eq!(r.bytes, 20);
        assert_eq!(r.front_seq(), 2);
        // A single oversized package is kept alone.
        r.push(b(4, 100));
        assert_eq!(r.items.len(), 1);
    }

    #[test]
    fn detached_ring_never_drops_unsent_packages() {
        let mut r = ReplayRing::new(2, 1000);
        r.push(b(1, 1));
        r.push(b(2, 1));
        // Both were sent to the old socket: room by dropping the oldest.
        assert!(r.can_accept_detached(2));
        r.push(b(3, 1));
        // 2 was sent: it may still go.
        assert!(r.can_accept_detached(2));
        r.push(b(4, 1));
        // 3 and 4 were never sent: the ring is full of packages the browser needs.
        assert!(!r.can_accept_detached(2));
    }
}
