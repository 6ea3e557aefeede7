//! The server's rare signals (stop, abandon, a displacement) made cheap
//! for the connections that wait on them: a count that moves whenever one
//! fires, so a connection polls its signal futures, each a lock, only then.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// How many times the server's rare signals have fired (stop, abandon, a
/// displacement). Polling a cancellation token's future takes its lock,
/// shared by every connection of the server; a connection instead polls
/// its signal futures once (to register its waker) and again only when
/// this count has moved since it last looked. Bump it *before* firing the
/// signal, so the wake-up finds it moved.
#[derive(Debug, Default)]
pub(crate) struct SignalEpoch(std::sync::atomic::AtomicU64);

impl SignalEpoch {
    /// A signal is about to fire.
    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Whether anything fired since `seen` (start it at `u64::MAX`, so the
    /// first look says yes); updates `seen`.
    pub(crate) fn moved(&self, seen: &mut u64) -> bool {
        let now = self.0.load(std::sync::atomic::Ordering::Acquire);
        let moved = now != *seen;
        *seen = now;
        moved
    }
}

/// Runs `work` unless `signal` (one of the server's rare signals) fires
/// first: `Err` with the signal's output then. The signal is polled only
/// when `signals` moved, not on every wake-up of the work.
/// Both come pinned where the caller made them: moved into this function
/// they would take their room in the task twice.
pub(crate) async fn unless<F: Future, G: Future>(
    mut work: Pin<&mut F>,
    mut signal: Pin<&mut G>,
    signals: &SignalEpoch,
) -> Result<F::Output, G::Output> {
    let mut seen = u64::MAX;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = work.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        if signals.moved(&mut seen)
            && let Poll::Ready(fired) = signal.as_mut().poll(cx)
        {
            return Poll::Ready(Err(fired));
        }
        Poll::Pending
    })
    .await
}
