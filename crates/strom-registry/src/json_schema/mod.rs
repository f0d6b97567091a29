//! JSON Schema: validation of the schema document (an object or a boolean, with well-formed
//! keywords) and a compatibility check in the spirit of Confluent's: BACKWARD holds when
//! every document the old (writer) schema accepts is accepted by the new (reader) one. The
//! check is conservative: what it cannot prove (combinators that differ, `$ref` targets
//! that differ, changed patterns) it reports as incompatible, naming the location.
//!
//! Covered: `type` (integer within number), object `properties` / `required` /
//! `additionalProperties` (open and closed content models), array `items`, `enum` and
//! `const`, numeric and length bounds, `pattern`, `format`. Not resolved: `$ref` across
//! registry references (compared by text), `dependencies`, `if`/`then`/`else`.

use serde_json::{Map, Value};

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
    check_shape(&root, "#")?;
    Ok(ParsedJson { root })
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

/// Messages for each way data valid under `writer` may be rejected by `reader`.
pub fn incompatibilities(writer: &ParsedJson, reader: &ParsedJson) -> Vec<String> {
    let mut out = Vec::new();
    check(&writer.root, &reader.root, "#", &mut out);
    out
}

fn fail(out: &mut Vec<String>, kind: &str, path: &str, detail: String) {
    out.push(format!(
        "{{errorType:'{kind}', description:'{detail}', location:'{path}'}}"
    ));
}

/// The types a schema allows (`None` = any).
fn types(o: &Map<String, Value>) -> Option<Vec<String>> {
    match o.get("type")? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}

fn type_allowed(t: &str, allowed: &[String]) -> bool {
    allowed
        .iter()
        .any(|a| a == t || (t == "integer" && a == "number"))
}

fn check(writer: &Value, reader: &Value, path: &str, out: &mut Vec<String>) {
    let r = match reader {
        Value::Bool(true) => return,
        Value::Object(o) if o.is_empty() => return,
        Value::Bool(false) => {
            if writer != &Value::Bool(false) {
                fail(
                    out,
                    "SCHEMA_NARROWED",
                    path,
                    "the new schema accepts nothing".into(),
                );
            }
            return;
        }
        Value::Object(o) => o,
        _ => return,
    };
    let w = match writer {
        Value::Bool(false) => return,
        Value::Bool(true) => {
            fail(
                out,
                "TYPE_NARROWED",
                path,
                "the old schema accepted anything".into(),
            );
            return;
        }
        Value::Object(o) => o,
        _ => return,
    };
    for key in [
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "$ref",
        "if",
        "then",
        "else",
        "dependencies",
        "patternProperties",
    ] {
        if w.get(key) != r.get(key) {
            fail(
                out,
                "COMBINED_TYPE_CHANGED",
                &format!("{path}/{key}"),
                format!("'{key}' differs and is not compared structurally"),
            );
        }
    }
    match (types(w), types(r)) {
        (_, None) => {}
        (None, Some(_)) => fail(
            out,
            "TYPE_NARROWED",
            &format!("{path}/type"),
            "the new schema restricts the type".into(),
        ),
        (Some(wt), Some(rt)) => {
            let lost: Vec<&String> = wt.iter().filter(|t| !type_allowed(t, &rt)).collect();
            if !lost.is_empty() {
                fail(
                    out,
                    "TYPE_NARROWED",
                    &format!("{path}/type"),
                    format!("types {lost:?} are no longer accepted"),
                );
            }
        }
    }
    enums(w, r, path, out);
    bounds(w, r, path, out);
    for key in ["pattern", "format"] {
        if r.get(key).is_some() && w.get(key) != r.get(key) {
            fail(
                out,
                "STRING_CONSTRAINT_CHANGED",
                &format!("{path}/{key}"),
                format!("'{key}' was added or changed"),
            );
        }
    }
    objects(w, r, path, out);
    if let Some(ri) = r.get("items") {
        let wi = w.get("items").cloned().unwrap_or(Value::Bool(true));
        check(&wi, ri, &format!("{path}/items"), out);
    }
}

fn enums(w: &Map<String, Value>, r: &Map<String, Value>, path: &str, out: &mut Vec<String>) {
    let allowed = |o: &Map<String, Value>| -> Option<Vec<Value>> {
        if let Some(c) = o.get("const") {
            return Some(vec![c.clone()]);
        }
        o.get("enum").and_then(Value::as_array).cloned()
    };
    if let Some(re) = allowed(r) {
        match allowed(w) {
            None => fail(
                out,
                "ENUM_ARRAY_NARROWED",
                &format!("{path}/enum"),
                "the new schema restricts the values to an enum".into(),
            ),
            Some(we) => {
                let lost: Vec<&Value> = we.iter().filter(|v| !re.contains(v)).collect();
                if !lost.is_empty() {
                    fail(
                        out,
                        "ENUM_ARRAY_NARROWED",
                        &format!("{path}/enum"),
                        format!("values {lost:?} are no longer accepted"),
                    );
                }
            }
        }
    }
}

fn bounds(w: &Map<String, Value>, r: &Map<String, Value>, path: &str, out: &mut Vec<String>) {
    let num = |o: &Map<String, Value>, k: &str| o.get(k).and_then(Value::as_f64);
    for (key, lower) in [
        ("minimum", true),
        ("exclusiveMinimum", true),
        ("minLength", true),
        ("minItems", true),
        ("minProperties", true),
        ("maximum", false),
        ("exclusiveMaximum", false),
        ("maxLength", false),
        ("maxItems", false),
        ("maxProperties", false),
    ] {
        let Some(rv) = num(r, key) else { continue };
        let narrowed = match num(w, key) {
            None => true,
            Some(wv) => {
                if lower {
                    rv > wv
                } else {
                    rv < wv
                }
            }
        };
        if narrowed {
            fail(
                out,
                "RANGE_NARROWED",
                &format!("{path}/{key}"),
                format!("'{key}' was added or tightened"),
            );
        }
    }
}

fn objects(w: &Map<String, Value>, r: &Map<String, Value>, path: &str, out: &mut Vec<String>) {
    let empty = Map::new();
    let wp = w
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let rp = r
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let w_additional = w
        .get("additionalProperties")
        .cloned()
        .unwrap_or(Value::Bool(true));
    let r_additional = r
        .get("additionalProperties")
        .cloned()
        .unwrap_or(Value::Bool(true));
    for (name, ws) in wp {
        let sub = format!("{path}/properties/{name}");
        match rp.get(name) {
            Some(rs) => check(ws, rs, &sub, out),
            None => {
                let before = out.len();
                check(ws, &r_additional, &sub, out);
                if out.len() > before {
                    out.truncate(before);
                    fail(out, "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", &sub,
                         format!("property '{name}' is gone and the new content model does not accept it"));
                }
            }
        }
    }
    for (name, rs) in rp {
        if wp.contains_key(name) {
            continue;
        }
        let sub = format!("{path}/properties/{name}");
        let before = out.len();
        check(&w_additional, rs, &sub, out);
        if out.len() > before {
            out.truncate(before);
            fail(
                out,
                "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                &sub,
                format!("property '{name}' was added but old data may hold it with any value"),
            );
        }
    }
    let required = |o: &Map<String, Value>| -> Vec<String> {
        o.get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let wr = required(w);
    for name in required(r) {
        if !wr.contains(&name) {
            fail(
                out,
                "REQUIRED_PROPERTY_ADDED",
                &format!("{path}/required"),
                format!("property '{name}' became required"),
            );
        }
    }
}
