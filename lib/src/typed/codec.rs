//! One value in the negotiated encoding: MessagePack with named fields (so
//! a field added with `#[serde(default)]` is read by old and new peers
//! alike), or postcard.

use crate::protocol::v2::Encoding;
use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The first allocation for an encoded message, in bytes.
const TYPICAL_MESSAGE: usize = 128;

/// A payload that is not a value of the expected type, or a value that
/// cannot be encoded. Its text says what did not match (`unknown variant
/// "Delete"`, `missing field "key"`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// Encodes `value` in `encoding`.
pub fn encode<T: Serialize>(value: &T, encoding: Encoding) -> Result<Bytes, DecodeError> {
    // Room for a typical message up front: growing from nothing would
    // reallocate several times for every small message.
    let mut bytes = Vec::with_capacity(TYPICAL_MESSAGE);
    match encoding {
        Encoding::MessagePack => rmp_serde::encode::write_named(&mut bytes, value)
            .map_err(|e| DecodeError(e.to_string()))?,
        Encoding::Postcard => {
            bytes = postcard::to_extend(value, bytes).map_err(|e| DecodeError(e.to_string()))?
        }
    }
    Ok(Bytes::from(bytes))
}

/// Decodes one `T` from `bytes`, which must hold exactly one.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], encoding: Encoding) -> Result<T, DecodeError> {
    match encoding {
        Encoding::MessagePack => {
            rmp_serde::from_slice(bytes).map_err(|e| DecodeError(e.to_string()))
        }
        Encoding::Postcard => postcard::from_bytes(bytes).map_err(|e| DecodeError(e.to_string())),
    }
}
