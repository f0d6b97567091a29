//! Validation of values against JSON schemas (what the JSON Schema serializer checks before
//! framing a value), `$ref`s to referenced schemas resolved by their reference names.

use serde_json::{json, Value};
use strom_schema::json_schema::{self, JsonValidator};

fn validator(schema: &Value) -> JsonValidator {
    JsonValidator::new(schema, &[]).unwrap()
}

/// The error for `value`, which must be refused.
#[track_caller]
fn refused(v: &JsonValidator, value: Value) -> String {
    match v.validate(&value) {
        Ok(()) => panic!("accepted {value}"),
        Err(e) => e,
    }
}

fn person() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer", "minimum": 0},
            "role": {"enum": ["admin", "user"]},
            "address": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "zip": {"type": "string", "maxLength": 5}},
                "required": ["city"],
                "additionalProperties": false
            },
            "tags": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["name"],
        "additionalProperties": false
    })
}

#[test]
fn valid_values_pass() {
    let v = validator(&person());
    for ok in [
        json!({"name": "ada"}),
        json!({"name": "ada", "age": 36, "role": "admin"}),
        json!({"name": "ada", "address": {"city": "London", "zip": "N1"}, "tags": ["a", "b"]}),
    ] {
        assert_eq!(v.validate(&ok), Ok(()), "{ok}");
    }
}

#[test]
fn invalid_values_name_what_is_wrong_and_where() {
    let v = validator(&person());
    let e = refused(&v, json!({"name": 5}));
    assert!(e.contains("/name") && e.contains("string"), "{e}");
    let e = refused(&v, json!({"age": 3}));
    assert!(e.contains("\"name\" is a required property"), "{e}");
    let e = refused(&v, json!({"name": "ada", "nickname": "a"}));
    assert!(e.contains("nickname"), "{e}");
    let e = refused(&v, json!({"name": "ada", "role": "root"}));
    assert!(e.contains("/role"), "{e}");
    let e = refused(&v, json!({"name": "ada", "age": -1}));
    assert!(e.contains("/age") && e.contains("minimum"), "{e}");
    // Nested: a missing required field, an extra one and a too long string inside `address`.
    let e = refused(&v, json!({"name": "ada", "address": {"zip": "1"}}));
    assert!(e.contains("/address") && e.contains("\"city\""), "{e}");
    let e = refused(
        &v,
        json!({"name": "ada", "address": {"city": "x", "planet": "earth"}}),
    );
    assert!(e.contains("/address") && e.contains("planet"), "{e}");
    let e = refused(
        &v,
        json!({"name": "ada", "address": {"city": "x", "zip": "123456"}}),
    );
    assert!(e.contains("/address/zip"), "{e}");
    let e = refused(&v, json!({"name": "ada", "tags": ["a", 2]}));
    assert!(e.contains("/tags/1"), "{e}");
    // Not an object at all.
    let e = refused(&v, json!([1, 2]));
    assert!(e.contains("at /:") && e.contains("object"), "{e}");
    // Several violations are all named.
    let e = refused(&v, json!({"name": 1, "age": "x"}));
    assert!(e.contains("/name") && e.contains("/age"), "{e}");
}

#[test]
fn combinators_and_local_definitions() {
    let v = validator(&json!({
        "definitions": {"id": {"type": "string", "pattern": "^[a-z]+-[0-9]+$"}},
        "type": "object",
        "properties": {
            "id": {"$ref": "#/definitions/id"},
            "amount": {"oneOf": [{"type": "integer"}, {"type": "string", "format": "decimal"}]},
            "kind": {"const": "payment"}
        },
        "required": ["id"]
    }));
    assert_eq!(v.validate(&json!({"id": "pay-1", "amount": 5})), Ok(()));
    assert_eq!(
        v.validate(&json!({"id": "pay-2", "amount": "5.0", "kind": "payment"})),
        Ok(())
    );
    assert!(refused(&v, json!({"id": "PAY"})).contains("/id"));
    assert!(refused(&v, json!({"id": "a-1", "amount": 1.5})).contains("/amount"));
    assert!(refused(&v, json!({"id": "a-1", "kind": "refund"})).contains("/kind"));
    // Boolean schemas.
    assert_eq!(validator(&json!(true)).validate(&json!({"x": 1})), Ok(()));
    assert!(validator(&json!(false)).validate(&json!(1)).is_err());
}

#[test]
fn draft_7_unless_the_schema_names_another() {
    // Draft 7 reads an array `items` as a tuple; 2020-12 calls that `prefixItems`.
    let tuple = json!({"type": "array", "items": [{"type": "string"}, {"type": "integer"}]});
    let v = validator(&tuple);
    assert_eq!(v.validate(&json!(["a", 1])), Ok(()));
    assert!(v.validate(&json!([1, "a"])).is_err());
    let v = validator(&json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "array",
        "prefixItems": [{"type": "string"}],
        "items": false
    }));
    assert_eq!(v.validate(&json!(["a"])), Ok(()));
    assert!(v.validate(&json!(["a", "b"])).is_err());
}

#[test]
fn refs_to_referenced_schemas_resolve_by_reference_name() {
    let address = json!({
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"]
    })
    .to_string();
    let customer = json!({
        "type": "object",
        "properties": {"name": {"type": "string"}, "address": {"$ref": "address.json"}},
        "required": ["name"]
    })
    .to_string();
    let order = json!({
        "type": "object",
        "properties": {
            "customer": {"$ref": "customer.json"},
            "ship_to": {"$ref": "https://example.com/schemas/address.json"}
        },
        "required": ["customer"]
    });
    let refs = [
        ("address.json".to_owned(), address.clone()),
        ("customer.json".to_owned(), customer),
        (
            "https://example.com/schemas/address.json".to_owned(),
            address,
        ),
    ];
    let v = JsonValidator::new(&order, &refs).unwrap();
    let good = json!({"customer": {"name": "ada", "address": {"city": "London"}},
                      "ship_to": {"city": "Paris"}});
    assert_eq!(v.validate(&good), Ok(()));
    let e = refused(&v, json!({"customer": {"name": "ada", "address": {}}}));
    assert!(e.contains("/customer/address") && e.contains("city"), "{e}");
    let e = refused(
        &v,
        json!({"customer": {"name": "ada"}, "ship_to": {"city": 1}}),
    );
    assert!(e.contains("/ship_to/city"), "{e}");
    // A `$ref` that names no reference makes the schema invalid, as does a malformed one.
    let err = JsonValidator::new(&order, &refs[..1]).err().unwrap();
    assert!(err.contains("customer.json"), "{err}");
    assert!(json_schema::parse_with_references(&order.to_string(), &refs).is_ok());
    assert!(json_schema::parse_with_references(&order.to_string(), &[]).is_err());
    assert!(JsonValidator::new(&order, &[("customer.json".into(), "{".into())]).is_err());
    // The meta-schema is checked: `minimum` must be a number, `required` a list.
    assert!(JsonValidator::new(&json!({"required": "name"}), &[]).is_err());
}
