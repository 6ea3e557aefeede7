//! One value in the negotiated encoding: MessagePack with named fields (so
//! a field added with `#[serde(default)]` is read by old and new peers
//! alike), or postcard.

use crate::protocol::v2::Encoding;
use bytes::{BufMut, Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The first allocation for an encoded message, in bytes.
const TYPICAL_MESSAGE: usize = 128;

/// A payload that is not a value of the expected type, or a value that
/// cannot be encoded. Its text says what did not match, in serde's words
/// (``unknown variant `Delete` ``, ``missing field `key` ``).
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

/// The allocation that a run of small encoded values shares, in bytes.
const SHARED_CHUNK: usize = 16 * 1024;

/// Encodes `value` at the end of `buf` and splits it off: the values of a
/// stream share one allocation between them (freed once the last is
/// sent), where [`encode`] makes one, and a `Bytes` of it another, each.
pub(crate) fn encode_split<T: Serialize>(
    value: &T,
    encoding: Encoding,
    buf: &mut BytesMut,
) -> Result<Bytes, DecodeError> {
    if buf.capacity() - buf.len() < TYPICAL_MESSAGE {
        buf.reserve(SHARED_CHUNK);
    }
    let encoded = match encoding {
        Encoding::MessagePack => rmp_serde::encode::write_named(&mut (&mut *buf).writer(), value)
            .map_err(|e| DecodeError(e.to_string())),
        Encoding::Postcard => postcard::to_io(value, (&mut *buf).writer())
            .map(|_| ())
            .map_err(|e| DecodeError(e.to_string())),
    };
    match encoded {
        Ok(()) => Ok(buf.split().freeze()),
        Err(e) => {
            buf.clear();
            Err(e)
        }
    }
}

/// Decodes one `T` from `bytes`, which must hold exactly one.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], encoding: Encoding) -> Result<T, DecodeError> {
    decode_seed(std::marker::PhantomData::<T>, bytes, encoding)
}

/// Decodes one value from `bytes` with `seed` (a type, or a schema that
/// says what to read): exactly one, bytes after it refused.
pub(crate) fn decode_seed<'de, S: serde::de::DeserializeSeed<'de>>(
    seed: S,
    bytes: &'de [u8],
    encoding: Encoding,
) -> Result<S::Value, DecodeError> {
    let error = |e: &dyn std::fmt::Display| DecodeError(e.to_string());
    // Spec 3.3.3: a payload is exactly one value. Bytes after it are not
    // ignored: they would be a second value, or another version's layout,
    // that this peer would otherwise drop without a word.
    let trailing = || DecodeError("bytes after the value (a payload holds exactly one)".into());
    match encoding {
        Encoding::MessagePack => {
            let mut de = rmp_serde::Deserializer::from_read_ref(bytes);
            let value = seed.deserialize(&mut de).map_err(|e| error(&e))?;
            // The reader keeps its place private: whether another value
            // starts is whether one more marker byte can be read.
            match serde::de::IgnoredAny::deserialize(&mut de) {
                Err(rmp_serde::decode::Error::InvalidMarkerRead(e))
                    if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                {
                    Ok(value)
                }
                _ => Err(trailing()),
            }
        }
        Encoding::Postcard => {
            let mut de = postcard::Deserializer::from_bytes(bytes);
            let value = seed.deserialize(&mut de).map_err(|e| error(&e))?;
            match de.finalize() {
                Ok([]) => Ok(value),
                Ok(_) => Err(trailing()),
                Err(e) => Err(error(&e)),
            }
        }
    }
}
