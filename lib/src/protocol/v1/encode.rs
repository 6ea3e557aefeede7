use bytes::{BufMut, BytesMut};

use super::{EncodeError, HEADER_LEN, MAX_CONTENT_LEN, VERSION};

/// Appends one v1 frame carrying `content` to `dst`.
///
/// Fails, writing nothing, when `content` is longer than a u16 can say: the
/// tutorial cast the length and so sent a frame that desynchronised the
/// stream; here the caller learns about it instead.
pub fn encode_message(content: &str, dst: &mut BytesMut) -> Result<(), EncodeError> {
    let len = u16::try_from(content.len()).map_err(|_| EncodeError::ContentTooLong {
        len: content.len(),
        max: MAX_CONTENT_LEN,
    })?;
    dst.reserve(HEADER_LEN + content.len());
    dst.put_u8(VERSION);
    dst.put_u16(len);
    dst.put_slice(content.as_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_tutorial_bytes() {
        let mut b = BytesMut::new();
        encode_message("hello", &mut b).unwrap();
        assert_eq!(&b[..], b"\x01\x00\x05hello");
    }

    #[test]
    fn encodes_empty_and_the_largest_content() {
        let mut b = BytesMut::new();
        encode_message("", &mut b).unwrap();
        assert_eq!(&b[..], b"\x01\x00\x00");
        let big = "x".repeat(MAX_CONTENT_LEN);
        let mut b = BytesMut::new();
        encode_message(&big, &mut b).unwrap();
        assert_eq!(&b[..3], b"\x01\xff\xff");
        assert_eq!(b.len(), 3 + MAX_CONTENT_LEN);
    }

    #[test]
    fn refuses_content_that_would_wrap_the_length() {
        let too_big = "x".repeat(MAX_CONTENT_LEN + 1);
        let mut b = BytesMut::new();
        assert_eq!(
            encode_message(&too_big, &mut b),
            Err(EncodeError::ContentTooLong {
                len: 65536,
                max: 65535
            })
        );
        assert!(b.is_empty(), "nothing may be written on error");
    }
}
