//! DescribeConfigs: every topic config with its effective value, source and synonyms, and every
//! broker config with its value and source (PROTOCOL.md: not only overrides, also defaults).

use std::collections::BTreeMap;

use crate::broker_config::BrokerConfig;
use crate::broker_config_defs::{is_dynamic_broker_config, BROKER_CONFIGS};
use crate::config_defs::{
    ConfigDef, ConfigSource, ConfigType, SynonymUnit, GROUP_CONFIGS, TOPIC_CONFIGS,
};

/// One entry of a DescribeConfigs synonym list, highest precedence first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    pub name: String,
    pub value: Option<String>,
    pub source: ConfigSource,
}

/// One config of a described resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    pub name: String,
    /// `None` for a sensitive value or a config without a value.
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub is_sensitive: bool,
    pub config_type: ConfigType,
    pub documentation: &'static str,
    pub synonyms: Vec<ConfigSynonym>,
}

/// Every topic config (Kafka 4.1's list, in name order) with the value in force for a topic
/// whose dynamic overrides are `overrides`: the override, else the broker synonym set in the
/// broker config, else the broker default, else the topic default. Unknown override keys are
/// ignored (the controller never stores one).
pub fn describe_topic_configs(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
) -> Vec<DescribedConfig> {
    describe_with_broker_defaults(TOPIC_CONFIGS, overrides, ConfigSource::DynamicTopic, broker)
}

/// Every group config (in name order) with the value in force for a consumer group whose
/// overrides are `overrides`: the override (GROUP_CONFIG), else its `group.` broker config.
pub fn describe_group_configs(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
) -> Vec<DescribedConfig> {
    describe_with_broker_defaults(GROUP_CONFIGS, overrides, ConfigSource::DynamicGroup, broker)
}

/// `defs` with the value in force: the override (as `source`), else the first broker
/// synonym with a value, else the definition's default.
fn describe_with_broker_defaults(
    defs: &[ConfigDef],
    overrides: &BTreeMap<String, String>,
    source: ConfigSource,
    broker: &BrokerConfig,
) -> Vec<DescribedConfig> {
    defs.iter()
        .map(|def| describe_with_broker_default(def, overrides, source, broker))
        .collect()
}

/// One config of `describe_with_broker_defaults`.
fn describe_with_broker_default(
    def: &ConfigDef,
    overrides: &BTreeMap<String, String>,
    source: ConfigSource,
    broker: &BrokerConfig,
) -> DescribedConfig {
    let mut synonyms = Vec::new();
    if let Some(v) = overrides.get(def.name) {
        synonyms.push(ConfigSynonym {
            name: def.name.to_string(),
            value: Some(v.clone()),
            source,
        });
    }
    synonyms.extend(broker_synonyms(def, broker));
    let (value, source) = match synonyms.first() {
        Some(first) => (convert(def, first), first.source),
        None => (def.default.map(str::to_string), ConfigSource::Default),
    };
    DescribedConfig {
        name: def.name.to_string(),
        value,
        source,
        read_only: false,
        is_sensitive: def.config_type == ConfigType::Password,
        config_type: def.config_type,
        documentation: def.documentation,
        synonyms,
    }
}

/// Every broker config Strom knows (in name order) with its value and source: dynamic
/// override, else STATIC_BROKER_CONFIG when set in the file or on the command line, else
/// DEFAULT_CONFIG. Configs that cannot change at runtime are read-only.
pub fn describe_broker_configs(broker: &BrokerConfig) -> Vec<DescribedConfig> {
    BROKER_CONFIGS
        .iter()
        .map(|def| {
            let sensitive = def.config_type == ConfigType::Password;
            let synonyms = broker_value_synonyms(def.name, broker);
            let (value, source) = broker.value_and_source(def.name);
            DescribedConfig {
                name: def.name.to_string(),
                value: if sensitive {
                    None
                } else {
                    value.map(str::to_string)
                },
                source,
                read_only: !is_dynamic_broker_config(def.name),
                is_sensitive: sensitive,
                config_type: def.config_type,
                documentation: def.documentation,
                synonyms,
            }
        })
        .collect()
}

/// The value in force of every topic config for a topic with `overrides` (what the log and
/// the replica manager should use).
pub fn effective_topic_configs(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
) -> BTreeMap<String, String> {
    describe_topic_configs(overrides, broker)
        .into_iter()
        .filter_map(|c| c.value.map(|v| (c.name, v)))
        .collect()
}

/// The value in force of one topic config, `name`, for a topic with `overrides`: the same
/// value `effective_topic_configs` gives it, without describing every other config (the
/// produce path asks for `min.insync.replicas` once per partition). `None` for an unknown
/// name or a config without a value.
pub fn effective_topic_config(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
    name: &str,
) -> Option<String> {
    let def = crate::config_defs::topic_config_def(name)?;
    describe_with_broker_default(def, overrides, ConfigSource::DynamicTopic, broker).value
}

/// Default values of every topic config as `broker` makes them (no topic overrides).
pub(crate) fn topic_defaults(broker: &BrokerConfig) -> BTreeMap<String, String> {
    effective_topic_configs(&BTreeMap::new(), broker)
}

/// The broker-level synonyms of a topic config, each synonym's dynamic, static and default
/// values in that order (as Kafka lists them); synonyms without any value are left out.
fn broker_synonyms(def: &ConfigDef, broker: &BrokerConfig) -> Vec<ConfigSynonym> {
    def.synonyms
        .iter()
        .flat_map(|s| broker_value_synonyms(s.name, broker))
        .collect()
}

fn broker_value_synonyms(name: &str, broker: &BrokerConfig) -> Vec<ConfigSynonym> {
    let default = crate::broker_config_defs::broker_config_def(name).and_then(|d| d.default);
    let candidates = [
        (broker.dynamic_value(name), ConfigSource::DynamicBroker),
        (broker.static_value(name), ConfigSource::StaticBroker),
        (default, ConfigSource::Default),
    ];
    candidates
        .into_iter()
        .filter_map(|(value, source)| {
            value.map(|v| ConfigSynonym {
                name: name.to_string(),
                value: Some(v.to_string()),
                source,
            })
        })
        .collect()
}

/// The synonym's value in the topic config's unit (hours/minutes → ms; negative retention → -1).
fn convert(def: &ConfigDef, synonym: &ConfigSynonym) -> Option<String> {
    let value = synonym.value.as_deref()?;
    let unit = def
        .synonyms
        .iter()
        .find(|s| s.name == synonym.name)
        .map_or(SynonymUnit::Same, |s| s.unit);
    let factor: i64 = match unit {
        SynonymUnit::Same => return Some(value.trim().to_string()),
        SynonymUnit::MinutesToMs => 60_000,
        SynonymUnit::HoursToMs => 3_600_000,
    };
    let n: i64 = value.trim().parse().ok()?;
    let ms = n.saturating_mul(factor);
    Some(if ms < 0 { -1 } else { ms }.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(configs: &'a [DescribedConfig], name: &str) -> &'a DescribedConfig {
        configs.iter().find(|c| c.name == name).unwrap()
    }

    #[test]
    fn every_topic_config_is_described_with_default_source() {
        let configs = describe_topic_configs(&BTreeMap::new(), &BrokerConfig::default());
        assert_eq!(configs.len(), TOPIC_CONFIGS.len());
        let retention = find(&configs, "retention.ms");
        assert_eq!(retention.value.as_deref(), Some("604800000"));
        assert_eq!(retention.source, ConfigSource::Default);
        assert_eq!(retention.synonyms.len(), 1);
        assert_eq!(retention.synonyms[0].name, "log.retention.hours");
        assert_eq!(retention.synonyms[0].value.as_deref(), Some("168"));
        let remote = find(&configs, "remote.storage.enable");
        assert_eq!(remote.value.as_deref(), Some("false"));
        assert!(remote.synonyms.is_empty());
        let flush = find(&configs, "flush.ms");
        assert_eq!(flush.value.as_deref(), Some("9223372036854775807"));
        assert_eq!(
            find(&configs, "cleanup.policy").config_type,
            ConfigType::List
        );
    }

    #[test]
    fn override_beats_static_broker_which_beats_default() {
        let (broker, _) =
            BrokerConfig::parse("log.retention.minutes=10\nlog.segment.bytes=2097152\n", &[])
                .unwrap();
        let overrides = BTreeMap::from([("segment.bytes".to_string(), "3145728".to_string())]);
        let configs = describe_topic_configs(&overrides, &broker);
        let retention = find(&configs, "retention.ms");
        assert_eq!(retention.value.as_deref(), Some("600000"));
        assert_eq!(retention.source, ConfigSource::StaticBroker);
        assert_eq!(retention.synonyms[0].name, "log.retention.minutes");
        let segment = find(&configs, "segment.bytes");
        assert_eq!(segment.value.as_deref(), Some("3145728"));
        assert_eq!(segment.source, ConfigSource::DynamicTopic);
        let names: Vec<_> = segment
            .synonyms
            .iter()
            .map(|s| (s.name.as_str(), s.source))
            .collect();
        assert_eq!(
            names,
            [
                ("segment.bytes", ConfigSource::DynamicTopic),
                ("log.segment.bytes", ConfigSource::StaticBroker),
                ("log.segment.bytes", ConfigSource::Default),
            ]
        );
        assert_eq!(broker.topic_defaults()["segment.bytes"], "2097152");
        let effective = effective_topic_configs(&overrides, &broker);
        assert_eq!(effective.len(), TOPIC_CONFIGS.len());
        assert_eq!(effective["segment.bytes"], "3145728");
        assert_eq!(broker.topic_defaults()["retention.ms"], "600000");
    }

    #[test]
    fn one_config_lookup_agrees_with_the_full_map() {
        let (broker, _) = BrokerConfig::parse(
            "log.retention.minutes=10\nmin.insync.replicas=2\nlog.segment.bytes=2097152\n",
            &[],
        )
        .unwrap();
        for overrides in [
            BTreeMap::new(),
            BTreeMap::from([
                ("min.insync.replicas".to_string(), "3".to_string()),
                ("retention.ms".to_string(), "5".to_string()),
            ]),
        ] {
            let all = effective_topic_configs(&overrides, &broker);
            for def in TOPIC_CONFIGS {
                assert_eq!(
                    effective_topic_config(&overrides, &broker, def.name).as_ref(),
                    all.get(def.name),
                    "{}",
                    def.name
                );
            }
        }
        let none = BTreeMap::new();
        assert_eq!(
            effective_topic_config(&none, &broker, "min.insync.replicas").as_deref(),
            Some("2")
        );
        assert_eq!(
            effective_topic_config(&none, &broker, "no.such.config"),
            None
        );
    }

    #[test]
    fn unlimited_retention_in_hours_is_minus_one() {
        let (broker, _) = BrokerConfig::parse("log.retention.hours=-1", &[]).unwrap();
        assert_eq!(broker.topic_defaults()["retention.ms"], "-1");
        assert_eq!(broker.log_retention_ms(), -1);
    }

    #[test]
    fn broker_configs_report_static_dynamic_and_default() {
        let (broker, _) = BrokerConfig::parse("num.partitions=3", &[]).unwrap();
        let dynamic = BTreeMap::from([("log.retention.ms".to_string(), "1000".to_string())]);
        let broker = broker.with_dynamic_overrides(&dynamic).unwrap();
        let configs = describe_broker_configs(&broker);
        assert_eq!(configs.len(), BROKER_CONFIGS.len());
        let partitions = find(&configs, "num.partitions");
        assert_eq!(
            (partitions.value.as_deref(), partitions.source),
            (Some("3"), ConfigSource::StaticBroker)
        );
        assert!(partitions.read_only);
        let retention = find(&configs, "log.retention.ms");
        assert_eq!(retention.source, ConfigSource::DynamicBroker);
        assert!(!retention.read_only);
        let listeners = find(&configs, "listeners");
        assert_eq!(listeners.source, ConfigSource::Default);
        assert_eq!(
            listeners.value.as_deref(),
            Some("PLAINTEXT://127.0.0.1:9092")
        );
        // A dynamic broker default flows into topic defaults.
        assert_eq!(broker.topic_defaults()["retention.ms"], "1000");
        let topic = describe_topic_configs(&BTreeMap::new(), &broker);
        assert_eq!(
            find(&topic, "retention.ms").source,
            ConfigSource::DynamicBroker
        );
    }
}
