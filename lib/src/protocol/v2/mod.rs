//! Protocol v2: negotiated, typed, bidirectional. `docs/PROTOCOL.md` is the
//! specification; this module is its implementation, sans-IO.
//!
//! ```text
//!  0         1        2                      6
//! +---------+--------+----------------------+-------------------+
//! | 0x02    | type   | payload length u32 BE | payload           |
//! +---------+--------+----------------------+-------------------+
//! ```

mod app_protocol;
mod call_limits;
mod close_code;
mod codec;
mod error;
pub(crate) mod frame;
mod frame_type;
pub(crate) mod limits;
mod resume;
mod session;
pub(crate) mod session_image;
mod state;

pub use app_protocol::{AppChoice, AppProtocol, AppProtocolError, Encoding};
pub use call_limits::{CALLS_VERSION, CallLimits};
pub use close_code::CloseCode;
pub(crate) use codec::claimed_frame_len;
pub use codec::{V2Codec, V2CodecError};
pub use error::{FrameError, SendError, SessionError};
pub use frame::{
    CLIENT_STREAMS, CallFrame, CallStatus, CodeReason, Extension, Frame, FrameSink, FrameType,
    Hello, ItemFrame, MAX_METADATA_BYTES, MAX_METADATA_ENTRIES, MAX_METADATA_KEY, Metadata,
    MetadataError, RequestFrame, ResponseFrame, SERVER_STREAMS, StatusFrame, Welcome,
};
pub use limits::{DEFAULT_MAX_FRAME_SIZE, LimitError, MAX_NAME_LEN, MIN_MAX_FRAME_SIZE};
pub use resume::{
    RESUME_ID_LEN, ResumeAsk, ResumeDataError, ResumeGrant, ResumeRefusal, ResumeStatus,
    ResumeTicket, ResumeToken, SessionId,
};
pub use session::{
    AUTHENTICATION_FAILED, Expired, MISSED_HEARTBEATS, ResumeOffer, ResumeSettings, Role, Session,
    SessionConfig, SessionEvent, SessionState, TokenCheck,
};

/// The version byte that starts every v2 frame.
pub const VERSION: u8 = 2;

/// Version, type and the u32 length.
pub const HEADER_LEN: usize = 6;
