//! rust-tcp: your own versioned message protocol over TCP, for where HTTP
//! does not fit (devices, games, chat, trading, internal services).
//!
//! Frames that survive any TCP segmentation, a handshake with limits and
//! names, text and binary messages both ways, requests with many in flight,
//! server pushes, heartbeats, a close handshake that loses nothing,
//! graceful shutdown, TLS and tokens, and defences for a hostile network.
//! The wire format is specified in `docs/PROTOCOL.md`.
//!
//! What most users need is at the crate root: a [`Server`] that runs their
//! [`Service`] (one [`Handler`] per connection, answering through a
//! [`Responder`] and pushing through a [`Pusher`]), and a [`Client`].
//!
//! # A server and a client
//!
//! Add it with `cargo add rust-tcp tokio --features tokio/full` and
//! `cargo add bytes`. A service that prints text messages and answers
//! each request with its payload in upper case, and a client talking to it:
//!
//! ```
//! use bytes::Bytes;
//! use rust_tcp::{Client, Handler, Message, PeerInfo, Responder, Server, ServerConfig, Service};
//!
//! /// The application: one `Shouter` per connection.
//! struct Shout;
//!
//! impl Service for Shout {
//!     type Handler = Shouter;
//!     fn connect(&self, peer: &PeerInfo) -> Shouter {
//!         Shouter { name: peer.name.clone() }
//!     }
//! }
//!
//! struct Shouter {
//!     name: String,
//! }
//!
//! impl Handler for Shouter {
//!     async fn on_text(&mut self, message: Message) {
//!         println!("{} says {}", self.name, message.as_str());
//!     }
//!
//!     async fn on_request(&mut self, payload: Bytes, responder: Responder) {
//!         // Answer now, or move the responder to another task and answer later.
//!         let _ = responder.respond(payload.to_ascii_uppercase());
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Port 0: any free port; the server says which.
//!     let server = Server::bind("127.0.0.1:0", ServerConfig::default()).await?;
//!     let addr = server.local_addr().to_string();
//!     let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//!     let running = tokio::spawn(server.run(Shout, async {
//!         let _ = stopped.await;
//!     }));
//!
//!     let client = Client::connect(&addr).await?;
//!     client.send_text("hello").await?;
//!     let answer = client.request("shout this").await?;
//!     assert_eq!(answer, "SHOUT THIS");
//!     // Returns once the server has processed everything sent before.
//!     client.close().await?;
//!
//!     let _ = stop.send(());
//!     running.await?;
//!     Ok(())
//! }
//! ```
//!
//! The `server` and `client` binaries of this package are the reference
//! application: `cargo run --release --bin server`, then
//! `cargo run --release --bin client -- hello`.
//!
//! # How it is built
//!
//! The crate is layered so that each part can be understood and tested on its
//! own, and each layer only imports the ones below it:
//!
//! 1. [`protocol`] is sans-IO: frame types, codecs and the v2 session state
//!    machine with its timers. Every frame in and out passes through the
//!    session; no sockets, no runtime, no printing. It is public for people
//!    writing their own peers, and tested byte by byte on a made-up clock.
//! 2. `transport` (internal) moves bytes between a stream and the protocol,
//!    owning the buffers and the bounded write queue.
//! 3. The server (accept loop, limits, shutdown, the connection drivers)
//!    and the client (a cloneable handle, request multiplexing): thin
//!    drivers that read, or sleep until the session's next deadline.
//!
//! The `server` and `client` binaries only parse arguments, format output
//! and hold the reference application (the printing service).
//!
//! Configurations and error enums are `#[non_exhaustive]`: build a config
//! from its `default()` with the setters, and match errors with a `_` arm,
//! so that new settings and new failure kinds never break your code.
//!
//! The transport layer and the reference application (the printing service
//! of the `server` binary) are not part of the library's surface:
//!
//! ```compile_fail
//! use rust_tcp::transport::WriteQueue;
//! ```
//!
//! ```compile_fail
//! use rust_tcp::PrintService;
//! ```

#![warn(missing_docs)]

#[cfg(feature = "nats")]
pub mod bus;
mod client;
mod config_setters;
pub mod protocol;
mod server;
mod transport;
#[cfg(feature = "typed")]
pub mod typed;

pub use client::{
    CallOptions, CallSender, Cause, Client, ClientCall, ClientConfig, ClientError, Incoming,
    ProtocolVersion, Pushed, Reconnect,
};
pub use protocol::Message;
pub use server::{
    AuthTokens, AuthTokensError, Call, Handler, ItemSender, Items, PeerInfo, PushError, Pusher,
    Responder, Server, ServerConfig, ServerError, Service, Transport,
};
#[cfg(feature = "nats")]
pub use server::{SessionStore, SessionStoreError};
pub use transport::{ClientTls, ServerTls, TlsError};
#[cfg(feature = "websocket")]
pub use transport::{Page, PageError, WEBSOCKET_SUBPROTOCOL, WebSocketConfig};

/// Your protocol from one trait: each `async fn` is a call, and the macro
/// writes the protocol's types, a client with a method per call, and the
/// server's dispatch to a method per call.
///
/// ```no_run
/// use rust_tcp::typed::{CallContext, ItemStream, TypedItems};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Debug, Serialize, Deserialize)]
/// pub enum KvError { ReadOnly, TooLong { max: usize } }
///
/// #[derive(Debug, Serialize, Deserialize)]
/// pub enum Changed { Set { key: String } }
///
/// #[rust_tcp::service(name = "kv", versions = 1..=1, event = Changed)]
/// pub trait Kv {
///     /// The value under `key`, if any.
///     async fn get(key: String) -> Option<String>;
///     /// Stores `value` under `key`.
///     async fn set(key: String, value: String) -> Result<(), KvError>;
///     /// A line for the server's log; nothing is answered.
///     #[oneway]
///     async fn log(line: String);
///     /// Every key, as a stream.
///     async fn keys() -> rust_tcp::typed::Stream<String>;
/// }
///
/// struct Store;
///
/// impl Kv for Store {
///     async fn get(&self, _call: &CallContext<KvProtocol>, key: String) -> Option<String> {
///         Some(key)
///     }
///     async fn set(&self, call: &CallContext<KvProtocol>, key: String, _value: String)
///         -> Result<(), KvError> {
///         let _ = call.pusher().send(&Changed::Set { key });
///         Ok(())
///     }
///     async fn log(&self, _context: &rust_tcp::typed::Context<KvProtocol>, line: String) {
///         println!("{line}");
///     }
///     async fn keys(&self, _call: &CallContext<KvProtocol>) -> ItemStream<KvProtocol> {
///         Box::pin(futures::stream::iter(["a".to_string(), "b".to_string()]))
///     }
/// }
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use rust_tcp::typed::Protocol;
/// let config = rust_tcp::ServerConfig::default().app_protocol(KvProtocol::app_protocol());
/// let server = rust_tcp::Server::bind("127.0.0.1:0", config).await?;
/// let addr = server.local_addr().to_string();
/// tokio::spawn(server.run(KvServer::new(Store).into_service(), std::future::pending()));
///
/// let kv = KvClient::connect(&addr, rust_tcp::ClientConfig::default()).await?;
/// kv.set("a".into(), "1".into()).await?;
/// assert_eq!(kv.get("a".into()).await?, Some("a".into()));
/// let mut keys = kv.keys().await?;
/// while let Some(key) = keys.next_item().await? {
///     println!("{key}");
/// }
/// # Ok(())
/// # }
/// ```
///
/// **The trait**: `async fn`s without `self` (the macro adds `&self` and the
/// call's context), their arguments named (the names are the request's
/// fields). A call answers a value, or `Result<T, E>` with the protocol's
/// error `E` (one error type for every call), or `Stream<T>` (a streaming
/// call; `Result<Stream<T>, E>` to refuse one). An argument `Stream<T>` is
/// the client's own stream (one item type `T` for every stream).
/// `#[oneway]` marks a one-way message (it returns nothing);
/// `#[since(N)]` the protocol version that added a call (a client that
/// negotiated an older version is refused it by name; one-way messages
/// carry it for the record only). Every type a call names implements
/// `Serialize`, `Deserialize`, `Debug` and `Send`. The arguments:
/// `name` (the trait's name in snake case unless said), `versions`
/// (`1..=1` unless said) and `event`, the type the server pushes (`()`
/// unless said).
///
/// **Generated**, for a trait `Kv`: `KvProtocol` (the
/// [`Protocol`](typed::Protocol)) with `KvRequest`, `KvResponse` and
/// `KvMessage` (the enum form: a variant per call, so the wire is what a
/// hand-written protocol sends); the trait `Kv` as the server implements
/// it; `KvServer`, which serves it; and `KvClient`, with one method per
/// call. A streaming call made as a unary one (or the reverse) is refused
/// with a reason naming the call, before any method runs.
///
/// **Described**: [`typed::Schema::of::<KvProtocol>()`](typed::Schema::of)
/// is the protocol as data (every call, type and field), and
/// `KvServer::new(store).into_service().reflection()?` serves it to
/// `client describe` and `client call`; Python and JavaScript clients are
/// generated from it (docs/SCHEMA.md).
#[cfg(feature = "typed")]
pub use rust_tcp_macros::service;

#[doc(hidden)]
pub use server::fuzzing;

/// The README's code examples compile and run as doc tests, so they stay true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
