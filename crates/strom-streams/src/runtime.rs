//! `KafkaStreams`: runs a topology. Each stream thread is an OS thread with its own tokio
//! runtime, one group consumer (the group is `application.id`, the range assignor keeps
//! co-partitioned inputs together), one producer (transactional under exactly_once_v2)
//! and one restore consumer. Tasks are created when their partitions are assigned
//! (stores restored from their changelogs first) and closed when revoked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, DeliveryFuture, Producer, ProducerConfig,
    ProducerRecord, RebalanceListener, TopicPartition,
};

use crate::config::{ProcessingGuarantee, StreamsConfig};
use crate::context::TaskId;
use crate::error::{Result, StreamsError};
use crate::query::StoreRegistry;
use crate::store::{self, SharedStore, StoreKind};
use crate::task::{self, Task};
use crate::topology::Topology;

/// Counters of a running application (all threads).
#[derive(Debug, Default)]
pub struct Metrics {
    pub processed: AtomicU64,
    /// Records skipped by the deserialization handler or for a negative timestamp.
    pub skipped: AtomicU64,
    /// Records that arrived after their window closed (grace period over).
    pub dropped_late: AtomicU64,
    pub commits: AtomicU64,
    pub restored_records: AtomicU64,
    pub restore_ms: AtomicU64,
    /// Changelog records applied to standby replicas.
    pub standby_applied: AtomicU64,
    pub tasks_created: AtomicU64,
}

pub(crate) struct Shared {
    pub(crate) topology: Topology,
    pub(crate) config: StreamsConfig,
    pub(crate) running: AtomicBool,
    /// Set by `kill`: threads stop at once, as a crashed process would.
    crash: AtomicBool,
    pub(crate) metrics: Metrics,
    pub(crate) stores: StoreRegistry,
    pub(crate) tasks_per_subtopology: Mutex<BTreeMap<usize, i32>>,
    error: Mutex<Option<StreamsError>>,
    pub(crate) process_id: String,
    /// Standby tasks of this instance (see `standby.rs`).
    pub(crate) standbys: Mutex<BTreeMap<TaskId, crate::standby::StandbyTask>>,
    /// Tasks active on this instance's threads.
    active: Mutex<BTreeSet<TaskId>>,
    /// The Schema Registry client of `schema.registry.url`, made by `start`.
    pub(crate) registry: std::sync::OnceLock<Arc<crate::registry::SchemaRegistry>>,
}

/// A running Streams application (Kafka's `KafkaStreams`).
pub struct KafkaStreams {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for KafkaStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaStreams")
            .field("application_id", &self.shared.config.application_id)
            .finish_non_exhaustive()
    }
}

impl KafkaStreams {
    pub fn new(topology: Topology, config: StreamsConfig) -> KafkaStreams {
        KafkaStreams {
            shared: Arc::new(Shared {
                topology,
                config,
                running: AtomicBool::new(false),
                crash: AtomicBool::new(false),
                metrics: Metrics::default(),
                stores: StoreRegistry::default(),
                tasks_per_subtopology: Mutex::new(BTreeMap::new()),
                error: Mutex::new(None),
                process_id: uuid::Uuid::new_v4().to_string(),
                standbys: Mutex::new(BTreeMap::new()),
                active: Mutex::new(BTreeSet::new()),
                registry: std::sync::OnceLock::new(),
            }),
            threads: Vec::new(),
        }
    }

    /// Creates the internal topics and starts the stream threads.
    pub async fn start(&mut self) -> Result<()> {
        if let Some(url) = &self.shared.config.schema_registry_url {
            if self.shared.registry.get().is_none() {
                let registry = crate::registry::SchemaRegistry::new(
                    url,
                    self.shared.config.auto_register_schemas,
                )
                .map_err(|e| StreamsError::Config(e.0))?;
                let _ = self.shared.registry.set(registry);
            }
        }
        let c = &self.shared.config;
        let tasks = crate::internal_topics::prepare(
            &self.shared.topology,
            &c.application_id,
            &c.bootstrap_servers,
            c.replication_factor,
        )
        .await?;
        *self
            .shared
            .tasks_per_subtopology
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = tasks;
        self.shared.running.store(true, Ordering::Release);
        if !self.shared.topology.globals.is_empty() {
            let g = start_global(&self.shared).await?;
            self.threads.push(g);
        }
        if c.num_standby_replicas > 0 {
            let shared = self.shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("{}-StandbyThread", c.application_id))
                .spawn(move || {
                    let rt = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt,
                        Err(e) => {
                            return record_error(
                                &shared,
                                StreamsError::Config(format!("tokio runtime: {e}")),
                            )
                        }
                    };
                    if let Err(e) = rt.block_on(crate::standby::run_standby(shared.clone())) {
                        tracing::error!("standby thread stopped: {e}");
                        record_error(&shared, e);
                    }
                })
                .map_err(|e| StreamsError::Config(format!("cannot start a thread: {e}")))?;
            self.threads.push(handle);
        }
        for idx in 0..c.num_stream_threads {
            let shared = self.shared.clone();
            let name = format!("{}-StreamThread-{}", c.application_id, idx + 1);
            let handle = std::thread::Builder::new()
                .name(name)
                .spawn(move || thread_main(shared, idx))
                .map_err(|e| StreamsError::Config(format!("cannot start a thread: {e}")))?;
            self.threads.push(handle);
        }
        Ok(())
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The error that stopped a thread, if one did.
    pub fn error(&self) -> Option<StreamsError> {
        self.shared
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether every thread is still running.
    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::Acquire) && self.threads.iter().all(|t| !t.is_finished())
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Stops the threads cleanly: each commits, checkpoints its stores, leaves the group.
    pub fn close(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.running.store(false, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Stops the threads without committing, closing stores or leaving the group, as if
    /// the process died (for tests of recovery; a real crash is `kill -9`).
    pub fn kill(mut self) {
        self.shared.crash.store(true, Ordering::Release);
        self.stop();
    }
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Shared {
    pub(crate) fn crashed(&self) -> bool {
        self.crash.load(Ordering::Acquire)
    }

    pub(crate) fn active_here(&self, id: TaskId) -> bool {
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&id)
    }

    /// Marks a task active here and hands over its standby stores, if any (flushed and
    /// checkpointed, so the task's restore resumes where the standby was).
    fn activate(&self, id: TaskId) {
        // Lock order: standbys, then active (as the standby thread does).
        let mut standbys = self.standbys.lock().unwrap_or_else(|e| e.into_inner());
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
        if let Some(s) = standbys.remove(&id) {
            s.release();
        }
    }

    fn deactivate(&self, id: TaskId) {
        self.active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

/// Starts the global thread and waits until it has read every global topic to its end.
async fn start_global(shared: &Arc<Shared>) -> Result<std::thread::JoinHandle<()>> {
    let done = Arc::new(AtomicBool::new(false));
    let (s, d) = (shared.clone(), done.clone());
    let handle = std::thread::Builder::new()
        .name(format!(
            "{}-GlobalStreamThread",
            shared.config.application_id
        ))
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    return record_error(&s, StreamsError::Config(format!("tokio runtime: {e}")))
                }
            };
            if let Err(e) = rt.block_on(crate::global::run_global(s.clone(), d)) {
                tracing::error!("global thread stopped: {e}");
                record_error(&s, e);
            }
        })
        .map_err(|e| StreamsError::Config(format!("cannot start a thread: {e}")))?;
    while !done.load(Ordering::Acquire) {
        if handle.is_finished() {
            let e = shared
                .error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            return Err(e.unwrap_or(StreamsError::NotRunning));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(handle)
}

fn thread_main(shared: Arc<Shared>, idx: usize) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            record_error(&shared, StreamsError::Config(format!("tokio runtime: {e}")));
            return;
        }
    };
    let r = rt.block_on(async {
        let t = StreamThread::new(shared.clone(), idx).await?;
        t.run().await
    });
    if let Err(e) = r {
        tracing::error!(thread = idx, "stream thread stopped: {e}");
        record_error(&shared, e);
    }
}

fn record_error(shared: &Shared, e: StreamsError) {
    shared
        .error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert(e);
}

#[derive(Debug)]
enum Event {
    Assigned(Vec<TopicPartition>),
    Revoked(Vec<TopicPartition>),
    Lost(Vec<TopicPartition>),
}

#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Event>>>);

impl Events {
    fn push(&self, e: Event) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(e);
    }
    fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl RebalanceListener for Events {
    fn on_partitions_revoked(&mut self, p: &[TopicPartition]) {
        self.push(Event::Revoked(p.to_vec()));
    }
    fn on_partitions_assigned(&mut self, p: &[TopicPartition]) {
        self.push(Event::Assigned(p.to_vec()));
    }
    fn on_partitions_lost(&mut self, p: &[TopicPartition]) {
        self.push(Event::Lost(p.to_vec()));
    }
}

/// Outstanding deliveries beyond which the thread waits for them before going on.
const MAX_PENDING_DELIVERIES: usize = 50_000;

struct StreamThread {
    shared: Arc<Shared>,
    app_id: String,
    consumer: Consumer,
    restore: Consumer,
    producer: Producer,
    eos: bool,
    txn_open: bool,
    tasks: BTreeMap<TaskId, Task>,
    events: Events,
    pending: Vec<DeliveryFuture>,
    /// Processed something since the last commit.
    dirty: bool,
    /// The tasks last published to the instances topic, under `member_key`.
    published: Option<BTreeSet<TaskId>>,
    member_key: String,
    last_commit: Instant,
    last_punctuate: Instant,
    /// Repartition topics this thread reads, and per partition the offset last committed
    /// and the offset records were last deleted below (`repartition.purge.interval.ms`).
    repartition_topics: BTreeSet<String>,
    purgeable: BTreeMap<TopicPartition, i64>,
    purged: BTreeMap<TopicPartition, i64>,
    last_purge: Instant,
    admin: Option<Admin>,
}

impl StreamThread {
    async fn new(shared: Arc<Shared>, idx: usize) -> Result<StreamThread> {
        let c = &shared.config;
        let eos = c.processing_guarantee == ProcessingGuarantee::ExactlyOnceV2;
        let app_id = c.application_id.clone();
        let mut cc = ConsumerConfig::new(&c.bootstrap_servers);
        cc.set("group.id", &app_id)?;
        cc.set(
            "client.id",
            &format!("{app_id}-{}-consumer-{idx}", shared.process_id),
        )?;
        cc.set("auto.offset.reset", "earliest")?;
        cc.set("enable.auto.commit", "false")?;
        cc.set("partition.assignment.strategy", "range")?;
        cc.set("max.poll.records", "1000")?;
        if eos {
            cc.set("isolation.level", "read_committed")?;
        }
        for (k, v) in &c.consumer_overrides {
            cc.set(k, v)?;
        }
        let mut rc = cc.clone();
        rc.group_id = None;
        let mut consumer = Consumer::new(cc).await?;
        consumer.set_defer_rejoin(true);
        let events = Events::default();
        let topics: BTreeSet<String> = shared
            .topology
            .subtopologies
            .iter()
            .flat_map(|s| s.sources.iter().map(|t| t.resolve(&app_id)))
            .collect();
        let repartition_topics: BTreeSet<String> = shared
            .topology
            .subtopologies
            .iter()
            .flat_map(|s| s.sources.iter())
            .filter(|t| matches!(t, crate::topology::TopicRef::Repartition(_)))
            .map(|t| t.resolve(&app_id))
            .collect();
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics, Some(Box::new(events.clone())))?;
        let restore = Consumer::new(rc).await?;
        let mut pc = ProducerConfig::new(&c.bootstrap_servers);
        pc.set(
            "client.id",
            &format!("{app_id}-{}-producer-{idx}", shared.process_id),
        )?;
        if eos {
            pc.set(
                "transactional.id",
                &format!("{app_id}-{}-{idx}", shared.process_id),
            )?;
            pc.set("transaction.timeout.ms", "10000")?;
        }
        for (k, v) in &c.producer_overrides {
            pc.set(k, v)?;
        }
        let producer = Producer::new(pc).await?;
        if eos {
            producer.init_transactions().await?;
        }
        let member_key = format!("{}-{idx}", shared.process_id);
        Ok(StreamThread {
            shared,
            app_id,
            consumer,
            restore,
            producer,
            eos,
            txn_open: false,
            tasks: BTreeMap::new(),
            events,
            pending: Vec::new(),
            dirty: false,
            published: None,
            member_key,
            last_commit: Instant::now(),
            last_punctuate: Instant::now(),
            repartition_topics,
            purgeable: BTreeMap::new(),
            purged: BTreeMap::new(),
            last_purge: Instant::now(),
            admin: None,
        })
    }

    fn crashed(&self) -> bool {
        self.shared.crashed()
    }

    async fn run(mut self) -> Result<()> {
        let poll_timeout = Duration::from_millis(100);
        while self.shared.running.load(Ordering::Acquire) {
            if self.crashed() {
                return Ok(());
            }
            if self.consumer.rebalance_pending() {
                if let Err(e) = self.commit().await {
                    tracing::warn!("commit before rebalance failed: {e}");
                    self.abort_and_close_dirty().await;
                }
                self.consumer.rejoin().await?;
            }
            let records = self.consumer.poll(poll_timeout).await?;
            self.handle_events().await?;
            self.publish_tasks(false).await?;
            for r in records {
                let Some(sub) = self.shared.topology.subtopology_of(&self.app_id, &r.topic) else {
                    continue;
                };
                let id = TaskId {
                    subtopology: sub,
                    partition: r.partition,
                };
                if !self.tasks.contains_key(&id) {
                    self.create_task(id).await?;
                }
                if let Some(t) = self.tasks.get_mut(&id) {
                    t.add(r);
                }
            }
            if let Err(e) = self.process().await {
                if !self.eos || !matches!(e, StreamsError::Client(_)) {
                    return Err(e);
                }
                tracing::warn!("exactly-once: aborting after {e}");
                self.reset_after_failure().await?;
                continue;
            }
            if self.last_punctuate.elapsed() >= self.shared.config.punctuate_interval {
                self.last_punctuate = Instant::now();
                let now = crate::util::now_ms();
                for t in self.tasks.values_mut() {
                    t.punctuate_wall_clock(now)?;
                }
                self.send_output().await?;
            }
            if self.last_commit.elapsed() >= self.shared.config.commit_interval {
                match self.commit().await {
                    Ok(()) => self.purge_repartition_topics().await,
                    // At-least-once: the offsets stay uncommitted and the next commit (at
                    // the latest, the one before a rejoin) tries again.
                    Err(StreamsError::Client(e)) if !self.eos => {
                        tracing::warn!("commit failed, retrying at the next one: {e}");
                    }
                    Err(e) if !self.eos => return Err(e),
                    Err(e) => {
                        tracing::warn!("exactly-once commit failed, aborting: {e}");
                        self.reset_after_failure().await?;
                    }
                }
            }
        }
        if self.crashed() {
            return Ok(());
        }
        self.shutdown().await
    }

    async fn shutdown(mut self) -> Result<()> {
        let _ = self.publish_tasks(true).await;
        let r = self.commit().await;
        if r.is_err() {
            self.abort_and_close_dirty().await;
        }
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in ids {
            self.close_task(id, true).await?;
        }
        self.producer.close().await;
        self.consumer.close().await?;
        self.restore.close().await?;
        r
    }

    /// Publishes this thread's tasks and `application.server` when they changed (`gone`:
    /// a tombstone, on shutdown). Under exactly-once the record is part of the transaction.
    async fn publish_tasks(&mut self, gone: bool) -> Result<()> {
        let now: BTreeSet<TaskId> = self.tasks.keys().copied().collect();
        if !gone && self.published.as_ref() == Some(&now) {
            return Ok(());
        }
        let value = (!gone).then(|| {
            let tasks: Vec<String> = now.iter().map(ToString::to_string).collect();
            let server = self
                .shared
                .config
                .application_server
                .clone()
                .unwrap_or_default();
            format!("{server}\n{}", tasks.join(","))
        });
        if self.eos && !self.txn_open {
            self.producer.begin_transaction()?;
            self.txn_open = true;
        }
        let rec = ProducerRecord {
            topic: crate::internal_topics::instances_topic(&self.app_id),
            partition: Some(0),
            key: Some(self.member_key.clone().into_bytes().into()),
            value: value.map(|v| v.into_bytes().into()),
            headers: Vec::new(),
            timestamp: None,
        };
        self.pending.push(self.producer.send(rec).await?);
        self.published = Some(now);
        self.dirty = true;
        Ok(())
    }

    /// Runs every task over its buffered records, sending output as it goes.
    async fn process(&mut self) -> Result<()> {
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in ids {
            loop {
                let mut n = 0;
                let Some(t) = self.tasks.get_mut(&id) else {
                    break;
                };
                let before = (t.ctx.skipped, t.ctx.dropped_late);
                while n < 1000 && t.process_one()? {
                    n += 1;
                }
                let m = &self.shared.metrics;
                m.processed.fetch_add(n, Ordering::Relaxed);
                m.skipped
                    .fetch_add(t.ctx.skipped - before.0, Ordering::Relaxed);
                m.dropped_late
                    .fetch_add(t.ctx.dropped_late - before.1, Ordering::Relaxed);
                if n > 0 {
                    self.dirty = true;
                }
                self.send_output().await?;
                if n < 1000 {
                    break;
                }
            }
        }
        Ok(())
    }

    async fn send_output(&mut self) -> Result<()> {
        for t in self.tasks.values_mut() {
            let out = t.take_output();
            if out.is_empty() {
                continue;
            }
            if self.eos && !self.txn_open {
                self.producer.begin_transaction()?;
                self.txn_open = true;
            }
            for o in out {
                let rec = ProducerRecord {
                    topic: o.topic,
                    partition: o.partition,
                    key: o.key.map(Into::into),
                    value: o.value.map(Into::into),
                    headers: o.headers,
                    timestamp: Some(o.timestamp),
                };
                self.pending.push(self.producer.send(rec).await?);
            }
        }
        if self.pending.len() > MAX_PENDING_DELIVERIES {
            self.await_deliveries().await?;
        }
        Ok(())
    }

    async fn await_deliveries(&mut self) -> Result<()> {
        let mut first = None;
        for f in self.pending.drain(..) {
            if let Err(e) = f.await {
                first.get_or_insert(e);
            }
        }
        match first {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Commits: output delivered, stores flushed, consumed offsets committed (in the
    /// transaction under exactly-once).
    async fn commit(&mut self) -> Result<()> {
        self.last_commit = Instant::now();
        if !self.dirty && !self.txn_open {
            return Ok(());
        }
        self.send_output().await?;
        let offsets: BTreeMap<TopicPartition, i64> = self
            .tasks
            .values()
            .flat_map(|t| t.consumed.iter().map(|(tp, o)| (tp.clone(), *o)))
            .collect();
        for t in self.tasks.values() {
            t.flush_stores(false)?;
        }
        if self.eos {
            if !self.txn_open {
                self.producer.begin_transaction()?;
                self.txn_open = true;
            }
            let group = self
                .consumer
                .group_metadata()
                .ok_or_else(|| StreamsError::Config("no group.id".into()))?;
            if !offsets.is_empty() {
                self.producer
                    .send_offsets_to_transaction(&offsets, &group)
                    .await?;
            }
            self.producer.commit_transaction().await?;
            self.txn_open = false;
            self.pending.clear();
        } else {
            self.producer.flush().await;
            self.await_deliveries().await?;
            if !offsets.is_empty() {
                self.consumer.commit_offsets(&offsets).await?;
            }
        }
        self.dirty = false;
        self.shared.metrics.commits.fetch_add(1, Ordering::Relaxed);
        for (tp, o) in offsets {
            if self.repartition_topics.contains(&tp.topic) {
                self.purgeable.insert(tp, o);
            }
        }
        Ok(())
    }

    /// Deletes repartition records below the committed offsets, at most every
    /// `repartition.purge.interval.ms`, as Kafka Streams does: nothing reads them again (a
    /// restarted task resumes from the committed offset). Failures are logged and retried
    /// at the next interval.
    async fn purge_repartition_topics(&mut self) {
        if self.last_purge.elapsed() < self.shared.config.repartition_purge_interval {
            return;
        }
        self.last_purge = Instant::now();
        let items: Vec<(TopicPartition, i64)> = self
            .purgeable
            .iter()
            .filter(|(tp, o)| self.purged.get(*tp).is_none_or(|p| p < *o))
            .map(|(tp, o)| (tp.clone(), *o))
            .collect();
        if items.is_empty() {
            return;
        }
        if self.admin.is_none() {
            let config = ClientConfig::new(&self.shared.config.bootstrap_servers);
            match Admin::new(config).await {
                Ok(a) => self.admin = Some(a),
                Err(e) => {
                    tracing::warn!("repartition purge: no admin client: {e}");
                    return;
                }
            }
        }
        let Some(admin) = &self.admin else {
            return;
        };
        match admin.delete_records(&items).await {
            Ok(_) => {
                for (tp, o) in items {
                    self.purged.insert(tp, o);
                }
            }
            Err(e) => tracing::warn!("repartition purge failed, retrying later: {e}"),
        }
    }

    /// Exactly-once failure: abort the transaction, drop the tasks' state (their stores
    /// hold uncommitted changes), rebuild them from the changelogs and rewind the input to
    /// the committed offsets.
    async fn reset_after_failure(&mut self) -> Result<()> {
        self.abort_and_close_dirty().await;
        let assigned = self.consumer.assignment();
        let committed = self.consumer.committed(&assigned).await?;
        for tp in &assigned {
            let offset = match committed.get(tp) {
                Some(&o) => o,
                None => self
                    .consumer
                    .client()
                    .list_offsets(&[(tp.clone(), strom_client::EARLIEST)], 1)
                    .await?
                    .get(tp)
                    .map_or(0, |(o, _)| *o),
            };
            self.consumer.seek(tp, offset)?;
        }
        for id in self.task_ids(&assigned) {
            self.create_task(id).await?;
        }
        Ok(())
    }

    async fn abort_and_close_dirty(&mut self) {
        if self.txn_open {
            if let Err(e) = self.producer.abort_transaction().await {
                tracing::warn!("abort_transaction: {e}");
            }
            self.txn_open = false;
        }
        self.pending.clear();
        self.dirty = false;
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        for id in ids {
            let _ = self.close_task(id, false).await;
        }
    }

    fn task_ids(&self, tps: &[TopicPartition]) -> BTreeSet<TaskId> {
        tps.iter()
            .filter_map(|tp| {
                let sub = self
                    .shared
                    .topology
                    .subtopology_of(&self.app_id, &tp.topic)?;
                Some(TaskId {
                    subtopology: sub,
                    partition: tp.partition,
                })
            })
            .collect()
    }

    async fn handle_events(&mut self) -> Result<()> {
        for e in self.events.take() {
            match e {
                Event::Revoked(tps) => {
                    for id in self.task_ids(&tps) {
                        self.close_task(id, true).await?;
                    }
                }
                Event::Lost(tps) => {
                    if self.txn_open {
                        let _ = self.producer.abort_transaction().await;
                        self.txn_open = false;
                        self.pending.clear();
                    }
                    for id in self.task_ids(&tps) {
                        self.close_task(id, false).await?;
                    }
                }
                Event::Assigned(tps) => {
                    for id in self.task_ids(&tps) {
                        if !self.tasks.contains_key(&id) {
                            self.create_task(id).await?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn task_dir(&self, id: TaskId) -> std::path::PathBuf {
        self.shared
            .config
            .state_dir
            .join(&self.app_id)
            .join(id.to_string())
    }

    /// Opens a task: local stores kept only where a checkpoint vouches for them, then
    /// each changelog replayed from the checkpoint (or from the start).
    async fn create_task(&mut self, id: TaskId) -> Result<()> {
        self.shared.activate(id);
        let dir = self.task_dir(id);
        let checkpoint = task::read_checkpoint(&dir);
        task::remove_checkpoint(&dir);
        let sub = &self.shared.topology.subtopologies[id.subtopology];
        for name in &sub.stores {
            if !checkpoint.contains_key(name) {
                let _ = std::fs::remove_file(dir.join(format!("{name}.redb")));
            }
        }
        let mut task = Task::open(
            &self.shared.topology,
            &self.app_id,
            id,
            &dir,
            self.shared.config.deserialization_handler,
            self.shared.registry.get().cloned(),
        )?;
        if let Some(&t) = checkpoint.get(task::STREAM_TIME) {
            task.resume_stream_time(t);
        }
        let started = Instant::now();
        for s in task.stores.values() {
            let Some(changelog) = &s.changelog else {
                continue;
            };
            // An in-memory store starts empty whatever the checkpoint says.
            let persistent = self.shared.topology.stores[&s.name].kind == StoreKind::Persistent;
            let from = match checkpoint.get(&s.name) {
                Some(&o) if persistent => o,
                _ => 0,
            };
            let tp = TopicPartition::new(changelog.clone(), id.partition);
            let n = self.restore_store(&tp, from, &s.store).await?;
            self.shared
                .metrics
                .restored_records
                .fetch_add(n, Ordering::Relaxed);
        }
        self.shared
            .metrics
            .restore_ms
            .fetch_add(started.elapsed().as_millis() as u64, Ordering::Relaxed);
        for s in task.stores.values() {
            self.shared
                .stores
                .register(&s.name, id.partition, s.store.clone());
        }
        self.shared
            .metrics
            .tasks_created
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(task = %id, "task created");
        self.tasks.insert(id, task);
        Ok(())
    }

    /// Replays `tp` from `from` to its end (the last stable offset under exactly-once).
    async fn restore_store(
        &mut self,
        tp: &TopicPartition,
        from: i64,
        store: &SharedStore,
    ) -> Result<u64> {
        self.restore.assign(std::slice::from_ref(tp));
        self.restore.seek_to_end().await?;
        let end = self.restore.position(tp).unwrap_or(0);
        if from >= end {
            return Ok(0);
        }
        self.restore.seek(tp, from)?;
        let mut n = 0;
        while self.restore.position(tp).unwrap_or(end) < end {
            if self.crashed() {
                break;
            }
            for r in self.restore.poll(Duration::from_millis(200)).await? {
                if r.offset >= end {
                    continue;
                }
                if let Some(k) = &r.key {
                    store::lock(store).put(k, r.value.as_deref())?;
                    n += 1;
                }
            }
        }
        store::lock(store).flush(false)?;
        Ok(n)
    }

    /// Closes a task; a clean close flushes its stores durably and checkpoints them at
    /// their changelogs' end, so a reopen restores only what came after.
    async fn close_task(&mut self, id: TaskId, clean: bool) -> Result<()> {
        let Some(mut task) = self.tasks.remove(&id) else {
            return Ok(());
        };

        task.clear_buffers();
        for s in task.stores.values() {
            self.shared
                .stores
                .unregister(&s.name, id.partition, &s.store);
        }
        if !clean {
            drop(task);
            self.shared.deactivate(id);
            return Ok(());
        }
        let r = self.checkpoint_task(id, &task).await;
        // Only once its stores are closed may a standby open them.
        drop(task);
        self.shared.deactivate(id);
        r
    }

    async fn checkpoint_task(&mut self, id: TaskId, task: &Task) -> Result<()> {
        task.flush_stores(true)?;
        let mut offsets = BTreeMap::new();
        for s in task.stores.values() {
            let end = match &s.changelog {
                Some(changelog) => {
                    let tp = TopicPartition::new(changelog.clone(), id.partition);
                    self.restore.assign(std::slice::from_ref(&tp));
                    self.restore.seek_to_end().await?;
                    self.restore.position(&tp).unwrap_or(0)
                }
                None => 0,
            };
            offsets.insert(s.name.clone(), end);
        }
        if task.stream_time() >= 0 {
            offsets.insert(task::STREAM_TIME.to_owned(), task.stream_time());
        }
        task::write_checkpoint(&task.dir, &offsets)
            .map_err(|e| crate::error::store_err(&id.to_string(), e))?;
        Ok(())
    }
}
