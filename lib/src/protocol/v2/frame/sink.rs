//! Where frames are encoded to, and which payloads may be shared.

use bytes::{Bytes, BytesMut};

/// Payloads from this size on may be kept shared (reference-counted) by a
/// sink instead of copied: below it, a copy is cheaper than a chunk.
pub(crate) const SHARED_PAYLOAD: usize = 4 * 1024;

/// Where frames are encoded to: pass a [`BytesMut`]. It copies everything;
/// the library's own connection queues keep large payloads as shared
/// [`Bytes`], so one broadcast to many clients is held once, not once per
/// client. Sealed: only the library implements it.
pub trait FrameSink: Sealed {
    /// The buffer headers and small fields are written to.
    fn buf(&mut self) -> &mut BytesMut;

    /// A payload, which the sink may share instead of copying.
    fn put_payload(&mut self, payload: &Bytes) {
        self.buf().extend_from_slice(payload);
    }
}

/// Keeps [`FrameSink`] to the library's own sinks.
pub trait Sealed {}

impl Sealed for BytesMut {}

impl FrameSink for BytesMut {
    fn buf(&mut self) -> &mut BytesMut {
        self
    }
}
