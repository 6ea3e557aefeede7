//! The typed client: calls with the protocol's request type, answers as
//! its response or its own error, one-way messages, and events decoded as
//! they arrive. Built on [`Client`], which stays reachable for untyped use.

use std::marker::PhantomData;

use super::Protocol;
use super::codec::{DecodeError, decode, encode};
use crate::protocol::v2::AppChoice;
use crate::{Client, ClientConfig, ClientError, Incoming, Pushed};

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
