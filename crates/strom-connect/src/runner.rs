//! The loops that run one task: a source task's poll → transform → convert → produce →
//! commit-offsets cycle, and a sink task's consume → convert → transform → put → flush →
//! commit cycle. Offsets are committed only after the records they cover are acknowledged by
//! Kafka (sources) or flushed by the task (sinks): at-least-once delivery.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};
use tokio::sync::watch;

use crate::config::{get_list, get_parsed, Props};
use crate::connector::{partition_key, SinkTask, SourceTask};
use crate::converter::{header_from_bytes, header_to_bytes, Converter};
use crate::data::{JsonMap, Record, SinkRecord, SourceRecord};
use crate::error::{ConnectError, Result};
use crate::offsets::OffsetStore;
use crate::tolerance::{ErrorPolicy, Failure, Stage};
use crate::topic_creation::TopicCreator;
use crate::transforms::Chain;
use crate::worker::{State, Status, TargetState, WorkerConfig};

/// How long a sink waits in one consumer poll (and so how fast it sees a state change).
const SINK_POLL: Duration = Duration::from_millis(200);
/// The first wait before a retry; it doubles up to `errors.retry.delay.max.ms`.
pub(crate) const RETRY_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// How often a `topics.regex` sink looks for new matching topics.
const REGEX_REFRESH: Duration = Duration::from_secs(5);

/// Everything a task loop needs besides the task itself.
pub struct TaskContext {
    pub connector: String,
    pub id: usize,
    pub connector_config: Props,
    pub task_config: Props,
    pub worker: Arc<WorkerConfig>,
    pub offsets: Arc<dyn OffsetStore>,
    pub status: Arc<Mutex<Status>>,
    pub topics: Arc<Mutex<BTreeSet<String>>>,
    pub target: watch::Receiver<TargetState>,
}

impl TaskContext {
    pub(crate) fn set_state(&self, state: State, trace: Option<String>) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        s.state = state;
        s.trace = trace;
    }

    pub(crate) fn fail(&self, e: &ConnectError) {
        tracing::error!(connector = %self.connector, task = self.id, "task failed: {e}");
        self.set_state(State::Failed, Some(e.to_string()));
    }

    pub(crate) fn note_topic(&self, topic: &str) {
        let mut t = self.topics.lock().unwrap_or_else(|p| p.into_inner());
        if !t.contains(topic) {
            t.insert(topic.to_owned());
        }
    }

    /// The target state, waiting out a pause. `false` once the task must stop.
    pub(crate) async fn wait_while_paused(&mut self) -> bool {
        loop {
            let t = *self.target.borrow_and_update();
            match t {
                TargetState::Started => return true,
                TargetState::Stopped => return false,
                TargetState::Paused => {
                    self.set_state(State::Paused, None);
                    if self.target.changed().await.is_err() {
                        return false;
                    }
                    if *self.target.borrow() == TargetState::Started {
                        self.set_state(State::Running, None);
                    }
                }
            }
        }
    }
}

pub(crate) struct Pipeline {
    key: Box<dyn Converter>,
    value: Box<dyn Converter>,
    key_class: String,
    value_class: String,
    pub(crate) chain: Chain,
    pub(crate) errors: ErrorPolicy,
    /// `connector.class`, for errors a sink task reports on records.
    connector_class: String,
    /// `errors.retry.timeout` (`None`: retry without end, Kafka's -1).
    retry_timeout: Option<Duration>,
    /// `errors.retry.delay.max.ms`.
    retry_delay_max: Duration,
}

impl Pipeline {
    pub(crate) fn backoff(&self, current: Duration) -> Duration {
        (current * 2)
            .min(self.retry_delay_max)
            .max(RETRY_BACKOFF_MIN)
    }
}

impl Pipeline {
    pub(crate) async fn new(ctx: &TaskContext) -> Result<Pipeline> {
        let (key_class, key) = ctx
            .worker
            .converter(&ctx.connector_config, "key.converter")?;
        let (value_class, value) = ctx
            .worker
            .converter(&ctx.connector_config, "value.converter")?;
        let timeout_ms: i64 = get_parsed(&ctx.connector_config, "errors.retry.timeout", 0)?;
        let delay_max_ms: u64 =
            get_parsed(&ctx.connector_config, "errors.retry.delay.max.ms", 60_000)?;
        Ok(Pipeline {
            retry_timeout: u64::try_from(timeout_ms).ok().map(Duration::from_millis),
            retry_delay_max: Duration::from_millis(delay_max_ms),
            key,
            value,
            key_class,
            value_class,
            chain: Chain::from_config(&ctx.connector_config)?,
            connector_class: ctx
                .connector_config
                .get("connector.class")
                .cloned()
                .unwrap_or_default(),
            errors: ErrorPolicy::from_config(
                &ctx.connector,
                ctx.id,
                &ctx.connector_config,
                &ctx.worker.bootstrap_servers,
            )
            .await?,
        })
    }
}

/// Runs a source task until its target state is Stopped; the status says how it ended.
pub async fn run_source(mut ctx: TaskContext, mut task: Box<dyn SourceTask>) {
    if let Err(e) = source_loop(&mut ctx, task.as_mut()).await {
        ctx.fail(&e);
    }
    task.stop();
}

async fn source_loop(ctx: &mut TaskContext, task: &mut dyn SourceTask) -> Result<()> {
    let pipeline = Pipeline::new(ctx).await?;
    let mut pc = ProducerConfig::new(&ctx.worker.bootstrap_servers);
    for (k, v) in crate::config::with_prefix(&ctx.worker.props, "producer.") {
        pc.set(&k, &v)?;
    }
    let producer = Producer::new(pc).await?;
    let mut creator = TopicCreator::from_config(
        &ctx.worker.bootstrap_servers,
        &ctx.worker.props,
        &ctx.connector_config,
    )
    .await?;
    task.start(&ctx.task_config, &ctx.offsets.reader(&ctx.connector))?;
    ctx.set_state(State::Running, None);
    let mut pending: HashMap<String, (JsonMap, JsonMap)> = HashMap::new();
    let mut last_commit = Instant::now();
    let mut poll_backoff = RETRY_BACKOFF_MIN;
    let result = async {
        while ctx.wait_while_paused().await {
            let polled = tokio::select! {
                r = task.poll() => r,
                // A closed channel means the worker is gone: stop.
                changed = ctx.target.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => break,
                },
            };
            let batch = match polled {
                Ok(batch) => {
                    poll_backoff = RETRY_BACKOFF_MIN;
                    batch
                }
                // As Kafka's WorkerSourceTask: a retriable poll failure is polled again.
                Err(ConnectError::Retriable(why)) => {
                    tracing::warn!(
                        "source task poll failed ({why}); polling again in {poll_backoff:?}"
                    );
                    tokio::time::sleep(poll_backoff).await;
                    poll_backoff = pipeline.backoff(poll_backoff);
                    continue;
                }
                Err(e) => return Err(e),
            };
            send_batch(
                ctx,
                &pipeline,
                &producer,
                creator.as_mut(),
                batch,
                &mut pending,
            )
            .await?;
            if last_commit.elapsed() >= ctx.worker.offset_flush_interval && !pending.is_empty() {
                commit_source(ctx, task, &mut pending).await?;
                last_commit = Instant::now();
            }
        }
        Ok::<(), ConnectError>(())
    }
    .await;
    // Everything in `pending` was acknowledged by Kafka (send_batch waits for it).
    let committed = commit_source(ctx, task, &mut pending).await;
    pipeline.errors.close().await;
    producer.close().await;
    result.and(committed)
}

async fn commit_source(
    ctx: &TaskContext,
    task: &mut dyn SourceTask,
    pending: &mut HashMap<String, (JsonMap, JsonMap)>,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let offsets = pending.drain().map(|(_, (p, o))| (p, Some(o))).collect();
    ctx.offsets.put(&ctx.connector, offsets).await?;
    task.commit()
}

/// Transforms, converts and sends one batch, and waits until Kafka has acknowledged it.
async fn send_batch(
    ctx: &TaskContext,
    p: &Pipeline,
    producer: &Producer,
    mut creator: Option<&mut TopicCreator>,
    batch: Vec<SourceRecord>,
    pending: &mut HashMap<String, (JsonMap, JsonMap)>,
) -> Result<()> {
    let mut records = Vec::with_capacity(batch.len());
    let mut offsets = Vec::with_capacity(batch.len());
    for sr in batch {
        offsets.push((sr.source_partition, sr.source_offset));
        if let Some(rec) = prepare_source_record(ctx, p, creator.as_deref_mut(), sr.record).await? {
            records.push(rec);
        }
    }
    produce_with_retries(p, producer, &records).await?;
    for (part, off) in offsets {
        pending.insert(partition_key(&part), (part, off));
    }
    Ok(())
}

/// Sends the records and waits for every acknowledgement; on a failure, sends them all again
/// (at least once) until `errors.retry.timeout` runs out.
/// A source record made ready to send: transformed (a failure reported under the task's
/// error policy), converted, and its topic created if the worker creates topics; `None` when
/// a transform dropped it or the error policy skipped it.
pub(crate) async fn prepare_source_record(
    ctx: &TaskContext,
    p: &Pipeline,
    creator: Option<&mut TopicCreator>,
    record: Record,
) -> Result<Option<ProducerRecord>> {
    let record = match p.chain.apply_reporting(record) {
        Ok(Some(r)) => r,
        Ok(None) => return Ok(None),
        Err((class, error)) => {
            let f = Failure {
                stage: Stage::Transformation,
                class,
                error,
                original: None,
            };
            p.errors.handle(f).await?;
            return Ok(None);
        }
    };
    let Some(rec) = to_producer_record(p, record).await? else {
        return Ok(None);
    };
    if let Some(c) = creator {
        c.ensure(&rec.topic).await?;
    }
    ctx.note_topic(&rec.topic);
    Ok(Some(rec))
}

async fn produce_with_retries(
    p: &Pipeline,
    producer: &Producer,
    records: &[ProducerRecord],
) -> Result<()> {
    let started = Instant::now();
    let mut backoff = RETRY_BACKOFF_MIN;
    loop {
        let attempt = async {
            let mut acks = Vec::with_capacity(records.len());
            for r in records {
                acks.push(producer.send(r.clone()).await?);
            }
            for a in acks {
                a.await?;
            }
            Ok::<(), strom_client::Error>(())
        };
        let error = match attempt.await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let out_of_time = p
            .retry_timeout
            .is_some_and(|t| started.elapsed() + backoff > t);
        if out_of_time {
            return Err(ConnectError::Task(format!(
                "Tolerance exceeded in error handler: stage KAFKA_PRODUCE failed: {error}"
            )));
        }
        tracing::warn!("sending source records failed ({error}); retrying in {backoff:?}");
        tokio::time::sleep(backoff).await;
        backoff = p.backoff(backoff);
    }
}

async fn to_producer_record(p: &Pipeline, r: Record) -> Result<Option<ProducerRecord>> {
    let key = match p.key.from_connect(&r.topic, r.key_schema.as_ref(), &r.key) {
        Ok(k) => k,
        Err(error) => {
            let f = Failure {
                stage: Stage::KeyConverter,
                class: &p.key_class,
                error,
                original: None,
            };
            p.errors.handle(f).await?;
            return Ok(None);
        }
    };
    let value = match p
        .value
        .from_connect(&r.topic, r.value_schema.as_ref(), &r.value)
    {
        Ok(v) => v,
        Err(error) => {
            let f = Failure {
                stage: Stage::ValueConverter,
                class: &p.value_class,
                error,
                original: None,
            };
            p.errors.handle(f).await?;
            return Ok(None);
        }
    };
    Ok(Some(ProducerRecord {
        topic: r.topic,
        partition: r.kafka_partition,
        key: key.map(Into::into),
        value: value.map(Into::into),
        headers: r
            .headers
            .iter()
            .map(|h| (h.key.clone(), header_to_bytes(h).map(Into::into)))
            .collect(),
        timestamp: r.timestamp,
    }))
}

/// Runs a sink task until its target state is Stopped; the status says how it ended.
pub async fn run_sink(mut ctx: TaskContext, mut task: Box<dyn SinkTask>) {
    if let Err(e) = sink_loop(&mut ctx, task.as_mut()).await {
        ctx.fail(&e);
    }
    task.stop();
}

/// The consumer group of a sink connector (Kafka's `connect-<name>`).
pub fn sink_group(connector: &str) -> String {
    format!("connect-{connector}")
}

async fn sink_topics(ctx: &TaskContext, admin: &Admin) -> Result<Vec<String>> {
    let listed = get_list(&ctx.connector_config, "topics");
    if !listed.is_empty() {
        return Ok(listed);
    }
    let pattern = ctx
        .connector_config
        .get("topics.regex")
        .cloned()
        .unwrap_or_default();
    let re = regex::Regex::new(&format!("^(?:{pattern})$"))
        .map_err(|e| ConnectError::InvalidConfig(format!("topics.regex: {e}")))?;
    let mut names: Vec<String> = admin
        .list_topics(false)
        .await?
        .into_iter()
        .map(|t| t.name)
        .filter(|n| re.is_match(n))
        .collect();
    names.sort();
    Ok(names)
}

/// The sink's group consumer (`connect-<name>`, manual commits, from the earliest offset
/// when the group has none, the worker's `consumer.*` settings).
async fn sink_consumer(ctx: &TaskContext) -> Result<Consumer> {
    let mut cc = ConsumerConfig::new(&ctx.worker.bootstrap_servers);
    cc.set("group.id", &sink_group(&ctx.connector))?;
    cc.set("enable.auto.commit", "false")?;
    cc.set("auto.offset.reset", "earliest")?;
    for (k, v) in crate::config::with_prefix(&ctx.worker.props, "consumer.") {
        cc.set(&k, &v)?;
    }
    let mut consumer = Consumer::new(cc).await?;
    // Before giving partitions up in a rebalance, the task flushes and commits them (what
    // Kafka's WorkerSinkTask does on revocation), so the next owner repeats nothing.
    consumer.set_defer_rejoin(true);
    Ok(consumer)
}

fn subscribe(ctx: &TaskContext, consumer: &mut Consumer, topics: &[String]) -> Result<()> {
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&refs, None)?;
    for t in topics {
        ctx.note_topic(t);
    }
    Ok(())
}

/// Applies the target state to the consumer; `false` once the task must stop.
fn follow_target(ctx: &mut TaskContext, consumer: &mut Consumer) -> bool {
    let target = *ctx.target.borrow_and_update();
    match target {
        TargetState::Stopped => return false,
        // A paused sink keeps polling (so it stays in its group) with its partitions paused.
        TargetState::Paused => {
            ctx.set_state(State::Paused, None);
            consumer.pause(&consumer.assignment());
        }
        TargetState::Started => {
            let paused = consumer.paused();
            if !paused.is_empty() {
                consumer.resume(&paused);
            }
            ctx.set_state(State::Running, None);
        }
    }
    true
}

async fn sink_loop(ctx: &mut TaskContext, task: &mut dyn SinkTask) -> Result<()> {
    let pipeline = Pipeline::new(ctx).await?;
    let mut consumer = sink_consumer(ctx).await?;
    let admin = Admin::new(ClientConfig::new(&ctx.worker.bootstrap_servers)).await?;
    let mut topics = sink_topics(ctx, &admin).await?;
    subscribe(ctx, &mut consumer, &topics)?;
    let by_regex = ctx
        .connector_config
        .get("topics.regex")
        .is_some_and(|r| !r.trim().is_empty());
    task.start(&ctx.task_config)?;
    ctx.set_state(State::Running, None);
    let mut positions: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    let mut last_commit = Instant::now();
    let mut last_regex = Instant::now();
    let result = async {
        while follow_target(ctx, &mut consumer) {
            let records = consumer.poll(SINK_POLL).await?;
            if !records.is_empty()
                && !put_batch(&pipeline, task, records, &mut positions, &ctx.target).await?
            {
                break;
            }
            if consumer.rebalance_pending() {
                commit_sink(task, &mut consumer, &mut positions).await?;
                last_commit = Instant::now();
                consumer.rejoin().await?;
            }
            if last_commit.elapsed() >= ctx.worker.offset_flush_interval {
                commit_sink(task, &mut consumer, &mut positions).await?;
                last_commit = Instant::now();
            }
            if by_regex && last_regex.elapsed() >= REGEX_REFRESH {
                last_regex = Instant::now();
                let now = sink_topics(ctx, &admin).await?;
                if now != topics {
                    topics = now;
                    subscribe(ctx, &mut consumer, &topics)?;
                }
            }
        }
        Ok::<(), ConnectError>(())
    }
    .await;
    // A failed task commits nothing more: its last records were not all delivered.
    let result = match result {
        Ok(()) => commit_sink(task, &mut consumer, &mut positions).await,
        Err(e) => Err(e),
    };
    pipeline.errors.close().await;
    let _ = consumer.close().await;
    result
}

/// Flushes the task, then commits the positions of the partitions still assigned.
async fn commit_sink(
    task: &mut dyn SinkTask,
    consumer: &mut Consumer,
    positions: &mut BTreeMap<TopicPartition, i64>,
) -> Result<()> {
    if positions.is_empty() {
        return Ok(());
    }
    task.flush(positions).await?;
    let owned: BTreeSet<TopicPartition> = consumer.assignment().into_iter().collect();
    let commit: BTreeMap<TopicPartition, i64> = positions
        .iter()
        .filter(|(tp, _)| owned.contains(*tp))
        .map(|(tp, o)| (tp.clone(), *o))
        .collect();
    positions.clear();
    if let Err(e) = consumer.commit_offsets(&commit).await {
        // The records were flushed; a failed commit only means they may be delivered again.
        tracing::warn!("sink offset commit failed: {e}");
    }
    Ok(())
}

/// Converts, transforms and puts a batch; `false` if the worker stopped the task while a
/// retriable failure was being retried (the batch then counts as not delivered).
async fn put_batch(
    p: &Pipeline,
    task: &mut dyn SinkTask,
    records: Vec<ConsumerRecord>,
    positions: &mut BTreeMap<TopicPartition, i64>,
    target: &watch::Receiver<TargetState>,
) -> Result<bool> {
    let mut out = Vec::with_capacity(records.len());
    let mut next = BTreeMap::new();
    for cr in &records {
        next.insert(TopicPartition::new(&cr.topic, cr.partition), cr.offset + 1);
        if let Some(r) = to_sink_record(p, cr).await? {
            out.push(r);
        }
    }
    let mut backoff = RETRY_BACKOFF_MIN;
    while !out.is_empty() {
        match task.put(out.clone()).await {
            Ok(()) => break,
            Err(ConnectError::Retriable(why)) => {
                // Kafka redelivers the same records after a retriable failure, without end.
                if *target.borrow() == TargetState::Stopped {
                    return Ok(false);
                }
                tracing::warn!("sink task put failed ({why}); retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = p.backoff(backoff);
            }
            // Records the task could not write (Kafka's ErrantRecordReporter): the error
            // policy takes each (the DLQ with errors.tolerance=all, else the task fails).
            Err(ConnectError::Errant {
                records: failed,
                message,
            }) => {
                for (topic, partition, offset) in &failed {
                    let original = records.iter().find(|cr| {
                        cr.topic == *topic && cr.partition == *partition && cr.offset == *offset
                    });
                    let f = Failure {
                        stage: Stage::TaskPut,
                        class: &p.connector_class,
                        error: ConnectError::Task(message.clone()),
                        original,
                    };
                    p.errors.handle(f).await?;
                }
                break;
            }
            Err(e) => {
                return Err(ConnectError::Task(format!(
                    "Exiting WorkerSinkTask due to unrecoverable exception: {e}"
                )))
            }
        }
    }
    // Only records handed to the task (or skipped by the error policy) count as consumed.
    positions.extend(next);
    Ok(true)
}

async fn to_sink_record(p: &Pipeline, cr: &ConsumerRecord) -> Result<Option<SinkRecord>> {
    let (key_schema, key) = match p.key.to_connect(&cr.topic, cr.key.as_deref()) {
        Ok(k) => k,
        Err(error) => {
            let f = Failure {
                stage: Stage::KeyConverter,
                class: &p.key_class,
                error,
                original: Some(cr),
            };
            p.errors.handle(f).await?;
            return Ok(None);
        }
    };
    let (value_schema, value) = match p.value.to_connect(&cr.topic, cr.value.as_deref()) {
        Ok(v) => v,
        Err(error) => {
            let f = Failure {
                stage: Stage::ValueConverter,
                class: &p.value_class,
                error,
                original: Some(cr),
            };
            p.errors.handle(f).await?;
            return Ok(None);
        }
    };
    let record = Record {
        topic: cr.topic.clone(),
        kafka_partition: Some(cr.partition),
        key_schema,
        key,
        value_schema,
        value,
        timestamp: Some(cr.timestamp),
        headers: cr
            .headers
            .iter()
            .map(|(k, v)| header_from_bytes(k, v.as_deref()))
            .collect(),
    };
    match p.chain.apply_reporting(record) {
        Ok(Some(record)) => Ok(Some(SinkRecord {
            record,
            kafka_offset: cr.offset,
        })),
        Ok(None) => Ok(None),
        Err((class, error)) => {
            let f = Failure {
                stage: Stage::Transformation,
                class,
                error,
                original: Some(cr),
            };
            p.errors.handle(f).await?;
            Ok(None)
        }
    }
}
