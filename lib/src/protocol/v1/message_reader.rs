use bytes::BytesMut;

use super::DecodeError;
use super::decode::{check_clean_end, decode_message};
use crate::protocol::Message;

/// An incremental v1 decoder: feed it bytes as they arrive, in any split,
/// and take whole messages out.
///
/// It owns one growing buffer. Taking a message moves the buffer's start
/// instead of copying what follows, and the space is reclaimed when the
/// buffer next grows, so the cost is linear in the bytes received however
/// they were segmented.
#[derive(Debug, Default)]
pub struct MessageReader {
    buf: BytesMut,
}

impl MessageReader {
    /// A reader with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes received from the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The buffer itself, so that an I/O layer can read straight into it
    /// instead of through an intermediate copy.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// The next whole message, or `None` until more bytes are fed.
    ///
    /// After an error the stream cannot be resynchronised (v1 has no frame
    /// markers), so callers should drop the connection.
    pub fn next_message(&mut self) -> Result<Option<Message>, DecodeError> {
        decode_message(&mut self.buf)
    }

    /// Call when the peer has closed: `Ok` if it stopped between frames,
    /// `Truncated` if a frame was cut off.
    pub fn finish(&self) -> Result<(), DecodeError> {
        check_clean_end(&self.buf)
    }

    /// Bytes received but not yet returned as messages.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_byte_at_a_time() {
        let mut r = MessageReader::new();
        let mut out = Vec::new();
        for &b in b"\x01\x00\x02hi\x01\x00\x00" {
            r.feed(&[b]);
            while let Some(m) = r.next_message().unwrap() {
                out.push(m.as_str().to_owned());
            }
        }
        assert_eq!(out, ["hi", ""]);
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn finish_reports_a_cut_frame() {
        let mut r = MessageReader::new();
        r.feed(b"\x01\x00\x09abc");
        assert_eq!(r.next_message(), Ok(None));
        assert_eq!(
            r.finish(),
            Err(DecodeError::Truncated {
                buffered: 6,
                expected: 12
            })
        );
    }
}
