//! The AVRO format through a Schema Registry (`ksql.schema.registry.url`): records in
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

use crate::types::SqlType;

/// The schema a source writes with: registry and schema id. Records are read with the
/// schema their own frame names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AvroSchema {
    pub url: String,
    pub id: i32,
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

/// Registers the schema generated for `cols` under `subject` (or finds it registered);
/// the id to write with.
pub async fn register(
    url: &str,
    subject: &str,
    cols: &[(&str, &SqlType)],
    is_key: bool,
) -> Result<AvroSchema, String> {
    let schema = schema_for(cols, is_key)?.to_string();
    let id = client(url)
        .register(subject, &schema, false)
        .await
        .map_err(|e| format!("cannot register the schema of {subject}: {e}"))?;
    fetch(url, id).await?;
    Ok(AvroSchema {
        url: url.to_owned(),
        id,
    })
}

/// The subject's latest schema: its id and the columns it implies (field names
/// upper-cased, as ksqlDB names inferred columns; a key schema that is not a record is
/// one column named `key_name`).
pub async fn infer(
    url: &str,
    subject: &str,
    is_key: bool,
    key_name: &str,
) -> Result<(AvroSchema, Vec<(String, SqlType)>), String> {
    let latest = client(url)
        .latest_id(subject)
        .await
        .map_err(|e| format!("cannot read the schema of subject {subject}: {e}"))?;
    if latest.1 != "AVRO" {
        return Err(format!(
            "the latest schema of subject {subject} is {}, not AVRO",
            latest.1
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
    fn values_conform_to_field_names() {
        let schema = json!({"type": "record", "name": "R", "fields": [
            {"name": "id", "type": "long"},
            {"name": "inner", "type": ["null", {"type": "record", "name": "I", "fields": [{"name": "x", "type": "int"}]}]}
        ]});
        let v = conform(&json!({"ID": 1, "INNER": {"X": 2}}), &schema);
        assert_eq!(v, json!({"id": 1, "inner": {"x": 2}}));
    }
}
