//! What replication needs of a partition log: leader epochs (stamped by the leader, tracked
//! in the epoch cache, answered for OffsetForLeaderEpoch and divergence checks), appends of
//! batches a follower fetched from its leader (offsets kept as the leader assigned them), and
//! resetting a follower that fell behind the leader's log start.

use bytes::BytesMut;
use strom_protocol::record_batch::{
    validate_batch, BatchSplitter, InvalidRecordReason, RecordBatchHeader, Validation, NO_TIMESTAMP,
};

use crate::error::LogError;
use crate::log::{AppendInfo, PartitionLog};
use crate::producer_state::{self, ProducerBatch};

impl PartitionLog {
    /// This replica leads the partition in `epoch` from now on: the epoch starts at the log end
    /// offset, and every batch `append` writes carries it. The checkpoint file is written with
    /// the epoch's first batch, not here: a restart makes every hosted partition a leader in a
    /// new epoch (twice), and an fsynced file per partition made start-up with many idle
    /// partitions take minutes.
    pub fn become_leader(&self, epoch: i32) -> Result<(), LogError> {
        let mut inner = self.inner.lock();
        inner.check_open()?;
        inner.leader_epoch = Some(epoch);
        let end = inner.log_end_offset();
        if inner.epochs.assign(epoch, end) {
            inner.epochs_unpersisted = true;
        }
        Ok(())
    }

    /// This replica follows: batches arrive stamped by the leader.
    pub fn become_follower(&self) {
        self.inner.lock().leader_epoch = None;
    }

    /// The epoch of the last batch written (-1 if no epoch is known).
    pub fn latest_epoch(&self) -> i32 {
        self.inner.lock().epochs.latest_epoch()
    }

    /// Kafka's end offset for `epoch`: (the largest known epoch <= `epoch`, where it ends).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let inner = self.inner.lock();
        inner.epochs.end_offset_for(epoch, inner.log_end_offset())
    }

    /// The epoch cache as (epoch, start offset) pairs.
    pub fn epoch_entries(&self) -> Vec<(i32, i64)> {
        self.inner.lock().epochs.entries().to_vec()
    }

    /// Appends batches fetched from the leader, as they are: offsets, timestamps and epochs
    /// were set by the leader. Batches must start at or after the log end offset and be in
    /// offset order (compacted batches may leave gaps). Producer state and the transaction
    /// index follow the batches as on the leader.
    pub fn append_as_follower(&self, mut records: BytesMut) -> Result<AppendInfo, LogError> {
        let mut inner = self.inner.lock();
        inner.check_open()?;
        let now = self.clock.now_ms();
        let mut next = inner.log_end_offset();
        let mut headers = Vec::new();
        let mut record_count: u32 = 0;
        let mut max_timestamp = NO_TIMESTAMP;
        let mut pos = 0;
        for batch in BatchSplitter::new(&records, usize::MAX) {
            let header = validate_batch(batch?, Validation::Stored)?;
            if header.base_offset() < next {
                return Err(LogError::OffsetsOutOfOrder {
                    base_offset: header.base_offset(),
                    expected_at_least: next,
                });
            }
            next = header.last_offset() + 1;
            record_count += header.records_count().max(0) as u32;
            max_timestamp = max_timestamp.max(header.max_timestamp());
            headers.push((pos, header.total_size()));
            pos += header.total_size();
        }
        if headers.is_empty() {
            return Err(LogError::InvalidRecord {
                reason: InvalidRecordReason::NoBatches,
            });
        }
        let records = records.split_to(pos);
        let first = RecordBatchHeader::parse(&records[..])?;
        let base_offset = first.base_offset();
        if inner.should_roll(0, records.len() as u64, next - 1, now) {
            inner.roll(&self.files, &self.dir)?;
        }
        let parsed = headers
            .iter()
            .map(|&(p, len)| Ok((p, RecordBatchHeader::parse(&records[p..p + len])?)))
            .collect::<Result<Vec<_>, LogError>>()?;
        inner.write_batches(&self.dir, &[&records[..]], &parsed, now)?;
        let mut completed = Vec::new();
        let mut epochs_changed = false;
        for (_, header) in &parsed {
            if let Some(b) = ProducerBatch::of(header) {
                let mut entry = inner.producers.producers.remove(&b.producer_id);
                completed.extend(producer_state::apply(
                    &mut entry,
                    &b,
                    header.base_offset(),
                    header.last_offset(),
                ));
                if let Some(e) = entry {
                    inner.producers.producers.insert(b.producer_id, e);
                }
            }
            epochs_changed |= inner
                .epochs
                .assign(header.partition_leader_epoch(), header.base_offset());
        }
        if epochs_changed {
            if let Err(e) = inner.epochs.persist(&*self.fs, &self.dir) {
                return Err(inner.go_offline(&self.dir, "write leader-epoch checkpoint", &e));
            }
        }
        if let Err(e) =
            crate::txn_index::record_completed(&mut inner, &*self.fs, &self.dir, &completed)
        {
            return Err(inner.go_offline(&self.dir, "write transaction index", &e));
        }
        inner.unflushed_messages += u64::from(record_count);
        let flush = inner.unflushed_messages >= inner.config.flush_messages;
        let info = AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time: -1,
            max_timestamp,
            record_count,
            duplicate: false,
            log_start_offset: inner.log_start_offset,
        };
        drop(inner);
        if flush {
            self.flush_to(info.last_offset + 1)?;
        }
        Ok(info)
    }

    /// Empties the log and starts it at `offset` (a follower whose log end is below the
    /// leader's log start offset: what it lacks no longer exists anywhere).
    pub fn reset_to(&self, offset: i64) -> Result<(), LogError> {
        let _flushing = self.flush_lock.lock();
        let mut inner = self.inner.lock();
        inner.check_open()?;
        self.reset_locked(&mut inner, offset)
            .map_err(|e| inner.go_offline(&self.dir, "reset", &e))
    }
}
