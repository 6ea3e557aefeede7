//! The typed server: a [`TypedService`] makes one [`TypedHandler`] per
//! connection, and [`Typed`] turns it into an ordinary
//! [`Service`](crate::Service) the server runs. Each request is decoded,
//! handled in a task of its own (so many are in flight on one connection),
//! and its `Result` encoded back; events go out through a [`TypedPusher`].
//! Calls (spec 3.13) reach [`TypedHandler::call_with`] with their
//! [`CallContext`] (deadline, metadata, cancellation), and streaming calls
//! [`TypedHandler::stream`], whose stream of items the client reads at the
//! pace it grants.

use bytes::Bytes;
use futures::{Stream, StreamExt};
use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tracing::warn;

/// Typed messages that did not decode, by `kind` (request, message): each
/// failed alone, the connection stayed up.
const UNDECODABLE: &str = "rust_tcp_typed_undecodable_total";

use super::Protocol;
use super::codec::{DecodeError, decode, encode, encode_split};
use crate::protocol::Message;
use crate::protocol::v2::Encoding;
use crate::server::{admit_global, suppressed_field};
use crate::{Handler, PeerInfo, PushError, Pusher, Responder, Service};

/// What a typed handler knows about its connection: who the client is (as
/// [`PeerInfo`] has it) and what was negotiated with it.
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
    /// The token the client authenticated with, when the server requires
    /// tokens.
    pub auth_token: Option<Bytes>,
    /// The client's verified TLS certificate (mutual TLS), DER-encoded.
    pub tls_client_certificate: Option<rustls_pki_types::CertificateDer<'static>>,
    /// How the connection came (TCP, WebSocket).
    pub transport: crate::Transport,
}

// Written out rather than derived: a derive would ask `P: Debug` (and
// `P: Clone`) of a protocol that is usually a bare marker type.
impl<P: Protocol> std::fmt::Debug for Context<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("protocol", &P::NAME)
            .field("peer", &self.peer)
            .field("name", &self.name)
            .field("version", &self.version)
            .field("encoding", &self.encoding)
            .field("authenticated", &self.auth_token.is_some())
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> Clone for Context<P> {
    fn clone(&self) -> Self {
        Context {
            peer: self.peer,
            name: self.name.clone(),
            version: self.version,
            encoding: self.encoding,
            pusher: self.pusher.clone(),
            auth_token: self.auth_token.clone(),
            tls_client_certificate: self.tls_client_certificate.clone(),
            transport: self.transport,
        }
    }
}

/// What one call (spec 3.13) carries beside its request: its deadline, its
/// metadata, a signal that fires when the client cancels it, and the
/// connection it came on. The call's future is dropped at the deadline or
/// on cancellation anyway; the signal is for work handed elsewhere.
///
/// A plain request (v2 REQUEST, no call options) has a context too: no
/// deadline, no metadata, and a cancellation that never fires.
#[non_exhaustive]
pub struct CallContext<P: Protocol> {
    /// The connection's context (who, what was negotiated).
    pub connection: Arc<Context<P>>,
    /// When the call's time is up (the client's budget, capped by the
    /// server); `None` for none.
    pub deadline: Option<std::time::Instant>,
    /// The call's metadata (a `traceparent`, say).
    pub metadata: crate::protocol::v2::Metadata,
    /// The call's cancellation; `None` for a plain request, which cannot
    /// be cancelled (so none is made for each of them).
    cancellation: Option<tokio_util::sync::CancellationToken>,
}

impl<P: Protocol> std::fmt::Debug for CallContext<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("connection", &self.connection)
            .field("deadline", &self.deadline)
            .field("metadata", &self.metadata)
            .field("cancellable", &self.cancellation.is_some())
            .finish()
    }
}

impl<P: Protocol> CallContext<P> {
    /// The context of a plain request on `connection`: no deadline, no
    /// metadata, never cancelled. What a handler is given for a v2 REQUEST,
    /// and what to hand one when calling it yourself (in a test, say).
    pub fn new(connection: Arc<Context<P>>) -> Self {
        CallContext {
            connection,
            deadline: None,
            metadata: crate::protocol::v2::Metadata::default(),
            cancellation: None,
        }
    }

    /// The time left before the deadline, if there is one.
    pub fn remaining(&self) -> Option<std::time::Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(std::time::Instant::now()))
    }

    /// A token that fires when the client cancels the call (or its
    /// deadline passes), for work handed to another task. A plain
    /// request's never fires.
    pub fn cancellation(&self) -> tokio_util::sync::CancellationToken {
        self.cancellation.clone().unwrap_or_default()
    }

    /// The connection's pusher: events to the client that made this call.
    pub fn pusher(&self) -> &TypedPusher<P> {
        &self.connection.pusher
    }
}

/// What a streaming call answers with: its items, sent as the client
/// grants credit for them (a slow reader slows this stream alone).
pub type ItemStream<P> = Pin<Box<dyn Stream<Item = <P as Protocol>::Item> + Send>>;

/// Why a streaming call gives no stream.
#[derive(Debug)]
#[non_exhaustive]
pub enum StreamError<E> {
    /// The protocol's own error, which the client receives as a value.
    Remote(E),
    /// This service has no streaming calls (the default).
    Unsupported,
}

impl<E> From<E> for StreamError<E> {
    fn from(e: E) -> Self {
        StreamError::Remote(e)
    }
}

/// The client's stream of items on a streaming call, decoded; empty when
/// the client sends none. Reading grants the client more credit.
#[derive(Debug)]
pub struct TypedItems<P: Protocol> {
    items: Option<crate::Items>,
    encoding: Encoding,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol> TypedItems<P> {
    /// The next item (or why it did not decode); `None` once the client's
    /// stream is over.
    pub async fn next(&mut self) -> Option<Result<P::Item, DecodeError>> {
        let bytes = self.items.as_mut()?.next().await?;
        Some(decode(&bytes, self.encoding))
    }

    /// The items as a [`Stream`], to combine with stream adapters (map the
    /// client's stream into the answer's, say).
    pub fn into_stream(self) -> impl Stream<Item = Result<P::Item, DecodeError>> + Send {
        futures::stream::unfold(self, |mut items| async move {
            items.next().await.map(|item| (item, items))
        })
    }
}

/// Sends a protocol's events to one client, encoded as negotiated with it.
/// Cheap to clone; keep clones to push from anywhere (a room of watchers).
pub struct TypedPusher<P: Protocol> {
    pusher: Pusher,
    encoding: Encoding,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol> std::fmt::Debug for TypedPusher<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedPusher")
            .field("protocol", &P::NAME)
            .field("pusher", &self.pusher)
            .field("encoding", &self.encoding)
            .finish()
    }
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

    /// Answers a call (spec 3.13), which may carry a deadline, metadata and
    /// a cancellation (see [`CallContext`]). Unless overridden, it is
    /// [`TypedHandler::call`]'s answer.
    fn call_with(
        &self,
        request: P::Request,
        call: &CallContext<P>,
    ) -> impl Future<Output = Result<P::Response, P::Error>> + Send {
        self.call(request, &call.connection)
    }

    /// Answers a streaming call with a stream of items (the client reads
    /// them at the pace it grants; the library waits, so the stream need
    /// not). `input` is the client's own stream, empty if it sends none.
    /// The call ends when the stream does; the client's cancel or the
    /// deadline drops it. Unless overridden, streaming calls are refused.
    fn stream(
        &self,
        request: P::Request,
        input: TypedItems<P>,
        call: &CallContext<P>,
    ) -> impl Future<Output = Result<ItemStream<P>, StreamError<P::Error>>> + Send {
        let _ = (request, input, call);
        async { Err(StreamError::Unsupported) }
    }

    /// The connection is over and every call and message it brought has
    /// been handed over: await clean-up here (see
    /// [`Handler::on_close`](crate::Handler::on_close)). Nothing unless
    /// overridden.
    fn on_close(&self, context: &Context<P>) -> impl Future<Output = ()> + Send {
        let _ = context;
        async {}
    }

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
    /// The schema as JSON, when reflection is on.
    schema: Option<Bytes>,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol, S: TypedService<P>> Typed<P, S> {
    /// Wraps `service`.
    pub fn new(service: S) -> Self {
        Typed {
            service,
            schema: None,
            _protocol: PhantomData,
        }
    }

    /// Answers a call that asks for the protocol's schema (spec 3.13.1:
    /// a CALL with metadata [`REFLECTION_KEY`](super::REFLECTION_KEY))
    /// with [`Schema::of`](super::Schema::of) as JSON, as gRPC servers
    /// offer reflection: what `client describe` and `client call` read.
    /// Off by default, since it tells anyone who connects every call the
    /// server has; a client that did not ask for the protocol may ask for
    /// its schema, so a tool needs to know nothing beforehand. The schema
    /// is traced here, once.
    pub fn reflection(mut self) -> Result<Self, super::SchemaError> {
        let schema = super::Schema::of::<P>()?;
        self.schema = Some(Bytes::from(schema.to_json()));
        Ok(self)
    }
}

/// The per-connection adapter between the untyped server and a typed
/// handler: the `Handler` of [`Typed`]'s `Service`, public only in that
/// its name appears there (it cannot be named outside the library).
pub struct TypedConnection<P: Protocol, H> {
    inner: Option<(Arc<H>, Arc<Context<P>>)>,
    schema: Option<Bytes>,
}

/// Serves one call on a typed connection: decodes it, hands it to the
/// handler, and sends the answer (a streaming call: its items, then how it
/// ended).
async fn serve_call<P: Protocol, H: TypedHandler<P>>(
    inner: Option<(Arc<H>, Arc<Context<P>>)>,
    schema: Option<Bytes>,
    mut call: crate::Call,
) {
    if call.metadata().get(super::REFLECTION_KEY).is_some() {
        let _ = match schema {
            Some(json) => call.respond(json),
            None => call.fail(format!(
                "reflection is off on this server (it speaks {}); the operator turns it on",
                P::NAME
            )),
        };
        return;
    }
    let Some((handler, context)) = inner else {
        let _ = call.fail(format!(
            "this server speaks {}: ask for it in the HELLO (spec 3.3.2)",
            P::NAME
        ));
        return;
    };
    let encoding = context.encoding;
    let request = match decode::<P::Request>(call.payload(), encoding) {
        Ok(request) => request,
        Err(e) => {
            metrics::counter!(UNDECODABLE, "kind" => "request").increment(1);
            let _ = call.fail(format!("cannot decode the {} request: {e}", P::NAME));
            return;
        }
    };
    let sender = call.take_sender();
    if let Some(refusal) =
        P::call_info(&request).and_then(|info| info.refusal(sender.is_some(), context.version))
    {
        let _ = call.fail(refusal);
        return;
    }
    let cx = CallContext {
        connection: context,
        deadline: call.deadline(),
        metadata: call.metadata().clone(),
        cancellation: Some(call.cancellation()),
    };
    let answer = match sender {
        None => encode(&handler.call_with(request, &cx).await, encoding),
        Some(mut sender) => {
            let input = TypedItems {
                items: call.take_items(),
                encoding,
                _protocol: PhantomData,
            };
            match handler.stream(request, input, &cx).await {
                Err(StreamError::Unsupported) => {
                    let _ = call.fail(format!("{} has no streaming calls", P::NAME));
                    return;
                }
                Err(StreamError::Remote(e)) => encode(&Result::<(), P::Error>::Err(e), encoding),
                Ok(items) => {
                    // What the stream has ready goes out together: one lock
                    // for a batch of items, not one each.
                    let mut batches = items.ready_chunks(64);
                    let mut encoded = Vec::with_capacity(64);
                    let mut scratch = bytes::BytesMut::new();
                    while let Some(batch) = batches.next().await {
                        for item in &batch {
                            match encode_split(item, encoding, &mut scratch) {
                                Ok(bytes) => encoded.push(bytes),
                                Err(e) => {
                                    let why = format!("cannot encode the {} item: {e}", P::NAME);
                                    let _ = call.fail(why);
                                    return;
                                }
                            }
                        }
                        if sender.send_all(&mut encoded).await.is_err() {
                            return; // the connection is gone
                        }
                    }
                    encode(&Result::<(), P::Error>::Ok(()), encoding)
                }
            }
        }
    };
    let _ = match answer {
        Ok(bytes) => call.respond(bytes),
        Err(e) => call.fail(format!("cannot encode the {} response: {e}", P::NAME)),
    };
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
                auth_token: peer.auth_token.clone(),
                tls_client_certificate: peer.tls_client_certificate.clone(),
                transport: peer.transport,
            };
            let handler = self.service.connect(&context);
            (Arc::new(handler), Arc::new(context))
        });
        TypedConnection {
            inner,
            schema: self.schema.clone(),
        }
    }
}

impl<P: Protocol, H: TypedHandler<P>> Handler for TypedConnection<P, H> {
    async fn on_text(&mut self, _message: Message) {}

    fn on_call(&mut self, call: crate::Call) -> impl Future<Output = ()> + Send + 'static {
        serve_call(self.inner.clone(), self.schema.clone(), call)
    }

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

    async fn on_close(&mut self) {
        if let Some((handler, context)) = &self.inner {
            handler.on_close(context).await;
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
        if let Some(refusal) =
            P::call_info(&request).and_then(|info| info.refusal(false, context.version))
        {
            let _ = responder.fail(refusal);
            return;
        }
        let call = CallContext::new(context.clone());
        let handler = handler.clone();
        let mut answer = Box::pin(async move {
            let result = handler.call_with(request, &call).await;
            let _ = match encode(&result, call.connection.encoding) {
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
