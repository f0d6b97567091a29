//! One log segment: `<base offset>.log` plus its `.index` and `.timeindex`. Appends go to the
//! end; `size` is the committed length readers may see. Finding batches by offset or position
//! uses the sparse index, then a short header walk with pread.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use strom_protocol::record_batch::{RecordBatchHeader, NO_TIMESTAMP};

use crate::batch_reader::header_at;
use crate::error::{io_err, LogError};
use crate::fs::{Fs, FsFile, OpenMode};
use crate::handles::{Files, LazyFile};
use crate::index::{Index, OffsetEntry, TimeEntry};

pub(crate) const LOG_EXT: &str = "log";
pub(crate) const INDEX_EXT: &str = "index";
pub(crate) const TIME_INDEX_EXT: &str = "timeindex";

/// `00000000000000000042.log` style names (20-digit zero-padded base offset).
pub(crate) fn file_path(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(file_name(base_offset, ext))
}

/// The name [`file_path`] gives the file in its directory.
pub(crate) fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// Parses `<20 digits>.<ext>` into the offset.
pub(crate) fn parse_file_name(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Deletes a file; a missing file is fine.
pub(crate) fn remove_if_exists(fs: &dyn Fs, path: &Path) -> Result<(), LogError> {
    match fs.remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("delete file", path)(e)),
        _ => Ok(()),
    }
}

/// fsyncs a directory so creations, deletions and renames in it are durable.
pub(crate) fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<(), LogError> {
    fs.sync_dir(dir).map_err(io_err("fsync directory", dir))
}

/// What the appender tracks about a segment besides its bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentMeta {
    /// Offset after the last batch (= base offset while empty).
    pub next_offset: i64,
    /// Largest batch `maxTimestamp` in the segment, `NO_TIMESTAMP` if none.
    pub max_timestamp: i64,
    /// Base offset of the batch that holds `max_timestamp`.
    pub offset_of_max_timestamp: i64,
    pub bytes_since_index: u64,
    /// Timestamp of the last `.timeindex` entry.
    pub last_time_entry_ts: i64,
    /// Clock time of the first append (for `segment.ms`).
    pub first_append_ms: Option<i64>,
}

impl SegmentMeta {
    pub fn empty(base_offset: i64) -> Self {
        Self {
            next_offset: base_offset,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: base_offset,
            bytes_since_index: 0,
            last_time_entry_ts: NO_TIMESTAMP,
            first_append_ms: None,
        }
    }

    /// Index bookkeeping for one batch at `position` (shared by append and rebuild; follows
    /// Kafka: an offset entry once more than `interval` bytes were written since the last one).
    pub fn track_batch(
        &mut self,
        base: i64,
        header: &RecordBatchHeader<'_>,
        position: u64,
        interval: u64,
        offsets: &mut Vec<OffsetEntry>,
        times: &mut Vec<TimeEntry>,
    ) {
        let batch_base = header.base_offset();
        if header.max_timestamp() > self.max_timestamp {
            self.max_timestamp = header.max_timestamp();
            self.offset_of_max_timestamp = batch_base;
        }
        if self.bytes_since_index > interval {
            offsets.push(OffsetEntry {
                relative_offset: (batch_base - base) as u32,
                position: position as u32,
            });
            self.push_time_entry(base, times);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += header.total_size() as u64;
        self.next_offset = header.last_offset() + 1;
    }

    /// Adds a time entry if the max timestamp grew since the last one.
    pub fn push_time_entry(&mut self, base: i64, times: &mut Vec<TimeEntry>) {
        if self.max_timestamp > self.last_time_entry_ts {
            times.push(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset: (self.offset_of_max_timestamp - base) as u32,
            });
            self.last_time_entry_ts = self.max_timestamp;
        }
    }
}

pub(crate) struct Segment {
    pub base_offset: i64,
    pub log_path: PathBuf,
    /// Opened on first use, closed by the handle cache when idle (`handles.rs`).
    pub log: LazyFile,
    size: AtomicU64,
    pub offset_index: Index<OffsetEntry>,
    pub time_index: Index<TimeEntry>,
    meta: Mutex<SegmentMeta>,
    /// End of the bytes already handed to early writeback ([`Self::take_writeback`]).
    writeback_from: AtomicU64,
}

/// The early-writeback trigger: once `end` (the segment's size) is at least `threshold` bytes
/// past `from` (where the last range handed out ended), the range `from..end` is due and the
/// next one starts at `end`. A segment cut back below `from` (truncation) starts again at its
/// new end, with nothing due.
pub(crate) fn writeback_step(
    from: u64,
    end: u64,
    threshold: u64,
) -> (u64, Option<std::ops::Range<u64>>) {
    if end < from {
        (end, None)
    } else if threshold > 0 && end - from >= threshold {
        (end, Some(from..end))
    } else {
        (from, None)
    }
}

/// Opens a segment's log file now (recovery reads it at once) and keeps it in the cache.
pub(crate) fn open_log_file(
    files: &Files,
    path: &Path,
    create: bool,
) -> Result<LazyFile, LogError> {
    files
        .open_now(path, create)
        .map_err(io_err("open segment", path))
}

impl Segment {
    /// A new empty active segment (the caller fsyncs the directory).
    pub fn create(files: &Files, dir: &Path, base_offset: i64) -> Result<Self, LogError> {
        let log_path = file_path(dir, base_offset, LOG_EXT);
        // A fresh inode rather than truncating an old one: ext4 (auto_da_alloc) forces
        // writeback when a truncated-to-zero file is closed.
        remove_if_exists(&*files.fs, &log_path)?;
        let log = open_log_file(files, &log_path, true)?;
        Ok(Self {
            base_offset,
            log,
            size: AtomicU64::new(0),
            offset_index: Index::create(
                files,
                &file_path(dir, base_offset, INDEX_EXT),
                Vec::new(),
                true,
            )?,
            time_index: Index::create(
                files,
                &file_path(dir, base_offset, TIME_INDEX_EXT),
                Vec::new(),
                true,
            )?,
            meta: Mutex::new(SegmentMeta::empty(base_offset)),
            writeback_from: AtomicU64::new(0),
            log_path,
        })
    }

    /// Assembles a segment from parts validated or rebuilt by recovery.
    pub fn from_parts(
        base_offset: i64,
        log_path: PathBuf,
        log: LazyFile,
        size: u64,
        offset_index: Index<OffsetEntry>,
        time_index: Index<TimeEntry>,
        meta: SegmentMeta,
    ) -> Self {
        Self {
            base_offset,
            log_path,
            log,
            size: AtomicU64::new(size),
            offset_index,
            time_index,
            meta: Mutex::new(meta),
            // What recovery found on disk is not counted as new.
            writeback_from: AtomicU64::new(size),
        }
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub fn meta(&self) -> SegmentMeta {
        *self.meta.lock()
    }

    pub fn set_meta(&self, meta: SegmentMeta) {
        *self.meta.lock() = meta;
    }

    /// The bytes appended since the last range handed out, if at least `threshold` (0: never),
    /// per [`writeback_step`]; the next range starts after them. Concurrent callers get
    /// disjoint ranges.
    pub fn take_writeback(&self, threshold: u64) -> Option<std::ops::Range<u64>> {
        let end = self.size();
        let mut due = None;
        let _ = self
            .writeback_from
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |from| {
                let (next, range) = writeback_step(from, end, threshold);
                due = range;
                (next != from).then_some(next)
            });
        due
    }

    pub fn is_empty(&self) -> bool {
        self.size() == 0
    }

    /// Writes already-validated batches (with final offsets) at the end, `parts` one after
    /// the other in one vectored write, and indexes them. `batches` are positioned from the
    /// start of the first part.
    pub fn append(
        &self,
        parts: &[&[u8]],
        batches: &[(usize, RecordBatchHeader<'_>)],
        interval: u64,
        now_ms: i64,
    ) -> Result<(), LogError> {
        let start = self.size();
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.log
            .write_all_vectored_at(parts, start)
            .map_err(io_err("write segment", &self.log_path))?;
        let mut meta = self.meta.lock();
        meta.first_append_ms.get_or_insert(now_ms);
        let (mut offsets, mut times) = (Vec::new(), Vec::new());
        for (pos, header) in batches {
            meta.track_batch(
                self.base_offset,
                header,
                start + *pos as u64,
                interval,
                &mut offsets,
                &mut times,
            );
        }
        offsets.into_iter().for_each(|e| self.offset_index.push(e));
        times.into_iter().for_each(|e| self.time_index.push(e));
        self.size.store(start + len as u64, Ordering::Release);
        Ok(())
    }

    /// Before the segment stops being active: final time entry, indexes written.
    pub fn finalize(&self) -> Result<(), LogError> {
        let mut times = Vec::new();
        self.meta
            .lock()
            .push_time_entry(self.base_offset, &mut times);
        times.into_iter().for_each(|e| self.time_index.push(e));
        self.offset_index.persist()?;
        self.time_index.persist()
    }

    /// fsyncs the log (data only).
    pub fn sync_log(&self) -> Result<(), LogError> {
        self.log
            .sync_data()
            .map_err(io_err("fsync segment", &self.log_path))
    }

    /// Roll: final time entry, indexes written, in-memory copies dropped. The fsync is left to
    /// the next flush (Kafka flushes a rolled segment asynchronously too).
    pub fn seal(&self) -> Result<(), LogError> {
        self.finalize()?;
        self.offset_index.close_in_memory();
        self.time_index.close_in_memory();
        Ok(())
    }

    /// fsyncs the log, both indexes and the aborted-transaction index if there is one (once
    /// the segment is below the recovery point, no replay would rebuild its entries).
    pub fn sync_all(&self, fs: &dyn Fs) -> Result<(), LogError> {
        self.sync_log()?;
        self.offset_index.sync()?;
        self.time_index.sync()?;
        let txn = crate::txn_index::path_of(&self.log_path);
        match fs.open(&txn, OpenMode::Existing) {
            Ok(f) => f
                .sync_data()
                .map_err(io_err("fsync transaction index", &txn)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("open transaction index", &txn)(e)),
        }
    }

    /// Truncates the log file to `size` bytes and installs rebuilt indexes and meta.
    pub fn truncate_with(
        &self,
        size: u64,
        offsets: Vec<OffsetEntry>,
        times: Vec<TimeEntry>,
        meta: SegmentMeta,
    ) -> Result<(), LogError> {
        self.size.store(size.min(self.size()), Ordering::Release);
        self.log
            .set_len(size)
            .map_err(io_err("truncate segment", &self.log_path))?;
        self.sync_log()?;
        self.offset_index.reset(offsets)?;
        self.time_index.reset(times)?;
        self.set_meta(meta);
        Ok(())
    }

    /// Removes whatever exists of the files of segment `base` (a roll that failed half-way).
    pub fn remove_files_of(fs: &dyn Fs, dir: &Path, base: i64) -> Result<(), LogError> {
        for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT] {
            remove_if_exists(fs, &file_path(dir, base, ext))?;
        }
        Ok(())
    }

    /// The segment left the log (deleted, or replaced by the cleaner under the same names):
    /// close its files and never reopen them by name. Readers holding one keep it.
    pub fn retire(&self) {
        self.log.retire();
        self.offset_index.retire();
        self.time_index.retire();
    }

    /// [`Self::retire`] with the files opened first, so that readers still holding this
    /// segment read its old files once the cleaner gives their names to a new segment.
    pub fn retire_keeping_open(&self) -> Result<(), LogError> {
        self.log
            .retire_keeping_open()
            .map_err(io_err("open segment", &self.log_path))?;
        self.offset_index.retire_keeping_open()?;
        self.time_index.retire_keeping_open()
    }

    /// The open log file for a read that must keep it (a fetch's [`crate::FileSlice`]).
    pub fn open_log(&self) -> Option<Arc<dyn FsFile>> {
        self.log.get().ok()
    }

    /// Cuts the log file back to `size` bytes (undoing a failed write past the committed size).
    pub fn truncate_file(&self, size: u64) -> Result<(), LogError> {
        self.log
            .set_len(size)
            .map_err(io_err("truncate segment", &self.log_path))
    }

    /// Deletes the segment's files; their handles are closed and never reopened.
    pub fn delete_files(&self, fs: &dyn Fs) -> Result<(), LogError> {
        self.retire();
        remove_if_exists(fs, &self.log_path)?;
        remove_if_exists(fs, &crate::txn_index::path_of(&self.log_path))?;
        remove_if_exists(fs, self.offset_index.path())?;
        remove_if_exists(fs, self.time_index.path())
    }

    /// First batch (position, header) with `last_offset >= target`, within `[0, size)`.
    pub fn find_batch(&self, target: i64, size: u64) -> Option<(u64, RecordBatchOwned)> {
        let rel = (target - self.base_offset).clamp(0, i64::from(u32::MAX));
        let mut pos = self
            .offset_index
            .floor(rel, |e| i64::from(e.relative_offset))
            .map_or(0, |e| u64::from(e.position));
        while let Some(h) = header_at(&self.log, pos, size) {
            let header = RecordBatchOwned(h);
            if header.view().last_offset() >= target {
                return Some((pos, header));
            }
            pos += header.view().total_size() as u64;
        }
        None
    }

    /// End of the last whole batch that ends at or before `limit`, walking from a batch
    /// boundary `from` (<= limit) and stopping before any batch with base offset >= `max_offset`.
    pub fn boundary_before(&self, from: u64, limit: u64, max_offset: i64) -> u64 {
        let start = self
            .offset_index
            .floor(limit as i64, |e| i64::from(e.position))
            .map_or(0, |e| u64::from(e.position))
            .max(from);
        let mut pos = start;
        while let Some(h) = header_at(&self.log, pos, limit) {
            let header = RecordBatchOwned(h);
            if header.view().base_offset() >= max_offset {
                break;
            }
            pos += header.view().total_size() as u64;
        }
        pos
    }

    /// Reads the whole batch at `position` (header says how long).
    pub fn read_batch(&self, position: u64, header: &RecordBatchOwned) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; header.view().total_size()];
        self.log.read_exact_at(&mut buf, position).ok()?;
        Some(buf)
    }
}

/// A header copied out of a file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordBatchOwned(pub [u8; strom_protocol::record_batch::HEADER_SIZE]);

impl RecordBatchOwned {
    pub fn view(&self) -> RecordBatchHeader<'_> {
        RecordBatchHeader::parse(&self.0).expect("a header array is HEADER_SIZE long")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let p = file_path(Path::new("/x"), 42, LOG_EXT);
        assert_eq!(p, Path::new("/x/00000000000000000042.log"));
        assert_eq!(
            parse_file_name("00000000000000000042.log", LOG_EXT),
            Some(42)
        );
        assert_eq!(parse_file_name("00000000000000000042.index", LOG_EXT), None);
        assert_eq!(parse_file_name("42.log", LOG_EXT), None);
    }

    #[test]
    fn writeback_ranges_start_where_the_last_ended() {
        const T: u64 = 1 << 20;
        // Below the threshold: nothing due, the start stays.
        assert_eq!(writeback_step(0, T - 1, T), (0, None));
        // At the threshold: the whole range since the start, and the next starts at its end.
        assert_eq!(writeback_step(0, T, T), (T, Some(0..T)));
        assert_eq!(
            writeback_step(T, 3 * T + 5, T),
            (3 * T + 5, Some(T..3 * T + 5))
        );
        assert_eq!(writeback_step(T, 2 * T - 1, T), (T, None));
        // Truncated below the start: restart at the new end, nothing due.
        assert_eq!(writeback_step(3 * T, T / 2, T), (T / 2, None));
        // Threshold 0 turns it off.
        assert_eq!(writeback_step(0, 10 * T, 0), (0, None));
    }

    #[test]
    fn segment_hands_out_each_appended_byte_once() {
        let fs: Arc<dyn Fs> = Arc::new(crate::fs::SimFs::new(1));
        let files = Files {
            fs: fs.clone(),
            cache: crate::handles::HandleCache::new(16),
        };
        fs.create_dir_all(Path::new("/d")).unwrap();
        let seg = Segment::create(&files, Path::new("/d"), 0).unwrap();
        let append = |n: usize| {
            let at = seg.size();
            seg.log.write_all_at(&vec![7u8; n], at).unwrap();
            seg.size.store(at + n as u64, Ordering::Release);
        };
        append(600);
        assert_eq!(seg.take_writeback(1000), None);
        append(600);
        assert_eq!(seg.take_writeback(1000), Some(0..1200));
        assert_eq!(seg.take_writeback(1000), None);
        append(999);
        assert_eq!(seg.take_writeback(1000), None);
        append(1);
        assert_eq!(seg.take_writeback(1000), Some(1200..2200));
    }
}
