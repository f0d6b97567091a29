//! Kafka's `VerifiableSourceConnector` (from its Connect tools, used by Kafka's own system
//! tests of distributed mode): each task counts up from its last committed sequence number
//! at `throughput` records per second, key the task id (INT32), value the sequence number
//! (INT64), source partition `{"id": <task>}`, offset `{"seqno": <n>}`. Strom adds
//! `max.messages` (per task, -1 for no end) so a run has an exact expected content: every
//! task's records are 0..max.messages, each once (exactly once) or at least once.

use std::time::Duration;

use serde_json::json;

use crate::config::{get_parsed, ConfigDef, ConfigType, Importance, Props};
use crate::connector::{BoxFuture, Connector, ConnectorType, SourceOffsets, SourceTask, Task};
use crate::data::{JsonMap, Record, Schema, SchemaType, SourceRecord, Value};
use crate::error::{ConnectError, Result};

pub const VERIFIABLE_SOURCE_CLASS: &str =
    "org.apache.kafka.connect.tools.VerifiableSourceConnector";

/// How often a task hands a batch to the runtime.
const TICK: Duration = Duration::from_millis(50);

#[derive(Debug, Default)]
pub struct VerifiableSourceConnector {
    props: Props,
}

impl Connector for VerifiableSourceConnector {
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }

    fn config_def(&self) -> ConfigDef {
        ConfigDef::new()
            .define(
                "topic",
                ConfigType::String,
                None,
                Importance::High,
                "The topic to write the sequence numbers to",
            )
            .define(
                "throughput",
                ConfigType::Long,
                Some("1000"),
                Importance::High,
                "Records per second per task",
            )
            .at_least(1)
            .define(
                "max.messages",
                ConfigType::Long,
                Some("-1"),
                Importance::Medium,
                "Records per task before it goes idle (-1: no end); Strom's addition",
            )
    }

    fn start(&mut self, props: &Props) -> Result<()> {
        self.props = props.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<Props> {
        (0..max_tasks)
            .map(|i| {
                let mut p = self.props.clone();
                p.insert("id".into(), i.to_string());
                p
            })
            .collect()
    }

    fn create_task(&self) -> Task {
        Task::Source(Box::new(VerifiableSourceTask::default()))
    }
}

#[derive(Debug, Default)]
pub struct VerifiableSourceTask {
    id: i32,
    topic: String,
    per_tick: i64,
    max: i64,
    next: i64,
}

impl VerifiableSourceTask {
    fn partition(&self) -> JsonMap {
        let mut m = JsonMap::new();
        m.insert("id".into(), json!(self.id));
        m
    }
}

impl SourceTask for VerifiableSourceTask {
    fn start(&mut self, props: &Props, offsets: &SourceOffsets) -> Result<()> {
        self.id = get_parsed(props, "id", 0)?;
        self.topic = props
            .get("topic")
            .cloned()
            .ok_or_else(|| ConnectError::InvalidConfig("topic is required".into()))?;
        let throughput: i64 = get_parsed(props, "throughput", 1000)?;
        self.per_tick = (throughput * TICK.as_millis() as i64 / 1000).max(1);
        self.max = get_parsed(props, "max.messages", -1)?;
        self.next = offsets
            .offset(&self.partition())
            .and_then(|o| o.get("seqno"))
            .and_then(|s| s.as_i64())
            .map(|s| s + 1)
            .unwrap_or(0);
        Ok(())
    }

    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>>> {
        Box::pin(async move {
            tokio::time::sleep(TICK).await;
            let end = if self.max < 0 {
                self.next + self.per_tick
            } else {
                (self.next + self.per_tick).min(self.max)
            };
            let mut out = Vec::new();
            while self.next < end {
                let mut record = Record::new(
                    &self.topic,
                    Some(Schema::new(SchemaType::Int64)),
                    Value::Int64(self.next),
                );
                record.key_schema = Some(Schema::new(SchemaType::Int32));
                record.key = Value::Int32(self.id);
                let mut offset = JsonMap::new();
                offset.insert("seqno".into(), json!(self.next));
                out.push(SourceRecord {
                    source_partition: self.partition(),
                    source_offset: offset,
                    record,
                });
                self.next += 1;
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_from_the_committed_offset_to_max_messages() {
        let mut c = VerifiableSourceConnector::default();
        let props: Props = [
            ("topic", "t"),
            ("throughput", "100000"),
            ("max.messages", "30"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        c.start(&props).unwrap();
        let configs = c.task_configs(2);
        assert_eq!(configs[1]["id"], "1");
        let mut t = VerifiableSourceTask::default();
        let committed = SourceOffsets::new([(
            json!({"id": 1}).as_object().cloned().unwrap(),
            json!({"seqno": 9}).as_object().cloned().unwrap(),
        )]);
        t.start(&configs[1], &committed).unwrap();
        let batch = t.poll().await.unwrap();
        let seqnos: Vec<i64> = batch
            .iter()
            .filter_map(|r| r.record.value.as_i64())
            .collect();
        assert_eq!(seqnos, (10..30).collect::<Vec<_>>());
        assert!(batch.iter().all(|r| r.record.key == Value::Int32(1)));
        assert!(t.poll().await.unwrap().is_empty());
    }
}
