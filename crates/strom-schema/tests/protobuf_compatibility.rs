//! The Protobuf compatibility table: real `.proto` evolutions with the verdict Confluent's
//! Protobuf rules give. BACKWARD compares old → new, FORWARD new → old; FULL is both. The
//! incompatible changes are: package changed, message removed, field kind changed (scalar /
//! message / map), scalar kind changed outside the wire-compatible groups (int32, int64,
//! uint32, uint64, bool and enums; sint32, sint64; string, bytes; fixed32, sfixed32; fixed64,
//! sfixed64; float; double), named type changed, required field added or removed, a oneof's
//! field removed, several fields moved into one new oneof, a field moved into an existing
//! oneof. Everything else (fields added or removed, renames, renumbering, labels, enum
//! changes, oneofs added or removed, messages added or reordered) is compatible.

use strom_schema::protobuf;

fn p3(body: &str) -> String {
    format!("syntax = \"proto3\";\npackage shop;\nimport \"google/protobuf/timestamp.proto\";\nimport \"google/protobuf/duration.proto\";\n{body}")
}

fn p2(body: &str) -> String {
    format!("syntax = \"proto2\";\npackage shop;\n{body}")
}

fn verdict(old: &str, new: &str) -> (bool, bool, Vec<String>) {
    let o = protobuf::parse(old, &[]).unwrap_or_else(|e| panic!("{old}\n{e}"));
    let n = protobuf::parse(new, &[]).unwrap_or_else(|e| panic!("{new}\n{e}"));
    let backward = protobuf::incompatibilities(&o, &n);
    let forward = protobuf::incompatibilities(&n, &o);
    let mut messages = backward.clone();
    messages.extend(forward.clone());
    (backward.is_empty(), forward.is_empty(), messages)
}

#[test]
fn protobuf_evolution_table() {
    let m = |fields: &str| p3(&format!("message Order {{ {fields} }}"));
    let cases: Vec<(&str, String, String, bool, bool)> = vec![
        (
            "identical",
            m("int64 id = 1;"),
            m("int64 id = 1;"),
            true,
            true,
        ),
        (
            "add a field",
            m("int64 id = 1;"),
            m("int64 id = 1; string note = 2;"),
            true,
            true,
        ),
        (
            "remove a field",
            m("int64 id = 1; string note = 2;"),
            m("int64 id = 1;"),
            true,
            true,
        ),
        (
            "rename a field",
            m("int64 id = 1;"),
            m("int64 order_id = 1;"),
            true,
            true,
        ),
        (
            "renumber a field (removed + added)",
            m("int64 id = 1;"),
            m("int64 id = 2;"),
            true,
            true,
        ),
        (
            "int32 to int64",
            m("int32 n = 1;"),
            m("int64 n = 1;"),
            true,
            true,
        ),
        (
            "uint64 to bool",
            m("uint64 n = 1;"),
            m("bool n = 1;"),
            true,
            true,
        ),
        (
            "int32 to sint32",
            m("int32 n = 1;"),
            m("sint32 n = 1;"),
            false,
            false,
        ),
        (
            "sint32 to sint64",
            m("sint32 n = 1;"),
            m("sint64 n = 1;"),
            true,
            true,
        ),
        (
            "int32 to string",
            m("int32 n = 1;"),
            m("string n = 1;"),
            false,
            false,
        ),
        (
            "string to bytes",
            m("string s = 1;"),
            m("bytes s = 1;"),
            true,
            true,
        ),
        (
            "fixed32 to sfixed32",
            m("fixed32 n = 1;"),
            m("sfixed32 n = 1;"),
            true,
            true,
        ),
        (
            "fixed32 to fixed64",
            m("fixed32 n = 1;"),
            m("fixed64 n = 1;"),
            false,
            false,
        ),
        (
            "float to double",
            m("float x = 1;"),
            m("double x = 1;"),
            false,
            false,
        ),
        (
            "int32 to an enum",
            m("int32 s = 1;"),
            m("enum S { A = 0; B = 1; } S s = 1;"),
            true,
            true,
        ),
        (
            "scalar to message",
            m("int64 at = 1;"),
            m("google.protobuf.Timestamp at = 1;"),
            false,
            false,
        ),
        (
            "message type replaced by another",
            m("google.protobuf.Timestamp t = 1;"),
            m("google.protobuf.Duration t = 1;"),
            false,
            false,
        ),
        (
            "singular to repeated (labels are not compared)",
            m("string tag = 1;"),
            m("repeated string tag = 1;"),
            true,
            true,
        ),
        (
            "proto3 optional added",
            m("int32 n = 1;"),
            m("optional int32 n = 1;"),
            true,
            true,
        ),
        (
            "nested message: field added",
            m("message Line { string sku = 1; } repeated Line lines = 1;"),
            m("message Line { string sku = 1; int32 qty = 2; } repeated Line lines = 1;"),
            true,
            true,
        ),
        (
            "nested message: field type changed",
            m("message Line { string sku = 1; } repeated Line lines = 1;"),
            m("message Line { int64 sku = 1; } repeated Line lines = 1;"),
            false,
            false,
        ),
        (
            "recursive message unchanged",
            m("message Node { Node next = 1; int32 v = 2; } Node head = 1;"),
            m("message Node { Node next = 1; int32 v = 2; } Node head = 1;"),
            true,
            true,
        ),
        (
            "recursive message changed",
            m("message Node { Node next = 1; int32 v = 2; } Node head = 1;"),
            m("message Node { Node next = 1; string v = 2; } Node head = 1;"),
            false,
            false,
        ),
        (
            "map value int32 to int64",
            m("map<string, int32> counts = 1;"),
            m("map<string, int64> counts = 1;"),
            true,
            true,
        ),
        (
            "map value int32 to string",
            m("map<string, int32> counts = 1;"),
            m("map<string, string> counts = 1;"),
            false,
            false,
        ),
        (
            "map to repeated scalar",
            m("map<string, int32> counts = 1;"),
            m("repeated int32 counts = 1;"),
            false,
            false,
        ),
        (
            "add a message",
            p3("message Order { int64 id = 1; }"),
            p3("message Order { int64 id = 1; } message Refund { int64 id = 1; }"),
            true,
            false,
        ),
        (
            "remove a message",
            p3("message Order { int64 id = 1; } message Refund { int64 id = 1; }"),
            p3("message Order { int64 id = 1; }"),
            false,
            true,
        ),
        (
            "reorder messages",
            p3("message Order { int64 id = 1; } message Refund { int64 id = 1; }"),
            p3("message Refund { int64 id = 1; } message Order { int64 id = 1; }"),
            true,
            true,
        ),
        (
            "package changed",
            p3("message Order { int64 id = 1; }"),
            p3("message Order { int64 id = 1; }").replace("package shop;", "package store;"),
            false,
            false,
        ),
        (
            "enum value added",
            p3("enum S { A = 0; } message Order { S s = 1; }"),
            p3("enum S { A = 0; B = 1; } message Order { S s = 1; }"),
            true,
            true,
        ),
        (
            "enum value removed",
            p3("enum S { A = 0; B = 1; } message Order { S s = 1; }"),
            p3("enum S { A = 0; } message Order { S s = 1; }"),
            true,
            true,
        ),
        (
            "enum removed (its field now int32)",
            p3("enum S { A = 0; } message Order { S s = 1; }"),
            p3("message Order { int32 s = 1; }"),
            true,
            true,
        ),
        (
            "one field moved into a new oneof",
            m("string card = 1; string cash = 2;"),
            m("string cash = 2; oneof pay { string card = 1; }"),
            true,
            true,
        ),
        (
            "two fields moved into a new oneof",
            m("string card = 1; string cash = 2;"),
            m("oneof pay { string card = 1; string cash = 2; }"),
            false,
            true,
        ),
        (
            "field added to an existing oneof",
            m("oneof pay { string card = 1; }"),
            m("oneof pay { string card = 1; string cash = 2; }"),
            true,
            false,
        ),
        (
            "existing field moved into an existing oneof",
            m("string cash = 2; oneof pay { string card = 1; }"),
            m("oneof pay { string card = 1; string cash = 2; }"),
            false,
            true,
        ),
        (
            "oneof renamed",
            m("oneof pay { string card = 1; }"),
            m("oneof payment { string card = 1; }"),
            true,
            true,
        ),
        (
            "oneof field type changed",
            m("oneof pay { string card = 1; }"),
            m("oneof pay { int64 card = 1; }"),
            false,
            false,
        ),
        (
            "proto2: optional field added",
            p2("message Order { required int64 id = 1; }"),
            p2("message Order { required int64 id = 1; optional string note = 2; }"),
            true,
            true,
        ),
        (
            "proto2: required field added",
            p2("message Order { required int64 id = 1; }"),
            p2("message Order { required int64 id = 1; required string note = 2; }"),
            false,
            false,
        ),
        (
            "proto2: required field removed",
            p2("message Order { required int64 id = 1; required string note = 2; }"),
            p2("message Order { required int64 id = 1; }"),
            false,
            false,
        ),
        (
            "proto2: required made optional (labels are not compared)",
            p2("message Order { required int64 id = 1; }"),
            p2("message Order { optional int64 id = 1; }"),
            true,
            true,
        ),
    ];
    let mut wrong = Vec::new();
    for (name, old, new, backward, forward) in &cases {
        let (b, f, messages) = verdict(old, new);
        println!("{name:<48} BACKWARD {b:<5} FORWARD {f:<5} FULL {}", b && f);
        for m in &messages {
            println!("    {m}");
        }
        if (b, f) != (*backward, *forward) {
            wrong.push(format!(
                "{name}: got ({b}, {f}), want ({backward}, {forward})"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn imports_resolve_through_references() {
    let common = "syntax = \"proto3\";\npackage common;\nmessage Money { string currency = 1; int64 units = 2; }";
    let order = "syntax = \"proto3\";\npackage shop;\nimport \"common/money.proto\";\nmessage Order { common.Money total = 1; }";
    let refs = vec![("common/money.proto".to_owned(), common.to_owned())];
    let parsed = protobuf::parse(order, &refs).unwrap();
    let total = protobuf::find_message(&parsed, Some("Order"))
        .unwrap()
        .get_field_by_name("total")
        .unwrap();
    assert_eq!(
        total.kind().as_message().unwrap().full_name(),
        "common.Money"
    );
    // Without the reference the import is unknown.
    let err = protobuf::parse(order, &[]).err().unwrap();
    assert!(err.contains("common/money.proto"), "{err}");
    // A referenced type changing incompatibly makes the referring field incompatible.
    let common2 = common.replace("int64 units", "string units");
    let refs2 = vec![("common/money.proto".to_owned(), common2)];
    let parsed2 = protobuf::parse(order, &refs2).unwrap();
    assert!(!protobuf::incompatibilities(&parsed, &parsed2).is_empty());
    assert!(protobuf::incompatibilities(&parsed, &parsed).is_empty());
}

#[test]
fn invalid_protos_are_refused() {
    // (An empty text is a valid, empty .proto file; the registry refuses empty schemas before
    // parsing.)
    for bad in [
        "syntax = \"proto3\"; message A { int32 a = 1; int32 b = 1; }",
        "syntax = \"proto3\"; message A { required int32 a = 1; }",
        "syntax = \"proto3\"; message A { Unknown u = 1; }",
        "syntax = \"proto4\";",
        "message {",
        "bm90IGEgZGVzY3JpcHRvcg==",
    ] {
        assert!(protobuf::parse(bad, &[]).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn truncated_and_bogus_schemas_are_errors_not_panics() {
    let text = "syntax = \"proto3\";\npackage a;\nimport \"google/protobuf/timestamp.proto\";\n\
                message M { map<string, int32> m = 1; oneof o { string s = 2; } \
                google.protobuf.Timestamp t = 3; message N { repeated N n = 1; } }\n\
                service S { rpc R (M) returns (stream M); }\n";
    for end in 0..text.len() {
        let _ = protobuf::parse(&text[..end], &[]);
    }
    // Descriptors that decode but make no sense.
    use base64::Engine;
    use prost::Message;
    let field =
        |name: &str, number: i32, type_name: Option<&str>| prost_types::FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            r#type: Some(if type_name.is_some() { 11 } else { 9 }),
            type_name: type_name.map(str::to_owned),
            label: Some(1),
            ..Default::default()
        };
    let bogus = [
        vec![field("a", 1, Some(".nowhere.T"))],
        vec![field("a", 1, None), field("b", 1, None)],
        vec![field("a", 0, None)],
    ];
    for fields in bogus {
        let file = prost_types::FileDescriptorProto {
            name: Some("x.proto".into()),
            syntax: Some("proto3".into()),
            message_type: vec![prost_types::DescriptorProto {
                name: Some("M".into()),
                field: fields.clone(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let b64 = base64::engine::general_purpose::STANDARD.encode(file.encode_to_vec());
        assert!(protobuf::parse(&b64, &[]).is_err(), "accepted {fields:?}");
    }
    let missing_import = prost_types::FileDescriptorProto {
        name: Some("x.proto".into()),
        dependency: vec!["other.proto".into()],
        ..Default::default()
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(missing_import.encode_to_vec());
    assert!(protobuf::parse(&b64, &[]).is_err());
}
