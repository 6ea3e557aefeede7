//! The reference application behind the `server` binary (it is ours, not
//! the library's): print every text
//! message, echo every request, and optionally relay text between clients.

use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tracing::debug;

use crate::line_output::{LineOutput, format_message_line};
#[cfg(feature = "nats")]
use rust_tcp::bus::{NatsBus, Subscription};
use rust_tcp::{Call, Handler, Message, PeerInfo, Pusher, Responder, Service};

/// A batch is handed to the writer once it reaches this size even if more
/// input is waiting, so one busy connection cannot hold lines back for long.
const BATCH_BYTES: usize = 64 * 1024;

/// Prints each text message from every connection to a [`LineOutput`],
/// answers each request with its own payload, and with broadcast on, relays
/// each text message to every other connected v2 client as `NAME: TEXT`.
#[derive(Debug, Clone)]
pub struct PrintService {
    out: LineOutput,
    broadcast: Option<Arc<Room>>,
    /// `--sync-output`: each line written before the next message is
    /// handled, not batched through the writer thread.
    sync_output: Option<Arc<std::fs::File>>,
}

/// Everyone who can receive relayed messages, and the bus to the other
/// servers' rooms, if any.
#[derive(Debug, Default)]
struct Room {
    next_id: AtomicU64,
    members: Mutex<HashMap<u64, Pusher>>,
    #[cfg(feature = "nats")]
    bus: Option<(NatsBus, String)>,
}

impl Room {
    /// Delivers `message` to every member but `except`, through each one's
    /// bounded queue (a slow consumer is dropped by its own connection).
    fn deliver(&self, message: &Message, except: Option<u64>) {
        // Collected first: sending outside the lock.
        let receivers: Vec<Pusher> = {
            let members = self.members.lock().unwrap_or_else(|p| p.into_inner());
            members
                .iter()
                .filter(|(id, _)| Some(**id) != except)
                .map(|(_, pusher)| pusher.clone())
                .collect()
        };
        for pusher in receivers {
            if let Err(e) = pusher.send_text(message.clone()) {
                // The receiver's own connection logs why it ends (a slow
                // consumer, say); one line per message here would flood.
                debug!("not relayed to one client: {e}");
            }
        }
    }
}

/// Delivers what other servers publish to this server's room, for as long
/// as the bus lives.
#[cfg(feature = "nats")]
async fn relay_from_bus(room: Arc<Room>, mut subscription: Subscription) {
    while let Some(payload) = subscription.next().await {
        match Message::from_utf8(payload) {
            Ok(message) => room.deliver(&message, None),
            Err(_) => debug!("a bus message that is not UTF-8 was dropped"),
        }
    }
}

impl PrintService {
    /// Prints to `out`; no relaying.
    pub fn new(out: LineOutput) -> Self {
        PrintService {
            out,
            broadcast: None,
            sync_output: None,
        }
    }

    /// Writes each message's line to `file` as it is handled (a write
    /// call each, so what the server handled is in the file even if the
    /// process is killed), instead of in batches.
    pub fn with_sync_output(mut self, file: std::fs::File) -> Self {
        self.sync_output = Some(Arc::new(file));
        self
    }

    /// Also relays each text message to every other v2 client.
    pub fn with_broadcast(mut self) -> Self {
        self.broadcast = Some(Arc::default());
        self
    }

    /// Also relays through `bus` to the rooms called `room` of other
    /// servers, and delivers theirs here (with broadcast on).
    #[cfg(feature = "nats")]
    pub async fn with_bus(mut self, bus: NatsBus, room: &str) -> anyhow::Result<Self> {
        let subscription = bus.subscribe(room).await?;
        let shared = Arc::new(Room {
            bus: Some((bus, room.to_owned())),
            ..Room::default()
        });
        tokio::spawn(relay_from_bus(shared.clone(), subscription));
        self.broadcast = Some(shared);
        Ok(self)
    }
}

impl Service for PrintService {
    type Handler = PrintHandler;

    fn connect(&self, peer: &PeerInfo) -> PrintHandler {
        let seat = self.broadcast.as_ref().map(|room| {
            let id = room.next_id.fetch_add(1, Ordering::Relaxed);
            if peer.pusher.can_push() {
                room.members
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, peer.pusher.clone());
            }
            Seat {
                id,
                name: peer.name.clone(),
                room: room.clone(),
            }
        });
        PrintHandler {
            printed: metrics::counter!("rust_tcp_printed_messages_total"),
            out: self.out.clone(),
            batch: Vec::new(),
            output_closed: false,
            seat,
            sync_output: self.sync_output.clone(),
        }
    }
}

/// One connection's place in the broadcast room; leaving is dropping it.
#[derive(Debug)]
struct Seat {
    id: u64,
    name: String,
    room: Arc<Room>,
}

impl Seat {
    async fn relay(&self, text: &str) {
        // Built once: every receiver's queue shares this one message
        // (large payloads are not copied per receiver).
        let message = Message::new(format!("{}: {}", self.name, text));
        self.room.deliver(&message, Some(self.id));
        #[cfg(feature = "nats")]
        if let Some((bus, room)) = &self.room.bus
            && let Err(e) = bus.publish(room, message.as_shared_bytes().clone()).await
        {
            debug!(from = %self.name, "not relayed to other servers: {e}");
        }
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        self.room
            .members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

/// One connection's share of [`PrintService`]: its own line buffer.
#[derive(Debug)]
pub struct PrintHandler {
    out: LineOutput,
    batch: Vec<u8>,
    output_closed: bool,
    seat: Option<Seat>,
    sync_output: Option<Arc<std::fs::File>>,
    /// This application's own metric, beside the library's: a service adds
    /// series with the same `metrics` macros.
    printed: metrics::Counter,
}

impl PrintHandler {
    async fn send_batch(&mut self) {
        if self.batch.is_empty() || self.output_closed {
            self.batch.clear();
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_BYTES));
        if !self.out.write_batch(batch).await {
            // The output is gone (e.g. a closed pipe); the writer thread has
            // reported why. Keep serving the protocol, just stop printing.
            self.output_closed = true;
        }
    }
}

impl Handler for PrintHandler {
    async fn on_text(&mut self, message: Message) {
        format_message_line(&mut self.batch, message.as_str());
        self.printed.increment(1);
        if let Some(file) = &self.sync_output
            && !self.output_closed
        {
            use std::io::Write;
            // A short blocking write to a pipe or file: the price of
            // --sync-output, which says so.
            if let Err(e) = (&**file).write_all(&self.batch) {
                tracing::warn!("writing to stdout failed, printing stops: {e}");
                self.output_closed = true;
            }
            self.batch.clear();
        }
        if let Some(seat) = &self.seat {
            seat.relay(message.as_str()).await;
        }
        if self.batch.len() >= BATCH_BYTES {
            self.send_batch().await;
        }
    }

    async fn on_binary(&mut self, data: Bytes) {
        self.batch
            .extend_from_slice(format!("Binary: {} bytes\n", data.len()).as_bytes());
    }

    async fn on_request(&mut self, payload: Bytes, responder: Responder) {
        // A failed echo means the client is gone or not reading; the
        // connection deals with that.
        let _ = responder.respond(payload);
    }

    fn on_call(&mut self, call: Call) -> impl Future<Output = ()> + Send + 'static {
        echo_call(call)
    }

    async fn flush(&mut self) {
        self.send_batch().await;
    }
}

/// The reference server's calls (spec 3.13), echo as its requests are: the
/// answer is the request; a server stream carries each item of the
/// client's stream back (or, without one, the request as its one item).
/// A call whose request is `wait` waits until it is cancelled or its
/// deadline passes, so peers can test both against this server.
async fn echo_call(mut call: Call) {
    debug!(id = call.id(), "call");
    if &call.payload()[..] == b"wait" {
        return std::future::pending().await;
    }
    let (items, sender) = (call.take_items(), call.take_sender());
    match (items, sender) {
        (Some(mut items), Some(mut back)) => {
            while let Some(item) = items.next().await {
                if back.send(item).await.is_err() {
                    return;
                }
            }
        }
        (Some(mut items), None) => while items.next().await.is_some() {},
        (None, Some(mut back)) => {
            if back.send(call.payload().clone()).await.is_err() {
                return;
            }
        }
        (None, None) => {}
    }
    let payload = call.payload().clone();
    let _ = call.respond(payload);
}
