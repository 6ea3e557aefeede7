//! Whether two schemas of a protocol can talk: every change from `old` to
//! `new`, and which peers it breaks — an old client with a new server, a
//! new client with an old server — in each encoding both speak, as
//! `buf breaking` does for protobuf.
//!
//! Types are compared by structure from the protocol's six top types, not
//! by name (neither encoding carries a type's name, so renaming a Rust type
//! breaks nothing). What breaks depends on who writes a type and who reads
//! it: requests, one-way messages and client stream items are written by
//! clients; responses, errors, events and server stream items by servers.
//! MessagePack carries field names, so a reader ignores fields it does not
//! know and fills in defaults for fields left out; postcard is positional,
//! so any change to a field list breaks both ways.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use super::schema::{Field, Schema, Shape, Type, Variant};

/// Two peers of different schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Peers {
    /// A client built from the old schema talking to a server built from
    /// the new one (the server was upgraded first).
    OldClientNewServer,
    /// A client built from the new schema talking to an old server (the
    /// client was upgraded first).
    NewClientOldServer,
}

impl std::fmt::Display for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Peers::OldClientNewServer => "old client → new server",
            Peers::NewClientOldServer => "new client → old server",
        })
    }
}

/// One difference between the schemas, and whom it breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Change {
    /// What changed, in words (``field `tags` of `Job` added without a default``).
    pub what: String,
    /// The peers and encodings it breaks (empty: it breaks nothing).
    pub breaks: Vec<(Peers, String)>,
}

impl Change {
    /// Whether any peer is broken by it.
    pub fn is_breaking(&self) -> bool {
        !self.breaks.is_empty()
    }
}

/// Who writes values of a type.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writer {
    Client,
    Server,
}

/// Which ways a difference fails: a value written under the old schema
/// read under the new, and the reverse.
#[derive(Clone, Copy, Default)]
struct Fails {
    old_read_by_new: bool,
    new_read_by_old: bool,
}

const BOTH: Fails = Fails {
    old_read_by_new: true,
    new_read_by_old: true,
};
const NONE: Fails = Fails {
    old_read_by_new: false,
    new_read_by_old: false,
};
/// Only what the old schema wrote fails to read under the new one.
const OLD_UNREADABLE: Fails = Fails {
    old_read_by_new: true,
    new_read_by_old: false,
};
/// Only what the new schema wrote fails to read under the old one.
const NEW_UNREADABLE: Fails = Fails {
    old_read_by_new: false,
    new_read_by_old: true,
};

impl Schema {
    /// Every change from `old` to `self`, and which peers it breaks in the
    /// encodings both speak.
    pub fn changes_since(&self, old: &Schema) -> Vec<Change> {
        let mut c = Compare {
            old,
            new: self,
            encodings: old
                .encodings
                .iter()
                .filter(|e| self.encodings.contains(e))
                .cloned()
                .collect(),
            changes: Vec::new(),
            seen: BTreeSet::new(),
        };
        c.protocol();
        c.changes
    }
}

struct Compare<'a> {
    old: &'a Schema,
    new: &'a Schema,
    encodings: Vec<String>,
    changes: Vec<Change>,
    /// (old type, new type, writer) pairs already compared: types recurse.
    seen: BTreeSet<(String, String, bool)>,
}

impl Compare<'_> {
    fn protocol(&mut self) {
        let (old, new) = (self.old, self.new);
        if old.protocol != new.protocol {
            self.everyone(format!(
                "the protocol's name changed from `{}` to `{}`: the handshake refuses",
                old.protocol, new.protocol
            ));
            return;
        }
        let [old_low, old_high] = old.versions;
        let [new_low, new_high] = new.versions;
        if new_high < old_low || old_high < new_low {
            self.everyone(format!(
                "versions {old_low}-{old_high} became {new_low}-{new_high}: none in common, the handshake refuses"
            ));
            return;
        }
        if self.encodings.is_empty() {
            self.everyone(format!(
                "encodings {:?} became {:?}: none in common, the handshake refuses",
                old.encodings, new.encodings
            ));
            return;
        }
        for e in &old.encodings {
            if !new.encodings.contains(e) {
                self.note(format!("encoding `{e}` dropped"), NONE, Writer::Client);
            }
        }
        self.calls();
        let tops = [
            ("request", &old.request, &new.request, Writer::Client),
            ("message", &old.message, &new.message, Writer::Client),
            ("response", &old.response, &new.response, Writer::Server),
            ("error", &old.error, &new.error, Writer::Server),
            ("event", &old.event, &new.event, Writer::Server),
            ("item", &old.item, &new.item, Writer::Client),
            ("item", &old.item, &new.item, Writer::Server),
        ];
        for (what, o, n, writer) in tops {
            self.ty(what, o, n, writer);
        }
        // The same difference found from two sides is said once, with
        // every peer it breaks.
        let mut merged: Vec<Change> = Vec::new();
        for change in std::mem::take(&mut self.changes) {
            match merged.iter_mut().find(|m| m.what == change.what) {
                Some(m) => {
                    for b in change.breaks {
                        if !m.breaks.contains(&b) {
                            m.breaks.push(b);
                        }
                    }
                    m.breaks.sort();
                }
                None => merged.push(change),
            }
        }
        self.changes = merged;
    }

    /// The calls: added without a new version, removed, or of another kind.
    fn calls(&mut self) {
        let (old, new) = (self.old, self.new);
        let old_high = old.versions[1];
        for call in &new.calls {
            match old.calls.iter().find(|c| c.name == call.name) {
                None if call.since <= old_high => self.note(
                    format!(
                        "call `{}` added in version {}, which old servers speak too (a reused version number): give it #[since({})] and the protocol that version",
                        call.name,
                        call.since,
                        old_high + 1
                    ),
                    NEW_UNREADABLE,
                    Writer::Client,
                ),
                None => self.note(
                    format!("call `{}` added in version {}", call.name, call.since),
                    NONE,
                    Writer::Client,
                ),
                Some(was) if was.kind != call.kind || was.client_stream != call.client_stream => self.note(
                    format!(
                        "call `{}` was {} and is {}",
                        call.name,
                        kind_text(was),
                        kind_text(call)
                    ),
                    BOTH,
                    Writer::Client,
                ),
                Some(_) => {}
            }
        }
        for call in &old.calls {
            if !new.calls.iter().any(|c| c.name == call.name) {
                self.note(
                    format!("call `{}` removed", call.name),
                    OLD_UNREADABLE,
                    Writer::Client,
                );
            }
        }
    }

    fn everyone(&mut self, what: String) {
        let breaks = [Peers::OldClientNewServer, Peers::NewClientOldServer]
            .into_iter()
            .flat_map(|p| self.encodings_or_all().into_iter().map(move |e| (p, e)))
            .collect();
        self.changes.push(Change { what, breaks });
    }

    fn encodings_or_all(&self) -> Vec<String> {
        if self.encodings.is_empty() {
            self.old.encodings.clone()
        } else {
            self.encodings.clone()
        }
    }

    /// Records a change that fails the same way in every encoding.
    fn note(&mut self, what: String, fails: Fails, writer: Writer) {
        let per: Vec<(String, Fails)> = self.encodings.iter().map(|e| (e.clone(), fails)).collect();
        self.record(what, per, writer);
    }

    /// Records a change that fails by encoding: `msgpack` and `postcard`.
    fn by_encoding(&mut self, what: String, msgpack: Fails, postcard: Fails, writer: Writer) {
        let per = self
            .encodings
            .iter()
            .map(|e| (e.clone(), if e == "postcard" { postcard } else { msgpack }))
            .collect();
        self.record(what, per, writer);
    }

    fn record(&mut self, what: String, per: Vec<(String, Fails)>, writer: Writer) {
        let mut breaks = Vec::new();
        for (encoding, fails) in per {
            // Which reading fails for which peers depends on who writes.
            let (ocns, ncos) = match writer {
                // Client writes, server reads: an old client's value is read
                // by a new server; a new client's by an old server.
                Writer::Client => (fails.old_read_by_new, fails.new_read_by_old),
                // Server writes, client reads: a new server's value is read
                // by an old client; an old server's by a new client.
                Writer::Server => (fails.new_read_by_old, fails.old_read_by_new),
            };
            if ocns {
                breaks.push((Peers::OldClientNewServer, encoding.clone()));
            }
            if ncos {
                breaks.push((Peers::NewClientOldServer, encoding));
            }
        }
        breaks.sort();
        self.changes.push(Change { what, breaks });
    }

    fn ty(&mut self, at: &str, o: &Type, n: &Type, writer: Writer) {
        match (o, n) {
            (Type::Named(on), Type::Named(nn)) => {
                if !self
                    .seen
                    .insert((on.clone(), nn.clone(), writer == Writer::Client))
                {
                    return;
                }
                let (Some(ot), Some(nt)) = (self.old.types.get(on), self.new.types.get(nn)) else {
                    return;
                };
                let at = if on == nn {
                    on.clone()
                } else {
                    format!("{on} (now {nn})")
                };
                self.shape(&at, &ot.shape, &nt.shape, writer);
            }
            (Type::Option(a), Type::Option(b)) | (Type::Seq(a), Type::Seq(b)) => {
                self.ty(at, a, b, writer)
            }
            (Type::Array { item: a, len: la }, Type::Array { item: b, len: lb }) if la == lb => {
                self.ty(at, a, b, writer)
            }
            (Type::Map { key: ka, value: va }, Type::Map { key: kb, value: vb }) => {
                self.ty(at, ka, kb, writer);
                self.ty(at, va, vb, writer);
            }
            (Type::Tuple(a), Type::Tuple(b)) if a.len() == b.len() => {
                for (x, y) in a.iter().zip(b) {
                    self.ty(at, x, y, writer);
                }
            }
            // A value becoming optional: MessagePack reads the old value
            // as `Some`, but an old reader cannot take a `None`.
            (t, Type::Option(b)) if **b == *t => self.by_encoding(
                format!("{at}: {t} became optional"),
                NEW_UNREADABLE,
                BOTH,
                writer,
            ),
            (a, b) if a == b => {}
            (a, b) => self.note(format!("{at}: type changed from {a} to {b}"), BOTH, writer),
        }
    }

    fn shape(&mut self, at: &str, o: &Shape, n: &Shape, writer: Writer) {
        match (o, n) {
            (Shape::Struct(of), Shape::Struct(nf)) => self.fields(at, of, nf, writer),
            (Shape::Enum(ov), Shape::Enum(nv)) => self.variants(at, ov, nv, writer),
            (Shape::Newtype(a), Shape::Newtype(b)) => self.ty(at, a, b, writer),
            (Shape::Tuple(a), Shape::Tuple(b)) if a.len() == b.len() => {
                for (x, y) in a.iter().zip(b) {
                    self.ty(at, x, y, writer);
                }
            }
            (Shape::Unit, Shape::Unit) => {}
            (a, b) => self.note(
                format!("`{at}` changed from {} to {}", shape_text(a), shape_text(b)),
                BOTH,
                writer,
            ),
        }
    }

    fn fields(&mut self, at: &str, old: &[Field], new: &[Field], writer: Writer) {
        let added: Vec<&Field> = new
            .iter()
            .filter(|f| !old.iter().any(|o| o.name == f.name))
            .collect();
        // A field gone where one of the same type arrived at the same
        // place: most likely a rename, said as one.
        let mut renamed_to = BTreeSet::new();
        for (i, f) in old.iter().enumerate() {
            if new.iter().any(|n| n.name == f.name) {
                continue;
            }
            let successor = new
                .get(i)
                .filter(|n| n.ty == f.ty && added.iter().any(|a| a.name == n.name));
            match successor {
                Some(to) => {
                    renamed_to.insert(to.name.clone());
                    // MessagePack: an old value lacks the new name (read
                    // only if the new field has a default); a new value
                    // lacks the old name (read only if the old had one).
                    // postcard has no names: a rename breaks nothing there.
                    self.by_encoding(
                        format!("field `{}` of `{at}` renamed to `{}`", f.name, to.name),
                        Fails {
                            old_read_by_new: !to.default,
                            new_read_by_old: !f.default,
                        },
                        NONE,
                        writer,
                    );
                }
                None => self.by_encoding(
                    format!("field `{}` of `{at}` removed", f.name),
                    // Old values carry it (ignored by a new reader); new
                    // values lack it, which an old reader needs unless it
                    // had a default.
                    Fails {
                        old_read_by_new: false,
                        new_read_by_old: !f.default,
                    },
                    BOTH,
                    writer,
                ),
            }
        }
        for f in added {
            if renamed_to.contains(&f.name) {
                continue;
            }
            let what = if f.default {
                format!("field `{}` of `{at}` added with a default", f.name)
            } else {
                format!("field `{}` of `{at}` added without a default", f.name)
            };
            self.by_encoding(
                what,
                Fails {
                    old_read_by_new: !f.default,
                    new_read_by_old: false,
                },
                BOTH,
                writer,
            );
        }
        for f in old {
            if let Some(n) = new.iter().find(|n| n.name == f.name) {
                self.ty(&format!("{at}.{}", f.name), &f.ty, &n.ty, writer);
            }
        }
        let kept = |fields: &[Field], other: &[Field]| -> Vec<String> {
            fields
                .iter()
                .filter(|f| other.iter().any(|o| o.name == f.name))
                .map(|f| f.name.clone())
                .collect()
        };
        if kept(old, new) != kept(new, old) {
            self.by_encoding(format!("fields of `{at}` reordered"), NONE, BOTH, writer);
        }
    }

    /// Whether `at` is an enum whose variants are the protocol's calls (the
    /// request; a service's messages and responses), whose additions and
    /// removals [`Compare::calls`] says in the calls' words.
    fn is_call_enum(&self, at: &str) -> bool {
        let named = |t: &Type| matches!(t, Type::Named(n) if n == at);
        let new = self.new;
        named(&new.request)
            || (named(&new.message) && new.calls.iter().any(|c| c.kind == super::CallKind::OneWay))
            || (named(&new.response)
                && new
                    .calls
                    .iter()
                    .any(|c| c.kind == super::CallKind::Unary && c.returns.is_some()))
    }

    fn variants(&mut self, at: &str, old: &[Variant], new: &[Variant], writer: Writer) {
        let calls = self.is_call_enum(at);
        for v in old {
            if !calls && !new.iter().any(|n| n.name == v.name) {
                self.note(
                    format!("variant `{}` of `{at}` removed", v.name),
                    OLD_UNREADABLE,
                    writer,
                );
            }
        }
        for v in new {
            if !calls && !old.iter().any(|o| o.name == v.name) {
                self.note(
                    format!("variant `{}` of `{at}` added", v.name),
                    NEW_UNREADABLE,
                    writer,
                );
            }
        }
        for v in old {
            let Some(n) = new.iter().find(|n| n.name == v.name) else {
                continue;
            };
            if v.index != n.index {
                self.by_encoding(
                    format!(
                        "variant `{}` of `{at}` moved from index {} to {}",
                        v.name, v.index, n.index
                    ),
                    NONE,
                    BOTH,
                    writer,
                );
            }
            self.shape(&format!("{at}::{}", v.name), &v.shape, &n.shape, writer);
        }
    }
}

fn kind_text(call: &super::CallSchema) -> String {
    let kind = match call.kind {
        super::CallKind::Unary => "unary",
        super::CallKind::Streaming if call.client_stream => "streaming both ways",
        super::CallKind::Streaming => "streaming",
        super::CallKind::OneWay => "one-way",
    };
    kind.to_owned()
}

fn shape_text(s: &Shape) -> &'static str {
    match s {
        Shape::Unit => "a unit",
        Shape::Newtype(_) => "a newtype",
        Shape::Tuple(_) => "a tuple",
        Shape::Struct(_) => "a struct",
        Shape::Enum(_) => "an enum",
    }
}
