//! The heartbeat rule of spec section 3.6, for either side: after one
//! silent interval, ping; after three, give the peer up.
//!
//! It only does arithmetic on the instants it is given, so the server's
//! ticker and the client's read timeout both use the same rule, and tests
//! can drive it with made-up times.

use std::time::{Duration, Instant};

/// A peer silent for this many intervals is considered gone.
pub const MISSED_HEARTBEATS: u32 = 3;

/// What the heartbeat asks for when checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatAction {
    /// The peer was heard recently enough: nothing to do.
    Wait,
    /// Silent for an interval: send a PING (its PONG is a sign of life).
    Ping,
    /// Silent for three intervals: close with 1014. Carries the silence.
    GiveUp(Duration),
}

/// When the peer was last heard from, judged against the agreed interval.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    interval: Duration,
    last_heard: Instant,
}

impl Heartbeat {
    /// Starts counting silence from `now`.
    pub fn new(interval: Duration, now: Instant) -> Self {
        Heartbeat {
            interval,
            last_heard: now,
        }
    }

    /// The agreed interval, for timers.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Any bytes from the peer count as a sign of life.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
    }

    /// What to do at `now`.
    pub fn check(&self, now: Instant) -> HeartbeatAction {
        let silent = now.saturating_duration_since(self.last_heard);
        if silent >= self.interval * MISSED_HEARTBEATS {
            HeartbeatAction::GiveUp(silent)
        } else if silent >= self.interval {
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
    fn pings_after_one_interval_and_gives_up_after_three() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut hb = Heartbeat::new(ms(100), t0);
        assert_eq!(hb.check(t0 + ms(99)), HeartbeatAction::Wait);
        assert_eq!(hb.check(t0 + ms(100)), HeartbeatAction::Ping);
        assert_eq!(hb.check(t0 + ms(299)), HeartbeatAction::Ping);
        assert_eq!(hb.check(t0 + ms(300)), HeartbeatAction::GiveUp(ms(300)));
        hb.heard(t0 + ms(250));
        assert_eq!(hb.check(t0 + ms(300)), HeartbeatAction::Wait);
    }
}
