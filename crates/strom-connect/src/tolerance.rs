//! Error handling of a connector's record pipeline (KIP-298): `errors.tolerance` (`none`
//! fails the task, `all` skips the record), `errors.log.enable` /
//! `errors.log.include.messages`, and for sinks a dead-letter queue
//! (`errors.deadletterqueue.topic.name`) with Kafka's `__connect.errors.*` context headers.

use bytes::Bytes;
use strom_client::{
    Admin, ClientConfig, ConsumerRecord, NewTopic, Producer, ProducerConfig, ProducerRecord,
};

use crate::config::{get_bool, get_parsed, Props};
use crate::error::{ConnectError, Result};

/// Creates the dead-letter queue topic if it does not exist (one partition, as Kafka does).
async fn ensure_dlq_topic(bootstrap: &str, topic: &str, replication_factor: i16) -> Result<()> {
    let admin = Admin::new(ClientConfig::new(bootstrap)).await?;
    if admin
        .describe_topics(&[topic.to_owned()])
        .await
        .is_ok_and(|t| {
            t.first()
                .is_some_and(|t| t.error.is_none() && !t.partitions.is_empty())
        })
    {
        return Ok(());
    }
    let created = admin
        .create_topics(&[NewTopic::new(topic, 1, replication_factor)], false)
        .await?;
    for (_, r) in created {
        match r {
            Ok(()) => {}
            Err(e) if e.to_string().contains("TOPIC_ALREADY_EXISTS") => {}
            Err(e) => {
                return Err(ConnectError::Task(format!(
                    "Could not create dead letter queue topic '{topic}': {e}"
                )))
            }
        }
    }
    Ok(())
}

/// Where in the pipeline an operation failed (Kafka's `Stage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    KeyConverter,
    ValueConverter,
    HeaderConverter,
    Transformation,
    TaskPut,
    TaskPoll,
    KafkaProduce,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::KeyConverter => "KEY_CONVERTER",
            Stage::ValueConverter => "VALUE_CONVERTER",
            Stage::HeaderConverter => "HEADER_CONVERTER",
            Stage::Transformation => "TRANSFORMATION",
            Stage::TaskPut => "TASK_PUT",
            Stage::TaskPoll => "TASK_POLL",
            Stage::KafkaProduce => "KAFKA_PRODUCE",
        }
    }
}

/// One failed operation on one record.
#[derive(Debug)]
pub struct Failure<'a> {
    pub stage: Stage,
    /// The class that was executing (a converter's or transformation's).
    pub class: &'a str,
    pub error: ConnectError,
    /// For sinks: the record as read from Kafka.
    pub original: Option<&'a ConsumerRecord>,
}

/// A connector's error-handling settings, with the DLQ producer when one is configured.
pub struct ErrorPolicy {
    connector: String,
    task: usize,
    tolerate_all: bool,
    log_enable: bool,
    log_messages: bool,
    dlq_topic: Option<String>,
    context_headers: bool,
    dlq: Option<Producer>,
}

impl std::fmt::Debug for ErrorPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErrorPolicy")
            .field("tolerate_all", &self.tolerate_all)
            .field("dlq_topic", &self.dlq_topic)
            .finish()
    }
}

impl ErrorPolicy {
    /// Reads the `errors.*` configs; opens a DLQ producer on `bootstrap` if a DLQ is set.
    pub async fn from_config(
        connector: &str,
        task: usize,
        props: &Props,
        bootstrap: &str,
    ) -> Result<ErrorPolicy> {
        let tolerate_all = match props.get("errors.tolerance").map(|s| s.trim().to_ascii_lowercase()) {
            None => false,
            Some(t) if t == "none" => false,
            Some(t) if t == "all" => true,
            Some(t) => {
                return Err(ConnectError::InvalidConfig(format!(
                    "Invalid value {t} for configuration errors.tolerance: String must be one of: none, all"
                )))
            }
        };
        let dlq_topic = props
            .get("errors.deadletterqueue.topic.name")
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        let dlq = match &dlq_topic {
            Some(topic) => {
                let rf = get_parsed(
                    props,
                    "errors.deadletterqueue.topic.replication.factor",
                    3i16,
                )?;
                ensure_dlq_topic(bootstrap, topic, rf).await?;
                Some(Producer::new(ProducerConfig::new(bootstrap)).await?)
            }
            None => None,
        };
        Ok(ErrorPolicy {
            connector: connector.to_owned(),
            task,
            tolerate_all,
            log_enable: get_bool(props, "errors.log.enable", false)?,
            log_messages: get_bool(props, "errors.log.include.messages", false)?,
            dlq_topic,
            context_headers: get_bool(
                props,
                "errors.deadletterqueue.context.headers.enable",
                false,
            )?,
            dlq,
        })
    }

    /// Handles a failure: `Ok` if tolerated (the record is skipped, after logging and the DLQ),
    /// otherwise the error that fails the task.
    pub async fn handle(&self, f: Failure<'_>) -> Result<()> {
        if self.log_enable {
            let record = match (self.log_messages, f.original) {
                (true, Some(r)) => format!(
                    " record: topic='{}' partition={} offset={}",
                    r.topic, r.partition, r.offset
                ),
                _ => String::new(),
            };
            tracing::error!(
                connector = %self.connector,
                task = self.task,
                "Error encountered in task {}-{}. Executing stage '{}' with class '{}'{}: {}",
                self.connector,
                self.task,
                f.stage.name(),
                f.class,
                record,
                f.error
            );
        }
        if !self.tolerate_all {
            return Err(ConnectError::Task(format!(
                "Tolerance exceeded in error handler: stage {} with class {} failed: {}",
                f.stage.name(),
                f.class,
                f.error
            )));
        }
        if let (Some(p), Some(topic), Some(r)) = (&self.dlq, &self.dlq_topic, f.original) {
            let mut headers = r.headers.clone();
            if self.context_headers {
                headers.extend(self.context_headers(&f, r));
            }
            let rec = ProducerRecord {
                topic: topic.clone(),
                partition: None,
                key: r.key.clone(),
                value: r.value.clone(),
                headers,
                timestamp: Some(r.timestamp),
            };
            p.send(rec).await?.await?;
        }
        Ok(())
    }

    /// Kafka's DLQ context headers.
    fn context_headers(&self, f: &Failure<'_>, r: &ConsumerRecord) -> Vec<(String, Option<Bytes>)> {
        let exception = match f.error {
            ConnectError::Data(_) => "org.apache.kafka.connect.errors.DataException",
            _ => "org.apache.kafka.connect.errors.ConnectException",
        };
        let message = f.error.to_string();
        [
            ("__connect.errors.topic", r.topic.clone()),
            ("__connect.errors.partition", r.partition.to_string()),
            ("__connect.errors.offset", r.offset.to_string()),
            ("__connect.errors.connector.name", self.connector.clone()),
            ("__connect.errors.task.id", self.task.to_string()),
            ("__connect.errors.stage", f.stage.name().to_owned()),
            ("__connect.errors.class.name", f.class.to_owned()),
            (
                "__connect.errors.exception.class.name",
                exception.to_owned(),
            ),
            ("__connect.errors.exception.message", message.clone()),
            (
                "__connect.errors.exception.stacktrace",
                format!("{exception}: {message}"),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Some(Bytes::from(v))))
        .collect()
    }

    pub async fn close(&self) {
        if let Some(p) = &self.dlq {
            p.close().await;
        }
    }
}
