//! What to do when `accept` fails.
//!
//! Some failures concern only the connection being accepted (the peer gave
//! up during the handshake): the next `accept` may well succeed, so we retry
//! at once. Others mean the process is out of a resource, typically file
//! descriptors: retrying immediately would spin at 100% CPU while nothing
//! can change, so we wait, doubling the wait up to a cap, and return to full
//! speed as soon as an `accept` succeeds. The server never exits over either.

use std::io;
use std::time::Duration;

/// Exponential backoff between failed `accept` calls.
#[derive(Debug, Clone)]
pub(crate) struct AcceptBackoff {
    next: Duration,
    min: Duration,
    max: Duration,
}

impl AcceptBackoff {
    /// Starts at `min` and doubles up to `max`.
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        AcceptBackoff {
            next: min,
            min,
            max,
        }
    }

    /// How long to wait after this failure.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// An `accept` succeeded: the next failure starts small again.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        AcceptBackoff::new(Duration::from_millis(5), Duration::from_secs(1))
    }
}

/// Whether an `accept` error is about that one connection only, so that
/// retrying at once is right.
pub(crate) fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = AcceptBackoff::new(Duration::from_millis(5), Duration::from_millis(30));
        let delays: Vec<_> = (0..5).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [5, 10, 20, 30, 30]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(5));
    }

    #[test]
    fn classifies_errors() {
        assert!(is_per_connection(&io::ErrorKind::ConnectionAborted.into()));
        // EMFILE ("too many open files") is a resource problem: back off.
        assert!(!is_per_connection(&io::Error::from_raw_os_error(24)));
    }
}
