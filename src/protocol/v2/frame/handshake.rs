//! HELLO (0x01) and WELCOME (0x02): the v2 handshake.
//!
//! HELLO, sent once by the client as its first frame:
//! ```text
//! +-------+-----------------+-----------------+------------------+-------------+---------+
//! | n u8  | versions [n]u8  | max_frame u32   | heartbeat_ms u32 | name_len u16| name    |
//! +-------+-----------------+-----------------+------------------+-------------+---------+
//! ```
//! WELCOME, the server's answer when it accepts:
//! ```text
//! +------------+---------------+------------------+--------------+-------------+
//! | version u8 | max_frame u32 | heartbeat_ms u32 | name_len u16 | server name |
//! +------------+---------------+------------------+--------------+-------------+
//! ```
//! Each side's `max_frame` is the largest payload it accepts; the other
//! side must not send more. The welcome's heartbeat interval is the one both
//! sides use (0 turns heartbeats off).

use bytes::{BufMut, BytesMut};

use super::fields::Fields;
use crate::protocol::v2::FrameError;

/// The client's opening offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Every version the client can speak; the server picks one.
    pub versions: Vec<u8>,
    /// Largest payload the client accepts from the server.
    pub max_frame_size: u32,
    /// The heartbeat interval the client would like, in milliseconds.
    pub heartbeat_ms: u32,
    /// How the client wants to be known (labels in chat, logs).
    pub name: String,
}

/// The server's acceptance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Welcome {
    /// The version chosen for this connection.
    pub version: u8,
    /// Largest payload the server accepts from the client.
    pub max_frame_size: u32,
    /// Heartbeat interval in milliseconds both sides follow; 0 = off.
    pub heartbeat_ms: u32,
    /// The server's name, for the client's logs.
    pub server_name: String,
}

impl Hello {
    pub(super) fn payload_len(&self) -> usize {
        1 + self.versions.len() + 4 + 4 + 2 + self.name.len()
    }

    pub(super) fn encode(&self, dst: &mut BytesMut) {
        dst.put_u8(self.versions.len() as u8);
        dst.put_slice(&self.versions);
        dst.put_u32(self.max_frame_size);
        dst.put_u32(self.heartbeat_ms);
        dst.put_u16(self.name.len() as u16);
        dst.put_slice(self.name.as_bytes());
    }

    pub(super) fn decode(f: &mut Fields) -> Result<Self, FrameError> {
        let n = f.u8("version count")? as usize;
        let versions = f.bytes(n, "versions")?.to_vec();
        Ok(Hello {
            versions,
            max_frame_size: f.u32("max frame size")?,
            heartbeat_ms: f.u32("heartbeat interval")?,
            name: f.short_string("name")?,
        })
    }
}

impl Welcome {
    pub(super) fn payload_len(&self) -> usize {
        1 + 4 + 4 + 2 + self.server_name.len()
    }

    pub(super) fn encode(&self, dst: &mut BytesMut) {
        dst.put_u8(self.version);
        dst.put_u32(self.max_frame_size);
        dst.put_u32(self.heartbeat_ms);
        dst.put_u16(self.server_name.len() as u16);
        dst.put_slice(self.server_name.as_bytes());
    }

    pub(super) fn decode(f: &mut Fields) -> Result<Self, FrameError> {
        Ok(Welcome {
            version: f.u8("version")?,
            max_frame_size: f.u32("max frame size")?,
            heartbeat_ms: f.u32("heartbeat interval")?,
            server_name: f.short_string("server name")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::round_trip;
    use super::super::{Frame, FrameType};
    use super::*;
    use bytes::Bytes;

    fn hello() -> Hello {
        Hello {
            versions: vec![2],
            max_frame_size: 16 * 1024 * 1024,
            heartbeat_ms: 30_000,
            name: "alice".into(),
        }
    }

    #[test]
    fn the_spec_hello_bytes() {
        let mut b = BytesMut::new();
        Frame::Hello(hello()).encode(&mut b);
        assert_eq!(
            &b[..],
            b"\x02\x01\x00\x00\x00\x11\x01\x02\x01\x00\x00\x00\x00\x00\x75\x30\x00\x05alice"
        );
    }

    #[test]
    fn hello_and_welcome_round_trip() {
        let h = Frame::Hello(hello());
        assert_eq!(round_trip(&h), h);
        let w = Frame::Welcome(Welcome {
            version: 2,
            max_frame_size: 1024,
            heartbeat_ms: 0,
            server_name: String::new(),
        });
        assert_eq!(round_trip(&w), w);
    }

    #[test]
    fn a_name_longer_than_the_payload_is_malformed() {
        let p = Bytes::from_static(b"\x01\x02\x00\x00\x04\x00\x00\x00\x00\x00\x00\x09ab");
        assert!(matches!(
            Frame::decode_payload(FrameType::Hello, p),
            Err(FrameError::Malformed { .. })
        ));
    }
}
