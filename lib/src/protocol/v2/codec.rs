use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::frame::{Frame, FrameType};
use super::limits::check_send_size;
use super::{DEFAULT_MAX_FRAME_SIZE, FrameError, HEADER_LEN, VERSION};

/// The v2 frame format as a `tokio_util` codec, for peers written with
/// `Framed`. (Our own server and client decode with it, but encode through
/// the [`Session`](super::Session), which applies the same size rule.)
///
/// It enforces two limits: frames larger than `max_recv` are refused as soon
/// as their header arrives (so a peer cannot make us buffer 4 GiB), and
/// frames larger than `max_send` (what the peer announced) are refused
/// before they are written, so we never break the peer's limit.
#[derive(Debug, Clone, Copy)]
pub struct V2Codec {
    max_recv: u32,
    max_send: u32,
}

/// Framing failures: the peer's bytes, our frame, or the stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum V2CodecError {
    /// The peer sent something that is not a valid v2 frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// We tried to send a frame over the peer's announced limit.
    #[error("frame of {len} bytes exceeds the peer's limit of {max}")]
    TooLargeToSend {
        /// Payload length of the frame.
        len: usize,
        /// The peer's limit.
        max: u32,
    },
    /// The stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Default for V2Codec {
    fn default() -> Self {
        V2Codec::new(DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_FRAME_SIZE)
    }
}

impl V2Codec {
    /// A codec accepting payloads up to `max_recv` and sending up to `max_send`.
    pub fn new(max_recv: u32, max_send: u32) -> Self {
        V2Codec { max_recv, max_send }
    }

    /// Changes what we accept: a server accepts only a small HELLO until the
    /// handshake is done, then the limit it announced.
    pub fn set_max_recv(&mut self, max: u32) {
        self.max_recv = max;
    }

    /// Adopts the limit the peer announced in the handshake.
    pub fn set_max_send(&mut self, max: u32) {
        self.max_send = max;
    }

    /// The largest payload we accept.
    pub fn max_recv(&self) -> u32 {
        self.max_recv
    }

    /// The largest payload we may send.
    pub fn max_send(&self) -> u32 {
        self.max_send
    }

    /// Whether decoding `buf` would give something now: a whole frame, or
    /// an error its header already shows (a length over the limit, a wrong
    /// version). A driver asks before it takes the lock decoding needs.
    pub(crate) fn has_frame(&self, buf: &[u8]) -> bool {
        match parse_header(buf, self.max_recv) {
            Ok(None) => false,
            Ok(Some((_, len))) => buf.len() >= HEADER_LEN + len,
            Err(_) => true,
        }
    }
}

/// Reads the header in `buf`, if complete: type and payload length.
/// Checks everything a header can be wrong about as soon as the bytes for it
/// are there.
fn parse_header(buf: &[u8], max_recv: u32) -> Result<Option<(FrameType, usize)>, FrameError> {
    let Some(&version) = buf.first() else {
        return Ok(None);
    };
    if version != VERSION {
        return Err(FrameError::WrongVersion { found: version });
    }
    let Some(&type_byte) = buf.get(1) else {
        return Ok(None);
    };
    let frame_type = FrameType::from_byte(type_byte).ok_or(FrameError::UnknownType(type_byte))?;
    let Some(len_bytes) = buf.get(2..HEADER_LEN) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(len_bytes.try_into().expect("four bytes"));
    if len > max_recv {
        return Err(FrameError::TooLarge {
            len: len.into(),
            max: max_recv,
        });
    }
    Ok(Some((frame_type, len as usize)))
}

/// The whole length (header included) that the frame starting `buf`
/// claims, once its header is there; for deadlines that depend on size.
pub fn claimed_frame_len(buf: &[u8]) -> Option<usize> {
    match parse_header(buf, u32::MAX) {
        Ok(Some((_, len))) => Some(HEADER_LEN + len),
        _ => None,
    }
}

/// Takes one whole frame off the front of `buf`, if it is all there.
/// Never reserves memory for the announced length.
pub(crate) fn decode_frame(buf: &mut BytesMut, max_recv: u32) -> Result<Option<Frame>, FrameError> {
    let Some((frame_type, len)) = parse_header(buf, max_recv)? else {
        return Ok(None);
    };
    if buf.len() < HEADER_LEN + len {
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    let payload = buf.split_to(len).freeze();
    Frame::decode_payload(frame_type, payload).map(Some)
}

impl Decoder for V2Codec {
    type Item = Frame;
    type Error = V2CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, V2CodecError> {
        Ok(decode_frame(src, self.max_recv)?)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, V2CodecError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        if src.is_empty() {
            return Ok(None);
        }
        let expected = match parse_header(src, self.max_recv)? {
            Some((_, len)) => HEADER_LEN + len,
            None => HEADER_LEN,
        };
        Err(FrameError::Truncated {
            buffered: src.len(),
            expected,
        }
        .into())
    }
}

impl Encoder<Frame> for V2Codec {
    type Error = V2CodecError;

    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), V2CodecError> {
        self.encode(&frame, dst)
    }
}

impl Encoder<&Frame> for V2Codec {
    type Error = V2CodecError;

    fn encode(&mut self, frame: &Frame, dst: &mut BytesMut) -> Result<(), V2CodecError> {
        check_send_size(frame.payload_len(), self.max_send).map_err(|_| {
            V2CodecError::TooLargeToSend {
                len: frame.payload_len(),
                max: self.max_send,
            }
        })?;
        frame.encode(dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Message;

    /// What the driver asks before taking the lock: true exactly when
    /// `decode` would give a frame or an error now.
    #[test]
    fn has_frame_agrees_with_decode() {
        let codec = V2Codec::new(16, 16);
        let mut whole = BytesMut::new();
        Frame::Text(Message::new("hi")).encode(&mut whole);
        for cut in 0..whole.len() {
            assert!(!codec.has_frame(&whole[..cut]), "{cut} bytes of a frame");
        }
        assert!(codec.has_frame(&whole));
        // A header over the limit is refused from the header alone.
        let too_large = [VERSION, whole[1], 0, 0, 0, 17];
        assert!(codec.has_frame(&too_large));
        assert!(decode_frame(&mut BytesMut::from(&too_large[..]), 16).is_err());
        assert!(codec.has_frame(&[VERSION + 1]), "a wrong version at once");
    }

    #[test]
    fn refuses_an_oversized_frame_from_its_header_alone() {
        let mut codec = V2Codec::new(1024, 1024);
        let mut b = BytesMut::from(&b"\x02\x03\x00\x00\x04\x01"[..]);
        assert!(matches!(
            codec.decode(&mut b),
            Err(V2CodecError::Frame(FrameError::TooLarge {
                len: 1025,
                max: 1024
            }))
        ));
    }

    #[test]
    fn refuses_an_unknown_type_at_once() {
        let mut b = BytesMut::from(&b"\x02\x7f"[..]);
        assert!(matches!(
            V2Codec::default().decode(&mut b),
            Err(V2CodecError::Frame(FrameError::UnknownType(0x7f)))
        ));
    }

    #[test]
    fn will_not_send_over_the_peers_limit() {
        let mut codec = V2Codec::new(1024, 4);
        let mut b = BytesMut::new();
        let err = codec
            .encode(Frame::Text(Message::new("hello")), &mut b)
            .unwrap_err();
        assert!(matches!(
            err,
            V2CodecError::TooLargeToSend { len: 5, max: 4 }
        ));
        assert!(b.is_empty());
    }

    #[test]
    fn eof_inside_a_frame_is_truncation() {
        let mut b = BytesMut::from(&b"\x02\x03\x00\x00\x00\x05he"[..]);
        assert!(matches!(
            V2Codec::default().decode_eof(&mut b),
            Err(V2CodecError::Frame(FrameError::Truncated {
                buffered: 8,
                expected: 11
            }))
        ));
    }
}
