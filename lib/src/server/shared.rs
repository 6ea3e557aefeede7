//! What every connection of one server shares (the settings, the memory
//! budget, the authentication brake and the stop signal), and what it knows
//! of each peer before its first frame ([`PeerFacts`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use super::admission::Slot;
use super::auth_tokens::AuthBackoff;
use super::config::ServerConfig;
use super::metrics::ServerMetrics;
use crate::transport::MemoryBudget;
use rustls_pki_types::CertificateDer;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// One server's shared state, built once by `Server::run`.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) budget: MemoryBudget,
    pub(crate) auth_backoff: AuthBackoff,
    /// Cancelled when the server stops: connections say GOAWAY and drain.
    pub(crate) stop: CancellationToken,
    /// The hot paths' metric handles.
    pub(crate) metrics: ServerMetrics,
    /// What every v2 session of this server shares (its own handshake
    /// deadline aside).
    pub(crate) session_config: Arc<crate::protocol::v2::SessionConfig>,
    /// Moves whenever `stop`, the abandon signal or a displacement fires.
    pub(crate) signals: Arc<SignalEpoch>,
}

// What the server knows about a peer before its first frame: where it is,
// when it came, and (with mutual TLS) who it proved to be.

/// What the server knows about a peer before its first frame.
pub(crate) struct PeerFacts<'a> {
    /// Its address.
    pub(crate) addr: SocketAddr,
    /// When it was accepted: the first frame's deadline counts from here.
    pub(crate) accepted: Instant,
    /// How long it has for its handshake (shorter when the server was under
    /// pressure as it arrived).
    pub(crate) handshake_timeout: Duration,
    /// Its slot, promoted to a session's once the handshake is done.
    pub(crate) slot: &'a Slot,
    /// A load balancer's health check (PROXY `LOCAL`): logged at debug
    /// level and counted, not logged at info several times a second.
    pub(crate) health_check: bool,
    /// Its verified TLS client certificate, with mutual TLS.
    pub(crate) certificate: Option<CertificateDer<'static>>,
}

/// How many times the server's rare signals have fired (stop, abandon, a
/// displacement). Polling a cancellation token's future takes its lock,
/// shared by every connection of the server; a connection instead polls
/// its signal futures once (to register its waker) and again only when
/// this count has moved since it last looked. Bump it *before* firing the
/// signal, so the wake-up finds it moved.
#[derive(Debug, Default)]
pub(crate) struct SignalEpoch(std::sync::atomic::AtomicU64);

impl SignalEpoch {
    /// A signal is about to fire.
    pub(crate) fn bump(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Whether anything fired since `seen` (start it at `u64::MAX`, so the
    /// first look says yes); updates `seen`.
    pub(crate) fn moved(&self, seen: &mut u64) -> bool {
        let now = self.0.load(std::sync::atomic::Ordering::Acquire);
        let moved = now != *seen;
        *seen = now;
        moved
    }
}

/// Runs `work` unless `signal` (one of the server's rare signals) fires
/// first: `Err` with the signal's output then. The signal is polled only
/// when `signals` moved, not on every wake-up of the work.
/// Both come pinned where the caller made them: moved into this function
/// they would take their room in the task twice.
pub(crate) async fn unless<F: Future, G: Future>(
    mut work: Pin<&mut F>,
    mut signal: Pin<&mut G>,
    signals: &SignalEpoch,
) -> Result<F::Output, G::Output> {
    let mut seen = u64::MAX;
    std::future::poll_fn(|cx| {
        if let Poll::Ready(out) = work.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        if signals.moved(&mut seen)
            && let Poll::Ready(fired) = signal.as_mut().poll(cx)
        {
            return Poll::Ready(Err(fired));
        }
        Poll::Pending
    })
    .await
}
