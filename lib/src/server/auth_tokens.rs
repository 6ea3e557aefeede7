//! Token authentication on the server: the tokens (one per line of a
//! file, so they can be rotated), checked in constant time, and a brake on
//! addresses that keep failing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

use crate::protocol::v2::TokenCheck;

/// Why tokens could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthTokensError {
    /// The file could not be read.
    #[error("cannot read auth tokens from {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file holds no token: nobody could ever connect.
    #[error("no tokens in {0} (one per line; blank lines and lines starting with # are skipped)")]
    Empty(PathBuf),
}

/// The tokens a server accepts, read from a file: one per line, blank lines
/// and `#` comments skipped. [`AuthTokens::reload`] re-reads the file (the
/// `server` binary does on SIGHUP), so tokens rotate without dropping a
/// connection. Cheap to clone; clones share the tokens.
#[derive(Clone)]
pub struct AuthTokens {
    path: PathBuf,
    tokens: Arc<RwLock<Vec<Vec<u8>>>>,
}

impl std::fmt::Debug for AuthTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the tokens themselves.
        f.debug_struct("AuthTokens")
            .field("path", &self.path)
            .field("count", &self.count())
            .finish()
    }
}

fn read_tokens(path: &Path) -> Result<Vec<Vec<u8>>, AuthTokensError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthTokensError::Read {
        path: path.to_owned(),
        source,
    })?;
    let tokens: Vec<Vec<u8>> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.as_bytes().to_vec())
        .collect();
    if tokens.is_empty() {
        return Err(AuthTokensError::Empty(path.to_owned()));
    }
    Ok(tokens)
}

impl AuthTokens {
    /// Reads the tokens in `path`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<AuthTokens, AuthTokensError> {
        let path = path.as_ref().to_owned();
        let tokens = read_tokens(&path)?;
        Ok(AuthTokens {
            path,
            tokens: Arc::new(RwLock::new(tokens)),
        })
    }

    /// Re-reads the file. On an error the tokens in use stay as they were.
    /// Returns how many tokens are now accepted.
    pub fn reload(&self) -> Result<usize, AuthTokensError> {
        let tokens = read_tokens(&self.path)?;
        let n = tokens.len();
        *self.tokens.write().unwrap_or_else(|p| p.into_inner()) = tokens;
        Ok(n)
    }

    /// How many tokens are accepted.
    pub fn count(&self) -> usize {
        self.tokens.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl TokenCheck for AuthTokens {
    fn accepts(&self, token: &[u8]) -> bool {
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        // Every token is compared, each in constant time, so the time taken
        // says nothing about which or how much of one matched.
        tokens
            .iter()
            .fold(subtle::Choice::from(0), |any, t| {
                any | t.as_slice().ct_eq(token)
            })
            .into()
    }
}

/// Addresses remembered at most: past it, the oldest are forgotten.
const REMEMBERED: usize = 10_000;
/// A failure is forgotten after this long.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// The wait after one failure, doubling with each more, up to the cap.
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);

/// Slows down addresses whose authentication keeps failing: a new
/// handshake from such an address waits before it is judged.
#[derive(Debug, Default, Clone)]
pub(crate) struct AuthBackoff {
    failures: Arc<Mutex<HashMap<IpAddr, (u32, Instant)>>>,
}

impl AuthBackoff {
    /// How long a handshake from `ip` waits before it is judged.
    pub(crate) fn delay_for(&self, ip: IpAddr) -> Option<Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let (n, last) = *failures.get(&ip)?;
        if last.elapsed() > FORGET_AFTER {
            return None;
        }
        let doublings = n.saturating_sub(1).min(16);
        Some((FIRST_DELAY * 2u32.pow(doublings)).min(MAX_DELAY))
    }

    /// `ip` failed to authenticate.
    pub(crate) fn failed(&self, ip: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= REMEMBERED && !failures.contains_key(&ip) {
            failures.retain(|_, (_, last)| last.elapsed() < FORGET_AFTER);
            if failures.len() >= REMEMBERED
                && let Some(oldest) = failures
                    .iter()
                    .min_by_key(|(_, (_, t))| *t)
                    .map(|(ip, _)| *ip)
            {
                failures.remove(&oldest);
            }
        }
        let entry = failures.entry(ip).or_insert((0, Instant::now()));
        entry.0 = entry.0.saturating_add(1);
        entry.1 = Instant::now();
    }

    /// `ip` authenticated: its slate is clean.
    pub(crate) fn succeeded(&self, ip: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_lines_and_reload() {
        let path = std::env::temp_dir().join(format!("rust-tcp-tokens-{}", std::process::id()));
        std::fs::write(&path, "# comment\nalpha\n\n  beta  \n").unwrap();
        let tokens = AuthTokens::from_file(&path).unwrap();
        assert!(tokens.accepts(b"alpha") && tokens.accepts(b"beta"));
        assert!(!tokens.accepts(b"alph") && !tokens.accepts(b"") && !tokens.accepts(b"# comment"));
        std::fs::write(&path, "gamma\n").unwrap();
        assert_eq!(tokens.reload().unwrap(), 1);
        assert!(tokens.accepts(b"gamma") && !tokens.accepts(b"alpha"));
        std::fs::write(&path, "\n# nothing\n").unwrap();
        assert!(tokens.reload().is_err());
        assert!(
            tokens.accepts(b"gamma"),
            "a bad file keeps the tokens in use"
        );
        assert!(!format!("{tokens:?}").contains("gamma"), "never logged");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn repeated_failures_wait_longer_up_to_a_cap() {
        let b = AuthBackoff::default();
        let ip: IpAddr = "127.0.0.9".parse().unwrap();
        assert_eq!(b.delay_for(ip), None);
        b.failed(ip);
        assert_eq!(b.delay_for(ip), Some(FIRST_DELAY));
        b.failed(ip);
        b.failed(ip);
        assert_eq!(b.delay_for(ip), Some(FIRST_DELAY * 4));
        for _ in 0..20 {
            b.failed(ip);
        }
        assert_eq!(b.delay_for(ip), Some(MAX_DELAY));
        b.succeeded(ip);
        assert_eq!(b.delay_for(ip), None);
    }
}
