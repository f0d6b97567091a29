//! Kafka's predicates: TopicNameMatches, HasHeaderKey, RecordIsTombstone (a transform's
//! `negate` flips them; see `Chain`).

use regex::Regex;

use super::{Predicate, PredicatePlugin};
use crate::config::{ConfigDef, ConfigType, Importance, Props};
use crate::data::Record;
use crate::error::{ConnectError, Result};

pub const PREDICATE_PLUGINS: &[PredicatePlugin] = &[
    PredicatePlugin {
        class: "org.apache.kafka.connect.transforms.predicates.HasHeaderKey",
        config_def: || {
            ConfigDef::new().define(
                "name",
                ConfigType::String,
                None,
                Importance::Medium,
                "The header name.",
            )
        },
        make: |p| {
            Ok(Box::new(HasHeaderKey {
                name: p.get("name").cloned().unwrap_or_default(),
            }))
        },
    },
    PredicatePlugin {
        class: "org.apache.kafka.connect.transforms.predicates.RecordIsTombstone",
        config_def: ConfigDef::new,
        make: |_| Ok(Box::new(RecordIsTombstone)),
    },
    PredicatePlugin {
        class: "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
        config_def: || {
            ConfigDef::new().define(
                "pattern",
                ConfigType::String,
                None,
                Importance::Medium,
                "A Java regular expression for matching against the name of a record's topic.",
            )
        },
        make: |p| Ok(Box::new(TopicNameMatches::new(p)?)),
    },
];

/// Anchors a Java-style `matches()` regex (the whole input must match).
pub fn full_match_regex(key: &str, pattern: &str) -> Result<Regex> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        ConnectError::InvalidConfig(format!(
            "Invalid value {pattern} for configuration {key}: Invalid regex: {e}"
        ))
    })
}

struct TopicNameMatches {
    pattern: Regex,
}

impl TopicNameMatches {
    fn new(p: &Props) -> Result<TopicNameMatches> {
        Ok(TopicNameMatches {
            pattern: full_match_regex(
                "pattern",
                p.get("pattern").map(String::as_str).unwrap_or(""),
            )?,
        })
    }
}

impl Predicate for TopicNameMatches {
    fn test(&self, r: &Record) -> bool {
        self.pattern.is_match(&r.topic)
    }
}

struct HasHeaderKey {
    name: String,
}

impl Predicate for HasHeaderKey {
    fn test(&self, r: &Record) -> bool {
        r.headers.iter().any(|h| h.key == self.name)
    }
}

struct RecordIsTombstone;

impl Predicate for RecordIsTombstone {
    fn test(&self, r: &Record) -> bool {
        r.value.is_null()
    }
}
