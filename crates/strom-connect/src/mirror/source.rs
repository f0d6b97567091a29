//! `MirrorSourceConnector`: reads the source cluster's matching topics and returns each
//! record for the same partition of the renamed topic on the target, key, value, headers and
//! timestamp as they were. Each task owns the topic-partitions its index selects and looks
//! for new topics and partitions itself (`refresh.topics.interval.seconds`), creating the
//! target topic with the source's partition count and non-default configs before it mirrors
//! a record of it, and keeping those configs in step (`sync.topic.configs.*`).
//!
//! Offset syncs: the runtime sends a batch and waits for every acknowledgement before it
//! polls again, so at the start of a poll the records returned for a partition since the
//! last pass are the last ones in the target partition, in order (the task is its only
//! writer): with the target's log end offset `e`, the i-th of `n` is at `e - n + i`. As
//! MM2, a sync is written for a partition's first record, after a gap in the source offsets,
//! when the target moved `offset.lag.max` records since the last sync, and, after the runtime
//! committed offsets, for every partition's last record (MM2 promotes its delayed syncs on
//! commit) — so when the mirror is idle translations are exact. Were records dropped on the
//! way (a Filter transform), the estimates fall short of the true offsets: a consumer that
//! fails over reads some records twice but skips none.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::json;
use strom_client::admin::{AlterOp, ConfigResource};
use strom_client::{
    Admin, Consumer, KafkaCode, NewTopic, Producer, ProducerRecord, TopicPartition, LATEST,
};

use super::wire::OffsetSync;
use super::{MirrorSettings, ReplicationPolicy};
use crate::config::{get_bool, get_list, get_parsed, ConfigDef, ConfigType, Importance, Props};
use crate::connector::{BoxFuture, Connector, ConnectorType, SourceOffsets, SourceTask, Task};
use crate::data::{Header, JsonMap, Record, Schema, SchemaType, SourceRecord, Value};
use crate::error::{ConnectError, Result};

pub const MIRROR_SOURCE_CLASS: &str = "org.apache.kafka.connect.mirror.MirrorSourceConnector";

/// MM2's default `config.properties.exclude`: topic configs that are not copied.
const DEFAULT_CONFIG_EXCLUDE: &str = "follower\\.replication\\.throttled\\.replicas, leader\\.replication\\.throttled\\.replicas, message\\.timestamp\\.difference\\.max\\.ms, message\\.timestamp\\.type, unclean\\.leader\\.election\\.enable, min\\.insync\\.replicas";
/// The longest a poll waits for source records.
const POLL_WAIT: Duration = Duration::from_millis(250);

/// MM2's MirrorSourceConnector.
#[derive(Debug, Default)]
pub struct MirrorSourceConnector {
    props: Props,
}

impl Connector for MirrorSourceConnector {
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }

    fn config_def(&self) -> ConfigDef {
        super::common_mirror_config_def()
            .define("refresh.topics.enabled", ConfigType::Boolean, Some("true"), Importance::Low, "Whether to periodically check for new topics and partitions.")
            .define("refresh.topics.interval.seconds", ConfigType::Long, Some("600"), Importance::Low, "Frequency of topic refresh.")
            .define("sync.topic.configs.enabled", ConfigType::Boolean, Some("true"), Importance::Low, "Whether to periodically configure remote topics to match their corresponding upstream topics.")
            .define("sync.topic.configs.interval.seconds", ConfigType::Long, Some("600"), Importance::Low, "Frequency of topic config sync.")
            .define("config.properties.exclude", ConfigType::List, Some(DEFAULT_CONFIG_EXCLUDE), Importance::High, "Topic configuration properties that should not be replicated. Supports comma-separated property names and regexes.")
            .define("replication.factor", ConfigType::Int, Some("-1"), Importance::Low, "Replication factor for newly created remote topics (-1: the broker's default).")
            .define("offset.lag.max", ConfigType::Long, Some("100"), Importance::Low, "How out-of-sync a remote partition can be before it is resynced.")
            .define("emit.offset-syncs.enabled", ConfigType::Boolean, Some("true"), Importance::Low, "Whether to store the new offset of the replicated records in offset-syncs topic or not.")
    }

    fn validate_extra(&self, props: &Props) -> Vec<(String, String)> {
        let mut out = super::validate_common(props);
        if let Err(e) = compile_list(props, "config.properties.exclude", DEFAULT_CONFIG_EXCLUDE) {
            out.push(("config.properties.exclude".into(), e.to_string()));
        }
        out
    }

    fn start(&mut self, props: &Props) -> Result<()> {
        MirrorSettings::from_props(props)?;
        self.props = props.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<Props> {
        super::split_tasks(&self.props, max_tasks)
    }

    fn create_task(&self) -> Task {
        Task::Source(Box::new(MirrorSourceTask::default()))
    }
}

fn compile_list(props: &Props, key: &str, default: &str) -> Result<Vec<Regex>> {
    let list = if props.contains_key(key) {
        get_list(props, key)
    } else {
        default.split(',').map(|s| s.trim().to_owned()).collect()
    };
    list.iter()
        .map(|p| {
            Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                ConnectError::InvalidConfig(format!(
                    "Invalid value {p} for configuration {key}: {e}"
                ))
            })
        })
        .collect()
}

/// Where one owned source partition is.
#[derive(Debug, Default, Clone)]
struct PartitionState {
    /// The next source offset to read (`None`: from the earliest).
    next: Option<i64>,
    /// The source offsets handed to the runtime since the last sync pass.
    run: Vec<i64>,
    /// The last record whose target offset is known: (upstream, downstream).
    last: Option<(i64, i64)>,
    /// The last offset sync written: (upstream, downstream).
    synced: Option<(i64, i64)>,
}

fn sync(tp: &TopicPartition, upstream: i64, downstream: i64) -> OffsetSync {
    OffsetSync {
        partition: tp.partition,
        upstream,
        downstream,
    }
}

/// The clients of a running task.
struct Clients {
    source: Admin,
    target: Admin,
    /// Writes offset syncs (to the source cluster, or the target's with
    /// `offset-syncs.topic.location=target`).
    syncs: Producer,
}

struct Settings {
    mirror: MirrorSettings,
    refresh: Option<Duration>,
    config_sync: Option<Duration>,
    config_exclude: Vec<Regex>,
    replication_factor: i16,
    syncs_replication_factor: i16,
    offset_lag_max: i64,
    emit_syncs: bool,
}

/// Reads its source partitions and returns their records for the target.
#[derive(Default)]
pub struct MirrorSourceTask {
    settings: Option<Settings>,
    offsets: SourceOffsets,
    clients: Option<Clients>,
    /// Reads the owned source partitions (apart from `clients`: it is not `Sync`).
    consumer: Option<Consumer>,
    /// Source topics mirrored, with their partition counts.
    topics: BTreeMap<String, i32>,
    assigned: BTreeMap<TopicPartition, PartitionState>,
    last_refresh: Option<Instant>,
    last_config_sync: Option<Instant>,
    /// The runtime committed offsets since the last sync pass.
    committed: bool,
}

impl MirrorSourceTask {
    fn settings(&self) -> Result<&Settings> {
        self.settings
            .as_ref()
            .ok_or_else(|| ConnectError::Task("mirror source task not started".into()))
    }

    fn source_partition(alias: &str, tp: &TopicPartition) -> JsonMap {
        let mut m = JsonMap::new();
        m.insert("cluster".into(), json!(alias));
        m.insert("partition".into(), json!(tp.partition));
        m.insert("topic".into(), json!(tp.topic));
        m
    }

    async fn connect(&mut self) -> Result<()> {
        let s = self.settings()?;
        let m = &s.mirror;
        let source = Admin::new(super::client_config(&m.source_props)?).await?;
        let target = Admin::new(super::client_config(&m.target_props)?).await?;
        let consumer = Consumer::new(super::consumer_config(&m.source_props)?).await?;
        let syncs = Producer::new(super::producer_config(m.syncs_cluster())?).await?;
        if s.emit_syncs {
            let admin = if m.syncs_on_target { &target } else { &source };
            super::ensure_internal_topic(
                admin,
                &m.offset_syncs_topic(),
                s.syncs_replication_factor,
            )
            .await?;
        }
        self.clients = Some(Clients {
            source,
            target,
            syncs,
        });
        self.consumer = Some(consumer);
        Ok(())
    }

    /// Finds the mirrored topics and this task's partitions; creates or grows target topics.
    async fn refresh_topics(&mut self) -> Result<()> {
        let (Some(c), Some(consumer)) = (self.clients.as_ref(), self.consumer.as_mut()) else {
            return Ok(());
        };
        let s = self.settings.as_ref().expect("started");
        let m = &s.mirror;
        let now: BTreeMap<String, i32> = c
            .source
            .list_topics(false)
            .await?
            .into_iter()
            .filter(|t| t.error.is_none() && !t.partitions.is_empty() && m.replicates(&t.name))
            .map(|t| (t.name, t.partitions.len() as i32))
            .collect();
        let mut wanted: BTreeSet<TopicPartition> = BTreeSet::new();
        for (topic, &count) in &now {
            let owned: Vec<i32> = (0..count).filter(|p| m.owns(topic, *p)).collect();
            if owned.is_empty() {
                continue;
            }
            if self.topics.get(topic) != Some(&count) {
                let configs = if s.config_sync.is_some() {
                    source_configs(&c.source, topic, &s.config_exclude).await?
                } else {
                    Vec::new()
                };
                let remote = m.policy.format_remote_topic(&m.source_alias, topic);
                ensure_target_topic(&c.target, &remote, count, s.replication_factor, configs)
                    .await?;
            }
            wanted.extend(
                owned
                    .into_iter()
                    .map(|p| TopicPartition::new(topic.clone(), p)),
            );
        }
        self.topics = now;
        let current: BTreeSet<TopicPartition> = self.assigned.keys().cloned().collect();
        if current == wanted {
            return Ok(());
        }
        let mut assigned = BTreeMap::new();
        for tp in &wanted {
            let state = match self.assigned.remove(tp) {
                Some(st) => st,
                None => {
                    let next = self
                        .offsets
                        .offset(&Self::source_partition(&m.source_alias, tp))
                        .and_then(|o| o.get("offset"))
                        .and_then(|o| o.as_i64())
                        .map(|o| o + 1);
                    PartitionState {
                        next,
                        ..PartitionState::default()
                    }
                }
            };
            assigned.insert(tp.clone(), state);
        }
        let tps: Vec<TopicPartition> = wanted.into_iter().collect();
        consumer.assign(&tps);
        for (tp, st) in &assigned {
            if let Some(n) = st.next {
                consumer.seek(tp, n)?;
            }
        }
        tracing::info!(
            "mirror source task {} of {} reads {} partitions of {} topics",
            m.task_index,
            m.task_count,
            tps.len(),
            self.topics.len()
        );
        self.assigned = assigned;
        Ok(())
    }

    /// Makes the target topics' configs match their source's (for topics whose partition 0
    /// this task owns, so one task does each).
    async fn sync_configs(&mut self) -> Result<()> {
        let Some(c) = self.clients.as_ref() else {
            return Ok(());
        };
        let s = self.settings.as_ref().expect("started");
        let m = &s.mirror;
        for topic in self.topics.keys().filter(|t| m.owns(t, 0)) {
            let want = source_configs(&c.source, topic, &s.config_exclude).await?;
            let remote = m.policy.format_remote_topic(&m.source_alias, topic);
            let have: BTreeMap<String, Option<String>> = c
                .target
                .describe_configs(&ConfigResource::Topic(remote.clone()), None)
                .await?
                .into_iter()
                .map(|e| (e.name, e.value))
                .collect();
            let ops: Vec<(String, AlterOp, Option<String>)> = want
                .into_iter()
                .filter(|(k, v)| have.get(k).and_then(|h| h.as_ref()) != Some(v))
                .map(|(k, v)| (k, AlterOp::Set, Some(v)))
                .collect();
            if !ops.is_empty() {
                tracing::info!("syncing {} configs of {remote}", ops.len());
                c.target
                    .alter_configs(&ConfigResource::Topic(remote), &ops)
                    .await?;
            }
        }
        Ok(())
    }

    /// Writes the offset syncs that are due (see the module docs).
    async fn emit_offset_syncs(&mut self) -> Result<()> {
        let s = self.settings.as_ref().expect("started");
        let Some(c) = self.clients.as_ref() else {
            return Ok(());
        };
        let committed = std::mem::take(&mut self.committed);
        if !s.emit_syncs {
            return Ok(());
        }
        let m = &s.mirror;
        let remote = |tp: &TopicPartition| {
            TopicPartition::new(
                m.policy.format_remote_topic(&m.source_alias, &tp.topic),
                tp.partition,
            )
        };
        let specs: Vec<(TopicPartition, i64)> = self
            .assigned
            .iter()
            .filter(|(_, st)| !st.run.is_empty())
            .map(|(tp, _)| (remote(tp), LATEST))
            .collect();
        let ends = if specs.is_empty() {
            Default::default()
        } else {
            c.target.client().list_offsets(&specs, 0).await?
        };
        let mut due: Vec<(TopicPartition, OffsetSync)> = Vec::new();
        for (tp, st) in self.assigned.iter_mut() {
            let run = std::mem::take(&mut st.run);
            if !run.is_empty() {
                let Some(&(end, _)) = ends.get(&remote(tp)) else {
                    continue;
                };
                let n = run.len() as i64;
                if end < n {
                    continue; // not this task's records: no sync rather than a wrong one
                }
                for (i, upstream) in run.into_iter().enumerate() {
                    let downstream = end - n + i as i64;
                    let sync_now = match (st.synced, st.last) {
                        (None, _) | (_, None) => true,
                        (Some((_, sd)), Some((lu, _))) => {
                            upstream != lu + 1 || downstream - sd >= s.offset_lag_max
                        }
                    };
                    st.last = Some((upstream, downstream));
                    if sync_now {
                        st.synced = Some((upstream, downstream));
                        due.push((tp.clone(), sync(tp, upstream, downstream)));
                    }
                }
            }
            // After a commit, the last record of every partition gets its sync (MM2
            // promotes its delayed syncs on commit).
            if let Some((u, d)) = st.last.filter(|_| committed && st.last != st.synced) {
                st.synced = st.last;
                due.push((tp.clone(), sync(tp, u, d)));
            }
        }
        if due.is_empty() {
            return Ok(());
        }
        let sync_topic = m.offset_syncs_topic();
        let mut acks = Vec::with_capacity(due.len());
        for (tp, sync) in &due {
            let rec = ProducerRecord::new(sync_topic.clone())
                .partition(0)
                .key(sync.key(&tp.topic))
                .value(sync.value());
            acks.push(c.syncs.send(rec).await?);
        }
        for a in acks {
            a.await?;
        }
        Ok(())
    }

    async fn poll_once(&mut self) -> Result<Vec<SourceRecord>> {
        if self.clients.is_none() {
            self.connect().await?;
        }
        let (refresh, config_sync) = {
            let s = self.settings()?;
            (s.refresh, s.config_sync)
        };
        let due = |last: Option<Instant>, every: Option<Duration>| match (last, every) {
            (None, _) => true,
            (Some(l), Some(e)) => l.elapsed() >= e,
            (Some(_), None) => false,
        };
        if due(self.last_refresh, refresh) {
            self.refresh_topics().await?;
            self.last_refresh = Some(Instant::now());
        }
        if config_sync.is_some() && due(self.last_config_sync, config_sync) {
            self.sync_configs().await?;
            self.last_config_sync = Some(Instant::now());
        }
        self.emit_offset_syncs().await?;
        if self.assigned.is_empty() {
            tokio::time::sleep(POLL_WAIT).await;
            return Ok(Vec::new());
        }
        let s = self.settings.as_ref().expect("started");
        let alias = s.mirror.source_alias.clone();
        let policy: ReplicationPolicy = s.mirror.policy.clone();
        let consumer = self.consumer.as_mut().expect("connected");
        let records = consumer.poll(POLL_WAIT).await?;
        let bytes = || Some(Schema::new(SchemaType::Bytes).optional());
        let mut out = Vec::with_capacity(records.len());
        for r in records {
            let tp = TopicPartition::new(r.topic.clone(), r.partition);
            let Some(st) = self.assigned.get_mut(&tp) else {
                continue;
            };
            st.next = Some(r.offset + 1);
            st.run.push(r.offset);
            let mut offset = JsonMap::new();
            offset.insert("offset".into(), json!(r.offset));
            let to_value =
                |b: Option<bytes::Bytes>| b.map_or(Value::Null, |b| Value::Bytes(b.to_vec()));
            out.push(SourceRecord {
                source_partition: Self::source_partition(&alias, &tp),
                source_offset: offset,
                record: Record {
                    topic: policy.format_remote_topic(&alias, &r.topic),
                    kafka_partition: Some(r.partition),
                    key_schema: bytes(),
                    key: to_value(r.key),
                    value_schema: bytes(),
                    value: to_value(r.value),
                    timestamp: Some(r.timestamp),
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(key, v)| Header {
                            key,
                            schema: bytes(),
                            value: to_value(v),
                        })
                        .collect(),
                },
            });
        }
        Ok(out)
    }
}

/// A source topic's configs to copy: those set on the topic, minus the excluded ones.
async fn source_configs(
    admin: &Admin,
    topic: &str,
    exclude: &[Regex],
) -> Result<Vec<(String, String)>> {
    Ok(admin
        .describe_configs(&ConfigResource::Topic(topic.to_owned()), None)
        .await?
        .into_iter()
        .filter(|e| e.source == "DYNAMIC_TOPIC_CONFIG" && !e.is_sensitive)
        .filter(|e| !exclude.iter().any(|r| r.is_match(&e.name)))
        .filter_map(|e| e.value.map(|v| (e.name, v)))
        .collect())
}

/// Creates the target topic with `partitions` and `configs`, or grows it to `partitions`.
async fn ensure_target_topic(
    admin: &Admin,
    name: &str,
    partitions: i32,
    replication: i16,
    configs: Vec<(String, String)>,
) -> Result<()> {
    if let Ok(t) = admin.describe_topics(&[name.to_owned()]).await {
        let have = t.first().map_or(0, |t| t.partitions.len() as i32);
        if have < partitions {
            tracing::info!("growing {name} from {have} to {partitions} partitions");
            admin.create_partitions(name, partitions).await?;
        }
        return Ok(());
    }
    let mut nt = NewTopic::new(name, partitions, replication);
    nt.configs = configs;
    for (_, r) in admin.create_topics(&[nt], false).await? {
        match r {
            Ok(()) => tracing::info!("created the remote topic {name} ({partitions} partitions)"),
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
    // Wait until the new topic has leaders, so the first records find it.
    for _ in 0..100 {
        if let Ok(t) = admin.describe_topics(&[name.to_owned()]).await {
            if t.first().is_some_and(|t| {
                t.partitions.len() as i32 >= partitions
                    && t.partitions.iter().all(|p| p.leader >= 0)
            }) {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(ConnectError::Retriable(format!(
        "topic {name} has no leaders yet"
    )))
}

impl SourceTask for MirrorSourceTask {
    fn start(&mut self, props: &Props, offsets: &SourceOffsets) -> Result<()> {
        let mirror = MirrorSettings::from_props(props)?;
        let refresh = if get_bool(props, "refresh.topics.enabled", true)? {
            super::seconds(props, "refresh.topics.interval.seconds", 600)?
        } else {
            None
        };
        let config_sync = if get_bool(props, "sync.topic.configs.enabled", true)? {
            // Off with sync disabled; -1 keeps the copy at creation only.
            Some(
                super::seconds(props, "sync.topic.configs.interval.seconds", 600)?
                    .unwrap_or(Duration::MAX),
            )
        } else {
            None
        };
        self.settings = Some(Settings {
            mirror,
            refresh,
            config_sync,
            config_exclude: compile_list(
                props,
                "config.properties.exclude",
                DEFAULT_CONFIG_EXCLUDE,
            )?,
            replication_factor: get_parsed(props, "replication.factor", -1i16)?,
            syncs_replication_factor: get_parsed(
                props,
                "offset-syncs.topic.replication.factor",
                -1i16,
            )?,
            offset_lag_max: get_parsed(props, "offset.lag.max", 100i64)?.max(0),
            emit_syncs: get_bool(props, "emit.offset-syncs.enabled", true)?,
        });
        self.offsets = offsets.clone();
        Ok(())
    }

    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>>> {
        Box::pin(async move {
            self.poll_once().await.map_err(|e| match e {
                // A cluster that is briefly away is polled again, as MM2's tasks retry.
                ConnectError::Kafka(why) => ConnectError::Retriable(why),
                e => e,
            })
        })
    }

    fn commit(&mut self) -> Result<()> {
        self.committed = true;
        Ok(())
    }

    fn stop(&mut self) {
        self.clients = None;
        self.consumer = None;
    }
}
