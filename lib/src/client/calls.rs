//! Calls from the client (spec 3.13): [`CallOptions`] say what a call
//! carries (its deadline, metadata and streams), [`ClientCall`] is one call
//! in flight (read the server's items, send ours, wait for the end), and
//! the routes take what the server sends for each call to its caller.
//! Dropping a [`ClientCall`] before its end cancels the call on the server.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, mpsc, oneshot};

use super::end::End;
use super::error::ClientError;
use super::shared::Core;
use crate::protocol::v2::{
    CLIENT_STREAMS, CallFrame, CallStatus, Frame, ItemFrame, Metadata, MetadataError,
    SERVER_STREAMS, SendError, StatusFrame,
};
use crate::transport::QueueError;

/// What a call carries beside its payload. Start from
/// [`CallOptions::default`] (a unary call: no deadline, no metadata, no
/// streams) and change what you need.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CallOptions {
    /// The call's time budget: sent with it (the server stops its work
    /// when it passes and answers "deadline exceeded"), and kept here too
    /// (the call fails locally then, whatever the network does).
    pub deadline: Option<Duration>,
    /// Key/value pairs for the server (a W3C `traceparent`, say).
    pub metadata: Metadata,
    /// The server answers with a stream of items; the window is how many
    /// it may send ahead of our reading (the credit we keep granting).
    pub server_stream: Option<u32>,
    /// We send a stream of items ([`ClientCall::send_item`], ended by
    /// [`ClientCall::end_items`]).
    pub client_stream: bool,
}

impl CallOptions {
    /// A unary call.
    pub fn new() -> Self {
        CallOptions::default()
    }

    crate::config_setters::setters! {
        deadline: Option<Duration>,
        client_stream: bool,
    }

    /// The server answers with a stream, at most `window` items ahead of
    /// our reading (at least 1).
    pub fn server_stream(mut self, window: u32) -> Self {
        self.server_stream = Some(window.max(1));
        self
    }

    /// Adds a metadata entry (see [`Metadata::insert`] for the rules).
    pub fn metadata(
        mut self,
        key: impl Into<String>,
        value: impl Into<Bytes>,
    ) -> Result<Self, MetadataError> {
        self.metadata.insert(key, value)?;
        Ok(self)
    }
}

/// How a call's end reaches its caller.
type Ending = oneshot::Sender<Result<StatusFrame, ClientError>>;

/// Items of one call that arrived together, handed over at once: one
/// channel operation for a run, not one an item.
type Run = Vec<Bytes>;

/// What a call's senders watch: credit granted, and the call's end (after
/// which its id may be another call's, so nothing more may go out on it).
#[derive(Debug, Default)]
struct Signals {
    credit: Notify,
    ended: AtomicBool,
}

impl Signals {
    fn end(&self) {
        self.ended.store(true, Ordering::Release);
        self.credit.notify_waiters();
        self.credit.notify_one();
    }
}

struct Route {
    items: mpsc::UnboundedSender<Run>,
    ending: Option<Ending>,
    signals: Arc<Signals>,
}

#[derive(Default)]
struct Table {
    routes: HashMap<u32, Route, foldhash::fast::RandomState>,
    next_id: u32,
    ended: Option<End>,
}

/// The calls in flight on one connection, by id: where their items,
/// credit and end go.
#[derive(Clone, Default)]
pub(crate) struct Routes(Arc<Mutex<Table>>);

/// What a new call's caller holds of its route.
struct Opened {
    id: u32,
    items: mpsc::UnboundedReceiver<Run>,
    ending: oneshot::Receiver<Result<StatusFrame, ClientError>>,
    signals: Arc<Signals>,
}

impl Routes {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A route for a new call, under an id no call in flight has.
    fn open(&self) -> Result<Opened, ClientError> {
        let mut table = self.lock();
        if let Some(end) = &table.ended {
            return Err(end.to_error());
        }
        let id = loop {
            let id = table.next_id;
            table.next_id = id.wrapping_add(1);
            if !table.routes.contains_key(&id) {
                break id;
            }
        };
        let (items_tx, items) = mpsc::unbounded_channel();
        let (ending_tx, ending) = oneshot::channel();
        let signals = Arc::new(Signals::default());
        table.routes.insert(
            id,
            Route {
                items: items_tx,
                ending: Some(ending_tx),
                signals: signals.clone(),
            },
        );
        Ok(Opened {
            id,
            items,
            ending,
            signals,
        })
    }

    fn remove(&self, id: u32) {
        self.lock().routes.remove(&id);
    }

    /// Items of calls' streams, in order (the session checked our credit),
    /// handed over under one lock; `items` is left empty.
    pub(crate) fn items(&self, items: &mut Vec<crate::protocol::v2::ItemFrame>) {
        if items.is_empty() {
            return;
        }
        let table = self.lock();
        let hand_over = |id: u32, run: Run| {
            if let Some(route) = table.routes.get(&id) {
                let _ = route.items.send(run);
            }
        };
        let mut drained = items.drain(..);
        let Some(first) = drained.next() else { return };
        let (mut id, mut run) = (first.id, vec![first.payload]);
        for item in drained {
            if item.id != id {
                hand_over(id, std::mem::take(&mut run));
                id = item.id;
            }
            run.push(item.payload);
        }
        hand_over(id, run);
    }

    /// The server granted credit to call `id`'s stream.
    pub(crate) fn credit(&self, id: u32) {
        if let Some(route) = self.lock().routes.get(&id) {
            // Every sender of the call looks again (there may be several).
            route.signals.credit.notify_waiters();
            route.signals.credit.notify_one();
        }
    }

    /// Call `id` ended: its items stream ends after what is queued, and a
    /// sender waiting for credit wakes to find it gone.
    pub(crate) fn status(&self, status: StatusFrame) {
        let route = self.lock().routes.remove(&status.id);
        if let Some(mut route) = route {
            route.signals.end();
            if let Some(ending) = route.ending.take() {
                let _ = ending.send(Ok(status));
            }
        }
    }

    /// The connection is over: every call in flight fails with `end`.
    pub(crate) fn end(&self, end: &End) {
        let routes = {
            let mut table = self.lock();
            table.ended.get_or_insert(end.clone());
            std::mem::take(&mut table.routes)
        };
        for (_, mut route) in routes {
            route.signals.end();
            if let Some(ending) = route.ending.take() {
                let _ = ending.send(Err(end.to_error()));
            }
        }
    }
}

/// One call in flight. Read the server's stream with
/// [`ClientCall::next_item`] (each item read grants the server another),
/// send ours with [`ClientCall::send_item`], and wait for the answer with
/// [`ClientCall::finish`]. Dropping it before the end cancels the call: the
/// server drops its work and its id stays taken until the server's STATUS
/// arrives, so a late item can never be taken for another call's.
pub struct ClientCall {
    id: u32,
    core: Arc<Core>,
    items: mpsc::UnboundedReceiver<Run>,
    /// The rest of the run of items last taken from `items`.
    run: std::vec::IntoIter<Bytes>,
    ending: oneshot::Receiver<Result<StatusFrame, ClientError>>,
    signals: Arc<Signals>,
    deadline: Option<(Instant, Duration)>,
    /// Grant the server more once this many items were read.
    regrant: u32,
    read: u32,
    /// How the call ended, once it has.
    outcome: Option<Result<Bytes, ClientError>>,
}

impl std::fmt::Debug for ClientCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCall")
            .field("id", &self.id)
            .field("ended", &self.outcome.is_some())
            .finish_non_exhaustive()
    }
}

fn outcome(status: StatusFrame) -> Result<Bytes, ClientError> {
    match status.status {
        CallStatus::Ok => Ok(status.payload),
        other => Err(ClientError::Call {
            status: other,
            reason: status.reason(),
        }),
    }
}

impl ClientCall {
    /// Sends call `payload` on `core`'s connection.
    pub(crate) async fn open(
        core: Arc<Core>,
        payload: Bytes,
        options: CallOptions,
    ) -> Result<ClientCall, ClientError> {
        let opened = core.calls.open()?;
        let mut frame = CallFrame::new(opened.id, payload);
        frame.flags = if options.server_stream.is_some() {
            SERVER_STREAMS
        } else {
            0
        } | if options.client_stream {
            CLIENT_STREAMS
        } else {
            0
        };
        frame.credit = options.server_stream.unwrap_or(0);
        frame.deadline_ms = options
            .deadline
            .map_or(0, |d| d.as_millis().clamp(1, u32::MAX.into()) as u32);
        frame.metadata = options.metadata;
        let deadline = options.deadline.map(|d| (Instant::now() + d, d));
        let sent = core
            .queue
            .push(|st, buf| match st.as_mut() {
                Some(session) => session.send(&Frame::Call(frame), buf),
                None => Err(SendError::CallsNotNegotiated),
            })
            .await;
        let refused = match sent {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(ClientError::Refused(e)),
            Err(QueueError::Closed) => Some(core.requests.ended().map_or_else(
                || ClientError::closed(super::Cause::Us, "connection is closing"),
                |e| e.to_error(),
            )),
            Err(QueueError::Full { .. }) => unreachable!("push waits for room"),
        };
        if let Some(e) = refused {
            core.calls.remove(opened.id);
            return Err(e);
        }
        Ok(ClientCall {
            id: opened.id,
            core,
            items: opened.items,
            run: Vec::new().into_iter(),
            ending: opened.ending,
            signals: opened.signals,
            deadline,
            // A quarter of the window: the grant reaches the server while
            // it still has three quarters to send, so a fast stream does
            // not stop for a round trip (half the window left it idle at
            // times: measured 0.74x our push path, a quarter 0.8-0.9x).
            regrant: (options.server_stream.unwrap_or(1) / 4).max(1),
            read: 0,
            outcome: None,
        })
    }

    /// The call's id on the wire (for logs).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Waits for `work`, or fails once the call's deadline has passed
    /// (cancelling it on the server, which stops its work).
    async fn within<T, W: Future<Output = T>>(&mut self, work: W) -> Result<T, ClientError> {
        let Some((at, _)) = self.deadline else {
            return Ok(work.await);
        };
        match tokio::time::timeout_at(at.into(), work).await {
            Ok(done) => Ok(done),
            Err(_) => Err(self.expired()),
        }
    }

    /// The deadline passed: the call is cancelled on the server, and fails
    /// here, now and on every later read.
    fn expired(&mut self) -> ClientError {
        let budget = self.deadline.map(|(_, b)| b).unwrap_or_default();
        let e = ClientError::Call {
            status: CallStatus::DeadlineExceeded,
            reason: format!("no answer within the deadline of {budget:?}"),
        };
        self.cancel_now();
        self.outcome = Some(Err(e.duplicate()));
        e
    }

    /// The next item of the server's stream; `Ok(None)` once the call has
    /// ended well (its answer is then [`ClientCall::finish`]'s), an error
    /// if it ended otherwise.
    pub async fn next_item(&mut self) -> Result<Option<Bytes>, ClientError> {
        if let Some(outcome) = &self.outcome {
            return outcome
                .as_ref()
                .map(|_| None)
                .map_err(ClientError::duplicate);
        }
        // What is left of the last run first.
        let got = match self.run.next() {
            Some(item) => Some(item),
            None => self.next_run().await?,
        };
        match got {
            Some(item) => {
                self.read += 1;
                if self.read >= self.regrant {
                    let grant = Frame::Credit {
                        id: self.id,
                        items: self.read,
                    };
                    // Owed to a server that keeps to its credit: never
                    // refused for queued bytes. A call that ended meanwhile
                    // refuses it, which is fine.
                    let _ = self.core.session(|s, out| s.send(&grant, out));
                    self.read = 0;
                }
                Ok(Some(item))
            }
            // The route is gone: the call's end is here (or the
            // connection's), sent right after.
            None => {
                let ended = match (&mut self.ending).await {
                    Ok(Ok(status)) => outcome(status),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(ClientError::closed(super::Cause::Us, "call abandoned")),
                };
                let result = ended.as_ref().map(|_| None).map_err(ClientError::duplicate);
                self.outcome = Some(ended);
                result
            }
        }
    }

    /// The first item of the next run from the server, waiting for one
    /// (within the deadline); `None` once the route is gone.
    async fn next_run(&mut self) -> Result<Option<Bytes>, ClientError> {
        // A run already here is taken without a timer or a wait.
        let run = match self.items.try_recv() {
            Ok(run) => Some(run),
            Err(mpsc::error::TryRecvError::Disconnected) => None,
            Err(mpsc::error::TryRecvError::Empty) => match self.deadline {
                None => self.items.recv().await,
                Some((at, _)) => {
                    match tokio::time::timeout_at(at.into(), self.items.recv()).await {
                        Ok(got) => got,
                        Err(_) => return Err(self.expired()),
                    }
                }
            },
        };
        Ok(run.and_then(|run| {
            self.run = run.into_iter();
            self.run.next()
        }))
    }

    /// Sends one item of our stream, once the server has credit for it.
    pub async fn send_item(&mut self, item: impl Into<Bytes>) -> Result<(), ClientError> {
        let sender = self.sender();
        self.within(sender.send(item.into())).await?
    }

    /// Ends our stream: the server's stream of our items sees its end.
    pub async fn end_items(&mut self) -> Result<(), ClientError> {
        self.sender().end().await
    }

    /// A handle that sends our stream's items from another task than the
    /// one reading the server's (both streams at once), clonable.
    pub fn sender(&self) -> CallSender {
        CallSender {
            id: self.id,
            core: self.core.clone(),
            signals: self.signals.clone(),
            deadline: self.deadline.map(|(at, _)| at),
        }
    }

    /// Waits for the call's answer (reading and dropping what is left of
    /// the server's stream, granting as it goes).
    pub async fn finish(mut self) -> Result<Bytes, ClientError> {
        while self.next_item().await?.is_some() {}
        self.outcome
            .take()
            .unwrap_or_else(|| Err(ClientError::closed(super::Cause::Us, "call abandoned")))
    }

    /// Cancels the call now: the server drops its work. Dropping the call
    /// does the same.
    pub fn cancel(mut self) {
        self.cancel_now();
    }

    fn cancel_now(&mut self) {
        if self.outcome.is_none() {
            let _ = self
                .core
                .session(|s, out| s.send(&Frame::Cancel(self.id), out));
            self.outcome = Some(Err(ClientError::Call {
                status: CallStatus::Cancelled,
                reason: "cancelled by us".into(),
            }));
        }
    }
}

impl Drop for ClientCall {
    fn drop(&mut self) {
        self.cancel_now();
    }
}

/// Sends the items of a call's client stream, apart from the
/// [`ClientCall`] that reads the server's: from another task, or as a
/// [`Sink`](futures::Sink) in the typed layer. It stops working when its
/// call ends (the server's STATUS, our cancellation, the connection's end).
#[derive(Clone)]
pub struct CallSender {
    id: u32,
    core: Arc<Core>,
    signals: Arc<Signals>,
    deadline: Option<Instant>,
}

impl std::fmt::Debug for CallSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallSender")
            .field("id", &self.id)
            .field("ended", &self.signals.ended.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl CallSender {
    /// The call's id on the wire (for logs).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Sends one item, once the server has credit for it: it waits while
    /// the server's window is used up, so the server reads at its pace.
    /// Fails once the call has ended, or its deadline has passed.
    pub async fn send(&self, item: Bytes) -> Result<(), ClientError> {
        let frame = Frame::Item(ItemFrame::new(self.id, item));
        loop {
            let granted = self.signals.credit.notified();
            tokio::pin!(granted);
            granted.as_mut().enable();
            self.check_open()?;
            match push(&self.core, &frame).await {
                Err(ClientError::Refused(SendError::NoCredit { .. })) => match self.deadline {
                    None => granted.await,
                    Some(at) => {
                        if tokio::time::timeout_at(at.into(), granted).await.is_err() {
                            return Err(ClientError::Call {
                                status: CallStatus::DeadlineExceeded,
                                reason: "no credit within the call's deadline".into(),
                            });
                        }
                    }
                },
                other => return other,
            }
        }
    }

    /// Ends our stream: the server's stream of our items sees its end.
    pub async fn end(&self) -> Result<(), ClientError> {
        self.check_open()?;
        push(&self.core, &Frame::End(self.id)).await
    }

    /// The call must still be ours: once it ended, its id may already be
    /// another call's (ids are reused once free).
    fn check_open(&self) -> Result<(), ClientError> {
        if self.signals.ended.load(Ordering::Acquire) {
            return Err(ClientError::Refused(SendError::NoSuchCall { id: self.id }));
        }
        Ok(())
    }
}

/// Sends a frame of a call through the session, waiting for room.
async fn push(core: &Core, frame: &Frame) -> Result<(), ClientError> {
    match core
        .queue
        .push(|st, buf| match st.as_mut() {
            Some(session) => session.send(frame, buf),
            None => Err(SendError::CallsNotNegotiated),
        })
        .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ClientError::Refused(e)),
        Err(_) => Err(core.requests.ended().map_or_else(
            || ClientError::closed(super::Cause::Us, "connection is closing"),
            |e| e.to_error(),
        )),
    }
}
