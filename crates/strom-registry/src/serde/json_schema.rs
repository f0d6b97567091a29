//! JSON Schema serdes in Confluent's framing: magic byte, schema id, the JSON document. The
//! record name of the RecordName strategies is the schema's `title`, as Confluent's JSON
//! Schema serializer takes it. Values are not validated against the schema here (the
//! Confluent serializer does that with a JSON Schema validator; this crate has none).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{split_frame, RegistryClient, Result, SerdeError, SerializerConfig, MAGIC};

/// Frames JSON documents with the id of a given schema, or of the subject's latest version
/// (`use_latest_version`).
pub struct JsonSchemaSerializer {
    client: Arc<RegistryClient>,
    schema: Option<String>,
    /// The schema's `title`: the record name for the RecordName strategies.
    title: Option<String>,
    config: SerializerConfig,
    ids: Mutex<HashMap<String, i32>>,
}

impl JsonSchemaSerializer {
    /// `schema` may be `None` only with `use_latest_version` (then the RecordName strategies
    /// have no title to name the subject with).
    pub fn new(
        client: Arc<RegistryClient>,
        schema: Option<&str>,
        config: SerializerConfig,
    ) -> Result<JsonSchemaSerializer> {
        let title = match schema {
            Some(text) => {
                let parsed = crate::json_schema::parse(text).map_err(SerdeError::Schema)?;
                parsed
                    .root
                    .get("title")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }
            None if config.use_latest_version => None,
            None => {
                return Err(SerdeError::Config(
                    "a schema is needed unless use.latest.version is set".into(),
                ))
            }
        };
        Ok(JsonSchemaSerializer {
            client,
            schema: schema.map(str::to_owned),
            title,
            config,
            ids: Mutex::default(),
        })
    }

    async fn id_for(&self, topic: &str) -> Result<i32> {
        let cached = self
            .ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
            .copied();
        if let Some(id) = cached {
            return Ok(id);
        }
        let subject =
            self.config
                .strategy
                .subject_for(topic, self.config.is_key, self.title.as_deref())?;
        let id = match (&self.schema, self.config.use_latest_version) {
            (Some(schema), false) if self.config.auto_register => {
                self.client
                    .register_typed(&subject, schema, "JSON", self.config.normalize)
                    .await?
            }
            (Some(schema), false) => {
                self.client
                    .lookup_typed(&subject, schema, "JSON", self.config.normalize)
                    .await?
            }
            _ => match self.client.latest_id(&subject).await? {
                (id, t) if t == "JSON" => id,
                (id, t) => {
                    return Err(SerdeError::Schema(format!(
                        "the latest schema of {subject} (id {id}) is {t}, not JSON"
                    )))
                }
            },
        };
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_owned(), id);
        Ok(id)
    }

    pub async fn serialize_json(&self, topic: &str, value: &Value) -> Result<Vec<u8>> {
        let id = self.id_for(topic).await?;
        let mut out = vec![MAGIC];
        out.extend_from_slice(&id.to_be_bytes());
        serde_json::to_writer(&mut out, value).map_err(|e| SerdeError::Encode {
            id,
            reason: e.to_string(),
        })?;
        Ok(out)
    }
}

/// Reads JSON Schema framed values: checks the id names a JSON schema (once per id) and
/// returns the document.
pub struct JsonSchemaDeserializer {
    client: Arc<RegistryClient>,
    known: Mutex<HashMap<i32, bool>>,
}

impl JsonSchemaDeserializer {
    pub fn new(client: Arc<RegistryClient>) -> JsonSchemaDeserializer {
        JsonSchemaDeserializer {
            client,
            known: Mutex::default(),
        }
    }

    pub async fn deserialize_json(&self, bytes: &[u8]) -> Result<Value> {
        let (id, payload) = split_frame(bytes)?;
        let known = self
            .known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .copied();
        let is_json = match known {
            Some(k) => k,
            None => {
                let (schema_type, _) = self.client.schema_text_by_id(id).await?;
                let is_json = schema_type == "JSON";
                self.known
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, is_json);
                is_json
            }
        };
        if !is_json {
            return Err(SerdeError::Decode(format!(
                "schema {id} is not a JSON Schema"
            )));
        }
        serde_json::from_slice(payload).map_err(|e| SerdeError::Decode(e.to_string()))
    }
}
