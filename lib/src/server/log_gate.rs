//! Log lines a peer causes, made safe: its text escaped and cut short, and
//! the lines themselves rate-limited per connection and across the server,
//! so that no peer can forge a log line or fill the disk. Suppressed lines
//! are counted, and the next line that passes says how many.

use std::fmt;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// An INFO line, or a DEBUG one for a quiet connection (a load balancer's
/// health check, which would otherwise log several lines a second).
macro_rules! info_unless_quiet {
    ($quiet:expr, $($line:tt)+) => {
        if $quiet {
            tracing::debug!($($line)+)
        } else {
            tracing::info!($($line)+)
        }
    };
}
pub(crate) use info_unless_quiet;

/// Characters of peer text shown in a log line at most.
const MAX_PEER_TEXT: usize = 200;

/// Peer-supplied text, for a log line: control characters escaped (so a
/// newline cannot start a forged line), cut to [`MAX_PEER_TEXT`]
/// characters with the rest counted.
pub(crate) struct PeerText<'a>(pub(crate) &'a str);

impl fmt::Display for PeerText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shown, (i, c)) in self.0.char_indices().enumerate() {
            if shown == MAX_PEER_TEXT {
                return write!(f, "…(+{} bytes)", self.0.len() - i);
            }
            if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
                write!(f, "{}", c.escape_debug())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// The `suppressed` field of a log line: shown only when lines were.
pub(crate) fn suppressed_field(suppressed: u64) -> Option<u64> {
    (suppressed > 0).then_some(suppressed)
}

/// A token bucket: `burst` lines at once, then `per_sec` a second.
#[derive(Debug)]
struct Bucket {
    burst: f64,
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(burst: u32, per_sec: u32) -> Self {
        Bucket {
            burst: burst.into(),
            per_sec: per_sec.into(),
            tokens: burst.into(),
            last: Instant::now(),
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Lines a peer may cause across the whole process: a burst of 200, then
/// 100 a second (a busy server's connects and disconnects pass; a flood of
/// them is summarised).
fn global() -> &'static Mutex<(Bucket, u64)> {
    static GLOBAL: OnceLock<Mutex<(Bucket, u64)>> = OnceLock::new();
    GLOBAL.get_or_init(|| Mutex::new((Bucket::new(200, 100), 0)))
}

/// Admits a line that no single connection is answerable for (connection
/// opened or closed): `Some(suppressed)` to log it, saying how many lines
/// were suppressed before it; `None` to drop it (counted).
pub(crate) fn admit_global() -> Option<u64> {
    let mut g = global().lock().unwrap_or_else(|p| p.into_inner());
    let (bucket, suppressed) = &mut *g;
    if bucket.take(Instant::now()) {
        Some(std::mem::take(suppressed))
    } else {
        *suppressed += 1;
        None
    }
}

/// One connection's allowance of log lines: a burst of 10, then one a
/// second, and within the server-wide allowance.
#[derive(Debug)]
pub(crate) struct LogGate {
    bucket: Bucket,
    suppressed: u64,
}

impl Default for LogGate {
    fn default() -> Self {
        LogGate {
            bucket: Bucket::new(10, 1),
            suppressed: 0,
        }
    }
}

impl LogGate {
    /// `Some(suppressed)` to log the line (with how many of this
    /// connection's lines were dropped before it), `None` to drop it.
    pub(crate) fn admit(&mut self) -> Option<u64> {
        if !self.bucket.take(Instant::now()) {
            self.suppressed += 1;
            return None;
        }
        match admit_global() {
            Some(_) => Some(std::mem::take(&mut self.suppressed)),
            None => {
                self.suppressed += 1;
                None
            }
        }
    }
}

impl LogGate {
    /// At a connection's end: says how many of its lines were dropped
    /// since the last one shown, if any were.
    pub(crate) fn report_suppressed(&mut self, peer: std::net::SocketAddr) {
        if self.suppressed > 0 && admit_global().is_some() {
            tracing::warn!(
                %peer,
                suppressed = std::mem::take(&mut self.suppressed),
                "log lines about this connection were suppressed"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn peer_text_cannot_forge_a_line_or_run_on() {
        let forged = "bye\n2026-01-01T00:00:00Z  INFO fake: all is well\u{1b}[31m";
        let shown = PeerText(forged).to_string();
        assert!(
            !shown.contains('\n') && !shown.contains('\u{1b}'),
            "{shown}"
        );
        assert!(shown.contains("\\n") && shown.contains("\\u{1b}"));
        let long = "é".repeat(1000);
        let shown = PeerText(&long).to_string();
        assert!(shown.starts_with(&"é".repeat(200)));
        assert!(shown.ends_with("…(+1600 bytes)"), "{shown}");
    }

    #[test]
    fn a_bucket_allows_a_burst_then_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(3, 2);
        b.last = t0;
        assert!((0..3).all(|_| b.take(t0)));
        assert!(!b.take(t0));
        assert!(
            b.take(t0 + Duration::from_millis(500)),
            "one more after 1/2 s"
        );
        assert!(!b.take(t0 + Duration::from_millis(500)));
    }

    #[test]
    fn a_flooding_connection_is_summarised() {
        let mut gate = LogGate::default();
        let admitted = (0..1000).filter(|_| gate.admit().is_some()).count();
        assert!(admitted <= 11, "{admitted} lines of 1000 let through");
        assert!(gate.suppressed >= 989);
    }
}
