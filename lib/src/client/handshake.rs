//! Opening a v2 session: the session writes our HELLO, and the server's
//! answer is a WELCOME, a refusal, or the frozen unsupported-version reply,
//! all within the session's handshake deadline.

use bytes::BytesMut;
use std::time::{Duration, Instant};

use super::config::ClientConfig;
use super::error::{Cause, ClientError};
use crate::protocol::parse_unsupported_version_reply;
use crate::protocol::v2::{
    AppChoice, Frame, ResumeStatus, ResumeTicket, Session, SessionEvent, V2Codec, V2CodecError,
};
use crate::transport::{Connection, Stream};

/// What the handshake learned about the server.
pub(super) struct Welcomed {
    pub(super) session: Session,
    pub(super) server_name: String,
    pub(super) server_max_frame_size: u32,
    pub(super) app_protocol: Option<AppChoice>,
    /// What the WELCOME said of resuming (`None`: nothing).
    pub(super) resume: Option<ResumeStatus>,
    /// The server resumed our session, having had this many of our frames
    /// and sent this many in all: `session` only carried the handshake.
    pub(super) resumed: Option<(u64, u64)>,
}

/// Sends HELLO and reads the server's answer, giving up after `limit`.
pub(super) async fn handshake(
    conn: &mut Connection<Stream, V2Codec>,
    config: &ClientConfig,
    limit: Duration,
    ticket: Option<ResumeTicket>,
) -> Result<Welcomed, ClientError> {
    let mut out = BytesMut::new();
    let session_config = config.session_config(limit);
    let mut session = match ticket {
        Some(ticket) => Session::client_resuming(session_config, ticket, Instant::now(), &mut out),
        None => Session::client(session_config, Instant::now(), &mut out),
    };
    conn.queue_raw(&out);
    conn.flush().await?;
    let deadline = session.poll_timeout().expect("a handshake deadline");
    let answer = tokio::select! {
        answer = read_answer(conn) => answer?,
        _ = tokio::time::sleep_until(deadline.into()) => {
            let mut out = BytesMut::new();
            session.handle_timeout(Instant::now(), &mut out);
            send_best_effort(conn, &out).await;
            return Err(ClientError::Timeout(limit));
        }
    };
    let mut out = BytesMut::new();
    let received = match answer {
        Ok(frame) => session.receive(frame, Instant::now(), &mut out),
        Err(f) => Err(session.receive_invalid(&f, &mut out)),
    };
    send_best_effort(conn, &out).await;
    match received {
        Ok(Some(SessionEvent::Opened {
            peer_name,
            peer_max_frame_size,
            app,
            resume,
            ..
        })) => Ok(Welcomed {
            session,
            server_name: peer_name,
            server_max_frame_size: peer_max_frame_size,
            app_protocol: app,
            resume,
            resumed: None,
        }),
        Ok(Some(SessionEvent::Resumed { received, sent })) => Ok(Welcomed {
            server_name: session.peer_name().to_owned(),
            server_max_frame_size: session.peer_max_frame_size(),
            app_protocol: None,
            session,
            resume: Some(ResumeStatus::Resumed),
            resumed: Some((received, sent)),
        }),
        Ok(Some(SessionEvent::Closed(reason))) => Err(ClientError::HandshakeRefused(reason)),
        Ok(other) => Err(ClientError::Protocol {
            code: crate::protocol::v2::CloseCode::PROTOCOL_ERROR,
            reason: format!("unexpected handshake answer {other:?}"),
        }),
        Err(e) => Err(ClientError::Protocol {
            code: e.code,
            reason: e.reason,
        }),
    }
}

/// The server's first frame, or the frozen reply of a server that does
/// not speak v2 (an `Err` from the outer result), or bytes that are no v2
/// frame (the inner `Err`).
async fn read_answer(
    conn: &mut Connection<Stream, V2Codec>,
) -> Result<Result<Frame, crate::protocol::v2::FrameError>, ClientError> {
    // A TLS record (an alert or a handshake) where a frame should be.
    if matches!(conn.peek_first_byte().await?, Some(0x15 | 0x16)) {
        return Err(ClientError::Tls(
            "the server speaks TLS: connect with TLS (--tls)".into(),
        ));
    }
    if conn.peek_first_byte().await? == Some(0) {
        // Not a v2 frame: the reply every version can read.
        loop {
            if let Some((versions, reason)) = parse_unsupported_version_reply(conn.buffered()) {
                return Err(ClientError::UnsupportedVersion { versions, reason });
            }
            if conn.fill().await? == 0 {
                return Err(ClientError::closed(
                    Cause::ProtocolViolation,
                    "garbled version reply",
                ));
            }
        }
    }
    match conn.read_frame().await {
        Ok(Some(frame)) => Ok(Ok(frame)),
        Ok(None) => Err(ClientError::closed(
            Cause::Server,
            "server closed during the handshake",
        )),
        Err(V2CodecError::Frame(f)) => Ok(Err(f)),
        Err(V2CodecError::Io(e)) => Err(e.into()),
        Err(other) => Err(ClientError::Io(std::io::Error::other(other))),
    }
}

/// Tells the server why we are leaving, if it still listens.
async fn send_best_effort(conn: &mut Connection<Stream, V2Codec>, bytes: &[u8]) {
    if !bytes.is_empty() {
        conn.queue_raw(bytes);
        let _ = conn.flush().await;
    }
}
