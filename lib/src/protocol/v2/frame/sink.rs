//! Where frames are encoded to, and which payloads may be shared.

use bytes::{Bytes, BytesMut};

/// Payloads from this size on may be kept shared (reference-counted) by a
/// sink instead of copied: below it, a copy is cheaper than a chunk.
pub const SHARED_PAYLOAD: usize = 4 * 1024;

/// Where frames are encoded to. A plain [`BytesMut`] copies everything; a
/// connection's write queue keeps large payloads as shared [`Bytes`], so one
/// broadcast to many clients is held once, not once per client.
pub trait FrameSink {
    /// The buffer headers and small fields are written to.
    fn buf(&mut self) -> &mut BytesMut;

    /// A payload, which the sink may share instead of copying.
    fn put_payload(&mut self, payload: &Bytes) {
        self.buf().extend_from_slice(payload);
    }
}

impl FrameSink for BytesMut {
    fn buf(&mut self) -> &mut BytesMut {
        self
    }
}
