//! Opening one connection: TCP, TLS if configured, the v2 handshake (with
//! the token), then the reader and writer tasks. Used for the first
//! connection and, by `reconnect.rs`, for every one after it.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;

use super::end::End;
use super::handshake::{Welcomed, handshake};
use super::reader::{drive_v2, read_v1};
use super::shared::Core;
use super::{ClientConfig, ClientError, Link, ProtocolVersion, Pushed};
use crate::protocol::v1::{self, V1Codec};
use crate::protocol::v2::{self, V2Codec};
use crate::transport::{Connection, Stream, server_name_of};

/// What became of the session a new connection tried to resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Resumption {
    /// Nothing was to be resumed.
    None,
    /// The session goes on: the server replays this many of its frames,
    /// and we sent this many of ours again.
    Resumed { replayed: u64, resent: u64 },
    /// A new session began instead, for this reason.
    Refused(String),
}

/// Opens one connection (TCP, TLS, the v2 handshake) and starts its reader
/// and writer; pushed messages go to `incoming`. With `resuming`, the
/// session of that (lost) connection is asked for again, and goes on in
/// the same core when the server resumes it.
pub(super) async fn open_link(
    addr: &str,
    config: &ClientConfig,
    incoming_taken: &Arc<AtomicBool>,
    incoming: mpsc::Sender<Pushed>,
    resuming: Option<&Arc<Core>>,
) -> Result<(Link, Resumption), ClientError> {
    let limit = config.connect_timeout;
    let started = Instant::now();
    // `ws://HOST:PORT/PATH` (or `wss://`): v2 over a WebSocket, as a
    // browser speaks it (spec section 4).
    let websocket = match web_socket_target(addr)? {
        Some((target, secure)) => {
            target.check(secure, config)?;
            Some(target)
        }
        None => None,
    };
    let addr = websocket.as_ref().map_or(addr, |w| w.authority);
    let tcp = within(limit, started, TcpStream::connect(addr))
        .await?
        .map_err(|source| ClientError::Connect {
            addr: addr.to_owned(),
            source,
        })?;
    // We batch writes ourselves; Nagle would only delay the last one.
    tcp.set_nodelay(true)?;
    let stream = match &config.tls {
        None => Stream::Plain(tcp),
        Some(tls) => {
            let name = match &tls.server_name {
                Some(name) => name.clone(),
                None => server_name_of(addr)?,
            };
            let connecting = TlsConnector::from(tls.config.clone()).connect(name, tcp);
            let tls_stream = within(limit, started, connecting)
                .await?
                .map_err(|e| ClientError::Tls(format!("handshake with {addr} failed: {e}")))?;
            Stream::Client(Box::new(tls_stream))
        }
    };
    #[cfg(feature = "websocket")]
    let stream = match websocket {
        None => stream,
        Some(target) => {
            let max_message = u64::from(config.max_frame_size) + v2::HEADER_LEN as u64;
            let upgrading =
                crate::transport::connect_websocket(stream, addr, target.path, max_message);
            let ws = within(limit, started, upgrading).await?.map_err(|source| {
                ClientError::Connect {
                    addr: addr.to_owned(),
                    source,
                }
            })?;
            Stream::WebSocket(Box::new(ws))
        }
    };
    let make_core = |session| {
        Arc::new(Core::new(
            session,
            config.max_queued_bytes,
            incoming_taken.clone(),
            config.reconnect.is_some(),
        ))
    };
    let mut resumption = Resumption::None;
    let link = match config.version {
        ProtocolVersion::V1 => {
            let core = make_core(None);
            let (reader, writer) = Connection::new(stream, V1Codec).split();
            tokio::spawn(read_v1(reader, core.clone()));
            spawn_writer(&core, writer);
            Link {
                core,
                server_name: Arc::from(""),
                server_max_frame_size: v1::MAX_CONTENT_LEN as u32,
                app_protocol: None,
            }
        }
        ProtocolVersion::V2 => {
            let mut conn = Connection::new(
                stream,
                V2Codec::new(config.max_frame_size, v2::MIN_MAX_FRAME_SIZE),
            );
            let left = limit.saturating_sub(started.elapsed());
            let ticket = resuming.and_then(|core| core.session(|s, _| s.resume_ticket()));
            let had = ticket.as_ref().map(|t| t.received);
            let Welcomed {
                session,
                server_name,
                server_max_frame_size,
                app_protocol,
                resume,
                resumed,
            } = handshake(&mut conn, config, left, ticket).await?;
            let core = match (resuming, resumed) {
                (Some(old), Some((received, sent))) => {
                    // The same session, on this connection: what the server
                    // had not received goes out first.
                    let now = Instant::now();
                    let resent = old.queue.reattach(|s, out| {
                        let s = s.as_mut().expect("v2 has a session");
                        s.resumed_by(&session, received, now, out)
                    });
                    let resent = resent.map_err(|e| ClientError::Protocol {
                        code: e.code,
                        reason: e.reason,
                    })?;
                    let replayed = sent.saturating_sub(had.unwrap_or(0));
                    resumption = Resumption::Resumed { replayed, resent };
                    // Told before the driver starts, so the notice comes
                    // before the frames the server replays.
                    let notice = Pushed::Resumed { replayed, resent };
                    if incoming_taken.load(std::sync::atomic::Ordering::Acquire) {
                        let _ = incoming.send(notice).await;
                    } else {
                        let _ = incoming.try_send(notice);
                    }
                    old.clone()
                }
                _ => {
                    if had.is_some() {
                        resumption = Resumption::Refused(match resume {
                            Some(v2::ResumeStatus::Refused(why)) => why.to_string(),
                            _ => "the server does not resume sessions".into(),
                        });
                    } else if resuming.is_some() {
                        // Nothing to present: more was sent while we were
                        // away than the replay buffer holds.
                        resumption = Resumption::Refused(
                            "our replay buffer overflowed while we were away".into(),
                        );
                    }
                    make_core(Some(session))
                }
            };
            tokio::spawn(drive_v2(conn, core.clone(), incoming));
            Link {
                core,
                server_name: Arc::from(server_name),
                server_max_frame_size,
                app_protocol,
            }
        }
    };
    Ok((link, resumption))
}

/// One step of opening a connection, within what is left of the connect
/// timeout (which covers them all, counted from `started`).
async fn within<T>(
    limit: std::time::Duration,
    started: Instant,
    step: impl std::future::Future<Output = T>,
) -> Result<T, ClientError> {
    tokio::time::timeout(limit.saturating_sub(started.elapsed()), step)
        .await
        .map_err(|_| ClientError::Timeout(limit))
}

fn spawn_writer(core: &Arc<Core>, writer: tokio::io::WriteHalf<Stream>) {
    let core = core.clone();
    tokio::spawn(async move {
        if let Err(e) = core
            .queue
            .run_writer(writer, &metrics::Counter::noop())
            .await
        {
            core.finish(End::Lost(format!("write failed: {e}")));
        }
    });
}

/// Where a `ws://` or `wss://` address points.
struct WebSocketTarget<'a> {
    /// `HOST:PORT`.
    authority: &'a str,
    /// `/` and what follows.
    #[cfg_attr(not(feature = "websocket"), allow(dead_code))]
    path: &'a str,
}

impl WebSocketTarget<'_> {
    /// A `wss://` target needs TLS settings, and a `ws://` one none.
    fn check(&self, secure: bool, config: &ClientConfig) -> Result<(), ClientError> {
        if config.version == ProtocolVersion::V1 {
            return Err(ClientError::InvalidConfig(
                "v1 does not travel over WebSocket (only v2 does)".into(),
            ));
        }
        match (secure, config.tls.is_some()) {
            (true, false) => Err(ClientError::InvalidConfig(
                "wss:// needs TLS settings (ClientConfig::tls; --tls or --ca)".into(),
            )),
            (false, true) => Err(ClientError::InvalidConfig(
                "TLS settings with ws://: use wss:// for a WebSocket over TLS".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// The WebSocket target `addr` names, if it is a `ws://` or `wss://` URL
/// (`wss` needs [`ClientConfig::tls`](super::ClientConfig::tls)).
fn web_socket_target(addr: &str) -> Result<Option<(WebSocketTarget<'_>, bool)>, ClientError> {
    let Some((scheme, rest)) = addr.split_once("://") else {
        return Ok(None);
    };
    if !cfg!(feature = "websocket") {
        return Err(ClientError::InvalidConfig(format!(
            "{scheme}:// needs the library's `websocket` feature"
        )));
    }
    match scheme {
        "ws" | "wss" => {}
        other => {
            return Err(ClientError::InvalidConfig(format!(
                "unknown scheme {other}:// (HOST:PORT for TCP, ws:// or wss:// for a WebSocket)"
            )));
        }
    }
    let (authority, path) = match rest.find('/') {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(ClientError::InvalidConfig(format!("{addr}: no HOST:PORT")));
    }
    let target = WebSocketTarget { authority, path };
    Ok(Some((target, scheme == "wss")))
}
