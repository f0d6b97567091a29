//! Serialization formats of keys and values: JSON, DELIMITED (comma-separated), KAFKA
//! (a single primitive in Kafka's serializer bytes) and AVRO (Confluent-framed, through the
//! Schema Registry: see [`crate::avro`]), as ksqlDB writes them, plus the windowed key
//! suffixes of windowed tables.

use serde::{Deserialize, Serialize};

use crate::ast::WindowKind;
use crate::avro::AvroSchema;
use crate::types::{lookup_ci, SqlType, Value};
use crate::{Result, SqlError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Format {
    Json,
    Delimited,
    Kafka,
    /// Avro in Confluent's framing, schemas in the registry (`ksql.schema.registry.url`).
    Avro,
    /// JSON in Confluent's framing (magic byte, schema id), JSON Schemas in the registry.
    JsonSr,
    /// No key (a stream without key columns).
    None,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format> {
        Ok(match s.to_uppercase().as_str() {
            "JSON" => Format::Json,
            "DELIMITED" => Format::Delimited,
            "KAFKA" => Format::Kafka,
            "NONE" => Format::None,
            "AVRO" => Format::Avro,
            "JSON_SR" => Format::JsonSr,
            "PROTOBUF" | "PROTOBUF_NOSR" => {
                return Err(SqlError::stmt(format!(
                    "The format {s} is not supported by Strom SQL yet: use JSON, JSON_SR, AVRO, DELIMITED or KAFKA"
                )))
            }
            other => {
                return Err(SqlError::stmt(format!(
                    "Unknown format: {other}. Known formats: JSON, JSON_SR, AVRO, DELIMITED, KAFKA, NONE"
                )))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Delimited => "DELIMITED",
            Format::Kafka => "KAFKA",
            Format::Avro => "AVRO",
            Format::JsonSr => "JSON_SR",
            Format::None => "NONE",
        }
    }

    /// Whether the format keeps its schemas in the Schema Registry.
    pub fn uses_registry(self) -> bool {
        matches!(self, Format::Avro | Format::JsonSr)
    }

    /// Whether the format can carry these columns; a clear error if not.
    pub fn check(self, cols: &[(&str, &SqlType)], what: &str) -> Result<()> {
        match self {
            Format::Kafka => {
                if cols.len() > 1 {
                    return Err(SqlError::stmt(format!(
                        "The 'KAFKA' format only supports a single field. Got {} {what} columns.",
                        cols.len()
                    )));
                }
                if let Some((n, t)) = cols.first() {
                    if !matches!(
                        t,
                        SqlType::Int | SqlType::BigInt | SqlType::Double | SqlType::String
                    ) {
                        return Err(SqlError::stmt(format!(
                            "The 'KAFKA' format does not support type '{t}' of column {n}"
                        )));
                    }
                }
            }
            Format::Delimited => {
                if let Some((n, t)) = cols.iter().find(|(_, t)| {
                    matches!(t, SqlType::Array(_) | SqlType::Map(_) | SqlType::Struct(_))
                }) {
                    return Err(SqlError::stmt(format!(
                        "The 'DELIMITED' format does not support type '{t}' of column {n}"
                    )));
                }
            }
            Format::Avro if !cols.is_empty() => {
                crate::avro::schema_for(cols, what == "key").map_err(SqlError::stmt)?;
            }
            Format::None if !cols.is_empty() => {
                return Err(SqlError::stmt(format!(
                    "The 'NONE' format can only be used when no {what} columns are defined."
                )))
            }
            _ => {}
        }
        Ok(())
    }
}

/// Reads the columns `cols` from `data`. JSON and AVRO values read fields by name
/// (ignoring case); a single JSON or AVRO key column reads the unwrapped value. AVRO
/// needs the source's schema (its registry URL; records name their own schema id).
pub fn decode(
    fmt: Format,
    data: &[u8],
    cols: &[(&str, &SqlType)],
    is_key: bool,
    avro: Option<&AvroSchema>,
) -> std::result::Result<Vec<Value>, String> {
    match fmt {
        Format::None => Ok(Vec::new()),
        Format::Kafka => {
            let Some((_, ty)) = cols.first() else {
                return Ok(Vec::new());
            };
            let v = match ty {
                SqlType::String => Value::String(
                    String::from_utf8(data.to_vec()).map_err(|_| "not UTF-8".to_string())?,
                ),
                SqlType::Int => Value::Int(i32::from_be_bytes(
                    data.try_into()
                        .map_err(|_| "INT needs 4 bytes".to_string())?,
                )),
                SqlType::BigInt => Value::BigInt(i64::from_be_bytes(
                    data.try_into()
                        .map_err(|_| "BIGINT needs 8 bytes".to_string())?,
                )),
                SqlType::Double => Value::Double(f64::from_be_bytes(
                    data.try_into()
                        .map_err(|_| "DOUBLE needs 8 bytes".to_string())?,
                )),
                other => return Err(format!("KAFKA format cannot read {other}")),
            };
            Ok(vec![v])
        }
        Format::Json => {
            let j: serde_json::Value =
                serde_json::from_slice(data).map_err(|e| format!("invalid JSON: {e}"))?;
            from_document(&j, cols, is_key)
        }
        Format::Avro => {
            let s = avro.ok_or("the AVRO format needs ksql.schema.registry.url")?;
            from_document(&crate::avro::decode(&s.url, data)?, cols, is_key)
        }
        Format::JsonSr => from_document(&crate::avro::decode_json_sr(data)?, cols, is_key),
        Format::Delimited => {
            let text = std::str::from_utf8(data).map_err(|_| "not UTF-8".to_string())?;
            let fields = split_delimited(text);
            if fields.len() != cols.len() {
                return Err(format!(
                    "Unexpected field count, csvFields:{} schemaFields:{}",
                    fields.len(),
                    cols.len()
                ));
            }
            fields
                .iter()
                .zip(cols)
                .map(|(f, (n, t))| {
                    if f.is_empty() {
                        return Ok(Value::Null);
                    }
                    let j = serde_json::Value::String(f.clone());
                    Value::from_json(&j, t).ok_or_else(|| format!("cannot read {n}: '{f}' as {t}"))
                })
                .collect()
        }
    }
}

/// The columns of a decoded JSON document (an object, or a single key's bare value).
fn from_document(
    j: &serde_json::Value,
    cols: &[(&str, &SqlType)],
    is_key: bool,
) -> std::result::Result<Vec<Value>, String> {
    if is_key && cols.len() == 1 {
        let v = Value::from_json(j, cols[0].1)
            .ok_or_else(|| format!("cannot read {} as {}", j, cols[0].1))?;
        return Ok(vec![v]);
    }
    let obj = j
        .as_object()
        .ok_or_else(|| "expected an object".to_string())?;
    cols.iter()
        .map(|(n, t)| {
            let f = lookup_ci(obj, n).unwrap_or(&serde_json::Value::Null);
            Value::from_json(f, t).ok_or_else(|| format!("cannot read field {n}: {f} as {t}"))
        })
        .collect()
}

fn split_delimited(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Writes `values` (one per column of `cols`); AVRO with the source's schema (`None`
/// when the value does not fit it: logged, the record is not written).
pub fn encode(
    fmt: Format,
    values: &[Value],
    cols: &[(&str, &SqlType)],
    is_key: bool,
    avro: Option<&AvroSchema>,
) -> Option<Vec<u8>> {
    match fmt {
        Format::None => None,
        Format::Kafka => match values.first()? {
            Value::Null => None,
            Value::String(s) => Some(s.as_bytes().to_vec()),
            Value::Int(i) => Some(i.to_be_bytes().to_vec()),
            Value::BigInt(i) | Value::Timestamp(i) => Some(i.to_be_bytes().to_vec()),
            Value::Double(d) => Some(d.to_be_bytes().to_vec()),
            other => Some(other.to_string().into_bytes()),
        },
        Format::Json => Some(to_document(values, cols, is_key).to_string().into_bytes()),
        Format::Avro | Format::JsonSr => {
            let Some(s) = avro else {
                tracing::warn!("{} needs ksql.schema.registry.url", fmt.name());
                return None;
            };
            let doc = to_document(values, cols, is_key);
            let encoded = if fmt == Format::JsonSr {
                Ok(crate::avro::encode_json_sr(s, &doc))
            } else {
                crate::avro::encode(s, &doc)
            };
            match encoded {
                Ok(b) => Some(b),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot write a record in {}", fmt.name());
                    None
                }
            }
        }
        Format::Delimited => {
            let parts: Vec<String> = values
                .iter()
                .map(|v| match v {
                    Value::Null => String::new(),
                    Value::String(s) if s.contains([',', '"', '\n']) => {
                        format!("\"{}\"", s.replace('"', "\"\""))
                    }
                    other => other.to_string(),
                })
                .collect();
            Some(parts.join(",").into_bytes())
        }
    }
}

/// The JSON document of a row: an object of the columns, or a single key's bare value.
fn to_document(values: &[Value], cols: &[(&str, &SqlType)], is_key: bool) -> serde_json::Value {
    if is_key && cols.len() == 1 {
        return values.first().map(Value::to_json).unwrap_or_default();
    }
    let obj: serde_json::Map<String, serde_json::Value> = cols
        .iter()
        .zip(values)
        .map(|((n, _), v)| (n.to_string(), v.to_json()))
        .collect();
    serde_json::Value::Object(obj)
}

/// The suffix of a windowed key: the window start (time windows) or end and start
/// (session windows), 8 bytes big-endian each, as Kafka Streams' windowed serializers.
pub fn window_suffix(kind: &WindowKind, start: i64, end: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    if matches!(kind, WindowKind::Session { .. }) {
        v.extend_from_slice(&end.to_be_bytes());
    }
    v.extend_from_slice(&start.to_be_bytes());
    v
}

/// Splits a windowed key into the key bytes and the window (start, end).
pub fn split_window<'a>(kind: &WindowKind, data: &'a [u8]) -> Option<(&'a [u8], i64, i64)> {
    let n = match kind {
        WindowKind::Session { .. } => 16,
        _ => 8,
    };
    if data.len() < n {
        return None;
    }
    let (k, t) = data.split_at(data.len() - n);
    let be = |b: &[u8]| i64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
    Some(match kind {
        WindowKind::Session { .. } => (k, be(&t[8..]), be(&t[..8])),
        WindowKind::Tumbling { size } | WindowKind::Hopping { size, .. } => {
            let s = be(t);
            (k, s, s + size)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip() {
        let cols = [("A", &SqlType::Int), ("B", &SqlType::String)];
        let vals = vec![Value::Int(1), Value::String("x,\"y\"".into())];
        for f in [Format::Json, Format::Delimited] {
            let b = encode(f, &vals, &cols, false, None).unwrap();
            assert_eq!(decode(f, &b, &cols, false, None).unwrap(), vals, "{f:?}");
        }
        let k = [("K", &SqlType::BigInt)];
        let b = encode(Format::Kafka, &[Value::BigInt(7)], &k, true, None).unwrap();
        assert_eq!(b, 7i64.to_be_bytes());
        assert_eq!(
            encode(Format::Json, &[Value::BigInt(7)], &k, true, None).unwrap(),
            b"7"
        );
        assert!(decode(Format::Kafka, b"abc", &k, true, None).is_err());
        assert!(decode(Format::Json, b"{", &cols, false, None).is_err());
        assert!(decode(Format::Delimited, b"1", &cols, false, None).is_err());
        assert!(Format::Kafka.check(&cols, "value").is_err());
        assert!(Format::parse("XML").is_err());
    }

    #[test]
    fn window_keys() {
        let kind = WindowKind::Tumbling { size: 10 };
        let mut k = b"a".to_vec();
        k.extend(window_suffix(&kind, 20, 30));
        assert_eq!(split_window(&kind, &k), Some((&b"a"[..], 20, 30)));
        let s = WindowKind::Session { gap: 5 };
        let mut k = b"a".to_vec();
        k.extend(window_suffix(&s, 20, 27));
        assert_eq!(split_window(&s, &k), Some((&b"a"[..], 20, 27)));
    }
}
