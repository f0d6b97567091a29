//! Cleaned segments on disk and their crash-safe swap. A group of segments `[B, E)` is
//! rewritten into `B-E.log.cleaned` (+ `B.index.cleaned`, `B.timeindex.cleaned`), fsynced,
//! then committed by renaming the log to `B-E.log.swap`; the old files are then deleted and
//! the swap files renamed to their final names. `recover_swaps` finishes a committed swap
//! and removes uncommitted leftovers when a log is opened.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strom_protocol::record_batch::RecordBatchHeader;
use tracing::info;

use super::rewrite::{filter_batch, FilterContext, Verdict};
use crate::batch_reader::BatchReader;
use crate::error::{io_err, LogError};
use crate::fs::{Fs, OpenMode};
use crate::index::{Index, OffsetEntry, TimeEntry};
use crate::segment::{
    file_path, remove_if_exists, sync_dir, Segment, SegmentMeta, INDEX_EXT, LOG_EXT, TIME_INDEX_EXT,
};
use crate::txn_index::TXN_INDEX_EXT;

/// The per-segment files beside the `.log` that a swap replaces too.
const SIDE_EXTS: [&str; 3] = [INDEX_EXT, TIME_INDEX_EXT, TXN_INDEX_EXT];

const CLEANED: &str = "cleaned";
const SWAP: &str = "swap";
/// Write buffer of the cleaned log file.
const WRITE_BUFFER_BYTES: usize = 1 << 20;

/// `B-E.log.<suffix>`: the replaced range is in the name so recovery knows what to delete.
fn log_path(dir: &Path, base: i64, end: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}-{end:020}.{LOG_EXT}.{suffix}"))
}

/// `B.index.<suffix>` / `B.timeindex.<suffix>`.
fn index_path(dir: &Path, base: i64, ext: &str, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}.{ext}.{suffix}"))
}

/// Parses `B-E.log.swap` into `(B, E)`.
fn parse_swap_log(name: &str) -> Option<(i64, i64)> {
    let stem = name.strip_suffix(&format!(".{LOG_EXT}.{SWAP}"))?;
    let (b, e) = stem.split_once('-')?;
    let digits = |s: &str| s.len() == 20 && s.bytes().all(|c| c.is_ascii_digit());
    (digits(b) && digits(e)).then_some((b.parse().ok()?, e.parse().ok()?))
}

/// Counters of one rewritten group.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct GroupStats {
    pub records_removed: u64,
    pub batches_removed: u64,
    pub batches_rewritten: u64,
    pub bytes_before: u64,
}

/// A group's cleaned copy, fsynced under its `.cleaned` names.
pub(crate) struct CleanedSegment {
    pub base: i64,
    /// Base offset of the first segment after the group (exclusive end of what it replaces).
    pub end: i64,
    pub size: u64,
    pub offsets: Vec<OffsetEntry>,
    pub times: Vec<TimeEntry>,
    pub meta: SegmentMeta,
    /// Some batch was dropped or rewritten.
    pub changed: bool,
    pub stats: GroupStats,
    /// Earliest delete horizon of the tombstones kept.
    pub horizon: Option<i64>,
}

/// Rewrites `group` (consecutive closed segments ending before `end`) into `.cleaned` files.
pub(crate) fn write_cleaned(
    fs: &dyn Fs,
    dir: &Path,
    group: &[Arc<Segment>],
    end: i64,
    cx: &FilterContext<'_>,
    interval: u64,
) -> Result<CleanedSegment, LogError> {
    let base = group[0].base_offset;
    let path = log_path(dir, base, end, CLEANED);
    remove_if_exists(fs, &path)?;
    let file = fs
        .open(&path, OpenMode::Truncate)
        .map_err(io_err("create cleaned segment", &path))?;
    let mut out = Vec::with_capacity(WRITE_BUFFER_BYTES);
    let mut written = 0u64;
    let mut c = CleanedSegment {
        base,
        end,
        size: 0,
        offsets: Vec::new(),
        times: Vec::new(),
        meta: SegmentMeta::empty(base),
        changed: false,
        stats: GroupStats::default(),
        horizon: None,
    };
    for segment in group {
        let size = segment.size();
        c.stats.bytes_before += size;
        let mut reader = BatchReader::new(&segment.log, 0, size);
        loop {
            let bytes = match reader.next_batch(true) {
                Ok(Some((_, bytes))) => bytes,
                Ok(None) => break,
                Err(stop) => {
                    let _ = fs.remove_file(&path);
                    return Err(io_err("read segment to clean", &segment.log_path)(
                        std::io::Error::other(format!("{stop:?}")),
                    ));
                }
            };
            let (verdict, horizon) = filter_batch(bytes, cx);
            if let Some(h) = horizon {
                c.horizon = Some(c.horizon.map_or(h, |m: i64| m.min(h)));
            }
            let kept: &[u8] = match &verdict {
                Verdict::Keep => bytes,
                Verdict::Drop { removed } => {
                    c.changed = true;
                    c.stats.records_removed += u64::from(*removed);
                    c.stats.batches_removed += 1;
                    continue;
                }
                Verdict::Rewrite { bytes, removed } => {
                    c.changed = true;
                    c.stats.records_removed += u64::from(*removed);
                    c.stats.batches_rewritten += 1;
                    bytes
                }
            };
            let header = RecordBatchHeader::parse(kept).expect("a kept batch has a header");
            c.meta.track_batch(
                base,
                &header,
                c.size,
                interval,
                &mut c.offsets,
                &mut c.times,
            );
            out.extend_from_slice(kept);
            c.size += kept.len() as u64;
            if out.len() >= WRITE_BUFFER_BYTES {
                file.write_all_at(&out, written)
                    .map_err(io_err("write cleaned segment", &path))?;
                written += out.len() as u64;
                out.clear();
            }
        }
    }
    c.meta.push_time_entry(base, &mut c.times);
    file.write_all_at(&out, written)
        .map_err(io_err("write cleaned segment", &path))?;
    file.sync_all()
        .map_err(io_err("fsync cleaned segment", &path))?;
    for (ext, entries) in [(INDEX_EXT, None), (TIME_INDEX_EXT, Some(&c.times))] {
        let p = index_path(dir, base, ext, CLEANED);
        match entries {
            None => Index::write_synced(fs, &p, &c.offsets)?,
            Some(times) => Index::write_synced(fs, &p, times)?,
        }
    }
    write_txn_index(fs, dir, group)?;
    sync_dir(fs, dir)?;
    Ok(c)
}

/// The group's aborted-transaction entries in one `B.txnindex.cleaned`: the files are runs of
/// fixed-size entries ordered by marker offset, so concatenating them in segment order is the
/// merged index (every marker is kept, so every entry stays valid). No file if none has any.
fn write_txn_index(fs: &dyn Fs, dir: &Path, group: &[Arc<Segment>]) -> Result<(), LogError> {
    let mut merged = Vec::new();
    for s in group {
        let path = file_path(dir, s.base_offset, TXN_INDEX_EXT);
        match fs.read(&path) {
            Ok(bytes) => merged.extend_from_slice(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("read transaction index", &path)(e)),
        }
    }
    if merged.is_empty() {
        return Ok(());
    }
    let path = index_path(dir, group[0].base_offset, TXN_INDEX_EXT, CLEANED);
    crate::producer_state::write_durably(fs, &path, &merged)
}

/// Deletes a cleaned copy that will not be swapped in.
pub(crate) fn discard(fs: &dyn Fs, dir: &Path, c: &CleanedSegment) -> Result<(), LogError> {
    remove_if_exists(fs, &log_path(dir, c.base, c.end, CLEANED))?;
    for ext in SIDE_EXTS {
        remove_if_exists(fs, &index_path(dir, c.base, ext, CLEANED))?;
    }
    Ok(())
}

fn rename(fs: &dyn Fs, from: &Path, to: &Path) -> Result<(), LogError> {
    fs.rename(from, to)
        .map_err(io_err("rename cleaned segment", from))
}

/// The steps of a swap, in order; tests stop after any of them to imitate a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SwapStep {
    /// The `.cleaned` files written and fsynced; nothing renamed yet.
    Written,
    /// Index files renamed `.cleaned` → `.swap`.
    IndexesStaged,
    /// The log renamed to `.swap`: the commit point.
    Committed,
    /// The replaced segments after the first deleted.
    OldDeleted,
    /// The indexes renamed to their final names; the log still `.swap`.
    IndexesInPlace,
    /// Everything renamed to final names.
    Done,
}

/// Runs the on-disk swap of `c` up to and including `stop_after`. The caller holds the
/// partition lock and has checked that `[c.base, c.end)` is still the cleaned group.
pub(crate) fn commit(
    fs: &dyn Fs,
    dir: &Path,
    c: &CleanedSegment,
    replaced: &[Arc<Segment>],
    stop_after: SwapStep,
) -> Result<(), LogError> {
    if stop_after == SwapStep::Written {
        return Ok(());
    }
    for ext in SIDE_EXTS {
        let cleaned = index_path(dir, c.base, ext, CLEANED);
        if ext != TXN_INDEX_EXT || fs.exists(&cleaned) {
            rename(fs, &cleaned, &index_path(dir, c.base, ext, SWAP))?;
        }
    }
    if stop_after == SwapStep::IndexesStaged {
        return Ok(());
    }
    rename(
        fs,
        &log_path(dir, c.base, c.end, CLEANED),
        &log_path(dir, c.base, c.end, SWAP),
    )?;
    sync_dir(fs, dir)?;
    if stop_after == SwapStep::Committed {
        return Ok(());
    }
    for s in replaced.iter().filter(|s| s.base_offset != c.base) {
        s.delete_files(fs)?;
    }
    if stop_after == SwapStep::OldDeleted {
        return Ok(());
    }
    finish_indexes(fs, dir, c.base)?;
    if stop_after == SwapStep::IndexesInPlace {
        return Ok(());
    }
    finish_log(fs, dir, c.base, c.end)
}

/// Final renames of a committed swap: indexes first, the log last (its `.swap` name is what
/// tells recovery the swap is unfinished).
fn finish_indexes(fs: &dyn Fs, dir: &Path, base: i64) -> Result<(), LogError> {
    for ext in SIDE_EXTS {
        let staged = index_path(dir, base, ext, SWAP);
        if fs.exists(&staged) {
            rename(fs, &staged, &file_path(dir, base, ext))?;
        }
    }
    Ok(())
}

fn finish_log(fs: &dyn Fs, dir: &Path, base: i64, end: i64) -> Result<(), LogError> {
    rename(
        fs,
        &log_path(dir, base, end, SWAP),
        &file_path(dir, base, LOG_EXT),
    )?;
    sync_dir(fs, dir)
}

/// On open: completes every committed swap (`B-E.log.swap` present: delete segments in
/// `(B, E)`, rename into place), then deletes uncommitted `.cleaned` / `.swap` leftovers.
pub(crate) fn recover_swaps(fs: &dyn Fs, dir: &Path) -> Result<(), LogError> {
    let names = list(fs, dir)?;
    let mut touched = false;
    for (base, end) in names.iter().filter_map(|n| parse_swap_log(n)) {
        for other in names
            .iter()
            .filter_map(|n| crate::segment::parse_file_name(n, LOG_EXT))
        {
            if other > base && other < end {
                for ext in [LOG_EXT, INDEX_EXT, TIME_INDEX_EXT, TXN_INDEX_EXT] {
                    remove_if_exists(fs, &file_path(dir, other, ext))?;
                }
            }
        }
        finish_indexes(fs, dir, base)?;
        finish_log(fs, dir, base, end)?;
        info!(dir = %dir.display(), base, end, "completed an interrupted cleaner swap");
        touched = true;
    }
    for name in list(fs, dir)? {
        if name.ends_with(&format!(".{CLEANED}")) || name.ends_with(&format!(".{SWAP}")) {
            remove_if_exists(fs, &dir.join(&name))?;
            info!(dir = %dir.display(), file = %name, "removed an uncommitted cleaner file");
            touched = true;
        }
    }
    if touched {
        sync_dir(fs, dir)?;
    }
    Ok(())
}

fn list(fs: &dyn Fs, dir: &Path) -> Result<Vec<String>, LogError> {
    let mut names = fs
        .read_dir(dir)
        .map_err(io_err("list log directory", dir))?;
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_names_round_trip() {
        let p = log_path(Path::new("/x"), 5, 300, SWAP);
        let name = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(name, "00000000000000000005-00000000000000000300.log.swap");
        assert_eq!(parse_swap_log(name), Some((5, 300)));
        assert_eq!(parse_swap_log("00000000000000000005.log.swap"), None);
        assert_eq!(parse_swap_log("5-300.log.swap"), None);
    }
}
