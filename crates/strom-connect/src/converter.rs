//! Converters between Kafka bytes and the Connect data model, under Kafka's class names:
//! String, ByteArray and JSON (with `schemas.enable`, Kafka's `{"schema", "payload"}`
//! envelope, or plain JSON without). Header values use Kafka's SimpleHeaderConverter text form.

use base64::Engine as _;
use serde_json::{json, Value as J};

use crate::config::{get_bool, Props};
use crate::data::{Field, Header, JsonMap, Schema, SchemaType, Struct, Value};
use crate::error::{ConnectError, Result};

pub const JSON_CONVERTER: &str = "org.apache.kafka.connect.json.JsonConverter";
pub const STRING_CONVERTER: &str = "org.apache.kafka.connect.storage.StringConverter";
pub const BYTE_ARRAY_CONVERTER: &str = "org.apache.kafka.connect.converters.ByteArrayConverter";
/// The one header converter: header values in their text form (`header_to_bytes`).
pub const SIMPLE_HEADER_CONVERTER: &str = "org.apache.kafka.connect.storage.SimpleHeaderConverter";

/// Checks a `header.converter` setting: only SimpleHeaderConverter's form is implemented.
pub fn check_header_converter(class: &str) -> Result<()> {
    match simple_name(class) {
        "SimpleHeaderConverter" => Ok(()),
        _ => Err(ConnectError::InvalidConfig(format!(
            "Invalid value {class} for configuration header.converter: Class {class} could not be found."
        ))),
    }
}

/// Turns Connect values into record bytes and back (Kafka's `Converter`).
// The names mirror Kafka's `fromConnectData` / `toConnectData`, which readers know.
#[allow(clippy::wrong_self_convention)]
pub trait Converter: Send + Sync {
    /// `None` is a null record key or value (a tombstone).
    fn from_connect(
        &self,
        topic: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>>;
    fn to_connect(&self, topic: &str, data: Option<&[u8]>) -> Result<(Option<Schema>, Value)>;
}

/// The converter classes this runtime has (for `/connector-plugins?connectorsOnly=false`).
pub const CONVERTER_CLASSES: [&str; 4] = [
    crate::avro_converter::AVRO_CONVERTER,
    BYTE_ARRAY_CONVERTER,
    JSON_CONVERTER,
    STRING_CONVERTER,
];

/// Builds a converter from its class name (full or simple) and its own configs (the worker's
/// or connector's `key.converter.*` / `value.converter.*` keys with the prefix removed).
pub fn converter_for(class: &str, props: &Props) -> Result<Box<dyn Converter>> {
    converter_for_role(class, props, false)
}

/// Like [`converter_for`], for record keys (`is_key`) or values: converters that name
/// things after it (the Avro converter's `<topic>-key` subjects) need to know.
pub fn converter_for_role(class: &str, props: &Props, is_key: bool) -> Result<Box<dyn Converter>> {
    match simple_name(class) {
        "AvroConverter" => Ok(Box::new(crate::avro_converter::AvroConverter::from_props(
            props, is_key,
        )?)),
        "JsonConverter" => Ok(Box::new(JsonConverter {
            schemas_enable: get_bool(props, "schemas.enable", true)?,
        })),
        "StringConverter" => Ok(Box::new(StringConverter)),
        "ByteArrayConverter" => Ok(Box::new(ByteArrayConverter)),
        _ => Err(ConnectError::InvalidConfig(format!(
            "Invalid value {class} for configuration converter: Class {class} could not be found."
        ))),
    }
}

fn simple_name(class: &str) -> &str {
    class.trim().rsplit('.').next().unwrap_or(class)
}

/// Kafka's `StringConverter`: values as their text, bytes as UTF-8 strings.
#[derive(Debug, Clone, Copy)]
pub struct StringConverter;

impl Converter for StringConverter {
    fn from_connect(&self, _: &str, _: Option<&Schema>, value: &Value) -> Result<Option<Vec<u8>>> {
        Ok(match value {
            Value::Null => None,
            v => Some(v.to_display().into_bytes()),
        })
    }

    fn to_connect(&self, _: &str, data: Option<&[u8]>) -> Result<(Option<Schema>, Value)> {
        let schema = Some(Schema::new(SchemaType::String).optional());
        Ok(match data {
            None => (schema, Value::Null),
            Some(b) => (
                schema,
                Value::String(String::from_utf8_lossy(b).into_owned()),
            ),
        })
    }
}

/// Kafka's `ByteArrayConverter`: bytes pass through unchanged.
#[derive(Debug, Clone, Copy)]
pub struct ByteArrayConverter;

impl Converter for ByteArrayConverter {
    fn from_connect(
        &self,
        _: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>> {
        if let Some(s) = schema {
            if s.schema_type != SchemaType::Bytes {
                return Err(ConnectError::Data(format!(
                    "Invalid schema type for ByteArrayConverter: {}",
                    s.schema_type.name().to_uppercase()
                )));
            }
        }
        match value {
            Value::Null => Ok(None),
            Value::Bytes(b) => Ok(Some(b.clone())),
            other => Err(ConnectError::Data(format!(
                "ByteArrayConverter is not compatible with objects of type {}",
                other.type_name()
            ))),
        }
    }

    fn to_connect(&self, _: &str, data: Option<&[u8]>) -> Result<(Option<Schema>, Value)> {
        let schema = Some(Schema::new(SchemaType::Bytes).optional());
        Ok(match data {
            None => (schema, Value::Null),
            Some(b) => (schema, Value::Bytes(b.to_vec())),
        })
    }
}

/// Kafka's `JsonConverter`.
#[derive(Debug, Clone, Copy)]
pub struct JsonConverter {
    pub schemas_enable: bool,
}

impl Converter for JsonConverter {
    fn from_connect(
        &self,
        _: &str,
        schema: Option<&Schema>,
        value: &Value,
    ) -> Result<Option<Vec<u8>>> {
        if schema.is_none() && value.is_null() {
            return Ok(None);
        }
        let doc = if self.schemas_enable {
            let payload = match schema {
                Some(s) => value_to_json(s, value)?,
                None => value.to_json(),
            };
            json!({ "schema": schema.map(schema_to_json), "payload": payload })
        } else {
            match schema {
                Some(s) => value_to_json(s, value)?,
                None => value.to_json(),
            }
        };
        Ok(Some(doc.to_string().into_bytes()))
    }

    fn to_connect(&self, _: &str, data: Option<&[u8]>) -> Result<(Option<Schema>, Value)> {
        let Some(bytes) = data else {
            return Ok((None, Value::Null));
        };
        let doc: J = serde_json::from_slice(bytes).map_err(|e| {
            ConnectError::Data(format!(
                "Converting byte[] to Kafka Connect data failed due to serialization error: {e}"
            ))
        })?;
        if !self.schemas_enable {
            return Ok((None, Value::from_json(&doc)));
        }
        let envelope = match &doc {
            J::Object(m) if m.len() == 2 && m.contains_key("schema") && m.contains_key("payload") => m,
            _ => {
                return Err(ConnectError::Data(
                    "JsonConverter with schemas.enable requires \"schema\" and \"payload\" fields and may not contain additional fields. If you are trying to deserialize plain JSON data, set schemas.enable=false in your converter configuration.".into(),
                ))
            }
        };
        match &envelope["schema"] {
            J::Null => Ok((None, Value::from_json(&envelope["payload"]))),
            s => {
                let schema = schema_from_json(s)?;
                let value = value_from_json(&schema, &envelope["payload"])?;
                Ok((Some(schema), value))
            }
        }
    }
}

/// Kafka's JSON form of a Connect schema (`JsonConverter.asJsonSchema`).
pub fn schema_to_json(s: &Schema) -> J {
    let mut m = JsonMap::new();
    m.insert("type".into(), J::from(s.schema_type.name()));
    match s.schema_type {
        SchemaType::Array => {
            if let Some(v) = &s.value_schema {
                m.insert("items".into(), schema_to_json(v));
            }
        }
        SchemaType::Map => {
            if let Some(k) = &s.key_schema {
                m.insert("keys".into(), schema_to_json(k));
            }
            if let Some(v) = &s.value_schema {
                m.insert("values".into(), schema_to_json(v));
            }
        }
        SchemaType::Struct => {
            let fields = s
                .fields
                .iter()
                .map(|f| {
                    let mut fj = schema_to_json(&f.schema);
                    if let J::Object(o) = &mut fj {
                        o.insert("field".into(), J::from(f.name.as_str()));
                    }
                    fj
                })
                .collect();
            m.insert("fields".into(), J::Array(fields));
        }
        _ => {}
    }
    m.insert("optional".into(), J::from(s.optional));
    if let Some(n) = &s.name {
        m.insert("name".into(), J::from(n.as_str()));
    }
    if let Some(v) = s.version {
        m.insert("version".into(), J::from(v));
    }
    if let Some(d) = &s.doc {
        m.insert("doc".into(), J::from(d.as_str()));
    }
    if !s.parameters.is_empty() {
        m.insert("parameters".into(), json!(s.parameters));
    }
    if let Some(d) = &s.default {
        if let Ok(j) = value_to_json(s, d) {
            m.insert("default".into(), j);
        }
    }
    J::Object(m)
}

fn bad_schema(msg: impl Into<String>) -> ConnectError {
    ConnectError::Data(msg.into())
}

/// Parses Kafka's JSON form of a schema (`JsonConverter.asConnectSchema`).
pub fn schema_from_json(j: &J) -> Result<Schema> {
    let obj = j
        .as_object()
        .ok_or_else(|| bad_schema("Schema must be a JSON object"))?;
    let type_name = obj
        .get("type")
        .and_then(J::as_str)
        .ok_or_else(|| bad_schema("Schema must contain 'type' field"))?;
    let schema_type = SchemaType::parse(type_name)
        .ok_or_else(|| bad_schema(format!("Unknown schema type: {type_name}")))?;
    let mut s = Schema::new(schema_type);
    match schema_type {
        SchemaType::Array => {
            let items = obj
                .get("items")
                .ok_or_else(|| bad_schema("Array schema did not specify the element type"))?;
            s.value_schema = Some(Box::new(schema_from_json(items)?));
        }
        SchemaType::Map => {
            let k = obj
                .get("keys")
                .ok_or_else(|| bad_schema("Map schema did not specify the key type"))?;
            let v = obj
                .get("values")
                .ok_or_else(|| bad_schema("Map schema did not specify the value type"))?;
            s.key_schema = Some(Box::new(schema_from_json(k)?));
            s.value_schema = Some(Box::new(schema_from_json(v)?));
        }
        SchemaType::Struct => {
            let fields = obj.get("fields").and_then(J::as_array).ok_or_else(|| {
                bad_schema("Struct schema's \"fields\" argument is not an array.")
            })?;
            for f in fields {
                let name = f.get("field").and_then(J::as_str).ok_or_else(|| {
                    bad_schema("Struct schema's field name not specified properly")
                })?;
                s.fields.push(Field {
                    name: name.to_owned(),
                    schema: schema_from_json(f)?,
                });
            }
        }
        _ => {}
    }
    s.optional = obj.get("optional").and_then(J::as_bool).unwrap_or(false);
    s.name = obj.get("name").and_then(J::as_str).map(str::to_owned);
    s.version = obj
        .get("version")
        .and_then(J::as_i64)
        .and_then(|v| i32::try_from(v).ok());
    s.doc = obj.get("doc").and_then(J::as_str).map(str::to_owned);
    if let Some(J::Object(p)) = obj.get("parameters") {
        for (k, v) in p {
            s.parameters.insert(
                k.clone(),
                v.as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string()),
            );
        }
    }
    if let Some(d) = obj.get("default") {
        if !d.is_null() {
            let dv = value_from_json(&s, d)?;
            s.default = Some(Box::new(dv));
        }
    }
    Ok(s)
}

/// A value as JSON following its schema (Kafka's `convertToJson`).
pub fn value_to_json(schema: &Schema, value: &Value) -> Result<J> {
    if value.is_null() {
        if let Some(d) = &schema.default {
            return value_to_json(schema, d);
        }
        if schema.optional {
            return Ok(J::Null);
        }
        return Err(ConnectError::Data(
            "Conversion error: null value for field that is required and has no default value"
                .into(),
        ));
    }
    schema.validate(value)?;
    Ok(match (schema.schema_type, value) {
        (SchemaType::Map, Value::Map(entries)) => {
            let string_keys = schema
                .key_schema
                .as_ref()
                .is_some_and(|k| k.schema_type == SchemaType::String);
            let vs = schema.value_schema.as_deref();
            if string_keys {
                let mut m = JsonMap::new();
                for (k, v) in entries {
                    let key = k.as_str().unwrap_or_default().to_owned();
                    m.insert(key, opt_to_json(vs, v)?);
                }
                J::Object(m)
            } else {
                let ks = schema.key_schema.as_deref();
                let mut pairs = Vec::with_capacity(entries.len());
                for (k, v) in entries {
                    pairs.push(J::Array(vec![opt_to_json(ks, k)?, opt_to_json(vs, v)?]));
                }
                J::Array(pairs)
            }
        }
        (SchemaType::Array, Value::Array(items)) => {
            let vs = schema.value_schema.as_deref();
            J::Array(
                items
                    .iter()
                    .map(|v| opt_to_json(vs, v))
                    .collect::<Result<_>>()?,
            )
        }
        (SchemaType::Struct, Value::Struct(st)) => {
            let mut m = JsonMap::new();
            for (f, v) in st.schema.fields.iter().zip(&st.values) {
                m.insert(f.name.clone(), value_to_json(&f.schema, v)?);
            }
            J::Object(m)
        }
        (_, v) => v.to_json(),
    })
}

fn opt_to_json(schema: Option<&Schema>, v: &Value) -> Result<J> {
    match schema {
        Some(s) => value_to_json(s, v),
        None => Ok(v.to_json()),
    }
}

fn mismatch(schema: &Schema, j: &J) -> ConnectError {
    ConnectError::Data(format!(
        "Invalid type for {}: {}",
        schema.schema_type.name().to_uppercase(),
        json_type(j)
    ))
}

fn json_type(j: &J) -> &'static str {
    match j {
        J::Null => "NULL",
        J::Bool(_) => "BOOLEAN",
        J::Number(_) => "NUMBER",
        J::String(_) => "STRING",
        J::Array(_) => "ARRAY",
        J::Object(_) => "OBJECT",
    }
}

/// A JSON value read with its schema (Kafka's `convertToConnect`).
pub fn value_from_json(schema: &Schema, j: &J) -> Result<Value> {
    if j.is_null() {
        if let Some(d) = &schema.default {
            return Ok((**d).clone());
        }
        if schema.optional {
            return Ok(Value::Null);
        }
        return Err(ConnectError::Data(format!(
            "Invalid null value for required {} field",
            schema.schema_type.name().to_uppercase()
        )));
    }
    let int = |j: &J| j.as_i64().ok_or_else(|| mismatch(schema, j));
    let float = |j: &J| j.as_f64().ok_or_else(|| mismatch(schema, j));
    let out_of_range = || mismatch(schema, j);
    Ok(match schema.schema_type {
        SchemaType::Int8 => Value::Int8(i8::try_from(int(j)?).map_err(|_| out_of_range())?),
        SchemaType::Int16 => Value::Int16(i16::try_from(int(j)?).map_err(|_| out_of_range())?),
        SchemaType::Int32 => Value::Int32(i32::try_from(int(j)?).map_err(|_| out_of_range())?),
        SchemaType::Int64 => Value::Int64(int(j)?),
        SchemaType::Float32 => Value::Float32(float(j)? as f32),
        SchemaType::Float64 => Value::Float64(float(j)?),
        SchemaType::Boolean => Value::Boolean(j.as_bool().ok_or_else(|| mismatch(schema, j))?),
        SchemaType::String => {
            Value::String(j.as_str().ok_or_else(|| mismatch(schema, j))?.to_owned())
        }
        SchemaType::Bytes => {
            let s = j.as_str().ok_or_else(|| mismatch(schema, j))?;
            Value::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| ConnectError::Data(format!("Invalid bytes field: {e}")))?,
            )
        }
        SchemaType::Array => {
            let items = j.as_array().ok_or_else(|| mismatch(schema, j))?;
            let vs = schema
                .value_schema
                .as_deref()
                .ok_or_else(|| bad_schema("Array schema did not specify the element type"))?;
            Value::Array(
                items
                    .iter()
                    .map(|i| value_from_json(vs, i))
                    .collect::<Result<_>>()?,
            )
        }
        SchemaType::Map => map_from_json(schema, j)?,
        SchemaType::Struct => {
            let obj = j.as_object().ok_or_else(|| mismatch(schema, j))?;
            let mut st = Struct::new(schema.clone());
            for (i, f) in schema.fields.iter().enumerate() {
                st.values[i] = value_from_json(&f.schema, obj.get(&f.name).unwrap_or(&J::Null))?;
            }
            Value::Struct(st)
        }
    })
}

fn map_from_json(schema: &Schema, j: &J) -> Result<Value> {
    let (Some(ks), Some(vs)) = (schema.key_schema.as_deref(), schema.value_schema.as_deref())
    else {
        return Err(bad_schema(
            "Map schema did not specify the key and value types",
        ));
    };
    let mut entries = Vec::new();
    match j {
        J::Object(m) if ks.schema_type == SchemaType::String => {
            for (k, v) in m {
                entries.push((Value::String(k.clone()), value_from_json(vs, v)?));
            }
        }
        J::Array(pairs) => {
            for p in pairs {
                match p.as_array().map(Vec::as_slice) {
                    Some([k, v]) => {
                        entries.push((value_from_json(ks, k)?, value_from_json(vs, v)?))
                    }
                    _ => {
                        return Err(ConnectError::Data(
                            "Found invalid map entry instead of array tuple".into(),
                        ))
                    }
                }
            }
        }
        other => return Err(mismatch(schema, other)),
    }
    Ok(Value::Map(entries))
}

/// A header value as bytes (SimpleHeaderConverter's text form: strings as they are, other
/// values as their JSON or display text; null stays null).
pub fn header_to_bytes(h: &Header) -> Option<Vec<u8>> {
    match &h.value {
        Value::Null => None,
        Value::Bytes(b) => Some(b.clone()),
        Value::Array(_) | Value::Map(_) | Value::Struct(_) => {
            Some(h.value.to_json().to_string().into_bytes())
        }
        v => Some(v.to_display().into_bytes()),
    }
}

/// A header read from Kafka: UTF-8 text becomes a string, anything else stays bytes.
pub fn header_from_bytes(key: &str, data: Option<&[u8]>) -> Header {
    let (schema, value) = match data {
        None => (None, Value::Null),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => (
                Some(Schema::new(SchemaType::String).optional()),
                Value::String(s.to_owned()),
            ),
            Err(_) => (
                Some(Schema::new(SchemaType::Bytes).optional()),
                Value::Bytes(b.to_vec()),
            ),
        },
    };
    Header {
        key: key.to_owned(),
        schema,
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person() -> (Schema, Value) {
        let schema = Schema::structure(vec![])
            .with_field("id", Schema::new(SchemaType::Int32))
            .with_field("name", Schema::new(SchemaType::String).optional())
            .with_field(
                "tags",
                Schema::map(
                    Schema::new(SchemaType::String),
                    Schema::new(SchemaType::Int64),
                ),
            )
            .named("Person");
        let mut st = Struct::new(schema.clone());
        st.put("id", Value::Int32(1)).unwrap();
        st.put("name", Value::String("ann".into())).unwrap();
        st.put(
            "tags",
            Value::Map(vec![(Value::String("a".into()), Value::Int64(2))]),
        )
        .unwrap();
        (schema, Value::Struct(st))
    }

    #[test]
    fn json_envelope_round_trips_a_struct() {
        let c = JsonConverter {
            schemas_enable: true,
        };
        let (schema, value) = person();
        let bytes = c.from_connect("t", Some(&schema), &value).unwrap().unwrap();
        let doc: J = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            doc,
            json!({
                "schema": {"type": "struct", "optional": false, "name": "Person", "fields": [
                    {"type": "int32", "optional": false, "field": "id"},
                    {"type": "string", "optional": true, "field": "name"},
                    {"type": "map", "optional": false, "field": "tags",
                     "keys": {"type": "string", "optional": false},
                     "values": {"type": "int64", "optional": false}}
                ]},
                "payload": {"id": 1, "name": "ann", "tags": {"a": 2}}
            })
        );
        let (s2, v2) = c.to_connect("t", Some(&bytes)).unwrap();
        assert_eq!(s2.as_ref(), Some(&schema));
        assert_eq!(v2, value);
    }

    #[test]
    fn json_without_schemas_is_plain() {
        let c = JsonConverter {
            schemas_enable: false,
        };
        let (schema, value) = person();
        let bytes = c.from_connect("t", Some(&schema), &value).unwrap().unwrap();
        assert_eq!(
            serde_json::from_slice::<J>(&bytes).unwrap(),
            json!({"id": 1, "name": "ann", "tags": {"a": 2}})
        );
        let (s, v) = c.to_connect("t", Some(br#"{"a": 1}"#)).unwrap();
        assert!(s.is_none());
        assert_eq!(v.map_get("a"), Some(&Value::Int64(1)));
        assert_eq!(c.to_connect("t", None).unwrap(), (None, Value::Null));
    }

    #[test]
    fn json_envelope_errors_are_kafkas() {
        let c = JsonConverter {
            schemas_enable: true,
        };
        let e = c.to_connect("t", Some(br#"{"a": 1}"#)).unwrap_err();
        assert!(e
            .to_string()
            .contains("requires \"schema\" and \"payload\""));
        let e = c.to_connect("t", Some(b"not json")).unwrap_err();
        assert!(e.to_string().contains("serialization error"));
        let e = c
            .to_connect("t", Some(br#"{"schema":{"type":"int32"},"payload":"x"}"#))
            .unwrap_err();
        assert_eq!(e.to_string(), "Invalid type for INT32: STRING");
    }

    #[test]
    fn string_and_bytes_converters() {
        let s = converter_for(STRING_CONVERTER, &Props::new()).unwrap();
        assert_eq!(
            s.from_connect("t", None, &Value::Int32(5)).unwrap(),
            Some(b"5".to_vec())
        );
        assert_eq!(
            s.to_connect("t", Some(b"hi")).unwrap().1,
            Value::String("hi".into())
        );
        let b = converter_for("ByteArrayConverter", &Props::new()).unwrap();
        assert_eq!(
            b.from_connect("t", None, &Value::Bytes(vec![1, 2]))
                .unwrap(),
            Some(vec![1, 2])
        );
        assert!(b
            .from_connect(
                "t",
                Some(&Schema::new(SchemaType::String)),
                &Value::String("x".into())
            )
            .is_err());
        assert!(converter_for("com.example.Nope", &Props::new()).is_err());
        assert!(check_header_converter(SIMPLE_HEADER_CONVERTER).is_ok());
        assert!(check_header_converter("JsonConverter").is_err());
    }
}
