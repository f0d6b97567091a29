//! Protobuf schemas: `.proto` text, or a base64 `FileDescriptorProto` (what confluent-kafka's
//! Python serializer registers), compiled by `protox` against the registered schemas it imports
//! (Confluent schema references, named by import path) and the well-known `google/protobuf`
//! files; the descriptor form clients ask for with `format=serialized`; the message-index
//! paths of Confluent's wire format; and Confluent's Protobuf compatibility rules.
//!
//! Compatibility follows Confluent's schema diff (its `protobuf.diff` package): the changes
//! between an original and an updated file are listed, and these are incompatible: package
//! changed, message removed, field kind changed (scalar / message / map), scalar kind changed
//! outside the wire-compatible groups, named type changed (or changed incompatibly), required
//! field added or removed, oneof field removed, several fields moved into one oneof, a field
//! moved into an existing oneof. Everything else (fields and messages added, optional fields
//! removed, renames, enum changes, oneofs added or removed, messages reordered) is compatible.

use std::collections::{BTreeSet, HashMap};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use prost::Message;
use prost_reflect::{DescriptorPool, FieldDescriptor, FileDescriptor, Kind, MessageDescriptor};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

mod print;

/// The name the schema being parsed gets among its imports.
pub const MAIN_FILE: &str = "schema.proto";
/// Bound on message-index nesting read from a framed value.
pub const MAX_MESSAGE_INDEXES: usize = 64;

/// A compiled schema: the pool holds it and everything it imports.
pub struct ParsedProto {
    pub pool: DescriptorPool,
    pub file: FileDescriptor,
}

/// Compiles `text` (`.proto` source or a base64 `FileDescriptorProto`); `references` are the
/// imported schemas as (import path, text), in any order.
pub fn parse(text: &str, references: &[(String, String)]) -> Result<ParsedProto, String> {
    let mut files = HashMap::new();
    for (name, ref_text) in references {
        files.insert(name.clone(), source_file(name, ref_text)?);
    }
    files.insert(MAIN_FILE.to_owned(), source_file(MAIN_FILE, text)?);
    let mut resolver = ChainFileResolver::new();
    resolver.add(Registered(files));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_imports(true).include_source_info(false);
    compiler.open_file(MAIN_FILE).map_err(|e| e.to_string())?;
    let pool = compiler.descriptor_pool();
    let file = pool
        .get_file_by_name(MAIN_FILE)
        .ok_or_else(|| "the schema file was not compiled".to_owned())?;
    Ok(ParsedProto { pool, file })
}

/// The schemas a compile may import: the referenced ones, by import path.
struct Registered(HashMap<String, File>);

impl FileResolver for Registered {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        self.0
            .get(name)
            .cloned()
            .ok_or_else(|| protox::Error::file_not_found(name))
    }
}

fn source_file(name: &str, text: &str) -> Result<File, String> {
    match decode_descriptor(text) {
        Some(mut proto) => {
            proto.name = Some(name.to_owned());
            proto.source_code_info = None;
            Ok(File::from_file_descriptor_proto(proto))
        }
        None => File::from_source(name, text).map_err(|e| e.to_string()),
    }
}

/// A schema given as a base64 `FileDescriptorProto` (never `.proto` text, which always holds
/// whitespace or `;`, neither of them base64).
fn decode_descriptor(text: &str) -> Option<prost_types::FileDescriptorProto> {
    let t = text.trim();
    if t.is_empty() || t.contains(|c: char| c.is_whitespace() || c == ';' || c == '{') {
        return None;
    }
    let bytes = BASE64.decode(t).ok()?;
    prost_types::FileDescriptorProto::decode(bytes.as_slice()).ok()
}

/// Whether `text` is a base64 `FileDescriptorProto` rather than `.proto` source.
pub fn is_descriptor(text: &str) -> bool {
    decode_descriptor(text).is_some()
}

/// The schema as `.proto` text, when it prints and the text compiles back (with the same
/// `references`) to the same descriptor; `None` otherwise.
pub fn proto_text(parsed: &ParsedProto, references: &[(String, String)]) -> Option<String> {
    let text = print::to_proto_text(&parsed.file)?;
    let again = parse(&text, references).ok()?;
    (comparable(&parsed.file) == comparable(&again.file)).then_some(text)
}

/// A descriptor without what printing does not keep: source info, the file name, derived
/// JSON names, an explicit "proto2".
fn comparable(file: &FileDescriptor) -> prost_types::FileDescriptorProto {
    fn strip(m: &mut prost_types::DescriptorProto) {
        for f in m.field.iter_mut().chain(m.extension.iter_mut()) {
            f.json_name = None;
        }
        m.nested_type.iter_mut().for_each(strip);
    }
    let mut p = file.file_descriptor_proto().clone();
    p.source_code_info = None;
    p.name = None;
    if p.syntax.as_deref() == Some("proto2") {
        p.syntax = None;
    }
    p.message_type.iter_mut().for_each(strip);
    for x in &mut p.extension {
        x.json_name = None;
    }
    p
}

/// The schema as a base64 `FileDescriptorProto` without source info: what Confluent serves
/// for `format=serialized`, and the form `normalize` stores (layout and comments gone).
pub fn serialized(parsed: &ParsedProto) -> String {
    let mut proto = parsed.file.file_descriptor_proto().clone();
    proto.source_code_info = None;
    BASE64.encode(proto.encode_to_vec())
}

/// The message at a message-index path (top-level index, then nested indexes).
pub fn message_at(file: &FileDescriptor, indexes: &[i32]) -> Result<MessageDescriptor, String> {
    let mut current: Option<MessageDescriptor> = None;
    for &i in indexes {
        let found = match &current {
            None => usize::try_from(i).ok().and_then(|i| file.messages().nth(i)),
            Some(m) => usize::try_from(i)
                .ok()
                .and_then(|i| m.child_messages().nth(i)),
        };
        current = Some(found.ok_or_else(|| {
            format!("message index {i} (of path {indexes:?}) is not in the schema")
        })?);
    }
    current.ok_or_else(|| "an empty message-index path".to_owned())
}

/// The message-index path of `message` in its file (the inverse of [`message_at`]).
pub fn indexes_of(message: &MessageDescriptor) -> Vec<i32> {
    // The descriptor path alternates field numbers (message_type = 4, nested_type = 3) and
    // indexes.
    message.path().iter().skip(1).step_by(2).copied().collect()
}

/// Finds a message by full name, or by name relative to the file's package; the first
/// message of the file when `name` is `None`.
pub fn find_message(parsed: &ParsedProto, name: Option<&str>) -> Result<MessageDescriptor, String> {
    match name {
        None => parsed
            .file
            .messages()
            .next()
            .ok_or_else(|| "the schema defines no message".to_owned()),
        Some(n) => {
            let package = parsed.file.package_name();
            let qualified = if package.is_empty() {
                n.to_owned()
            } else {
                format!("{package}.{n}")
            };
            parsed
                .pool
                .get_message_by_name(n)
                .or_else(|| parsed.pool.get_message_by_name(&qualified))
                .ok_or_else(|| format!("message '{n}' is not in the schema"))
        }
    }
}

// ---- compatibility ----

/// Why data written with `writer` cannot be read with `reader`: the incompatible changes from
/// `writer` (Confluent's "original") to `reader` (its "update").
pub fn incompatibilities(writer: &ParsedProto, reader: &ParsedProto) -> Vec<String> {
    let mut diff = Diff::default();
    if writer.file.package_name() != reader.file.package_name() {
        diff.fail(
            "PACKAGE_CHANGED",
            "#/",
            format!(
                "package '{}' became '{}'",
                writer.file.package_name(),
                reader.file.package_name()
            ),
        );
    }
    diff.messages(
        writer.file.messages().collect(),
        reader.file.messages().collect(),
        "#",
    );
    diff.out
}

#[derive(Default)]
struct Diff {
    out: Vec<String>,
    /// Message pairs already compared (original, update full names) and whether they were
    /// compatible; a pair being compared counts as compatible, so recursive types end.
    compared: HashMap<(String, String), bool>,
}

/// How a field's type is compared: scalars (enums included) by wire-compatible group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TypeClass {
    Scalar,
    Message,
    Map,
}

/// The groups of scalar types that read each other's wire data (the protobuf language
/// guide's "Updating a message type", as Confluent groups them).
fn scalar_group(kind: &Kind) -> &'static str {
    match kind {
        Kind::Int32 | Kind::Int64 | Kind::Uint32 | Kind::Uint64 | Kind::Bool | Kind::Enum(_) => {
            "int32/int64/uint32/uint64/bool/enum"
        }
        Kind::Sint32 | Kind::Sint64 => "sint32/sint64",
        Kind::String | Kind::Bytes => "string/bytes",
        Kind::Fixed32 | Kind::Sfixed32 => "fixed32/sfixed32",
        Kind::Fixed64 | Kind::Sfixed64 => "fixed64/sfixed64",
        Kind::Float => "float",
        Kind::Double => "double",
        Kind::Message(_) => "message",
    }
}

/// The name of a type within its package (how Confluent matches named types).
fn local_name(m: &MessageDescriptor) -> &str {
    let package = m.package_name();
    if package.is_empty() {
        m.full_name()
    } else {
        m.full_name()
            .strip_prefix(package)
            .and_then(|s| s.strip_prefix('.'))
            .unwrap_or(m.full_name())
    }
}

/// Fields outside real oneofs (proto3 `optional` fields sit in synthetic ones).
fn in_real_oneof(f: &FieldDescriptor) -> Option<String> {
    f.containing_oneof()
        .filter(|o| !o.is_synthetic())
        .map(|o| o.name().to_owned())
}

impl Diff {
    fn fail(&mut self, kind: &str, path: &str, detail: String) {
        self.out.push(format!(
            "{{errorType:'{kind}', description:'{detail}', location:'{path}'}}"
        ));
    }

    /// Messages matched by name (map entries are part of their map field, not messages).
    fn messages(
        &mut self,
        original: Vec<MessageDescriptor>,
        update: Vec<MessageDescriptor>,
        path: &str,
    ) {
        let by_name = |v: Vec<MessageDescriptor>| -> HashMap<String, MessageDescriptor> {
            v.into_iter()
                .filter(|m| !m.is_map_entry())
                .map(|m| (m.name().to_owned(), m))
                .collect()
        };
        let (o, u) = (by_name(original), by_name(update));
        let names: BTreeSet<&String> = o.keys().chain(u.keys()).collect();
        for name in names {
            let sub = format!("{path}/{name}");
            match (o.get(name), u.get(name)) {
                (Some(_), None) => self.fail(
                    "MESSAGE_REMOVED",
                    &sub,
                    format!("message '{name}' was removed"),
                ),
                (Some(om), Some(um)) => {
                    self.message(om, um, &sub);
                }
                _ => {}
            }
        }
    }

    /// Compares two versions of a message; true when every change is compatible.
    fn message(&mut self, o: &MessageDescriptor, u: &MessageDescriptor, path: &str) -> bool {
        let key = (o.full_name().to_owned(), u.full_name().to_owned());
        if let Some(ok) = self.compared.get(&key) {
            return *ok;
        }
        self.compared.insert(key.clone(), true);
        let before = self.out.len();
        self.fields(o, u, path);
        self.messages(
            o.child_messages().collect(),
            u.child_messages().collect(),
            path,
        );
        let ok = self.out.len() == before;
        self.compared.insert(key, ok);
        ok
    }

    fn fields(&mut self, o: &MessageDescriptor, u: &MessageDescriptor, path: &str) {
        let top = |m: &MessageDescriptor| -> HashMap<u32, FieldDescriptor> {
            m.fields()
                .filter(|f| in_real_oneof(f).is_none())
                .map(|f| (f.number(), f))
                .collect()
        };
        let oneof_of = |m: &MessageDescriptor| -> HashMap<u32, String> {
            m.fields()
                .filter_map(|f| in_real_oneof(&f).map(|n| (f.number(), n)))
                .collect()
        };
        let mut o_top = top(o);
        let u_top = top(u);
        let (o_oneof, u_oneof) = (oneof_of(o), oneof_of(u));

        // Fields that moved into a oneof of the update.
        for oneof in u.oneofs().filter(|x| !x.is_synthetic()) {
            let (mut moved, mut existing) = (0, 0);
            for f in oneof.fields() {
                if o_top.remove(&f.number()).is_some() {
                    moved += 1;
                } else if o_oneof.contains_key(&f.number()) {
                    existing += 1;
                }
            }
            let sub = format!("{path}/{}", oneof.name());
            if moved > 1 {
                self.fail(
                    "MULTIPLE_FIELDS_MOVED_TO_ONEOF",
                    &sub,
                    format!("several fields moved into oneof '{}'", oneof.name()),
                );
            } else if moved == 1 && existing > 0 {
                self.fail(
                    "FIELD_MOVED_TO_EXISTING_ONEOF",
                    &sub,
                    format!("a field moved into the existing oneof '{}'", oneof.name()),
                );
            }
        }

        // Oneofs present in both: their fields by number.
        let u_all: HashMap<u32, FieldDescriptor> = u.fields().map(|f| (f.number(), f)).collect();
        for oo in o.oneofs().filter(|x| !x.is_synthetic()) {
            let Some(uo) = u
                .oneofs()
                .filter(|x| !x.is_synthetic())
                .find(|x| x.name() == oo.name())
            else {
                continue;
            };
            for of in oo.fields() {
                let sub = format!("{path}/{}/{}", oo.name(), of.number());
                match uo.fields().find(|f| f.number() == of.number()) {
                    Some(uf) => self.field(&of, &uf, &sub),
                    None if !u_all.contains_key(&of.number()) => self.fail(
                        "ONEOF_FIELD_REMOVED",
                        &sub,
                        format!(
                            "field {} was removed from oneof '{}'",
                            of.number(),
                            oo.name()
                        ),
                    ),
                    None => {}
                }
            }
        }

        // Fields outside oneofs, by number.
        let numbers: BTreeSet<u32> = o_top.keys().chain(u_top.keys()).copied().collect();
        for n in numbers {
            let sub = format!("{path}/{n}");
            match (o_top.get(&n), u_top.get(&n)) {
                (Some(of), None) if of.is_required() => self.fail(
                    "REQUIRED_FIELD_REMOVED",
                    &sub,
                    format!("required field '{}' was removed", of.name()),
                ),
                (None, Some(uf)) if uf.is_required() => self.fail(
                    "REQUIRED_FIELD_ADDED",
                    &sub,
                    format!("required field '{}' was added", uf.name()),
                ),
                (Some(of), Some(uf)) => self.field(of, uf, &sub),
                _ => {}
            }
        }

        // Fields whose oneof membership changed are compared by number too.
        let o_all: HashMap<u32, FieldDescriptor> = o.fields().map(|f| (f.number(), f)).collect();
        let mut common: Vec<u32> = o_all
            .keys()
            .filter(|n| u_all.contains_key(n))
            .copied()
            .collect();
        common.sort_unstable();
        for n in common {
            let (a, b) = (o_oneof.get(&n), u_oneof.get(&n));
            let same_place = (a.is_none() && b.is_none()) || (a.is_some() && a == b);
            if !same_place {
                self.field(&o_all[&n], &u_all[&n], &format!("{path}/{n}"));
            }
        }
    }

    fn field(&mut self, o: &FieldDescriptor, u: &FieldDescriptor, path: &str) {
        let class = |f: &FieldDescriptor| {
            if f.is_map() {
                TypeClass::Map
            } else if matches!(f.kind(), Kind::Message(_)) {
                TypeClass::Message
            } else {
                TypeClass::Scalar
            }
        };
        let (oc, uc) = (class(o), class(u));
        if oc != uc {
            self.fail(
                "FIELD_KIND_CHANGED",
                path,
                format!("field '{}' changed from {oc:?} to {uc:?}", o.name()),
            );
            return;
        }
        match oc {
            TypeClass::Map => {
                let (Kind::Message(om), Kind::Message(um)) = (o.kind(), u.kind()) else {
                    unreachable!("a map field's type is its entry message");
                };
                self.field(
                    &om.map_entry_key_field(),
                    &um.map_entry_key_field(),
                    &format!("{path}/key"),
                );
                self.field(
                    &om.map_entry_value_field(),
                    &um.map_entry_value_field(),
                    &format!("{path}/value"),
                );
            }
            TypeClass::Message | TypeClass::Scalar => self.types(&o.kind(), &u.kind(), path),
        }
    }

    fn types(&mut self, o: &Kind, u: &Kind, path: &str) {
        match (o, u) {
            (Kind::Message(om), Kind::Message(um)) => {
                if local_name(om) != local_name(um) {
                    self.fail(
                        "FIELD_NAMED_TYPE_CHANGED",
                        path,
                        format!("type '{}' became '{}'", om.full_name(), um.full_name()),
                    );
                } else if !self.message(om, um, &format!("#/{}", local_name(om))) {
                    self.fail(
                        "FIELD_NAMED_TYPE_CHANGED",
                        path,
                        format!("type '{}' changed incompatibly", om.full_name()),
                    );
                }
            }
            _ => {
                let (og, ug) = (scalar_group(o), scalar_group(u));
                if og != ug {
                    self.fail(
                        "FIELD_SCALAR_KIND_CHANGED",
                        path,
                        format!("scalar kind {og} became {ug}"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_text_and_descriptors_and_finds_messages() {
        let p = parse(
            "syntax = \"proto3\"; package a.b;\nimport \"google/protobuf/timestamp.proto\";\n\
             message X { google.protobuf.Timestamp at = 1; message Y { int32 n = 1; } }\n\
             message Z { X.Y y = 1; }",
            &[],
        )
        .unwrap();
        let z = find_message(&p, Some("Z")).unwrap();
        assert_eq!(z.full_name(), "a.b.Z");
        assert_eq!(indexes_of(&z), vec![1]);
        let y = find_message(&p, Some("a.b.X.Y")).unwrap();
        assert_eq!(indexes_of(&y), vec![0, 0]);
        assert_eq!(message_at(&p.file, &[0, 0]).unwrap().full_name(), "a.b.X.Y");
        assert!(message_at(&p.file, &[2]).is_err());
        assert!(message_at(&p.file, &[-1]).is_err());
        // The descriptor form compiles to the same messages.
        let again = parse(&serialized(&p), &[]).unwrap();
        assert_eq!(find_message(&again, None).unwrap().full_name(), "a.b.X");
        assert!(parse("message {", &[]).is_err());
        assert!(parse("syntax = \"proto3\"; import \"missing.proto\";", &[]).is_err());
    }
    #[test]
    fn descriptors_print_back_to_the_same_file() {
        let proto3 = r#"syntax = "proto3";
package shop.v1;
import "google/protobuf/timestamp.proto";
option java_package = "com.example.shop";
option optimize_for = SPEED;
// An order.
message Order {
  option deprecated = true;
  message Line { string sku = 1; int32 qty = 2; }
  map<string, int64> counts = 1;
  enum Status { option allow_alias = true; NEW = 0; OPEN = 0; PAID = 1 [deprecated = true]; reserved 5 to 9; reserved "OLD"; }
  repeated Line lines = 2 [deprecated = true];
  message Note { string text = 1; }
  map<int32, Note> notes = 3;
  optional string memo = 4 [json_name = "m"];
  oneof pay { string card = 5; bytes token = 6; }
  google.protobuf.Timestamp at = 7;
  Status status = 8;
  repeated int32 packed = 9 [packed = false];
  reserved 20, 30 to 40;
  reserved "gone";
}
service Orders { rpc Get (Order) returns (stream Order); rpc Put (stream Order) returns (Order) { option deprecated = true; } }
"#;
        let proto2 = r#"syntax = "proto2";
package legacy;
message M {
  required int64 id = 1;
  optional string name = 2 [default = "a \"q\"\n"];
  optional bytes raw = 3 [default = "\001x"];
  optional E e = 4 [default = B];
  optional double d = 5 [default = inf];
  extensions 100 to 199, 1000 to max;
  enum E { A = 1; B = 2; }
}
extend M { optional int32 extra = 100; repeated string more = 101; }
"#;
        for text in [proto3, proto2] {
            let parsed = parse(text, &[]).unwrap();
            let printed = proto_text(&parsed, &[]).unwrap_or_else(|| {
                panic!(
                    "did not round-trip:\n{}",
                    print::to_proto_text(&parsed.file).unwrap_or_default()
                )
            });
            assert!(!printed.contains("//"), "{printed}");
            // From the descriptor form too.
            let again = parse(&serialized(&parsed), &[]).unwrap();
            assert_eq!(proto_text(&again, &[]).as_deref(), Some(printed.as_str()));
        }
        let parsed = parse(proto3, &[]).unwrap();
        let printed = proto_text(&parsed, &[]).unwrap();
        for part in [
            "map<string, int64> counts = 1;",
            "optional string memo = 4 [json_name = \"m\"];",
            "oneof pay {",
            "rpc Put (stream .shop.v1.Order) returns (.shop.v1.Order) {",
            "option java_package = \"com.example.shop\";",
            "reserved 30 to 40;",
        ] {
            assert!(printed.contains(part), "{part} not in\n{printed}");
        }
    }
}
