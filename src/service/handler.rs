use std::future::Future;
use std::net::SocketAddr;

use crate::protocol::Message;

/// Who is on the other end of a connection, as far as the server knows.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The peer's socket address, for logs and per-client state.
    pub addr: SocketAddr,
    /// The protocol version this connection speaks.
    pub version: u8,
}

/// The user's application: it makes one [`Handler`] per connection.
///
/// Splitting the factory from the per-connection handler lets a handler keep
/// connection-local state (buffers, counters) in `&mut self` without locks,
/// while the service holds what all connections share.
pub trait Service: Send + Sync + 'static {
    /// The per-connection part.
    type Handler: Handler;

    /// Called once a connection's protocol version is known.
    fn connect(&self, peer: &PeerInfo) -> Self::Handler;
}

/// Reacts to what one connection sends.
///
/// Calls come in the order the peer sent the messages. The server calls
/// [`Handler::flush`] whenever it has handed over everything received so far
/// and is about to wait for the network: a handler that batches work (like
/// the printing one) flushes there, which gives large batches under load and
/// immediate delivery for an interactive peer.
pub trait Handler: Send + 'static {
    /// A text message arrived.
    fn on_text(&mut self, message: Message) -> impl Future<Output = ()> + Send;

    /// Everything received so far has been handed to the handler.
    fn flush(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
