//! The typed server: a [`TypedService`] makes one [`TypedHandler`] per
//! connection, and [`Typed`] turns it into an ordinary
//! [`Service`](crate::Service) the server runs. Each request is decoded,
//! handled in a task of its own (so many are in flight on one connection),
//! and its `Result` encoded back; events go out through a [`TypedPusher`].

use bytes::Bytes;
use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::warn;

/// Typed messages that did not decode, by `kind` (request, message): each
/// failed alone, the connection stayed up.
const UNDECODABLE: &str = "rust_tcp_typed_undecodable_total";

use super::Protocol;
use super::codec::{DecodeError, decode, encode};
use crate::protocol::Message;
use crate::protocol::v2::Encoding;
use crate::server::{admit_global, suppressed_field};
use crate::{Handler, PeerInfo, PushError, Pusher, Responder, Service};

/// What a typed handler knows about its connection.
#[derive(Debug)]
#[non_exhaustive]
pub struct Context<P: Protocol> {
    /// The client's address.
    pub peer: SocketAddr,
    /// The client's name from its HELLO.
    pub name: String,
    /// The version of the protocol negotiated with this client.
    pub version: u16,
    /// The encoding negotiated with this client.
    pub encoding: Encoding,
    /// Pushes events to this client.
    pub pusher: TypedPusher<P>,
}

/// Sends a protocol's events to one client, encoded as negotiated with it.
/// Cheap to clone; keep clones to push from anywhere (a room of watchers).
#[derive(Debug)]
pub struct TypedPusher<P: Protocol> {
    pusher: Pusher,
    encoding: Encoding,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol> Clone for TypedPusher<P> {
    fn clone(&self) -> Self {
        TypedPusher {
            pusher: self.pusher.clone(),
            encoding: self.encoding,
            _protocol: PhantomData,
        }
    }
}

/// Why an event was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The event could not be encoded (a bug in its `Serialize`). Ours.
    #[error("cannot encode the event: {0}")]
    Encode(DecodeError),
    /// The connection refused it (see [`PushError`]).
    #[error(transparent)]
    Push(#[from] PushError),
}

impl<P: Protocol> TypedPusher<P> {
    /// Queues `event` for the client (never waits; a client that does not
    /// read is dropped, as with [`Pusher`]).
    pub fn send(&self, event: &P::Event) -> Result<(), EventError> {
        let bytes = encode(event, self.encoding).map_err(EventError::Encode)?;
        Ok(self.pusher.send_binary(bytes)?)
    }
}

/// Your application, typed: one [`TypedHandler`] per connection.
pub trait TypedService<P: Protocol>: Send + Sync + 'static {
    /// The per-connection part.
    type Handler: TypedHandler<P>;

    /// Called once the handshake has settled the protocol's version and
    /// encoding with this client.
    fn connect(&self, context: &Context<P>) -> Self::Handler;
}

/// Answers one connection's calls and messages. Calls run concurrently (a
/// task each), so the handler is shared (`&self`).
pub trait TypedHandler<P: Protocol>: Send + Sync + 'static {
    /// Answers a request: `Ok` with the response, or `Err` with the
    /// protocol's own error, which the client receives as a value.
    fn call(
        &self,
        request: P::Request,
        context: &Context<P>,
    ) -> impl Future<Output = Result<P::Response, P::Error>> + Send;

    /// A one-way message arrived. Ignored unless overridden.
    fn on_message(
        &self,
        message: P::Message,
        context: &Context<P>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (message, context);
        async {}
    }
}

/// A [`TypedService`] as a [`Service`] the server runs:
/// `server.run(Typed::new(MyService), shutdown)`. Give the server the
/// protocol too (`ServerConfig::app_protocol(P::app_protocol())`) so the
/// handshake negotiates it.
pub struct Typed<P, S> {
    service: S,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol, S: TypedService<P>> Typed<P, S> {
    /// Wraps `service`.
    pub fn new(service: S) -> Self {
        Typed {
            service,
            _protocol: PhantomData,
        }
    }
}

/// The per-connection adapter between the untyped server and a typed
/// handler.
pub struct TypedConnection<P: Protocol, H> {
    inner: Option<(Arc<H>, Arc<Context<P>>)>,
}

impl<P: Protocol, S: TypedService<P>> Service for Typed<P, S> {
    type Handler = TypedConnection<P, S::Handler>;

    fn connect(&self, peer: &PeerInfo) -> Self::Handler {
        // A client that did not ask for the protocol is served untyped:
        // its requests fail with a reason, its text is ignored.
        let inner = peer.app_protocol.as_ref().map(|choice| {
            let context = Context {
                peer: peer.addr,
                name: peer.name.clone(),
                version: choice.version,
                encoding: choice.encoding,
                pusher: TypedPusher {
                    pusher: peer.pusher.clone(),
                    encoding: choice.encoding,
                    _protocol: PhantomData,
                },
            };
            let handler = self.service.connect(&context);
            (Arc::new(handler), Arc::new(context))
        });
        TypedConnection { inner }
    }
}

impl<P: Protocol, H: TypedHandler<P>> Handler for TypedConnection<P, H> {
    async fn on_text(&mut self, _message: Message) {}

    async fn on_binary(&mut self, data: Bytes) {
        let Some((handler, context)) = &self.inner else {
            return;
        };
        match decode::<P::Message>(&data, context.encoding) {
            Ok(message) => handler.on_message(message, context).await,
            Err(e) => {
                metrics::counter!(UNDECODABLE, "kind" => "message").increment(1);
                // A peer could send these as fast as it likes: rate-limited.
                if let Some(suppressed) = admit_global() {
                    let suppressed = suppressed_field(suppressed);
                    warn!(
                        peer = %context.peer,
                        suppressed,
                        "{} message not understood, ignored: {e}",
                        P::NAME
                    );
                }
            }
        }
    }

    async fn on_request(&mut self, payload: Bytes, responder: Responder) {
        let Some((handler, context)) = &self.inner else {
            let _ = responder.fail(format!(
                "this server speaks {}: ask for it in the HELLO (spec 3.3.2)",
                P::NAME
            ));
            return;
        };
        let request = match decode::<P::Request>(&payload, context.encoding) {
            Ok(request) => request,
            Err(e) => {
                metrics::counter!(UNDECODABLE, "kind" => "request").increment(1);
                let _ = responder.fail(format!("cannot decode the {} request: {e}", P::NAME));
                return;
            }
        };
        let (handler, context) = (handler.clone(), context.clone());
        let mut answer = Box::pin(async move {
            let result = handler.call(request, &context).await;
            let _ = match encode(&result, context.encoding) {
                Ok(bytes) => responder.respond(bytes),
                Err(e) => responder.fail(format!("cannot encode the {} response: {e}", P::NAME)),
            };
        });
        // Most calls finish without waiting (a lookup, a computation):
        // answer those right here, and give a task of its own only to a
        // call that waits, so the calls after it on this connection do not
        // wait behind it. A future may be polled from another task later,
        // with another waker: the one it registers then is the one woken.
        let mut here = std::task::Context::from_waker(std::task::Waker::noop());
        if answer.as_mut().poll(&mut here).is_pending() {
            tokio::spawn(answer);
        }
    }
}
