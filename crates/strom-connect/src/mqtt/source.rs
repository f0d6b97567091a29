//! The MQTT source: subscribes to `mqtt.topics` and turns each message into a record.

use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, Packet, Publish, QoS};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{check_filter, options, parse_qos, topic_matches, RECONNECT_WAIT};
use crate::config::{get_list, get_parsed, ConfigDef, ConfigType, Importance, Props};
use crate::connector::{BoxFuture, Connector, ConnectorType, SourceOffsets, SourceTask, Task};
use crate::data::{Header, JsonMap, Record, Schema, SchemaType, SourceRecord, Value};
use crate::error::{ConnectError, Result};

/// How long a poll waits for the first message.
const POLL_WAIT: Duration = Duration::from_millis(200);

/// Confluent's MqttSourceConnector.
#[derive(Debug, Default)]
pub struct MqttSourceConnector {
    props: Props,
}

/// The connection settings the source and sink share.
pub(super) fn connection_def(def: ConfigDef) -> ConfigDef {
    def.define("mqtt.server.uri", ConfigType::String, None, Importance::High, "MQTT broker URI to connect to, as tcp://host:port.")
        .define("mqtt.client.id", ConfigType::String, Some(""), Importance::Medium, "The MQTT client id; by default strom-connect-<connector>-<task>.")
        .define("mqtt.username", ConfigType::String, Some(""), Importance::High, "The user name to connect with.")
        .define("mqtt.password", ConfigType::Password, Some(""), Importance::High, "The password to connect with.")
        .define("mqtt.clean.session.enabled", ConfigType::Boolean, Some("true"), Importance::Medium, "Whether the broker forgets the session (subscriptions, unacknowledged messages) on disconnect.")
        .define("mqtt.keepalive.interval.seconds", ConfigType::Int, Some("60"), Importance::Low, "The MQTT keep-alive interval in seconds.")
        .at_least(5)
        .define("mqtt.max.packet.bytes", ConfigType::Int, Some("16777216"), Importance::Low, "The largest MQTT packet sent or accepted.")
        .at_least(1024)
}

impl Connector for MqttSourceConnector {
    fn connector_type(&self) -> ConnectorType {
        ConnectorType::Source
    }

    fn config_def(&self) -> ConfigDef {
        connection_def(ConfigDef::new())
            .define("mqtt.topics", ConfigType::List, None, Importance::High, "The MQTT topic filters to subscribe to (+ and # wildcards).")
            .define("kafka.topic", ConfigType::String, Some(""), Importance::High, "The Kafka topic to write to (for messages no mqtt.kafka.topic.mapping entry takes).")
            .define("mqtt.kafka.topic.mapping", ConfigType::List, Some(""), Importance::Medium, "filter:kafkaTopic pairs; a message goes to the topic of the first filter its MQTT topic matches.")
            .define("mqtt.qos", ConfigType::Int, Some("1"), Importance::Medium, "The QoS to subscribe with (0 or 1).")
            .one_of(&["0", "1"])
            .define("mqtt.record.key", ConfigType::String, Some("topic"), Importance::Low, "The record key: the MQTT topic (topic) or none.")
            .one_of(&["topic", "none"])
            .define("batch.size", ConfigType::Int, Some("1000"), Importance::Low, "The most messages returned by one poll.")
            .at_least(1)
    }

    fn validate_extra(&self, props: &Props) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(uri) = props.get("mqtt.server.uri") {
            if let Err(e) = super::parse_server_uri(uri) {
                out.push(("mqtt.server.uri".to_owned(), e.to_string()));
            }
        }
        for f in get_list(props, "mqtt.topics") {
            if let Err(e) = check_filter(&f) {
                out.push(("mqtt.topics".to_owned(), e));
            }
        }
        match parse_mapping(props) {
            Err(e) => out.push(("mqtt.kafka.topic.mapping".to_owned(), e.to_string())),
            Ok(m) => {
                let default = props.get("kafka.topic").map(|s| s.trim()).unwrap_or("");
                if default.is_empty() {
                    for f in get_list(props, "mqtt.topics") {
                        if !m.iter().any(|(mf, _)| mf == &f) {
                            out.push((
                                "kafka.topic".to_owned(),
                                format!("kafka.topic is required: the filter {f} has no mqtt.kafka.topic.mapping entry"),
                            ));
                        }
                    }
                }
            }
        }
        out
    }

    fn start(&mut self, props: &Props) -> Result<()> {
        self.props = props.clone();
        Ok(())
    }

    fn task_configs(&self, _max_tasks: usize) -> Vec<Props> {
        // One subscription per client id: several tasks would each get every message.
        vec![self.props.clone()]
    }

    fn create_task(&self) -> Task {
        Task::Source(Box::new(MqttSourceTask::default()))
    }
}

/// `mqtt.kafka.topic.mapping` as (filter, Kafka topic) pairs, in order.
fn parse_mapping(props: &Props) -> Result<Vec<(String, String)>> {
    get_list(props, "mqtt.kafka.topic.mapping")
        .into_iter()
        .map(|entry| {
            // Kafka topic names have no ':', so the last one separates.
            match entry.rsplit_once(':') {
                Some((f, t)) if !f.trim().is_empty() && !t.trim().is_empty() => {
                    check_filter(f.trim()).map_err(ConnectError::InvalidConfig)?;
                    Ok((f.trim().to_owned(), t.trim().to_owned()))
                }
                _ => Err(ConnectError::InvalidConfig(format!(
                    "Invalid value {entry} for configuration mqtt.kafka.topic.mapping: expected filter:kafkaTopic"
                ))),
            }
        })
        .collect()
}

/// The running subscription: the client (to ack and disconnect) and the event loop task.
struct Session {
    client: AsyncClient,
    messages: mpsc::Receiver<std::result::Result<Publish, String>>,
    event_loop: JoinHandle<()>,
}

/// Reads messages from the MQTT broker.
#[derive(Default)]
pub struct MqttSourceTask {
    props: Props,
    filters: Vec<String>,
    mapping: Vec<(String, String)>,
    default_topic: Option<String>,
    key_is_topic: bool,
    qos: Option<QoS>,
    batch_size: usize,
    server_uri: String,
    session: Option<Session>,
    /// Messages returned by the last poll, acknowledged once the runtime comes back for more.
    unacked: Vec<Publish>,
    received: u64,
}

impl std::fmt::Debug for MqttSourceTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttSourceTask")
            .field("filters", &self.filters)
            .field("server_uri", &self.server_uri)
            .finish_non_exhaustive()
    }
}

/// Polls the event loop for ever: forwards messages, subscribes on each new session.
async fn run_event_loop(
    mut events: EventLoop,
    client: AsyncClient,
    subscriptions: Vec<(String, QoS)>,
    tx: mpsc::Sender<std::result::Result<Publish, String>>,
) {
    loop {
        match events.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                if !ack.session_present {
                    let filters = subscriptions
                        .iter()
                        .map(|(f, q)| rumqttc::SubscribeFilter::new(f.clone(), *q));
                    if client.subscribe_many(filters).await.is_err() {
                        return;
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if tx.send(Ok(p)).await.is_err() {
                    return;
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure));
                if refused {
                    let _ = tx
                        .send(Err("the MQTT broker refused a subscription".into()))
                        .await;
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!("MQTT source connection: {e}; reconnecting");
                if let rumqttc::ConnectionError::ConnectionRefused(code) = e {
                    let _ = tx
                        .send(Err(format!(
                            "the MQTT broker refused the connection: {code:?}"
                        )))
                        .await;
                    return;
                }
                tokio::time::sleep(RECONNECT_WAIT).await;
            }
        }
    }
}

impl MqttSourceTask {
    fn kafka_topic(&self, mqtt_topic: &str) -> Option<&str> {
        self.mapping
            .iter()
            .find(|(f, _)| topic_matches(f, mqtt_topic))
            .map(|(_, t)| t.as_str())
            .or(self.default_topic.as_deref())
    }

    fn session(&mut self) -> Result<&mut Session> {
        if self.session.is_none() {
            let name = self.props.get("name").cloned().unwrap_or_default();
            let task = self
                .props
                .get("task.id")
                .cloned()
                .unwrap_or_else(|| "0".into());
            let mut opts = options(&self.props, &format!("strom-connect-{name}-{task}"))?;
            opts.set_manual_acks(true);
            let (client, events) = AsyncClient::new(opts, 1024);
            let (tx, rx) = mpsc::channel(4 * self.batch_size.max(16));
            let qos = self.qos.unwrap_or(QoS::AtLeastOnce);
            let subs = self.filters.iter().map(|f| (f.clone(), qos)).collect();
            let event_loop = tokio::spawn(run_event_loop(events, client.clone(), subs, tx));
            self.session = Some(Session {
                client,
                messages: rx,
                event_loop,
            });
        }
        Ok(self.session.as_mut().expect("just set"))
    }

    /// Acknowledges the messages of the batches Kafka has taken. When the client's request
    /// queue is full (its event loop is waiting for us to take messages), the rest stay for
    /// the next poll: never dropped, and the poll goes on to drain the messages.
    fn ack_handed_off(&mut self) -> Result<()> {
        let Some(s) = self.session.as_ref() else {
            return Ok(());
        };
        let mut acked = 0;
        for p in &self.unacked {
            if p.qos != QoS::AtMostOnce {
                match s.client.try_ack(p) {
                    Ok(()) => {}
                    Err(rumqttc::ClientError::TryRequest(_)) => break,
                    Err(e) => return Err(ConnectError::Task(format!("MQTT ack: {e}"))),
                }
            }
            acked += 1;
        }
        self.unacked.drain(..acked);
        Ok(())
    }

    fn record_of(&mut self, p: &Publish) -> Option<SourceRecord> {
        let Some(topic) = self.kafka_topic(&p.topic).map(str::to_owned) else {
            tracing::warn!(
                "MQTT message on {} matches no mqtt.kafka.topic.mapping entry and kafka.topic is unset; skipped",
                p.topic
            );
            return None;
        };
        self.received += 1;
        let mut partition = JsonMap::new();
        partition.insert("mqtt.server.uri".into(), json!(self.server_uri));
        let mut offset = JsonMap::new();
        offset.insert("received".into(), json!(self.received));
        let mut record = Record::new(
            &topic,
            Some(Schema::new(SchemaType::Bytes)),
            Value::Bytes(p.payload.to_vec()),
        );
        if self.key_is_topic {
            record.key_schema = Some(Schema::new(SchemaType::String));
            record.key = Value::String(p.topic.clone());
        }
        let qos = match p.qos {
            QoS::AtMostOnce => 0,
            QoS::AtLeastOnce => 1,
            QoS::ExactlyOnce => 2,
        };
        // The headers Confluent's MQTT source sets.
        record.headers = vec![
            header_i32("mqtt.message.id", i32::from(p.pkid)),
            header_i32("mqtt.qos", qos),
            Header {
                key: "mqtt.retained".into(),
                schema: Some(Schema::new(SchemaType::Boolean)),
                value: Value::Boolean(p.retain),
            },
            Header {
                key: "mqtt.duplicate".into(),
                schema: Some(Schema::new(SchemaType::Boolean)),
                value: Value::Boolean(p.dup),
            },
        ];
        Some(SourceRecord {
            source_partition: partition,
            source_offset: offset,
            record,
        })
    }
}

fn header_i32(key: &str, v: i32) -> Header {
    Header {
        key: key.into(),
        schema: Some(Schema::new(SchemaType::Int32)),
        value: Value::Int32(v),
    }
}

impl SourceTask for MqttSourceTask {
    fn start(&mut self, props: &Props, _offsets: &SourceOffsets) -> Result<()> {
        self.props = props.clone();
        self.filters = get_list(props, "mqtt.topics");
        if self.filters.is_empty() {
            return Err(ConnectError::InvalidConfig(
                "mqtt.topics is required".into(),
            ));
        }
        for f in &self.filters {
            check_filter(f).map_err(ConnectError::InvalidConfig)?;
        }
        self.mapping = parse_mapping(props)?;
        self.default_topic = props
            .get("kafka.topic")
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        self.key_is_topic = props.get("mqtt.record.key").map(|s| s.trim()) != Some("none");
        self.qos = Some(parse_qos(props, 1)?);
        self.batch_size = get_parsed(props, "batch.size", 1000usize)?.max(1);
        self.server_uri = props.get("mqtt.server.uri").cloned().unwrap_or_default();
        // Checks the connection settings now; connecting waits for the first poll.
        options(props, "check")?;
        Ok(())
    }

    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>>> {
        Box::pin(async move {
            // The runtime polls again only after Kafka acknowledged the last batch.
            self.ack_handed_off()?;
            let batch_size = self.batch_size;
            let session = self.session()?;
            let mut got = Vec::new();
            match tokio::time::timeout(POLL_WAIT, session.messages.recv()).await {
                Err(_) => return Ok(Vec::new()),
                Ok(None) => return Err(ConnectError::Task("the MQTT event loop ended".into())),
                Ok(Some(m)) => got.push(m),
            }
            while got.len() < batch_size {
                match session.messages.try_recv() {
                    Ok(m) => got.push(m),
                    Err(_) => break,
                }
            }
            let mut out = Vec::with_capacity(got.len());
            for m in got {
                let p = m.map_err(ConnectError::Task)?;
                if let Some(r) = self.record_of(&p) {
                    out.push(r);
                }
                self.unacked.push(p);
            }
            Ok(out)
        })
    }

    fn commit(&mut self) -> Result<()> {
        self.ack_handed_off()
    }

    fn stop(&mut self) {
        if let Some(s) = self.session.take() {
            // Unacknowledged messages stay with the broker's session (if it persists).
            let _ = s.client.try_disconnect();
            s.event_loop.abort();
        }
    }
}
