//! `MirrorCheckpointConnector`: reads the offset syncs the mirror source writes, translates
//! the committed source offsets of the consumer groups matching `groups` into offsets of
//! the mirrored topics, and emits them as checkpoints to `<source alias>.checkpoints.internal`
//! on the target (MM2's format). With `sync.group.offsets.enabled=true` it also commits the
//! translations to the same group on the target — only while that group has no active
//! members, and never moving a group's offset backwards (as MM2) — so a consumer group can
//! fail over to the target and resume there without losing records.
//!
//! Translation is MM2's: for a committed offset `U`, the latest sync `(u, d)` with `u <= U`
//! gives `d` when `u == U` and `d + 1` otherwise (records after `u` are at least one past
//! `d`). A translation is never ahead of the true position, so nothing is skipped; records
//! between the sync and `U` may be read twice (at most the distance between syncs).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use strom_client::{Admin, Consumer, TopicPartition};

use super::wire::{Checkpoint, OffsetSync};
use super::{MirrorSettings, NameFilter};
use crate::config::{get_bool, get_parsed, ConfigDef, ConfigType, Importance, Props};
use crate::connector::{BoxFuture, Connector, ConnectorType, SourceOffsets, SourceTask, Task};
use crate::data::{JsonMap, Record, Schema, SchemaType, SourceRecord, Value};
use crate::error::{ConnectError, Result};

pub const MIRROR_CHECKPOINT_CLASS: &str =
    "org.apache.kafka.connect.mirror.MirrorCheckpointConnector";

/// The offset syncs kept per partition (older ones only translate old commits).
const SYNCS_KEPT: usize = 4096;
/// The longest one pass reads offset syncs.
const SYNCS_READ_MAX: Duration = Duration::from_secs(2);
/// The longest a poll waits when nothing is due.
const IDLE_WAIT: Duration = Duration::from_millis(200);

/// MM2's MirrorCheckpointConnector.
#[derive(Debug, Default)]
pub struct MirrorCheckpointConnector {
    props: Props,
}

impl Connector for MirrorCheckpointConnector {
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }

    fn config_def(&self) -> ConfigDef {
        super::common_mirror_config_def()
            .define("groups", ConfigType::List, Some(".*"), Importance::High, "Consumer groups to replicate. Supports comma-separated group IDs and regexes.")
            .define("groups.exclude", ConfigType::List, Some(super::DEFAULT_GROUPS_EXCLUDE), Importance::High, "Exclude groups. Supports comma-separated group IDs and regexes.")
            .define("refresh.groups.enabled", ConfigType::Boolean, Some("true"), Importance::Low, "Whether to periodically check for new consumer groups.")
            .define("refresh.groups.interval.seconds", ConfigType::Long, Some("600"), Importance::Low, "Frequency of group refresh.")
            .define("emit.checkpoints.enabled", ConfigType::Boolean, Some("true"), Importance::Low, "Whether to replicate consumer offsets to target cluster.")
            .define("emit.checkpoints.interval.seconds", ConfigType::Long, Some("60"), Importance::Low, "Frequency of checkpoints.")
            .define("sync.group.offsets.enabled", ConfigType::Boolean, Some("false"), Importance::Low, "Whether to periodically write the translated offsets to __consumer_offsets topic in target cluster, as long as no active consumers in that group are connected to the target cluster")
            .define("sync.group.offsets.interval.seconds", ConfigType::Long, Some("60"), Importance::Low, "Frequency of consumer group offset sync.")
            .define("checkpoints.topic.replication.factor", ConfigType::Short, Some("-1"), Importance::Low, "Replication factor for checkpoints topic (-1: the broker's default).")
    }

    fn validate_extra(&self, props: &Props) -> Vec<(String, String)> {
        super::validate_common(props)
    }

    fn start(&mut self, props: &Props) -> Result<()> {
        MirrorSettings::from_props(props)?;
        NameFilter::groups(props)?;
        self.props = props.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<Props> {
        super::split_tasks(&self.props, max_tasks)
    }

    fn create_task(&self) -> Task {
        Task::Source(Box::new(MirrorCheckpointTask::default()))
    }
}

struct Settings {
    mirror: MirrorSettings,
    groups: NameFilter,
    refresh_groups: Option<Duration>,
    emit: Option<Duration>,
    sync_groups: Option<Duration>,
    checkpoints_replication_factor: i16,
    syncs_replication_factor: i16,
}

struct Clients {
    source: Admin,
    target: Admin,
}

/// The offset syncs of each source partition: upstream offset → downstream offset.
#[derive(Debug, Default)]
pub struct SyncStore {
    by_partition: HashMap<TopicPartition, BTreeMap<i64, i64>>,
}

impl SyncStore {
    pub fn add(&mut self, topic: String, s: OffsetSync) {
        let m = self
            .by_partition
            .entry(TopicPartition::new(topic, s.partition))
            .or_default();
        // A sync older than one already seen means the mirror started over (its
        // downstream offsets moved): what was known after it no longer holds.
        let stale: Vec<i64> = m.range(s.upstream + 1..).map(|(u, _)| *u).collect();
        for u in stale {
            m.remove(&u);
        }
        m.insert(s.upstream, s.downstream);
        while m.len() > SYNCS_KEPT {
            m.pop_first();
        }
    }

    /// The downstream offset for a committed upstream offset, if a sync covers it.
    pub fn translate(&self, tp: &TopicPartition, upstream: i64) -> Option<i64> {
        let (u, d) = self.by_partition.get(tp)?.range(..=upstream).next_back()?;
        Some(if *u == upstream { *d } else { d + 1 })
    }
}

/// Emits checkpoints for its groups and syncs their offsets to the target.
#[derive(Default)]
pub struct MirrorCheckpointTask {
    settings: Option<Settings>,
    clients: Option<Clients>,
    /// Reads the offset syncs (apart from `clients`: it is not `Sync`).
    consumer: Option<Consumer>,
    syncs: SyncStore,
    groups: Vec<String>,
    /// The translations last emitted: group → remote partition → (upstream, downstream).
    emitted: HashMap<String, BTreeMap<TopicPartition, (i64, i64)>>,
    last_refresh: Option<Instant>,
    last_emit: Option<Instant>,
    last_group_sync: Option<Instant>,
}

fn due(last: Option<Instant>, every: Option<Duration>) -> bool {
    match (last, every) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(l), Some(e)) => l.elapsed() >= e,
    }
}

impl MirrorCheckpointTask {
    fn checkpoints_topic(&self) -> String {
        let alias = self
            .settings
            .as_ref()
            .map_or("source", |s| s.mirror.source_alias.as_str());
        format!("{alias}.checkpoints.internal")
    }

    async fn connect(&mut self) -> Result<()> {
        let topic = self.checkpoints_topic();
        let s = self
            .settings
            .as_ref()
            .ok_or_else(|| ConnectError::Task("mirror checkpoint task not started".into()))?;
        let m = &s.mirror;
        let source = Admin::new(super::client_config(&m.source_props)?).await?;
        let target = Admin::new(super::client_config(&m.target_props)?).await?;
        let syncs_admin = if m.syncs_on_target { &target } else { &source };
        super::ensure_internal_topic(
            syncs_admin,
            &m.offset_syncs_topic(),
            s.syncs_replication_factor,
        )
        .await?;
        super::ensure_internal_topic(&target, &topic, s.checkpoints_replication_factor).await?;
        let mut cc = super::consumer_config(m.syncs_cluster())?;
        cc.set("fetch.max.wait.ms", "50")?;
        let mut syncs = Consumer::new(cc).await?;
        syncs.assign(&[TopicPartition::new(m.offset_syncs_topic(), 0)]);
        self.clients = Some(Clients { source, target });
        self.consumer = Some(syncs);
        Ok(())
    }

    /// Reads the offset syncs written since the last call (for at most `SYNCS_READ_MAX`, so
    /// a busy mirror's stream of syncs does not hold the checkpoints back).
    async fn read_syncs(&mut self) -> Result<()> {
        let consumer = self.consumer.as_mut().expect("connected");
        let started = Instant::now();
        loop {
            let records = consumer.poll(Duration::from_millis(50)).await?;
            let caught_up = records.is_empty();
            for r in records {
                let (Some(k), Some(v)) = (r.key.as_deref(), r.value.as_deref()) else {
                    continue;
                };
                match OffsetSync::decode(k, v) {
                    Some((topic, sync)) => self.syncs.add(topic, sync),
                    None => {
                        tracing::warn!("skipping a malformed offset sync at offset {}", r.offset)
                    }
                }
            }
            if caught_up || started.elapsed() >= SYNCS_READ_MAX {
                return Ok(());
            }
        }
    }

    async fn refresh_groups(&mut self) -> Result<()> {
        let s = self.settings.as_ref().expect("started");
        let c = self.clients.as_ref().expect("connected");
        self.groups = c
            .source
            .list_groups()
            .await?
            .into_iter()
            .map(|g| g.group_id)
            .filter(|g| s.groups.matches(g) && s.mirror.owns(g, 0))
            .collect();
        Ok(())
    }

    /// The checkpoints that changed since they were last emitted.
    async fn checkpoints(&mut self) -> Result<Vec<SourceRecord>> {
        let topic = self.checkpoints_topic();
        let s = self.settings.as_ref().expect("started");
        let m = &s.mirror;
        let c = self.clients.as_ref().expect("connected");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let bytes = || Some(Schema::new(SchemaType::Bytes));
        let mut out = Vec::new();
        for group in &self.groups {
            let committed = c.source.list_group_offsets(group).await?;
            let emitted = self.emitted.entry(group.clone()).or_default();
            for (tp, co) in committed {
                if co.offset < 0 || !m.replicates(&tp.topic) {
                    continue;
                }
                let Some(downstream) = self.syncs.translate(&tp, co.offset) else {
                    continue;
                };
                let remote = TopicPartition::new(
                    m.policy.format_remote_topic(&m.source_alias, &tp.topic),
                    tp.partition,
                );
                if emitted.get(&remote) == Some(&(co.offset, downstream)) {
                    continue;
                }
                emitted.insert(remote.clone(), (co.offset, downstream));
                let cp = Checkpoint {
                    group: group.clone(),
                    topic: remote.topic.clone(),
                    partition: remote.partition,
                    upstream: co.offset,
                    downstream,
                    metadata: co.metadata.unwrap_or_default(),
                };
                let mut partition = JsonMap::new();
                partition.insert("group".into(), json!(group));
                partition.insert("partition".into(), json!(remote.partition));
                partition.insert("topic".into(), json!(remote.topic));
                let mut offset = JsonMap::new();
                offset.insert("offset".into(), json!(co.offset));
                let mut record = Record::new(&topic, bytes(), Value::Bytes(cp.value()));
                record.kafka_partition = Some(0);
                record.key_schema = bytes();
                record.key = Value::Bytes(cp.key());
                record.timestamp = Some(now);
                out.push(SourceRecord {
                    source_partition: partition,
                    source_offset: offset,
                    record,
                });
            }
        }
        Ok(out)
    }

    /// Commits the translated offsets to the target's groups that have no active members,
    /// where they move the group forward.
    async fn sync_group_offsets(&mut self) -> Result<()> {
        let c = self.clients.as_ref().expect("connected");
        for (group, translated) in &self.emitted {
            if translated.is_empty() {
                continue;
            }
            let active = match c.target.describe_groups(std::slice::from_ref(group)).await {
                Ok(d) => d.iter().any(|g| !g.members.is_empty()),
                Err(e) => {
                    tracing::debug!("describe group {group} on the target: {e}");
                    false
                }
            };
            if active {
                tracing::debug!(
                    "not syncing offsets of {group}: it has active members on the target"
                );
                continue;
            }
            let current = c.target.list_group_offsets(group).await?;
            let update: BTreeMap<TopicPartition, i64> = translated
                .iter()
                .filter(|(tp, (_, d))| current.get(*tp).is_none_or(|co| co.offset < *d))
                .map(|(tp, (_, d))| (tp.clone(), *d))
                .collect();
            if update.is_empty() {
                continue;
            }
            match c.target.alter_group_offsets(group, &update).await {
                Ok(()) => tracing::info!(
                    "synced {} offsets of group {group} to the target",
                    update.len()
                ),
                // A member joined since the check: its own commits win (as in MM2).
                Err(e) => tracing::warn!("syncing offsets of group {group}: {e}"),
            }
        }
        Ok(())
    }

    async fn poll_once(&mut self) -> Result<Vec<SourceRecord>> {
        if self.clients.is_none() {
            self.connect().await?;
        }
        let (refresh, emit, sync) = {
            let s = self.settings.as_ref().expect("started");
            (s.refresh_groups, s.emit, s.sync_groups)
        };
        let first = self.last_refresh.is_none();
        if first || due(self.last_refresh, refresh) {
            self.refresh_groups().await?;
            self.last_refresh = Some(Instant::now());
        }
        let mut out = Vec::new();
        let emit_due = emit.is_some() && (self.last_emit.is_none() || due(self.last_emit, emit));
        if emit_due {
            self.read_syncs().await?;
            out = self.checkpoints().await?;
            self.last_emit = Some(Instant::now());
        }
        if due(self.last_group_sync, sync) {
            self.sync_group_offsets().await?;
            self.last_group_sync = Some(Instant::now());
        }
        if out.is_empty() {
            tokio::time::sleep(IDLE_WAIT).await;
        }
        Ok(out)
    }
}

impl SourceTask for MirrorCheckpointTask {
    fn start(&mut self, props: &Props, _offsets: &SourceOffsets) -> Result<()> {
        let enabled = |k: &str| get_bool(props, k, true);
        let emit_enabled = enabled("emit.checkpoints.enabled")?;
        self.settings = Some(Settings {
            mirror: MirrorSettings::from_props(props)?,
            groups: NameFilter::groups(props)?,
            refresh_groups: if enabled("refresh.groups.enabled")? {
                super::seconds(props, "refresh.groups.interval.seconds", 600)?
            } else {
                None
            },
            emit: if emit_enabled {
                super::seconds(props, "emit.checkpoints.interval.seconds", 60)?
            } else {
                None
            },
            sync_groups: if emit_enabled && get_bool(props, "sync.group.offsets.enabled", false)? {
                super::seconds(props, "sync.group.offsets.interval.seconds", 60)?
            } else {
                None
            },
            checkpoints_replication_factor: get_parsed(
                props,
                "checkpoints.topic.replication.factor",
                -1i16,
            )?,
            syncs_replication_factor: get_parsed(
                props,
                "offset-syncs.topic.replication.factor",
                -1i16,
            )?,
        });
        Ok(())
    }

    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>>> {
        Box::pin(async move {
            self.poll_once().await.map_err(|e| match e {
                ConnectError::Kafka(why) => ConnectError::Retriable(why),
                e => e,
            })
        })
    }

    fn stop(&mut self) {
        self.clients = None;
        self.consumer = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translation_never_passes_the_committed_position() {
        let mut s = SyncStore::default();
        let tp = TopicPartition::new("t", 0);
        for (u, d) in [(0, 0), (100, 90), (200, 180)] {
            s.add(
                "t".into(),
                OffsetSync {
                    partition: 0,
                    upstream: u,
                    downstream: d,
                },
            );
        }
        assert_eq!(s.translate(&tp, 100), Some(90));
        assert_eq!(s.translate(&tp, 150), Some(91));
        assert_eq!(s.translate(&tp, 201), Some(181));
        assert_eq!(s.translate(&TopicPartition::new("t", 1), 5), None);
        // The mirror started over from upstream 150: later syncs no longer hold.
        s.add(
            "t".into(),
            OffsetSync {
                partition: 0,
                upstream: 150,
                downstream: 300,
            },
        );
        assert_eq!(s.translate(&tp, 210), Some(301));
        assert_eq!(s.translate(&tp, 120), Some(91));
    }
}
