//! The user's side of the server: a [`Service`] makes one [`Handler`] per
//! connection, told who the peer is by [`PeerInfo`]. They live beside the
//! server that calls them.

use bytes::Bytes;
use std::future::Future;
use std::net::SocketAddr;

use super::call::Call;
use super::pusher::Pusher;
use super::pusher::Responder;
use crate::protocol::Message;
use rustls_pki_types::CertificateDer;

/// Who is on the other end of a connection, as far as the server knows.
/// More may be added (a verified identity, a real address behind a proxy),
/// so it is `#[non_exhaustive]`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PeerInfo {
    /// The peer's socket address, for logs and per-client state.
    pub addr: SocketAddr,
    /// The protocol version this connection speaks.
    pub version: u8,
    /// The name the client gave in its hello (v2), or its address (v1).
    pub name: String,
    /// Sends messages to this client at any time (v2 only; for a v1 peer
    /// every push fails with `Unsupported`).
    pub pusher: Pusher,
    /// The certificate the client presented and the server verified (mutual
    /// TLS), DER-encoded: who it is, for a service that authorises per
    /// identity. `None` without TLS or without client certificates.
    pub tls_client_certificate: Option<CertificateDer<'static>>,
    /// The token the client authenticated with, when the server requires
    /// tokens: which one it used, so a service can authorise per token.
    pub auth_token: Option<Bytes>,
    /// The application protocol, version and encoding negotiated with this
    /// client (spec 3.3.2); `None` for a client that asked for none.
    pub app_protocol: Option<crate::protocol::v2::AppChoice>,
    /// How the connection came: TCP, or a WebSocket (a browser, most
    /// likely). Both are served alike; a service may label or limit them.
    pub transport: Transport,
    /// When this handler takes over a session whose server died (resumed
    /// from the deployment's session store, spec 3.14.1): how many of the
    /// one-way messages it receives first that server may have handled
    /// already (it had counted them, and died before recording that it
    /// handed them over). They are delivered again rather than lost; a
    /// service whose messages carry ids can skip the ones it has. 0
    /// otherwise.
    pub resumed_in_doubt: u64,
}

/// The way a connection reached the server (see [`PeerInfo::transport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transport {
    /// A TCP connection (TLS or not).
    Tcp,
    /// A WebSocket on the WebSocket listener (`ServerConfig::websocket`),
    /// carrying one v2 frame per message (spec section 4).
    WebSocket,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Tcp => "tcp",
            Transport::WebSocket => "websocket",
        })
    }
}

/// The user's application: it makes one [`Handler`] per connection.
///
/// Splitting the factory from the per-connection handler lets a handler keep
/// connection-local state (buffers, counters) in `&mut self` without locks,
/// while the service holds what all connections share.
///
/// A chat room: the service keeps every member's [`Pusher`], each handler
/// relays what its client says to the others.
///
/// ```
/// use rust_tcp::{Handler, Message, PeerInfo, Pusher, Service};
/// use std::sync::{Arc, Mutex};
///
/// #[derive(Default)]
/// struct Room {
///     members: Arc<Mutex<Vec<(String, Pusher)>>>,
/// }
///
/// impl Service for Room {
///     type Handler = Member;
///     fn connect(&self, peer: &PeerInfo) -> Member {
///         let mut members = self.members.lock().unwrap();
///         members.push((peer.name.clone(), peer.pusher.clone()));
///         Member { name: peer.name.clone(), members: self.members.clone() }
///     }
/// }
///
/// struct Member {
///     name: String,
///     members: Arc<Mutex<Vec<(String, Pusher)>>>,
/// }
///
/// impl Handler for Member {
///     async fn on_text(&mut self, message: Message) {
///         let line = format!("{}: {}", self.name, message.as_str());
///         for (name, pusher) in self.members.lock().unwrap().iter() {
///             if *name != self.name {
///                 // A member that does not read is dropped by the server.
///                 let _ = pusher.send_text(line.clone());
///             }
///         }
///     }
/// }
/// ```
pub trait Service: Send + Sync + 'static {
    /// The per-connection part.
    type Handler: Handler;

    /// Called once a connection's protocol version is known (and, for v2,
    /// the handshake succeeded).
    fn connect(&self, peer: &PeerInfo) -> Self::Handler;
}

/// Reacts to what one connection sends.
///
/// Only `on_text` must be written; binary messages are ignored and requests
/// refused unless their methods are. Write the methods as `async fn`.
///
/// ```
/// use bytes::Bytes;
/// use rust_tcp::{Handler, Message, Responder};
///
/// /// Counts what its connection sent, and answers "count" requests.
/// struct Counter {
///     seen: u64,
/// }
///
/// impl Handler for Counter {
///     async fn on_text(&mut self, _message: Message) {
///         self.seen += 1;
///     }
///
///     async fn on_request(&mut self, payload: Bytes, responder: Responder) {
///         if &payload[..] == b"count" {
///             let _ = responder.respond(self.seen.to_string());
///         } else {
///             let _ = responder.fail("unknown request");
///         }
///     }
/// }
/// ```
///
/// **What an awaiting handler holds up.** `on_text`, `on_binary` and
/// `on_request` run on the connection's own task, one at a time and in the
/// order the peer sent them: while one awaits, that connection reads
/// nothing more, writes nothing queued for it, and its timers (heartbeats,
/// timeouts) wait too; other connections are not affected. So await only
/// what is quick (a lock, a bounded channel), and move slow work elsewhere:
/// answer a request from another task by moving its [`Responder`] there,
/// or use calls ([`Handler::on_call`]), whose futures run in tasks of
/// their own. The typed layer does the latter for every call.
///
/// Calls come in the order the peer sent the messages. The server calls
/// [`Handler::flush`] whenever it has handed over everything received so far
/// and is about to wait for the network: a handler that batches work (like
/// the printing one) flushes there, which gives large batches under load and
/// immediate delivery for an interactive peer. Dropping the handler is the
/// signal that the connection is gone.
///
/// A payload larger than 64 KiB holds its share of the server's memory
/// budget (`ServerConfig::max_memory`) for as long as any copy of the
/// `Bytes` lives, so that what the server holds for peers stays bounded
/// wherever the payload goes (an echo waiting for a slow reader, a
/// broadcast). To keep such a payload for long (a store), copy it with
/// `Bytes::copy_from_slice`, which gives its share back.
pub trait Handler: Send + 'static {
    /// A text message arrived (v1 or v2).
    fn on_text(&mut self, message: Message) -> impl Future<Output = ()> + Send;

    /// Bytes arrived (v2). Ignored unless overridden.
    fn on_binary(&mut self, data: Bytes) -> impl Future<Output = ()> + Send {
        let _ = data;
        async {}
    }

    /// A request arrived (v2). Answer through `responder`, now or later from
    /// another task; answers may go out in any order. Unless overridden,
    /// requests are refused with an error response.
    fn on_request(
        &mut self,
        payload: Bytes,
        responder: Responder,
    ) -> impl Future<Output = ()> + Send {
        let _ = payload;
        let _ = responder.fail("this service does not answer requests");
        async {}
    }

    /// A call arrived (v2 with calls, spec 3.13): return the future that
    /// serves it. That future runs in a task of its own, so it may wait as
    /// long as it likes (for credit on its stream, for other work) without
    /// holding up anything else on the connection; it owns what it uses
    /// (clone what it needs from `self` here). It is dropped when the client
    /// cancels the call or its deadline passes, which stops the work and
    /// tells the client why. Unless overridden, calls are refused.
    ///
    /// ```
    /// use rust_tcp::{Call, Handler, Message};
    ///
    /// struct Lines;
    /// impl Handler for Lines {
    ///     async fn on_text(&mut self, _: Message) {}
    ///
    ///     /// Streams the request's lines back, one item each, at the pace
    ///     /// the client grants, then ends with the count.
    ///     fn on_call(&mut self, mut call: Call) -> impl Future<Output = ()> + Send + 'static {
    ///         async move {
    ///             let Some(mut items) = call.take_sender() else {
    ///                 let _ = call.fail("ask for a stream");
    ///                 return;
    ///             };
    ///             let text = String::from_utf8_lossy(call.payload()).into_owned();
    ///             let mut sent = 0;
    ///             for line in text.lines() {
    ///                 if items.send(line.to_owned()).await.is_err() {
    ///                     return; // the connection is gone
    ///                 }
    ///                 sent += 1;
    ///             }
    ///             let _ = call.respond(format!("{sent} lines"));
    ///         }
    ///     }
    /// }
    /// ```
    fn on_call(&mut self, call: Call) -> impl Future<Output = ()> + Send + 'static {
        let _ = call.fail("this service does not answer calls");
        async {}
    }

    /// Everything received so far has been handed to the handler.
    fn flush(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// The connection is over (closed by either side, lost, or stopped
    /// with the server), and everything it received has been handed over
    /// and flushed: the place to await clean-up (leave a room, write a
    /// record), which `Drop` cannot. Pushes no longer reach the client.
    /// Given at most `ServerConfig::shutdown_grace`, then dropped.
    fn on_close(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
