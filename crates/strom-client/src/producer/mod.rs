//! The producer: `send` partitions a record (Kafka's default partitioner unless a partition is
//! given), appends it to that partition's batch and returns a delivery future. A background
//! sender drains ready batches to partition leaders, with idempotent sequences (KIP-98),
//! at most `max.in.flight` requests per partition, retries of retriable errors and KIP-360
//! recovery; with `transactional.id`, Java's transaction API (the protocol is in `txn.rs`).

mod accumulator;
mod config;
mod sender;
mod txn;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{oneshot, Notify, Semaphore};

pub use config::ProducerConfig;
pub use txn::ConsumerGroupMetadata;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::partitioner::{partition_for_key, StickyPartitioner};
use crate::util::now_ms;
use crate::TopicPartition;
use accumulator::{Accumulator, Append};
use txn::{Phase, Txn};

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
    /// Producer id and epoch; replaced on re-initialisation (KIP-360).
    ids: Mutex<(i64, i16)>,
    /// Set when sequences are broken (OUT_OF_ORDER_SEQUENCE_NUMBER at the first unacked
    /// batch, UNKNOWN_PRODUCER_ID, a delivery timeout with a batch in flight): the sender
    /// re-initialises once nothing is in flight (a transactional producer on abort).
    pub(crate) reset: AtomicBool,
    pub(crate) txn: Option<Txn>,
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

    pub(crate) fn ids(&self) -> (i64, i16) {
        *self.ids.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// InitProducerId with the current id and epoch, then sequences from 0. Call with
    /// nothing in flight.
    pub(crate) async fn reinitialize(&self) -> Result<()> {
        let (id, epoch) = init_producer_id_for(self, Some(self.ids())).await?;
        tracing::info!(id, epoch, "producer re-initialised (KIP-360)");
        *self.ids.lock().unwrap_or_else(|e| e.into_inner()) = (id, epoch);
        let params = self.batch_params();
        self.lock().reset_sequences(&params);
        self.reset.store(false, Ordering::Release);
        Ok(())
    }

    pub(crate) fn batch_params(&self) -> strom_protocol::record_batch::builder::BatchParams {
        let (id, epoch) = self.ids();
        accumulator::batch_params(id, epoch, self.config.compression, self.txn.is_some())
    }

    /// A record failed for good: a transaction can no longer commit.
    pub(crate) fn note_failure(&self, err: &Error) {
        if let Some(t) = &self.txn {
            t.note_failure(err);
        }
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
            .field("ids", &self.shared.ids())
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
        let txn = config
            .transactional_id
            .clone()
            .map(|id| Txn::new(id, config.transaction_timeout.as_millis() as i32));
        // A transactional producer gets its id in init_transactions.
        let ids = if idempotent && txn.is_none() {
            txn::init_producer_id(&client, None, None).await?
        } else {
            (-1, -1)
        };
        let memory = Semaphore::new(config.buffer_memory);
        let shared = Arc::new(Shared {
            client,
            idempotent,
            ids: Mutex::new(ids),
            reset: AtomicBool::new(false),
            txn,
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
        self.shared.ids()
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
        if let Some(t) = &s.txn {
            t.check_open()?;
        }
        let tp = self.choose_partition(&record, size).await?;
        if let Some(t) = &s.txn {
            self.add_to_transaction(t, &tp).await?;
        }
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

    /// AddPartitionsToTxn the first time the ongoing transaction sees `tp`.
    async fn add_to_transaction(&self, t: &Txn, tp: &TopicPartition) -> Result<()> {
        if t.lock().partitions.contains(tp) {
            return Ok(());
        }
        let r = txn::add_partitions(
            &self.shared.client,
            t,
            self.shared.ids(),
            std::slice::from_ref(tp),
        )
        .await;
        match r {
            Ok(()) => {
                t.lock().partitions.insert(tp.clone());
                Ok(())
            }
            Err(e) => {
                t.note_failure(&e);
                Err(e)
            }
        }
    }

    fn txn(&self) -> Result<&Txn> {
        self.shared
            .txn
            .as_ref()
            .ok_or_else(|| Error::TransactionState("transactional.id is not set".into()))
    }

    /// Obtains the producer id and epoch for `transactional.id`, fencing earlier producers
    /// with the same id and aborting their open transaction (Java's `initTransactions`).
    pub async fn init_transactions(&self) -> Result<()> {
        let t = self.txn()?;
        if t.lock().phase != Phase::Uninitialized {
            return Err(Error::TransactionState(
                "init_transactions called twice".into(),
            ));
        }
        let ids = init_producer_id_for(&self.shared, None).await?;
        *self.shared.ids.lock().unwrap_or_else(|e| e.into_inner()) = ids;
        t.lock().phase = Phase::Ready;
        Ok(())
    }

    pub fn begin_transaction(&self) -> Result<()> {
        let t = self.txn()?;
        let mut g = t.lock();
        if let Some(e) = &g.fatal {
            return Err(e.clone());
        }
        if g.phase != Phase::Ready {
            return Err(Error::TransactionState(format!(
                "begin_transaction in state {:?}",
                g.phase
            )));
        }
        g.phase = Phase::InTransaction;
        g.partitions.clear();
        g.offsets_added = false;
        g.abortable = None;
        Ok(())
    }

    /// Commits consumed offsets as part of the transaction (AddOffsetsToTxn, then
    /// TxnOffsetCommit at the group coordinator): they become visible only if it commits.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &std::collections::BTreeMap<TopicPartition, i64>,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let t = self.txn()?;
        t.check_open()?;
        let r = txn::send_offsets(&self.shared.client, t, self.shared.ids(), offsets, group).await;
        match &r {
            Ok(()) => t.lock().offsets_added = true,
            Err(e) => t.note_failure(e),
        }
        r
    }

    /// Flushes the transaction's records, then EndTxn(commit). If a record failed, the
    /// transaction cannot commit: the error says so and `abort_transaction` is the way out.
    pub async fn commit_transaction(&self) -> Result<()> {
        let t = self.txn()?;
        t.check_open()?;
        self.flush().await;
        t.check_open()?;
        self.end_transaction(t, true).await
    }

    /// Drops the transaction's unsent records' chance to commit: flushes (so every record
    /// is settled), then EndTxn(abort); re-initialises the id if sequences broke (KIP-360).
    pub async fn abort_transaction(&self) -> Result<()> {
        let t = self.txn()?;
        {
            let g = t.lock();
            if let Some(e) = &g.fatal {
                return Err(e.clone());
            }
            if g.phase != Phase::InTransaction {
                return Err(Error::TransactionState(format!(
                    "abort_transaction in state {:?}",
                    g.phase
                )));
            }
        }
        self.flush().await;
        self.end_transaction(t, false).await?;
        if self.shared.reset.load(Ordering::Acquire) {
            self.shared.reinitialize().await?;
        }
        Ok(())
    }

    async fn end_transaction(&self, t: &Txn, commit: bool) -> Result<()> {
        // A transaction that touched nothing has nothing to end at the coordinator (as Java,
        // which never told the coordinator it started).
        let empty = {
            let g = t.lock();
            g.partitions.is_empty() && !g.offsets_added
        };
        let r = if empty {
            Ok(())
        } else {
            txn::end_txn(&self.shared.client, t, self.shared.ids(), commit).await
        };
        let mut g = t.lock();
        match &r {
            Ok(()) => {
                g.phase = Phase::Ready;
                g.partitions.clear();
                g.offsets_added = false;
                g.abortable = None;
            }
            Err(e @ Error::ProducerFenced(_)) => {
                g.phase = Phase::Fatal;
                g.fatal = Some(e.clone());
            }
            Err(_) => {}
        }
        r
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

/// InitProducerId for this producer (at its transaction coordinator when transactional).
async fn init_producer_id_for(s: &Shared, current: Option<(i64, i16)>) -> Result<(i64, i16)> {
    txn::init_producer_id(&s.client, s.txn.as_ref(), current).await
}
