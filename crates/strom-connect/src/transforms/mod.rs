//! Single message transforms and predicates under Kafka's class names (with the `$Key` and
//! `$Value` forms), and the chain a connector's `transforms` / `predicates` configs build.

#[macro_use]
mod fields;
mod convert;
mod predicates;
mod routing;

use crate::config::{
    get_bool, get_list, with_prefix, ConfigDef, ConfigKey, ConfigType, ConfigValue, Importance,
    Props,
};
use crate::data::{Record, Schema, Value};
use crate::error::{ConnectError, Result};

pub use predicates::PREDICATE_PLUGINS as PREDICATES;

/// A record transformation (Kafka's `Transformation`); `None` drops the record.
pub trait Transformation: Send + Sync {
    fn apply(&self, record: Record) -> Result<Option<Record>>;
}

/// A condition on a record (Kafka's `Predicate`).
pub trait Predicate: Send + Sync {
    fn test(&self, record: &Record) -> bool;
}

/// A transformation class: its config keys and how to build it from its config.
#[derive(Debug, Clone, Copy)]
pub struct TransformPlugin {
    pub class: &'static str,
    pub config_def: fn() -> ConfigDef,
    pub make: fn(&Props) -> Result<Box<dyn Transformation>>,
}

/// A predicate class.
#[derive(Debug, Clone, Copy)]
pub struct PredicatePlugin {
    pub class: &'static str,
    pub config_def: fn() -> ConfigDef,
    pub make: fn(&Props) -> Result<Box<dyn Predicate>>,
}

/// Every transformation: the field transforms, then routing and headers.
pub const TRANSFORMATIONS: &[TransformPlugin] = &[
    convert::CAST_KEY,
    convert::CAST_VALUE,
    fields::EXTRACT_FIELD_KEY,
    fields::EXTRACT_FIELD_VALUE,
    fields::FLATTEN_KEY,
    fields::FLATTEN_VALUE,
    fields::HOIST_FIELD_KEY,
    fields::HOIST_FIELD_VALUE,
    fields::INSERT_FIELD_KEY,
    fields::INSERT_FIELD_VALUE,
    fields::MASK_FIELD_KEY,
    fields::MASK_FIELD_VALUE,
    fields::REPLACE_FIELD_KEY,
    fields::REPLACE_FIELD_VALUE,
    fields::SET_SCHEMA_METADATA_KEY,
    fields::SET_SCHEMA_METADATA_VALUE,
    convert::TIMESTAMP_CONVERTER_KEY,
    convert::TIMESTAMP_CONVERTER_VALUE,
    fields::VALUE_TO_KEY,
    routing::DROP_HEADERS,
    routing::FILTER,
    routing::HEADER_FROM_KEY,
    routing::HEADER_FROM_VALUE,
    routing::INSERT_HEADER,
    routing::REGEX_ROUTER,
    routing::TIMESTAMP_ROUTER,
];

fn simple(class: &str) -> &str {
    class.rsplit('.').next().unwrap_or(class)
}

/// A transformation by full or simple class name (`InsertField$Value`).
pub fn find_transformation(name: &str) -> Option<&'static TransformPlugin> {
    let name = name.trim();
    TRANSFORMATIONS
        .iter()
        .find(|t| t.class == name || simple(t.class) == name)
}

pub fn find_predicate(name: &str) -> Option<&'static PredicatePlugin> {
    let name = name.trim();
    PREDICATES
        .iter()
        .find(|p| p.class == name || simple(p.class) == name)
}

/// Which part of the record a `$Key` / `$Value` transform works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Key,
    Value,
}

impl Side {
    pub fn get(self, r: &Record) -> (Option<&Schema>, &Value) {
        match self {
            Side::Key => (r.key_schema.as_ref(), &r.key),
            Side::Value => (r.value_schema.as_ref(), &r.value),
        }
    }

    pub fn set(self, r: &mut Record, schema: Option<Schema>, value: Value) {
        match self {
            Side::Key => {
                r.key_schema = schema;
                r.key = value;
            }
            Side::Value => {
                r.value_schema = schema;
                r.value = value;
            }
        }
    }
}

/// One step of a chain: a transformation, applied only where its predicate (if any) holds.
struct Step {
    alias: String,
    class: &'static str,
    transform: Box<dyn Transformation>,
    predicate: Option<(std::sync::Arc<dyn Predicate>, bool)>,
}

/// A connector's transformation chain.
#[derive(Default)]
pub struct Chain {
    steps: Vec<Step>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let aliases: Vec<&str> = self.steps.iter().map(|s| s.alias.as_str()).collect();
        f.debug_struct("Chain").field("steps", &aliases).finish()
    }
}

fn required<'a>(props: &'a Props, key: &str) -> Result<&'a str> {
    props.get(key).map(String::as_str).ok_or_else(|| {
        ConnectError::InvalidConfig(format!(
            "Missing required configuration \"{key}\" which has no default value."
        ))
    })
}

fn class_not_found(key: &str, class: &str) -> ConnectError {
    ConnectError::InvalidConfig(format!(
        "Invalid value {class} for configuration {key}: Class {class} could not be found."
    ))
}

impl Chain {
    /// Builds the chain from a connector configuration.
    pub fn from_config(props: &Props) -> Result<Chain> {
        let mut preds = std::collections::HashMap::new();
        for alias in get_list(props, "predicates") {
            let key = format!("predicates.{alias}.type");
            let class = required(props, &key)?;
            let plugin = find_predicate(class).ok_or_else(|| class_not_found(&key, class))?;
            let own = with_prefix(props, &format!("predicates.{alias}."));
            (plugin.config_def)().check(&own)?;
            preds.insert(alias, std::sync::Arc::from((plugin.make)(&own)?));
        }
        let mut steps = Vec::new();
        for alias in get_list(props, "transforms") {
            let key = format!("transforms.{alias}.type");
            let class = required(props, &key)?;
            let plugin = find_transformation(class).ok_or_else(|| class_not_found(&key, class))?;
            let own = with_prefix(props, &format!("transforms.{alias}."));
            (plugin.config_def)().check(&own)?;
            let predicate = match own.get("predicate").filter(|p| !p.is_empty()) {
                None => None,
                Some(p) => {
                    let pred = preds.get(p).cloned().ok_or_else(|| {
                        ConnectError::InvalidConfig(format!(
                            "Invalid value {p} for configuration transforms.{alias}.predicate: Not one of the configured predicates"
                        ))
                    })?;
                    Some((pred, get_bool(&own, "negate", false)?))
                }
            };
            steps.push(Step {
                alias,
                class: plugin.class,
                transform: (plugin.make)(&own)?,
                predicate,
            });
        }
        Ok(Chain { steps })
    }

    /// Runs the record through every step; `None` once a step drops it.
    pub fn apply(&self, record: Record) -> Result<Option<Record>> {
        self.apply_reporting(record).map_err(|(_, e)| e)
    }

    /// As `apply`, with the class of the transformation that failed (for error reports).
    pub fn apply_reporting(
        &self,
        mut record: Record,
    ) -> std::result::Result<Option<Record>, (&'static str, ConnectError)> {
        for step in &self.steps {
            if let Some((p, negate)) = &step.predicate {
                if p.test(&record) == *negate {
                    continue;
                }
            }
            match step.transform.apply(record).map_err(|e| (step.class, e))? {
                Some(r) => record = r,
                None => return Ok(None),
            }
        }
        Ok(Some(record))
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

/// Per-key validation of the `transforms.<alias>.*` and `predicates.<alias>.*` configs, for
/// `config/validate` (keys named with their prefix, in groups `Transforms: <alias>`).
pub fn validate_chain_configs(props: &Props) -> Vec<(ConfigKey, ConfigValue)> {
    let mut out = Vec::new();
    for (list, kind) in [("transforms", "Transforms"), ("predicates", "Predicates")] {
        for alias in get_list(props, list) {
            let prefix = format!("{list}.{alias}.");
            let group = format!("{kind}: {alias}");
            let type_key = format!("{prefix}type");
            let mut def = ConfigDef::new()
                .define(
                    &type_key,
                    ConfigType::Class,
                    None,
                    Importance::High,
                    "Class for the transformation or predicate.",
                )
                .in_group(&group, 0);
            if list == "transforms" {
                def = def
                    .define(&format!("{prefix}negate"), ConfigType::Boolean, Some("false"), Importance::Medium, "Whether the configured predicate should be negated.")
                    .in_group(&group, 1)
                    .define(&format!("{prefix}predicate"), ConfigType::String, Some(""), Importance::Medium, "The alias of a predicate used to determine whether to apply this transformation.")
                    .in_group(&group, 2);
            }
            let mut entries: Vec<_> = def.keys.iter().cloned().zip(def.validate(props)).collect();
            if let Some(class) = props.get(&type_key) {
                let own_def = if list == "transforms" {
                    find_transformation(class).map(|t| (t.config_def)())
                } else {
                    find_predicate(class).map(|p| (p.config_def)())
                };
                match own_def {
                    None => entries[0].1.errors.push(format!(
                        "Invalid value {class} for configuration {type_key}: Class {class} could not be found."
                    )),
                    Some(own_def) => {
                        let own = with_prefix(props, &prefix);
                        for (mut k, mut v) in own_def.keys.iter().cloned().zip(own_def.validate(&own)) {
                            for e in &mut v.errors {
                                *e = e.replace(&format!("\"{}\"", k.name), &format!("\"{prefix}{}\"", k.name))
                                    .replace(&format!("configuration {}:", k.name), &format!("configuration {prefix}{}:", k.name));
                            }
                            k.name = format!("{prefix}{}", k.name);
                            k.group = Some(group.clone());
                            v.name = k.name.clone();
                            entries.push((k, v));
                        }
                    }
                }
            }
            out.extend(entries);
        }
    }
    out
}
