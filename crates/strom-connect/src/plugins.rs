//! The plugin registry: built-in connectors under their own class names and, where they do
//! Kafka's job, Kafka's class names; lookup by full class name, simple class name, or simple
//! name without the `Connector` suffix (as Kafka's plugin aliases work). Also the common
//! connector configs every connector takes, and whole-config validation (`config/validate`).

use serde_json::{json, Value as J};

use crate::config::{get_list, ConfigDef, ConfigKey, ConfigType, ConfigValue, Importance, Props};
use crate::connector::{Connector, ConnectorType};
use crate::converter::converter_for;
use crate::error::{ConnectError, Result};
use crate::file::{FileSinkConnector, FileSourceConnector, FILE_SINK_CLASS, FILE_SOURCE_CLASS};
use crate::mirror::{
    MirrorCheckpointConnector, MirrorHeartbeatConnector, MirrorSourceConnector,
    MIRROR_CHECKPOINT_CLASS, MIRROR_HEARTBEAT_CLASS, MIRROR_SOURCE_CLASS,
};
use crate::postgres::cdc::{PostgresCdcSourceConnector, CDC_SOURCE_CLASS, DEBEZIUM_POSTGRES_CLASS};
use crate::postgres::sink::{PostgresSinkConnector, JDBC_SINK_CLASS, SINK_CLASS};
use crate::postgres::source::{PostgresSourceConnector, JDBC_SOURCE_CLASS, SOURCE_CLASS};
use crate::transforms;

/// One connector plugin.
#[derive(Debug, Clone, Copy)]
pub struct ConnectorPlugin {
    /// The class name `/connector-plugins` reports (Kafka's where it exists).
    pub class: &'static str,
    /// Other full class names that select it (Strom's own).
    pub aliases: &'static [&'static str],
    pub connector_type: ConnectorType,
    pub make: fn() -> Box<dyn Connector>,
}

fn make_file_source() -> Box<dyn Connector> {
    Box::new(FileSourceConnector::default())
}

fn make_file_sink() -> Box<dyn Connector> {
    Box::new(FileSinkConnector::default())
}

fn make_mirror_source() -> Box<dyn Connector> {
    Box::new(MirrorSourceConnector::default())
}

fn make_mirror_checkpoint() -> Box<dyn Connector> {
    Box::new(MirrorCheckpointConnector::default())
}

fn make_mirror_heartbeat() -> Box<dyn Connector> {
    Box::new(MirrorHeartbeatConnector::default())
}

fn make_pg_source() -> Box<dyn Connector> {
    Box::new(PostgresSourceConnector::default())
}

fn make_pg_cdc() -> Box<dyn Connector> {
    Box::new(PostgresCdcSourceConnector::default())
}

fn make_pg_sink() -> Box<dyn Connector> {
    Box::new(PostgresSinkConnector::default())
}

/// Every built-in connector.
pub const CONNECTORS: &[ConnectorPlugin] = &[
    ConnectorPlugin {
        class: FILE_SINK_CLASS,
        aliases: &["io.strom.connect.file.FileSinkConnector"],
        connector_type: ConnectorType::Sink,
        make: make_file_sink,
    },
    ConnectorPlugin {
        class: FILE_SOURCE_CLASS,
        aliases: &["io.strom.connect.file.FileSourceConnector"],
        connector_type: ConnectorType::Source,
        make: make_file_source,
    },
    ConnectorPlugin {
        class: MIRROR_CHECKPOINT_CLASS,
        aliases: &["io.strom.connect.mirror.MirrorCheckpointConnector"],
        connector_type: ConnectorType::Source,
        make: make_mirror_checkpoint,
    },
    ConnectorPlugin {
        class: MIRROR_HEARTBEAT_CLASS,
        aliases: &["io.strom.connect.mirror.MirrorHeartbeatConnector"],
        connector_type: ConnectorType::Source,
        make: make_mirror_heartbeat,
    },
    ConnectorPlugin {
        class: MIRROR_SOURCE_CLASS,
        aliases: &["io.strom.connect.mirror.MirrorSourceConnector"],
        connector_type: ConnectorType::Source,
        make: make_mirror_source,
    },
    ConnectorPlugin {
        class: JDBC_SOURCE_CLASS,
        aliases: &[SOURCE_CLASS],
        connector_type: ConnectorType::Source,
        make: make_pg_source,
    },
    ConnectorPlugin {
        class: DEBEZIUM_POSTGRES_CLASS,
        aliases: &[CDC_SOURCE_CLASS],
        connector_type: ConnectorType::Source,
        make: make_pg_cdc,
    },
    ConnectorPlugin {
        class: JDBC_SINK_CLASS,
        aliases: &[SINK_CLASS],
        connector_type: ConnectorType::Sink,
        make: make_pg_sink,
    },
    ConnectorPlugin {
        class: crate::http_sink::HTTP_SINK_CLASS,
        aliases: &["io.strom.connect.http.HttpSinkConnector"],
        connector_type: ConnectorType::Sink,
        make: make_http_sink,
    },
    ConnectorPlugin {
        class: crate::mqtt::MQTT_SINK_CLASS,
        aliases: &["io.strom.connect.mqtt.MqttSinkConnector"],
        connector_type: ConnectorType::Sink,
        make: make_mqtt_sink,
    },
    ConnectorPlugin {
        class: crate::mqtt::MQTT_SOURCE_CLASS,
        aliases: &["io.strom.connect.mqtt.MqttSourceConnector"],
        connector_type: ConnectorType::Source,
        make: make_mqtt_source,
    },
];

fn make_http_sink() -> Box<dyn Connector> {
    Box::new(crate::http_sink::HttpSinkConnector::default())
}

fn make_mqtt_source() -> Box<dyn Connector> {
    Box::new(crate::mqtt::MqttSourceConnector::default())
}

fn make_mqtt_sink() -> Box<dyn Connector> {
    Box::new(crate::mqtt::MqttSinkConnector::default())
}

fn simple(class: &str) -> &str {
    class.rsplit('.').next().unwrap_or(class)
}

/// The connector plugins a worker knows: the built-ins, and any an embedding program adds.
#[derive(Debug, Clone)]
pub struct Plugins {
    connectors: Vec<ConnectorPlugin>,
}

impl Default for Plugins {
    fn default() -> Self {
        Plugins::builtin()
    }
}

impl Plugins {
    /// The built-in connectors.
    pub fn builtin() -> Plugins {
        Plugins {
            connectors: CONNECTORS.to_vec(),
        }
    }

    /// Adds a connector plugin; refused if one of its names is already taken.
    pub fn register(&mut self, plugin: ConnectorPlugin) -> Result<()> {
        for name in std::iter::once(plugin.class).chain(plugin.aliases.iter().copied()) {
            if let Some(existing) = self.find_connector(name) {
                return Err(ConnectError::BadRequest(format!(
                    "Connector plugin name {name} is already used by {}",
                    existing.class
                )));
            }
        }
        self.connectors.push(plugin);
        self.connectors.sort_by_key(|p| p.class);
        Ok(())
    }

    /// The plugin `name` selects: a full class name, a simple class name, or a simple name
    /// without `Connector` (`FileStreamSource`).
    pub fn find_connector(&self, name: &str) -> Option<&ConnectorPlugin> {
        let name = name.trim();
        self.connectors.iter().find(|p| {
            std::iter::once(p.class)
                .chain(p.aliases.iter().copied())
                .any(|c| {
                    c == name
                        || simple(c) == name
                        || simple(c).strip_suffix("Connector") == Some(name)
                })
        })
    }

    /// The connector for a configuration's `connector.class`.
    pub fn connector_for(&self, props: &Props) -> Result<(ConnectorPlugin, Box<dyn Connector>)> {
        let class = props.get("connector.class").ok_or_else(|| {
            ConnectError::BadRequest("Connector config contains no connector type".to_owned())
        })?;
        let plugin = self.find_connector(class).ok_or_else(|| {
            let available: Vec<&str> = self.connectors.iter().map(|p| p.class).collect();
            ConnectError::PluginNotFound(format!(
                "{class}, available connectors are: {}",
                available.join(", ")
            ))
        })?;
        Ok((*plugin, (plugin.make)()))
    }

    /// Validates a whole connector configuration (see `validate_with`).
    pub fn validate_connector_config(&self, props: &Props) -> Result<Validation> {
        let (plugin, connector) = self.connector_for(props)?;
        validate_with(&plugin, connector.as_ref(), props)
    }

    /// All plugins as `/connector-plugins` lists them (`connectorsOnly=false` adds the rest).
    pub fn plugin_list(&self, connectors_only: bool) -> Vec<J> {
        let mut out: Vec<J> = self
            .connectors
            .iter()
            .map(|p| {
                let version = (p.make)().version();
                json!({"class": p.class, "type": p.connector_type.name(), "version": version})
            })
            .collect();
        if !connectors_only {
            let version = env!("CARGO_PKG_VERSION");
            for t in transforms::TRANSFORMATIONS {
                out.push(json!({"class": t.class, "type": "transformation", "version": version}));
            }
            for p in transforms::PREDICATES {
                out.push(json!({"class": p.class, "type": "predicate", "version": version}));
            }
            for c in crate::converter::CONVERTER_CLASSES {
                out.push(json!({"class": c, "type": "converter", "version": version}));
            }
            out.push(json!({
                "class": crate::converter::SIMPLE_HEADER_CONVERTER,
                "type": "header_converter",
                "version": version,
            }));
        }
        out
    }

    /// The config definitions of one plugin by name (`GET /connector-plugins/{name}/config`).
    pub fn plugin_config(&self, name: &str) -> Result<Vec<J>> {
        let def = if let Some(p) = self.find_connector(name) {
            (p.make)().config_def()
        } else if let Some(t) = transforms::find_transformation(name) {
            (t.config_def)()
        } else if let Some(p) = transforms::find_predicate(name) {
            (p.config_def)()
        } else {
            return Err(ConnectError::UnknownPlugin(name.to_owned()));
        };
        Ok(def.keys.iter().map(ConfigDef::definition_json).collect())
    }
}

const COMMON: &str = "Common";
const TRANSFORMS: &str = "Transforms";
const PREDICATES: &str = "Predicates";
const ERRORS: &str = "Error Handling";

/// The configs every connector takes (Kafka's `ConnectorConfig` / `SinkConnectorConfig`).
pub fn common_config_def(connector_type: ConnectorType) -> ConfigDef {
    let mut def = ConfigDef::new()
        .define("name", ConfigType::String, None, Importance::High, "Globally unique name to use for this connector.")
        .in_group(COMMON, 1)
        .define("connector.class", ConfigType::String, None, Importance::High, "Name or alias of the class for this connector.")
        .in_group(COMMON, 2)
        .define("tasks.max", ConfigType::Int, Some("1"), Importance::High, "Maximum number of tasks to use for this connector.")
        .at_least(1)
        .in_group(COMMON, 3)
        .define("key.converter", ConfigType::Class, Some(""), Importance::Low, "Converter class used to convert between Kafka Connect format and the serialized form that is written to Kafka.")
        .in_group(COMMON, 5)
        .define("value.converter", ConfigType::Class, Some(""), Importance::Low, "Converter class used to convert between Kafka Connect format and the serialized form that is written to Kafka.")
        .in_group(COMMON, 6)
        .define("header.converter", ConfigType::Class, Some(""), Importance::Low, "HeaderConverter class used to convert between Kafka Connect format and the serialized form that is written to Kafka.")
        .in_group(COMMON, 7)
        .define("transforms", ConfigType::List, Some(""), Importance::Low, "Aliases for the transformations to be applied to records.")
        .in_group(TRANSFORMS, 1)
        .define("predicates", ConfigType::List, Some(""), Importance::Low, "Aliases for the predicates used by transformations.")
        .in_group(PREDICATES, 1)
        .define("errors.retry.timeout", ConfigType::Long, Some("0"), Importance::Medium, "The maximum duration in milliseconds that a failed operation will be reattempted.")
        .in_group(ERRORS, 1)
        .define("errors.retry.delay.max.ms", ConfigType::Long, Some("60000"), Importance::Medium, "The maximum duration in milliseconds between consecutive retry attempts.")
        .in_group(ERRORS, 2)
        .define("errors.tolerance", ConfigType::String, Some("none"), Importance::Medium, "Behavior for tolerating errors during connector operation. 'none' is the default value and signals that any error will result in an immediate connector task failure; 'all' changes the behavior to skip over problematic records.")
        .one_of(&["none", "all"])
        .in_group(ERRORS, 3)
        .define("errors.log.enable", ConfigType::Boolean, Some("false"), Importance::Medium, "If true, write each error and the details of the failed operation and problematic record to the Connect application log.")
        .in_group(ERRORS, 4)
        .define("errors.log.include.messages", ConfigType::Boolean, Some("false"), Importance::Medium, "Whether to include in the log the Connect record that resulted in a failure.")
        .in_group(ERRORS, 5);
    if connector_type == ConnectorType::Source {
        def = def
            .define(
                "topic.creation.groups",
                ConfigType::List,
                Some(""),
                Importance::Low,
                "Groups of configurations for topics created by source connectors",
            )
            .in_group("Topic Creation", 1);
    }
    if connector_type == ConnectorType::Sink {
        def = def
            .define("topics", ConfigType::List, Some(""), Importance::High, "List of topics to consume, separated by commas")
            .in_group(COMMON, 4)
            .define("topics.regex", ConfigType::String, Some(""), Importance::High, "Regular expression giving topics to consume.")
            .in_group(COMMON, 4)
            .define("errors.deadletterqueue.topic.name", ConfigType::String, Some(""), Importance::Medium, "The name of the topic to be used as the dead letter queue (DLQ) for messages that result in an error when processed by this sink connector, or its transformations or converters.")
            .in_group(ERRORS, 6)
            .define("errors.deadletterqueue.topic.replication.factor", ConfigType::Short, Some("3"), Importance::Medium, "Replication factor used to create the dead letter queue topic when it doesn't already exist.")
            .in_group(ERRORS, 7)
            .define("errors.deadletterqueue.context.headers.enable", ConfigType::Boolean, Some("false"), Importance::Medium, "If true, add headers containing error context to the messages written to the dead letter queue.")
            .in_group(ERRORS, 8);
    }
    def
}

/// The result of validating a connector configuration: every key's definition and value.
#[derive(Debug)]
pub struct Validation {
    pub class: String,
    pub entries: Vec<(ConfigKey, ConfigValue)>,
}

impl Validation {
    pub fn error_count(&self) -> usize {
        self.entries.iter().map(|(_, v)| v.errors.len()).sum()
    }

    pub fn errors(&self) -> Vec<String> {
        self.entries
            .iter()
            .flat_map(|(_, v)| v.errors.iter().cloned())
            .collect()
    }

    /// Kafka's `ConfigInfos` JSON.
    pub fn to_json(&self) -> J {
        let mut groups: Vec<&str> = Vec::new();
        for (k, _) in &self.entries {
            if let Some(g) = k.group.as_deref() {
                if !groups.contains(&g) {
                    groups.push(g);
                }
            }
        }
        let configs: Vec<J> = self
            .entries
            .iter()
            .map(|(k, v)| {
                json!({
                    "definition": ConfigDef::definition_json(k),
                    "value": {
                        "name": v.name,
                        "value": v.value,
                        "recommended_values": k.recommended,
                        "errors": v.errors,
                        "visible": true,
                    }
                })
            })
            .collect();
        json!({
            "name": self.class,
            "error_count": self.error_count(),
            "groups": groups,
            "configs": configs,
        })
    }
}

/// Validates a whole connector configuration: the common keys, the connector's own, each
/// transform's and predicate's keys (under their `transforms.<alias>.` prefix), converters,
/// and the sink's topics rules.
fn validate_with(
    plugin: &ConnectorPlugin,
    connector: &dyn Connector,
    props: &Props,
) -> Result<Validation> {
    let def = common_config_def(plugin.connector_type).extend(connector.config_def());
    let mut entries: Vec<(ConfigKey, ConfigValue)> =
        def.keys.iter().cloned().zip(def.validate(props)).collect();
    let add_error = |entries: &mut Vec<(ConfigKey, ConfigValue)>, name: &str, msg: String| {
        if let Some((_, v)) = entries.iter_mut().find(|(k, _)| k.name == name) {
            v.errors.push(msg);
        }
    };
    for (name, msg) in connector.validate_extra(props) {
        add_error(&mut entries, &name, msg);
    }
    for which in ["key.converter", "value.converter"] {
        if let Some(class) = props.get(which).filter(|c| !c.trim().is_empty()) {
            let own = crate::config::with_prefix(props, &format!("{which}."));
            if let Err(e) = converter_for(class, &own) {
                add_error(
                    &mut entries,
                    which,
                    e.to_string().replace("converter:", &format!("{which}:")),
                );
            }
        }
    }
    if let Some(class) = props
        .get("header.converter")
        .filter(|c| !c.trim().is_empty())
    {
        if let Err(e) = crate::converter::check_header_converter(class) {
            add_error(&mut entries, "header.converter", e.to_string());
        }
    }
    if plugin.connector_type == ConnectorType::Source {
        if let Err(e) = crate::topic_creation::enabled(&Props::new(), props) {
            add_error(&mut entries, "topic.creation.groups", e.to_string());
        }
    }
    if plugin.connector_type == ConnectorType::Sink {
        let topics = get_list(props, "topics");
        let regex = props.get("topics.regex").map(|s| s.trim()).unwrap_or("");
        if topics.is_empty() && regex.is_empty() {
            let msg = "Must configure one of topics or topics.regex".to_owned();
            add_error(&mut entries, "topics", msg.clone());
            add_error(&mut entries, "topics.regex", msg);
        } else if !topics.is_empty() && !regex.is_empty() {
            let msg = "topics and topics.regex are mutually exclusive options, but both are set."
                .to_owned();
            add_error(&mut entries, "topics", msg.clone());
            add_error(&mut entries, "topics.regex", msg);
        } else if !regex.is_empty() {
            if let Err(e) = regex::Regex::new(regex) {
                add_error(
                    &mut entries,
                    "topics.regex",
                    format!("Invalid value {regex} for configuration topics.regex: {e}"),
                );
            }
        }
    }
    entries.extend(transforms::validate_chain_configs(props));
    Ok(Validation {
        class: plugin.class.to_owned(),
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn finds_connectors_by_kafka_and_own_names() {
        for n in [
            "FileStreamSource",
            "FileStreamSourceConnector",
            FILE_SOURCE_CLASS,
            "io.strom.connect.file.FileSourceConnector",
            "FileSource",
        ] {
            assert_eq!(
                Plugins::builtin().find_connector(n).map(|p| p.class),
                Some(FILE_SOURCE_CLASS),
                "{n}"
            );
        }
        assert_eq!(
            Plugins::builtin()
                .find_connector("FileStreamSink")
                .map(|p| p.class),
            Some(FILE_SINK_CLASS)
        );
        assert!(Plugins::builtin().find_connector("Nope").is_none());
    }

    #[test]
    fn validation_reports_errors_per_field() {
        let v = Plugins::builtin()
            .validate_connector_config(&props(&[
                ("connector.class", "FileStreamSink"),
                ("name", "s"),
                ("tasks.max", "zero"),
            ]))
            .unwrap();
        let errs = |name: &str| {
            v.entries
                .iter()
                .find(|(k, _)| k.name == name)
                .map(|(_, v)| v.errors.clone())
                .unwrap()
        };
        assert_eq!(
            errs("tasks.max"),
            vec!["Invalid value zero for configuration tasks.max: Not a number of type INT"]
        );
        assert_eq!(
            errs("topics"),
            vec!["Must configure one of topics or topics.regex"]
        );
        assert_eq!(
            errs("file"),
            vec!["Missing required configuration \"file\" which has no default value."]
        );
        assert_eq!(v.error_count(), 4);
        let j = v.to_json();
        assert_eq!(j["name"], FILE_SINK_CLASS);
        assert_eq!(j["error_count"], 4);
        assert_eq!(
            j["groups"],
            json!(["Common", "Transforms", "Predicates", "Error Handling"])
        );
        assert!(matches!(
            Plugins::builtin().validate_connector_config(&props(&[("connector.class", "Nope")])),
            Err(ConnectError::PluginNotFound(_))
        ));
    }
}
