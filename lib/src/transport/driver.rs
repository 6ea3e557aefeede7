//! One v2 connection's task, for both ends (as quinn's one connection
//! driver serves client and server): it owns the stream, reads it, writes
//! what every sender queued, and sleeps until the session's next deadline.
//! What the frames mean is the [`Endpoint`]'s business: the server hands
//! them to the user's handler, the client to its waiting requests.
//!
//! An idle connection is data, not a stack of suspended futures. The wait
//! is one small poll over the socket, the session's deadline, the queue and
//! the endpoint's signal; the endpoint's work (a handler's `async` calls)
//! runs in a future allocated for that batch and gone with it. The read
//! buffer, the batch's storage and the write buffer are let go while
//! nothing is pending (the last two to this thread's stash, for the next
//! busy connection: `buffer_pool.rs`), so what stays per idle connection
//! is the record below, the session and the socket's registration.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};

use super::buffer_pool::{self, reusable_collection};
use super::receive_batch::MAX_BATCH;
use super::write_queue::{Taken, Writer};
use super::{BatchError, Connection, Deadline, MemoryBudget, Outgoing, ReceiveBatch, WriteQueue};
use crate::protocol::v2::{
    Expired, FrameError, Session, SessionError, SessionEvent, V2Codec, V2CodecError,
    claimed_frame_len,
};

reusable_collection!(Vec<SessionEvent>, MAX_BATCH);

/// Tells the session what is left unread (`left`: part of a frame, with a
/// deadline of its own) and returns its next deadline.
fn rearm(session: &mut Session, now: Instant, left: &[u8]) -> Option<Instant> {
    session.pending(now, left.len(), claimed_frame_len(left));
    session.poll_timeout()
}

/// A batch's work, allocated for as long as it runs.
pub(crate) type Work<'a, T> = Pin<Box<dyn Future<Output = Option<T>> + Send + 'a>>;

/// What is shared behind a connection's [`WriteQueue`]: a session (the
/// server's queue holds one; the client's holds `None` for v1).
pub(crate) trait HoldsSession {
    /// The v2 session.
    fn session(&mut self) -> &mut Session;
}

impl HoldsSession for Session {
    fn session(&mut self) -> &mut Session {
        self
    }
}

impl HoldsSession for Option<Session> {
    fn session(&mut self) -> &mut Session {
        self.as_mut().expect("a v2 connection has a session")
    }
}

/// An end of the connection: what it does with the session's events.
pub(crate) trait Endpoint: Send {
    /// How the endpoint ends a connection.
    type End: Send;

    /// Hands one batch's events over, in order; `caught_up` says that
    /// everything received so far is in them (a moment to flush). `Some`
    /// ends the connection.
    fn deliver<'a>(
        &'a mut self,
        events: &'a mut Vec<SessionEvent>,
        caught_up: bool,
        now: Instant,
    ) -> Work<'a, Self::End>;

    /// The largest frame to accept from now on, once the endpoint has
    /// opened the session (a server accepts a small HELLO before that).
    fn max_recv(&self) -> Option<u32> {
        None
    }

    /// Whether a batch with no events should still be delivered once
    /// caught up (the handler has unflushed work).
    fn wants_flush(&self) -> bool {
        false
    }

    /// A signal from outside the connection (the server stopping); polled
    /// with the I/O.
    fn poll_signal(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }

    /// Acts on the signal; `Some` ends the connection.
    fn on_signal(&mut self, now: Instant) -> Option<Self::End> {
        let _ = now;
        None
    }
}

/// How a driven connection ended, as the driver saw it; each end words it
/// in its own terms.
#[derive(Debug)]
pub(crate) enum Exit<E> {
    /// The endpoint ended it.
    Ended(E),
    /// The peer closed the stream between frames.
    PeerClosed,
    /// A frame broke the protocol; the session has queued its CLOSE.
    Violation(SessionError),
    /// Bytes that are no v2 frame; the session has queued its CLOSE
    /// (what it said is the error).
    Malformed(FrameError, SessionError),
    /// The stream ended inside a frame, or decoding failed otherwise.
    Codec(V2CodecError),
    /// One of the session's deadlines passed.
    Expired(Expired),
    /// Reading failed.
    ReadFailed(io::Error),
    /// Writing failed.
    WriteFailed(io::Error),
    /// The peer let its outbound queue overflow (it is not reading).
    Overflow {
        /// Bytes waiting.
        queued: usize,
    },
}

/// The counters a driver keeps (no-ops for a client).
#[derive(Debug, Clone)]
pub(crate) struct DriverCounters {
    /// Bytes read.
    pub(crate) received_bytes: metrics::Counter,
    /// Frames received.
    pub(crate) received_frames: metrics::Counter,
    /// Bytes written.
    pub(crate) sent_bytes: metrics::Counter,
}

/// Runs `f` on the session behind `queue` with its outbound buffer (the
/// receive path and the clock, whose answers are never refused); a peer
/// that lets even those pile up past the control bound is overflowing.
fn with_session<T: HoldsSession, R>(
    queue: &WriteQueue<T>,
    f: impl FnOnce(&mut Session, &mut Outgoing) -> R,
) -> R {
    let (result, overflowed) = queue.update(|t, out| f(t.session(), out));
    if overflowed {
        queue.overflow();
    }
    result
}

impl Default for DriverCounters {
    fn default() -> Self {
        DriverCounters {
            received_bytes: metrics::Counter::noop(),
            received_frames: metrics::Counter::noop(),
            sent_bytes: metrics::Counter::noop(),
        }
    }
}

/// What woke the driver.
enum Wake {
    Overflow,
    Signal,
    Timer,
    Read(usize),
    ReadFailed(io::Error),
    WriteFailed(io::Error),
}

/// One connection's stream, its shared session and queue, and what the
/// loop keeps between wake-ups.
pub(crate) struct Driver<S, T> {
    conn: Connection<S, V2Codec>,
    queue: Arc<WriteQueue<T>>,
    writer: Writer,
    /// Our sending side has been shut down (the queue was closed and
    /// drained).
    shut: bool,
    deadline: Deadline,
    batch: ReceiveBatch,
    /// The events of one batch, kept while frames keep coming.
    events: Vec<SessionEvent>,
    /// When the last read completed: frames in it arrived then.
    now: Instant,
    /// The session's next deadline, when the batch that caught up with
    /// everything buffered already asked for it.
    next_deadline: Option<Option<Instant>>,
    /// Large frames wait for their share of this (the server's).
    budget: Option<MemoryBudget>,
    counters: DriverCounters,
}

impl<S, T> Driver<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    T: HoldsSession + Send,
{
    /// A driver for `conn`, whose session (and outbound bytes) live in
    /// `queue`.
    pub(crate) fn new(
        conn: Connection<S, V2Codec>,
        queue: Arc<WriteQueue<T>>,
        budget: Option<MemoryBudget>,
        counters: DriverCounters,
    ) -> Self {
        Driver {
            conn,
            queue,
            writer: Writer::default(),
            shut: false,
            deadline: Deadline::new(),
            batch: ReceiveBatch::default(),
            events: Vec::new(),
            now: Instant::now(),
            next_deadline: None,
            budget,
            counters,
        }
    }

    /// Serves another session's queue from now on (a kept session resumed
    /// on this connection): the write state starts again with it.
    pub(crate) fn swap_queue(&mut self, queue: Arc<WriteQueue<T>>) {
        self.queue = queue;
        self.writer = Writer::default();
        self.shut = false;
        self.next_deadline = None;
    }

    /// Receives everything already decoded or buffered, handing each
    /// batch's events to `end`. `Ok(())` when caught up.
    async fn receive_buffered<E: Endpoint>(&mut self, end: &mut E) -> Result<(), Exit<E::End>> {
        loop {
            let pending = self.batch.pending(&self.conn);
            let mut events = std::mem::take(&mut self.events);
            if pending && events.capacity() == 0 {
                events = buffer_pool::take();
            }
            self.next_deadline = None;
            let received = if pending {
                let (now, batch, conn) = (self.now, &mut self.batch, &mut self.conn);
                let next = &mut self.next_deadline;
                with_session(&self.queue, |s, out| {
                    let received = batch.receive(conn, s, now, out, &mut events);
                    if matches!(received, Ok(n) if n > 0)
                        && batch.is_drained()
                        && !conn.frame_ready()
                    {
                        // Caught up: the timers are set under this lock,
                        // not a second one (what the endpoint does with the
                        // events moves no deadline earlier).
                        *next = Some(rearm(s, now, conn.buffered()));
                    }
                    received
                })
            } else {
                Ok(0)
            };
            if let Ok(n) = received {
                self.counters.received_frames.increment(n as u64);
            }
            // Caught up also when this batch took everything complete (it
            // set the timers then): the handler flushes with it, not in a
            // second, empty delivery.
            let caught_up = matches!(received, Ok(0)) || self.next_deadline.is_some();
            if !events.is_empty() || (caught_up && end.wants_flush()) {
                let ended = end.deliver(&mut events, caught_up, self.now).await;
                events.clear();
                if let Some(max) = end.max_recv() {
                    self.conn.codec_mut().set_max_recv(max);
                }
                if let Some(ended) = ended {
                    self.events = events;
                    return Err(Exit::Ended(ended));
                }
            }
            self.events = events;
            match received {
                Ok(0) => return Ok(()),
                Ok(_) if caught_up => return Ok(()),
                Ok(_) => {}
                Err(BatchError::Session(e)) => return Err(Exit::Violation(e)),
                Err(BatchError::Codec(V2CodecError::Frame(f))) => {
                    let e = with_session(&self.queue, |s, out| s.receive_invalid(&f, out));
                    return Err(Exit::Malformed(f, e));
                }
                Err(BatchError::Codec(other)) => return Err(Exit::Codec(other)),
            }
        }
    }

    /// Drives the connection until it ends: what is buffered goes through
    /// the session to `end`, then one wait for whatever comes next.
    pub(crate) async fn run<E: Endpoint>(&mut self, end: &mut E) -> Exit<E::End> {
        loop {
            if let Err(exit) = self.receive_buffered(end).await {
                return exit;
            }
            if self.conn.buffered().is_empty() {
                // Caught up: an idle connection keeps no batch storage (it
                // goes to the thread's next busy connection).
                buffer_pool::give(std::mem::take(&mut self.events));
            }
            // What is left is part of a frame: it has a deadline of its own.
            let claimed = claimed_frame_len(self.conn.buffered());
            let next = match self.next_deadline.take() {
                Some(next) => next,
                None => {
                    let (now, left) = (self.now, self.conn.buffered());
                    with_session(&self.queue, |s, _| rearm(s, now, left))
                }
            };
            self.deadline.arm(next);
            let wake = std::future::poll_fn(|cx| self.poll_wake(cx, end, claimed)).await;
            // Awake: what the endpoint queues from here on is taken before
            // the next wait, without waking this task again.
            self.queue.unpark();
            match wake {
                Wake::Overflow => {
                    return Exit::Overflow {
                        queued: self.queue.queued(),
                    };
                }
                Wake::Signal => {
                    if let Some(ended) = end.on_signal(Instant::now()) {
                        return Exit::Ended(ended);
                    }
                }
                Wake::Timer => {
                    if let Some(expired) =
                        with_session(&self.queue, |s, out| s.handle_timeout(Instant::now(), out))
                    {
                        return Exit::Expired(expired);
                    }
                }
                Wake::Read(0) => {
                    return match self.conn.finish() {
                        Ok(_) => Exit::PeerClosed,
                        Err(e) => Exit::Codec(e),
                    };
                }
                Wake::Read(n) => {
                    self.counters.received_bytes.increment(n as u64);
                    // One clock reading per read, not per frame.
                    self.now = Instant::now();
                }
                Wake::ReadFailed(e) => return Exit::ReadFailed(e),
                Wake::WriteFailed(e) => return Exit::WriteFailed(e),
            }
        }
    }

    /// One poll of everything a connection waits for, in order of
    /// precedence: an overflow, the endpoint's signal, the deadline, then
    /// writing what is queued and reading what came.
    fn poll_wake<E: Endpoint>(
        &mut self,
        cx: &mut Context<'_>,
        end: &mut E,
        claimed: Option<usize>,
    ) -> Poll<Wake> {
        if self.queue.is_overflowed() {
            return Poll::Ready(Wake::Overflow);
        }
        if let Poll::Ready(Err(e)) = self.poll_write(cx) {
            return Poll::Ready(Wake::WriteFailed(e));
        }
        if end.poll_signal(cx).is_ready() {
            return Poll::Ready(Wake::Signal);
        }
        if self.deadline.poll_fired(cx).is_ready() {
            return Poll::Ready(Wake::Timer);
        }
        let read = match &self.budget {
            Some(budget) => self.conn.poll_fill_within(cx, budget, claimed),
            None => self.conn.poll_fill(cx),
        };
        match read {
            Poll::Ready(Ok(n)) => Poll::Ready(Wake::Read(n)),
            Poll::Ready(Err(e)) => Poll::Ready(Wake::ReadFailed(e)),
            // Both write buffers are already gone once written (see
            // `Outgoing::poll_write_to`), the read buffer once read out.
            Poll::Pending => Poll::Pending,
        }
    }

    /// Writes what is queued; once the queue is closed and drained, shuts
    /// our sending side down (the peer sees the end; reading goes on).
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Taken>> {
        let taken = std::task::ready!(self.writer.poll_write(
            cx,
            &self.queue,
            self.conn.stream_mut(),
            &self.counters.sent_bytes
        ))?;
        if taken.closed && !self.shut {
            std::task::ready!(Pin::new(self.conn.stream_mut()).poll_shutdown(cx))?;
            self.shut = true;
        }
        Poll::Ready(Ok(taken))
    }

    /// Answers the peer's CLOSE once the endpoint has done everything
    /// before it: with the acknowledgement (1000), unless a whole frame
    /// came after the CLOSE in what was already read. That breaks spec 3.9
    /// (nothing after a CLOSE), and the session, which no longer accepts
    /// frames, refuses it with CLOSE 1002 instead of acknowledging.
    pub(crate) fn ack_close<X>(&mut self) -> Result<(), Exit<X>> {
        let mut after = Vec::new();
        let (now, batch, conn) = (self.now, &mut self.batch, &mut self.conn);
        match with_session(&self.queue, |s, out| {
            batch.receive(conn, s, now, out, &mut after)
        }) {
            Err(BatchError::Session(e)) => return Err(Exit::Violation(e)),
            Err(BatchError::Codec(V2CodecError::Frame(f))) => {
                let e = with_session(&self.queue, |s, out| s.receive_invalid(&f, out));
                return Err(Exit::Malformed(f, e));
            }
            Err(BatchError::Codec(other)) => return Err(Exit::Codec(other)),
            Ok(_) => {}
        }
        let _ = with_session(&self.queue, |s, out| s.ack_close(out));
        Ok(())
    }

    /// The last step: no more frames; what is queued (a CLOSE, the last
    /// responses) is written, then our side shut down, within `limit`: a
    /// peer that does not read is simply dropped.
    pub(crate) async fn finish(&mut self, limit: Duration) {
        self.queue.close();
        let flushed = std::future::poll_fn(|cx| {
            if self.queue.is_overflowed() {
                return Poll::Ready(Ok(()));
            }
            match self.poll_write(cx) {
                Poll::Ready(Ok(_)) => Poll::Ready(Ok(())),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        });
        let _ = tokio::time::timeout(limit, flushed).await;
    }
}
