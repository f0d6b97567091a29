//! Avro and JSON Schema serdes in Confluent's wire format (magic byte 0, 4-byte big-endian
//! schema id, the payload; Protobuf's, with message indexes, are in [`protobuf`]), with a
//! registry client that caches ids and schemas so the registry is asked once
//! per schema, not per record. Subject name strategies, auto-registration and
//! use-latest-version follow the Confluent serializers' settings of the same names.
//!
//! They live in `strom-schema`, which needs no Kafka connection, so both the registry server
//! (`strom_registry::serde`) and clients (`strom_client::serde`, behind strom-client's
//! `serdes` feature) offer them; the plain client does not carry an Avro library and an HTTP
//! client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value as AvroValue;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::avro::{self, ParsedAvro};
use crate::http_client::{self, Method};
use crate::model::NamedText;
use crate::model::SchemaReference;

mod json_schema;
mod protobuf;
pub use json_schema::{JsonSchemaDeserializer, JsonSchemaSerializer};
pub use protobuf::{ProtobufDeserializer, ProtobufSerializer};

/// The magic byte that starts every Confluent-framed value.
pub const MAGIC: u8 = 0;
/// Bound on reference nesting when fetching a schema's references.
const MAX_REFERENCE_DEPTH: usize = 32;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SerdeError {
    /// The registry answered with an error (`error_code` as Confluent defines it).
    #[error("schema registry error {code} (HTTP {status}): {message}")]
    Registry {
        status: u16,
        code: i64,
        message: String,
    },
    #[error("schema registry unreachable: {0}")]
    Unreachable(String),
    #[error("invalid schema: {0}")]
    Schema(String),
    #[error("cannot encode the value with schema {id}: {reason}")]
    Encode { id: i32, reason: String },
    #[error("cannot decode: {0}")]
    Decode(String),
    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = SerdeError> = std::result::Result<T, E>;

/// How the subject is named from the topic and the schema (Confluent's
/// `*.subject.name.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SubjectNameStrategy {
    /// `<topic>-key` / `<topic>-value`.
    #[default]
    TopicName,
    /// The record's full name.
    RecordName,
    /// `<topic>-<record full name>`.
    TopicRecordName,
}

impl SubjectNameStrategy {
    pub fn subject(self, topic: &str, is_key: bool, schema: &Schema) -> Result<String> {
        let name = schema.name().map(|n| n.fullname(None));
        self.subject_for(topic, is_key, name.as_deref())
    }

    /// The subject for a record of full name `record_name` (an Avro record, a Protobuf
    /// message); the RecordName strategies need one.
    pub fn subject_for(
        self,
        topic: &str,
        is_key: bool,
        record_name: Option<&str>,
    ) -> Result<String> {
        let record_name = || {
            record_name.map(str::to_owned).ok_or_else(|| {
                SerdeError::Config("RecordName strategies need a named schema".into())
            })
        };
        Ok(match self {
            SubjectNameStrategy::TopicName => {
                format!("{topic}-{}", if is_key { "key" } else { "value" })
            }
            SubjectNameStrategy::RecordName => record_name()?,
            SubjectNameStrategy::TopicRecordName => format!("{topic}-{}", record_name()?),
        })
    }
}

/// A schema fetched from the registry, parsed once.
pub struct FetchedSchema {
    pub id: i32,
    pub text: String,
    pub parsed: ParsedAvro,
}

/// A Schema Registry client with the caches serdes need: schema by id, id by (subject,
/// schema), latest version by subject.
pub struct RegistryClient {
    url: String,
    by_id: Mutex<HashMap<i32, Arc<FetchedSchema>>>,
    ids: Mutex<HashMap<(String, String), i32>>,
    latest: Mutex<HashMap<String, Arc<FetchedSchema>>>,
}

fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl RegistryClient {
    pub fn new(url: &str) -> Arc<RegistryClient> {
        Arc::new(RegistryClient {
            url: url.trim_end_matches('/').to_owned(),
            by_id: Mutex::default(),
            ids: Mutex::default(),
            latest: Mutex::default(),
        })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let body = body.map(|b| Bytes::from(b.to_string()));
        let (status, bytes) = http_client::request(&self.url, method, path, body)
            .await
            .map_err(SerdeError::Unreachable)?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(SerdeError::Registry {
                status: status.as_u16(),
                code: value["error_code"]
                    .as_i64()
                    .unwrap_or(status.as_u16() as i64),
                message: value["message"].as_str().unwrap_or("").to_owned(),
            });
        }
        Ok(value)
    }

    /// Registers (or finds) `schema` under `subject`; cached.
    pub async fn register(&self, subject: &str, schema: &str, normalize: bool) -> Result<i32> {
        self.register_typed(subject, schema, "AVRO", normalize)
            .await
    }

    /// Like [`RegistryClient::register`] for a schema of `schema_type` (AVRO, JSON).
    pub async fn register_typed(
        &self,
        subject: &str,
        schema: &str,
        schema_type: &str,
        normalize: bool,
    ) -> Result<i32> {
        let path = format!("/subjects/{}/versions?normalize={normalize}", seg(subject));
        self.cached_id(&path, subject, schema, schema_type).await
    }

    /// The id `schema` has under `subject`, without registering it; cached.
    pub async fn lookup(&self, subject: &str, schema: &str, normalize: bool) -> Result<i32> {
        self.lookup_typed(subject, schema, "AVRO", normalize).await
    }

    /// Like [`RegistryClient::lookup`] for a schema of `schema_type`.
    pub async fn lookup_typed(
        &self,
        subject: &str,
        schema: &str,
        schema_type: &str,
        normalize: bool,
    ) -> Result<i32> {
        let path = format!("/subjects/{}?normalize={normalize}", seg(subject));
        self.cached_id(&path, subject, schema, schema_type).await
    }

    /// Like [`RegistryClient::register_typed`] for a schema that references others
    /// (Confluent's `references`: each `name` is how the schema refers to the other, e.g. a
    /// JSON `$ref`).
    pub async fn register_with_references(
        &self,
        subject: &str,
        schema: &str,
        schema_type: &str,
        references: &[SchemaReference],
        normalize: bool,
    ) -> Result<i32> {
        let path = format!("/subjects/{}/versions?normalize={normalize}", seg(subject));
        self.cached_id_with(&path, subject, schema, schema_type, references)
            .await
    }

    /// Like [`RegistryClient::lookup_typed`] for a schema that references others.
    pub async fn lookup_with_references(
        &self,
        subject: &str,
        schema: &str,
        schema_type: &str,
        references: &[SchemaReference],
        normalize: bool,
    ) -> Result<i32> {
        let path = format!("/subjects/{}?normalize={normalize}", seg(subject));
        self.cached_id_with(&path, subject, schema, schema_type, references)
            .await
    }

    /// The id of `schema` under `subject` from the cache, else from POSTing it to `path`
    /// (register and lookup answer with the same `{"id": ...}`).
    async fn cached_id(
        &self,
        path: &str,
        subject: &str,
        schema: &str,
        schema_type: &str,
    ) -> Result<i32> {
        self.cached_id_with(path, subject, schema, schema_type, &[])
            .await
    }

    async fn cached_id_with(
        &self,
        path: &str,
        subject: &str,
        schema: &str,
        schema_type: &str,
        references: &[SchemaReference],
    ) -> Result<i32> {
        let mut cache_text = schema.to_owned();
        if !references.is_empty() {
            // The same text with other references is another schema.
            cache_text.push('\0');
            cache_text.push_str(&json!(references).to_string());
        }
        let key = (subject.to_owned(), cache_text);
        if let Some(id) = self.ids.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(*id);
        }
        let mut body = json!({ "schema": schema, "schemaType": schema_type });
        if !references.is_empty() {
            body["references"] = json!(references);
        }
        let v = self.call(Method::POST, path, Some(body)).await?;
        let id = v["id"]
            .as_i64()
            .ok_or_else(|| SerdeError::Unreachable(format!("no id in {v}")))?
            as i32;
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, id);
        Ok(id)
    }

    /// The subject's latest version; cached for the life of the client (as Confluent's
    /// serializers do unless a TTL is set).
    pub async fn latest(&self, subject: &str) -> Result<Arc<FetchedSchema>> {
        if let Some(s) = self
            .latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(subject)
        {
            return Ok(s.clone());
        }
        let v = self
            .call(
                Method::GET,
                &format!("/subjects/{}/versions/latest", seg(subject)),
                None,
            )
            .await?;
        let id = v["id"].as_i64().unwrap_or(-1) as i32;
        let fetched = self.schema_by_id(id).await?;
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(subject.to_owned(), fetched.clone());
        Ok(fetched)
    }

    /// The type (AVRO, JSON, ...) and text of schema `id`, uncached.
    pub async fn schema_text_by_id(&self, id: i32) -> Result<(String, String)> {
        let v = self
            .call(Method::GET, &format!("/schemas/ids/{id}"), None)
            .await?;
        let schema_type = v
            .get("schemaType")
            .and_then(Value::as_str)
            .unwrap_or("AVRO")
            .to_owned();
        Ok((schema_type, v["schema"].as_str().unwrap_or("").to_owned()))
    }

    /// The schema with `id`, with its references resolved; cached.
    pub async fn schema_by_id(&self, id: i32) -> Result<Arc<FetchedSchema>> {
        if let Some(s) = self
            .by_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(s.clone());
        }
        let v = self
            .call(Method::GET, &format!("/schemas/ids/{id}"), None)
            .await?;
        if v.get("schemaType")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "AVRO")
        {
            return Err(SerdeError::Schema(format!("schema {id} is not Avro")));
        }
        let text = v["schema"].as_str().unwrap_or("").to_owned();
        let references = self.references_of(&v).await?;
        let ref_texts: Vec<String> = references.into_iter().map(|(_, t)| t).collect();
        let parsed = avro::parse(&text, &ref_texts).map_err(SerdeError::Schema)?;
        let fetched = Arc::new(FetchedSchema { id, text, parsed });
        self.by_id
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, fetched.clone());
        Ok(fetched)
    }

    /// The schemas a registry answer's `references` name, and theirs, dependencies first.
    async fn references_of(&self, answer: &Value) -> Result<Vec<NamedText>> {
        let references: Vec<SchemaReference> =
            serde_json::from_value(answer.get("references").cloned().unwrap_or(json!([])))
                .map_err(|e| SerdeError::Schema(e.to_string()))?;
        let mut out = Vec::new();
        self.reference_texts(&references, &mut out, 0).await?;
        Ok(out)
    }

    /// The subject's latest version as (id, type), uncached (serializers keep what they
    /// resolve).
    pub async fn latest_id(&self, subject: &str) -> Result<(i32, String)> {
        let v = self
            .call(
                Method::GET,
                &format!("/subjects/{}/versions/latest", seg(subject)),
                None,
            )
            .await?;
        let id = v["id"]
            .as_i64()
            .and_then(|i| i32::try_from(i).ok())
            .ok_or_else(|| SerdeError::Unreachable(format!("no id in {v}")))?;
        let schema_type = v
            .get("schemaType")
            .and_then(Value::as_str)
            .unwrap_or("AVRO")
            .to_owned();
        Ok((id, schema_type))
    }

    /// Schema `id` as (type, text, referenced schemas), uncached.
    pub async fn schema_with_references(
        &self,
        id: i32,
    ) -> Result<(String, String, Vec<NamedText>)> {
        let v = self
            .call(Method::GET, &format!("/schemas/ids/{id}"), None)
            .await?;
        let schema_type = v
            .get("schemaType")
            .and_then(Value::as_str)
            .unwrap_or("AVRO")
            .to_owned();
        let text = v["schema"].as_str().unwrap_or("").to_owned();
        let references = self.references_of(&v).await?;
        Ok((schema_type, text, references))
    }

    async fn reference_texts(
        &self,
        references: &[SchemaReference],
        out: &mut Vec<NamedText>,
        depth: usize,
    ) -> Result<()> {
        if depth > MAX_REFERENCE_DEPTH {
            return Err(SerdeError::Schema("references nest too deep".into()));
        }
        for r in references {
            let v = self
                .call(
                    Method::GET,
                    &format!("/subjects/{}/versions/{}", seg(&r.subject), r.version),
                    None,
                )
                .await?;
            let nested: Vec<SchemaReference> =
                serde_json::from_value(v.get("references").cloned().unwrap_or(json!([])))
                    .map_err(|e| SerdeError::Schema(e.to_string()))?;
            Box::pin(self.reference_texts(&nested, out, depth + 1)).await?;
            let named = (
                r.name.clone(),
                v["schema"].as_str().unwrap_or("").to_owned(),
            );
            if !out.contains(&named) {
                out.push(named);
            }
        }
        Ok(())
    }
}

/// Serializer settings, with the Confluent serializers' defaults.
#[derive(Debug, Clone)]
pub struct SerializerConfig {
    /// `auto.register.schemas` (default true).
    pub auto_register: bool,
    /// `use.latest.version` (default false): write with the subject's latest schema.
    pub use_latest_version: bool,
    /// `normalize.schemas` (default false).
    pub normalize: bool,
    pub strategy: SubjectNameStrategy,
    /// Serializing record keys (subject suffix `-key`) rather than values.
    pub is_key: bool,
}

impl Default for SerializerConfig {
    fn default() -> Self {
        SerializerConfig {
            auto_register: true,
            use_latest_version: false,
            normalize: false,
            strategy: SubjectNameStrategy::TopicName,
            is_key: false,
        }
    }
}

/// A topic's schema id, and the schema itself when it came from the registry (latest).
type Resolved = (i32, Option<Arc<FetchedSchema>>);

/// Encodes values with one Avro schema (or the subject's latest) into Confluent framing.
pub struct AvroSerializer {
    client: Arc<RegistryClient>,
    /// The writer schema given by the application (text and parsed); `None` with
    /// `use_latest_version`.
    schema: Option<(String, ParsedAvro)>,
    config: SerializerConfig,
    /// Per topic: the subject's id and schema once resolved.
    resolved: Mutex<HashMap<String, Resolved>>,
}

impl AvroSerializer {
    pub fn new(
        client: Arc<RegistryClient>,
        schema: Option<&str>,
        config: SerializerConfig,
    ) -> Result<AvroSerializer> {
        let schema = match schema {
            Some(text) => Some((
                text.to_owned(),
                avro::parse(text, &[]).map_err(SerdeError::Schema)?,
            )),
            None if config.use_latest_version => None,
            None => {
                return Err(SerdeError::Config(
                    "a schema is needed unless use.latest.version is set".into(),
                ))
            }
        };
        Ok(AvroSerializer {
            client,
            schema,
            config,
            resolved: Mutex::default(),
        })
    }

    /// The schema id for `topic`, asking the registry the first time only.
    async fn id_for(&self, topic: &str) -> Result<Resolved> {
        if let Some(r) = self
            .resolved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
        {
            return Ok(r.clone());
        }
        let resolved = match (&self.schema, self.config.use_latest_version) {
            (Some((text, parsed)), false) => {
                let subject =
                    self.config
                        .strategy
                        .subject(topic, self.config.is_key, &parsed.schema)?;
                let id = if self.config.auto_register {
                    self.client
                        .register(&subject, text, self.config.normalize)
                        .await?
                } else {
                    self.client
                        .lookup(&subject, text, self.config.normalize)
                        .await?
                };
                (id, None)
            }
            (given, _) => {
                let subject = match (self.config.strategy, given) {
                    (SubjectNameStrategy::TopicName, _) => {
                        format!(
                            "{topic}-{}",
                            if self.config.is_key { "key" } else { "value" }
                        )
                    }
                    (s, Some((_, parsed))) => {
                        s.subject(topic, self.config.is_key, &parsed.schema)?
                    }
                    (_, None) => {
                        return Err(SerdeError::Config(
                            "RecordName strategies need a schema to name the subject".into(),
                        ))
                    }
                };
                let latest = self.client.latest(&subject).await?;
                (latest.id, Some(latest))
            }
        };
        self.resolved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_owned(), resolved.clone());
        Ok(resolved)
    }

    /// Encodes an Avro value for `topic`.
    pub async fn serialize(&self, topic: &str, value: AvroValue) -> Result<Vec<u8>> {
        let (id, latest) = self.id_for(topic).await?;
        let parsed = match (&latest, &self.schema) {
            (Some(l), _) => &l.parsed,
            (None, Some((_, p))) => p,
            (None, None) => unreachable!("id_for returns a schema when none was given"),
        };
        encode(id, parsed, value)
    }

    /// Encodes a JSON value (plain JSON: objects for records, strings for enums, the bare
    /// value for unions) for `topic`.
    pub async fn serialize_json(&self, topic: &str, value: &Value) -> Result<Vec<u8>> {
        let avro_value = AvroValue::try_from(value.clone()).map_err(|e| SerdeError::Encode {
            id: -1,
            reason: e.to_string(),
        })?;
        self.serialize(topic, avro_value).await
    }
}

/// Frames `value` written with `parsed` as schema `id`.
pub fn encode(id: i32, parsed: &ParsedAvro, value: AvroValue) -> Result<Vec<u8>> {
    let schemata: Vec<&Schema> = parsed.schemata.iter().collect();
    let resolved = value
        .resolve_schemata(&parsed.schema, schemata.clone())
        .map_err(|e| SerdeError::Encode {
            id,
            reason: e.to_string(),
        })?;
    let body = GenericDatumWriter::builder(&parsed.schema)
        .schemata(schemata)
        // `resolve_schemata` above has validated the value against the schema.
        .and_then(|b| b.validate(false).build())
        .and_then(|w| w.write_value_to_vec(resolved))
        .map_err(|e| SerdeError::Encode {
            id,
            reason: e.to_string(),
        })?;
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(MAGIC);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Splits a Confluent-framed value into its schema id and payload.
pub fn split_frame(bytes: &[u8]) -> Result<(i32, &[u8])> {
    match bytes {
        [MAGIC, a, b, c, d, rest @ ..] => Ok((i32::from_be_bytes([*a, *b, *c, *d]), rest)),
        [m, ..] if *m != MAGIC => Err(SerdeError::Decode(format!("unknown magic byte {m}"))),
        _ => Err(SerdeError::Decode(format!(
            "{} bytes are too short for a magic byte and a schema id",
            bytes.len()
        ))),
    }
}

/// Decodes Confluent-framed Avro values, fetching each writer schema once.
pub struct AvroDeserializer {
    client: Arc<RegistryClient>,
}

impl AvroDeserializer {
    pub fn new(client: Arc<RegistryClient>) -> AvroDeserializer {
        AvroDeserializer { client }
    }

    pub async fn deserialize(&self, bytes: &[u8]) -> Result<AvroValue> {
        let (id, mut payload) = split_frame(bytes)?;
        let writer = self.client.schema_by_id(id).await?;
        decode(&writer.parsed, &mut payload)
    }

    /// Decodes to JSON (records as objects, unions as the bare value).
    pub async fn deserialize_json(&self, bytes: &[u8]) -> Result<Value> {
        let v = self.deserialize(bytes).await?;
        Value::try_from(v).map_err(|e| SerdeError::Decode(e.to_string()))
    }
}

/// Decodes one Avro binary datum written with `parsed`.
pub fn decode(parsed: &ParsedAvro, payload: &mut &[u8]) -> Result<AvroValue> {
    let schemata: Vec<&Schema> = parsed.schemata.iter().collect();
    GenericDatumReader::builder(&parsed.schema)
        .writer_schemata(schemata)
        .and_then(|b| b.build())
        .and_then(|r| r.read_value(payload))
        .map_err(|e| SerdeError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip() {
        let parsed = avro::parse(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"},{"name":"s","type":["null","string"]}]}"#,
            &[],
        )
        .unwrap();
        let value = AvroValue::try_from(json!({"a": 5, "s": "x"})).unwrap();
        let bytes = encode(42, &parsed, value).unwrap();
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, 42]);
        let (id, mut payload) = split_frame(&bytes).unwrap();
        assert_eq!(id, 42);
        let back = Value::try_from(decode(&parsed, &mut payload).unwrap()).unwrap();
        assert_eq!(back, json!({"a": 5, "s": "x"}));
        assert!(split_frame(&[1, 0, 0, 0, 1]).is_err());
        assert!(split_frame(&[0, 0]).is_err());
        assert!(encode(1, &parsed, AvroValue::try_from(json!({"a": "no"})).unwrap()).is_err());
    }
}
