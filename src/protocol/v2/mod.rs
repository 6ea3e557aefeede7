//! Protocol v2: negotiated, typed, bidirectional. `docs/PROTOCOL.md` is the
//! specification; this module is its implementation, sans-IO.
//!
//! ```text
//!  0         1        2                      6
//! +---------+--------+----------------------+-------------------+
//! | 0x02    | type   | payload length u32 BE | payload           |
//! +---------+--------+----------------------+-------------------+
//! ```

mod close_code;
mod codec;
mod error;
pub mod frame;
mod heartbeat;
mod session;

pub use close_code::CloseCode;
pub use codec::{V2Codec, V2CodecError};
pub use error::{FrameError, SessionError};
pub use frame::{CodeReason, Frame, FrameType, Hello, RequestFrame, ResponseFrame, Welcome};
pub use heartbeat::{Heartbeat, HeartbeatAction, MISSED_HEARTBEATS};
pub use session::{Received, Role, Session, SessionEvent, SessionState};

/// The version byte that starts every v2 frame.
pub const VERSION: u8 = 2;

/// Version, type and the u32 length.
pub const HEADER_LEN: usize = 6;

/// Payload limit a server announces unless configured otherwise.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16 * 1024 * 1024;

/// The smallest limit either side may announce: enough for any handshake
/// or control frame, so negotiation itself can never be refused for size.
pub const MIN_MAX_FRAME_SIZE: u32 = 1024;

/// Longest peer name in a hello or welcome, in bytes.
pub const MAX_NAME_LEN: usize = 64;
