use crate::protocol::InvalidUtf8;

/// Why bytes from a peer are not a valid v1 stream.
///
/// Every variant is the peer's fault and ends only that peer's connection;
/// the variants carry enough detail for a useful log line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The first byte of a frame was not `1`.
    #[error("wrong version byte {found} (expected 1)")]
    WrongVersion {
        /// The byte that was found where the version belongs.
        found: u8,
    },
    /// The content bytes were not UTF-8.
    #[error("invalid UTF-8 in a {len}-byte message: {detail}")]
    InvalidUtf8 {
        /// Content length as announced in the header.
        len: usize,
        /// Where the content stopped being UTF-8.
        detail: InvalidUtf8,
    },
    /// The stream ended in the middle of a frame.
    #[error("truncated frame: stream ended with {buffered} of {expected} bytes of a frame")]
    Truncated {
        /// Bytes of the unfinished frame that did arrive.
        buffered: usize,
        /// Bytes that frame needed (header plus content, or just the header
        /// when even the length had not arrived).
        expected: usize,
    },
}

/// Why a message cannot be put on the wire as v1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// v1 lengths are 16 bits: anything longer would wrap and corrupt the stream.
    #[error("message of {len} bytes is longer than v1 allows ({max} bytes)")]
    ContentTooLong {
        /// The length that was asked for.
        len: usize,
        /// The largest v1 allows.
        max: usize,
    },
}
