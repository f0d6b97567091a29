//! The internal compacted topics of the coordinators (`__consumer_offsets`,
//! `__transaction_state`) on this broker: created through the controller on first use,
//! appended to and replayed through the replica manager's partition logs. In a cluster a
//! coordinator serves the keys of the partitions this broker leads (`OwnedPartitions`),
//! loading and unloading them as leadership moves (`on_role_changes`), and its writes are
//! answered once the ISR has them (`wait_for_isr`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use strom_metadata::{ControllerError, CreateTopicRequest};
use strom_protocol::ErrorCode;
use tokio::sync::{watch, Notify};

use crate::broker::Broker;
use crate::errors::log_error_code;
use crate::partition::{Partition, RoleChange};

/// Kafka's `offsets.commit.timeout.ms` default: how long a coordinator write waits for the ISR.
const COORDINATOR_WRITE_TIMEOUT_MS: u64 = 5_000;

/// Where one coordinated partition stands on this broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// Being replayed: requests get COORDINATOR_LOAD_IN_PROGRESS.
    Loading { epoch: i32 },
    /// Served; `epoch` is the partition's leader epoch (Kafka's coordinator epoch).
    Loaded { epoch: i32 },
}

/// Which partitions of an internal topic this broker's coordinator serves. Single node:
/// every partition, loaded at start-up (epoch 0); a cluster: those it leads, once loaded.
#[derive(Debug, Default)]
pub(crate) struct OwnedPartitions {
    /// `None`: every partition (single node).
    partitions: Mutex<Option<HashMap<i32, Load>>>,
}

impl OwnedPartitions {
    /// From now on only partitions loaded through `begin_load`/`finish_load` are served.
    pub fn serve_led_partitions_only(&self) {
        let mut partitions = self.partitions.lock();
        if partitions.is_none() {
            *partitions = Some(HashMap::new());
        }
    }

    /// The coordinator epoch of `partition` if it is served here, else why not.
    pub fn status(&self, partition: i32) -> Result<i32, ErrorCode> {
        match self.partitions.lock().as_ref() {
            None => Ok(0),
            Some(map) => match map.get(&partition) {
                Some(Load::Loaded { epoch }) => Ok(*epoch),
                Some(Load::Loading { .. }) => Err(ErrorCode::CoordinatorLoadInProgress),
                None => Err(ErrorCode::NotCoordinator),
            },
        }
    }

    /// Whether this broker serves every partition (single node).
    pub fn serves_all(&self) -> bool {
        self.partitions.lock().is_none()
    }

    pub fn begin_load(&self, partition: i32, epoch: i32) {
        if let Some(map) = self.partitions.lock().as_mut() {
            map.insert(partition, Load::Loading { epoch });
        }
    }

    /// Marks a load done unless leadership moved meanwhile (then nothing changes).
    pub fn finish_load(&self, partition: i32, epoch: i32) {
        if let Some(map) = self.partitions.lock().as_mut() {
            if map.get(&partition) == Some(&Load::Loading { epoch }) {
                map.insert(partition, Load::Loaded { epoch });
            }
        }
    }

    /// Stops serving `partition`.
    pub fn unload(&self, partition: i32) {
        if let Some(map) = self.partitions.lock().as_mut() {
            map.remove(&partition);
        }
    }
}

/// One load or unload of a coordinator partition, waiting for the coordinator task.
#[derive(Debug, Clone, Copy)]
struct CoordinatorEvent {
    offsets: bool,
    partition: i32,
    /// The topic's partition count (to tell which keys are the partition's).
    partitions: i32,
    /// `Some(epoch)`: load as leader of `epoch`; `None`: unload.
    load: Option<i32>,
}

/// Loads and unloads queued by role changes, applied in order by `run_coordinator_events`:
/// a load takes the coordinator's lock, which a coordinator may hold while it waits for a
/// controller operation (a producer id block), itself waiting for the follow lock held where
/// roles change. Which partitions are served changes at once; only the replay waits.
#[derive(Debug, Default)]
pub(crate) struct CoordinatorEvents {
    queue: Mutex<VecDeque<CoordinatorEvent>>,
    wake: Notify,
}

/// Queues the coordinator loads and unloads of a metadata change (cluster mode only: a
/// single node leads every partition and loads everything at start-up). Requests see the
/// change at once: NOT_COORDINATOR after an unload, COORDINATOR_LOAD_IN_PROGRESS until the
/// queued load is done.
pub(crate) fn on_role_changes(
    broker: &Broker,
    image: &strom_metadata::MetadataImage,
    changes: &[(Arc<Partition>, RoleChange)],
) {
    use crate::group::OFFSETS_TOPIC;
    use crate::txn::TXN_STATE_TOPIC;
    for (partition, change) in changes {
        let topic = partition.topic.as_str();
        if topic != OFFSETS_TOPIC && topic != TXN_STATE_TOPIC {
            continue;
        }
        let offsets = topic == OFFSETS_TOPIC;
        let owned = if offsets {
            &broker.groups().owned
        } else {
            &broker.txns().owned
        };
        let index = partition.index;
        let load = match (change, partition.leader_epoch_if_leader()) {
            (RoleChange::BecameLeader, Some(epoch)) => {
                owned.begin_load(index, epoch);
                Some(epoch)
            }
            (RoleChange::BecameFollower, _) => {
                owned.unload(index);
                None
            }
            _ => continue,
        };
        let partitions = image.topic(topic).map_or(0, |t| t.partitions.len() as i32);
        let events = broker.coordinator_events();
        events.queue.lock().push_back(CoordinatorEvent {
            offsets,
            partition: index,
            partitions,
            load,
        });
        events.wake.notify_one();
    }
}

/// The coordinator task (cluster mode): applies queued loads and unloads in order until
/// `stop` flips.
pub(crate) async fn run_coordinator_events(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    loop {
        let events: Vec<CoordinatorEvent> =
            broker.coordinator_events().queue.lock().drain(..).collect();
        if events.is_empty() {
            tokio::select! {
                () = broker.coordinator_events().wake.notified() => continue,
                _ = stop.changed() => return,
            }
        }
        let b = Arc::clone(&broker);
        let _ = tokio::task::spawn_blocking(move || {
            for e in events {
                apply_event(&b, e);
            }
        })
        .await;
    }
}

fn apply_event(broker: &Broker, e: CoordinatorEvent) {
    match (e.offsets, e.load) {
        (true, Some(epoch)) => {
            broker.groups().unload_partition(e.partition, e.partitions);
            broker.groups().load_partition(broker, e.partition, epoch);
        }
        (true, None) => broker.groups().unload_partition(e.partition, e.partitions),
        (false, Some(epoch)) => {
            broker.txns().unload_partition(e.partition, e.partitions);
            broker.txns().load_partition(broker, e.partition, epoch);
        }
        (false, None) => broker.txns().unload_partition(e.partition, e.partitions),
    }
}

/// The coordinator write purgatory: answers once the high watermark of `topic`-`partition`
/// covers everything in its log when called (so every record the calling request wrote), as
/// a produce with acks=all does. Kafka's mapping of a failed wait for a coordinator:
/// NOT_COORDINATOR if leadership moved, COORDINATOR_NOT_AVAILABLE on timeout. A single node
/// answers at once (its high watermark is its log end).
pub(crate) async fn wait_for_isr(
    broker: &Broker,
    topic: &str,
    partition: i32,
) -> Result<(), ErrorCode> {
    if !broker.config().is_quorum_over_network() {
        return Ok(());
    }
    let Some(p) = broker.replicas().partition(topic, partition) else {
        return Err(ErrorCode::NotCoordinator);
    };
    let Some(epoch) = p.leader_epoch_if_leader() else {
        return Err(ErrorCode::NotCoordinator);
    };
    let required = p.log.log_end_offset();
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(COORDINATOR_WRITE_TIMEOUT_MS);
    loop {
        let mut changes = p.subscribe();
        if p.leader_epoch_if_leader() != Some(epoch) {
            return Err(ErrorCode::NotCoordinator);
        }
        if p.high_watermark() >= required {
            return Ok(());
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
    }
}

/// How much of a partition one replay read takes.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// How an internal topic is created.
pub(crate) struct InternalTopic<'a> {
    pub name: &'a str,
    pub partitions: i32,
    pub replication_factor: i16,
    pub segment_bytes: i32,
    /// Serializes the creation, so that no request sees the topic before its logs are open.
    pub creation: &'a Mutex<()>,
}

impl InternalTopic<'_> {
    /// The topic's partition count, creating the topic first if it does not exist.
    pub fn ensure(&self, broker: &Broker) -> Result<i32, ErrorCode> {
        // The image shows a new topic before its logs are open: wait out a creation.
        drop(self.creation.lock());
        match broker.image().topic(self.name) {
            Some(topic) => Ok(topic.partitions.len() as i32),
            None => self.create(broker),
        }
    }

    fn create(&self, broker: &Broker) -> Result<i32, ErrorCode> {
        let name = self.name;
        let _creating = self.creation.lock();
        // Created while this request waited: the creator has opened its logs.
        if let Some(topic) = broker.image().topic(name) {
            return Ok(topic.partitions.len() as i32);
        }
        let request = CreateTopicRequest {
            name: name.to_owned(),
            num_partitions: self.partitions,
            replication_factor: self.replication_factor,
            assignments: Vec::new(),
            configs: vec![
                ("cleanup.policy".to_owned(), Some("compact".to_owned())),
                ("compression.type".to_owned(), Some("producer".to_owned())),
                (
                    "segment.bytes".to_owned(),
                    Some(self.segment_bytes.to_string()),
                ),
            ],
        };
        let result = broker
            .controller_op(strom_metadata::ControllerOp::CreateTopics {
                topics: vec![request],
                validate_only: false,
            })
            .into_create_topics(1);
        match result.into_iter().next() {
            Some(Ok(created)) => {
                tracing::info!(partitions = created.num_partitions, "created {name}");
                Ok(created.num_partitions)
            }
            // Another request created it first.
            Some(Err(ControllerError::TopicAlreadyExists { .. })) => broker
                .image()
                .topic(name)
                .map(|t| t.partitions.len() as i32)
                .ok_or(ErrorCode::CoordinatorNotAvailable),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "cannot create {name}");
                Err(ErrorCode::CoordinatorNotAvailable)
            }
            None => Err(ErrorCode::CoordinatorNotAvailable),
        }
    }
}

/// Appends one batch to a partition of `topic`; the error is the log's own code
/// (`NotLeaderOrFollower` when the partition is not hosted here).
pub(crate) fn append(
    broker: &Broker,
    topic: &str,
    partition: i32,
    batch: BytesMut,
) -> Result<(), ErrorCode> {
    let log = broker
        .replicas()
        .partition(topic, partition)
        .ok_or(ErrorCode::NotLeaderOrFollower)?;
    // Only the leader writes (a single node leads every partition it hosts).
    if broker.config().is_quorum_over_network() && !log.is_leader() {
        return Err(ErrorCode::NotLeaderOrFollower);
    }
    // Coordinator writes to a log that fsyncs on append (flush.messages) leave the runtime.
    let append = || log.log.append(batch).map_err(|e| log_error_code(&e));
    if log.log.config().flush_messages < crate::handlers::NEVER_FLUSH {
        crate::broker::off_runtime(append)?;
    } else {
        append()?;
    }
    log.notify_appended();
    Ok(())
}

/// The stored batches of every partition of `topic` (or only of `only`), in offset order;
/// nothing if no topic.
pub(crate) fn read_batches(
    broker: &Broker,
    topic_name: &str,
    only: Option<i32>,
    visit: &mut dyn FnMut(i32, Bytes),
) -> Result<(), String> {
    // One partition is read from its hosted log: the image may not show it yet (a role
    // change is applied before the image that caused it is published).
    let indexes: Vec<i32> = match (only, broker.image().topic(topic_name)) {
        (Some(index), _) => vec![index],
        (None, Some(topic)) => topic.partitions.keys().copied().collect(),
        (None, None) => return Ok(()),
    };
    for index in &indexes {
        let Some(partition) = broker.replicas().partition(topic_name, *index) else {
            continue;
        };
        let log = &partition.log;
        let mut offset = log.log_start_offset();
        let end = log.log_end_offset();
        while offset < end {
            let read = log
                .read(offset, REPLAY_READ_BYTES, None)
                .map_err(|e| format!("{topic_name}-{index}: {e}"))?;
            let Some(slice) = read.slice else {
                break;
            };
            let bytes = slice
                .read_to_bytes()
                .map_err(|e| format!("{topic_name}-{index}: {e}"))?;
            let next = next_offset(&bytes).filter(|n| *n > offset);
            visit(*index, bytes);
            match next {
                Some(n) => offset = n,
                None => break,
            }
        }
    }
    Ok(())
}

/// Visits each batch of a replay read of `topic`, decompressed. An unreadable batch ends the
/// read (what follows cannot be framed); one that does not decompress is skipped.
pub(crate) fn for_each_batch(
    topic: &str,
    batches: &[u8],
    mut visit: impl FnMut(&strom_protocol::RecordBatchHeader<'_>),
) {
    for batch in strom_protocol::BatchSplitter::new(batches, usize::MAX) {
        let Ok(batch) = batch else {
            tracing::warn!("unreadable batch in {topic}; skipping the rest");
            return;
        };
        let plain = match strom_protocol::compression::decompress_batch(batch) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot decompress a batch of {topic}");
                continue;
            }
        };
        if let Ok(header) = strom_protocol::RecordBatchHeader::parse(&plain) {
            visit(&header);
        }
    }
}

/// The offset after the last whole batch in `bytes`.
pub(crate) fn next_offset(bytes: &[u8]) -> Option<i64> {
    strom_protocol::BatchSplitter::new(bytes, usize::MAX)
        .map_while(Result::ok)
        .filter_map(|b| strom_protocol::RecordBatchHeader::parse(b).ok())
        .map(|h| h.last_offset() + 1)
        .last()
}
