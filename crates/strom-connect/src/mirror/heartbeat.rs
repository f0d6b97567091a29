//! `MirrorHeartbeatConnector`: writes a heartbeat (`{sourceClusterAlias, targetClusterAlias}`
//! → `{timestamp}`, MM2's format) to the `heartbeats` topic of the worker's cluster every
//! `emit.heartbeats.interval.seconds`. Mirrored on to other clusters (the mirror source
//! copies `heartbeats` topics), they show that a replication path works end to end.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use strom_client::Admin;

use super::wire::Heartbeat;
use super::MirrorSettings;
use crate::config::{get_bool, get_parsed, ConfigDef, ConfigType, Importance, Props};
use crate::connector::{BoxFuture, Connector, ConnectorType, SourceOffsets, SourceTask, Task};
use crate::data::{JsonMap, Record, Schema, SchemaType, SourceRecord, Value};
use crate::error::{ConnectError, Result};

pub const MIRROR_HEARTBEAT_CLASS: &str = "org.apache.kafka.connect.mirror.MirrorHeartbeatConnector";
/// MM2's heartbeats topic.
pub const HEARTBEATS_TOPIC: &str = "heartbeats";

/// MM2's MirrorHeartbeatConnector.
#[derive(Debug, Default)]
pub struct MirrorHeartbeatConnector {
    props: Props,
}

impl Connector for MirrorHeartbeatConnector {
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }

    fn config_def(&self) -> ConfigDef {
        super::common_mirror_config_def()
            .define(
                "emit.heartbeats.enabled",
                ConfigType::Boolean,
                Some("true"),
                Importance::Low,
                "Whether to emit heartbeats to target cluster.",
            )
            .define(
                "emit.heartbeats.interval.seconds",
                ConfigType::Long,
                Some("1"),
                Importance::Low,
                "Frequency of heartbeats.",
            )
            .define(
                "heartbeats.topic.replication.factor",
                ConfigType::Short,
                Some("-1"),
                Importance::Low,
                "Replication factor for heartbeats topic (-1: the broker's default).",
            )
    }

    fn validate_extra(&self, props: &Props) -> Vec<(String, String)> {
        super::validate_common(props)
    }

    fn start(&mut self, props: &Props) -> Result<()> {
        MirrorSettings::from_props(props)?;
        self.props = props.clone();
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Vec<Props> {
        // One stream of heartbeats per replication path.
        vec![self.props.clone()]
    }

    fn create_task(&self) -> Task {
        Task::Source(Box::new(MirrorHeartbeatTask::default()))
    }
}

/// Emits one heartbeat per interval.
#[derive(Default)]
pub struct MirrorHeartbeatTask {
    settings: Option<MirrorSettings>,
    interval: Option<Duration>,
    replication_factor: i16,
    topic_ready: bool,
    last: Option<Instant>,
}

impl MirrorHeartbeatTask {
    async fn poll_once(&mut self) -> Result<Vec<SourceRecord>> {
        let s = self
            .settings
            .as_ref()
            .ok_or_else(|| ConnectError::Task("mirror heartbeat task not started".into()))?;
        let Some(interval) = self.interval else {
            tokio::time::sleep(Duration::from_secs(1)).await;
            return Ok(Vec::new());
        };
        if !self.topic_ready {
            let admin = Admin::new(super::client_config(&s.target_props)?).await?;
            super::ensure_internal_topic(&admin, HEARTBEATS_TOPIC, self.replication_factor).await?;
            self.topic_ready = true;
        }
        if let Some(last) = self.last {
            let wait = interval.saturating_sub(last.elapsed());
            tokio::time::sleep(wait).await;
        }
        self.last = Some(Instant::now());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let hb = Heartbeat {
            source: s.source_alias.clone(),
            target: s.target_alias.clone(),
            timestamp: now,
        };
        let mut partition = JsonMap::new();
        partition.insert("sourceClusterAlias".into(), json!(hb.source));
        partition.insert("targetClusterAlias".into(), json!(hb.target));
        let mut offset = JsonMap::new();
        offset.insert("offset".into(), json!(0));
        let bytes = || Some(Schema::new(SchemaType::Bytes));
        let mut record = Record::new(HEARTBEATS_TOPIC, bytes(), Value::Bytes(hb.value()));
        record.kafka_partition = Some(0);
        record.key_schema = bytes();
        record.key = Value::Bytes(hb.key());
        record.timestamp = Some(now);
        Ok(vec![SourceRecord {
            source_partition: partition,
            source_offset: offset,
            record,
        }])
    }
}

impl SourceTask for MirrorHeartbeatTask {
    fn start(&mut self, props: &Props, _offsets: &SourceOffsets) -> Result<()> {
        self.settings = Some(MirrorSettings::from_props(props)?);
        self.interval = if get_bool(props, "emit.heartbeats.enabled", true)? {
            super::seconds(props, "emit.heartbeats.interval.seconds", 1)?
        } else {
            None
        };
        self.replication_factor = get_parsed(props, "heartbeats.topic.replication.factor", -1i16)?;
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
}
