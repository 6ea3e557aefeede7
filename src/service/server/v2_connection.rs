//! Serving one v2 connection: handshake, then messages and requests in,
//! responses and pushes out, heartbeats, go-away and the close handshake.
//!
//! Reading and writing run side by side in one task: the read loop feeds
//! frames through the sans-IO [`Session`] to the user's handler, while the
//! write side is a [`WriteQueue`] that the loop, the handler's responders
//! and other connections' broadcasts all push into.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, MissedTickBehavior, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::ServerConfig;
use super::connection_outcome::{ConnectionEnd, ConnectionError};
use super::outbound::{InFlight, Outbound, Pusher, Responder};
use crate::protocol::v2::{
    CloseCode, Frame, Heartbeat, HeartbeatAction, Session, SessionError, SessionEvent, V2Codec,
    V2CodecError,
};
use crate::service::handler::{Handler, PeerInfo, Service};
use crate::transport::{Connection, WriteQueue};

pub(crate) async fn serve_v2<S, Svc>(
    mut conn: Connection<S, V2Codec>,
    service: &Svc,
    peer: SocketAddr,
    config: &ServerConfig,
    stop: &CancellationToken,
) -> Result<ConnectionEnd, ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    Svc: Service,
{
    let heartbeat_ms = u32::try_from(config.heartbeat.as_millis()).unwrap_or(u32::MAX);
    let mut session = Session::server(config.max_frame_size, heartbeat_ms, &config.server_name);

    // The handshake: exactly one HELLO, within the handshake timeout.
    let first = match timeout(config.handshake_timeout, conn.read_frame()).await {
        Err(_) => {
            let reason = format!("no HELLO within {:?}", config.handshake_timeout);
            refuse(&mut conn, &mut session, CloseCode::PROTOCOL_ERROR, &reason).await;
            return Err(ConnectionError::HandshakeTimeout);
        }
        Ok(Ok(None)) => return Ok(ConnectionEnd::PeerClosed),
        Ok(Ok(Some(frame))) => frame,
        Ok(Err(e)) => return Err(fail_codec(&mut conn, &mut session, e).await),
    };
    let (peer_name, peer_max, welcome) = match session.receive(first) {
        Ok(r) => match (r.event, r.reply) {
            (
                Some(SessionEvent::Opened {
                    peer_name,
                    peer_max_frame_size,
                    ..
                }),
                Some(welcome),
            ) => (peer_name, peer_max_frame_size, welcome),
            // A CLOSE instead of HELLO: the client gave up before starting.
            _ => return Ok(ConnectionEnd::PeerClosed),
        },
        Err(e) => {
            refuse(&mut conn, &mut session, e.code, &e.reason).await;
            return Err(ConnectionError::V2Session(e));
        }
    };
    conn.queue(welcome)?;
    conn.flush().await?;
    conn.codec_mut().set_max_send(peer_max);
    info!(%peer, name = %peer_name, "v2 session open");

    let (mut reader, write_half) = conn.split();
    let queue = Arc::new(WriteQueue::new((), config.max_queued_bytes));
    let out = Outbound::new(queue.clone(), peer_max);
    let mut handler = service.connect(&PeerInfo {
        addr: peer,
        version: 2,
        name: peer_name,
        pusher: Pusher::new(Some(out.clone())),
    });

    let writer = queue.run_writer(write_half);
    tokio::pin!(writer);
    let mut open = OpenSession {
        session,
        out,
        in_flight: Arc::new(InFlight::default()),
        peer,
        drain: config.shutdown_grace / 2,
    };
    let (result, writer_done) = tokio::select! {
        result = open.read_loop(&mut reader, &mut handler, stop) => (result, false),
        written = &mut writer => (Err(match written {
            Err(e) => ConnectionError::Io(e),
            Ok(()) => ConnectionError::Io(std::io::ErrorKind::BrokenPipe.into()),
        }), true),
    };
    // Handlers may hold pushers; let them go before the final flush.
    drop(handler);
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

/// Sends a CLOSE during the handshake, best effort, before dropping.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S, V2Codec>,
    session: &mut Session,
    code: CloseCode,
    reason: &str,
) {
    let close = session.close(code, reason);
    if conn.queue(close).is_ok() {
        let _ = conn.flush().await;
    }
}

/// Answers a frame the peer got wrong with a CLOSE saying so (during the
/// handshake); other failures have nobody to tell.
async fn fail_codec<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Connection<S, V2Codec>,
    session: &mut Session,
    e: V2CodecError,
) -> ConnectionError {
    if let V2CodecError::Frame(f) = &e {
        refuse(conn, session, f.close_code(), &f.to_string()).await;
    }
    e.into()
}

struct OpenSession {
    session: Session,
    out: Outbound,
    in_flight: Arc<InFlight>,
    peer: SocketAddr,
    drain: Duration,
}

impl OpenSession {
    async fn read_loop<R, H>(
        &mut self,
        reader: &mut Connection<R, V2Codec>,
        handler: &mut H,
        stop: &CancellationToken,
    ) -> Result<ConnectionEnd, ConnectionError>
    where
        R: AsyncRead + Unpin,
        H: Handler,
    {
        let mut heartbeat = match self.session.heartbeat_ms() {
            0 => None,
            ms => Some(Heartbeat::new(
                Duration::from_millis(ms.into()),
                std::time::Instant::now(),
            )),
        };
        let period = heartbeat
            .as_ref()
            .map_or(Duration::from_secs(3600), Heartbeat::interval);
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker.tick().await;
        let mut ping_nonce = 0u64;
        let mut drain_deadline: Option<Instant> = None;

        loop {
            loop {
                let frame = match reader.next_buffered() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => break,
                    Err(e) => {
                        handler.flush().await;
                        return Err(self.codec_failure(e));
                    }
                };
                if let Some(end) = self.on_frame(frame, handler).await? {
                    return Ok(end);
                }
            }
            handler.flush().await;

            tokio::select! {
                biased;
                _ = self.out.overflow.cancelled() => {
                    return Err(ConnectionError::SlowConsumer {
                        queued: self.out.queue.queued(),
                    });
                }
                _ = stop.cancelled(), if drain_deadline.is_none() => {
                    if let Some(go_away) = self.session.go_away("server shutting down") {
                        self.out.push_control(&go_away);
                    }
                    drain_deadline = Some(Instant::now() + self.drain);
                }
                _ = sleep_until(drain_deadline.unwrap_or_else(Instant::now)), if drain_deadline.is_some() => {
                    let close = self.session.close(CloseCode::GOING_AWAY, "server shut down");
                    self.out.push_control(&close);
                    return Ok(ConnectionEnd::ServerShutdown);
                }
                _ = ticker.tick(), if heartbeat.is_some() => {
                    let now = std::time::Instant::now();
                    match heartbeat.as_ref().map(|h| h.check(now)) {
                        Some(HeartbeatAction::GiveUp(silent)) => {
                            let close = self.session.close(
                                CloseCode::HEARTBEAT_TIMEOUT,
                                format!("nothing heard for {silent:?}"),
                            );
                            self.out.push_control(&close);
                            return Err(ConnectionError::HeartbeatTimeout(silent));
                        }
                        Some(HeartbeatAction::Ping) => {
                            ping_nonce += 1;
                            self.out.push_control(&Frame::Ping(ping_nonce));
                        }
                        Some(HeartbeatAction::Wait) | None => {}
                    }
                }
                read = reader.fill() => {
                    if read? == 0 {
                        return match reader.finish() {
                            Ok(_) => Ok(ConnectionEnd::PeerClosed),
                            Err(e) => Err(self.codec_failure(e)),
                        };
                    }
                    if let Some(h) = &mut heartbeat {
                        h.heard(std::time::Instant::now());
                    }
                }
            }
        }
    }

    /// Applies one frame; `Some` when it ended the session.
    async fn on_frame<H: Handler>(
        &mut self,
        frame: Frame,
        handler: &mut H,
    ) -> Result<Option<ConnectionEnd>, ConnectionError> {
        let received = match self.session.receive(frame) {
            Ok(r) => r,
            Err(e) => {
                handler.flush().await;
                return Err(self.session_failure(e));
            }
        };
        if let Some(reply) = received.reply {
            self.out.push_control(&reply);
        }
        match received.event {
            Some(SessionEvent::Text(m)) => handler.on_text(m).await,
            Some(SessionEvent::Binary(b)) => handler.on_binary(b).await,
            Some(SessionEvent::Request(r)) => {
                let responder = Responder::new(r.id, self.out.clone(), self.in_flight.start());
                handler.on_request(r.payload, responder).await;
            }
            Some(SessionEvent::Error(e)) => warn!(peer = %self.peer, "client reported: {e}"),
            Some(SessionEvent::CloseRequested(reason)) => {
                // Everything before the CLOSE has been handed over; make the
                // handler finish it and let pending requests be answered,
                // and only then acknowledge. That is the promise of the close
                // handshake: nothing sent before it is lost.
                handler.flush().await;
                if timeout(self.drain, self.in_flight.wait_idle())
                    .await
                    .is_err()
                {
                    warn!(peer = %self.peer, "requests still unanswered at close; acknowledging anyway");
                }
                let ack = self.session.ack_close();
                self.out.push_control(&ack);
                info!(peer = %self.peer, "client closed: {reason}");
                return Ok(Some(ConnectionEnd::ClientClosed));
            }
            // The session only gives a server the events above.
            Some(_) | None => {}
        }
        Ok(None)
    }

    fn session_failure(&mut self, e: SessionError) -> ConnectionError {
        let close = self.session.close(e.code, e.reason.clone());
        self.out.push_control(&close);
        ConnectionError::V2Session(e)
    }

    fn codec_failure(&mut self, e: V2CodecError) -> ConnectionError {
        if let V2CodecError::Frame(f) = &e {
            let close = self.session.close(f.close_code(), f.to_string());
            self.out.push_control(&close);
        }
        e.into()
    }
}
