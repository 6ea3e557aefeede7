//! A connection's bytes waiting to be written: small frames copied into
//! one buffer, large payloads kept as the shared [`Bytes`] they came in, so
//! a broadcast to many clients is held once, however many queues it sits
//! in.

use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::io;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::protocol::v2::frame::{FrameSink, SHARED_PAYLOAD};

/// The writer's buffer is kept between writes up to this size.
const KEEP_CAPACITY: usize = 64 * 1024;

/// Bytes in order: every chunk, then the tail.
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    chunks: VecDeque<Bytes>,
    chunks_len: usize,
    tail: BytesMut,
}

impl FrameSink for Outgoing {
    #[inline]
    fn buf(&mut self) -> &mut BytesMut {
        &mut self.tail
    }

    #[inline]
    fn put_payload(&mut self, payload: &Bytes) {
        if payload.len() < SHARED_PAYLOAD {
            self.tail.extend_from_slice(payload);
            return;
        }
        if !self.tail.is_empty() {
            let before = self.tail.split().freeze();
            self.chunks_len += before.len();
            self.chunks.push_back(before);
        }
        self.chunks_len += payload.len();
        self.chunks.push_back(payload.clone());
    }
}

impl Outgoing {
    /// Bytes waiting.
    pub(crate) fn len(&self) -> usize {
        self.chunks_len + self.tail.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes everything, in order, then empties itself for reuse (letting
    /// a large buffer go rather than keeping it for an idle peer).
    pub(crate) async fn write_to<W: AsyncWrite + Unpin>(&mut self, out: &mut W) -> io::Result<()> {
        for chunk in &self.chunks {
            out.write_all(chunk).await?;
        }
        out.write_all(&self.tail).await?;
        self.chunks.clear();
        self.chunks_len = 0;
        if self.tail.capacity() > KEEP_CAPACITY {
            self.tail = BytesMut::new();
        } else {
            self.tail.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Message;
    use crate::protocol::v2::Frame;

    #[tokio::test]
    async fn a_large_payload_is_shared_not_copied_and_order_is_kept() {
        let big = Message::new("b".repeat(SHARED_PAYLOAD));
        let mut queues: Vec<Outgoing> = (0..100).map(|_| Outgoing::default()).collect();
        for q in &mut queues {
            Frame::Text(Message::new("before")).encode(q);
            Frame::Text(big.clone()).encode(q);
            Frame::Ping(1).encode(q);
        }
        // Every queue points at the one copy of the payload.
        for q in &queues {
            assert_eq!(q.chunks.len(), 2, "what came before, then the payload");
            assert_eq!(q.chunks[1].as_ptr(), big.as_bytes().as_ptr());
        }
        let mut expected = BytesMut::new();
        Frame::Text(Message::new("before")).encode(&mut expected);
        Frame::Text(big.clone()).encode(&mut expected);
        Frame::Ping(1).encode(&mut expected);
        let mut written = Vec::new();
        let q = &mut queues[0];
        assert_eq!(q.len(), expected.len());
        q.write_to(&mut written).await.unwrap();
        assert_eq!(written, expected);
        assert!(q.is_empty());
    }
}
