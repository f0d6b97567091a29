//! Transforms that reshape a record's key or value: InsertField, ReplaceField, MaskField,
//! ValueToKey, ExtractField, HoistField, Flatten, SetSchemaMetadata (Cast and
//! TimestampConverter are in `convert`). Each works on structs with a schema and on schemaless
//! maps, as Kafka's do; the helpers here are shared with `convert`.

use super::{Side, TransformPlugin, Transformation};
use crate::config::{get_list, ConfigDef, ConfigType, Importance, Props};
use crate::data::{Record, Schema, SchemaType, Struct, Value, TIMESTAMP};
use crate::error::{ConnectError, Result};

macro_rules! sided {
    ($key:ident, $value:ident, $name:literal, $def:expr, $make:expr) => {
        pub const $key: TransformPlugin = TransformPlugin {
            class: concat!("org.apache.kafka.connect.transforms.", $name, "$Key"),
            config_def: $def,
            make: |p| $make(p, Side::Key),
        };
        pub const $value: TransformPlugin = TransformPlugin {
            class: concat!("org.apache.kafka.connect.transforms.", $name, "$Value"),
            config_def: $def,
            make: |p| $make(p, Side::Value),
        };
    };
}

pub(super) fn data_err(msg: impl Into<String>) -> ConnectError {
    ConnectError::Data(msg.into())
}

pub(super) fn need_struct_or_map<'a>(purpose: &str, v: &'a Value) -> Result<&'a Value> {
    match v {
        Value::Struct(_) | Value::Map(_) => Ok(v),
        other => Err(data_err(format!(
            "Only Struct (with schema) or Map (schemaless) objects supported by [{purpose}]; found {}",
            other.type_name()
        ))),
    }
}

/// A map value with string keys from (name, value) pairs.
fn string_map(entries: Vec<(String, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (Value::String(k), v))
            .collect(),
    )
}

/// (name, schema, value) of each field of a struct or entry of a string-keyed map.
pub(super) fn entries(schema: Option<&Schema>, v: &Value) -> Vec<(String, Option<Schema>, Value)> {
    match (schema, v) {
        (_, Value::Struct(st)) => st
            .schema
            .fields
            .iter()
            .zip(&st.values)
            .map(|(f, v)| (f.name.clone(), Some(f.schema.clone()), v.clone()))
            .collect(),
        (_, Value::Map(m)) => m
            .iter()
            .map(|(k, v)| (k.to_display(), None, v.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

/// Rebuilds a struct (when the input had a schema) or a map from (name, schema, value).
pub(super) fn rebuild(
    old: Option<&Schema>,
    fields: Vec<(String, Option<Schema>, Value)>,
) -> Result<(Option<Schema>, Value)> {
    match old {
        Some(os) => {
            let mut schema = Schema::structure(vec![]);
            schema.name = os.name.clone();
            schema.version = os.version;
            schema.doc = os.doc.clone();
            schema.optional = os.optional;
            for (n, s, _) in &fields {
                let s = s
                    .clone()
                    .unwrap_or_else(|| Schema::new(SchemaType::String).optional());
                schema = schema.with_field(n, s);
            }
            let mut st = Struct::new(schema.clone());
            for (i, (_, _, v)) in fields.into_iter().enumerate() {
                st.values[i] = v;
            }
            Ok((Some(schema), Value::Struct(st)))
        }
        None => Ok((
            None,
            string_map(fields.into_iter().map(|(n, _, v)| (n, v)).collect()),
        )),
    }
}

/// The value without the named fields (HeaderFrom's `move`).
pub fn without_fields(
    schema: Option<&Schema>,
    v: &Value,
    names: &[&str],
) -> Result<(Option<Schema>, Value)> {
    let kept = entries(schema, v)
        .into_iter()
        .filter(|(n, _, _)| !names.contains(&n.as_str()))
        .collect();
    rebuild(schema, kept)
}

// ---- InsertField ----

fn insert_field_def() -> ConfigDef {
    let mut d = ConfigDef::new();
    for (k, doc) in [
        ("topic.field", "Field name for Kafka topic. Suffix with ! to make this a required field, or ? to keep it optional (the default)."),
        ("partition.field", "Field name for Kafka partition. Suffix with ! to make this a required field, or ? to keep it optional (the default)."),
        ("timestamp.field", "Field name for record timestamp. Suffix with ! to make this a required field, or ? to keep it optional (the default)."),
        ("static.field", "Field name for static data field. Suffix with ! to make this a required field, or ? to keep it optional (the default)."),
        ("static.value", "Static field value, if field name configured."),
    ] {
        d = d.define(k, ConfigType::String, Some(""), Importance::Medium, doc);
    }
    d
}

struct InsertField {
    side: Side,
    /// (field name, optional?, what)
    fields: Vec<(String, bool, InsertWhat)>,
}

#[derive(Clone)]
enum InsertWhat {
    Topic,
    Partition,
    Timestamp,
    Static(String),
}

fn make_insert_field(p: &Props, side: Side) -> Result<Box<dyn Transformation>> {
    let mut fields = Vec::new();
    for (key, what) in [
        ("topic.field", InsertWhat::Topic),
        ("partition.field", InsertWhat::Partition),
        ("timestamp.field", InsertWhat::Timestamp),
        (
            "static.field",
            InsertWhat::Static(p.get("static.value").cloned().unwrap_or_default()),
        ),
    ] {
        if let Some(name) = p.get(key).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            let (n, optional) = match name.strip_suffix('!') {
                Some(n) => (n, false),
                None => (name.strip_suffix('?').unwrap_or(name), true),
            };
            fields.push((n.to_owned(), optional, what));
        }
    }
    Ok(Box::new(InsertField { side, fields }))
}

impl Transformation for InsertField {
    fn apply(&self, mut r: Record) -> Result<Option<Record>> {
        let (schema, value) = self.side.get(&r);
        if value.is_null() {
            return Ok(Some(r));
        }
        need_struct_or_map("field insertion", value)?;
        let mut fields = entries(schema, value);
        let schema = schema.cloned();
        for (name, optional, what) in &self.fields {
            let (mut s, v) = match what {
                InsertWhat::Topic => (
                    Schema::new(SchemaType::String),
                    Value::String(r.topic.clone()),
                ),
                InsertWhat::Partition => (
                    Schema::new(SchemaType::Int32),
                    r.kafka_partition.map(Value::Int32).unwrap_or(Value::Null),
                ),
                InsertWhat::Timestamp => (
                    Schema::new(SchemaType::Int64).named(TIMESTAMP),
                    r.timestamp.map(Value::Int64).unwrap_or(Value::Null),
                ),
                InsertWhat::Static(text) => {
                    (Schema::new(SchemaType::String), Value::String(text.clone()))
                }
            };
            s.optional = *optional;
            fields.push((name.clone(), Some(s), v));
        }
        let (s, v) = rebuild(schema.as_ref(), fields)?;
        self.side.set(&mut r, s, v);
        Ok(Some(r))
    }
}

sided!(
    INSERT_FIELD_KEY,
    INSERT_FIELD_VALUE,
    "InsertField",
    insert_field_def,
    make_insert_field
);

// ---- ReplaceField ----

fn replace_field_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "exclude",
            ConfigType::List,
            Some(""),
            Importance::Medium,
            "Fields to exclude. This takes precedence over the fields to include.",
        )
        .define(
            "include",
            ConfigType::List,
            Some(""),
            Importance::Medium,
            "Fields to include. If specified, only these fields will be used.",
        )
        .define(
            "renames",
            ConfigType::List,
            Some(""),
            Importance::Medium,
            "Field rename mappings.",
        )
}

struct ReplaceField {
    side: Side,
    exclude: Vec<String>,
    include: Vec<String>,
    renames: Vec<(String, String)>,
}

fn make_replace_field(p: &Props, side: Side) -> Result<Box<dyn Transformation>> {
    let mut renames = Vec::new();
    for pair in get_list(p, "renames") {
        let (a, b) = pair.split_once(':').ok_or_else(|| {
            ConnectError::InvalidConfig(format!(
                "Invalid value [{pair}] for configuration renames: Invalid rename mapping: {pair}"
            ))
        })?;
        renames.push((a.to_owned(), b.to_owned()));
    }
    Ok(Box::new(ReplaceField {
        side,
        exclude: get_list(p, "exclude"),
        include: get_list(p, "include"),
        renames,
    }))
}

impl Transformation for ReplaceField {
    fn apply(&self, mut r: Record) -> Result<Option<Record>> {
        let (schema, value) = self.side.get(&r);
        if value.is_null() {
            return Ok(Some(r));
        }
        need_struct_or_map("field replacement", value)?;
        let kept = entries(schema, value)
            .into_iter()
            .filter(|(n, _, _)| {
                !self.exclude.contains(n) && (self.include.is_empty() || self.include.contains(n))
            })
            .map(|(n, s, v)| {
                let n = self
                    .renames
                    .iter()
                    .find(|(from, _)| *from == n)
                    .map(|(_, to)| to.clone())
                    .unwrap_or(n);
                (n, s, v)
            })
            .collect();
        let (s, v) = rebuild(schema.cloned().as_ref(), kept)?;
        self.side.set(&mut r, s, v);
        Ok(Some(r))
    }
}

sided!(
    REPLACE_FIELD_KEY,
    REPLACE_FIELD_VALUE,
    "ReplaceField",
    replace_field_def,
    make_replace_field
);

// ---- MaskField ----

fn mask_field_def() -> ConfigDef {
    ConfigDef::new()
        .define("fields", ConfigType::List, None, Importance::High, "Names of fields to mask.")
        .define("replacement", ConfigType::String, Some(""), Importance::Low, "Custom value replacement, that will be applied to all 'fields' values (numeric or non-empty string values only).")
}

struct MaskField {
    side: Side,
    fields: Vec<String>,
    replacement: Option<String>,
}

fn make_mask_field(p: &Props, side: Side) -> Result<Box<dyn Transformation>> {
    Ok(Box::new(MaskField {
        side,
        fields: get_list(p, "fields"),
        replacement: p.get("replacement").filter(|s| !s.is_empty()).cloned(),
    }))
}

fn masked(v: &Value, replacement: Option<&str>) -> Result<Value> {
    let bad = |t: &str| {
        data_err(format!(
            "Unable to convert {} ({t}) to number",
            replacement.unwrap_or("")
        ))
    };
    Ok(match (v, replacement) {
        (Value::Null, _) => Value::Null,
        (Value::String(_), r) => Value::String(r.unwrap_or("").to_owned()),
        (Value::Int8(_), r) => Value::Int8(
            r.map(|s| s.parse().map_err(|_| bad("int8")))
                .transpose()?
                .unwrap_or(0),
        ),
        (Value::Int16(_), r) => Value::Int16(
            r.map(|s| s.parse().map_err(|_| bad("int16")))
                .transpose()?
                .unwrap_or(0),
        ),
        (Value::Int32(_), r) => Value::Int32(
            r.map(|s| s.parse().map_err(|_| bad("int32")))
                .transpose()?
                .unwrap_or(0),
        ),
        (Value::Int64(_), r) => Value::Int64(
            r.map(|s| s.parse().map_err(|_| bad("int64")))
                .transpose()?
                .unwrap_or(0),
        ),
        (Value::Float32(_), r) => Value::Float32(
            r.map(|s| s.parse().map_err(|_| bad("float32")))
                .transpose()?
                .unwrap_or(0.0),
        ),
        (Value::Float64(_), r) => Value::Float64(
            r.map(|s| s.parse().map_err(|_| bad("float64")))
                .transpose()?
                .unwrap_or(0.0),
        ),
        (Value::Boolean(_), None) => Value::Boolean(false),
        (Value::Bytes(_), None) => Value::Bytes(Vec::new()),
        (Value::Array(_), None) => Value::Array(Vec::new()),
        (Value::Map(_), None) => Value::Map(Vec::new()),
        (other, _) => {
            return Err(data_err(format!(
                "Cannot mask value of type {} with custom replacement",
                other.type_name()
            )))
        }
    })
}

impl Transformation for MaskField {
    fn apply(&self, mut r: Record) -> Result<Option<Record>> {
        let (schema, value) = self.side.get(&r);
        if value.is_null() {
            return Ok(Some(r));
        }
        need_struct_or_map("mask fields", value)?;
        let mut fields = entries(schema, value);
        for (n, _, v) in &mut fields {
            if self.fields.contains(n) {
                *v = masked(v, self.replacement.as_deref())?;
            }
        }
        let (s, v) = rebuild(schema.cloned().as_ref(), fields)?;
        self.side.set(&mut r, s, v);
        Ok(Some(r))
    }
}

sided!(
    MASK_FIELD_KEY,
    MASK_FIELD_VALUE,
    "MaskField",
    mask_field_def,
    make_mask_field
);

// ---- ValueToKey ----

pub const VALUE_TO_KEY: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.ValueToKey",
    config_def: || {
        ConfigDef::new().define(
            "fields",
            ConfigType::List,
            None,
            Importance::High,
            "Field names on the record value to extract as the record key.",
        )
    },
    make: |p| {
        Ok(Box::new(ValueToKey {
            fields: get_list(p, "fields"),
        }))
    },
};

struct ValueToKey {
    fields: Vec<String>,
}

impl Transformation for ValueToKey {
    fn apply(&self, mut r: Record) -> Result<Option<Record>> {
        need_struct_or_map("copying fields from value to key", &r.value)?;
        let all = entries(r.value_schema.as_ref(), &r.value);
        let mut picked = Vec::new();
        for f in &self.fields {
            let e = all.iter().find(|(n, _, _)| n == f);
            match (e, &r.value_schema) {
                (Some(e), _) => picked.push(e.clone()),
                (None, Some(_)) => return Err(data_err(format!("{f} is not a valid field name"))),
                (None, None) => picked.push((f.clone(), None, Value::Null)),
            }
        }
        let (s, v) = rebuild(
            r.value_schema
                .as_ref()
                .map(|_| Schema::structure(vec![]))
                .as_ref(),
            picked,
        )?;
        r.key_schema = s;
        r.key = v;
        Ok(Some(r))
    }
}

// ---- ExtractField ----

fn extract_field_def() -> ConfigDef {
    ConfigDef::new().define(
        "field",
        ConfigType::String,
        None,
        Importance::Medium,
        "Field name to extract.",
    )
}

struct ExtractField {
    side: Side,
    field: String,
}

fn make_extract_field(p: &Props, side: Side) -> Result<Box<dyn Transformation>> {
    Ok(Box::new(ExtractField {
        side,
        field: p.get("field").cloned().unwrap_or_default(),
    }))
}

impl Transformation for ExtractField {
    fn apply(&self, mut r: Record) -> Result<Option<Record>> {
        let (schema, value) = self.side.get(&r);
        if value.is_null() {
            return Ok(Some(r));
        }
        need_struct_or_map("field extraction", value)?;
        let (s, v) = match (schema, value) {
            (Some(_), Value::Struct(st)) => {
                let f = st
                    .schema
                    .field(&self.field)
                    .ok_or_else(|| data_err(format!("{} is not a valid field name", self.field)))?;
                (
                    Some(f.schema.clone()),
                    st.get(&self.field).cloned().unwrap_or(Value::Null),
                )
            }
            (_, v) => (None, v.map_get(&self.field).cloned().unwrap_or(Value::Null)),
        };
        self.side.set(&mut r, s, v);
        Ok(Some(r))
    }
}

sided!(
    EXTRACT_FIELD_KEY,
    EXTRACT_FIELD_VALUE,
    "ExtractField",
    extract_field_def,
    make_extract_field
);

// ---- HoistField ----

fn hoist_field_def() -> ConfigDef {
    ConfigDef::new().define(
        "field",
        ConfigType::String,
        None,
        Importance::Medium,
        "Field name for the single field that will be created in the resulting Struct or Map.",
    )
}

struct HoistField {
    side: Side,
    field: String,
}

fn make_hoist_field(p: &Props, side: Side) -> Result<Box<dyn Transformation>> {
    Ok(Box::new(HoistField {
        side,
        field: p.get("field").cloned().unwrap_or_default(),
    }))
}

impl Transformation for HoistField {
    fn apply(&self, mut r: Record) -> Result<Option<Record>> {
        let (schema, value) = self.side.get(&r);
        let (s, v) = match schema {
            Some(inner) => {
                let s = Schema::structure(vec![]).with_field(&self.field, inner.clone());
                let mut st = Struct::new(s.clone());
                st.values[0] = value.clone();
                (Some(s), Value::Struct(st))
            }
            None => (None, string_map(vec![(self.field.clone(), value.clone())])),
        };
        self.side.set(&mut r, s, v);
        Ok(Some(r))
    }
}

sided!(
    HOIST_FIELD_KEY,
    HOIST_FIELD_VALUE,
    "HoistField",
    hoist_field_def,
    make_hoist_field
);

// ---- SetSchemaMetadata ----

fn set_schema_metadata_def() -> ConfigDef {
    ConfigDef::new()
        .define(
            "schema.name",
            ConfigType::String,
            Some(""),
            Importance::High,
            "Schema name to set.",
        )
        .define(
            "schema.version",
            ConfigType::Int,
            Some(""),
            Importance::High,
            "Schema version to set.",
        )
}

struct SetSchemaMetadata {
    side: Side,
    name: Option<String>,
    version: Option<i32>,
}

fn make_set_schema_metadata(p: &Props, side: Side) -> Result<Box<dyn Transformation>> {
    let name = p.get("schema.name").filter(|s| !s.is_empty()).cloned();
    let version = match p
        .get("schema.version")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(v) => Some(v.parse().map_err(|_| {
            ConnectError::InvalidConfig(format!(
                "Invalid value {v} for configuration schema.version: Not a number of type INT"
            ))
        })?),
    };
    if name.is_none() && version.is_none() {
        return Err(ConnectError::InvalidConfig(
            "Neither schema name nor version configured".into(),
        ));
    }
    Ok(Box::new(SetSchemaMetadata {
        side,
        name,
        version,
    }))
}

impl Transformation for SetSchemaMetadata {
    fn apply(&self, mut r: Record) -> Result<Option<Record>> {
        let (schema, value) = self.side.get(&r);
        let Some(mut s) = schema.cloned() else {
            return Err(data_err(format!(
                "Schema required for [updating schema metadata]; found none in record {}",
                r.topic
            )));
        };
        if let Some(n) = &self.name {
            s.name = Some(n.clone());
        }
        if let Some(v) = self.version {
            s.version = Some(v);
        }
        let v = match value {
            Value::Struct(st) => Value::Struct(Struct {
                schema: s.clone(),
                values: st.values.clone(),
            }),
            other => other.clone(),
        };
        self.side.set(&mut r, Some(s), v);
        Ok(Some(r))
    }
}

sided!(
    SET_SCHEMA_METADATA_KEY,
    SET_SCHEMA_METADATA_VALUE,
    "SetSchemaMetadata",
    set_schema_metadata_def,
    make_set_schema_metadata
);

// ---- Flatten ----

fn flatten_def() -> ConfigDef {
    ConfigDef::new().define("delimiter", ConfigType::String, Some("."), Importance::Medium, "Delimiter to insert between field names from the input record when generating field names for the output record")
}

struct Flatten {
    side: Side,
    delimiter: String,
}

fn make_flatten(p: &Props, side: Side) -> Result<Box<dyn Transformation>> {
    Ok(Box::new(Flatten {
        side,
        delimiter: p.get("delimiter").cloned().unwrap_or_else(|| ".".into()),
    }))
}

impl Flatten {
    fn flatten_into(
        &self,
        prefix: &str,
        schema: Option<&Schema>,
        v: &Value,
        out: &mut Vec<(String, Option<Schema>, Value)>,
    ) {
        for (n, s, fv) in entries(schema, v) {
            let name = if prefix.is_empty() {
                n
            } else {
                format!("{prefix}{}{n}", self.delimiter)
            };
            let nested = matches!(&fv, Value::Struct(_))
                || (schema.is_none() && matches!(&fv, Value::Map(_)))
                || s.as_ref()
                    .is_some_and(|s| s.schema_type == SchemaType::Struct && fv.is_null());
            if nested && !fv.is_null() {
                self.flatten_into(&name, s.as_ref(), &fv, out);
            } else if !nested {
                out.push((name, s, fv));
            }
        }
    }
}

impl Transformation for Flatten {
    fn apply(&self, mut r: Record) -> Result<Option<Record>> {
        let (schema, value) = self.side.get(&r);
        if value.is_null() {
            return Ok(Some(r));
        }
        need_struct_or_map("flattening", value)?;
        let mut out = Vec::new();
        self.flatten_into("", schema, value, &mut out);
        let (s, v) = rebuild(schema.cloned().as_ref(), out)?;
        self.side.set(&mut r, s, v);
        Ok(Some(r))
    }
}

sided!(
    FLATTEN_KEY,
    FLATTEN_VALUE,
    "Flatten",
    flatten_def,
    make_flatten
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transforms::Chain;

    fn props(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn order() -> (Schema, Value) {
        let addr = Schema::structure(vec![]).with_field("city", Schema::new(SchemaType::String));
        let s = Schema::structure(vec![])
            .with_field("id", Schema::new(SchemaType::Int64))
            .with_field("card", Schema::new(SchemaType::String))
            .with_field("amount", Schema::new(SchemaType::String))
            .with_field("addr", addr.clone())
            .named("Order");
        let mut a = Struct::new(addr);
        a.put("city", Value::String("Oslo".into())).unwrap();
        let mut st = Struct::new(s.clone());
        st.put("id", Value::Int64(7)).unwrap();
        st.put("card", Value::String("1234".into())).unwrap();
        st.put("amount", Value::String("12".into())).unwrap();
        st.put("addr", Value::Struct(a)).unwrap();
        (s, Value::Struct(st))
    }

    #[test]
    fn a_chain_of_field_transforms_on_a_struct() {
        let chain = Chain::from_config(&props(&[
            ("transforms", "key,mask,cast,flat,ins,drop,meta"),
            (
                "transforms.key.type",
                "org.apache.kafka.connect.transforms.ValueToKey",
            ),
            ("transforms.key.fields", "id"),
            ("transforms.mask.type", "MaskField$Value"),
            ("transforms.mask.fields", "card"),
            ("transforms.cast.type", "Cast$Value"),
            ("transforms.cast.spec", "amount:int32"),
            ("transforms.flat.type", "Flatten$Value"),
            ("transforms.flat.delimiter", "_"),
            ("transforms.ins.type", "InsertField$Value"),
            ("transforms.ins.topic.field", "topic!"),
            ("transforms.ins.static.field", "src"),
            ("transforms.ins.static.value", "strom"),
            ("transforms.drop.type", "ReplaceField$Value"),
            ("transforms.drop.exclude", "id"),
            ("transforms.drop.renames", "addr_city:city"),
            ("transforms.meta.type", "SetSchemaMetadata$Value"),
            ("transforms.meta.schema.name", "Flat"),
        ]))
        .unwrap();
        let (s, v) = order();
        let out = chain
            .apply(Record::new("orders", Some(s), v))
            .unwrap()
            .unwrap();
        assert_eq!(out.key.to_json(), serde_json::json!({"id": 7}));
        assert_eq!(
            out.value.to_json(),
            serde_json::json!({"card": "", "amount": 12, "city": "Oslo", "topic": "orders", "src": "strom"})
        );
        let vs = out.value_schema.unwrap();
        assert_eq!(vs.name.as_deref(), Some("Flat"));
        assert_eq!(
            vs.field("amount").unwrap().schema.schema_type,
            SchemaType::Int32
        );
        assert!(!vs.field("topic").unwrap().schema.optional);
        assert!(vs.field("src").unwrap().schema.optional);
    }

    #[test]
    fn schemaless_extract_hoist_and_timestamps() {
        let chain = Chain::from_config(&props(&[
            ("transforms", "ext,ts,hoist"),
            ("transforms.ext.type", "ExtractField$Value"),
            ("transforms.ext.field", "after"),
            ("transforms.ts.type", "TimestampConverter$Value"),
            ("transforms.ts.field", "at"),
            ("transforms.ts.target.type", "string"),
            ("transforms.ts.format", "yyyy-MM-dd"),
            ("transforms.hoist.type", "HoistField$Value"),
            ("transforms.hoist.field", "row"),
        ]))
        .unwrap();
        let v = Value::from_json(&serde_json::json!({"after": {"at": 86_400_000i64, "n": 1}}));
        let out = chain.apply(Record::new("t", None, v)).unwrap().unwrap();
        assert_eq!(
            out.value.to_json(),
            serde_json::json!({"row": {"at": "1970-01-02", "n": 1}})
        );
        assert!(Chain::from_config(&props(&[
            ("transforms", "ts"),
            ("transforms.ts.type", "TimestampConverter$Value"),
            ("transforms.ts.target.type", "string"),
        ]))
        .is_err());
        let e = Chain::from_config(&props(&[
            ("transforms", "m"),
            ("transforms.m.type", "MaskField$Value"),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("\"fields\""), "{e}");
        let e = chain
            .apply(Record::new("t", None, Value::Int64(1)))
            .unwrap_err();
        assert_eq!(e.to_string(), "Only Struct (with schema) or Map (schemaless) objects supported by [field extraction]; found int64");
    }

    #[test]
    fn out_of_range_timestamps_are_errors_not_panics() {
        let chain = Chain::from_config(&props(&[
            ("transforms", "ts"),
            ("transforms.ts.type", "TimestampConverter$Value"),
            ("transforms.ts.target.type", "unix"),
            ("transforms.ts.unix.precision", "nanoseconds"),
        ]))
        .unwrap();
        let ts = Schema::new(SchemaType::Int64).named(TIMESTAMP);
        let ok = chain
            .apply(Record::new("t", Some(ts.clone()), Value::Int64(1_500)))
            .unwrap()
            .unwrap();
        assert_eq!(ok.value, Value::Int64(1_500_000_000));
        let e = chain
            .apply(Record::new("t", Some(ts), Value::Int64(i64::MAX)))
            .unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
        let e = chain
            .apply(Record::new("t", None, Value::String("x".into())))
            .unwrap_err();
        assert!(e.to_string().contains("requires format"), "{e}");
    }
}
