//! The AVRO and JSON_SR formats through a Schema Registry (`ksql.schema.registry.url`): records in
//! Confluent's framing (magic byte 0, 4-byte schema id, Avro binary), the writer schema
//! fetched by id (once per id, cached); Avro schemas generated from columns as ksqlDB
//! writes them (a record `KsqlDataSourceSchema`, every field an optional union with
//! null); columns inferred from a subject's latest schema.
//!
//! The framing, the registry client and the Avro binary codec are strom-schema's (the
//! serdes strom-registry re-exports); this module maps between them and SQL rows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use apache_avro::types::Value as AvroValue;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as J};
use strom_schema::serde::{self as sr, FetchedSchema, RegistryClient};

use crate::format::Format;
use crate::types::SqlType;

/// The schema a source writes with: registry and schema id. Records are read with the
/// schema their own frame names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AvroSchema {
    pub url: String,
    pub id: i32,
    /// JSON_SR: the schema's top-level property names, so columns are written under the
    /// names the schema spells (empty: the column names).
    #[serde(default)]
    pub fields: Vec<String>,
}

/// A fetched schema with its JSON form (to conform values to its field names).
struct Cached {
    fetched: Arc<FetchedSchema>,
    json: J,
}

type Cache = Mutex<HashMap<(String, i32), Arc<Cached>>>;

fn cache() -> &'static Cache {
    static C: OnceLock<Cache> = OnceLock::new();
    C.get_or_init(Cache::default)
}

/// One registry client (with its caches) per registry URL in this process.
pub fn client(url: &str) -> Arc<RegistryClient> {
    static C: OnceLock<Mutex<HashMap<String, Arc<RegistryClient>>>> = OnceLock::new();
    let mut m = C
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    m.entry(url.to_owned())
        .or_insert_with(|| RegistryClient::new(url))
        .clone()
}

fn cached(url: &str, id: i32) -> Option<Arc<Cached>> {
    cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&(url.to_owned(), id))
        .cloned()
}

fn remember(url: &str, fetched: Arc<FetchedSchema>) -> Result<Arc<Cached>, String> {
    let json: J =
        serde_json::from_str(&fetched.text).unwrap_or_else(|_| J::String(fetched.text.clone()));
    let c = Arc::new(Cached { fetched, json });
    cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert((url.to_owned(), c.fetched.id), c.clone());
    Ok(c)
}

/// Schema `id`, fetched if not cached (from async code: statements, planning).
pub async fn fetch(url: &str, id: i32) -> Result<(), String> {
    if cached(url, id).is_some() {
        return Ok(());
    }
    let f = client(url)
        .schema_by_id(id)
        .await
        .map_err(|e| e.to_string())?;
    remember(url, f).map(|_| ())
}

/// Schema `id` from synchronous code (a query's processors): from the cache, or fetched
/// on a helper thread with its own runtime (once per schema id, so a record written
/// with a schema never seen before costs one registry round trip).
fn schema_sync(url: &str, id: i32) -> Result<Arc<Cached>, String> {
    if let Some(c) = cached(url, id) {
        return Ok(c);
    }
    let client = client(url);
    let fetched = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(client.schema_by_id(id))
            .map_err(|e| e.to_string())
    })
    .join()
    .map_err(|_| "schema fetch thread panicked".to_string())??;
    remember(url, fetched)
}

/// Decodes a Confluent-framed Avro record to JSON (records as objects, unions as the
/// bare value, timestamps as epoch numbers).
pub fn decode(url: &str, data: &[u8]) -> Result<J, String> {
    let (id, mut payload) = sr::split_frame(data).map_err(|e| e.to_string())?;
    let s = schema_sync(url, id)?;
    let v = sr::decode(&s.fetched.parsed, &mut payload).map_err(|e| e.to_string())?;
    J::try_from(v).map_err(|e| e.to_string())
}

/// Encodes a JSON value (an object of columns, or a single key's value) with schema `s`
/// into Confluent framing; object keys are matched to the schema's field names
/// ignoring case.
pub fn encode(s: &AvroSchema, value: &J) -> Result<Vec<u8>, String> {
    let c = schema_sync(&s.url, s.id)?;
    let v = conform(value, &c.json);
    let avro = AvroValue::try_from(v).map_err(|e| e.to_string())?;
    sr::encode(s.id, &c.fetched.parsed, avro).map_err(|e| e.to_string())
}

/// `v` with record keys renamed to the schema's field names (case-insensitively).
fn conform(v: &J, schema: &J) -> J {
    match (v, schema) {
        (J::Null, _) => J::Null,
        (_, J::Array(branches)) => branches
            .iter()
            .find(|b| b.as_str() != Some("null"))
            .map(|b| conform(v, b))
            .unwrap_or_else(|| v.clone()),
        (J::Object(o), J::Object(s)) => match s.get("type").and_then(J::as_str) {
            Some("record") => {
                let fields = s.get("fields").and_then(J::as_array);
                let mut out = serde_json::Map::new();
                for f in fields.into_iter().flatten() {
                    let Some(name) = f.get("name").and_then(J::as_str) else {
                        continue;
                    };
                    let val = o
                        .get(name)
                        .or_else(|| crate::types::lookup_ci(o, name))
                        .unwrap_or(&J::Null);
                    out.insert(name.to_owned(), conform(val, &f["type"]));
                }
                J::Object(out)
            }
            Some("map") => J::Object(
                o.iter()
                    .map(|(k, x)| (k.clone(), conform(x, &s["values"])))
                    .collect(),
            ),
            _ => v.clone(),
        },
        (J::Array(a), J::Object(s)) if s.get("type").and_then(J::as_str) == Some("array") => {
            J::Array(a.iter().map(|x| conform(x, &s["items"])).collect())
        }
        _ => v.clone(),
    }
}

/// The Avro schema of a column type, as ksqlDB generates it (`path` names nested
/// records uniquely).
fn avro_type(t: &SqlType, path: &str) -> Result<J, String> {
    Ok(match t {
        SqlType::Boolean => json!("boolean"),
        SqlType::Int => json!("int"),
        SqlType::BigInt => json!("long"),
        SqlType::Double => json!("double"),
        SqlType::String => json!("string"),
        SqlType::Timestamp => json!({"type": "long", "logicalType": "timestamp-millis"}),
        SqlType::Decimal(..) => {
            return Err("DECIMAL columns are not supported by the AVRO format yet".into())
        }
        SqlType::Array(e) => {
            json!({"type": "array", "items": ["null", avro_type(e, path)?]})
        }
        SqlType::Map(v) => json!({"type": "map", "values": ["null", avro_type(v, path)?]}),
        SqlType::Struct(fields) => record(
            path,
            &fields
                .iter()
                .map(|(n, t)| (n.as_str(), t))
                .collect::<Vec<_>>(),
        )?,
    })
}

fn record(name: &str, cols: &[(&str, &SqlType)]) -> Result<J, String> {
    let fields = cols
        .iter()
        .map(|(n, t)| {
            Ok(json!({
                "name": n,
                "type": ["null", avro_type(t, &format!("{name}_{n}"))?],
                "default": null,
            }))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(json!({"type": "record", "name": name, "fields": fields}))
}

/// The schema of a value (a record of the columns) or of a key (a single column's type
/// unwrapped, as ksqlDB writes single keys), as ksqlDB generates it.
pub fn schema_for(cols: &[(&str, &SqlType)], is_key: bool) -> Result<J, String> {
    if is_key && cols.len() == 1 {
        return avro_type(cols[0].1, "KsqlDataSourceSchema");
    }
    let mut r = record("KsqlDataSourceSchema", cols)?;
    r["namespace"] = json!("io.confluent.ksql.avro_schemas");
    Ok(r)
}

/// Registers the schema generated for `cols` (AVRO or JSON_SR) under `subject` (or finds
/// it registered); the id to write with.
pub async fn register(
    url: &str,
    subject: &str,
    cols: &[(&str, &SqlType)],
    is_key: bool,
    format: Format,
) -> Result<AvroSchema, String> {
    let (schema, ty) = if format == Format::JsonSr {
        (json_schema_for(cols, is_key).to_string(), "JSON")
    } else {
        (schema_for(cols, is_key)?.to_string(), "AVRO")
    };
    let id = client(url)
        .register_typed(subject, &schema, ty, false)
        .await
        .map_err(|e| format!("cannot register the schema of {subject}: {e}"))?;
    if format == Format::Avro {
        fetch(url, id).await?;
    }
    Ok(AvroSchema {
        url: url.to_owned(),
        id,
        fields: Vec::new(),
    })
}

/// An object's properties in column order: by `connect.index` (as Kafka Connect and
/// ksqlDB write it), then by name.
fn ordered(p: &serde_json::Map<String, J>) -> Vec<(&String, &J)> {
    let mut v: Vec<(&String, &J)> = p.iter().collect();
    v.sort_by_key(|(n, t)| (t["connect.index"].as_u64().unwrap_or(u64::MAX), n.as_str()));
    v
}

/// JSON_SR: the JSON document of a Confluent-framed record (the schema id is not needed
/// to read JSON).
pub fn decode_json_sr(data: &[u8]) -> Result<J, String> {
    let (_, payload) = sr::split_frame(data).map_err(|e| e.to_string())?;
    serde_json::from_slice(payload).map_err(|e| format!("invalid JSON: {e}"))
}

/// JSON_SR: frames a JSON document as schema `s`, object keys renamed to the schema's
/// property names (ignoring case).
pub fn encode_json_sr(s: &AvroSchema, value: &J) -> Vec<u8> {
    let value = match value {
        J::Object(o) if !s.fields.is_empty() => J::Object(
            o.iter()
                .map(|(k, v)| {
                    let name = s.fields.iter().find(|f| f.eq_ignore_ascii_case(k));
                    (name.unwrap_or(k).clone(), v.clone())
                })
                .collect(),
        ),
        other => other.clone(),
    };
    let mut out = vec![sr::MAGIC];
    out.extend_from_slice(&s.id.to_be_bytes());
    out.extend_from_slice(value.to_string().as_bytes());
    out
}

/// The JSON Schema of a column type, as ksqlDB's JSON_SR writes it (optional values as
/// `oneOf` null, `connect.type` telling INT from BIGINT).
fn json_type(t: &SqlType) -> J {
    let base = match t {
        SqlType::Boolean => json!({"type": "boolean"}),
        SqlType::Int => json!({"type": "integer", "connect.type": "int32"}),
        SqlType::BigInt => json!({"type": "integer", "connect.type": "int64"}),
        SqlType::Timestamp => {
            json!({"type": "integer", "connect.type": "int64", "title": "org.apache.kafka.connect.data.Timestamp"})
        }
        SqlType::Double | SqlType::Decimal(..) => json!({"type": "number"}),
        SqlType::String => json!({"type": "string"}),
        SqlType::Array(e) => json!({"type": "array", "items": json_type(e)}),
        SqlType::Map(v) => json!({"type": "object", "additionalProperties": json_type(v)}),
        SqlType::Struct(fields) => json_object(
            &fields
                .iter()
                .map(|(n, t)| (n.as_str(), t))
                .collect::<Vec<_>>(),
        ),
    };
    json!({"oneOf": [{"type": "null"}, base]})
}

fn json_object(cols: &[(&str, &SqlType)]) -> J {
    let props: serde_json::Map<String, J> = cols
        .iter()
        .enumerate()
        .map(|(i, (n, t))| {
            let mut p = json_type(t);
            p["connect.index"] = json!(i);
            (n.to_string(), p)
        })
        .collect();
    json!({"type": "object", "properties": props})
}

/// The JSON Schema of a value (an object of the columns) or of a single key.
pub fn json_schema_for(cols: &[(&str, &SqlType)], is_key: bool) -> J {
    if is_key && cols.len() == 1 {
        return json_type(cols[0].1);
    }
    json_object(cols)
}

/// The SQL type of a JSON Schema (`oneOf`/`anyOf` with null are nullable columns).
fn json_sql_type(s: &J) -> Result<SqlType, String> {
    if let Some(alts) = s.get("oneOf").or(s.get("anyOf")).and_then(J::as_array) {
        let non_null: Vec<&J> = alts.iter().filter(|a| a["type"] != "null").collect();
        return match non_null.as_slice() {
            [one] => json_sql_type(one),
            _ => Err(format!("only oneOf [null, T] is supported: {s}")),
        };
    }
    let ty = match &s["type"] {
        J::Array(ts) => ts.iter().find(|t| *t != "null").cloned().unwrap_or(J::Null),
        t => t.clone(),
    };
    Ok(match ty.as_str() {
        Some("boolean") => SqlType::Boolean,
        Some("integer") if s["connect.type"] == "int32" => SqlType::Int,
        Some("integer") if s["title"] == "org.apache.kafka.connect.data.Timestamp" => {
            SqlType::Timestamp
        }
        Some("integer") => SqlType::BigInt,
        Some("number") => SqlType::Double,
        Some("string") => SqlType::String,
        Some("array") => SqlType::Array(Box::new(json_sql_type(&s["items"])?)),
        Some("object") if s.get("properties").is_some() => SqlType::Struct(
            s["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(n, p)| Ok((n.to_uppercase(), json_sql_type(p)?)))
                .collect::<Result<_, String>>()?,
        ),
        Some("object") => SqlType::Map(Box::new(
            s.get("additionalProperties")
                .filter(|a| a.is_object())
                .map(json_sql_type)
                .transpose()?
                .unwrap_or(SqlType::String),
        )),
        _ => return Err(format!("unsupported JSON Schema {s}")),
    })
}

/// The subject's latest schema: its id and the columns it implies (field names
/// upper-cased, as ksqlDB names inferred columns; a key schema that is not a record is
/// one column named `key_name`).
pub async fn infer(
    url: &str,
    subject: &str,
    format: Format,
    key_name: &str,
) -> Result<(AvroSchema, Vec<(String, SqlType)>), String> {
    let is_key = !key_name.is_empty();
    let latest = client(url)
        .latest_id(subject)
        .await
        .map_err(|e| format!("cannot read the schema of subject {subject}: {e}"))?;
    let want = if format == Format::JsonSr {
        "JSON"
    } else {
        "AVRO"
    };
    if latest.1 != want {
        return Err(format!(
            "the latest schema of subject {subject} is {}, not {want}",
            latest.1
        ));
    }
    if format == Format::JsonSr {
        let (_, text) = client(url)
            .schema_text_by_id(latest.0)
            .await
            .map_err(|e| e.to_string())?;
        let schema: J = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let props = schema.get("properties").and_then(J::as_object);
        let cols = match props {
            Some(p) if !is_key || p.len() != 1 => ordered(p)
                .into_iter()
                .map(|(n, t)| {
                    json_sql_type(t)
                        .map(|ty| (n.to_uppercase(), ty))
                        .map_err(|e| format!("property {n} of subject {subject}: {e}"))
                })
                .collect::<Result<Vec<_>, String>>()?,
            _ if is_key => vec![(key_name.to_owned(), json_sql_type(&schema)?)],
            _ => return Err(format!("the schema of subject {subject} is not an object")),
        };
        let fields = props
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        return Ok((
            AvroSchema {
                url: url.to_owned(),
                id: latest.0,
                fields,
            },
            cols,
        ));
    }
    fetch(url, latest.0).await?;
    let c = cached(url, latest.0).ok_or("schema missing from the cache")?;
    let cols = match &c.json {
        J::Object(o) if o.get("type").and_then(J::as_str) == Some("record") => {
            let mut cols = Vec::new();
            for f in o.get("fields").and_then(J::as_array).into_iter().flatten() {
                let name = f["name"].as_str().unwrap_or_default();
                let ty = sql_type(&f["type"])
                    .map_err(|e| format!("field {name} of subject {subject}: {e}"))?;
                cols.push((name.to_uppercase(), ty));
            }
            cols
        }
        other if is_key => vec![(key_name.to_owned(), sql_type(other)?)],
        _ => return Err(format!("the schema of subject {subject} is not a record")),
    };
    Ok((
        AvroSchema {
            url: url.to_owned(),
            id: latest.0,
            fields: Vec::new(),
        },
        cols,
    ))
}

/// The SQL type of an Avro schema (unions with null are nullable columns).
fn sql_type(s: &J) -> Result<SqlType, String> {
    Ok(match s {
        J::String(p) => match p.as_str() {
            "boolean" => SqlType::Boolean,
            "int" => SqlType::Int,
            "long" => SqlType::BigInt,
            "float" | "double" => SqlType::Double,
            "string" => SqlType::String,
            other => return Err(format!("the Avro type {other} has no SQL type")),
        },
        J::Array(branches) => {
            let non_null: Vec<&J> = branches
                .iter()
                .filter(|b| b.as_str() != Some("null"))
                .collect();
            match non_null.as_slice() {
                [one] => sql_type(one)?,
                _ => {
                    return Err(format!(
                        "unions other than [null, T] are not supported: {s}"
                    ))
                }
            }
        }
        J::Object(o) => {
            let ty = o.get("type").cloned().unwrap_or(J::Null);
            match (ty.as_str(), o.get("logicalType").and_then(J::as_str)) {
                (Some("long"), Some("timestamp-millis")) => SqlType::Timestamp,
                (Some("record"), _) => SqlType::Struct(
                    o.get("fields")
                        .and_then(J::as_array)
                        .into_iter()
                        .flatten()
                        .map(|f| {
                            Ok((
                                f["name"].as_str().unwrap_or_default().to_uppercase(),
                                sql_type(&f["type"])?,
                            ))
                        })
                        .collect::<Result<_, String>>()?,
                ),
                (Some("array"), _) => SqlType::Array(Box::new(sql_type(&o["items"])?)),
                (Some("map"), _) => SqlType::Map(Box::new(sql_type(&o["values"])?)),
                (Some("enum"), _) => SqlType::String,
                _ => sql_type(&ty)?,
            }
        }
        other => return Err(format!("unsupported Avro schema {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_schemas_and_types() {
        let arr = SqlType::Array(Box::new(SqlType::String));
        let cols = [("ID", &SqlType::BigInt), ("TAGS", &arr)];
        let s = schema_for(&cols, false).unwrap();
        assert_eq!(s["name"], "KsqlDataSourceSchema");
        assert_eq!(
            s["fields"][0],
            json!({"name": "ID", "type": ["null", "long"], "default": null})
        );
        assert_eq!(sql_type(&s["fields"][1]["type"]).unwrap(), arr);
        assert_eq!(
            schema_for(&[("K", &SqlType::String)], true).unwrap(),
            json!("string")
        );
        let ts = json!({"type": "long", "logicalType": "timestamp-millis"});
        assert_eq!(sql_type(&ts).unwrap(), SqlType::Timestamp);
        assert!(sql_type(&json!(["int", "string"])).is_err());
        assert!(schema_for(&[("D", &SqlType::Decimal(4, 2))], false).is_err());
    }

    #[test]
    fn json_schemas_round_trip_column_types() {
        let st = SqlType::Struct(vec![("X".into(), SqlType::Int)]);
        let m = SqlType::Map(Box::new(SqlType::Double));
        let cols = [
            ("A", &SqlType::Int),
            ("B", &SqlType::BigInt),
            ("C", &SqlType::Timestamp),
            ("D", &st),
            ("E", &m),
        ];
        let s = json_schema_for(&cols, false);
        let back: Vec<(String, SqlType)> = ordered(s["properties"].as_object().unwrap())
            .into_iter()
            .map(|(n, t)| (n.clone(), json_sql_type(t).unwrap()))
            .collect();
        let want: Vec<(String, SqlType)> = cols
            .iter()
            .map(|(n, t)| (n.to_string(), (*t).clone()))
            .collect();
        assert_eq!(back, want);
        let framed = encode_json_sr(
            &AvroSchema {
                url: String::new(),
                id: 7,
                fields: vec!["orderId".into()],
            },
            &json!({"ORDERID": 1}),
        );
        assert_eq!(&framed[..5], &[0, 0, 0, 0, 7]);
        assert_eq!(decode_json_sr(&framed).unwrap(), json!({"orderId": 1}));
        assert!(
            json_sql_type(&json!({"oneOf": [{"type": "string"}, {"type": "integer"}]})).is_err()
        );
    }

    #[test]
    fn values_conform_to_field_names() {
        let schema = json!({"type": "record", "name": "R", "fields": [
            {"name": "id", "type": "long"},
            {"name": "inner", "type": ["null", {"type": "record", "name": "I", "fields": [{"name": "x", "type": "int"}]}]}
        ]});
        let v = conform(&json!({"ID": 1, "INNER": {"X": 2}}), &schema);
        assert_eq!(v, json!({"id": 1, "inner": {"x": 2}}));
    }
}
