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

impl Refusal {
    /// The `reason` label of the refused-connections metric.
    pub(crate) fn metric_label(&self) -> &'static str {
        match self {
            Refusal::ServerFull { .. } => "server_full",
            Refusal::TooManyFromAddress { .. } => "per_address",
        }
    }
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
    /// The address it counts against (`None` until a PROXY header names it).
    ip: Option<IpAddr>,
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
            ip: Some(ip),
        })
    }

    /// A slot counted against the total only: behind a load balancer, the
    /// address is known once the connection's PROXY header is read, and
    /// [`Slot::attribute`] counts it then.
    pub(crate) fn admit_unattributed(&self) -> Result<Slot, Refusal> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if counts.total >= self.max_total {
            return Err(Refusal::ServerFull {
                max: self.max_total,
            });
        }
        counts.total += 1;
        Ok(Slot {
            counts: self.counts.clone(),
            ip: None,
        })
    }

    fn max_per_ip(&self) -> usize {
        self.max_per_ip
    }
}

impl Slot {
    /// Counts this slot against `ip` too, or says why not (the slot then
    /// stays unattributed, and is freed when dropped).
    pub(crate) fn attribute(&mut self, ip: IpAddr, admission: &Admission) -> Result<(), Refusal> {
        debug_assert!(self.ip.is_none(), "attributed twice");
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let from_ip = counts.per_ip.entry(ip).or_default();
        if *from_ip >= admission.max_per_ip() {
            let max = admission.max_per_ip();
            if *from_ip == 0 {
                counts.per_ip.remove(&ip);
            }
            return Err(Refusal::TooManyFromAddress { max });
        }
        *from_ip += 1;
        self.ip = Some(ip);
        Ok(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.total -= 1;
        if let Some(ip) = self.ip
            && let Some(n) = counts.per_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                counts.per_ip.remove(&ip);
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

    #[test]
    fn a_proxied_slot_counts_against_its_real_address_once_known() {
        let a = Admission::new(10, 1);
        let real: IpAddr = "198.51.100.9".parse().unwrap();
        let mut first = a.admit_unattributed().unwrap();
        let mut second = a.admit_unattributed().unwrap();
        first.attribute(real, &a).unwrap();
        assert_eq!(
            second.attribute(real, &a).unwrap_err(),
            Refusal::TooManyFromAddress { max: 1 }
        );
        drop(second);
        drop(first);
        let counts = a.counts.lock().unwrap();
        assert_eq!((counts.total, counts.per_ip.len()), (0, 0));
    }
}
