//! WebSocket as one more byte stream under v2 (spec section 4): every
//! binary WebSocket message carries exactly one v2 frame, so a browser can
//! speak v2 and the server serves it with the very same session, limits and
//! handler as a TCP connection.
//!
//! The messages are *streamed*, not collected: a WebSocket frame's payload
//! flows to the v2 codec as it arrives, so a large frame is admitted by the
//! memory budget from its v2 header and read only when its size is free,
//! exactly as over TCP. (A WebSocket library that hands over whole messages
//! would buffer up to the largest message per connection before any limit
//! could look at it.) The header formats, the accept key and the close codes
//! come from `tungstenite`; the streaming is ours.
//!
//! Both ends: a server reads masked frames and writes plain ones, a client
//! the other way round (RFC 6455 section 5.3).

use bytes::{Buf, BufMut, BytesMut};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

/// The subprotocol (`Sec-WebSocket-Protocol`) that carries v2 frames.
pub const SUBPROTOCOL: &str = "rust-tcp.v2";

/// v2's frame header: version, type, payload length.
const V2_HEADER: usize = 6;
/// Control frames carry at most this much (RFC 6455 5.5).
const MAX_CONTROL: u64 = 125;
/// Bytes of WebSocket frames held for the socket before writers wait.
const WRITE_HIGH: usize = 64 * 1024;
/// What one read from the socket asks for: many small messages at once.
const READ_CHUNK: usize = 16 * 1024;

/// Which end of the WebSocket we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Server,
    Client,
}

/// Where the reader is in the peer's WebSocket frames.
#[derive(Debug)]
enum Reading {
    /// Between frames: the next bytes are a frame header.
    Header,
    /// Inside a data frame's payload: `left` bytes to go.
    Payload {
        left: u64,
        mask: Option<[u8; 4]>,
        at: usize,
        fin: bool,
    },
    /// The peer's close came (and was answered): the stream has ended.
    Ended,
}

/// The v2 frame the current message carries, checked as it streams: one
/// whole frame, no more, no less.
#[derive(Debug, Default)]
struct MessageCheck {
    /// A message is in progress (its first frame came, not yet its last).
    open: bool,
    /// Bytes of the message delivered so far.
    got: u64,
    /// The v2 header's bytes, until all six have come.
    head: [u8; V2_HEADER],
    /// The message's whole length, once the v2 header says it.
    whole: Option<u64>,
}

impl MessageCheck {
    /// Takes `bytes` (the next of the message) into account, or says why
    /// the message is wrong.
    fn take(&mut self, bytes: &[u8]) -> Result<(), Violation> {
        if self.got == 0
            && let Some(&first) = bytes.first()
            && first != 2
        {
            return Err(Violation::protocol(format!(
                "a message must carry a v2 frame, whose first byte is 2, not {first} \
                 (v1 does not travel over WebSocket)"
            )));
        }
        let mut rest = bytes;
        while self.got < V2_HEADER as u64 && !rest.is_empty() {
            self.head[self.got as usize] = rest[0];
            self.got += 1;
            rest = &rest[1..];
            if self.got == V2_HEADER as u64 {
                let h = self.head;
                let len = u32::from_be_bytes([h[2], h[3], h[4], h[5]]);
                self.whole = Some(V2_HEADER as u64 + u64::from(len));
            }
        }
        self.got += rest.len() as u64;
        match self.whole {
            Some(whole) if self.got > whole => Err(Violation::protocol(format!(
                "a WebSocket message must hold exactly one v2 frame; this one goes on past its frame of {whole} bytes"
            ))),
            _ => Ok(()),
        }
    }

    /// The message's last frame ended: was it exactly one v2 frame?
    fn finish(&mut self) -> Result<(), Violation> {
        let ok = self.whole == Some(self.got);
        let got = self.got;
        *self = MessageCheck::default();
        if ok {
            Ok(())
        } else {
            Err(Violation::protocol(format!(
                "a WebSocket message must hold exactly one v2 frame; this one ended after {got} bytes, inside a frame"
            )))
        }
    }
}

/// A peer that broke the WebSocket mapping: we send a WebSocket close with
/// `code` and `reason`, and the connection ends with an error saying so.
#[derive(Debug, Clone)]
pub(crate) struct Violation {
    pub(crate) code: u16,
    pub(crate) reason: String,
}

impl Violation {
    fn protocol(reason: String) -> Violation {
        Violation { code: 1002, reason }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebSocket: {} (close {})", self.reason, self.code)
    }
}

impl std::error::Error for Violation {}

/// A WebSocket connection read and written as the v2 byte stream it
/// carries.
#[derive(Debug)]
pub(crate) struct WsStream<S> {
    inner: S,
    role: Role,
    /// Socket bytes not yet decoded: a frame header (and a control frame's
    /// payload), or payload the caller had no room for.
    rbuf: BytesMut,
    reading: Reading,
    message: MessageCheck,
    /// The largest message accepted: our v2 limit plus its header.
    max_message: u64,
    /// WebSocket frames ready for the socket.
    wbuf: BytesMut,
    /// The v2 frame being wrapped: header bytes so far, payload bytes left.
    out_head: [u8; V2_HEADER],
    out_head_len: usize,
    out_left: u64,
    /// A client masks what it sends: the current frame's key and position.
    out_mask: [u8; 4],
    out_at: usize,
    close_sent: bool,
}

impl<S> WsStream<S> {
    /// Wraps a stream whose WebSocket handshake is done. `read_ahead` holds
    /// bytes that came with the handshake.
    pub(crate) fn new(inner: S, role: Role, max_message: u64, read_ahead: BytesMut) -> Self {
        WsStream {
            inner,
            role,
            rbuf: read_ahead,
            reading: Reading::Header,
            message: MessageCheck::default(),
            max_message,
            wbuf: BytesMut::new(),
            out_head: [0; V2_HEADER],
            out_head_len: 0,
            out_left: 0,
            out_mask: [0; 4],
            out_at: 0,
            close_sent: false,
        }
    }

    /// The stream underneath.
    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Appends one frame's header to `wbuf`.
    fn put_header(&mut self, opcode: OpCode, len: u64) {
        let mask = (self.role == Role::Client).then(random_mask);
        let header = tungstenite::protocol::frame::FrameHeader {
            is_final: true,
            opcode,
            mask,
            ..Default::default()
        };
        let mut out = Vec::with_capacity(14);
        header
            .format(len, &mut out)
            .expect("writing a header into a Vec cannot fail");
        self.wbuf.put_slice(&out);
        if let Some(key) = mask {
            self.out_mask = key;
            self.out_at = 0;
        }
    }

    /// Appends payload bytes of the frame begun last, masked if we are the
    /// client.
    fn put_payload(&mut self, bytes: &[u8]) {
        let start = self.wbuf.len();
        self.wbuf.put_slice(bytes);
        if self.role == Role::Client {
            apply_mask(&mut self.wbuf[start..], self.out_mask, self.out_at);
            self.out_at = (self.out_at + bytes.len()) % 4;
        }
    }

    /// Queues a control frame (a pong, a close).
    fn put_control(&mut self, opcode: OpCode, payload: &[u8]) {
        self.put_header(opcode, payload.len() as u64);
        self.put_payload(payload);
    }

    /// Queues our close frame, once.
    fn put_close(&mut self, code: u16, reason: &str) {
        if self.close_sent {
            return;
        }
        self.close_sent = true;
        let mut payload = code.to_be_bytes().to_vec();
        // A close's reason fits in a control frame: cut at a char boundary.
        let mut end = reason.len().min(MAX_CONTROL as usize - 2);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        payload.extend_from_slice(&reason.as_bytes()[..end]);
        self.put_control(OpCode::Control(Control::Close), &payload);
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsStream<S> {
    /// Writes what `wbuf` holds, as far as the socket takes it.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.wbuf.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.wbuf))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.wbuf.advance(n);
        }
        // An idle connection holds no write buffer.
        self.wbuf = BytesMut::new();
        Poll::Ready(Ok(()))
    }

    /// The peer broke the mapping: our close says why (best effort, now),
    /// and the read fails with the reason.
    fn violation(&mut self, cx: &mut Context<'_>, v: Violation) -> Poll<io::Result<()>> {
        self.put_close(v.code, &v.reason);
        let _ = self.poll_drain(cx);
        self.reading = Reading::Ended;
        Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, v)))
    }

    /// Reads more socket bytes into `rbuf`; `false` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        self.rbuf.reserve(READ_CHUNK);
        let spare = self.rbuf.spare_capacity_mut();
        let room = READ_CHUNK.min(spare.len());
        let mut buf = ReadBuf::uninit(&mut spare[..room]);
        if Pin::new(&mut self.inner)
            .poll_read(cx, &mut buf)?
            .is_pending()
        {
            if self.rbuf.is_empty() {
                // Waiting with nothing half-read: an idle connection holds
                // no read buffer.
                self.rbuf = BytesMut::new();
            }
            return Poll::Pending;
        }
        let n = buf.filled().len();
        // SAFETY: `poll_read` initialised the first `n` bytes of the spare
        // capacity it was given (ReadBuf's contract), and `n` is within it.
        unsafe { self.rbuf.set_len(self.rbuf.len() + n) };
        Poll::Ready(Ok(n > 0))
    }

    /// Decodes the frame header at the front of `rbuf`, if it is whole.
    fn header(
        &mut self,
    ) -> Result<Option<(tungstenite::protocol::frame::FrameHeader, u64)>, Violation> {
        let mut cursor = io::Cursor::new(&self.rbuf[..]);
        let parsed = tungstenite::protocol::frame::FrameHeader::parse(&mut cursor)
            .map_err(|e| Violation::protocol(format!("malformed frame header: {e}")))?;
        let Some((header, len)) = parsed else {
            return Ok(None);
        };
        let used = cursor.position() as usize;
        self.rbuf.advance(used);
        Ok(Some((header, len)))
    }
}

/// A fresh mask key (RFC 6455 5.3 wants it unpredictable; a randomly keyed
/// hasher is random enough for that, without a dependency).
fn random_mask() -> [u8; 4] {
    use std::hash::{BuildHasher, Hasher};
    let n = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (n as u32).to_be_bytes()
}

/// XORs `bytes` with `mask`, the first byte being at position `at` of the
/// frame's payload; eight bytes at a time.
fn apply_mask(bytes: &mut [u8], mask: [u8; 4], at: usize) {
    let m = [
        mask[at % 4],
        mask[(at + 1) % 4],
        mask[(at + 2) % 4],
        mask[(at + 3) % 4],
    ];
    let word = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = bytes.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut v = [0u8; 8];
        v.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(v) ^ word).to_ne_bytes());
    }
    // What is left starts at a multiple of 8: in phase with `m`.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    /// Fills `buf` with as much of the v2 stream as is here: every message
    /// already read goes out in one call (the decoder then sees a batch, as
    /// over TCP), and the socket is read only when nothing is left.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Pongs and a close reply go out as soon as we are polled.
        if !this.wbuf.is_empty() {
            let _ = this.poll_drain(cx);
        }
        let mut delivered = false;
        loop {
            match this.reading {
                Reading::Ended => return Poll::Ready(Ok(())),
                Reading::Payload { left: 0, fin, .. } => {
                    this.reading = Reading::Header;
                    if fin && let Err(v) = this.message.finish() {
                        return this.violation(cx, v);
                    }
                }
                Reading::Payload {
                    left,
                    mask,
                    at,
                    fin,
                } => {
                    let room = buf
                        .remaining()
                        .min(usize::try_from(left).unwrap_or(usize::MAX));
                    if room == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    let n = if !this.rbuf.is_empty() {
                        let n = room.min(this.rbuf.len());
                        let mut bytes = this.rbuf.split_to(n);
                        if let Some(key) = mask {
                            apply_mask(&mut bytes, key, at);
                        }
                        if let Err(v) = this.message.take(&bytes) {
                            return this.violation(cx, v);
                        }
                        buf.put_slice(&bytes);
                        n
                    } else if delivered {
                        return Poll::Ready(Ok(()));
                    } else {
                        // Nothing buffered: a large payload goes straight
                        // into the caller's buffer, without a copy.
                        let unfilled = buf.initialize_unfilled_to(room);
                        let mut sub = ReadBuf::new(unfilled);
                        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut sub))?;
                        let n = sub.filled().len();
                        if n == 0 {
                            return Poll::Ready(Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                "the stream ended inside a WebSocket frame",
                            )));
                        }
                        let got = &mut buf.initialize_unfilled_to(n)[..n];
                        if let Some(key) = mask {
                            apply_mask(got, key, at);
                        }
                        if let Err(v) = this.message.take(got) {
                            return this.violation(cx, v);
                        }
                        buf.advance(n);
                        n
                    };
                    delivered = true;
                    this.reading = Reading::Payload {
                        left: left - n as u64,
                        mask,
                        at: (at + n) % 4,
                        fin,
                    };
                }
                Reading::Header => {
                    let (header, len) = match this.header() {
                        Ok(Some(found)) => found,
                        Ok(None) if delivered => return Poll::Ready(Ok(())),
                        Ok(None) => {
                            if !ready!(this.poll_fill(cx))? {
                                if this.message.open
                                    || this.message.got > 0
                                    || !this.rbuf.is_empty()
                                {
                                    return Poll::Ready(Err(io::Error::new(
                                        io::ErrorKind::UnexpectedEof,
                                        "the stream ended inside a WebSocket message",
                                    )));
                                }
                                return Poll::Ready(Ok(())); // ended without a close
                            }
                            continue;
                        }
                        Err(v) => return this.violation(cx, v),
                    };
                    if let Err(v) = this.accept_header(&header, len) {
                        return this.violation(cx, v);
                    }
                    match header.opcode {
                        OpCode::Data(Data::Binary) | OpCode::Data(Data::Continue) => {
                            this.reading = Reading::Payload {
                                left: len,
                                mask: header.mask,
                                at: 0,
                                fin: header.is_final,
                            };
                        }
                        OpCode::Control(_) => {
                            // Whole in rbuf before it is acted on (at most 125 bytes).
                            while (this.rbuf.len() as u64) < len {
                                if !ready!(this.poll_fill(cx))? {
                                    return Poll::Ready(Err(io::Error::new(
                                        io::ErrorKind::UnexpectedEof,
                                        "the stream ended inside a WebSocket control frame",
                                    )));
                                }
                            }
                            let mut payload = this.rbuf.split_to(len as usize);
                            if let Some(key) = header.mask {
                                apply_mask(&mut payload, key, 0);
                            }
                            match header.opcode {
                                OpCode::Control(Control::Ping) => {
                                    this.put_control(OpCode::Control(Control::Pong), &payload);
                                    let _ = this.poll_drain(cx);
                                }
                                OpCode::Control(Control::Close) => {
                                    // Answer with the same code, then the stream ends.
                                    let code = if payload.len() >= 2 {
                                        u16::from_be_bytes([payload[0], payload[1]])
                                    } else {
                                        1000
                                    };
                                    this.put_close(code, "");
                                    let _ = this.poll_drain(cx);
                                    this.reading = Reading::Ended;
                                    return Poll::Ready(Ok(()));
                                }
                                _ => {} // a pong: nothing to do
                            }
                        }
                        OpCode::Data(_) => unreachable!("refused by accept_header"),
                    }
                }
            }
        }
    }
}

impl<S> WsStream<S> {
    /// Whether a frame with this header may come now.
    fn accept_header(
        &mut self,
        header: &tungstenite::protocol::frame::FrameHeader,
        len: u64,
    ) -> Result<(), Violation> {
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(Violation::protocol(
                "reserved bits set (no extension was agreed)".into(),
            ));
        }
        match (self.role, header.mask) {
            (Role::Server, None) => {
                return Err(Violation::protocol(
                    "a client's frame must be masked".into(),
                ));
            }
            (Role::Client, Some(_)) => {
                return Err(Violation::protocol(
                    "a server's frame must not be masked".into(),
                ));
            }
            _ => {}
        }
        match header.opcode {
            OpCode::Data(Data::Text) => Err(Violation {
                code: 1003,
                reason: "a text message; v2 frames travel in binary messages".into(),
            }),
            OpCode::Data(Data::Binary) if self.message.open => Err(Violation::protocol(
                "a new message began before the last one ended".into(),
            )),
            OpCode::Data(Data::Continue) if !self.message.open => Err(Violation::protocol(
                "a continuation frame outside a message".into(),
            )),
            OpCode::Data(Data::Binary) | OpCode::Data(Data::Continue) => {
                if self.message.got.saturating_add(len) > self.max_message {
                    return Err(Violation {
                        code: 1009,
                        reason: format!(
                            "a message of more than {} bytes (one v2 frame of at most {} bytes of payload)",
                            self.max_message,
                            self.max_message - V2_HEADER as u64
                        ),
                    });
                }
                // Open until its final frame has come.
                self.message.open = !header.is_final;
                Ok(())
            }
            OpCode::Data(_) => Err(Violation::protocol("a reserved data opcode".into())),
            OpCode::Control(Control::Ping | Control::Pong | Control::Close) => {
                if !header.is_final || len > MAX_CONTROL {
                    return Err(Violation::protocol(
                        "a control frame fragmented or over 125 bytes".into(),
                    ));
                }
                Ok(())
            }
            OpCode::Control(_) => Err(Violation::protocol("a reserved control opcode".into())),
        }
    }
}

impl<S> WsStream<S> {
    /// Wraps the v2 bytes of `buf` into WebSocket frames in `wbuf`, one
    /// per v2 frame (its header may come in one write and its payload in
    /// later ones); how many bytes were taken.
    fn wrap(&mut self, buf: &[u8]) -> usize {
        let take = buf.len().min(WRITE_HIGH.saturating_sub(self.wbuf.len()));
        let mut rest = &buf[..take];
        while !rest.is_empty() {
            if self.out_left == 0 {
                // The next v2 frame's header, perhaps across writes.
                let n = (V2_HEADER - self.out_head_len).min(rest.len());
                self.out_head[self.out_head_len..self.out_head_len + n].copy_from_slice(&rest[..n]);
                self.out_head_len += n;
                rest = &rest[n..];
                if self.out_head_len == V2_HEADER {
                    let h = self.out_head;
                    let len = u64::from(u32::from_be_bytes([h[2], h[3], h[4], h[5]]));
                    self.put_header(OpCode::Data(Data::Binary), V2_HEADER as u64 + len);
                    self.put_payload(&h);
                    self.out_head_len = 0;
                    self.out_left = len;
                }
            } else {
                let n = usize::try_from(self.out_left)
                    .unwrap_or(usize::MAX)
                    .min(rest.len());
                self.put_payload(&rest[..n]);
                self.out_left -= n as u64;
                rest = &rest[n..];
            }
        }
        take
    }
}

/// Writes are framed into a buffer and go to the socket on flush (the
/// driver flushes once it has written a batch), or when the buffer is
/// full: one system call for many frames.
impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.wbuf.len() >= WRITE_HIGH {
            ready!(this.poll_drain(cx))?;
        }
        Poll::Ready(Ok(this.wrap(buf)))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.wbuf.len() >= WRITE_HIGH {
            ready!(this.poll_drain(cx))?;
        }
        let mut taken = 0;
        for b in bufs {
            let n = this.wrap(b);
            taken += n;
            if n < b.len() {
                break;
            }
        }
        Poll::Ready(Ok(taken))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.put_close(1000, "");
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
