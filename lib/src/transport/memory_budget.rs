//! One server-wide budget for the bytes held on behalf of peers, learned
//! from Kafka's request memory pool: a frame larger than a small read is
//! admitted by the length it claims *before* its bytes are buffered. When
//! the budget is short, the connection that wants more simply stops being
//! read until some is returned; TCP pushes back on that peer, while
//! connections sending small frames are served as before (and a peer that
//! waits too long is cut by its frame deadline).

use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Frames up to this size are read without asking the budget: every
/// connection may hold one read's worth.
pub(crate) const UNBUDGETED_FRAME: usize = 64 * 1024;

/// The metric of the bytes held (a gauge).
pub(crate) const USED_METRIC: &str = "rust_tcp_memory_budget_used_bytes";
/// The metric of the budget's size (a gauge).
pub(crate) const LIMIT_METRIC: &str = "rust_tcp_memory_budget_limit_bytes";

/// The server's budget, shared by all its connections.
#[derive(Debug, Clone)]
pub(crate) struct MemoryBudget {
    permits: Arc<Semaphore>,
    total: usize,
    used: metrics::Gauge,
}

/// Bytes taken from the budget; returned when dropped.
#[derive(Debug)]
pub(crate) struct Reservation {
    _permit: OwnedSemaphorePermit,
    bytes: usize,
    used: metrics::Gauge,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.used.decrement(self.bytes as f64);
    }
}

impl Reservation {
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

impl MemoryBudget {
    /// A budget of `total` bytes (capped at what a semaphore can count).
    pub(crate) fn new(total: usize) -> Self {
        let total = total.min(Semaphore::MAX_PERMITS);
        metrics::gauge!(LIMIT_METRIC).set(total as f64);
        MemoryBudget {
            permits: Arc::new(Semaphore::new(total)),
            total,
            used: metrics::gauge!(USED_METRIC),
        }
    }

    /// Waits until `bytes` are free, then takes them. A request larger
    /// than the whole budget takes all of it (configuration keeps frames
    /// smaller than the budget, so this is a backstop, not a deadlock).
    pub(crate) async fn reserve(&self, bytes: usize) -> Reservation {
        let bytes = bytes.min(self.total);
        let n = u32::try_from(bytes).unwrap_or(u32::MAX);
        let permit = self
            .permits
            .clone()
            .acquire_many_owned(n)
            .await
            .expect("the budget's semaphore is never closed");
        Reservation {
            _permit: permit,
            bytes: n as usize,
            used: {
                self.used.increment(f64::from(n));
                self.used.clone()
            },
        }
    }

    /// Takes `bytes` now if they are free, or says no: for what may be
    /// given up instead of waited for (a lost connection's session kept for
    /// its client).
    pub(crate) fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let n = u32::try_from(bytes.min(self.total)).unwrap_or(u32::MAX);
        let permit = self.permits.clone().try_acquire_many_owned(n).ok()?;
        self.used.increment(f64::from(n));
        Some(Reservation {
            _permit: permit,
            bytes: n as usize,
            used: self.used.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reservation_waits_until_bytes_are_returned() {
        let budget = MemoryBudget::new(100);
        let first = budget.reserve(80).await;
        assert_eq!(budget.permits.available_permits(), 20);
        let waiting = tokio::spawn({
            let budget = budget.clone();
            async move { budget.reserve(50).await.bytes() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "only 20 bytes free");
        drop(first);
        assert_eq!(waiting.await.unwrap(), 50);
        assert_eq!(
            budget.reserve(1000).await.bytes(),
            100,
            "capped at the total"
        );
    }

    #[tokio::test]
    async fn a_try_takes_what_is_free_or_nothing() {
        let budget = MemoryBudget::new(100);
        let held = budget.try_reserve(60).expect("free");
        assert!(budget.try_reserve(60).is_none(), "only 40 left");
        drop(held);
        assert_eq!(budget.try_reserve(60).map(|r| r.bytes()), Some(60));
    }
}
