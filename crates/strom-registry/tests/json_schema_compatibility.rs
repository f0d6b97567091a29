//! JSON Schema evolutions with their verdicts: BACKWARD holds when the new schema accepts
//! every document the old one accepted, FORWARD when the old accepts every document the new
//! one does (Confluent's reading of its levels for JSON Schema, with open and closed content
//! models).

use serde_json::{json, Value};
use strom_registry::json_schema;

fn obj(props: Value, required: &[&str], closed: bool) -> Value {
    let mut s = json!({"type": "object", "properties": props, "required": required});
    if closed {
        s["additionalProperties"] = json!(false);
    }
    s
}

fn verdict(old: &Value, new: &Value) -> (bool, bool) {
    let o = json_schema::parse(&old.to_string()).unwrap();
    let n = json_schema::parse(&new.to_string()).unwrap();
    (
        json_schema::incompatibilities(&o, &n).is_empty(),
        json_schema::incompatibilities(&n, &o).is_empty(),
    )
}

#[test]
fn json_schema_evolution_table() {
    let a = json!({"a": {"type": "string"}});
    let ab = json!({"a": {"type": "string"}, "b": {"type": "integer"}});
    let cases: Vec<(&str, Value, Value, bool, bool)> = vec![
        (
            "identical",
            obj(a.clone(), &[], false),
            obj(a.clone(), &[], false),
            true,
            true,
        ),
        (
            "open model: add an optional property",
            obj(a.clone(), &[], false),
            obj(ab.clone(), &[], false),
            false,
            true,
        ),
        (
            "closed model: add an optional property",
            obj(a.clone(), &[], true),
            obj(ab.clone(), &[], true),
            true,
            false,
        ),
        (
            "open model: remove a property",
            obj(ab.clone(), &[], false),
            obj(a.clone(), &[], false),
            true,
            false,
        ),
        (
            "closed model: remove a property",
            obj(ab.clone(), &[], true),
            obj(a.clone(), &[], true),
            false,
            true,
        ),
        (
            "make a property required",
            obj(a.clone(), &[], false),
            obj(a.clone(), &["a"], false),
            false,
            true,
        ),
        (
            "make a property optional",
            obj(a.clone(), &["a"], false),
            obj(a.clone(), &[], false),
            true,
            false,
        ),
        (
            "integer to number",
            json!({"type": "integer"}),
            json!({"type": "number"}),
            true,
            false,
        ),
        (
            "string to string or null",
            json!({"type": "string"}),
            json!({"type": ["string", "null"]}),
            true,
            false,
        ),
        (
            "string to integer",
            json!({"type": "string"}),
            json!({"type": "integer"}),
            false,
            false,
        ),
        (
            "add an enum value",
            json!({"enum": ["A", "B"]}),
            json!({"enum": ["A", "B", "C"]}),
            true,
            false,
        ),
        (
            "remove an enum value",
            json!({"enum": ["A", "B"]}),
            json!({"enum": ["A"]}),
            false,
            true,
        ),
        (
            "tighten maxLength",
            json!({"type": "string", "maxLength": 10}),
            json!({"type": "string", "maxLength": 5}),
            false,
            true,
        ),
        (
            "add a minimum",
            json!({"type": "number"}),
            json!({"type": "number", "minimum": 0}),
            false,
            true,
        ),
        (
            "array items string to number",
            json!({"type": "array", "items": {"type": "string"}}),
            json!({"type": "array", "items": {"type": "number"}}),
            false,
            false,
        ),
        (
            "nested property widened integer to number",
            obj(
                json!({"n": obj(json!({"x": {"type": "integer"}}), &[], false)}),
                &[],
                false,
            ),
            obj(
                json!({"n": obj(json!({"x": {"type": "number"}}), &[], false)}),
                &[],
                false,
            ),
            true,
            false,
        ),
        (
            "add a pattern",
            json!({"type": "string"}),
            json!({"type": "string", "pattern": "^a"}),
            false,
            true,
        ),
        (
            "anything to an object schema",
            json!(true),
            json!({"type": "object"}),
            false,
            true,
        ),
    ];
    let mut wrong = Vec::new();
    for (name, old, new, backward, forward) in &cases {
        let got = verdict(old, new);
        println!(
            "{name:<48} BACKWARD {:<5} FORWARD {:<5} FULL {}",
            got.0,
            got.1,
            got.0 && got.1
        );
        if got != (*backward, *forward) {
            wrong.push(format!("{name}: got {got:?}, want ({backward}, {forward})"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn invalid_json_schemas_are_refused() {
    for bad in [
        "",
        "[1]",
        "3",
        "{\"type\": \"strin\"}",
        "{\"properties\": 1}",
        "{\"required\": [1]}",
    ] {
        assert!(json_schema::parse(bad).is_err(), "accepted {bad}");
    }
}
