//! The server's side of the TLS handshake: within the first frame's
//! deadline (a peer cannot hold a slot by stalling the handshake), with its
//! buffers counted against the memory budget while it runs.

use rustls_pki_types::CertificateDer;
use std::time::Instant;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::connection_outcome::ConnectionError;
use crate::transport::{MemoryBudget, ServerTls, Stream};

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
