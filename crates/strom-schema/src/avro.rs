//! Avro schemas: parsing (with Confluent schema references) through `apache-avro`, and the
//! reader/writer compatibility check with the semantics of Avro Java's `SchemaCompatibility`,
//! which is what Confluent's registry applies: same-type rules, int→long→float→double and
//! string↔bytes promotion, record fields matched by name or reader alias (a reader field
//! missing from the writer needs a default), enum symbols (unless the reader has a default),
//! named types matched by unqualified name or reader alias, unions branch by branch. Logical
//! types are checked as their underlying types, as Java does.

use std::collections::{HashMap, HashSet};

use apache_avro::schema::{Name, RecordSchema, UnionSchema};
use apache_avro::Schema;

/// A parsed Avro schema with the named types its references define.
pub struct ParsedAvro {
    pub schema: Schema,
    /// The referenced schemas, parsed (encoding and decoding need them to resolve names).
    pub schemata: Vec<Schema>,
    pub named: HashMap<String, Schema>,
}

/// Parses `text`, resolving named types against `references` (schema texts, dependencies
/// first). The error is apache-avro's message.
pub fn parse(text: &str, references: &[String]) -> Result<ParsedAvro, String> {
    let (schema, schemata) = if references.is_empty() {
        (
            Schema::parse_str(text).map_err(|e| e.to_string())?,
            Vec::new(),
        )
    } else {
        Schema::parse_str_with_list(text, references).map_err(|e| e.to_string())?
    };
    let mut named = HashMap::new();
    for s in schemata.iter().chain(std::iter::once(&schema)) {
        collect_named(s, &mut named);
    }
    Ok(ParsedAvro {
        schema,
        schemata,
        named,
    })
}

fn collect_named(schema: &Schema, out: &mut HashMap<String, Schema>) {
    match schema {
        Schema::Record(r) => {
            out.insert(r.name.fullname(None), schema.clone());
            for f in &r.fields {
                collect_named(&f.schema, out);
            }
        }
        Schema::Enum(e) => {
            out.insert(e.name.fullname(None), schema.clone());
        }
        Schema::Fixed(f) => {
            out.insert(f.name.fullname(None), schema.clone());
        }
        Schema::Array(a) => collect_named(&a.items, out),
        Schema::Map(m) => collect_named(&m.types, out),
        Schema::Union(u) => u.variants().iter().for_each(|v| collect_named(v, out)),
        _ => {}
    }
}

/// The Avro types that compatibility distinguishes (logical types fold into these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array,
    Map,
    Union,
    Record,
    Enum,
    Fixed,
}

fn kind(s: &Schema) -> Kind {
    use apache_avro::schema::{InnerDecimalSchema, UuidSchema};
    match s {
        Schema::Null => Kind::Null,
        Schema::Boolean => Kind::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => Kind::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Kind::Long,
        Schema::Float => Kind::Float,
        Schema::Double => Kind::Double,
        Schema::Bytes | Schema::BigDecimal => Kind::Bytes,
        Schema::Decimal(d) => match d.inner {
            InnerDecimalSchema::Bytes => Kind::Bytes,
            InnerDecimalSchema::Fixed(_) => Kind::Fixed,
        },
        Schema::Uuid(UuidSchema::Bytes) => Kind::Bytes,
        Schema::Uuid(UuidSchema::String) => Kind::String,
        Schema::Uuid(UuidSchema::Fixed(_)) | Schema::Duration(_) | Schema::Fixed(_) => Kind::Fixed,
        Schema::String => Kind::String,
        Schema::Array(_) => Kind::Array,
        Schema::Map(_) => Kind::Map,
        Schema::Union(_) => Kind::Union,
        Schema::Record(_) => Kind::Record,
        Schema::Enum(_) => Kind::Enum,
        // Only named types (record, enum, fixed) are referenced by name; callers resolve
        // references first and report the ones they cannot.
        Schema::Ref { .. } => Kind::Record,
    }
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Null => "NULL",
        Kind::Boolean => "BOOLEAN",
        Kind::Int => "INT",
        Kind::Long => "LONG",
        Kind::Float => "FLOAT",
        Kind::Double => "DOUBLE",
        Kind::Bytes => "BYTES",
        Kind::String => "STRING",
        Kind::Array => "ARRAY",
        Kind::Map => "MAP",
        Kind::Union => "UNION",
        Kind::Record => "RECORD",
        Kind::Enum => "ENUM",
        Kind::Fixed => "FIXED",
    }
}

/// Checks whether data written with `writer` can be read with `reader`. Returns one message
/// per incompatibility (empty = compatible), each naming the location as Confluent does.
pub fn incompatibilities(writer: &ParsedAvro, reader: &ParsedAvro) -> Vec<String> {
    let mut checker = Checker {
        writer_names: &writer.named,
        reader_names: &reader.named,
        in_progress: HashSet::new(),
        found: Vec::new(),
    };
    checker.check(&writer.schema, &reader.schema, "/");
    checker.found
}

struct Checker<'a> {
    writer_names: &'a HashMap<String, Schema>,
    reader_names: &'a HashMap<String, Schema>,
    /// (writer, reader) named-type pairs being checked: a recursive type meets itself here and
    /// is taken as compatible, as Java's checker does.
    in_progress: HashSet<(String, String)>,
    found: Vec<String>,
}

fn resolve<'s>(s: &'s Schema, names: &'s HashMap<String, Schema>) -> &'s Schema {
    match s {
        Schema::Ref { name } => names.get(&name.fullname(None)).unwrap_or(s),
        _ => s,
    }
}

fn named(s: &Schema) -> Option<(&Name, Vec<String>)> {
    let aliases = |a: &Option<Vec<apache_avro::schema::Alias>>| {
        a.iter()
            .flatten()
            .map(|a| a.fullname(None))
            .collect::<Vec<_>>()
    };
    match s {
        Schema::Record(r) => Some((&r.name, aliases(&r.aliases))),
        Schema::Enum(e) => Some((&e.name, aliases(&e.aliases))),
        Schema::Fixed(f) => Some((&f.name, aliases(&f.aliases))),
        _ => None,
    }
}

impl Checker<'_> {
    fn check(&mut self, writer: &Schema, reader: &Schema, path: &str) {
        let before = self.found.len();
        self.check_inner(writer, reader, path);
        debug_assert!(self.found.len() >= before);
    }

    fn fail(&mut self, kind: &str, path: &str, detail: String) {
        self.found.push(format!(
            "{{errorType:'{kind}', description:'{detail}', location:'{path}'}}"
        ));
    }

    /// Java's `schemaNameEquals`: same unqualified name, or the reader lists the writer's
    /// full name among its aliases.
    fn names_match(writer: &Schema, reader: &Schema) -> bool {
        match (named(writer), named(reader)) {
            (Some((w, _)), Some((r, r_aliases))) => {
                w.name() == r.name() || r_aliases.contains(&w.fullname(None))
            }
            _ => true,
        }
    }

    fn check_inner(&mut self, writer: &Schema, reader: &Schema, path: &str) {
        let writer = resolve(writer, self.writer_names);
        let reader = resolve(reader, self.reader_names);
        if matches!(writer, Schema::Ref { .. }) || matches!(reader, Schema::Ref { .. }) {
            self.fail(
                "TYPE_MISMATCH",
                path,
                "a named type could not be resolved".into(),
            );
            return;
        }
        let (wk, rk) = (kind(writer), kind(reader));
        if wk == rk {
            self.same_kind(writer, reader, wk, path);
            return;
        }
        if let Schema::Union(w) = writer {
            self.writer_union(w, reader, path);
            return;
        }
        if let Schema::Union(r) = reader {
            self.reader_union(writer, r, path);
            return;
        }
        let promotable = matches!(
            (wk, rk),
            (Kind::Int, Kind::Long | Kind::Float | Kind::Double)
                | (Kind::Long, Kind::Float | Kind::Double)
                | (Kind::Float, Kind::Double)
                | (Kind::String, Kind::Bytes)
                | (Kind::Bytes, Kind::String)
        );
        if !promotable {
            self.fail(
                "TYPE_MISMATCH",
                path,
                format!(
                    "The type (path '{path}') of a field in the new schema does not match with the old schema: reader type {} is not compatible with writer type {}",
                    kind_name(rk),
                    kind_name(wk)
                ),
            );
        }
    }

    fn same_kind(&mut self, writer: &Schema, reader: &Schema, k: Kind, path: &str) {
        let named_kind = matches!(k, Kind::Record | Kind::Enum | Kind::Fixed);
        if named_kind && !Self::names_match(writer, reader) {
            let (w, r) = (
                named(writer).map(|n| n.0.fullname(None)),
                named(reader).map(|n| n.0.fullname(None)),
            );
            self.fail(
                "NAME_MISMATCH",
                &format!("{path}name"),
                format!(
                    "The name of the schema has changed (path '{path}name'): expected {}, found {}",
                    w.unwrap_or_default(),
                    r.unwrap_or_default()
                ),
            );
            return;
        }
        match (writer, reader) {
            (Schema::Array(w), Schema::Array(r)) => {
                self.check(&w.items, &r.items, &format!("{path}items/"))
            }
            (Schema::Map(w), Schema::Map(r)) => {
                self.check(&w.types, &r.types, &format!("{path}values/"))
            }
            (Schema::Union(w), _) => self.writer_union(w, reader, path),
            (Schema::Record(w), Schema::Record(r)) => self.records(w, r, path),
            (Schema::Enum(w), Schema::Enum(r)) => {
                if r.default.is_none() {
                    let missing: Vec<&String> = w
                        .symbols
                        .iter()
                        .filter(|s| !r.symbols.contains(s))
                        .collect();
                    if !missing.is_empty() {
                        self.fail(
                            "MISSING_ENUM_SYMBOLS",
                            &format!("{path}symbols"),
                            format!(
                                "The new schema is missing enum symbols '{}' at path '{path}symbols' in the old schema",
                                missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                            ),
                        );
                    }
                }
            }
            _ => {
                let (ws, rs) = (fixed_size(writer), fixed_size(reader));
                if ws != rs {
                    self.fail(
                        "FIXED_SIZE_MISMATCH",
                        &format!("{path}size"),
                        format!(
                            "The size of FIXED type field at path '{path}size' in the new schema does not match with the old schema: expected {}, found {}",
                            ws.unwrap_or(0),
                            rs.unwrap_or(0)
                        ),
                    );
                }
            }
        }
    }

    fn records(&mut self, w: &RecordSchema, r: &RecordSchema, path: &str) {
        let key = (w.name.fullname(None), r.name.fullname(None));
        if !self.in_progress.insert(key.clone()) {
            return;
        }
        for (i, rf) in r.fields.iter().enumerate() {
            let wf = std::iter::once(&rf.name)
                .chain(rf.aliases.iter())
                .find_map(|n| w.fields.iter().find(|wf| &wf.name == n));
            match wf {
                Some(wf) => {
                    self.check(&wf.schema, &rf.schema, &format!("{path}fields/{i}/type/"))
                }
                None if rf.default.is_none() => self.fail(
                    "READER_FIELD_MISSING_DEFAULT_VALUE",
                    &format!("{path}fields/{i}"),
                    format!(
                        "The field '{}' at path '{path}fields/{i}' in the new schema has no default value and is missing in the old schema",
                        rf.name
                    ),
                ),
                None => {}
            }
        }
        self.in_progress.remove(&key);
    }

    /// Every branch the writer may have used must be readable.
    fn writer_union(&mut self, w: &UnionSchema, reader: &Schema, path: &str) {
        for (i, branch) in w.variants().iter().enumerate() {
            let mut sub = Checker {
                writer_names: self.writer_names,
                reader_names: self.reader_names,
                in_progress: self.in_progress.clone(),
                found: Vec::new(),
            };
            sub.check(branch, reader, &format!("{path}{i}/"));
            if !sub.found.is_empty() {
                self.fail(
                    "MISSING_UNION_BRANCH",
                    &format!("{path}{i}"),
                    format!(
                        "The new schema is missing a type inside a union field at path '{path}{i}' in the old schema: {}",
                        sub.found.join("; ")
                    ),
                );
            }
        }
    }

    /// A non-union writer needs one reader branch that reads it.
    fn reader_union(&mut self, writer: &Schema, r: &UnionSchema, path: &str) {
        let ok = r.variants().iter().any(|branch| {
            let mut sub = Checker {
                writer_names: self.writer_names,
                reader_names: self.reader_names,
                in_progress: self.in_progress.clone(),
                found: Vec::new(),
            };
            sub.check(writer, branch, path);
            sub.found.is_empty()
        });
        if !ok {
            self.fail(
                "TYPE_MISMATCH",
                path,
                format!(
                    "The type (path '{path}') of a field in the new schema does not match with the old schema: reader union lacking writer type {}",
                    kind_name(kind(resolve(writer, self.writer_names)))
                ),
            );
        }
    }
}

fn fixed_size(s: &Schema) -> Option<usize> {
    use apache_avro::schema::{InnerDecimalSchema, UuidSchema};
    match s {
        Schema::Fixed(f) | Schema::Duration(f) | Schema::Uuid(UuidSchema::Fixed(f)) => Some(f.size),
        Schema::Decimal(d) => match &d.inner {
            InnerDecimalSchema::Fixed(f) => Some(f.size),
            InnerDecimalSchema::Bytes => None,
        },
        _ => None,
    }
}
