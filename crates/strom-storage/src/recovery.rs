//! Opening a partition directory: after a clean shutdown the files are trusted (with a tail
//! check), otherwise the active segment is scanned batch by batch (CRC32C), a torn tail is cut
//! at the last valid batch, indexes are rebuilt and producer state is replayed from a snapshot.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use strom_protocol::record_batch::{validate_batch, RecordBatchHeader, Validation};
use tracing::{info, warn};

use crate::batch_reader::{header_at, BatchReader};
use crate::error::{io_err, LogError};
use crate::fs::{Fs, FsFile};
use crate::handles::Files;
use crate::index::{offset_entries_valid, time_entries_valid, Index, OffsetEntry, TimeEntry};
use crate::producer_state::{ProducerState, SNAPSHOT_EXT};
use crate::segment::{
    file_path, open_log_file, parse_file_name, sync_dir, RecordBatchOwned, Segment, SegmentMeta,
    INDEX_EXT, LOG_EXT, TIME_INDEX_EXT,
};

/// Written by `close`, removed by `open`: its presence means the files are complete.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = "clean-shutdown";
/// Log start offset moved by `delete_records` (inside the first segment).
pub(crate) const LOG_START_FILE: &str = "log-start-offset";
/// Base offset below which every segment is known to be fsynced (see `Inner::recovery_point`).
pub(crate) const RECOVERY_POINT_FILE: &str = "recovery-point";

pub(crate) fn read_offset_file(fs: &dyn Fs, dir: &Path, name: &str) -> Option<i64> {
    fs.read(&dir.join(name))
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.trim().parse::<i64>().ok())
}

/// Persists a small offset file atomically (temp file, fsync, rename, fsync dir).
pub(crate) fn write_offset_file(
    fs: &dyn Fs,
    dir: &Path,
    name: &str,
    offset: i64,
) -> Result<(), LogError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    crate::producer_state::write_durably(fs, &tmp, offset.to_string().as_bytes())?;
    fs.rename(&tmp, &path)
        .map_err(io_err("rename offset file", &path))?;
    sync_dir(fs, dir)
}

pub(crate) fn write_recovery_point(fs: &dyn Fs, dir: &Path, offset: i64) -> Result<(), LogError> {
    write_offset_file(fs, dir, RECOVERY_POINT_FILE, offset)
}

/// What opening a log found and did, for tests and metrics ([`crate::PartitionLog::recovery_stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryStats {
    /// The clean-shutdown marker was there: every segment was trusted (tail-checked only).
    pub clean_shutdown: bool,
    /// The persisted recovery point (`i64::MIN` if there was none).
    pub recovery_point: i64,
    /// Segments read batch by batch with CRC checks (those at or above the recovery point).
    pub segments_scanned: usize,
    /// Bytes of those segments that proved valid.
    pub bytes_scanned: u64,
    /// Segments whose torn or corrupt tail was cut.
    pub segments_truncated: usize,
}

/// A partition's segments by base offset; the last one is active.
pub(crate) type Segments = BTreeMap<i64, Arc<Segment>>;

/// What [`open_segments`] found: segments, log start offset, recovery point, directory listing.
pub(crate) type OpenedSegments = (Segments, i64, i64, Option<Vec<String>>);

/// Result of walking a segment from position 0.
pub(crate) struct ScanOutcome {
    pub valid_len: u64,
    pub offsets: Vec<OffsetEntry>,
    pub times: Vec<TimeEntry>,
    pub meta: SegmentMeta,
    /// Why the walk ended before `len`, if it did.
    pub stop: Option<String>,
}

/// Walks a segment's batches, rebuilding index entries. With `verify` every batch is fully
/// validated (CRC); the walk stops at the first bad batch, at offsets going backwards, or
/// before the first batch whose last offset is >= `stop_before`.
pub(crate) fn scan_segment(
    file: &dyn FsFile,
    base: i64,
    len: u64,
    interval: u64,
    verify: bool,
    stop_before: Option<i64>,
) -> ScanOutcome {
    let mut out = ScanOutcome {
        valid_len: 0,
        offsets: Vec::new(),
        times: Vec::new(),
        meta: SegmentMeta::empty(base),
        stop: None,
    };
    let mut reader = BatchReader::new(file, 0, len);
    loop {
        let (pos, bytes) = match reader.next_batch(verify) {
            Ok(Some(b)) => b,
            Ok(None) => break,
            Err(stop) => {
                out.stop = Some(format!("{stop:?}"));
                break;
            }
        };
        let header = if verify {
            match validate_batch(bytes, Validation::Stored) {
                Ok(h) => h,
                Err(e) => {
                    out.stop = Some(format!("batch at position {pos}: {e}"));
                    break;
                }
            }
        } else {
            RecordBatchHeader::parse(bytes).expect("the reader returns at least a header")
        };
        if header.base_offset() < out.meta.next_offset
            || header.last_offset() - base > i64::from(u32::MAX)
        {
            out.stop = Some(format!(
                "batch at position {pos} has out-of-order base offset {}",
                header.base_offset()
            ));
            break;
        }
        if stop_before.is_some_and(|o| header.last_offset() >= o) {
            break;
        }
        out.meta.track_batch(
            base,
            &header,
            pos,
            interval,
            &mut out.offsets,
            &mut out.times,
        );
        out.valid_len = reader.position();
    }
    out
}

/// Opens every segment of `dir`, recovering as needed. Returns the segments, the log start
/// offset, the recovery point and, unless the open had to start the log over, the names in
/// `dir` other than segment files it created (snapshots, checkpoints, `.txnindex` files).
pub(crate) fn open_segments(
    files: &Files,
    dir_clean: bool,
    dir: &Path,
    interval: u64,
    now_ms: i64,
    stats: &mut RecoveryStats,
) -> Result<OpenedSegments, LogError> {
    let fs = &*files.fs;
    fs.create_dir_all(dir)
        .map_err(io_err("create log directory", dir))?;
    // One listing serves the whole open (at 100,000 partitions every look-up of a file that
    // is not there counts): files the open removes are taken out of it.
    let list = || fs.read_dir(dir).map_err(io_err("list log directory", dir));
    let mut names = list()?;
    if names
        .iter()
        .any(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
    {
        crate::cleaner::recover_swaps(fs, dir)?;
        names = list()?;
    }
    let mut bases = Vec::new();
    names.retain(|name| {
        if let Some(base) = parse_file_name(name, LOG_EXT) {
            bases.push(base);
        } else if name.ends_with(".tmp") {
            let _ = fs.remove_file(&dir.join(name));
            return false;
        }
        true
    });
    bases.sort_unstable();
    let listed = |name: &str| names.iter().any(|n| n == name);
    let own_marker = listed(CLEAN_SHUTDOWN_FILE);
    let clean = own_marker || dir_clean;
    stats.clean_shutdown = clean;
    if own_marker {
        let marker = dir.join(CLEAN_SHUTDOWN_FILE);
        fs.remove_file(&marker)
            .map_err(io_err("remove clean-shutdown marker", &marker))?;
        sync_dir(fs, dir)?;
    }
    let checkpoint = listed(LOG_START_FILE)
        .then(|| read_offset_file(fs, dir, LOG_START_FILE))
        .flatten();
    let recovery_point = listed(RECOVERY_POINT_FILE)
        .then(|| read_offset_file(fs, dir, RECOVERY_POINT_FILE))
        .flatten()
        .unwrap_or(i64::MIN);
    stats.recovery_point = recovery_point;
    let mut segments = BTreeMap::new();
    if bases.is_empty() {
        let base = checkpoint.unwrap_or(0).max(0);
        segments.insert(base, Arc::new(Segment::create(files, dir, base)?));
        sync_dir(fs, dir)?;
        write_recovery_point(fs, dir, base)?;
        return Ok((segments, base, base, None));
    }
    let mut i = 0;
    while i < bases.len() {
        let active = i + 1 == bases.len();
        let trust = clean || (!active && bases[i] < recovery_point);
        let (segment, truncated) =
            open_segment(files, dir, bases[i], active, trust, interval, now_ms)?;
        if !trust {
            stats.segments_scanned += 1;
            stats.bytes_scanned += segment.size();
        }
        stats.segments_truncated += usize::from(truncated);
        // A scanned closed segment that ends before the next one starts lost its tail in a
        // crash (its data was not synced, the next segment's name was). Below the recovery
        // point such gaps are legitimate: the cleaner's work (it only cleans synced segments).
        let ends_early = !trust && !active && segment.meta().next_offset < bases[i + 1];
        if (truncated || ends_early) && !active {
            // A closed segment was torn: everything after it is unreachable. Drop it and reopen
            // this one as the active segment.
            warn!(dir = %dir.display(), base = bases[i], "closed segment was corrupt; deleting later segments");
            for &later in &bases[i + 1..] {
                for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
                    let _ = fs.remove_file(&file_path(dir, later, ext));
                }
            }
            bases.truncate(i + 1);
            sync_dir(fs, dir)?;
            names.retain(|n| {
                [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT]
                    .iter()
                    .all(|ext| parse_file_name(n, ext).is_none_or(|b| b <= bases[i]))
            });
            continue;
        }
        segments.insert(bases[i], Arc::new(segment));
        i += 1;
    }
    let first = bases[0];
    let leo = segments
        .values()
        .next_back()
        .map_or(first, |s| s.meta().next_offset);
    if let Some(start) = checkpoint.filter(|c| *c > leo) {
        // DeleteRecords persisted a log start offset above data a crash then lost. Offsets
        // below it were handed out and deleted: the log restarts there (as Kafka's loader
        // does) rather than reuse them, which a later open would hide behind the checkpoint.
        warn!(dir = %dir.display(), log_start = start, log_end = leo, "log start offset past the recovered log end; restarting the log at it");
        for s in segments.values() {
            s.delete_files(fs)?;
        }
        for o in list_snapshots(fs, dir)? {
            crate::segment::remove_if_exists(fs, &file_path(dir, o, SNAPSHOT_EXT))?;
        }
        let segments = BTreeMap::from([(start, Arc::new(Segment::create(files, dir, start)?))]);
        sync_dir(fs, dir)?;
        write_recovery_point(fs, dir, start)?;
        return Ok((segments, start, start, None));
    }
    let log_start = checkpoint.unwrap_or(first).max(first);
    // Every segment below the active one is now trusted-and-synced or was scanned and synced.
    let active_base = *segments.keys().next_back().expect("at least one segment");
    if recovery_point != active_base {
        write_recovery_point(fs, dir, active_base)?;
    }
    Ok((segments, log_start, active_base, Some(names)))
}

/// Opens one segment; `trust` skips the full CRC scan when the index and tail look sound.
/// Returns whether bytes were cut off.
fn open_segment(
    files: &Files,
    dir: &Path,
    base: i64,
    active: bool,
    trust: bool,
    interval: u64,
    now_ms: i64,
) -> Result<(Segment, bool), LogError> {
    let fs = &*files.fs;
    let log_path = file_path(dir, base, LOG_EXT);
    let log = open_log_file(files, &log_path, false)?;
    let len = log.size().map_err(io_err("stat segment", &log_path))?;
    let (index_path, time_path) = (
        file_path(dir, base, INDEX_EXT),
        file_path(dir, base, TIME_INDEX_EXT),
    );
    if trust {
        if let Some(meta) = check_trusted(
            fs,
            &log,
            base,
            len,
            (&index_path, &time_path),
            active,
            now_ms,
        ) {
            let (offsets, times) = meta.1;
            let segment = Segment::from_parts(
                base,
                log_path,
                log,
                len,
                Index::open(files, &index_path, offsets, active)?,
                Index::open(files, &time_path, times, active)?,
                meta.0,
            );
            return Ok((segment, false));
        }
        info!(dir = %dir.display(), base, "segment indexes or tail inconsistent; rebuilding");
    }
    let scan = scan_segment(&log, base, len, interval, true, None);
    let truncated = scan.valid_len < len;
    if truncated {
        warn!(
            dir = %dir.display(),
            base,
            dropped_bytes = len - scan.valid_len,
            reason = scan.stop.as_deref().unwrap_or("unknown"),
            "truncating torn or corrupt segment tail"
        );
        log.set_len(scan.valid_len)
            .map_err(io_err("truncate segment", &log_path))?;
    }
    // The open reports everything up to the recovered end as flushed (durable mode trusts
    // that), so whatever the scan kept must be on disk first. An active segment that was
    // empty and stays empty has nothing to sync: after a kill -9 that is most partitions of a
    // broker hosting many, and one fsync each was most of its start-up.
    if len > 0 || !active {
        log.sync_data()
            .map_err(io_err("fsync segment", &log_path))?;
    }
    let mut meta = scan.meta;
    let mut times = scan.times;
    if !active {
        meta.push_time_entry(base, &mut times);
    }
    meta.first_append_ms = (scan.valid_len > 0).then_some(now_ms);
    let (offset_index, time_index) = if active {
        // The active segment's index files are written only when it flushes: after a crash
        // they hold a prefix of what the scan rebuilt (often all of it, or nothing) and are
        // kept, with the rest appended, rather than deleted and created again.
        (
            Index::open_rebuilt(files, &index_path, scan.offsets)?,
            Index::open_rebuilt(files, &time_path, times)?,
        )
    } else {
        let offset_index = Index::create(files, &index_path, scan.offsets, false)?;
        let time_index = Index::create(files, &time_path, times, false)?;
        offset_index.sync()?;
        time_index.sync()?;
        (offset_index, time_index)
    };
    let segment = Segment::from_parts(
        base,
        log_path,
        log,
        scan.valid_len,
        offset_index,
        time_index,
        meta,
    );
    Ok((segment, truncated))
}

type Entries = (Vec<OffsetEntry>, Vec<TimeEntry>);

/// Validates indexes and the tail of a segment without reading all of it. `None` = rebuild.
fn check_trusted(
    fs: &dyn Fs,
    log: &dyn FsFile,
    base: i64,
    len: u64,
    (index_path, time_path): (&Path, &Path),
    active: bool,
    now_ms: i64,
) -> Option<(SegmentMeta, Entries)> {
    let offsets = Index::<OffsetEntry>::read_entries(fs, index_path)?;
    let times = Index::<TimeEntry>::read_entries(fs, time_path)?;
    if !offset_entries_valid(&offsets, len) || (len > 0 && times.is_empty()) {
        return None;
    }
    let start = offsets.last().map_or(0, |e| u64::from(e.position));
    let mut pos = start;
    let mut last: Option<(u64, RecordBatchOwned)> = None;
    while pos < len {
        let h = RecordBatchOwned(header_at(log, pos, len)?);
        if h.view().base_offset() < base
            || last.is_some_and(|(_, l)| h.view().base_offset() <= l.view().last_offset())
        {
            return None;
        }
        let next = pos + h.view().total_size() as u64;
        last = Some((pos, h));
        pos = next;
    }
    let mut meta = SegmentMeta::empty(base);
    if let Some((pos, h)) = last {
        let first = offsets
            .last()
            .map_or(base, |e| base + i64::from(e.relative_offset));
        if pos == start && h.view().base_offset() != first {
            return None;
        }
        if active {
            // The last batch of the active segment must be intact (CRC).
            let mut bytes = vec![0u8; h.view().total_size()];
            log.read_exact_at(&mut bytes, pos).ok()?;
            validate_batch(&bytes, Validation::Stored).ok()?;
        }
        meta.next_offset = h.view().last_offset() + 1;
        meta.bytes_since_index = len - start;
        meta.first_append_ms = Some(now_ms);
    }
    if !time_entries_valid(&times, (meta.next_offset - 1 - base).max(0) as u32) {
        return None;
    }
    if let Some(t) = times.last() {
        meta.max_timestamp = t.timestamp;
        meta.offset_of_max_timestamp = base + i64::from(t.relative_offset);
        meta.last_time_entry_ts = t.timestamp;
    }
    Some((meta, (offsets, times)))
}

/// Loads the newest valid snapshot at or below `log_end`, deleting those above it, and replays
/// batches from there to the end of the log, then drops idle producers.
pub(crate) fn load_producer_state(
    fs: &dyn Fs,
    dir: &Path,
    segments: &BTreeMap<i64, Arc<Segment>>,
    log_start: i64,
    log_end: i64,
    now_ms: i64,
    producer_id_expiration_ms: i64,
) -> Result<ProducerState, LogError> {
    let snapshots = list_snapshots(fs, dir)?;
    load_producer_state_from(
        fs,
        dir,
        snapshots,
        segments,
        (log_start, log_end),
        now_ms,
        producer_id_expiration_ms,
    )
}

/// [`load_producer_state`] with the snapshots' offsets already listed.
pub(crate) fn load_producer_state_from(
    fs: &dyn Fs,
    dir: &Path,
    mut snapshots: Vec<i64>,
    segments: &BTreeMap<i64, Arc<Segment>>,
    (log_start, log_end): (i64, i64),
    now_ms: i64,
    producer_id_expiration_ms: i64,
) -> Result<ProducerState, LogError> {
    snapshots.sort_unstable();
    let mut state = None;
    let mut from = log_start;
    let mut removed = false;
    while let Some(offset) = snapshots.pop() {
        let path = file_path(dir, offset, SNAPSHOT_EXT);
        if offset > log_end {
            fs.remove_file(&path)
                .map_err(io_err("delete snapshot", &path))?;
            removed = true;
            continue;
        }
        if let Some(s) = fs.read(&path).ok().and_then(|b| ProducerState::decode(&b)) {
            state = Some(s);
            from = offset.max(log_start);
            break;
        }
        warn!(path = %path.display(), "ignoring unreadable producer-state snapshot");
    }
    if removed {
        // A snapshot past the end describes a history that was cut (truncation, lost tail).
        // Were its unlink undone by a crash once the log grew past it again, it would be
        // loaded as the state of the new history.
        sync_dir(fs, dir)?;
    }
    let mut state = state.unwrap_or_default();
    state.stamp_unknown_timestamps(now_ms);
    replay(segments, from, &mut state);
    state.remove_expired(log_start);
    // Replayed batches recreate producers that had expired before the restart (Kafka too
    // drops expired entries while loading).
    state.expire_idle(now_ms, producer_id_expiration_ms);
    Ok(state)
}

pub(crate) fn list_snapshots(fs: &dyn Fs, dir: &Path) -> Result<Vec<i64>, LogError> {
    let names = fs
        .read_dir(dir)
        .map_err(io_err("list log directory", dir))?;
    Ok(names
        .iter()
        .filter_map(|n| parse_file_name(n, SNAPSHOT_EXT))
        .collect())
}

/// Applies every batch with base offset >= `from` to `state`.
pub(crate) fn replay(segments: &BTreeMap<i64, Arc<Segment>>, from: i64, state: &mut ProducerState) {
    let first = segments
        .range(..=from)
        .next_back()
        .map_or(i64::MIN, |(b, _)| *b);
    for segment in segments.range(first..).map(|(_, s)| s) {
        let size = segment.size();
        let start = segment.find_batch(from, size).map_or(size, |(p, _)| p);
        let mut reader = BatchReader::new(&segment.log, start, size);
        // Whole batches: a control batch's record says commit or abort.
        while let Ok(Some((_, bytes))) = reader.next_batch(true) {
            let h = RecordBatchHeader::parse(bytes).expect("the reader returns at least a header");
            if h.base_offset() >= from {
                state.replay(&h);
            }
        }
    }
}
