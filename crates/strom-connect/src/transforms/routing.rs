//! Transforms that route or drop records or touch headers: RegexRouter, TimestampRouter,
//! Filter, InsertHeader, DropHeaders, HeaderFrom.

use regex::Regex;

use super::predicates::full_match_regex;
use super::{Side, TransformPlugin, Transformation};
use crate::config::{get_list, ConfigDef, ConfigType, Importance, Props};
use crate::data::{Header, Record, Schema, SchemaType, Value};
use crate::error::{ConnectError, Result};
use crate::time::DateFormat;

pub const REGEX_ROUTER: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.RegexRouter",
    config_def: || {
        ConfigDef::new()
            .define(
                "regex",
                ConfigType::String,
                None,
                Importance::High,
                "Regular expression to use for matching.",
            )
            .define(
                "replacement",
                ConfigType::String,
                None,
                Importance::High,
                "Replacement string.",
            )
    },
    make: |p| {
        let regex = full_match_regex("regex", p.get("regex").map(String::as_str).unwrap_or(""))?;
        Ok(Box::new(RegexRouter {
            regex,
            replacement: p.get("replacement").cloned().unwrap_or_default(),
        }))
    },
};

struct RegexRouter {
    regex: Regex,
    replacement: String,
}

impl Transformation for RegexRouter {
    fn apply(&self, mut r: Record) -> Result<Option<Record>> {
        if self.regex.is_match(&r.topic) {
            r.topic = self
                .regex
                .replace(&r.topic, self.replacement.as_str())
                .into_owned();
        }
        Ok(Some(r))
    }
}

pub const TIMESTAMP_ROUTER: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.TimestampRouter",
    config_def: || {
        ConfigDef::new()
            .define("topic.format", ConfigType::String, Some("${topic}-${timestamp}"), Importance::High, "Format string which can contain ${topic} and ${timestamp} as placeholders for the topic and timestamp, respectively.")
            .define("timestamp.format", ConfigType::String, Some("yyyyMMdd"), Importance::High, "Format string for the timestamp that is compatible with java.text.SimpleDateFormat.")
    },
    make: |p| {
        Ok(Box::new(TimestampRouter {
            topic_format: p
                .get("topic.format")
                .cloned()
                .unwrap_or_else(|| "${topic}-${timestamp}".into()),
            format: DateFormat::new(
                p.get("timestamp.format")
                    .map(String::as_str)
                    .unwrap_or("yyyyMMdd"),
            )?,
        }))
    },
};

struct TimestampRouter {
    topic_format: String,
    format: DateFormat,
}

impl Transformation for TimestampRouter {
    fn apply(&self, mut r: Record) -> Result<Option<Record>> {
        let ts = r.timestamp.ok_or_else(|| {
            ConnectError::Data(format!("Timestamp missing on record: {}", r.topic))
        })?;
        r.topic = self
            .topic_format
            .replace("${topic}", &r.topic)
            .replace("${timestamp}", &self.format.format(ts));
        Ok(Some(r))
    }
}

pub const FILTER: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.Filter",
    config_def: ConfigDef::new,
    make: |_| Ok(Box::new(Filter)),
};

struct Filter;

impl Transformation for Filter {
    fn apply(&self, _: Record) -> Result<Option<Record>> {
        Ok(None)
    }
}

pub const INSERT_HEADER: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.InsertHeader",
    config_def: || {
        ConfigDef::new()
            .define(
                "header",
                ConfigType::String,
                None,
                Importance::High,
                "The name of the header.",
            )
            .define(
                "value.literal",
                ConfigType::String,
                None,
                Importance::High,
                "The literal value that is to be set as the header value on all records.",
            )
    },
    make: |p| {
        Ok(Box::new(InsertHeader {
            header: p.get("header").cloned().unwrap_or_default(),
            value: p.get("value.literal").cloned().unwrap_or_default(),
        }))
    },
};

struct InsertHeader {
    header: String,
    value: String,
}

impl Transformation for InsertHeader {
    fn apply(&self, mut r: Record) -> Result<Option<Record>> {
        r.headers.push(Header {
            key: self.header.clone(),
            schema: Some(Schema::new(SchemaType::String)),
            value: Value::String(self.value.clone()),
        });
        Ok(Some(r))
    }
}

pub const DROP_HEADERS: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.DropHeaders",
    config_def: || {
        ConfigDef::new().define(
            "headers",
            ConfigType::List,
            None,
            Importance::High,
            "The name of the headers to be removed.",
        )
    },
    make: |p| {
        Ok(Box::new(DropHeaders {
            headers: get_list(p, "headers"),
        }))
    },
};

struct DropHeaders {
    headers: Vec<String>,
}

impl Transformation for DropHeaders {
    fn apply(&self, mut r: Record) -> Result<Option<Record>> {
        r.headers.retain(|h| !self.headers.contains(&h.key));
        Ok(Some(r))
    }
}

fn header_from_def() -> ConfigDef {
    ConfigDef::new()
        .define("fields", ConfigType::List, None, Importance::High, "Field names in the record whose values are to be copied or moved to headers.")
        .define("headers", ConfigType::List, None, Importance::High, "Header names, in the same order as the field names listed in the fields configuration property.")
        .define("operation", ConfigType::String, None, Importance::High, "Either move if the fields are to be moved to the headers (removed from the key/value), or copy if the fields are to be copied to the headers (retained in the key/value).")
        .one_of(&["move", "copy"])
}

fn make_header_from(p: &Props, side: Side) -> Result<Box<dyn Transformation>> {
    let fields = get_list(p, "fields");
    let headers = get_list(p, "headers");
    if fields.len() != headers.len() {
        return Err(ConnectError::InvalidConfig(
            "'fields' config must have the same number of elements as 'headers' config.".into(),
        ));
    }
    Ok(Box::new(HeaderFrom {
        side,
        pairs: fields.into_iter().zip(headers).collect(),
        moving: p
            .get("operation")
            .is_some_and(|o| o.eq_ignore_ascii_case("move")),
    }))
}

pub const HEADER_FROM_KEY: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.HeaderFrom$Key",
    config_def: header_from_def,
    make: |p| make_header_from(p, Side::Key),
};

pub const HEADER_FROM_VALUE: TransformPlugin = TransformPlugin {
    class: "org.apache.kafka.connect.transforms.HeaderFrom$Value",
    config_def: header_from_def,
    make: |p| make_header_from(p, Side::Value),
};

struct HeaderFrom {
    side: Side,
    pairs: Vec<(String, String)>,
    moving: bool,
}

impl Transformation for HeaderFrom {
    fn apply(&self, mut r: Record) -> Result<Option<Record>> {
        let (schema, value) = self.side.get(&r);
        let (schema, value) = (schema.cloned(), value.clone());
        if value.is_null() {
            return Ok(Some(r));
        }
        let mut headers = Vec::new();
        for (field, header) in &self.pairs {
            let (fs, fv) = match (&schema, &value) {
                (Some(_), Value::Struct(st)) => {
                    let f = st.schema.field(field).ok_or_else(|| {
                        ConnectError::Data(format!("{field} is not a valid field name"))
                    })?;
                    (Some(f.schema.clone()), st.get(field).cloned().unwrap_or(Value::Null))
                }
                (None, Value::Map(_)) => (None, value.map_get(field).cloned().unwrap_or(Value::Null)),
                _ => {
                    return Err(ConnectError::Data(format!(
                        "Only Struct (with schema) or Map (schemaless) objects supported by [field extraction]; found {}",
                        value.type_name()
                    )))
                }
            };
            headers.push(Header {
                key: header.clone(),
                schema: fs,
                value: fv,
            });
        }
        r.headers.extend(headers);
        if self.moving {
            let names: Vec<&str> = self.pairs.iter().map(|(f, _)| f.as_str()).collect();
            let (s, v) = super::fields::without_fields(schema.as_ref(), &value, &names)?;
            self.side.set(&mut r, s, v);
        }
        Ok(Some(r))
    }
}

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

    #[test]
    fn routers_rename_topics() {
        let chain = Chain::from_config(&props(&[
            ("transforms", "re,ts"),
            (
                "transforms.re.type",
                "org.apache.kafka.connect.transforms.RegexRouter",
            ),
            ("transforms.re.regex", "orders-(.*)"),
            ("transforms.re.replacement", "o-$1"),
            ("transforms.ts.type", "TimestampRouter"),
            ("transforms.ts.timestamp.format", "yyyy.MM"),
        ]))
        .unwrap();
        let mut r = Record::new("orders-eu", None, Value::Null);
        r.timestamp = Some(0);
        assert_eq!(chain.apply(r).unwrap().unwrap().topic, "o-eu-1970.01");
        let mut r = Record::new("payments", None, Value::Null);
        r.timestamp = Some(0);
        assert_eq!(chain.apply(r).unwrap().unwrap().topic, "payments-1970.01");
    }

    #[test]
    fn filter_with_negated_predicate_and_headers() {
        let chain = Chain::from_config(&props(&[
            ("predicates", "isT,hasH"),
            (
                "predicates.isT.type",
                "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
            ),
            ("predicates.isT.pattern", "keep.*"),
            ("predicates.hasH.type", "HasHeaderKey"),
            ("predicates.hasH.name", "drop-me"),
            ("transforms", "f,ins,drop"),
            ("transforms.f.type", "Filter"),
            ("transforms.f.predicate", "isT"),
            ("transforms.f.negate", "true"),
            ("transforms.ins.type", "InsertHeader"),
            ("transforms.ins.header", "h"),
            ("transforms.ins.value.literal", "v"),
            ("transforms.drop.type", "DropHeaders"),
            ("transforms.drop.headers", "x"),
        ]))
        .unwrap();
        assert_eq!(
            chain
                .apply(Record::new("other", None, Value::Null))
                .unwrap(),
            None
        );
        let mut r = Record::new("keep1", None, Value::Null);
        r.headers.push(Header {
            key: "x".into(),
            schema: None,
            value: Value::Null,
        });
        let out = chain.apply(r).unwrap().unwrap();
        assert_eq!(out.headers.len(), 1);
        assert_eq!(out.headers[0].key, "h");
        assert_eq!(out.headers[0].value, Value::String("v".into()));
        let e = Chain::from_config(&props(&[
            ("transforms", "x"),
            ("transforms.x.type", "Nope"),
        ]))
        .unwrap_err();
        assert_eq!(e.to_string(), "Invalid value Nope for configuration transforms.x.type: Class Nope could not be found.");
        let e = Chain::from_config(&props(&[
            ("transforms", "x"),
            ("transforms.x.type", "RegexRouter"),
        ]))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("Missing required configuration \"regex\""),
            "{e}"
        );
    }
}
