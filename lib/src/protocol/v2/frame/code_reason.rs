//! ERROR (0x09), CLOSE (0x0a) and GOAWAY (0x0b) share one layout:
//!
//! ```text
//! +-------------+---------------------------+
//! | code u16 BE | reason, UTF-8, rest of frame |
//! +-------------+---------------------------+
//! ```
//! The code is for programs, the reason for people; the reason may be empty.

use bytes::{BufMut, BytesMut};

use super::fields::Fields;
use crate::protocol::v2::{CloseCode, FrameError};

/// A code and a human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeReason {
    /// What happened, for programs.
    pub code: CloseCode,
    /// What happened, for people.
    pub reason: String,
}

impl CodeReason {
    /// Builds one from a code and reason.
    pub fn new(code: CloseCode, reason: impl Into<String>) -> Self {
        CodeReason {
            code,
            reason: reason.into(),
        }
    }

    pub(super) fn payload_len(&self) -> usize {
        2 + self.reason.len()
    }

    pub(super) fn encode(&self, dst: &mut BytesMut) {
        dst.put_u16(self.code.0);
        dst.put_slice(self.reason.as_bytes());
    }

    pub(super) fn decode(f: &mut Fields) -> Result<Self, FrameError> {
        let code = CloseCode(f.u16("code")?);
        let reason = f.rest_utf8("reason")?.as_str().to_owned();
        Ok(CodeReason { code, reason })
    }
}

impl std::fmt::Display for CodeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.reason.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{}: {}", self.code, self.reason)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::round_trip;
    use super::super::{Frame, FrameType};
    use super::*;
    use bytes::Bytes;

    #[test]
    fn close_error_and_go_away_round_trip() {
        let c = CodeReason::new(CloseCode::NORMAL, "bye");
        for f in [
            Frame::Close(c.clone()),
            Frame::Error(CodeReason::new(CloseCode::REQUEST_FAILED, "")),
            Frame::GoAway(CodeReason::new(CloseCode::GOING_AWAY, "restart")),
        ] {
            assert_eq!(round_trip(&f), f);
        }
    }

    #[test]
    fn the_spec_close_bytes() {
        let mut b = BytesMut::new();
        Frame::Close(CodeReason::new(CloseCode::NORMAL, "bye")).encode(&mut b);
        assert_eq!(&b[..], b"\x02\x0a\x00\x00\x00\x05\x03\xe8bye");
    }

    #[test]
    fn a_missing_code_is_malformed() {
        assert!(Frame::decode_payload(FrameType::Close, Bytes::from_static(&[3])).is_err());
    }
}
