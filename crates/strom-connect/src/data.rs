//! The Connect data model (Kafka Connect's `org.apache.kafka.connect.data`): schemas, typed
//! values and structs, and the records that converters, transforms and tasks exchange.
//! Logical types (Decimal, Date, Time, Timestamp) are schemas with their Kafka names over the
//! primitive they are stored as; their values stay in that primitive.

use std::collections::BTreeMap;

use crate::error::{ConnectError, Result};

/// A source partition or source offset: a JSON object, as Kafka Connect stores them.
pub type JsonMap = serde_json::Map<String, serde_json::Value>;

/// Kafka Connect's `Schema.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaType {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
    Bytes,
    Array,
    Map,
    Struct,
}

impl SchemaType {
    /// The lowercase name Kafka uses in the JSON envelope and in configs (`int32`, `struct`).
    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Int8 => "int8",
            SchemaType::Int16 => "int16",
            SchemaType::Int32 => "int32",
            SchemaType::Int64 => "int64",
            SchemaType::Float32 => "float32",
            SchemaType::Float64 => "float64",
            SchemaType::Boolean => "boolean",
            SchemaType::String => "string",
            SchemaType::Bytes => "bytes",
            SchemaType::Array => "array",
            SchemaType::Map => "map",
            SchemaType::Struct => "struct",
        }
    }

    pub fn parse(s: &str) -> Option<SchemaType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "int8" => SchemaType::Int8,
            "int16" => SchemaType::Int16,
            "int32" => SchemaType::Int32,
            "int64" => SchemaType::Int64,
            "float32" => SchemaType::Float32,
            "float64" => SchemaType::Float64,
            "boolean" => SchemaType::Boolean,
            "string" => SchemaType::String,
            "bytes" => SchemaType::Bytes,
            "array" => SchemaType::Array,
            "map" => SchemaType::Map,
            "struct" => SchemaType::Struct,
            _ => return None,
        })
    }

    pub fn is_primitive(self) -> bool {
        !matches!(
            self,
            SchemaType::Array | SchemaType::Map | SchemaType::Struct
        )
    }
}

/// Kafka's logical type names.
pub const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
pub const DATE: &str = "org.apache.kafka.connect.data.Date";
pub const TIME: &str = "org.apache.kafka.connect.data.Time";
pub const TIMESTAMP: &str = "org.apache.kafka.connect.data.Timestamp";

/// A field of a struct schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub schema: Schema,
}

/// A Connect schema. Invariant: `fields` is empty unless `schema_type` is Struct;
/// `key_schema` is set only for Map and `value_schema` only for Map and Array.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub schema_type: SchemaType,
    pub optional: bool,
    pub default: Option<Box<Value>>,
    pub name: Option<String>,
    pub version: Option<i32>,
    pub doc: Option<String>,
    pub parameters: BTreeMap<String, String>,
    pub fields: Vec<Field>,
    pub key_schema: Option<Box<Schema>>,
    pub value_schema: Option<Box<Schema>>,
}

impl Schema {
    pub fn new(schema_type: SchemaType) -> Schema {
        Schema {
            schema_type,
            optional: false,
            default: None,
            name: None,
            version: None,
            doc: None,
            parameters: BTreeMap::new(),
            fields: Vec::new(),
            key_schema: None,
            value_schema: None,
        }
    }

    pub fn optional(mut self) -> Schema {
        self.optional = true;
        self
    }

    pub fn named(mut self, name: &str) -> Schema {
        self.name = Some(name.to_owned());
        self
    }

    pub fn array(items: Schema) -> Schema {
        let mut s = Schema::new(SchemaType::Array);
        s.value_schema = Some(Box::new(items));
        s
    }

    pub fn map(key: Schema, value: Schema) -> Schema {
        let mut s = Schema::new(SchemaType::Map);
        s.key_schema = Some(Box::new(key));
        s.value_schema = Some(Box::new(value));
        s
    }

    pub fn structure(fields: Vec<Field>) -> Schema {
        let mut s = Schema::new(SchemaType::Struct);
        s.fields = fields;
        s
    }

    pub fn with_field(mut self, name: &str, schema: Schema) -> Schema {
        self.fields.push(Field {
            name: name.to_owned(),
            schema,
        });
        self
    }

    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    /// Is this one of Kafka's logical types (by name)?
    pub fn logical(&self) -> Option<&str> {
        match self.name.as_deref() {
            Some(n @ (DECIMAL | DATE | TIME | TIMESTAMP)) => Some(n),
            _ => None,
        }
    }

    /// Checks that `value` fits this schema (Kafka's `ConnectSchema.validateValue`).
    pub fn validate(&self, value: &Value) -> Result<()> {
        let ok = match (self.schema_type, value) {
            (_, Value::Null) => self.optional || self.default.is_some(),
            (SchemaType::Int8, Value::Int8(_))
            | (SchemaType::Int16, Value::Int16(_))
            | (SchemaType::Int32, Value::Int32(_))
            | (SchemaType::Int64, Value::Int64(_))
            | (SchemaType::Float32, Value::Float32(_))
            | (SchemaType::Float64, Value::Float64(_))
            | (SchemaType::Boolean, Value::Boolean(_))
            | (SchemaType::String, Value::String(_))
            | (SchemaType::Bytes, Value::Bytes(_)) => true,
            (SchemaType::Array, Value::Array(items)) => {
                if let Some(vs) = &self.value_schema {
                    for v in items {
                        vs.validate(v)?;
                    }
                }
                true
            }
            (SchemaType::Map, Value::Map(entries)) => {
                for (k, v) in entries {
                    if let Some(ks) = &self.key_schema {
                        ks.validate(k)?;
                    }
                    if let Some(vs) = &self.value_schema {
                        vs.validate(v)?;
                    }
                }
                true
            }
            (SchemaType::Struct, Value::Struct(s)) => s.schema == *self,
            _ => false,
        };
        if ok {
            Ok(())
        } else {
            Err(ConnectError::Data(format!(
                "Invalid Java object for schema with type {}: {}",
                self.schema_type.name().to_uppercase(),
                value.type_name()
            )))
        }
    }
}

/// A Connect value. Schemaless maps use `Map` with `String` keys; schemaless JSON numbers are
/// `Int64` or `Float64`, as Kafka's JsonConverter gives them.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    Boolean(bool),
    String(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Struct(Struct),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int8(_) => "int8",
            Value::Int16(_) => "int16",
            Value::Int32(_) => "int32",
            Value::Int64(_) => "int64",
            Value::Float32(_) => "float32",
            Value::Float64(_) => "float64",
            Value::Boolean(_) => "boolean",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Struct(_) => "struct",
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value of key `name` in a schemaless map with string keys.
    pub fn map_get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(name))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Any integer value widened to i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int8(v) => Some(v.into()),
            Value::Int16(v) => Some(v.into()),
            Value::Int32(v) => Some(v.into()),
            Value::Int64(v) => Some(v),
            _ => None,
        }
    }

    /// A schemaless JSON rendering (bytes as base64, as Kafka's JsonConverter writes them).
    pub fn to_json(&self) -> serde_json::Value {
        use base64::Engine as _;
        use serde_json::Value as J;
        match self {
            Value::Null => J::Null,
            Value::Int8(v) => J::from(*v),
            Value::Int16(v) => J::from(*v),
            Value::Int32(v) => J::from(*v),
            Value::Int64(v) => J::from(*v),
            Value::Float32(v) => J::from(*v as f64),
            Value::Float64(v) => J::from(*v),
            Value::Boolean(v) => J::from(*v),
            Value::String(v) => J::from(v.as_str()),
            Value::Bytes(v) => J::from(base64::engine::general_purpose::STANDARD.encode(v)),
            Value::Array(items) => J::Array(items.iter().map(Value::to_json).collect()),
            Value::Map(entries) => {
                if entries.iter().all(|(k, _)| matches!(k, Value::String(_))) {
                    let mut m = JsonMap::new();
                    for (k, v) in entries {
                        if let Value::String(k) = k {
                            m.insert(k.clone(), v.to_json());
                        }
                    }
                    J::Object(m)
                } else {
                    // Kafka writes maps with non-string keys as arrays of [key, value] pairs.
                    J::Array(
                        entries
                            .iter()
                            .map(|(k, v)| J::Array(vec![k.to_json(), v.to_json()]))
                            .collect(),
                    )
                }
            }
            Value::Struct(s) => {
                let mut m = JsonMap::new();
                for (f, v) in s.schema.fields.iter().zip(&s.values) {
                    m.insert(f.name.clone(), v.to_json());
                }
                J::Object(m)
            }
        }
    }

    /// The schemaless value of a JSON document (objects become string-keyed maps).
    pub fn from_json(j: &serde_json::Value) -> Value {
        use serde_json::Value as J;
        match j {
            J::Null => Value::Null,
            J::Bool(b) => Value::Boolean(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int64(i),
                None => Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
            },
            J::String(s) => Value::String(s.clone()),
            J::Array(items) => Value::Array(items.iter().map(Value::from_json).collect()),
            J::Object(m) => Value::Map(
                m.iter()
                    .map(|(k, v)| (Value::String(k.clone()), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// A display form used where Kafka calls `toString` (file sink lines, header text).
    pub fn to_display(&self) -> String {
        match self {
            Value::Null => "null".to_owned(),
            Value::String(s) => s.clone(),
            Value::Int8(v) => v.to_string(),
            Value::Int16(v) => v.to_string(),
            Value::Int32(v) => v.to_string(),
            Value::Int64(v) => v.to_string(),
            Value::Float32(v) => v.to_string(),
            Value::Float64(v) => v.to_string(),
            Value::Boolean(v) => v.to_string(),
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            Value::Struct(s) => {
                let fields: Vec<String> = s
                    .schema
                    .fields
                    .iter()
                    .zip(&s.values)
                    .map(|(f, v)| format!("{}={}", f.name, v.to_display()))
                    .collect();
                format!("Struct{{{}}}", fields.join(","))
            }
            other => other.to_json().to_string(),
        }
    }
}

/// A struct value: its schema and one value per field, in field order.
#[derive(Debug, Clone, PartialEq)]
pub struct Struct {
    pub schema: Schema,
    pub values: Vec<Value>,
}

impl Struct {
    /// A struct with every field null (callers `put` the values).
    pub fn new(schema: Schema) -> Struct {
        let values = vec![Value::Null; schema.fields.len()];
        Struct { schema, values }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.schema.field_index(name).map(|i| &self.values[i])
    }

    pub fn put(&mut self, name: &str, value: Value) -> Result<()> {
        let i = self
            .schema
            .field_index(name)
            .ok_or_else(|| ConnectError::Data(format!("{name} is not a valid field name")))?;
        self.schema.fields[i].schema.validate(&value)?;
        self.values[i] = value;
        Ok(())
    }
}

/// A record header: a key and a value with an optional schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub key: String,
    pub schema: Option<Schema>,
    pub value: Value,
}

/// What transforms see: Kafka's `ConnectRecord` (topic, partition, key and value with their
/// schemas, timestamp, headers).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub topic: String,
    pub kafka_partition: Option<i32>,
    pub key_schema: Option<Schema>,
    pub key: Value,
    pub value_schema: Option<Schema>,
    pub value: Value,
    pub timestamp: Option<i64>,
    pub headers: Vec<Header>,
}

impl Record {
    pub fn new(topic: &str, value_schema: Option<Schema>, value: Value) -> Record {
        Record {
            topic: topic.to_owned(),
            kafka_partition: None,
            key_schema: None,
            key: Value::Null,
            value_schema,
            value,
            timestamp: None,
            headers: Vec::new(),
        }
    }
}

/// A record a source task produced, with where it came from (Kafka's `SourceRecord`).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub source_partition: JsonMap,
    pub source_offset: JsonMap,
    pub record: Record,
}

/// A record read from Kafka for a sink task (Kafka's `SinkRecord`).
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRecord {
    pub record: Record,
    pub kafka_offset: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_put_checks_the_field_schema() {
        let schema = Schema::structure(vec![])
            .with_field("id", Schema::new(SchemaType::Int32))
            .with_field("name", Schema::new(SchemaType::String).optional());
        let mut s = Struct::new(schema);
        s.put("id", Value::Int32(7)).unwrap();
        assert_eq!(s.get("id"), Some(&Value::Int32(7)));
        assert!(s.put("id", Value::String("x".into())).is_err());
        assert!(s.put("missing", Value::Null).is_err());
        assert_eq!(
            Value::Struct(s.clone()).to_json(),
            serde_json::json!({"id": 7, "name": null})
        );
        assert_eq!(Value::Struct(s).to_display(), "Struct{id=7,name=null}");
    }

    #[test]
    fn json_round_trips_schemaless() {
        let j = serde_json::json!({"a": [1, 2.5, "x", null, true], "b": {"c": 1}});
        assert_eq!(Value::from_json(&j).to_json(), j);
    }
}
