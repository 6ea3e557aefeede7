//! PING (0x07) and PONG (0x08): an 8-byte nonce, echoed back.
//!
//! ```text
//! +-----------------+
//! | nonce u64 BE    |
//! +-----------------+
//! ```
//! The nonce lets a sender match a pong to its ping (and so measure round
//! trips); receivers never interpret it.

use bytes::{BufMut, BytesMut};

use super::fields::Fields;
use crate::protocol::v2::FrameError;

pub(super) fn encode(nonce: u64, dst: &mut BytesMut) {
    dst.put_u64(nonce);
}

pub(super) fn decode(f: &mut Fields) -> Result<u64, FrameError> {
    f.u64("nonce")
}

#[cfg(test)]
mod tests {
    use super::super::tests::round_trip;
    use super::super::{Frame, FrameType};
    use bytes::Bytes;

    #[test]
    fn ping_and_pong_carry_the_nonce() {
        for f in [Frame::Ping(0), Frame::Pong(u64::MAX), Frame::Ping(42)] {
            assert_eq!(round_trip(&f), f);
        }
    }

    #[test]
    fn a_short_or_long_nonce_is_malformed() {
        assert!(Frame::decode_payload(FrameType::Ping, Bytes::from_static(&[1; 7])).is_err());
        assert!(Frame::decode_payload(FrameType::Pong, Bytes::from_static(&[1; 9])).is_err());
    }
}
