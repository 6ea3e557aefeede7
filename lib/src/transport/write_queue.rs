//! One connection's session and outgoing bytes, under one lock, shared by
//! every task that sends on it.
//!
//! Senders encode frames straight into one buffer under a short lock; the
//! connection's driver (`driver.rs`, the one task that owns the stream)
//! takes the whole buffer and writes it in one call. So a burst of small
//! frames from many tasks costs one syscall, an idle connection sends each
//! frame at once, and no frame is copied twice. The first bytes queued
//! after the driver took the buffer wake it.
//!
//! The buffer is bounded in bytes. Senders that may wait (a client sending
//! requests) wait for the writer to make room, which passes TCP backpressure
//! on to them. Senders that must not wait (a server pushing to many clients)
//! get [`QueueError::Full`] instead: the peer is not reading, and the caller
//! decides what to do (the server closes that connection). Control frames
//! (pong, close) get room beyond the bound, up to twice it, so a protocol
//! answer is not refused just because data is backed up.
//!
//! A peer is judged by what it fails to read, never by the size of one
//! legal frame: the largest single frame held is not counted against the
//! bound (spec 3.7: twice the bound *plus one frame*). So a 16 MiB response
//! to a client that announced 16 MiB goes out whole however small the
//! bound, while a client that lets frames pile up behind it is dropped.

use super::Outgoing;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use tokio::io::AsyncWrite;
use tokio::sync::Notify;

/// Why bytes could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum QueueError {
    /// More than the limit is waiting: the peer is not keeping up.
    #[error("outbound queue full ({queued} bytes waiting, limit {limit})")]
    Full {
        /// Bytes waiting.
        queued: usize,
        /// The configured bound.
        limit: usize,
    },
    /// The connection is closing or gone; nothing more will be written.
    #[error("connection closed")]
    Closed,
}

struct Inner<T> {
    state: T,
    buf: Outgoing,
    /// Bytes the writer has taken and not yet written to the stream: still
    /// held for the peer, so they count against the bound (spec 3.7).
    writing: usize,
    /// The largest single push in `buf`, and in what the writer took: the
    /// one frame the bound does not count.
    buf_largest: usize,
    writing_largest: usize,
    /// No more pushes; the writer drains what is left, then stops.
    closed: bool,
    /// The driver, woken by the first bytes queued after it took the
    /// buffer (and by an overflow or a close).
    writer: Option<Waker>,
    /// Bytes held back until a store has them (see [`WriteQueue::hold`]).
    gate: Option<Box<Gate>>,
}

/// Tells a held queue's store that the state changed without bytes
/// queued (a parked session's frames go to its replay buffer only).
pub(crate) type StoreSignal = std::sync::OnceLock<Arc<Notify>>;

/// The bytes of a session that another server may take over: queued, then
/// staged (taken into the image being stored), then ready (stored: the
/// writer may send them).
#[derive(Debug, Default)]
struct Gate {
    staged: Outgoing,
    ready: Outgoing,
    /// The largest single push in each (see `Inner::buf_largest`).
    staged_largest: usize,
    ready_largest: usize,
    /// Told when bytes are queued: the store's writer stages them.
    queued: Arc<Notify>,
}

impl<T> Inner<T> {
    /// Every byte queued and not yet written to the stream.
    fn held(&self) -> usize {
        let gated = self
            .gate
            .as_ref()
            .map_or(0, |g| g.staged.len() + g.ready.len());
        self.buf.len() + self.writing + gated
    }

    /// What the bound judges: every byte held but the largest frame's.
    fn judged(&self) -> usize {
        let gated = self
            .gate
            .as_ref()
            .map_or(0, |g| g.staged_largest.max(g.ready_largest));
        self.held() - self.buf_largest.max(self.writing_largest).max(gated)
    }
}

/// A bounded, shared write buffer with state `T` guarded by the same lock
/// (server and client keep the v2 session there, so checking "may I send
/// this now", encoding it and queueing it are one atomic step, in the order
/// the session saw them).
pub(crate) struct WriteQueue<T> {
    inner: Mutex<Inner<T>>,
    /// Signalled when the writer has taken bytes (room for waiting senders).
    room: Notify,
    limit: usize,
    /// The peer is not reading (a sender found the queue full, or control
    /// frames piled up past their bound): the driver ends the connection.
    overflowed: AtomicBool,
    /// The writer found nothing to take and sleeps: the next bytes must
    /// wake it. False while its task is busy (it takes what was queued
    /// before it sleeps again), so a response its own task queues does not
    /// wake it for a second, empty turn.
    parked: AtomicBool,
    /// Set once the queue is held: see [`WriteQueue::nudge_store`].
    store_signal: StoreSignal,
}

impl<T> std::fmt::Debug for WriteQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteQueue")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<T> WriteQueue<T> {
    /// A queue holding at most about `limit` bytes (one frame may overshoot
    /// it, so a frame larger than the limit can still be sent alone).
    pub(crate) fn new(state: T, limit: usize) -> Self {
        WriteQueue {
            inner: Mutex::new(Inner {
                state,
                buf: Outgoing::default(),
                writing: 0,
                buf_largest: 0,
                writing_largest: 0,
                closed: false,
                writer: None,
                gate: None,
            }),
            room: Notify::new(),
            limit,
            overflowed: AtomicBool::new(false),
            parked: AtomicBool::new(false),
            store_signal: StoreSignal::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A panic while holding the lock leaves only bytes and plain state
        // behind, which stay consistent, so poisoning is not an error here.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the state and the buffer, whatever is queued: for the
    /// receive path and the clock, whose state changes must happen even
    /// when the peer is behind on reading (what they write are protocol
    /// answers: pong, close). Also true once the queue is closed; bytes
    /// written then are never sent. The flag says whether `f` queued bytes
    /// that took the queue past the control bound (twice the limit, beyond
    /// its largest frame): the peer is not reading its answers. An update
    /// that queues nothing never overflows, however full the queue is with
    /// data (waiting senders fill the buffer while the writer writes: a
    /// slow reader then holds them back, it does not end the connection).
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut T, &mut Outgoing) -> R) -> (R, bool) {
        let mut inner = self.lock();
        let before = inner.buf.len();
        let result = self.push_locked(&mut inner, f);
        let grew = inner.buf.len() > before;
        (
            result,
            grew && inner.judged() > self.limit.saturating_mul(2),
        )
    }

    /// Queues without waiting; `Full` if more than the limit is waiting.
    pub(crate) fn try_push<R, E>(
        &self,
        f: impl FnOnce(&mut T, &mut Outgoing) -> Result<R, E>,
    ) -> Result<Result<R, E>, QueueError> {
        self.push_now(self.limit, f)
    }

    /// Queues past the limit: for the control frames (pong, close, error
    /// answers) that a protocol must not refuse while data is backed up.
    /// They get a second limit's worth of room, no more, so a peer that
    /// provokes them without reading (a ping flood) still cannot grow the
    /// queue without bound.
    pub(crate) fn push_control<R, E>(
        &self,
        f: impl FnOnce(&mut T, &mut Outgoing) -> Result<R, E>,
    ) -> Result<Result<R, E>, QueueError> {
        self.push_now(self.limit.saturating_mul(2), f)
    }

    fn push_now<R, E>(
        &self,
        limit: usize,
        f: impl FnOnce(&mut T, &mut Outgoing) -> Result<R, E>,
    ) -> Result<Result<R, E>, QueueError> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(QueueError::Closed);
        }
        if inner.judged() >= limit {
            return Err(QueueError::Full {
                queued: inner.held(),
                limit,
            });
        }
        Ok(self.push_locked(&mut inner, f))
    }

    /// Queues, first waiting for room while more than the limit is queued
    /// (not counting what the writer is writing: a sender that waits is
    /// pushed back already, and may refill while the writer writes).
    pub(crate) async fn push<R, E>(
        &self,
        f: impl FnOnce(&mut T, &mut Outgoing) -> Result<R, E>,
    ) -> Result<Result<R, E>, QueueError> {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            // Register before checking, so a wake-up between the check and
            // the wait is not missed.
            room.as_mut().enable();
            {
                let mut inner = self.lock();
                if inner.closed {
                    return Err(QueueError::Closed);
                }
                if inner.buf.len() - inner.buf_largest < self.limit {
                    return Ok(self.push_locked(&mut inner, f));
                }
            }
            room.await;
        }
    }

    fn push_locked<R>(
        &self,
        inner: &mut Inner<T>,
        f: impl FnOnce(&mut T, &mut Outgoing) -> R,
    ) -> R {
        let before = inner.buf.len();
        let Inner { state, buf, .. } = inner;
        let result = f(state, buf);
        inner.buf_largest = inner.buf_largest.max(inner.buf.len() - before);
        // Only the first bytes after the writer took the buffer need a
        // wake-up: until it takes them, it is already woken or writing,
        // and it takes everything queued at once.
        if let Some(gate) = &inner.gate {
            // Not the writer's yet: the store's first.
            if inner.buf.len() > before {
                gate.queued.notify_one();
            }
        } else if before == 0 && !inner.buf.is_empty() && self.parked.swap(false, Ordering::Relaxed)
        {
            wake(inner);
        }
        result
    }

    /// From now on nothing queued is written before a store has it: what
    /// is queued waits until [`WriteQueue::stage`] takes it into an image
    /// and [`WriteQueue::release`] says that image is stored. The returned
    /// signal fires when bytes are queued.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn hold(&self) -> Arc<Notify> {
        let mut inner = self.lock();
        let signal = self.store_signal.get_or_init(Arc::default).clone();
        let gate = inner.gate.get_or_insert_with(|| {
            Box::new(Gate {
                queued: signal,
                ..Gate::default()
            })
        });
        let queued = gate.queued.clone();
        if !inner.buf.is_empty() {
            queued.notify_one();
        }
        queued
    }

    /// A held queue's state changed without bytes queued: its store is
    /// told (nothing happens for a queue that is not held).
    pub(crate) fn nudge_store(&self) {
        if let Some(signal) = self.store_signal.get() {
            signal.notify_one();
        }
    }

    /// Stages everything queued and runs `f` on the state (which writes
    /// the image that holds those bytes), in one step.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn stage<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut inner = self.lock();
        let Inner {
            state,
            buf,
            buf_largest,
            gate,
            ..
        } = &mut *inner;
        if let Some(gate) = gate {
            gate.staged.append(std::mem::take(buf));
            gate.staged_largest = gate.staged_largest.max(std::mem::take(buf_largest));
        }
        f(state)
    }

    /// The image staged last is stored: its bytes may be written.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn release(&self) {
        let mut inner = self.lock();
        let Some(gate) = &mut inner.gate else {
            return;
        };
        let staged = std::mem::take(&mut gate.staged);
        gate.ready.append(staged);
        gate.ready_largest = gate
            .ready_largest
            .max(std::mem::take(&mut gate.staged_largest));
        if !gate.ready.is_empty() && self.parked.swap(false, Ordering::Relaxed) {
            wake(&mut inner);
        }
    }

    /// Nothing is held back any more (the session is over: what is left,
    /// a CLOSE, its last answers, goes out without a store).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn ungate(&self) {
        let mut inner = self.lock();
        if let Some(gate) = inner.gate.take() {
            let Gate {
                staged,
                ready,
                staged_largest,
                ready_largest,
                ..
            } = *gate;
            inner.buf_largest = inner.buf_largest.max(staged_largest).max(ready_largest);
            let queued = std::mem::take(&mut inner.buf);
            let mut all = ready;
            all.append(staged);
            all.append(queued);
            inner.buf = all;
            if !inner.buf.is_empty() && self.parked.swap(false, Ordering::Relaxed) {
                wake(&mut inner);
            }
        }
    }

    /// Marks the peer as not reading (its queue past the control bound):
    /// the driver ends the connection.
    pub(crate) fn overflow(&self) {
        self.overflowed.store(true, Ordering::Release);
        wake(&mut self.lock());
    }

    /// Whether [`WriteQueue::overflow`] was called.
    pub(crate) fn is_overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }

    /// Bytes queued or being written, not yet handed to the stream.
    pub(crate) fn queued(&self) -> usize {
        self.lock().held()
    }

    /// No more frames: the driver sends what is queued, then shuts the
    /// stream's sending side down. Waiting senders get `Closed`.
    pub(crate) fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        wake(&mut inner);
        drop(inner);
        self.room.notify_waiters();
    }

    /// The connection is gone and its session kept for a resume: what is
    /// queued is dropped (the session's replay buffer holds every frame
    /// that matters) and senders no longer wait for a writer.
    pub(crate) fn detach(&self) {
        let mut inner = self.lock();
        inner.buf = Outgoing::default();
        if let Some(gate) = &mut inner.gate {
            gate.staged = Outgoing::default();
            gate.ready = Outgoing::default();
            gate.staged_largest = 0;
            gate.ready_largest = 0;
        }
        inner.writing = 0;
        inner.buf_largest = 0;
        inner.writing_largest = 0;
        inner.writer = None;
        drop(inner);
        self.overflowed.store(false, Ordering::Release);
        self.parked.store(false, Ordering::Relaxed);
        self.room.notify_waiters();
    }

    /// A kept session resumes on a new connection: the queue starts empty
    /// and open, and `f` writes what the new connection sends first (the
    /// WELCOME and the replay).
    pub(crate) fn reattach<R>(&self, f: impl FnOnce(&mut T, &mut Outgoing) -> R) -> R {
        self.detach();
        let mut inner = self.lock();
        inner.closed = false;
        self.push_locked(&mut inner, f)
    }

    /// For the driver: swaps everything queued into `writing` (which must
    /// be empty), or, with nothing queued, registers `waker` to be woken by
    /// the next bytes. Bytes taken still count against the bound until the
    /// next take (the writer takes again once it has written them all).
    pub(crate) fn take(&self, writing: &mut Outgoing, waker: &Waker) -> Taken {
        let mut inner = self.lock();
        debug_assert!(writing.is_empty());
        let Inner {
            buf,
            gate,
            buf_largest,
            ..
        } = &mut *inner;
        let largest = match gate {
            Some(gate) => {
                std::mem::swap(&mut gate.ready, writing);
                std::mem::take(&mut gate.ready_largest)
            }
            None => {
                std::mem::swap(buf, writing);
                std::mem::take(buf_largest)
            }
        };
        inner.writing = writing.len();
        inner.writing_largest = largest;
        if !inner.writer.as_ref().is_some_and(|w| w.will_wake(waker)) {
            inner.writer = Some(waker.clone());
        }
        // Under the lock, so a sender either queued before this (and is
        // taken now) or sees the writer parked (and wakes it).
        self.parked.store(writing.is_empty(), Ordering::Relaxed);
        let judged = writing.len() - inner.writing_largest;
        let taken = Taken {
            closed: inner.closed,
        };
        drop(inner);
        // Senders wait only while the buffer is at its limit, so below it
        // there is nobody to wake.
        if judged >= self.limit {
            self.room.notify_waiters();
        }
        taken
    }

    /// For the driver: its task is awake and will [`WriteQueue::take`]
    /// before it sleeps again, so bytes queued until then need not wake it.
    pub(crate) fn unpark(&self) {
        self.parked.store(false, Ordering::Relaxed);
    }

    /// Writes what is queued to `out` until the queue is closed and
    /// drained, then shuts `out` down: for a stream whose other side is
    /// read elsewhere (a v1 client). `written` counts the bytes.
    pub(crate) async fn run_writer<W: AsyncWrite + Unpin>(
        &self,
        mut out: W,
        written: &metrics::Counter,
    ) -> io::Result<()> {
        let mut writer = Writer::default();
        std::future::poll_fn(|cx| {
            match std::task::ready!(writer.poll_write(cx, self, &mut out, written))? {
                Taken { closed: true } => Poll::Ready(Ok::<(), io::Error>(())),
                _ => Poll::Pending,
            }
        })
        .await?;
        std::future::poll_fn(|cx| Pin::new(&mut out).poll_shutdown(cx)).await
    }
}

fn wake<T>(inner: &mut Inner<T>) {
    if let Some(w) = &inner.writer {
        w.wake_by_ref();
    }
}

/// What the driver learns when it takes the queue's bytes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Taken {
    /// No more frames will be queued.
    pub(crate) closed: bool,
}

/// The write side of a driver: the bytes taken from a [`WriteQueue`] and
/// being written.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    writing: Outgoing,
    /// The size of what was taken, counted once it is all written.
    taken: u64,
    /// Bytes were written since the last flush.
    unflushed: bool,
}

impl Writer {
    /// Writes everything queued until the stream would block (`Pending`)
    /// or nothing is left (`Ready`, with what the queue said last: whether
    /// it is closed, or overflowed). The queue wakes the task for bytes
    /// queued after that.
    pub(crate) fn poll_write<T, W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        queue: &WriteQueue<T>,
        out: &mut W,
        written: &metrics::Counter,
    ) -> Poll<io::Result<Taken>> {
        loop {
            if self.writing.is_empty() {
                let taken = queue.take(&mut self.writing, cx.waker());
                if self.writing.is_empty() {
                    if self.unflushed {
                        std::task::ready!(Pin::new(&mut *out).poll_flush(cx))?;
                        self.unflushed = false;
                    }
                    return Poll::Ready(Ok(taken));
                }
                self.taken = self.writing.len() as u64;
            }
            std::task::ready!(self.writing.poll_write_to(cx, out))?;
            written.increment(self.taken);
            // The next `take` (right away) also marks these bytes written:
            // one lock, not two.
            self.unflushed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::v2::frame::FrameSink;
    use bytes::BufMut;
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;

    fn put(b: &[u8]) -> impl FnOnce(&mut (), &mut Outgoing) -> Result<(), ()> + '_ {
        move |_, buf| {
            buf.buf().put_slice(b);
            Ok(())
        }
    }

    /// Counts its wake-ups.
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// A writer that found nothing is woken by the next bytes; one whose
    /// task is awake (`unpark`) is not, and takes them before it sleeps.
    #[test]
    fn only_a_parked_writer_is_woken() {
        let q = WriteQueue::new((), 1024);
        let wakes = Arc::new(Wakes(0.into()));
        let waker = Waker::from(wakes.clone());
        let mut writing = Outgoing::default();
        q.take(&mut writing, &waker);
        q.try_push(put(b"a")).unwrap().unwrap();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "parked: woken");
        q.take(&mut writing, &waker);
        assert_eq!(writing.len(), 1);
        writing = Outgoing::default();
        q.take(&mut writing, &waker);
        q.unpark();
        q.try_push(put(b"b")).unwrap().unwrap();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "awake: not woken");
        q.take(&mut writing, &waker);
        assert_eq!(writing.len(), 1, "and the bytes are taken all the same");
    }

    /// A held queue gives the writer only what a store has: queued bytes
    /// wait until staged and released, later ones until the next release;
    /// ungated, everything left goes out in order.
    #[tokio::test]
    async fn a_held_queue_writes_only_what_was_released() {
        let q = WriteQueue::new((), 1024);
        let waker = Waker::from(Arc::new(Wakes(0.into())));
        let signal = q.hold();
        q.try_push(put(b"a")).unwrap().unwrap();
        let mut writing = Outgoing::default();
        q.take(&mut writing, &waker);
        assert!(writing.is_empty(), "not stored yet");
        assert!(
            futures::FutureExt::now_or_never(signal.notified()).is_some(),
            "the store was told"
        );
        q.stage(|_| ());
        q.try_push(put(b"b")).unwrap().unwrap();
        q.take(&mut writing, &waker);
        assert!(writing.is_empty(), "staged, not stored yet");
        q.release();
        q.take(&mut writing, &waker);
        assert_eq!(writing.len(), 1, "only what the stored image held");
        let mut writing = Outgoing::default();
        q.try_push(put(b"c")).unwrap().unwrap();
        q.stage(|_| ());
        q.try_push(put(b"d")).unwrap().unwrap();
        assert_eq!(
            q.queued(),
            4,
            "held bytes count against the bound (and `a` until written)"
        );
        q.ungate();
        q.take(&mut writing, &waker);
        let mut got: Vec<u8> = Vec::new();
        writing.write_to(&mut got).await.unwrap();
        assert_eq!(got, b"bcd");
    }

    #[tokio::test]
    async fn writes_everything_in_order_then_shuts_down() {
        let q = Arc::new(WriteQueue::new((), 1024));
        let (a, mut b) = tokio::io::duplex(16);
        let writer = tokio::spawn({
            let q = q.clone();
            async move { q.run_writer(a, &metrics::Counter::noop()).await }
        });
        for i in 0..100u8 {
            q.push(put(&[i])).await.unwrap().unwrap();
        }
        q.close();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, (0..100u8).collect::<Vec<_>>());
        writer.await.unwrap().unwrap();
        assert_eq!(q.try_push(put(b"x")), Err(QueueError::Closed));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_try_push_but_takes_control_frames() {
        let q = WriteQueue::new((), 4);
        // One frame larger than the bound is not held against the peer...
        q.try_push(put(b"a large frame")).unwrap().unwrap();
        // ...but what piles up behind it is.
        q.try_push(put(b"12")).unwrap().unwrap();
        q.try_push(put(b"34")).unwrap().unwrap();
        assert_eq!(
            q.try_push(put(b"5")),
            Err(QueueError::Full {
                queued: 17,
                limit: 4
            })
        );
        q.push_control(put(b"c")).unwrap().unwrap();
        assert_eq!(q.queued(), 18);
    }

    /// An update that queues nothing does not overflow a queue full of
    /// data (a slow peer holds waiting senders back instead).
    #[tokio::test]
    async fn an_update_that_queues_nothing_never_overflows() {
        let q = WriteQueue::new((), 4);
        let ((), over) = q.update(|_, buf| buf.buf().put_slice(&[0; 20]));
        assert!(!over, "one large frame");
        let ((), over) = q.update(|_, buf| buf.buf().put_slice(&[0; 9]));
        assert!(over, "answers piled up past twice the bound");
        let ((), over) = q.update(|_, _| ());
        assert!(!over, "nothing queued: nothing judged");
    }

    /// A legal frame of any size does not make its peer a slow consumer;
    /// twice the bound piled up behind it does.
    #[tokio::test]
    async fn the_control_bound_does_not_count_the_largest_frame() {
        let q = WriteQueue::new((), 4);
        let ((), over) = q.update(|_, buf| buf.buf().put_slice(&[0; 100]));
        assert!(!over, "one 100-byte frame against a bound of 4");
        let ((), over) = q.update(|_, buf| buf.buf().put_slice(&[0; 8]));
        assert!(!over, "exactly twice the bound behind it");
        let ((), over) = q.update(|_, buf| buf.buf().put_slice(&[0; 1]));
        assert!(over, "more than twice the bound behind it");
    }

    /// Spec 3.7's bound counts what the writer has taken but not written:
    /// with the stream stalled, at most the limit plus the one large frame
    /// it does not count (plus the frame that crossed the limit) is held,
    /// not a limit queued on top of a limit being written.
    #[tokio::test]
    async fn bytes_being_written_count_against_the_bound() {
        let q = Arc::new(WriteQueue::new((), 1000));
        let (a, _stalled_reader) = tokio::io::duplex(10);
        let writer = tokio::spawn({
            let q = q.clone();
            async move { q.run_writer(a, &metrics::Counter::noop()).await }
        });
        // A large frame first: the writer takes it and blocks writing it.
        q.try_push(put(&[1u8; 900])).unwrap().unwrap();
        tokio::task::yield_now().await;
        let mut accepted = 900;
        let frame = [7u8; 100];
        for _ in 0..100 {
            if q.try_push(put(&frame)).is_ok() {
                accepted += frame.len();
            }
            tokio::task::yield_now().await;
        }
        assert!(
            accepted <= 900 + 1000 + 100,
            "{accepted} bytes accepted for a bound of 1000"
        );
        assert!(q.queued() <= 2000);
        writer.abort();
    }

    #[tokio::test]
    async fn push_waits_for_the_writer_to_make_room() {
        let q = Arc::new(WriteQueue::new((), 4));
        q.try_push(put(b"full")).unwrap().unwrap();
        q.try_push(put(b"more")).unwrap().unwrap();
        let waiting = tokio::spawn({
            let q = q.clone();
            async move { q.push(put(b"next")).await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        let (a, mut b) = tokio::io::duplex(64);
        let writer = tokio::spawn({
            let q = q.clone();
            async move { q.run_writer(a, &metrics::Counter::noop()).await }
        });
        waiting.await.unwrap().unwrap().unwrap();
        q.close();
        let mut got = Vec::new();
        b.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"fullmorenext");
        writer.await.unwrap().unwrap();
    }
}
