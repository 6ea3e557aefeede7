//! The reference service: print every text message as a line.

use super::handler::{Handler, PeerInfo, Service};
use super::line_output::{LineOutput, format_message_line};
use crate::protocol::Message;

/// A batch is handed to the writer once it reaches this size even if more
/// input is waiting, so one busy connection cannot hold lines back for long.
const BATCH_BYTES: usize = 64 * 1024;

/// Prints each text message from every connection to a [`LineOutput`].
#[derive(Debug, Clone)]
pub struct PrintService {
    out: LineOutput,
}

impl PrintService {
    /// Prints to `out`.
    pub fn new(out: LineOutput) -> Self {
        PrintService { out }
    }
}

impl Service for PrintService {
    type Handler = PrintHandler;

    fn connect(&self, _peer: &PeerInfo) -> PrintHandler {
        PrintHandler {
            out: self.out.clone(),
            batch: Vec::new(),
            output_closed: false,
        }
    }
}

/// One connection's share of [`PrintService`]: its own line buffer.
#[derive(Debug)]
pub struct PrintHandler {
    out: LineOutput,
    batch: Vec<u8>,
    output_closed: bool,
}

impl PrintHandler {
    async fn send_batch(&mut self) {
        if self.batch.is_empty() || self.output_closed {
            self.batch.clear();
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH_BYTES));
        if !self.out.write_batch(batch).await {
            // The output is gone (e.g. a closed pipe); the writer thread has
            // reported why. Keep serving the protocol, just stop printing.
            self.output_closed = true;
        }
    }
}

impl Handler for PrintHandler {
    async fn on_text(&mut self, message: Message) {
        format_message_line(&mut self.batch, message.as_str());
        if self.batch.len() >= BATCH_BYTES {
            self.send_batch().await;
        }
    }

    async fn flush(&mut self) {
        self.send_batch().await;
    }
}
