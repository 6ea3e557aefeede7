use std::fmt;

/// Why a connection is closed, or what an error frame is about.
///
/// Numbers follow WebSocket's close codes where the meaning is the same, so
/// they are familiar in logs; the set is open-ended and unknown codes are
/// shown as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// The session is over and everything was processed.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// The server is shutting down (also the code of a go-away frame).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// A frame broke the protocol: unknown type, bad layout, wrong state.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// A text frame or reason was not UTF-8.
    pub const INVALID_DATA: CloseCode = CloseCode(1003);
    /// The peer broke a policy of the receiver rather than the protocol:
    /// too slow to finish a frame, too many connections from its address,
    /// not authorised.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// A frame was larger than the receiver announced it accepts.
    pub const FRAME_TOO_LARGE: CloseCode = CloseCode(1009);
    /// The handshake was refused; the reason says why.
    pub const HANDSHAKE_REFUSED: CloseCode = CloseCode(1010);
    /// The receiver failed internally; not the peer's fault.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// The peer did not read fast enough and its outbound queue overflowed.
    /// Our server drops such a connection without sending this (the peer is
    /// not reading); the code names the reason in logs.
    pub const SLOW_CONSUMER: CloseCode = CloseCode(1013);
    /// Nothing was heard from the peer for three heartbeat intervals.
    pub const HEARTBEAT_TIMEOUT: CloseCode = CloseCode(1014);
    /// A request could not be answered (in error frames only).
    pub const REQUEST_FAILED: CloseCode = CloseCode(1015);
    /// The server is at its connection limit: try again later. Sent
    /// instead of a WELCOME.
    pub const SERVER_FULL: CloseCode = CloseCode(1016);

    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::NORMAL => "normal",
            Self::GOING_AWAY => "going away",
            Self::PROTOCOL_ERROR => "protocol error",
            Self::INVALID_DATA => "invalid data",
            Self::POLICY_VIOLATION => "policy violation",
            Self::FRAME_TOO_LARGE => "frame too large",
            Self::HANDSHAKE_REFUSED => "handshake refused",
            Self::INTERNAL_ERROR => "internal error",
            Self::SLOW_CONSUMER => "slow consumer",
            Self::HEARTBEAT_TIMEOUT => "heartbeat timeout",
            Self::REQUEST_FAILED => "request failed",
            Self::SERVER_FULL => "server full",
            _ => "unknown",
        }
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.0, self.name())
    }
}
