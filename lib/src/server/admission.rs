//! Who gets a connection slot, and who gives one up.
//!
//! A server at its limit does not leave new peers hanging in the kernel's
//! backlog (where a few hundred silent sockets could park every newcomer
//! indefinitely): it answers at once, with a reason. Beyond that, the rules
//! are built so that an attacker with many addresses cannot lock honest
//! clients out:
//!
//! - **Sessions are never evicted.** A connection that finished its
//!   handshake keeps its slot; only connections still in their handshake
//!   ("pending") compete among themselves.
//! - **Pending connections have their own, smaller budget** (OpenSSH's
//!   `MaxStartups` idea). When it is full, or every slot is taken, a
//!   newcomer displaces the *oldest* pending connection instead of being
//!   refused: a silent socket holds a slot only until enough newer ones
//!   arrive, while an honest client finishes its handshake in a round trip.
//! - **Under pressure the handshake deadline shrinks** (as Envoy's overload
//!   manager shortens timeouts when a resource fills): once half the
//!   pending budget is used, new connections get the shorter deadline.
//! - **Addresses are counted by network** where hosts are cheap: IPv6 by
//!   its /64 (everyone has 2^64 addresses there), IPv4 by /32, both
//!   settable. The per-address limit and the connection rate apply to the
//!   group.
//! - **A connection rate per group** (a token bucket, HAProxy's
//!   `src_conn_rate`): a group that opens connections faster than that is
//!   refused at once, with the reason.

use super::log_gate::{admit_global, suppressed_field};
use crate::protocol::v2::{self, CloseCode, Session, SessionConfig};
use bytes::BytesMut;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::signals::SignalEpoch;
use tracing::warn;

/// Why a new connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Every slot is held by an established session.
    ServerFull { max: usize },
    /// This address (group) holds its share already.
    TooManyFromAddress { max: usize },
    /// This address (group) opens connections faster than allowed.
    TooFast { per_second: u32 },
}

impl Refusal {
    /// The `reason` label of the refused-connections metric.
    pub(crate) fn metric_label(&self) -> &'static str {
        match self {
            Refusal::ServerFull { .. } => "server_full",
            Refusal::TooManyFromAddress { .. } => "per_address",
            Refusal::TooFast { .. } => "rate",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::ServerFull { max } => {
                let s = if *max == 1 { "" } else { "s" };
                write!(
                    f,
                    "server full (at most {max} connection{s}); try again later"
                )
            }
            Refusal::TooManyFromAddress { max } => {
                write!(f, "too many connections from your address (at most {max})")
            }
            Refusal::TooFast { per_second } => write!(
                f,
                "too many new connections from your address (at most {per_second} per second); try again later"
            ),
        }
    }
}

/// The rules admission applies (from `ServerConfig`).
#[derive(Debug, Clone)]
pub(crate) struct AdmissionRules {
    pub(crate) max_total: usize,
    pub(crate) max_per_group: usize,
    pub(crate) max_pending: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) handshake_timeout_under_pressure: Duration,
    /// New connections per second per group; 0 = no limit.
    pub(crate) rate: u32,
    /// How many a group may open at once before the rate applies.
    pub(crate) burst: u32,
    pub(crate) ipv4_prefix: u8,
    pub(crate) ipv6_prefix: u8,
}

/// The network an address is counted in: the address with every bit past
/// the prefix cleared. An IPv4 address mapped into IPv6 counts as IPv4.
pub(crate) fn address_group(ip: IpAddr, ipv4_prefix: u8, ipv6_prefix: u8) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = u32::MAX
                .checked_shl(32 - u32::from(ipv4_prefix.min(32)))
                .unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = u128::MAX
                .checked_shl(128 - u32::from(ipv6_prefix.min(128)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
}

/// One group's connection-rate allowance.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug, Default)]
struct Table {
    /// Slots held: sessions and pending connections (and displaced ones
    /// whose tasks have not ended yet).
    total: usize,
    /// Connections still in their handshake, oldest first, each with the
    /// token that ends it if it is displaced.
    pending: BTreeMap<u64, CancellationToken>,
    next_ticket: u64,
    per_group: HashMap<IpAddr, usize>,
    rates: HashMap<IpAddr, Bucket>,
    /// Bumped before a displacement fires.
    signals: Arc<SignalEpoch>,
}

/// The slots of one server.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    table: Arc<Mutex<Table>>,
    rules: Arc<AdmissionRules>,
}

/// What a newcomer was given: its slot, the token that fires if a newer
/// connection displaces it before its handshake is done, and its
/// handshake deadline (shorter under pressure).
#[derive(Debug)]
pub(crate) struct Admitted {
    pub(crate) slot: Slot,
    pub(crate) displaced: CancellationToken,
    pub(crate) handshake_timeout: Duration,
}

/// A slot held; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    table: Arc<Mutex<Table>>,
    /// The address group it counts against (`None` until a PROXY header
    /// names the address).
    group: Option<IpAddr>,
    /// Its place among the pending connections; 0 once it is a session.
    ticket: AtomicU64,
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    // Only counters live here; they stay consistent whatever panicked.
    table.lock().unwrap_or_else(|p| p.into_inner())
}

impl Admission {
    /// The slots under `rules`, with a signal count of their own.
    #[cfg(test)]
    pub(crate) fn new(rules: AdmissionRules) -> Self {
        Self::with_signals(rules, Arc::default())
    }

    /// `signals` moves whenever a displacement fires.
    pub(crate) fn with_signals(rules: AdmissionRules, signals: Arc<SignalEpoch>) -> Self {
        Admission {
            table: Arc::new(Mutex::new(Table {
                signals,
                ..Table::default()
            })),
            rules: Arc::new(rules),
        }
    }

    /// A slot for a connection from `ip`, or why not. `ip` is `None` behind
    /// a load balancer, until the connection's PROXY header names the real
    /// address ([`Slot::attribute`] counts it then).
    pub(crate) fn admit(&self, ip: Option<IpAddr>, now: Instant) -> Result<Admitted, Refusal> {
        let rules = &self.rules;
        let mut table = lock(&self.table);
        let group = ip.map(|ip| self.group_of(ip));
        if let Some(group) = group {
            self.check_group(&mut table, group, now)?;
        }
        // Room for the newcomer: every slot taken, or the pending budget
        // full, costs the oldest pending connection its place. Only when
        // every slot is an established session is the newcomer refused.
        if table.total >= rules.max_total && !Self::displace_oldest(&mut table) {
            return Err(Refusal::ServerFull {
                max: rules.max_total,
            });
        }
        if table.pending.len() >= rules.max_pending {
            Self::displace_oldest(&mut table);
        }
        if let Some(group) = group {
            *table.per_group.entry(group).or_default() += 1;
        }
        table.total += 1;
        table.next_ticket += 1;
        let ticket = table.next_ticket;
        let displaced = CancellationToken::new();
        table.pending.insert(ticket, displaced.clone());
        let under_pressure = table.pending.len() * 2 > rules.max_pending;
        let handshake_timeout = if under_pressure {
            rules
                .handshake_timeout
                .min(rules.handshake_timeout_under_pressure)
        } else {
            rules.handshake_timeout
        };
        Ok(Admitted {
            slot: Slot {
                table: self.table.clone(),
                group,
                ticket: AtomicU64::new(ticket),
            },
            displaced,
            handshake_timeout,
        })
    }

    fn group_of(&self, ip: IpAddr) -> IpAddr {
        address_group(ip, self.rules.ipv4_prefix, self.rules.ipv6_prefix)
    }

    /// The per-group rules: its connection rate, then its share of slots.
    fn check_group(&self, table: &mut Table, group: IpAddr, now: Instant) -> Result<(), Refusal> {
        let rules = &self.rules;
        if rules.rate > 0 {
            let (rate, burst) = (f64::from(rules.rate), f64::from(rules.burst.max(1)));
            // Full buckets say nothing a fresh one would not: forget them
            // now and then, so the table holds only groups active lately.
            if table.rates.len() >= 1024 && table.rates.len().is_power_of_two() {
                table.rates.retain(|_, b| {
                    b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
                });
            }
            let bucket = table.rates.entry(group).or_insert(Bucket {
                tokens: burst,
                at: now,
            });
            let refill = now.saturating_duration_since(bucket.at).as_secs_f64() * rate;
            bucket.tokens = (bucket.tokens + refill).min(burst);
            bucket.at = now;
            if bucket.tokens < 1.0 {
                return Err(Refusal::TooFast {
                    per_second: rules.rate,
                });
            }
            bucket.tokens -= 1.0;
        }
        if table.per_group.get(&group).copied().unwrap_or(0) >= rules.max_per_group {
            return Err(Refusal::TooManyFromAddress {
                max: rules.max_per_group,
            });
        }
        Ok(())
    }

    /// Ends the oldest pending connection (its task frees its slot as it
    /// ends); false when nothing is pending.
    fn displace_oldest(table: &mut Table) -> bool {
        match table.pending.pop_first() {
            Some((_, token)) => {
                table.signals.bump();
                token.cancel();
                // Counted out now, so the newcomer fits while the displaced
                // task winds down; its slot's drop then skips the total.
                table.total -= 1;
                true
            }
            None => false,
        }
    }

    /// Connections still in their handshake.
    #[cfg(test)]
    fn pending(&self) -> usize {
        lock(&self.table).pending.len()
    }
}

impl Slot {
    /// The handshake is done: from now on this connection is a session,
    /// which no newcomer can displace. Cheap to call again.
    pub(crate) fn promote(&self) {
        let ticket = self.ticket.load(Ordering::Relaxed);
        // A displaced connection keeps its ticket (no longer pending), so
        // that dropping it does not count it out a second time.
        if ticket != 0 && lock(&self.table).pending.remove(&ticket).is_some() {
            self.ticket.store(0, Ordering::Relaxed);
        }
    }

    /// Counts this slot against `ip`'s group too (its rate and share), or
    /// says why not (the slot then stays unattributed, and is freed when
    /// dropped).
    pub(crate) fn attribute(&mut self, ip: IpAddr, admission: &Admission) -> Result<(), Refusal> {
        debug_assert!(self.group.is_none(), "attributed twice");
        let group = admission.group_of(ip);
        let mut table = lock(&self.table);
        admission.check_group(&mut table, group, Instant::now())?;
        *table.per_group.entry(group).or_default() += 1;
        self.group = Some(group);
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut table = lock(&self.table);
        let ticket = *self.ticket.get_mut();
        // A displaced connection was counted out of the total when it was
        // displaced (its ticket is no longer pending).
        if ticket == 0 || table.pending.remove(&ticket).is_some() {
            table.total -= 1;
        }
        if let Some(group) = self.group
            && let Some(n) = table.per_group.get_mut(&group)
        {
            *n -= 1;
            if *n == 0 {
                table.per_group.remove(&group);
            }
        }
    }
}

// Turning a connection away at once, with a reason it can read: a v2 peer
// gets a CLOSE instead of a WELCOME (1016 server full, 1008 for too many
// from its address); a v1 peer, which reads nothing, is closed. Refusals
// are bounded too, so a flood of them costs little.

/// How long a refused peer gets to show its version byte.
const FIRST_BYTE_WAIT: Duration = Duration::from_secs(1);

/// Reads the peer's first byte (briefly), answers in its version, closes.
pub(crate) async fn refuse(
    mut stream: TcpStream,
    peer: SocketAddr,
    why: Refusal,
    transport: super::service::Transport,
) {
    if let Some(suppressed) = admit_global() {
        warn!(%peer, suppressed = suppressed_field(suppressed), %transport, "connection refused: {why}");
    }
    #[cfg(feature = "websocket")]
    if transport == super::service::Transport::WebSocket {
        // A browser reads HTTP first: it is told in HTTP.
        crate::transport::turn_away(stream, &why.to_string(), FIRST_BYTE_WAIT).await;
        return;
    }
    let mut first = [0u8; 1];
    let version = match tokio::time::timeout(FIRST_BYTE_WAIT, stream.read(&mut first)).await {
        Ok(Ok(1)) => Some(first[0]),
        _ => None,
    };
    if version == Some(v2::VERSION) {
        let code = match why {
            Refusal::ServerFull { .. } => CloseCode::SERVER_FULL,
            Refusal::TooManyFromAddress { .. } | Refusal::TooFast { .. } => {
                CloseCode::POLICY_VIOLATION
            }
        };
        // The session writes the CLOSE, as it writes every v2 frame.
        let mut out = BytesMut::new();
        let mut session = Session::server(SessionConfig::default(), Instant::now());
        let _ = session.close(code, why.to_string(), &mut out);
        let _ = tokio::time::timeout(FIRST_BYTE_WAIT, stream.write_all(&out)).await;
    } else {
        // v1 reads nothing, so it can only learn of a refusal from how the
        // connection ends: a reset, never the orderly close that follows
        // its `exit` when everything was read.
        let _ = stream.set_zero_linger();
        return;
    }
    let _ = stream.shutdown().await;
    // Closing with its HELLO unread would reset the connection and could
    // destroy our CLOSE before the peer reads it: read what it sends until
    // it closes too, briefly.
    let mut sink = [0u8; 1024];
    let until = tokio::time::Instant::now() + FIRST_BYTE_WAIT;
    while let Ok(Ok(n)) = tokio::time::timeout_at(until, stream.read(&mut sink)).await {
        if n == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> AdmissionRules {
        AdmissionRules {
            max_total: 3,
            max_per_group: 2,
            max_pending: 3,
            handshake_timeout: Duration::from_secs(10),
            handshake_timeout_under_pressure: Duration::from_secs(1),
            rate: 0,
            burst: 0,
            ipv4_prefix: 32,
            ipv6_prefix: 64,
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn limits_per_address_and_frees_on_drop() {
        let a = Admission::new(rules());
        let t = Instant::now();
        let s1 = a.admit(ip("127.0.0.2"), t).unwrap();
        let _s2 = a.admit(ip("127.0.0.2"), t).unwrap();
        assert_eq!(
            a.admit(ip("127.0.0.2"), t).unwrap_err(),
            Refusal::TooManyFromAddress { max: 2 }
        );
        drop(s1);
        assert!(a.admit(ip("127.0.0.2"), t).is_ok());
        let table = lock(&a.table);
        assert!(table.per_group.len() <= 1, "no entry for nobody");
    }

    #[test]
    fn sessions_are_never_evicted_and_a_full_server_of_sessions_refuses() {
        let a = Admission::new(rules());
        let t = Instant::now();
        let sessions: Vec<_> = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
            .iter()
            .map(|s| a.admit(ip(s), t).unwrap())
            .collect();
        for s in &sessions {
            s.slot.promote();
        }
        assert_eq!(
            a.admit(ip("127.0.0.5"), t).unwrap_err(),
            Refusal::ServerFull { max: 3 }
        );
        assert!(sessions.iter().all(|s| !s.displaced.is_cancelled()));
    }

    #[test]
    fn a_newcomer_displaces_the_oldest_pending_connection() {
        let a = Admission::new(AdmissionRules {
            max_total: 10,
            max_per_group: 10,
            ..rules()
        });
        let t = Instant::now();
        let first = a.admit(ip("127.0.0.2"), t).unwrap();
        let second = a.admit(ip("127.0.0.3"), t).unwrap();
        second.slot.promote();
        let third = a.admit(ip("127.0.0.4"), t).unwrap();
        let fourth = a.admit(ip("127.0.0.5"), t).unwrap();
        assert!(!first.displaced.is_cancelled(), "3 pending fit");
        let fifth = a.admit(ip("127.0.0.6"), t).unwrap();
        assert!(first.displaced.is_cancelled(), "the oldest pending went");
        assert!(!second.displaced.is_cancelled(), "a session stays");
        assert!(!third.displaced.is_cancelled());
        assert_eq!(a.pending(), 3);
        // The displaced connection's task ends and frees nothing twice.
        drop(first);
        drop((second, third, fourth, fifth));
        let table = lock(&a.table);
        assert_eq!((table.total, table.per_group.len()), (0, 0));
    }

    #[test]
    fn when_every_slot_is_taken_a_pending_one_makes_room() {
        let a = Admission::new(AdmissionRules {
            max_pending: 10,
            max_per_group: 10,
            ..rules()
        });
        let t = Instant::now();
        let session = a.admit(ip("127.0.0.2"), t).unwrap();
        session.slot.promote();
        let pending = a.admit(ip("127.0.0.2"), t).unwrap();
        let _other = a.admit(ip("127.0.0.3"), t).unwrap();
        let newcomer = a.admit(ip("127.0.0.4"), t).unwrap();
        assert!(pending.displaced.is_cancelled());
        assert!(!session.displaced.is_cancelled());
        assert!(!newcomer.displaced.is_cancelled());
    }

    #[test]
    fn the_handshake_deadline_shrinks_once_half_the_pending_budget_is_used() {
        let a = Admission::new(AdmissionRules {
            max_total: 100,
            max_per_group: 100,
            max_pending: 4,
            ..rules()
        });
        let t = Instant::now();
        let held: Vec<_> = (0..4)
            .map(|_| a.admit(ip("127.0.0.2"), t).unwrap())
            .collect();
        let deadlines: Vec<_> = held.iter().map(|a| a.handshake_timeout.as_secs()).collect();
        assert_eq!(deadlines, [10, 10, 1, 1]);
    }

    #[test]
    fn a_group_past_its_rate_is_refused_until_its_bucket_refills() {
        let a = Admission::new(AdmissionRules {
            max_total: 100,
            max_per_group: 100,
            max_pending: 100,
            rate: 10,
            burst: 3,
            ..rules()
        });
        let t = Instant::now();
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(a.admit(ip("127.0.0.2"), t).unwrap());
        }
        assert_eq!(
            a.admit(ip("127.0.0.2"), t).unwrap_err(),
            Refusal::TooFast { per_second: 10 }
        );
        assert!(a.admit(ip("127.0.0.3"), t).is_ok(), "another group is not");
        let later = t + Duration::from_millis(100);
        assert!(a.admit(ip("127.0.0.2"), later).is_ok(), "one token back");
        assert!(a.admit(ip("127.0.0.2"), later).is_err());
    }

    #[test]
    fn ipv6_counts_by_its_64_and_ipv4_by_its_32_unless_told_otherwise() {
        let g = |s: &str, v4, v6| address_group(s.parse().unwrap(), v4, v6).to_string();
        assert_eq!(g("2001:db8:1:2:aaaa::1", 32, 64), "2001:db8:1:2::");
        assert_eq!(g("2001:db8:1:2:bbbb::9", 32, 64), "2001:db8:1:2::");
        assert_eq!(g("2001:db8:1:3::1", 32, 64), "2001:db8:1:3::");
        assert_eq!(g("2001:db8:1:3::1", 32, 48), "2001:db8:1::");
        assert_eq!(g("2001:db8::1", 32, 128), "2001:db8::1");
        assert_eq!(g("::1", 32, 0), "::");
        assert_eq!(g("203.0.113.77", 32, 64), "203.0.113.77");
        assert_eq!(g("203.0.113.77", 24, 64), "203.0.113.0");
        assert_eq!(g("203.0.113.77", 0, 64), "0.0.0.0");
        assert_eq!(
            g("::ffff:203.0.113.77", 24, 64),
            "203.0.113.0",
            "mapped: IPv4"
        );
    }

    #[test]
    fn the_per_address_limit_applies_to_the_whole_ipv6_64() {
        let a = Admission::new(AdmissionRules {
            max_total: 100,
            max_pending: 100,
            ..rules()
        });
        let t = Instant::now();
        let _a = a.admit(ip("2001:db8::1"), t).unwrap();
        let _b = a.admit(ip("2001:db8::2"), t).unwrap();
        assert_eq!(
            a.admit(ip("2001:db8::ffff:3"), t).unwrap_err(),
            Refusal::TooManyFromAddress { max: 2 }
        );
        assert!(a.admit(ip("2001:db8:0:1::1"), t).is_ok(), "the next /64");
    }

    #[test]
    fn a_proxied_slot_counts_against_its_real_address_once_known() {
        let a = Admission::new(AdmissionRules {
            max_total: 10,
            max_per_group: 1,
            max_pending: 10,
            ..rules()
        });
        let t = Instant::now();
        let real: IpAddr = "198.51.100.9".parse().unwrap();
        let mut first = a.admit(None, t).unwrap();
        let mut second = a.admit(None, t).unwrap();
        first.slot.attribute(real, &a).unwrap();
        assert_eq!(
            second.slot.attribute(real, &a).unwrap_err(),
            Refusal::TooManyFromAddress { max: 1 }
        );
        drop(second);
        drop(first);
        let table = lock(&a.table);
        assert_eq!((table.total, table.per_group.len()), (0, 0));
    }
}
