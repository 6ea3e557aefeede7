//! The server: its settings, and the accept loop with its connection limit
//! and graceful stop. What happens on each connection starts in
//! `version_dispatch.rs`.

mod accept_backoff;
mod connection_outcome;
mod outbound;
mod shutdown;
mod v1_connection;
mod v2_connection;
mod version_dispatch;

pub use outbound::{PushError, Pusher, Responder};
pub use shutdown::terminate_signal;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use super::handler::Service;
use crate::protocol::v2;
use accept_backoff::{AcceptBackoff, is_per_connection};
use version_dispatch::serve_connection;

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
