//! Removing data: retention by time, size and log start offset (whole segments, oldest first,
//! never the active one without rolling it first), DeleteRecords, and truncation for replication.
//! Also the periodic duties the broker drives: roll by segment.ms, flush by flush.ms.

use std::path::Path;
use std::sync::Arc;

use tracing::info;

use crate::error::LogError;
use crate::fs::{Fs, FsFile};
use crate::log::{Inner, PartitionLog};
use crate::producer_state::{ProducerState, SNAPSHOT_EXT};
use crate::recovery::{
    list_snapshots, load_producer_state, scan_segment, write_offset_file, write_recovery_point,
    LOG_START_FILE,
};
use crate::segment::{file_path, remove_if_exists, sync_dir, Segment, LOG_EXT};

impl PartitionLog {
    /// DeleteRecords: moves the log start offset to `offset` (-1 = log end offset) and deletes
    /// segments entirely below it. Returns the new log start offset.
    pub fn delete_records(&self, offset: i64) -> Result<i64, LogError> {
        let mut inner = self.inner.lock();
        inner.check_open()?;
        let end = inner.log_end_offset();
        let offset = if offset == -1 { end } else { offset };
        if offset < 0 || offset > end {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: inner.log_start_offset,
                log_end: end,
            });
        }
        if offset > inner.log_start_offset {
            inner.log_start_offset = offset;
            write_log_start(&*self.fs, &self.dir, offset)?;
            let n = inner
                .segments
                .keys()
                .skip(1)
                .take_while(|&&next_base| next_base <= offset)
                .count();
            delete_oldest(&mut inner, &*self.fs, &self.dir, n)?;
        }
        Ok(inner.log_start_offset)
    }

    /// `producer.id.expiration.ms`: forgets idempotent producers with no open transaction
    /// whose last batch is that old (also done by `enforce_retention`). Returns how many.
    pub fn expire_producers(&self) -> Result<usize, LogError> {
        let mut inner = self.inner.lock();
        inner.check_open()?;
        let expiration_ms = inner.config.producer_id_expiration_ms;
        Ok(inner
            .producers
            .expire_idle(self.clock.now_ms(), expiration_ms))
    }

    /// Periodic duty: roll by segment.ms, delete segments by retention.ms / retention.bytes /
    /// log start offset, expire idle producers (`producer.id.expiration.ms`), flush by
    /// flush.ms. Returns the number of segments deleted.
    pub fn enforce_retention(&self) -> Result<u64, LogError> {
        let mut inner = self.inner.lock();
        inner.check_open()?;
        let now = self.clock.now_ms();
        let segment_ms = inner.config.segment_ms;
        if inner
            .active()
            .meta()
            .first_append_ms
            .is_some_and(|t| now.saturating_sub(t) >= segment_ms)
        {
            inner.roll(&self.files, &self.dir)?;
        }
        let mut n = deletable_prefix(&inner, now);
        if n == inner.segments.len() {
            // Everything is expired, the active segment included: roll it so it can go too.
            inner.roll(&self.files, &self.dir)?;
            n = inner.segments.len() - 1;
        }
        let n = n.min(inner.segments.len() - 1);
        delete_oldest(&mut inner, &*self.fs, &self.dir, n)?;
        let expiration_ms = inner.config.producer_id_expiration_ms;
        inner.producers.expire_idle(now, expiration_ms);
        let flush_due = now.saturating_sub(inner.last_flush_ms) >= inner.config.flush_ms
            && inner.flushed_offset < inner.log_end_offset();
        drop(inner);
        if flush_due {
            self.flush()?;
        }
        Ok(n as u64)
    }

    /// Removes every batch at or after `offset` (the whole batch containing it), as a follower
    /// does after a leader change. Producer state is rebuilt for the new log end.
    /// A failure part-way leaves files only recovery can judge: the log goes offline.
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        // No flush may be between taking its work and persisting the recovery point.
        let _flushing = self.flush_lock.lock();
        let mut inner = self.inner.lock();
        inner.check_open()?;
        self.truncate_locked(&mut inner, offset)
            .map_err(|e| inner.go_offline(&self.dir, "truncate", &e))
    }

    fn truncate_locked(&self, inner: &mut Inner, offset: i64) -> Result<(), LogError> {
        let fs = &*self.fs;
        if offset >= inner.log_end_offset() {
            // Nothing to cut, but an epoch this replica started as leader without appending
            // to it (its entry starts at the log end) is not the leader's history: dropped, as
            // Kafka does, or the follower would keep fetching with that epoch and diverge
            // forever.
            let end = inner.log_end_offset();
            if inner.epochs.truncate_from_end(end) {
                inner.epochs.persist(fs, &self.dir)?;
            }
            return Ok(());
        }
        let now = self.clock.now_ms();
        let first_base = *inner.segments.keys().next().expect("never empty");
        if offset <= inner.log_start_offset || offset <= first_base {
            self.reset_locked(inner, offset.max(0))?;
            return Ok(());
        } else {
            let doomed: Vec<i64> = inner.segments.range(offset..).map(|(b, _)| *b).collect();
            for base in doomed {
                if let Some(s) = inner.segments.remove(&base) {
                    s.delete_files(fs)?;
                }
            }
            let segment = Arc::clone(inner.active());
            let interval = inner.config.index_interval_bytes;
            let scan = scan_segment(
                &segment.log,
                segment.base_offset,
                segment.size(),
                interval,
                false,
                Some(offset),
            );
            let mut meta = scan.meta;
            meta.first_append_ms = (scan.valid_len > 0).then_some(now);
            segment.truncate_with(scan.valid_len, scan.offsets, scan.times, meta)?;
            sync_dir(fs, &self.dir)?;
            let end = inner.log_end_offset();
            if end < inner.log_start_offset {
                // The batch holding the log start offset was cut: the log starts at its end now.
                inner.log_start_offset = end;
                write_log_start(fs, &self.dir, end)?;
            }
            inner.producers = load_producer_state(
                fs,
                &self.dir,
                &inner.segments,
                inner.log_start_offset,
                end,
                now,
                inner.config.producer_id_expiration_ms,
            )?;
            crate::txn_index::after_truncation(inner, fs, &self.dir)?;
        }
        inner.forget_deleted_unflushed();
        let end = inner.log_end_offset();
        if inner.epochs.truncate_from_end(end) {
            inner.epochs.persist(fs, &self.dir)?;
        }
        // Snapshots taken at rolls past the new end describe a history that is gone.
        inner.pending_snapshots.retain(|(o, _)| *o <= end);
        inner.flushed_offset = inner.flushed_offset.min(end);
        let active_base = inner.active().base_offset;
        if inner.recovery_point > active_base {
            // Segments created after this point are new: they have not been fsynced.
            inner.recovery_point = active_base;
            write_recovery_point(fs, &self.dir, active_base)?;
        }
        info!(dir = %self.dir.display(), offset, log_end = end, "truncated log");
        Ok(())
    }

    /// Drops every segment and starts an empty log at `start` (truncation below the first
    /// segment, or a follower reset to its leader's log start).
    pub(crate) fn reset_locked(&self, inner: &mut Inner, start: i64) -> Result<(), LogError> {
        let fs = &*self.fs;
        for s in std::mem::take(&mut inner.segments).into_values() {
            s.delete_files(fs)?;
        }
        for o in list_snapshots(fs, &self.dir)? {
            remove_snapshot(fs, &self.dir, o)?;
        }
        // Those not written yet describe the history just dropped too.
        inner.pending_snapshots.clear();
        inner.segments.insert(
            start,
            Arc::new(Segment::create(&self.files, &self.dir, start)?),
        );
        inner.log_start_offset = start;
        write_log_start(fs, &self.dir, start)?;
        sync_dir(fs, &self.dir)?;
        inner.producers = ProducerState::default();
        inner.txn_index = crate::txn_index::TxnIndex::default();
        if inner.epochs.clear() {
            inner.epochs.persist(fs, &self.dir)?;
        }
        inner.forget_deleted_unflushed();
        inner.flushed_offset = start;
        inner.unflushed_messages = 0;
        inner.recovery_point = start;
        write_recovery_point(fs, &self.dir, start)?;
        info!(dir = %self.dir.display(), start, "log reset: empty from {start}");
        Ok(())
    }
}

/// How many of the oldest segments retention would delete (possibly all of them).
fn deletable_prefix(inner: &Inner, now_ms: i64) -> usize {
    let c = &inner.config;
    let total: u64 = inner.segments.values().map(|s| s.size()).sum();
    let mut excess = if c.retention_bytes >= 0 {
        total as i64 - c.retention_bytes
    } else {
        i64::MIN
    };
    let segments: Vec<&Arc<Segment>> = inner.segments.values().collect();
    let mut n = 0;
    for (i, s) in segments.iter().enumerate() {
        let next_base = segments.get(i + 1).map(|n| n.base_offset);
        if next_base.is_none() && s.is_empty() {
            break;
        }
        let by_start = next_base.is_some_and(|b| b <= inner.log_start_offset);
        // cleanup.policy=compact alone keeps everything the cleaner keeps (Kafka).
        let delete = c.cleanup_policy.delete;
        let by_time = delete
            && c.retention_ms >= 0
            && largest_timestamp(s) < now_ms.saturating_sub(c.retention_ms);
        let by_size = delete && c.retention_bytes >= 0 && excess - s.size() as i64 >= 0;
        if !(by_start || by_time || by_size) {
            break;
        }
        excess = excess.saturating_sub(s.size() as i64);
        n += 1;
    }
    n
}

/// Largest timestamp in a segment, or its file's mtime if its batches carry none.
fn largest_timestamp(s: &Segment) -> i64 {
    let ts = s.meta().max_timestamp;
    if ts >= 0 {
        return ts;
    }
    s.log.modified_ms().unwrap_or(i64::MAX)
}

/// Deletes the `n` oldest segments (never the active one) and what only they needed.
fn delete_oldest(inner: &mut Inner, fs: &dyn Fs, dir: &Path, n: usize) -> Result<(), LogError> {
    let n = n.min(inner.segments.len() - 1);
    if n == 0 {
        return Ok(());
    }
    let bases: Vec<i64> = inner.segments.keys().take(n).copied().collect();
    for base in bases {
        if let Some(s) = inner.segments.remove(&base) {
            // Open FileSlices keep their file open; unlinking does not disturb them.
            s.delete_files(fs)?;
        }
    }
    sync_dir(fs, dir)?;
    inner.forget_deleted_unflushed();
    let first = *inner
        .segments
        .keys()
        .next()
        .expect("the active segment remains");
    inner.log_start_offset = inner.log_start_offset.max(first);
    for o in list_snapshots(fs, dir)? {
        if o < first {
            remove_snapshot(fs, dir, o)?;
        }
    }
    inner.pending_snapshots.retain(|(o, _)| *o >= first);
    inner.producers.remove_expired(inner.log_start_offset);
    info!(dir = %dir.display(), deleted = n, log_start_offset = inner.log_start_offset, "deleted old segments");
    debug_assert!(
        fs.exists(&file_path(dir, first, LOG_EXT)),
        "active segment file missing after retention"
    );
    Ok(())
}

fn remove_snapshot(fs: &dyn Fs, dir: &Path, offset: i64) -> Result<(), LogError> {
    remove_if_exists(fs, &file_path(dir, offset, SNAPSHOT_EXT))
}

/// Persists a log start offset that lies inside the first segment.
fn write_log_start(fs: &dyn Fs, dir: &Path, offset: i64) -> Result<(), LogError> {
    write_offset_file(fs, dir, LOG_START_FILE, offset)
}
