//! The heartbeat rule of spec section 3.6, for either side: after one
//! silent interval, ping; after three, give the peer up.
//!
//! It is plain arithmetic on the instants it is given: the session asks it
//! for its next deadline and what to do when that deadline passes, so both
//! server and client follow one rule and tests drive it with made-up times.

use std::time::{Duration, Instant};

/// A peer silent for this many intervals is considered gone.
pub const MISSED_HEARTBEATS: u32 = 3;

/// What the heartbeat asks for when its deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeartbeatAction {
    /// The peer was heard recently enough: nothing to do.
    Wait,
    /// Silent for another interval: send a PING (any answer is a sign of
    /// life).
    Ping,
    /// Silent for three intervals: close with 1014. Carries the silence.
    GiveUp(Duration),
}

/// When the peer was last heard from, judged against the agreed interval.
#[derive(Debug, Clone)]
pub(crate) struct Heartbeat {
    interval: Duration,
    last_heard: Instant,
    /// Pings sent since the peer was last heard.
    pings: u32,
}

impl Heartbeat {
    /// Starts counting silence from `now`.
    pub(crate) fn new(interval: Duration, now: Instant) -> Self {
        Heartbeat {
            interval,
            last_heard: now,
            pings: 0,
        }
    }

    /// The agreed interval.
    pub(crate) fn interval(&self) -> Duration {
        self.interval
    }

    /// Any bytes from the peer count as a sign of life.
    #[inline]
    pub(crate) fn heard(&mut self, now: Instant) {
        self.last_heard = self.last_heard.max(now);
        self.pings = 0;
    }

    /// When something is next due: the next ping, or giving up.
    pub(crate) fn deadline(&self) -> Instant {
        self.last_heard + self.interval * (self.pings + 1)
    }

    /// What to do at `now`.
    pub(crate) fn on_timeout(&mut self, now: Instant) -> HeartbeatAction {
        let silent = now.saturating_duration_since(self.last_heard);
        if silent >= self.interval * MISSED_HEARTBEATS {
            HeartbeatAction::GiveUp(silent)
        } else if now >= self.deadline() {
            self.pings += 1;
            HeartbeatAction::Ping
        } else {
            HeartbeatAction::Wait
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_after_one_and_two_intervals_and_gives_up_after_three() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut hb = Heartbeat::new(ms(100), t0);
        assert_eq!(hb.deadline(), t0 + ms(100));
        assert_eq!(hb.on_timeout(t0 + ms(99)), HeartbeatAction::Wait);
        assert_eq!(hb.on_timeout(t0 + ms(100)), HeartbeatAction::Ping);
        assert_eq!(hb.deadline(), t0 + ms(200));
        assert_eq!(hb.on_timeout(t0 + ms(150)), HeartbeatAction::Wait);
        assert_eq!(hb.on_timeout(t0 + ms(200)), HeartbeatAction::Ping);
        assert_eq!(hb.deadline(), t0 + ms(300));
        assert_eq!(
            hb.on_timeout(t0 + ms(300)),
            HeartbeatAction::GiveUp(ms(300))
        );
        hb.heard(t0 + ms(250));
        assert_eq!(hb.deadline(), t0 + ms(350));
        assert_eq!(hb.on_timeout(t0 + ms(300)), HeartbeatAction::Wait);
    }
}
