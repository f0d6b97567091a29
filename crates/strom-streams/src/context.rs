//! What a processor sees while it handles a record: the task, the record's origin and
//! timestamp, the task's stream time, and the output buffer its sinks and changelogged
//! stores append to (the stream thread sends it after the batch).

use crate::error::Result;
use crate::serde::SerdeContext;
use crate::store::{self, SharedStore};

/// A task: one partition of one sub-topology (Kafka's `TaskId`, printed `0_3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    pub subtopology: usize,
    pub partition: i32,
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

/// A record as processors pass it on. `timestamp` is event time in ms.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<K, V> {
    pub key: K,
    pub value: V,
    pub timestamp: i64,
}

/// A record on its way to a topic.
#[derive(Debug, Clone)]
pub(crate) struct OutRecord {
    pub(crate) topic: String,
    pub(crate) partition: Option<i32>,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) timestamp: i64,
    pub(crate) headers: Vec<(String, Option<bytes::Bytes>)>,
}

/// What to do with a record whose key or value cannot be deserialized
/// (`default.deserialization.exception.handler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeserializationHandler {
    /// Stop the thread with [`crate::StreamsError::Deserialization`] (Kafka's default).
    LogAndFail,
    /// Log it, count it in [`crate::Metrics`] and go on with the next record.
    LogAndContinue,
}

/// The processor context of one task.
pub struct Ctx {
    pub(crate) task: TaskId,
    pub(crate) topic: String,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) timestamp: i64,
    /// Headers of the input record being processed; sinks pass them on, as Kafka does.
    pub(crate) headers: Vec<(String, Option<bytes::Bytes>)>,
    pub(crate) stream_time: i64,
    pub(crate) out: Vec<OutRecord>,
    pub(crate) on_bad_record: DeserializationHandler,
    pub(crate) skipped: u64,
    pub(crate) dropped_late: u64,
    /// The application's Schema Registry (`schema.registry.url`), for registry serdes.
    pub(crate) registry: Option<std::sync::Arc<crate::registry::SchemaRegistry>>,
}

impl Ctx {
    pub(crate) fn new(
        task: TaskId,
        on_bad_record: DeserializationHandler,
        registry: Option<std::sync::Arc<crate::registry::SchemaRegistry>>,
    ) -> Ctx {
        Ctx {
            task,
            topic: String::new(),
            partition: task.partition,
            offset: -1,
            timestamp: -1,
            headers: Vec::new(),
            stream_time: -1,
            out: Vec::new(),
            on_bad_record,
            skipped: 0,
            dropped_late: 0,
            registry,
        }
    }

    pub fn task_id(&self) -> TaskId {
        self.task
    }
    /// Topic, partition and offset of the input record being processed.
    pub fn topic(&self) -> &str {
        &self.topic
    }
    pub fn partition(&self) -> i32 {
        self.partition
    }
    pub fn offset(&self) -> i64 {
        self.offset
    }
    /// The largest timestamp this task has processed (-1 before the first record).
    pub fn stream_time(&self) -> i64 {
        self.stream_time
    }

    /// The context a serde gets for `topic`: the key or the value, and the registry.
    pub fn serde_context<'a>(&'a self, topic: &'a str, is_key: bool) -> SerdeContext<'a> {
        SerdeContext {
            topic,
            is_key,
            registry: self.registry.as_ref(),
        }
    }

    /// Headers of the input record being processed.
    pub fn headers(&self) -> &[(String, Option<bytes::Bytes>)] {
        &self.headers
    }

    /// Sends a record to a topic (partitioned by key when `partition` is `None`).
    pub fn send(
        &mut self,
        topic: &str,
        partition: Option<i32>,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        timestamp: i64,
    ) {
        self.out.push(OutRecord {
            topic: topic.to_owned(),
            partition,
            key,
            value,
            timestamp,
            headers: Vec::new(),
        });
    }
}

/// A task's handle on a store: reads, and writes that also go to the store's changelog
/// partition (the task's partition of `<application.id>-<store>-changelog`).
#[derive(Clone)]
pub struct StoreHandle {
    pub(crate) name: String,
    pub(crate) store: SharedStore,
    pub(crate) changelog: Option<String>,
    pub(crate) partition: i32,
}

impl StoreHandle {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        store::lock(&self.store).get(key)
    }

    pub fn range(
        &self,
        from: std::ops::Bound<&[u8]>,
        to: std::ops::Bound<&[u8]>,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        store::lock(&self.store).range(from, to)
    }

    /// Writes (or with `None` deletes) a key, and logs the change.
    pub fn put(&self, ctx: &mut Ctx, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        store::lock(&self.store).put(key, value)?;
        if let Some(topic) = &self.changelog {
            ctx.send(
                topic,
                Some(self.partition),
                Some(key.to_vec()),
                value.map(<[u8]>::to_vec),
                ctx.timestamp.max(0),
            );
        }
        Ok(())
    }

    /// Writes locally only (window retention purges: the changelog expires by itself).
    pub(crate) fn put_unlogged(&self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        store::lock(&self.store).put(key, value)
    }
}
