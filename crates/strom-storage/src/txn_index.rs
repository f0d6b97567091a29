//! The aborted-transaction index (KIP-98): per segment a `<base>.txnindex` file of 34-byte
//! entries (version 0, producer id, first offset, last offset, last stable offset), in Kafka's
//! layout, kept in memory too so read_committed fetches can list the aborted transactions.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{io_err, LogError};
use crate::fs::{Fs, OpenMode};
use crate::log::{Inner, PartitionLog};
use crate::producer_state::{CompletedTxn, ProducerState};
use crate::recovery::Segments;
use crate::segment::{file_path, remove_if_exists};

pub(crate) const TXN_INDEX_EXT: &str = "txnindex";
const ENTRY_SIZE: usize = 34;
const ENTRY_VERSION: i16 = 0;

/// The `.txnindex` beside a segment's `.log`.
pub(crate) fn path_of(log_path: &Path) -> std::path::PathBuf {
    log_path.with_extension(TXN_INDEX_EXT)
}

/// One aborted transaction of a partition. `last_offset` is its abort marker's offset;
/// `last_stable_offset` is the partition's LSO right after the marker was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; ENTRY_SIZE] {
        let mut out = [0u8; ENTRY_SIZE];
        out[..2].copy_from_slice(&ENTRY_VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let i64_at = |at: usize| {
            b.get(at..at + 8)
                .and_then(|s| s.try_into().ok())
                .map(i64::from_be_bytes)
        };
        if b.get(..2)? != ENTRY_VERSION.to_be_bytes() {
            return None;
        }
        Some(Self {
            producer_id: i64_at(2)?,
            first_offset: i64_at(10)?,
            last_offset: i64_at(18)?,
            last_stable_offset: i64_at(26)?,
        })
    }
}

/// Aborted transactions by the base offset of the segment holding their marker.
#[derive(Debug, Default)]
pub(crate) struct TxnIndex {
    by_segment: BTreeMap<i64, Vec<AbortedTxn>>,
}

impl TxnIndex {
    /// Reads the `.txnindex` of each segment base (missing or torn files give what they hold).
    pub fn load(fs: &dyn Fs, dir: &Path, bases: impl Iterator<Item = i64>) -> TxnIndex {
        let mut by_segment = BTreeMap::new();
        for base in bases {
            let Ok(bytes) = fs.read(&file_path(dir, base, TXN_INDEX_EXT)) else {
                continue;
            };
            let entries: Vec<AbortedTxn> = bytes
                .chunks_exact(ENTRY_SIZE)
                .map_while(AbortedTxn::decode)
                .collect();
            if !entries.is_empty() {
                by_segment.insert(base, entries);
            }
        }
        TxnIndex { by_segment }
    }

    /// Records an abort whose marker is in segment `base` (appended to its file).
    pub fn push(
        &mut self,
        fs: &dyn Fs,
        dir: &Path,
        base: i64,
        txn: AbortedTxn,
    ) -> Result<(), LogError> {
        let path = file_path(dir, base, TXN_INDEX_EXT);
        let f = fs
            .open(&path, OpenMode::Create)
            .map_err(io_err("open transaction index", &path))?;
        // Whole entries only: a torn one left by a crash is overwritten.
        let len = f.size().map_err(io_err("stat transaction index", &path))?;
        let end = len - len % ENTRY_SIZE as u64;
        f.write_all_at(&txn.encode(), end)
            .map_err(io_err("write transaction index", &path))?;
        self.by_segment.entry(base).or_default().push(txn);
        Ok(())
    }

    /// Brings the index in line with the segments after recovery or truncation: forgets
    /// segments that are gone and aborts at or past `log_end`, then adds the aborts a
    /// producer-state replay found (each once), rewriting the files that changed.
    pub fn reconcile(
        &mut self,
        fs: &dyn Fs,
        dir: &Path,
        bases: &[i64],
        log_end: i64,
        replayed: &[AbortedTxn],
    ) -> Result<(), LogError> {
        let mut changed: Vec<i64> = Vec::new();
        self.by_segment.retain(|base, _| bases.contains(base));
        for (base, entries) in self.by_segment.iter_mut() {
            let before = entries.len();
            entries.retain(|t| t.last_offset < log_end);
            if entries.len() != before {
                changed.push(*base);
            }
        }
        for txn in replayed.iter().filter(|t| t.last_offset < log_end) {
            let Some(base) = bases
                .iter()
                .copied()
                .filter(|b| *b <= txn.last_offset)
                .max()
            else {
                continue;
            };
            let entries = self.by_segment.entry(base).or_default();
            if !entries
                .iter()
                .any(|e| e.producer_id == txn.producer_id && e.last_offset == txn.last_offset)
            {
                entries.push(*txn);
                entries.sort_by_key(|e| e.last_offset);
                changed.push(base);
            }
        }
        changed.sort_unstable();
        changed.dedup();
        for base in changed {
            let path = file_path(dir, base, TXN_INDEX_EXT);
            let entries = self.by_segment.get(&base).map(Vec::as_slice).unwrap_or(&[]);
            if entries.is_empty() {
                remove_if_exists(fs, &path)?;
                continue;
            }
            let bytes: Vec<u8> = entries.iter().flat_map(|e| e.encode()).collect();
            crate::producer_state::write_durably(fs, &path, &bytes)?;
        }
        Ok(())
    }

    /// Aborted transactions that overlap `[fetch_offset, upper)`, oldest marker first
    /// (what a read_committed fetch returns with its records). Segments wholly below
    /// `fetch_offset` are skipped; the walk ends at an abort whose LSO reached `upper`, since
    /// every later one started at or after that LSO (Kafka's `collectAbortedTxns`).
    pub fn collect(&self, fetch_offset: i64, upper: i64) -> Vec<AbortedTxn> {
        let from = self
            .by_segment
            .range(..=fetch_offset)
            .next_back()
            .map_or(i64::MIN, |(base, _)| *base);
        let mut out = Vec::new();
        for t in self
            .by_segment
            .range(from..)
            .flat_map(|(_, entries)| entries)
        {
            if t.last_offset >= fetch_offset && t.first_offset < upper {
                out.push(*t);
            }
            if t.last_stable_offset >= upper {
                break;
            }
        }
        out
    }

    /// Forgets the entries of segments that retention deleted.
    pub fn retain_segments(&mut self, keep: impl Fn(i64) -> bool) {
        self.by_segment.retain(|base, _| keep(*base));
    }
}

/// One producer of a partition as DescribeProducers shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// -1 when the producer has written no sequenced batch.
    pub last_sequence: i32,
    /// -1 when no transaction is open.
    pub current_txn_start_offset: i64,
    /// Coordinator epoch of the producer's last transaction marker (-1: none).
    pub coordinator_epoch: i32,
}

/// Loads the index of an opened log and adds what the producer-state replay found.
/// `present(base)` says whether segment `base` may have a `.txnindex` file (those that
/// cannot are not looked up).
pub(crate) fn open(
    fs: &dyn Fs,
    dir: &Path,
    segments: &Segments,
    log_end: i64,
    producers: &mut ProducerState,
    present: impl Fn(i64) -> bool,
) -> Result<TxnIndex, LogError> {
    let bases: Vec<i64> = segments.keys().copied().collect();
    let mut index = TxnIndex::load(fs, dir, bases.iter().copied().filter(|b| present(*b)));
    let replayed = std::mem::take(&mut producers.replayed_aborts);
    index.reconcile(fs, dir, &bases, log_end, &replayed)?;
    Ok(index)
}

/// After `truncate_to` reloaded the producer state: the index follows the shorter log.
pub(crate) fn after_truncation(inner: &mut Inner, fs: &dyn Fs, dir: &Path) -> Result<(), LogError> {
    let bases: Vec<i64> = inner.segments.keys().copied().collect();
    let end = inner.log_end_offset();
    let replayed = std::mem::take(&mut inner.producers.replayed_aborts);
    inner.txn_index.reconcile(fs, dir, &bases, end, &replayed)
}

/// Indexes the aborts among transactions just ended by markers appended to the active segment.
pub(crate) fn record_completed(
    inner: &mut Inner,
    fs: &dyn Fs,
    dir: &Path,
    completed: &[CompletedTxn],
) -> Result<(), LogError> {
    let base = inner.active().base_offset;
    for c in completed.iter().filter(|c| c.aborted) {
        let entry = inner.producers.aborted(c);
        inner.txn_index.push(fs, dir, base, entry)?;
        // The segment's first abort creates its `.txnindex`: the next flush syncs the name.
        inner.dir_dirty = true;
    }
    Ok(())
}

impl PartitionLog {
    /// The first offset of the earliest open transaction; the LSO is this (capped by the
    /// high watermark) or, with none open, the high watermark.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.inner.lock().producers.first_unstable_offset()
    }

    /// Aborted transactions overlapping `[fetch_offset, upper)` (read_committed fetch).
    pub fn aborted_transactions(&self, fetch_offset: i64, upper: i64) -> Vec<AbortedTxn> {
        let mut inner = self.inner.lock();
        let live: Vec<i64> = inner.segments.keys().copied().collect();
        inner
            .txn_index
            .retain_segments(|b| live.binary_search(&b).is_ok());
        inner.txn_index.collect(fetch_offset, upper)
    }

    /// The producers this partition knows, by producer id.
    pub fn active_producers(&self) -> Vec<ActiveProducer> {
        let inner = self.inner.lock();
        let mut out: Vec<ActiveProducer> = inner
            .producers
            .producers
            .iter()
            .map(|(id, e)| ActiveProducer {
                producer_id: *id,
                producer_epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                current_txn_start_offset: e.current_txn_first_offset.unwrap_or(-1),
                coordinator_epoch: e.coordinator_epoch,
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    #[test]
    fn push_load_reconcile_collect() {
        let fs = crate::fs::StdFs;
        let dir = tempfile::tempdir().unwrap();
        let mut index = TxnIndex::default();
        index.push(&fs, dir.path(), 0, t(1, 2, 5)).unwrap();
        index.push(&fs, dir.path(), 10, t(2, 8, 12)).unwrap();
        let mut loaded = TxnIndex::load(&fs, dir.path(), [0, 10].into_iter());
        assert_eq!(loaded.collect(0, i64::MAX), vec![t(1, 2, 5), t(2, 8, 12)]);
        assert_eq!(loaded.collect(6, 8), Vec::<AbortedTxn>::new());
        assert_eq!(loaded.collect(6, 9), vec![t(2, 8, 12)]);
        // The tail past offset 11 was truncated; a replay found another abort at 7.
        loaded
            .reconcile(&fs, dir.path(), &[0, 10], 11, &[t(3, 6, 7), t(1, 2, 5)])
            .unwrap();
        assert_eq!(loaded.collect(0, i64::MAX), vec![t(1, 2, 5), t(3, 6, 7)]);
        let reread = TxnIndex::load(&fs, dir.path(), [0, 10].into_iter());
        assert_eq!(reread.collect(0, i64::MAX), vec![t(1, 2, 5), t(3, 6, 7)]);
        assert!(!file_path(dir.path(), 10, TXN_INDEX_EXT).exists());
    }
}
