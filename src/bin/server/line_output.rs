//! Batched, ordered output of message lines from many connections.
//!
//! Connections format lines into their own buffers and hand whole batches to
//! one writer thread over a bounded channel. That gives one `write` per batch
//! instead of one per message, keeps lines from different connections whole,
//! and, because the channel is bounded, a slow stdout slows the readers down
//! (TCP backpressure) instead of growing memory. The writer is a plain thread
//! because writing to a file or pipe blocks, and the async workers must not.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::thread::JoinHandle;
use tokio::sync::mpsc;

/// Batches that may wait for the writer before senders are held back.
const QUEUED_BATCHES: usize = 64;

/// The sending side: cheap to clone, one per connection.
#[derive(Debug, Clone)]
pub struct LineOutput {
    tx: mpsc::Sender<Vec<u8>>,
}

/// The writer thread; join it after every [`LineOutput`] is dropped to be
/// sure that every line reached the output.
#[derive(Debug)]
pub struct LineOutputWriter {
    thread: JoinHandle<io::Result<()>>,
}

/// Starts the writer thread over `out`.
pub fn spawn_line_output<W: Write + Send + 'static>(out: W) -> (LineOutput, LineOutputWriter) {
    let (tx, rx) = mpsc::channel(QUEUED_BATCHES);
    let thread = std::thread::Builder::new()
        .name("line-output".into())
        .spawn(move || write_batches(rx, out))
        .expect("spawning the output thread");
    (LineOutput { tx }, LineOutputWriter { thread })
}

fn write_batches<W: Write>(mut rx: mpsc::Receiver<Vec<u8>>, out: W) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(256 * 1024, out);
    while let Some(batch) = rx.blocking_recv() {
        out.write_all(&batch)?;
        // Coalesce whatever else is already waiting, then flush: under load
        // that means few large writes, and an idle stream is never held back.
        while let Ok(batch) = rx.try_recv() {
            out.write_all(&batch)?;
        }
        out.flush()?;
    }
    out.flush()
}

impl LineOutput {
    /// Queues a batch of complete lines. Waits while the writer is behind;
    /// returns `false` if the writer has stopped (its output was closed).
    pub async fn write_batch(&self, batch: Vec<u8>) -> bool {
        self.tx.send(batch).await.is_ok()
    }
}

impl LineOutputWriter {
    /// Waits until every queued line is written; the error is the first one
    /// writing hit (such as a closed pipe).
    pub fn join(self) -> io::Result<()> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("output thread panicked")))
    }
}

/// Appends `Message: "<content>"` and a newline to `out`.
///
/// The content is quoted and escaped the way Rust's `Debug` does it (the
/// tutorial's format), so a newline, a control character or a quote in a
/// message can never forge or break a line. Plain printable ASCII, the
/// common case, is copied as it is without going through the formatter.
pub fn format_message_line(out: &mut Vec<u8>, content: &str) {
    out.extend_from_slice(b"Message: ");
    if content
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(content.as_bytes());
        out.push(b'"');
    } else {
        let mut s = String::with_capacity(content.len() + 8);
        // Writing to a String cannot fail.
        let _ = write!(s, "{content:?}");
        out.extend_from_slice(s.as_bytes());
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(content: &str) -> String {
        let mut v = Vec::new();
        format_message_line(&mut v, content);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn plain_text_is_quoted() {
        assert_eq!(line("hello world"), "Message: \"hello world\"\n");
    }

    #[test]
    fn nothing_can_forge_a_line() {
        let l = line("a\nMessage: \"b\"\r\x1b[2J\u{2028}");
        assert_eq!(l.matches('\n').count(), 1);
        assert!(!l.contains('\r') && !l.contains('\x1b') && !l.contains('\u{2028}'));
        assert_eq!(
            l,
            "Message: \"a\\nMessage: \\\"b\\\"\\r\\u{1b}[2J\\u{2028}\"\n"
        );
    }

    #[test]
    fn printable_unicode_stays_readable() {
        assert_eq!(line("héllo"), "Message: \"héllo\"\n");
    }

    #[tokio::test]
    async fn writer_keeps_batches_in_order() {
        #[derive(Clone)]
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let sink = Shared(Default::default());
        let (out, writer) = spawn_line_output(sink.clone());
        for i in 0..100 {
            assert!(out.write_batch(format!("{i}\n").into_bytes()).await);
        }
        drop(out);
        tokio::task::spawn_blocking(move || writer.join())
            .await
            .unwrap()
            .unwrap();
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        let expected: String = (0..100).map(|i| format!("{i}\n")).collect();
        assert_eq!(text, expected);
    }
}
