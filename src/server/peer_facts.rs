//! What the server knows about a peer before its first frame: where it is,
//! when it came, and (with mutual TLS) who it proved to be.

use rustls_pki_types::CertificateDer;
use std::net::SocketAddr;
use std::time::Instant;

/// What the server knows about a peer before its first frame.
pub(crate) struct PeerFacts {
    /// Its address.
    pub(crate) addr: SocketAddr,
    /// When it was accepted: the first frame's deadline counts from here.
    pub(crate) accepted: Instant,
    /// Its verified TLS client certificate, with mutual TLS.
    pub(crate) certificate: Option<CertificateDer<'static>>,
}
