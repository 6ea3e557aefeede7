//! rust-tcp: a versioned, length-prefixed message protocol over TCP.
//!
//! The crate is layered so that each part can be understood and tested on its
//! own, and each layer only imports the ones below it:
//!
//! 1. [`protocol`] is sans-IO: frame types, codecs and session state machines
//!    that turn bytes into messages and back without touching a socket. It is
//!    tested byte by byte.
//! 2. [`transport`] moves frames between any `AsyncRead + AsyncWrite` stream
//!    and the protocol, owning the buffers and their limits.
//! 3. [`service`] is what users build on: a [`service::Server`] with an accept
//!    loop, limits and graceful shutdown that calls the user's handler, and a
//!    [`service::Client`].
//!
//! The `server` and `client` binaries only parse arguments and format output.

#![warn(missing_docs)]

pub mod protocol;
pub mod service;
pub mod transport;

/// The README's code examples compile and run as doc tests, so they stay true.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
