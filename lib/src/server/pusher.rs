//! The way out of one v2 server connection. Every frame the server sends
//! on it — the connection's own control frames, responses from any task,
//! pushes and other connections' broadcasts — is checked and encoded by the
//! connection's session under the write queue's lock, so the protocol's
//! rules (spec 3.10: nothing new after a CLOSE; the client's size limit)
//! hold for all of them, in the order they were queued. A [`Responder`]
//! is that way out for one request's one answer.

use super::log_gate::{admit_global, suppressed_field};
use crate::protocol::Message;
use crate::protocol::v2::ResponseFrame;
use crate::protocol::v2::{Frame, SendError, Session};
use crate::transport::{Outgoing, QueueError, WriteQueue};
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::Notify;
use tracing::info;

/// Why a frame could not be sent to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The client is not reading and its outbound queue is full; the server
    /// closes that connection. Caused by the client.
    #[error("client is not keeping up ({queued} bytes queued, limit {limit}); disconnecting it")]
    SlowConsumer {
        /// Bytes waiting.
        queued: usize,
        /// The configured bound.
        limit: usize,
    },
    /// The connection's session refused the frame: too large for the
    /// client, or the connection is closing or closed. Nothing was queued
    /// and the connection is unharmed.
    #[error("not sent: {0}")]
    Refused(SendError),
    /// v1 clients cannot receive messages from the server.
    #[error("v1 clients cannot receive messages")]
    Unsupported,
}

// Not `#[from]`: that would also make the `SendError` the error's source,
// and a report of the whole chain would say the reason twice.
impl From<SendError> for PushError {
    fn from(e: SendError) -> Self {
        PushError::Refused(e)
    }
}

/// The write side of one v2 server connection: its queue, with the session
/// under the same lock.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    queue: Arc<WriteQueue<Session>>,
    /// What every clone shares, behind one `Arc`: every responder holds an
    /// `Outbound`, and one atomic add is all a clone should cost.
    shared: Arc<OutboundShared>,
}

#[derive(Debug)]
struct OutboundShared {
    /// Frames queued by handlers and broadcasts (a metric).
    sent: metrics::Counter,
    /// Frames not sent because they exceed the client's `max_frame` (a
    /// metric): a broadcast skipped for this client, a response replaced
    /// by an error (spec 3.5, 3.7).
    too_large: metrics::Counter,
    /// The client, for the log line about a frame it could not be sent.
    peer: std::net::SocketAddr,
    /// Request durations, when they are timed (a metric).
    request_duration: Option<metrics::Histogram>,
}

impl Outbound {
    /// `request_duration`: where to record how long requests take, if
    /// they are timed.
    /// `peer` is the client; `(sent, too_large)` count the frames queued
    /// and those too large for the client.
    pub(crate) fn new(
        queue: Arc<WriteQueue<Session>>,
        peer: std::net::SocketAddr,
        (sent, too_large): (metrics::Counter, metrics::Counter),
        request_duration: Option<metrics::Histogram>,
    ) -> Self {
        Outbound {
            queue,
            shared: Arc::new(OutboundShared {
                sent,
                too_large,
                peer,
                request_duration,
            }),
        }
    }

    /// The queue (and session) frames go to.
    pub(crate) fn queue(&self) -> &Arc<WriteQueue<Session>> {
        &self.queue
    }

    /// Where request durations go, if requests are timed.
    pub(crate) fn request_duration(&self) -> Option<&metrics::Histogram> {
        self.shared.request_duration.as_ref()
    }

    /// Queues a data frame, refusing when the client is not keeping up.
    pub(crate) fn send(&self, frame: &Frame) -> Result<(), PushError> {
        let queued = self.queue.try_push(|session, out| session.send(frame, out));
        self.settle(queued)
    }

    /// Queues the items of call `id`'s stream that its credit and the
    /// queue's room allow now, under one lock; how many.
    pub(crate) fn try_send_items(&self, id: u32, items: &mut [Bytes]) -> Result<usize, PushError> {
        let queued = self.queue.try_push(|session, out| {
            let mut sent = 0;
            for item in items.iter_mut() {
                // Moved into the frame, not cloned (a clone of a `Bytes`
                // made from a `Vec` allocates), and back if it stays.
                let frame = Frame::Item(crate::protocol::v2::ItemFrame::new(
                    id,
                    std::mem::take(item),
                ));
                match session.send(&frame, out) {
                    Ok(()) => sent += 1,
                    Err(e) => {
                        if let Frame::Item(unsent) = frame {
                            *item = unsent.payload;
                        }
                        match e {
                            SendError::NoCredit { .. } => break,
                            e => return Err(e),
                        }
                    }
                }
            }
            Ok(sent)
        });
        match queued {
            Ok(Ok(sent)) => {
                self.shared.sent.increment(sent as u64);
                self.queue.nudge_store();
                Ok(sent)
            }
            Ok(Err(e)) => Err(e.into()),
            // Full: nothing now; the caller waits for room.
            Err(QueueError::Full { .. }) => Ok(0),
            Err(QueueError::Closed) => Err(SendError::Closed.into()),
        }
    }

    /// Queues a data frame once the queue has room: for a call's stream,
    /// which waits for a slow reader instead of overflowing its queue.
    pub(crate) async fn send_waiting(&self, frame: &Frame) -> Result<(), PushError> {
        let queued = self
            .queue
            .push(|session, out| session.send(frame, out))
            .await;
        self.settle(queued)
    }

    /// Queues a frame the protocol promises (an error answer to a request),
    /// which may use room beyond the data limit.
    pub(crate) fn send_control(&self, frame: &Frame) -> Result<(), PushError> {
        let queued = self
            .queue
            .push_control(|session, out| session.send(frame, out));
        self.settle(queued)
    }

    fn settle(&self, queued: Result<Result<(), SendError>, QueueError>) -> Result<(), PushError> {
        match queued {
            Ok(Err(e @ SendError::TooLarge { .. })) => {
                // Skipped for this client alone; counted, and said in a
                // rate-limited line (a broadcast reaches many clients).
                self.shared.too_large.increment(1);
                if let Some(suppressed) = admit_global() {
                    let suppressed = suppressed_field(suppressed);
                    let peer = self.shared.peer;
                    info!(%peer, suppressed, "not sent to this client: {e}");
                }
                Err(e.into())
            }
            Ok(sent) => {
                sent?;
                self.shared.sent.increment(1);
                // A parked session's frame is in its replay buffer only:
                // its store must hear of it all the same.
                self.queue.nudge_store();
                Ok(())
            }
            Err(QueueError::Full { queued, limit }) => {
                // The connection's driver ends the connection.
                self.queue.overflow();
                Err(PushError::SlowConsumer { queued, limit })
            }
            Err(QueueError::Closed) => Err(SendError::Closed.into()),
        }
    }

    /// Runs `f` on the session with the queue's buffer: the connection's
    /// own receive path and clock, whose answers (pong, ping, close) must
    /// not be refused while data is backed up. A client that lets even
    /// those pile up past the control bound (a ping flood it never reads)
    /// is a slow consumer like any other.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Session, &mut Outgoing) -> R) -> R {
        let (result, overflowed) = self.queue.update(f);
        if overflowed {
            self.queue.overflow();
        }
        result
    }
}

/// Sends messages to one client outside of any request: notifications,
/// broadcast. Cheap to clone and usable from any task.
///
/// Sending never waits: a client that does not read fills its bounded
/// queue, the push fails with [`PushError::SlowConsumer`], and the server
/// disconnects that client. One slow reader can therefore never stall the
/// sender (for example a broadcast to everyone) or grow the server's memory.
/// A client that has started closing, or been closed, refuses new pushes
/// with [`PushError::Refused`].
#[derive(Debug, Clone)]
pub struct Pusher {
    out: Option<Outbound>,
}

impl Pusher {
    pub(crate) fn new(out: Option<Outbound>) -> Self {
        Pusher { out }
    }

    fn push(&self, frame: Frame) -> Result<(), PushError> {
        self.out
            .as_ref()
            .ok_or(PushError::Unsupported)?
            .send(&frame)
    }

    /// Queues a text message for the client.
    pub fn send_text(&self, text: impl Into<Message>) -> Result<(), PushError> {
        self.push(Frame::Text(text.into()))
    }

    /// Queues bytes for the client.
    pub fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), PushError> {
        self.push(Frame::Binary(data.into()))
    }

    /// Whether this client can receive pushes at all (v2), so a broadcaster
    /// can skip v1 peers.
    pub fn can_push(&self) -> bool {
        self.out.is_some()
    }
}

// Answering requests: one [`Responder`] per request, and the count of
// requests not yet answered that the close handshake waits for.

/// Counts requests that were handed to the handler but not yet answered,
/// so the close handshake can wait for their answers.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    idle: Notify,
    /// The close handshake waits: only then does the last answer wake it
    /// (waking takes a lock, and most requests end with nobody waiting).
    waiting: AtomicBool,
}

impl InFlight {
    pub(crate) fn start(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    /// Resolves once no request is in flight.
    pub(crate) async fn wait_idle(&self) {
        loop {
            self.waiting.store(true, Ordering::SeqCst);
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

#[derive(Debug)]
pub(crate) struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        // SeqCst both ways: either the waiter sees the count at 0, or this
        // sees it waiting.
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 && self.0.waiting.load(Ordering::SeqCst)
        {
            self.0.idle.notify_waiters();
        }
    }
}

/// The one answer to one request. Move it into another task to answer
/// later; requests on a connection may be answered in any order.
///
/// Dropping it unanswered sends an error response, so a client never waits
/// forever for an answer that a handler forgot.
#[derive(Debug)]
pub struct Responder {
    id: u32,
    out: Outbound,
    answered: bool,
    _in_flight: InFlightGuard,
    /// When the request arrived, if requests are timed (a metric).
    arrived: Option<std::time::Instant>,
}

impl Responder {
    pub(crate) fn new(
        id: u32,
        out: Outbound,
        in_flight: InFlightGuard,
        arrived: std::time::Instant,
    ) -> Self {
        let arrived = out.request_duration().is_some().then_some(arrived);
        Responder {
            id,
            out,
            answered: false,
            _in_flight: in_flight,
            arrived,
        }
    }

    /// The request's correlation id, for logs.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Answers with `payload`. A payload over the client's limit is answered
    /// with an error response instead, and reported here as
    /// [`PushError::Refused`] with [`SendError::TooLarge`]: that `Err`
    /// means the client *was* answered, with a failure saying the response
    /// was too large (every request gets exactly one answer, spec 3.5). Any
    /// other `Err` means the connection is closing or gone and nobody is
    /// left to answer. Either way the responder is used up: there is no
    /// second answer to send.
    pub fn respond(mut self, payload: impl Into<Bytes>) -> Result<(), PushError> {
        self.answered = true;
        let frame = Frame::Response(ResponseFrame {
            id: self.id,
            result: Ok(payload.into()),
        });
        match self.out.send(&frame) {
            Err(PushError::Refused(e @ SendError::TooLarge { .. })) => {
                // Spec 3.5: still exactly one answer, a failure saying why.
                self.send_error(format!("response too large for the client: {e}"));
                Err(e.into())
            }
            other => other,
        }
    }

    /// Answers that the request failed, with a reason for the client.
    pub fn fail(mut self, reason: impl Into<String>) -> Result<(), PushError> {
        self.answered = true;
        self.out.send(&Frame::Response(ResponseFrame {
            id: self.id,
            result: Err(reason.into()),
        }))
    }

    fn send_error(&self, reason: String) {
        // An error answer is small and part of the protocol's promise that
        // every request is answered, so it may use the control room. If the
        // connection is closing or gone, there is nobody left to tell.
        let _ = self.out.send_control(&Frame::Response(ResponseFrame {
            id: self.id,
            result: Err(reason),
        }));
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.answered {
            self.send_error("the server dropped the request without answering".into());
        }
        if let (Some(arrived), Some(duration)) = (self.arrived, self.out.request_duration()) {
            duration.record(arrived.elapsed());
        }
    }
}
