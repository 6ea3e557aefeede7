//! The client side: a cloneable handle to one connection, for v2 (default)
//! or v1. The handle API is here; `config.rs` says how it connects,
//! `handshake.rs` opens a v2 session, `reader.rs` drives it and turns what
//! the server sends into answers and pushes (`incoming.rs`), `requests.rs`
//! keeps the requests in flight, `end.rs` says how a connection ended,
//! `shared.rs` is what the handles and those tasks share, `connect.rs`
//! opens one connection, and `reconnect.rs` fails over to a new one when
//! it is lost.

mod calls;
mod config;
mod connect;
mod end;
mod error;
mod handshake;
mod incoming;
mod reader;
mod reconnect;
mod requests;
mod shared;

use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch};

use crate::protocol::Message;
use crate::protocol::v1;
use crate::protocol::v2::frame::FrameSink;
use crate::protocol::v2::{CloseCode, Frame, RequestFrame, SendError, Session};
use crate::transport::{Outgoing, QueueError};
pub use calls::{CallOptions, CallSender, ClientCall};
pub use config::{ClientConfig, ProtocolVersion};
use end::End;
pub use error::{Cause, ClientError};
pub use incoming::{Incoming, Pushed};
pub use reconnect::Reconnect;
use shared::Core;

/// One open connection: its shared core and what its welcome said.
#[derive(Clone)]
struct Link {
    core: Arc<Core>,
    server_name: Arc<str>,
    server_max_frame_size: u32,
    /// The application protocol the WELCOME chose, if we asked for one.
    app_protocol: Option<crate::protocol::v2::AppChoice>,
}

/// What the handles share with the reconnecting task.
struct Shared {
    /// The connection in use; a reconnecting client replaces it.
    link: watch::Sender<Link>,
    /// Closed or dropped by the application: no more reconnecting.
    closing: AtomicBool,
    /// Reconnecting stopped after too many failed attempts.
    gave_up: AtomicBool,
    /// The application has taken [`Client::incoming`].
    incoming_taken: Arc<AtomicBool>,
}

/// Closes the connection when the last [`Client`] clone is dropped.
struct Handle {
    shared: Arc<Shared>,
    version: ProtocolVersion,
    request_timeout: Option<std::time::Duration>,
    /// How long a call waits for a reconnecting client's new connection
    /// (`None`: the client does not reconnect).
    reconnect_wait: Option<std::time::Duration>,
    incoming: Mutex<Option<mpsc::Receiver<Pushed>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.link.borrow().core.queue.close();
    }
}

/// A connection to a rust-tcp server. Clone it to use the one connection
/// from many tasks: sends are ordered per task, requests from all tasks are
/// in flight together and each gets its own response.
///
/// Writes are batched: everything sent while the previous write was in
/// progress goes out in one syscall.
///
/// ```no_run
/// use rust_tcp::{Client, ClientConfig};
///
/// # async fn talk() -> Result<(), rust_tcp::ClientError> {
/// let config = ClientConfig::default().name("sensor-7");
/// let client = Client::connect_with("127.0.0.1:8080", config).await?;
/// client.send_text("temperature 21.5").await?;
/// // Many requests may be in flight at once, from any task.
/// let (a, b) = tokio::join!(client.request("status"), client.request("uptime"));
/// println!("{:?} {:?}", a?, b?);
/// // Everything sent before has been processed once this returns.
/// client.close().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("version", &self.handle.version)
            .field("server_name", &self.link().server_name)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `addr` (`HOST:PORT`) with protocol v2 and default settings.
    pub async fn connect(addr: &str) -> Result<Client, ClientError> {
        Client::connect_with(addr, ClientConfig::default()).await
    }

    /// Connects with `config` (checked first with
    /// [`ClientConfig::validate`]); for v2 this includes the handshake, so a
    /// returned client is ready to use. Connecting and the handshake
    /// together take at most the configured connect timeout.
    ///
    /// With [`ClientConfig::reconnect`] set, a lost connection (or a
    /// server going away) is replaced by a new one in the background; see
    /// [`Reconnect`].
    pub async fn connect_with(addr: &str, config: ClientConfig) -> Result<Client, ClientError> {
        config.validate()?;
        let (incoming_tx, incoming_rx) = mpsc::channel(config.incoming_capacity.max(1) + 1);
        let incoming_taken = Arc::new(AtomicBool::new(false));
        let (link, _) =
            connect::open_link(addr, &config, &incoming_taken, incoming_tx.clone(), None).await?;
        let shared = Arc::new(Shared {
            link: watch::channel(link).0,
            closing: AtomicBool::new(false),
            gave_up: AtomicBool::new(false),
            incoming_taken,
        });
        let reconnect_wait = config
            .reconnect
            .as_ref()
            .map(|_| config.request_timeout.unwrap_or(config.connect_timeout));
        match config.reconnect.clone() {
            Some(policy) => {
                tokio::spawn(reconnect::supervise(
                    addr.to_owned(),
                    config.clone(),
                    policy,
                    shared.clone(),
                    incoming_tx,
                ));
            }
            // The stream ends with the connection's reader.
            None => drop(incoming_tx),
        }
        Ok(Client {
            handle: Arc::new(Handle {
                shared,
                version: config.version,
                request_timeout: config.request_timeout,
                reconnect_wait,
                incoming: Mutex::new(Some(incoming_rx)),
            }),
        })
    }

    /// The protocol this client speaks.
    pub fn version(&self) -> ProtocolVersion {
        self.handle.version
    }

    /// The application protocol, version and encoding the server chose
    /// (spec 3.3.2), if [`ClientConfig::app_protocol`] asked for one.
    pub fn app_protocol(&self) -> Option<crate::protocol::v2::AppChoice> {
        self.link().app_protocol.clone()
    }

    /// The server's name from its welcome (empty for v1); after a
    /// reconnection, the new server's.
    pub fn server_name(&self) -> String {
        self.link().server_name.to_string()
    }

    /// The largest message the server accepts.
    pub fn server_max_frame_size(&self) -> u32 {
        self.link().server_max_frame_size
    }

    /// Requests sent (or being sent) and not yet answered.
    pub fn pending_requests(&self) -> usize {
        self.link().core.requests.len()
    }

    /// The connection in use now.
    fn link(&self) -> Link {
        self.handle.shared.link.borrow().clone()
    }

    /// The connection to use for a new call: the current one, or, for a
    /// reconnecting client whose connection is spent, the next one (waited
    /// for up to the request timeout, or the connect timeout).
    async fn live_link(&self) -> Result<Link, ClientError> {
        let link = self.link();
        let Some(wait) = self.handle.reconnect_wait else {
            return Ok(link);
        };
        if !link.core.is_spent() {
            return Ok(link);
        }
        let shared = &self.handle.shared;
        let mut rx = shared.link.subscribe();
        let next = tokio::time::timeout(
            wait,
            rx.wait_for(|l| !l.core.is_spent() || shared.gave_up.load(Ordering::Acquire)),
        )
        .await;
        match next {
            Ok(Ok(l)) if !l.core.is_spent() => Ok(l.clone()),
            Ok(_) => Err(ClientError::closed(Cause::Network, "gave up reconnecting")),
            Err(_) => Err(ClientError::closed(
                Cause::Network,
                format!("not connected: still reconnecting after {wait:?}"),
            )),
        }
    }

    /// Server-pushed messages. There is one stream per connection: the
    /// first call takes it, later calls get `None`.
    pub fn incoming(&self) -> Option<Incoming> {
        let rx = self
            .handle
            .incoming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()?;
        self.handle
            .shared
            .incoming_taken
            .store(true, Ordering::Release);
        Some(Incoming { rx })
    }

    /// Sends a text message. Waits only if more than the configured bytes
    /// are already waiting to be written.
    pub async fn send_text(&self, text: impl Into<Message>) -> Result<(), ClientError> {
        let message = text.into();
        match self.handle.version {
            ProtocolVersion::V1 => {
                self.push(|_, buf| {
                    v1::encode_message(message.as_str(), buf.buf()).map_err(Into::into)
                })
                .await
            }
            ProtocolVersion::V2 => self.push_frame(Frame::Text(message)).await,
        }
    }

    /// Sends bytes (v2 only).
    pub async fn send_binary(&self, data: impl Into<Bytes>) -> Result<(), ClientError> {
        if self.handle.version == ProtocolVersion::V1 {
            return Err(ClientError::NeedsV2("sending binary data"));
        }
        self.push_frame(Frame::Binary(data.into())).await
    }

    /// Sends a request and waits for its response. Any number may be in
    /// flight at once, from any number of tasks; each caller gets the
    /// response to its own request, whatever order the server answers in.
    ///
    /// With a request timeout configured, waiting longer fails with
    /// [`ClientError::RequestTimeout`]. Dropping the future (for example
    /// under your own `tokio::time::timeout`) abandons the request at once:
    /// nothing is left behind, and a late response is dropped quietly.
    pub async fn request(&self, payload: impl Into<Bytes>) -> Result<Bytes, ClientError> {
        if self.handle.version == ProtocolVersion::V1 {
            return Err(ClientError::NeedsV2("a request"));
        }
        let link = self.live_link().await?;
        let mut ticket = link.core.requests.start()?;
        let frame = Frame::Request(RequestFrame {
            id: ticket.id(),
            payload: payload.into(),
        });
        self.push_frame_on(&link, frame).await?;
        match self.handle.request_timeout {
            None => ticket.answer().await,
            Some(limit) => tokio::time::timeout(limit, ticket.answer())
                .await
                .map_err(|_| ClientError::RequestTimeout(limit))?,
        }
    }

    /// Makes a call (spec 3.13) and waits for its answer: like
    /// [`Client::request`], with a deadline the server keeps too, metadata,
    /// and cancellation that reaches the server's work (drop the future).
    /// For streams, see [`Client::open_call`].
    pub async fn call(
        &self,
        payload: impl Into<Bytes>,
        options: CallOptions,
    ) -> Result<Bytes, ClientError> {
        self.open_call(payload, options).await?.finish().await
    }

    /// Opens a call (spec 3.13) and returns it in flight: read the server's
    /// stream, send yours, then [`ClientCall::finish`]. Dropping it before
    /// its end cancels it on the server. Fails with
    /// `ClientError::Refused(SendError::CallsNotNegotiated)` when the
    /// server does not speak calls.
    pub async fn open_call(
        &self,
        payload: impl Into<Bytes>,
        options: CallOptions,
    ) -> Result<ClientCall, ClientError> {
        if self.handle.version == ProtocolVersion::V1 {
            return Err(ClientError::NeedsV2("a call"));
        }
        let link = self.live_link().await?;
        ClientCall::open(link.core.clone(), payload.into(), options).await
    }

    /// Ends the session so that nothing is lost: v2 sends CLOSE and waits
    /// for the server's acknowledgement, which it only gives after it has
    /// processed everything sent before; v1 sends `exit` and waits for the
    /// server to close. `Ok` means the server has everything.
    pub async fn close(&self) -> Result<(), ClientError> {
        self.handle.shared.closing.store(true, Ordering::Release);
        let link = self.link();
        if link.core.is_lost() {
            // No connection to close on: what the server had not
            // acknowledged may be lost, and the caller hears so.
            let unacknowledged = link.core.session(|s, _| s.unacknowledged());
            link.core.finish(End::Lost(format!(
                "closed while disconnected ({unacknowledged} frames unacknowledged)"
            )));
        }
        let queued = match self.handle.version {
            ProtocolVersion::V1 => {
                let core = &link.core;
                self.push_on(&link, |_, buf| {
                    v1::encode_message(v1::EXIT, buf.buf())?;
                    core.v1_exit_queued.store(true, Ordering::Release);
                    Ok(())
                })
                .await
            }
            ProtocolVersion::V2 => {
                self.push_on(&link, |st, buf| {
                    let session = st.as_mut().expect("v2 has a session");
                    Ok(session.close(CloseCode::NORMAL, "client done", buf)?)
                })
                .await
            }
        };
        // A connection that is already ending reports how, below.
        match queued {
            Ok(())
            | Err(ClientError::Closed { .. })
            | Err(ClientError::Refused(SendError::Closed | SendError::Closing)) => {}
            Err(e) => return Err(e),
        }
        match link.core.wait_end().await {
            End::Completed => Ok(()),
            other => Err(other.to_error()),
        }
    }

    /// Sends one frame through the session, which checks it against the
    /// state and the server's limit and encodes it under the queue's lock.
    async fn push_frame(&self, frame: Frame) -> Result<(), ClientError> {
        let link = self.live_link().await?;
        self.push_frame_on(&link, frame).await
    }

    async fn push_frame_on(&self, link: &Link, frame: Frame) -> Result<(), ClientError> {
        self.push_on(link, |st, buf| {
            let session = st.as_mut().expect("v2 has a session");
            Ok(session.send(&frame, buf)?)
        })
        .await
    }

    async fn push(
        &self,
        f: impl FnOnce(&mut Option<Session>, &mut Outgoing) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        let link = self.live_link().await?;
        self.push_on(&link, f).await
    }

    async fn push_on(
        &self,
        link: &Link,
        f: impl FnOnce(&mut Option<Session>, &mut Outgoing) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        match link.core.queue.push(f).await {
            Ok(result) => result,
            Err(QueueError::Closed) => Err(link.core.requests.ended().map_or_else(
                || ClientError::closed(Cause::Us, "connection is closing"),
                |e| e.to_error(),
            )),
            Err(QueueError::Full { .. }) => unreachable!("push waits for room"),
        }
    }
}
