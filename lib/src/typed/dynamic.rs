//! Values of a protocol known only by its [`Schema`], as JSON: a request
//! encoded from JSON and an answer decoded to JSON, in the negotiated
//! encoding, byte for byte what the Rust types would send — what
//! `client call` does, as grpcurl does for gRPC.
//!
//! Encoding goes through the real serializers (rmp-serde, postcard), driven
//! by a value built from the JSON and the schema; decoding drives the real
//! deserializers with the schema as the seed, so postcard, which carries no
//! names and no types, is read as well as MessagePack.

use bytes::Bytes;
use serde::Serialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde::ser::{
    SerializeMap, SerializeSeq, SerializeStructVariant, SerializeTuple, SerializeTupleVariant,
    Serializer,
};
use serde_json::Value as Json;
use std::fmt;

use super::schema::{CallKind, CallSchema, Field, Schema, Shape, Type, Variant};
use crate::protocol::v2::Encoding;

/// A JSON value that does not fit the schema, or bytes that do not decode
/// as it says: where (`job.prio`) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {why}")]
#[non_exhaustive]
pub struct ValueError {
    /// The path to the value, from the call's arguments (`args.job.prio`).
    pub at: String,
    /// What is wrong there.
    pub why: String,
}

fn wrong(at: &str, why: impl Into<String>) -> ValueError {
    ValueError {
        at: at.to_owned(),
        why: why.into(),
    }
}

/// How a call was answered, decoded: the result, or the protocol's error.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The call succeeded with this value.
    Ok(Json),
    /// The protocol's own error.
    Err(Json),
}

impl Schema {
    /// The request (or one-way message) payload for `call` with `args`, a
    /// JSON object of its arguments by name (`{}` or `null` for none).
    pub fn encode_call(
        &self,
        call: &CallSchema,
        args: &Json,
        encoding: Encoding,
    ) -> Result<Bytes, ValueError> {
        let top = if call.kind == CallKind::OneWay {
            &self.message
        } else {
            &self.request
        };
        let empty = serde_json::Map::new();
        let given = match args {
            Json::Null => &empty,
            Json::Object(map) => map,
            other => {
                return Err(wrong(
                    "args",
                    format!(
                        "give the arguments as a JSON object by name, not {}",
                        kind_of(other)
                    ),
                ));
            }
        };
        let request = match self.variant_of(top, &call.variant) {
            Some(Variant {
                shape: Shape::Unit, ..
            }) => {
                if let Some(extra) = given.keys().next() {
                    return Err(wrong(
                        "args",
                        format!("`{}` takes no arguments; got `{extra}`", call.name),
                    ));
                }
                Json::String(call.variant.clone())
            }
            Some(Variant {
                shape: Shape::Struct(_),
                ..
            }) => Json::Object([(call.variant.clone(), args.clone())].into_iter().collect()),
            // A newtype or tuple variant of an enum protocol: its arguments
            // are `0`, `1`, ... .
            Some(Variant {
                shape: Shape::Newtype(_),
                ..
            }) => {
                let value = given
                    .get("0")
                    .cloned()
                    .ok_or_else(|| wrong("args", "missing argument `0`"))?;
                Json::Object([(call.variant.clone(), value)].into_iter().collect())
            }
            Some(Variant {
                shape: Shape::Tuple(items),
                ..
            }) => {
                let values = (0..items.len())
                    .map(|i| {
                        given
                            .get(&i.to_string())
                            .cloned()
                            .ok_or_else(|| wrong("args", format!("missing argument `{i}`")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Json::Object(
                    [(call.variant.clone(), Json::Array(values))]
                        .into_iter()
                        .collect(),
                )
            }
            _ => {
                return Err(wrong(
                    "args",
                    format!(
                        "the schema has no variant `{}` for `{}`",
                        call.variant, call.name
                    ),
                ));
            }
        };
        self.encode_value(top, &request, encoding, "args")
    }

    /// `json` as a value of `ty`, encoded.
    pub fn encode_value(
        &self,
        ty: &Type,
        json: &Json,
        encoding: Encoding,
        at: &str,
    ) -> Result<Bytes, ValueError> {
        let wire = self.wire(ty, json, at, encoding, 0)?;
        let encoded = Encoded {
            wire: &wire,
            encoding,
        };
        super::codec::encode(&encoded, encoding).map_err(|e| wrong(at, e.0))
    }

    /// A value of `ty` from `bytes` (exactly one), as JSON.
    pub fn decode_value(
        &self,
        ty: &Type,
        bytes: &[u8],
        encoding: Encoding,
    ) -> Result<Json, ValueError> {
        decode_with(
            Shaped {
                schema: self,
                shape: ShapeRef::Type(ty),
                depth: 0,
            },
            bytes,
            encoding,
        )
    }

    /// A call's answer (a unary call's STATUS or RESPONSE payload, or the
    /// end of a stream): `Ok` with its own result (the call's variant of a
    /// service's response), or the protocol's error.
    pub fn decode_answer(
        &self,
        call: &CallSchema,
        bytes: &[u8],
        encoding: Encoding,
    ) -> Result<Answer, ValueError> {
        let ok = if call.kind == CallKind::Streaming {
            Type::Unit
        } else {
            self.response.clone()
        };
        let result = [
            Variant::new("Ok", 0, Shape::Newtype(ok)),
            Variant::new("Err", 1, Shape::Newtype(self.error.clone())),
        ];
        let decoded = decode_with(
            Shaped {
                schema: self,
                shape: ShapeRef::Enum(&result),
                depth: 0,
            },
            bytes,
            encoding,
        )?;
        let Json::Object(map) = decoded else {
            return Err(wrong("answer", "not a Result"));
        };
        let Some((tag, value)) = map.into_iter().next() else {
            return Err(wrong("answer", "not a Result"));
        };
        if tag == "Err" {
            return Ok(Answer::Err(value));
        }
        // A service's response enum has the call's variant: unwrap it.
        if call.returns.is_some() && call.kind == CallKind::Unary {
            match value {
                Json::Object(mut v) if v.len() == 1 && v.contains_key(&call.variant) => {
                    return Ok(Answer::Ok(v.remove(&call.variant).unwrap_or(Json::Null)));
                }
                Json::String(name) if name == call.variant => return Ok(Answer::Ok(Json::Null)),
                other => return Ok(Answer::Ok(other)),
            }
        }
        Ok(Answer::Ok(value))
    }

    fn variant_of(&self, ty: &Type, name: &str) -> Option<&Variant> {
        let Type::Named(t) = ty else { return None };
        match &self.types.get(t)?.shape {
            Shape::Enum(vs) => vs.iter().find(|v| v.name == name),
            _ => None,
        }
    }

    /// Builds the value to serialize from `json`, checking it against `ty`.
    fn wire(
        &self,
        ty: &Type,
        json: &Json,
        at: &str,
        encoding: Encoding,
        depth: usize,
    ) -> Result<Wire, ValueError> {
        if depth > MAX_DEPTH {
            return Err(wrong(at, format!("nested deeper than {MAX_DEPTH}")));
        }
        let expected = |what: &str| wrong(at, format!("expected {what}, got {}", kind_of(json)));
        let int = |lo: i128, hi: i128, what: &str| -> Result<i128, ValueError> {
            let n = match json {
                Json::Number(n) => n
                    .as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from)),
                Json::String(s) => s.parse::<i128>().ok(),
                _ => None,
            };
            match n {
                Some(n) if (lo..=hi).contains(&n) => Ok(n),
                Some(n) => Err(wrong(at, format!("{n} does not fit {what}"))),
                None => Err(expected(what)),
            }
        };
        Ok(match ty {
            Type::Unit => match json {
                Json::Null => Wire::Unit,
                _ => return Err(expected("null")),
            },
            Type::Bool => Wire::Bool(json.as_bool().ok_or_else(|| expected("true or false"))?),
            Type::I8 => Wire::I8(int(i8::MIN.into(), i8::MAX.into(), "i8")? as i8),
            Type::I16 => Wire::I16(int(i16::MIN.into(), i16::MAX.into(), "i16")? as i16),
            Type::I32 => Wire::I32(int(i32::MIN.into(), i32::MAX.into(), "i32")? as i32),
            Type::I64 => Wire::I64(int(i64::MIN.into(), i64::MAX.into(), "i64")? as i64),
            Type::U8 => Wire::U8(int(0, u8::MAX.into(), "u8")? as u8),
            Type::U16 => Wire::U16(int(0, u16::MAX.into(), "u16")? as u16),
            Type::U32 => Wire::U32(int(0, u32::MAX.into(), "u32")? as u32),
            Type::U64 => Wire::U64(int(0, u64::MAX.into(), "u64")? as u64),
            Type::I128 => Wire::I128(int(i128::MIN, i128::MAX, "i128")?),
            Type::U128 => match json {
                Json::String(s) => Wire::U128(s.parse().map_err(|_| expected("u128"))?),
                _ => Wire::U128(int(0, i128::MAX, "u128")? as u128),
            },
            Type::F32 => Wire::F32(json.as_f64().ok_or_else(|| expected("a number"))? as f32),
            Type::F64 => Wire::F64(json.as_f64().ok_or_else(|| expected("a number"))?),
            Type::Char => {
                let s = json
                    .as_str()
                    .ok_or_else(|| expected("a one-character string"))?;
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Wire::Char(c),
                    _ => return Err(expected("a one-character string")),
                }
            }
            Type::Str => Wire::Str(
                json.as_str()
                    .ok_or_else(|| expected("a string"))?
                    .to_owned(),
            ),
            Type::Bytes => match json {
                // A string stands for its UTF-8 bytes.
                Json::String(s) => Wire::Bytes(s.as_bytes().to_vec()),
                Json::Array(items) => Wire::Bytes(
                    items
                        .iter()
                        .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                        .collect::<Option<_>>()
                        .ok_or_else(|| expected("bytes: an array of 0-255, or a string"))?,
                ),
                _ => return Err(expected("bytes: an array of 0-255, or a string")),
            },
            Type::Option(inner) => match json {
                Json::Null => Wire::None,
                v => Wire::Some(Box::new(self.wire(inner, v, at, encoding, depth + 1)?)),
            },
            Type::Seq(inner) => {
                let items = json.as_array().ok_or_else(|| expected("an array"))?;
                Wire::Seq(self.items(items.iter().map(|v| (&**inner, v)), at, encoding, depth)?)
            }
            Type::Tuple(types) => {
                let items = json.as_array().filter(|a| a.len() == types.len());
                let items =
                    items.ok_or_else(|| expected(&format!("an array of {}", types.len())))?;
                Wire::Tuple(self.items(types.iter().zip(items), at, encoding, depth)?)
            }
            Type::Array { item, len } => {
                let items = json.as_array().filter(|a| a.len() == *len);
                let items = items.ok_or_else(|| expected(&format!("an array of {len}")))?;
                Wire::Tuple(self.items(items.iter().map(|v| (&**item, v)), at, encoding, depth)?)
            }
            Type::Map { key, value } => {
                let map = json.as_object().ok_or_else(|| expected("an object"))?;
                let mut entries = Vec::with_capacity(map.len());
                for (k, v) in map {
                    let here = format!("{at}.{k}");
                    // JSON keys are strings; a key of another type is
                    // written as its JSON (`"1"` for 1).
                    let key_json = match &**key {
                        Type::Str | Type::Char => Json::String(k.clone()),
                        _ => serde_json::from_str(k)
                            .map_err(|_| wrong(&here, "the key is not JSON of the key type"))?,
                    };
                    entries.push((
                        self.wire(key, &key_json, &here, encoding, depth + 1)?,
                        self.wire(value, v, &here, encoding, depth + 1)?,
                    ));
                }
                Wire::Map(entries)
            }
            Type::Named(name) => {
                let Some(t) = self.types.get(name) else {
                    return Err(wrong(at, format!("the schema has no type `{name}`")));
                };
                match &t.shape {
                    Shape::Enum(variants) => {
                        self.variant_wire(name, variants, json, at, encoding, depth)?
                    }
                    shape => self.shape_wire(name, shape, json, at, encoding, depth)?,
                }
            }
        })
    }

    fn items<'j>(
        &self,
        items: impl Iterator<Item = (&'j Type, &'j Json)>,
        at: &str,
        encoding: Encoding,
        depth: usize,
    ) -> Result<Vec<Wire>, ValueError> {
        items
            .enumerate()
            .map(|(i, (t, v))| self.wire(t, v, &format!("{at}[{i}]"), encoding, depth + 1))
            .collect()
    }

    /// A struct, newtype, tuple or unit (of a type or of a variant).
    fn shape_wire(
        &self,
        name: &str,
        shape: &Shape,
        json: &Json,
        at: &str,
        encoding: Encoding,
        depth: usize,
    ) -> Result<Wire, ValueError> {
        Ok(match shape {
            Shape::Unit => match json {
                Json::Null => Wire::UnitStruct,
                Json::Array(a) if a.is_empty() => Wire::UnitStruct,
                other => {
                    return Err(wrong(
                        at,
                        format!("`{name}` holds nothing: give null, not {}", kind_of(other)),
                    ));
                }
            },
            Shape::Newtype(t) => self.wire(t, json, at, encoding, depth + 1)?,
            Shape::Tuple(types) => {
                let items = json.as_array().filter(|a| a.len() == types.len());
                let items = items.ok_or_else(|| {
                    wrong(
                        at,
                        format!("`{name}` is a tuple of {}: give an array", types.len()),
                    )
                })?;
                Wire::Tuple(self.items(types.iter().zip(items), at, encoding, depth)?)
            }
            Shape::Struct(fields) => {
                Wire::Struct(self.fields_wire(name, fields, json, at, encoding, depth)?)
            }
            Shape::Enum(variants) => {
                self.variant_wire(name, variants, json, at, encoding, depth)?
            }
        })
    }

    fn fields_wire(
        &self,
        name: &str,
        fields: &[Field],
        json: &Json,
        at: &str,
        encoding: Encoding,
        depth: usize,
    ) -> Result<Vec<(String, Wire)>, ValueError> {
        let Json::Object(given) = json else {
            return Err(wrong(
                at,
                format!(
                    "`{name}` is a struct: give an object, not {}",
                    kind_of(json)
                ),
            ));
        };
        if let Some(unknown) = given.keys().find(|k| !fields.iter().any(|f| &f.name == *k)) {
            let known: Vec<_> = fields.iter().map(|f| f.name.as_str()).collect();
            return Err(wrong(
                at,
                format!(
                    "`{name}` has no field `{unknown}` (it has: {})",
                    known.join(", ")
                ),
            ));
        }
        let mut out = Vec::with_capacity(fields.len());
        for f in fields {
            let here = format!("{at}.{}", f.name);
            match given.get(&f.name) {
                Some(v) => out.push((
                    f.name.clone(),
                    self.wire(&f.ty, v, &here, encoding, depth + 1)?,
                )),
                // Left out: MessagePack lets the receiver fill in the
                // default; postcard has no way to leave a field out.
                None if f.default && encoding == Encoding::MessagePack => {}
                None if matches!(f.ty, Type::Option(_)) => out.push((f.name.clone(), Wire::None)),
                None => {
                    return Err(wrong(
                        &here,
                        format!("missing field `{}` of `{name}`", f.name),
                    ));
                }
            }
        }
        Ok(out)
    }

    fn variant_wire(
        &self,
        name: &str,
        variants: &[Variant],
        json: &Json,
        at: &str,
        encoding: Encoding,
        depth: usize,
    ) -> Result<Wire, ValueError> {
        let names = || {
            variants
                .iter()
                .map(|v| v.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (tag, payload) = match json {
            Json::String(tag) => (tag, None),
            Json::Object(map) if map.len() == 1 => {
                let (tag, payload) = map.iter().next().expect("one entry");
                (tag, Some(payload))
            }
            other => {
                return Err(wrong(
                    at,
                    format!(
                        "`{name}` is an enum: give \"Variant\" or {{\"Variant\": …}} ({}), not {}",
                        names(),
                        kind_of(other)
                    ),
                ));
            }
        };
        let Some(v) = variants.iter().find(|v| &v.name == tag) else {
            return Err(wrong(
                at,
                format!("`{name}` has no variant `{tag}` (it has: {})", names()),
            ));
        };
        let here = format!("{at}.{tag}");
        let payload = match (&v.shape, payload) {
            (Shape::Unit, None | Some(Json::Null)) => VariantWire::Unit,
            (Shape::Unit, Some(other)) => {
                return Err(wrong(
                    &here,
                    format!("`{tag}` holds nothing, not {}", kind_of(other)),
                ));
            }
            (_, None) => {
                return Err(wrong(
                    at,
                    format!("`{tag}` holds a value: give {{\"{tag}\": …}}"),
                ));
            }
            (Shape::Newtype(t), Some(p)) => {
                VariantWire::Newtype(Box::new(self.wire(t, p, &here, encoding, depth + 1)?))
            }
            (Shape::Tuple(types), Some(p)) => {
                let items = p.as_array().filter(|a| a.len() == types.len());
                let items = items.ok_or_else(|| {
                    wrong(
                        &here,
                        format!("`{tag}` is a tuple of {}: give an array", types.len()),
                    )
                })?;
                VariantWire::Tuple(self.items(types.iter().zip(items), &here, encoding, depth)?)
            }
            (Shape::Struct(fields), Some(p)) => {
                VariantWire::Struct(self.fields_wire(tag, fields, p, &here, encoding, depth)?)
            }
            (Shape::Enum(_), Some(_)) => return Err(wrong(&here, "a variant cannot be an enum")),
        };
        Ok(Wire::Variant {
            index: v.index,
            name: v.name.clone(),
            payload,
        })
    }
}

/// How deep a value may nest, so a hostile schema or JSON cannot exhaust
/// the stack.
const MAX_DEPTH: usize = 128;

fn kind_of(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// A value ready to serialize, shaped as the schema says.
enum Wire {
    Unit,
    UnitStruct,
    Bool(bool),
    I8(i8),
    I16(i16),
    I32(i32),
    I64(i64),
    I128(i128),
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    U128(u128),
    F32(f32),
    F64(f64),
    Char(char),
    Str(String),
    Bytes(Vec<u8>),
    None,
    Some(Box<Wire>),
    Seq(Vec<Wire>),
    Tuple(Vec<Wire>),
    Map(Vec<(Wire, Wire)>),
    Struct(Vec<(String, Wire)>),
    Variant {
        index: u32,
        name: String,
        payload: VariantWire,
    },
}

enum VariantWire {
    Unit,
    Newtype(Box<Wire>),
    Tuple(Vec<Wire>),
    Struct(Vec<(String, Wire)>),
}

/// A [`Wire`] serialized as serde's derive would serialize the type: for
/// MessagePack with its names (rmp-serde writes names from `&'static str`
/// only, so structs and variants are written as the maps and strings it
/// would make of them), for postcard positionally (names ignored).
struct Encoded<'a> {
    wire: &'a Wire,
    encoding: Encoding,
}

impl Encoded<'_> {
    fn of<'b>(&self, wire: &'b Wire) -> Encoded<'b> {
        Encoded {
            wire,
            encoding: self.encoding,
        }
    }
}

impl Serialize for Encoded<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let named = self.encoding == Encoding::MessagePack;
        match self.wire {
            Wire::Unit => s.serialize_unit(),
            Wire::UnitStruct => s.serialize_unit_struct(""),
            Wire::Bool(v) => s.serialize_bool(*v),
            Wire::I8(v) => s.serialize_i8(*v),
            Wire::I16(v) => s.serialize_i16(*v),
            Wire::I32(v) => s.serialize_i32(*v),
            Wire::I64(v) => s.serialize_i64(*v),
            Wire::I128(v) => s.serialize_i128(*v),
            Wire::U8(v) => s.serialize_u8(*v),
            Wire::U16(v) => s.serialize_u16(*v),
            Wire::U32(v) => s.serialize_u32(*v),
            Wire::U64(v) => s.serialize_u64(*v),
            Wire::U128(v) => s.serialize_u128(*v),
            Wire::F32(v) => s.serialize_f32(*v),
            Wire::F64(v) => s.serialize_f64(*v),
            Wire::Char(v) => s.serialize_char(*v),
            Wire::Str(v) => s.serialize_str(v),
            Wire::Bytes(v) => s.serialize_bytes(v),
            Wire::None => s.serialize_none(),
            Wire::Some(v) => s.serialize_some(&self.of(v)),
            Wire::Seq(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&self.of(item))?;
                }
                seq.end()
            }
            Wire::Tuple(items) => {
                let mut tuple = s.serialize_tuple(items.len())?;
                for item in items {
                    tuple.serialize_element(&self.of(item))?;
                }
                tuple.end()
            }
            Wire::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(&self.of(k), &self.of(v))?;
                }
                map.end()
            }
            Wire::Struct(fields) => FieldsOf {
                fields,
                encoding: self.encoding,
            }
            .serialize(s),
            Wire::Variant { name, payload, .. } if named => {
                // rmp-serde: a unit variant is its name; any other a map of
                // one entry, the name to the payload.
                if let VariantWire::Unit = payload {
                    return s.serialize_str(name);
                }
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_key(name)?;
                match payload {
                    VariantWire::Unit => unreachable!("returned above"),
                    VariantWire::Newtype(v) => map.serialize_value(&self.of(v))?,
                    VariantWire::Tuple(items) => map.serialize_value(&TupleOf {
                        items,
                        encoding: self.encoding,
                    })?,
                    VariantWire::Struct(fields) => map.serialize_value(&FieldsOf {
                        fields,
                        encoding: self.encoding,
                    })?,
                }
                map.end()
            }
            Wire::Variant { index, payload, .. } => match payload {
                VariantWire::Unit => s.serialize_unit_variant("", *index, ""),
                VariantWire::Newtype(v) => s.serialize_newtype_variant("", *index, "", &self.of(v)),
                VariantWire::Tuple(items) => {
                    let mut t = s.serialize_tuple_variant("", *index, "", items.len())?;
                    for item in items {
                        t.serialize_field(&self.of(item))?;
                    }
                    t.end()
                }
                VariantWire::Struct(fields) => {
                    let mut t = s.serialize_struct_variant("", *index, "", fields.len())?;
                    for (_, v) in fields {
                        t.serialize_field("", &self.of(v))?;
                    }
                    t.end()
                }
            },
        }
    }
}

struct TupleOf<'a> {
    items: &'a [Wire],
    encoding: Encoding,
}

impl Serialize for TupleOf<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut tuple = s.serialize_tuple(self.items.len())?;
        for item in self.items {
            tuple.serialize_element(&Encoded {
                wire: item,
                encoding: self.encoding,
            })?;
        }
        tuple.end()
    }
}

/// A struct's fields: a map by name in MessagePack, in order in postcard.
struct FieldsOf<'a> {
    fields: &'a [(String, Wire)],
    encoding: Encoding,
}

impl Serialize for FieldsOf<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.encoding == Encoding::MessagePack {
            let mut map = s.serialize_map(Some(self.fields.len()))?;
            for (k, v) in self.fields {
                map.serialize_entry(
                    k,
                    &Encoded {
                        wire: v,
                        encoding: self.encoding,
                    },
                )?;
            }
            map.end()
        } else {
            let mut tuple = s.serialize_tuple(self.fields.len())?;
            for (_, v) in self.fields {
                tuple.serialize_element(&Encoded {
                    wire: v,
                    encoding: self.encoding,
                })?;
            }
            tuple.end()
        }
    }
}

// ---- decoding ----

/// Names handed to deserializers that want `&'static` ones: both of ours
/// read only how many there are.
static NAMES: [&str; 256] = [""; 256];

fn decode_with(seed: Shaped<'_>, bytes: &[u8], encoding: Encoding) -> Result<Json, ValueError> {
    super::codec::decode_seed(seed, bytes, encoding).map_err(|e| wrong("answer", e.0))
}

#[derive(Clone, Copy)]
enum ShapeRef<'s> {
    Type(&'s Type),
    Shape(&'s str, &'s Shape),
    Enum(&'s [Variant]),
}

/// A seed that reads one value of a type the schema describes, into JSON.
#[derive(Clone, Copy)]
struct Shaped<'s> {
    schema: &'s Schema,
    shape: ShapeRef<'s>,
    depth: usize,
}

impl<'s> Shaped<'s> {
    fn of(&self, ty: &'s Type) -> Shaped<'s> {
        Shaped {
            schema: self.schema,
            shape: ShapeRef::Type(ty),
            depth: self.depth + 1,
        }
    }
}

fn names(n: usize) -> Result<&'static [&'static str], String> {
    NAMES
        .get(..n)
        .ok_or_else(|| format!("more than {} fields", NAMES.len()))
}

impl<'de, 's> DeserializeSeed<'de> for Shaped<'s> {
    type Value = Json;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        if self.depth > MAX_DEPTH {
            return Err(de::Error::custom(format!("nested deeper than {MAX_DEPTH}")));
        }
        let visit = Visit(self);
        let ty = match self.shape {
            ShapeRef::Type(ty) => ty,
            ShapeRef::Enum(_) => return d.deserialize_enum("", &[], visit),
            ShapeRef::Shape(_, shape) => {
                return match shape {
                    Shape::Unit => d.deserialize_unit_struct("", visit),
                    Shape::Newtype(t) => self.of(t).deserialize(d),
                    Shape::Tuple(ts) => d.deserialize_tuple(ts.len(), visit),
                    Shape::Struct(fields) => d.deserialize_struct(
                        "",
                        names(fields.len()).map_err(de::Error::custom)?,
                        visit,
                    ),
                    Shape::Enum(_) => d.deserialize_enum("", &[], visit),
                };
            }
        };
        match ty {
            Type::Unit => d.deserialize_unit(visit),
            Type::Bool => d.deserialize_bool(visit),
            Type::I8 => d.deserialize_i8(visit),
            Type::I16 => d.deserialize_i16(visit),
            Type::I32 => d.deserialize_i32(visit),
            Type::I64 => d.deserialize_i64(visit),
            Type::I128 => d.deserialize_i128(visit),
            Type::U8 => d.deserialize_u8(visit),
            Type::U16 => d.deserialize_u16(visit),
            Type::U32 => d.deserialize_u32(visit),
            Type::U64 => d.deserialize_u64(visit),
            Type::U128 => d.deserialize_u128(visit),
            Type::F32 => d.deserialize_f32(visit),
            Type::F64 => d.deserialize_f64(visit),
            Type::Char => d.deserialize_char(visit),
            Type::Str => d.deserialize_string(visit),
            Type::Bytes => d.deserialize_byte_buf(visit),
            Type::Option(_) => d.deserialize_option(visit),
            Type::Seq(_) => d.deserialize_seq(visit),
            Type::Map { .. } => d.deserialize_map(visit),
            Type::Tuple(ts) => d.deserialize_tuple(ts.len(), visit),
            Type::Array { len, .. } => d.deserialize_tuple(*len, visit),
            Type::Named(name) => {
                let Some(t) = self.schema.types.get(name) else {
                    return Err(de::Error::custom(format!(
                        "the schema has no type `{name}`"
                    )));
                };
                Shaped {
                    schema: self.schema,
                    shape: ShapeRef::Shape(name, &t.shape),
                    depth: self.depth + 1,
                }
                .deserialize(d)
            }
        }
    }
}

/// The visitor of a [`Shaped`] seed.
struct Visit<'s>(Shaped<'s>);

fn number<E: de::Error>(n: impl Into<serde_json::Number>) -> Result<Json, E> {
    Ok(Json::Number(n.into()))
}

impl<'de, 's> Visitor<'de> for Visit<'s> {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.0.shape {
            ShapeRef::Type(t) => write!(f, "a value of {t:?}"),
            ShapeRef::Shape(name, _) => write!(f, "a `{name}`"),
            ShapeRef::Enum(_) => f.write_str("a Result"),
        }
    }

    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        match self.0.shape {
            ShapeRef::Type(Type::Option(inner)) => self.0.of(inner).deserialize(d),
            _ => Err(de::Error::custom("an Option where none belongs")),
        }
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        number(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        number(v)
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Json, E> {
        Ok(i64::try_from(v).map_or_else(|_| Json::String(v.to_string()), Json::from))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Json, E> {
        Ok(u64::try_from(v).map_or_else(|_| Json::String(v.to_string()), Json::from))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        // JSON has no NaN or infinity: those are written as strings.
        Ok(serde_json::Number::from_f64(v)
            .map_or_else(|| Json::String(v.to_string()), Json::Number))
    }
    fn visit_char<E: de::Error>(self, v: char) -> Result<Json, E> {
        Ok(Json::String(v.to_string()))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        match self.0.shape {
            // MessagePack writes a unit variant as its name.
            ShapeRef::Shape(_, Shape::Enum(vs)) => unit_variant(vs, v),
            ShapeRef::Enum(vs) => unit_variant(vs, v),
            _ => Ok(Json::String(v.to_owned())),
        }
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Json, E> {
        Ok(Json::Array(v.iter().map(|b| Json::from(*b)).collect()))
    }
    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Json, E> {
        self.visit_bytes(&v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let s = self.0;
        let mut out = Vec::new();
        let one = |seq: &mut A, t: &'s Type| -> Result<Option<Json>, A::Error> {
            seq.next_element_seed(s.of(t))
        };
        match s.shape {
            ShapeRef::Type(Type::Seq(item)) | ShapeRef::Type(Type::Array { item, .. }) => {
                while let Some(v) = one(&mut seq, item)? {
                    out.push(v);
                }
            }
            ShapeRef::Type(Type::Tuple(ts)) | ShapeRef::Shape(_, Shape::Tuple(ts)) => {
                for t in ts {
                    out.push(
                        one(&mut seq, t)?
                            .ok_or_else(|| de::Error::invalid_length(out.len(), &self))?,
                    );
                }
            }
            ShapeRef::Shape(_, Shape::Unit) => {}
            ShapeRef::Shape(_, Shape::Struct(fields)) => {
                // postcard (or MessagePack without names): in order.
                let mut map = serde_json::Map::new();
                for f in fields {
                    let v =
                        one(&mut seq, &f.ty)?.ok_or_else(|| de::Error::missing_field("a field"))?;
                    map.insert(f.name.clone(), v);
                }
                return Ok(Json::Object(map));
            }
            _ => return Err(de::Error::invalid_type(de::Unexpected::Seq, &self)),
        }
        Ok(Json::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let s = self.0;
        let mut out = serde_json::Map::new();
        match s.shape {
            ShapeRef::Type(Type::Map { key, value }) => {
                while let Some(k) = map.next_key_seed(s.of(key))? {
                    let k = match k {
                        Json::String(k) => k,
                        other => other.to_string(),
                    };
                    out.insert(k, map.next_value_seed(s.of(value))?);
                }
            }
            ShapeRef::Shape(name, Shape::Struct(fields)) => {
                while let Some(k) = map.next_key::<String>()? {
                    match fields.iter().find(|f| f.name == k) {
                        Some(f) => {
                            out.insert(k, map.next_value_seed(s.of(&f.ty))?);
                        }
                        // A field this schema does not know (a newer
                        // peer's): skipped, as serde's derive would.
                        None => {
                            map.next_value::<de::IgnoredAny>()?;
                        }
                    }
                }
                if let Some(f) = fields
                    .iter()
                    .find(|f| !f.default && !out.contains_key(&f.name))
                {
                    return Err(de::Error::custom(format!(
                        "missing field `{}` of `{name}`",
                        f.name
                    )));
                }
            }
            _ => return Err(de::Error::invalid_type(de::Unexpected::Map, &self)),
        }
        Ok(Json::Object(out))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Json, A::Error> {
        let s = self.0;
        let variants = match s.shape {
            ShapeRef::Shape(_, Shape::Enum(vs)) => vs.as_slice(),
            ShapeRef::Enum(vs) => vs,
            _ => return Err(de::Error::invalid_type(de::Unexpected::Enum, &self)),
        };
        let (v, access) = data.variant_seed(Which(variants))?;
        let payload = match &v.shape {
            Shape::Unit => {
                access.unit_variant()?;
                return Ok(Json::String(v.name.clone()));
            }
            Shape::Newtype(t) => access.newtype_variant_seed(s.of(t))?,
            Shape::Tuple(ts) => access.tuple_variant(
                ts.len(),
                Visit(Shaped {
                    shape: ShapeRef::Shape(&v.name, &v.shape),
                    ..s
                }),
            )?,
            Shape::Struct(fields) => access.struct_variant(
                names(fields.len()).map_err(de::Error::custom)?,
                Visit(Shaped {
                    shape: ShapeRef::Shape(&v.name, &v.shape),
                    ..s
                }),
            )?,
            Shape::Enum(_) => return Err(de::Error::custom("a variant cannot be an enum")),
        };
        Ok(Json::Object(
            [(v.name.clone(), payload)].into_iter().collect(),
        ))
    }
}

/// A unit variant that MessagePack wrote as its bare name.
fn unit_variant<E: de::Error>(variants: &[Variant], name: &str) -> Result<Json, E> {
    if variants
        .iter()
        .any(|v| v.name == name && v.shape == Shape::Unit)
    {
        Ok(Json::String(name.to_owned()))
    } else {
        Err(de::Error::unknown_variant(name, &[]))
    }
}

/// Reads which variant comes: by name (MessagePack) or index (postcard).
struct Which<'s>(&'s [Variant]);

impl<'de, 's> DeserializeSeed<'de> for Which<'s> {
    type Value = &'s Variant;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'s Variant, D::Error> {
        d.deserialize_identifier(self)
    }
}

impl<'de, 's> Visitor<'de> for Which<'s> {
    type Value = &'s Variant;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a variant's name or index")
    }
    fn visit_u64<E: de::Error>(self, index: u64) -> Result<&'s Variant, E> {
        self.0
            .iter()
            .find(|v| u64::from(v.index) == index)
            .ok_or_else(|| de::Error::invalid_value(de::Unexpected::Unsigned(index), &self))
    }
    fn visit_str<E: de::Error>(self, name: &str) -> Result<&'s Variant, E> {
        self.0
            .iter()
            .find(|v| v.name == name)
            .ok_or_else(|| de::Error::unknown_variant(name, &[]))
    }
    fn visit_bytes<E: de::Error>(self, name: &[u8]) -> Result<&'s Variant, E> {
        let name = std::str::from_utf8(name)
            .map_err(|_| de::Error::custom("a variant name that is not UTF-8"))?;
        self.visit_str(name)
    }
}
