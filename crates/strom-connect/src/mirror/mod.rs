//! MirrorMaker 2's job as connectors: `MirrorSourceConnector` replicates topics from a source
//! cluster into the worker's cluster (renamed by a replication policy, with their partition
//! counts and configs, record by record into the same partition), writing offset syncs
//! (which upstream offset landed at which downstream offset); `MirrorCheckpointConnector`
//! translates consumer groups' committed source offsets through those syncs, emits
//! checkpoints and can commit the translated offsets to the target's groups, so a group can
//! fail over. The wire formats of offset syncs and checkpoints are MM2's (Kafka's schema
//! serialization of its structs), so MM2's tooling can read what these connectors write.
//!
//! As with MM2's connectors run in a Connect cluster, the records pass through the worker's
//! converters: the mirror connectors need `key.converter` and `value.converter` set to
//! `ByteArrayConverter` (an explicit other converter is refused at validation).

pub mod checkpoint;
pub mod heartbeat;
pub mod source;

use std::time::Duration;

use regex::Regex;
use strom_client::{Admin, ClientConfig, ConsumerConfig, KafkaCode, NewTopic, ProducerConfig};

use crate::config::{get_list, get_parsed, ConfigDef, ConfigType, Importance, Props};
use crate::converter::BYTE_ARRAY_CONVERTER;
use crate::error::{ConnectError, Result};

pub use checkpoint::{MirrorCheckpointConnector, MIRROR_CHECKPOINT_CLASS};
pub use heartbeat::{MirrorHeartbeatConnector, MIRROR_HEARTBEAT_CLASS};
pub use source::{MirrorSourceConnector, MIRROR_SOURCE_CLASS};

/// Kafka's `DefaultReplicationPolicy` class name (`<alias>.<topic>`).
pub const DEFAULT_REPLICATION_POLICY: &str =
    "org.apache.kafka.connect.mirror.DefaultReplicationPolicy";
/// Kafka's `IdentityReplicationPolicy` class name (topic names kept).
pub const IDENTITY_REPLICATION_POLICY: &str =
    "org.apache.kafka.connect.mirror.IdentityReplicationPolicy";

/// The task's place among its connector's tasks (set by the connector in each task config):
/// a topic-partition or group belongs to the task whose index its stable hash selects, so
/// tasks find new topics and groups on their own without a reconfiguration.
pub(crate) const TASK_INDEX: &str = "mirror.task.index";
pub(crate) const TASK_COUNT: &str = "mirror.task.count";

/// MM2's default `topics.exclude`.
const DEFAULT_TOPICS_EXCLUDE: &str = ".*[\\-\\.]internal, .*\\.replica, __.*";
/// MM2's default `groups.exclude`.
const DEFAULT_GROUPS_EXCLUDE: &str = "console-consumer-.*, connect-.*, __.*";

/// How mirrored topics are named on the target.
#[derive(Debug, Clone)]
pub enum ReplicationPolicy {
    /// `<source alias><separator><topic>`.
    Default { separator: String },
    /// The source's names.
    Identity,
}

impl ReplicationPolicy {
    pub fn from_config(props: &Props) -> Result<ReplicationPolicy> {
        let class = props
            .get("replication.policy.class")
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .unwrap_or(DEFAULT_REPLICATION_POLICY);
        let simple = class.rsplit('.').next().unwrap_or(class);
        match simple {
            "DefaultReplicationPolicy" => Ok(ReplicationPolicy::Default {
                separator: props
                    .get("replication.policy.separator")
                    .cloned()
                    .unwrap_or_else(|| ".".into()),
            }),
            "IdentityReplicationPolicy" => Ok(ReplicationPolicy::Identity),
            _ => Err(ConnectError::InvalidConfig(format!(
                "replication.policy.class: {class} is not supported (DefaultReplicationPolicy or IdentityReplicationPolicy)"
            ))),
        }
    }

    /// The target name of `topic` from the cluster `alias`.
    pub fn format_remote_topic(&self, alias: &str, topic: &str) -> String {
        match self {
            ReplicationPolicy::Default { separator } => format!("{alias}{separator}{topic}"),
            ReplicationPolicy::Identity => topic.to_owned(),
        }
    }

    /// The cluster a topic was replicated from, if its name says so (`None` for identity).
    pub fn topic_source<'a>(&self, topic: &'a str) -> Option<&'a str> {
        match self {
            ReplicationPolicy::Default { separator } => {
                topic.split_once(separator.as_str()).map(|(a, _)| a)
            }
            ReplicationPolicy::Identity => None,
        }
    }
}

/// An include list and an exclude list of anchored regexes (MM2's topic and group filters).
#[derive(Debug, Clone)]
pub struct NameFilter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl NameFilter {
    pub fn new(
        props: &Props,
        include_key: &str,
        exclude_key: &str,
        exclude_default: &str,
    ) -> Result<Self> {
        let compile = |key: &str, list: Vec<String>| -> Result<Vec<Regex>> {
            list.iter()
                .map(|p| {
                    Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                        ConnectError::InvalidConfig(format!(
                            "Invalid value {p} for configuration {key}: {e}"
                        ))
                    })
                })
                .collect()
        };
        let include = if props.contains_key(include_key) {
            get_list(props, include_key)
        } else {
            vec![".*".to_owned()]
        };
        let exclude = if props.contains_key(exclude_key) {
            get_list(props, exclude_key)
        } else {
            exclude_default
                .split(',')
                .map(|s| s.trim().to_owned())
                .collect()
        };
        Ok(NameFilter {
            include: compile(include_key, include)?,
            exclude: compile(exclude_key, exclude)?,
        })
    }

    pub fn topics(props: &Props) -> Result<Self> {
        NameFilter::new(props, "topics", "topics.exclude", DEFAULT_TOPICS_EXCLUDE)
    }

    pub fn groups(props: &Props) -> Result<Self> {
        NameFilter::new(props, "groups", "groups.exclude", DEFAULT_GROUPS_EXCLUDE)
    }

    pub fn matches(&self, name: &str) -> bool {
        self.include.iter().any(|r| r.is_match(name))
            && !self.exclude.iter().any(|r| r.is_match(name))
    }
}

/// The settings both mirror connectors share.
#[derive(Debug, Clone)]
pub(crate) struct MirrorSettings {
    pub source_alias: String,
    pub target_alias: String,
    pub source_props: Props,
    pub target_props: Props,
    pub policy: ReplicationPolicy,
    pub topics: NameFilter,
    /// `offset-syncs.topic.location`: true when the offset syncs live on the target.
    pub syncs_on_target: bool,
    pub task_index: u64,
    pub task_count: u64,
}

impl MirrorSettings {
    pub fn from_props(props: &Props) -> Result<MirrorSettings> {
        let alias = |k: &str, d: &str| {
            props
                .get(k)
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| d.to_owned())
        };
        let cluster = |prefix: &str| -> Result<Props> {
            let p = crate::config::with_prefix(props, prefix);
            if !p.contains_key("bootstrap.servers") {
                return Err(ConnectError::InvalidConfig(format!(
                    "Missing required configuration \"{prefix}bootstrap.servers\" which has no default value."
                )));
            }
            Ok(p)
        };
        let location = alias("offset-syncs.topic.location", "source");
        if location != "source" && location != "target" {
            return Err(ConnectError::InvalidConfig(format!(
                "Invalid value {location} for configuration offset-syncs.topic.location: String must be one of: source, target"
            )));
        }
        Ok(MirrorSettings {
            source_alias: alias("source.cluster.alias", "source"),
            target_alias: alias("target.cluster.alias", "target"),
            source_props: cluster("source.cluster.")?,
            target_props: cluster("target.cluster.")?,
            policy: ReplicationPolicy::from_config(props)?,
            topics: NameFilter::topics(props)?,
            syncs_on_target: location == "target",
            task_index: get_parsed(props, TASK_INDEX, 0u64)?,
            task_count: get_parsed(props, TASK_COUNT, 1u64)?.max(1),
        })
    }

    /// MM2's offset-syncs topic: `mm2-offset-syncs.<target alias>.internal`.
    pub fn offset_syncs_topic(&self) -> String {
        format!("mm2-offset-syncs.{}.internal", self.target_alias)
    }

    /// The cluster properties where the offset syncs live.
    pub fn syncs_cluster(&self) -> &Props {
        if self.syncs_on_target {
            &self.target_props
        } else {
            &self.source_props
        }
    }

    /// Whether a source topic is mirrored: matches the filter, and is not one the target
    /// itself sent to the source (a cycle).
    pub fn replicates(&self, topic: &str) -> bool {
        self.topics.matches(topic) && self.policy.topic_source(topic) != Some(&self.target_alias)
    }

    /// Does this task own `name` (with a partition, or 0 for groups)?
    pub fn owns(&self, name: &str, partition: i32) -> bool {
        owner(name, partition, self.task_count) == self.task_index
    }
}

/// The task index (of `count`) owning a topic-partition or group: a stable hash (FNV-1a,
/// the same in every process), plus the partition so a topic's partitions spread out.
pub(crate) fn owner(name: &str, partition: i32, count: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.wrapping_add(partition as u64) % count.max(1)
}

/// A client config from cluster properties (`bootstrap.servers` and the client settings
/// strom-client knows; others, e.g. `producer.*`, are for the specific clients).
pub(crate) fn client_config(cluster: &Props) -> Result<ClientConfig> {
    let mut c = ClientConfig::new(cluster.get("bootstrap.servers").map_or("", |s| s.as_str()));
    for (k, v) in cluster {
        c.set(k, v)?;
    }
    Ok(c)
}

/// A consumer config for a cluster: its client settings and its `consumer.*` settings.
pub(crate) fn consumer_config(cluster: &Props) -> Result<ConsumerConfig> {
    let mut c = ConsumerConfig::new(cluster.get("bootstrap.servers").map_or("", |s| s.as_str()));
    for (k, v) in cluster {
        if ClientConfig::default().set(k, v)? {
            c.set(k, v)?;
        }
    }
    c.set("auto.offset.reset", "earliest")?;
    c.set("enable.auto.commit", "false")?;
    for (k, v) in crate::config::with_prefix(cluster, "consumer.") {
        c.set(&k, &v)?;
    }
    Ok(c)
}

/// A producer config for a cluster: its client settings and its `producer.*` settings.
pub(crate) fn producer_config(cluster: &Props) -> Result<ProducerConfig> {
    let mut c = ProducerConfig::new(cluster.get("bootstrap.servers").map_or("", |s| s.as_str()));
    for (k, v) in cluster {
        if ClientConfig::default().set(k, v)? {
            c.set(k, v)?;
        }
    }
    for (k, v) in crate::config::with_prefix(cluster, "producer.") {
        c.set(&k, &v)?;
    }
    Ok(c)
}

/// Creates a one-partition compacted internal topic unless it exists.
pub(crate) async fn ensure_internal_topic(
    admin: &Admin,
    name: &str,
    replication: i16,
) -> Result<()> {
    if admin.describe_topics(&[name.to_owned()]).await.is_ok() {
        return Ok(());
    }
    let mut nt = NewTopic::new(name, 1, replication);
    nt.configs = vec![("cleanup.policy".into(), "compact".into())];
    for (_, r) in admin.create_topics(&[nt], false).await? {
        match r {
            Ok(()) => tracing::info!("created the internal topic {name}"),
            Err(strom_client::Error::Kafka {
                code: KafkaCode::TopicAlreadyExists,
                ..
            }) => {}
            Err(e) => {
                return Err(ConnectError::Task(format!(
                    "Unable to create topic '{name}': {e}"
                )))
            }
        }
    }
    Ok(())
}

/// A `*.seconds` setting as a duration (MM2's interval settings; -1 turns the job off).
pub(crate) fn seconds(props: &Props, key: &str, default: i64) -> Result<Option<Duration>> {
    let s: f64 = get_parsed(props, key, default as f64)?;
    Ok((s >= 0.0).then(|| Duration::from_secs_f64(s)))
}

/// The configs both mirror connectors define.
pub(crate) fn common_mirror_config_def() -> ConfigDef {
    ConfigDef::new()
        .define("source.cluster.alias", ConfigType::String, Some("source"), Importance::High, "Alias of source cluster")
        .define("target.cluster.alias", ConfigType::String, Some("target"), Importance::High, "Alias of target cluster. Used in metrics reporting.")
        .define("source.cluster.bootstrap.servers", ConfigType::List, None, Importance::High, "The source cluster's bootstrap servers; other source.cluster.* keys are client settings for it.")
        .define("target.cluster.bootstrap.servers", ConfigType::List, None, Importance::High, "The target cluster's bootstrap servers (the worker's cluster); other target.cluster.* keys are client settings for it.")
        .define("replication.policy.class", ConfigType::Class, Some(DEFAULT_REPLICATION_POLICY), Importance::Low, "Class which defines the remote topic naming convention.")
        .define("replication.policy.separator", ConfigType::String, Some("."), Importance::Low, "Separator used in remote topic naming convention.")
        .define("topics", ConfigType::List, Some(".*"), Importance::High, "Topics to replicate. Supports comma-separated topic names and regexes.")
        .define("topics.exclude", ConfigType::List, Some(DEFAULT_TOPICS_EXCLUDE), Importance::High, "Topics to exclude. Supports comma-separated topic names and regexes.")
        .define("offset-syncs.topic.location", ConfigType::String, Some("source"), Importance::Low, "The location (source/target) of the offset-syncs topic.")
        .one_of(&["source", "target"])
        .define("offset-syncs.topic.replication.factor", ConfigType::Short, Some("-1"), Importance::Low, "Replication factor for the offset-syncs topic (-1: the broker's default).")
}

/// Validation both mirror connectors share: the regexes, the policy, the converters.
pub(crate) fn validate_common(props: &Props) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (inc, exc, d) in [
        ("topics", "topics.exclude", DEFAULT_TOPICS_EXCLUDE),
        ("groups", "groups.exclude", DEFAULT_GROUPS_EXCLUDE),
    ] {
        if let Err(e) = NameFilter::new(props, inc, exc, d) {
            let key = if e.to_string().contains(&format!("configuration {exc}")) {
                exc
            } else {
                inc
            };
            out.push((key.to_owned(), e.to_string()));
        }
    }
    if let Err(e) = ReplicationPolicy::from_config(props) {
        out.push(("replication.policy.class".into(), e.to_string()));
    }
    for which in ["key.converter", "value.converter"] {
        if let Some(c) = props.get(which).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            if c != BYTE_ARRAY_CONVERTER && c != "ByteArrayConverter" {
                out.push((
                    which.to_owned(),
                    format!("Invalid value {c} for configuration {which}: mirror connectors copy bytes unchanged and need {BYTE_ARRAY_CONVERTER}"),
                ));
            }
        }
    }
    out
}

/// The task configs of a mirror connector: `count` copies with their index.
pub(crate) fn split_tasks(props: &Props, count: usize) -> Vec<Props> {
    let count = count.max(1);
    (0..count)
        .map(|i| {
            let mut p = props.clone();
            p.insert(TASK_INDEX.into(), i.to_string());
            p.insert(TASK_COUNT.into(), count.to_string());
            p
        })
        .collect()
}

/// MM2's wire formats: Kafka's schema serialization of the `OffsetSync` and `Checkpoint`
/// structs (strings as an i16 length and UTF-8 bytes, integers big-endian).
pub mod wire {
    /// An offset sync: record `upstream` of a source partition is at `downstream` on the target.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct OffsetSync {
        pub partition: i32,
        pub upstream: i64,
        pub downstream: i64,
    }

    /// A checkpoint: a group's committed source offset and its translation.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Checkpoint {
        pub group: String,
        pub topic: String,
        pub partition: i32,
        pub upstream: i64,
        pub downstream: i64,
        pub metadata: String,
    }

    /// A heartbeat of the replication path `source` → `target`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Heartbeat {
        pub source: String,
        pub target: String,
        pub timestamp: i64,
    }

    impl Heartbeat {
        /// Key `{sourceClusterAlias: string, targetClusterAlias: string}`.
        pub fn key(&self) -> Vec<u8> {
            let mut out = Vec::new();
            put_str(&mut out, &self.source);
            put_str(&mut out, &self.target);
            out
        }

        /// Value: the header `{version: int16}` (0), then `{timestamp: int64}`.
        pub fn value(&self) -> Vec<u8> {
            let mut out = Vec::with_capacity(10);
            out.extend_from_slice(&0i16.to_be_bytes());
            out.extend_from_slice(&self.timestamp.to_be_bytes());
            out
        }

        pub fn decode(key: &[u8], value: &[u8]) -> Option<Heartbeat> {
            let mut k = Reader(key);
            let (source, target) = (k.string()?, k.string()?);
            let mut v = Reader(value);
            if v.i16()? != 0 {
                return None;
            }
            Some(Heartbeat {
                source,
                target,
                timestamp: v.i64()?,
            })
        }
    }

    fn put_str(out: &mut Vec<u8>, s: &str) {
        let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&s.as_bytes()[..len as usize]);
    }

    struct Reader<'a>(&'a [u8]);

    impl Reader<'_> {
        fn take(&mut self, n: usize) -> Option<&[u8]> {
            if self.0.len() < n {
                return None;
            }
            let (a, b) = self.0.split_at(n);
            self.0 = b;
            Some(a)
        }
        fn i16(&mut self) -> Option<i16> {
            self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
        }
        fn i32(&mut self) -> Option<i32> {
            self.take(4)
                .and_then(|b| b.try_into().ok())
                .map(i32::from_be_bytes)
        }
        fn i64(&mut self) -> Option<i64> {
            self.take(8)
                .and_then(|b| b.try_into().ok())
                .map(i64::from_be_bytes)
        }
        fn string(&mut self) -> Option<String> {
            let n = usize::try_from(self.i16()?).ok()?;
            self.take(n)
                .map(|b| String::from_utf8_lossy(b).into_owned())
        }
    }

    impl OffsetSync {
        /// Key `{topic: string, partition: int32}`.
        pub fn key(&self, topic: &str) -> Vec<u8> {
            let mut out = Vec::new();
            put_str(&mut out, topic);
            out.extend_from_slice(&self.partition.to_be_bytes());
            out
        }

        /// Value `{upstreamOffset: int64, offset: int64}`.
        pub fn value(&self) -> Vec<u8> {
            let mut out = Vec::with_capacity(16);
            out.extend_from_slice(&self.upstream.to_be_bytes());
            out.extend_from_slice(&self.downstream.to_be_bytes());
            out
        }

        /// The topic and the sync of a record of the offset-syncs topic.
        pub fn decode(key: &[u8], value: &[u8]) -> Option<(String, OffsetSync)> {
            let mut k = Reader(key);
            let topic = k.string()?;
            let partition = k.i32()?;
            let mut v = Reader(value);
            Some((
                topic,
                OffsetSync {
                    partition,
                    upstream: v.i64()?,
                    downstream: v.i64()?,
                },
            ))
        }
    }

    impl Checkpoint {
        /// Key `{group: string, topic: string, partition: int32}`.
        pub fn key(&self) -> Vec<u8> {
            let mut out = Vec::new();
            put_str(&mut out, &self.group);
            put_str(&mut out, &self.topic);
            out.extend_from_slice(&self.partition.to_be_bytes());
            out
        }

        /// Value: the header `{version: int16}` (0), then `{upstreamOffset: int64,
        /// offset: int64, metadata: string}`.
        pub fn value(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&0i16.to_be_bytes());
            out.extend_from_slice(&self.upstream.to_be_bytes());
            out.extend_from_slice(&self.downstream.to_be_bytes());
            put_str(&mut out, &self.metadata);
            out
        }

        pub fn decode(key: &[u8], value: &[u8]) -> Option<Checkpoint> {
            let mut k = Reader(key);
            let (group, topic, partition) = (k.string()?, k.string()?, k.i32()?);
            let mut v = Reader(value);
            if v.i16()? != 0 {
                return None;
            }
            Some(Checkpoint {
                group,
                topic,
                partition,
                upstream: v.i64()?,
                downstream: v.i64()?,
                metadata: v.string()?,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::wire::{Checkpoint, Heartbeat, OffsetSync};
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn policies_name_remote_topics() {
        let d = ReplicationPolicy::from_config(&Props::new()).unwrap();
        assert_eq!(d.format_remote_topic("us", "orders"), "us.orders");
        assert_eq!(d.topic_source("us.orders"), Some("us"));
        assert_eq!(d.topic_source("orders"), None);
        let i = ReplicationPolicy::from_config(&props(&[(
            "replication.policy.class",
            IDENTITY_REPLICATION_POLICY,
        )]))
        .unwrap();
        assert_eq!(i.format_remote_topic("us", "orders"), "orders");
        assert!(
            ReplicationPolicy::from_config(&props(&[("replication.policy.class", "x.Nope")]))
                .is_err()
        );
    }

    #[test]
    fn filters_take_mm2_defaults_and_skip_cycles() {
        let s = MirrorSettings::from_props(&props(&[
            ("source.cluster.bootstrap.servers", "a:1"),
            ("target.cluster.bootstrap.servers", "b:1"),
            ("source.cluster.alias", "east"),
            ("target.cluster.alias", "west"),
            ("topics", "orders.*, pay"),
        ]))
        .unwrap();
        assert!(s.replicates("orders"));
        assert!(s.replicates("orders-eu"));
        assert!(s.replicates("pay"));
        assert!(!s.replicates("payments"));
        assert!(!s.replicates("orders.internal"));
        assert_eq!(s.offset_syncs_topic(), "mm2-offset-syncs.west.internal");
        let all = MirrorSettings::from_props(&props(&[
            ("source.cluster.bootstrap.servers", "a:1"),
            ("target.cluster.bootstrap.servers", "b:1"),
            ("target.cluster.alias", "west"),
        ]))
        .unwrap();
        assert!(all.replicates("x"));
        assert!(!all.replicates("__consumer_offsets"));
        assert!(
            !all.replicates("west.x"),
            "a topic from the target is a cycle"
        );
        let g = NameFilter::groups(&Props::new()).unwrap();
        assert!(g.matches("app"));
        assert!(!g.matches("connect-sink"));
        assert!(!g.matches("console-consumer-1"));
        assert!(
            MirrorSettings::from_props(&props(&[("source.cluster.bootstrap.servers", "a:1")]))
                .is_err()
        );
    }

    #[test]
    fn validation_names_the_field() {
        let plugins = crate::plugins::Plugins::builtin();
        let v = plugins
            .validate_connector_config(&props(&[
                ("name", "m"),
                ("connector.class", "MirrorSourceConnector"),
                ("topics", "ok, (bad"),
                (
                    "value.converter",
                    "org.apache.kafka.connect.json.JsonConverter",
                ),
                ("key.converter", "ByteArrayConverter"),
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
            v.class,
            "org.apache.kafka.connect.mirror.MirrorSourceConnector"
        );
        assert_eq!(
            errs("source.cluster.bootstrap.servers"),
            vec!["Missing required configuration \"source.cluster.bootstrap.servers\" which has no default value."]
        );
        assert_eq!(errs("topics").len(), 1);
        assert!(errs("topics")[0].starts_with("Invalid value (bad for configuration topics:"));
        assert_eq!(
            errs("value.converter"),
            vec![format!("Invalid value org.apache.kafka.connect.json.JsonConverter for configuration value.converter: mirror connectors copy bytes unchanged and need {BYTE_ARRAY_CONVERTER}")]
        );
        assert!(errs("key.converter").is_empty());
        assert_eq!(v.error_count(), 4, "{:?}", v.errors());
        for name in [
            "MirrorCheckpoint",
            "io.strom.connect.mirror.MirrorHeartbeatConnector",
        ] {
            assert!(plugins.find_connector(name).is_some(), "{name}");
        }
    }

    #[test]
    fn ownership_is_stable_and_spread() {
        let mut counts = [0usize; 3];
        for p in 0..30 {
            let o = owner("topic", p, 3);
            assert_eq!(o, owner("topic", p, 3));
            counts[o as usize] += 1;
        }
        assert_eq!(counts, [10, 10, 10]);
    }

    #[test]
    fn wire_formats_are_mm2s() {
        let s = OffsetSync {
            partition: 2,
            upstream: 7,
            downstream: 5,
        };
        assert_eq!(s.key("ab"), vec![0, 2, b'a', b'b', 0, 0, 0, 2]);
        assert_eq!(
            s.value(),
            vec![0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 5]
        );
        assert_eq!(
            OffsetSync::decode(&s.key("ab"), &s.value()),
            Some(("ab".into(), s))
        );
        let c = Checkpoint {
            group: "g".into(),
            topic: "t".into(),
            partition: 1,
            upstream: 10,
            downstream: 9,
            metadata: "".into(),
        };
        assert_eq!(c.key(), vec![0, 1, b'g', 0, 1, b't', 0, 0, 0, 1]);
        assert_eq!(
            c.value(),
            vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0]
        );
        assert_eq!(Checkpoint::decode(&c.key(), &c.value()), Some(c));
        let h = Heartbeat {
            source: "a".into(),
            target: "b".into(),
            timestamp: 258,
        };
        assert_eq!(h.key(), vec![0, 1, b'a', 0, 1, b'b']);
        assert_eq!(h.value(), vec![0, 0, 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(Heartbeat::decode(&h.key(), &h.value()), Some(h));
    }
}
