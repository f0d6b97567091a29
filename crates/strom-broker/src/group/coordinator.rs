//! The group coordinator's async face: requests wait on the join and sync barriers through
//! oneshot channels, a timer task drives session/rebalance timeouts and offset expiry, and
//! every record is appended to `__consumer_offsets` before the answer that depends on it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strom_metadata::broker_config::BrokerConfig;
use strom_protocol::ErrorCode;
use strom_storage::Clock;
use tokio::sync::{oneshot, watch, Notify};

use super::consumer::ConsumerGroups;
use super::log::{batch_of, OffsetsLog};
use super::manager::{CommitAuth, GroupDescription, GroupListing, GroupManager, TopicPartition};
use super::records::{partition_for, GroupRecord, OffsetCommitValue};
use super::state::{
    Effects, GroupConfig, GroupState, JoinRequest, JoinResult, Outcome, Reply, SyncRequest,
    SyncResult, Ticket,
};
use super::txn_offsets::{replay_batches, PendingTxnOffsets};
use crate::internal_topic::OwnedPartitions;

/// Kafka's `offset.metadata.max.bytes` default (not yet a Strom broker setting).
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;
/// The timer task re-checks at least this often, whatever the deadlines say.
const MAX_TIMER_SLEEP_MS: i64 = 1_000;

impl GroupConfig {
    /// The group settings of a broker configuration (Kafka's keys).
    pub fn from_broker(config: &BrokerConfig) -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay_ms: i64::from(config.group_initial_rebalance_delay_ms()),
            min_session_timeout_ms: config.group_min_session_timeout_ms(),
            max_session_timeout_ms: config.group_max_session_timeout_ms(),
            max_size: usize::try_from(config.group_max_size()).unwrap_or(1).max(1),
            offsets_retention_ms: i64::from(config.offsets_retention_minutes()) * 60_000,
            offset_metadata_max_bytes: OFFSET_METADATA_MAX_BYTES,
        }
    }
}

/// `offsets.retention.check.interval.ms`: how often expired offsets are removed.
pub fn retention_check_interval_ms(config: &BrokerConfig) -> i64 {
    config
        .value_and_source("offsets.retention.check.interval.ms")
        .0
        .and_then(|v| v.parse().ok())
        .unwrap_or(600_000)
}

/// One offset of an OffsetCommit request.
#[derive(Debug, Clone)]
pub struct OffsetCommit {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

struct Inner {
    groups: GroupManager,
    joins: HashMap<Ticket, oneshot::Sender<JoinResult>>,
    syncs: HashMap<Ticket, oneshot::Sender<SyncResult>>,
    /// KIP-848 groups (`coordinator/consumer.rs`); their offsets live in `groups`.
    consumer: ConsumerGroups,
}

/// The coordinator of every group (single node: every `__consumer_offsets` partition is led
/// here). Lock order: only `inner`; appends happen under it so records keep request order.
pub struct GroupCoordinator {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
    /// Wakes the timer task when a request may have moved a deadline earlier.
    wake: Notify,
    /// Serializes the creation of `__consumer_offsets`, so that no request sees the topic
    /// before its partition logs are open.
    pub(crate) topic_creation: Mutex<()>,
    /// Offsets of open transactions (`txn_offsets.rs`); never held with `inner`.
    txn_offsets: Mutex<PendingTxnOffsets>,
    /// The `__consumer_offsets` partitions whose groups are served here.
    pub(crate) owned: OwnedPartitions,
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig, clock: Arc<dyn Clock>) -> GroupCoordinator {
        let ids = Box::new(|| uuid::Uuid::new_v4().to_string());
        GroupCoordinator {
            inner: Mutex::new(Inner {
                groups: GroupManager::new(config, ids),
                joins: HashMap::new(),
                syncs: HashMap::new(),
                consumer: ConsumerGroups::default(),
            }),
            clock,
            wake: Notify::new(),
            topic_creation: Mutex::new(()),
            txn_offsets: Mutex::new(PendingTxnOffsets::default()),
            owned: OwnedPartitions::default(),
        }
    }

    /// Whether `group_id` is coordinated here: NOT_COORDINATOR when its partition is led
    /// elsewhere, COORDINATOR_LOAD_IN_PROGRESS while it is being loaded.
    pub fn check_coordinator(&self, log: &dyn OffsetsLog, group_id: &str) -> Result<(), ErrorCode> {
        let partitions = log.offsets_partitions()?;
        self.owned
            .status(partition_for(group_id, partitions))
            .map(|_| ())
    }

    /// Takes over one `__consumer_offsets` partition (this broker became its leader at
    /// `epoch`, and `owned` marked it loading): replays it, then serves its groups unless
    /// leadership moved meanwhile. Requests meanwhile are told to retry.
    pub fn load_partition(&self, log: &dyn OffsetsLog, partition: i32, epoch: i32) {
        let now = self.now_ms();
        let mut pending = PendingTxnOffsets::default();
        let mut count = 0usize;
        let result = {
            let mut inner = self.inner.lock();
            log.read_partition_batches(partition, &mut |batches| {
                replay_batches(&mut pending, partition, &batches, |record| {
                    count += 1;
                    match record {
                        GroupRecord::ConsumerGroup { group_id, value } => {
                            inner.consumer.replay(group_id, value.as_deref(), now)
                        }
                        record => inner.groups.replay(record, now),
                    }
                })
            })
        };
        if let Err(e) = result {
            // Stays loading: clients retry, and the next leadership change tries again.
            tracing::error!(partition, error = %e, "cannot load a partition of __consumer_offsets");
            return;
        }
        self.txn_offsets.lock().absorb(pending);
        self.owned.finish_load(partition, epoch);
        tracing::info!(
            partition,
            epoch,
            records = count,
            "loaded __consumer_offsets partition"
        );
        self.wake.notify_one();
    }

    /// Gives up one `__consumer_offsets` partition (of `partitions`; `owned` no longer
    /// serves it): its groups are dropped and their waiting JoinGroup/SyncGroup requests
    /// answered NOT_COORDINATOR.
    pub fn unload_partition(&self, partition: i32, partitions: i32) {
        if partitions <= 0 {
            return;
        }
        let here = |group_id: &str| partition_for(group_id, partitions) == partition;
        let mut inner = self.inner.lock();
        let mut fx = Effects::default();
        let dropped = inner.groups.unload(&here, &mut fx);
        inner.consumer.unload(&here);
        for reply in fx.replies {
            match reply {
                Reply::Join(t, r) => {
                    if let Some(tx) = inner.joins.remove(&t) {
                        let _ = tx.send(r);
                    }
                }
                Reply::Sync(t, r) => {
                    if let Some(tx) = inner.syncs.remove(&t) {
                        let _ = tx.send(r);
                    }
                }
            }
        }
        drop(inner);
        self.txn_offsets.lock().unload(partition);
        if dropped > 0 {
            tracing::info!(
                partition,
                groups = dropped,
                "unloaded __consumer_offsets partition"
            );
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub(super) fn clock_ms(&self) -> i64 {
        self.now_ms()
    }

    /// Runs `f` on the group manager under the coordinator's lock.
    pub(super) fn with_manager<R>(&self, f: impl FnOnce(&mut GroupManager) -> R) -> R {
        f(&mut self.inner.lock().groups)
    }

    pub(super) fn pending_txn_offsets(&self) -> &Mutex<PendingTxnOffsets> {
        &self.txn_offsets
    }

    /// Rebuilds groups and offsets by replaying `__consumer_offsets` (start-up).
    pub fn load(&self, log: &dyn OffsetsLog) -> Result<usize, String> {
        let now = self.now_ms();
        let mut inner = self.inner.lock();
        let mut count = 0usize;
        // Transactional offsets wait for their marker; those still open stay staged.
        let mut pending = PendingTxnOffsets::default();
        log.read_batches(&mut |partition, batches| {
            replay_batches(&mut pending, partition, &batches, |record| {
                count += 1;
                match record {
                    GroupRecord::ConsumerGroup { group_id, value } => {
                        inner.consumer.replay(group_id, value.as_deref(), now)
                    }
                    record => inner.groups.replay(record, now),
                }
            })
        })?;
        self.txn_offsets.lock().absorb(pending);
        let groups = inner.groups.list(&[], &[]).len();
        if count > 0 {
            tracing::info!(
                records = count,
                groups,
                "loaded consumer groups from __consumer_offsets"
            );
        }
        Ok(groups)
    }

    /// Appends the records of `fx` (grouped per partition), then answers waiting requests.
    fn apply(&self, inner: &mut Inner, log: &dyn OffsetsLog, fx: Effects) {
        if !fx.records.is_empty() {
            if let Err(e) = self.append(log, &fx.records) {
                tracing::error!(error = ?e, "could not write group metadata to __consumer_offsets");
            }
        }
        for reply in fx.replies {
            match reply {
                Reply::Join(t, r) => {
                    if let Some(tx) = inner.joins.remove(&t) {
                        let _ = tx.send(r);
                    }
                }
                Reply::Sync(t, r) => {
                    if let Some(tx) = inner.syncs.remove(&t) {
                        let _ = tx.send(r);
                    }
                }
            }
        }
    }

    fn append(&self, log: &dyn OffsetsLog, records: &[GroupRecord]) -> Result<(), ErrorCode> {
        let partitions = log.offsets_partitions()?;
        let mut by_partition: BTreeMap<i32, Vec<GroupRecord>> = BTreeMap::new();
        for r in records {
            by_partition
                .entry(partition_for(r.group_id(), partitions))
                .or_default()
                .push(r.clone());
        }
        let now = self.now_ms();
        for (partition, records) in by_partition {
            log.append_batch(partition, batch_of(&records, now))?;
        }
        Ok(())
    }

    /// JoinGroup; waits for the join barrier when the group rebalances.
    pub async fn join(&self, log: &dyn OffsetsLog, req: JoinRequest) -> JoinResult {
        if let Err(e) = self.check_coordinator(log, &req.group_id) {
            return JoinResult::error(&req.member_id, e);
        }
        let rx = {
            let mut inner = self.inner.lock();
            // A group id is classic or consumer (KIP-848); an empty consumer group yields.
            if inner.consumer.has_members(&req.group_id) {
                return JoinResult::error(&req.member_id, ErrorCode::InconsistentGroupProtocol);
            }
            let mut fx = Effects::default();
            if inner.consumer.remove_if_empty(&req.group_id) {
                fx.records.push(inner.consumer.record(&req.group_id));
            }
            let outcome = inner.groups.join(&req, self.now_ms(), &mut fx);
            let rx = match outcome {
                Outcome::Done(result) => {
                    self.apply(&mut inner, log, fx);
                    return result;
                }
                Outcome::Pending(ticket) => {
                    let (tx, rx) = oneshot::channel();
                    inner.joins.insert(ticket, tx);
                    rx
                }
            };
            self.apply(&mut inner, log, fx);
            rx
        };
        // A new barrier or member may bring the next deadline forward.
        self.wake.notify_one();
        rx.await
            .unwrap_or_else(|_| JoinResult::error(&req.member_id, ErrorCode::NotCoordinator))
    }

    /// SyncGroup; followers wait for the leader's assignment.
    pub async fn sync(&self, log: &dyn OffsetsLog, req: SyncRequest) -> SyncResult {
        if let Err(e) = self.check_coordinator(log, &req.group_id) {
            return SyncResult::error(e);
        }
        let rx = {
            let mut inner = self.inner.lock();
            let mut fx = Effects::default();
            let rx = match inner.groups.sync(&req, self.now_ms(), &mut fx) {
                Outcome::Done(result) => {
                    self.apply(&mut inner, log, fx);
                    return result;
                }
                Outcome::Pending(ticket) => {
                    let (tx, rx) = oneshot::channel();
                    inner.syncs.insert(ticket, tx);
                    rx
                }
            };
            self.apply(&mut inner, log, fx);
            rx
        };
        self.wake.notify_one();
        rx.await
            .unwrap_or_else(|_| SyncResult::error(ErrorCode::NotCoordinator))
    }

    pub fn heartbeat(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), ErrorCode> {
        self.check_coordinator(log, group_id)?;
        let now = self.now_ms();
        self.inner
            .lock()
            .groups
            .heartbeat(group_id, member_id, instance_id, generation_id, now)
    }

    /// LeaveGroup: per-member results (member id that left), or a group-level error.
    pub fn leave(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<String, ErrorCode>>, ErrorCode> {
        self.check_coordinator(log, group_id)?;
        let mut inner = self.inner.lock();
        let mut fx = Effects::default();
        let result = inner
            .groups
            .leave(group_id, members, self.now_ms(), &mut fx);
        self.apply(&mut inner, log, fx);
        self.wake.notify_one();
        result
    }

    /// OffsetCommit: validates the committer, writes the offsets, then makes them visible.
    /// `retention_ms` is OffsetCommit v2–4's explicit retention (-1: the broker's).
    pub fn commit(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        auth: &CommitAuth,
        retention_ms: i64,
        offsets: Vec<(TopicPartition, OffsetCommit)>,
    ) -> Result<Vec<(TopicPartition, Option<ErrorCode>)>, ErrorCode> {
        self.check_coordinator(log, group_id)?;
        let now = self.now_ms();
        let mut inner = self.inner.lock();
        // OffsetCommit v9 of a consumer group carries the member epoch (KIP-848).
        let consumer =
            inner
                .consumer
                .validate_commit(group_id, &auth.member_id, auth.generation_id)?;
        if !consumer {
            inner.groups.validate_commit(group_id, auth, now)?;
        }
        let expire = (retention_ms >= 0).then(|| now.saturating_add(retention_ms));
        let max_metadata = inner.groups.config().offset_metadata_max_bytes;
        let (results, accepted) = commit_values(offsets, max_metadata, now, expire);
        if !accepted.is_empty() {
            let records: Vec<GroupRecord> = accepted
                .iter()
                .map(|((topic, partition), v)| GroupRecord::Offset {
                    group_id: group_id.to_owned(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: Some(v.clone()),
                })
                .collect();
            self.append(log, &records)?;
            inner.groups.apply_commit(group_id, accepted, now);
        }
        Ok(results)
    }

    /// OffsetFetch of one group (`None`: every partition with a committed offset).
    pub fn fetch(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<Vec<(TopicPartition, Option<OffsetCommitValue>)>, ErrorCode> {
        self.check_coordinator(log, group_id)?;
        Ok(self.inner.lock().groups.fetch_offsets(group_id, partitions))
    }

    /// Every committed offset of the groups served here (metrics: consumer lag).
    pub fn committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        self.inner.lock().groups.committed_offsets()
    }

    /// Classic groups only; `list_consumer` lists the KIP-848 ones.
    pub fn list(&self, states: &[GroupState], types: &[String]) -> Vec<GroupListing> {
        let inner = self.inner.lock();
        let mut listing = inner.groups.list(states, types);
        listing.retain(|g| inner.consumer.group(&g.group_id).is_none());
        listing
    }

    pub fn describe(&self, group_id: &str) -> GroupDescription {
        self.inner.lock().groups.describe(group_id)
    }

    /// DeleteGroups for one group: tombstones are written before the group is forgotten.
    pub fn delete_group(&self, log: &dyn OffsetsLog, group_id: &str) -> Result<(), ErrorCode> {
        self.check_coordinator(log, group_id)?;
        let mut inner = self.inner.lock();
        if inner.consumer.has_members(group_id) {
            return Err(ErrorCode::NonEmptyGroup);
        }
        if inner.consumer.remove_if_empty(group_id) {
            self.append(log, &[inner.consumer.record(group_id)])?;
            if inner.groups.group(group_id).is_none() {
                return Ok(());
            }
        }
        let records = inner.groups.plan_delete_group(group_id)?;
        self.append(log, &records)?;
        inner
            .groups
            .delete_group(group_id, self.now_ms(), &mut Effects::default())
    }

    /// OffsetDelete: tombstones are written before the offsets are forgotten.
    pub fn delete_offsets(
        &self,
        log: &dyn OffsetsLog,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, Option<ErrorCode>)>, ErrorCode> {
        self.check_coordinator(log, group_id)?;
        let mut inner = self.inner.lock();
        let (results, deleted) = inner.groups.plan_delete_offsets(group_id, partitions)?;
        if !deleted.is_empty() {
            let tombstones: Vec<GroupRecord> = deleted
                .iter()
                .map(|(topic, partition)| GroupRecord::Offset {
                    group_id: group_id.to_owned(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: None,
                })
                .collect();
            self.append(log, &tombstones)?;
            inner.groups.remove_offsets(group_id, &deleted);
        }
        Ok(results)
    }

    /// Expires sessions and barriers due now; returns the next deadline.
    pub fn tick(&self, log: &dyn OffsetsLog) -> Option<i64> {
        let mut inner = self.inner.lock();
        let mut fx = Effects::default();
        let now = self.now_ms();
        inner.groups.tick(now, &mut fx);
        for group_id in inner.consumer.tick(now) {
            fx.records.push(inner.consumer.record(&group_id));
        }
        self.apply(&mut inner, log, fx);
        let consumer = inner.consumer.next_deadline();
        match (inner.groups.next_deadline(), consumer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Removes offsets past retention and groups left with nothing (`offsets.retention.*`).
    pub fn expire_offsets(&self, log: &dyn OffsetsLog) {
        let mut inner = self.inner.lock();
        let mut fx = Effects::default();
        {
            let inner = &mut *inner;
            let consumer = &inner.consumer;
            inner
                .groups
                .expire_offsets_except(self.now_ms(), &mut fx, &|group_id| {
                    consumer.has_members(group_id)
                });
        }
        self.apply(&mut inner, log, fx);
    }

    /// Answers every waiting JoinGroup/SyncGroup with NOT_COORDINATOR (shutdown).
    pub fn fail_waiting(&self, log: &dyn OffsetsLog) {
        let mut inner = self.inner.lock();
        let mut fx = Effects::default();
        inner
            .groups
            .fail_waiting(ErrorCode::NotCoordinator, &mut fx);
        self.apply(&mut inner, log, fx);
    }

    /// The timer task: runs until `stop` flips, then releases every waiting request.
    pub async fn run_timers(
        &self,
        log: &dyn OffsetsLog,
        retention_check_interval_ms: i64,
        mut stop: watch::Receiver<bool>,
    ) {
        let interval = retention_check_interval_ms.max(1);
        let mut next_expiry = self.now_ms().saturating_add(interval);
        loop {
            let next = self.tick(log);
            let now = self.now_ms();
            if now >= next_expiry {
                self.expire_offsets(log);
                next_expiry = now.saturating_add(interval);
            }
            let until = next.unwrap_or(i64::MAX).min(next_expiry);
            let sleep_ms = until.saturating_sub(now).clamp(0, MAX_TIMER_SLEEP_MS);
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(sleep_ms as u64)) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
        }
        self.fail_waiting(log);
    }
}

mod consumer;

/// Per-partition outcome of a commit: `None` when accepted.
pub(super) type CommitResults = Vec<(TopicPartition, Option<ErrorCode>)>;

/// Splits commits into per-partition results and the values to store: a commit whose metadata
/// is longer than `offset.metadata.max.bytes` gets OFFSET_METADATA_TOO_LARGE, the rest are kept.
/// Shared by OffsetCommit and TxnOffsetCommit.
pub(super) fn commit_values(
    offsets: Vec<(TopicPartition, OffsetCommit)>,
    max_metadata: usize,
    now: i64,
    expire_timestamp_ms: Option<i64>,
) -> (CommitResults, Vec<(TopicPartition, OffsetCommitValue)>) {
    let mut results = Vec::with_capacity(offsets.len());
    let mut accepted = Vec::new();
    for (tp, commit) in offsets {
        let metadata = commit.metadata.unwrap_or_default();
        if metadata.len() > max_metadata {
            results.push((tp, Some(ErrorCode::OffsetMetadataTooLarge)));
            continue;
        }
        let value = OffsetCommitValue {
            offset: commit.offset,
            leader_epoch: commit.leader_epoch,
            metadata,
            commit_timestamp_ms: now,
            expire_timestamp_ms,
        };
        accepted.push((tp.clone(), value));
        results.push((tp, None));
    }
    (results, accepted)
}

#[cfg(test)]
mod tests;
