//! A simulated disk for crash and fault tests, in the style of TigerBeetle's simulator. Each
//! file has the bytes written (the page cache) and the bytes last fsynced; each directory has
//! its entries and the entries last fsynced. [`SimFs::crash`] keeps only what was durable:
//! unsynced creates, renames and unlinks are undone and each file goes back to its synced
//! contents, or, with tearing on, to a mix of old and new 512-byte sectors and either size.
//! Handles opened before a crash fail afterwards. [`Fault`]s make chosen operations fail
//! (ENOSPC, EIO, EMFILE ...), and a capacity makes writes run out of space like a full disk.
//! Simplifications: directories themselves are created and removed durably, and a file's
//! space is counted while any directory entry links it.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::{Fs, FsFile, OpenMode};

/// Sector size of the tearing model: a crash persists or loses each sector independently.
const SECTOR: usize = 512;

/// Operations a [`Fault`] can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// Any open (of an existing file or one to create).
    Open,
    /// An open that would create the file.
    Create,
    Read,
    Write,
    SetLen,
    /// `sync_all` / `sync_data` of a file.
    Sync,
    SyncDir,
    Rename,
    Remove,
}

/// Makes matching operations fail with `errno`: after letting `skip` of them through, the
/// next `times` fail. `Write` faults of `ENOSPC` write half the buffer first (a short write).
#[derive(Debug, Clone)]
pub struct Fault {
    pub op: FaultOp,
    /// Only paths containing this (empty = every path).
    pub path_contains: String,
    pub skip: u32,
    pub times: u32,
    pub errno: i32,
}

impl Fault {
    /// Fails every matching operation from now on (until [`SimFs::clear_faults`]).
    pub fn new(op: FaultOp, errno: i32) -> Self {
        Self {
            op,
            path_contains: String::new(),
            skip: 0,
            times: u32::MAX,
            errno,
        }
    }
    pub fn path(mut self, contains: &str) -> Self {
        self.path_contains = contains.to_owned();
        self
    }
    pub fn skip(mut self, n: u32) -> Self {
        self.skip = n;
        self
    }
    pub fn times(mut self, n: u32) -> Self {
        self.times = n;
        self
    }
}

#[derive(Debug, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct Dir {
    entries: BTreeMap<String, u64>,
    durable: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    dirs: HashMap<PathBuf, Dir>,
    /// Bumped by each crash; handles of an older generation are dead.
    generation: u64,
    rng: u64,
    tear: bool,
    faults: Vec<Fault>,
    capacity: Option<u64>,
    file_syncs: u64,
    dir_syncs: u64,
}

/// The simulated file system. Clone the `Arc` into the logs under test.
#[derive(Debug)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn not_found() -> io::Error {
    io::ErrorKind::NotFound.into()
}

fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let parent = path.parent().ok_or_else(not_found)?.to_path_buf();
    let name = path
        .file_name()
        .ok_or_else(not_found)?
        .to_string_lossy()
        .into_owned();
    Ok((parent, name))
}

impl State {
    fn next_random(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The error of the first fault matching `op` on `path`, counting it.
    fn fault(&mut self, op: FaultOp, path: &Path) -> Option<io::Error> {
        let path = path.to_string_lossy();
        let i = self
            .faults
            .iter()
            .position(|f| f.op == op && path.contains(f.path_contains.as_str()))?;
        let f = &mut self.faults[i];
        if f.skip > 0 {
            f.skip -= 1;
            return None;
        }
        let code = f.errno;
        f.times = f.times.saturating_sub(1);
        if f.times == 0 {
            self.faults.remove(i);
        }
        Some(errno(code))
    }

    fn lookup(&self, path: &Path) -> io::Result<u64> {
        let (parent, name) = split(path)?;
        self.dirs
            .get(&parent)
            .and_then(|d| d.entries.get(&name))
            .copied()
            .ok_or_else(not_found)
    }

    fn used_bytes(&self) -> u64 {
        let mut linked: Vec<u64> = self
            .dirs
            .values()
            .flat_map(|d| d.entries.values().copied())
            .collect();
        linked.sort_unstable();
        linked.dedup();
        linked
            .iter()
            .filter_map(|i| self.inodes.get(i))
            .map(|n| n.data.len() as u64)
            .sum()
    }

    fn crash(&mut self) {
        self.generation += 1;
        self.faults.clear();
        for dir in self.dirs.values_mut() {
            dir.entries = dir.durable.clone();
        }
        let mut live: Vec<u64> = self
            .dirs
            .values()
            .flat_map(|d| d.entries.values().copied())
            .collect();
        live.sort_unstable();
        live.dedup();
        let mut inodes = std::mem::take(&mut self.inodes);
        for id in live {
            let Some(mut inode) = inodes.remove(&id) else {
                continue;
            };
            let survived = if self.tear && inode.data != inode.durable {
                self.tear_write_back(&inode)
            } else {
                std::mem::take(&mut inode.durable)
            };
            self.inodes.insert(
                id,
                Inode {
                    data: survived.clone(),
                    durable: survived,
                },
            );
        }
    }

    /// What a crash leaves of a file with unsynced changes: either size, and per sector the
    /// synced or the written bytes (zeros where neither reaches).
    fn tear_write_back(&mut self, inode: &Inode) -> Vec<u8> {
        let len = if self.next_random().is_multiple_of(2) {
            inode.data.len()
        } else {
            inode.durable.len()
        };
        let mut out = vec![0u8; len];
        for start in (0..len).step_by(SECTOR) {
            let end = (start + SECTOR).min(len);
            let src = if self.next_random().is_multiple_of(2) {
                &inode.data
            } else {
                &inode.durable
            };
            if src.len() > start {
                let avail = src.len().min(end);
                out[start..avail].copy_from_slice(&src[start..avail]);
            }
        }
        out
    }
}

impl SimFs {
    /// An empty disk; `seed` drives the tearing at crashes.
    pub fn new(seed: u64) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                rng: seed,
                ..State::default()
            })),
        }
    }

    /// Whether crashes tear unsynced data at sector granularity (default: whole files revert).
    pub fn set_tearing(&self, tear: bool) {
        self.state.lock().tear = tear;
    }

    /// Total bytes the files may hold; writes past it fail with ENOSPC (after a short write).
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.state.lock().capacity = bytes;
    }

    pub fn inject(&self, fault: Fault) {
        self.state.lock().faults.push(fault);
    }

    pub fn clear_faults(&self) {
        self.state.lock().faults.clear();
    }

    /// Power loss: everything not fsynced is dropped (see the module doc). Handles opened
    /// before fail from now on; faults are cleared.
    pub fn crash(&self) {
        self.state.lock().crash();
    }

    /// (file fsyncs, directory fsyncs) so far.
    pub fn sync_counts(&self) -> (u64, u64) {
        let s = self.state.lock();
        (s.file_syncs, s.dir_syncs)
    }

    /// Bytes held by the files linked in some directory.
    pub fn used_bytes(&self) -> u64 {
        self.state.lock().used_bytes()
    }
}

#[derive(Debug)]
struct SimFile {
    state: Arc<Mutex<State>>,
    inode: u64,
    generation: u64,
    path: PathBuf,
}

impl SimFile {
    fn alive(&self, s: &State) -> io::Result<()> {
        if s.generation == self.generation {
            Ok(())
        } else {
            Err(io::Error::other(
                "simulated crash: this handle belongs to a process that died",
            ))
        }
    }

    /// Runs `f` on the inode unless the handle died in a crash or a fault hits `op`.
    fn with<T>(
        &self,
        op: FaultOp,
        f: impl FnOnce(&mut State, u64) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut s = self.state.lock();
        self.alive(&s)?;
        if let Some(e) = s.fault(op, &self.path) {
            return Err(e);
        }
        f(&mut s, self.inode)
    }
}

const ENOSPC: i32 = 28;

fn write_bytes(s: &mut State, id: u64, buf: &[u8], offset: u64) {
    let data = &mut s.inodes.get_mut(&id).expect("open inode").data;
    let end = offset as usize + buf.len();
    if data.len() < end {
        data.resize(end, 0);
    }
    data[offset as usize..end].copy_from_slice(buf);
}

impl FsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.with(FaultOp::Read, |s, id| {
            let data = &s.inodes[&id].data;
            let start = (offset as usize).min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            Ok(n)
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let mut s = self.state.lock();
        self.alive(&s)?;
        if let Some(e) = s.fault(FaultOp::Write, &self.path) {
            if e.raw_os_error() == Some(ENOSPC) {
                // Part of the buffer lands first, as when a disk fills mid-write.
                write_bytes(&mut s, self.inode, &buf[..buf.len() / 2], offset);
            }
            return Err(e);
        }
        let len = s.inodes[&self.inode].data.len() as u64;
        let growth = (offset + buf.len() as u64).saturating_sub(len);
        let mut n = buf.len();
        if let Some(cap) = s.capacity {
            let free = cap.saturating_sub(s.used_bytes());
            if growth > free {
                n = (free + len).saturating_sub(offset) as usize;
                if n == 0 {
                    return Err(errno(ENOSPC));
                }
            }
        }
        write_bytes(&mut s, self.inode, &buf[..n], offset);
        Ok(n)
    }

    fn size(&self) -> io::Result<u64> {
        self.with(FaultOp::Read, |s, id| Ok(s.inodes[&id].data.len() as u64))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.with(FaultOp::SetLen, |s, id| {
            let data = &mut s.inodes.get_mut(&id).expect("open inode").data;
            data.resize(len as usize, 0);
            Ok(())
        })
    }

    fn sync_all(&self) -> io::Result<()> {
        self.with(FaultOp::Sync, |s, id| {
            s.file_syncs += 1;
            let inode = s.inodes.get_mut(&id).expect("open inode");
            inode.durable.clone_from(&inode.data);
            Ok(())
        })
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync_all()
    }

    fn modified_ms(&self) -> io::Result<i64> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

impl Fs for SimFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FsFile>> {
        let mut s = self.state.lock();
        if let Some(e) = s.fault(FaultOp::Open, path) {
            return Err(e);
        }
        let inode = match s.lookup(path) {
            Ok(id) => {
                if mode == OpenMode::Truncate {
                    s.inodes.get_mut(&id).expect("linked inode").data.clear();
                }
                id
            }
            Err(_) if mode == OpenMode::Existing => return Err(not_found()),
            Err(_) => {
                if let Some(e) = s.fault(FaultOp::Create, path) {
                    return Err(e);
                }
                let (parent, name) = split(path)?;
                let id = s.next_inode;
                let dir = s.dirs.get_mut(&parent).ok_or_else(not_found)?;
                dir.entries.insert(name, id);
                s.next_inode += 1;
                s.inodes.insert(id, Inode::default());
                id
            }
        };
        Ok(Arc::new(SimFile {
            state: Arc::clone(&self.state),
            inode,
            generation: s.generation,
            path: path.to_path_buf(),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        if let Some(e) = s.fault(FaultOp::Rename, from) {
            return Err(e);
        }
        let (from_dir, from_name) = split(from)?;
        let (to_dir, to_name) = split(to)?;
        let id = s
            .dirs
            .get_mut(&from_dir)
            .and_then(|d| d.entries.remove(&from_name))
            .ok_or_else(not_found)?;
        s.dirs
            .get_mut(&to_dir)
            .ok_or_else(not_found)?
            .entries
            .insert(to_name, id);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        if let Some(e) = s.fault(FaultOp::Remove, path) {
            return Err(e);
        }
        let (parent, name) = split(path)?;
        s.dirs
            .get_mut(&parent)
            .and_then(|d| d.entries.remove(&name))
            .map(|_| ())
            .ok_or_else(not_found)
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        if !s.dirs.contains_key(path) {
            return Err(not_found());
        }
        s.dirs.retain(|p, _| !p.starts_with(path));
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        for p in path.ancestors() {
            s.dirs.entry(p.to_path_buf()).or_default();
        }
        Ok(())
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let s = self.state.lock();
        let dir = s.dirs.get(path).ok_or_else(not_found)?;
        Ok(dir.entries.keys().cloned().collect())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        if let Some(e) = s.fault(FaultOp::SyncDir, path) {
            return Err(e);
        }
        s.dir_syncs += 1;
        let dir = s.dirs.get_mut(path).ok_or_else(not_found)?;
        dir.durable = dir.entries.clone();
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let s = self.state.lock();
        s.lookup(path).is_ok() || s.dirs.contains_key(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(fs: &SimFs, path: &Path) -> Vec<u8> {
        fs.read(path).unwrap()
    }

    #[test]
    fn a_crash_keeps_only_what_was_synced() {
        let fs = SimFs::new(1);
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let a = fs.open(&dir.join("a"), OpenMode::Create).unwrap();
        a.write_all_at(b"hello", 0).unwrap();
        a.sync_data().unwrap();
        // Synced data but not the directory entry: the file is gone.
        fs.crash();
        assert!(!fs.exists(&dir.join("a")));
        assert!(a.read_at(&mut [0u8; 1], 0).is_err(), "old handles die");

        let a = fs.open(&dir.join("a"), OpenMode::Create).unwrap();
        a.write_all_at(b"hello", 0).unwrap();
        a.sync_all().unwrap();
        fs.sync_dir(dir).unwrap();
        a.write_all_at(b" world", 5).unwrap();
        fs.rename(&dir.join("a"), &dir.join("b")).unwrap();
        fs.crash();
        assert_eq!(read_all(&fs, &dir.join("a")), b"hello");
        assert!(!fs.exists(&dir.join("b")));
        fs.remove_file(&dir.join("a")).unwrap();
        fs.crash();
        assert!(fs.exists(&dir.join("a")), "an unsynced unlink is undone");
    }

    #[test]
    fn tearing_mixes_sectors_and_faults_fire_as_asked() {
        let fs = SimFs::new(7);
        fs.set_tearing(true);
        let dir = Path::new("/d");
        fs.create_dir_all(dir).unwrap();
        let path = dir.join("f");
        let f = fs.open(&path, OpenMode::Create).unwrap();
        fs.sync_dir(dir).unwrap();
        f.write_all_at(&[1u8; 4 * SECTOR], 0).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(&[2u8; 8 * SECTOR], 0).unwrap();
        fs.crash();
        let after = read_all(&fs, &path);
        assert!(after.len() == 4 * SECTOR || after.len() == 8 * SECTOR);
        for sector in after.chunks(SECTOR) {
            let first = sector[0];
            assert!(sector.iter().all(|b| *b == first), "sectors are atomic");
        }

        fs.inject(Fault::new(FaultOp::Write, 5).path("f").skip(1).times(1));
        let f = fs.open(&path, OpenMode::Existing).unwrap();
        f.write_all_at(b"x", 0).unwrap();
        assert_eq!(f.write_all_at(b"x", 0).unwrap_err().raw_os_error(), Some(5));
        f.write_all_at(b"x", 0).unwrap();
        fs.set_capacity(Some(fs.used_bytes() + 10));
        let err = f.write_all_at(&[3u8; 20], after.len() as u64).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28));
        assert_eq!(
            f.size().unwrap(),
            after.len() as u64 + 10,
            "short write first"
        );
    }
}
