//! The accept loop: connection limits, per-connection tasks, graceful stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use super::accept_backoff::{AcceptBackoff, is_per_connection};
use super::handler::{PeerInfo, Service};
use super::outbound::Pusher;
use super::v1_connection::serve_v1;
use super::v2_connection::serve_v2;
use crate::protocol::unsupported_version_reply;
use crate::protocol::v1::{self, V1Codec};
use crate::protocol::v2::{self, V2Codec};
use crate::transport::Connection;

/// Limits and timings of a [`Server`].
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Connections served at once. Past this the server stops accepting
    /// (new peers wait in the kernel's backlog) instead of running out of
    /// memory or file descriptors.
    pub max_connections: usize,
    /// How long a shutdown waits for open connections to finish before
    /// abandoning them. v2 clients get a go-away at once and half of this
    /// to close by themselves.
    pub shutdown_grace: Duration,
    /// Largest v2 payload accepted, announced in the welcome.
    pub max_frame_size: u32,
    /// v2 heartbeat interval, announced in the welcome; zero turns
    /// heartbeats off. Silent clients are pinged after one interval and
    /// dropped after three.
    pub heartbeat: Duration,
    /// Bytes that may wait to be sent to one v2 client. A client that lets
    /// more pile up is not reading and is disconnected, so its queue, and
    /// the server's memory, stay bounded.
    pub max_queued_bytes: usize,
    /// How long a v2 client has to send its HELLO.
    pub handshake_timeout: Duration,
    /// The server's name in the welcome.
    pub server_name: String,
}

impl ServerConfig {
    /// Refuses settings that peers would have to reject in the handshake.
    fn validate(&self) -> Result<(), ServerError> {
        let invalid = |why: String| Err(ServerError::InvalidConfig(why));
        if self.server_name.is_empty() || self.server_name.len() > v2::MAX_NAME_LEN {
            return invalid(format!(
                "server name must be 1 to {} bytes, got {}",
                v2::MAX_NAME_LEN,
                self.server_name.len()
            ));
        }
        if self.max_frame_size < v2::MIN_MAX_FRAME_SIZE {
            return invalid(format!(
                "max frame size {} is below the protocol minimum {}",
                self.max_frame_size,
                v2::MIN_MAX_FRAME_SIZE
            ));
        }
        if self.max_connections == 0 {
            return invalid("max connections must be at least 1".into());
        }
        Ok(())
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(5),
            max_frame_size: v2::DEFAULT_MAX_FRAME_SIZE,
            heartbeat: Duration::from_secs(30),
            max_queued_bytes: 8 * 1024 * 1024,
            handshake_timeout: Duration::from_secs(10),
            server_name: "rust-tcp".into(),
        }
    }
}

/// Why the server could not start. Once running, it does not fail: every
/// error after that belongs to one connection and is logged.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A setting cannot work (it would produce frames peers must reject).
    #[error("invalid server configuration: {0}")]
    InvalidConfig(String),
    /// Binding the listening socket failed (address in use, no permission…).
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// A bound listener that serves a [`Service`] until told to stop.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    config: ServerConfig,
}

/// How a connection ended without fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionEnd {
    /// A v1 client sent `exit`.
    ClientExit,
    /// A v2 client completed the close handshake.
    ClientClosed,
    /// The peer closed its side between frames.
    PeerClosed,
    /// The server is shutting down.
    ServerShutdown,
}

/// Why a connection was cut: the peer's fault or the network's, never the
/// server's business beyond a log line.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectionError {
    #[error("{0}")]
    V1Protocol(#[from] v1::DecodeError),
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    #[error("{0}")]
    V2Frame(#[from] v2::FrameError),
    #[error("{0}")]
    V2Session(#[from] v2::SessionError),
    #[error("no HELLO in time")]
    HandshakeTimeout,
    #[error("client is not reading: {queued} bytes queued for it; disconnected (slow consumer)")]
    SlowConsumer { queued: usize },
    #[error("heartbeat timeout: nothing heard for {0:?}")]
    HeartbeatTimeout(Duration),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl Server {
    /// Binds `addr` (`HOST:PORT`; port 0 picks a free port).
    pub async fn bind(addr: &str, config: ServerConfig) -> Result<Server, ServerError> {
        config.validate()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind {
                addr: addr.to_owned(),
                source,
            })?;
        Ok(Server { listener, config })
    }

    /// The address actually bound, which is how a caller that asked for
    /// port 0 learns the port.
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound TCP listener has a local address")
    }

    /// Serves connections until `shutdown` completes, then stops accepting,
    /// asks every connection to close, and waits for them (up to the
    /// configured grace period).
    pub async fn run<S: Service>(self, service: S, shutdown: impl Future<Output = ()>) {
        let service = Arc::new(service);
        let stop = CancellationToken::new();
        // Cancelled only if connections outlive the grace period: dropping
        // their futures releases the handlers (and what they hold) for sure.
        let abandon = CancellationToken::new();
        let tracker = TaskTracker::new();
        let slots = Arc::new(Semaphore::new(self.config.max_connections));
        let mut backoff = AcceptBackoff::default();
        tokio::pin!(shutdown);

        loop {
            let slot = match slots.clone().try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    warn!(
                        max = self.config.max_connections,
                        "connection limit reached; new connections wait"
                    );
                    tokio::select! {
                        _ = &mut shutdown => break,
                        slot = slots.clone().acquire_owned() => slot.expect("semaphore is never closed"),
                    }
                }
            };
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => accepted,
            };
            match accepted {
                Ok((stream, peer)) => {
                    backoff.reset();
                    let service = service.clone();
                    let config = self.config.clone();
                    let stop = stop.clone();
                    let abandon = abandon.clone();
                    tracker.spawn(async move {
                        tokio::select! {
                            _ = serve_connection(stream, peer, &*service, &config, &stop) => {}
                            _ = abandon.cancelled() => warn!(%peer, "connection abandoned at shutdown"),
                        }
                        drop(slot);
                    });
                }
                Err(e) if is_per_connection(&e) => debug!("accept: {e}; retrying"),
                Err(e) => {
                    let delay = backoff.next_delay();
                    error!("accept failed: {e}; retrying in {delay:?}");
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }

        drop(self.listener);
        info!(
            open = tracker.len(),
            "stopped accepting; closing connections"
        );
        stop.cancel();
        tracker.close();
        if tokio::time::timeout(self.config.shutdown_grace, tracker.wait())
            .await
            .is_err()
        {
            warn!(
                open = tracker.len(),
                "connections still open after the grace period; abandoning them"
            );
            abandon.cancel();
            tracker.wait().await;
        }
    }
}

/// One connection, start to end, with its log lines.
async fn serve_connection<S: Service>(
    stream: TcpStream,
    peer: SocketAddr,
    service: &S,
    config: &ServerConfig,
    stop: &CancellationToken,
) {
    info!(%peer, "connection opened");
    // Replies are batched by us already; Nagle would only add latency.
    let _ = stream.set_nodelay(true);
    let result = dispatch_by_version(
        Connection::new(stream, V1Codec),
        peer,
        service,
        config,
        stop,
    )
    .await;
    match result {
        Ok(ConnectionEnd::ClientExit) => info!(%peer, "connection closed: client sent exit"),
        Ok(ConnectionEnd::ClientClosed) => {
            info!(%peer, "connection closed: close handshake complete")
        }
        Ok(ConnectionEnd::PeerClosed) => {
            info!(%peer, "connection closed: peer disconnected without exit or CLOSE")
        }
        Ok(ConnectionEnd::ServerShutdown) => {
            info!(%peer, "connection closed: server shutting down")
        }
        Err(e) => warn!(%peer, "connection closed: {e}"),
    }
}

/// The first byte of the first frame is its version, and decides the
/// protocol for the whole connection.
async fn dispatch_by_version<S: Service>(
    mut conn: Connection<TcpStream, V1Codec>,
    peer: SocketAddr,
    service: &S,
    config: &ServerConfig,
    stop: &CancellationToken,
) -> Result<ConnectionEnd, ConnectionError> {
    let version = tokio::select! {
        _ = stop.cancelled() => return Ok(ConnectionEnd::ServerShutdown),
        v = conn.peek_first_byte() => v?,
    };
    match version {
        None => Ok(ConnectionEnd::PeerClosed),
        Some(v1::VERSION) => {
            let mut handler = service.connect(&PeerInfo {
                addr: peer,
                version: v1::VERSION,
                name: peer.to_string(),
                pusher: Pusher::new(None),
            });
            let result = serve_v1(&mut conn, &mut handler, stop).await;
            // Best effort: the peer may already be gone.
            let _ = conn.shutdown().await;
            result
        }
        Some(v2::VERSION) => {
            let conn =
                conn.map_codec(|_| V2Codec::new(config.max_frame_size, v2::MIN_MAX_FRAME_SIZE));
            serve_v2(conn, service, peer, config, stop).await
        }
        Some(other) => {
            // The one reply that clients of every version can read.
            conn.queue_raw(&unsupported_version_reply(other));
            let _ = conn.shutdown().await;
            Err(ConnectionError::UnsupportedVersion(other))
        }
    }
}
