//! A typed protocol's schema as data: every call, type, field and variant,
//! with the version each appeared in, derived from the serde types
//! themselves — what tools in other languages read to generate clients,
//! check compatibility and call methods (`client describe`, `client call`,
//! `client schema check`), and what a server with reflection on answers
//! (spec 3.13.1).
//!
//! The shapes come from [serde-reflection], which traces a type through its
//! own `Deserialize`: what the wire carries, renames and all, with no
//! second derive to keep in step. What tracing cannot see is found by
//! probing: a field has a default (old peers may leave it out) when a
//! sample value with that field removed still deserializes. The JSON
//! written is this module's own (`Schema` and its parts, documented in
//! docs/SCHEMA.md), so it stays stable whatever the tracer's types do.
//!
//! [serde-reflection]: https://docs.rs/serde-reflection

use serde::{Deserialize, Serialize};
use serde_reflection::{ContainerFormat, Format, Named, Tracer, TracerConfig, VariantFormat};
use std::collections::{BTreeMap, BTreeSet};

use super::Protocol;
use crate::protocol::v2::Encoding;

/// The version of the schema's own layout, so a tool can refuse one it
/// does not read.
pub const SCHEMA_FORMAT: u16 = 1;

/// The metadata key of a CALL that asks for the schema (spec 3.13.1).
pub const REFLECTION_KEY: &str = "rust-tcp-schema";

/// A protocol described: what `Schema::of::<P>()` finds, and what
/// `--schema` writes as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Schema {
    /// [`SCHEMA_FORMAT`] of the writer.
    pub schema: u16,
    /// The protocol's name, as the handshake negotiates it.
    pub protocol: String,
    /// The versions it speaks, lowest and highest.
    pub versions: [u16; 2],
    /// The encodings it speaks, most preferred first: `msgpack`, `postcard`.
    pub encodings: Vec<String>,
    /// Every request, one-way message and the calls among them.
    pub calls: Vec<CallSchema>,
    /// The protocol's six types: request, response, error, message, event
    /// and stream item.
    pub request: Type,
    /// What a successful request is answered with.
    pub response: Type,
    /// The protocol's own error.
    pub error: Type,
    /// A one-way message (`unit` for none).
    pub message: Type,
    /// What the server pushes (`unit` for none).
    pub event: Type,
    /// An item of a streaming call (`unit` for none).
    pub item: Type,
    /// Every named type reachable from those six, by its serde name.
    pub types: BTreeMap<String, TypeSchema>,
}

/// One call of a protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CallSchema {
    /// Its name, as the definition spells it (`get`).
    pub name: String,
    /// How it is answered.
    pub kind: CallKind,
    /// A streaming call where the client streams items too.
    #[serde(default)]
    pub client_stream: bool,
    /// The first version with it.
    pub since: u16,
    /// The variant of the request (or message) type it is sent as (`Get`).
    pub variant: String,
    /// Its arguments, the variant's fields.
    pub args: Vec<Field>,
    /// What it answers with when known: a unary call of a
    /// `#[rust_tcp::service]`, its own result; a streaming call, the item
    /// type; a one-way message, nothing. `None` for a request of an enum
    /// protocol, answered with the whole response type.
    pub returns: Option<Type>,
}

/// How a call is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CallKind {
    /// One response.
    Unary,
    /// A stream of items, then how it ended (spec 3.13).
    Streaming,
    /// No answer: a BINARY frame.
    OneWay,
}

/// A type as a field or argument holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Type {
    /// `()`.
    Unit,
    /// `bool`.
    Bool,
    /// `i8`.
    I8,
    /// `i16`.
    I16,
    /// `i32`.
    I32,
    /// `i64`.
    I64,
    /// `i128`.
    I128,
    /// `u8`.
    U8,
    /// `u16`.
    U16,
    /// `u32`.
    U32,
    /// `u64`.
    U64,
    /// `u128`.
    U128,
    /// `f32`.
    F32,
    /// `f64`.
    F64,
    /// `char`.
    Char,
    /// A string.
    Str,
    /// Bytes (`serde_bytes`).
    Bytes,
    /// `Option<T>`.
    Option(Box<Type>),
    /// A sequence (`Vec<T>`, a set).
    Seq(Box<Type>),
    /// A map.
    Map {
        /// Its keys.
        key: Box<Type>,
        /// Its values.
        value: Box<Type>,
    },
    /// A tuple.
    Tuple(Vec<Type>),
    /// An array of a fixed length (`[T; N]`).
    Array {
        /// Its items.
        item: Box<Type>,
        /// How many.
        len: usize,
    },
    /// A type of [`Schema::types`], by name.
    Named(String),
}

/// As Rust spells it: `u64`, `Option<String>`, `Vec<Job>`, `Map<String, u8>`,
/// `(u8, String)`, `[u8; 4]`, `bytes`.
impl std::fmt::Display for Type {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |f: &mut std::fmt::Formatter<'_>, ts: &[Type]| -> std::fmt::Result {
            for (i, t) in ts.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{t}")?;
            }
            Ok(())
        };
        match self {
            Type::Unit => f.write_str("()"),
            Type::Bool => f.write_str("bool"),
            Type::I8 => f.write_str("i8"),
            Type::I16 => f.write_str("i16"),
            Type::I32 => f.write_str("i32"),
            Type::I64 => f.write_str("i64"),
            Type::I128 => f.write_str("i128"),
            Type::U8 => f.write_str("u8"),
            Type::U16 => f.write_str("u16"),
            Type::U32 => f.write_str("u32"),
            Type::U64 => f.write_str("u64"),
            Type::U128 => f.write_str("u128"),
            Type::F32 => f.write_str("f32"),
            Type::F64 => f.write_str("f64"),
            Type::Char => f.write_str("char"),
            Type::Str => f.write_str("String"),
            Type::Bytes => f.write_str("bytes"),
            Type::Option(t) => write!(f, "Option<{t}>"),
            Type::Seq(t) => write!(f, "Vec<{t}>"),
            Type::Map { key, value } => write!(f, "Map<{key}, {value}>"),
            Type::Tuple(ts) => {
                f.write_str("(")?;
                list(f, ts)?;
                f.write_str(")")
            }
            Type::Array { item, len } => write!(f, "[{item}; {len}]"),
            Type::Named(name) => f.write_str(name),
        }
    }
}

/// A named type: its shape and the version it appeared in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TypeSchema {
    /// The first version of the protocol that uses it.
    pub since: u16,
    /// What it is.
    pub shape: Shape,
}

/// What a named type (or an enum's variant) is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Shape {
    /// A unit struct, or a variant without fields.
    Unit,
    /// A newtype struct or variant: one unnamed field.
    Newtype(Type),
    /// A tuple struct or variant.
    Tuple(Vec<Type>),
    /// A struct, or a variant with named fields.
    Struct(Vec<Field>),
    /// An enum (never a variant's shape).
    Enum(Vec<Variant>),
}

/// A field of a struct or of a variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Field {
    /// Its name on the wire (after serde's renames).
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: Type,
    /// A peer may leave it out (an `Option`, or `#[serde(default)]`): a
    /// sample without it still deserialized.
    pub default: bool,
    /// The first version with it.
    pub since: u16,
}

/// A variant of an enum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Variant {
    /// Its name on the wire.
    pub name: String,
    /// Its index, what postcard writes for it.
    pub index: u32,
    /// Its fields.
    pub shape: Shape,
    /// The first version with it.
    pub since: u16,
}

/// Why a protocol could not be described, or a schema not read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    /// A type could not be traced through its `Deserialize` (one that
    /// checks its values, say): the tracer's words.
    #[error("cannot trace the {what} type of {protocol}: {why}")]
    Trace {
        /// The protocol.
        protocol: &'static str,
        /// Which of its types.
        what: &'static str,
        /// The tracer's message.
        why: String,
    },
    /// The JSON is not a schema this version reads.
    #[error("not a rust-tcp schema: {0}")]
    Json(#[from] serde_json::Error),
    /// A schema of a newer layout.
    #[error("schema format {0}; this version reads {SCHEMA_FORMAT}")]
    Format(u16),
    /// The server did not give its schema ([`Schema::fetch`]): reflection
    /// is off (the server's reason), or the connection failed.
    #[error("asking the server for its schema: {0}")]
    Fetch(#[from] crate::ClientError),
}

impl Schema {
    /// Describes `P` by tracing its types (once; keep the result).
    pub fn of<P: Protocol>() -> Result<Schema, SchemaError> {
        let mut tracer = Tracer::new(TracerConfig::default());
        let trace_err = |what: &'static str| {
            move |e: serde_reflection::Error| SchemaError::Trace {
                protocol: P::NAME,
                what,
                why: e.to_string(),
            }
        };
        let (request, requests) = tracer
            .trace_simple_type::<P::Request>()
            .map_err(trace_err("request"))?;
        let (response, responses) = tracer
            .trace_simple_type::<P::Response>()
            .map_err(trace_err("response"))?;
        let (error, errors) = tracer
            .trace_simple_type::<P::Error>()
            .map_err(trace_err("error"))?;
        let (message, messages) = tracer
            .trace_simple_type::<P::Message>()
            .map_err(trace_err("message"))?;
        let (event, events) = tracer
            .trace_simple_type::<P::Event>()
            .map_err(trace_err("event"))?;
        let (item, items) = tracer
            .trace_simple_type::<P::Item>()
            .map_err(trace_err("item"))?;
        let registry = tracer.registry().map_err(trace_err("protocol's"))?;

        // Which fields may be left out, probed on the samples of each of
        // the six types in turn.
        let mut defaults = Defaults::default();
        defaults.probe(&request, &requests, &registry);
        defaults.probe(&response, &responses, &registry);
        defaults.probe(&error, &errors, &registry);
        defaults.probe(&message, &messages, &registry);
        defaults.probe(&event, &events, &registry);
        defaults.probe(&item, &items, &registry);

        let first = *P::VERSIONS.start();
        let mut types: BTreeMap<String, TypeSchema> = registry
            .iter()
            .map(|(name, container)| {
                let shape = shape_of(name, container, &defaults, first);
                (
                    name.clone(),
                    TypeSchema {
                        since: first,
                        shape,
                    },
                )
            })
            .collect();
        let [request, response, error, message, event, item] =
            [request, response, error, message, event, item].map(|f| type_of(&f));

        let mut calls = Vec::new();
        for sample in &requests {
            let Some(variant) = variant_name(sample) else {
                continue;
            };
            let info = P::call_info(sample);
            let since = info.map_or(0, |i| i.since).max(first);
            let (kind, name) = match info {
                Some(i) if i.streaming => (CallKind::Streaming, i.name.to_owned()),
                Some(i) => (CallKind::Unary, i.name.to_owned()),
                None => (CallKind::Unary, snake_case(&variant)),
            };
            let returns = match kind {
                CallKind::Streaming => Some(item.clone()),
                _ if P::RESPONSE_PER_CALL => {
                    variant_shape(&types, &response, &variant).map(|shape| match shape {
                        Shape::Newtype(t) => t,
                        Shape::Unit => Type::Unit,
                        _ => Type::Unit,
                    })
                }
                _ => None,
            };
            calls.push(CallSchema {
                name,
                kind,
                client_stream: info.is_some_and(|i| i.client_stream),
                since,
                args: variant_fields(&types, &request, &variant),
                variant,
                returns,
            });
        }
        if P::RESPONSE_PER_CALL {
            for sample in &messages {
                let Some(variant) = variant_name(sample) else {
                    continue;
                };
                calls.push(CallSchema {
                    name: snake_case(&variant),
                    kind: CallKind::OneWay,
                    client_stream: false,
                    since: first,
                    args: variant_fields(&types, &message, &variant),
                    variant,
                    returns: None,
                });
            }
        }
        calls.sort_by(|a, b| a.name.cmp(&b.name));
        calls.dedup_by(|a, b| a.name == b.name);

        // A type is as old as the oldest call that reaches it; the request
        // type's variants are their calls.
        let mut since = BTreeMap::new();
        for call in &calls {
            let mut reached = BTreeSet::new();
            for arg in &call.args {
                reach(&arg.ty, &types, &mut reached);
            }
            if let Some(r) = &call.returns {
                reach(r, &types, &mut reached);
            }
            for name in reached {
                let at = since.entry(name).or_insert(call.since);
                *at = (*at).min(call.since);
            }
        }
        for (name, version) in since {
            if let Some(t) = types.get_mut(&name) {
                t.since = version;
                t.stamp(version);
            }
        }
        for (top, calls_of) in [(&request, CallKind::Unary), (&message, CallKind::OneWay)] {
            let Type::Named(top) = top else { continue };
            let Some(TypeSchema {
                shape: Shape::Enum(variants),
                ..
            }) = types.get_mut(top)
            else {
                continue;
            };
            for v in variants {
                let call = calls.iter().find(|c| {
                    c.variant == v.name
                        && (c.kind == CallKind::OneWay) == (calls_of == CallKind::OneWay)
                });
                if let Some(call) = call {
                    v.since = call.since;
                    if let Shape::Struct(fields) = &mut v.shape {
                        fields.iter_mut().for_each(|f| f.since = call.since);
                    }
                }
            }
        }

        Ok(Schema {
            schema: SCHEMA_FORMAT,
            protocol: P::NAME.to_owned(),
            versions: [first, *P::VERSIONS.end()],
            encodings: P::ENCODINGS
                .iter()
                .map(|e| encoding_name(*e).to_owned())
                .collect(),
            calls,
            request,
            response,
            error,
            message,
            event,
            item,
            types,
        })
    }

    /// The schema as pretty JSON, what `--schema` prints.
    pub fn to_json(&self) -> String {
        // Every part is a map of strings, numbers and lists: cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Reads a schema written by [`Schema::to_json`] (of this layout).
    pub fn from_json(json: &str) -> Result<Schema, SchemaError> {
        #[derive(Deserialize)]
        struct Layout {
            schema: u16,
        }
        let layout: Layout = serde_json::from_str(json)?;
        if layout.schema != SCHEMA_FORMAT {
            return Err(SchemaError::Format(layout.schema));
        }
        Ok(serde_json::from_str(json)?)
    }

    /// Asks the server `client` is connected to for its schema (spec
    /// 3.13.1); the client need not have asked for the protocol.
    pub async fn fetch(client: &crate::Client) -> Result<Schema, SchemaError> {
        // A constant key of the allowed characters, with an empty value:
        // within every metadata rule, so it cannot be refused.
        let options = crate::CallOptions::new()
            .metadata(REFLECTION_KEY, bytes::Bytes::new())
            .expect("the reflection key is valid metadata");
        let json = client.call(bytes::Bytes::new(), options).await?;
        let text = std::str::from_utf8(&json).map_err(|e| {
            SchemaError::Json(serde::de::Error::custom(format!(
                "the schema is not UTF-8: {e}"
            )))
        })?;
        Schema::from_json(text)
    }

    /// Carries the versions of `older` (the schema of the last release)
    /// into this one: what `older` has keeps the version it appeared in,
    /// and what is new here — a field added to a type that already
    /// existed, a variant, a type — appeared in this schema's highest
    /// version. The types alone cannot say when a field was added; a
    /// deployment's schema files can. Calls keep their `#[since]`.
    pub fn carry_versions(&mut self, older: &Schema) {
        let (old_high, high) = (older.versions[1], self.versions[1]);
        let added = |computed: u16| if computed <= old_high { high } else { computed };
        for (name, t) in &mut self.types {
            let Some(was) = older.types.get(name) else {
                t.since = added(t.since);
                t.stamp(t.since);
                continue;
            };
            t.since = was.since;
            let fields = |now: &mut Vec<Field>, then: Option<&Vec<Field>>, since: u16| {
                for f in now {
                    f.since = match then.and_then(|fs| fs.iter().find(|o| o.name == f.name)) {
                        Some(o) => o.since,
                        None => added(since),
                    };
                }
            };
            match (&mut t.shape, &was.shape) {
                (Shape::Struct(now), Shape::Struct(then)) => fields(now, Some(then), t.since),
                (Shape::Enum(now), Shape::Enum(then)) => {
                    for v in now {
                        let old = then.iter().find(|o| o.name == v.name);
                        v.since = old.map_or_else(|| added(v.since), |o| o.since);
                        let old_fields = old.and_then(|o| match &o.shape {
                            Shape::Struct(fs) => Some(fs),
                            _ => None,
                        });
                        if let Shape::Struct(fs) = &mut v.shape {
                            fields(fs, old_fields, v.since);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// The call named `name`.
    pub fn call(&self, name: &str) -> Option<&CallSchema> {
        self.calls.iter().find(|c| c.name == name)
    }
}

impl Field {
    /// A field without a default, of every version: for tools and tests
    /// that build or edit a schema.
    pub fn new(name: impl Into<String>, ty: Type) -> Field {
        Field {
            name: name.into(),
            ty,
            default: false,
            since: 0,
        }
    }
}

impl Variant {
    /// A variant of every version: for tools and tests that build or edit
    /// a schema.
    pub fn new(name: impl Into<String>, index: u32, shape: Shape) -> Variant {
        Variant {
            name: name.into(),
            index,
            shape,
            since: 0,
        }
    }
}

impl TypeSchema {
    /// Every field and variant of this type as appearing in `version`.
    fn stamp(&mut self, version: u16) {
        let fields = |fields: &mut Vec<Field>| fields.iter_mut().for_each(|f| f.since = version);
        match &mut self.shape {
            Shape::Struct(fs) => fields(fs),
            Shape::Enum(vs) => {
                for v in vs {
                    v.since = version;
                    if let Shape::Struct(fs) = &mut v.shape {
                        fields(fs);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The encoding's name in a schema.
pub(crate) fn encoding_name(e: Encoding) -> &'static str {
    match e {
        Encoding::MessagePack => "msgpack",
        Encoding::Postcard => "postcard",
    }
}

/// `GetValue` → `get_value`: a service's call name from its variant.
fn snake_case(variant: &str) -> String {
    let mut out = String::with_capacity(variant.len() + 4);
    for (i, c) in variant.chars().enumerate() {
        if c.is_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The variant a sample value of an enum is, as serde names it.
fn variant_name<T: Serialize>(sample: &T) -> Option<String> {
    match serde_json::to_value(sample).ok()? {
        serde_json::Value::String(name) => Some(name),
        serde_json::Value::Object(map) if map.len() == 1 => map.keys().next().cloned(),
        _ => None,
    }
}

fn variant_shape(types: &BTreeMap<String, TypeSchema>, of: &Type, variant: &str) -> Option<Shape> {
    let Type::Named(name) = of else { return None };
    match &types.get(name)?.shape {
        Shape::Enum(variants) => variants
            .iter()
            .find(|v| v.name == variant)
            .map(|v| v.shape.clone()),
        _ => None,
    }
}

/// A call's arguments: its variant's named fields (a newtype variant's one
/// value is the argument `0`).
fn variant_fields(types: &BTreeMap<String, TypeSchema>, of: &Type, variant: &str) -> Vec<Field> {
    match variant_shape(types, of, variant) {
        Some(Shape::Struct(fields)) => fields,
        Some(Shape::Newtype(ty)) => vec![Field {
            name: "0".into(),
            ty,
            default: false,
            since: 0,
        }],
        Some(Shape::Tuple(tys)) => tys
            .into_iter()
            .enumerate()
            .map(|(i, ty)| Field {
                name: i.to_string(),
                ty,
                default: false,
                since: 0,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Every named type `ty` reaches, into `reached`.
fn reach(ty: &Type, types: &BTreeMap<String, TypeSchema>, reached: &mut BTreeSet<String>) {
    let mut walk = |t: &Type| reach(t, types, reached);
    match ty {
        Type::Option(t) | Type::Seq(t) => walk(t),
        Type::Array { item, .. } => walk(item),
        Type::Map { key, value } => {
            walk(key);
            walk(value);
        }
        Type::Tuple(ts) => ts.iter().for_each(walk),
        Type::Named(name) => {
            if !reached.insert(name.clone()) {
                return;
            }
            let Some(t) = types.get(name) else { return };
            shape_types(&t.shape, &mut |t| reach(t, types, reached));
        }
        _ => {}
    }
}

/// Calls `f` on every type a shape holds directly.
pub(crate) fn shape_types(shape: &Shape, f: &mut dyn FnMut(&Type)) {
    match shape {
        Shape::Unit => {}
        Shape::Newtype(t) => f(t),
        Shape::Tuple(ts) => ts.iter().for_each(f),
        Shape::Struct(fields) => fields.iter().for_each(|x| f(&x.ty)),
        Shape::Enum(variants) => variants.iter().for_each(|v| shape_types(&v.shape, f)),
    }
}

fn type_of(format: &Format) -> Type {
    let boxed = |f: &Format| Box::new(type_of(f));
    match format {
        // A registry is only complete with every variable resolved.
        Format::Variable(_) => Type::Unit,
        Format::TypeName(name) => Type::Named(name.clone()),
        Format::Unit => Type::Unit,
        Format::Bool => Type::Bool,
        Format::I8 => Type::I8,
        Format::I16 => Type::I16,
        Format::I32 => Type::I32,
        Format::I64 => Type::I64,
        Format::I128 => Type::I128,
        Format::U8 => Type::U8,
        Format::U16 => Type::U16,
        Format::U32 => Type::U32,
        Format::U64 => Type::U64,
        Format::U128 => Type::U128,
        Format::F32 => Type::F32,
        Format::F64 => Type::F64,
        Format::Char => Type::Char,
        Format::Str => Type::Str,
        Format::Bytes => Type::Bytes,
        Format::Option(f) => Type::Option(boxed(f)),
        Format::Seq(f) => Type::Seq(boxed(f)),
        Format::Map { key, value } => Type::Map {
            key: boxed(key),
            value: boxed(value),
        },
        Format::Tuple(fs) => Type::Tuple(fs.iter().map(type_of).collect()),
        Format::TupleArray { content, size } => Type::Array {
            item: boxed(content),
            len: *size,
        },
    }
}

fn fields_of(
    container: &str,
    fields: &[Named<Format>],
    defaults: &Defaults,
    since: u16,
) -> Vec<Field> {
    fields
        .iter()
        .map(|f| Field {
            name: f.name.clone(),
            ty: type_of(&f.value),
            default: defaults.has(container, &f.name),
            since,
        })
        .collect()
}

fn shape_of(name: &str, container: &ContainerFormat, defaults: &Defaults, since: u16) -> Shape {
    match container {
        ContainerFormat::UnitStruct => Shape::Unit,
        ContainerFormat::NewTypeStruct(f) => Shape::Newtype(type_of(f)),
        ContainerFormat::TupleStruct(fs) => Shape::Tuple(fs.iter().map(type_of).collect()),
        ContainerFormat::Struct(fields) => Shape::Struct(fields_of(name, fields, defaults, since)),
        ContainerFormat::Enum(variants) => Shape::Enum(
            variants
                .iter()
                .map(|(index, v)| Variant {
                    name: v.name.clone(),
                    index: *index,
                    since,
                    shape: match &v.value {
                        VariantFormat::Variable(_) | VariantFormat::Unit => Shape::Unit,
                        VariantFormat::NewType(f) => Shape::Newtype(type_of(f)),
                        VariantFormat::Tuple(fs) => Shape::Tuple(fs.iter().map(type_of).collect()),
                        VariantFormat::Struct(fields) => {
                            let at = format!("{name}::{}", v.name);
                            Shape::Struct(fields_of(&at, fields, defaults, since))
                        }
                    },
                })
                .collect(),
        ),
    }
}

/// The fields found to have a default, as `Container` or `Enum::Variant`
/// with the field's name.
#[derive(Default)]
struct Defaults {
    found: BTreeSet<(String, String)>,
    probed: BTreeSet<(String, String)>,
}

/// A step from a value to one inside it.
#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

impl Defaults {
    fn has(&self, container: &str, field: &str) -> bool {
        self.found
            .contains(&(container.to_owned(), field.to_owned()))
    }

    /// For each sample of a top type: every struct (or struct variant)
    /// inside it, each field removed in turn, and the whole sample read
    /// back. A field whose removal still reads has a default.
    fn probe<T: Serialize + serde::de::DeserializeOwned>(
        &mut self,
        format: &Format,
        samples: &[T],
        registry: &serde_reflection::Registry,
    ) {
        for sample in samples {
            // A sample JSON cannot hold (a map with non-string keys, a
            // NaN) is not probed: its fields count as required, the safe
            // side for a compatibility check.
            let Ok(value) = serde_json::to_value(sample) else {
                continue;
            };
            let mut places = Vec::new();
            find_structs(format, &value, registry, &mut Vec::new(), &mut places, 0);
            for (path, container, fields) in places {
                for field in fields {
                    let key = (container.clone(), field.clone());
                    if !self.probed.insert(key.clone()) {
                        continue;
                    }
                    let mut without = value.clone();
                    if let Some(serde_json::Value::Object(map)) = at_path(&mut without, &path) {
                        map.remove(&field);
                    }
                    if serde_json::from_value::<T>(without).is_ok() {
                        self.found.insert(key);
                    }
                }
            }
        }
    }
}

type Place = (Vec<Step>, String, Vec<String>);

/// Every struct inside `value` (walked as `format` says): where it is, its
/// container's name, its fields present.
fn find_structs(
    format: &Format,
    value: &serde_json::Value,
    registry: &serde_reflection::Registry,
    path: &mut Vec<Step>,
    places: &mut Vec<Place>,
    depth: usize,
) {
    use serde_json::Value;
    if depth > 64 {
        return;
    }
    let inner =
        |f: &Format, v: &Value, step: Step, path: &mut Vec<Step>, places: &mut Vec<Place>| {
            path.push(step);
            find_structs(f, v, registry, path, places, depth + 1);
            path.pop();
        };
    match (format, value) {
        (Format::Option(f), v) if !v.is_null() => {
            find_structs(f, v, registry, path, places, depth + 1)
        }
        (Format::Seq(f), Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                inner(f, v, Step::Index(i), path, places);
            }
        }
        (Format::Tuple(fs), Value::Array(items)) => {
            for (i, (f, v)) in fs.iter().zip(items).enumerate() {
                inner(f, v, Step::Index(i), path, places);
            }
        }
        (Format::TupleArray { content, .. }, Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                inner(content, v, Step::Index(i), path, places);
            }
        }
        (Format::Map { value: f, .. }, Value::Object(map)) => {
            for (k, v) in map {
                inner(f, v, Step::Key(k.clone()), path, places);
            }
        }
        (Format::TypeName(name), v) => {
            let Some(container) = registry.get(name) else {
                return;
            };
            match (container, v) {
                (ContainerFormat::Struct(fields), Value::Object(map)) => {
                    struct_place(name, fields, map, path, places);
                    for f in fields {
                        if let Some(v) = map.get(&f.name) {
                            inner(&f.value, v, Step::Key(f.name.clone()), path, places);
                        }
                    }
                }
                (ContainerFormat::NewTypeStruct(f), v) => {
                    find_structs(f, v, registry, path, places, depth + 1)
                }
                (ContainerFormat::TupleStruct(fs), Value::Array(items)) => {
                    for (i, (f, v)) in fs.iter().zip(items).enumerate() {
                        inner(f, v, Step::Index(i), path, places);
                    }
                }
                (ContainerFormat::Enum(variants), Value::Object(map)) if map.len() == 1 => {
                    let Some((tag, payload)) = map.iter().next() else {
                        return;
                    };
                    let Some(variant) = variants.values().find(|v| &v.name == tag) else {
                        return;
                    };
                    path.push(Step::Key(tag.clone()));
                    match (&variant.value, payload) {
                        (VariantFormat::Struct(fields), Value::Object(inner_map)) => {
                            let at = format!("{name}::{tag}");
                            struct_place(&at, fields, inner_map, path, places);
                            for f in fields {
                                if let Some(v) = inner_map.get(&f.name) {
                                    path.push(Step::Key(f.name.clone()));
                                    find_structs(&f.value, v, registry, path, places, depth + 1);
                                    path.pop();
                                }
                            }
                        }
                        (VariantFormat::NewType(f), v) => {
                            find_structs(f, v, registry, path, places, depth + 1)
                        }
                        (VariantFormat::Tuple(fs), Value::Array(items)) => {
                            for (i, (f, v)) in fs.iter().zip(items).enumerate() {
                                path.push(Step::Index(i));
                                find_structs(f, v, registry, path, places, depth + 1);
                                path.pop();
                            }
                        }
                        _ => {}
                    }
                    path.pop();
                }
                _ => {}
            }
        }
        _ => {}
    }
}

fn struct_place(
    container: &str,
    fields: &[Named<Format>],
    map: &serde_json::Map<String, serde_json::Value>,
    path: &[Step],
    places: &mut Vec<Place>,
) {
    let present = fields
        .iter()
        .filter(|f| map.contains_key(&f.name))
        .map(|f| f.name.clone())
        .collect();
    places.push((path.to_vec(), container.to_owned(), present));
}

fn at_path<'v>(
    value: &'v mut serde_json::Value,
    path: &[Step],
) -> Option<&'v mut serde_json::Value> {
    let mut at = value;
    for step in path {
        at = match step {
            Step::Key(k) => at.get_mut(k)?,
            Step::Index(i) => at.get_mut(*i)?,
        };
    }
    Some(at)
}
