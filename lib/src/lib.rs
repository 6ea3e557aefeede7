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
pub use transport::{ClientTls, ServerTls, TlsError};
#[cfg(feature = "websocket")]
pub use transport::{Page, WEBSOCKET_SUBPROTOCOL, WebSocketConfig};

#[doc(hidden)]
pub use server::fuzzing;

/// The README's code examples compile and run as doc tests, so they stay true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
