//! One call (spec 3.13) on the server: what the handler is given
//! ([`Call`]: the payload, metadata, deadline, its streams and its one
//! answer), and how the connection runs the handler's future for it — in a
//! task of its own, so a call that waits (for credit, for work) holds up
//! nothing else on the connection, and dropped when the client cancels or
//! the deadline passes, which stops the work and sends the STATUS saying
//! why.

use bytes::Bytes;
use futures::Stream;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::pusher::{InFlightGuard, Outbound, PushError};
use crate::protocol::v2::{
    CallFrame, CallStatus, Frame, ItemFrame, Metadata, SendError, StatusFrame,
};

/// Why a call's future was dropped before it answered.
const RUNNING: u8 = 0;
const CANCELLED: u8 = 1;
const DEADLINE: u8 = 2;

/// What the connection and one call's task share.
#[derive(Debug)]
struct Control {
    /// Fires when the client cancels (or the connection ends).
    cancel: CancellationToken,
    /// Why the future was dropped: `RUNNING` while it runs.
    stopped: AtomicU8,
    /// Woken when the client grants credit to the server's stream.
    credit: Notify,
}

/// The connection's calls in flight, by id, for the frames that concern
/// them (an item, credit, the client's end or cancel).
#[derive(Debug, Default)]
pub(crate) struct CallTable {
    calls: Mutex<HashMap<u32, Entry, foldhash::fast::RandomState>>,
    serial: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    /// Tells one call apart from a later one with the same id.
    serial: u64,
    control: Arc<Control>,
    /// Where the client's items go (a client stream still open).
    items: Option<mpsc::UnboundedSender<Bytes>>,
}

impl CallTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Entry, foldhash::fast::RandomState>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An item of call `id`'s client stream. The session has checked it
    /// against the credit we granted, so the queue holds at most that many.
    pub(crate) fn item(&self, id: u32, payload: Bytes) {
        if let Some(tx) = self.lock().get(&id).and_then(|e| e.items.as_ref()) {
            let _ = tx.send(payload);
        }
    }

    /// The client's stream of call `id` ended.
    pub(crate) fn end(&self, id: u32) {
        if let Some(e) = self.lock().get_mut(&id) {
            e.items = None;
        }
    }

    /// The client cancelled call `id`: its future is dropped.
    pub(crate) fn cancel(&self, id: u32) {
        if let Some(e) = self.lock().get(&id) {
            e.control.stopped.store(CANCELLED, Ordering::Release);
            e.control.cancel.cancel();
        }
    }

    /// The client granted credit to call `id`'s stream.
    pub(crate) fn credit(&self, id: u32) {
        if let Some(e) = self.lock().get(&id) {
            e.control.credit.notify_one();
        }
    }

    /// The connection is over: every call still running is stopped.
    pub(crate) fn cancel_all(&self) {
        for e in self.lock().values() {
            e.control.cancel.cancel();
        }
    }

    fn remove(&self, id: u32, serial: u64) {
        let mut calls = self.lock();
        if calls.get(&id).is_some_and(|e| e.serial == serial) {
            calls.remove(&id);
        }
    }
}

/// One call from a client, handed to [`Handler::on_call`](super::Handler::on_call):
/// its request and metadata, its deadline, the streams it has, and its one
/// answer. Every call ends with exactly one answer: [`Call::respond`],
/// [`Call::fail`], or, when the call is dropped unanswered, a failure
/// saying so (or "cancelled" / "deadline exceeded" when that is why).
#[derive(Debug)]
pub struct Call {
    id: u32,
    payload: Bytes,
    metadata: Metadata,
    deadline: Option<Instant>,
    items: Option<Items>,
    sender: Option<ItemSender>,
    reply: Reply,
}

impl Call {
    /// The call's id (for logs).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The request.
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The key/value pairs the client sent with it (a `traceparent`, say).
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// When the call's time is up (the client's budget, capped by the
    /// server's [`CallLimits::max_deadline_ms`](crate::protocol::v2::CallLimits)),
    /// counted from its arrival; `None` for no deadline. At that instant
    /// the call's future is dropped and the client told "deadline exceeded".
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// The time left before the deadline, if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// The client's stream of items, once (`None` if the call has none, or
    /// after the first take).
    pub fn take_items(&mut self) -> Option<Items> {
        self.items.take()
    }

    /// The way to send the server's stream of items, once (`None` if the
    /// client asked for no stream, or after the first take).
    pub fn take_sender(&mut self) -> Option<ItemSender> {
        self.sender.take()
    }

    /// Resolves when the client cancels the call. The call's future is
    /// dropped then anyway; this is for work it handed elsewhere (a thread,
    /// another task) that should stop too.
    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFutureOwned {
        self.reply.control.cancel.clone().cancelled_owned()
    }

    /// A handle that fires like [`Call::cancelled`], to move elsewhere.
    pub fn cancellation(&self) -> CancellationToken {
        self.reply.control.cancel.clone()
    }

    /// Ends the call with its answer (after every item sent before it). A
    /// payload over the client's limit is answered with a failure instead,
    /// and reported here.
    pub fn respond(mut self, payload: impl Into<Bytes>) -> Result<(), PushError> {
        self.reply.finish(CallStatus::Ok, payload.into())
    }

    /// Ends the call as failed, with a reason for the client.
    pub fn fail(mut self, reason: impl Into<String>) -> Result<(), PushError> {
        self.reply
            .finish(CallStatus::Failed, Bytes::from(reason.into()))
    }
}

/// The one STATUS of a call, sent by whoever ends it, or by its drop.
#[derive(Debug)]
struct Reply {
    id: u32,
    serial: u64,
    out: Outbound,
    table: Arc<CallTable>,
    control: Arc<Control>,
    /// The deadline given, in ms, for the reason.
    deadline_ms: u32,
    answered: bool,
    _in_flight: InFlightGuard,
}

impl Reply {
    fn finish(&mut self, status: CallStatus, payload: Bytes) -> Result<(), PushError> {
        self.answered = true;
        // Out of the table first: once the STATUS is out, the client may
        // reuse the id, and a new call's entry must not be removed.
        self.table.remove(self.id, self.serial);
        let frame = Frame::Status(StatusFrame::new(self.id, status, payload));
        match self.out.send(&frame) {
            Err(PushError::Refused(e @ SendError::TooLarge { .. })) => {
                let reason = format!("response too large for the client: {e}");
                self.send_control(CallStatus::Failed, reason);
                Err(e.into())
            }
            other => other,
        }
    }

    fn send_control(&self, status: CallStatus, reason: String) {
        let frame = Frame::Status(StatusFrame::new(self.id, status, Bytes::from(reason)));
        let _ = self.out.send_control(&frame);
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        self.table.remove(self.id, self.serial);
        let (status, reason) = match self.control.stopped.load(Ordering::Acquire) {
            CANCELLED => (CallStatus::Cancelled, "cancelled by the client".to_owned()),
            DEADLINE => (
                CallStatus::DeadlineExceeded,
                format!("deadline exceeded ({} ms)", self.deadline_ms),
            ),
            _ => (
                CallStatus::Failed,
                "the server dropped the call without answering".to_owned(),
            ),
        };
        self.send_control(status, reason);
    }
}

/// The client's stream of items for one call, in order; it ends when the
/// client ends its stream (END) or cancels. Reading grants the client more
/// credit, so a handler that reads slowly slows that client down, and the
/// server never holds more than the credit it granted.
#[derive(Debug)]
pub struct Items {
    id: u32,
    rx: mpsc::UnboundedReceiver<Bytes>,
    out: Outbound,
    /// Items read since the last grant.
    read: u32,
    /// Grant again once this many were read.
    regrant: u32,
}

impl Items {
    /// The next item, or `None` once the client's stream is over.
    pub async fn next(&mut self) -> Option<Bytes> {
        std::future::poll_fn(|cx| self.poll_item(cx)).await
    }

    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let item = std::task::ready!(self.rx.poll_recv(cx));
        if item.is_some() {
            self.read += 1;
            if self.read >= self.regrant {
                let frame = Frame::Credit {
                    id: self.id,
                    items: self.read,
                };
                // Small and owed: it may use the control room. A stream
                // that ended meanwhile refuses it, which is fine.
                let _ = self.out.send_control(&frame);
                self.read = 0;
            }
        }
        Poll::Ready(item)
    }
}

impl Stream for Items {
    type Item = Bytes;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.get_mut().poll_item(cx)
    }
}

/// Sends the server's stream of items for one call. [`ItemSender::send`]
/// waits while the client has granted no credit (and while the
/// connection's queue is full), so a slow reader slows this stream alone
/// and is never dropped for it.
#[derive(Debug)]
pub struct ItemSender {
    id: u32,
    out: Outbound,
    control: Arc<Control>,
}

impl ItemSender {
    /// Sends one item, once the client has credit for it.
    pub async fn send(&mut self, item: impl Into<Bytes>) -> Result<(), PushError> {
        let mut item = [item.into()];
        // Most items find credit and room: queued at once, with no waiter
        // registered. Only a stream that must wait pays for one.
        if self.out.try_send_items(self.id, &mut item)? == 1 {
            return Ok(());
        }
        let [item] = item;
        loop {
            let credit = self.control.credit.notified();
            tokio::pin!(credit);
            credit.as_mut().enable();
            let frame = Frame::Item(ItemFrame::new(self.id, item.clone()));
            match self.out.send_waiting(&frame).await {
                Err(PushError::Refused(SendError::NoCredit { .. })) => credit.await,
                other => return other,
            }
        }
    }

    /// Sends several items in order, as many at a time as the client's
    /// credit and the queue allow (one lock for those, not one each), and
    /// waits for credit for the rest.
    pub async fn send_all(&mut self, items: &mut Vec<Bytes>) -> Result<(), PushError> {
        while !items.is_empty() {
            let sent = self.out.try_send_items(self.id, &mut items[..])?;
            items.drain(..sent);
            if let Some(next) = items.first().cloned() {
                self.send(next).await?;
                items.remove(0);
            }
        }
        Ok(())
    }

    /// Items the client's credit allows now, without waiting.
    pub fn credit(&self) -> u32 {
        self.out.update(|session, _| session.send_credit(self.id))
    }
}

/// Starts call `frame`, which arrived at `now`: the handler's future runs
/// in a task of its own, dropped when the client cancels or the deadline
/// passes (the STATUS says which).
pub(crate) fn start<F>(
    frame: CallFrame,
    now: Instant,
    deadline_ms: u32,
    stream_credit: u32,
    (out, table, in_flight): (&Outbound, &Arc<CallTable>, InFlightGuard),
    run: impl FnOnce(Call) -> F,
) where
    F: Future<Output = ()> + Send + 'static,
{
    let control = Arc::new(Control {
        cancel: CancellationToken::new(),
        stopped: AtomicU8::new(RUNNING),
        credit: Notify::new(),
    });
    let serial = table.serial.fetch_add(1, Ordering::Relaxed);
    let (items, items_tx) = if frame.client_streams() {
        let (tx, rx) = mpsc::unbounded_channel();
        let items = Items {
            id: frame.id,
            rx,
            out: out.clone(),
            read: 0,
            regrant: (stream_credit / 2).max(1),
        };
        (Some(items), Some(tx))
    } else {
        (None, None)
    };
    table.lock().insert(
        frame.id,
        Entry {
            serial,
            control: control.clone(),
            items: items_tx,
        },
    );
    let span = tracing::info_span!("call", id = frame.id, trace_id = tracing::field::Empty);
    if let Some(id) = frame.metadata.get_str("traceparent").and_then(trace_id) {
        span.record("trace_id", tracing::field::display(id));
    }
    let sender = frame.server_streams().then(|| ItemSender {
        id: frame.id,
        out: out.clone(),
        control: control.clone(),
    });
    let deadline = (deadline_ms > 0).then(|| now + Duration::from_millis(deadline_ms.into()));
    let call = Call {
        id: frame.id,
        payload: frame.payload,
        metadata: frame.metadata,
        deadline,
        items,
        sender,
        reply: Reply {
            id: frame.id,
            serial,
            out: out.clone(),
            table: table.clone(),
            control: control.clone(),
            deadline_ms,
            answered: false,
            _in_flight: in_flight,
        },
    };
    let work = run(call);
    tokio::spawn(
        async move {
            let work = std::pin::pin!(work);
            let expired = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = control.cancel.cancelled() => {}
                () = expired => control.stopped.store(DEADLINE, Ordering::Release),
                () = work => {}
            }
            // `work` is dropped here, after the reason was recorded: its
            // unanswered reply sends the STATUS that says why.
        }
        .instrument(span),
    );
}

/// The trace id of a W3C `traceparent` (`00-TRACEID-SPANID-FLAGS`), so the
/// server's span names the trace the client's call belongs to.
fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (_version, id) = (parts.next()?, parts.next()?);
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_id_is_read_from_a_traceparent() {
        assert_eq!(
            trace_id("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        assert_eq!(trace_id("00-short-b7ad6b7169203331-01"), None);
        assert_eq!(trace_id("garbage"), None);
    }
}
