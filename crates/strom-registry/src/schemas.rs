//! Type-specific schema handling behind one interface: validate a schema text (with the
//! texts of the schemas it references), give it a stable identity, and check compatibility
//! between two versions. Avro and JSON Schema are served; Protobuf is refused for now.

use crate::avro;
use crate::error::{RegistryError, Result};
use crate::json_schema;
use crate::model::SchemaType;

/// A schema that passed validation.
pub enum Parsed {
    Avro(avro::ParsedAvro),
    Json(json_schema::ParsedJson),
}

/// Validates `text` of `schema_type`; `references` are the referenced schema texts,
/// dependencies first.
pub fn parse(schema_type: SchemaType, text: &str, references: &[String]) -> Result<Parsed> {
    match schema_type {
        SchemaType::Avro => avro::parse(text, references)
            .map(Parsed::Avro)
            .map_err(|e| RegistryError::InvalidSchema(format!("{text}, details: {e}"))),
        SchemaType::Json => json_schema::parse(text)
            .map(Parsed::Json)
            .map_err(|e| RegistryError::InvalidSchema(format!("{text}, details: {e}"))),
        SchemaType::Protobuf => Err(RegistryError::UnsupportedSchemaType(
            schema_type.name().to_owned(),
        )),
    }
}

/// The text a schema is stored and served as: the submitted JSON without insignificant
/// whitespace (key order kept). With `normalize`, keys are also sorted, so schemas that
/// differ only in layout or key order are the same schema.
pub fn canonical_text(schema_type: SchemaType, text: &str, normalize: bool) -> Result<String> {
    match schema_type {
        SchemaType::Avro | SchemaType::Json => {
            let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                RegistryError::InvalidSchema(format!("{text}, details: not JSON: {e}"))
            })?;
            if normalize {
                Ok(value.to_string())
            } else {
                Ok(minify_json(text))
            }
        }
        SchemaType::Protobuf => Ok(text.to_owned()),
    }
}

/// Drops whitespace outside strings from valid JSON text.
fn minify_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Messages describing why data written with `writer` cannot be read with `reader`.
pub fn incompatibilities(writer: &Parsed, reader: &Parsed) -> Vec<String> {
    match (writer, reader) {
        (Parsed::Avro(w), Parsed::Avro(r)) => avro::incompatibilities(w, r),
        (Parsed::Json(w), Parsed::Json(r)) => json_schema::incompatibilities(w, r),
        _ => vec![
            "{errorType:'TYPE_MISMATCH', description:'the schema type changed', location:'/'}"
                .into(),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minify_keeps_strings() {
        assert_eq!(
            minify_json("{ \"type\" : \"record\", \"doc\": \"a b\\\" c\" }"),
            "{\"type\":\"record\",\"doc\":\"a b\\\" c\"}"
        );
    }
}
