//! Protocol v1: the tutorial's wire format, kept byte-compatible forever.
//!
//! ```text
//!  0        1        2        3 ...
//! +--------+--------+--------+-----------------------------+
//! | 0x01   | length (u16 BE) | content: `length` bytes UTF-8|
//! +--------+--------+--------+-----------------------------+
//! ```
//!
//! A message whose content is exactly `exit` tells the server the client is
//! done, and the server closes the connection. v1 has no other control
//! messages, no server-to-client traffic and no handshake; everything richer
//! lives in v2.

mod codec;
mod decode;
mod encode;
mod error;
mod message_reader;

pub use codec::{CodecError, V1Codec};
pub(crate) use decode::claimed_frame_len;
pub use decode::decode_message;
pub use encode::encode_message;
pub use error::{DecodeError, EncodeError};
pub use message_reader::MessageReader;

/// The version byte that starts every v1 frame.
pub const VERSION: u8 = 1;

/// Version byte plus the two length bytes.
pub const HEADER_LEN: usize = 3;

/// The largest content a u16 length can describe. Longer content is an
/// encoding error, never a silently wrapped length.
pub const MAX_CONTENT_LEN: usize = u16::MAX as usize;

/// The content by which a v1 client says it is done.
pub const EXIT: &str = "exit";

/// Whether `message` is the v1 end-of-session message.
pub fn is_exit(message: &super::Message) -> bool {
    message.as_bytes() == EXIT.as_bytes()
}
