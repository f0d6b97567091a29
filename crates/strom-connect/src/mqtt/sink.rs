//! The MQTT sink: publishes each record's value to an MQTT topic.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, QoS};
use strom_client::TopicPartition;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::source::connection_def;
use super::{options, parse_qos, RECONNECT_WAIT};
use crate::config::{get_bool, get_parsed, ConfigDef, ConfigType, Importance, Props};
use crate::connector::{BoxFuture, Connector, ConnectorType, SinkTask, Task};
use crate::data::{SinkRecord, Value};
use crate::error::{ConnectError, Result};

/// Confluent's MqttSinkConnector.
#[derive(Debug, Default)]
pub struct MqttSinkConnector {
    props: Props,
}

impl Connector for MqttSinkConnector {
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Sink
    }

    fn config_def(&self) -> ConfigDef {
        connection_def(ConfigDef::new())
            .define("mqtt.topic", ConfigType::String, Some(""), Importance::High, "The MQTT topic to publish to; ${topic} and ${key} are replaced by the record's Kafka topic and key. Unset: the record key is the MQTT topic.")
            .define("mqtt.qos", ConfigType::Int, Some("1"), Importance::Medium, "The QoS to publish with (0 or 1).")
            .one_of(&["0", "1"])
            .define("mqtt.retain.enabled", ConfigType::Boolean, Some("false"), Importance::Medium, "Whether the MQTT broker retains the last message of each topic.")
            .define("mqtt.flush.timeout.ms", ConfigType::Long, Some("30000"), Importance::Low, "How long a flush waits for the broker to acknowledge the messages published.")
            .at_least(1)
    }

    fn validate_extra(&self, props: &Props) -> Vec<(String, String)> {
        match props
            .get("mqtt.server.uri")
            .map(|u| super::parse_server_uri(u))
        {
            Some(Err(e)) => vec![("mqtt.server.uri".to_owned(), e.to_string())],
            _ => Vec::new(),
        }
    }

    fn start(&mut self, props: &Props) -> Result<()> {
        self.props = props.clone();
        Ok(())
    }

    fn task_configs(&self, max_tasks: usize) -> Vec<Props> {
        (0..max_tasks.max(1))
            .map(|i| {
                let mut p = self.props.clone();
                // Each task is its own MQTT client: ids must differ.
                if let Some(id) = p.get("mqtt.client.id").filter(|s| !s.trim().is_empty()) {
                    let id = format!("{}-{i}", id.trim());
                    p.insert("mqtt.client.id".into(), id);
                }
                p.insert("task.id".into(), i.to_string());
                p
            })
            .collect()
    }

    fn create_task(&self) -> Task {
        Task::Sink(Box::new(MqttSinkTask::default()))
    }
}

/// What the event loop has seen, for `flush` to wait on.
#[derive(Default)]
struct Progress {
    /// QoS 0 publishes written out, and QoS 1 publishes acknowledged by the broker.
    done: AtomicU64,
    /// The last connection error, for a flush that times out.
    last_error: Mutex<Option<String>>,
    changed: Notify,
}

/// Publishes records to the MQTT broker.
#[derive(Default)]
pub struct MqttSinkTask {
    client: Option<AsyncClient>,
    event_loop: Option<JoinHandle<()>>,
    progress: Arc<Progress>,
    /// Publishes handed to the client.
    sent: u64,
    topic_template: Option<String>,
    qos: Option<QoS>,
    retain: bool,
    flush_timeout: Duration,
}

impl std::fmt::Debug for MqttSinkTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSinkTask")
            .field("topic_template", &self.topic_template)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

async fn run_event_loop(mut events: EventLoop, progress: Arc<Progress>) {
    loop {
        match events.poll().await {
            // QoS 0: done once written; QoS 1 publishes have a non-zero packet id.
            Ok(Event::Outgoing(Outgoing::Publish(0))) | Ok(Event::Incoming(Packet::PubAck(_))) => {
                progress.done.fetch_add(1, Ordering::SeqCst);
                progress.changed.notify_waiters();
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("MQTT sink connection: {e}; reconnecting");
                *progress
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
                tokio::time::sleep(RECONNECT_WAIT).await;
            }
        }
    }
}

/// A value as MQTT payload bytes: bytes as they are, text as UTF-8, structs, maps and
/// arrays as JSON, other primitives as their text; null as the empty payload (which clears
/// a retained message).
fn payload(v: &Value) -> Vec<u8> {
    match v {
        Value::Null => Vec::new(),
        Value::Bytes(b) => b.clone(),
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Struct(_) | Value::Map(_) | Value::Array(_) => v.to_json().to_string().into_bytes(),
        other => other.to_display().into_bytes(),
    }
}

fn key_text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        other => other.to_display(),
    }
}

impl MqttSinkTask {
    fn topic_for(&self, r: &SinkRecord) -> Result<String> {
        let topic = match &self.topic_template {
            Some(t) => t
                .replace("${topic}", &r.record.topic)
                .replace("${key}", &key_text(&r.record.key)),
            None => key_text(&r.record.key),
        };
        if topic.is_empty() || topic.contains(['+', '#']) {
            return Err(ConnectError::Data(format!(
                "record {}@{} gives no valid MQTT topic ('{topic}')",
                r.record.topic, r.kafka_offset
            )));
        }
        Ok(topic)
    }
}

impl SinkTask for MqttSinkTask {
    fn start(&mut self, props: &Props) -> Result<()> {
        let name = props.get("name").cloned().unwrap_or_default();
        let task = props.get("task.id").cloned().unwrap_or_else(|| "0".into());
        let opts = options(props, &format!("strom-connect-{name}-{task}"))?;
        self.topic_template = props
            .get("mqtt.topic")
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        self.qos = Some(parse_qos(props, 1)?);
        self.retain = get_bool(props, "mqtt.retain.enabled", false)?;
        self.flush_timeout =
            Duration::from_millis(get_parsed(props, "mqtt.flush.timeout.ms", 30_000u64)?);
        let (client, events) = AsyncClient::new(opts, 1024);
        self.progress = Arc::new(Progress::default());
        self.event_loop = Some(tokio::spawn(run_event_loop(events, self.progress.clone())));
        self.client = Some(client);
        Ok(())
    }

    fn put(&mut self, records: Vec<SinkRecord>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let client = self
                .client
                .clone()
                .ok_or_else(|| ConnectError::Task("MQTT sink task not started".into()))?;
            let qos = self.qos.unwrap_or(QoS::AtLeastOnce);
            // Records that name no valid MQTT topic go to the error policy (DLQ or failure).
            let mut errant = Vec::new();
            let mut why = String::new();
            for r in &records {
                let topic = match self.topic_for(r) {
                    Ok(t) => t,
                    Err(e) => {
                        errant.push((
                            r.record.topic.clone(),
                            r.record.kafka_partition.unwrap_or(0),
                            r.kafka_offset,
                        ));
                        why = e.to_string();
                        continue;
                    }
                };
                client
                    .publish(topic, qos, self.retain, payload(&r.record.value))
                    .await
                    .map_err(|e| ConnectError::Task(format!("MQTT publish: {e}")))?;
                self.sent += 1;
            }
            if errant.is_empty() {
                Ok(())
            } else {
                Err(ConnectError::Errant {
                    records: errant,
                    message: why,
                })
            }
        })
    }

    fn flush(&mut self, _offsets: &BTreeMap<TopicPartition, i64>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + self.flush_timeout;
            loop {
                let notified = self.progress.changed.notified();
                if self.progress.done.load(Ordering::SeqCst) >= self.sent {
                    return Ok(());
                }
                if tokio::time::timeout_at(deadline, notified).await.is_err() {
                    let why = self
                        .progress
                        .last_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone()
                        .unwrap_or_else(|| "no acknowledgement".into());
                    return Err(ConnectError::Task(format!(
                        "the MQTT broker acknowledged {} of {} messages within {:?}: {why}",
                        self.progress.done.load(Ordering::SeqCst),
                        self.sent,
                        self.flush_timeout
                    )));
                }
            }
        })
    }

    fn stop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.try_disconnect();
        }
        if let Some(h) = self.event_loop.take() {
            h.abort();
        }
    }
}
