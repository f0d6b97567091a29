//! PostgreSQL columns as Connect data: the Connect schema of a column type, a column's text
//! form (PostgreSQL's output functions, as pgoutput and `::text` give it) read as a Connect
//! value, a Connect value written as the text a column's input function reads, and SQL
//! identifier quoting.
//!
//! Mapping: bool → boolean; int2/int4/int8 → int16/int32/int64 (oid → int64); float4/float8 →
//! float32/float64; numeric(p,s) with p ≤ 38 → Kafka's Decimal (scale s), other numerics →
//! string; date → Date; time → Time (millis); timestamp and timestamptz → Timestamp (millis,
//! UTC; the sub-millisecond digits are dropped, Kafka's Timestamp holds milliseconds); bytea →
//! bytes; everything else (text, varchar, uuid, json, jsonb, interval, arrays...) → string in
//! PostgreSQL's text form.

use std::collections::BTreeMap;

use bytes::BytesMut;
use tokio_postgres::types::{to_sql_checked, Format, IsNull, ToSql, Type};

use crate::data::{Schema, SchemaType, Value, DATE, DECIMAL, TIME, TIMESTAMP};
use crate::error::{ConnectError, Result};
use crate::time::{civil_from_days, days_from_civil};

pub const BOOL: u32 = 16;
pub const BYTEA: u32 = 17;
pub const INT8: u32 = 20;
pub const INT2: u32 = 21;
pub const INT4: u32 = 23;
pub const OID: u32 = 26;
pub const FLOAT4: u32 = 700;
pub const FLOAT8: u32 = 701;
pub const DATE_OID: u32 = 1082;
pub const TIME_OID: u32 = 1083;
pub const TIMESTAMP_OID: u32 = 1114;
pub const TIMESTAMPTZ_OID: u32 = 1184;
pub const NUMERIC: u32 = 1700;

/// The largest decimal precision held as an i128 unscaled value.
const MAX_DECIMAL_PRECISION: i32 = 38;

/// One column of a table: its name, type and whether it may be null.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
    pub nullable: bool,
}

impl Column {
    /// `numeric(p, s)`'s precision and scale, when the column has them and p ≤ 38.
    fn decimal(&self) -> Option<(i32, i32)> {
        if self.type_oid != NUMERIC || self.type_modifier < 4 {
            return None;
        }
        let m = self.type_modifier - 4;
        let (precision, scale) = ((m >> 16) & 0xffff, m & 0x7ff);
        (precision <= MAX_DECIMAL_PRECISION && scale <= precision).then_some((precision, scale))
    }

    /// The Connect schema of this column (optional when the column is nullable).
    pub fn schema(&self) -> Schema {
        let logical = |t: SchemaType, name: &str| {
            let mut s = Schema::new(t).named(name);
            s.version = Some(1);
            s
        };
        let mut s = match self.type_oid {
            BOOL => Schema::new(SchemaType::Boolean),
            INT2 => Schema::new(SchemaType::Int16),
            INT4 => Schema::new(SchemaType::Int32),
            INT8 | OID => Schema::new(SchemaType::Int64),
            FLOAT4 => Schema::new(SchemaType::Float32),
            FLOAT8 => Schema::new(SchemaType::Float64),
            BYTEA => Schema::new(SchemaType::Bytes),
            DATE_OID => logical(SchemaType::Int32, DATE),
            TIME_OID => logical(SchemaType::Int32, TIME),
            TIMESTAMP_OID | TIMESTAMPTZ_OID => logical(SchemaType::Int64, TIMESTAMP),
            NUMERIC => match self.decimal() {
                Some((p, scale)) => {
                    let mut s = logical(SchemaType::Bytes, DECIMAL);
                    s.parameters = BTreeMap::from([
                        ("scale".to_owned(), scale.to_string()),
                        ("connect.decimal.precision".to_owned(), p.to_string()),
                    ]);
                    s
                }
                None => Schema::new(SchemaType::String),
            },
            _ => Schema::new(SchemaType::String),
        };
        s.optional = self.nullable;
        s
    }

    /// The Connect value of this column's text form (`None`: SQL NULL).
    pub fn parse(&self, text: Option<&str>) -> Result<Value> {
        let Some(t) = text else {
            return Ok(Value::Null);
        };
        let bad = || {
            ConnectError::Data(format!(
                "column {}: cannot read {t:?} as type {}",
                self.name, self.type_oid
            ))
        };
        Ok(match self.type_oid {
            BOOL => match t {
                "t" | "true" => Value::Boolean(true),
                "f" | "false" => Value::Boolean(false),
                _ => return Err(bad()),
            },
            INT2 => Value::Int16(t.parse().map_err(|_| bad())?),
            INT4 => Value::Int32(t.parse().map_err(|_| bad())?),
            INT8 | OID => Value::Int64(t.parse().map_err(|_| bad())?),
            FLOAT4 => Value::Float32(t.parse().map_err(|_| bad())?),
            FLOAT8 => Value::Float64(t.parse().map_err(|_| bad())?),
            BYTEA => Value::Bytes(parse_bytea(t).ok_or_else(bad)?),
            DATE_OID => Value::Int32(parse_date(t).ok_or_else(bad)? as i32),
            TIME_OID => Value::Int32((parse_time_micros(t).ok_or_else(bad)? / 1000) as i32),
            TIMESTAMP_OID | TIMESTAMPTZ_OID => {
                Value::Int64(parse_timestamp_micros(t).ok_or_else(bad)?.div_euclid(1000))
            }
            NUMERIC => match self.decimal() {
                Some((_, scale)) => match parse_decimal(t, scale as u32) {
                    Some(unscaled) => Value::Bytes(decimal_bytes(unscaled)),
                    // NaN has no Decimal form.
                    None if t == "NaN" && self.nullable => Value::Null,
                    None => return Err(bad()),
                },
                None => Value::String(t.to_owned()),
            },
            _ => Value::String(t.to_owned()),
        })
    }
}

/// `\x0a0b` (bytea's hex output) as bytes.
fn parse_bytea(t: &str) -> Option<Vec<u8>> {
    let hex = t.strip_prefix("\\x")?.as_bytes();
    if hex.len() % 2 != 0 {
        return None;
    }
    hex.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `YYYY-MM-DD` as days since 1970-01-01.
pub fn parse_date(t: &str) -> Option<i64> {
    let mut it = t.splitn(3, '-');
    let y: i64 = digits(it.next()?)?;
    let m: u32 = digits(it.next()?)?;
    let d: u32 = digits(it.next()?)?;
    ((1..=12).contains(&m) && (1..=31).contains(&d)).then(|| days_from_civil(y, m, d))
}

/// `HH:MM:SS[.ffffff]` as microseconds since midnight.
pub fn parse_time_micros(t: &str) -> Option<i64> {
    let (hms, frac) = match t.split_once('.') {
        Some((a, b)) => (a, b),
        None => (t, ""),
    };
    let mut it = hms.splitn(3, ':');
    let h: i64 = digits(it.next()?)?;
    let m: i64 = digits(it.next()?)?;
    let s: i64 = digits(it.next()?)?;
    if frac.len() > 6 || (!frac.is_empty() && digits::<u32>(frac).is_none()) {
        return None;
    }
    let micros: i64 = format!("{frac:0<6}").parse().ok()?;
    (h <= 24 && m < 60 && s < 61).then_some(((h * 60 + m) * 60 + s) * 1_000_000 + micros)
}

/// `YYYY-MM-DD HH:MM:SS[.ffffff][+HH[:MM[:SS]]]` (ISO output of timestamp and timestamptz) as
/// microseconds since the epoch in UTC. `infinity` and `-infinity` are the extreme values.
pub fn parse_timestamp_micros(t: &str) -> Option<i64> {
    match t {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let (date, rest) = t.split_once([' ', 'T'])?;
    let days = parse_date(date)?;
    let zone_at = rest.find(['+', '-', 'Z']);
    let (time, zone) = match zone_at {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let mut offset_secs = 0i64;
    if let Some(z) = zone.strip_prefix(['+', '-']) {
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let mut parts = z.split(':');
        let h: i64 = digits(parts.next()?)?;
        let m: i64 = parts.next().map(digits).unwrap_or(Some(0))?;
        let s: i64 = parts.next().map(digits).unwrap_or(Some(0))?;
        offset_secs = sign * (h * 3600 + m * 60 + s);
    } else if !zone.is_empty() && zone != "Z" {
        return None;
    }
    let micros = parse_time_micros(time)?;
    days.checked_mul(86_400_000_000)?
        .checked_add(micros)?
        .checked_sub(offset_secs * 1_000_000)
}

/// A decimal text (`-12.50`) as its unscaled value at `scale` digits after the point; `None`
/// when it has more digits after the point or does not fit.
pub fn parse_decimal(t: &str, scale: u32) -> Option<i128> {
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if frac.len() > scale as usize {
        return None;
    }
    let mut v: i128 = 0;
    for b in int.bytes().chain(frac.bytes()) {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as i128)?;
    }
    v = v.checked_mul(10i128.checked_pow(scale - frac.len() as u32)?)?;
    Some(if neg { -v } else { v })
}

/// An unscaled decimal as Kafka's Decimal bytes: big-endian two's complement, minimal length.
pub fn decimal_bytes(v: i128) -> Vec<u8> {
    let b = v.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (cur, next) = (b[start], b[start + 1]);
        let redundant = (cur == 0 && next & 0x80 == 0) || (cur == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    b[start..].to_vec()
}

/// Kafka's Decimal bytes as an unscaled i128 (`None`: longer than 16 bytes or empty).
pub fn decimal_from_bytes(b: &[u8]) -> Option<i128> {
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    let fill = if b[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut full = [fill; 16];
    full[16 - b.len()..].copy_from_slice(b);
    Some(i128::from_be_bytes(full))
}

fn decimal_text(unscaled: i128, scale: u32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let digits = format!("{digits:0>width$}", width = scale as usize + 1);
    let (i, f) = digits.split_at(digits.len() - scale as usize);
    format!("{sign}{i}.{f}")
}

fn date_text(days: i64) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

fn time_text(millis: i64) -> String {
    let ms = millis.rem_euclid(86_400_000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Microseconds since the epoch as timestamp text in UTC (`+00`, read by both timestamp and
/// timestamptz).
pub fn timestamp_text_micros(micros: i64) -> String {
    match micros {
        i64::MAX => return "infinity".into(),
        i64::MIN => return "-infinity".into(),
        _ => {}
    }
    let days = micros.div_euclid(86_400_000_000);
    let in_day = micros.rem_euclid(86_400_000_000);
    let secs = in_day / 1_000_000;
    format!(
        "{} {:02}:{:02}:{:02}.{:06}+00",
        date_text(days),
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        in_day % 1_000_000
    )
}

/// A Connect value as the text PostgreSQL's input functions read (`None`: NULL). Logical types
/// by their schema; structs, maps and arrays as JSON (for json/jsonb columns).
pub fn value_text(schema: Option<&Schema>, v: &Value) -> Result<Option<String>> {
    let logical = schema.and_then(Schema::logical);
    Ok(Some(match (logical, v) {
        (_, Value::Null) => return Ok(None),
        (Some(DECIMAL), Value::Bytes(b)) => {
            let scale: u32 = schema
                .and_then(|s| s.parameters.get("scale"))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let unscaled = decimal_from_bytes(b).ok_or_else(|| {
                ConnectError::Data(format!("a Decimal of {} bytes is too large", b.len()))
            })?;
            decimal_text(unscaled, scale)
        }
        (Some(DATE), v) if v.as_i64().is_some() => date_text(v.as_i64().unwrap_or_default()),
        (Some(TIME), v) if v.as_i64().is_some() => time_text(v.as_i64().unwrap_or_default()),
        (Some(TIMESTAMP), v) if v.as_i64().is_some() => {
            let ms = v.as_i64().unwrap_or_default();
            timestamp_text_micros(ms.saturating_mul(1000))
        }
        (_, Value::Float32(f)) => float_text(*f as f64, f.to_string()),
        (_, Value::Float64(f)) => float_text(*f, f.to_string()),
        (_, Value::Bytes(b)) => {
            let mut s = String::with_capacity(2 + b.len() * 2);
            s.push_str("\\x");
            for byte in b {
                s.push_str(&format!("{byte:02x}"));
            }
            s
        }
        (_, Value::String(s)) => s.clone(),
        (_, Value::Array(_) | Value::Map(_) | Value::Struct(_)) => v.to_json().to_string(),
        (_, other) => other.to_display(),
    }))
}

fn float_text(f: f64, shortest: String) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        shortest
    }
}

/// The PostgreSQL column type for a Connect schema (table auto-creation).
pub fn sql_type(s: &Schema) -> String {
    match (s.logical(), s.schema_type) {
        (Some(DECIMAL), _) => match s.parameters.get("connect.decimal.precision") {
            Some(p) => format!(
                "NUMERIC({}, {})",
                p.parse::<u32>().unwrap_or(38),
                s.parameters
                    .get("scale")
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0)
            ),
            None => "NUMERIC".into(),
        },
        (Some(DATE), _) => "DATE".into(),
        (Some(TIME), _) => "TIME".into(),
        (Some(TIMESTAMP), _) => "TIMESTAMP".into(),
        (_, SchemaType::Int8 | SchemaType::Int16) => "SMALLINT".into(),
        (_, SchemaType::Int32) => "INTEGER".into(),
        (_, SchemaType::Int64) => "BIGINT".into(),
        (_, SchemaType::Float32) => "REAL".into(),
        (_, SchemaType::Float64) => "DOUBLE PRECISION".into(),
        (_, SchemaType::Boolean) => "BOOLEAN".into(),
        (_, SchemaType::String) => "TEXT".into(),
        (_, SchemaType::Bytes) => "BYTEA".into(),
        (_, SchemaType::Array | SchemaType::Map | SchemaType::Struct) => "JSONB".into(),
    }
}

/// A quoted SQL identifier: `"a""b"` for `a"b`. NUL cannot be in an identifier.
pub fn quote_ident(name: &str) -> Result<String> {
    if name.is_empty() || name.contains('\0') {
        return Err(ConnectError::Data(format!(
            "invalid SQL identifier {name:?}"
        )));
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// A possibly schema-qualified table name (`schema.table`; dots inside double quotes are part
/// of the name) as its parts, unquoted.
pub fn split_table_name(name: &str) -> Result<Vec<String>> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = name.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    if quoted || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(ConnectError::InvalidConfig(format!(
            "invalid table name {name:?}"
        )));
    }
    // A catalog part (`db.schema.table`) is dropped: a connection is to one database.
    if parts.len() == 3 {
        parts.remove(0);
    }
    Ok(parts)
}

/// A query parameter sent in text form, whatever the parameter's type: the server reads it
/// with the type's input function (numbers, dates, numerics, bytea...).
#[derive(Debug, Clone)]
pub struct TextParam(pub Option<String>);

impl ToSql for TextParam {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match &self.0 {
            None => Ok(IsNull::Yes),
            Some(s) => {
                out.extend_from_slice(s.as_bytes());
                Ok(IsNull::No)
            }
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(oid: u32, typmod: i32) -> Column {
        Column {
            name: "c".into(),
            type_oid: oid,
            type_modifier: typmod,
            nullable: true,
        }
    }

    #[test]
    fn reads_text_forms() {
        assert_eq!(
            col(BOOL, -1).parse(Some("t")).unwrap(),
            Value::Boolean(true)
        );
        assert_eq!(col(INT8, -1).parse(Some("-5")).unwrap(), Value::Int64(-5));
        assert_eq!(
            col(BYTEA, -1).parse(Some("\\x00ff")).unwrap(),
            Value::Bytes(vec![0, 255])
        );
        assert_eq!(
            col(DATE_OID, -1).parse(Some("1970-01-02")).unwrap(),
            Value::Int32(1)
        );
        assert_eq!(
            col(TIMESTAMPTZ_OID, -1)
                .parse(Some("1970-01-01 01:00:00.5+01"))
                .unwrap(),
            Value::Int64(500)
        );
        assert_eq!(
            parse_timestamp_micros("2026-12-04 10:11:12.123456"),
            Some(1_796_379_072_123_456)
        );
        assert_eq!(
            timestamp_text_micros(1_796_379_072_123_456),
            "2026-12-04 10:11:12.123456+00"
        );
        // numeric(10,2) = typmod ((10 << 16) | 2) + 4
        let n = col(NUMERIC, (10 << 16 | 2) + 4);
        let v = n.parse(Some("-12.5")).unwrap();
        assert_eq!(v, Value::Bytes(decimal_bytes(-1250)));
        assert_eq!(
            value_text(Some(&n.schema()), &v).unwrap().as_deref(),
            Some("-12.50")
        );
        assert_eq!(decimal_bytes(128), vec![0, 128]);
        assert_eq!(decimal_bytes(-1), vec![255]);
        assert_eq!(decimal_from_bytes(&[255, 127]), Some(-129));
        assert_eq!(
            col(NUMERIC, -1).parse(Some("1e3")).unwrap(),
            Value::String("1e3".into())
        );
        assert!(col(INT4, -1).parse(Some("x")).is_err());
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("a\"; drop").unwrap(), "\"a\"\"; drop\"");
        assert_eq!(
            split_table_name("public.\"a.b\"\"c\"").unwrap(),
            vec!["public".to_owned(), "a.b\"c".to_owned()]
        );
        assert!(split_table_name("a..b").is_err());
    }
}
