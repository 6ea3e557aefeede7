//! Ending a v2 session: the close handshake (nothing sent before a CLOSE is
//! lost) and the server's go-away.

use super::{Role, Session, SessionState};
use crate::protocol::v2::CloseCode;
use crate::protocol::v2::frame::{CodeReason, Frame};

impl Session {
    /// Starts the close handshake (or refuses the peer during the
    /// handshake). Returns the CLOSE frame to send.
    pub fn close(&mut self, code: CloseCode, reason: impl Into<String>) -> Frame {
        self.state = match self.state {
            SessionState::Open => SessionState::Closing,
            SessionState::Closing => SessionState::Closing,
            _ => SessionState::Closed,
        };
        Frame::Close(CodeReason::new(code, reason))
    }

    /// Acknowledges the peer's CLOSE, once everything before it has been
    /// processed. Returns the CLOSE frame to send; the session is over.
    pub fn ack_close(&mut self) -> Frame {
        self.state = SessionState::Closed;
        Frame::Close(CodeReason::new(CloseCode::NORMAL, "closed"))
    }

    /// Server only: announces shutdown. In-flight work continues; the
    /// client should finish and close. `None` if already announced.
    pub fn go_away(&mut self, reason: impl Into<String>) -> Option<Frame> {
        if self.role != Role::Server || self.going_away || self.state != SessionState::Open {
            return None;
        }
        self.going_away = true;
        Some(Frame::GoAway(CodeReason::new(
            CloseCode::GOING_AWAY,
            reason,
        )))
    }
}
