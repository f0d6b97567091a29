//! The internal topics of distributed mode, in Kafka Connect's formats (all JSON without
//! schemas, as its internal converters write them):
//! - config (`config.storage.topic`, one partition): `connector-<name>` →
//!   `{"properties": {...}}` (null deletes), `task-<name>-<n>` → `{"properties": {...}}`,
//!   `commit-<name>` → `{"tasks": <count>}` (makes the task configs before it current),
//!   `target-state-<name>` → `{"state": "STARTED"|"PAUSED"|"STOPPED"}`,
//!   `restart-connector-<name>` → `{"include-tasks": bool, "only-failed": bool}`;
//! - status (`status.storage.topic`): `status-connector-<name>` / `status-task-<name>-<n>` →
//!   `{"state", "trace", "worker_id", "generation"}`, `topic-<topic>-connector-<name>` →
//!   `{"topic": {"name", "connector", "task", "discoverTimestamp"}}`;
//! - offsets (`offset.storage.topic`): as `kafka_offsets` (`["<connector>",{partition}]` →
//!   offset), read with read_committed so aborted exactly-once transactions never count.
//!
//! Every worker tails all three topics into memory (`Tail`); `read_to_end` gives
//! read-your-writes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value as J};
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, NewTopic, Producer,
    ProducerConfig, ProducerRecord, TopicPartition, LATEST,
};
use tokio::sync::watch;

use crate::config::Props;
use crate::connector::BoxFuture;
use crate::data::JsonMap;
use crate::error::{ConnectError, Result};
use crate::kafka_offsets::{decode, encode_key};
use crate::offsets::{apply_offset, connector_offsets, lock_entries, Entries, OffsetStore};
use crate::worker::TargetState;

/// How long `read_to_end` waits before giving up.
const READ_TO_END_TIMEOUT: Duration = Duration::from_secs(30);

/// Creates `topic` (compacted) unless it exists; waits until every partition has a leader.
pub async fn ensure_topic(admin: &Admin, topic: &str, partitions: i32, rf: i16) -> Result<i32> {
    let exists = admin
        .describe_topics(&[topic.to_owned()])
        .await
        .is_ok_and(|t| t.first().is_some_and(|t| !t.partitions.is_empty()));
    if !exists {
        let mut nt = NewTopic::new(topic, partitions, rf);
        nt.configs.push(("cleanup.policy".into(), "compact".into()));
        for (_, r) in admin.create_topics(&[nt], false).await? {
            match r {
                Ok(()) => {}
                Err(e) if e.to_string().contains("TOPIC_ALREADY_EXISTS") => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let deadline = tokio::time::Instant::now() + READ_TO_END_TIMEOUT;
    loop {
        match admin.describe_topics(&[topic.to_owned()]).await {
            Ok(t)
                if t.first().is_some_and(|t| {
                    !t.partitions.is_empty() && t.partitions.iter().all(|p| p.leader >= 0)
                }) =>
            {
                return Ok(t[0].partitions.len() as i32)
            }
            _ if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            _ => {
                return Err(ConnectError::Kafka(format!(
                    "internal topic {topic} has no leaders"
                )))
            }
        }
    }
}

/// A background reader of a whole topic, from its start, handing each record to `apply`.
pub struct Tail {
    topic: String,
    partitions: i32,
    isolation: i8,
    admin: Admin,
    positions: watch::Receiver<BTreeMap<i32, i64>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail").field("topic", &self.topic).finish()
    }
}

impl Tail {
    pub async fn start(
        bootstrap: &str,
        topic: &str,
        partitions: i32,
        read_committed: bool,
        mut apply: impl FnMut(&ConsumerRecord) + Send + 'static,
    ) -> Result<Tail> {
        let mut cc = ConsumerConfig::new(bootstrap);
        cc.set("auto.offset.reset", "earliest")?;
        cc.set("fetch.max.wait.ms", "100")?;
        if read_committed {
            cc.set("isolation.level", "read_committed")?;
        }
        let mut consumer = Consumer::new(cc).await?;
        let tps: Vec<TopicPartition> = (0..partitions)
            .map(|p| TopicPartition::new(topic, p))
            .collect();
        consumer.assign(&tps);
        let (tx, rx) = watch::channel(BTreeMap::new());
        let name = topic.to_owned();
        let task = tokio::spawn(async move {
            loop {
                match consumer.poll(Duration::from_millis(200)).await {
                    Ok(records) => {
                        for r in &records {
                            apply(r);
                        }
                        let pos: BTreeMap<i32, i64> = tps
                            .iter()
                            .map(|tp| (tp.partition, consumer.position(tp).unwrap_or(0)))
                            .collect();
                        tx.send_if_modified(|old| {
                            let changed = *old != pos;
                            *old = pos;
                            changed
                        });
                    }
                    Err(e) => {
                        tracing::warn!("reading {name}: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        Ok(Tail {
            topic: topic.to_owned(),
            partitions,
            isolation: i8::from(read_committed),
            admin: Admin::new(ClientConfig::new(bootstrap)).await?,
            positions: rx,
            task,
        })
    }

    /// Waits until everything written to the topic so far has been applied.
    pub async fn read_to_end(&self) -> Result<()> {
        let specs: Vec<(TopicPartition, i64)> = (0..self.partitions)
            .map(|p| (TopicPartition::new(&self.topic, p), LATEST))
            .collect();
        let ends = self
            .admin
            .client()
            .list_offsets(&specs, self.isolation)
            .await?;
        let ends: BTreeMap<i32, i64> = ends.iter().map(|(tp, e)| (tp.partition, e.0)).collect();
        let mut rx = self.positions.clone();
        let reached = |pos: &BTreeMap<i32, i64>| {
            ends.iter()
                .all(|(p, end)| *end <= 0 || pos.get(p).is_some_and(|x| x >= end))
        };
        let wait = async {
            loop {
                if reached(&rx.borrow_and_update()) {
                    return Ok(());
                }
                if rx.changed().await.is_err() {
                    return Err(ConnectError::Kafka(format!(
                        "the reader of {} stopped",
                        self.topic
                    )));
                }
            }
        };
        tokio::time::timeout(READ_TO_END_TIMEOUT, wait)
            .await
            .map_err(|_| {
                ConnectError::Kafka(format!(
                    "could not read {} to its end within {READ_TO_END_TIMEOUT:?}",
                    self.topic
                ))
            })?
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The cluster's connector configuration as the config topic says it.
#[derive(Debug, Default, Clone)]
pub struct ConfigView {
    /// The offset after the last record applied.
    pub offset: i64,
    pub connectors: BTreeMap<String, Props>,
    pub targets: BTreeMap<String, TargetState>,
    /// Committed task configs per connector.
    pub tasks: BTreeMap<String, Vec<Props>>,
    pending: BTreeMap<String, BTreeMap<usize, Props>>,
    /// Restart requests: (offset, connector, include tasks, only failed).
    pub restarts: Vec<(i64, String, bool, bool)>,
}

fn props_of(v: &J) -> Option<Props> {
    v.get("properties")?.as_object().map(|m| {
        m.iter()
            .map(|(k, v)| {
                let s = match v {
                    J::String(s) => s.clone(),
                    J::Null => String::new(),
                    o => o.to_string(),
                };
                (k.clone(), s)
            })
            .collect()
    })
}

pub fn target_name(t: TargetState) -> &'static str {
    match t {
        TargetState::Started => "STARTED",
        TargetState::Paused => "PAUSED",
        TargetState::Stopped => "STOPPED",
    }
}

impl ConfigView {
    /// Applies one config topic record.
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>, offset: i64) {
        self.offset = self.offset.max(offset + 1);
        let v: Option<J> = value.and_then(|v| serde_json::from_slice(v).ok());
        if let Some(name) = key.strip_prefix("target-state-") {
            let state = v
                .as_ref()
                .and_then(|v| v.get("state").and_then(J::as_str).map(str::to_owned));
            match state.as_deref() {
                Some("PAUSED") => self.targets.insert(name.into(), TargetState::Paused),
                Some("STOPPED") => self.targets.insert(name.into(), TargetState::Stopped),
                Some(_) => self.targets.insert(name.into(), TargetState::Started),
                None => self.targets.remove(name),
            };
        } else if let Some(name) = key.strip_prefix("connector-") {
            match v.as_ref().and_then(props_of) {
                Some(p) => {
                    self.connectors.insert(name.into(), p);
                }
                None => {
                    self.connectors.remove(name);
                    self.tasks.remove(name);
                    self.pending.remove(name);
                    self.targets.remove(name);
                }
            }
        } else if let Some(rest) = key.strip_prefix("task-") {
            let Some((name, n)) = rest.rsplit_once('-') else {
                return;
            };
            if let (Ok(n), Some(p)) = (n.parse::<usize>(), v.as_ref().and_then(props_of)) {
                self.pending.entry(name.into()).or_default().insert(n, p);
            }
        } else if let Some(name) = key.strip_prefix("commit-") {
            let Some(n) = v.as_ref().and_then(|v| v.get("tasks")?.as_u64()) else {
                return;
            };
            let pending = self.pending.remove(name).unwrap_or_default();
            let tasks: Vec<Props> = (0..n as usize)
                .map(|i| pending.get(&i).cloned().unwrap_or_default())
                .collect();
            self.tasks.insert(name.into(), tasks);
        } else if let Some(name) = key.strip_prefix("restart-connector-") {
            let flag = |k: &str| {
                v.as_ref()
                    .and_then(|v| v.get(k)?.as_bool())
                    .unwrap_or(false)
            };
            self.restarts.push((
                offset,
                name.into(),
                flag("include-tasks"),
                flag("only-failed"),
            ));
        }
    }

    pub fn target(&self, name: &str) -> TargetState {
        self.targets
            .get(name)
            .copied()
            .unwrap_or(TargetState::Started)
    }

    /// Connector → number of committed tasks: what the leader assigns.
    pub fn shape(&self) -> BTreeMap<String, usize> {
        self.connectors
            .keys()
            .map(|c| (c.clone(), self.tasks.get(c).map_or(0, Vec::len)))
            .collect()
    }
}

/// Key and value of a config topic record.
pub fn connector_record(name: &str, config: Option<&Props>) -> (String, Option<Vec<u8>>) {
    (
        format!("connector-{name}"),
        config.map(|c| json!({ "properties": c }).to_string().into_bytes()),
    )
}

pub fn task_record(name: &str, i: usize, config: &Props) -> (String, Option<Vec<u8>>) {
    (
        format!("task-{name}-{i}"),
        Some(json!({ "properties": config }).to_string().into_bytes()),
    )
}

pub fn commit_record(name: &str, n: usize) -> (String, Option<Vec<u8>>) {
    (
        format!("commit-{name}"),
        Some(json!({ "tasks": n }).to_string().into_bytes()),
    )
}

pub fn target_record(name: &str, t: Option<TargetState>) -> (String, Option<Vec<u8>>) {
    (
        format!("target-state-{name}"),
        t.map(|t| json!({ "state": target_name(t) }).to_string().into_bytes()),
    )
}

pub fn restart_record(name: &str, tasks: bool, only_failed: bool) -> (String, Option<Vec<u8>>) {
    (
        format!("restart-connector-{name}"),
        Some(
            json!({"include-tasks": tasks, "only-failed": only_failed})
                .to_string()
                .into_bytes(),
        ),
    )
}

/// Writes records to one topic and waits for every acknowledgement.
pub async fn write(
    producer: &Producer,
    topic: &str,
    records: Vec<(String, Option<Vec<u8>>)>,
) -> Result<()> {
    let mut acks = Vec::with_capacity(records.len());
    for (k, v) in records {
        let mut rec = ProducerRecord::new(topic.to_owned()).key(k.into_bytes());
        if let Some(v) = v {
            rec = rec.value(v);
        }
        acks.push(producer.send(rec).await?);
    }
    for a in acks {
        a.await?;
    }
    Ok(())
}

/// Source offsets in the offsets topic, kept current by a `Tail` (read_committed).
pub struct TopicOffsets {
    pub topic: String,
    producer: Producer,
    entries: Arc<Mutex<Entries>>,
    pub tail: Tail,
}

impl std::fmt::Debug for TopicOffsets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicOffsets")
            .field("topic", &self.topic)
            .finish()
    }
}

impl TopicOffsets {
    pub async fn open(bootstrap: &str, topic: &str, partitions: i32) -> Result<TopicOffsets> {
        let entries = Arc::new(Mutex::new(Entries::new()));
        let sink = entries.clone();
        let name = topic.to_owned();
        let tail = Tail::start(bootstrap, topic, partitions, true, move |r| {
            let Some(key) = r.key.as_deref() else {
                return;
            };
            match decode(key, r.value.as_deref()) {
                Ok((c, p, o)) => apply_offset(&mut lock_entries(&sink), &c, p, o),
                Err(e) => {
                    tracing::warn!("skipping {name}-{} offset {}: {e}", r.partition, r.offset)
                }
            }
        })
        .await?;
        tail.read_to_end().await?;
        Ok(TopicOffsets {
            topic: topic.to_owned(),
            producer: Producer::new(ProducerConfig::new(bootstrap)).await?,
            entries,
            tail,
        })
    }
}

impl OffsetStore for TopicOffsets {
    fn list(&self, connector: &str) -> Vec<(JsonMap, JsonMap)> {
        connector_offsets(&lock_entries(&self.entries), connector)
    }

    fn put<'a>(
        &'a self,
        connector: &'a str,
        offsets: Vec<(JsonMap, Option<JsonMap>)>,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let records = offsets
                .iter()
                .map(|(p, o)| {
                    (
                        String::from_utf8_lossy(&encode_key(connector, p)).into_owned(),
                        o.as_ref()
                            .map(|o| J::Object(o.clone()).to_string().into_bytes()),
                    )
                })
                .collect();
            write(&self.producer, &self.topic, records).await?;
            let mut e = lock_entries(&self.entries);
            for (p, o) in offsets {
                apply_offset(&mut e, connector, p, o);
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_records_in_kafkas_keys_build_the_view() {
        let mut v = ConfigView::default();
        let c: Props = [("connector.class".to_owned(), "X".to_owned())].into();
        let mut off = 0;
        let mut put = |v: &mut ConfigView, (k, val): (String, Option<Vec<u8>>)| {
            v.apply(&k, val.as_deref(), off);
            off += 1;
        };
        put(&mut v, target_record("a-b", Some(TargetState::Paused)));
        put(&mut v, connector_record("a-b", Some(&c)));
        put(&mut v, task_record("a-b", 0, &c));
        put(&mut v, task_record("a-b", 1, &c));
        assert_eq!(v.shape()["a-b"], 0, "tasks count only once committed");
        put(&mut v, commit_record("a-b", 2));
        assert_eq!(v.shape()["a-b"], 2);
        assert_eq!(v.target("a-b"), TargetState::Paused);
        put(&mut v, restart_record("a-b", true, false));
        assert_eq!(v.restarts, vec![(5, "a-b".to_owned(), true, false)]);
        assert_eq!(v.offset, 6);
        put(&mut v, connector_record("a-b", None));
        assert!(v.shape().is_empty() && v.tasks.is_empty());
        assert_eq!(v.target("a-b"), TargetState::Started);
    }
}
