//! The producer: `send` partitions a record (Kafka's default partitioner unless a partition is
//! given), appends it to that partition's batch and returns a delivery future. A background
//! sender drains ready batches to partition leaders, with idempotent sequences (KIP-98),
//! at most `max.in.flight` requests per partition and retries of retriable errors.

mod accumulator;
mod config;
mod sender;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use strom_protocol::kafka_protocol::messages::{ApiKey, InitProducerIdRequest};
use tokio::sync::{oneshot, Notify, Semaphore};

pub use config::ProducerConfig;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::partitioner::{partition_for_key, StickyPartitioner};
use crate::util::now_ms;
use crate::TopicPartition;
use accumulator::{Accumulator, Append};

/// A record to send. `partition: None` lets the partitioner choose.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Create time in ms since the epoch; now when `None`.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    pub fn new(topic: impl Into<String>) -> Self {
        Self {
            topic: topic.into(),
            ..Self::default()
        }
    }
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
    pub fn header(mut self, key: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push((key.into(), value));
        self
    }
    pub fn timestamp(mut self, ts: i64) -> Self {
        self.timestamp = Some(ts);
        self
    }

    fn size_estimate(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Bytes::len) + 4)
            .sum();
        self.key.as_ref().map_or(0, Bytes::len)
            + self.value.as_ref().map_or(0, Bytes::len)
            + headers
            + 21
    }
}

/// Where a record landed. `offset` is -1 with acks=0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
}

/// Resolves when the broker acknowledged (or refused) the record.
#[derive(Debug)]
pub struct DeliveryFuture {
    rx: oneshot::Receiver<Result<RecordMetadata>>,
}

impl std::future::Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed("producer"))))
    }
}

pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) config: ProducerConfig,
    pub(crate) idempotent: bool,
    pub(crate) producer_id: i64,
    pub(crate) producer_epoch: i16,
    pub(crate) accum: Mutex<Accumulator>,
    pub(crate) wake: Notify,
    pub(crate) idle: Notify,
    pub(crate) memory: Semaphore,
    pub(crate) outstanding: AtomicUsize,
    pub(crate) flushing: AtomicUsize,
    pub(crate) closing: AtomicBool,
    sticky: StickyPartitioner,
}

impl Shared {
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Accumulator> {
        self.accum.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Gives back memory and wakes flushers once `records` finished.
    pub(crate) fn finished(&self, records: usize, permits: usize) {
        self.memory.add_permits(permits);
        if self.outstanding.fetch_sub(records, Ordering::AcqRel) == records {
            self.idle.notify_waiters();
        }
    }
}

/// An asynchronous producer; clone-free, share it behind an `Arc` if needed.
pub struct Producer {
    shared: Arc<Shared>,
    sender: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("producer_id", &self.shared.producer_id)
            .finish()
    }
}

impl Producer {
    /// Connects, and for an idempotent producer obtains a producer id (InitProducerId).
    pub async fn new(config: ProducerConfig) -> Result<Producer> {
        let idempotent = config.idempotent()?;
        if config.buffer_memory < config.batch_size {
            return Err(Error::Config(
                "buffer.memory must be at least batch.size".into(),
            ));
        }
        let client = Client::connect(config.client.clone()).await?;
        let (producer_id, producer_epoch) = if idempotent {
            init_producer_id(&client).await?
        } else {
            (-1, -1)
        };
        let memory = Semaphore::new(config.buffer_memory);
        let shared = Arc::new(Shared {
            client,
            idempotent,
            producer_id,
            producer_epoch,
            accum: Mutex::new(Accumulator::default()),
            wake: Notify::new(),
            idle: Notify::new(),
            memory,
            outstanding: AtomicUsize::new(0),
            flushing: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            sticky: StickyPartitioner::default(),
            config,
        });
        let task = tokio::spawn(sender::run(shared.clone()));
        Ok(Producer {
            shared,
            sender: Mutex::new(Some(task)),
        })
    }

    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// The producer id and epoch (-1 when not idempotent).
    pub fn producer_id(&self) -> (i64, i16) {
        (self.shared.producer_id, self.shared.producer_epoch)
    }

    /// Queues a record. Waits (up to `max.block.ms`) for metadata and buffer memory; the
    /// returned future resolves once the broker acknowledged it.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let s = &self.shared;
        if s.closing.load(Ordering::Acquire) {
            return Err(Error::Closed("producer"));
        }
        let size = record.size_estimate();
        let limit = s.config.max_request_size.min(s.config.buffer_memory);
        if size > limit {
            return Err(Error::RecordTooLarge {
                size,
                limit,
                setting: "max.request.size / buffer.memory",
            });
        }
        let tp = self.choose_partition(&record, size).await?;
        // Fast path without a timer; block (up to max.block.ms) only when memory is short.
        let permit = match s.memory.try_acquire_many(size as u32) {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(Error::Closed("producer")),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                tokio::time::timeout(s.config.max_block, s.memory.acquire_many(size as u32))
                    .await
                    .map_err(|_| Error::Timeout {
                        what: "waiting for buffer.memory".into(),
                        ms: s.config.max_block.as_millis() as u64,
                    })?
                    .map_err(|_| Error::Closed("producer"))?
            }
        };
        permit.forget();
        let (tx, rx) = oneshot::channel();
        let headers: Vec<(&[u8], Option<&[u8]>)> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_bytes(), v.as_deref()))
            .collect();
        let append = Append {
            key: record.key.as_deref(),
            value: record.value.as_deref(),
            headers: &headers,
            timestamp: record.timestamp.unwrap_or_else(now_ms),
            permits: size,
        };
        s.outstanding.fetch_add(1, Ordering::AcqRel);
        let wake = s.lock().append(&tp, append, s.config.batch_size, tx);
        if wake {
            s.wake.notify_one();
        }
        Ok(DeliveryFuture { rx })
    }

    async fn choose_partition(
        &self,
        record: &ProducerRecord,
        size: usize,
    ) -> Result<TopicPartition> {
        let s = &self.shared;
        // Fast path: the cached partition count (no copy of the topic's metadata).
        let cached = s
            .client
            .metadata()
            .topic(&record.topic)
            .map(|t| t.partitions.len());
        let n = match cached {
            Some(n) if n > 0 => n as i32,
            _ => self.partition_count(&record.topic).await?,
        };
        if n == 0 {
            return Err(Error::kafka(
                strom_protocol::ErrorCode::UnknownTopicOrPartition,
                format!("topic '{}' has no partitions", record.topic),
            ));
        }
        let partition = match (record.partition, &record.key) {
            (Some(p), _) if p < 0 || p >= n => {
                return Err(Error::InvalidArgument(format!(
                    "partition {p} of topic '{}' which has {n}",
                    record.topic
                )))
            }
            (Some(p), _) => p,
            (None, Some(key)) => partition_for_key(key, n),
            (None, None) => s
                .sticky
                .partition(&record.topic, n, size, s.config.batch_size),
        };
        Ok(TopicPartition::new(record.topic.clone(), partition))
    }

    /// Partition count from fresh metadata (auto-creating the topic if the broker allows),
    /// retrying for up to `max.block.ms`; then the last error, e.g. UNKNOWN_TOPIC_OR_PARTITION.
    async fn partition_count(&self, topic: &str) -> Result<i32> {
        let s = &self.shared;
        let deadline = std::time::Instant::now() + s.config.max_block;
        let mut attempt = 0;
        loop {
            let err = match s.client.topic_metadata(topic, true).await {
                Ok(info) if !info.partitions.is_empty() => return Ok(info.partitions.len() as i32),
                Ok(_) => Error::kafka(
                    strom_protocol::ErrorCode::LeaderNotAvailable,
                    format!("topic '{topic}' has no partitions yet"),
                ),
                Err(e) => e,
            };
            let now = std::time::Instant::now();
            if !err.is_retriable() || now >= deadline {
                return Err(err);
            }
            s.client.invalidate_metadata();
            let pause = s.client.config().backoff(attempt).min(deadline - now);
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    /// Sends everything queued now, ignoring linger, and waits until all of it completed.
    pub async fn flush(&self) {
        let s = &self.shared;
        s.flushing.fetch_add(1, Ordering::AcqRel);
        loop {
            let idle = s.idle.notified();
            if s.outstanding.load(Ordering::Acquire) == 0 {
                break;
            }
            s.wake.notify_one();
            idle.await;
        }
        s.flushing.fetch_sub(1, Ordering::AcqRel);
    }

    /// Flushes, then stops the sender and closes connections.
    pub async fn close(&self) {
        self.flush().await;
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wake.notify_one();
        let task = self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.shared.client.close().await;
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

async fn init_producer_id(client: &Client) -> Result<(i64, i16)> {
    client
        .retry("InitProducerId", || async {
            let resp = client
                .send(None, ApiKey::InitProducerId, |_| {
                    let mut req = InitProducerIdRequest::default();
                    req.transactional_id = None;
                    req.transaction_timeout_ms = 60_000;
                    req.producer_id = (-1).into();
                    req.producer_epoch = -1;
                    req
                })
                .await?;
            Error::check(resp.error_code, || "InitProducerId".into())?;
            Ok((resp.producer_id.0, resp.producer_epoch))
        })
        .await
}
