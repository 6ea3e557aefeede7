//! One accepted connection, start to end: the TLS handshake when the server
//! speaks TLS, then the protocol the first byte names, served until it
//! ends, and a log line saying how.

use super::connection_outcome::{ConnectionEnd, ConnectionError};
use super::log_gate::{PeerText, admit_global, info_unless_quiet, suppressed_field};
use super::metrics::{OpenGauge, ServerMetrics};
use super::shared::PeerFacts;
use tokio::net::TcpStream;
use tracing::warn;

use super::service::{Service, Transport};
use super::shared::Shared;

use super::v1_connection::serve_v1_connection;
use super::v2_connection::serve_v2;
use crate::protocol::v1::{self, V1Codec};
use crate::protocol::v2::{self, V2Codec};
use crate::protocol::{Stalled, unsupported_version_reply};
use crate::transport::{Connection, Stream};
use rustls_pki_types::CertificateDer;
use std::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::transport::{MemoryBudget, ServerTls};

/// One connection, start to end, with its log lines. `arrival` says when
/// it came, its slot and its handshake deadline; its address is `peer`.
pub(super) async fn serve_connection<S: Service>(
    stream: TcpStream,
    arrival: PeerFacts<'_>,
    service: &S,
    shared: &Shared,
) {
    // Every line below is inside the connection's span, which names the
    // peer; a health check's lines are at debug level.
    let quiet = arrival.health_check;
    if quiet {
        shared.metrics.health_checks.increment(1);
    }
    if let Some(suppressed) = admit_global() {
        info_unless_quiet!(
            quiet,
            suppressed = suppressed_field(suppressed),
            transport = %arrival.transport,
            "connection opened"
        );
    }
    // Replies are batched by us already; Nagle would only add latency.
    let _ = stream.set_nodelay(true);
    let result = serve_stream(stream, arrival, service, shared).await;
    match &result {
        Ok(end) => ServerMetrics::closed(end.metric_label()),
        Err(e) => {
            ServerMetrics::closed(e.metric_label());
            if let Some(code) = e.protocol_code() {
                ServerMetrics::protocol_error(code);
            }
            if matches!(e, ConnectionError::SlowConsumer { .. }) {
                shared.metrics.slow_consumers.increment(1);
            }
        }
    }
    // Every peer causes these two lines; a flood of peers is summarised.
    let Some(suppressed) = admit_global() else {
        return;
    };
    let suppressed = suppressed_field(suppressed);
    match result {
        Ok(ConnectionEnd::ClientExit) => {
            info_unless_quiet!(quiet, suppressed, "connection closed: client sent exit")
        }
        Ok(ConnectionEnd::ClientClosed) => {
            info_unless_quiet!(
                quiet,
                suppressed,
                "connection closed: close handshake complete"
            )
        }
        Ok(ConnectionEnd::PeerClosed) => {
            info_unless_quiet!(
                quiet,
                suppressed,
                "connection closed: peer disconnected without exit or CLOSE"
            )
        }
        Ok(ConnectionEnd::TakenOver | ConnectionEnd::Resumed) => {
            info_unless_quiet!(
                quiet,
                suppressed,
                "connection closed: its client resumed the session on a new connection"
            )
        }
        Ok(ConnectionEnd::ServerShutdown) => {
            info_unless_quiet!(quiet, suppressed, "connection closed: server shutting down")
        }
        Ok(ConnectionEnd::HttpServed(status)) => {
            info_unless_quiet!(
                quiet,
                suppressed,
                status,
                "connection closed: HTTP request served"
            )
        }
        Err(e) => {
            warn!(
                suppressed,
                "connection closed: {}",
                PeerText(&e.to_string())
            )
        }
    }
}

/// The stream made ready (TLS accepted, when configured), then served by
/// the protocol its first byte names.
async fn serve_stream<S: Service>(
    stream: TcpStream,
    mut facts: PeerFacts<'_>,
    service: &S,
    shared: &Shared,
) -> Result<ConnectionEnd, ConnectionError> {
    let stream = match &shared.config.tls {
        None => Stream::Plain(stream),
        Some(tls) => {
            let first_frame_by = facts.accepted + facts.handshake_timeout;
            // Boxed, as every rare and large step is: the task keeps only
            // what it waits on while idle.
            let accepted = Box::pin(accept_tls(stream, tls, first_frame_by, &shared.budget));
            let (stream, certificate) = accepted.await?;
            facts.certificate = certificate;
            stream
        }
    };
    #[cfg(feature = "websocket")]
    let stream = match (facts.transport, &shared.config.websocket) {
        (Transport::WebSocket, Some(ws)) => {
            let upgraded = Box::pin(upgrade(stream, ws, &facts, shared));
            match upgraded.await? {
                Ok(stream) => stream,
                Err(end) => return Ok(end),
            }
        }
        _ => stream,
    };
    let conn = Box::new(Connection::new(stream, V1Codec));
    dispatch_by_version(conn, &facts, service, shared).await
}

/// The HTTP request on the WebSocket port, within the first frame's
/// deadline: a WebSocket carrying v2 (the stream to serve), or a page
/// served (the connection's end), or an HTTP error.
#[cfg(feature = "websocket")]
async fn upgrade(
    stream: Stream,
    ws: &crate::transport::WebSocketConfig,
    facts: &PeerFacts<'_>,
    shared: &Shared,
) -> Result<Result<Stream, ConnectionEnd>, ConnectionError> {
    use crate::transport::{Upgrade, accept_websocket};
    let by = facts.accepted + facts.handshake_timeout;
    let tls = shared.config.tls.is_some();
    // The largest message: one frame of our largest payload.
    let max_message = u64::from(shared.config.max_frame_size) + v2::HEADER_LEN as u64;
    let limit = facts.handshake_timeout;
    // The head must be whole by the deadline (else 408); the answer then
    // gets a moment of its own to be written.
    let answered_by = by + ANSWER_TIME;
    let accepted = tokio::select! {
        _ = shared.stop.cancelled() => return Ok(Err(ConnectionEnd::ServerShutdown)),
        _ = tokio::time::sleep_until(answered_by.into()) => {
            return Err(ConnectionError::Stalled(Stalled::FirstFrame(limit)));
        }
        accepted = accept_websocket(stream, ws, tls, max_message, (by, limit)) => accepted,
    };
    match accepted {
        Ok(Upgrade::WebSocket(ws)) => Ok(Ok(Stream::WebSocket(Box::new(ws)))),
        Ok(Upgrade::Served { status }) => Ok(Err(ConnectionEnd::HttpServed(status))),
        Err(e) => Err(ConnectionError::WebSocketUpgrade {
            status: e.status,
            reason: e.reason,
        }),
    }
}

/// How long an HTTP answer on the WebSocket port may take to write, past
/// the handshake deadline that bounds reading the request.
#[cfg(feature = "websocket")]
const ANSWER_TIME: std::time::Duration = std::time::Duration::from_secs(1);

/// The first byte of the first frame is its version, and decides the
/// protocol for the whole connection.
///
/// The connection comes boxed, and goes on boxed to the v2 driver: an
/// async function keeps each by-value argument in its state for as long as
/// it runs, so a connection passed by value down two levels would sit in
/// the task four times over (~600 bytes per connection, idle or not).
async fn dispatch_by_version<S: Service>(
    mut conn: Box<Connection<Stream, V1Codec>>,
    peer: &PeerFacts<'_>,
    service: &S,
    shared: &Shared,
) -> Result<ConnectionEnd, ConnectionError> {
    let (config, stop) = (&shared.config, &shared.stop);
    // A socket that sends nothing at all is held no longer than one that
    // sends too little: the first frame's deadline counts from accept.
    let first_frame_by = peer.accepted + peer.handshake_timeout;
    let first = Box::pin(async {
        tokio::select! {
            _ = stop.cancelled() => Ok(Err(ConnectionEnd::ServerShutdown)),
            _ = tokio::time::sleep_until(first_frame_by.into()) => {
                Err(ConnectionError::Stalled(Stalled::FirstFrame(peer.handshake_timeout)))
            }
            v = conn.peek_first_byte() => Ok(Ok(v?)),
        }
    });
    let version = match first.await {
        Ok(Ok(version)) => version,
        Ok(Err(end)) => return Ok(end),
        Err(ConnectionError::Stalled(Stalled::FirstFrame(limit)))
            if peer.transport == Transport::WebSocket =>
        {
            // A WebSocket that agreed to carry v2 (the subprotocol) is a v2
            // peer even before its first byte: it is told, as a v2 peer that
            // sent half a HELLO would be (spec 4.1), then the WebSocket is
            // closed.
            let reason = format!("no HELLO within {limit:?}");
            let mut close = bytes::BytesMut::new();
            v2::Frame::Close(v2::CodeReason::new(v2::CloseCode::POLICY_VIOLATION, reason))
                .encode(&mut close);
            conn.queue_raw(&close);
            let _ = tokio::time::timeout(std::time::Duration::from_secs(1), conn.shutdown()).await;
            return Err(ConnectionError::Stalled(Stalled::FirstFrame(limit)));
        }
        Err(e) => return Err(e),
    };
    ServerMetrics::accepted(version);
    // The bytes of the read that showed the version (counted here, since
    // the protocol drivers count only their own reads).
    match version {
        Some(v1::VERSION) => {
            shared.metrics.received_bytes[0].increment(conn.buffered().len() as u64)
        }
        Some(v2::VERSION) => {
            shared.metrics.received_bytes[1].increment(conn.buffered().len() as u64)
        }
        _ => {}
    }
    if let Some(v) = version {
        tracing::Span::current().record("version", v);
    }
    match version {
        None => Ok(ConnectionEnd::PeerClosed),
        Some(v1::VERSION) if config.auth_tokens.is_some() && !config.allow_v1 => {
            // A reset, not an orderly close: the v1 client must not take
            // it for "everything was read".
            conn.stream().reset_on_close();
            Err(ConnectionError::V1NeedsToken)
        }
        Some(v1::VERSION) => serve_v1_connection(conn, peer, service, shared).await,
        Some(v2::VERSION) => {
            // Until the handshake is done only a small HELLO is accepted, so
            // a stranger cannot make us buffer megabytes.
            let conn = Box::new(
                conn.map_codec(|_| V2Codec::new(v2::MIN_MAX_FRAME_SIZE, v2::MIN_MAX_FRAME_SIZE)),
            );
            // The codec only decodes here: frames out are encoded by the
            // session, which knows the client's limit once it has said it.
            let _open = OpenGauge::new(&shared.metrics.open[1]);
            serve_v2(conn, service, peer, shared).await
        }
        Some(other) => {
            // The one reply that clients of every version can read.
            conn.queue_raw(&unsupported_version_reply(other));
            let _ = conn.shutdown().await;
            Err(ConnectionError::UnsupportedVersion(other))
        }
    }
}

// The server's side of the TLS handshake: within the first frame's
// deadline (a peer cannot hold a slot by stalling the handshake), with its
// buffers counted against the memory budget while it runs.

/// What a TLS handshake holds at most: rustls's record buffers.
const HANDSHAKE_MEMORY: usize = 64 * 1024;

/// Accepts TLS on `stream` by `deadline`; the verified client certificate,
/// if the client presented one.
pub(crate) async fn accept_tls(
    stream: TcpStream,
    tls: &ServerTls,
    deadline: Instant,
    budget: &MemoryBudget,
) -> Result<(Stream, Option<CertificateDer<'static>>), ConnectionError> {
    let _reserved = budget.reserve(HANDSHAKE_MEMORY).await;
    let accepting = TlsAcceptor::from(tls.current()).accept(stream);
    let tls_stream = match tokio::time::timeout_at(deadline.into(), accepting).await {
        Err(_) => return Err(ConnectionError::Tls("not complete in time".into())),
        // rustls says what was wrong: a plain-text peer, an unknown CA, …
        Ok(Err(e)) => return Err(ConnectionError::Tls(e.to_string())),
        Ok(Ok(s)) => s,
    };
    let certificate = tls_stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.clone().into_owned());
    Ok((Stream::Server(Box::new(tls_stream)), certificate))
}
