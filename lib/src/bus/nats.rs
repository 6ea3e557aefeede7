//! [`NatsBus`]: one NATS connection per server, with reconnection (and its
//! backoff) handled by `async-nats`, and a bounded queue between the
//! services that publish and the connection, so NATS being away never
//! blocks a client's connection.

use bytes::Bytes;
use futures::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// Messages that may wait for NATS (while it is away, say) before further
/// ones are dropped.
const PUBLISH_QUEUE: usize = 8192;

/// The longest wait between two reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// What can go wrong with the bus.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BusError {
    /// The address is not a NATS URL we can use.
    #[error("invalid NATS address {addr}: {reason}")]
    InvalidAddress {
        /// The address given.
        addr: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The subject is not a valid NATS subject.
    #[error("invalid subject {0:?}: letters, digits, '-', '_' and '.' only")]
    InvalidSubject(String),
    /// The publish queue is full (NATS has been away for a while, or is
    /// slower than the servers publishing): the message was dropped.
    #[error("the bus is backed up; message dropped")]
    Backlog,
    /// The bus has been shut down.
    #[error("the bus is closed")]
    Closed,
    /// NATS refused a subscription.
    #[error("subscribing to {subject}: {reason}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// What NATS said.
        reason: String,
    },
}

/// Counts since the bus started, for logs and metrics (also exported as
/// `rust_tcp_bus_published_total`, `rust_tcp_bus_received_total` and
/// `rust_tcp_bus_dropped_total{direction="out"|"in"}`).
#[derive(Debug, Default)]
pub struct BusStats {
    published: AtomicU64,
    received: AtomicU64,
    dropped: AtomicU64,
    slow: AtomicU64,
    metrics: BusMetrics,
}

/// The same counts as metrics.
#[derive(Debug)]
struct BusMetrics {
    published: metrics::Counter,
    received: metrics::Counter,
    dropped_out: metrics::Counter,
    dropped_in: metrics::Counter,
}

impl Default for BusMetrics {
    fn default() -> Self {
        let dropped = "rust_tcp_bus_dropped_total";
        BusMetrics {
            published: metrics::counter!("rust_tcp_bus_published_total"),
            received: metrics::counter!("rust_tcp_bus_received_total"),
            dropped_out: metrics::counter!(dropped, "direction" => "out"),
            dropped_in: metrics::counter!(dropped, "direction" => "in"),
        }
    }
}

impl BusStats {
    /// Messages handed to NATS.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
    /// Messages received from other servers.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
    /// Messages dropped because the publish queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
    /// Messages from other servers dropped because they arrived faster
    /// than this server delivered them (NATS core is at-most-once).
    pub fn dropped_incoming(&self) -> u64 {
        self.slow.load(Ordering::Relaxed)
    }

    // Each count is kept twice: here for `stats()`, and as a metric.
    fn note_published(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
        self.metrics.published.increment(1);
    }
    fn note_received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
        self.metrics.received.increment(1);
    }
    fn note_dropped_out(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.metrics.dropped_out.increment(1);
    }
    /// Returns how many have been dropped so far.
    fn note_dropped_in(&self) -> u64 {
        self.metrics.dropped_in.increment(1);
        self.slow.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// A handle to the bus; clone it freely.
#[derive(Debug, Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    prefix: String,
    outbox: mpsc::Sender<Outbound>,
    stats: Arc<BusStats>,
}

/// What the publishing task is handed, in order.
#[derive(Debug)]
enum Outbound {
    Publish(String, Bytes),
    /// Answer once everything before has reached NATS.
    Flush(oneshot::Sender<()>),
}

/// What other servers publish on one subject.
#[derive(Debug)]
pub struct Subscription {
    inner: async_nats::Subscriber,
    stats: Arc<BusStats>,
}

impl Subscription {
    /// The next message from another server; `None` once the bus is closed.
    pub async fn next(&mut self) -> Option<Bytes> {
        let message = self.inner.next().await?;
        self.stats.note_received();
        Some(message.payload)
    }
}

impl NatsBus {
    /// Connects to NATS at `addr` (`nats://HOST:PORT`); subjects are
    /// `PREFIX.NAME`. Returns at once even if NATS is not reachable yet:
    /// the connection is retried in the background (with backoff) for as
    /// long as the server runs, and logged when it comes and goes.
    pub async fn connect(addr: &str, prefix: &str) -> Result<NatsBus, BusError> {
        check_subject(prefix)?;
        let invalid = |reason: String| BusError::InvalidAddress {
            addr: addr.to_owned(),
            reason,
        };
        let server: async_nats::ServerAddr = addr.parse().map_err(|e| invalid(format!("{e}")))?;
        let logged_addr = addr.to_owned();
        let stats = Arc::new(BusStats::default());
        let counted = stats.clone();
        let last_slow_report = Arc::new(std::sync::Mutex::new(None::<std::time::Instant>));
        // Failed attempts are said once per outage, not once per retry.
        let outage_reported = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let client = async_nats::ConnectOptions::new()
            .name("rust-tcp server")
            // This server delivers its own messages locally; echoing them
            // back would deliver them twice.
            .no_echo()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(|attempt| {
                let ms = 50u64.saturating_mul(1 << attempt.min(10) as u64);
                Duration::from_millis(ms).min(MAX_RECONNECT_DELAY)
            })
            .event_callback(move |event| {
                let addr = logged_addr.clone();
                let (counted, last) = (counted.clone(), last_slow_report.clone());
                let outage = outage_reported.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            outage.store(false, Ordering::Relaxed);
                            info!(%addr, "NATS connected; relaying")
                        }
                        async_nats::Event::Disconnected => {
                            outage.store(true, Ordering::Relaxed);
                            warn!(
                                %addr,
                                "NATS disconnected; serving local clients only, reconnecting"
                            )
                        }
                        async_nats::Event::ClientError(e) => {
                            if !outage.swap(true, Ordering::Relaxed) {
                                warn!(
                                    %addr,
                                    "NATS unreachable ({e}); serving local clients only, retrying"
                                );
                            }
                        }
                        async_nats::Event::SlowConsumer(_) => {
                            // Each burst of drops reports once per message:
                            // count them all, say so at most once a second.
                            let n = counted.note_dropped_in();
                            let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                            if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                                *last = Some(std::time::Instant::now());
                                warn!(
                                    %addr,
                                    dropped_so_far = n,
                                    "relayed messages arrive faster than this server delivers them; \
                                     dropping some (at-most-once, as NATS core)"
                                );
                            }
                        }
                        other => info!(%addr, "NATS: {other}"),
                    }
                }
            })
            .connect(server)
            .await
            .map_err(|e| invalid(e.to_string()))?;
        let (outbox, mut queued) = mpsc::channel::<Outbound>(PUBLISH_QUEUE);
        let publisher = client.clone();
        let counted = stats.clone();
        tokio::spawn(async move {
            while let Some(next) = queued.recv().await {
                match next {
                    Outbound::Publish(subject, payload) => {
                        match publisher.publish(subject, payload).await {
                            Ok(()) => counted.note_published(),
                            Err(e) => {
                                warn!("NATS publish failed: {e}");
                                counted.note_dropped_out();
                            }
                        };
                    }
                    Outbound::Flush(done) => {
                        let _ = publisher.flush().await;
                        let _ = done.send(());
                    }
                }
            }
        });
        Ok(NatsBus {
            client,
            prefix: prefix.to_owned(),
            outbox,
            stats,
        })
    }

    /// Publishes `payload` to the other servers on `PREFIX.name`. While
    /// NATS is connected and merely busy, this waits for room in the queue
    /// (backpressure, as TCP would give); while NATS is away it never
    /// waits: a full queue drops the message ([`BusError::Backlog`], counted).
    pub async fn publish(&self, name: &str, payload: Bytes) -> Result<(), BusError> {
        check_subject(name)?;
        let subject = format!("{}.{name}", self.prefix);
        let message = Outbound::Publish(subject, payload);
        if self.client.connection_state() == async_nats::connection::State::Connected {
            return self
                .outbox
                .send(message)
                .await
                .map_err(|_| BusError::Closed);
        }
        self.outbox.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                self.stats.note_dropped_out();
                BusError::Backlog
            }
            mpsc::error::TrySendError::Closed(_) => BusError::Closed,
        })
    }

    /// What other servers publish on `PREFIX.name` from now on (kept
    /// across NATS reconnections).
    pub async fn subscribe(&self, name: &str) -> Result<Subscription, BusError> {
        check_subject(name)?;
        let subject = format!("{}.{name}", self.prefix);
        let inner =
            self.client
                .subscribe(subject.clone())
                .await
                .map_err(|e| BusError::Subscribe {
                    subject,
                    reason: e.to_string(),
                })?;
        Ok(Subscription {
            inner,
            stats: self.stats.clone(),
        })
    }

    /// Counts since the bus started.
    pub fn stats(&self) -> &BusStats {
        &self.stats
    }

    /// Waits until what was published so far has reached NATS (for tests
    /// and orderly shutdown).
    pub async fn flush(&self) -> Result<(), BusError> {
        let (done, flushed) = oneshot::channel();
        self.outbox
            .send(Outbound::Flush(done))
            .await
            .map_err(|_| BusError::Closed)?;
        flushed.await.map_err(|_| BusError::Closed)
    }
}

fn check_subject(s: &str) -> Result<(), BusError> {
    let ok = !s.is_empty()
        && !s.starts_with('.')
        && !s.ends_with('.')
        && !s.contains("..")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(BusError::InvalidSubject(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_checked() {
        for good in ["rust-tcp.room", "lobby", "a_b-c.d"] {
            assert!(check_subject(good).is_ok(), "{good}");
        }
        for bad in ["", ".a", "a.", "a..b", "a b", "a*", "a>"] {
            assert!(check_subject(bad).is_err(), "{bad:?}");
        }
    }
}
