//! Answering requests: one [`Responder`] per request, and the count of
//! requests not yet answered that the close handshake waits for.

use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;

use super::pusher::{Outbound, PushError};
use crate::protocol::v2::{Frame, ResponseFrame, SendError};

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
    /// [`PushError::Refused`] with [`SendError::TooLarge`].
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
