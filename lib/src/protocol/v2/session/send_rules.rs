//! The way out: every frame the application sends is checked here against
//! the state and the peer's limit, and only then encoded. Spec section 3.10
//! (nothing new after a CLOSE) and the peer's size limit are enforced in
//! this one place, for server and client alike.

use crate::protocol::v2::frame::FrameSink;

use super::{Role, Session, SessionState};
use crate::protocol::v2::SendError;
use crate::protocol::v2::frame::Frame;
use crate::protocol::v2::limits::check_send_size;

impl Session {
    /// Whether we may send `frame` now: the state allows its type and it
    /// fits the peer's limit. A refusal leaves the session as it was.
    pub fn check_send(&self, frame: &Frame) -> Result<(), SendError> {
        use SessionState::*;
        let not_allowed = || SendError::NotAllowed {
            frame_type: frame.frame_type(),
            role: self.role,
            state: self.state,
        };
        if frame.frame_type().is_call_frame() {
            return self.check_call_send(frame);
        }
        match (self.state, frame) {
            (Closed, _) => return Err(SendError::Closed),
            (Handshake, _) => return Err(not_allowed()),
            // We sent CLOSE: nothing more, whatever it is.
            (Closing, _) => return Err(SendError::Closing),
            // Answers to what the peer sent before its CLOSE still go out.
            (PeerClosing, Frame::Response(_)) if self.role == Role::Server => {}
            (PeerClosing, _) => return Err(SendError::Closing),
            (Open, Frame::Request(_)) if self.role == Role::Client => {
                if self.going_away {
                    return Err(SendError::GoingAway);
                }
            }
            (Open, Frame::Response(_)) if self.role == Role::Server => {}
            (Open, Frame::Text(_) | Frame::Binary(_) | Frame::Ping(_) | Frame::Error(_)) => {}
            // Handshake, close, go-away and pong frames have their own
            // methods, which keep the state in step with them.
            (Open, _) => return Err(not_allowed()),
        }
        check_send_size(frame.payload_len(), self.peer_max_frame_size)
    }

    /// The rules for the frames of calls (spec 3.13): the state, then the
    /// call's own (in flight, stream open, credit left), then the size.
    fn check_call_send(&self, frame: &Frame) -> Result<(), SendError> {
        use SessionState::*;
        let calls = self.calls.as_ref().ok_or(SendError::CallsNotNegotiated);
        match (self.state, frame) {
            (Closed, _) => return Err(SendError::Closed),
            (Handshake, _) => {
                return Err(SendError::NotAllowed {
                    frame_type: frame.frame_type(),
                    role: self.role,
                    state: self.state,
                });
            }
            (Closing, _) => return Err(SendError::Closing),
            // What answers calls received before the peer's CLOSE.
            (PeerClosing, Frame::Item(_) | Frame::Status(_)) if self.role == Role::Server => {}
            (PeerClosing, _) => return Err(SendError::Closing),
            (Open, Frame::Call(_)) if self.going_away => return Err(SendError::GoingAway),
            (Open, _) => {}
        }
        calls?.check_send(frame)?;
        check_send_size(frame.payload_len(), self.peer_max_frame_size)
    }

    /// Checks `frame` (see [`Session::check_send`]) and, if allowed,
    /// encodes it into `out`; nothing is written when it is refused.
    pub fn send(&mut self, frame: &Frame, out: &mut impl FrameSink) -> Result<(), SendError> {
        self.check_send(frame)?;
        self.check_detached_send()?;
        self.encode_sent(frame, out);
        if let Some(calls) = &mut self.calls
            && frame.frame_type().is_call_frame()
        {
            calls.sent(frame);
        }
        Ok(())
    }
}
