//! Serving one v2 connection, from the HELLO to the end: the server's end
//! of the connection driver (`transport/driver.rs`, shared with the
//! client). The driver reads, passes every frame through the sans-IO
//! [`Session`] and sleeps until its next deadline; this end hands what the
//! frames mean to the user's handler, says GOAWAY when the server stops,
//! and words how the connection ended.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout;
use tracing::warn;

use super::admission::Slot;
use super::call::{self, CallTable};
use super::connection_outcome::{ConnectionEnd, ConnectionError};
use super::log_gate::{LogGate, PeerText, info_unless_quiet, suppressed_field};
use super::pusher::{InFlight, Responder};
use super::pusher::{Outbound, Pusher};
use super::service::{Handler, PeerInfo, Service};
use super::shared::PeerFacts;
use super::shared::Shared;
use super::signals::SignalEpoch;
use crate::protocol::v2::{
    AUTHENTICATION_FAILED, CodeReason, Expired, Session, SessionEvent, SessionState, V2Codec,
};
use crate::transport::{Connection, Driver, DriverCounters, Endpoint, Exit, Work, WriteQueue};
use rustls_pki_types::CertificateDer;

type Outcome = Result<ConnectionEnd, ConnectionError>;

/// Serves a v2 connection (its deadlines count from when it was
/// accepted) until it ends, and says how.
pub(crate) async fn serve_v2<S, Svc>(
    conn: Box<Connection<S, V2Codec>>,
    service: &Svc,
    peer: &PeerFacts<'_>,
    shared: &Shared,
) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    Svc: Service,
{
    let (config, auth_backoff) = (&shared.config, &shared.auth_backoff);
    // An address whose tokens keep failing waits before it is judged
    // again (within its handshake deadline, which still runs).
    if config.auth_tokens.is_some()
        && let Some(delay) = auth_backoff.delay_for(peer.addr.ip())
    {
        Box::pin(tokio::time::sleep(delay)).await;
    }
    let session = Session::server_with_handshake_timeout(
        shared.session_config.clone(),
        peer.handshake_timeout,
        peer.accepted,
    );
    let queue = Arc::new(WriteQueue::new(session, config.max_queued_bytes));
    let metrics = &shared.metrics;
    let counters = DriverCounters {
        received_bytes: metrics.received_bytes[1].clone(),
        received_frames: metrics.received_messages[1].clone(),
        sent_bytes: metrics.sent_bytes.clone(),
    };
    // Everything the connection keeps, in one allocation of its exact
    // size: the task itself stays a few words while the connection idles.
    let mut state = Box::new(Connected {
        driver: Driver::new(*conn, queue.clone(), Some(shared.budget.clone()), counters),
        end: ServerEnd {
            service,
            handler: None,
            unflushed: false,
            out: Outbound::new(
                queue,
                peer.addr,
                (
                    metrics.sent_messages.clone(),
                    metrics.too_large_for_peer.clone(),
                ),
                config
                    .time_requests
                    .then(|| metrics.request_duration.clone()),
            ),
            in_flight: Arc::new(InFlight::default()),
            peer: peer.addr,
            slot: peer.slot,
            quiet: peer.health_check,
            certificate: peer.certificate.clone(),
            transport: peer.transport,
            drain: config.shutdown_grace / 2,
            log_gate: LogGate::default(),
            max_frame_size: config.max_frame_size,
            stop: Box::pin(shared.stop.clone().cancelled_owned()),
            stopping: false,
            signals: &shared.signals,
            signals_seen: u64::MAX,
            calls: Arc::default(),
            call_limits: None,
        },
    });
    let Connected { driver, end } = &mut *state;
    let exit = driver.run(end).await;
    let mut flush_on_error = true;
    let result = match exit {
        Exit::Ended(Ok(ConnectionEnd::ClientClosed)) => {
            flush_on_error = false;
            match driver.ack_close::<Outcome>() {
                Ok(()) => Ok(ConnectionEnd::ClientClosed),
                Err(exit) => Err(error_of(exit)),
            }
        }
        Exit::Ended(outcome) => {
            flush_on_error = false;
            outcome
        }
        Exit::PeerClosed => Ok(ConnectionEnd::PeerClosed),
        // The go-away's drain is over.
        Exit::Expired(Expired::Drained) => Ok(ConnectionEnd::ServerShutdown),
        other => Err(error_of(other)),
    };
    if flush_on_error && result.is_err() {
        // What the handler got before the failure is not lost.
        Box::pin(end.flush_handler()).await;
    }
    end.log_gate.report_suppressed(peer.addr);
    if config.auth_tokens.is_some() {
        match &result {
            Err(ConnectionError::V2Session(e)) if e.reason == AUTHENTICATION_FAILED => {
                shared.metrics.auth_failures.increment(1);
                auth_backoff.failed(peer.addr.ip())
            }
            _ if end.handler.is_some() => auth_backoff.succeeded(peer.addr.ip()),
            _ => {}
        }
    }
    // The handler's own clean-up, bounded so a hook that hangs cannot
    // keep a finished connection (or a stopping server) waiting.
    if let Some(handler) = end.handler.as_mut() {
        let _ = tokio::time::timeout(config.shutdown_grace, handler.on_close()).await;
    }
    // Handlers may hold pushers; let them go before the final flush. Calls
    // still running have nobody left to answer: they are stopped.
    end.handler = None;
    end.calls.cancel_all();
    // A failed writer is not tried again, and a stuck one (slow consumer)
    // is not waited for.
    if !matches!(
        result,
        Err(ConnectionError::SlowConsumer { .. } | ConnectionError::Io(_))
    ) {
        // Send what is queued (a close, the last responses), bounded in
        // time; a client that does not read is simply dropped.
        Box::pin(driver.finish(Duration::from_secs(5))).await;
    }
    result
}

/// How the driver's view of an ending reads in the server's terms.
fn error_of(exit: Exit<Outcome>) -> ConnectionError {
    match exit {
        Exit::Violation(e) => ConnectionError::V2Session(e),
        Exit::Malformed(f, _) => ConnectionError::V2Frame(f),
        Exit::Codec(e) => e.into(),
        Exit::Expired(Expired::Handshake(_)) => ConnectionError::HandshakeTimeout,
        Exit::Expired(Expired::Heartbeat(silent)) => ConnectionError::HeartbeatTimeout(silent),
        Exit::Expired(Expired::Stalled(stalled)) => ConnectionError::Stalled(stalled),
        Exit::ReadFailed(e) | Exit::WriteFailed(e) => ConnectionError::Io(e),
        Exit::Overflow { queued } => ConnectionError::SlowConsumer { queued },
        Exit::Ended(Err(e)) => e,
        Exit::Ended(Ok(_)) | Exit::PeerClosed | Exit::Expired(Expired::Drained) => {
            unreachable!("orderly ends are not errors")
        }
    }
}

/// The driver and the server's end of one connection.
struct Connected<'a, S, Svc: Service> {
    driver: Driver<S, Session>,
    end: ServerEnd<'a, Svc>,
}

/// The server's end of one connection: the handler once the handshake is
/// done, and the way out.
struct ServerEnd<'a, Svc: Service> {
    service: &'a Svc,
    /// Promoted to a session's slot when the handshake completes.
    slot: &'a Slot,
    /// A health check: its lines at debug level.
    quiet: bool,
    handler: Option<Svc::Handler>,
    /// The handler was given something since it last flushed.
    unflushed: bool,
    out: Outbound,
    in_flight: Arc<InFlight>,
    peer: SocketAddr,
    /// The client's verified TLS certificate, for `PeerInfo`.
    certificate: Option<CertificateDer<'static>>,
    /// Which listener the connection came by, for `PeerInfo`.
    transport: super::service::Transport,
    /// How long the close handshake waits for unanswered requests.
    drain: Duration,
    /// This connection's allowance of log lines.
    log_gate: LogGate,
    /// What we accept once the handshake is done.
    max_frame_size: u32,
    /// Resolves when the server stops.
    stop: Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    /// GOAWAY has been said.
    stopping: bool,
    /// `stop` is polled only when these moved.
    signals: &'a SignalEpoch,
    signals_seen: u64,
    /// The calls in flight (spec 3.13), and the limits agreed for them.
    calls: Arc<CallTable>,
    call_limits: Option<crate::protocol::v2::CallLimits>,
}

impl<Svc: Service> Endpoint for ServerEnd<'_, Svc> {
    type End = Outcome;

    fn deliver<'a>(
        &'a mut self,
        events: &'a mut Vec<SessionEvent>,
        caught_up: bool,
        now: Instant,
    ) -> Work<'a, Outcome> {
        Box::pin(async move {
            for event in events.drain(..) {
                match self.on_event(event, now).await {
                    Ok(None) => {}
                    Ok(Some(end)) => return Some(Ok(end)),
                    Err(e) => return Some(Err(e)),
                }
            }
            self.unflushed = self.handler.is_some();
            if caught_up {
                self.flush_handler().await;
            }
            None
        })
    }

    fn max_recv(&self) -> Option<u32> {
        self.handler.as_ref().map(|_| self.max_frame_size)
    }

    fn wants_flush(&self) -> bool {
        self.unflushed
    }

    fn poll_signal(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.stopping || !self.signals.moved(&mut self.signals_seen) {
            return Poll::Pending;
        }
        self.stop.as_mut().poll(cx)
    }

    fn on_signal(&mut self, _now: Instant) -> Option<Outcome> {
        self.stopping = true;
        let closed = self.out.update(|s, out| {
            let _ = s.go_away("server shutting down", Instant::now(), out);
            s.state() == SessionState::Closed
        });
        // Still in the handshake: refused instead.
        closed.then_some(Ok(ConnectionEnd::ServerShutdown))
    }
}

impl<Svc: Service> ServerEnd<'_, Svc> {
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
        self.unflushed = false;
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
            calls,
            ..
        } = event
        {
            self.call_limits = calls;
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
                transport: self.transport,
            }));
            // Logged once the handler exists, so "open" means "served" (a
            // chat member is in the room by then).
            tracing::Span::current().record("client_name", tracing::field::display(&peer_name));
            // The span shows the name (client_name), as it does the peer.
            info_unless_quiet!(self.quiet, "v2 session open");
            return Ok(None);
        }
        let Some(handler) = &mut self.handler else {
            // The session lets nothing but a HELLO through before the
            // handshake (a CLOSE there is a protocol error), so this is
            // not reached; ending is the safe answer if it ever were.
            return Ok(Some(ConnectionEnd::PeerClosed));
        };
        match event {
            SessionEvent::Text(m) => handler.on_text(m).await,
            SessionEvent::Binary(b) => handler.on_binary(b).await,
            SessionEvent::Request(r) => {
                let responder = Responder::new(r.id, self.out.clone(), self.in_flight.start(), now);
                handler.on_request(r.payload, responder).await;
            }
            SessionEvent::Call(call) => {
                let limits = self.call_limits.unwrap_or_default();
                let deadline_ms = limits.deadline_ms(call.deadline_ms);
                let ends = (&self.out, &self.calls, self.in_flight.start());
                call::start(call, now, deadline_ms, limits.stream_credit, ends, |c| {
                    handler.on_call(c)
                });
            }
            SessionEvent::Item(item) => self.calls.item(item.id, item.payload),
            SessionEvent::End(id) => self.calls.end(id),
            SessionEvent::Cancel(id) => self.calls.cancel(id),
            SessionEvent::Credit { id, .. } => self.calls.credit(id),
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
