//! Frames the server sends to one v2 client from anywhere: the connection
//! itself, request handlers, and other connections (broadcast).

use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::protocol::Message;
use crate::protocol::v2::{Frame, ResponseFrame};
use crate::transport::{QueueError, WriteQueue};

/// Why a frame could not be sent to a client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The client is not reading and its outbound queue is full; the server
    /// closes that connection.
    #[error("client is not keeping up ({queued} bytes queued, limit {limit}); disconnecting it")]
    SlowConsumer {
        /// Bytes waiting.
        queued: usize,
        /// The configured bound.
        limit: usize,
    },
    /// The frame is larger than the client accepts.
    #[error("frame of {len} bytes exceeds the client's limit of {max}")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// The client's announced limit.
        max: u32,
    },
    /// The connection is closing or closed.
    #[error("connection closed")]
    Closed,
    /// v1 clients cannot receive messages from the server.
    #[error("v1 clients cannot receive messages")]
    Unsupported,
}

/// The write side of one v2 server connection.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    pub(crate) queue: Arc<WriteQueue<()>>,
    peer_max: u32,
    /// Cancelled when the queue overflows: the connection task ends.
    pub(crate) overflow: CancellationToken,
}

impl Outbound {
    pub(crate) fn new(queue: Arc<WriteQueue<()>>, peer_max: u32) -> Self {
        Outbound {
            queue,
            peer_max,
            overflow: CancellationToken::new(),
        }
    }

    /// Queues a data frame, refusing when the client is not keeping up.
    pub(crate) fn push(&self, frame: &Frame) -> Result<(), PushError> {
        let len = frame.payload_len();
        if len > self.peer_max as usize {
            return Err(PushError::TooLarge {
                len,
                max: self.peer_max,
            });
        }
        match self.queue.try_push(|_, buf| {
            frame.encode(buf);
            Ok::<(), ()>(())
        }) {
            Ok(_) => Ok(()),
            Err(QueueError::Full { queued, limit }) => {
                self.overflow.cancel();
                Err(PushError::SlowConsumer { queued, limit })
            }
            Err(QueueError::Closed) => Err(PushError::Closed),
        }
    }

    /// Queues a protocol control frame (pong, close, an error answer),
    /// which may use room beyond the data limit. A client that lets even
    /// that fill up (a ping flood it never reads) is treated as a slow
    /// consumer like any other.
    pub(crate) fn push_control(&self, frame: &Frame) {
        let pushed = self.queue.push_control(|_, buf| {
            frame.encode(buf);
            Ok::<(), ()>(())
        });
        if let Err(QueueError::Full { .. }) = pushed {
            self.overflow.cancel();
        }
    }
}

/// Sends messages to one client outside of any request: notifications,
/// broadcast. Cheap to clone and usable from any task.
///
/// Sending never waits: a client that does not read fills its bounded
/// queue, the push fails with [`PushError::SlowConsumer`], and the server
/// disconnects that client. One slow reader can therefore never stall the
/// sender (for example a broadcast to everyone) or grow the server's memory.
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
            .push(&frame)
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

/// Counts requests that were handed to the handler but not yet answered,
/// so the close handshake can wait for their answers.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    pub(crate) fn start(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    /// Resolves once no request is in flight.
    pub(crate) async fn wait_idle(&self) {
        loop {
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
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
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
}

impl Responder {
    pub(crate) fn new(id: u32, out: Outbound, in_flight: InFlightGuard) -> Self {
        Responder {
            id,
            out,
            answered: false,
            _in_flight: in_flight,
        }
    }

    /// The request's correlation id, for logs.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Answers with `payload`. A payload over the client's limit is answered
    /// with an error response instead, and reported here.
    pub fn respond(mut self, payload: impl Into<Bytes>) -> Result<(), PushError> {
        self.answered = true;
        let frame = Frame::Response(ResponseFrame {
            id: self.id,
            result: Ok(payload.into()),
        });
        match self.out.push(&frame) {
            Err(e @ PushError::TooLarge { .. }) => {
                self.send_error(format!("response too large: {e}"));
                Err(e)
            }
            other => other,
        }
    }

    /// Answers that the request failed, with a reason for the client.
    pub fn fail(mut self, reason: impl Into<String>) -> Result<(), PushError> {
        self.answered = true;
        self.out.push(&Frame::Response(ResponseFrame {
            id: self.id,
            result: Err(reason.into()),
        }))
    }

    fn send_error(&self, reason: String) {
        // An error answer is small and part of the protocol's promise that
        // every request is answered, so it is sent as a control frame.
        self.out.push_control(&Frame::Response(ResponseFrame {
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
    }
}
