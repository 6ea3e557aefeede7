//! Ending a v2 session: the close handshake (nothing sent before a CLOSE is
//! lost), the server's go-away, and closing because the peer broke a rule.

use crate::protocol::v2::frame::FrameSink;
use std::time::Instant;

use super::{Role, Session, SessionState};
use crate::protocol::v2::FrameError;
use crate::protocol::v2::frame::{CodeReason, Frame};
use crate::protocol::v2::{CloseCode, SendError, SessionError};

impl Session {
    /// Starts the close handshake: writes our CLOSE to `out`. From now on
    /// we send nothing more; the session ends when the peer's CLOSE
    /// arrives. During the handshake this refuses the peer and ends at once.
    pub fn close(
        &mut self,
        code: CloseCode,
        reason: impl Into<String>,
        out: &mut impl FrameSink,
    ) -> Result<(), SendError> {
        self.state = match self.state {
            SessionState::Open => SessionState::Closing,
            SessionState::Handshake => SessionState::Closed,
            SessionState::PeerClosing => return Err(SendError::Closing),
            SessionState::Closing | SessionState::Closed => return Err(SendError::Closed),
        };
        Frame::Close(CodeReason::new(code, reason)).encode(out);
        Ok(())
    }

    /// Acknowledges the peer's CLOSE, once everything before it has been
    /// processed: writes our CLOSE to `out`; the session is over.
    pub fn ack_close(&mut self, out: &mut impl FrameSink) -> Result<(), SendError> {
        match self.state {
            SessionState::PeerClosing => {
                self.state = SessionState::Closed;
                Frame::Close(CodeReason::new(CloseCode::NORMAL, "closed")).encode(out);
                Ok(())
            }
            SessionState::Closed => Err(SendError::Closed),
            state => Err(SendError::NotAllowed {
                frame_type: crate::protocol::v2::FrameType::Close,
                role: self.role,
                state,
            }),
        }
    }

    /// Server only: announces shutdown with a GOAWAY written to `out`.
    /// Work in flight continues; the client should finish and close. If it
    /// has not by the drain deadline, [`Session::handle_timeout`] closes.
    /// A second call writes nothing.
    pub fn go_away(
        &mut self,
        reason: impl Into<String>,
        now: Instant,
        out: &mut impl FrameSink,
    ) -> Result<(), SendError> {
        if self.role != Role::Server {
            return Err(SendError::NotAllowed {
                frame_type: crate::protocol::v2::FrameType::GoAway,
                role: self.role,
                state: self.state,
            });
        }
        if self.going_away {
            return Ok(());
        }
        match self.state {
            SessionState::Open => {}
            SessionState::Handshake => {
                // Nobody to announce it to yet: refuse the handshake.
                return self.close(CloseCode::GOING_AWAY, reason, out);
            }
            SessionState::Closed | SessionState::Closing => return Err(SendError::Closed),
            SessionState::PeerClosing => return Err(SendError::Closing),
        }
        self.going_away = true;
        self.timers.drain_deadline = Some(now + self.local.drain_timeout);
        Frame::GoAway(CodeReason::new(CloseCode::GOING_AWAY, reason)).encode(out);
        Ok(())
    }

    /// The peer sent bytes that are no v2 frame: tell it why with a CLOSE
    /// in `out` and end the session. Returns the error for the caller's log.
    pub fn receive_invalid(&mut self, e: &FrameError, out: &mut impl FrameSink) -> SessionError {
        self.fail(SessionError::new(e.close_code(), e.to_string()), out)
    }

    /// Ends the session because the peer broke a rule: a CLOSE with the
    /// code and reason goes out (unless ours already has), nothing more.
    #[cold]
    pub(super) fn fail(&mut self, e: SessionError, out: &mut impl FrameSink) -> SessionError {
        if !matches!(self.state, SessionState::Closed | SessionState::Closing) {
            Frame::Close(CodeReason::new(e.code, e.reason.clone())).encode(out);
        }
        self.state = SessionState::Closed;
        e
    }
}
