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

/// The supported versions in words ("1 and 2"), for every reason that
/// names them, so they follow [`SUPPORTED_VERSIONS`].
pub fn spoken_versions() -> String {
    match SUPPORTED_VERSIONS.split_last() {
        None => String::new(),
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => {
            let rest: Vec<String> = rest.iter().map(u8::to_string).collect();
            format!("{} and {last}", rest.join(", "))
        }
    }
}

/// The frozen "unsupported version" reply. `asked` only goes into the
/// human-readable reason.
pub fn unsupported_version_reply(asked: u8) -> BytesMut {
    let reason = format!(
        "unsupported version {asked}, this server speaks {}",
        spoken_versions()
    );
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

/// Reads the frozen reply from the start of `buf`: the versions the server
/// speaks and its reason. `None` if `buf` does not hold a whole reply (or
/// does not start with one).
pub fn parse_unsupported_version_reply(buf: &[u8]) -> Option<(Vec<u8>, String)> {
    let (&marker, rest) = buf.split_first()?;
    if marker != 0 {
        return None;
    }
    let (&count, rest) = rest.split_first()?;
    let versions = rest.get(..count as usize)?.to_vec();
    let rest = &rest[count as usize..];
    let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let reason = rest.get(2..2 + len)?;
    Some((versions, String::from_utf8_lossy(reason).into_owned()))
}

#[cfg(test)]
mod parse_tests {
    use super::*;

    #[test]
    fn parses_the_reply_and_waits_for_all_of_it() {
        let b = unsupported_version_reply(9);
        let (versions, reason) = parse_unsupported_version_reply(&b).unwrap();
        assert_eq!(versions, [1, 2]);
        assert!(reason.contains("speaks 1 and 2"));
        for cut in 0..b.len() {
            assert_eq!(parse_unsupported_version_reply(&b[..cut]), None);
        }
    }
}
