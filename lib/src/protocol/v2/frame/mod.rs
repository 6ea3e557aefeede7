//! v2 frames: one module per frame type, each with its payload layout,
//! encoder, decoder and tests. This module ties them together under one
//! header and one [`Frame`] enum.

mod call;
mod code_reason;
mod fields;
mod handshake;
mod ping;
mod request;
mod sink;

use bytes::{BufMut, Bytes};

pub use super::frame_type::FrameType;
pub use call::{
    CLIENT_STREAMS, CallFrame, CallStatus, ItemFrame, MAX_METADATA_BYTES, MAX_METADATA_ENTRIES,
    MAX_METADATA_KEY, Metadata, MetadataError, SERVER_STREAMS, StatusFrame,
};
pub use code_reason::CodeReason;
pub use handshake::{Extension, Hello, Welcome};
pub use request::{RequestFrame, ResponseFrame};
pub use sink::FrameSink;
pub(crate) use sink::{SHARED_PAYLOAD, Sealed};

use super::{FrameError, HEADER_LEN, VERSION};
use crate::protocol::Message;
use fields::Fields;

/// One v2 frame, decoded. New frame types may come (the type byte has
/// room), so a `match` needs a `_` arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`Welcome`].
    Welcome(Welcome),
    /// Text, printed or relayed by the reference server.
    Text(Message),
    /// Bytes the protocol does not interpret.
    Binary(Bytes),
    /// See [`RequestFrame`].
    Request(RequestFrame),
    /// See [`ResponseFrame`].
    Response(ResponseFrame),
    /// Heartbeat probe; the peer answers with a pong carrying the same nonce.
    Ping(u64),
    /// Heartbeat answer.
    Pong(u64),
    /// Something went wrong that does not end the connection.
    Error(CodeReason),
    /// Start, or acknowledgement, of the close handshake.
    Close(CodeReason),
    /// The server is shutting down: finish in-flight work, start no more.
    GoAway(CodeReason),
    /// See [`CallFrame`] (calls extension, spec 3.13).
    Call(CallFrame),
    /// See [`ItemFrame`].
    Item(ItemFrame),
    /// `items` more items granted to the other side's stream of call `id`.
    Credit {
        /// The call.
        id: u32,
        /// How many more items may be sent (at least 1).
        items: u32,
    },
    /// The client's stream of call `id` is done.
    End(u32),
    /// The client abandons call `id`.
    Cancel(u32),
    /// See [`StatusFrame`].
    Status(StatusFrame),
    /// A resumable session's acknowledgement (spec 3.14): the number of
    /// counted frames received so far on this session, over every
    /// connection it has had.
    Ack(u64),
}

impl Frame {
    /// The type byte this frame is sent with.
    pub fn frame_type(&self) -> FrameType {
        match self {
            Frame::Hello(_) => FrameType::Hello,
            Frame::Welcome(_) => FrameType::Welcome,
            Frame::Text(_) => FrameType::Text,
            Frame::Binary(_) => FrameType::Binary,
            Frame::Request(_) => FrameType::Request,
            Frame::Response(_) => FrameType::Response,
            Frame::Ping(_) => FrameType::Ping,
            Frame::Pong(_) => FrameType::Pong,
            Frame::Error(_) => FrameType::Error,
            Frame::Close(_) => FrameType::Close,
            Frame::GoAway(_) => FrameType::GoAway,
            Frame::Call(_) => FrameType::Call,
            Frame::Item(_) => FrameType::Item,
            Frame::Credit { .. } => FrameType::Credit,
            Frame::End(_) => FrameType::End,
            Frame::Cancel(_) => FrameType::Cancel,
            Frame::Status(_) => FrameType::Status,
            Frame::Ack(_) => FrameType::Ack,
        }
    }

    /// Payload size on the wire, checked against the receiver's limit
    /// before sending.
    #[inline]
    pub fn payload_len(&self) -> usize {
        match self {
            Frame::Hello(h) => h.payload_len(),
            Frame::Welcome(w) => w.payload_len(),
            Frame::Text(m) => m.len(),
            Frame::Binary(b) => b.len(),
            Frame::Request(r) => r.payload_len(),
            Frame::Response(r) => r.payload_len(),
            Frame::Ping(_) | Frame::Pong(_) | Frame::Ack(_) => 8,
            Frame::Error(c) | Frame::Close(c) | Frame::GoAway(c) => c.payload_len(),
            Frame::Call(c) => c.payload_len(),
            Frame::Item(i) => i.payload_len(),
            Frame::Credit { .. } => 8,
            Frame::End(_) | Frame::Cancel(_) => 4,
            Frame::Status(s) => s.payload_len(),
        }
    }

    /// Passes the frame's main payload (text, binary, request or response
    /// bytes) through `rehold`, which returns a view of the same bytes held
    /// differently: how the transport ties a large payload to the memory
    /// budget it was read with, for as long as any copy of it lives.
    pub(crate) fn rehold_payload(&mut self, rehold: impl FnOnce(Bytes) -> Bytes) {
        match self {
            Frame::Text(m) => m.rehold(rehold),
            Frame::Binary(b)
            | Frame::Request(RequestFrame { payload: b, .. })
            | Frame::Response(ResponseFrame { result: Ok(b), .. })
            | Frame::Call(CallFrame { payload: b, .. })
            | Frame::Item(ItemFrame { payload: b, .. })
            | Frame::Status(StatusFrame { payload: b, .. }) => {
                *b = rehold(std::mem::take(b));
            }
            _ => {}
        }
    }

    /// Header plus payload.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + self.payload_len()
    }

    /// Appends the whole frame to `dst`. The caller has checked the size
    /// against the peer's limit; sizes beyond u32 are a caller bug and are
    /// refused by the codec before this is reached.
    pub fn encode(&self, dst: &mut impl FrameSink) {
        let len = self.payload_len();
        let buf = dst.buf();
        buf.reserve(HEADER_LEN + len.min(SHARED_PAYLOAD));
        buf.put_u8(VERSION);
        buf.put_u8(self.frame_type() as u8);
        buf.put_u32(len as u32);
        match self {
            Frame::Hello(h) => h.encode(dst.buf()),
            Frame::Welcome(w) => w.encode(dst.buf()),
            Frame::Text(m) => dst.put_payload(m.as_shared_bytes()),
            Frame::Binary(b) => dst.put_payload(b),
            Frame::Request(r) => r.encode(dst),
            Frame::Response(r) => r.encode(dst),
            Frame::Ping(n) | Frame::Pong(n) | Frame::Ack(n) => ping::encode(*n, dst.buf()),
            Frame::Error(c) | Frame::Close(c) | Frame::GoAway(c) => c.encode(dst.buf()),
            Frame::Call(c) => c.encode(dst),
            Frame::Item(i) => i.encode(dst),
            Frame::Credit { id, items } => {
                dst.buf().put_u32(*id);
                dst.buf().put_u32(*items);
            }
            Frame::End(id) | Frame::Cancel(id) => dst.buf().put_u32(*id),
            Frame::Status(s) => s.encode(dst),
        }
    }

    /// Parses the payload of a frame of type `frame_type`.
    pub fn decode_payload(frame_type: FrameType, payload: Bytes) -> Result<Frame, FrameError> {
        let mut f = Fields::new(frame_type, payload);
        let frame = match frame_type {
            FrameType::Hello => Frame::Hello(Hello::decode(&mut f)?),
            FrameType::Welcome => Frame::Welcome(Welcome::decode(&mut f)?),
            FrameType::Text => Frame::Text(f.rest_utf8("text")?),
            FrameType::Binary => Frame::Binary(f.rest()),
            FrameType::Request => Frame::Request(RequestFrame::decode(&mut f)?),
            FrameType::Response => Frame::Response(ResponseFrame::decode(&mut f)?),
            FrameType::Ping => Frame::Ping(ping::decode(&mut f)?),
            FrameType::Pong => Frame::Pong(ping::decode(&mut f)?),
            FrameType::Error => Frame::Error(CodeReason::decode(&mut f)?),
            FrameType::Close => Frame::Close(CodeReason::decode(&mut f)?),
            FrameType::GoAway => Frame::GoAway(CodeReason::decode(&mut f)?),
            FrameType::Call => Frame::Call(CallFrame::decode(&mut f)?),
            FrameType::Item => Frame::Item(ItemFrame::decode(&mut f)?),
            FrameType::Credit => {
                let (id, items) = call::decode_credit(&mut f)?;
                Frame::Credit { id, items }
            }
            FrameType::End => Frame::End(f.u32("id")?),
            FrameType::Cancel => Frame::Cancel(f.u32("id")?),
            FrameType::Status => Frame::Status(StatusFrame::decode(&mut f)?),
            FrameType::Ack => Frame::Ack(f.u64("received")?),
        };
        f.finish()?;
        Ok(frame)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::BytesMut;

    /// Encodes, checks the header, and decodes the payload back.
    pub(crate) fn round_trip(frame: &Frame) -> Frame {
        let mut b = BytesMut::new();
        frame.encode(&mut b);
        assert_eq!(b.len(), frame.wire_len());
        assert_eq!(b[0], VERSION);
        assert_eq!(b[1], frame.frame_type() as u8);
        let len = u32::from_be_bytes(b[2..6].try_into().unwrap()) as usize;
        assert_eq!(len, frame.payload_len());
        let payload = b.split_off(HEADER_LEN).freeze();
        Frame::decode_payload(frame.frame_type(), payload).unwrap()
    }

    #[test]
    fn every_type_byte_maps_back() {
        for b in 0..=255u8 {
            if let Some(t) = FrameType::from_byte(b) {
                assert_eq!(t as u8, b);
            }
        }
        assert_eq!(FrameType::from_byte(0x00), None);
        assert_eq!(FrameType::from_byte(0x13), None);
    }

    #[test]
    fn text_and_binary() {
        let t = Frame::Text(Message::new("héllo"));
        assert_eq!(round_trip(&t), t);
        let b = Frame::Binary(Bytes::from_static(&[0, 255, 1]));
        assert_eq!(round_trip(&b), b);
        assert!(matches!(
            Frame::decode_payload(FrameType::Text, Bytes::from_static(b"\xff")),
            Err(FrameError::InvalidUtf8 { .. })
        ));
    }
}
