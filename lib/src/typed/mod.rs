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
//!
//! A protocol describes itself: [`Schema::of`] traces its types into data
//! (every call, type, field and variant, with versions), which a server
//! with [`Typed::reflection`] serves, [`Schema::encode_call`] and
//! [`Schema::decode_answer`] speak from JSON, [`Schema::changes_since`]
//! compares across releases, and the Python and JavaScript generators turn
//! into typed clients (docs/SCHEMA.md).

mod client;
mod codec;
mod compatibility;
mod dynamic;
mod schema;
mod server;

pub use client::{CallError, Events, TypedClient, TypedPushed};
pub use client::{TypedCall, TypedSender};
pub use codec::{DecodeError, decode, encode};
pub use compatibility::{Change, Peers};
pub use dynamic::{Answer, ValueError};
pub use schema::{
    CallKind, CallSchema, Field, REFLECTION_KEY, SCHEMA_FORMAT, Schema, SchemaError, Shape, Type,
    TypeSchema, Variant,
};
pub use server::{
    CallContext, Context, EventError, ItemStream, StreamError, Typed, TypedHandler, TypedItems,
    TypedPusher, TypedService,
};

/// What `#[rust_tcp::service]`'s generated code needs from here, so the
/// user's crate need not depend on it by name. Not an API.
#[doc(hidden)]
pub mod __private {
    pub use serde;
}

/// Marks a streaming call in a `#[rust_tcp::service]` trait: `-> Stream<T>`
/// answers with a stream of `T`, an argument `input: Stream<T>` is the
/// client's stream. Only the macro reads it; the server's methods receive
/// [`TypedItems`] and answer [`ItemStream`]s.
pub type Stream<T> = std::marker::PhantomData<T>;

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

    /// The response type has one variant per unary call, named as the
    /// call's request variant and holding its answer (what
    /// [`service`](crate::service) generates), so a [`Schema`] can say what
    /// each call returns. `false` (the default): every call answers with
    /// the whole response type.
    const RESPONSE_PER_CALL: bool = false;

    /// What kind of call `request` is, when the protocol knows: the server
    /// then refuses a streaming call made as a unary one (and the reverse)
    /// with a reason naming the call, before any handler runs. Generated by
    /// [`service`](crate::service); `None` (the default) lets every request
    /// through as it came.
    fn call_info(request: &Self::Request) -> Option<CallInfo> {
        let _ = request;
        None
    }

    /// The protocol as the handshake offers it.
    fn app_protocol() -> AppProtocol {
        AppProtocol::new(Self::NAME, Self::VERSIONS).encodings(Self::ENCODINGS.to_vec())
    }
}

/// One call of a protocol as [`Protocol::call_info`] describes it: its
/// name and whether the server answers it with a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallInfo {
    /// The call's name, as the protocol's definition spells it (`"get"`).
    pub name: &'static str,
    /// The server answers with a stream of items.
    pub streaming: bool,
    /// The first version of the protocol with this call (0: every
    /// version): a client that negotiated an older one is refused it.
    pub since: u16,
    /// The client streams items too (both ways at once).
    pub client_stream: bool,
}

impl CallInfo {
    /// A call answered with one response.
    pub const fn unary(name: &'static str) -> Self {
        CallInfo {
            name,
            streaming: false,
            since: 0,
            client_stream: false,
        }
    }

    /// A call answered with a stream of items.
    pub const fn streaming(name: &'static str) -> Self {
        CallInfo {
            name,
            streaming: true,
            since: 0,
            client_stream: false,
        }
    }

    /// A streaming call where the client streams items too.
    pub const fn with_client_stream(mut self) -> Self {
        self.client_stream = true;
        self
    }

    /// The call as added in `version`.
    pub const fn since(mut self, version: u16) -> Self {
        self.since = version;
        self
    }

    /// Why this call cannot be served as it was made (`opened_as_stream`:
    /// the client asked for a stream; `version`: the one negotiated), for
    /// the client to read.
    pub(crate) fn refusal(self, opened_as_stream: bool, version: u16) -> Option<String> {
        if version < self.since {
            return Some(format!(
                "`{}` came in version {} of the protocol; this connection speaks version {version}",
                self.name, self.since
            ));
        }
        match (self.streaming, opened_as_stream) {
            (true, false) => Some(format!(
                "`{}` is a streaming call: open it with a server stream (spec 3.13)",
                self.name
            )),
            (false, true) => Some(format!(
                "`{}` is a unary call: make it without a stream",
                self.name
            )),
            _ => None,
        }
    }
}
