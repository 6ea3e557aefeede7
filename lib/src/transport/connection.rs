use bytes::{Bytes, BytesMut};
use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use super::memory_budget::{MemoryBudget, Reservation, UNBUDGETED_FRAME};
use crate::protocol::v2::{Frame, V2Codec, V2CodecError, claimed_frame_len};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio_util::codec::Decoder;

/// The most free space a read asks for. Reads are sized by the traffic,
/// never by a length the peer announced, so a lying header costs nothing;
/// 64 KiB lets one syscall carry thousands of small frames.
pub(crate) const READ_CHUNK: usize = 64 * 1024;

/// The first read's size, and what a connection goes back to once its
/// buffer is empty: an idle connection holds a few KiB at most, whatever
/// it sent before.
const SMALL_READ: usize = 4 * 1024;

thread_local! {
    /// Where a connection with nothing buffered reads into: allocated once
    /// per thread, so ten thousand idle connections hold no read buffers.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// One read into this thread's scratch space, the bytes read then copied
/// into `buf` (sized to fit them). The scratch is borrowed only inside this
/// synchronous poll, never across an `.await`; if it is somehow in use
/// already, the read goes straight into `buf` instead.
fn read_via_scratch<S: AsyncRead>(
    stream: Pin<&mut S>,
    cx: &mut Context<'_>,
    buf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            let mut read = ReadBuf::new(&mut scratch);
            ready!(stream.poll_read(cx, &mut read))?;
            buf.extend_from_slice(read.filled());
            Poll::Ready(Ok(read.filled().len()))
        }
        Err(_) => {
            buf.reserve(SMALL_READ);
            tokio_util::io::poll_read_buf(stream, cx, buf)
        }
    })
}

/// A byte stream plus the buffers and codec that turn it into frames.
///
/// Reading is split into steps on purpose. Readers drain
/// [`Connection::next_buffered`] until it says `None` (the moment to flush
/// any batched work), then call [`Connection::fill`] for more bytes. Bytes
/// to send are encoded elsewhere (by a v2 session, the v1 encoder) and
/// queued whole with [`Connection::queue_raw`] before a connection is split;
/// after that its write side belongs to a `WriteQueue`.
pub(crate) struct Connection<S, C> {
    stream: S,
    codec: C,
    read_buf: BytesMut,
    write_buf: BytesMut,
    /// How much free space the next read asks for: doubles while reads
    /// fill it, back to small when the buffer empties.
    read_size: usize,
    /// Budget taken for the large frame being read, if one is.
    reserved: Option<Reservation>,
    /// Whether the last read filled all the space it had.
    streaming: bool,
    /// Waiting for the budget a large frame needs, while it is.
    reserving: Option<Pin<Box<dyn Future<Output = Reservation> + Send>>>,
}

impl<S, C> std::fmt::Debug for Connection<S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("buffered", &self.read_buf.len())
            .field("streaming", &self.streaming)
            .finish_non_exhaustive()
    }
}

impl<S, C> Connection<S, C> {
    /// Wraps `stream`, decoding and encoding with `codec`.
    pub(crate) fn new(stream: S, codec: C) -> Self {
        Connection {
            stream,
            codec,
            read_buf: BytesMut::new(),
            write_buf: BytesMut::new(),
            read_size: SMALL_READ,
            reserved: None,
            streaming: false,
            reserving: None,
        }
    }

    /// Swaps the codec while keeping both buffers, so bytes already read
    /// (such as the one used to pick a protocol version) are not lost.
    pub(crate) fn map_codec<D>(self, f: impl FnOnce(C) -> D) -> Connection<S, D> {
        Connection {
            stream: self.stream,
            codec: f(self.codec),
            read_buf: self.read_buf,
            write_buf: self.write_buf,
            read_size: self.read_size,
            reserved: self.reserved,
            streaming: self.streaming,
            reserving: self.reserving,
        }
    }

    /// The stream, e.g. to make its close a reset.
    pub(crate) fn stream(&self) -> &S {
        &self.stream
    }

    /// The stream, for a driver that writes it directly.
    pub(crate) fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The codec, e.g. to change its limits once a handshake is done.
    pub(crate) fn codec_mut(&mut self) -> &mut C {
        &mut self.codec
    }

    /// Separates reading from writing so that each can run in its own
    /// task (a v1 client, which only waits for the server's end while it
    /// writes): the read side keeps the buffered input and the codec, the
    /// write side goes to [`WriteQueue::run_writer`](super::WriteQueue::run_writer). Call only
    /// with nothing queued (after [`Connection::flush`]); queued bytes would
    /// be lost.
    pub(crate) fn split(self) -> (Connection<ReadHalf<S>, C>, WriteHalf<S>)
    where
        S: AsyncRead + AsyncWrite,
    {
        debug_assert!(self.write_buf.is_empty(), "split with unsent bytes");
        let (r, w) = tokio::io::split(self.stream);
        (
            Connection {
                stream: r,
                codec: self.codec,
                read_buf: self.read_buf,
                write_buf: BytesMut::new(),
                read_size: self.read_size,
                reserved: self.reserved,
                streaming: self.streaming,
                reserving: self.reserving,
            },
            w,
        )
    }
}

impl<S, C> Connection<S, C>
where
    S: AsyncRead + Unpin,
{
    /// Waits until at least one byte is buffered and returns the first,
    /// without consuming it; `None` if the peer closed before sending any.
    pub(crate) async fn peek_first_byte(&mut self) -> io::Result<Option<u8>> {
        while self.read_buf.is_empty() {
            if self.fill().await? == 0 {
                return Ok(None);
            }
        }
        Ok(Some(self.read_buf[0]))
    }

    /// Reads whatever the peer has sent so far into the buffer; `Ok(0)` means
    /// the peer closed its side. Cancel-safe: dropping the future loses no
    /// data, so it can sit in a `select!`.
    pub(crate) async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// [`Connection::fill`] as a poll, for a driver that waits on several
    /// things at once.
    pub(crate) fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.read_buf.is_empty() && !self.streaming {
            // Everything was handed out and the peer paused: hold nothing
            // for it while it stays quiet (a large frame's allocation goes
            // with its frame), and read what it sends next into this
            // thread's scratch space, keeping only what arrived.
            if self.read_buf.capacity() > 0 {
                self.read_buf = BytesMut::new();
            }
            self.read_size = SMALL_READ;
            let n = ready!(read_via_scratch(
                Pin::new(&mut self.stream),
                cx,
                &mut self.read_buf
            ))?;
            self.streaming = n == READ_CHUNK;
            if self.streaming {
                self.read_size = READ_CHUNK;
            }
            return Poll::Ready(Ok(n));
        }
        if self.read_buf.capacity() - self.read_buf.len() < self.read_size / 4 {
            // Reclaims the consumed front of the buffer when possible, so a
            // long stream keeps reusing one allocation.
            self.read_buf.reserve(self.read_size);
        }
        let room = self.read_buf.capacity() - self.read_buf.len();
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut self.stream),
            cx,
            &mut self.read_buf
        ))?;
        // A read that filled the space means the peer has more to say:
        // ask for more next time, and keep the buffer.
        self.streaming = n == room;
        if self.streaming {
            self.read_size = (self.read_size * 2).min(READ_CHUNK);
        }
        Poll::Ready(Ok(n))
    }

    /// Like [`Connection::poll_fill`], but first takes from `budget` the
    /// bytes the frame being read claims (`claimed`, whole length) when it
    /// is larger than a read: until they are free, this connection is not
    /// read at all. The reservation is returned once no large frame is
    /// pending.
    pub(crate) fn poll_fill_within(
        &mut self,
        cx: &mut Context<'_>,
        budget: &MemoryBudget,
        claimed: Option<usize>,
    ) -> Poll<io::Result<usize>> {
        match claimed.filter(|&len| len > UNBUDGETED_FRAME) {
            None => {
                self.reserved = None;
                self.reserving = None;
            }
            Some(len) if self.reserved.as_ref().is_some_and(|r| r.bytes() >= len) => {}
            Some(len) => {
                self.reserved = None;
                let reserving = self.reserving.get_or_insert_with(|| {
                    let budget = budget.clone();
                    Box::pin(async move { budget.reserve(len).await })
                });
                self.reserved = Some(ready!(reserving.as_mut().poll(cx)));
                self.reserving = None;
            }
        }
        self.poll_fill(cx)
    }

    /// Bytes read but not yet decoded.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.read_buf
    }
}

impl<S, C> Connection<S, C>
where
    S: AsyncWrite + Unpin,
{
    /// Writes every queued byte and flushes the stream.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if !self.write_buf.is_empty() {
            self.stream.write_all(&self.write_buf).await?;
            self.write_buf.clear();
        }
        self.stream.flush().await
    }

    /// Flushes, then closes our sending side so the peer sees a clean end.
    pub(crate) async fn shutdown(&mut self) -> io::Result<()> {
        self.flush().await?;
        self.stream.shutdown().await
    }

    /// Queues bytes encoded elsewhere (a session's frames, the frozen
    /// version reply); nothing is sent until [`Connection::flush`].
    pub(crate) fn queue_raw(&mut self, bytes: &[u8]) {
        self.write_buf.extend_from_slice(bytes);
    }
}

impl<S, C> Connection<S, C>
where
    S: AsyncRead + Unpin,
    C: Decoder,
{
    /// The next frame already in the buffer, without reading: `None` means
    /// "everything received so far has been handed out".
    pub(crate) fn next_buffered(&mut self) -> Result<Option<C::Item>, C::Error> {
        self.codec.decode(&mut self.read_buf)
    }

    /// The next frame, reading as needed; `None` when the peer closed
    /// cleanly between frames. A stream that ends inside a frame is the
    /// codec's error (its `decode_eof`).
    pub(crate) async fn read_frame(&mut self) -> Result<Option<C::Item>, C::Error> {
        loop {
            if let Some(frame) = self.next_buffered()? {
                return Ok(Some(frame));
            }
            if self.fill().await? == 0 {
                return self.finish();
            }
        }
    }

    /// Call once the peer has closed: the last frame, if the final read
    /// completed one, or the codec's verdict on leftover bytes.
    pub(crate) fn finish(&mut self) -> Result<Option<C::Item>, C::Error> {
        self.codec.decode_eof(&mut self.read_buf)
    }
}

/// A large payload with the budget it was admitted with: the budget is
/// returned when the last copy of the payload is gone (a response queued
/// for a slow reader, a broadcast in many queues), not when it was decoded.
struct Budgeted {
    bytes: Bytes,
    _reservation: Reservation,
}

impl AsRef<[u8]> for Budgeted {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl<S> Connection<S, V2Codec>
where
    S: AsyncRead + Unpin,
{
    /// Whether a frame (or a header the codec refuses) is buffered whole:
    /// more to receive before the connection is caught up.
    pub(crate) fn frame_ready(&self) -> bool {
        self.codec.has_frame(&self.read_buf)
    }

    /// Like [`Connection::next_buffered`], but a large frame read with a
    /// budget reservation takes the reservation along in its payload, so
    /// the memory stays counted wherever the payload goes (echoed into an
    /// outbound queue, shared by a broadcast) until its last copy is gone.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Frame>, V2CodecError> {
        let large = self.reserved.is_some()
            && claimed_frame_len(&self.read_buf)
                .is_some_and(|len| len > UNBUDGETED_FRAME && self.read_buf.len() >= len);
        let mut frame = self.codec.decode(&mut self.read_buf)?;
        if large
            && let Some(frame) = frame.as_mut()
            && let Some(reservation) = self.reserved.take()
        {
            frame.rehold_payload(|bytes| {
                Bytes::from_owner(Budgeted {
                    bytes,
                    _reservation: reservation,
                })
            });
        }
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::v1::{CodecError, DecodeError, V1Codec};

    #[tokio::test]
    async fn frames_survive_a_byte_at_a_time() {
        let (client, server) = tokio::io::duplex(1);
        let writer = tokio::spawn(async move {
            let mut c = Connection::new(client, V1Codec);
            for m in ["a", "", "long message"] {
                let mut frame = BytesMut::new();
                crate::protocol::v1::encode_message(m, &mut frame).unwrap();
                c.queue_raw(&frame);
            }
            c.shutdown().await.unwrap();
        });
        let mut s = Connection::new(server, V1Codec);
        let mut got = Vec::new();
        while let Some(m) = s.read_frame().await.unwrap() {
            got.push(m.as_str().to_owned());
        }
        writer.await.unwrap();
        assert_eq!(got, ["a", "", "long message"]);
    }

    #[tokio::test]
    async fn eof_inside_a_frame_is_an_error() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"\x01\x00\x09abc").await.unwrap();
        drop(client);
        let mut s = Connection::new(server, V1Codec);
        assert!(matches!(
            s.read_frame().await,
            Err(CodecError::Decode(DecodeError::Truncated { .. }))
        ));
    }
}
