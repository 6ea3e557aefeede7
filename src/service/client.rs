//! The client side: a cloneable handle to one connection, for v2 (default)
//! or v1.

use bytes::{Bytes, BytesMut};
use futures::Stream;
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use super::client_reader::{read_v1, read_v2};
use crate::protocol::v1::{self, EncodeError, V1Codec};
use crate::protocol::v2::{
    self, CloseCode, CodeReason, Frame, RequestFrame, Session, SessionEvent, V2Codec, V2CodecError,
};
use crate::protocol::{Message, parse_unsupported_version_reply};
use crate::transport::{Connection, QueueError, WriteQueue};

/// Which protocol a [`Client`] speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolVersion {
    /// The tutorial format: text to the server only, `exit` to end.
    V1,
    /// Typed frames both ways, requests, heartbeats, close handshake.
    V2,
}

/// How a [`Client`] connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Our name in the v2 hello (chat labels, server logs).
    pub name: String,
    /// The protocol to speak.
    pub version: ProtocolVersion,
    /// Largest payload we accept from the server (v2).
    pub max_frame_size: u32,
    /// Bytes that may wait to be written before senders wait.
    pub max_queued_bytes: usize,
    /// Server-pushed messages kept for [`Client::incoming`] before the
    /// client stops reading (and so slows the server down).
    pub incoming_capacity: usize,
    /// How long connecting and the handshake may take.
    pub connect_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            name: "rust-tcp-client".into(),
            version: ProtocolVersion::V2,
            max_frame_size: v2::DEFAULT_MAX_FRAME_SIZE,
            max_queued_bytes: 1024 * 1024,
            incoming_capacity: 1024,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// What can go wrong for a client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody accepted the connection (no server, wrong port, firewall…).
    #[error("cannot connect to {addr}")]
    Connect {
        /// The address tried.
        addr: String,
        /// What the OS said.
        source: io::Error,
    },
    /// Connecting or the handshake took longer than the configured timeout.
    #[error("no answer from the server within {0:?}")]
    Timeout(Duration),
    /// The message cannot be carried by v1 (too long).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// The frame is larger than the server accepts (v2).
    #[error("message of {len} bytes exceeds the server's limit of {max}")]
    TooLarge {
        /// Payload length.
        len: usize,
        /// The server's announced limit.
        max: u32,
    },
    /// The server does not speak our version.
    #[error("server does not speak our protocol version: {reason} (it speaks {versions:?})")]
    UnsupportedVersion {
        /// The versions the server listed.
        versions: Vec<u8>,
        /// The server's reason.
        reason: String,
    },
    /// The v2 name must be 1 to 64 bytes (it labels us on the server).
    #[error("client name {0:?} must be 1 to 64 bytes")]
    InvalidName(String),
    /// The server refused the handshake.
    #[error("server refused the connection: {0}")]
    Refused(CodeReason),
    /// The operation needs v2 (requests, binary).
    #[error("{0} needs protocol v2")]
    NeedsV2(&'static str),
    /// The server answered the request with an error.
    #[error("request failed: {0}")]
    RequestFailed(String),
    /// The server is shutting down and takes no new requests.
    #[error("the server is going away; no new requests")]
    GoingAway,
    /// The connection is over.
    #[error("connection closed: {0}")]
    Closed(String),
    /// The server broke the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The connection failed while in use.
    #[error("connection failed")]
    Io(#[from] io::Error),
}

/// Something the server sent without being asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// A text message (in chat: `NAME: TEXT` from another client).
    Text(Message),
    /// Bytes.
    Binary(Bytes),
    /// A non-fatal error report.
    Error(CodeReason),
    /// The server is shutting down: finish up and close.
    GoAway(CodeReason),
}

/// How the connection ended, as the reader saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// Our close (or v1 `exit`) was answered: everything was processed.
    Completed,
    /// The server closed the session, with its reason.
    ByServer(CodeReason),
    /// The connection broke.
    Lost(String),
}

impl End {
    fn to_error(&self) -> ClientError {
        match self {
            End::Completed => ClientError::Closed("closed by us".into()),
            End::ByServer(c) => ClientError::Closed(format!("by the server: {c}")),
            End::Lost(why) => ClientError::Closed(why.clone()),
        }
    }
}

/// What the write side guards together with the queued bytes: the session,
/// so that "may this be sent now" and queueing it are one atomic step.
pub(crate) struct SendState {
    pub(crate) session: Option<Session>,
}

/// Requests waiting for their response. Once the connection has ended no
/// new ones are accepted, so none can wait forever.
#[derive(Default)]
pub(crate) struct Pending {
    waiting: HashMap<u32, oneshot::Sender<Result<Bytes, ClientError>>>,
    ended: Option<End>,
}

/// Everything the reader and writer tasks share with the handles.
pub(crate) struct Core {
    pub(crate) queue: WriteQueue<SendState>,
    pub(crate) pending: Mutex<Pending>,
    pub(crate) end: watch::Sender<Option<End>>,
    incoming_taken: AtomicBool,
}

impl Core {
    /// Hands a pushed message to the application. Once it has taken the
    /// stream this waits (backpressure to the server); before that, pushes
    /// are kept up to the capacity and then dropped, so a client that only
    /// sends requests is never blocked by pushes it does not read. The
    /// reader owns the sender, so the stream ends when the connection does.
    pub(crate) async fn deliver(&self, to: &mpsc::Sender<Pushed>, pushed: Pushed) {
        if self.incoming_taken.load(Ordering::Acquire) {
            let _ = to.send(pushed).await;
        } else {
            let _ = to.try_send(pushed);
        }
    }

    /// Answers the request `id`.
    pub(crate) fn resolve(&self, id: u32, result: Result<Bytes, String>) -> bool {
        let waiter = self.lock_pending().waiting.remove(&id);
        match waiter {
            Some(tx) => {
                let _ = tx.send(result.map_err(ClientError::RequestFailed));
                true
            }
            None => false,
        }
    }

    /// Records the end: fails every waiting request, stops the writer once
    /// it has sent what is queued, and wakes `close`.
    pub(crate) fn finish(&self, end: End) {
        let waiting = {
            let mut p = self.lock_pending();
            p.ended.get_or_insert(end.clone());
            std::mem::take(&mut p.waiting)
        };
        for (_, tx) in waiting {
            let _ = tx.send(Err(end.to_error()));
        }
        self.queue.close();
        self.end.send_if_modified(|e| {
            if e.is_none() {
                *e = Some(end);
                true
            } else {
                false
            }
        });
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Closes the connection when the last [`Client`] clone is dropped.
struct Handle {
    core: Arc<Core>,
    version: ProtocolVersion,
    server_name: String,
    server_max_frame_size: u32,
    next_id: AtomicU32,
    incoming: Mutex<Option<mpsc::Receiver<Pushed>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.core.queue.close();
    }
}

/// A connection to a rust-tcp server. Clone it to use the one connection
/// from many tasks: sends are ordered per task, requests from all tasks are
/// in flight together and each gets its own response.
///
/// Writes are batched: everything sent while the previous write was in
/// progress goes out in one syscall.
#[derive(Clone)]
pub struct Client {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("version", &self.handle.version)
            .field("server_name", &self.handle.server_name)
            .finish_non_exhaustive()
    }
}

/// Server-pushed messages, in arrival order. Ends when the connection does.
#[derive(Debug)]
pub struct Incoming {
    rx: mpsc::Receiver<Pushed>,
}

impl Incoming {
    /// The next pushed message, or `None` once the connection is over.
    pub async fn recv(&mut self) -> Option<Pushed> {
        self.rx.recv().await
    }
}

impl Stream for Incoming {
    type Item = Pushed;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Pushed>> {
        self.rx.poll_recv(cx)
    }
}

impl Client {
    /// Connects to `addr` (`HOST:PORT`) with protocol v2 and default settings.
    pub async fn connect(addr: &str) -> Result<Client, ClientError> {
        Client::connect_with(addr, ClientConfig::default()).await
    }

    /// Connects with `config`; for v2 this includes the handshake, so a
    /// returned client is ready to use.
    pub async fn connect_with(addr: &str, config: ClientConfig) -> Result<Client, ClientError> {
        let limit = config.connect_timeout;
        tokio::time::timeout(limit, Client::open(addr, config))
            .await
            .map_err(|_| ClientError::Timeout(limit))?
    }

    async fn open(addr: &str, config: ClientConfig) -> Result<Client, ClientError> {
        if config.version == ProtocolVersion::V2
            && (config.name.is_empty() || config.name.len() > v2::MAX_NAME_LEN)
        {
            return Err(ClientError::InvalidName(config.name));
        }
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        // We batch writes ourselves; Nagle would only delay the last one.
        stream.set_nodelay(true)?;
        let (incoming_tx, incoming_rx) = mpsc::channel(config.incoming_capacity.max(1));
        let (end, _) = watch::channel(None);
        let make_core = |session| {
            Arc::new(Core {
                queue: WriteQueue::new(SendState { session }, config.max_queued_bytes),
                pending: Mutex::default(),
                end,
                incoming_taken: AtomicBool::new(false),
            })
        };
        let (core, server_name, server_max_frame_size) = match config.version {
            ProtocolVersion::V1 => {
                let core = make_core(None);
                let (reader, writer) = Connection::new(stream, V1Codec).split();
                drop(incoming_tx);
                tokio::spawn(read_v1(reader, core.clone()));
                spawn_writer(&core, writer);
                (core, String::new(), v1::MAX_CONTENT_LEN as u32)
            }
            ProtocolVersion::V2 => {
                let mut conn = Connection::new(
                    stream,
                    V2Codec::new(config.max_frame_size, v2::MIN_MAX_FRAME_SIZE),
                );
                let (session, welcome) = handshake(&mut conn, &config).await?;
                let (name, max) = match welcome {
                    SessionEvent::Opened {
                        peer_name,
                        peer_max_frame_size,
                        ..
                    } => (peer_name, peer_max_frame_size),
                    _ => unreachable!("handshake returns the Opened event"),
                };
                conn.codec_mut().set_max_send(max);
                let core = make_core(Some(session));
                let (reader, writer) = conn.split();
                tokio::spawn(read_v2(reader, core.clone(), incoming_tx));
                spawn_writer(&core, writer);
                (core, name, max)
            }
        };
        Ok(Client {
            handle: Arc::new(Handle {
                core,
                version: config.version,
                server_name,
                server_max_frame_size,
                next_id: AtomicU32::new(1),
                incoming: Mutex::new(Some(incoming_rx)),
            }),
        })
    }

    /// The protocol this client speaks.
    pub fn version(&self) -> ProtocolVersion {
        self.handle.version
    }

    /// The server's name from its welcome (empty for v1).
    pub fn server_name(&self) -> &str {
        &self.handle.server_name
    }

    /// The largest message the server accepts.
    pub fn server_max_frame_size(&self) -> u32 {
        self.handle.server_max_frame_size
    }

    /// Requests sent (or being sent) and not yet answered.
    pub fn pending_requests(&self) -> usize {
        self.handle.core.lock_pending().waiting.len()
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
            .core
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
                self.push(|_, buf| v1::encode_message(message.as_str(), buf).map_err(Into::into))
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
    pub async fn request(&self, payload: impl Into<Bytes>) -> Result<Bytes, ClientError> {
        if self.handle.version == ProtocolVersion::V1 {
            return Err(ClientError::NeedsV2("a request"));
        }
        let core = &self.handle.core;
        let id = self.handle.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = core.lock_pending();
            if let Some(end) = &pending.ended {
                return Err(end.to_error());
            }
            pending.waiting.insert(id, tx);
        }
        let frame = Frame::Request(RequestFrame {
            id,
            payload: payload.into(),
        });
        if let Err(e) = self.push_frame(frame).await {
            core.lock_pending().waiting.remove(&id);
            return Err(e);
        }
        rx.await
            .unwrap_or_else(|_| Err(ClientError::Closed("connection dropped".into())))
    }

    /// Ends the session so that nothing is lost: v2 sends CLOSE and waits
    /// for the server's acknowledgement, which it only gives after it has
    /// processed everything sent before; v1 sends `exit` and waits for the
    /// server to close. `Ok` means the server has everything.
    pub async fn close(&self) -> Result<(), ClientError> {
        let mut end = self.handle.core.end.subscribe();
        let queued = match self.handle.version {
            ProtocolVersion::V1 => {
                self.push(|_, buf| v1::encode_message(v1::EXIT, buf).map_err(Into::into))
                    .await
            }
            ProtocolVersion::V2 => {
                self.push(|st, buf| {
                    let session = st.session.as_mut().expect("v2 has a session");
                    session.close(CloseCode::NORMAL, "client done").encode(buf);
                    Ok(())
                })
                .await
            }
        };
        // A connection that already ended reports how, below.
        if let Err(e) = queued
            && !matches!(e, ClientError::Closed(_))
        {
            return Err(e);
        }
        let end = end
            .wait_for(Option::is_some)
            .await
            .map(|e| e.clone().expect("waited for Some"))
            .unwrap_or_else(|_| End::Lost("connection dropped".into()));
        match end {
            End::Completed => Ok(()),
            other => Err(other.to_error()),
        }
    }

    async fn push_frame(&self, frame: Frame) -> Result<(), ClientError> {
        self.push(|st, buf| {
            let session = st.session.as_mut().expect("v2 has a session");
            session.check_send(&frame).map_err(|e| match e.code {
                CloseCode::FRAME_TOO_LARGE => ClientError::TooLarge {
                    len: frame.payload_len(),
                    max: self.handle.server_max_frame_size,
                },
                CloseCode::GOING_AWAY => ClientError::GoingAway,
                _ => ClientError::Closed(e.reason),
            })?;
            frame.encode(buf);
            Ok(())
        })
        .await
    }

    async fn push(
        &self,
        f: impl FnOnce(&mut SendState, &mut BytesMut) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        match self.handle.core.queue.push(f).await {
            Ok(result) => result,
            Err(QueueError::Closed) => {
                let ended = self.handle.core.lock_pending().ended.clone();
                Err(ended.map_or_else(
                    || ClientError::Closed("connection is closing".into()),
                    |e| e.to_error(),
                ))
            }
            Err(QueueError::Full { .. }) => unreachable!("push waits for room"),
        }
    }
}

fn spawn_writer(core: &Arc<Core>, writer: tokio::io::WriteHalf<TcpStream>) {
    let core = core.clone();
    tokio::spawn(async move {
        if let Err(e) = core.queue.run_writer(writer).await {
            core.finish(End::Lost(format!("write failed: {e}")));
        }
    });
}

/// Sends HELLO and reads the server's answer: WELCOME, a refusal, or the
/// frozen unsupported-version reply.
async fn handshake(
    conn: &mut Connection<TcpStream, V2Codec>,
    config: &ClientConfig,
) -> Result<(Session, SessionEvent), ClientError> {
    let (mut session, hello) = Session::client(config.max_frame_size, config.name.clone());
    conn.queue(hello).map_err(codec_error)?;
    conn.flush().await?;
    if conn.peek_first_byte().await? == Some(0) {
        // Not a v2 frame: the reply every version can read.
        loop {
            if let Some((versions, reason)) = parse_unsupported_version_reply(conn.buffered()) {
                return Err(ClientError::UnsupportedVersion { versions, reason });
            }
            if conn.fill().await? == 0 {
                return Err(ClientError::Protocol("garbled version reply".into()));
            }
        }
    }
    let frame = conn
        .read_frame()
        .await
        .map_err(codec_error)?
        .ok_or_else(|| ClientError::Closed("server closed during the handshake".into()))?;
    match session.receive(frame) {
        Ok(r) => match r.event {
            Some(opened @ SessionEvent::Opened { .. }) => Ok((session, opened)),
            Some(SessionEvent::Closed(reason)) => Err(ClientError::Refused(reason)),
            other => Err(ClientError::Protocol(format!(
                "unexpected handshake answer {other:?}"
            ))),
        },
        Err(e) => {
            let close = session.close(e.code, e.reason.clone());
            if conn.queue(close).is_ok() {
                let _ = conn.flush().await;
            }
            Err(ClientError::Refused(CodeReason::new(e.code, e.reason)))
        }
    }
}

pub(crate) fn codec_error(e: V2CodecError) -> ClientError {
    match e {
        V2CodecError::Io(e) => ClientError::Io(e),
        V2CodecError::TooLargeToSend { len, max } => ClientError::TooLarge { len, max },
        V2CodecError::Frame(e) => ClientError::Protocol(e.to_string()),
    }
}
