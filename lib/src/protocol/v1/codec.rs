use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::decode::{check_clean_end, decode_message};
use super::{DecodeError, EncodeError, encode_message};
use crate::protocol::Message;

/// The v1 format as a `tokio_util` codec, for use with `Framed`.
///
/// It is the same check-then-parse logic as [`MessageReader`](super::MessageReader); `Framed`
/// keeps one read buffer and reuses it, so decoding stays linear.
#[derive(Debug, Clone, Copy, Default)]
pub struct V1Codec;

/// Everything that can go wrong while framing v1 over a byte stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The peer sent bytes that are not v1.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// We were asked to send something v1 cannot carry.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The stream itself failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Decoder for V1Codec {
    type Item = Message;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        Ok(decode_message(src)?)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Message>, CodecError> {
        match decode_message(src)? {
            Some(m) => Ok(Some(m)),
            None => {
                check_clean_end(src)?;
                Ok(None)
            }
        }
    }
}

impl Encoder<&str> for V1Codec {
    type Error = CodecError;

    fn encode(&mut self, item: &str, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(encode_message(item, dst)?)
    }
}

impl Encoder<Message> for V1Codec {
    type Error = CodecError;

    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(encode_message(item.as_str(), dst)?)
    }
}

impl Encoder<&Message> for V1Codec {
    type Error = CodecError;

    fn encode(&mut self, item: &Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        Ok(encode_message(item.as_str(), dst)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_eof_reports_truncation() {
        let mut b = BytesMut::from(&b"\x01\x00\x05he"[..]);
        let err = V1Codec.decode_eof(&mut b).unwrap_err();
        assert!(matches!(
            err,
            CodecError::Decode(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn round_trip_through_the_codec() {
        let mut b = BytesMut::new();
        V1Codec.encode("one", &mut b).unwrap();
        V1Codec.encode(Message::new("two"), &mut b).unwrap();
        assert_eq!(V1Codec.decode(&mut b).unwrap().unwrap().as_str(), "one");
        assert_eq!(V1Codec.decode_eof(&mut b).unwrap().unwrap().as_str(), "two");
        assert_eq!(V1Codec.decode_eof(&mut b).unwrap(), None);
    }
}
