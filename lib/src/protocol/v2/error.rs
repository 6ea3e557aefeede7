//! The errors of the v2 core, split by who caused them, as h2 does: the
//! peer's bytes ([`FrameError`]) or its conduct ([`SessionError`]) break the
//! protocol and end the connection with a close code; a [`SendError`] is
//! our own side refusing a send, which leaves the connection as it was.

use super::close_code::CloseCode;
use super::frame_type::FrameType;
use super::state::{Role, SessionState};
use crate::protocol::InvalidUtf8;

/// Why bytes from a peer are not a valid v2 frame. Each maps to the close
/// code the receiver sends before closing. Caused by the peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// A frame did not start with the version byte 2.
    #[error("wrong version byte {found} in a v2 stream")]
    WrongVersion {
        /// What was found instead.
        found: u8,
    },
    /// The type byte names no v2 frame.
    #[error("unknown frame type 0x{0:02x}")]
    UnknownType(u8),
    /// The announced payload exceeds what we accept. Detected from the
    /// header alone, before any of the payload is buffered.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Announced payload length.
        len: u64,
        /// Our limit.
        max: u32,
    },
    /// The payload is shorter than its fields, or has bytes left over.
    #[error("malformed {frame_type:?} frame: {what}")]
    Malformed {
        /// Which frame.
        frame_type: FrameType,
        /// What was wrong with it.
        what: &'static str,
    },
    /// Text that must be UTF-8 was not. The offset counts from the start
    /// of the field named (spec 3.8), not of the frame.
    #[error(
        "{frame_type:?} frame: the {field} is not valid UTF-8 (first invalid byte at offset {} of the {field})",
        detail.valid_up_to
    )]
    InvalidUtf8 {
        /// Which frame.
        frame_type: FrameType,
        /// Which of its fields: `text`, `name`, `server name`, `reason`.
        field: &'static str,
        /// Where it went wrong.
        detail: InvalidUtf8,
    },
    /// The stream ended inside a frame.
    #[error("truncated frame: stream ended with {buffered} of {expected} bytes of a frame")]
    Truncated {
        /// Bytes of the frame that arrived.
        buffered: usize,
        /// Bytes it needed.
        expected: usize,
    },
}

impl FrameError {
    /// The close code that tells the peer what it did wrong.
    pub fn close_code(&self) -> CloseCode {
        match self {
            FrameError::TooLarge { .. } => CloseCode::FRAME_TOO_LARGE,
            // A name that is not UTF-8 is a bad name: the handshake is
            // refused, as for any other bad name (spec 3.3).
            FrameError::InvalidUtf8 {
                frame_type: FrameType::Hello | FrameType::Welcome,
                ..
            } => CloseCode::HANDSHAKE_REFUSED,
            FrameError::InvalidUtf8 { .. } => CloseCode::INVALID_DATA,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// The peer broke the protocol: a frame that is well-formed but not allowed
/// at this point of the session, a handshake we refuse, or silence past a
/// deadline. The session has already queued a CLOSE with this code; the
/// connection is over.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
#[non_exhaustive]
pub struct SessionError {
    /// The code to close with.
    pub code: CloseCode,
    /// A reason for the peer and the log.
    pub reason: String,
}

impl SessionError {
    /// A violation to close with `code`, saying `reason`.
    pub fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        SessionError {
            code,
            reason: reason.into(),
        }
    }
}

/// Our side refused to send a frame: the connection is unharmed (unless it
/// was already ending) and nothing was queued. Caused locally, by the
/// caller or by the state the session is in, never by the peer's bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The payload is larger than the peer announced it accepts.
    #[error("frame of {len} bytes exceeds the peer's limit of {max}")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// The peer's announced limit.
        max: u32,
    },
    /// The server announced its shutdown: no new requests (client side).
    #[error("the server is going away: no new requests")]
    GoingAway,
    /// A close handshake has begun: only answers to what the peer sent
    /// before its CLOSE may still go out.
    #[error("the connection is closing")]
    Closing,
    /// The session is over.
    #[error("the connection is closed")]
    Closed,
    /// This frame type is never sent by this side in this state (a server
    /// sending a request, anything but a HELLO before the handshake, …).
    #[error("a {role:?} cannot send {frame_type:?} in state {state:?}")]
    NotAllowed {
        /// The frame refused.
        frame_type: FrameType,
        /// Our side.
        role: Role,
        /// Where the session is.
        state: SessionState,
    },
    /// The server does not speak calls (spec 3.13): it did not answer the
    /// calls extension in its WELCOME, or we did not ask.
    #[error("the server does not speak calls (spec 3.13)")]
    CallsNotNegotiated,
    /// No call with this id is in flight (it has ended).
    #[error("call {id} is not in flight")]
    NoSuchCall {
        /// The call.
        id: u32,
    },
    /// A call with this id is already in flight.
    #[error("call {id} is already in flight")]
    CallInFlight {
        /// The call.
        id: u32,
    },
    /// As many calls as the server allows are in flight.
    #[error("{max} calls in flight, as many as the server allows")]
    TooManyCalls {
        /// The server's limit.
        max: u16,
    },
    /// This side's stream of the call is ended or was never open.
    #[error("the stream of call {id} is not open")]
    StreamEnded {
        /// The call.
        id: u32,
    },
    /// The other side has granted no more items for this stream: wait for
    /// its CREDIT.
    #[error("no credit left for call {id}'s stream")]
    NoCredit {
        /// The call.
        id: u32,
    },
}
