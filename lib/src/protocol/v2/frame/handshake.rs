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
//!
//! Both may end with an extensions area, for what the handshake needs to
//! carry now and later (an authentication token; trace context,
//! compression, resumption). Without extensions the area is absent, so
//! every older handshake is still valid byte for byte:
//! ```text
//! +-----------+---------------------------------------------------+
//! | count u16 | count × ( type u16 | length u16 | data [length] ) |
//! +-----------+---------------------------------------------------+
//! ```
//! A receiver ignores an extension type it does not know, unless the type
//! has its high bit set ([`Extension::CRITICAL`]): then it must refuse the
//! handshake (1010) rather than go on without understanding it.

use bytes::{BufMut, Bytes, BytesMut};

use super::fields::Fields;
use crate::protocol::v2::FrameError;

/// The client's opening offer. New fields may come with new versions of
/// the handshake, so it is built with [`Hello::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Hello {
    /// Every version the client can speak; the server picks one.
    pub versions: Vec<u8>,
    /// Largest payload the client accepts from the server.
    pub max_frame_size: u32,
    /// The heartbeat interval the client would like, in milliseconds.
    pub heartbeat_ms: u32,
    /// How the client wants to be known (labels in chat, logs).
    pub name: String,
    /// Handshake extensions, in order; empty for none.
    pub extensions: Vec<Extension>,
}

/// One handshake extension: its type, and bytes whose meaning the type
/// defines.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Extension {
    /// What it is; see the constants.
    pub kind: u16,
    /// Its content.
    pub data: Bytes,
}

impl Extension {
    /// HELLO: the client's authentication token.
    pub const AUTH_TOKEN: u16 = 0x0001;
    /// HELLO: the application protocol the client asks for; WELCOME: the
    /// one the server chose (spec 3.3.2).
    pub const APP_PROTOCOL: u16 = 0x0002;
    /// HELLO: the client speaks calls (spec 3.13); WELCOME: the server
    /// does too, with its limits.
    pub const CALLS: u16 = 0x0003;
    /// HELLO: the client asks for a resumable session, or to resume one;
    /// WELCOME: the server's answer (spec 3.14).
    pub const RESUME: u16 = 0x0004;
    /// The bit that marks a type the receiver must understand.
    pub const CRITICAL: u16 = 0x8000;

    /// An extension of type `kind`.
    pub fn new(kind: u16, data: impl Into<Bytes>) -> Self {
        Extension {
            kind,
            data: data.into(),
        }
    }

    /// Whether a receiver that does not know this type must refuse.
    pub fn is_critical(&self) -> bool {
        self.kind & Extension::CRITICAL != 0
    }
}

fn extensions_len(extensions: &[Extension]) -> usize {
    match extensions {
        [] => 0,
        _ => 2 + extensions.iter().map(|e| 4 + e.data.len()).sum::<usize>(),
    }
}

fn encode_extensions(extensions: &[Extension], dst: &mut BytesMut) {
    if extensions.is_empty() {
        return;
    }
    dst.put_u16(extensions.len() as u16);
    for e in extensions {
        dst.put_u16(e.kind);
        dst.put_u16(e.data.len() as u16);
        dst.put_slice(&e.data);
    }
}

/// The area after the last fixed field, if present. An area that is
/// present must hold at least one extension (so every frame has one
/// encoding).
fn decode_extensions(f: &mut Fields) -> Result<Vec<Extension>, FrameError> {
    if f.is_empty() {
        return Ok(Vec::new());
    }
    let count = f.u16("extension count")?;
    if count == 0 {
        return Err(f.malformed("an empty extensions area"));
    }
    (0..count)
        .map(|_| {
            let kind = f.u16("extension type")?;
            let len = f.u16("extension length")? as usize;
            Ok(Extension::new(kind, f.bytes(len, "extension data")?))
        })
        .collect()
}

/// The server's acceptance, built with [`Welcome::new`] (new fields may
/// come).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Welcome {
    /// The version chosen for this connection.
    pub version: u8,
    /// Largest payload the server accepts from the client.
    pub max_frame_size: u32,
    /// Heartbeat interval in milliseconds both sides follow; 0 = off.
    pub heartbeat_ms: u32,
    /// The server's name, for the client's logs.
    pub server_name: String,
    /// Handshake extensions, in order; empty for none.
    pub extensions: Vec<Extension>,
}

impl Hello {
    /// An offer of `versions`, accepting frames up to `max_frame_size`,
    /// wishing for heartbeats every `heartbeat_ms` (0: none), as `name`;
    /// no extensions.
    pub fn new(
        versions: Vec<u8>,
        max_frame_size: u32,
        heartbeat_ms: u32,
        name: impl Into<String>,
    ) -> Self {
        Hello {
            versions,
            max_frame_size,
            heartbeat_ms,
            name: name.into(),
            extensions: Vec::new(),
        }
    }

    /// The same offer with these extensions, in order.
    pub fn with_extensions(mut self, extensions: Vec<Extension>) -> Self {
        self.extensions = extensions;
        self
    }

    pub(super) fn payload_len(&self) -> usize {
        1 + self.versions.len() + 4 + 4 + 2 + self.name.len() + extensions_len(&self.extensions)
    }

    pub(super) fn encode(&self, dst: &mut BytesMut) {
        dst.put_u8(self.versions.len() as u8);
        dst.put_slice(&self.versions);
        dst.put_u32(self.max_frame_size);
        dst.put_u32(self.heartbeat_ms);
        dst.put_u16(self.name.len() as u16);
        dst.put_slice(self.name.as_bytes());
        encode_extensions(&self.extensions, dst);
    }

    pub(super) fn decode(f: &mut Fields) -> Result<Self, FrameError> {
        let n = f.u8("version count")? as usize;
        let versions = f.bytes(n, "versions")?.to_vec();
        Ok(Hello {
            versions,
            max_frame_size: f.u32("max frame size")?,
            heartbeat_ms: f.u32("heartbeat interval")?,
            name: f.short_string("name")?,
            extensions: decode_extensions(f)?,
        })
    }
}

impl Welcome {
    /// Acceptance of `version`, accepting frames up to `max_frame_size`,
    /// heartbeats every `heartbeat_ms` (0: off), from `server_name`; no
    /// extensions.
    pub fn new(
        version: u8,
        max_frame_size: u32,
        heartbeat_ms: u32,
        server_name: impl Into<String>,
    ) -> Self {
        Welcome {
            version,
            max_frame_size,
            heartbeat_ms,
            server_name: server_name.into(),
            extensions: Vec::new(),
        }
    }

    /// The same acceptance with these extensions, in order.
    pub fn with_extensions(mut self, extensions: Vec<Extension>) -> Self {
        self.extensions = extensions;
        self
    }

    pub(super) fn payload_len(&self) -> usize {
        1 + 4 + 4 + 2 + self.server_name.len() + extensions_len(&self.extensions)
    }

    pub(super) fn encode(&self, dst: &mut BytesMut) {
        dst.put_u8(self.version);
        dst.put_u32(self.max_frame_size);
        dst.put_u32(self.heartbeat_ms);
        dst.put_u16(self.server_name.len() as u16);
        dst.put_slice(self.server_name.as_bytes());
        encode_extensions(&self.extensions, dst);
    }

    pub(super) fn decode(f: &mut Fields) -> Result<Self, FrameError> {
        Ok(Welcome {
            version: f.u8("version")?,
            max_frame_size: f.u32("max frame size")?,
            heartbeat_ms: f.u32("heartbeat interval")?,
            server_name: f.short_string("server name")?,
            extensions: decode_extensions(f)?,
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
            extensions: Vec::new(),
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
            extensions: Vec::new(),
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
