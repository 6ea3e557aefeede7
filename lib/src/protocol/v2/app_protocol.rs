//! The application protocol spoken over v2, negotiated in the handshake as
//! ALPN negotiates one for TLS (spec 3.3.2): the client's HELLO says which
//! protocol it wants, the versions of it and the encodings it speaks
//! (extension `0x0002`); the server's WELCOME says what it chose, or the
//! server refuses with CLOSE 1010 naming both sides. So a mismatch is found
//! before any message, not by the first message that fails to decode.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;
use std::ops::RangeInclusive;

/// How an application protocol's messages are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// MessagePack with named fields: self-describing, and every language
    /// has a library for it.
    MessagePack,
    /// postcard: compact, for Rust peers on both ends.
    Postcard,
}

impl Encoding {
    /// Its byte on the wire.
    pub fn to_byte(self) -> u8 {
        match self {
            Encoding::MessagePack => 1,
            Encoding::Postcard => 2,
        }
    }

    /// The encoding a byte names, if we know it.
    pub fn from_byte(b: u8) -> Option<Encoding> {
        match b {
            1 => Some(Encoding::MessagePack),
            2 => Some(Encoding::Postcard),
            _ => None,
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::MessagePack => "msgpack",
            Encoding::Postcard => "postcard",
        })
    }
}

/// One side's application protocol: its name, the versions it speaks and
/// the encodings it accepts, most preferred first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppProtocol {
    /// The protocol's name (`"kv"`): 1 to 32 bytes of ASCII letters,
    /// digits, `-`, `_` and `.`.
    pub name: String,
    /// The versions spoken, lowest to highest.
    pub versions: RangeInclusive<u16>,
    /// The encodings spoken, most preferred first.
    pub encodings: Vec<Encoding>,
}

/// What the handshake settled on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AppChoice {
    /// The protocol's name.
    pub name: String,
    /// The version both sides speak (the highest they share).
    pub version: u16,
    /// The encoding both sides speak (the client's first that the server
    /// speaks too).
    pub encoding: Encoding,
}

/// An application-protocol extension that is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed application protocol extension: {0}")]
pub struct AppProtocolError(pub &'static str);

impl AppProtocol {
    /// A protocol named `name` speaking `versions`, in MessagePack.
    pub fn new(name: impl Into<String>, versions: RangeInclusive<u16>) -> Self {
        AppProtocol {
            name: name.into(),
            versions,
            encodings: vec![Encoding::MessagePack],
        }
    }

    /// The encodings spoken, most preferred first.
    pub fn encodings(mut self, encodings: Vec<Encoding>) -> Self {
        self.encodings = encodings;
        self
    }

    /// Whether this could ever be negotiated: a valid name, versions from
    /// low to high, at least one encoding.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 32
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return Err(format!(
                "application protocol name {:?}: 1 to 32 ASCII letters, digits, '-', '_' or '.'",
                self.name
            ));
        }
        if self.versions.is_empty() {
            return Err(format!("application protocol {}: no versions", self.name));
        }
        if self.encodings.is_empty() || self.encodings.len() > 255 {
            return Err(format!("application protocol {}: no encodings", self.name));
        }
        Ok(())
    }

    /// The HELLO's extension data: `name_len u8, name, min u16, max u16,
    /// count u8, encodings [count] u8`.
    pub fn encode_offer(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(self.name.len() as u8);
        b.put_slice(self.name.as_bytes());
        b.put_u16(*self.versions.start());
        b.put_u16(*self.versions.end());
        b.put_u8(self.encodings.len() as u8);
        for e in &self.encodings {
            b.put_u8(e.to_byte());
        }
        b.freeze()
    }

    /// Reads a HELLO's offer. Encodings we do not know are kept out.
    pub fn decode_offer(data: &[u8]) -> Result<AppProtocol, AppProtocolError> {
        let mut r = Reader(data);
        let name = r.name()?;
        let (min, max) = (r.u16()?, r.u16()?);
        let count = r.u8()? as usize;
        let encodings = r
            .take(count)?
            .iter()
            .filter_map(|&b| Encoding::from_byte(b))
            .collect();
        r.end()?;
        Ok(AppProtocol {
            name,
            versions: min..=max,
            encodings,
        })
    }

    /// The server's choice for a client's `offer`, or the reason (for CLOSE
    /// 1010) it has none, naming both sides.
    pub fn negotiate(&self, offer: &AppProtocol) -> Result<AppChoice, String> {
        let (ours, theirs) = (self.describe(), offer.describe());
        if offer.name != self.name {
            return Err(format!("server speaks {ours}, client asks for {theirs}"));
        }
        let low = (*self.versions.start()).max(*offer.versions.start());
        let high = (*self.versions.end()).min(*offer.versions.end());
        if low > high {
            return Err(format!("server speaks {ours}, client {theirs}"));
        }
        let encoding = offer
            .encodings
            .iter()
            .copied()
            .find(|e| self.encodings.contains(e))
            .ok_or_else(|| {
                format!(
                    "no common encoding: server speaks {}, client {}",
                    list(&self.encodings),
                    list(&offer.encodings)
                )
            })?;
        Ok(AppChoice {
            name: self.name.clone(),
            version: high,
            encoding,
        })
    }

    /// `kv 2-3` (or `kv 2` for one version).
    fn describe(&self) -> String {
        let (a, b) = (self.versions.start(), self.versions.end());
        if a == b {
            format!("{} {a}", self.name)
        } else {
            format!("{} {a}-{b}", self.name)
        }
    }
}

fn list(encodings: &[Encoding]) -> String {
    let names: Vec<String> = encodings.iter().map(ToString::to_string).collect();
    if names.is_empty() {
        "none we know".into()
    } else {
        names.join(", ")
    }
}

impl AppChoice {
    /// The WELCOME's extension data: `name_len u8, name, version u16,
    /// encoding u8`.
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_u8(self.name.len() as u8);
        b.put_slice(self.name.as_bytes());
        b.put_u16(self.version);
        b.put_u8(self.encoding.to_byte());
        b.freeze()
    }

    /// Reads a WELCOME's choice.
    pub fn decode(data: &[u8]) -> Result<AppChoice, AppProtocolError> {
        let mut r = Reader(data);
        let name = r.name()?;
        let version = r.u16()?;
        let encoding = Encoding::from_byte(r.u8()?).ok_or(AppProtocolError("unknown encoding"))?;
        r.end()?;
        Ok(AppChoice {
            name,
            version,
            encoding,
        })
    }

    /// Whether a client that offered `offer` can accept this choice.
    pub fn fits(&self, offer: &AppProtocol) -> bool {
        self.name == offer.name
            && offer.versions.contains(&self.version)
            && offer.encodings.contains(&self.encoding)
    }
}

impl fmt::Display for AppChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.name, self.version, self.encoding)
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], AppProtocolError> {
        if self.0.len() < n {
            return Err(AppProtocolError("too short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, AppProtocolError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, AppProtocolError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn name(&mut self) -> Result<String, AppProtocolError> {
        let len = self.u8()? as usize;
        let raw = self.take(len)?;
        if raw.is_empty() || !raw.is_ascii() {
            return Err(AppProtocolError("the name must be 1 to 255 ASCII bytes"));
        }
        Ok(String::from_utf8_lossy(raw).into_owned())
    }
    fn end(&self) -> Result<(), AppProtocolError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AppProtocolError("bytes after the last field"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(versions: RangeInclusive<u16>) -> AppProtocol {
        AppProtocol::new("kv", versions)
    }

    #[test]
    fn offers_and_choices_round_trip() {
        let offer = kv(1..=2).encodings(vec![Encoding::Postcard, Encoding::MessagePack]);
        assert_eq!(
            &offer.encode_offer()[..],
            &[2, b'k', b'v', 0, 1, 0, 2, 2, 2, 1]
        );
        assert_eq!(AppProtocol::decode_offer(&offer.encode_offer()), Ok(offer));
        let choice = AppChoice {
            name: "kv".into(),
            version: 2,
            encoding: Encoding::MessagePack,
        };
        assert_eq!(&choice.encode()[..], &[2, b'k', b'v', 0, 2, 1]);
        assert_eq!(AppChoice::decode(&choice.encode()), Ok(choice));
        assert!(AppProtocol::decode_offer(&[2, b'k', b'v', 0, 1]).is_err());
        assert!(AppChoice::decode(&[2, b'k', b'v', 0, 2, 1, 9]).is_err());
    }

    #[test]
    fn the_highest_common_version_and_the_clients_first_common_encoding() {
        let server = kv(2..=3).encodings(vec![Encoding::MessagePack, Encoding::Postcard]);
        let client = kv(1..=4).encodings(vec![Encoding::Postcard, Encoding::MessagePack]);
        let choice = server.negotiate(&client).unwrap();
        assert_eq!((choice.version, choice.encoding), (3, Encoding::Postcard));
        assert!(choice.fits(&client));
    }

    #[test]
    fn a_mismatch_names_both_sides() {
        let server = kv(2..=3);
        assert_eq!(
            server.negotiate(&kv(1..=1)).unwrap_err(),
            "server speaks kv 2-3, client kv 1"
        );
        assert_eq!(
            server
                .negotiate(&AppProtocol::new("chat", 1..=1))
                .unwrap_err(),
            "server speaks kv 2-3, client asks for chat 1"
        );
        assert_eq!(
            server
                .negotiate(&kv(2..=2).encodings(vec![Encoding::Postcard]))
                .unwrap_err(),
            "no common encoding: server speaks msgpack, client postcard"
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(kv(1..=1).validate().is_ok());
        assert!(AppProtocol::new("", 1..=1).validate().is_err());
        assert!(AppProtocol::new("k v", 1..=1).validate().is_err());
        #[allow(clippy::reversed_empty_ranges)]
        let backwards = kv(3..=1);
        assert!(backwards.validate().is_err());
    }
}
