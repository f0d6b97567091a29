//! Property test of the Connect ↔ Avro mapping of the Avro converter: for any Connect
//! schema (primitives, logical types, optional, arrays, maps with string and other keys,
//! nested named and unnamed structs) and any value of it, the Avro schema parses, maps back
//! to the same Connect schema, and the value written in Avro binary reads back equal.

use std::collections::BTreeMap;

use proptest::prelude::*;
use strom_connect::avro_converter::{
    avro_schema, avro_value, connect_schema, connect_value, minimal_twos_complement,
};
use strom_connect::data::{
    Field, Schema, SchemaType, Struct, Value, DATE, DECIMAL, TIME, TIMESTAMP,
};
use strom_schema::avro::parse;
use strom_schema::serde::{decode, encode, split_frame};

fn leaf() -> impl Strategy<Value = Schema> {
    prop_oneof![
        Just(Schema::new(SchemaType::Int8)),
        Just(Schema::new(SchemaType::Int16)),
        Just(Schema::new(SchemaType::Int32)),
        Just(Schema::new(SchemaType::Int64)),
        Just(Schema::new(SchemaType::Float32)),
        Just(Schema::new(SchemaType::Float64)),
        Just(Schema::new(SchemaType::Boolean)),
        Just(Schema::new(SchemaType::String)),
        Just(Schema::new(SchemaType::Bytes)),
        Just(Schema::new(SchemaType::Int32).named(DATE)),
        Just(Schema::new(SchemaType::Int32).named(TIME)),
        Just(Schema::new(SchemaType::Int64).named(TIMESTAMP)),
        (0u32..6, prop::option::of(10u32..40)).prop_map(|(scale, precision)| {
            let mut s = Schema::new(SchemaType::Bytes).named(DECIMAL);
            s.parameters.insert("scale".into(), scale.to_string());
            if let Some(p) = precision {
                s.parameters
                    .insert("connect.decimal.precision".into(), p.to_string());
            }
            s
        }),
    ]
}

fn maybe_optional(s: impl Strategy<Value = Schema>) -> impl Strategy<Value = Schema> {
    (s, any::<bool>()).prop_map(|(s, o)| if o { s.optional() } else { s })
}

fn schema() -> impl Strategy<Value = Schema> {
    maybe_optional(leaf()).prop_recursive(3, 24, 4, |inner| {
        maybe_optional(prop_oneof![
            inner.clone().prop_map(Schema::array),
            inner
                .clone()
                .prop_map(|v| Schema::map(Schema::new(SchemaType::String), v)),
            (
                prop_oneof![
                    Just(Schema::new(SchemaType::Int32)),
                    Just(Schema::new(SchemaType::String).optional())
                ],
                inner.clone()
            )
                .prop_map(|(k, v)| Schema::map(k, v)),
            (
                prop::collection::vec(inner, 1..4),
                prop::option::of(any::<u32>()),
            )
                .prop_map(|(fields, name)| {
                    let mut s = Schema::structure(
                        fields
                            .into_iter()
                            .enumerate()
                            .map(|(i, schema)| Field {
                                name: format!("f{i}"),
                                schema,
                            })
                            .collect(),
                    );
                    if let Some(n) = name {
                        s = s.named(&format!("com.example.R{n}"));
                    }
                    s
                }),
        ])
    })
}

fn value(s: &Schema) -> BoxedStrategy<Value> {
    let required = required_value(s);
    if s.optional {
        prop_oneof![1 => Just(Value::Null), 3 => required].boxed()
    } else {
        required
    }
}

fn required_value(s: &Schema) -> BoxedStrategy<Value> {
    match (s.schema_type, s.logical()) {
        (SchemaType::Bytes, Some(DECIMAL)) => prop::collection::vec(any::<u8>(), 1..6)
            .prop_map(|b| Value::Bytes(minimal_twos_complement(b)))
            .boxed(),
        (SchemaType::Int8, _) => any::<i8>().prop_map(Value::Int8).boxed(),
        (SchemaType::Int16, _) => any::<i16>().prop_map(Value::Int16).boxed(),
        (SchemaType::Int32, _) => any::<i32>().prop_map(Value::Int32).boxed(),
        (SchemaType::Int64, _) => any::<i64>().prop_map(Value::Int64).boxed(),
        (SchemaType::Float32, _) => (-1e9f32..1e9f32).prop_map(Value::Float32).boxed(),
        (SchemaType::Float64, _) => (-1e15f64..1e15f64).prop_map(Value::Float64).boxed(),
        (SchemaType::Boolean, _) => any::<bool>().prop_map(Value::Boolean).boxed(),
        (SchemaType::String, _) => "\\PC{0,12}".prop_map(Value::String).boxed(),
        (SchemaType::Bytes, _) => prop::collection::vec(any::<u8>(), 0..8)
            .prop_map(Value::Bytes)
            .boxed(),
        (SchemaType::Array, _) => {
            prop::collection::vec(value(s.value_schema.as_deref().unwrap()), 0..4)
                .prop_map(Value::Array)
                .boxed()
        }
        (SchemaType::Map, _) => {
            let k = s.key_schema.as_deref().unwrap();
            let v = value(s.value_schema.as_deref().unwrap());
            if k.schema_type == SchemaType::String && !k.optional {
                // Avro maps have no order: the converter gives them sorted by key.
                prop::collection::btree_map("[a-z]{0,4}", v, 0..4)
                    .prop_map(|m: BTreeMap<String, Value>| {
                        Value::Map(m.into_iter().map(|(k, v)| (Value::String(k), v)).collect())
                    })
                    .boxed()
            } else {
                prop::collection::vec((value(k), v), 0..4)
                    .prop_map(Value::Map)
                    .boxed()
            }
        }
        (SchemaType::Struct, _) => {
            let fields: Vec<BoxedStrategy<Value>> =
                s.fields.iter().map(|f| value(&f.schema)).collect();
            let schema = s.clone();
            fields
                .prop_map(move |values| {
                    let mut st = Struct::new(schema.clone());
                    st.values = values;
                    Value::Struct(st)
                })
                .boxed()
        }
    }
}

/// Named structs must be one shape per name (Avro defines a name once).
fn names_consistent(s: &Schema, seen: &mut BTreeMap<String, Schema>) -> bool {
    if let (SchemaType::Struct, Some(n)) = (s.schema_type, &s.name) {
        let mut required = s.clone();
        required.optional = false;
        if seen.get(n).is_some_and(|p| *p != required) {
            return false;
        }
        seen.insert(n.clone(), required);
    }
    s.fields.iter().all(|f| names_consistent(&f.schema, seen))
        && s.key_schema
            .as_deref()
            .is_none_or(|k| names_consistent(k, seen))
        && s.value_schema
            .as_deref()
            .is_none_or(|v| names_consistent(v, seen))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn connect_avro_round_trip((s, v) in schema().prop_flat_map(|s| {
        let v = value(&s);
        (Just(s), v)
    })) {
        prop_assume!(names_consistent(&s, &mut BTreeMap::new()));
        let avro = avro_schema(&s).unwrap();
        let text = avro.to_string();
        let parsed = parse(&text, &[]).unwrap_or_else(|e| panic!("{text}: {e}"));
        prop_assert_eq!(&connect_schema(&avro).unwrap(), &s, "{}", text);
        let datum = avro_value(&s, &v).unwrap();
        let framed = encode(7, &parsed, datum).unwrap_or_else(|e| panic!("{text}: {e}"));
        let (id, mut payload) = split_frame(&framed).unwrap();
        prop_assert_eq!(id, 7);
        let back = decode(&parsed, &mut payload).unwrap();
        prop_assert!(payload.is_empty());
        prop_assert_eq!(connect_value(&s, back).unwrap(), v);
    }
}

#[test]
fn decimal_dates_and_optional_fields_map_as_confluent_does() {
    let mut amount = Schema::new(SchemaType::Bytes).named(DECIMAL);
    amount.parameters.insert("scale".into(), "2".into());
    let s = Schema::structure(vec![])
        .with_field("amount", amount)
        .with_field("day", Schema::new(SchemaType::Int32).named(DATE))
        .with_field("note", Schema::new(SchemaType::String).optional())
        .with_field("small", Schema::new(SchemaType::Int8));
    assert_eq!(
        avro_schema(&s).unwrap(),
        serde_json::json!({
            "type": "record",
            "name": "io.confluent.connect.avro.ConnectDefault",
            "fields": [
                {"name": "amount", "type": {
                    "type": "bytes", "logicalType": "decimal", "precision": 64, "scale": 2,
                    "connect.name": DECIMAL, "connect.parameters": {"scale": "2"}}},
                {"name": "day", "type": {"type": "int", "logicalType": "date", "connect.name": DATE}},
                {"name": "note", "type": ["null", "string"], "default": null},
                {"name": "small", "type": {"type": "int", "connect.type": "int8"}},
            ]
        })
    );
}
