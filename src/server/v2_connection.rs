//! Serving one v2 connection, from the HELLO to the end: a thin driver
//! around the sans-IO [`Session`], which holds every rule and every timer.
//!
//! The driver reads, hands each frame to the session and what it means to
//! the user's handler, or sleeps until the session's next deadline (the
//! handshake, a heartbeat, the go-away drain). Reading and writing run side
//! by side in one task: the write side is a [`WriteQueue`] holding the
//! session under its lock, which this loop, the handler's responders and
//! other connections' broadcasts all send through.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::admission::Slot;
use super::connection_outcome::{ConnectionEnd, ConnectionError};
use super::log_gate::{LogGate, PeerText, info_unless_quiet, suppressed_field};
use super::metrics::ServerMetrics;
use super::peer_facts::PeerFacts;
use super::pusher::{Outbound, Pusher};
use super::responder::{InFlight, Responder};
use super::service::{Handler, PeerInfo, Service};
use super::shared::Shared;
use crate::protocol::v2::{
    AUTHENTICATION_FAILED, CodeReason, Expired, Session, SessionEvent, SessionState, V2Codec,
    V2CodecError, claimed_frame_len,
};
use crate::transport::{BatchError, Connection, Deadline, MemoryBudget, ReceiveBatch, WriteQueue};
use rustls_pki_types::CertificateDer;

/// Serves a v2 connection (its deadlines count from when it was
/// accepted) until it ends, and says how.
pub(crate) async fn serve_v2<S, Svc>(
    conn: Box<Connection<S, V2Codec>>,
    service: &Svc,
    peer: &PeerFacts<'_>,
    shared: &Shared,
) -> Result<ConnectionEnd, ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    Svc: Service,
{
    let (config, auth_backoff) = (&shared.config, &shared.auth_backoff);
    // An address whose tokens keep failing waits before it is judged
    // again (within its handshake deadline, which still runs).
    if config.auth_tokens.is_some()
        && let Some(delay) = auth_backoff.delay_for(peer.addr.ip())
    {
        tokio::time::sleep(delay).await;
    }
    let session_config = config
        .session_config()
        .handshake_timeout(Some(peer.handshake_timeout));
    let session = Session::server(session_config, peer.accepted);
    let (mut reader, write_half) = conn.split();
    let queue = Arc::new(WriteQueue::new(session, config.max_queued_bytes));
    let writer = queue.run_writer(write_half, &shared.metrics.sent_bytes);
    tokio::pin!(writer);
    let mut driver = Driver {
        service,
        handler: None,
        out: Outbound::new(
            queue.clone(),
            peer.addr,
            (
                shared.metrics.sent_messages.clone(),
                shared.metrics.too_large_for_peer.clone(),
            ),
            config
                .time_requests
                .then(|| shared.metrics.request_duration.clone()),
        ),
        metrics: &shared.metrics,
        in_flight: Arc::new(InFlight::default()),
        peer: peer.addr,
        slot: peer.slot,
        quiet: peer.health_check,
        certificate: peer.certificate.clone(),
        drain: config.shutdown_grace / 2,
        events: Vec::new(),
        log_gate: LogGate::default(),
        max_frame_size: config.max_frame_size,
    };
    let (result, writer_done) = tokio::select! {
        result = driver.run(&mut reader, &shared.budget, &shared.stop) => (result, false),
        written = &mut writer => (Err(match written {
            Err(e) => ConnectionError::Io(e),
            Ok(()) => ConnectionError::Io(std::io::ErrorKind::BrokenPipe.into()),
        }), true),
    };
    driver.log_gate.report_suppressed(peer.addr);
    if config.auth_tokens.is_some() {
        match &result {
            Err(ConnectionError::V2Session(e)) if e.reason == AUTHENTICATION_FAILED => {
                shared.metrics.auth_failures.increment(1);
                auth_backoff.failed(peer.addr.ip())
            }
            _ if driver.handler.is_some() => auth_backoff.succeeded(peer.addr.ip()),
            _ => {}
        }
    }
    // Handlers may hold pushers; let them go before the final flush.
    drop(driver);
    // A finished writer must not be polled again; a stuck one (slow
    // consumer) is not waited for.
    if !writer_done && !matches!(result, Err(ConnectionError::SlowConsumer { .. })) {
        // Send what is queued (a close, the last responses), bounded in
        // time; a client that does not read is simply dropped.
        queue.close();
        let _ = timeout(Duration::from_secs(5), writer).await;
    }
    result
}

/// One connection's driver state: the handler once the handshake is done,
/// and the way out.
struct Driver<'a, Svc: Service> {
    service: &'a Svc,
    /// Promoted to a session's slot when the handshake completes.
    slot: &'a Slot,
    /// A health check: its lines at debug level.
    quiet: bool,
    handler: Option<Svc::Handler>,
    out: Outbound,
    in_flight: Arc<InFlight>,
    peer: SocketAddr,
    /// The client's verified TLS certificate, for `PeerInfo`.
    certificate: Option<CertificateDer<'static>>,
    /// How long the close handshake waits for unanswered requests.
    drain: Duration,
    /// The events of one batch of frames, kept to reuse its allocation
    /// while frames keep coming.
    events: Vec<SessionEvent>,
    /// This connection's allowance of log lines.
    log_gate: LogGate,
    /// What we accept once the handshake is done.
    max_frame_size: u32,
    metrics: &'a ServerMetrics,
}

impl<Svc: Service> Driver<'_, Svc> {
    async fn run<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut Connection<R, V2Codec>,
        budget: &MemoryBudget,
        stop: &CancellationToken,
    ) -> Result<ConnectionEnd, ConnectionError> {
        let mut now = Instant::now();
        let mut deadline = Deadline::new();
        let mut batch = ReceiveBatch::default();
        let mut stopping = false;
        // Made once, not once per wait: registering with a cancellation
        // token takes the lock of its tree, which every connection shares.
        let stopped = stop.cancelled();
        tokio::pin!(stopped);
        let overflowed = self.out.overflow_token().cancelled_owned();
        tokio::pin!(overflowed);
        loop {
            // Everything already received, in order, before waiting again:
            // a batch of frames through the session under one lock, then
            // their events to the handler.
            loop {
                let mut events = std::mem::take(&mut self.events);
                let received = self
                    .out
                    .update(|s, out| batch.receive(s, reader, now, out, &mut events));
                if let Ok(n) = received {
                    self.metrics.received_messages[1].increment(n as u64);
                }
                for event in events.drain(..) {
                    if let Some(end) = self.on_event(event, now).await? {
                        if end == ConnectionEnd::ClientClosed {
                            self.ack_close(reader, &mut batch, now)?;
                        }
                        return Ok(end);
                    }
                }
                self.events = events;
                if self.handler.is_some() {
                    // Open: frames up to the announced limit from now on.
                    reader.codec_mut().set_max_recv(self.max_frame_size);
                }
                match received {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => {
                        self.flush_handler().await;
                        return Err(match e {
                            BatchError::Session(e) => ConnectionError::V2Session(e),
                            BatchError::Codec(V2CodecError::Frame(f)) => {
                                self.out.update(|s, out| s.receive_invalid(&f, out));
                                ConnectionError::V2Frame(f)
                            }
                            BatchError::Codec(other) => other.into(),
                        });
                    }
                }
            }
            self.flush_handler().await;
            if reader.buffered().is_empty() {
                // Caught up: an idle connection keeps no event storage.
                self.events = Vec::new();
            }

            // What is left is part of a frame: it has a deadline of its own.
            let (left, claimed) = (
                reader.buffered().len(),
                claimed_frame_len(reader.buffered()),
            );
            deadline.arm(self.out.update(|s, _| {
                s.pending(now, left, claimed);
                s.poll_timeout()
            }));
            tokio::select! {
                biased;
                _ = &mut overflowed => {
                    return Err(ConnectionError::SlowConsumer {
                        queued: self.out.queued(),
                    });
                }
                _ = &mut stopped, if !stopping => {
                    stopping = true;
                    let closed = self.out.update(|s, out| {
                        let _ = s.go_away("server shutting down", Instant::now(), out);
                        s.state() == SessionState::Closed
                    });
                    if closed {
                        // Still in the handshake: refused instead.
                        return Ok(ConnectionEnd::ServerShutdown);
                    }
                }
                _ = deadline.fired() => {
                    match self.out.update(|s, out| s.handle_timeout(Instant::now(), out)) {
                        None => {}
                        Some(Expired::Handshake(_)) => return Err(ConnectionError::HandshakeTimeout),
                        Some(Expired::Heartbeat(silent)) => {
                            return Err(ConnectionError::HeartbeatTimeout(silent));
                        }
                        Some(Expired::Stalled(stalled)) => {
                            return Err(ConnectionError::Stalled(stalled));
                        }
                        Some(Expired::Drained) => return Ok(ConnectionEnd::ServerShutdown),
                    }
                }
                read = reader.fill_within(budget, claimed) => {
                    let read = read?;
                    self.metrics.received_bytes[1].increment(read as u64);
                    if read == 0 {
                        return match reader.finish() {
                            Ok(_) => Ok(ConnectionEnd::PeerClosed),
                            Err(e) => Err(e.into()),
                        };
                    }
                    // One clock reading per read, not per frame.
                    now = Instant::now();
                }
            }
        }
    }

    /// Answers the client's CLOSE once everything before it is done: with
    /// the acknowledgement (1000), unless a whole frame came after the CLOSE
    /// in what was already read. That breaks spec 3.9 (nothing after a
    /// CLOSE), and the session, which no longer accepts frames, refuses it
    /// with CLOSE 1002 instead of acknowledging.
    fn ack_close<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut Connection<R, V2Codec>,
        batch: &mut ReceiveBatch,
        now: Instant,
    ) -> Result<(), ConnectionError> {
        let mut after = Vec::new();
        let received = self
            .out
            .update(|s, out| batch.receive(s, reader, now, out, &mut after));
        match received {
            Err(BatchError::Session(e)) => return Err(ConnectionError::V2Session(e)),
            Err(BatchError::Codec(V2CodecError::Frame(f))) => {
                self.out.update(|s, out| s.receive_invalid(&f, out));
                return Err(ConnectionError::V2Frame(f));
            }
            Err(BatchError::Codec(other)) => return Err(other.into()),
            Ok(_) => {}
        }
        let _ = self.out.update(|s, out| s.ack_close(out));
        Ok(())
    }

    /// Logs a code and reason the peer sent (ERROR, CLOSE): its text
    /// escaped and capped, within this connection's allowance of lines.
    fn log_peer_said(&mut self, what: &str, said: &CodeReason, warning: bool) {
        let Some(suppressed) = self.log_gate.admit() else {
            return;
        };
        let suppressed = suppressed_field(suppressed);
        let (code, reason) = (said.code, PeerText(&said.reason));
        if warning {
            warn!(suppressed, "{what}: {code} {reason}");
        } else {
            info_unless_quiet!(self.quiet, suppressed, "{what}: {code} {reason}");
        }
    }

    async fn flush_handler(&mut self) {
        if let Some(handler) = &mut self.handler {
            handler.flush().await;
        }
    }

    /// Acts on one event of a received frame; `Some` when it ended the
    /// session.
    /// `now` is when the frame's bytes were read (a request's arrival).
    async fn on_event(
        &mut self,
        event: SessionEvent,
        now: Instant,
    ) -> Result<Option<ConnectionEnd>, ConnectionError> {
        if let SessionEvent::Opened {
            peer_name,
            auth_token,
            app,
            ..
        } = event
        {
            // A session now: no newcomer can displace it.
            self.slot.promote();
            self.handler = Some(self.service.connect(&PeerInfo {
                addr: self.peer,
                version: 2,
                name: peer_name.clone(),
                pusher: Pusher::new(Some(self.out.clone())),
                tls_client_certificate: self.certificate.clone(),
                auth_token,
                app_protocol: app,
            }));
            // Logged once the handler exists, so "open" means "served" (a
            // chat member is in the room by then).
            tracing::Span::current().record("client_name", tracing::field::display(&peer_name));
            // The span shows the name (client_name), as it does the peer.
            info_unless_quiet!(self.quiet, "v2 session open");
            return Ok(None);
        }
        let Some(handler) = &mut self.handler else {
            // Before the handshake only a CLOSE gets here: the client gave
            // up before starting.
            return Ok(Some(ConnectionEnd::PeerClosed));
        };
        match event {
            SessionEvent::Text(m) => handler.on_text(m).await,
            SessionEvent::Binary(b) => handler.on_binary(b).await,
            SessionEvent::Request(r) => {
                let responder = Responder::new(r.id, self.out.clone(), self.in_flight.start(), now);
                handler.on_request(r.payload, responder).await;
            }
            SessionEvent::Error(e) => self.log_peer_said("client reported", &e, true),
            SessionEvent::CloseRequested(reason) => {
                // Everything before the CLOSE has been handed over; make the
                // handler finish it and let pending requests be answered,
                // and only then acknowledge. That is the promise of the close
                // handshake: nothing sent before it is lost.
                handler.flush().await;
                if timeout(self.drain, self.in_flight.wait_idle())
                    .await
                    .is_err()
                {
                    warn!("requests still unanswered at close; acknowledging anyway");
                }
                // The acknowledgement itself is sent by the caller, which
                // first checks that nothing followed the CLOSE.
                self.log_peer_said("client closed", &reason, false);
                return Ok(Some(ConnectionEnd::ClientClosed));
            }
            SessionEvent::Closed(_) => return Ok(Some(ConnectionEnd::PeerClosed)),
            // The session gives a server no other events.
            _ => {}
        }
        Ok(None)
    }
}
