//! The client's read side: turns what the server sends into responses for
//! waiting requests, pushed messages, and the end of the connection.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::ReadHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::Pushed;
use super::shared::{Core, End};
use crate::protocol::parse_unsupported_version_reply;
use crate::protocol::v1::V1Codec;
use crate::protocol::v2::{
    CloseCode, Frame, Heartbeat, HeartbeatAction, SessionEvent, SessionState, V2Codec,
};
use crate::transport::Connection;

/// v1 servers send nothing; we only wait for the end of the stream (or the
/// frozen reply of a server that does not speak v1).
pub(crate) async fn read_v1(mut reader: Connection<ReadHalf<TcpStream>, V1Codec>, core: Arc<Core>) {
    let end = loop {
        match reader.fill().await {
            Ok(0) => {
                break match parse_unsupported_version_reply(reader.buffered()) {
                    Some((versions, reason)) => End::Lost(format!(
                        "server does not speak v1: {reason} (it speaks {versions:?})"
                    )),
                    None => End::Completed,
                };
            }
            Ok(_) => continue,
            Err(e) => break End::Lost(format!("read failed: {e}")),
        }
    };
    core.finish(end);
}

pub(crate) async fn read_v2(
    mut reader: Connection<ReadHalf<TcpStream>, V2Codec>,
    core: Arc<Core>,
    incoming: mpsc::Sender<Pushed>,
) {
    // With heartbeats on, silence is a question: after one interval we
    // ping, after three we give the server up (spec 3.6).
    let mut heartbeat = core.queue.with_state(|st| {
        let ms = st.as_ref().map_or(0, |s| s.heartbeat_ms());
        (ms > 0).then(|| Heartbeat::new(Duration::from_millis(ms.into()), Instant::now()))
    });
    let mut nonce = 0u64;
    let end = loop {
        let read = match &mut heartbeat {
            None => reader.read_frame().await,
            Some(hb) => match tokio::time::timeout(hb.interval(), reader.read_frame()).await {
                Ok(read) => {
                    hb.heard(Instant::now());
                    read
                }
                Err(_) => match hb.check(Instant::now()) {
                    HeartbeatAction::GiveUp(silent) => {
                        push_close(
                            &core,
                            CloseCode::HEARTBEAT_TIMEOUT,
                            "no answer from the server",
                        );
                        break End::Lost(format!(
                            "heartbeat timeout: nothing heard for {silent:?}"
                        ));
                    }
                    HeartbeatAction::Ping => {
                        nonce += 1;
                        let ping = Frame::Ping(nonce);
                        let _ = core.queue.push_control(|_, buf| {
                            ping.encode(buf);
                            Ok::<(), ()>(())
                        });
                        continue;
                    }
                    HeartbeatAction::Wait => continue,
                },
            },
        };
        let frame = match read {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                let state = core.queue.with_state(|st| st.as_ref().map(|s| s.state()));
                break if state == Some(SessionState::Closed) {
                    End::Completed
                } else {
                    End::Lost("the server closed the connection without a close handshake".into())
                };
            }
            Err(e) => break End::Lost(format!("reading from the server: {e}")),
        };
        let received = core
            .queue
            .with_state(|st| st.as_mut().expect("v2 has a session").receive(frame));
        let received = match received {
            Ok(r) => r,
            Err(e) => {
                push_close(&core, e.code, &e.reason);
                break End::Lost(format!("server broke the protocol: {e}"));
            }
        };
        if let Some(reply) = received.reply {
            let _ = core.queue.push_control(|_, buf| {
                reply.encode(buf);
                Ok::<(), ()>(())
            });
        }
        match received.event {
            Some(SessionEvent::Response(r)) => {
                if !core.resolve(r.id, r.result) {
                    tracing::warn!(id = r.id, "response to no pending request; ignored");
                }
            }
            Some(SessionEvent::Text(m)) => core.deliver(&incoming, Pushed::Text(m)).await,
            Some(SessionEvent::Binary(b)) => core.deliver(&incoming, Pushed::Binary(b)).await,
            Some(SessionEvent::Error(e)) => core.deliver(&incoming, Pushed::Error(e)).await,
            Some(SessionEvent::GoAway(g)) => core.deliver(&incoming, Pushed::GoAway(g)).await,
            Some(SessionEvent::CloseRequested(reason)) => {
                let _ = core.queue.push_control(|st, buf| {
                    let session = st.as_mut().expect("v2 has a session");
                    session.ack_close().encode(buf);
                    Ok::<(), ()>(())
                });
                break End::ByServer(reason);
            }
            Some(SessionEvent::Closed(_)) => break End::Completed,
            Some(SessionEvent::Opened { .. } | SessionEvent::Request(_)) | None => {}
        }
    };
    core.finish(end);
}

/// Tells the server why we are leaving, best effort.
fn push_close(core: &Core, code: CloseCode, reason: &str) {
    let _ = core.queue.push_control(|st, buf| {
        let session = st.as_mut().expect("v2 has a session");
        session.close(code, reason).encode(buf);
        Ok::<(), ()>(())
    });
}
