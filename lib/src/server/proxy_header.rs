//! PROXY protocol v2: behind a TCP load balancer (HAProxy's
//! `send-proxy-v2`), every connection starts with a binary header naming
//! the client's real address; the server reads it before anything else and
//! uses that address for logs, `PeerInfo`, per-address limits and
//! authentication. Only for servers reachable through a trusted balancer:
//! anyone who can connect directly could otherwise claim any address.
//!
//! The header is parsed by the `ppp` crate; this file only reads the exact
//! bytes it spans (never more, so the protocol's first byte stays in the
//! socket) within a deadline and a size bound.

use std::net::SocketAddr;
use std::time::Instant;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tracing::warn;

use super::admission::{Admission, Slot};
use super::log_gate::{admit_global, suppressed_field};
use super::metrics::ServerMetrics;

/// The fixed part: 12-byte signature, version/command, family, length.
const FIXED: usize = 16;

/// The largest header accepted. Addresses take at most 216 bytes; the rest
/// is room for the balancer's TLVs (unique id, TLS facts).
pub(crate) const MAX_PROXY_HEADER: usize = 4096;

/// Why a connection's PROXY header was not accepted.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyHeaderError {
    #[error("no PROXY protocol v2 header (is the load balancer set to send-proxy-v2?)")]
    Missing,
    #[error("PROXY header of {0} bytes is larger than the {MAX_PROXY_HEADER} accepted")]
    TooLarge(usize),
    #[error("invalid PROXY header: {0}")]
    Invalid(String),
    #[error("no PROXY header before the deadline")]
    Timeout,
    #[error("reading the PROXY header: {0}")]
    Io(#[from] std::io::Error),
}

/// What the header said about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxiedPeer {
    /// A client's connection relayed by the balancer, from this address.
    Client(SocketAddr),
    /// The balancer speaking for itself (a health check, `LOCAL`), or an
    /// address family with no IP: the socket's own address stands.
    Balancer,
}

/// The connection's real peer, from its header (and whether it is the
/// balancer's own health check): the slot is counted against that address
/// now. `None` when the connection was refused
/// instead (no valid header, or that address is over its limit), which is
/// logged and counted here.
pub(super) async fn proxied_peer(
    mut stream: TcpStream,
    socket_peer: SocketAddr,
    slot: &mut Slot,
    admission: &Admission,
    deadline: Instant,
    transport: super::service::Transport,
) -> Option<(TcpStream, SocketAddr, bool)> {
    match read_proxy_header(&mut stream, deadline).await {
        Ok(ProxiedPeer::Client(real)) => match slot.attribute(real.ip(), admission) {
            Ok(()) => Some((stream, real, false)),
            Err(why) => {
                ServerMetrics::refused(why.metric_label());
                super::admission::refuse(stream, real, why, transport).await;
                None
            }
        },
        // A health check: the balancer's own address stands.
        Ok(ProxiedPeer::Balancer) => Some((stream, socket_peer, true)),
        Err(e) => {
            ServerMetrics::refused("proxy_header");
            if let Some(suppressed) = admit_global() {
                let suppressed = suppressed_field(suppressed);
                warn!(peer = %socket_peer, suppressed, "connection refused: {e}");
            }
            None
        }
    }
}

/// Reads the PROXY v2 header at the start of `stream`, by `deadline`.
async fn read_proxy_header(
    stream: &mut TcpStream,
    deadline: Instant,
) -> Result<ProxiedPeer, ProxyHeaderError> {
    tokio::time::timeout_at(deadline.into(), read_header(stream))
        .await
        .map_err(|_| ProxyHeaderError::Timeout)?
}

async fn read_header(stream: &mut TcpStream) -> Result<ProxiedPeer, ProxyHeaderError> {
    let mut header = vec![0u8; FIXED];
    stream
        .read_exact(&mut header)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => ProxyHeaderError::Missing,
            _ => ProxyHeaderError::Io(e),
        })?;
    let total = header_len(&header)?;
    header.resize(total, 0);
    stream.read_exact(&mut header[FIXED..]).await?;
    parse(&header)
}

/// The whole header's length, from its fixed part (16 bytes), or why it is
/// no header we read: no signature, or longer than we accept.
pub(crate) fn header_len(fixed: &[u8]) -> Result<usize, ProxyHeaderError> {
    if fixed.len() < FIXED || !fixed.starts_with(ppp::v2::PROTOCOL_PREFIX) {
        return Err(ProxyHeaderError::Missing);
    }
    let total = FIXED + usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if total > MAX_PROXY_HEADER {
        return Err(ProxyHeaderError::TooLarge(total));
    }
    Ok(total)
}

/// The peer a complete header names.
pub(crate) fn parse(header: &[u8]) -> Result<ProxiedPeer, ProxyHeaderError> {
    use ppp::v2::{Addresses, Command, Header};
    let parsed = Header::try_from(header).map_err(|e| ProxyHeaderError::Invalid(e.to_string()))?;
    if parsed.command == Command::Local {
        return Ok(ProxiedPeer::Balancer);
    }
    Ok(match parsed.addresses {
        Addresses::IPv4(a) => {
            ProxiedPeer::Client(SocketAddr::from((a.source_address, a.source_port)))
        }
        Addresses::IPv6(a) => {
            ProxiedPeer::Client(SocketAddr::from((a.source_address, a.source_port)))
        }
        _ => ProxiedPeer::Balancer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4_header(command: u8) -> Vec<u8> {
        let mut h = Vec::from(ppp::v2::PROTOCOL_PREFIX);
        // version 2 + command, TCP over IPv4, 12 bytes of addresses.
        h.extend([0x20 | command, 0x11, 0, 12]);
        h.extend([203, 0, 113, 7, 127, 0, 0, 1]);
        h.extend(54321u16.to_be_bytes());
        h.extend(8080u16.to_be_bytes());
        h
    }

    #[test]
    fn a_proxied_connection_names_the_client() {
        assert_eq!(
            parse(&v4_header(1)).unwrap(),
            ProxiedPeer::Client("203.0.113.7:54321".parse().unwrap())
        );
    }

    #[test]
    fn a_health_check_speaks_for_the_balancer() {
        assert_eq!(parse(&v4_header(0)).unwrap(), ProxiedPeer::Balancer);
    }

    #[test]
    fn a_damaged_header_is_refused() {
        let mut h = v4_header(1);
        h[12] = 0x31; // version 3
        assert!(matches!(parse(&h), Err(ProxyHeaderError::Invalid(_))));
    }
}
