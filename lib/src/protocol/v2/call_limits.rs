//! The calls extension (`0x0003`, spec 3.13) in the handshake: a client
//! says it speaks calls, and a server that does too answers with the limits
//! it keeps. Only then may either side send the frames of calls, so every
//! v2 peer that predates them is unchanged.
//!
//! ```text
//! HELLO   data: version u8 (1)
//! WELCOME data: version u8 (1) | max_calls u16 | stream_credit u32 | max_deadline_ms u32
//! ```

use std::time::Duration;

/// The version of the calls extension this library speaks.
pub const CALLS_VERSION: u8 = 1;

/// What a server allows a client's calls, announced in its WELCOME.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallLimits {
    /// Calls one connection may have in flight; one more is refused with
    /// STATUS 4 and the connection goes on.
    pub max_calls: u16,
    /// Items every client stream may send before the server grants more:
    /// the server's memory for one stream is bounded by this many frames.
    pub stream_credit: u32,
    /// The longest deadline a call is given, in ms (a call without one gets
    /// this one); 0 for no cap.
    pub max_deadline_ms: u32,
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits {
            max_calls: 100,
            stream_credit: 16,
            max_deadline_ms: 0,
        }
    }
}

impl CallLimits {
    /// Limits with `max_calls` calls in flight, `stream_credit` items per
    /// client stream, and no deadline cap.
    pub fn new(max_calls: u16, stream_credit: u32) -> Self {
        CallLimits {
            max_calls,
            stream_credit,
            max_deadline_ms: 0,
        }
    }

    /// Caps every call's deadline (`None`: no cap).
    pub fn max_deadline(mut self, cap: Option<Duration>) -> Self {
        self.max_deadline_ms = cap.map_or(0, |d| d.as_millis().clamp(1, u32::MAX.into()) as u32);
        self
    }

    /// The deadline a call asking for `asked_ms` (0: none) gets, in ms (0:
    /// none).
    pub fn deadline_ms(&self, asked_ms: u32) -> u32 {
        match (asked_ms, self.max_deadline_ms) {
            (0, cap) => cap,
            (asked, 0) => asked,
            (asked, cap) => asked.min(cap),
        }
    }

    /// The WELCOME's data.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut data = vec![CALLS_VERSION];
        data.extend(self.max_calls.to_be_bytes());
        data.extend(self.stream_credit.to_be_bytes());
        data.extend(self.max_deadline_ms.to_be_bytes());
        data
    }

    /// Reads a WELCOME's data; `None` when it is no version-1 answer.
    pub(crate) fn decode(data: &[u8]) -> Result<CallLimits, &'static str> {
        match data {
            [CALLS_VERSION, c0, c1, s0, s1, s2, s3, d0, d1, d2, d3] => Ok(CallLimits {
                max_calls: u16::from_be_bytes([*c0, *c1]),
                stream_credit: u32::from_be_bytes([*s0, *s1, *s2, *s3]),
                max_deadline_ms: u32::from_be_bytes([*d0, *d1, *d2, *d3]),
            }),
            _ => Err("malformed calls extension: expected version 1 and 10 bytes of limits"),
        }
    }

    /// Whether a HELLO's data asks for a version we speak.
    pub(crate) fn offered(data: &[u8]) -> Result<bool, &'static str> {
        if data.is_empty() {
            return Err("malformed calls extension: no version");
        }
        Ok(data.contains(&CALLS_VERSION))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_round_trip_and_deadlines_are_capped() {
        let l = CallLimits::new(7, 3).max_deadline(Some(Duration::from_secs(2)));
        assert_eq!(CallLimits::decode(&l.encode()), Ok(l));
        assert!(CallLimits::decode(&[1, 0]).is_err());
        assert_eq!(l.deadline_ms(0), 2000);
        assert_eq!(l.deadline_ms(500), 500);
        assert_eq!(l.deadline_ms(5000), 2000);
        assert_eq!(CallLimits::default().deadline_ms(0), 0);
        assert_eq!(CallLimits::offered(&[1]), Ok(true));
        assert_eq!(CallLimits::offered(&[9]), Ok(false));
        assert!(CallLimits::offered(&[]).is_err());
    }
}
