//! Sparse segment indexes: `.index` (relative offset u32, position u32) and `.timeindex`
//! (timestamp i64, relative offset u32), big-endian fixed-size entries searched by binary
//! search. The active segment keeps entries in memory; closed segments search the file with pread.

use std::path::{Path, PathBuf};

use parking_lot::RwLock;

use crate::error::{io_err, LogError};
use crate::fs::{Fs, FsFile, OpenMode};
use crate::handles::{Files, LazyFile};

/// A fixed-size index entry.
pub(crate) trait IndexEntry: Copy + std::fmt::Debug + Send + Sync {
    const SIZE: usize;
    fn encode(&self, out: &mut [u8]);
    fn decode(b: &[u8]) -> Self;
}

/// `.index` entry: batch with base offset `base + relative_offset` starts at `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        Self {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
}

/// `.timeindex` entry: the largest timestamp up to here is `timestamp`, first seen in the batch
/// with base offset `base + relative_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        Self {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

enum State<E> {
    /// Entries in memory; `persisted` of them are already written to the file.
    Active { entries: Vec<E>, persisted: usize },
    /// Entries only in the file (`len` of them).
    Closed { len: usize },
}

/// One index file. Invariant: entries are strictly increasing in their key(s).
pub(crate) struct Index<E: IndexEntry> {
    path: PathBuf,
    /// Opened on first use, closed by the handle cache when idle: the active index is in
    /// memory and touches its file only when persisted or synced.
    file: LazyFile,
    state: RwLock<State<E>>,
}

impl<E: IndexEntry> Index<E> {
    /// Writes `entries` as the whole file (a new or rebuilt index).
    pub fn create(
        files: &Files,
        path: &Path,
        entries: Vec<E>,
        active: bool,
    ) -> Result<Self, LogError> {
        crate::segment::remove_if_exists(&*files.fs, path)?;
        let file = files
            .open_now(path, true)
            .map_err(io_err("open index", path))?;
        let index = Self {
            path: path.to_path_buf(),
            file,
            state: RwLock::new(State::Active {
                entries,
                persisted: 0,
            }),
        };
        index.persist()?;
        if !active {
            index.close_in_memory();
        }
        Ok(index)
    }

    /// The active index of a segment recovery scanned, with the entries the scan rebuilt:
    /// a file holding a prefix of them (what a crash leaves of an intact active index) is
    /// kept and the missing entries appended; any other file is replaced by `entries`.
    pub fn open_rebuilt(files: &Files, path: &Path, entries: Vec<E>) -> Result<Self, LogError>
    where
        E: PartialEq,
    {
        let on_disk = match Self::read_entries(&*files.fs, path) {
            Some(on_disk)
                if on_disk.len() <= entries.len() && entries[..on_disk.len()] == on_disk[..] =>
            {
                on_disk.len()
            }
            _ => return Self::create(files, path, entries, true),
        };
        let index = Self {
            path: path.to_path_buf(),
            file: files.lazy(path),
            state: RwLock::new(State::Active {
                entries,
                persisted: on_disk,
            }),
        };
        index.persist()?;
        Ok(index)
    }

    /// Reads the whole file; `None` if it is missing or its size is not a whole number of entries.
    pub fn read_entries(fs: &dyn Fs, path: &Path) -> Option<Vec<E>> {
        let bytes = fs.read(path).ok()?;
        if bytes.len() % E::SIZE != 0 {
            return None;
        }
        Some(bytes.chunks_exact(E::SIZE).map(E::decode).collect())
    }

    /// Writes `entries` as a new file `path` and fsyncs it (the cleaner's staged indexes).
    pub fn write_synced(fs: &dyn Fs, path: &Path, entries: &[E]) -> Result<(), LogError> {
        crate::segment::remove_if_exists(fs, path)?;
        let mut buf = vec![0u8; entries.len() * E::SIZE];
        for (e, out) in entries.iter().zip(buf.chunks_exact_mut(E::SIZE)) {
            e.encode(out);
        }
        let file = fs
            .open(path, OpenMode::Create)
            .map_err(io_err("open index", path))?;
        file.write_all_at(&buf, 0)
            .map_err(io_err("write index", path))?;
        file.sync_data().map_err(io_err("fsync index", path))
    }

    /// An existing index whose entries the caller has already validated (its file is
    /// opened when first needed).
    pub fn open(
        files: &Files,
        path: &Path,
        entries: Vec<E>,
        active: bool,
    ) -> Result<Self, LogError> {
        let file = files.lazy(path);
        let len = entries.len();
        let state = if active {
            State::Active {
                entries,
                persisted: len,
            }
        } else {
            State::Closed { len }
        };
        Ok(Self {
            path: path.to_path_buf(),
            file,
            state: RwLock::new(state),
        })
    }

    pub fn len(&self) -> usize {
        match &*self.state.read() {
            State::Active { entries, .. } => entries.len(),
            State::Closed { len } => *len,
        }
    }

    fn entry_in(&self, state: &State<E>, i: usize) -> Option<E> {
        match state {
            State::Active { entries, .. } => entries.get(i).copied(),
            State::Closed { len } if i < *len => {
                let mut b = [0u8; 16];
                let b = &mut b[..E::SIZE];
                self.file.read_exact_at(b, (i * E::SIZE) as u64).ok()?;
                Some(E::decode(b))
            }
            State::Closed { .. } => None,
        }
    }

    /// The last entry whose `key` is <= `target` (keys must be increasing).
    pub fn floor(&self, target: i64, key: impl Fn(&E) -> i64) -> Option<E> {
        let state = self.state.read();
        let (mut lo, mut hi) = (
            0usize,
            match &*state {
                State::Active { entries, .. } => entries.len(),
                State::Closed { len } => *len,
            },
        );
        // Invariant: entries[..lo] have key <= target, entries[hi..] have key > target.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = self.entry_in(&state, mid)?;
            if key(&e) <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1).and_then(|i| self.entry_in(&state, i))
    }

    /// Appends to an active index (the caller checks ordering).
    pub fn push(&self, e: E) {
        match &mut *self.state.write() {
            State::Active { entries, .. } => entries.push(e),
            State::Closed { .. } => panic!("append to the closed index {}", self.path.display()),
        }
    }

    /// Writes the entries not yet in the file.
    pub fn persist(&self) -> Result<(), LogError> {
        let mut state = self.state.write();
        if let State::Active { entries, persisted } = &mut *state {
            if *persisted < entries.len() {
                let mut buf = vec![0u8; (entries.len() - *persisted) * E::SIZE];
                for (e, out) in entries[*persisted..]
                    .iter()
                    .zip(buf.chunks_exact_mut(E::SIZE))
                {
                    e.encode(out);
                }
                self.file
                    .write_all_at(&buf, (*persisted * E::SIZE) as u64)
                    .map_err(io_err("write index", &self.path))?;
                *persisted = entries.len();
            }
        }
        Ok(())
    }

    pub fn sync(&self) -> Result<(), LogError> {
        self.file
            .sync_data()
            .map_err(io_err("fsync index", &self.path))
    }

    /// Drops the in-memory copy; later lookups pread the file. Call `persist` first.
    pub fn close_in_memory(&self) {
        let mut state = self.state.write();
        if let State::Active { entries, persisted } = &*state {
            assert_eq!(
                *persisted,
                entries.len(),
                "closing index {} with unwritten entries",
                self.path.display()
            );
            *state = State::Closed { len: entries.len() };
        }
    }

    /// Replaces all entries (after truncation or rebuild) and makes the index active.
    pub fn reset(&self, entries: Vec<E>) -> Result<(), LogError> {
        self.file
            .set_len(0)
            .map_err(io_err("truncate index", &self.path))?;
        *self.state.write() = State::Active {
            entries,
            persisted: 0,
        };
        self.persist()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// See [`crate::segment::Segment::retire`].
    pub fn retire(&self) {
        self.file.retire();
    }

    /// See [`crate::segment::Segment::retire_keeping_open`].
    pub fn retire_keeping_open(&self) -> Result<(), LogError> {
        self.file
            .retire_keeping_open()
            .map_err(io_err("open index", &self.path))
    }
}

/// Checks a loaded offset index: increasing offsets and positions within `log_size`.
pub(crate) fn offset_entries_valid(entries: &[OffsetEntry], log_size: u64) -> bool {
    entries
        .windows(2)
        .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position)
        && entries.iter().all(|e| u64::from(e.position) < log_size)
}

/// Checks a loaded time index: increasing timestamps and offsets, offsets below `max_relative`.
pub(crate) fn time_entries_valid(entries: &[TimeEntry], max_relative: u32) -> bool {
    entries
        .windows(2)
        .all(|w| w[0].timestamp < w[1].timestamp && w[0].relative_offset <= w[1].relative_offset)
        && entries.iter().all(|e| e.relative_offset <= max_relative)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn test_files() -> Files {
        Files {
            fs: Arc::new(crate::fs::StdFs),
            cache: crate::handles::HandleCache::new(16),
        }
    }

    fn oe(r: u32, p: u32) -> OffsetEntry {
        OffsetEntry {
            relative_offset: r,
            position: p,
        }
    }

    #[test]
    fn floor_in_memory_and_on_disk() {
        let fs = crate::fs::StdFs;
        let files = test_files();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let entries: Vec<_> = (0..100u32).map(|i| oe(i * 10, i * 1000)).collect();
        for active in [true, false] {
            let idx = Index::create(&files, &path, entries.clone(), active).unwrap();
            let key = |e: &OffsetEntry| i64::from(e.relative_offset);
            assert_eq!(idx.floor(-1, key), None);
            assert_eq!(idx.floor(0, key), Some(oe(0, 0)));
            assert_eq!(idx.floor(15, key), Some(oe(10, 1000)));
            assert_eq!(idx.floor(10_000, key), Some(oe(990, 99_000)));
            assert_eq!(idx.floor(i64::MAX, key), Some(oe(990, 99_000)));
            assert_eq!(idx.len(), 100);
        }
        assert_eq!(
            Index::<OffsetEntry>::read_entries(&fs, &path).unwrap(),
            entries
        );
    }

    #[test]
    fn push_persist_reload() {
        let fs = crate::fs::StdFs;
        let files = test_files();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let idx = Index::<TimeEntry>::create(&files, &path, Vec::new(), true).unwrap();
        idx.push(TimeEntry {
            timestamp: 5,
            relative_offset: 0,
        });
        idx.persist().unwrap();
        idx.push(TimeEntry {
            timestamp: 9,
            relative_offset: 3,
        });
        idx.persist().unwrap();
        let back = Index::<TimeEntry>::read_entries(&fs, &path).unwrap();
        assert_eq!(back.len(), 2);
        assert!(time_entries_valid(&back, 3));
        assert!(!time_entries_valid(&back, 2));
        std::fs::write(&path, [0u8; 13]).unwrap();
        assert!(Index::<TimeEntry>::read_entries(&fs, &path).is_none());
    }

    #[test]
    fn offset_validation() {
        assert!(offset_entries_valid(&[oe(1, 10), oe(2, 20)], 21));
        assert!(!offset_entries_valid(&[oe(1, 10), oe(2, 20)], 20));
        assert!(!offset_entries_valid(&[oe(2, 10), oe(2, 20)], 100));
    }
}
