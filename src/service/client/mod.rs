//! The client side: a cloneable handle to one connection, for v2 (default)
//! or v1. The handle API is here; `handshake.rs` opens a v2 session,
//! `reader.rs` turns what the server sends into answers and pushes, and
//! `shared.rs` is what the handles and those tasks share.

mod error;
mod handshake;
mod reader;
mod shared;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use crate::protocol::Message;
use crate::protocol::v1::{self, V1Codec};
use crate::protocol::v2::{
    self, CloseCode, CodeReason, Frame, RequestFrame, Session, SessionEvent, V2Codec,
};
use crate::transport::{Connection, QueueError};
pub use error::ClientError;
use error::codec_error;
use handshake::handshake;
use reader::{read_v1, read_v2};
use shared::{Core, End};

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
        let make_core = |session| Arc::new(Core::new(session, config.max_queued_bytes));
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
        self.handle.core.pending_count()
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
        self.handle.core.mark_incoming_taken();
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
        core.register(id, tx)?;
        let frame = Frame::Request(RequestFrame {
            id,
            payload: payload.into(),
        });
        if let Err(e) = self.push_frame(frame).await {
            core.forget(id);
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
        let queued = match self.handle.version {
            ProtocolVersion::V1 => {
                self.push(|_, buf| v1::encode_message(v1::EXIT, buf).map_err(Into::into))
                    .await
            }
            ProtocolVersion::V2 => {
                self.push(|st, buf| {
                    let session = st.as_mut().expect("v2 has a session");
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
        let end = self.handle.core.wait_end().await;
        match end {
            End::Completed => Ok(()),
            other => Err(other.to_error()),
        }
    }

    async fn push_frame(&self, frame: Frame) -> Result<(), ClientError> {
        self.push(|st, buf| {
            let session = st.as_mut().expect("v2 has a session");
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
        f: impl FnOnce(&mut Option<Session>, &mut BytesMut) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        match self.handle.core.queue.push(f).await {
            Ok(result) => result,
            Err(QueueError::Closed) => {
                let ended = self.handle.core.ended();
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
