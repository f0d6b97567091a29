//! Type-specific schema handling behind one interface: validate a schema text (with the
//! texts of the schemas it references), give it a stable identity, and check compatibility
//! between two versions, for Avro, JSON Schema and Protobuf.

use crate::avro;
use crate::error::{RegistryError, Result};
use crate::json_schema;
use crate::model::SchemaType;
use crate::protobuf;

/// A schema that passed validation.
pub enum Parsed {
    Avro(avro::ParsedAvro),
    Json(json_schema::ParsedJson),
    Protobuf(protobuf::ParsedProto),
}

/// A referenced schema and its name (shared with the serdes, defined in `strom-schema`).
pub use strom_schema::model::NamedText;

/// Validates `text` of `schema_type`; `references` are the referenced schemas (and theirs),
/// dependencies first.
pub fn parse(schema_type: SchemaType, text: &str, references: &[NamedText]) -> Result<Parsed> {
    let texts = || {
        references
            .iter()
            .map(|(_, t)| t.clone())
            .collect::<Vec<_>>()
    };
    let invalid = |e: String| RegistryError::InvalidSchema(format!("{text}, details: {e}"));
    match schema_type {
        SchemaType::Avro => avro::parse(text, &texts())
            .map(Parsed::Avro)
            .map_err(invalid),
        SchemaType::Json => json_schema::parse_with_references(text, references)
            .map(Parsed::Json)
            .map_err(invalid),
        SchemaType::Protobuf => protobuf::parse(text, references)
            .map(Parsed::Protobuf)
            .map_err(invalid),
    }
}

/// The text a schema is stored and served as: the submitted JSON without insignificant
/// whitespace (key order kept). With `normalize`, keys are also sorted, so schemas that
/// differ only in layout or key order are the same schema. Protobuf `.proto` text is kept as
/// given; a descriptor (base64) and, with `normalize`, any Protobuf schema become the
/// compiled file printed back as `.proto` text (layout and comments gone), as Confluent
/// serves them, or the base64 descriptor when the printed text would not compile back to
/// the same descriptor.
pub fn canonical_text(
    parsed: &Parsed,
    text: &str,
    normalize: bool,
    references: &[NamedText],
) -> Result<String> {
    match parsed {
        Parsed::Protobuf(p) if normalize || protobuf::is_descriptor(text) => {
            Ok(protobuf::proto_text(p, references).unwrap_or_else(|| {
                if normalize {
                    protobuf::serialized(p)
                } else {
                    text.to_owned()
                }
            }))
        }
        Parsed::Protobuf(_) => Ok(text.to_owned()),
        Parsed::Avro(_) | Parsed::Json(_) => {
            let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                RegistryError::InvalidSchema(format!("{text}, details: not JSON: {e}"))
            })?;
            if normalize {
                Ok(value.to_string())
            } else {
                Ok(minify_json(text))
            }
        }
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
        (Parsed::Protobuf(w), Parsed::Protobuf(r)) => protobuf::incompatibilities(w, r),
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
