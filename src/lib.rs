//! rust-tcp: a versioned, length-prefixed message protocol over TCP.
//!
//! What most users need is at the crate root: a [`Server`] that runs their
//! [`Service`] (one [`Handler`] per connection, answering through a
//! [`Responder`] and pushing through a [`Pusher`]), and a [`Client`].
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

pub use client::{Client, ClientConfig, ClientError, Incoming, ProtocolVersion, Pushed, Reconnect};
pub use protocol::Message;
pub use server::{
    AuthTokens, AuthTokensError, Handler, PeerInfo, PushError, Pusher, Responder, Server,
    ServerConfig, ServerError, Service, terminate_signal,
};
pub use transport::{ClientTls, ServerTls, TlsError};

#[doc(hidden)]
pub use server::fuzzing;

/// The README's code examples compile and run as doc tests, so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
