//! Log compaction (`cleanup.policy=compact`): [`PartitionLog::clean`] maps the dirty section
//! (key → latest offset), rewrites the closed segments below it keeping the latest record per
//! key and tombstones until their delete horizon, and swaps the copies in under the lock.
//! Below the first unstable offset, aborted transactional data is dropped and committed data
//! is compacted like any other; markers are kept. No thread of its own: the broker calls it.

mod offset_map;
mod rewrite;
mod swap;

use std::path::Path;
use std::sync::Arc;

use strom_protocol::compression::{decompress_batch_bounded, CompressionError};
use strom_protocol::record_batch::{Compression, InvalidRecordReason, RecordBatchHeader};
use tracing::{debug, info};

use crate::batch_reader::header_at;
use crate::config::LogConfig;
use crate::error::LogError;
use crate::handles::Files;
use crate::index::Index;
use crate::log::PartitionLog;
use crate::recovery::{read_offset_file, write_offset_file};
use crate::segment::{
    file_path, open_log_file, sync_dir, Segment, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT,
};
use offset_map::{AbortedSet, OffsetMap};
use rewrite::FilterContext;
use swap::CleanedSegment;

pub(crate) use swap::recover_swaps;
pub use swap::SwapStep;

/// First dirty offset of the partition, persisted after every clean (Kafka keeps one
/// `cleaner-offset-checkpoint` per log directory; Strom one per partition directory).
const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// Settings of the cleaner itself (broker configs, not topic configs).
#[derive(Debug, Clone)]
pub struct CleanerOptions {
    /// `log.cleaner.dedupe.buffer.size`: memory target of the key map of one clean.
    pub dedupe_buffer_bytes: usize,
    /// Crash tests: stop the swap after this step as if the process died there. The log is
    /// closed afterwards (memory no longer matches the files); reopen the directory.
    pub stop_swap_after: Option<SwapStep>,
}

impl Default for CleanerOptions {
    fn default() -> Self {
        Self {
            dedupe_buffer_bytes: 128 << 20,
            stop_swap_after: None,
        }
    }
}

/// What one clean did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanStats {
    pub segments_before: usize,
    pub segments_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
    pub keys_mapped: usize,
    /// Segments holding offsets at or above this are still dirty.
    pub first_dirty_offset: i64,
}

/// Per-partition cleaner bookkeeping (behind its own mutex, which also keeps two cleans of
/// one log from running at once).
#[derive(Debug, Default)]
pub(crate) struct CleanerState {
    /// Segments holding offsets >= this are dirty. `None` until read from the checkpoint.
    first_dirty: Option<i64>,
    /// Earliest delete horizon among the tombstones the last clean kept (unknown after open).
    delete_horizon: Option<i64>,
}

/// The closed segments a clean may touch, decided under the lock.
struct Plan {
    /// Consecutive closed segments from the log start up to the first uncleanable offset.
    candidates: Vec<Arc<Segment>>,
    /// Index in `candidates` of the first dirty segment.
    dirty_from: usize,
    /// Base offset of the first segment that must not be cleaned (active, or too young).
    first_uncleanable: i64,
    /// Batches whose last offset is at or above this are kept whole (the log's last batch).
    keep_whole_from: i64,
    /// The aborted transactions of the log (`.txnindex`).
    aborted: AbortedSet,
    config: LogConfig,
}

impl PartitionLog {
    /// Compacts the log if its policy includes `compact` and it is due (dirty ratio,
    /// `max.compaction.lag.ms`, or a tombstone delete horizon that has passed). Appends and
    /// reads go on meanwhile; the lock is taken to plan and to swap each cleaned group.
    pub fn clean(&self, options: &CleanerOptions) -> Result<Option<CleanStats>, LogError> {
        let mut state = self.cleaner.lock();
        // Sync what rolled, so that every closed segment is below the recovery point.
        self.flush_rolled()?;
        let now = self.clock.now_ms();
        let first_dirty = *state.first_dirty.get_or_insert_with(|| {
            read_offset_file(&*self.fs, &self.dir, CHECKPOINT_FILE).unwrap_or(i64::MIN)
        });
        let Some(plan) = self.plan(first_dirty, state.delete_horizon, now)? else {
            return Ok(None);
        };
        let dirty = &plan.candidates[plan.dirty_from..];
        let max_plain = plan.config.max_decompressed_bytes();
        let (map, covered) =
            OffsetMap::build(dirty, &plan.aborted, options.dedupe_buffer_bytes, max_plain);
        let upper = plan
            .candidates
            .get(plan.dirty_from + covered)
            .map_or(plan.first_uncleanable, |s| s.base_offset);
        let to_clean: Vec<Arc<Segment>> = plan
            .candidates
            .iter()
            .take_while(|s| s.base_offset < upper)
            .cloned()
            .collect();
        let cx = FilterContext {
            map: &map,
            aborted: &plan.aborted,
            now_ms: now,
            delete_retention_ms: plan.config.delete_retention_ms,
            keep_whole_from: plan.keep_whole_from,
            max_decompressed_bytes: max_plain,
        };
        let mut stats = CleanStats {
            segments_before: to_clean.len(),
            keys_mapped: map.len(),
            ..CleanStats::default()
        };
        let mut horizon: Option<i64> = None;
        for (group, end) in groups(&to_clean, upper, plan.config.effective_segment_bytes()) {
            let c = swap::write_cleaned(
                &*self.fs,
                &self.dir,
                group,
                end,
                &cx,
                plan.config.index_interval_bytes,
            )?;
            horizon = min_opt(horizon, c.horizon);
            stats.bytes_before += c.stats.bytes_before;
            let swapped = if c.changed || group.len() > 1 {
                self.swap_in(group, &c, options.stop_swap_after)?
            } else {
                None
            };
            match swapped {
                Some(segments) => {
                    stats.records_removed += c.stats.records_removed;
                    stats.bytes_after += c.size;
                    stats.segments_after += segments;
                    if self.inner.lock().closed {
                        return Ok(Some(stats)); // stopped by `stop_swap_after`
                    }
                }
                None => {
                    swap::discard(&*self.fs, &self.dir, &c)?;
                    stats.bytes_after += c.stats.bytes_before;
                    stats.segments_after += group.len();
                }
            }
        }
        if covered > 0 {
            state.first_dirty = Some(upper);
            write_offset_file(&*self.fs, &self.dir, CHECKPOINT_FILE, upper)?;
        }
        state.delete_horizon = horizon;
        stats.first_dirty_offset = state.first_dirty.unwrap_or(upper);
        info!(dir = %self.dir.display(), ?stats, "cleaned log");
        Ok(Some(stats))
    }

    /// Decides whether a clean is due and which segments it may touch.
    fn plan(
        &self,
        first_dirty: i64,
        delete_horizon: Option<i64>,
        now: i64,
    ) -> Result<Option<Plan>, LogError> {
        let (config, clean_end, closed, keep_whole_from, txn) = {
            let inner = self.inner.lock();
            inner.check_open()?;
            if !inner.config.cleanup_policy.compact {
                return Ok(None);
            }
            // Closed segments below the recovery point (fsynced) only: recovery can then tell
            // a gap the cleaner left from a tail a crash cut. Unless something rolled since
            // `clean` ran `flush_rolled`, that is every closed segment.
            let clean_end = inner.active().base_offset.min(inner.recovery_point);
            let closed: Vec<Arc<Segment>> = inner
                .segments
                .range(..clean_end)
                .map(|(_, s)| Arc::clone(s))
                .collect();
            // The batch holding the last offset is kept whole: a gap at the end of the log
            // would leave fetches below the log end with nothing to return. Segments roll on a
            // timer here (not only on append, as in Kafka), so the active one may be empty.
            let keep_whole_from = if inner.active().is_empty() {
                inner.log_end_offset() - 1
            } else {
                i64::MAX
            };
            // Open transactions are not decided yet: cleaning stops before the first one
            // (Kafka: the first unstable offset bounds the cleanable section).
            let first_unstable = inner.producers.first_unstable_offset();
            let aborted = AbortedSet::new(inner.txn_index.collect(i64::MIN, i64::MAX));
            let txn = (first_unstable, aborted);
            (
                inner.config.clone(),
                clean_end,
                closed,
                keep_whole_from,
                txn,
            )
        };
        let (first_unstable, aborted) = txn;
        let dirty_from = closed
            .iter()
            .position(|s| s.meta().next_offset > first_dirty)
            .unwrap_or(closed.len());
        // min.compaction.lag.ms: the first dirty segment holding a record that young, and
        // everything after it, waits.
        let young_after = now.saturating_sub(config.min_compaction_lag_ms);
        let first_uncleanable = closed[dirty_from..]
            .iter()
            .find(|s| config.min_compaction_lag_ms > 0 && s.meta().max_timestamp > young_after)
            .map_or(clean_end, |s| s.base_offset);
        let first_uncleanable = match first_unstable {
            Some(fuo) => closed
                .iter()
                .find(|s| s.meta().next_offset > fuo)
                .map_or(first_uncleanable, |s| s.base_offset.min(first_uncleanable)),
            None => first_uncleanable,
        };
        let candidates: Vec<Arc<Segment>> = closed
            .into_iter()
            .take_while(|s| s.base_offset < first_uncleanable)
            .collect();
        if candidates.is_empty() {
            return Ok(None);
        }
        let dirty_from = dirty_from.min(candidates.len());
        let bytes = |s: &[Arc<Segment>]| s.iter().map(|s| s.size()).sum::<u64>();
        let (clean_bytes, dirty_bytes) = (
            bytes(&candidates[..dirty_from]),
            bytes(&candidates[dirty_from..]),
        );
        let ratio = dirty_bytes as f64 / (clean_bytes + dirty_bytes).max(1) as f64;
        let max_lag_due = config.max_compaction_lag_ms < i64::MAX
            && candidates.get(dirty_from).is_some_and(|s| {
                first_batch_timestamp(s)
                    .is_some_and(|ts| now.saturating_sub(ts) > config.max_compaction_lag_ms)
            });
        let horizon_due = delete_horizon.is_some_and(|h| h <= now);
        let due = (dirty_bytes > 0 && (ratio >= config.min_cleanable_dirty_ratio || max_lag_due))
            || horizon_due;
        debug!(dir = %self.dir.display(), ratio, dirty_bytes, max_lag_due, horizon_due, due, "cleaner plan");
        Ok(due.then_some(Plan {
            candidates,
            dirty_from,
            first_uncleanable,
            keep_whole_from,
            aborted,
            config,
        }))
    }

    /// Replaces `group` by the cleaned copy `c`, unless the group changed meanwhile
    /// (retention, truncation, close). Returns how many segments now stand in for the group
    /// (0 or 1), or `None` if nothing was swapped.
    fn swap_in(
        &self,
        group: &[Arc<Segment>],
        c: &CleanedSegment,
        stop_after: Option<SwapStep>,
    ) -> Result<Option<usize>, LogError> {
        let mut inner = self.inner.lock();
        let current: Vec<&Arc<Segment>> = inner
            .segments
            .range(c.base..c.end)
            .map(|(_, s)| s)
            .collect();
        let unchanged = !inner.closed
            && current.len() == group.len()
            && current.iter().zip(group).all(|(a, b)| Arc::ptr_eq(a, b))
            && c.end <= inner.active().base_offset;
        if !unchanged {
            return Ok(None);
        }
        // Aborted transactions whose markers are in the group (their index moves to `c.base`).
        let moved: Vec<_> = inner
            .txn_index
            .collect(c.base, i64::MAX)
            .into_iter()
            .filter(|t| t.last_offset < c.end)
            .collect();
        if c.size == 0 && moved.is_empty() && inner.segments.range(..c.base).next().is_some() {
            // Nothing left and not the first segment (which anchors the log start): the
            // group just goes. Each file removed holds only obsolete records, so a crash
            // half-way leaves a valid log.
            for s in group {
                inner.segments.remove(&s.base_offset);
                s.delete_files(&*self.fs)?;
            }
            sync_dir(&*self.fs, &self.dir)?;
            inner.forget_deleted_unflushed();
            swap::discard(&*self.fs, &self.dir, c)?;
            return Ok(Some(0));
        }
        // The swap gives the first segment's names to the cleaned one: from here the old
        // segment must never reopen them by name (it would read the new file's bytes at the
        // old positions); it keeps its open files for the readers that still hold it.
        group[0].retire_keeping_open()?;
        let result = swap::commit(
            &*self.fs,
            &self.dir,
            c,
            group,
            stop_after.unwrap_or(SwapStep::Done),
        )
        .and_then(|()| match stop_after {
            Some(_) => Ok(None),
            None => open_cleaned(&self.files, &self.dir, c, group).map(Some),
        });
        match result {
            Ok(Some(segment)) => {
                for s in group {
                    inner.segments.remove(&s.base_offset);
                }
                inner.segments.insert(c.base, Arc::new(segment));
                inner.forget_deleted_unflushed();
                let bases: Vec<i64> = inner.segments.keys().copied().collect();
                let end = inner.log_end_offset();
                inner
                    .txn_index
                    .reconcile(&*self.fs, &self.dir, &bases, end, &moved)?;
                Ok(Some(1))
            }
            Ok(None) => {
                inner.closed = true;
                Ok(Some(1))
            }
            Err(e) => {
                // The files are between two states only recovery sorts out: stop serving.
                Err(inner.go_offline(&self.dir, "cleaner swap", &e))
            }
        }
    }
}

/// The swapped-in segment, opened under its final names.
fn open_cleaned(
    files: &Files,
    dir: &Path,
    c: &CleanedSegment,
    group: &[Arc<Segment>],
) -> Result<Segment, LogError> {
    let log_path = file_path(dir, c.base, LOG_EXT);
    let log = open_log_file(files, &log_path, false)?;
    let mut meta = c.meta;
    meta.first_append_ms = group[0].meta().first_append_ms;
    Ok(Segment::from_parts(
        c.base,
        log_path,
        log,
        c.size,
        Index::open(
            files,
            &file_path(dir, c.base, INDEX_EXT),
            c.offsets.clone(),
            false,
        )?,
        Index::open(
            files,
            &file_path(dir, c.base, TIME_INDEX_EXT),
            c.times.clone(),
            false,
        )?,
        meta,
    ))
}

/// Splits consecutive segments into groups whose combined size fits one segment and whose
/// offsets fit the index's 32-bit relative offsets; yields each with its exclusive end.
fn groups(segments: &[Arc<Segment>], upper: i64, max_bytes: u64) -> Vec<(&[Arc<Segment>], i64)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, s) in segments.iter().enumerate() {
        let span = s.meta().next_offset - 1 - segments[start].base_offset;
        if i > start && (bytes + s.size() > max_bytes || span > i64::from(i32::MAX)) {
            out.push((&segments[start..i], s.base_offset));
            start = i;
            bytes = 0;
        }
        bytes += s.size();
    }
    if start < segments.len() {
        out.push((&segments[start..], upper));
    }
    out
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn first_batch_timestamp(s: &Segment) -> Option<i64> {
    let h = header_at(&s.log, 0, s.size())?;
    let ts = RecordBatchHeader::parse(&h).ok()?.max_timestamp();
    (ts >= 0).then_some(ts)
}

/// Append-time rule of compacted topics: every record needs a key (Kafka refuses the batch
/// with INVALID_RECORD, naming every keyless record). Compressed batches are decompressed for the check, refusing any that
/// inflate past `max_plain` bytes (a decompression bomb) before allocating that much.
pub(crate) fn check_keys(header: &RecordBatchHeader<'_>, max_plain: usize) -> Result<(), LogError> {
    if header.is_control() {
        return Ok(());
    }
    let plain = match header.compression() {
        Ok(Compression::None) => std::borrow::Cow::Borrowed(header.bytes()),
        _ => std::borrow::Cow::Owned(decompress_batch_bounded(header.bytes(), max_plain).map_err(
            |e| match e {
                CompressionError::TooLarge { max, .. } => LogError::InvalidRecord {
                    reason: InvalidRecordReason::DecompressedTooLarge { max },
                },
                CompressionError::Malformed { .. } => LogError::InvalidRecord {
                    reason: InvalidRecordReason::MalformedRecords { record_index: 0 },
                },
            },
        )?),
    };
    let plain_header = RecordBatchHeader::parse(&plain)?;
    let mut record_indexes = Vec::new();
    for (i, record) in plain_header.records().enumerate() {
        if record?.key.is_none() {
            record_indexes.push(i as u32);
        }
    }
    if record_indexes.is_empty() {
        Ok(())
    } else {
        Err(LogError::MissingKeysInCompactedTopic { record_indexes })
    }
}
