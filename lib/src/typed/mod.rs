//! Your protocol as Rust types: a [`Protocol`] names its serde message
//! families (requests with their responses and errors, one-way messages,
//! server events), and the typed server and client carry them over v2.
//!
//! The application protocol is negotiated in the handshake (spec 3.3.2):
//! the client asks for the protocol's name, versions and encodings, the
//! server chooses, and a mismatch is refused before any message. On a
//! typed connection, REQUEST and RESPONSE carry calls, BINARY carries
//! one-way messages (client to server) and events (server to client),
//! each payload one value in the negotiated encoding; TEXT stays untyped.
//!
//! A message that does not decode fails only that message: a call is
//! answered with a failure saying what did not match (`unknown variant
//! "Delete"`), a one-way message is logged; the connection stays up.

mod client;
mod codec;
mod server;

pub use client::{CallError, Events, TypedClient, TypedPushed};
pub use client::{TypedCall, TypedSender};
pub use codec::{DecodeError, decode, encode};
pub use server::{
    CallContext, Context, EventError, ItemStream, StreamError, Typed, TypedConnection,
    TypedHandler, TypedItems, TypedPusher, TypedService,
};

use crate::protocol::v2::{AppProtocol, Encoding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::ops::RangeInclusive;

/// A protocol of your own, as types. Implement it on a unit struct:
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// struct Kv;
///
/// #[derive(Serialize, Deserialize)]
/// enum Request { Get { key: String }, Set { key: String, value: String } }
/// #[derive(Serialize, Deserialize)]
/// enum Response { Value(Option<String>), Done }
/// #[derive(Serialize, Deserialize)]
/// enum Event { Changed { key: String, value: String } }
/// #[derive(Serialize, Deserialize)]
/// enum KvError { ReadOnly }
///
/// impl rust_tcp::typed::Protocol for Kv {
///     const NAME: &'static str = "kv";
///     const VERSIONS: std::ops::RangeInclusive<u16> = 1..=1;
///     type Request = Request;
///     type Response = Response;
///     type Error = KvError;
///     type Message = ();
///     type Event = Event;
///     type Item = ();
/// }
/// ```
pub trait Protocol: Send + Sync + 'static {
    /// The name both sides must agree on (`"kv"`): 1 to 32 ASCII letters,
    /// digits, `-`, `_` or `.`.
    const NAME: &'static str;
    /// The versions this side speaks; the highest both speak is used, and
    /// handlers see which.
    const VERSIONS: RangeInclusive<u16>;
    /// The encodings this side speaks, most preferred first: MessagePack
    /// (self-describing, with named fields) unless you say otherwise.
    const ENCODINGS: &'static [Encoding] = &[Encoding::MessagePack];
    /// What a client asks.
    type Request: Serialize + DeserializeOwned + Send + 'static;
    /// What a server answers when a request succeeds.
    type Response: Serialize + DeserializeOwned + Send + 'static;
    /// What a server answers when a request fails: the protocol's own
    /// error, which the client receives as a value.
    type Error: Serialize + DeserializeOwned + Send + 'static;
    /// What a client sends without waiting for an answer (`()` for none).
    type Message: Serialize + DeserializeOwned + Send + 'static;
    /// What a server pushes (`()` for none).
    type Event: Serialize + DeserializeOwned + Send + 'static;
    /// One item of a streaming call's streams (spec 3.13), both ways (`()`
    /// for none): what a handler's stream yields, and what a client sends
    /// on its own stream. An enum serves both directions when they differ.
    type Item: Serialize + DeserializeOwned + Send + 'static;

    /// The protocol as the handshake offers it.
    fn app_protocol() -> AppProtocol {
        AppProtocol::new(Self::NAME, Self::VERSIONS).encodings(Self::ENCODINGS.to_vec())
    }
}
