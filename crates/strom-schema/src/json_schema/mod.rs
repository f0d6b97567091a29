//! JSON Schema: validation of the schema document (an object or a boolean, with well-formed
//! keywords), of values against it (with the `jsonschema` crate, `$ref`s to referenced
//! schemas resolved by their reference names), and compatibility with Confluent's rules (in
//! [`diff`]).

use std::collections::HashMap;
use std::sync::Arc;

use jsonschema::{Draft, Retrieve, Uri};
use serde_json::Value;

mod diff;

/// A parsed JSON Schema document.
pub struct ParsedJson {
    pub root: Value,
}

const TYPES: [&str; 7] = [
    "null", "boolean", "object", "array", "number", "string", "integer",
];

/// Parses and checks the document's shape.
pub fn parse(text: &str) -> Result<ParsedJson, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let nodes = count_nodes(&root, MAX_SCHEMA_NODES + 1);
    if nodes > MAX_SCHEMA_NODES {
        return Err(format!(
            "the schema has more than {MAX_SCHEMA_NODES} JSON values; this registry compares \
             schemas up to that size"
        ));
    }
    check_shape(&root, "#")?;
    Ok(ParsedJson { root })
}

/// Bound on a JSON schema's size (JSON values), which bounds the compatibility check's work.
pub const MAX_SCHEMA_NODES: usize = 50_000;

/// The number of JSON values in `v`, counting no further than `limit`.
pub(crate) fn count_nodes(v: &Value, limit: usize) -> usize {
    let mut count = 0;
    let mut stack = vec![v];
    while let Some(x) = stack.pop() {
        count += 1;
        if count >= limit {
            return count;
        }
        match x {
            Value::Array(a) => stack.extend(a.iter()),
            Value::Object(o) => stack.extend(o.values()),
            _ => {}
        }
    }
    count
}

fn check_shape(schema: &Value, path: &str) -> Result<(), String> {
    let obj = match schema {
        Value::Bool(_) => return Ok(()),
        Value::Object(o) => o,
        _ => return Err(format!("{path}: a schema is an object or a boolean")),
    };
    if let Some(t) = obj.get("type") {
        let names: Vec<&Value> = match t {
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for n in names {
            match n.as_str() {
                Some(s) if TYPES.contains(&s) => {}
                _ => return Err(format!("{path}/type: unknown type {n}")),
            }
        }
    }
    if let Some(p) = obj.get("properties") {
        let p = p
            .as_object()
            .ok_or_else(|| format!("{path}/properties: must be an object"))?;
        for (k, v) in p {
            check_shape(v, &format!("{path}/properties/{k}"))?;
        }
    }
    if let Some(r) = obj.get("required") {
        if !r.as_array().is_some_and(|a| a.iter().all(Value::is_string)) {
            return Err(format!("{path}/required: must be an array of strings"));
        }
    }
    if let Some(e) = obj.get("enum") {
        if !e.is_array() {
            return Err(format!("{path}/enum: must be an array"));
        }
    }
    for key in ["items", "additionalProperties", "not"] {
        if let Some(v) = obj.get(key) {
            if !v.is_array() {
                check_shape(v, &format!("{path}/{key}"))?;
            }
        }
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(v) = obj.get(key) {
            let a = v
                .as_array()
                .ok_or_else(|| format!("{path}/{key}: must be an array"))?;
            for (i, s) in a.iter().enumerate() {
                check_shape(s, &format!("{path}/{key}/{i}"))?;
            }
        }
    }
    for key in [
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
    ] {
        if let Some(v) = obj.get(key) {
            if !v.is_number() && !v.is_boolean() {
                return Err(format!("{path}/{key}: must be a number"));
            }
        }
    }
    Ok(())
}

/// A schema compiled for validating values, `$ref`s to its references resolved.
#[derive(Clone)]
pub struct JsonValidator {
    inner: Arc<jsonschema::Validator>,
}

/// At most this many violations are named in one error.
const MAX_REPORTED_ERRORS: usize = 5;

impl JsonValidator {
    /// Compiles `root`; `references` are (reference name, schema text) pairs, the names the
    /// schema's `$ref`s use (Confluent's `references[].name`). A schema without `$schema` is
    /// read as draft 7, the draft Confluent's JSON Schema support assumes. Fails on a schema
    /// the draft's meta-schema rejects and on a `$ref` that names no reference (nothing is
    /// fetched over the network or from files).
    pub fn new(root: &Value, references: &[(String, String)]) -> Result<JsonValidator, String> {
        let mut docs = HashMap::new();
        for (name, text) in references {
            let doc: Value = serde_json::from_str(text)
                .map_err(|e| format!("referenced schema {name:?} is not JSON: {e}"))?;
            docs.insert(name.clone(), doc);
        }
        let mut options = jsonschema::options()
            .with_retriever(NamedReferences { docs })
            .should_validate_formats(false);
        if root.get("$schema").is_none() {
            options = options.with_draft(Draft::Draft7);
        }
        let inner = options.build(root).map_err(|e| e.to_string())?;
        Ok(JsonValidator {
            inner: Arc::new(inner),
        })
    }

    /// Checks `value` against the schema: the error names each violation (up to a few) with
    /// the JSON pointer to the offending part of the value.
    pub fn validate(&self, value: &Value) -> Result<(), String> {
        if self.inner.is_valid(value) {
            return Ok(());
        }
        let mut errors = self.inner.iter_errors(value);
        let mut messages = Vec::new();
        for e in errors.by_ref().take(MAX_REPORTED_ERRORS) {
            let at = e.instance_path().to_string();
            let at = if at.is_empty() { "/".to_owned() } else { at };
            messages.push(format!("at {at}: {e}"));
        }
        let more = errors.count();
        if more > 0 {
            messages.push(format!("and {more} more"));
        }
        if messages.is_empty() {
            messages.push("the value does not match the schema".into());
        }
        Err(messages.join("; "))
    }
}

/// Serves referenced schemas to `$ref` resolution by reference name: a `$ref` resolves to
/// the reference whose name is its whole URI or the URI's path (relative `$ref`s are
/// resolved against the root's base, `json-schema:///` without an `$id`) or its last
/// segments.
struct NamedReferences {
    docs: HashMap<String, Value>,
}

impl Retrieve for NamedReferences {
    fn retrieve(
        &self,
        uri: &Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let full = uri.as_str();
        if let Some(doc) = self.docs.get(full) {
            return Ok(doc.clone());
        }
        let path = uri.path().as_str();
        if let Some(doc) = self.docs.get(path.trim_start_matches('/')) {
            return Ok(doc.clone());
        }
        self.docs
            .iter()
            .find(|(name, _)| {
                let name = name.trim_start_matches("./");
                !name.is_empty() && path.ends_with(&format!("/{name}"))
            })
            .map(|(_, doc)| doc.clone())
            .ok_or_else(|| format!("$ref {full} names no referenced schema").into())
    }
}

/// Like [`parse`], and also compiles the schema for validation with its `references`
/// ((name, text) pairs), so a `$ref` that names no reference, or a keyword the draft's
/// meta-schema rejects, makes the schema invalid.
pub fn parse_with_references(
    text: &str,
    references: &[(String, String)],
) -> Result<ParsedJson, String> {
    let parsed = parse(text)?;
    JsonValidator::new(&parsed.root, references)?;
    Ok(parsed)
}

/// Messages for each incompatible change from `writer` (Confluent's "original") to
/// `reader` (its "update").
pub fn incompatibilities(writer: &ParsedJson, reader: &ParsedJson) -> Vec<String> {
    diff::incompatibilities(&writer.root, &reader.root)
}
