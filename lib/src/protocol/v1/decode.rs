use bytes::{Buf, BytesMut};

use super::{DecodeError, HEADER_LEN, VERSION};
use crate::protocol::Message;

/// Takes one whole v1 message off the front of `buf`, if one is there.
///
/// Check, then parse: nothing is consumed until the whole frame has arrived,
/// so a caller can simply call again once more bytes are appended. On
/// `Ok(None)` the buffer is untouched and no memory is reserved for the
/// length the header claims: a peer that announces 65535 bytes and sends
/// three costs us three.
///
/// Consuming is O(1) in the size of the rest of the buffer (`advance` and
/// `split_to` move a pointer), so parsing a stream is linear in its length.
pub fn decode_message(buf: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
    let Some(&version) = buf.first() else {
        return Ok(None);
    };
    // The version is checked as soon as it arrives, so a peer speaking
    // something else is told off without waiting for a length.
    if version != VERSION {
        return Err(DecodeError::WrongVersion { found: version });
    }
    let Some(len) = content_len(buf) else {
        return Ok(None);
    };
    if buf.len() < HEADER_LEN + len {
        return Ok(None);
    }
    buf.advance(HEADER_LEN);
    let content = buf.split_to(len).freeze();
    Message::from_utf8(content)
        .map(Some)
        .map_err(|detail| DecodeError::InvalidUtf8 { len, detail })
}

/// The whole length (header included) that the v1 frame starting `buf`
/// claims, once its header is there; for deadlines that depend on size.
pub fn claimed_frame_len(buf: &[u8]) -> Option<usize> {
    content_len(buf).map(|len| HEADER_LEN + len)
}

/// The announced content length, once the header is complete.
fn content_len(buf: &[u8]) -> Option<usize> {
    let bytes: [u8; 2] = buf.get(1..HEADER_LEN)?.try_into().ok()?;
    Some(u16::from_be_bytes(bytes) as usize)
}

/// Describes what is left in `buf` when the stream ends, for the caller to
/// report: `Ok` for a clean end between frames, `Truncated` otherwise.
pub(crate) fn check_clean_end(buf: &[u8]) -> Result<(), DecodeError> {
    if buf.is_empty() {
        return Ok(());
    }
    let expected = content_len(buf).map_or(HEADER_LEN, |len| HEADER_LEN + len);
    Err(DecodeError::Truncated {
        buffered: buf.len(),
        expected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(bytes: &[u8]) -> BytesMut {
        BytesMut::from(bytes)
    }

    #[test]
    fn decodes_the_tutorial_bytes() {
        let mut b = buf(b"\x01\x00\x05hello");
        assert_eq!(decode_message(&mut b).unwrap().unwrap().as_str(), "hello");
        assert!(b.is_empty());
    }

    #[test]
    fn waits_for_the_whole_frame_without_consuming() {
        let mut b = buf(b"\x01\x00\x05hel");
        assert_eq!(decode_message(&mut b).unwrap(), None);
        assert_eq!(&b[..], b"\x01\x00\x05hel");
    }

    #[test]
    fn does_not_reserve_for_a_claimed_length() {
        let mut b = BytesMut::with_capacity(8);
        b.extend_from_slice(b"\x01\xff\xff");
        let cap = b.capacity();
        assert_eq!(decode_message(&mut b).unwrap(), None);
        assert_eq!(b.capacity(), cap);
    }

    #[test]
    fn rejects_a_wrong_version_at_once() {
        let mut b = buf(b"\x02");
        assert_eq!(
            decode_message(&mut b),
            Err(DecodeError::WrongVersion { found: 2 })
        );
    }

    #[test]
    fn rejects_invalid_utf8() {
        let mut b = buf(b"\x01\x00\x02\xc3\x28");
        assert!(matches!(
            decode_message(&mut b),
            Err(DecodeError::InvalidUtf8 { len: 2, .. })
        ));
    }

    #[test]
    fn reports_truncation_with_sizes() {
        assert_eq!(check_clean_end(b""), Ok(()));
        assert_eq!(
            check_clean_end(b"\x01\x00"),
            Err(DecodeError::Truncated {
                buffered: 2,
                expected: 3
            })
        );
        assert_eq!(
            check_clean_end(b"\x01\x00\x04ab"),
            Err(DecodeError::Truncated {
                buffered: 5,
                expected: 7
            })
        );
    }
}
