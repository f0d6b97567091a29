//! JSON Schema serdes in Confluent's framing: magic byte, schema id, the JSON document. The
//! record name of the RecordName strategies is the schema's `title`, as Confluent's JSON
//! Schema serializer takes it. The serializer validates each value against the schema before
//! framing it (as Confluent's does with `json.fail.invalid.schema=true`, and its Python
//! `JSONSerializer` always): a value that does not match is an error, never bytes. The
//! deserializer validates too when asked ([`JsonSchemaDeserializer::with_validation`]).
//! Validation is against the schema the registry holds under the id, `$ref`s to its
//! references resolved by their reference names.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{split_frame, RegistryClient, Result, SerdeError, SerializerConfig, MAGIC};
use crate::json_schema::JsonValidator;
use crate::model::SchemaReference;

/// The validator of schema `id` as the registry holds it, references included.
async fn validator_for(client: &RegistryClient, id: i32) -> Result<JsonValidator> {
    let (schema_type, text, references) = client.schema_with_references(id).await?;
    if schema_type != "JSON" {
        return Err(SerdeError::Schema(format!(
            "schema {id} is {schema_type}, not a JSON Schema"
        )));
    }
    let parsed = crate::json_schema::parse(&text).map_err(SerdeError::Schema)?;
    JsonValidator::new(&parsed.root, &references)
        .map_err(|e| SerdeError::Schema(format!("schema {id}: {e}")))
}

/// Frames JSON documents with the id of a given schema, or of the subject's latest version
/// (`use_latest_version`).
pub struct JsonSchemaSerializer {
    client: Arc<RegistryClient>,
    schema: Option<String>,
    /// The schemas `schema` refers to, registered with it.
    references: Vec<SchemaReference>,
    /// The schema's `title`: the record name for the RecordName strategies.
    title: Option<String>,
    config: SerializerConfig,
    /// Validate values before framing them (default true).
    validate: bool,
    /// Per topic: the schema id and, when validating, its validator.
    ids: Mutex<HashMap<String, (i32, Option<JsonValidator>)>>,
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
            references: Vec::new(),
            title,
            config,
            validate: true,
            ids: Mutex::default(),
        })
    }

    /// Turns the validation of values against the schema on (the default) or off (values
    /// are then framed as they are, as Confluent's Java serializer does by default).
    pub fn with_validation(mut self, validate: bool) -> JsonSchemaSerializer {
        self.validate = validate;
        self
    }

    /// The registered schemas the schema's `$ref`s name (each reference's `name` is the
    /// `$ref` it answers); they are sent when the schema is registered or looked up, and
    /// resolved when values are validated.
    pub fn with_references(mut self, references: Vec<SchemaReference>) -> JsonSchemaSerializer {
        self.references = references;
        self
    }

    async fn id_for(&self, topic: &str) -> Result<(i32, Option<JsonValidator>)> {
        let cached = self
            .ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
            .cloned();
        if let Some(resolved) = cached {
            return Ok(resolved);
        }
        let subject =
            self.config
                .strategy
                .subject_for(topic, self.config.is_key, self.title.as_deref())?;
        let id = match (&self.schema, self.config.use_latest_version) {
            (Some(schema), false) if self.config.auto_register => {
                self.client
                    .register_with_references(
                        &subject,
                        schema,
                        "JSON",
                        &self.references,
                        self.config.normalize,
                    )
                    .await?
            }
            (Some(schema), false) => {
                self.client
                    .lookup_with_references(
                        &subject,
                        schema,
                        "JSON",
                        &self.references,
                        self.config.normalize,
                    )
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
        let validator = if self.validate {
            Some(validator_for(&self.client, id).await?)
        } else {
            None
        };
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_owned(), (id, validator.clone()));
        Ok((id, validator))
    }

    /// Frames `value` with the schema's id; with validation on (the default), a value the
    /// schema rejects is an [`SerdeError::Encode`] naming each violation.
    pub async fn serialize_json(&self, topic: &str, value: &Value) -> Result<Vec<u8>> {
        let (id, validator) = self.id_for(topic).await?;
        if let Some(v) = validator {
            v.validate(value).map_err(|e| SerdeError::Encode {
                id,
                reason: format!("the value does not match the JSON schema: {e}"),
            })?;
        }
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
/// returns the document, validated against the schema when asked.
pub struct JsonSchemaDeserializer {
    client: Arc<RegistryClient>,
    /// Validate decoded values against the writer's schema (default false).
    validate: bool,
    known: Mutex<HashMap<i32, bool>>,
    validators: Mutex<HashMap<i32, JsonValidator>>,
}

impl JsonSchemaDeserializer {
    pub fn new(client: Arc<RegistryClient>) -> JsonSchemaDeserializer {
        JsonSchemaDeserializer {
            client,
            validate: false,
            known: Mutex::default(),
            validators: Mutex::default(),
        }
    }

    /// Turns on (or off, the default) the validation of each decoded value against the
    /// schema its id names: a value that does not match is a [`SerdeError::Decode`].
    pub fn with_validation(mut self, validate: bool) -> JsonSchemaDeserializer {
        self.validate = validate;
        self
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
        let value: Value =
            serde_json::from_slice(payload).map_err(|e| SerdeError::Decode(e.to_string()))?;
        if self.validate {
            let cached = self
                .validators
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&id)
                .cloned();
            let validator = match cached {
                Some(v) => v,
                None => {
                    let v = validator_for(&self.client, id).await?;
                    self.validators
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(id, v.clone());
                    v
                }
            };
            validator.validate(&value).map_err(|e| {
                SerdeError::Decode(format!("the value does not match schema {id}: {e}"))
            })?;
        }
        Ok(value)
    }
}
