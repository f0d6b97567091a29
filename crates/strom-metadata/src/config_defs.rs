//! The catalogue of topic-level configs as Kafka 4.1 defines them (name, type, default,
//! validator, one-line documentation, broker-level synonyms) and value validation.
//! Describing configs (effective value + source) lives in `config_describe`, re-exported here.

use crate::error::ControllerError;

pub use crate::config_describe::{
    describe_broker_configs, describe_group_configs, describe_topic_configs,
    effective_topic_config, effective_topic_configs, ConfigSynonym, DescribedConfig,
};

/// DescribeConfigs v3+ `config_type` numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
    Class = 8,
    Password = 9,
}

/// DescribeConfigs `config_source` numbers (Kafka's ConfigSource).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigSource {
    DynamicTopic = 1,
    DynamicBroker = 2,
    StaticBroker = 4,
    Default = 5,
    /// A consumer group's own setting (Kafka's GROUP_CONFIG).
    DynamicGroup = 8,
}

/// What a value must satisfy beyond parsing as its type.
#[derive(Debug, Clone, Copy)]
pub enum Validator {
    Any,
    /// Integer at least this.
    AtLeast(i64),
    /// Integer in this inclusive range.
    Between(i64, i64),
    /// Floating point in this inclusive range.
    BetweenF(f64, f64),
    /// One of these strings (case-sensitive, as Kafka's ValidString).
    OneOf(&'static [&'static str]),
    /// A non-empty list whose items are all among these.
    ListOf(&'static [&'static str]),
    /// Any other rule; the error string says what is expected.
    Custom(fn(&str) -> Result<(), String>),
}

/// How a broker-level synonym's value converts into the topic config's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynonymUnit {
    Same,
    MinutesToMs,
    HoursToMs,
}

/// A broker config whose value is a topic config's default, in precedence order.
#[derive(Debug, Clone, Copy)]
pub struct Synonym {
    pub name: &'static str,
    pub unit: SynonymUnit,
}

/// One config definition (topic- or broker-level).
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    pub name: &'static str,
    pub config_type: ConfigType,
    /// `None`: no default (Kafka's `null`).
    pub default: Option<&'static str>,
    pub validator: Validator,
    pub documentation: &'static str,
    /// Broker configs that supply this topic config's default (empty for broker configs).
    pub synonyms: &'static [Synonym],
}

const fn def(
    name: &'static str,
    config_type: ConfigType,
    default: &'static str,
    validator: Validator,
    synonyms: &'static [Synonym],
    documentation: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        config_type,
        default: Some(default),
        validator,
        documentation,
        synonyms,
    }
}

const fn same(name: &'static str) -> Synonym {
    Synonym {
        name,
        unit: SynonymUnit::Same,
    }
}

const LONG_MAX: &str = "9223372036854775807";
pub(crate) const COMPRESSION_TYPES: &[&str] =
    &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];
pub(crate) const CLEANUP_POLICIES: &[&str] = &["compact", "delete"];
pub(crate) const TIMESTAMP_TYPES: &[&str] = &["CreateTime", "LogAppendTime"];

use ConfigType as T;
use Validator as V;

/// Every topic config of Kafka 4.1, sorted by name.
#[rustfmt::skip]
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def("cleanup.policy", T::List, "delete", V::ListOf(CLEANUP_POLICIES), &[same("log.cleanup.policy")],
        "Retention policy for old segments: \"delete\", \"compact\", or both."),
    def("compression.gzip.level", T::Int, "-1", V::Custom(gzip_level), &[same("compression.gzip.level")],
        "Compression level used when compression.type is gzip (-1 = codec default, or 1..9)."),
    def("compression.lz4.level", T::Int, "9", V::Between(1, 17), &[same("compression.lz4.level")],
        "Compression level used when compression.type is lz4."),
    def("compression.type", T::String, "producer", V::OneOf(COMPRESSION_TYPES), &[same("compression.type")],
        "Final compression of the topic's batches; \"producer\" keeps the producer's codec."),
    def("compression.zstd.level", T::Int, "3", V::Between(-131072, 22), &[same("compression.zstd.level")],
        "Compression level used when compression.type is zstd."),
    def("delete.retention.ms", T::Long, "86400000", V::AtLeast(0), &[same("log.cleaner.delete.retention.ms")],
        "How long tombstones are kept in compacted topics."),
    def("file.delete.delay.ms", T::Long, "60000", V::AtLeast(0), &[same("log.segment.delete.delay.ms")],
        "Time to wait before deleting a segment file from the filesystem."),
    def("flush.before.ack.enable", T::Boolean, "true", V::Any, &[same("log.flush.before.ack.enable")],
        "Durable mode: acknowledge an append only once a group-commit fsync of the log dir covers it (Strom)."),
    def("flush.messages", T::Long, LONG_MAX, V::AtLeast(1), &[same("log.flush.interval.messages")],
        "Number of messages appended before the log is fsynced."),
    def("flush.ms", T::Long, LONG_MAX, V::AtLeast(0), &[same("log.flush.interval.ms")],
        "Maximum time between fsyncs of the log."),
    def("follower.replication.throttled.replicas", T::List, "", V::Custom(throttled_replicas), &[],
        "Replicas (partition:broker, or *) whose follower-side replication is throttled."),
    def("index.interval.bytes", T::Int, "4096", V::AtLeast(0), &[same("log.index.interval.bytes")],
        "How often (in bytes) an offset index entry is added."),
    def("leader.replication.throttled.replicas", T::List, "", V::Custom(throttled_replicas), &[],
        "Replicas (partition:broker, or *) whose leader-side replication is throttled."),
    def("local.retention.bytes", T::Long, "-2", V::AtLeast(-2), &[same("log.local.retention.bytes")],
        "Local size kept before tiered segments are deleted locally (-2 = retention.bytes)."),
    def("local.retention.ms", T::Long, "-2", V::AtLeast(-2), &[same("log.local.retention.ms")],
        "Local time kept before tiered segments are deleted locally (-2 = retention.ms)."),
    def("max.compaction.lag.ms", T::Long, LONG_MAX, V::AtLeast(1), &[same("log.cleaner.max.compaction.lag.ms")],
        "Maximum time a message stays ineligible for compaction."),
    def("max.message.bytes", T::Int, "1048588", V::AtLeast(0), &[same("message.max.bytes")],
        "Largest record batch size allowed, after compression."),
    def("message.timestamp.after.max.ms", T::Long, "3600000", V::AtLeast(0), &[same("log.message.timestamp.after.max.ms")],
        "How far a CreateTime timestamp may be ahead of the broker's clock."),
    def("message.timestamp.before.max.ms", T::Long, LONG_MAX, V::AtLeast(0), &[same("log.message.timestamp.before.max.ms")],
        "How far a CreateTime timestamp may be behind the broker's clock."),
    def("message.timestamp.type", T::String, "CreateTime", V::OneOf(TIMESTAMP_TYPES), &[same("log.message.timestamp.type")],
        "Whether the record timestamp is the producer's (CreateTime) or the append time."),
    def("min.cleanable.dirty.ratio", T::Double, "0.5", V::BetweenF(0.0, 1.0), &[same("log.cleaner.min.cleanable.ratio")],
        "Dirty-to-total ratio above which the log is compacted."),
    def("min.compaction.lag.ms", T::Long, "0", V::AtLeast(0), &[same("log.cleaner.min.compaction.lag.ms")],
        "Minimum time a message stays uncompacted."),
    def("min.insync.replicas", T::Int, "1", V::AtLeast(1), &[same("min.insync.replicas")],
        "Minimum in-sync replicas for an acks=all write to succeed."),
    def("preallocate", T::Boolean, "false", V::Any, &[same("log.preallocate")],
        "Preallocate the file on disk when creating a segment."),
    def("remote.log.copy.disable", T::Boolean, "false", V::Any, &[],
        "Stop copying segments to tiered storage while keeping remote reads."),
    def("remote.log.delete.on.disable", T::Boolean, "false", V::Any, &[],
        "Delete remote data when tiered storage is disabled for the topic."),
    def("remote.storage.enable", T::Boolean, "false", V::Any, &[],
        "Enable tiered storage for the topic."),
    def("retention.bytes", T::Long, "-1", V::Any, &[same("log.retention.bytes")],
        "Maximum partition size before old segments are discarded (-1 = no limit)."),
    def("retention.ms", T::Long, "604800000", V::AtLeast(-1), RETENTION_SYNONYMS,
        "Maximum time a segment is retained before it is discarded (-1 = no limit)."),
    def("segment.bytes", T::Int, "1073741824", V::AtLeast(1024 * 1024), &[same("log.segment.bytes")],
        "Segment file size; a new segment is rolled beyond it."),
    def("segment.index.bytes", T::Int, "10485760", V::AtLeast(4), &[same("log.index.size.max.bytes")],
        "Size of the index that maps offsets to file positions."),
    def("segment.jitter.ms", T::Long, "0", V::AtLeast(0), ROLL_JITTER_SYNONYMS,
        "Maximum random jitter subtracted from segment.ms."),
    def("segment.ms", T::Long, "604800000", V::AtLeast(1), ROLL_SYNONYMS,
        "Time after which a segment is rolled even if not full."),
    def("unclean.leader.election.enable", T::Boolean, "false", V::Any, &[same("unclean.leader.election.enable")],
        "Allow out-of-sync replicas to become leader as a last resort (data loss)."),
];

#[rustfmt::skip]
const RETENTION_SYNONYMS: &[Synonym] = &[
    same("log.retention.ms"),
    Synonym { name: "log.retention.minutes", unit: SynonymUnit::MinutesToMs },
    Synonym { name: "log.retention.hours", unit: SynonymUnit::HoursToMs },
];
#[rustfmt::skip]
const ROLL_SYNONYMS: &[Synonym] = &[
    same("log.roll.ms"),
    Synonym { name: "log.roll.hours", unit: SynonymUnit::HoursToMs },
];
#[rustfmt::skip]
const ROLL_JITTER_SYNONYMS: &[Synonym] = &[
    same("log.roll.jitter.ms"),
    Synonym { name: "log.roll.jitter.hours", unit: SynonymUnit::HoursToMs },
];

/// The definition of topic config `name`, if Kafka has one.
pub fn topic_config_def(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// The settings a consumer group may override (Kafka 4's GROUP config resource, KIP-848),
/// sorted by name; each defaults to its `group.`-prefixed broker config. Share-group settings
/// (`share.*`) come with share groups.
#[rustfmt::skip]
pub const GROUP_CONFIGS: &[ConfigDef] = &[
    def("consumer.heartbeat.interval.ms", T::Int, "5000", V::AtLeast(1), &[same("group.consumer.heartbeat.interval.ms")],
        "Heartbeat interval given to this consumer group's members (KIP-848)."),
    def("consumer.session.timeout.ms", T::Int, "45000", V::AtLeast(1), &[same("group.consumer.session.timeout.ms")],
        "Session timeout of this consumer group's members (KIP-848)."),
];

/// The definition of group config `name`.
pub fn group_config_def(name: &str) -> Option<&'static ConfigDef> {
    GROUP_CONFIGS.iter().find(|d| d.name == name)
}

/// Checks `value` for group config `key`: known key, parses as its type, passes its validator.
pub fn validate_group_config(key: &str, value: &str) -> Result<(), ControllerError> {
    let def = group_config_def(key).ok_or_else(|| ControllerError::InvalidConfig {
        key: key.to_string(),
        reason: format!("Unknown group config name: {key}"),
    })?;
    validate_value(def, value).map_err(|reason| ControllerError::InvalidConfig {
        key: key.to_string(),
        reason,
    })
}

/// Checks `value` for topic config `key`: known key, parses as its type, passes its validator.
pub fn validate_topic_config(key: &str, value: &str) -> Result<(), ControllerError> {
    let def = topic_config_def(key).ok_or_else(|| ControllerError::InvalidConfig {
        key: key.to_string(),
        reason: format!("Unknown topic config name: {key}"),
    })?;
    validate_value(def, value).map_err(|reason| ControllerError::InvalidConfig {
        key: key.to_string(),
        reason,
    })
}

/// Checks `value` against `def`'s type and validator; the error says what is expected.
pub fn validate_value(def: &ConfigDef, value: &str) -> Result<(), String> {
    let v = value.trim();
    let int = |min: i64, max: i64, what: &str| -> Result<i64, String> {
        v.parse::<i64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| format!("value '{value}' is not a valid {what}"))
    };
    let number = match def.config_type {
        T::Boolean => {
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                return Err(format!(
                    "value '{value}' is not a boolean (expected true or false)"
                ));
            }
            None
        }
        T::Short => Some(int(i16::MIN.into(), i16::MAX.into(), "16-bit integer")?),
        T::Int => Some(int(i32::MIN.into(), i32::MAX.into(), "32-bit integer")?),
        T::Long => Some(int(i64::MIN, i64::MAX, "64-bit integer")?),
        T::Double => {
            let f: f64 = v
                .parse()
                .map_err(|_| format!("value '{value}' is not a number"))?;
            if let V::BetweenF(lo, hi) = def.validator {
                if !(lo..=hi).contains(&f) {
                    return Err(format!("value {value} must be between {lo} and {hi}"));
                }
            }
            None
        }
        T::String | T::List | T::Class | T::Password => None,
    };
    match (def.validator, number) {
        (V::AtLeast(min), Some(n)) if n < min => Err(format!("value {n} must be at least {min}")),
        (V::Between(lo, hi), Some(n)) if n < lo || n > hi => {
            Err(format!("value {n} must be between {lo} and {hi}"))
        }
        (V::OneOf(allowed), _) if !allowed.contains(&v) => Err(format!(
            "value '{value}' must be one of: {}",
            allowed.join(", ")
        )),
        (V::ListOf(allowed), _) => {
            let items = split_list(v);
            if items.is_empty() {
                return Err(format!(
                    "value must be a non-empty list of: {}",
                    allowed.join(", ")
                ));
            }
            match items.iter().find(|i| !allowed.contains(i)) {
                Some(bad) => Err(format!(
                    "list item '{bad}' must be one of: {}",
                    allowed.join(", ")
                )),
                None => Ok(()),
            }
        }
        (V::Custom(check), _) => check(v),
        _ => Ok(()),
    }
}

/// Splits a LIST value on commas, trimming items and dropping empty ones (as Kafka does).
pub fn split_list(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn gzip_level(v: &str) -> Result<(), String> {
    match v.parse::<i32>() {
        Ok(-1 | 1..=9) => Ok(()),
        _ => Err(format!("value '{v}' must be -1 or between 1 and 9")),
    }
}

/// `*`, or a list of `partition:broker` pairs (Kafka's throttled-replicas format).
fn throttled_replicas(v: &str) -> Result<(), String> {
    let items = split_list(v);
    if items == ["*"] {
        return Ok(());
    }
    let valid = |item: &&str| {
        item.split_once(':').is_some_and(|(p, b)| {
            p.trim().parse::<u32>().is_ok() && b.trim().parse::<u32>().is_ok()
        })
    };
    match items.iter().find(|i| !valid(i)) {
        Some(bad) => Err(format!(
            "item '{bad}' must be [partitionId]:[brokerId], or the whole value must be *"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_sorted_unique_and_defaults_are_valid() {
        for pair in TOPIC_CONFIGS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} !< {}",
                pair[0].name,
                pair[1].name
            );
        }
        for def in TOPIC_CONFIGS {
            let default = def.default.expect("topic configs all have defaults");
            if def.config_type == ConfigType::List && default.is_empty() {
                continue;
            }
            validate_value(def, default).unwrap_or_else(|e| panic!("{}: {e}", def.name));
        }
        assert!(topic_config_def("message.downconversion.enable").is_none());
        assert!(topic_config_def("message.format.version").is_none());
    }

    #[test]
    fn validation_by_type_and_validator() {
        assert!(validate_topic_config("retention.ms", "-1").is_ok());
        assert!(validate_topic_config("retention.ms", "-2").is_err());
        assert!(validate_topic_config("retention.ms", "1h").is_err());
        assert!(validate_topic_config("segment.bytes", "1024").is_err());
        assert!(validate_topic_config("segment.bytes", "4294967296").is_err());
        assert!(validate_topic_config("cleanup.policy", "compact, delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "shred").is_err());
        assert!(validate_topic_config("cleanup.policy", "").is_err());
        assert!(validate_topic_config("compression.type", "zstd").is_ok());
        assert!(validate_topic_config("compression.type", "brotli").is_err());
        assert!(validate_topic_config("preallocate", "TRUE").is_ok());
        assert!(validate_topic_config("preallocate", "yes").is_err());
        assert!(validate_topic_config("min.cleanable.dirty.ratio", "1.5").is_err());
        assert!(validate_topic_config("compression.gzip.level", "0").is_err());
        assert!(validate_topic_config("leader.replication.throttled.replicas", "0:1,1:2").is_ok());
        assert!(validate_topic_config("leader.replication.throttled.replicas", "*").is_ok());
        assert!(validate_topic_config("leader.replication.throttled.replicas", "x").is_err());
        let err = validate_topic_config("no.such.config", "1").unwrap_err();
        assert!(
            matches!(err, ControllerError::InvalidConfig { key, .. } if key == "no.such.config")
        );
    }
}
