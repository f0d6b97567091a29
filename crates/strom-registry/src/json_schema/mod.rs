//! JSON Schema: validation of the schema document (an object or a boolean, with well-formed
//! keywords), and compatibility with Confluent's rules (in [`diff`]).

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

/// Messages for each incompatible change from `writer` (Confluent's "original") to
/// `reader` (its "update").
pub fn incompatibilities(writer: &ParsedJson, reader: &ParsedJson) -> Vec<String> {
    diff::incompatibilities(&writer.root, &reader.root)
}
