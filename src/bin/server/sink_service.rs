//! `server --sink`: the protocol stack alone, for measuring it. Every frame
//! is still decoded and validated (UTF-8 included) by the library; the
//! service only counts, prints nothing, and answers requests with an empty
//! payload.

use bytes::Bytes;
use rust_tcp::{Handler, Message, PeerInfo, Responder, Service};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counts what every connection received.
#[derive(Debug, Clone, Default)]
pub struct SinkService {
    received: Arc<AtomicU64>,
}

impl SinkService {
    /// Messages and requests received so far, over all connections.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

impl Service for SinkService {
    type Handler = SinkHandler;

    fn connect(&self, _: &PeerInfo) -> SinkHandler {
        SinkHandler {
            received: self.received.clone(),
            local: 0,
        }
    }
}

/// Counts locally, adding to the total at each flush (one atomic add per
/// batch, not per message).
#[derive(Debug)]
pub struct SinkHandler {
    received: Arc<AtomicU64>,
    local: u64,
}

impl Handler for SinkHandler {
    async fn on_text(&mut self, _: Message) {
        self.local += 1;
    }

    async fn on_binary(&mut self, _: Bytes) {
        self.local += 1;
    }

    async fn on_request(&mut self, _: Bytes, responder: Responder) {
        self.local += 1;
        let _ = responder.respond(Bytes::new());
    }

    async fn flush(&mut self) {
        self.received
            .fetch_add(std::mem::take(&mut self.local), Ordering::Relaxed);
    }
}
