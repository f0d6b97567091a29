//! The Avro compatibility table: real schema evolutions with the verdict at each level, as
//! Confluent documents them (its levels apply Avro's schema resolution rules): BACKWARD =
//! the new schema reads data written with the old one, FORWARD = the old schema reads data
//! written with the new one, FULL = both, NONE = anything. Each case states why.

use serde_json::{json, Value};
use strom_schema::avro;

struct Case {
    name: &'static str,
    old: Value,
    new: Value,
    backward: bool,
    forward: bool,
}

fn rec(name: &str, fields: Value) -> Value {
    json!({"type": "record", "name": name, "namespace": "t", "fields": fields})
}

fn field(name: &str, ty: Value) -> Value {
    json!({"name": name, "type": ty})
}

fn field_d(name: &str, ty: Value, default: Value) -> Value {
    json!({"name": name, "type": ty, "default": default})
}

fn one(ty: Value) -> Value {
    rec("R", json!([field("f", ty)]))
}

fn enum_(symbols: &[&str], default: Option<&str>) -> Value {
    let mut e = json!({"type": "enum", "name": "E", "symbols": symbols});
    if let Some(d) = default {
        e["default"] = json!(d);
    }
    e
}

fn cases() -> Vec<Case> {
    let base = rec(
        "User",
        json!([field("id", json!("long")), field("name", json!("string"))]),
    );
    let c = |name, old: Value, new: Value, backward, forward| Case {
        name,
        old,
        new,
        backward,
        forward,
    };
    let addr = |fields: Value| rec("Address", fields);
    let nested = |inner: Value| {
        rec(
            "User",
            json!([field("id", json!("long")), field("home", inner)]),
        )
    };
    let list = |extra: Option<Value>| {
        let mut fields = vec![
            field("value", json!("int")),
            field("next", json!(["null", "Node"])),
        ];
        if let Some(e) = extra {
            fields.push(e);
        }
        rec("Node", json!(fields))
    };
    vec![
        c("identical", base.clone(), base.clone(), true, true),
        c(
            "add a field with a default",
            base.clone(),
            rec(
                "User",
                json!([
                    field("id", json!("long")),
                    field("name", json!("string")),
                    field_d("age", json!("int"), json!(0))
                ]),
            ),
            true,
            true,
        ),
        c(
            "add a field without a default (new reader lacks a value for old data)",
            base.clone(),
            rec(
                "User",
                json!([
                    field("id", json!("long")),
                    field("name", json!("string")),
                    field("age", json!("int"))
                ]),
            ),
            false,
            true,
        ),
        c(
            "add an optional field (null default)",
            base.clone(),
            rec(
                "User",
                json!([
                    field("id", json!("long")),
                    field("name", json!("string")),
                    field_d("email", json!(["null", "string"]), Value::Null)
                ]),
            ),
            true,
            true,
        ),
        c(
            "remove a field that had a default",
            rec(
                "User",
                json!([
                    field("id", json!("long")),
                    field_d("name", json!("string"), json!("x"))
                ]),
            ),
            rec("User", json!([field("id", json!("long"))])),
            true,
            true,
        ),
        c(
            "remove a field without a default (old reader needs it)",
            base.clone(),
            rec("User", json!([field("id", json!("long"))])),
            true,
            false,
        ),
        c(
            "rename a field, no alias",
            base.clone(),
            rec(
                "User",
                json!([
                    field("id", json!("long")),
                    field("fullName", json!("string"))
                ]),
            ),
            false,
            false,
        ),
        c(
            "rename a field with an alias to the old name",
            base.clone(),
            rec(
                "User",
                json!([
                    field("id", json!("long")),
                    json!({"name": "fullName", "type": "string", "aliases": ["name"]})
                ]),
            ),
            true,
            false,
        ),
        c(
            "reorder fields",
            base.clone(),
            rec(
                "User",
                json!([field("name", json!("string")), field("id", json!("long"))]),
            ),
            true,
            true,
        ),
        c(
            "change a default value",
            rec("User", json!([field_d("n", json!("int"), json!(1))])),
            rec("User", json!([field_d("n", json!("int"), json!(2))])),
            true,
            true,
        ),
        c(
            "add documentation",
            base.clone(),
            json!({"type": "record", "name": "User", "namespace": "t", "doc": "a user",
                 "fields": [{"name": "id", "type": "long", "doc": "key"}, {"name": "name", "type": "string"}]}),
            true,
            true,
        ),
        c(
            "widen int to long",
            one(json!("int")),
            one(json!("long")),
            true,
            false,
        ),
        c(
            "narrow long to int",
            one(json!("long")),
            one(json!("int")),
            false,
            true,
        ),
        c(
            "widen int to float",
            one(json!("int")),
            one(json!("float")),
            true,
            false,
        ),
        c(
            "widen int to double",
            one(json!("int")),
            one(json!("double")),
            true,
            false,
        ),
        c(
            "widen long to float",
            one(json!("long")),
            one(json!("float")),
            true,
            false,
        ),
        c(
            "widen long to double",
            one(json!("long")),
            one(json!("double")),
            true,
            false,
        ),
        c(
            "widen float to double",
            one(json!("float")),
            one(json!("double")),
            true,
            false,
        ),
        c(
            "narrow double to float",
            one(json!("double")),
            one(json!("float")),
            false,
            true,
        ),
        c(
            "string to bytes",
            one(json!("string")),
            one(json!("bytes")),
            true,
            true,
        ),
        c(
            "bytes to string",
            one(json!("bytes")),
            one(json!("string")),
            true,
            true,
        ),
        c(
            "int to string",
            one(json!("int")),
            one(json!("string")),
            false,
            false,
        ),
        c(
            "boolean to int",
            one(json!("boolean")),
            one(json!("int")),
            false,
            false,
        ),
        c(
            "add an enum symbol",
            one(enum_(&["A", "B"], None)),
            one(enum_(&["A", "B", "C"], None)),
            true,
            false,
        ),
        c(
            "remove an enum symbol",
            one(enum_(&["A", "B", "C"], None)),
            one(enum_(&["A", "B"], None)),
            false,
            true,
        ),
        c(
            "add an enum symbol, enums with a default",
            one(enum_(&["A", "B"], Some("A"))),
            one(enum_(&["A", "B", "C"], Some("A"))),
            true,
            true,
        ),
        c(
            "remove an enum symbol, new enum has a default",
            one(enum_(&["A", "B", "C"], None)),
            one(enum_(&["A", "B"], Some("A"))),
            true,
            true,
        ),
        c(
            "reorder enum symbols",
            one(enum_(&["A", "B"], None)),
            one(enum_(&["B", "A"], None)),
            true,
            true,
        ),
        c(
            "enum to string",
            one(enum_(&["A"], None)),
            one(json!("string")),
            false,
            false,
        ),
        c(
            "type to a union containing it",
            one(json!("string")),
            one(json!(["null", "string"])),
            true,
            false,
        ),
        c(
            "union to one of its types",
            one(json!(["null", "string"])),
            one(json!("string")),
            false,
            true,
        ),
        c(
            "add a union branch",
            one(json!(["null", "string"])),
            one(json!(["null", "string", "int"])),
            true,
            false,
        ),
        c(
            "remove a union branch",
            one(json!(["null", "string", "int"])),
            one(json!(["null", "string"])),
            false,
            true,
        ),
        c(
            "reorder union branches",
            one(json!(["null", "string"])),
            one(json!(["string", "null"])),
            true,
            true,
        ),
        c(
            "int branch widened to long in a union",
            one(json!(["null", "int"])),
            one(json!(["null", "long"])),
            true,
            false,
        ),
        c(
            "null to a nullable int",
            one(json!("null")),
            one(json!(["null", "int"])),
            true,
            false,
        ),
        c(
            "nested record: add a field with a default",
            nested(addr(json!([field("city", json!("string"))]))),
            nested(addr(json!([
                field("city", json!("string")),
                field_d("zip", json!("string"), json!(""))
            ]))),
            true,
            true,
        ),
        c(
            "nested record: add a field without a default",
            nested(addr(json!([field("city", json!("string"))]))),
            nested(addr(json!([
                field("city", json!("string")),
                field("zip", json!("string"))
            ]))),
            false,
            true,
        ),
        c(
            "nested record: remove a field without a default",
            nested(addr(json!([
                field("city", json!("string")),
                field("zip", json!("string"))
            ]))),
            nested(addr(json!([field("city", json!("string"))]))),
            true,
            false,
        ),
        c(
            "nested record renamed, no alias",
            nested(addr(json!([field("city", json!("string"))]))),
            nested(rec("Location", json!([field("city", json!("string"))]))),
            false,
            false,
        ),
        c(
            "nested record renamed with an alias to the old full name",
            nested(addr(json!([field("city", json!("string"))]))),
            nested(
                json!({"type": "record", "name": "Location", "namespace": "t", "aliases": ["t.Address"],
                        "fields": [field("city", json!("string"))]}),
            ),
            true,
            false,
        ),
        c(
            "record renamed, no alias",
            base.clone(),
            rec(
                "Person",
                json!([field("id", json!("long")), field("name", json!("string"))]),
            ),
            false,
            false,
        ),
        c(
            "namespace changed (unqualified names match)",
            base.clone(),
            json!({"type": "record", "name": "User", "namespace": "other",
                 "fields": [field("id", json!("long")), field("name", json!("string"))]}),
            true,
            true,
        ),
        c(
            "record field to string",
            nested(addr(json!([field("city", json!("string"))]))),
            rec(
                "User",
                json!([field("id", json!("long")), field("home", json!("string"))]),
            ),
            false,
            false,
        ),
        c(
            "array items widened int to long",
            one(json!({"type": "array", "items": "int"})),
            one(json!({"type": "array", "items": "long"})),
            true,
            false,
        ),
        c(
            "map values string to int",
            one(json!({"type": "map", "values": "string"})),
            one(json!({"type": "map", "values": "int"})),
            false,
            false,
        ),
        c(
            "map to array",
            one(json!({"type": "map", "values": "string"})),
            one(json!({"type": "array", "items": "string"})),
            false,
            false,
        ),
        c(
            "fixed size changed",
            one(json!({"type": "fixed", "name": "F", "size": 16})),
            one(json!({"type": "fixed", "name": "F", "size": 32})),
            false,
            false,
        ),
        c(
            "fixed unchanged",
            one(json!({"type": "fixed", "name": "F", "size": 16})),
            one(json!({"type": "fixed", "name": "F", "size": 16})),
            true,
            true,
        ),
        c(
            "timestamp-millis logical type dropped to long",
            one(json!({"type": "long", "logicalType": "timestamp-millis"})),
            one(json!("long")),
            true,
            true,
        ),
        c(
            "decimal on bytes to plain bytes",
            one(json!({"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2})),
            one(json!("bytes")),
            true,
            true,
        ),
        c(
            "recursive type: add a field with a default",
            list(None),
            list(Some(field_d("label", json!("string"), json!("")))),
            true,
            true,
        ),
        c(
            "recursive type: add a field without a default",
            list(None),
            list(Some(field("label", json!("string")))),
            false,
            true,
        ),
    ]
}

fn compatible(writer: &Value, reader: &Value, refs: &[String]) -> (bool, Vec<String>) {
    let w = avro::parse(&writer.to_string(), refs).expect("writer parses");
    let r = avro::parse(&reader.to_string(), refs).expect("reader parses");
    let messages = avro::incompatibilities(&w, &r);
    (messages.is_empty(), messages)
}

#[test]
fn avro_evolution_table() {
    let cases = cases();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let mut wrong = Vec::new();
    println!(
        "{:<72} {:>8} {:>8} {:>5} {:>5}",
        "evolution (old -> new)", "BACKWARD", "FORWARD", "FULL", "NONE"
    );
    for case in &cases {
        let (backward, bm) = compatible(&case.old, &case.new, &[]);
        let (forward, fm) = compatible(&case.new, &case.old, &[]);
        println!(
            "{:<72} {:>8} {:>8} {:>5} {:>5}",
            case.name,
            backward,
            forward,
            backward && forward,
            true
        );
        if backward != case.backward || forward != case.forward {
            wrong.push(format!(
                "{}: backward {backward} (want {}) {bm:?}, forward {forward} (want {}) {fm:?}",
                case.name, case.backward, case.forward
            ));
        }
    }
    assert!(wrong.is_empty(), "verdicts differ:\n{}", wrong.join("\n"));
}

#[test]
fn evolution_of_a_referenced_type() {
    // The referring schema is unchanged; the schema it references evolves.
    let person = json!({"type": "record", "name": "Person", "namespace": "t",
                        "fields": [{"name": "home", "type": "t.Address"}]});
    let a1 = rec("Address", json!([field("city", json!("string"))])).to_string();
    let a2 = rec(
        "Address",
        json!([
            field("city", json!("string")),
            field("zip", json!("string"))
        ]),
    )
    .to_string();
    let old = avro::parse(&person.to_string(), std::slice::from_ref(&a1)).unwrap();
    let new = avro::parse(&person.to_string(), std::slice::from_ref(&a2)).unwrap();
    // New reader needs zip, old data lacks it: not backward; old reader ignores zip: forward.
    assert!(!avro::incompatibilities(&old, &new).is_empty());
    assert!(avro::incompatibilities(&new, &old).is_empty());
}

#[test]
fn invalid_schemas_are_errors_not_panics() {
    for bad in [
        "",
        "{",
        "{\"type\":\"record\"}",
        "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\"}]}",
        "{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"A\"]}",
        "{\"type\":\"fixed\",\"name\":\"F\"}",
        "{\"type\":\"unknown\"}",
        "[\"null\",\"null\"]",
        "{\"type\":\"record\",\"name\":\"R\",\"fields\":[{\"name\":\"a\",\"type\":\"Missing\"}]}",
    ] {
        assert!(avro::parse(bad, &[]).is_err(), "accepted: {bad}");
    }
}
