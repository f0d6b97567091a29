//! The Raft log of the metadata quorum on disk, and the persisted vote (openraft's
//! `RaftLogStorage`). The whole log is also held in memory: metadata logs are small and are
//! purged behind each snapshot.
//!
//! Files in the quorum directory:
//! - `raft.log`: the 8-byte magic `STRMRLG1`, then frames
//!   `[body_len u32 BE][crc32c(body) u32 BE][body]`, where body is
//!   `[kind u8][index u64 BE][term u64 BE][payload]`. Kinds: 0 = purge
//!   marker (the last purged log id; only ever the first frame), 1 = blank, 2 = records (one
//!   batch in the binary format of [`crate::records::codec`]; a JSON array of `MetadataRecord`
//!   in logs written before it, still read), 3 = membership (JSON). Indexes are consecutive. A frame that is
//!   cut short or fails its checksum is a torn write: it and everything after it are truncated
//!   on open. A frame with a valid checksum that does not decode is an error, never truncated.
//! - `vote`: `STRMVOT1`, term u64, has-voted-for u8, voted-for node u64, committed u8, and the
//!   crc32c of the preceding 26 bytes;
//!   replaced atomically (temporary file, fsync, rename, fsync of the directory).
//!
//! Every append, truncation and vote is fsynced before openraft is told it is durable.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    AnyError, CommittedLeaderId, Entry, EntryPayload, LeaderId, LogId, LogState, Membership,
    RaftLogReader, StorageError, StorageIOError, Vote,
};

use super::raft::{MetadataBatch, MetadataRaftConfig};
use super::QuorumNodeId;
use crate::records::codec;

type C = MetadataRaftConfig;

const LOG_MAGIC: &[u8; 8] = b"STRMRLG1";
const VOTE_MAGIC: &[u8; 8] = b"STRMVOT1";
const LOG_FILE: &str = "raft.log";
const VOTE_FILE: &str = "vote";
/// Magic, term, has-voted-for flag, voted-for node, committed flag, crc.
const VOTE_FILE_LEN: usize = 8 + 8 + 1 + 8 + 1 + 4;
const FRAME_HEADER: usize = 8;
const BODY_HEADER: usize = 17;
/// Largest frame body accepted on read: a length above it is a torn or corrupt header.
pub const MAX_FRAME_BYTES: usize = 64 * 1024 * 1024;

const KIND_PURGED: u8 = 0;
const KIND_BLANK: u8 = 1;
const KIND_RECORDS: u8 = 2;
const KIND_MEMBERSHIP: u8 = 3;

/// The log storage handed to openraft; clones share one log (the reader is a clone).
#[derive(Debug, Clone)]
pub struct QuorumLogStore {
    inner: Arc<Mutex<LogInner>>,
}

#[derive(Debug)]
struct LogInner {
    dir: PathBuf,
    file: File,
    /// Entries by index, each with the file position of its frame.
    entries: BTreeMap<u64, (Entry<C>, u64)>,
    last_purged: Option<LogId<QuorumNodeId>>,
    vote: Option<Vote<QuorumNodeId>>,
    /// Length of `raft.log` (where the next frame goes).
    file_len: u64,
}

impl QuorumLogStore {
    /// Opens (or creates) the log and vote in `dir`, truncating a torn tail.
    pub fn open(dir: &Path) -> std::io::Result<QuorumLogStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        if bytes.len() < LOG_MAGIC.len() {
            // New, or torn while writing the magic: start over.
            file.set_len(0)?;
            file.write_all(LOG_MAGIC)?;
            file.sync_all()?;
            sync_dir(dir)?;
            bytes = LOG_MAGIC.to_vec();
        } else if &bytes[..8] != LOG_MAGIC {
            return Err(invalid(format!(
                "{} is not a Strom Raft log",
                path.display()
            )));
        }
        let (entries, last_purged, valid_len) = decode_frames(&bytes)?;
        if valid_len < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                valid_len,
                file_len = bytes.len(),
                "truncating a torn tail of the Raft log"
            );
            file.set_len(valid_len as u64)?;
            file.sync_all()?;
        }
        let vote = read_vote(dir)?;
        Ok(QuorumLogStore {
            inner: Arc::new(Mutex::new(LogInner {
                dir: dir.to_path_buf(),
                file,
                entries,
                last_purged,
                vote,
                file_len: valid_len as u64,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        self.inner.lock().expect("raft log mutex poisoned")
    }
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg)
}

type Decoded = (
    BTreeMap<u64, (Entry<C>, u64)>,
    Option<LogId<QuorumNodeId>>,
    usize,
);

/// Decodes every whole, checksummed frame after the magic; returns where the valid part ends.
fn decode_frames(bytes: &[u8]) -> std::io::Result<Decoded> {
    let mut entries = BTreeMap::new();
    let mut last_purged = None;
    let mut pos = LOG_MAGIC.len();
    while bytes.len() - pos >= FRAME_HEADER {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_be_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
        let start = pos + FRAME_HEADER;
        if !(BODY_HEADER..=MAX_FRAME_BYTES).contains(&len) || bytes.len() - start < len {
            break;
        }
        let body = &bytes[start..start + len];
        if crc32c::crc32c(body) != crc {
            break;
        }
        let (kind, log_id, payload) = split_body(body);
        let expected = entries
            .keys()
            .next_back()
            .map(|i| i + 1)
            .or(last_purged.map(|l: LogId<u64>| l.index + 1));
        if expected.is_some_and(|e| e != log_id.index) {
            return Err(invalid(format!(
                "Raft log frame at position {pos} has index {} where {expected:?} was expected",
                log_id.index
            )));
        }
        if kind == KIND_PURGED {
            if pos != LOG_MAGIC.len() {
                return Err(invalid(format!("purge marker at position {pos}")));
            }
            last_purged = Some(log_id);
        } else {
            let payload = decode_payload(kind, payload).map_err(|e| {
                invalid(format!(
                    "Raft log frame at position {pos} has a valid checksum but cannot be decoded: {e}"
                ))
            })?;
            entries.insert(log_id.index, (Entry { log_id, payload }, pos as u64));
        }
        pos = start + len;
    }
    Ok((entries, last_purged, pos))
}

fn split_body(body: &[u8]) -> (u8, LogId<QuorumNodeId>, &[u8]) {
    let u64_at = |at: usize| u64::from_be_bytes(body[at..at + 8].try_into().expect("8 bytes"));
    // One leader per term (openraft's `single-term-leader`): a term names its leader.
    let log_id = LogId::new(CommittedLeaderId::new(u64_at(9), 0), u64_at(1));
    (body[0], log_id, &body[BODY_HEADER..])
}

fn decode_payload(kind: u8, payload: &[u8]) -> Result<EntryPayload<C>, String> {
    match kind {
        KIND_BLANK => Ok(EntryPayload::Blank),
        KIND_RECORDS => codec::decode_stored_batch(payload)
            .map(|records| EntryPayload::Normal(MetadataBatch(records))),
        KIND_MEMBERSHIP => serde_json::from_slice::<Membership<QuorumNodeId, _>>(payload)
            .map(EntryPayload::Membership)
            .map_err(|e| e.to_string()),
        other => Err(format!("unknown entry kind {other}")),
    }
}

/// Appends one frame for `log_id` to `out`.
fn encode_frame(out: &mut Vec<u8>, kind: u8, log_id: &LogId<QuorumNodeId>, payload: &[u8]) {
    let mut body = Vec::with_capacity(BODY_HEADER + payload.len());
    body.push(kind);
    body.extend_from_slice(&log_id.index.to_be_bytes());
    body.extend_from_slice(&log_id.leader_id.term.to_be_bytes());
    body.extend_from_slice(payload);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    out.extend_from_slice(&body);
}

fn encode_entry(out: &mut Vec<u8>, entry: &Entry<C>) {
    let (kind, payload) = match &entry.payload {
        EntryPayload::Blank => (KIND_BLANK, Vec::new()),
        EntryPayload::Normal(batch) => (KIND_RECORDS, codec::encode_batch(&batch.0)),
        EntryPayload::Membership(m) => (
            KIND_MEMBERSHIP,
            serde_json::to_vec(m).expect("membership serializes"),
        ),
    };
    encode_frame(out, kind, &entry.log_id, &payload);
}

fn read_vote(dir: &Path) -> std::io::Result<Option<Vote<QuorumNodeId>>> {
    let bytes = match std::fs::read(dir.join(VOTE_FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // Written by rename, so never torn: a bad file is corruption, not a crash artefact.
    if bytes.len() != VOTE_FILE_LEN || &bytes[..8] != VOTE_MAGIC {
        return Err(invalid("vote file has the wrong size or magic".into()));
    }
    let crc = u32::from_be_bytes(bytes[26..30].try_into().expect("4 bytes"));
    if crc32c::crc32c(&bytes[..26]) != crc {
        return Err(invalid("vote file fails its checksum".into()));
    }
    let term = u64::from_be_bytes(bytes[8..16].try_into().expect("8 bytes"));
    let node = u64::from_be_bytes(bytes[17..25].try_into().expect("8 bytes"));
    Ok(Some(Vote {
        leader_id: LeaderId {
            term,
            voted_for: (bytes[16] != 0).then_some(node),
        },
        committed: bytes[25] != 0,
    }))
}

fn write_vote(dir: &Path, vote: &Vote<QuorumNodeId>) -> std::io::Result<()> {
    let mut bytes = VOTE_MAGIC.to_vec();
    bytes.extend_from_slice(&vote.leader_id.term.to_be_bytes());
    let voted_for = vote.leader_id.voted_for();
    bytes.push(u8::from(voted_for.is_some()));
    bytes.extend_from_slice(&voted_for.unwrap_or(0).to_be_bytes());
    bytes.push(u8::from(vote.committed));
    bytes.extend_from_slice(&crc32c::crc32c(&bytes).to_be_bytes());
    replace_file(dir, VOTE_FILE, &bytes)
}

/// Replaces `dir/name` with `bytes` atomically and durably.
pub(crate) fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn log_err(e: std::io::Error) -> StorageError<QuorumNodeId> {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

impl LogInner {
    fn last_log_id(&self) -> Option<LogId<QuorumNodeId>> {
        self.entries
            .values()
            .next_back()
            .map(|(e, _)| e.log_id)
            .or(self.last_purged)
    }

    fn append(&mut self, entries: Vec<Entry<C>>) -> std::io::Result<()> {
        let mut buf = Vec::new();
        let mut positions = Vec::with_capacity(entries.len());
        for entry in &entries {
            let expected = self
                .last_log_id()
                .map_or(entry.log_id.index, |l| l.index + 1);
            let next = positions.last().map_or(expected, |(i, _)| i + 1);
            assert_eq!(
                entry.log_id.index, next,
                "Raft log append must be contiguous (openraft truncates before it overwrites)"
            );
            positions.push((entry.log_id.index, self.file_len + buf.len() as u64));
            encode_entry(&mut buf, entry);
        }
        self.file.write_all(&buf)?;
        self.file.sync_data()?;
        self.file_len += buf.len() as u64;
        for (entry, (_, pos)) in entries.into_iter().zip(positions) {
            self.entries.insert(entry.log_id.index, (entry, pos));
        }
        Ok(())
    }

    /// Removes entries from `index` on (a conflicting suffix).
    fn truncate(&mut self, index: u64) -> std::io::Result<()> {
        let Some((_, pos)) = self.entries.get(&index).map(|(e, p)| (e.log_id, *p)) else {
            return Ok(());
        };
        self.entries.split_off(&index);
        self.file.set_len(pos)?;
        self.file.sync_all()?;
        self.file_len = pos;
        Ok(())
    }

    /// Drops entries up to `log_id` (covered by a snapshot) and rewrites the file without them.
    fn purge(&mut self, log_id: LogId<QuorumNodeId>) -> std::io::Result<()> {
        if self.last_purged.is_some_and(|p| p.index >= log_id.index) {
            return Ok(());
        }
        let kept = self.entries.split_off(&(log_id.index + 1));
        self.entries = BTreeMap::new();
        self.last_purged = Some(log_id);
        let mut buf = LOG_MAGIC.to_vec();
        encode_frame(&mut buf, KIND_PURGED, &log_id, &[]);
        for (index, (entry, _)) in kept {
            let pos = buf.len() as u64;
            encode_entry(&mut buf, &entry);
            self.entries.insert(index, (entry, pos));
        }
        replace_file(&self.dir, LOG_FILE, &buf)?;
        self.file = OpenOptions::new()
            .append(true)
            .open(self.dir.join(LOG_FILE))?;
        self.file_len = buf.len() as u64;
        Ok(())
    }
}

impl RaftLogReader<C> for QuorumLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<C>>, StorageError<QuorumNodeId>> {
        let inner = self.lock();
        Ok(inner
            .entries
            .range(range)
            .map(|(_, (e, _))| e.clone())
            .collect())
    }

    /// Replication's read: entries from `start` on, or none if `start` was purged meanwhile.
    ///
    /// openraft 0.9 may purge behind a snapshot while a replication task is about to read the
    /// range it chose before; returning the entries after the hole would send an AppendEntries
    /// whose first entry does not follow its `prev_log_id` (the simulation found this: seed
    /// 476, 3 nodes). An empty answer makes openraft send a heartbeat and then, seeing the
    /// purge, a snapshot.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<C>>, StorageError<QuorumNodeId>> {
        let inner = self.lock();
        if !inner.entries.contains_key(&start) {
            return Ok(Vec::new());
        }
        Ok(inner
            .entries
            .range(start..end)
            .map(|(_, (e, _))| e.clone())
            .collect())
    }
}

impl RaftLogStorage<C> for QuorumLogStore {
    type LogReader = QuorumLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<QuorumNodeId>> {
        let inner = self.lock();
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: inner.last_log_id(),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(
        &mut self,
        vote: &Vote<QuorumNodeId>,
    ) -> Result<(), StorageError<QuorumNodeId>> {
        let mut inner = self.lock();
        write_vote(&inner.dir, vote)
            .map_err(|e| StorageError::from(StorageIOError::write_vote(AnyError::new(&e))))?;
        inner.vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(
        &mut self,
    ) -> Result<Option<Vote<QuorumNodeId>>, StorageError<QuorumNodeId>> {
        Ok(self.lock().vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<QuorumNodeId>>
    where
        I: IntoIterator<Item = Entry<C>> + Send,
        I::IntoIter: Send,
    {
        let result = self.lock().append(entries.into_iter().collect());
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = log_err(std::io::Error::new(e.kind(), e.to_string()));
                callback.log_io_completed(Err(e));
                Err(err)
            }
        }
    }

    async fn truncate(
        &mut self,
        log_id: LogId<QuorumNodeId>,
    ) -> Result<(), StorageError<QuorumNodeId>> {
        self.lock().truncate(log_id.index).map_err(log_err)
    }

    async fn purge(
        &mut self,
        log_id: LogId<QuorumNodeId>,
    ) -> Result<(), StorageError<QuorumNodeId>> {
        self.lock().purge(log_id).map_err(log_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::MetadataRecord;

    fn entry(index: u64, term: u64) -> Entry<C> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(MetadataBatch(vec![MetadataRecord::Cluster {
                cluster_id: format!("c{index}"),
            }])),
        }
    }

    fn indexes(store: &QuorumLogStore) -> Vec<(u64, u64)> {
        let inner = store.lock();
        inner
            .entries
            .values()
            .map(|(e, _)| (e.log_id.index, e.log_id.leader_id.term))
            .collect()
    }

    #[test]
    fn entries_vote_truncation_and_purge_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = QuorumLogStore::open(dir.path()).unwrap();
        store
            .lock()
            .append((1..=5).map(|i| entry(i, 1)).collect())
            .unwrap();
        store.lock().truncate(4).unwrap();
        store.lock().append(vec![entry(4, 2), entry(5, 2)]).unwrap();
        write_vote(dir.path(), &Vote::new_committed(2, 3)).unwrap();
        drop(store);

        let store = QuorumLogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2)]);
        assert_eq!(store.lock().vote, Some(Vote::new_committed(2, 3)));
        store
            .lock()
            .purge(LogId::new(CommittedLeaderId::new(1, 1), 2))
            .unwrap();
        store.lock().append(vec![entry(6, 2)]).unwrap();
        drop(store);

        let store = QuorumLogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), [(3, 1), (4, 2), (5, 2), (6, 2)]);
        let inner = store.lock();
        assert_eq!(inner.last_purged.map(|l| l.index), Some(2));
        assert_eq!(inner.last_log_id().map(|l| l.index), Some(6));
    }

    #[test]
    fn torn_tail_is_truncated_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let store = QuorumLogStore::open(dir.path()).unwrap();
        store.lock().append(vec![entry(1, 1), entry(2, 1)]).unwrap();
        let good_len = store.lock().entries[&2].1;
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let full = std::fs::metadata(&path).unwrap().len();
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(full - 3).unwrap();
        drop(file);

        let store = QuorumLogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), [(1, 1)]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len);
        store.lock().append(vec![entry(2, 2)]).unwrap();
        drop(store);
        let store = QuorumLogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), [(1, 1), (2, 2)]);
    }

    #[test]
    fn corrupt_checksum_truncates_but_undecodable_payload_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = QuorumLogStore::open(dir.path()).unwrap();
        store.lock().append(vec![entry(1, 1), entry(2, 1)]).unwrap();
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let store = QuorumLogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&store), [(1, 1)]);
        drop(store);

        let mut bytes = std::fs::read(&path).unwrap();
        encode_frame(
            &mut bytes,
            KIND_RECORDS,
            &LogId::new(CommittedLeaderId::new(1, 1), 2),
            br#"[{"type":"FromTheFuture"}]"#,
        );
        std::fs::write(&path, &bytes).unwrap();
        let err = QuorumLogStore::open(dir.path()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }

    #[test]
    fn corrupt_vote_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write_vote(dir.path(), &Vote::new(4, 2)).unwrap();
        assert_eq!(read_vote(dir.path()).unwrap(), Some(Vote::new(4, 2)));
        write_vote(dir.path(), &Vote::default()).unwrap();
        assert_eq!(read_vote(dir.path()).unwrap(), Some(Vote::default()));
        write_vote(dir.path(), &Vote::new(4, 2)).unwrap();
        let mut bytes = std::fs::read(dir.path().join(VOTE_FILE)).unwrap();
        bytes[10] ^= 1;
        std::fs::write(dir.path().join(VOTE_FILE), &bytes).unwrap();
        assert!(read_vote(dir.path()).is_err());
    }

    #[test]
    fn records_are_binary_and_json_frames_of_earlier_versions_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = QuorumLogStore::open(dir.path()).unwrap();
        store.lock().append(vec![entry(1, 1)]).unwrap();
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let payload_at = LOG_MAGIC.len() + FRAME_HEADER + BODY_HEADER;
        assert_eq!(bytes[payload_at], codec::BATCH_MAGIC);
        // Entry 2 as Strom wrote records before the binary format: a JSON array.
        encode_frame(
            &mut bytes,
            KIND_RECORDS,
            &LogId::new(CommittedLeaderId::new(1, 1), 2),
            br#"[{"type":"Cluster","cluster_id":"c2"},{"type":"FenceBroker","broker_id":3}]"#,
        );
        std::fs::write(&path, &bytes).unwrap();
        let store = QuorumLogStore::open(dir.path()).unwrap();
        store.lock().append(vec![entry(3, 1)]).unwrap();
        drop(store);
        let store = QuorumLogStore::open(dir.path()).unwrap();
        let batches: Vec<Vec<MetadataRecord>> = store
            .lock()
            .entries
            .values()
            .map(|(e, _)| match &e.payload {
                EntryPayload::Normal(batch) => batch.0.clone(),
                other => panic!("unexpected payload {other:?}"),
            })
            .collect();
        let cluster = |id: &str| MetadataRecord::Cluster {
            cluster_id: id.into(),
        };
        assert_eq!(
            batches,
            [
                vec![cluster("c1")],
                vec![cluster("c2"), MetadataRecord::FenceBroker { broker_id: 3 }],
                vec![cluster("c3")],
            ]
        );
    }

    #[test]
    fn a_binary_batch_of_a_newer_format_version_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = QuorumLogStore::open(dir.path()).unwrap();
        store.lock().append(vec![entry(1, 1)]).unwrap();
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        encode_frame(
            &mut bytes,
            KIND_RECORDS,
            &LogId::new(CommittedLeaderId::new(1, 1), 2),
            &[codec::BATCH_MAGIC, codec::BATCH_FORMAT_VERSION + 1, 0],
        );
        std::fs::write(&path, &bytes).unwrap();
        let err = QuorumLogStore::open(dir.path()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("batch format version"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);
    }
}
