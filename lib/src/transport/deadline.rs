//! The one timer a connection driver sleeps on: the session's next
//! deadline, kept in one tokio `Sleep` for the connection's life.
//!
//! A session's deadlines mostly move later (every read pushes the heartbeat
//! back), so re-arming the timer on every read would cost a timer-wheel
//! update per read. Instead the timer is only moved *earlier*; when it
//! fires before the session's current deadline, the session's
//! `handle_timeout` finds nothing due and the driver re-arms it at the new
//! deadline.

use std::future::Future;
use std::pin::Pin;
use std::task::Waker;
use std::time::{Duration, Instant};
use tokio::time::Sleep;

/// Far enough away to mean "never" without overflowing an `Instant`.
const IDLE: Duration = Duration::from_secs(24 * 3600);

/// A re-armable sleep until the session's next deadline.
#[derive(Debug)]
pub(crate) struct Deadline {
    sleep: Pin<Box<Sleep>>,
    /// What the sleep is armed for; `None` when idle.
    armed: Option<Instant>,
    /// The waker the armed sleep was last polled with: while it has not
    /// elapsed, polling it again with the same waker would only register
    /// that waker again (most of a busy connection's wake-ups are reads).
    polled_by: Option<Waker>,
}

impl Deadline {
    pub(crate) fn new() -> Self {
        Deadline {
            sleep: Box::pin(tokio::time::sleep(IDLE)),
            armed: None,
            polled_by: None,
        }
    }

    /// Makes sure the timer fires no later than `next` (the session's
    /// `poll_timeout()`). A later `next` leaves an earlier timer alone.
    pub(crate) fn arm(&mut self, next: Option<Instant>) {
        let Some(next) = next else { return };
        if self.armed.is_none_or(|armed| next < armed) {
            self.sleep.as_mut().reset(next.into());
            self.armed = Some(next);
            self.polled_by = None;
        }
    }

    /// `Ready` once the armed instant has come; the timer is then idle
    /// until armed again. Pending forever while idle.
    pub(crate) fn poll_fired(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.armed.is_none() {
            return std::task::Poll::Pending;
        }
        if self
            .polled_by
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
            && !self.sleep.is_elapsed()
        {
            return std::task::Poll::Pending;
        }
        if self.sleep.as_mut().poll(cx).is_pending() {
            self.polled_by = Some(cx.waker().clone());
            return std::task::Poll::Pending;
        }
        self.polled_by = None;
        self.armed = None;
        let far = tokio::time::Instant::now() + IDLE;
        self.sleep.as_mut().reset(far);
        std::task::Poll::Ready(())
    }

    /// [`Deadline::poll_fired`] as a future.
    #[cfg(test)]
    pub(crate) async fn fired(&mut self) {
        std::future::poll_fn(|cx| self.poll_fired(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn fires_at_the_earliest_deadline_it_was_given() {
        let t0 = Instant::now();
        let mut d = Deadline::new();
        d.arm(Some(t0 + Duration::from_secs(30)));
        d.arm(Some(t0 + Duration::from_secs(60)));
        assert_eq!(
            d.armed,
            Some(t0 + Duration::from_secs(30)),
            "later leaves it"
        );
        d.arm(Some(t0 + Duration::from_secs(10)));
        assert_eq!(
            d.armed,
            Some(t0 + Duration::from_secs(10)),
            "earlier moves it"
        );
        d.fired().await;
        assert!(d.armed.is_none());
        let idle = tokio::time::timeout(Duration::from_secs(3600), d.fired()).await;
        assert!(idle.is_err(), "idle until armed again");
    }
}
