//! `StreamsConfig`: Kafka Streams' settings by their names (`application.id`,
//! `bootstrap.servers`, `num.stream.threads`, `processing.guarantee`, `commit.interval.ms`,
//! `state.dir`, ...), plus consumer/producer overrides passed through.

use std::path::PathBuf;
use std::time::Duration;

use crate::context::DeserializationHandler;
use crate::error::{Result, StreamsError};

/// `processing.guarantee`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingGuarantee {
    AtLeastOnce,
    /// One transaction per thread covers output, changelog writes and consumed offsets.
    ExactlyOnceV2,
}

#[derive(Debug, Clone)]
pub struct StreamsConfig {
    pub application_id: String,
    pub bootstrap_servers: String,
    pub num_stream_threads: usize,
    pub processing_guarantee: ProcessingGuarantee,
    /// Kafka's default: 30 s at-least-once, 100 ms exactly-once.
    pub commit_interval: Duration,
    pub state_dir: PathBuf,
    pub replication_factor: i16,
    pub deserialization_handler: DeserializationHandler,
    /// Wall-clock punctuation interval.
    pub punctuate_interval: Duration,
    /// Settings passed to the consumers (`consumer.` prefix stripped) and producers.
    pub consumer_overrides: Vec<(String, String)>,
    pub producer_overrides: Vec<(String, String)>,
    /// `application.server`: where this instance answers interactive queries (host:port),
    /// published with its tasks so any instance can tell where a key lives.
    pub application_server: Option<String>,
    /// `num.standby.replicas`: warm copies of each task's persistent stores on that many
    /// other instances.
    pub num_standby_replicas: usize,
    /// `schema.registry.url`: the Schema Registry that registry serdes ([`crate::Avro`])
    /// register and fetch schemas with.
    pub schema_registry_url: Option<String>,
    /// `auto.register.schemas` (default true): registry serdes register their schema under
    /// the topic's subject; false only looks it up.
    pub auto_register_schemas: bool,
    /// `repartition.purge.interval.ms` (Kafka's default 30 s): how often a thread deletes the
    /// records of repartition topics below its committed offsets (DeleteRecords).
    pub repartition_purge_interval: Duration,
}

impl StreamsConfig {
    pub fn new(application_id: &str, bootstrap_servers: &str) -> StreamsConfig {
        StreamsConfig {
            application_id: application_id.to_owned(),
            bootstrap_servers: bootstrap_servers.to_owned(),
            num_stream_threads: 1,
            processing_guarantee: ProcessingGuarantee::AtLeastOnce,
            commit_interval: Duration::from_secs(30),
            state_dir: std::env::temp_dir().join("strom-streams"),
            replication_factor: -1,
            deserialization_handler: DeserializationHandler::LogAndFail,
            punctuate_interval: Duration::from_secs(1),
            consumer_overrides: Vec::new(),
            producer_overrides: Vec::new(),
            application_server: None,
            num_standby_replicas: 0,
            schema_registry_url: None,
            auto_register_schemas: true,
            repartition_purge_interval: Duration::from_secs(30),
        }
    }

    /// Applies a setting by its Kafka Streams name; `consumer.*` and `producer.*` are
    /// passed to those clients.
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        let bad = || StreamsError::Config(format!("{key}: '{value}'"));
        match key {
            "application.id" => self.application_id = value.to_owned(),
            "bootstrap.servers" => self.bootstrap_servers = value.to_owned(),
            "num.stream.threads" => {
                self.num_stream_threads = value.parse::<usize>().map_err(|_| bad())?.max(1)
            }
            "processing.guarantee" => {
                self.processing_guarantee = match value {
                    "at_least_once" => ProcessingGuarantee::AtLeastOnce,
                    "exactly_once_v2" | "exactly_once_beta" => ProcessingGuarantee::ExactlyOnceV2,
                    _ => return Err(bad()),
                };
                if self.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2
                    && self.commit_interval == Duration::from_secs(30)
                {
                    self.commit_interval = Duration::from_millis(100);
                }
            }
            "commit.interval.ms" => {
                self.commit_interval = Duration::from_millis(value.parse().map_err(|_| bad())?)
            }
            "state.dir" => self.state_dir = PathBuf::from(value),
            "num.standby.replicas" => {
                self.num_standby_replicas = value.parse().map_err(|_| bad())?
            }
            "application.server" => {
                self.application_server = Some(value.to_owned()).filter(|v| !v.is_empty())
            }
            "schema.registry.url" => {
                self.schema_registry_url = Some(value.to_owned()).filter(|v| !v.is_empty())
            }
            "auto.register.schemas" => {
                self.auto_register_schemas = value.parse().map_err(|_| bad())?
            }
            "repartition.purge.interval.ms" => {
                self.repartition_purge_interval =
                    Duration::from_millis(value.parse().map_err(|_| bad())?)
            }
            "replication.factor" => self.replication_factor = value.parse().map_err(|_| bad())?,
            "default.deserialization.exception.handler" => {
                self.deserialization_handler = match value {
                    "LogAndFailExceptionHandler" | "log_and_fail" => {
                        DeserializationHandler::LogAndFail
                    }
                    "LogAndContinueExceptionHandler" | "log_and_continue" => {
                        DeserializationHandler::LogAndContinue
                    }
                    _ => return Err(bad()),
                }
            }
            _ => {
                if let Some(k) = key.strip_prefix("consumer.") {
                    self.consumer_overrides
                        .push((k.to_owned(), value.to_owned()));
                } else if let Some(k) = key.strip_prefix("producer.") {
                    self.producer_overrides
                        .push((k.to_owned(), value.to_owned()));
                } else {
                    return Err(StreamsError::Config(format!("unknown setting '{key}'")));
                }
            }
        }
        Ok(self)
    }
}
