//! Who gets a connection slot. A server at its limit does not leave new
//! peers hanging in the kernel's backlog (where a few hundred silent
//! sockets could park every newcomer indefinitely): it answers at once,
//! with a reason. One address may hold only so many slots, so a single
//! host cannot take them all.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Why a new connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Every slot is taken.
    ServerFull { max: usize },
    /// This address holds its share already.
    TooManyFromAddress { max: usize },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::ServerFull { max } => {
                write!(f, "server full ({max} connections); try again later")
            }
            Refusal::TooManyFromAddress { max } => {
                write!(f, "too many connections from your address (at most {max})")
            }
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// The slots of one server.
#[derive(Debug, Clone)]
pub(crate) struct Admission {
    counts: Arc<Mutex<Counts>>,
    max_total: usize,
    max_per_ip: usize,
}

/// A slot held; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Admission {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Self {
        Admission {
            counts: Arc::default(),
            max_total,
            max_per_ip,
        }
    }

    /// A slot for a connection from `ip`, or why not.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<Slot, Refusal> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.total >= self.max_total {
            return Err(Refusal::ServerFull {
                max: self.max_total,
            });
        }
        let from_ip = counts.per_ip.entry(ip).or_default();
        if *from_ip >= self.max_per_ip {
            return Err(Refusal::TooManyFromAddress {
                max: self.max_per_ip,
            });
        }
        *from_ip += 1;
        counts.total += 1;
        Ok(Slot {
            counts: self.counts.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.total -= 1;
        if let Some(n) = counts.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_total_and_per_address_and_frees_on_drop() {
        let a = Admission::new(3, 2);
        let ip1: IpAddr = "127.0.0.2".parse().unwrap();
        let ip2: IpAddr = "127.0.0.3".parse().unwrap();
        let s1 = a.admit(ip1).unwrap();
        let _s2 = a.admit(ip1).unwrap();
        assert_eq!(
            a.admit(ip1).unwrap_err(),
            Refusal::TooManyFromAddress { max: 2 }
        );
        let _s3 = a.admit(ip2).unwrap();
        assert_eq!(a.admit(ip2).unwrap_err(), Refusal::ServerFull { max: 3 });
        drop(s1);
        assert!(a.admit(ip1).is_ok());
        assert!(
            a.counts.lock().unwrap().per_ip.len() <= 2,
            "no entry for nobody"
        );
    }
}
