use tokio::net::TcpStream;

use super::{ClientConfig, ClientError, codec_error};
use crate::protocol::parse_unsupported_version_reply;
use crate::protocol::v2::{CodeReason, Session, SessionEvent, V2Codec};
use crate::transport::Connection;

/// Sends HELLO and reads the server's answer: WELCOME, a refusal, or the
/// frozen unsupported-version reply.
pub(super) async fn handshake(
    conn: &mut Connection<TcpStream, V2Codec>,
    config: &ClientConfig,
) -> Result<(Session, SessionEvent), ClientError> {
    let (mut session, hello) = Session::client(config.max_frame_size, config.name.clone());
    conn.queue(hello).map_err(codec_error)?;
    conn.flush().await?;
    if conn.peek_first_byte().await? == Some(0) {
        // Not a v2 frame: the reply every version can read.
        loop {
            if let Some((versions, reason)) = parse_unsupported_version_reply(conn.buffered()) {
                return Err(ClientError::UnsupportedVersion { versions, reason });
            }
            if conn.fill().await? == 0 {
                return Err(ClientError::Protocol("garbled version reply".into()));
            }
        }
    }
    let frame = conn
        .read_frame()
        .await
        .map_err(codec_error)?
        .ok_or_else(|| ClientError::Closed("server closed during the handshake".into()))?;
    match session.receive(frame) {
        Ok(r) => match r.event {
            Some(opened @ SessionEvent::Opened { .. }) => Ok((session, opened)),
            Some(SessionEvent::Closed(reason)) => Err(ClientError::Refused(reason)),
            other => Err(ClientError::Protocol(format!(
                "unexpected handshake answer {other:?}"
            ))),
        },
        Err(e) => {
            let close = session.close(e.code, e.reason.clone());
            if conn.queue(close).is_ok() {
                let _ = conn.flush().await;
            }
            Err(ClientError::Refused(CodeReason::new(e.code, e.reason)))
        }
    }
}
