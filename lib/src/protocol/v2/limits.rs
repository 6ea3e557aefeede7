//! The protocol's limits and the rules that check them, in one place.
//!
//! Sessions, codecs and the server's and client's configurations all ask
//! these functions, so a name or a size that one part accepts is never
//! refused by another.

use super::error::SendError;

/// Payload limit a server announces unless configured otherwise.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 16 * 1024 * 1024;

/// The smallest limit either side may announce: enough for any handshake
/// or control frame, so negotiation itself can never be refused for size.
pub const MIN_MAX_FRAME_SIZE: u32 = 1024;

/// Longest peer name in a hello or welcome, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// A name or an announced limit that the protocol does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// Names are 1 to [`MAX_NAME_LEN`] bytes.
    #[error("name must be 1 to {MAX_NAME_LEN} bytes, got {0}")]
    NameLength(usize),
    /// Names label log lines and chat messages, so they must be printable.
    #[error("name must not contain control characters")]
    NameControlCharacter,
    /// Every announced limit must leave room for the control frames.
    #[error("max frame size {0} is below the protocol minimum {MIN_MAX_FRAME_SIZE}")]
    MaxFrameSizeTooSmall(u32),
}

/// Whether `name` may stand in a HELLO or WELCOME.
pub fn check_name(name: &str) -> Result<(), LimitError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(LimitError::NameLength(name.len()));
    }
    if name.chars().any(char::is_control) {
        return Err(LimitError::NameControlCharacter);
    }
    Ok(())
}

/// Whether `size` may be announced as a side's largest accepted payload.
pub fn check_max_frame_size(size: u32) -> Result<(), LimitError> {
    if size < MIN_MAX_FRAME_SIZE {
        return Err(LimitError::MaxFrameSizeTooSmall(size));
    }
    Ok(())
}

/// Whether a payload of `len` bytes may be sent to a peer that accepts at
/// most `peer_max`: the one size check on the way out.
pub fn check_send_size(len: usize, peer_max: u32) -> Result<(), SendError> {
    if len > peer_max as usize {
        return Err(SendError::TooLarge { len, max: peer_max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_printable() {
        assert!(check_name("alice").is_ok());
        assert!(check_name(&"n".repeat(MAX_NAME_LEN)).is_ok());
        assert_eq!(check_name(""), Err(LimitError::NameLength(0)));
        assert_eq!(
            check_name(&"n".repeat(MAX_NAME_LEN + 1)),
            Err(LimitError::NameLength(65))
        );
        assert_eq!(
            check_name("bad\nname"),
            Err(LimitError::NameControlCharacter)
        );
    }

    #[test]
    fn sizes() {
        assert!(check_max_frame_size(MIN_MAX_FRAME_SIZE).is_ok());
        assert!(check_max_frame_size(MIN_MAX_FRAME_SIZE - 1).is_err());
        assert!(check_send_size(10, 10).is_ok());
        assert_eq!(
            check_send_size(11, 10),
            Err(SendError::TooLarge { len: 11, max: 10 })
        );
    }
}
