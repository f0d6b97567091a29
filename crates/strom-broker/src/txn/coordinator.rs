//! The transaction coordinator's face: one mutex around the state machine; each change is
//! written to `__transaction_state` before it is applied, markers are written between
//! Prepare* and Complete*, and a timer aborts timed-out transactions and retries completions.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strom_metadata::broker_config::BrokerConfig;
use strom_protocol::ErrorCode;
use strom_storage::Clock;
use tokio::sync::watch;

use super::log::{metadata_batch, metadata_of, tombstone_batch, TxnLog};
use super::records::partition_for;
use super::state::{EndPlan, InitPlan, TopicPartition, TxnConfig, TxnManager, TxnMetadata};
use crate::internal_topic::OwnedPartitions;

impl TxnConfig {
    pub fn from_broker(config: &BrokerConfig) -> TxnConfig {
        TxnConfig {
            max_timeout_ms: config.transaction_max_timeout_ms(),
            id_expiration_ms: i64::from(config.transactional_id_expiration_ms()),
        }
    }
}

/// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
pub fn abort_check_interval_ms(config: &BrokerConfig) -> i64 {
    config
        .value_and_source("transaction.abort.timed.out.transaction.cleanup.interval.ms")
        .0
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// The coordinator of every transactional id (single node: every `__transaction_state`
/// partition is led here). Lock order: `inner`, then the group coordinator's lock (markers
/// on `__consumer_offsets` complete staged offsets).
pub struct TxnCoordinator {
    inner: Mutex<TxnManager>,
    clock: Arc<dyn Clock>,
    /// Serializes the creation of `__transaction_state`.
    pub(crate) topic_creation: Mutex<()>,
    /// The `__transaction_state` partitions whose transactional ids are served here, with
    /// their coordinator epochs (single node: all, epoch 0).
    pub(crate) owned: OwnedPartitions,
    /// Wakes the timer task (a partition was loaded: its pending completions are due).
    wake: tokio::sync::Notify,
    /// Partitions other brokers' coordinators added for producers writing here (v2).
    remote_adds: super::implicit::RemoteAdds,
}

impl TxnCoordinator {
    pub fn new(config: TxnConfig, clock: Arc<dyn Clock>) -> TxnCoordinator {
        TxnCoordinator {
            inner: Mutex::new(TxnManager::new(config)),
            clock,
            topic_creation: Mutex::new(()),
            owned: OwnedPartitions::default(),
            wake: tokio::sync::Notify::new(),
            remote_adds: Default::default(),
        }
    }

    /// The coordinator epoch of `transactional_id` if it is coordinated here; else
    /// NOT_COORDINATOR, or COORDINATOR_LOAD_IN_PROGRESS while its partition is loaded.
    pub fn check_coordinator(
        &self,
        log: &dyn TxnLog,
        transactional_id: &str,
    ) -> Result<i32, ErrorCode> {
        let partitions = log.txn_partitions()?;
        self.owned
            .status(partition_for(transactional_id, partitions))
    }

    /// Takes over one `__transaction_state` partition (this broker became its leader at
    /// `epoch`): replays it, serves its transactional ids, and finishes the transactions its
    /// previous coordinator left between Prepare* and Complete*.
    pub fn load_partition(&self, log: &dyn TxnLog, partition: i32, epoch: i32) {
        let mut latest: BTreeMap<String, Option<TxnMetadata>> = BTreeMap::new();
        let read = log.read_txn_partition_batches(partition, &mut |batches| {
            metadata_of(&batches, |id, md| {
                latest.insert(id, md);
            })
        });
        if let Err(e) = read {
            tracing::error!(partition, error = %e, "cannot load a partition of __transaction_state");
            return;
        }
        let mut inner = self.inner.lock();
        let mut count = 0;
        for md in latest.into_values().flatten() {
            inner.apply(md);
            count += 1;
        }
        drop(inner);
        self.owned.finish_load(partition, epoch);
        tracing::info!(
            partition,
            epoch,
            transactional_ids = count,
            "loaded __transaction_state partition"
        );
        // The timer task finishes the transactions left between Prepare* and Complete*
        // (markers may need the network; this runs where leadership changes).
        self.wake.notify_one();
    }

    /// Gives up one `__transaction_state` partition (of `partitions`): its transactional ids
    /// are forgotten here; the new coordinator loads them.
    pub fn unload_partition(&self, partition: i32, partitions: i32) {
        if partitions <= 0 {
            return;
        }
        let mut inner = self.inner.lock();
        let gone: Vec<String> = inner
            .all()
            .filter(|m| partition_for(&m.transactional_id, partitions) == partition)
            .map(|m| m.transactional_id.clone())
            .collect();
        for id in &gone {
            inner.remove(id);
        }
        if !gone.is_empty() {
            tracing::info!(
                partition,
                transactional_ids = gone.len(),
                "unloaded __transaction_state partition"
            );
        }
    }

    pub(crate) fn remote_adds(&self) -> &super::implicit::RemoteAdds {
        &self.remote_adds
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Rebuilds the metadata by replaying `__transaction_state` (start-up), then finishes
    /// the transactions that were between Prepare* and Complete* when the broker stopped.
    /// Returns how many transactional ids are known.
    pub fn load(&self, log: &dyn TxnLog) -> Result<usize, String> {
        // Later records win; a tombstone (expired id) leaves nothing.
        let mut latest: BTreeMap<String, Option<TxnMetadata>> = BTreeMap::new();
        log.read_txn_batches(&mut |_, batches| {
            metadata_of(&batches, |id, md| {
                latest.insert(id, md);
            })
        })?;
        let mut inner = self.inner.lock();
        let mut count = 0;
        for md in latest.into_values().flatten() {
            inner.apply(md);
            count += 1;
        }
        if count > 0 {
            tracing::info!(
                transactional_ids = count,
                "loaded {}",
                super::TXN_STATE_TOPIC
            );
        }
        self.complete_pending(&mut inner, log);
        Ok(count)
    }

    fn write(
        &self,
        inner: &mut TxnManager,
        log: &dyn TxnLog,
        md: TxnMetadata,
    ) -> Result<(), ErrorCode> {
        let partitions = log.txn_partitions()?;
        let partition = partition_for(&md.transactional_id, partitions);
        log.append_txn_batch(partition, metadata_batch(&md, self.now_ms()))?;
        inner.apply(md);
        Ok(())
    }

    /// Writes the markers of a Prepare* transaction and moves it to Complete*. On a failed
    /// marker write it stays Prepare* (the timer retries; requests get CONCURRENT_TRANSACTIONS).
    fn complete(&self, inner: &mut TxnManager, log: &dyn TxnLog, transactional_id: &str) {
        let Some(completion) = inner.get(transactional_id).and_then(TxnManager::completion) else {
            return;
        };
        // Only the coordinator of the id writes its markers, with its coordinator epoch.
        let Ok(coordinator_epoch) = self.check_coordinator(log, transactional_id) else {
            return;
        };
        if let Err(e) = log.write_markers(&completion, coordinator_epoch) {
            tracing::warn!(transactional_id, error = ?e, "could not write transaction markers; will retry");
            return;
        }
        if let Some(md) = inner.plan_complete(transactional_id, self.now_ms()) {
            if let Err(e) = self.write(inner, log, md) {
                tracing::warn!(transactional_id, error = ?e, "could not write the completed transaction");
            }
        }
    }

    fn complete_pending(&self, inner: &mut TxnManager, log: &dyn TxnLog) {
        let pending: Vec<String> = inner
            .all()
            .filter(|m| TxnManager::completion(m).is_some())
            .map(|m| m.transactional_id.clone())
            .collect();
        for id in pending {
            self.complete(inner, log, &id);
        }
    }

    /// InitProducerId with a transactional id: (producer id, epoch).
    pub fn init_producer_id(
        &self,
        log: &dyn TxnLog,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        allocate: &mut dyn FnMut() -> Result<i64, ErrorCode>,
    ) -> Result<(i64, i16), ErrorCode> {
        self.check_coordinator(log, transactional_id)?;
        let mut inner = self.inner.lock();
        // At most twice: an open transaction of the previous epoch is aborted first.
        for _ in 0..2 {
            let now = self.now_ms();
            match inner.plan_init(transactional_id, timeout_ms, expected, now, allocate)? {
                InitPlan::Ready(md) => {
                    let answer = (md.producer_id, md.producer_epoch);
                    self.write(&mut inner, log, md)?;
                    return Ok(answer);
                }
                InitPlan::AbortFirst(md) => {
                    self.write(&mut inner, log, md)?;
                    self.complete(&mut inner, log, transactional_id);
                }
            }
        }
        Err(ErrorCode::ConcurrentTransactions)
    }

    /// AddPartitionsToTxn and AddOffsetsToTxn (the group's `__consumer_offsets` partition).
    pub fn add_partitions(
        &self,
        log: &dyn TxnLog,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> Result<(), ErrorCode> {
        self.check_coordinator(log, transactional_id)?;
        let mut inner = self.inner.lock();
        let now = self.now_ms();
        match inner.plan_add_partitions(
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
            now,
        )? {
            Some(md) => self.write(&mut inner, log, md),
            None => Ok(()),
        }
    }

    /// EndTxn: the decision is durable once Prepare* is written; markers follow at once.
    pub fn end_txn(
        &self,
        log: &dyn TxnLog,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), ErrorCode> {
        self.check_coordinator(log, transactional_id)?;
        let mut inner = self.inner.lock();
        let now = self.now_ms();
        if let Some(md) =
            inner.plan_end(transactional_id, producer_id, producer_epoch, commit, now)?
        {
            self.write(&mut inner, log, md)?;
            self.complete(&mut inner, log, transactional_id);
        }
        Ok(())
    }

    /// EndTxn v5+ (transaction protocol v2): like `end_txn` with the epoch bumped; returns
    /// the producer id and epoch the client continues with.
    pub fn end_txn_v2(
        &self,
        log: &dyn TxnLog,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        allocate: &mut dyn FnMut() -> Result<i64, ErrorCode>,
    ) -> Result<(i64, i16), ErrorCode> {
        self.check_coordinator(log, transactional_id)?;
        let mut inner = self.inner.lock();
        let now = self.now_ms();
        match inner.plan_end_v2(
            transactional_id,
            producer_id,
            producer_epoch,
            commit,
            now,
            allocate,
        )? {
            EndPlan::Done(answer) => Ok(answer),
            EndPlan::Write(md, answer) => {
                let rotated = answer.0 != md.producer_id;
                self.write(&mut inner, log, md)?;
                if rotated {
                    inner.set_next_producer_id(transactional_id, answer.0);
                }
                self.complete(&mut inner, log, transactional_id);
                Ok(answer)
            }
        }
    }

    /// Whether a transactional produce to `partition` may be appended (KIP-890 part 1 style
    /// verification, done locally on a single node).
    pub fn verify_partition(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        partition: &TopicPartition,
    ) -> Result<(), ErrorCode> {
        let inner = self.inner.lock();
        // In a cluster the producer's coordinator may be another broker: only a producer
        // this coordinator knows can be verified here (KIP-890 would ask the coordinator).
        if !self.owned.serves_all() && !inner.knows_producer(producer_id) {
            return Ok(());
        }
        inner.verify_partition(producer_id, producer_epoch, partition)
    }

    /// Whether `transactional_id` is (`producer_id`, `producer_epoch`) with `partition` in
    /// its ongoing transaction (TxnOffsetCommit).
    pub fn verify_offsets(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partition: &TopicPartition,
    ) -> Result<(), ErrorCode> {
        let inner = self.inner.lock();
        let md = inner
            .get(transactional_id)
            .filter(|m| m.producer_id == producer_id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if md.producer_epoch != producer_epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        inner.verify_partition(producer_id, producer_epoch, partition)
    }

    pub fn describe(&self, transactional_id: &str) -> Option<TxnMetadata> {
        self.inner.lock().get(transactional_id).cloned()
    }

    pub fn list(&self) -> Vec<TxnMetadata> {
        let mut all: Vec<TxnMetadata> = self.inner.lock().all().cloned().collect();
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        all
    }

    /// Aborts transactions past their timeout, retries unfinished completions and forgets
    /// expired transactional ids.
    pub fn tick(&self, log: &dyn TxnLog) {
        let mut inner = self.inner.lock();
        self.complete_pending(&mut inner, log);
        for id in inner.expired_ids(self.now_ms()) {
            let written = log.txn_partitions().and_then(|n| {
                log.append_txn_batch(partition_for(&id, n), tombstone_batch(&id, self.now_ms()))
            });
            match written {
                Ok(()) => inner.remove(&id),
                Err(e) => tracing::warn!(transactional_id = %id, error = ?e, "could not expire"),
            }
        }
        for md in inner.plan_timeouts(self.now_ms()) {
            let id = md.transactional_id.clone();
            tracing::info!(transactional_id = %id, "aborting a timed-out transaction");
            match self.write(&mut inner, log, md) {
                Ok(()) => self.complete(&mut inner, log, &id),
                Err(e) => tracing::warn!(transactional_id = %id, error = ?e, "could not abort"),
            }
        }
    }

    /// The timer task: every `interval_ms` until `stop` flips.
    pub async fn run_timers(
        &self,
        log: &dyn TxnLog,
        interval_ms: i64,
        mut stop: watch::Receiver<bool>,
    ) {
        let interval = Duration::from_millis(interval_ms.max(1) as u64);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
            tokio::task::block_in_place(|| self.tick(log));
        }
    }
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
