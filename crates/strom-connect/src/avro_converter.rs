//! Confluent's `AvroConverter` (also `io.strom.connect.avro.AvroConverter`): Connect data in
//! Avro, framed in Confluent's wire format (magic byte 0, the 4-byte schema id, the Avro
//! binary datum), with the schemas in a Schema Registry (`schema.registry.url`) through
//! `strom-schema`'s registry client. Settings as Confluent's: `auto.register.schemas`
//! (default true), `use.latest.version` (default false), `key.subject.name.strategy` /
//! `value.subject.name.strategy` (TopicNameStrategy by default: `<topic>-key`,
//! `<topic>-value`; RecordNameStrategy and TopicRecordNameStrategy too), `normalize.schemas`.
//!
//! The Connect ↔ Avro schema mapping follows Confluent's AvroData: int8 and int16 are Avro
//! ints with `"connect.type"`, float32/float64 are float/double; an optional schema is a
//! union of `"null"` and the type (with a null default for fields); a struct is a record
//! (unnamed ones are `io.confluent.connect.avro.ConnectDefault`, numbered); a map with
//! string keys is an Avro map, any other map an array of `MapEntry` key/value records;
//! Decimal is `bytes` with the `decimal` logical type (`scale`, and `precision` from
//! `connect.decimal.precision`, default 64), Date is `int`/`date`, Time is
//! `int`/`time-millis`, Timestamp is `long`/`timestamp-millis`. Schema names, versions, docs
//! and parameters travel as `connect.name`, `connect.version`, `doc`/`connect.doc` and
//! `connect.parameters`, so a schema comes back as it went. Not mapped: Connect default
//! values other than null, and Avro unions other than `[null, T]` (an error names them).
//!
//! The `Converter` API is synchronous; the registry is asked only on a cache miss (once per
//! schema and topic, once per id), on a short-lived thread of its own, so converting never
//! blocks the async runtime's threads for more than that one request.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};

use apache_avro::types::Value as AvroValue;
use serde_json::{json, Map as JMap, Value as J};
use strom_schema::avro::{parse as parse_avro, ParsedAvro};
use strom_schema::serde::{decode, encode, split_frame, RegistryClient, SubjectNameStrategy};

use crate::config::{get_bool, Props};
use crate::converter::Converter;
use crate::data::{Field, Schema, SchemaType, Struct, Value, DATE, DECIMAL, TIME, TIMESTAMP};
use crate::error::{ConnectError, Result};

pub const AVRO_CONVERTER: &str = "io.confluent.connect.avro.AvroConverter";

const NAMESPACE: &str = "io.confluent.connect.avro";
const DEFAULT_RECORD: &str = "ConnectDefault";
const MAP_ENTRY: &str = "MapEntry";
const DEFAULT_PRECISION: u32 = 64;
const PRECISION_PARAM: &str = "connect.decimal.precision";

fn data_err(msg: impl Into<String>) -> ConnectError {
    ConnectError::Data(msg.into())
}

// ---------------------------------------------------------------------------------------
// Connect schema → Avro schema (JSON)

/// Builds Avro schema JSON; tracks the named types defined so far (Avro defines a name once).
#[derive(Default)]
struct ToAvro {
    defined: HashMap<String, Schema>,
    default_records: usize,
    map_entries: usize,
}

fn valid_avro_name(n: &str) -> bool {
    let mut c = n.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

fn valid_full_name(n: &str) -> bool {
    n.split('.').all(valid_avro_name)
}

/// `connect.*` properties for a schema's name, version, doc and parameters.
fn connect_props(s: &Schema, with_name: bool, out: &mut JMap<String, J>) {
    if with_name {
        if let Some(n) = &s.name {
            out.insert("connect.name".into(), json!(n));
        }
    }
    if let Some(v) = s.version {
        out.insert("connect.version".into(), json!(v));
    }
    if let Some(d) = &s.doc {
        out.insert("connect.doc".into(), json!(d));
    }
    if !s.parameters.is_empty() {
        out.insert("connect.parameters".into(), json!(s.parameters));
    }
}

impl ToAvro {
    /// The Avro schema of `s`, with the null union when it is optional.
    fn schema(&mut self, s: &Schema) -> Result<J> {
        let inner = self.required(s)?;
        Ok(if s.optional {
            json!(["null", inner])
        } else {
            inner
        })
    }

    fn required(&mut self, s: &Schema) -> Result<J> {
        let mut m = JMap::new();
        let logical = s.logical();
        match (s.schema_type, logical) {
            (SchemaType::Bytes, Some(DECIMAL)) => {
                let scale: u32 = s
                    .parameters
                    .get("scale")
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| data_err("a Decimal schema without a scale parameter"))?;
                let precision = s
                    .parameters
                    .get(PRECISION_PARAM)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(DEFAULT_PRECISION);
                m.insert("type".into(), json!("bytes"));
                m.insert("logicalType".into(), json!("decimal"));
                m.insert("precision".into(), json!(precision));
                m.insert("scale".into(), json!(scale));
                connect_props(s, true, &mut m);
                return Ok(J::Object(m));
            }
            (SchemaType::Int32, Some(DATE)) => {
                m.insert("type".into(), json!("int"));
                m.insert("logicalType".into(), json!("date"));
                connect_props(s, true, &mut m);
                return Ok(J::Object(m));
            }
            (SchemaType::Int32, Some(TIME)) => {
                m.insert("type".into(), json!("int"));
                m.insert("logicalType".into(), json!("time-millis"));
                connect_props(s, true, &mut m);
                return Ok(J::Object(m));
            }
            (SchemaType::Int64, Some(TIMESTAMP)) => {
                m.insert("type".into(), json!("long"));
                m.insert("logicalType".into(), json!("timestamp-millis"));
                connect_props(s, true, &mut m);
                return Ok(J::Object(m));
            }
            _ => {}
        }
        let primitive = match s.schema_type {
            SchemaType::Int8 | SchemaType::Int16 | SchemaType::Int32 => Some("int"),
            SchemaType::Int64 => Some("long"),
            SchemaType::Float32 => Some("float"),
            SchemaType::Float64 => Some("double"),
            SchemaType::Boolean => Some("boolean"),
            SchemaType::String => Some("string"),
            SchemaType::Bytes => Some("bytes"),
            _ => None,
        };
        if let Some(p) = primitive {
            if matches!(s.schema_type, SchemaType::Int8 | SchemaType::Int16) {
                m.insert("connect.type".into(), json!(s.schema_type.name()));
            }
            connect_props(s, true, &mut m);
            if m.is_empty() {
                return Ok(json!(p));
            }
            m.insert("type".into(), json!(p));
            return Ok(J::Object(m));
        }
        match s.schema_type {
            SchemaType::Array => {
                let items = s
                    .value_schema
                    .as_deref()
                    .ok_or_else(|| data_err("an array schema without an item schema"))?;
                m.insert("type".into(), json!("array"));
                m.insert("items".into(), self.schema(items)?);
            }
            SchemaType::Map => {
                let (k, v) = match (s.key_schema.as_deref(), s.value_schema.as_deref()) {
                    (Some(k), Some(v)) => (k, v),
                    _ => return Err(data_err("a map schema without key and value schemas")),
                };
                if k.schema_type == SchemaType::String && !k.optional && k.name.is_none() {
                    m.insert("type".into(), json!("map"));
                    m.insert("values".into(), self.schema(v)?);
                } else {
                    self.map_entries += 1;
                    let name = match self.map_entries {
                        1 => MAP_ENTRY.to_owned(),
                        n => format!("{MAP_ENTRY}{n}"),
                    };
                    let entry = json!({
                        "type": "record",
                        "name": name,
                        "namespace": NAMESPACE,
                        "fields": [
                            {"name": "key", "type": self.schema(k)?},
                            {"name": "value", "type": self.schema(v)?},
                        ],
                    });
                    m.insert("type".into(), json!("array"));
                    m.insert("items".into(), entry);
                }
            }
            SchemaType::Struct => {
                let mut required = s.clone();
                required.optional = false;
                let full = match &s.name {
                    Some(n) => {
                        if !valid_full_name(n) {
                            return Err(data_err(format!(
                                "the struct name {n} is not a valid Avro name"
                            )));
                        }
                        if let Some(prev) = self.defined.get(n) {
                            if *prev != required {
                                return Err(data_err(format!(
                                    "two different struct schemas are named {n}"
                                )));
                            }
                            return Ok(json!(n));
                        }
                        n.clone()
                    }
                    None => {
                        self.default_records += 1;
                        match self.default_records {
                            1 => format!("{NAMESPACE}.{DEFAULT_RECORD}"),
                            n => format!("{NAMESPACE}.{DEFAULT_RECORD}{n}"),
                        }
                    }
                };
                let mut fields = Vec::with_capacity(s.fields.len());
                for f in &s.fields {
                    if !valid_avro_name(&f.name) {
                        return Err(data_err(format!(
                            "the field name {} is not a valid Avro name",
                            f.name
                        )));
                    }
                    let mut field = JMap::new();
                    field.insert("name".into(), json!(f.name));
                    field.insert("type".into(), self.schema(&f.schema)?);
                    if f.schema.optional {
                        field.insert("default".into(), J::Null);
                    }
                    fields.push(J::Object(field));
                }
                m.insert("type".into(), json!("record"));
                m.insert("name".into(), json!(full));
                if let Some(d) = &s.doc {
                    m.insert("doc".into(), json!(d));
                }
                m.insert("fields".into(), J::Array(fields));
                if let Some(v) = s.version {
                    m.insert("connect.version".into(), json!(v));
                }
                if !s.parameters.is_empty() {
                    m.insert("connect.parameters".into(), json!(s.parameters));
                }
                if s.name.is_some() {
                    self.defined.insert(full, required);
                }
            }
            _ => unreachable!("primitives are handled above"),
        }
        Ok(J::Object(m))
    }
}

/// The Avro schema (JSON) of a Connect schema.
pub fn avro_schema(s: &Schema) -> Result<J> {
    ToAvro::default().schema(s)
}

// ---------------------------------------------------------------------------------------
// Avro schema (JSON) → Connect schema

#[derive(Default)]
struct FromAvro {
    named: HashMap<String, Schema>,
}

fn full_name(m: &JMap<String, J>, ns: Option<&str>) -> Result<(String, Option<String>)> {
    let name = m
        .get("name")
        .and_then(J::as_str)
        .ok_or_else(|| data_err("a named Avro type without a name"))?;
    if name.contains('.') {
        let ns = name.rsplit_once('.').map(|(n, _)| n.to_owned());
        return Ok((name.to_owned(), ns));
    }
    let ns = m
        .get("namespace")
        .and_then(J::as_str)
        .map(str::to_owned)
        .or_else(|| ns.map(str::to_owned))
        .filter(|n| !n.is_empty());
    Ok(match &ns {
        Some(n) => (format!("{n}.{name}"), ns.clone()),
        None => (name.to_owned(), None),
    })
}

/// `connect.version`, `connect.doc`, `connect.parameters` (and `connect.name`) onto `s`.
fn read_connect_props(m: &JMap<String, J>, mut s: Schema) -> Schema {
    if let Some(n) = m.get("connect.name").and_then(J::as_str) {
        s.name = Some(n.to_owned());
    }
    if let Some(v) = m.get("connect.version").and_then(J::as_i64) {
        s.version = Some(v as i32);
    }
    if let Some(d) = m.get("connect.doc").and_then(J::as_str) {
        s.doc = Some(d.to_owned());
    }
    if let Some(J::Object(p)) = m.get("connect.parameters") {
        s.parameters = p
            .iter()
            .map(|(k, v)| {
                let v = v
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string());
                (k.clone(), v)
            })
            .collect();
    }
    s
}

impl FromAvro {
    fn schema(&mut self, j: &J, ns: Option<&str>) -> Result<Schema> {
        match j {
            J::String(t) => self.named_or_primitive(t, ns),
            J::Array(branches) => {
                let non_null: Vec<&J> = branches.iter().filter(|b| *b != "null").collect();
                match (branches.len() - non_null.len(), non_null.as_slice()) {
                    (1, [one]) => Ok(self.schema(one, ns)?.optional()),
                    (0, [one]) => self.schema(one, ns),
                    _ => Err(data_err(format!(
                        "the Avro union {j} has no Connect schema (only [\"null\", T] unions do)"
                    ))),
                }
            }
            J::Object(m) => self.object(m, ns),
            other => Err(data_err(format!("{other} is not an Avro schema"))),
        }
    }

    fn named_or_primitive(&mut self, t: &str, ns: Option<&str>) -> Result<Schema> {
        Ok(Schema::new(match t {
            "boolean" => SchemaType::Boolean,
            "int" => SchemaType::Int32,
            "long" => SchemaType::Int64,
            "float" => SchemaType::Float32,
            "double" => SchemaType::Float64,
            "bytes" => SchemaType::Bytes,
            "string" => SchemaType::String,
            "null" => return Err(data_err("a lone Avro null has no Connect schema")),
            name => {
                let qualified = match ns {
                    Some(n) if !name.contains('.') => format!("{n}.{name}"),
                    _ => name.to_owned(),
                };
                return self
                    .named
                    .get(&qualified)
                    .or_else(|| self.named.get(name))
                    .cloned()
                    .ok_or_else(|| data_err(format!("unknown Avro type {name}")));
            }
        }))
    }

    fn object(&mut self, m: &JMap<String, J>, ns: Option<&str>) -> Result<Schema> {
        let t = m
            .get("type")
            .ok_or_else(|| data_err("an Avro schema without a type"))?;
        let t = match t {
            J::String(t) => t.as_str(),
            nested => return self.schema(nested, ns),
        };
        let logical = m.get("logicalType").and_then(J::as_str);
        let s = match (t, logical) {
            ("bytes", Some("decimal")) | ("fixed", Some("decimal")) => {
                let scale = m.get("scale").and_then(J::as_u64).unwrap_or(0);
                let precision = m.get("precision").and_then(J::as_u64);
                let mut s = Schema::new(SchemaType::Bytes).named(DECIMAL);
                s.parameters.insert("scale".into(), scale.to_string());
                if let Some(p) = precision.filter(|p| *p != u64::from(DEFAULT_PRECISION)) {
                    s.parameters.insert(PRECISION_PARAM.into(), p.to_string());
                }
                if t == "fixed" {
                    let (full, _) = full_name(m, ns)?;
                    self.named.insert(full, s.clone());
                }
                // What this converter wrote says exactly what the schema was.
                let mut s = read_connect_props(m, s);
                if s.name.is_none() {
                    s.name = Some(DECIMAL.into());
                }
                return Ok(s);
            }
            ("int", Some("date")) => logical_schema(SchemaType::Int32, DATE),
            ("int", Some("time-millis")) => logical_schema(SchemaType::Int32, TIME),
            ("long", Some("timestamp-millis")) => logical_schema(SchemaType::Int64, TIMESTAMP),
            ("int", _) => Schema::new(match m.get("connect.type").and_then(J::as_str) {
                Some("int8") => SchemaType::Int8,
                Some("int16") => SchemaType::Int16,
                _ => SchemaType::Int32,
            }),
            ("record" | "error", _) => {
                let (full, inner_ns) = full_name(m, ns)?;
                let mut fields = Vec::new();
                for f in m
                    .get("fields")
                    .and_then(J::as_array)
                    .ok_or_else(|| data_err(format!("the record {full} has no fields")))?
                {
                    let name = f
                        .get("name")
                        .and_then(J::as_str)
                        .ok_or_else(|| data_err(format!("a field of {full} has no name")))?;
                    let ft = f
                        .get("type")
                        .ok_or_else(|| data_err(format!("the field {name} has no type")))?;
                    fields.push(Field {
                        name: name.to_owned(),
                        schema: self.schema(ft, inner_ns.as_deref())?,
                    });
                }
                let mut s = Schema::structure(fields);
                if !full.starts_with(&format!("{NAMESPACE}.{DEFAULT_RECORD}")) {
                    s.name = Some(full.clone());
                }
                s.doc = m.get("doc").and_then(J::as_str).map(str::to_owned);
                let s = read_connect_props(m, s);
                self.named.insert(full, s.clone());
                return Ok(s);
            }
            ("enum", _) => {
                let (full, _) = full_name(m, ns)?;
                let s = Schema::new(SchemaType::String);
                self.named.insert(full, s.clone());
                s
            }
            ("fixed", _) => {
                let (full, _) = full_name(m, ns)?;
                let s = Schema::new(SchemaType::Bytes);
                self.named.insert(full, s.clone());
                s
            }
            ("array", _) => {
                let items = m
                    .get("items")
                    .ok_or_else(|| data_err("an Avro array without items"))?;
                let item = self.schema(items, ns)?;
                let is_entry = items.get("name").and_then(J::as_str).is_some_and(|n| {
                    n.starts_with(MAP_ENTRY) || n.contains(&format!(".{MAP_ENTRY}"))
                }) && item.schema_type == SchemaType::Struct
                    && item.fields.len() == 2
                    && item.fields[0].name == "key"
                    && item.fields[1].name == "value";
                if is_entry {
                    Schema::map(item.fields[0].schema.clone(), item.fields[1].schema.clone())
                } else {
                    Schema::array(item)
                }
            }
            ("map", _) => {
                let values = m
                    .get("values")
                    .ok_or_else(|| data_err("an Avro map without values"))?;
                Schema::map(Schema::new(SchemaType::String), self.schema(values, ns)?)
            }
            (p, _) => self.named_or_primitive(p, ns)?,
        };
        Ok(read_connect_props(m, s))
    }
}

/// A logical type's schema (its version only when `connect.version` says one).
fn logical_schema(t: SchemaType, name: &str) -> Schema {
    Schema::new(t).named(name)
}

/// The most decimal digits `len` bytes hold, as apache-avro reckons it (it refuses to write
/// a decimal whose byte length holds fewer digits than the schema's precision).
fn max_precision_for_len(len: usize) -> u32 {
    let bits = (8 * len).saturating_sub(1) as i32;
    (2.0_f64.powi(bits) - 1.0).log10().floor() as u32
}

/// `unscaled` (big-endian two's complement) sign-extended to the length `precision` needs.
fn sign_extend_for(unscaled: &[u8], precision: u32) -> Vec<u8> {
    let mut len = unscaled.len().max(1);
    while max_precision_for_len(len) < precision {
        len += 1;
    }
    let fill = if unscaled.first().is_some_and(|b| b & 0x80 != 0) {
        0xff
    } else {
        0
    };
    let mut out = vec![fill; len - unscaled.len()];
    out.extend_from_slice(unscaled);
    out
}

/// Two's complement bytes without redundant leading sign bytes (Java's
/// `BigInteger.toByteArray` form, which Connect's Decimal holds).
pub fn minimal_twos_complement(mut b: Vec<u8>) -> Vec<u8> {
    let redundant = b
        .windows(2)
        .take_while(|w| (w[0] == 0 && w[1] & 0x80 == 0) || (w[0] == 0xff && w[1] & 0x80 != 0))
        .count();
    b.drain(..redundant);
    b
}

/// The Connect schema of an Avro schema (JSON text as the registry holds it).
pub fn connect_schema(avro: &J) -> Result<Schema> {
    FromAvro::default().schema(avro, None)
}

// ---------------------------------------------------------------------------------------
// Values

/// The Avro value of a Connect value of schema `s` (the shape `avro_schema(s)` describes).
pub fn avro_value(s: &Schema, v: &Value) -> Result<AvroValue> {
    if s.optional {
        return Ok(match v {
            Value::Null => AvroValue::Union(0, Box::new(AvroValue::Null)),
            v => AvroValue::Union(1, Box::new(required_avro_value(s, v)?)),
        });
    }
    required_avro_value(s, v)
}

fn mismatch(s: &Schema, v: &Value) -> ConnectError {
    data_err(format!(
        "a {} value does not fit the schema type {}",
        v.type_name(),
        s.schema_type.name()
    ))
}

fn required_avro_value(s: &Schema, v: &Value) -> Result<AvroValue> {
    Ok(match (s.schema_type, s.logical(), v) {
        (SchemaType::Bytes, Some(DECIMAL), Value::Bytes(b)) => {
            let precision = s
                .parameters
                .get(PRECISION_PARAM)
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_PRECISION);
            AvroValue::Decimal(apache_avro::Decimal::from(sign_extend_for(b, precision)))
        }
        (SchemaType::Int32, Some(DATE), Value::Int32(d)) => AvroValue::Date(*d),
        (SchemaType::Int32, Some(TIME), Value::Int32(t)) => AvroValue::TimeMillis(*t),
        (SchemaType::Int64, Some(TIMESTAMP), Value::Int64(t)) => AvroValue::TimestampMillis(*t),
        (SchemaType::Int8, _, Value::Int8(i)) => AvroValue::Int(i32::from(*i)),
        (SchemaType::Int16, _, Value::Int16(i)) => AvroValue::Int(i32::from(*i)),
        (SchemaType::Int32, _, Value::Int32(i)) => AvroValue::Int(*i),
        (SchemaType::Int64, _, Value::Int64(i)) => AvroValue::Long(*i),
        (SchemaType::Float32, _, Value::Float32(f)) => AvroValue::Float(*f),
        (SchemaType::Float64, _, Value::Float64(f)) => AvroValue::Double(*f),
        (SchemaType::Boolean, _, Value::Boolean(b)) => AvroValue::Boolean(*b),
        (SchemaType::String, _, Value::String(t)) => AvroValue::String(t.clone()),
        (SchemaType::Bytes, _, Value::Bytes(b)) => AvroValue::Bytes(b.clone()),
        (SchemaType::Array, _, Value::Array(items)) => {
            let is = s.value_schema.as_deref().ok_or_else(|| mismatch(s, v))?;
            AvroValue::Array(
                items
                    .iter()
                    .map(|i| avro_value(is, i))
                    .collect::<Result<_>>()?,
            )
        }
        (SchemaType::Map, _, Value::Map(entries)) => {
            let (ks, vs) = match (s.key_schema.as_deref(), s.value_schema.as_deref()) {
                (Some(k), Some(v)) => (k, v),
                _ => return Err(mismatch(s, v)),
            };
            if ks.schema_type == SchemaType::String && !ks.optional && ks.name.is_none() {
                let mut m = HashMap::with_capacity(entries.len());
                for (k, val) in entries {
                    let Value::String(k) = k else {
                        return Err(mismatch(ks, k));
                    };
                    m.insert(k.clone(), avro_value(vs, val)?);
                }
                AvroValue::Map(m)
            } else {
                AvroValue::Array(
                    entries
                        .iter()
                        .map(|(k, val)| {
                            Ok(AvroValue::Record(vec![
                                ("key".into(), avro_value(ks, k)?),
                                ("value".into(), avro_value(vs, val)?),
                            ]))
                        })
                        .collect::<Result<_>>()?,
                )
            }
        }
        (SchemaType::Struct, _, Value::Struct(st)) => AvroValue::Record(
            s.fields
                .iter()
                .zip(&st.values)
                .map(|(f, fv)| Ok((f.name.clone(), avro_value(&f.schema, fv)?)))
                .collect::<Result<_>>()?,
        ),
        _ => return Err(mismatch(s, v)),
    })
}

/// The Connect value of an Avro value read with the Avro schema `connect_schema` mapped.
pub fn connect_value(s: &Schema, v: AvroValue) -> Result<Value> {
    let v = match v {
        AvroValue::Union(_, inner) => *inner,
        other => other,
    };
    let bad = |v: &AvroValue| {
        data_err(format!(
            "the Avro value {v:?} does not fit {}",
            s.schema_type.name()
        ))
    };
    Ok(match (s.schema_type, v) {
        (_, AvroValue::Null) if s.optional => Value::Null,
        (SchemaType::Int8, AvroValue::Int(i)) => {
            Value::Int8(i8::try_from(i).map_err(|_| data_err(format!("{i} is not an int8")))?)
        }
        (SchemaType::Int16, AvroValue::Int(i)) => {
            Value::Int16(i16::try_from(i).map_err(|_| data_err(format!("{i} is not an int16")))?)
        }
        (SchemaType::Int32, AvroValue::Int(i) | AvroValue::Date(i) | AvroValue::TimeMillis(i)) => {
            Value::Int32(i)
        }
        (
            SchemaType::Int64,
            AvroValue::Long(i) | AvroValue::TimestampMillis(i) | AvroValue::TimestampMicros(i),
        ) => Value::Int64(i),
        (SchemaType::Float32, AvroValue::Float(f)) => Value::Float32(f),
        (SchemaType::Float64, AvroValue::Double(f)) => Value::Float64(f),
        (SchemaType::Boolean, AvroValue::Boolean(b)) => Value::Boolean(b),
        (SchemaType::String, AvroValue::String(t) | AvroValue::Enum(_, t)) => Value::String(t),
        (SchemaType::Bytes, AvroValue::Bytes(b) | AvroValue::Fixed(_, b)) => Value::Bytes(b),
        (SchemaType::Bytes, AvroValue::Decimal(d)) => Value::Bytes(minimal_twos_complement(
            Vec::<u8>::try_from(&d).map_err(|e| data_err(format!("decimal: {e}")))?,
        )),
        (SchemaType::Array, AvroValue::Array(items)) => {
            let is = s
                .value_schema
                .as_deref()
                .ok_or_else(|| data_err("no item schema"))?;
            Value::Array(
                items
                    .into_iter()
                    .map(|i| connect_value(is, i))
                    .collect::<Result<_>>()?,
            )
        }
        (SchemaType::Map, AvroValue::Map(m)) => {
            let vs = s
                .value_schema
                .as_deref()
                .ok_or_else(|| data_err("no value schema"))?;
            // Avro maps have no order: by key, for a stable result.
            let sorted: BTreeMap<String, AvroValue> = m.into_iter().collect();
            Value::Map(
                sorted
                    .into_iter()
                    .map(|(k, val)| Ok((Value::String(k), connect_value(vs, val)?)))
                    .collect::<Result<_>>()?,
            )
        }
        (SchemaType::Map, AvroValue::Array(entries)) => {
            let (ks, vs) = match (s.key_schema.as_deref(), s.value_schema.as_deref()) {
                (Some(k), Some(v)) => (k, v),
                _ => return Err(data_err("a map schema without key and value schemas")),
            };
            let mut out = Vec::with_capacity(entries.len());
            for e in entries {
                let AvroValue::Record(mut kv) = e else {
                    return Err(bad(&e));
                };
                let (val, key) = match (kv.pop(), kv.pop()) {
                    (Some((_, val)), Some((_, key))) => (val, key),
                    _ => return Err(data_err("a map entry without key and value")),
                };
                out.push((connect_value(ks, key)?, connect_value(vs, val)?));
            }
            Value::Map(out)
        }
        (SchemaType::Struct, AvroValue::Record(fields)) => {
            let mut st = Struct::new(s.clone());
            let mut by_name: HashMap<String, AvroValue> = fields.into_iter().collect();
            for (i, f) in s.fields.iter().enumerate() {
                let fv = by_name
                    .remove(&f.name)
                    .ok_or_else(|| data_err(format!("the Avro record has no field {}", f.name)))?;
                st.values[i] = connect_value(&f.schema, fv)?;
            }
            Value::Struct(st)
        }
        (_, other) => return Err(bad(&other)),
    })
}

/// A schema for a schemaless primitive value (as Confluent's AvroData infers one).
fn infer_schema(v: &Value) -> Result<Schema> {
    Ok(Schema::new(match v {
        Value::Int8(_) => SchemaType::Int8,
        Value::Int16(_) => SchemaType::Int16,
        Value::Int32(_) => SchemaType::Int32,
        Value::Int64(_) => SchemaType::Int64,
        Value::Float32(_) => SchemaType::Float32,
        Value::Float64(_) => SchemaType::Float64,
        Value::Boolean(_) => SchemaType::Boolean,
        Value::String(_) => SchemaType::String,
        Value::Bytes(_) => SchemaType::Bytes,
        other => {
            return Err(data_err(format!(
                "AvroConverter needs a schema for a {} value",
                other.type_name()
            )))
        }
    }))
}

// ---------------------------------------------------------------------------------------
// The converter

/// Runs a registry request to completion on a thread of its own (the `Converter` API is
/// synchronous and may be called on an async runtime's thread).
fn block_on<T: Send>(f: impl Future<Output = T> + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map(|rt| rt.block_on(f))
            })
            .join()
    })
    .expect("the schema registry request thread panicked")
    .expect("a runtime for a schema registry request")
}

fn registry_err(e: strom_schema::serde::SerdeError) -> ConnectError {
    match e {
        strom_schema::serde::SerdeError::Unreachable(why) => {
            ConnectError::Retriable(format!("schema registry unreachable: {why}"))
        }
        other => data_err(other.to_string()),
    }
}

/// A writer schema: its id, the parsed Avro, and (for reading) its Connect schema.
struct Known {
    id: i32,
    parsed: Arc<ParsedAvro>,
    connect: Option<Schema>,
}

/// Confluent's AvroConverter.
pub struct AvroConverter {
    client: Arc<RegistryClient>,
    is_key: bool,
    auto_register: bool,
    use_latest: bool,
    normalize: bool,
    strategy: SubjectNameStrategy,
    /// (topic, Avro schema text) → the id and schema written with.
    writers: Mutex<HashMap<(String, String), Arc<Known>>>,
    /// Schema id → the schema read with.
    readers: Mutex<HashMap<i32, Arc<Known>>>,
}

impl std::fmt::Debug for AvroConverter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroConverter")
            .field("is_key", &self.is_key)
            .field("auto_register", &self.auto_register)
            .field("use_latest", &self.use_latest)
            .finish_non_exhaustive()
    }
}

fn strategy(props: &Props, is_key: bool) -> Result<SubjectNameStrategy> {
    let key = if is_key {
        "key.subject.name.strategy"
    } else {
        "value.subject.name.strategy"
    };
    let class = props.get(key).map(|s| s.trim()).unwrap_or("");
    Ok(match class.rsplit('.').next().unwrap_or("") {
        "" | "TopicNameStrategy" => SubjectNameStrategy::TopicName,
        "RecordNameStrategy" => SubjectNameStrategy::RecordName,
        "TopicRecordNameStrategy" => SubjectNameStrategy::TopicRecordName,
        _ => {
            return Err(ConnectError::InvalidConfig(format!(
                "Invalid value {class} for configuration {key}: unknown subject name strategy"
            )))
        }
    })
}

impl AvroConverter {
    /// From the converter's own configs (`schema.registry.url` is required).
    pub fn from_props(props: &Props, is_key: bool) -> Result<AvroConverter> {
        let url = props
            .get("schema.registry.url")
            .map(|u| u.split(',').next().unwrap_or("").trim().to_owned())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| {
                ConnectError::InvalidConfig(
                    "Missing required configuration \"schema.registry.url\" which has no default value.".into(),
                )
            })?;
        strom_schema::http_client::split_url(&url).map_err(|e| {
            ConnectError::InvalidConfig(format!(
                "Invalid value {url} for configuration schema.registry.url: {e}"
            ))
        })?;
        Ok(AvroConverter {
            client: RegistryClient::new(&url),
            is_key,
            auto_register: get_bool(props, "auto.register.schemas", true)?,
            use_latest: get_bool(props, "use.latest.version", false)?,
            normalize: get_bool(props, "normalize.schemas", false)?,
            strategy: strategy(props, is_key)?,
            writers: Mutex::default(),
            readers: Mutex::default(),
        })
    }

    fn writer(&self, topic: &str, schema: &Schema, text: String) -> Result<Arc<Known>> {
        let key = (topic.to_owned(), text);
        if let Some(k) = self
            .writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(k.clone());
        }
        let record_name = (schema.schema_type == SchemaType::Struct)
            .then(|| schema.name.clone())
            .flatten();
        let subject = self
            .strategy
            .subject_for(topic, self.is_key, record_name.as_deref())
            .map_err(registry_err)?;
        let text = &key.1;
        let known = if self.use_latest {
            let latest = block_on(self.client.latest(&subject)).map_err(registry_err)?;
            let parsed = parse_avro(&latest.text, &[]).map_err(data_err)?;
            Known {
                id: latest.id,
                parsed: Arc::new(parsed),
                connect: None,
            }
        } else {
            let id = if self.auto_register {
                block_on(self.client.register(&subject, text, self.normalize))
            } else {
                block_on(self.client.lookup(&subject, text, self.normalize))
            }
            .map_err(registry_err)?;
            let parsed = parse_avro(text, &[]).map_err(data_err)?;
            Known {
                id,
                parsed: Arc::new(parsed),
                connect: None,
            }
        };
        let known = Arc::new(known);
        self.writers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, known.clone());
        Ok(known)
    }

    fn reader(&self, id: i32) -> Result<Arc<Known>> {
        if let Some(k) = self
            .readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(k.clone());
        }
        let (schema_type, text) =
            block_on(self.client.schema_text_by_id(id)).map_err(registry_err)?;
        if schema_type != "AVRO" {
            return Err(data_err(format!("schema {id} is {schema_type}, not AVRO")));
        }
        let json: J = serde_json::from_str(&text)
            .or_else(|_| serde_json::from_str(&format!("\"{text}\"")))
            .map_err(|e| data_err(format!("schema {id}: {e}")))?;
        let known = Arc::new(Known {
            id,
            parsed: Arc::new(parse_avro(&text, &[]).map_err(data_err)?),
            connect: Some(connect_schema(&json)?),
        });
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, known.clone());
        Ok(known)
    }
}

impl Converter for AvroConverter {
    fn from_connect(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>> {
        if value.is_null() {
            return Ok(None);
        }
        let inferred;
        let schema = match schema {
            Some(s) => s,
            None => {
                inferred = infer_schema(value)?;
                &inferred
            }
        };
        let text = avro_schema(schema)?.to_string();
        let writer = self.writer(topic, schema, text)?;
        let datum = avro_value(schema, value)?;
        encode(writer.id, &writer.parsed, datum)
            .map(Some)
            .map_err(|e| {
                data_err(format!(
                    "Failed to serialize Avro data from topic {topic}: {e}"
                ))
            })
    }

    fn to_connect(&self, topic: &str, data: Option<&[u8]>) -> Result<(Option<Schema>, Value)> {
        let Some(bytes) = data else {
            return Ok((None, Value::Null));
        };
        let (id, mut payload) = split_frame(bytes).map_err(|e| {
            data_err(format!(
                "Failed to deserialize data for topic {topic} to Avro: {e}"
            ))
        })?;
        let reader = self.reader(id)?;
        let datum = decode(&reader.parsed, &mut payload).map_err(|e| {
            data_err(format!(
                "Failed to deserialize data for topic {topic} to Avro: {e}"
            ))
        })?;
        let schema = reader
            .connect
            .clone()
            .expect("readers have a Connect schema");
        let value = connect_value(&schema, datum)?;
        Ok((Some(schema), value))
    }
}
