//! Decoding of Confluent-framed values (magic byte 0, a 4-byte schema id, the payload) for
//! the message browser, through the Schema Registry: the schema's type is read once per id,
//! then strom-schema's Avro, JSON Schema or Protobuf deserializer (which cache the parsed
//! schemas) turns the value into JSON.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use strom_schema::serde::{
    AvroDeserializer, JsonSchemaDeserializer, ProtobufDeserializer, RegistryClient,
};

pub struct Decoders {
    client: Arc<RegistryClient>,
    avro: AvroDeserializer,
    json: JsonSchemaDeserializer,
    protobuf: ProtobufDeserializer,
    types: Mutex<HashMap<i32, String>>,
}

impl Decoders {
    pub fn new(url: &str) -> Decoders {
        let client = RegistryClient::new(url);
        Decoders {
            avro: AvroDeserializer::new(client.clone()),
            json: JsonSchemaDeserializer::new(client.clone()),
            protobuf: ProtobufDeserializer::new(client.clone()),
            client,
            types: Mutex::new(HashMap::new()),
        }
    }

    /// The value as JSON and its schema type, or why it could not be decoded.
    pub async fn decode(&self, schema_id: i32, bytes: &[u8]) -> Result<(Value, String), String> {
        let known = self
            .types
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&schema_id)
            .cloned();
        let ty = match known {
            Some(t) => t,
            None => {
                let (t, _) = self
                    .client
                    .schema_text_by_id(schema_id)
                    .await
                    .map_err(|e| e.to_string())?;
                self.types
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(schema_id, t.clone());
                t
            }
        };
        let v = match ty.as_str() {
            "JSON" => self.json.deserialize_json(bytes).await,
            "PROTOBUF" => self.protobuf.deserialize_json(bytes).await,
            _ => self.avro.deserialize_json(bytes).await,
        }
        .map_err(|e| e.to_string())?;
        Ok((v, ty))
    }
}
