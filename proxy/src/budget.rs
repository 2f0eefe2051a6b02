//! A byte budget with waiting for room, optionally counted in a parent budget: a session's
//! queue toward its browser is bounded by its own budget (`limits.queue_bytes`) and, through
//! its parent, by the budget of all queues toward browsers together
//! (`limits.max_queued_bytes_total`). A leaf module: it knows nothing of relays or servers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;

/// A bounded queue's fill level in bytes.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    used: AtomicUsize,
    max: usize,
    notify: Notify,
    /// Follows this budget's own fill level (not the parent's).
    gauge: Option<Gauge>,
    /// A budget every byte of this one also counts in.
    parent: Option<Arc<ByteBudget>>,
}

impl ByteBudget {
    /// A budget of `max` bytes (at least 1).
    pub(crate) fn new(
        max: usize,
        gauge: Option<Gauge>,
        parent: Option<Arc<ByteBudget>>,
    ) -> Arc<ByteBudget> {
        Arc::new(ByteBudget {
            used: AtomicUsize::new(0),
            max: max.max(1),
            notify: Notify::new(),
            gauge,
            parent,
        })
    }

    /// This budget and its ancestors, nearest first.
    fn chain(&self) -> impl Iterator<Item = &ByteBudget> {
        std::iter::successors(Some(self), |b| b.parent.as_deref())
    }

    /// Resolves once this budget and every ancestor is below its limit (each may then be
    /// exceeded by one item).
    pub(crate) async fn room(&self) {
        for b in self.chain() {
            loop {
                let notified = b.notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if b.used.load(Ordering::Acquire) < b.max {
                    break;
                }
                notified.await;
            }
        }
    }

    pub(crate) fn add(&self, n: usize) {
        for b in self.chain() {
            b.used.fetch_add(n, Ordering::AcqRel);
            if let Some(g) = &b.gauge {
                g.inc_by(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }

    pub(crate) fn sub(&self, n: usize) {
        for b in self.chain() {
            let _ = b
                .used
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                    Some(u.saturating_sub(n))
                });
            if let Some(g) = &b.gauge {
                g.dec_by(i64::try_from(n).unwrap_or(i64::MAX));
            }
            b.notify.notify_waiters();
        }
    }

    /// Below its own limit and every ancestor's: [`ByteBudget::room`] would resolve now.
    pub(crate) fn has_room(&self) -> bool {
        self.chain().all(|b| b.used.load(Ordering::Acquire) < b.max)
    }

    /// At or over its own limit (the reader of the other side is paused).
    #[cfg(test)]
    pub(crate) fn is_full(&self) -> bool {
        self.used.load(Ordering::Acquire) >= self.max
    }

    /// Bytes currently counted in this budget.
    #[cfg(test)]
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Polls `f` once: whether it is ready now.
    fn ready_now<F: std::future::Future>(f: F) -> bool {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let mut f = std::pin::pin!(f);
        f.as_mut().poll(&mut cx).is_ready()
    }

    #[tokio::test]
    async fn a_budget_waits_for_room() {
        let b = ByteBudget::new(10, Some(Gauge::default()), None);
        b.add(10);
        assert!(b.is_full());
        assert!(!ready_now(b.room()));
        let b2 = Arc::clone(&b);
        let waiter = tokio::spawn(async move { b2.room().await });
        b.sub(5);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(b.used(), 5);
        assert_eq!(b.gauge.as_ref().unwrap().get(), 5);
    }

    #[tokio::test]
    async fn the_parent_budget_holds_every_child() {
        let global = ByteBudget::new(100, None, None);
        let a = ByteBudget::new(1000, None, Some(Arc::clone(&global)));
        let b = ByteBudget::new(1000, None, Some(Arc::clone(&global)));
        a.add(100);
        assert_eq!(global.used(), 100);
        // b is empty, but all children together are at the parent's limit.
        assert!(!b.is_full());
        assert!(!ready_now(b.room()));
        let b2 = Arc::clone(&b);
        let waiter = tokio::spawn(async move { b2.room().await });
        a.sub(50);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(global.used(), 50);
        assert_eq!(a.used(), 50);
        assert!(ready_now(b.room()));
    }
}
