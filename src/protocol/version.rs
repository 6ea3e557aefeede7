//! Choosing a protocol version, and the one reply whose layout is frozen
//! for every version, past and future.
//!
//! The first byte a client sends is the version of its first frame. A
//! server that does not speak it answers with:
//!
//! ```text
//! +------+------------+--------------------+------------------+--------------+
//! | 0x00 | count u8   | versions [count]u8 | reason_len u16 BE| reason UTF-8 |
//! +------+------------+--------------------+------------------+--------------+
//! ```
//!
//! and closes the connection. Byte 0 is zero because no version is zero, so
//! a client of any version can tell this reply from a frame of its own.

use bytes::{BufMut, BytesMut};

/// Versions this implementation serves.
pub const SUPPORTED_VERSIONS: &[u8] = &[1, 2];

/// The frozen "unsupported version" reply. `asked` only goes into the
/// human-readable reason.
pub fn unsupported_version_reply(asked: u8) -> BytesMut {
    let reason = format!("unsupported version {asked}, this server speaks 1 and 2");
    let mut b = BytesMut::with_capacity(4 + SUPPORTED_VERSIONS.len() + reason.len());
    b.put_u8(0);
    b.put_u8(SUPPORTED_VERSIONS.len() as u8);
    b.put_slice(SUPPORTED_VERSIONS);
    b.put_u16(reason.len() as u16);
    b.put_slice(reason.as_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_bytes() {
        let b = unsupported_version_reply(7);
        let reason = b"unsupported version 7, this server speaks 1 and 2";
        let mut expected = vec![0x00, 0x02, 0x01, 0x02, 0x00, reason.len() as u8];
        expected.extend_from_slice(reason);
        assert_eq!(&b[..], &expected[..]);
    }
}
