//! The session's clock: the handshake deadline, each frame's deadline (a
//! trickle cannot hold a connection), heartbeats and the go-away drain, driven as quinn-proto drives its connection. The driver
//! asks [`Session::poll_timeout`] when it must next wake, sleeps until then
//! (or until bytes arrive), and calls [`Session::handle_timeout`]. No
//! timer lives anywhere else, so tests run them on a made-up clock.

use crate::protocol::v2::frame::FrameSink;
use std::time::{Duration, Instant};

use super::heartbeat::{Heartbeat, HeartbeatAction};
use super::{Role, Session, SessionState};
use crate::protocol::v2::frame::Frame;
use crate::protocol::v2::{CloseCode, SessionError};
use crate::protocol::{StallClock, Stalled};

/// The deadlines a session may be waiting for.
#[derive(Debug, Clone)]
pub(super) struct Timers {
    /// The first frame's deadline (the handshake's), and each frame's.
    pub(super) stall: StallClock,
    /// Once open, when heartbeats are on.
    pub(super) heartbeat: Option<Heartbeat>,
    /// After a GOAWAY: when the server closes by itself.
    pub(super) drain_deadline: Option<Instant>,
    /// The nonce of the last PING sent.
    pub(super) last_ping: u64,
    /// When a complete frame was last counted: a batch of frames read at
    /// one instant is counted once.
    pub(super) progress_at: Option<Instant>,
}

/// A deadline that ended the session. Its CLOSE has been written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expired {
    /// The peer did not complete the handshake in time (its fault).
    Handshake(SessionError),
    /// Nothing was heard from the peer for three heartbeat intervals (its
    /// fault); carries how long it was silent.
    Heartbeat(Duration),
    /// A frame begun did not arrive whole in time (its fault); closed with
    /// 1008.
    Stalled(Stalled),
    /// The go-away drain time is over: the server closed (nobody's fault).
    Drained,
}

impl Session {
    /// When the session next needs [`Session::handle_timeout`], if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == SessionState::Closed {
            return None;
        }
        let t = &self.timers;
        // While a frame is arriving, its own deadline judges the peer, not
        // the heartbeat: a large upload at a fair rate is no silence.
        let heartbeat = match t.stall.frame_in_progress() {
            true => None,
            false => t.heartbeat.as_ref().map(Heartbeat::deadline),
        };
        [
            t.stall.poll_timeout(),
            heartbeat,
            t.drain_deadline,
            self.ack_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A complete frame arrived: a sign of life. (Bytes alone are not: a
    /// peer that trickles would stay alive forever.)
    #[inline]
    pub(super) fn frame_received(&mut self, now: Instant) {
        if self.timers.progress_at == Some(now) {
            return;
        }
        self.timers.progress_at = Some(now);
        self.timers.stall.frame_received(now);
        if let Some(hb) = &mut self.timers.heartbeat {
            hb.heard(now);
        }
    }

    /// What the driver sees after handing over every complete frame:
    /// `buffered` bytes of an unfinished frame, which claims `claimed`
    /// bytes in all once its header is known. From its first byte, the
    /// frame has the frame timeout plus its length at the minimum rate.
    pub fn pending(&mut self, now: Instant, buffered: usize, claimed: Option<usize>) {
        // The next complete frame is progress again, whatever its instant.
        self.timers.progress_at = None;
        self.timers.stall.pending(now, buffered, claimed);
    }

    /// Applies the clock at `now`: writes a PING to `out` when one is due,
    /// or ends the session (writing its CLOSE) and says why.
    pub fn handle_timeout(&mut self, now: Instant, out: &mut impl FrameSink) -> Option<Expired> {
        if self.state == SessionState::Closed {
            return None;
        }
        match self.timers.stall.check(now) {
            Some(Stalled::FirstFrame(waited)) if self.state == SessionState::Handshake => {
                let expected = match self.role {
                    Role::Server => "HELLO",
                    Role::Client => "WELCOME",
                };
                // A deadline, not a malformed frame: 1008, as for any
                // frame begun and not finished in time (spec 3.6).
                let e = SessionError::new(
                    CloseCode::POLICY_VIOLATION,
                    format!("no {expected} within {waited:?}"),
                );
                return Some(Expired::Handshake(self.fail(e, out)));
            }
            Some(stalled @ Stalled::Trickle { .. }) => {
                let e = SessionError::new(CloseCode::POLICY_VIOLATION, stalled.to_string());
                self.fail(e, out);
                return Some(Expired::Stalled(stalled));
            }
            _ => {}
        }
        if let Some(deadline) = self.timers.drain_deadline
            && now >= deadline
        {
            self.timers.drain_deadline = None;
            if self.state == SessionState::Open {
                Frame::Close(crate::protocol::v2::CodeReason::new(
                    CloseCode::GOING_AWAY,
                    "server shut down",
                ))
                .encode(out);
            }
            self.state = SessionState::Closed;
            return Some(Expired::Drained);
        }
        self.ack_if_due(now, out);
        let action = match &mut self.timers.heartbeat {
            Some(hb) if now >= hb.deadline() && !self.timers.stall.frame_in_progress() => {
                hb.on_timeout(now)
            }
            _ => HeartbeatAction::Wait,
        };
        match action {
            HeartbeatAction::Wait => None,
            HeartbeatAction::Ping => {
                // After our CLOSE we send nothing more; silence still counts.
                if self.state == SessionState::Open {
                    self.timers.last_ping += 1;
                    Frame::Ping(self.timers.last_ping).encode(out);
                }
                None
            }
            HeartbeatAction::GiveUp(silent) => {
                let e = SessionError::new(
                    CloseCode::HEARTBEAT_TIMEOUT,
                    format!("nothing heard for {silent:?}"),
                );
                self.fail(e, out);
                Some(Expired::Heartbeat(silent))
            }
        }
    }
}
