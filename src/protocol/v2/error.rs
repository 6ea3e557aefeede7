use super::{CloseCode, FrameType};
use crate::protocol::InvalidUtf8;

/// Why bytes from a peer are not a valid v2 frame. Each maps to the close
/// code the receiver sends before closing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// Text that must be UTF-8 was not.
    #[error("{frame_type:?} frame: {detail}")]
    InvalidUtf8 {
        /// Which frame.
        frame_type: FrameType,
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
            FrameError::InvalidUtf8 { .. } => CloseCode::INVALID_DATA,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

/// A frame that is well-formed but not allowed at this point of the
/// session, or a handshake that was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct SessionError {
    /// The code to close with.
    pub code: CloseCode,
    /// A reason for the peer and the log.
    pub reason: String,
}

impl SessionError {
    pub(crate) fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        SessionError {
            code,
            reason: reason.into(),
        }
    }
}
