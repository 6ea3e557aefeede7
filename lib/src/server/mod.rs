//! The server: the accept loop with its connection limit and graceful stop.
//! Its settings are in `config.rs`, the user's side of it (`Service`,
//! `Handler`) in `service.rs`; what happens on each connection starts in
//! `version_dispatch.rs`.

mod accept_backoff;
mod admission;
mod auth_tokens;
mod call;
mod config;
mod connection_outcome;
#[doc(hidden)]
pub mod fuzzing;
mod kept_sessions;
mod log_gate;
mod metrics;
mod proxy_header;
mod pusher;
mod service;
#[cfg(feature = "nats")]
mod session_mirror;
#[cfg(feature = "nats")]
mod session_store;
mod shared;
mod signals;
mod v1_connection;
mod v2_connection;
mod version_dispatch;

pub use auth_tokens::{AuthTokens, AuthTokensError};
pub use call::{Call, ItemSender, Items};
pub use config::{ServerConfig, ServerError};
pub use pusher::Responder;
pub use pusher::{PushError, Pusher};
pub use service::{Handler, PeerInfo, Service, Transport};
#[cfg(feature = "nats")]
pub use session_store::{SessionStore, SessionStoreError};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, Span, debug, error, field, info, info_span, warn};

use crate::transport::MemoryBudget;

use accept_backoff::{AcceptBackoff, is_per_connection};
use admission::{Admission, Admitted};
use auth_tokens::AuthBackoff;
use kept_sessions::KeptSessions;
pub(crate) use log_gate::{admit_global, suppressed_field};
use metrics::ServerMetrics;
use shared::PeerFacts;
use shared::Shared;
use signals::{SignalEpoch, unless};
use version_dispatch::serve_connection;

/// Refused connections being answered at once, at most.
const MAX_REFUSALS: usize = 64;

/// A bound listener that serves a [`Service`] until told to stop.
///
/// Binding and serving are two steps, so a caller learns the address (port
/// 0 picks a free one) before the first connection, and decides when to
/// stop: `run` serves until its shutdown future completes, then closes
/// every connection gracefully (v2 clients get GOAWAY and time to finish).
///
/// ```no_run
/// # use rust_tcp::{Handler, Message, PeerInfo, Server, ServerConfig, Service};
/// # struct Printer;
/// # impl Service for Printer { type Handler = Printer; fn connect(&self, _: &PeerInfo) -> Printer { Printer } }
/// # impl Handler for Printer { async fn on_text(&mut self, _: Message) {} }
/// # async fn serve() -> Result<(), rust_tcp::ServerError> {
/// let config = ServerConfig::default().max_connections(1_000);
/// let server = Server::bind("0.0.0.0:8080", config).await?;
/// println!("listening on {}", server.local_addr());
/// // Serve until Ctrl-C.
/// server.run(Printer, async { let _ = tokio::signal::ctrl_c().await; }).await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    /// The WebSocket listener, when `config.websocket` asks for one.
    ws_listener: Option<TcpListener>,
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
        let ws_listener = match websocket_addr(&config) {
            None => None,
            Some(ws_addr) => {
                Some(
                    TcpListener::bind(ws_addr)
                        .await
                        .map_err(|source| ServerError::Bind {
                            addr: ws_addr.to_owned(),
                            source,
                        })?,
                )
            }
        };
        Ok(Server {
            listener,
            ws_listener,
            config,
        })
    }

    /// The WebSocket listener's address, when there is one (how a caller
    /// that asked for port 0 learns it).
    pub fn websocket_addr(&self) -> Option<SocketAddr> {
        self.ws_listener.as_ref().and_then(|l| l.local_addr().ok())
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
        let signals = Arc::new(SignalEpoch::default());
        let shared = Arc::new(Shared {
            config: self.config.clone(),
            budget: MemoryBudget::new(self.config.max_memory),
            auth_backoff: AuthBackoff::default(),
            stop: stop.clone(),
            metrics: ServerMetrics::new(),
            signals: signals.clone(),
            session_config: Arc::new(self.config.session_config()),
            kept: self
                .config
                .resume
                .as_ref()
                .map(|_| KeptSessions::new(self.config.max_kept_sessions)),
        });
        let admission = Admission::with_signals(self.config.admission_rules(), signals.clone());
        // Refusals in progress at once; past this a refused peer is just
        // closed, so a flood of them costs nothing more.
        let refusals = Arc::new(Semaphore::new(MAX_REFUSALS));
        let mut backoff = AcceptBackoff::default();
        tokio::pin!(shutdown);

        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => accepted.map(|(s, p)| (s, p, Transport::Tcp)),
                accepted = accept_from(self.ws_listener.as_ref()) => {
                    accepted.map(|(s, p)| (s, p, Transport::WebSocket))
                }
            };
            match accepted {
                Ok((stream, peer, transport)) => {
                    let accepted = std::time::Instant::now();
                    backoff.reset();
                    let proxied = self.config.proxy_protocol;
                    // Behind a balancer every connection comes from it: the
                    // per-address rules wait for the real address.
                    let ip = (!proxied).then(|| peer.ip());
                    let Admitted {
                        mut slot,
                        displaced,
                        handshake_timeout,
                    } = match admission.admit(ip, accepted) {
                        Ok(admitted) => admitted,
                        Err(why) => {
                            ServerMetrics::refused(why.metric_label());
                            if let Ok(permit) = refusals.clone().try_acquire_owned() {
                                tracker.spawn(async move {
                                    admission::refuse(stream, peer, why, transport).await;
                                    drop(permit);
                                });
                            }
                            continue;
                        }
                    };
                    let service = service.clone();
                    let shared = shared.clone();
                    let abandon = abandon.clone();
                    let admission = admission.clone();
                    // One span per connection: every line it logs carries
                    // who it is (peer, then version and client name).
                    let span = info_span!(
                        "conn",
                        peer = field::Empty,
                        version = field::Empty,
                        client_name = field::Empty
                    );
                    // Recorded once (a second record would show it twice):
                    // behind a balancer, once its header names the client.
                    if !proxied {
                        span.record("peer", field::display(peer));
                    }
                    tracker.spawn(async move {
                        {
                            let served = std::pin::pin!(async {
                                let (stream, peer, health_check) = if proxied {
                                    let by = accepted + handshake_timeout;
                                    // Boxed: a large step the task should not
                                    // carry for the rest of the connection.
                                    let found = Box::pin(proxy_header::proxied_peer(
                                        stream, peer, &mut slot, &admission, by, transport,
                                    ));
                                    let Some((stream, real, health_check)) = found.await else {
                                        return;
                                    };
                                    // The real address, for every line from now on.
                                    Span::current().record("peer", field::display(real));
                                    (stream, real, health_check)
                                } else {
                                    (stream, peer, false)
                                };
                                let arrival = PeerFacts {
                                    addr: peer,
                                    accepted,
                                    handshake_timeout,
                                    slot: &slot,
                                    health_check,
                                    certificate: None,
                                    transport,
                                };
                                serve_connection(stream, arrival, &*service, &shared).await
                            });
                            let interrupted = std::pin::pin!(async {
                                tokio::select! {
                                    _ = displaced.cancelled() => true,
                                    _ = abandon.cancelled() => false,
                                }
                            });
                            match unless(served, interrupted, &shared.signals).await {
                                Ok(()) => {}
                                Err(true) => {
                                    shared.metrics.displaced.increment(1);
                                    if let Some(suppressed) = admit_global() {
                                        let suppressed = suppressed_field(suppressed);
                                        info!(suppressed, "connection dropped: displaced by a newer connection before finishing its handshake (server busy)");
                                    }
                                }
                                Err(false) => warn!("connection abandoned at shutdown"),
                            }
                        }
                        drop(slot);
                    }.instrument(span));
                }
                Err(e) if is_per_connection(&e) => {
                    shared.metrics.accept_errors.increment(1);
                    debug!("accept: {e}; retrying")
                }
                Err(e) => {
                    shared.metrics.accept_errors.increment(1);
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
        drop(self.ws_listener);
        info!(
            open = tracker.len(),
            "stopped accepting; closing connections"
        );
        signals.bump();
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
            signals.bump();
            abandon.cancel();
            tracker.wait().await;
        }
    }
}

/// The address `config` asks the WebSocket listener to bind, if any.
fn websocket_addr(config: &ServerConfig) -> Option<&str> {
    #[cfg(feature = "websocket")]
    if let Some(ws) = &config.websocket {
        return Some(&ws.addr);
    }
    let _ = config;
    None
}

/// The next connection on `listener`; never, without one.
async fn accept_from(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}
