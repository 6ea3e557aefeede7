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
use super::kept_sessions::{Identity, KeptSessions};
use super::log_gate::{LogGate, PeerText, info_unless_quiet, suppressed_field};
use super::metrics::ServerMetrics;
use super::pusher::{InFlight, Responder};
use super::pusher::{Outbound, Pusher};
use super::service::{Handler, PeerInfo, Service};
#[cfg(feature = "nats")]
use super::session_mirror::Mirror;
use super::shared::PeerFacts;
use super::shared::Shared;
use super::signals::SignalEpoch;
use crate::protocol::v2::{
    AUTHENTICATION_FAILED, CodeReason, Expired, ResumeOffer, ResumeRefusal, ResumeTicket, Session,
    SessionEvent, SessionId, SessionState, V2Codec,
};
use crate::transport::{Connection, Driver, DriverCounters, Endpoint, Exit, Work, WriteQueue};
use rustls_pki_types::CertificateDer;

type Outcome = Result<ConnectionEnd, ConnectionError>;

/// How long a server resuming a session from the store waits for the
/// server that served it to record that it lost the connection (with all
/// its handler was given): a live server does within a round trip or two;
/// a dead one never does, and its session is taken as last recorded.
#[cfg(feature = "nats")]
const DETACH_WAIT: Duration = Duration::from_millis(250);

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
            kept: shared.kept.as_ref(),
            resumable: None,
            taken_over: false,
            handover: None,
            shared,
            #[cfg(feature = "nats")]
            mirror: None,
            in_doubt: 0,
        },
    });
    let Connected { driver, end } = &mut *state;
    let exit = loop {
        match driver.run(end).await {
            // A kept session resumed here: its queue (with the WELCOME and
            // the replay) is this connection's from now on.
            Exit::Ended(Ok(ConnectionEnd::Resumed)) => {
                let kept = end.handover.take().expect("a resume hands over");
                driver.swap_queue(kept.queue.clone());
                end.adopt(*kept);
            }
            exit => break exit,
        }
    };
    // Lost, not ended: a resumable session waits for its client.
    let lost = matches!(
        exit,
        Exit::PeerClosed
            | Exit::ReadFailed(_)
            | Exit::WriteFailed(_)
            | Exit::Codec(_)
            | Exit::Expired(Expired::Heartbeat(_))
            | Exit::Ended(Ok(ConnectionEnd::TakenOver))
    );
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
    if flush_on_error && result.is_err() || lost {
        // What the handler got before the failure is not lost.
        Box::pin(end.flush_handler()).await;
    }
    if let Some((id, _)) = end.resumable.take() {
        let kept = shared.kept.as_ref().expect("resumable sessions are kept");

        if lost
            && !end.stopping
            && !end.store_failed()
            && end.park()
            && Box::pin(end.wait_parked(id, kept, shared)).await.is_some()
        {
            // Handed over: the handler, calls and session live on in the
            // connection that resumed them.
            end.log_gate.report_suppressed(peer.addr);
            return result;
        }
        kept.forget(id);
    }
    end.end_mirror();
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

/// What a parked connection hands to the one that resumes its session:
/// everything the session's work needs, the handler first.
struct KeptState<H> {
    queue: Arc<WriteQueue<Session>>,
    handler: Option<H>,
    out: Outbound,
    in_flight: Arc<InFlight>,
    calls: Arc<CallTable>,
    call_limits: Option<crate::protocol::v2::CallLimits>,
    #[cfg(feature = "nats")]
    mirror: Option<Box<Mirror>>,
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
    /// The server's kept sessions, when it grants resumable ones.
    kept: Option<&'a KeptSessions>,
    /// The resumable session served here, and what fires when another
    /// connection resumes it.
    resumable: Option<(
        SessionId,
        Pin<Box<tokio_util::sync::WaitForCancellationFutureOwned>>,
    )>,
    /// That fired.
    taken_over: bool,
    /// A kept session this connection resumed, until the driver takes it.
    handover: Option<Box<KeptState<Svc::Handler>>>,
    /// The server's shared state (its session store, its signals).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    shared: &'a Shared,
    /// The task that keeps this session's record in the deployment's
    /// store, when there is one. Boxed: the store's handle is over a
    /// kilobyte, which every connection would carry while idle.
    #[cfg(feature = "nats")]
    mirror: Option<Box<Mirror>>,
    /// Frames the client resends that a server that died may have handled
    /// (for the handler's `PeerInfo`).
    in_doubt: u64,
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
            // A session another server may resume: what the handler is
            // given must be counted in the store first (`session_mirror.rs`).
            #[cfg(feature = "nats")]
            if let Some(mirror) = &self.mirror
                && !events.is_empty()
                && let Err(failure) = mirror.sync().await
            {
                return Some(Err(ConnectionError::SessionStore(failure.to_string())));
            }
            for event in events.drain(..) {
                match self.on_event(event, now).await {
                    Ok(None) => {}
                    Ok(Some(end)) => return Some(Ok(end)),
                    Err(e) => return Some(Err(e)),
                }
            }
            self.unflushed = self.handler.is_some();
            #[cfg(feature = "nats")]
            if let Some(mirror) = &self.mirror {
                self.out.update(|s, _| s.all_handled());
                mirror.nudge();
            }
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
        if !self.signals.moved(&mut self.signals_seen) {
            return Poll::Pending;
        }
        if let Some((_, takeover)) = &mut self.resumable
            && takeover.as_mut().poll(cx).is_ready()
        {
            self.taken_over = true;
            return Poll::Ready(());
        }
        if self.stopping {
            return Poll::Pending;
        }
        self.stop.as_mut().poll(cx)
    }

    fn on_signal(&mut self, _now: Instant) -> Option<Outcome> {
        if self.taken_over {
            // The client is back on another connection: this one stops
            // and hands its session over.
            return Some(Ok(ConnectionEnd::TakenOver));
        }
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
    /// A HELLO asked for a resumable session, or to resume one (`ticket`):
    /// the kept session is claimed and resumed here (`Resumed` ends this
    /// driver run; the caller swaps the queues), or a new session opens
    /// and is told why the old one was not resumed.
    async fn resume_asked(
        &mut self,
        ticket: Option<ResumeTicket>,
        now: Instant,
    ) -> Option<ConnectionEnd> {
        let kept = self
            .kept
            .expect("the session asks only when sessions are kept");
        #[cfg_attr(not(feature = "nats"), allow(unused_mut))]
        let mut offer = self
            .out
            .update(|s, _| s.take_resume_offer())
            .expect("a HELLO waits");
        let identity = Identity {
            auth_token: offer.auth_token().cloned(),
            certificate: self.certificate.clone(),
        };
        let mut refused = None;
        if let Some(ticket) = &ticket {
            #[cfg_attr(not(feature = "nats"), allow(unused_mut))]
            let mut refusal = match self.resume_kept(kept, ticket, &offer, &identity, now).await {
                Ok(()) => return Some(ConnectionEnd::Resumed),
                Err(refusal) => refusal,
            };
            // Not here: another server of the deployment may have served
            // it, and left it in the store.
            #[cfg(feature = "nats")]
            if refusal == ResumeRefusal::Unknown
                && let Some(store) = &self.shared.config.session_store
            {
                match self
                    .resume_stored(store, ticket, offer, &identity, now)
                    .await
                {
                    Ok(opened) => {
                        return Box::pin(self.on_event(opened, now))
                            .await
                            .unwrap_or_default();
                    }
                    Err((why, returned)) => {
                        refusal = why;
                        offer = returned;
                    }
                }
            }
            ServerMetrics::resume_refused(refusal);
            info_unless_quiet!(self.quiet, session = %ticket.id, "resume refused: {refusal}");
            refused = Some(refusal);
        }
        let grant = kept.open(identity.clone());
        let opened = self.out.update(|s, out| {
            let grant = grant.as_ref().map(|(id, token, _)| (*id, token.clone()));
            s.open_resumable(offer, grant, refused, now, out)
        });
        if let Some((id, token, stop)) = grant {
            #[cfg(feature = "nats")]
            if let Some(store) = &self.shared.config.session_store {
                self.mirror = Some(Box::new(Mirror::start(
                    store,
                    self.out.queue(),
                    id,
                    token,
                    identity,
                    None,
                    stop.clone(),
                    self.shared.signals.clone(),
                )));
            }
            #[cfg(not(feature = "nats"))]
            let _ = (token, identity);
            self.resumable = Some((id, Box::pin(stop.cancelled_owned())));
        }
        // Opening never fails (it makes the handler).
        Box::pin(self.on_event(opened, now))
            .await
            .unwrap_or_default()
    }

    /// Resumes the session of `ticket` from the deployment's store (the
    /// server that served it died, or another connection's server holds
    /// it no longer): the record is claimed for this server, the session
    /// goes on here with a new handler (the returned `Opened` makes it),
    /// and the requests and calls the old handler had not answered end
    /// with an error.
    #[cfg(feature = "nats")]
    async fn resume_stored(
        &mut self,
        store: &super::SessionStore,
        ticket: &ResumeTicket,
        offer: ResumeOffer,
        identity: &Identity,
        now: Instant,
    ) -> Result<SessionEvent, (ResumeRefusal, ResumeOffer)> {
        use super::session_store::{StoreFailure, record};
        let id = ticket.id;
        let stored = match store.load_detached(id, DETACH_WAIT).await {
            Ok(Some(stored)) => stored,
            Ok(None) => return Err((ResumeRefusal::Unknown, offer)),
            Err(failure) => {
                warn!(session = %id, "cannot resume from the session store: {failure}");
                return Err((ResumeRefusal::Unavailable, offer));
            }
        };
        if !stored.admits(&ticket.token, identity) {
            return Err((ResumeRefusal::WrongToken, offer));
        }
        let kept = self.kept.expect("stored sessions are kept");
        let Some(stop) = kept.adopt(id, ticket.token.clone(), identity.clone()) else {
            return Err((ResumeRefusal::Unavailable, offer));
        };
        // Ours from here: the server that wrote it, if it lives, learns it
        // on its next write.
        let claimed = record(&ticket.token, identity, &stored.image);
        let revision = match store.save(id, claimed, stored.revision).await {
            Ok(revision) => revision,
            Err(failure) => {
                kept.forget(id);
                if failure != StoreFailure::Lost {
                    warn!(session = %id, "cannot resume from the session store: {failure}");
                }
                return Err((ResumeRefusal::Unavailable, offer));
            }
        };
        let resumed = self
            .out
            .update(|s, out| s.resume_image(offer, stored.image, ticket.token.clone(), now, out));
        match resumed {
            Ok((replayed, answered, in_doubt, opened)) => {
                self.in_doubt = in_doubt;
                self.mirror = Some(Box::new(Mirror::start(
                    store,
                    self.out.queue(),
                    id,
                    ticket.token.clone(),
                    identity.clone(),
                    Some(revision),
                    stop.clone(),
                    self.shared.signals.clone(),
                )));
                self.resumable = Some((id, Box::pin(stop.cancelled_owned())));
                ServerMetrics::moved();
                info_unless_quiet!(
                    self.quiet,
                    session = %id,
                    replayed,
                    ended_with_error = answered,
                    in_doubt,
                    "v2 session resumed from the session store"
                );
                Ok(opened)
            }
            Err((refusal, offer)) => {
                kept.forget(id);
                store.delete(id, revision).await;
                Err((refusal, offer))
            }
        }
    }

    /// Claims the kept session of `ticket` and resumes it with `offer`: its
    /// WELCOME and replay are queued, and the caller swaps queues (see
    /// `serve_v2`). A session claimed but not resumable here ends.
    async fn resume_kept(
        &mut self,
        kept: &KeptSessions,
        ticket: &ResumeTicket,
        offer: &ResumeOffer,
        identity: &Identity,
        now: Instant,
    ) -> Result<(), ResumeRefusal> {
        let (handed, stop) = kept.claim(ticket, identity, self.signals).await?;
        let state = handed
            .downcast::<KeptState<Svc::Handler>>()
            .map_err(|_| ResumeRefusal::Unknown)?;
        // Kept here, but perhaps resumed by another server since (the
        // client went there and came back): then that one's record is the
        // session, and this copy is stale.
        #[cfg(feature = "nats")]
        if let Some(mirror) = &state.mirror
            && !mirror.still_ours().await
        {
            kept.forget(ticket.id);
            mirror.finish();
            end_kept(*state, self.drain).await;
            return Err(ResumeRefusal::Unknown);
        }
        match state
            .queue
            .reattach(|s, out| s.resume_with(offer, now, out))
        {
            Ok(replayed) => {
                ServerMetrics::resumed();
                self.slot.promote();
                self.resumable = Some((ticket.id, Box::pin(stop.cancelled_owned())));
                self.handover = Some(state);
                info_unless_quiet!(self.quiet, session = %ticket.id, replayed, "v2 session resumed");
                Ok(())
            }
            Err(refusal) => {
                kept.forget(ticket.id);
                end_kept(*state, self.drain).await;
                Err(refusal)
            }
        }
    }

    /// Takes over the state of a session resumed here.
    fn adopt(&mut self, kept: KeptState<Svc::Handler>) {
        self.handler = kept.handler;
        self.out = kept.out;
        self.in_flight = kept.in_flight;
        self.calls = kept.calls;
        self.call_limits = kept.call_limits;
        self.unflushed = self.handler.is_some();
        #[cfg(feature = "nats")]
        {
            self.mirror = kept.mirror;
        }
    }

    /// Whether the session's store failed it (or another server took it):
    /// then it is not kept here.
    fn store_failed(&self) -> bool {
        #[cfg(feature = "nats")]
        if let Some(mirror) = &self.mirror {
            return mirror.failure().is_some();
        }
        false
    }

    /// Resolves when the session's mirror fails; never without one.
    fn mirror_failed(&self) -> impl Future<Output = ()> + Send + 'static {
        #[cfg(feature = "nats")]
        let failed = self.mirror.as_ref().map(|m| m.failed());
        #[cfg(not(feature = "nats"))]
        let failed: Option<std::future::Pending<()>> = None;
        async move {
            match failed {
                Some(failed) => failed.await,
                None => std::future::pending().await,
            }
        }
    }

    /// The session is over here: its record goes (unless another server
    /// owns it now), and what is queued is sent without waiting for it.
    fn end_mirror(&mut self) {
        #[cfg(feature = "nats")]
        if let Some(mirror) = self.mirror.take() {
            mirror.finish();
            self.out.queue().ungate();
        }
    }

    /// The connection was lost: the session keeps what is sent to it for
    /// a resume. `false` when it cannot be resumed (overflowed, closed).
    fn park(&mut self) -> bool {
        self.out.queue().detach();
        self.out.update(|s, _| s.detach())
    }

    /// Waits, parked, until a new connection claims the session (it is
    /// handed over: `Some`), or it expires or the server stops (`None`:
    /// the caller ends it as any other).
    async fn wait_parked(
        &mut self,
        id: SessionId,
        kept: &KeptSessions,
        shared: &Shared,
    ) -> Option<()> {
        let expiry = self.out.update(|s, _| s.resume_expiry())?;
        // What the session may hold while it waits (its replay bound) is
        // taken from the server's memory budget; a server short of memory
        // keeps no session (a resume is then refused as unknown).
        let bound = shared
            .config
            .resume
            .as_ref()
            .map_or(0, |r| r.replay_max_bytes);
        // Recorded as detached, with everything the handler was given as
        // handled, before the session waits: a client that comes back on
        // another server then resends nothing this one handled (that
        // server waits a moment for this record).
        #[cfg(feature = "nats")]
        if let Some(mirror) = &self.mirror
            && Box::pin(mirror.sync()).await.is_err()
        {
            return None;
        }
        let Some(_held) = shared.budget.try_reserve(bound) else {
            info_unless_quiet!(self.quiet, session = %id, "v2 session not kept: the memory budget is spent");
            return None;
        };
        let parked = kept.park(id, Instant::now() + expiry)?;
        let moved = self.mirror_failed();
        info_unless_quiet!(self.quiet, session = %id, "v2 session kept for {expiry:?}");
        tokio::select! {
            claimed = parked.claimed => {
                let give = claimed.ok()?;
                let state = KeptState {
                    queue: self.out.queue().clone(),
                    handler: self.handler.take(),
                    out: self.out.clone(),
                    in_flight: self.in_flight.clone(),
                    calls: self.calls.clone(),
                    call_limits: self.call_limits,
                    #[cfg(feature = "nats")]
                    mirror: self.mirror.take(),
                };
                match give.send(Box::new(state)) {
                    Ok(()) => Some(()),
                    // The claimant gave up: the session ends here.
                    Err(state) => {
                        if let Ok(state) = state.downcast::<KeptState<Svc::Handler>>() {
                            self.handler = state.handler;
                            #[cfg(feature = "nats")]
                            {
                                self.mirror = state.mirror;
                            }
                        }
                        None
                    }
                }
            }
            _ = tokio::time::sleep_until(parked.expires.into()) => {
                info_unless_quiet!(self.quiet, session = %id, "kept v2 session expired");
                None
            }
            _ = shared.stop.cancelled() => None,
            // Resumed by another server of the deployment meanwhile.
            _ = moved => {
                info_unless_quiet!(self.quiet, session = %id, "kept v2 session now served elsewhere");
                None
            }
        }
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
        if let SessionEvent::ResumeAsked(ask) = event {
            // Boxed: the resume's future (store reads and writes) is large,
            // and unboxed it would be part of every event's future, copied
            // whole with each batch the driver delivers.
            return Ok(Box::pin(self.resume_asked(ask.ticket, now)).await);
        }
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
                resumed_in_doubt: self.in_doubt,
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

/// Ends a kept session that was claimed but could not resume: its
/// handler's clean-up, bounded as any connection's, and its calls stopped.
async fn end_kept<H: Handler>(mut state: KeptState<H>, limit: Duration) {
    #[cfg(feature = "nats")]
    if let Some(mirror) = state.mirror.take() {
        mirror.finish();
    }
    if let Some(handler) = state.handler.as_mut() {
        let _ = tokio::time::timeout(limit, handler.on_close()).await;
    }
    state.calls.cancel_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Message;

    /// The smallest service: what it adds to a connection is nothing.
    struct Nothing;
    impl Service for Nothing {
        type Handler = Nothing;
        fn connect(&self, _: &PeerInfo) -> Nothing {
            Nothing
        }
    }
    impl Handler for Nothing {
        async fn on_text(&mut self, _: Message) {}
    }

    /// What every connection keeps while it idles (the driver and the
    /// server's end, one allocation) stays small: rare paths (a session
    /// store's handle, a resume's future) are boxed, not carried inline.
    /// Both regressions this guards against were found by the benchmark
    /// first (the store's handle made it 2,272 bytes: +1.4 KB per idle
    /// connection).
    #[test]
    fn an_idle_connection_carries_no_rare_path_inline() {
        let size = std::mem::size_of::<Connected<'static, tokio::net::TcpStream, Nothing>>();
        println!("a connection's state: {size} bytes");
        assert!(size <= 1024, "a connection's state grew to {size} bytes");
    }
}
