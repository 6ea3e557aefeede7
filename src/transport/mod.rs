//! Moving frames between a byte stream and the protocol layer.
//!
//! A [`Connection`] works over any `AsyncRead + AsyncWrite`, so the same code
//! serves plain TCP, TLS or an in-memory pipe in tests.

mod connection;

pub use connection::{Connection, READ_CHUNK};
