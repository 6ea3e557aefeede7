//! The client side: a cloneable handle to one connection, for v2 (default)
//! or v1. The handle API is here; `config.rs` says how it connects,
//! `handshake.rs` opens a v2 session, `reader.rs` drives it and turns what
//! the server sends into answers and pushes (`incoming.rs`), `requests.rs`
//! keeps the requests in flight, `end.rs` says how a connection ended, and
//! `shared.rs` is what the handles and those tasks share.

mod config;
mod end;
mod error;
mod handshake;
mod incoming;
mod reader;
mod requests;
mod shared;

use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::protocol::Message;
use crate::protocol::v1::{self, V1Codec};
use crate::protocol::v2::frame::FrameSink;
use crate::protocol::v2::{self, CloseCode, Frame, RequestFrame, SendError, Session, V2Codec};
use crate::transport::{Connection, Outgoing, QueueError, Stream, server_name_of};
pub use config::{ClientConfig, ProtocolVersion};
use end::End;
pub use error::ClientError;
use handshake::{Welcomed, handshake};
pub use incoming::{Incoming, Pushed};
use reader::{read_v1, read_v2};
use shared::Core;
use tokio_rustls::TlsConnector;

/// Closes the connection when the last [`Client`] clone is dropped.
struct Handle {
    core: Arc<Core>,
    version: ProtocolVersion,
    server_name: String,
    server_max_frame_size: u32,
    request_timeout: Option<std::time::Duration>,
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

impl Client {
    /// Connects to `addr` (`HOST:PORT`) with protocol v2 and default settings.
    pub async fn connect(addr: &str) -> Result<Client, ClientError> {
        Client::connect_with(addr, ClientConfig::default()).await
    }

    /// Connects with `config` (checked first with
    /// [`ClientConfig::validate`]); for v2 this includes the handshake, so a
    /// returned client is ready to use. Connecting and the handshake
    /// together take at most the configured connect timeout.
    pub async fn connect_with(addr: &str, config: ClientConfig) -> Result<Client, ClientError> {
        config.validate()?;
        let limit = config.connect_timeout;
        let started = Instant::now();
        let tcp = tokio::time::timeout(limit, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(limit))?
            .map_err(|source| ClientError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        // We batch writes ourselves; Nagle would only delay the last one.
        tcp.set_nodelay(true)?;
        let stream = match &config.tls {
            None => Stream::Plain(tcp),
            Some(tls) => {
                let name = match &tls.server_name {
                    Some(name) => name.clone(),
                    None => server_name_of(addr)?,
                };
                let left = limit.saturating_sub(started.elapsed());
                let connecting = TlsConnector::from(tls.config.clone()).connect(name, tcp);
                let tls_stream = tokio::time::timeout(left, connecting)
                    .await
                    .map_err(|_| ClientError::Timeout(limit))?
                    .map_err(|e| ClientError::Tls(format!("handshake with {addr} failed: {e}")))?;
                Stream::Client(Box::new(tls_stream))
            }
        };
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
                let left = limit.saturating_sub(started.elapsed());
                let Welcomed {
                    session,
                    server_name,
                    server_max_frame_size,
                } = handshake(&mut conn, &config, left).await?;
                let core = make_core(Some(session));
                let (reader, writer) = conn.split();
                tokio::spawn(read_v2(reader, core.clone(), incoming_tx));
                spawn_writer(&core, writer);
                (core, server_name, server_max_frame_size)
            }
        };
        Ok(Client {
            handle: Arc::new(Handle {
                core,
                version: config.version,
                server_name,
                server_max_frame_size,
                request_timeout: config.request_timeout,
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
        self.handle.core.requests.len()
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
        let mut ticket = self.handle.core.requests.start()?;
        let frame = Frame::Request(RequestFrame {
            id: ticket.id(),
            payload: payload.into(),
        });
        self.push_frame(frame).await?;
        match self.handle.request_timeout {
            None => ticket.answer().await,
            Some(limit) => tokio::time::timeout(limit, ticket.answer())
                .await
                .map_err(|_| ClientError::RequestTimeout(limit))?,
        }
    }

    /// Ends the session so that nothing is lost: v2 sends CLOSE and waits
    /// for the server's acknowledgement, which it only gives after it has
    /// processed everything sent before; v1 sends `exit` and waits for the
    /// server to close. `Ok` means the server has everything.
    pub async fn close(&self) -> Result<(), ClientError> {
        let queued = match self.handle.version {
            ProtocolVersion::V1 => {
                self.push(|_, buf| v1::encode_message(v1::EXIT, buf.buf()).map_err(Into::into))
                    .await
            }
            ProtocolVersion::V2 => {
                self.push(|st, buf| {
                    let session = st.as_mut().expect("v2 has a session");
                    Ok(session.close(CloseCode::NORMAL, "client done", buf)?)
                })
                .await
            }
        };
        // A connection that is already ending reports how, below.
        match queued {
            Ok(())
            | Err(ClientError::Closed(_))
            | Err(ClientError::Refused(SendError::Closed | SendError::Closing)) => {}
            Err(e) => return Err(e),
        }
        match self.handle.core.wait_end().await {
            End::Completed => Ok(()),
            other => Err(other.to_error()),
        }
    }

    /// Sends one frame through the session, which checks it against the
    /// state and the server's limit and encodes it under the queue's lock.
    async fn push_frame(&self, frame: Frame) -> Result<(), ClientError> {
        self.push(|st, buf| {
            let session = st.as_mut().expect("v2 has a session");
            Ok(session.send(&frame, buf)?)
        })
        .await
    }

    async fn push(
        &self,
        f: impl FnOnce(&mut Option<Session>, &mut Outgoing) -> Result<(), ClientError>,
    ) -> Result<(), ClientError> {
        match self.handle.core.queue.push(f).await {
            Ok(result) => result,
            Err(QueueError::Closed) => Err(self.handle.core.requests.ended().map_or_else(
                || ClientError::Closed("connection is closing".into()),
                |e| e.to_error(),
            )),
            Err(QueueError::Full { .. }) => unreachable!("push waits for room"),
        }
    }
}

fn spawn_writer(core: &Arc<Core>, writer: tokio::io::WriteHalf<Stream>) {
    let core = core.clone();
    tokio::spawn(async move {
        if let Err(e) = core.queue.run_writer(writer).await {
            core.finish(End::Lost(format!("write failed: {e}")));
        }
    });
}
