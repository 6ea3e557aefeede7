//! The typed client: calls with the protocol's request type, answers as
//! its response or its own error, one-way messages, and events decoded as
//! they arrive. Built on [`Client`], which stays reachable for untyped use.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use super::Protocol;
use super::codec::{DecodeError, decode, encode};
use crate::protocol::v2::AppChoice;
use crate::{
    CallOptions, CallSender, Client, ClientCall, ClientConfig, ClientError, Incoming, Pushed,
};

/// Why a call did not return a response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError<E> {
    /// The server answered with the protocol's own error (the request was
    /// understood and refused). Caused by the application on the server.
    #[error("the server answered with an error")]
    Remote(E),
    /// The server could not handle the request at all (it did not decode:
    /// another version of the protocol?) and said why.
    #[error("the server failed the request: {0}")]
    Failed(String),
    /// The server answered with another call's response: a peer whose
    /// protocol differs from ours under the same name and version (a bug
    /// on its side, or a version number reused).
    #[error("the server answered `{call}` with another call's response")]
    UnexpectedResponse {
        /// The call we made.
        call: &'static str,
    },
    /// We could not encode the request, or decode the answer.
    #[error("{0}")]
    Codec(DecodeError),
    /// The connection: refused, lost, closed (see [`ClientError`]).
    #[error(transparent)]
    Client(ClientError),
}

/// A connection speaking protocol `P`. Clone it to call from many tasks:
/// calls are in flight together on the one connection.
pub struct TypedClient<P: Protocol> {
    client: Client,
    choice: AppChoice,
    _protocol: PhantomData<fn() -> P>,
}

// Written out rather than derived: a derive would ask `P: Clone`, and a
// protocol is usually a plain marker type that is not.
impl<P: Protocol> Clone for TypedClient<P> {
    fn clone(&self) -> Self {
        TypedClient {
            client: self.client.clone(),
            choice: self.choice.clone(),
            _protocol: PhantomData,
        }
    }
}

impl<P: Protocol> std::fmt::Debug for TypedClient<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedClient")
            .field("protocol", &P::NAME)
            .field("negotiated", &self.choice)
            .field("client", &self.client)
            .finish()
    }
}

impl<P: Protocol> TypedClient<P> {
    /// Connects to `addr`, asking for `P` in the handshake (whatever
    /// `config` asked for is replaced). A server that does not speak it, or
    /// none of our versions, refuses with a reason naming both sides.
    pub async fn connect(addr: &str, config: ClientConfig) -> Result<Self, ClientError> {
        let client =
            Client::connect_with(addr, config.app_protocol(Some(P::app_protocol()))).await?;
        let choice = client.app_protocol().ok_or_else(|| ClientError::Protocol {
            code: crate::protocol::v2::CloseCode::HANDSHAKE_REFUSED,
            reason: format!("no {} chosen in the WELCOME", P::NAME),
        })?;
        Ok(TypedClient {
            client,
            choice,
            _protocol: PhantomData,
        })
    }

    /// The version and encoding the handshake settled on.
    pub fn negotiated(&self) -> &AppChoice {
        &self.choice
    }

    /// The untyped client underneath (text messages, closing).
    pub fn untyped(&self) -> &Client {
        &self.client
    }

    /// Calls the server: its response, or why not.
    pub async fn call(&self, request: &P::Request) -> Result<P::Response, CallError<P::Error>> {
        let bytes = encode(request, self.choice.encoding).map_err(CallError::Codec)?;
        let answer = match self.client.request(bytes).await {
            Ok(answer) => answer,
            Err(ClientError::RequestFailed(reason)) => return Err(CallError::Failed(reason)),
            Err(e) => return Err(CallError::Client(e)),
        };
        decode::<Result<P::Response, P::Error>>(&answer, self.choice.encoding)
            .map_err(CallError::Codec)?
            .map_err(CallError::Remote)
    }

    /// Makes a call (spec 3.13): like [`TypedClient::call`], with a
    /// deadline the server keeps too, metadata, and cancellation that stops
    /// the server's work (drop the future).
    pub async fn call_with(
        &self,
        request: &P::Request,
        options: CallOptions,
    ) -> Result<P::Response, CallError<P::Error>> {
        let bytes = encode(request, self.choice.encoding).map_err(CallError::Codec)?;
        let answer = self
            .client
            .call(bytes, options)
            .await
            .map_err(call_failed)?;
        decode::<Result<P::Response, P::Error>>(&answer, self.choice.encoding)
            .map_err(CallError::Codec)?
            .map_err(CallError::Remote)
    }

    /// Opens a streaming call: the server answers with a stream of
    /// [`Protocol::Item`]s, at most `options`' window ahead of our reading
    /// (256 unless set: enough to keep a stream of small items flowing
    /// across the credit's round trip; set fewer for large items, since the
    /// server holds up to that many for us), and with
    /// `options.client_stream` we send one too.
    /// Dropping the call before its end cancels it on the server.
    pub async fn stream(
        &self,
        request: &P::Request,
        mut options: CallOptions,
    ) -> Result<TypedCall<P>, CallError<P::Error>> {
        if options.server_stream.is_none() {
            options = options.server_stream(256);
        }
        let bytes = encode(request, self.choice.encoding).map_err(CallError::Codec)?;
        let call = self
            .client
            .open_call(bytes, options)
            .await
            .map_err(CallError::Client)?;
        Ok(TypedCall {
            call,
            encoding: self.choice.encoding,
            _protocol: PhantomData,
        })
    }

    /// Sends a one-way message.
    pub async fn send(&self, message: &P::Message) -> Result<(), CallError<P::Error>> {
        let bytes = encode(message, self.choice.encoding).map_err(CallError::Codec)?;
        self.client
            .send_binary(bytes)
            .await
            .map_err(CallError::Client)
    }

    /// The server's events, decoded. The first call takes the one stream;
    /// every later call (on this handle or a clone) returns `None`, like
    /// [`Client::incoming`].
    pub fn events(&self) -> Option<Events<P>> {
        Some(Events {
            incoming: self.client.incoming()?,
            choice: self.choice.clone(),
            _protocol: PhantomData,
        })
    }

    /// Closes the session; `Ok` once the server has processed everything.
    pub async fn close(&self) -> Result<(), ClientError> {
        self.client.close().await
    }
}

/// A call's end as a typed caller sees it: the server's failure as
/// [`CallError::Failed`], the rest as what the connection says.
fn call_failed<E>(e: ClientError) -> CallError<E> {
    match e {
        ClientError::Call {
            status: crate::protocol::v2::CallStatus::Failed,
            reason,
        } => CallError::Failed(reason),
        other => CallError::Client(other),
    }
}

/// One streaming call in flight: read the server's items with
/// [`TypedCall::next_item`] (or as a [`Stream`](futures::Stream) with
/// [`TypedCall::into_stream`]), send ours with [`TypedCall::send_item`].
/// Dropping it before the end cancels the call on the server.
pub struct TypedCall<P: Protocol> {
    call: ClientCall,
    encoding: crate::protocol::v2::Encoding,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol> std::fmt::Debug for TypedCall<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedCall")
            .field("protocol", &P::NAME)
            .field("call", &self.call)
            .finish()
    }
}

impl<P: Protocol> TypedCall<P> {
    /// The next item of the server's stream; `Ok(None)` once the stream
    /// ended well; the protocol's own error as [`CallError::Remote`].
    pub async fn next_item(&mut self) -> Result<Option<P::Item>, CallError<P::Error>> {
        match self.call.next_item().await.map_err(call_failed)? {
            Some(bytes) => decode(&bytes, self.encoding)
                .map(Some)
                .map_err(CallError::Codec),
            None => Ok(None),
        }
    }

    /// Sends one item of our stream, once the server has credit for it.
    pub async fn send_item(&mut self, item: &P::Item) -> Result<(), CallError<P::Error>> {
        let bytes = encode(item, self.encoding).map_err(CallError::Codec)?;
        self.call.send_item(bytes).await.map_err(CallError::Client)
    }

    /// Ends our stream.
    pub async fn end_items(&mut self) -> Result<(), CallError<P::Error>> {
        self.call.end_items().await.map_err(CallError::Client)
    }

    /// Our stream's sending half, to send from another task while this one
    /// reads the server's items (both streams at once), or to feed from a
    /// `Stream` as a [`Sink`](futures::Sink): `stream.forward(sender)`
    /// sends every item and then ends our stream.
    pub fn sender(&self) -> TypedSender<P> {
        TypedSender {
            sender: self.call.sender(),
            encoding: self.encoding,
            sending: None,
            ended: false,
            _protocol: PhantomData,
        }
    }

    /// Waits for the call's end (dropping what is left of the stream):
    /// `Ok` when the server's stream ended well.
    pub async fn finish(self) -> Result<(), CallError<P::Error>> {
        let encoding = self.encoding;
        let end = self.call.finish().await.map_err(call_failed)?;
        decode::<Result<(), P::Error>>(&end, encoding)
            .map_err(CallError::Codec)?
            .map_err(CallError::Remote)
    }

    /// Cancels the call: the server drops its work.
    pub fn cancel(self) {
        self.call.cancel();
    }

    /// The server's items as a stream, ending with the call (an error is
    /// its last item).
    pub fn into_stream(
        self,
    ) -> impl futures::Stream<Item = Result<P::Item, CallError<P::Error>>> + Send {
        futures::stream::unfold(Some(self), |call| async move {
            let mut call = call?;
            match call.next_item().await {
                Ok(Some(item)) => Some((Ok(item), Some(call))),
                Ok(None) => match call.finish().await {
                    Ok(()) => None,
                    Err(e) => Some((Err(e), None)),
                },
                Err(e) => Some((Err(e), None)),
            }
        })
    }
}

/// A send in progress, owned so that a [`Sink`](futures::Sink) can hold it
/// across polls.
type Sending = Pin<Box<dyn Future<Output = Result<(), ClientError>> + Send>>;

/// The sending half of a streaming call's client stream ([`TypedCall::sender`]):
/// [`TypedSender::send`] an item at a time, or use it as a
/// [`Sink`](futures::Sink) of the protocol's items, whose `close` ends our
/// stream. Either way each item waits for the server's credit, so we never
/// run ahead of what the server reads.
pub struct TypedSender<P: Protocol> {
    sender: CallSender,
    encoding: crate::protocol::v2::Encoding,
    /// The sink's item (or its end) on its way.
    sending: Option<Sending>,
    ended: bool,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol> std::fmt::Debug for TypedSender<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedSender")
            .field("protocol", &P::NAME)
            .field("sender", &self.sender)
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> Clone for TypedSender<P> {
    /// Another sender of the same stream (a send in progress stays with
    /// this one).
    fn clone(&self) -> Self {
        TypedSender {
            sender: self.sender.clone(),
            encoding: self.encoding,
            sending: None,
            ended: self.ended,
            _protocol: PhantomData,
        }
    }
}

impl<P: Protocol> TypedSender<P> {
    /// Sends one item, once the server has credit for it. The future does
    /// not borrow the sender (which a [`Sink`](futures::Sink) in progress
    /// makes unshareable), so it can be awaited in a spawned task.
    pub fn send(
        &self,
        item: &P::Item,
    ) -> impl Future<Output = Result<(), CallError<P::Error>>> + Send + 'static {
        let encoded = encode(item, self.encoding);
        let sender = self.sender.clone();
        async move {
            let bytes = encoded.map_err(CallError::Codec)?;
            sender.send(bytes).await.map_err(CallError::Client)
        }
    }

    /// Ends our stream.
    pub fn end(&self) -> impl Future<Output = Result<(), CallError<P::Error>>> + Send + 'static {
        let sender = self.sender.clone();
        async move { sender.end().await.map_err(CallError::Client) }
    }

    /// Drives the send in progress, if any, to its end.
    fn poll_sending(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), CallError<P::Error>>> {
        if let Some(sending) = self.sending.as_mut() {
            let done = ready!(sending.as_mut().poll(cx));
            self.sending = None;
            done.map_err(CallError::Client)?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<P: Protocol> futures::Sink<P::Item> for TypedSender<P> {
    type Error = CallError<P::Error>;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_sending(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: P::Item) -> Result<(), Self::Error> {
        let this = self.get_mut();
        let bytes = encode(&item, this.encoding).map_err(CallError::Codec)?;
        let sender = this.sender.clone();
        this.sending = Some(Box::pin(async move { sender.send(bytes).await }));
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.get_mut().poll_sending(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        ready!(this.poll_sending(cx))?;
        if !this.ended {
            this.ended = true;
            let sender = this.sender.clone();
            this.sending = Some(Box::pin(async move { sender.end().await }));
            ready!(this.poll_sending(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

/// What the server pushed on a typed connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum TypedPushed<E> {
    /// An event of the protocol.
    Event(E),
    /// Binary that is not an event of this version (logged by the caller,
    /// the connection goes on).
    Undecodable(DecodeError),
    /// Anything else: text, go-away, reconnection notices.
    Other(Pushed),
}

/// The server's events, in arrival order.
pub struct Events<P: Protocol> {
    incoming: Incoming,
    choice: AppChoice,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: Protocol> std::fmt::Debug for Events<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("protocol", &P::NAME)
            .field("negotiated", &self.choice)
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> Events<P> {
    /// The next push, decoded; `None` once the connection is over.
    pub async fn recv(&mut self) -> Option<TypedPushed<P::Event>> {
        Some(match self.incoming.recv().await? {
            Pushed::Binary(bytes) => match decode(&bytes, self.choice.encoding) {
                Ok(event) => TypedPushed::Event(event),
                Err(e) => TypedPushed::Undecodable(e),
            },
            other => TypedPushed::Other(other),
        })
    }
}
