//! Entry points for the fuzzers (`fuzz/`) into parsers that are otherwise
//! internal. Not part of the API (hidden from the docs): no stability
//! promise.

/// The largest PROXY header a server reads.
pub const MAX_PROXY_HEADER: usize = super::proxy_header::MAX_PROXY_HEADER;

/// The length a PROXY v2 header's fixed part (16 bytes) claims, if it
/// is one we would read.
pub fn proxy_header_len(fixed: &[u8]) -> Result<usize, String> {
    super::proxy_header::header_len(fixed).map_err(|e| e.to_string())
}

/// The client a whole PROXY v2 header names (`None`: the balancer
/// itself), or why it is refused.
pub fn proxy_header_peer(header: &[u8]) -> Result<Option<std::net::SocketAddr>, String> {
    match super::proxy_header::parse(header) {
        Ok(super::proxy_header::ProxiedPeer::Client(addr)) => Ok(Some(addr)),
        Ok(super::proxy_header::ProxiedPeer::Balancer) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}
