//! Protobuf serdes in Confluent's wire format: magic byte 0, the 4-byte schema id, the
//! message-index path of the message type in its schema (zigzag varints: the count, then each
//! index; a lone 0 byte for the first top-level message), then the protobuf payload. Values
//! come and go as dynamic messages (prost-reflect) or as protobuf's canonical JSON.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor, ReflectMessage};
use serde_json::Value;

use super::{split_frame, RegistryClient, Result, SerdeError, SerializerConfig, MAGIC};
use crate::protobuf::{self, ParsedProto, MAX_MESSAGE_INDEXES};

/// Encodes messages of one type into Confluent framing: of a given `.proto` schema,
/// registered (or looked up) once per topic, or of the subject's latest version
/// (`use_latest_version`).
pub struct ProtobufSerializer {
    client: Arc<RegistryClient>,
    /// The given schema's text and its message type (`None` with use_latest_version and no
    /// schema).
    schema: Option<(String, MessageDescriptor)>,
    /// The message type's full name (`None`: the first message of the latest schema).
    message_name: Option<String>,
    config: SerializerConfig,
    resolved: Mutex<HashMap<String, Resolved>>,
}

/// What a topic's values are written as: the schema id and the message type in it.
#[derive(Clone)]
struct Resolved {
    id: i32,
    message: MessageDescriptor,
    indexes: Vec<i32>,
}

impl ProtobufSerializer {
    /// `schema` is `.proto` text (it may import the well-known `google/protobuf` files);
    /// `message` names the type values are (full name or relative to the package), the
    /// file's first message when `None`. `schema` may be `None` only with
    /// use_latest_version.
    pub fn new(
        client: Arc<RegistryClient>,
        schema: Option<&str>,
        message: Option<&str>,
        config: SerializerConfig,
    ) -> Result<ProtobufSerializer> {
        let (schema, message_name) = match schema {
            Some(text) => {
                let parsed = protobuf::parse(text, &[]).map_err(SerdeError::Schema)?;
                let m = protobuf::find_message(&parsed, message).map_err(SerdeError::Schema)?;
                let name = m.full_name().to_owned();
                (Some((text.to_owned(), m)), Some(name))
            }
            None if config.use_latest_version => (None, message.map(str::to_owned)),
            None => {
                return Err(SerdeError::Config(
                    "a schema is needed unless use.latest.version is set".into(),
                ))
            }
        };
        Ok(ProtobufSerializer {
            client,
            schema,
            message_name,
            config,
            resolved: Mutex::default(),
        })
    }

    /// The message type of the given schema (`None` when writing with the latest version).
    pub fn message(&self) -> Option<&MessageDescriptor> {
        self.schema.as_ref().map(|(_, m)| m)
    }

    async fn resolve(&self, topic: &str) -> Result<Resolved> {
        if let Some(r) = self
            .resolved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
        {
            return Ok(r.clone());
        }
        let subject = self.config.strategy.subject_for(
            topic,
            self.config.is_key,
            self.message_name.as_deref(),
        )?;
        let resolved = match (&self.schema, self.config.use_latest_version) {
            (Some((text, message)), false) => {
                let id = if self.config.auto_register {
                    self.client
                        .register_typed(&subject, text, "PROTOBUF", self.config.normalize)
                        .await?
                } else {
                    self.client
                        .lookup_typed(&subject, text, "PROTOBUF", self.config.normalize)
                        .await?
                };
                Resolved {
                    id,
                    indexes: protobuf::indexes_of(message),
                    message: message.clone(),
                }
            }
            _ => {
                let (id, _) = self.client.latest_id(&subject).await?;
                let (schema_type, text, references) =
                    self.client.schema_with_references(id).await?;
                if schema_type != "PROTOBUF" {
                    return Err(SerdeError::Schema(format!(
                        "the latest schema of {subject} (id {id}) is {schema_type}, not PROTOBUF"
                    )));
                }
                let parsed = protobuf::parse(&text, &references).map_err(SerdeError::Schema)?;
                let message = protobuf::find_message(&parsed, self.message_name.as_deref())
                    .map_err(SerdeError::Schema)?;
                Resolved {
                    id,
                    indexes: protobuf::indexes_of(&message),
                    message,
                }
            }
        };
        self.resolved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_owned(), resolved.clone());
        Ok(resolved)
    }

    /// Encodes a message for `topic`; it must be of the type the topic's schema names.
    pub async fn serialize(&self, topic: &str, message: &DynamicMessage) -> Result<Vec<u8>> {
        let resolved = self.resolve(topic).await?;
        if message.descriptor().full_name() != resolved.message.full_name() {
            return Err(SerdeError::Encode {
                id: resolved.id,
                reason: format!(
                    "the message is a {}, the schema's type is {}",
                    message.descriptor().full_name(),
                    resolved.message.full_name()
                ),
            });
        }
        let mut out = vec![MAGIC];
        out.extend_from_slice(&resolved.id.to_be_bytes());
        write_indexes(&mut out, &resolved.indexes);
        message.encode(&mut out).map_err(|e| SerdeError::Encode {
            id: resolved.id,
            reason: e.to_string(),
        })?;
        Ok(out)
    }

    /// Encodes a value given as protobuf JSON (field names or their JSON names).
    pub async fn serialize_json(&self, topic: &str, value: &Value) -> Result<Vec<u8>> {
        let resolved = self.resolve(topic).await?;
        let message =
            DynamicMessage::deserialize(resolved.message.clone(), value).map_err(|e| {
                SerdeError::Encode {
                    id: resolved.id,
                    reason: format!("{}: {e}", resolved.message.full_name()),
                }
            })?;
        self.serialize(topic, &message).await
    }
}

/// Decodes Confluent-framed Protobuf values with the writer's schema, fetched (and compiled,
/// with its references) once per id.
pub struct ProtobufDeserializer {
    client: Arc<RegistryClient>,
    schemas: Mutex<HashMap<i32, Arc<ParsedProto>>>,
}

impl ProtobufDeserializer {
    pub fn new(client: Arc<RegistryClient>) -> ProtobufDeserializer {
        ProtobufDeserializer {
            client,
            schemas: Mutex::default(),
        }
    }

    async fn schema(&self, id: i32) -> Result<Arc<ParsedProto>> {
        if let Some(p) = self
            .schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(p.clone());
        }
        let (schema_type, text, references) = self.client.schema_with_references(id).await?;
        if schema_type != "PROTOBUF" {
            return Err(SerdeError::Decode(format!(
                "schema {id} is {schema_type}, not PROTOBUF"
            )));
        }
        let parsed = Arc::new(protobuf::parse(&text, &references).map_err(SerdeError::Schema)?);
        self.schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, parsed.clone());
        Ok(parsed)
    }

    /// Decodes a framed value as the message type its indexes name in the writer's schema.
    pub async fn deserialize(&self, bytes: &[u8]) -> Result<DynamicMessage> {
        let (id, rest) = split_frame(bytes)?;
        let (indexes, payload) = read_indexes(rest)?;
        let parsed = self.schema(id).await?;
        let message = protobuf::message_at(&parsed.file, &indexes).map_err(SerdeError::Decode)?;
        DynamicMessage::decode(message, payload).map_err(|e| SerdeError::Decode(e.to_string()))
    }

    /// Decodes to protobuf's canonical JSON (JSON field names, default values left out).
    pub async fn deserialize_json(&self, bytes: &[u8]) -> Result<Value> {
        let message = self.deserialize(bytes).await?;
        serde_json::to_value(&message).map_err(|e| SerdeError::Decode(e.to_string()))
    }
}

/// Appends a message-index path: a lone 0 for `[0]`, else the count and each index, all as
/// zigzag varints.
pub fn write_indexes(out: &mut Vec<u8>, indexes: &[i32]) {
    if indexes == [0] {
        out.push(0);
        return;
    }
    let count = i64::try_from(indexes.len()).expect("a message path is short");
    write_zigzag(out, count);
    for &i in indexes {
        write_zigzag(out, i64::from(i));
    }
}

/// Reads a message-index path; returns it and the rest (the payload).
pub fn read_indexes(mut bytes: &[u8]) -> Result<(Vec<i32>, &[u8])> {
    let count = read_zigzag(&mut bytes)?;
    if count == 0 {
        return Ok((vec![0], bytes));
    }
    let count = usize::try_from(count)
        .ok()
        .filter(|c| *c <= MAX_MESSAGE_INDEXES)
        .ok_or_else(|| {
            SerdeError::Decode(format!(
                "message-index count {count} is outside 0..={MAX_MESSAGE_INDEXES}"
            ))
        })?;
    let mut indexes = Vec::with_capacity(count);
    for _ in 0..count {
        let i = read_zigzag(&mut bytes)?;
        indexes.push(
            i32::try_from(i)
                .map_err(|_| SerdeError::Decode(format!("message index {i} is out of range")))?,
        );
    }
    Ok((indexes, bytes))
}

fn write_zigzag(out: &mut Vec<u8>, v: i64) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push((u as u8 & 0x7f) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

fn read_zigzag(bytes: &mut &[u8]) -> Result<i64> {
    let mut u: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes
            .split_first()
            .ok_or_else(|| SerdeError::Decode("the message indexes are cut short".into()))?;
        *bytes = rest;
        u |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(((u >> 1) as i64) ^ -((u & 1) as i64));
        }
    }
    Err(SerdeError::Decode(
        "a message index is longer than 10 bytes".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_indexes_round_trip_in_confluents_encoding() {
        for (path, bytes) in [
            (vec![0], vec![0u8]),
            (vec![1], vec![2, 2]),
            (vec![0, 0], vec![4, 0, 0]),
            (vec![2, 70], vec![4, 4, 0x8c, 0x01]),
        ] {
            let mut out = Vec::new();
            write_indexes(&mut out, &path);
            assert_eq!(out, bytes, "{path:?}");
            out.extend_from_slice(b"payload");
            let (back, rest) = read_indexes(&out).unwrap();
            assert_eq!((back, rest), (path, &b"payload"[..]));
        }
        assert!(read_indexes(&[]).is_err());
        assert!(read_indexes(&[0x80]).is_err());
        // A count past the bound is refused before anything is allocated.
        assert!(read_indexes(&[0xfe, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(read_indexes(&[0xff; 11]).is_err());
    }
}
