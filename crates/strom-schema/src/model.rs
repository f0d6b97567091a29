//! The schema nouns the serdes share with the registry server: references between schemas.
//! (The server's own records, modes and compatibility levels stay in `strom-registry`.)

use serde::{Deserialize, Serialize};

/// A reference from one schema to another registered one (`name` is how the referring schema
/// names it: an Avro full name, a JSON `$ref` URL or a `.proto` import path).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SchemaReference {
    pub name: String,
    pub subject: String,
    pub version: i32,
}

/// A referenced schema: the name the referring schema uses for it (an Avro full name, a JSON
/// `$ref`, a `.proto` import path) and its text.
pub type NamedText = (String, String);
