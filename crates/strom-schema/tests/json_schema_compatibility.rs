//! JSON Schema evolutions with the verdicts of Confluent's JSON Schema rules (its structural
//! diff, old → new for BACKWARD and new → old for FORWARD): open, closed and partially open
//! content models, required properties with and without defaults, bounds, multipleOf,
//! patterns (`format` is not compared), enums, combinators, `not`, `$ref`, tuples.

use serde_json::{json, Value};
use strom_schema::json_schema;

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
            "make a property required, with a default",
            obj(json!({"a": {"type": "string", "default": "x"}}), &[], false),
            obj(
                json!({"a": {"type": "string", "default": "x"}}),
                &["a"],
                false,
            ),
            true,
            true,
        ),
        (
            "closed model: add a required property with a default",
            obj(a.clone(), &[], true),
            obj(
                json!({"a": {"type": "string"}, "b": {"type": "integer", "default": 0}}),
                &["b"],
                true,
            ),
            true,
            false,
        ),
        (
            "closed model: add a required property without a default",
            obj(a.clone(), &[], true),
            obj(ab.clone(), &["b"], true),
            false,
            false,
        ),
        (
            "open model closed (additionalProperties: false)",
            obj(a.clone(), &[], false),
            obj(a.clone(), &[], true),
            false,
            true,
        ),
        (
            "open model: add a property with an empty schema",
            obj(a.clone(), &[], false),
            obj(json!({"a": {"type": "string"}, "b": {}}), &[], false),
            true,
            true,
        ),
        (
            "partially open model: add a property its schema covers",
            json!({"type": "object", "properties": {"a": {"type": "string"}},
                   "additionalProperties": {"type": "string"}}),
            json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
                   "additionalProperties": {"type": "string"}}),
            true,
            true,
        ),
        (
            "partially open model: add a property its schema does not cover",
            json!({"type": "object", "properties": {"a": {"type": "string"}},
                   "additionalProperties": {"type": "string"}}),
            json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
                   "additionalProperties": {"type": "string"}}),
            false,
            false,
        ),
        (
            "patternProperties cover an added property",
            json!({"type": "object", "properties": {}, "additionalProperties": false,
                   "patternProperties": {"^s_": {"type": "string"}}}),
            json!({"type": "object", "properties": {"s_name": {"type": "string"}},
                   "additionalProperties": false, "patternProperties": {"^s_": {"type": "string"}}}),
            true,
            true,
        ),
        (
            "add a format (not compared)",
            json!({"type": "string"}),
            json!({"type": "string", "format": "email"}),
            true,
            true,
        ),
        (
            "multipleOf 10 to 5",
            json!({"type": "integer", "multipleOf": 10}),
            json!({"type": "integer", "multipleOf": 5}),
            true,
            false,
        ),
        (
            "add multipleOf",
            json!({"type": "integer"}),
            json!({"type": "integer", "multipleOf": 2}),
            false,
            true,
        ),
        (
            "add uniqueItems",
            json!({"type": "array", "items": {"type": "string"}}),
            json!({"type": "array", "items": {"type": "string"}, "uniqueItems": true}),
            false,
            true,
        ),
        (
            "closed tuple: add an item",
            json!({"type": "array", "items": [{"type": "string"}], "additionalItems": false}),
            json!({"type": "array", "items": [{"type": "string"}, {"type": "integer"}],
                   "additionalItems": false}),
            true,
            false,
        ),
        (
            "anyOf: add a branch",
            json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
            json!({"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}),
            true,
            false,
        ),
        (
            "anyOf: a branch changed",
            json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
            json!({"anyOf": [{"type": "string"}, {"type": "boolean"}]}),
            false,
            false,
        ),
        (
            "allOf: add a part",
            json!({"allOf": [{"type": "object"}]}),
            json!({"allOf": [{"type": "object"}, {"required": ["a"]}]}),
            false,
            true,
        ),
        (
            "oneOf to anyOf",
            json!({"oneOf": [{"type": "string"}, {"type": "integer"}]}),
            json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
            true,
            false,
        ),
        (
            "not: the negated schema narrowed",
            json!({"not": {"type": ["string", "null"]}}),
            json!({"not": {"type": "string"}}),
            true,
            false,
        ),
        (
            "$ref target widened integer to number",
            json!({"definitions": {"n": {"type": "integer"}}, "type": "object",
                   "properties": {"x": {"$ref": "#/definitions/n"}}}),
            json!({"definitions": {"n": {"type": "number"}}, "type": "object",
                   "properties": {"x": {"$ref": "#/definitions/n"}}}),
            true,
            false,
        ),
        (
            "dependencies: add one",
            json!({"type": "object", "properties": {"a": {}, "b": {}}}),
            json!({"type": "object", "properties": {"a": {}, "b": {}},
                   "dependencies": {"a": ["b"]}}),
            false,
            true,
        ),
        (
            "title and description changed",
            json!({"type": "string", "title": "A"}),
            json!({"type": "string", "title": "B", "description": "d"}),
            true,
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

#[test]
fn pathological_schemas_end_quickly() {
    // Nested anyOfs compare every branch with every branch at each level; the check is
    // bounded and calls a change it cannot finish comparing incompatible.
    let mut a = json!({"type": "string"});
    let mut b = json!({"type": "integer"});
    for _ in 0..7 {
        a = json!({"anyOf": [a.clone(), a.clone(), {"type": "null"}, a]});
        b = json!({"anyOf": [b.clone(), b.clone(), {"type": "boolean"}, b]});
    }
    let started = std::time::Instant::now();
    let (backward, forward) = verdict(&a, &b);
    assert!(!backward && !forward);
    // (Unbounded, this took minutes; bounded, a few seconds in a debug build.)
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // A schema past the size bound is refused when registered, not compared for minutes.
    let mut big = json!({"type": "string"});
    for _ in 0..10 {
        big = json!({"anyOf": [big.clone(), big.clone(), big]});
    }
    let err = json_schema::parse(&big.to_string()).err().unwrap();
    assert!(err.contains("50000"), "{err}");
    // A $ref cycle ends too.
    let cyclic = json!({"definitions": {"n": {"$ref": "#/definitions/n"}},
                        "properties": {"x": {"$ref": "#/definitions/n"}}});
    let _ = verdict(&cyclic, &cyclic);
}
