//! Configuration: Java `.properties` files (worker and connector files as Kafka's scripts take
//! them) and config definitions with per-field validation (Kafka's `ConfigDef`), whose results
//! `/connector-plugins/{type}/config/validate` reports.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value as J};

use crate::error::{ConnectError, Result};

/// A flat string-to-string configuration (a connector's or a worker's).
pub type Props = BTreeMap<String, String>;

/// Parses the text of a Java `.properties` file: `#`/`!` comments, `key=value`, `key:value`
/// or `key value`, `\` line continuations and the common escapes.
pub fn parse_properties(text: &str) -> Props {
    let mut out = Props::new();
    let mut logical = String::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if logical.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        // An odd number of trailing backslashes continues the line.
        let trailing = line.chars().rev().take_while(|c| *c == '\\').count();
        if trailing % 2 == 1 {
            logical.push_str(&line[..line.len() - 1]);
            continue;
        }
        logical.push_str(line);
        let (k, v) = split_key_value(&logical);
        out.insert(unescape(&k), unescape(&v));
        logical.clear();
    }
    if !logical.is_empty() {
        let (k, v) = split_key_value(&logical);
        out.insert(unescape(&k), unescape(&v));
    }
    out
}

fn split_key_value(line: &str) -> (String, String) {
    let mut key = String::new();
    let mut chars = line.char_indices().peekable();
    let mut rest_at = line.len();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                key.push(c);
                if let Some((_, n)) = chars.next() {
                    key.push(n);
                }
            }
            '=' | ':' | ' ' | '\t' => {
                rest_at = i;
                break;
            }
            _ => key.push(c),
        }
    }
    let rest = line[rest_at..].trim_start_matches([' ', '\t']);
    let rest = rest
        .strip_prefix(['=', ':'])
        .unwrap_or(rest)
        .trim_start_matches([' ', '\t']);
    (key, rest.to_owned())
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\u{c}'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(u) => out.push(u),
                    None => out.push_str(&hex),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// Reads and parses a properties file.
pub fn read_properties(path: &std::path::Path) -> Result<Props> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConnectError::WorkerConfig(format!("cannot read {}: {e}", path.display())))?;
    Ok(parse_properties(&text))
}

/// Kafka's `ConfigDef.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
    Class,
    Password,
}

impl ConfigType {
    pub fn name(self) -> &'static str {
        match self {
            ConfigType::Boolean => "BOOLEAN",
            ConfigType::String => "STRING",
            ConfigType::Int => "INT",
            ConfigType::Short => "SHORT",
            ConfigType::Long => "LONG",
            ConfigType::Double => "DOUBLE",
            ConfigType::List => "LIST",
            ConfigType::Class => "CLASS",
            ConfigType::Password => "PASSWORD",
        }
    }

    /// Checks that `v` parses as this type; the error is Kafka's wording.
    fn check(self, name: &str, v: &str) -> std::result::Result<(), String> {
        let t = v.trim();
        let ok = match self {
            ConfigType::Boolean => {
                t.eq_ignore_ascii_case("true") || t.eq_ignore_ascii_case("false")
            }
            ConfigType::Int => t.parse::<i32>().is_ok(),
            ConfigType::Short => t.parse::<i16>().is_ok(),
            ConfigType::Long => t.parse::<i64>().is_ok(),
            ConfigType::Double => t.parse::<f64>().is_ok(),
            ConfigType::String | ConfigType::List | ConfigType::Class | ConfigType::Password => {
                true
            }
        };
        if ok {
            return Ok(());
        }
        let what = match self {
            ConfigType::Boolean => "Expected value to be either true or false".to_owned(),
            other => format!("Not a number of type {}", other.name()),
        };
        Err(format!(
            "Invalid value {v} for configuration {name}: {what}"
        ))
    }
}

/// Kafka's `ConfigDef.Importance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Importance {
    High,
    Medium,
    Low,
}

impl Importance {
    fn name(self) -> &'static str {
        match self {
            Importance::High => "HIGH",
            Importance::Medium => "MEDIUM",
            Importance::Low => "LOW",
        }
    }
}

/// A check on a present value; returns Kafka-worded problems.
pub type Validator = Arc<dyn Fn(&str, &str) -> std::result::Result<(), String> + Send + Sync>;

/// One configuration key.
#[derive(Clone)]
pub struct ConfigKey {
    pub name: String,
    pub config_type: ConfigType,
    /// `None`: the key is required.
    pub default: Option<String>,
    pub importance: Importance,
    pub documentation: String,
    pub group: Option<String>,
    pub order: i32,
    pub validator: Option<Validator>,
    pub recommended: Vec<String>,
}

impl std::fmt::Debug for ConfigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigKey")
            .field("name", &self.name)
            .finish()
    }
}

/// The outcome of validating one key.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigValue {
    pub name: String,
    pub value: Option<String>,
    pub errors: Vec<String>,
}

/// A set of configuration keys (Kafka's `ConfigDef`).
#[derive(Debug, Clone, Default)]
pub struct ConfigDef {
    pub keys: Vec<ConfigKey>,
}

impl ConfigDef {
    pub fn new() -> ConfigDef {
        ConfigDef::default()
    }

    /// Adds a key; `default` `None` makes it required.
    pub fn define(
        mut self,
        name: &str,
        config_type: ConfigType,
        default: Option<&str>,
        importance: Importance,
        documentation: &str,
    ) -> ConfigDef {
        self.keys.push(ConfigKey {
            name: name.to_owned(),
            config_type,
            default: default.map(str::to_owned),
            importance,
            documentation: documentation.to_owned(),
            group: None,
            order: -1,
            validator: None,
            recommended: Vec::new(),
        });
        self
    }

    /// Attaches a validator to the last defined key.
    pub fn validator(mut self, v: Validator) -> ConfigDef {
        if let Some(k) = self.keys.last_mut() {
            k.validator = Some(v);
        }
        self
    }

    /// Puts the last defined key in a group with an order (as Kafka's connector configs do).
    pub fn in_group(mut self, group: &str, order: i32) -> ConfigDef {
        if let Some(k) = self.keys.last_mut() {
            k.group = Some(group.to_owned());
            k.order = order;
        }
        self
    }

    /// Allowed values of the last defined key, checked case-insensitively.
    pub fn one_of(mut self, values: &[&str]) -> ConfigDef {
        let allowed: Vec<String> = values.iter().map(|s| s.to_string()).collect();
        if let Some(k) = self.keys.last_mut() {
            k.recommended = allowed.clone();
        }
        self.validator(Arc::new(move |name, v| {
            if allowed.iter().any(|a| a.eq_ignore_ascii_case(v.trim())) {
                Ok(())
            } else {
                Err(format!(
                    "Invalid value {v} for configuration {name}: String must be one of: {}",
                    allowed.join(", ")
                ))
            }
        }))
    }

    /// A lower bound on the last defined (numeric) key.
    pub fn at_least(self, min: i64) -> ConfigDef {
        self.validator(Arc::new(move |name, v| match v.trim().parse::<f64>() {
            Ok(n) if n >= min as f64 => Ok(()),
            Ok(_) => Err(format!(
                "Invalid value {v} for configuration {name}: Value must be at least {min}"
            )),
            Err(_) => Ok(()),
        }))
    }

    pub fn extend(mut self, other: ConfigDef) -> ConfigDef {
        for k in other.keys {
            if !self.keys.iter().any(|e| e.name == k.name) {
                self.keys.push(k);
            }
        }
        self
    }

    pub fn key(&self, name: &str) -> Option<&ConfigKey> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// Validates every key against `props`: required keys present, types parse, validators pass.
    pub fn validate(&self, props: &Props) -> Vec<ConfigValue> {
        self.keys
            .iter()
            .map(|k| {
                let given = props.get(&k.name).cloned();
                let mut errors = Vec::new();
                match given.as_deref().or(k.default.as_deref()) {
                    None => errors.push(format!(
                        "Missing required configuration \"{}\" which has no default value.",
                        k.name
                    )),
                    // An empty default stands for Kafka's `null` default: nothing to check.
                    Some("") if given.is_none() => {}
                    Some(v) => {
                        if let Err(e) = k.config_type.check(&k.name, v) {
                            errors.push(e);
                        } else if let Some(check) = &k.validator {
                            // Kafka validates defaults too, but only a given value can be wrong
                            // here: defaults are chosen valid.
                            if given.is_some() {
                                if let Err(e) = check(&k.name, v) {
                                    errors.push(e);
                                }
                            }
                        }
                    }
                }
                ConfigValue {
                    name: k.name.clone(),
                    value: given.or_else(|| k.default.clone()),
                    errors,
                }
            })
            .collect()
    }

    /// `Ok` if every key validates; otherwise an `InvalidConfig` listing the problems as Kafka
    /// does ("Connector configuration is invalid and contains the following N error(s): ...").
    pub fn check(&self, props: &Props) -> Result<()> {
        let errors: Vec<String> = self
            .validate(props)
            .into_iter()
            .flat_map(|v| v.errors)
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(invalid_config_error(&errors))
        }
    }

    /// The JSON definition of a key, as `config/validate` and `GET .../config` report it.
    pub fn definition_json(key: &ConfigKey) -> J {
        json!({
            "name": key.name,
            "type": key.config_type.name(),
            "required": key.default.is_none(),
            "default_value": key.default.as_deref().filter(|d| !d.is_empty() || key.config_type == ConfigType::String || key.config_type == ConfigType::List),
            "importance": key.importance.name(),
            "documentation": key.documentation,
            "group": key.group,
            "width": "NONE",
            "display_name": key.name,
            "dependents": [],
            "order": key.order,
        })
    }
}

/// Kafka's summary of a failed connector validation.
pub fn invalid_config_error(errors: &[String]) -> ConnectError {
    let mut msg = format!(
        "Connector configuration is invalid and contains the following {} error(s):",
        errors.len()
    );
    for e in errors {
        msg.push('\n');
        msg.push_str(e);
    }
    msg.push_str("\nYou can also find the above list of errors at the endpoint `/connector-plugins/{connectorType}/config/validate`");
    ConnectError::InvalidConfig(msg)
}

/// A typed read of a config value, with Kafka's wording when it does not parse.
pub fn get_parsed<T: std::str::FromStr>(props: &Props, name: &str, default: T) -> Result<T> {
    match props.get(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| {
            ConnectError::InvalidConfig(format!(
                "Invalid value {v} for configuration {name}: could not be parsed"
            ))
        }),
    }
}

/// A comma-separated list (Kafka's LIST type), trimmed, empty items dropped.
pub fn get_list(props: &Props, name: &str) -> Vec<String> {
    props
        .get(name)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// A boolean config (`true`/`false`, any case).
pub fn get_bool(props: &Props, name: &str, default: bool) -> Result<bool> {
    match props.get(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(v) => Err(ConnectError::InvalidConfig(format!(
            "Invalid value {v} for configuration {name}: Expected value to be either true or false"
        ))),
    }
}

/// The keys under `prefix`, with the prefix removed (`transforms.x.` → the transform's config).
pub fn with_prefix(props: &Props, prefix: &str) -> Props {
    props
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(prefix).map(|r| (r.to_owned(), v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_java_properties() {
        let p = parse_properties(
            "# comment\n! other\nbootstrap.servers=localhost:9092\nkey.converter : x.Y\n\
             spaced value here\nlong=a,\\\n    b\nesc=tab\\there\\u0041\n  \nempty=\n",
        );
        assert_eq!(p["bootstrap.servers"], "localhost:9092");
        assert_eq!(p["key.converter"], "x.Y");
        assert_eq!(p["spaced"], "value here");
        assert_eq!(p["long"], "a,b");
        assert_eq!(p["esc"], "tab\thereA");
        assert_eq!(p["empty"], "");
        assert_eq!(p.len(), 6);
    }

    #[test]
    fn validates_required_types_and_choices() {
        let def = ConfigDef::new()
            .define("topic", ConfigType::String, None, Importance::High, "t")
            .define(
                "batch.size",
                ConfigType::Int,
                Some("2000"),
                Importance::Low,
                "b",
            )
            .at_least(1)
            .define("mode", ConfigType::String, Some("a"), Importance::Low, "m")
            .one_of(&["a", "b"]);
        let mut props = Props::new();
        props.insert("batch.size".into(), "x".into());
        props.insert("mode".into(), "c".into());
        let v = def.validate(&props);
        assert_eq!(
            v[0].errors,
            vec!["Missing required configuration \"topic\" which has no default value."]
        );
        assert_eq!(
            v[1].errors,
            vec!["Invalid value x for configuration batch.size: Not a number of type INT"]
        );
        assert_eq!(
            v[2].errors,
            vec!["Invalid value c for configuration mode: String must be one of: a, b"]
        );
        props.insert("topic".into(), "t".into());
        props.insert("batch.size".into(), "0".into());
        props.insert("mode".into(), "B".into());
        let err = def.check(&props).unwrap_err();
        assert!(err
            .to_string()
            .contains("contains the following 1 error(s):\nInvalid value 0 for configuration batch.size: Value must be at least 1"));
    }
}
