//! The type byte of a v2 frame: the one thing both the frames and the
//! errors about them name.

/// The type byte of a v2 frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum FrameType {
    /// Client's opening frame.
    Hello = 0x01,
    /// Server's answer to a hello.
    Welcome = 0x02,
    /// UTF-8 text.
    Text = 0x03,
    /// Arbitrary bytes.
    Binary = 0x04,
    /// A request that expects a response with the same id.
    Request = 0x05,
    /// The answer to a request.
    Response = 0x06,
    /// Heartbeat probe.
    Ping = 0x07,
    /// Heartbeat answer.
    Pong = 0x08,
    /// A non-fatal error report.
    Error = 0x09,
    /// Close handshake.
    Close = 0x0a,
    /// The server is shutting down.
    GoAway = 0x0b,
    /// A call (calls extension, spec 3.13).
    Call = 0x0c,
    /// One item of a call's stream.
    Item = 0x0d,
    /// More items granted to a call's stream.
    Credit = 0x0e,
    /// The client's stream of a call is done.
    End = 0x0f,
    /// The client abandons a call.
    Cancel = 0x10,
    /// A call's end.
    Status = 0x11,
    /// How many counted frames of a resumable session have arrived
    /// (spec 3.14).
    Ack = 0x12,
}

impl FrameType {
    /// Whether this type belongs to the calls extension (spec 3.13), which
    /// a session accepts only once both sides agreed to it.
    pub fn is_call_frame(self) -> bool {
        (FrameType::Call as u8..=FrameType::Status as u8).contains(&(self as u8))
    }

    /// Whether a resumable session counts this frame (spec 3.14): what the
    /// application sent, which a resume must deliver exactly once. The
    /// handshake, heartbeats, acknowledgements, CLOSE and GOAWAY belong to
    /// one connection and are not counted.
    pub fn is_counted(self) -> bool {
        !matches!(
            self,
            FrameType::Hello
                | FrameType::Welcome
                | FrameType::Ping
                | FrameType::Pong
                | FrameType::Close
                | FrameType::GoAway
                | FrameType::Ack
        )
    }

    /// The type for a type byte, if v2 defines one.
    pub fn from_byte(b: u8) -> Option<FrameType> {
        use FrameType::*;
        Some(match b {
            0x01 => Hello,
            0x02 => Welcome,
            0x03 => Text,
            0x04 => Binary,
            0x05 => Request,
            0x06 => Response,
            0x07 => Ping,
            0x08 => Pong,
            0x09 => Error,
            0x0a => Close,
            0x0b => GoAway,
            0x0c => Call,
            0x0d => Item,
            0x0e => Credit,
            0x0f => End,
            0x10 => Cancel,
            0x11 => Status,
            0x12 => Ack,
            _ => return None,
        })
    }
}
