//! The registry's nouns (schema types, compatibility levels, modes, references) and the
//! records of the `_schemas` topic, in the key/value JSON layout Confluent's registry uses so
//! the topic reads the same to either.

use serde::{Deserialize, Serialize};

use crate::error::{RegistryError, Result};

/// The format of a schema. Confluent omits `schemaType` for AVRO, its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    #[default]
    Avro,
    Json,
    Protobuf,
}

impl SchemaType {
    pub fn parse(s: &str) -> Result<SchemaType> {
        match s.to_ascii_uppercase().as_str() {
            "AVRO" => Ok(SchemaType::Avro),
            "JSON" => Ok(SchemaType::Json),
            "PROTOBUF" => Ok(SchemaType::Protobuf),
            _ => Err(RegistryError::InvalidSchema(format!(
                "unknown schema type '{s}'"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }

    pub fn is_avro(&self) -> bool {
        *self == SchemaType::Avro
    }
}

/// A compatibility level (Confluent's `compatibilityLevel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompatibilityLevel {
    None,
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl CompatibilityLevel {
    pub fn parse(s: &str) -> Result<CompatibilityLevel> {
        use CompatibilityLevel::*;
        Ok(match s.to_ascii_uppercase().as_str() {
            "NONE" => None,
            "BACKWARD" => Backward,
            "BACKWARD_TRANSITIVE" => BackwardTransitive,
            "FORWARD" => Forward,
            "FORWARD_TRANSITIVE" => ForwardTransitive,
            "FULL" => Full,
            "FULL_TRANSITIVE" => FullTransitive,
            _ => return Err(RegistryError::InvalidCompatibilityLevel),
        })
    }

    pub fn name(self) -> &'static str {
        use CompatibilityLevel::*;
        match self {
            None => "NONE",
            Backward => "BACKWARD",
            BackwardTransitive => "BACKWARD_TRANSITIVE",
            Forward => "FORWARD",
            ForwardTransitive => "FORWARD_TRANSITIVE",
            Full => "FULL",
            FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// (new schema must read old data, old schemas must read new data, against all versions)
    pub fn rules(self) -> (bool, bool, bool) {
        use CompatibilityLevel::*;
        match self {
            None => (false, false, false),
            Backward => (true, false, false),
            BackwardTransitive => (true, false, true),
            Forward => (false, true, false),
            ForwardTransitive => (false, true, true),
            Full => (true, true, false),
            FullTransitive => (true, true, true),
        }
    }
}

/// The registry's mode (Confluent's `/mode`): IMPORT lets writes choose ids and versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum Mode {
    #[default]
    Readwrite,
    Readonly,
    Import,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode> {
        match s.to_ascii_uppercase().as_str() {
            "READWRITE" => Ok(Mode::Readwrite),
            "READONLY" => Ok(Mode::Readonly),
            "IMPORT" => Ok(Mode::Import),
            _ => Err(RegistryError::InvalidMode),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Readwrite => "READWRITE",
            Mode::Readonly => "READONLY",
            Mode::Import => "IMPORT",
        }
    }
}

/// Schema references are shared with the serdes, so they live in `strom-schema`.
pub use strom_schema::model::SchemaReference;

/// Key of a `_schemas` record. Serialized with a fixed field order, so one logical key is
/// always the same bytes (compaction keeps the last record per key bytes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "keytype", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordKey {
    Schema {
        subject: String,
        version: i32,
        magic: i32,
    },
    Config {
        subject: Option<String>,
        magic: i32,
    },
    Mode {
        subject: Option<String>,
        magic: i32,
    },
    /// Written by a new primary and read back, to know it has read everything before it.
    Noop {
        magic: i32,
    },
    DeleteSubject {
        subject: String,
        magic: i32,
    },
    ClearSubject {
        subject: String,
        magic: i32,
    },
}

/// Value of a SCHEMA record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaValue {
    pub subject: String,
    pub version: i32,
    pub id: i32,
    #[serde(
        rename = "schemaType",
        default,
        skip_serializing_if = "SchemaType::is_avro"
    )]
    pub schema_type: SchemaType,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<SchemaReference>,
    pub schema: String,
    #[serde(default)]
    pub deleted: bool,
}

/// Value of a CONFIG record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigValue {
    #[serde(rename = "compatibilityLevel")]
    pub compatibility_level: CompatibilityLevel,
}

/// Value of a MODE record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeValue {
    pub mode: Mode,
}

/// Value of a DELETE_SUBJECT record: every version up to `version` is soft deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteSubjectValue {
    pub subject: String,
    pub version: i32,
}

/// One `_schemas` record, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreRecord {
    Schema {
        subject: String,
        version: i32,
        /// `None` is a tombstone: the version is permanently deleted.
        value: Option<SchemaValue>,
    },
    Config {
        subject: Option<String>,
        value: Option<ConfigValue>,
    },
    Mode {
        subject: Option<String>,
        value: Option<ModeValue>,
    },
    Noop,
    DeleteSubject(DeleteSubjectValue),
    /// Other records (e.g. CLEAR_SUBJECT tombstones) that change nothing here.
    Ignored,
}

impl StoreRecord {
    /// Decodes a record read from the topic; `Err` names what is wrong with it.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> std::result::Result<StoreRecord, String> {
        let key: RecordKey =
            serde_json::from_slice(key).map_err(|e| format!("bad _schemas key: {e}"))?;
        fn parse<T: serde::de::DeserializeOwned>(
            v: Option<&[u8]>,
        ) -> std::result::Result<Option<T>, String> {
            match v {
                None => Ok(None),
                Some(b) => serde_json::from_slice(b)
                    .map(Some)
                    .map_err(|e| format!("bad _schemas value: {e}")),
            }
        }
        Ok(match key {
            RecordKey::Schema {
                subject, version, ..
            } => StoreRecord::Schema {
                subject,
                version,
                value: parse(value)?,
            },
            RecordKey::Config { subject, .. } => StoreRecord::Config {
                subject,
                value: parse(value)?,
            },
            RecordKey::Mode { subject, .. } => StoreRecord::Mode {
                subject,
                value: parse(value)?,
            },
            RecordKey::Noop { .. } => StoreRecord::Noop,
            RecordKey::DeleteSubject { .. } => match parse(value)? {
                Some(v) => StoreRecord::DeleteSubject(v),
                None => StoreRecord::Ignored,
            },
            RecordKey::ClearSubject { .. } => StoreRecord::Ignored,
        })
    }

    /// Encodes the record as `_schemas` key and value bytes.
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        fn json<T: Serialize>(v: &T) -> Vec<u8> {
            serde_json::to_vec(v).expect("registry records always serialize")
        }
        match self {
            StoreRecord::Schema {
                subject,
                version,
                value,
            } => (
                json(&RecordKey::Schema {
                    subject: subject.clone(),
                    version: *version,
                    magic: 1,
                }),
                value.as_ref().map(json),
            ),
            StoreRecord::Config { subject, value } => (
                json(&RecordKey::Config {
                    subject: subject.clone(),
                    magic: 0,
                }),
                value.as_ref().map(json),
            ),
            StoreRecord::Mode { subject, value } => (
                json(&RecordKey::Mode {
                    subject: subject.clone(),
                    magic: 0,
                }),
                value.as_ref().map(json),
            ),
            StoreRecord::Noop => (json(&RecordKey::Noop { magic: 0 }), None),
            StoreRecord::DeleteSubject(v) => (
                json(&RecordKey::DeleteSubject {
                    subject: v.subject.clone(),
                    magic: 0,
                }),
                Some(json(v)),
            ),
            StoreRecord::Ignored => (json(&RecordKey::Noop { magic: 0 }), None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_use_confluents_layout() {
        let (k, v) = StoreRecord::Schema {
            subject: "orders-value".into(),
            version: 2,
            value: Some(SchemaValue {
                subject: "orders-value".into(),
                version: 2,
                id: 7,
                schema_type: SchemaType::Avro,
                references: vec![],
                schema: "\"string\"".into(),
                deleted: false,
            }),
        }
        .encode();
        assert_eq!(
            String::from_utf8(k).unwrap(),
            r#"{"keytype":"SCHEMA","subject":"orders-value","version":2,"magic":1}"#
        );
        assert_eq!(
            String::from_utf8(v.unwrap()).unwrap(),
            r#"{"subject":"orders-value","version":2,"id":7,"schema":"\"string\"","deleted":false}"#
        );
        let (k, _) = StoreRecord::Config {
            subject: None,
            value: None,
        }
        .encode();
        assert_eq!(
            String::from_utf8(k).unwrap(),
            r#"{"keytype":"CONFIG","subject":null,"magic":0}"#
        );
    }

    #[test]
    fn decodes_what_it_encodes() {
        let rec = StoreRecord::Mode {
            subject: Some("s".into()),
            value: Some(ModeValue {
                mode: Mode::Readonly,
            }),
        };
        let (k, v) = rec.encode();
        assert_eq!(StoreRecord::decode(&k, v.as_deref()).unwrap(), rec);
        assert!(StoreRecord::decode(b"{not json", None).is_err());
    }
}
