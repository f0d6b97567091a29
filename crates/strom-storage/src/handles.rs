//! Lazily opened segment files with a bound on how many stay open (`log.open.files.max`).
//!
//! A [`LazyFile`] names a file (`.log`, `.index`, `.timeindex`) and opens it on first use; a
//! [`HandleCache`] counts the open ones and, past its bound, closes the least recently used.
//! Closing only drops the cache's reference: [`LazyFile::get`] hands out an `Arc` of the open
//! file, so a read in progress (a fetch sending a [`crate::FileSlice`]) keeps its file however
//! long it takes, and the descriptor is closed when the last holder lets go. A file whose
//! segment was deleted or replaced is [`LazyFile::retire`]d: it is never reopened by name
//! (the name may by then belong to the cleaner's replacement); a handle it had open stays
//! with it, outside the bound, for the readers that still hold the old segment, and closes
//! when the segment is dropped.
//!
//! Recency is approximate: every open advances a tick and each use stamps the current tick
//! on its file, so a hit costs a mutex and two atomic operations, and eviction (sorting the
//! open files by stamp) runs once per `max / 8` opens past the bound.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;

use crate::fs::{Fs, FsFile, OpenMode};

/// The default bound: well under the usual 1024-descriptor soft limit's multiples that
/// distributions raise brokers to (Kafka deployments use 100k+), leaving room for sockets.
pub const DEFAULT_OPEN_FILES_MAX: usize = 4096;

/// Counts and bounds the open [`LazyFile`]s that share it.
#[derive(Debug)]
pub struct HandleCache {
    max: AtomicUsize,
    tick: AtomicU64,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Weak<Shared>>>,
    opens: AtomicU64,
    evictions: AtomicU64,
}

/// What a [`HandleCache`] has done, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandleStats {
    /// Files the cache holds open now.
    pub open: usize,
    /// Files opened so far (first uses and reopens after eviction).
    pub opens: u64,
    /// Files closed because the bound was reached.
    pub evictions: u64,
}

impl HandleCache {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max: AtomicUsize::new(max.max(1)),
            tick: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
            opens: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
        })
    }

    /// The cache every log opened without an explicit one shares (one per process, so the
    /// bound holds for the whole broker).
    pub fn global() -> &'static Arc<HandleCache> {
        static GLOBAL: OnceLock<Arc<HandleCache>> = OnceLock::new();
        GLOBAL.get_or_init(|| HandleCache::new(DEFAULT_OPEN_FILES_MAX))
    }

    /// Changes the bound; files above it close as soon as the next file opens.
    pub fn set_max(&self, max: usize) {
        self.max.store(max.max(1), Ordering::Relaxed);
    }

    pub fn max(&self) -> usize {
        self.max.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> HandleStats {
        HandleStats {
            open: self.open.lock().len(),
            opens: self.opens.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }

    /// A not-yet-opened file at `path`.
    pub(crate) fn lazy(self: &Arc<Self>, fs: Arc<dyn Fs>, path: &Path) -> LazyFile {
        LazyFile(Arc::new(Shared {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            path: path.to_path_buf(),
            fs,
            cache: Arc::clone(self),
            slot: Mutex::new(Slot::Closed),
            last_used: AtomicU64::new(0),
        }))
    }

    /// Records that `file` holds a descriptor; returns the files to close (never `file`).
    fn register(&self, file: &Arc<Shared>) -> Vec<Arc<Shared>> {
        self.opens.fetch_add(1, Ordering::Relaxed);
        self.tick.fetch_add(1, Ordering::Relaxed);
        let max = self.max();
        let mut open = self.open.lock();
        open.insert(file.id, Arc::downgrade(file));
        if open.len() <= max {
            return Vec::new();
        }
        // Close down to 7/8 of the bound so the sort runs once per max/8 opens.
        let target = max - max / 8;
        let mut live: Vec<(u64, Arc<Shared>)> = Vec::with_capacity(open.len());
        open.retain(|_, w| match w.upgrade() {
            Some(s) => {
                live.push((s.last_used.load(Ordering::Relaxed), s));
                true
            }
            None => false,
        });
        live.sort_unstable_by_key(|(used, _)| *used);
        let mut victims = Vec::new();
        for (_, s) in live {
            if open.len() <= target {
                break;
            }
            if s.id != file.id {
                open.remove(&s.id);
                victims.push(s);
            }
        }
        self.evictions
            .fetch_add(victims.len() as u64, Ordering::Relaxed);
        victims
    }

    fn unregister(&self, id: u64) {
        self.open.lock().remove(&id);
    }
}

#[derive(Debug)]
enum Slot {
    Closed,
    Open(Arc<dyn FsFile>),
    /// Deleted or replaced while open: kept (outside the bound) until the segment goes.
    Kept(Arc<dyn FsFile>),
    /// Deleted or replaced while closed: never reopened.
    Retired,
}

#[derive(Debug)]
struct Shared {
    id: u64,
    path: PathBuf,
    fs: Arc<dyn Fs>,
    cache: Arc<HandleCache>,
    slot: Mutex<Slot>,
    last_used: AtomicU64,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if matches!(*self.slot.get_mut(), Slot::Open(_)) {
            self.cache.unregister(self.id);
        }
    }
}

/// A segment file opened on first use and closed by its [`HandleCache`] when idle.
#[derive(Debug)]
pub(crate) struct LazyFile(Arc<Shared>);

impl LazyFile {
    /// The open file (opening it if the cache closed it). Hold the `Arc` for the duration of
    /// a read: eviction then leaves it open until it is dropped.
    pub fn get(&self) -> io::Result<Arc<dyn FsFile>> {
        let shared = &self.0;
        let cache = &shared.cache;
        let mut slot = shared.slot.lock();
        shared
            .last_used
            .store(cache.tick.load(Ordering::Relaxed), Ordering::Relaxed);
        let file = match &*slot {
            Slot::Open(f) | Slot::Kept(f) => return Ok(Arc::clone(f)),
            Slot::Retired => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("{} was deleted", shared.path.display()),
                ))
            }
            Slot::Closed => shared.fs.open(&shared.path, OpenMode::Existing)?,
        };
        *slot = Slot::Open(Arc::clone(&file));
        drop(slot);
        // Victims are closed outside the cache lock and outside this file's slot lock (a
        // victim's owner may be in `get` waiting for the cache lock while holding its slot).
        for victim in cache.register(shared) {
            let mut s = victim.slot.lock();
            if matches!(*s, Slot::Open(_)) {
                *s = Slot::Closed;
            }
        }
        Ok(file)
    }

    /// Installs a file the caller just created (so the first use does not reopen it).
    pub fn install(&self, file: Arc<dyn FsFile>) {
        let shared = &self.0;
        let mut slot = shared.slot.lock();
        if !matches!(*slot, Slot::Closed) {
            return;
        }
        *slot = Slot::Open(file);
        drop(slot);
        for victim in shared.cache.register(shared) {
            let mut s = victim.slot.lock();
            if matches!(*s, Slot::Open(_)) {
                *s = Slot::Closed;
            }
        }
    }

    /// The file was deleted or its name is about to belong to another file: never reopen
    /// it by name. An open handle stays with this file (outside the bound) for readers of
    /// the old segment.
    pub fn retire(&self) {
        let was_open = {
            let mut slot = self.0.slot.lock();
            let was_open = matches!(*slot, Slot::Open(_));
            *slot = match std::mem::replace(&mut *slot, Slot::Retired) {
                Slot::Open(f) | Slot::Kept(f) => Slot::Kept(f),
                Slot::Closed | Slot::Retired => Slot::Retired,
            };
            was_open
        };
        if was_open {
            self.0.cache.unregister(self.0.id);
        }
    }

    /// Whether the cache holds this file open now.
    #[cfg(test)]
    pub fn is_open(&self) -> bool {
        matches!(*self.0.slot.lock(), Slot::Open(_))
    }

    /// Opens the file if the cache closed it, then [`Self::retire`]s it with the handle
    /// kept: readers of the old segment read the old file after its name is reused.
    pub fn retire_keeping_open(&self) -> io::Result<()> {
        let opened = self.get().map(drop);
        self.retire();
        opened
    }
}

/// Reads and writes through a lazy file reopen it if the cache closed it; hold
/// [`LazyFile::get`]'s `Arc` instead where a descriptor must outlive eviction.
impl FsFile for LazyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.get()?.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.get()?.write_at(buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        self.get()?.size()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.get()?.set_len(len)
    }
    fn sync_all(&self) -> io::Result<()> {
        self.get()?.sync_all()
    }
    fn sync_data(&self) -> io::Result<()> {
        self.get()?.sync_data()
    }
    fn modified_ms(&self) -> io::Result<i64> {
        self.get()?.modified_ms()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.get()?.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.get()?.write_all_at(buf, offset)
    }
    fn write_all_vectored_at(&self, bufs: &[&[u8]], offset: u64) -> io::Result<()> {
        self.get()?.write_all_vectored_at(bufs, offset)
    }
}

/// The file system and the handle cache a log's segments open their files through.
#[derive(Debug, Clone)]
pub(crate) struct Files {
    pub fs: Arc<dyn Fs>,
    pub cache: Arc<HandleCache>,
}

impl Files {
    pub fn lazy(&self, path: &Path) -> LazyFile {
        self.cache.lazy(Arc::clone(&self.fs), path)
    }

    /// Opens (creating if `create`) `path` now and keeps it open in the cache.
    pub fn open_now(&self, path: &Path, create: bool) -> io::Result<LazyFile> {
        let mode = if create {
            OpenMode::Create
        } else {
            OpenMode::Existing
        };
        let file = self.fs.open(path, mode)?;
        let lazy = self.lazy(path);
        lazy.install(file);
        Ok(lazy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::StdFs;

    fn files(dir: &Path, n: usize) -> Vec<PathBuf> {
        (0..n)
            .map(|i| {
                let p = dir.join(format!("{i}.log"));
                std::fs::write(&p, format!("file {i}")).unwrap();
                p
            })
            .collect()
    }

    fn read_all(f: &dyn FsFile) -> String {
        let mut buf = vec![0u8; f.size().unwrap() as usize];
        f.read_exact_at(&mut buf, 0).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn opens_lazily_and_stays_within_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HandleCache::new(8);
        let fs: Arc<dyn Fs> = Arc::new(StdFs);
        let lazy: Vec<LazyFile> = files(dir.path(), 40)
            .iter()
            .map(|p| cache.lazy(fs.clone(), p))
            .collect();
        assert_eq!(cache.stats().open, 0, "nothing opens before first use");
        for round in 0..3 {
            for (i, l) in lazy.iter().enumerate() {
                assert_eq!(read_all(&*l.get().unwrap()), format!("file {i}"));
                assert!(cache.stats().open <= 8, "round {round} file {i}");
            }
        }
        let stats = cache.stats();
        assert_eq!(stats.opens, 120, "every use after eviction reopens");
        assert_eq!(stats.evictions, 120 - stats.open as u64);
        assert_eq!(lazy.iter().filter(|l| l.is_open()).count(), stats.open);
    }

    #[test]
    fn recently_used_files_stay_open() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HandleCache::new(8);
        let fs: Arc<dyn Fs> = Arc::new(StdFs);
        let lazy: Vec<LazyFile> = files(dir.path(), 30)
            .iter()
            .map(|p| cache.lazy(fs.clone(), p))
            .collect();
        for l in &lazy[1..] {
            // File 0 is used between every other open: it is never the oldest.
            lazy[0].get().unwrap();
            l.get().unwrap();
        }
        assert!(lazy[0].is_open());
        assert!(!lazy[1].is_open());
    }

    #[test]
    fn eviction_keeps_a_held_file_readable() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HandleCache::new(2);
        let fs: Arc<dyn Fs> = Arc::new(StdFs);
        let paths = files(dir.path(), 10);
        let lazy: Vec<LazyFile> = paths.iter().map(|p| cache.lazy(fs.clone(), p)).collect();
        // A fetch in progress holds file 0 ...
        let held = lazy[0].get().unwrap();
        // ... while everything else is opened, evicting it from the cache ...
        for l in &lazy[1..] {
            l.get().unwrap();
        }
        assert!(!lazy[0].is_open());
        // ... and retention deletes and retires it.
        std::fs::remove_file(&paths[0]).unwrap();
        lazy[0].retire();
        assert_eq!(
            read_all(&*held),
            "file 0",
            "the held descriptor still reads"
        );
        assert_eq!(
            lazy[0].get().unwrap_err().kind(),
            io::ErrorKind::NotFound,
            "a retired file is never reopened"
        );
        drop(held);
        assert!(cache.stats().open <= 2);
    }

    #[test]
    fn a_retired_file_is_not_reopened_under_a_new_owner_of_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HandleCache::new(4);
        let fs: Arc<dyn Fs> = Arc::new(StdFs);
        let paths = files(dir.path(), 1);
        let old = cache.lazy(fs.clone(), &paths[0]);
        let closed = cache.lazy(fs.clone(), &paths[0]);
        assert_eq!(read_all(&*old.get().unwrap()), "file 0");
        // The cleaner's swap: the old segment keeps its open file, outside the bound ...
        old.retire_keeping_open().unwrap();
        closed.retire();
        assert_eq!(cache.stats().open, 0);
        let tmp = paths[0].with_extension("cleaned");
        std::fs::write(&tmp, "replacement").unwrap();
        std::fs::rename(&tmp, &paths[0]).unwrap();
        // ... and reads the old bytes, while a closed one is never reopened by name.
        assert_eq!(read_all(&*old.get().unwrap()), "file 0");
        assert!(closed.get().is_err());
        let new = cache.lazy(fs, &paths[0]);
        assert_eq!(read_all(&*new.get().unwrap()), "replacement");
        drop(new);
        assert_eq!(
            cache.stats().open,
            0,
            "dropping an open file unregisters it"
        );
    }

    #[test]
    fn concurrent_readers_under_a_tiny_bound() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HandleCache::new(3);
        let fs: Arc<dyn Fs> = Arc::new(StdFs);
        let lazy: Arc<Vec<LazyFile>> = Arc::new(
            files(dir.path(), 16)
                .iter()
                .map(|p| cache.lazy(fs.clone(), p))
                .collect(),
        );
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let lazy = Arc::clone(&lazy);
                std::thread::spawn(move || {
                    for k in 0..500 {
                        let i = (k * 7 + t * 3) % lazy.len();
                        assert_eq!(read_all(&*lazy[i].get().unwrap()), format!("file {i}"));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(cache.stats().open <= 3);
    }
}
