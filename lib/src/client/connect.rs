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

/// Opens one connection (TCP, TLS, the v2 handshake) and starts its reader
/// and writer; pushed messages go to `incoming`.
pub(super) async fn open_link(
    addr: &str,
    config: &ClientConfig,
    incoming_taken: &Arc<AtomicBool>,
    incoming: mpsc::Sender<Pushed>,
) -> Result<Link, ClientError> {
    let limit = config.connect_timeout;
    let started = Instant::now();
    let tcp = tokio::time::timeout(limit, TcpStream::connect(addr))
        .await
        .map_err(|_| ClientError::Timeout(limit))?
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
            let left = limit.saturating_sub(started.elapsed());
            let connecting = TlsConnector::from(tls.config.clone()).connect(name, tcp);
            let tls_stream = tokio::time::timeout(left, connecting)
                .await
                .map_err(|_| ClientError::Timeout(limit))?
                .map_err(|e| ClientError::Tls(format!("handshake with {addr} failed: {e}")))?;
            Stream::Client(Box::new(tls_stream))
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
    Ok(match config.version {
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
            let Welcomed {
                session,
                server_name,
                server_max_frame_size,
                app_protocol,
            } = handshake(&mut conn, config, left).await?;
            let core = make_core(Some(session));
            tokio::spawn(drive_v2(conn, core.clone(), incoming));
            Link {
                core,
                server_name: Arc::from(server_name),
                server_max_frame_size,
                app_protocol,
            }
        }
    })
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
