//! What a server counts, through the `metrics` facade: with no recorder
//! installed every handle is a no-op, and with one (the `server` binary's
//! `--metrics-addr` installs `metrics-exporter-prometheus`) these become
//! Prometheus series. A user's `Service` adds its own series the same way,
//! with `metrics::counter!` and friends; they land in the same recorder.
//!
//! Names follow Prometheus conventions: a `rust_tcp_` prefix, `_total` for
//! counters, base units (`_bytes`, `_seconds`). Handles for the hot paths
//! are registered once per server and incremented per batch, not looked up
//! per message. Install the recorder before `Server::run`: handles made
//! before that stay no-ops.

use metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};

/// Connections by protocol version, when it is known (its first byte).
const CONNECTIONS_ACCEPTED: &str = "rust_tcp_connections_accepted_total";
/// Connections open now, by protocol version.
const CONNECTIONS_OPEN: &str = "rust_tcp_connections_open";
/// Connections ended, by how (`reason`).
const CONNECTIONS_CLOSED: &str = "rust_tcp_connections_closed_total";
/// Connections turned away before being served, by why (`reason`).
const CONNECTIONS_REFUSED: &str = "rust_tcp_connections_refused_total";
/// Frames (v2) or messages (v1) received, by version.
const MESSAGES_RECEIVED: &str = "rust_tcp_messages_received_total";
/// Bytes read from peers, by version.
const RECEIVED_BYTES: &str = "rust_tcp_received_bytes_total";
/// v2 frames sent by handlers and broadcasts (responses, pushes).
const MESSAGES_SENT: &str = "rust_tcp_messages_sent_total";
/// Bytes written to peers.
const SENT_BYTES: &str = "rust_tcp_sent_bytes_total";
/// Time from a request's arrival to its response being queued; the count
/// is the requests handled.
const REQUEST_DURATION: &str = "rust_tcp_request_duration_seconds";
/// Connections closed because they did not read what they were sent.
const SLOW_CONSUMERS: &str = "rust_tcp_slow_consumers_total";
/// Connections still in their handshake that a newcomer displaced (the
/// pending budget was full, or every slot taken).
const HANDSHAKES_DISPLACED: &str = "rust_tcp_handshakes_displaced_total";
/// A load balancer's health checks (PROXY `LOCAL` connections), served
/// and logged at debug level.
const HEALTH_CHECKS: &str = "rust_tcp_health_checks_total";
/// Frames not sent to a client because they exceed its `max_frame`.
const TOO_LARGE_FOR_PEER: &str = "rust_tcp_frames_too_large_for_peer_total";
/// Protocol violations by peers, by the close code sent (`code`).
const PROTOCOL_ERRORS: &str = "rust_tcp_protocol_errors_total";
/// v2 handshakes refused for a missing or wrong token.
const AUTH_FAILURES: &str = "rust_tcp_auth_failures_total";
/// `accept` failures (out of file descriptors, say).
const ACCEPT_ERRORS: &str = "rust_tcp_accept_errors_total";
/// Resumable sessions kept now, connected or waiting for their client.
const SESSIONS_KEPT: &str = "rust_tcp_sessions_kept";
/// Sessions resumed on a new connection.
const SESSIONS_RESUMED: &str = "rust_tcp_sessions_resumed_total";
const SESSIONS_MOVED: &str = "rust_tcp_sessions_moved_total";
/// Resumes refused, by why (`reason`).
const RESUMES_REFUSED: &str = "rust_tcp_resumes_refused_total";
/// Bytes of the memory budget held for large frames and TLS handshakes.
const MEMORY_BUDGET_USED: &str = crate::transport::MEMORY_BUDGET_USED_METRIC;
/// The memory budget's size.
const MEMORY_BUDGET_LIMIT: &str = crate::transport::MEMORY_BUDGET_LIMIT_METRIC;

/// The handles one server uses on its hot paths.
#[derive(Debug)]
pub(crate) struct ServerMetrics {
    /// By version: index 0 for v1, 1 for v2.
    pub(crate) received_messages: [Counter; 2],
    pub(crate) received_bytes: [Counter; 2],
    pub(crate) open: [Gauge; 2],
    pub(crate) sent_messages: Counter,
    pub(crate) sent_bytes: Counter,
    pub(crate) request_duration: Histogram,
    pub(crate) slow_consumers: Counter,
    pub(crate) auth_failures: Counter,
    pub(crate) accept_errors: Counter,
    pub(crate) displaced: Counter,
    pub(crate) health_checks: Counter,
    pub(crate) too_large_for_peer: Counter,
}

impl ServerMetrics {
    pub(crate) fn new() -> Self {
        describe();
        let by_version = |name: &'static str| {
            [
                counter!(name, "version" => "1"),
                counter!(name, "version" => "2"),
            ]
        };
        ServerMetrics {
            received_messages: by_version(MESSAGES_RECEIVED),
            received_bytes: by_version(RECEIVED_BYTES),
            open: [
                gauge!(CONNECTIONS_OPEN, "version" => "1"),
                gauge!(CONNECTIONS_OPEN, "version" => "2"),
            ],
            sent_messages: counter!(MESSAGES_SENT),
            sent_bytes: counter!(SENT_BYTES),
            request_duration: histogram!(REQUEST_DURATION),
            slow_consumers: counter!(SLOW_CONSUMERS),
            auth_failures: counter!(AUTH_FAILURES),
            accept_errors: counter!(ACCEPT_ERRORS),
            displaced: counter!(HANDSHAKES_DISPLACED),
            health_checks: counter!(HEALTH_CHECKS),
            too_large_for_peer: counter!(TOO_LARGE_FOR_PEER),
        }
    }

    /// A connection whose first byte said `version` (or said nothing).
    pub(crate) fn accepted(version: Option<u8>) {
        let label = match version {
            Some(1) => "1",
            Some(2) => "2",
            Some(_) => "other",
            None => "none",
        };
        counter!(CONNECTIONS_ACCEPTED, "version" => label).increment(1);
    }

    /// A connection ended; `reason` is one of a few fixed words.
    pub(crate) fn closed(reason: &'static str) {
        counter!(CONNECTIONS_CLOSED, "reason" => reason).increment(1);
    }

    /// A connection turned away.
    pub(crate) fn refused(reason: &'static str) {
        counter!(CONNECTIONS_REFUSED, "reason" => reason).increment(1);
    }

    /// A session resumed (rare: looked up each time, not kept per
    /// connection).
    pub(crate) fn resumed() {
        counter!(SESSIONS_RESUMED).increment(1);
    }

    /// A session resumed from the deployment's store (its server died or
    /// lost it); also counted as resumed.
    #[cfg(feature = "nats")]
    pub(crate) fn moved() {
        counter!(SESSIONS_MOVED).increment(1);
        counter!(SESSIONS_RESUMED).increment(1);
    }

    /// A resume refused, for `reason` (one of a few fixed words).
    pub(crate) fn resume_refused(reason: crate::protocol::v2::ResumeRefusal) {
        use crate::protocol::v2::ResumeRefusal::*;
        let label = match reason {
            Unknown => "unknown",
            Expired => "expired",
            WrongToken => "wrong_token",
            Overflowed => "overflowed",
            Mismatch => "mismatch",
            BadPosition => "bad_position",
            Unavailable => "unavailable",
        };
        counter!(RESUMES_REFUSED, "reason" => label).increment(1);
    }

    /// The gauge of sessions kept.
    pub(crate) fn sessions_kept() -> Gauge {
        gauge!(SESSIONS_KEPT)
    }

    /// A peer broke the protocol; we closed with `code`.
    pub(crate) fn protocol_error(code: u16) {
        counter!(PROTOCOL_ERRORS, "code" => code.to_string()).increment(1);
    }
}

/// The help texts, registered once per recorder (repeats are harmless).
fn describe() {
    describe_counter!(
        CONNECTIONS_ACCEPTED,
        "Connections accepted, by protocol version"
    );
    describe_gauge!(
        CONNECTIONS_OPEN,
        "Connections open now, by protocol version"
    );
    describe_counter!(CONNECTIONS_CLOSED, "Connections ended, by reason");
    describe_counter!(CONNECTIONS_REFUSED, "Connections turned away, by reason");
    describe_counter!(MESSAGES_RECEIVED, "Frames (v2) or messages (v1) received");
    describe_counter!(RECEIVED_BYTES, Unit::Bytes, "Bytes read from peers");
    describe_counter!(MESSAGES_SENT, "v2 frames sent by handlers and broadcasts");
    describe_counter!(SENT_BYTES, Unit::Bytes, "Bytes written to peers");
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time from a request's arrival to its response being queued"
    );
    describe_counter!(SLOW_CONSUMERS, "Connections closed for not reading");
    describe_counter!(
        PROTOCOL_ERRORS,
        "Protocol violations by peers, by close code"
    );
    describe_counter!(
        AUTH_FAILURES,
        "Handshakes refused for a missing or wrong token"
    );
    describe_counter!(ACCEPT_ERRORS, "accept() failures");
    describe_counter!(HEALTH_CHECKS, "Load balancer health checks served");
    describe_counter!(
        TOO_LARGE_FOR_PEER,
        "Frames not sent because they exceed the client's max_frame"
    );
    describe_counter!(
        HANDSHAKES_DISPLACED,
        "Connections still in their handshake displaced by newcomers"
    );
    describe_gauge!(
        SESSIONS_KEPT,
        "Resumable sessions kept, connected or waiting for their client"
    );
    describe_counter!(SESSIONS_RESUMED, "Sessions resumed on a new connection");
    describe_counter!(
        SESSIONS_MOVED,
        "Sessions resumed from the session store, after another server served them"
    );
    describe_counter!(RESUMES_REFUSED, "Resumes refused, by reason");
    describe_gauge!(MEMORY_BUDGET_USED, Unit::Bytes, "Memory budget held");
    describe_gauge!(MEMORY_BUDGET_LIMIT, Unit::Bytes, "Memory budget size");
}

/// Counts a connection in the open-connections gauge while it lives.
pub(crate) struct OpenGauge<'a>(&'a metrics::Gauge);

impl<'a> OpenGauge<'a> {
    pub(crate) fn new(gauge: &'a metrics::Gauge) -> Self {
        gauge.increment(1.0);
        OpenGauge(gauge)
    }
}

impl Drop for OpenGauge<'_> {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}
