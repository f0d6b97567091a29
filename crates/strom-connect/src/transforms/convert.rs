//! Transforms that change a value's type: Cast (primitives, the whole value or named
//! fields) and TimestampConverter (between unix, string, Date, Time and Timestamp), each
//! `$Key` / `$Value`.

use super::fields::{data_err, entries, need_struct_or_map, rebuild};
use super::{Side, TransformPlugin, Transformation};
use crate::config::{get_list, ConfigDef, ConfigType, Importance, Props};
use crate::data::{Record, Schema, SchemaType, Value, TIMESTAMP};
use crate::error::{ConnectError, Result};
use crate::time::DateFormat;

// ---- Cast ----

fn cast_def() -> ConfigDef {
    ConfigDef::new().define("spec", ConfigType::List, None, Importance::High, "List of fields and the type to cast them to of the form field1:type,field2:type to cast fields of Maps or Structs. A single type to cast the entire value.")
}

struct Cast {
    side: Side,
    whole: Option<SchemaType>,
    fields: Vec<(String, SchemaType)>,
}

fn cast_type(t: &str) -> Result<SchemaType> {
    match SchemaType::parse(t.trim()) {
        Some(s) if s.is_primitive() && s != SchemaType::Bytes => Ok(s),
        _ => Err(ConnectError::InvalidConfig(format!(
            "Invalid value {t} for configuration spec: Cast transformation does not support casting to {t}"
        ))),
    }
}

fn make_cast(p: &Props, side: Side) -> Result<Box<dyn Transformation>> {
    let spec = get_list(p, "spec");
    let mut fields = Vec::new();
    let mut whole = None;
    for item in &spec {
        match item.split_once(':') {
            Some((f, t)) => fields.push((f.to_owned(), cast_type(t)?)),
            None if spec.len() == 1 => whole = Some(cast_type(item)?),
            None => {
                return Err(ConnectError::InvalidConfig(
                    "Invalid value for configuration spec: Must specify at most a single type to cast the entire value, or a list of field:type pairs".into(),
                ))
            }
        }
    }
    Ok(Box::new(Cast {
        side,
        whole,
        fields,
    }))
}

/// Casts a primitive value (Kafka's `Cast.castValueToType`).
pub fn cast_value(v: &Value, to: SchemaType) -> Result<Value> {
    let f: Option<f64> = match v {
        Value::Float32(x) => Some(*x as f64),
        Value::Float64(x) => Some(*x),
        Value::Boolean(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::String(s) if to != SchemaType::String && to != SchemaType::Boolean => Some(
            s.trim()
                .parse::<f64>()
                .map_err(|_| data_err(format!("Cannot cast string {s} to {}", to.name())))?,
        ),
        other => other.as_i64().map(|i| i as f64),
    };
    let i = v.as_i64().or_else(|| f.map(|x| x as i64));
    let cannot = || {
        data_err(format!(
            "Unexpected type in Cast transformation: {}",
            v.type_name()
        ))
    };
    Ok(match (v, to) {
        (Value::Null, _) => Value::Null,
        (_, SchemaType::String) => Value::String(v.to_display()),
        (Value::String(s), SchemaType::Boolean) => {
            Value::Boolean(s.trim().eq_ignore_ascii_case("true"))
        }
        (_, SchemaType::Boolean) => Value::Boolean(f.ok_or_else(cannot)? != 0.0),
        (_, SchemaType::Int8) => Value::Int8(i.ok_or_else(cannot)? as i8),
        (_, SchemaType::Int16) => Value::Int16(i.ok_or_else(cannot)? as i16),
        (_, SchemaType::Int32) => Value::Int32(i.ok_or_else(cannot)? as i32),
        (_, SchemaType::Int64) => Value::Int64(i.ok_or_else(cannot)?),
        (_, SchemaType::Float32) => Value::Float32(f.ok_or_else(cannot)? as f32),
        (_, SchemaType::Float64) => Value::Float64(f.ok_or_else(cannot)?),
        _ => return Err(cannot()),
    })
}

impl Transformation for Cast {
    fn apply(&self, mut r: Record) -> Result<Option<Record>> {
        let (schema, value) = self.side.get(&r);
        if let Some(to) = self.whole {
            let v = cast_value(value, to)?;
            let s = schema.map(|s| {
                let mut n = Schema::new(to);
                n.optional = s.optional;
                n
            });
            self.side.set(&mut r, s, v);
            return Ok(Some(r));
        }
        if value.is_null() {
            return Ok(Some(r));
        }
        need_struct_or_map("casting", value)?;
        let mut fields = entries(schema, value);
        for (n, s, v) in &mut fields {
            if let Some((_, to)) = self.fields.iter().find(|(f, _)| f == n) {
                *v = cast_value(v, *to)?;
                if let Some(fs) = s {
                    let optional = fs.optional;
                    *fs = Schema::new(*to);
                    fs.optional = optional;
                }
            }
        }
        let (s, v) = rebuild(schema.cloned().as_ref(), fields)?;
        self.side.set(&mut r, s, v);
        Ok(Some(r))
    }
}

sided!(CAST_KEY, CAST_VALUE, "Cast", cast_def, make_cast);

// ---- TimestampConverter ----

fn timestamp_converter_def() -> ConfigDef {
    ConfigDef::new()
        .define("target.type", ConfigType::String, None, Importance::High, "The desired timestamp representation: string, unix, Date, Time, or Timestamp")
        .one_of(&["string", "unix", "Date", "Time", "Timestamp"])
        .define("field", ConfigType::String, Some(""), Importance::High, "The field containing the timestamp, or empty if the entire value is a timestamp")
        .define("format", ConfigType::String, Some(""), Importance::Medium, "A SimpleDateFormat-compatible format for the timestamp.")
        .define("unix.precision", ConfigType::String, Some("milliseconds"), Importance::Low, "The desired Unix precision for the timestamp: seconds, milliseconds, microseconds, or nanoseconds.")
        .one_of(&["seconds", "milliseconds", "microseconds", "nanoseconds"])
}

struct TimestampConverter {
    side: Side,
    field: String,
    target: String,
    format: Option<DateFormat>,
    /// Units per millisecond of `unix` values: (multiply, divide).
    unix_scale: (i64, i64),
}

fn make_timestamp_converter(p: &Props, side: Side) -> Result<Box<dyn Transformation>> {
    let target = p.get("target.type").cloned().unwrap_or_default();
    let format = match p.get("format").filter(|s| !s.is_empty()) {
        Some(f) => Some(DateFormat::new(f)?),
        None if target == "string" => {
            return Err(ConnectError::InvalidConfig(
                "TimestampConverter requires format option to be specified when using string timestamps".into(),
            ))
        }
        None => None,
    };
    let unix_scale = match p
        .get("unix.precision")
        .map(String::as_str)
        .unwrap_or("milliseconds")
    {
        "seconds" => (1, 1000),
        "microseconds" => (1000, 1),
        "nanoseconds" => (1_000_000, 1),
        _ => (1, 1),
    };
    Ok(Box::new(TimestampConverter {
        side,
        field: p.get("field").cloned().unwrap_or_default(),
        target,
        format,
        unix_scale,
    }))
}

impl TimestampConverter {
    fn to_millis(&self, s: Option<&Schema>, v: &Value) -> Result<i64> {
        let logical = s.and_then(|s| s.logical().map(str::to_owned));
        match v {
            Value::String(text) => self
                .format
                .as_ref()
                .ok_or_else(|| data_err("TimestampConverter requires format option to be specified when using string timestamps"))?
                .parse(text),
            Value::Int32(d) if logical.as_deref() == Some(crate::data::DATE) => Ok(*d as i64 * 86_400_000),
            Value::Int32(t) => Ok(*t as i64),
            Value::Int64(ms) if logical.is_some() => Ok(*ms),
            Value::Int64(u) => u
                .checked_mul(self.unix_scale.1)
                .map(|v| v / self.unix_scale.0)
                .ok_or_else(|| data_err(format!("Unix timestamp {u} is out of range"))),
            other => Err(data_err(format!("Expected timestamp to be a Long, String or Date, but found {}", other.type_name()))),
        }
    }

    fn convert(&self, s: Option<&Schema>, v: &Value) -> Result<(Schema, Value)> {
        if v.is_null() {
            let mut sch = Schema::new(SchemaType::Int64).optional();
            if let Some(s) = s {
                sch.optional = s.optional;
            }
            return Ok((sch, Value::Null));
        }
        let ms = self.to_millis(s, v)?;
        Ok(match self.target.as_str() {
            "string" => (
                Schema::new(SchemaType::String),
                Value::String(
                    self.format
                        .as_ref()
                        .map(|f| f.format(ms))
                        .unwrap_or_default(),
                ),
            ),
            "unix" => (
                Schema::new(SchemaType::Int64),
                Value::Int64(
                    ms.checked_mul(self.unix_scale.0).ok_or_else(|| {
                        data_err(format!("Timestamp {ms} is out of range for unix.precision"))
                    })? / self.unix_scale.1,
                ),
            ),
            "Date" => (
                Schema::new(SchemaType::Int32).named(crate::data::DATE),
                Value::Int32(ms.div_euclid(86_400_000) as i32),
            ),
            "Time" => (
                Schema::new(SchemaType::Int32).named(crate::data::TIME),
                Value::Int32(ms.rem_euclid(86_400_000) as i32),
            ),
            _ => (
                Schema::new(SchemaType::Int64).named(TIMESTAMP),
                Value::Int64(ms),
            ),
        })
    }
}

impl Transformation for TimestampConverter {
    fn apply(&self, mut r: Record) -> Result<Option<Record>> {
        let (schema, value) = self.side.get(&r);
        if self.field.is_empty() {
            let (s, v) = self.convert(schema, value)?;
            let had_schema = schema.is_some();
            self.side.set(&mut r, had_schema.then_some(s), v);
            return Ok(Some(r));
        }
        if value.is_null() {
            return Ok(Some(r));
        }
        need_struct_or_map("converting timestamp formats", value)?;
        let mut fields = entries(schema, value);
        for (n, s, v) in &mut fields {
            if *n == self.field {
                let (ns, nv) = self.convert(s.as_ref(), v)?;
                if s.is_some() {
                    *s = Some(ns);
                }
                *v = nv;
            }
        }
        let (s, v) = rebuild(schema.cloned().as_ref(), fields)?;
        self.side.set(&mut r, s, v);
        Ok(Some(r))
    }
}

sided!(
    TIMESTAMP_CONVERTER_KEY,
    TIMESTAMP_CONVERTER_VALUE,
    "TimestampConverter",
    timestamp_converter_def,
    make_timestamp_converter
);
