//! The connector API (Kafka Connect's `Connector`, `SourceTask`, `SinkTask`): a connector
//! validates its configuration and splits its work into task configs; tasks move the data.
//! Source tasks say where each record came from (source partition and offset, JSON maps as
//! Kafka Connect stores them); sink tasks are told which Kafka offsets to make durable.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;

use strom_client::TopicPartition;

use crate::config::{ConfigDef, Props};
use crate::data::{JsonMap, SinkRecord, SourceRecord};
use crate::error::Result;

/// A boxed future, so that the task traits can be used as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Whether a connector reads into Kafka or writes out of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectorType {
    Source,
    Sink,
}

impl ConnectorType {
    /// `source` or `sink`, as the REST API writes it.
    pub fn name(self) -> &'static str {
        match self {
            ConnectorType::Source => "source",
            ConnectorType::Sink => "sink",
        }
    }
}

/// A connector: validates its configuration, splits the job into tasks, makes tasks.
pub trait Connector: Send {
    fn connector_type(&self) -> ConnectorType;

    fn version(&self) -> String {
        env!("CARGO_PKG_VERSION").to_owned()
    }

    /// The connector's own configuration keys (the runtime adds the common ones).
    fn config_def(&self) -> ConfigDef;

    /// Checks the whole configuration beyond each key on its own; one message per problem,
    /// keyed by the config name it belongs to.
    fn validate_extra(&self, _props: &Props) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Starts the connector with its full configuration.
    fn start(&mut self, props: &Props) -> Result<()>;

    /// At most `max_tasks` task configurations.
    fn task_configs(&self, max_tasks: usize) -> Vec<Props>;

    fn stop(&mut self) {}

    /// A new, unstarted task of this connector.
    fn create_task(&self) -> Task;
}

/// A task instance, of the connector's type.
pub enum Task {
    Source(Box<dyn SourceTask>),
    Sink(Box<dyn SinkTask>),
}

/// The committed source offsets a source task starts from (Kafka's `OffsetStorageReader`).
#[derive(Debug, Clone, Default)]
pub struct SourceOffsets {
    by_partition: HashMap<String, JsonMap>,
}

impl SourceOffsets {
    pub fn new(entries: impl IntoIterator<Item = (JsonMap, JsonMap)>) -> SourceOffsets {
        SourceOffsets {
            by_partition: entries
                .into_iter()
                .map(|(p, o)| (partition_key(&p), o))
                .collect(),
        }
    }

    pub fn offset(&self, partition: &JsonMap) -> Option<&JsonMap> {
        self.by_partition.get(&partition_key(partition))
    }
}

/// A canonical text form of a source partition (keys sorted), used as a map key.
pub fn partition_key(p: &JsonMap) -> String {
    serde_json::Value::Object(p.clone()).to_string()
}

/// A source task: reads the external system and returns records with their source offsets.
pub trait SourceTask: Send {
    fn start(&mut self, props: &Props, offsets: &SourceOffsets) -> Result<()>;

    /// The next records; an empty batch when there is nothing yet (the task waits a little
    /// itself rather than spin). `ConnectError::Retriable` makes the runtime poll again after
    /// a back-off instead of failing the task.
    fn poll(&mut self) -> BoxFuture<'_, Result<Vec<SourceRecord>>>;

    /// Called after the offsets of records returned so far have been committed.
    fn commit(&mut self) -> Result<()> {
        Ok(())
    }

    fn stop(&mut self) {}
}

/// A sink task: writes records out; `flush` makes everything `put` so far durable before the
/// runtime commits `offsets` (the next offset to read per partition). A `put` failing with
/// `ConnectError::Retriable` gets the same records again after a back-off; one failing with
/// `ConnectError::Errant` wrote all but the records it names, which the error policy takes.
pub trait SinkTask: Send {
    fn start(&mut self, props: &Props) -> Result<()>;

    fn put(&mut self, records: Vec<SinkRecord>) -> BoxFuture<'_, Result<()>>;

    fn flush(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> BoxFuture<'_, Result<()>>;

    fn stop(&mut self) {}
}
