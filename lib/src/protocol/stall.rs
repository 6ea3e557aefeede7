//! Deadlines that a slow or silent peer cannot stretch, for any version:
//! the first complete frame must come within a limit counted from the
//! connection's start, a frame once begun must arrive whole within a base
//! time plus its claimed length at a minimum rate, and (where a version
//! has no heartbeats) a connection may stay silent only so long.
//!
//! Only complete frames count as progress. A peer that sends one byte now
//! and then ("a trickle") keeps a frame begun but never finishes it, and is
//! cut at that frame's deadline instead of being held forever. Sans-IO:
//! the driver reports what it sees and asks when to wake, as with the v2
//! session's other timers.

use std::time::{Duration, Instant};

/// The limits, with the defaults a server on an open network wants.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StallLimits {
    /// From the connection's start to its first complete frame (a v1
    /// message, a v2 HELLO), whatever bytes come meanwhile.
    pub first_frame: Duration,
    /// Every frame gets this long to arrive whole, plus its length at
    /// [`StallLimits::min_rate`].
    pub frame_base: Duration,
    /// The slowest transfer rate a frame is given time for, bytes/s.
    pub min_rate: u32,
    /// How long a connection may go without a complete frame once it is
    /// idle (nothing partial buffered); `None` for no limit (v2, whose
    /// heartbeats judge silence instead).
    pub idle: Option<Duration>,
}

impl Default for StallLimits {
    fn default() -> Self {
        StallLimits {
            first_frame: Duration::from_secs(10),
            frame_base: Duration::from_secs(30),
            min_rate: 256 * 1024,
            idle: None,
        }
    }
}

impl StallLimits {
    /// How long a frame of `len` bytes may take to arrive whole.
    pub fn frame_allowance(&self, len: usize) -> Duration {
        let rate = u64::from(self.min_rate.max(1));
        let transfer = Duration::from_millis((len as u64).saturating_mul(1000) / rate);
        self.frame_base.saturating_add(transfer)
    }
}

/// A deadline that passed: why the peer is cut.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stalled {
    /// No complete first frame within the limit.
    FirstFrame(Duration),
    /// A frame begun was not finished in time; carries the time it had and
    /// the length it claimed (`None`: its header never completed).
    Trickle {
        /// The time it was given.
        allowed: Duration,
        /// Its claimed length, if the header arrived.
        claimed: Option<usize>,
    },
    /// Nothing complete for the idle limit.
    Idle(Duration),
}

impl std::fmt::Display for Stalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stalled::FirstFrame(d) => write!(f, "no complete first frame within {d:?}"),
            Stalled::Trickle {
                allowed,
                claimed: Some(len),
            } => write!(
                f,
                "a frame of {len} bytes did not arrive within {allowed:?}"
            ),
            Stalled::Trickle { allowed, .. } => {
                write!(f, "a frame header did not arrive within {allowed:?}")
            }
            Stalled::Idle(d) => write!(f, "idle for {d:?}"),
        }
    }
}

/// One connection's stall deadlines.
#[derive(Debug, Clone)]
pub struct StallClock {
    limits: StallLimits,
    /// Until the first complete frame.
    first_frame_by: Option<Instant>,
    /// When the last complete frame arrived (or the connection started).
    last_frame: Instant,
    /// A frame begun: since when, and its claimed length if known.
    partial: Option<(Instant, Option<usize>)>,
}

impl StallClock {
    /// Starts counting at `started` (when the connection was accepted).
    pub fn new(limits: StallLimits, started: Instant) -> Self {
        StallClock {
            // A limit too large to be an instant is no limit.
            first_frame_by: started.checked_add(limits.first_frame),
            last_frame: started,
            partial: None,
            limits,
        }
    }

    /// A complete frame arrived at `now`: progress.
    #[inline]
    pub fn frame_received(&mut self, now: Instant) {
        self.first_frame_by = None;
        self.last_frame = now;
        self.partial = None;
    }

    /// After handing over every complete frame: `buffered` bytes of an
    /// unfinished frame remain, claiming `claimed` bytes in all once its
    /// header is known. A frame begun keeps the deadline of its start.
    pub fn pending(&mut self, now: Instant, buffered: usize, claimed: Option<usize>) {
        if buffered == 0 {
            self.partial = None;
            return;
        }
        match &mut self.partial {
            Some((_, len)) => *len = claimed.or(*len),
            None => self.partial = Some((now, claimed)),
        }
    }

    /// Whether part of a frame is buffered.
    pub fn frame_in_progress(&self) -> bool {
        self.partial.is_some()
    }

    fn partial_deadline(&self) -> Option<(Option<Instant>, Duration, Option<usize>)> {
        self.partial.map(|(since, claimed)| {
            // Until the header is whole, a header's worth is all it claims.
            let allowed = self.limits.frame_allowance(claimed.unwrap_or(0));
            (since.checked_add(allowed), allowed, claimed)
        })
    }

    /// When a deadline next passes, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let idle = match (self.limits.idle, self.partial) {
            (Some(idle), None) => self.last_frame.checked_add(idle),
            _ => None,
        };
        [
            self.first_frame_by,
            self.partial_deadline().and_then(|(at, ..)| at),
            idle,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Which deadline has passed at `now`, if any.
    pub fn check(&self, now: Instant) -> Option<Stalled> {
        if self.first_frame_by.is_some_and(|by| now >= by) {
            return Some(Stalled::FirstFrame(self.limits.first_frame));
        }
        if let Some((Some(at), allowed, claimed)) = self.partial_deadline()
            && now >= at
        {
            return Some(Stalled::Trickle { allowed, claimed });
        }
        match (self.limits.idle, self.partial) {
            (Some(idle), None)
                if self
                    .last_frame
                    .checked_add(idle)
                    .is_some_and(|at| now >= at) =>
            {
                Some(Stalled::Idle(idle))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn bytes_that_never_complete_a_frame_do_not_count() {
        let t0 = Instant::now();
        let mut c = StallClock::new(StallLimits::default(), t0);
        assert_eq!(c.poll_timeout(), Some(t0 + S(10)));
        // A byte every few seconds: a frame begun, never finished.
        for t in [1, 4, 7] {
            c.pending(t0 + S(t), t as usize, None);
        }
        assert_eq!(c.check(t0 + S(9)), None);
        assert_eq!(c.check(t0 + S(10)), Some(Stalled::FirstFrame(S(10))));
    }

    #[test]
    fn a_frame_begun_must_finish_within_base_plus_length_at_the_minimum_rate() {
        let t0 = Instant::now();
        let limits = StallLimits::default();
        let mut c = StallClock::new(limits.clone(), t0);
        c.frame_received(t0 + S(1));
        // 1 MiB claimed at 256 KiB/s: 4 s on top of the 30 s base.
        c.pending(t0 + S(2), 100, Some(1 << 20));
        c.pending(t0 + S(20), 5000, Some(1 << 20));
        assert_eq!(c.poll_timeout(), Some(t0 + S(36)), "counted from its start");
        assert_eq!(c.check(t0 + S(35)), None);
        assert_eq!(
            c.check(t0 + S(36)),
            Some(Stalled::Trickle {
                allowed: S(34),
                claimed: Some(1 << 20)
            })
        );
        // Finished in time: nothing is due (v2 has no idle limit).
        c.frame_received(t0 + S(30));
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(limits.frame_allowance(16 << 20), S(94));
    }

    #[test]
    fn limits_too_large_for_an_instant_mean_no_limit_and_never_panic() {
        let t0 = Instant::now();
        let limits = StallLimits {
            first_frame: Duration::MAX,
            frame_base: Duration::MAX,
            min_rate: 0,
            idle: Some(Duration::MAX),
        };
        let mut c = StallClock::new(limits, t0);
        assert_eq!(c.poll_timeout(), None);
        c.pending(t0, 1, Some(usize::MAX));
        assert_eq!(c.poll_timeout(), None);
        assert_eq!(c.check(t0 + S(1_000_000)), None);
    }

    #[test]
    fn the_idle_limit_counts_from_the_last_complete_frame() {
        let t0 = Instant::now();
        let limits = StallLimits {
            idle: Some(S(300)),
            ..StallLimits::default()
        };
        let mut c = StallClock::new(limits, t0);
        c.frame_received(t0 + S(5));
        assert_eq!(c.poll_timeout(), Some(t0 + S(305)));
        c.frame_received(t0 + S(200));
        assert_eq!(c.check(t0 + S(499)), None);
        assert_eq!(c.check(t0 + S(500)), Some(Stalled::Idle(S(300))));
        // While a frame is arriving, its own deadline governs instead.
        c.pending(t0 + S(400), 2, None);
        assert_eq!(c.poll_timeout(), Some(t0 + S(430)));
    }
}
