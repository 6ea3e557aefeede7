//! A connection's bytes waiting to be written: small frames copied into
//! one buffer, large payloads kept as the shared [`Bytes`] they came in, so
//! a broadcast to many clients is held once, however many queues it sits
//! in.

use bytes::{Buf, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::AsyncWrite;

use super::buffer_pool::{self, Reusable};
use crate::protocol::v2::frame::{FrameSink, SHARED_PAYLOAD};

/// What a buffer holds when its first frame is encoded.
const FIRST_CAPACITY: usize = 512;

/// Chunks handed to one vectored write (the system's limit is 1,024).
const MAX_SLICES: usize = 64;

/// A write buffer is kept for reuse while it is this small (the typical
/// batch's, grown a few times); a larger one is freed.
const KEPT_CAPACITY: usize = 16 * 1024;

impl Reusable for BytesMut {
    fn stash() -> &'static std::thread::LocalKey<std::cell::RefCell<Vec<Self>>> {
        thread_local! {
            static STASH: std::cell::RefCell<Vec<BytesMut>> =
                const { std::cell::RefCell::new(Vec::new()) };
        }
        &STASH
    }

    fn reset(&mut self) -> bool {
        self.clear();
        // Only a buffer nothing else shares (no frozen chunk still points
        // into it) gets its whole capacity back without copying.
        self.try_reclaim(FIRST_CAPACITY) && self.capacity() <= KEPT_CAPACITY
    }
}

/// Bytes in order: every chunk, then the tail.
#[derive(Debug, Default)]
pub(crate) struct Outgoing {
    chunks: VecDeque<Bytes>,
    chunks_len: usize,
    tail: BytesMut,
}

impl crate::protocol::v2::frame::Sealed for Outgoing {}

impl FrameSink for Outgoing {
    #[inline]
    fn buf(&mut self) -> &mut BytesMut {
        if self.tail.capacity() == 0 {
            // A buffer this thread let go of, or one allocation for a
            // typical batch of frames (instead of a chain of doublings
            // from the first frame's size).
            self.tail = buffer_pool::take();
            self.tail.reserve(FIRST_CAPACITY);
        }
        &mut self.tail
    }

    #[inline]
    fn put_payload(&mut self, payload: &Bytes) {
        if payload.len() < SHARED_PAYLOAD {
            self.buf().extend_from_slice(payload);
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

    /// Puts `other`'s bytes after ours.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn append(&mut self, mut other: Outgoing) {
        if other.is_empty() {
            return;
        }
        if self.is_empty() {
            buffer_pool::give(std::mem::replace(&mut self.tail, BytesMut::new()));
            *self = other;
            return;
        }
        if !self.tail.is_empty() {
            let tail = self.tail.split().freeze();
            self.chunks_len += tail.len();
            self.chunks.push_back(tail);
        }
        self.chunks_len += other.chunks_len;
        self.chunks.append(&mut other.chunks);
        if !other.tail.is_empty() {
            let tail = other.tail.split().freeze();
            self.chunks_len += tail.len();
            self.chunks.push_back(tail);
        }
    }

    /// Writes everything, in order, then lets its buffer go (the next
    /// batch allocates its own; an idle peer holds none). Many
    /// chunks go out in one vectored write (`writev`), not one call each.
    /// Resumable: on `Pending`, what was written is gone from `self` and
    /// the next call goes on from there.
    pub(crate) fn poll_write_to<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut W,
    ) -> Poll<io::Result<()>> {
        if !self.chunks.is_empty() {
            // The tail goes after the chunks, as one more chunk.
            if !self.tail.is_empty() {
                let tail = self.tail.split().freeze();
                self.chunks_len += tail.len();
                self.chunks.push_back(tail);
            }
            while !self.chunks.is_empty() {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let mut count = 0;
                for (slot, chunk) in slices.iter_mut().zip(&self.chunks) {
                    *slot = IoSlice::new(chunk);
                    count += 1;
                }
                let n = ready!(Pin::new(&mut *out).poll_write_vectored(cx, &slices[..count]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                self.consume(n);
            }
            self.chunks_len = 0;
        }
        while !self.tail.is_empty() {
            let n = ready!(Pin::new(&mut *out).poll_write(cx, &self.tail))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.tail.advance(n);
        }
        // Nothing is kept for the next batch: an idle connection should
        // hold no buffer. It goes to this thread's stash, for whichever
        // connection writes next.
        buffer_pool::give(std::mem::take(&mut self.tail));
        Poll::Ready(Ok(()))
    }

    /// [`Outgoing::poll_write_to`] as a future.
    #[cfg(test)]
    pub(crate) async fn write_to<W: AsyncWrite + Unpin>(&mut self, out: &mut W) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_write_to(cx, out)).await
    }

    /// Drops the first `n` bytes of the chunks (written).
    fn consume(&mut self, mut n: usize) {
        self.chunks_len -= n.min(self.chunks_len);
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            if front.len() <= n {
                n -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
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

    #[tokio::test]
    async fn partial_vectored_writes_keep_every_byte_in_order() {
        let mut q = Outgoing::default();
        let mut expected = BytesMut::new();
        for i in 0..200u32 {
            let size = if i % 3 == 0 {
                SHARED_PAYLOAD + i as usize
            } else {
                10
            };
            let frame = Frame::Binary(Bytes::from(vec![i as u8; size]));
            frame.encode(&mut q);
            frame.encode(&mut expected);
        }
        // A pipe that takes at most 7 bytes per write.
        let (mut writer, mut reader) = tokio::io::duplex(7);
        let read = tokio::spawn(async move {
            let mut got = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut reader, &mut got)
                .await
                .unwrap();
            got
        });
        q.write_to(&mut writer).await.unwrap();
        drop(writer);
        assert_eq!(read.await.unwrap(), expected);
        assert!(q.is_empty());
    }
}
