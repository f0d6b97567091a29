//! `PartitionLog`: one partition's segments behind one mutex. Append validates (before taking
//! the mutex), checks producer sequences, assigns offsets and writes; appends that arrive
//! while the mutex is held are written together by its next holder, with one vectored write
//! (see [`PartitionLog::append`]). Flushing follows flush.messages / flush.ms, and no
//! fsync runs under the mutex on the append path (a roll defers its directory sync and
//! producer snapshot to the next flush). A failed write is rolled back; a failure whose effect
//! on disk is unknown (fsync, rollback) takes the log offline until it is reopened. Reads live
//! in `read.rs`, retention in `retention.rs`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use parking_lot::Mutex;
use strom_protocol::record_batch::{
    set_base_offset, set_log_append_time, set_partition_leader_epoch, validate_batch,
    validate_records, BatchSplitter, InvalidRecordReason, RecordBatchHeader, TimestampType,
    Validation, NO_TIMESTAMP,
};
use tracing::debug;

use crate::config::{Clock, LogConfig};
use crate::epoch_cache::EpochCache;
use crate::error::{io_err, LogError};
use crate::fs::{Fs, StdFs};
use crate::handles::{Files, HandleCache};
use crate::producer_state::{
    self, CompletedTxn, ProducerBatch, ProducerEntry, ProducerState, SequenceCheck,
};
use crate::recovery::{self, RecoveryStats, CLEAN_SHUTDOWN_FILE};
use crate::segment::{sync_dir, Segment};
use crate::txn_index::TxnIndex;

/// Result of a successful append (or of a retried duplicate batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker time written into the batches, -1 unless LogAppendTime.
    pub log_append_time: i64,
    pub max_timestamp: i64,
    pub record_count: u32,
    /// The batch was a retry of one already in the log; nothing was written.
    pub duplicate: bool,
    pub log_start_offset: i64,
}

/// [`PartitionLog::coalesced_appends`] over every log of the process.
static COALESCED_APPENDS: AtomicU64 = AtomicU64::new(0);

/// Appends written with another append's write, over every partition log of the process
/// (a counter: it never goes down when a log is deleted).
pub fn coalesced_appends_total() -> u64 {
    COALESCED_APPENDS.load(Ordering::Relaxed)
}

/// State guarded by the partition mutex.
pub(crate) struct Inner {
    pub config: LogConfig,
    /// Keyed by base offset; the last one is the active segment. Never empty.
    pub segments: BTreeMap<i64, Arc<Segment>>,
    pub log_start_offset: i64,
    pub producers: ProducerState,
    /// Aborted transactions per segment (`.txnindex`, see `txn_index.rs`).
    pub txn_index: TxnIndex,
    /// Everything below this offset is known to be on disk.
    pub flushed_offset: i64,
    /// Rolled segments not fsynced yet (the next flush does it).
    pub unflushed_segments: Vec<Arc<Segment>>,
    /// Every segment with a smaller base offset is fully on disk; persisted in
    /// `recovery-point` so an unclean open scans only the segments at or above it.
    pub recovery_point: i64,
    pub unflushed_messages: u64,
    pub last_flush_ms: i64,
    pub closed: bool,
    /// Directory entries changed (a roll created files) and the directory is not fsynced yet.
    pub dir_dirty: bool,
    /// Producer-state snapshots taken at rolls (offset, encoded state), written by the next
    /// flush: recovery never needs one (it replays from an older snapshot or the log start).
    pub pending_snapshots: Vec<(i64, Vec<u8>)>,
    /// Set when an operation failed with an unknown effect on disk: the operation that failed.
    pub offline: Option<&'static str>,
    /// Where each leader epoch starts (`leader-epoch-checkpoint`).
    pub epochs: EpochCache,
    /// The epoch this replica leads in: stamped into every batch `append` writes. `None` on a
    /// follower (its batches come with the leader's stamps).
    pub leader_epoch: Option<i32>,
    /// `epochs` has an entry the checkpoint file does not: written before the first batch of
    /// that epoch (an epoch without data on its leader has no data anywhere, so a crash that
    /// loses the entry loses nothing), not when leadership changes.
    pub epochs_unpersisted: bool,
}

impl Inner {
    pub fn check_open(&self) -> Result<(), LogError> {
        if let Some(op) = self.offline {
            Err(LogError::Offline { op })
        } else if self.closed {
            Err(LogError::Closed)
        } else {
            Ok(())
        }
    }

    /// Takes the log offline after `error` left the files in a state only recovery may judge.
    pub fn go_offline(&mut self, dir: &Path, op: &'static str, error: &LogError) -> LogError {
        tracing::error!(dir = %dir.display(), op, %error, "partition log offline until reopened");
        self.offline.get_or_insert(op);
        LogError::Offline { op }
    }

    pub fn active(&self) -> &Arc<Segment> {
        self.segments
            .values()
            .next_back()
            .expect("a partition log always has an active segment")
    }

    pub fn log_end_offset(&self) -> i64 {
        self.active().meta().next_offset
    }

    /// Closes the active segment and starts a new one at the log end offset (no-op if empty).
    /// Nothing is fsynced here: the new files' directory entries, the old segment and a
    /// producer snapshot are made durable by the next flush (`flush_rolled` in the
    /// background). On failure the old segment stays active and usable.
    pub fn roll(&mut self, files: &Files, dir: &Path) -> Result<(), LogError> {
        let fs = &*files.fs;
        let old = Arc::clone(self.active());
        if old.is_empty() {
            return Ok(());
        }
        let base = old.meta().next_offset;
        let created = Segment::create(files, dir, base);
        // Sealing fails only before it closes the in-memory indexes: the old segment stays
        // appendable either way.
        let result = created.and_then(|segment| old.seal().map(|()| segment));
        let segment = match result {
            Ok(segment) => segment,
            Err(e) => {
                // A leftover file at the log end would, after a restart, hide what the old
                // segment takes next: it must go.
                self.dir_dirty = true;
                return match Segment::remove_files_of(fs, dir, base) {
                    Ok(()) => Err(e),
                    Err(cleanup) => {
                        Err(self.go_offline(dir, "remove a half-created segment", &cleanup))
                    }
                };
            }
        };
        self.segments.insert(base, Arc::new(segment));
        self.unflushed_segments.push(old);
        self.dir_dirty = true;
        self.pending_snapshots.push((base, self.producers.encode()));
        debug!(dir = %dir.display(), base, "rolled segment");
        Ok(())
    }

    /// Drops deleted segments from the to-be-fsynced list, closing their files: an unlinked
    /// file held open keeps its dirty pages, which the kernel would then write back for nothing.
    pub fn forget_deleted_unflushed(&mut self) {
        let live = &self.segments;
        self.unflushed_segments
            .retain(|s| live.get(&s.base_offset).is_some_and(|l| Arc::ptr_eq(l, s)));
    }

    /// Writes batches with their final offsets to the active segment (`parts` one after the
    /// other, `headers` positioned from the first) and indexes them. A failed write is cut
    /// back so no torn batch stays mid-log; if that fails too, the log goes offline.
    pub(crate) fn write_batches(
        &mut self,
        dir: &Path,
        parts: &[&[u8]],
        headers: &[(usize, RecordBatchHeader<'_>)],
        now: i64,
    ) -> Result<(), LogError> {
        let active = Arc::clone(self.active());
        let interval = self.config.index_interval_bytes;
        if let Err(e) = active.append(parts, headers, interval, now) {
            // Nothing was published (size, indexes, producer state).
            return Err(match active.truncate_file(active.size()) {
                Ok(()) => e,
                Err(cut) => self.go_offline(dir, "roll back a failed write", &cut),
            });
        }
        Ok(())
    }

    /// Whether an append of `append_len` bytes ending at `last_offset` must go to a new
    /// segment, after `unwritten` bytes staged for the active one but not written yet.
    pub(crate) fn should_roll(
        &self,
        unwritten: u64,
        append_len: u64,
        last_offset: i64,
        now_ms: i64,
    ) -> bool {
        let active = self.active();
        let meta = active.meta();
        let c = &self.config;
        (!active.is_empty() || unwritten > 0)
            && (active.size() + unwritten + append_len > c.effective_segment_bytes()
                || meta
                    .first_append_ms
                    .is_some_and(|t| now_ms.saturating_sub(t) >= c.segment_ms)
                || active.offset_index.len() as u64 >= c.segment_index_bytes / 8
                || active.time_index.len() as u64 >= c.segment_index_bytes / 12
                || last_offset - active.base_offset > i64::from(i32::MAX))
    }
}

/// One partition's log. All methods take `&self`; see the module doc for the locking.
pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    pub(crate) fs: Arc<dyn Fs>,
    /// `fs` plus the handle cache the segments open their files through.
    pub(crate) files: Files,
    pub(crate) clock: Arc<dyn Clock>,
    recovery_stats: RecoveryStats,
    pub(crate) inner: Mutex<Inner>,
    /// Serializes flushes (and truncations, which must not interleave with one); taken before
    /// `inner` and held across the fsyncs.
    pub(crate) flush_lock: Mutex<()>,
    /// Log-cleaner bookkeeping; taken before `inner`, held for a whole clean.
    pub(crate) cleaner: Mutex<crate::cleaner::CleanerState>,
    /// Appends waiting for `inner`, written by whoever holds it next; see [`Self::append`].
    /// Taken with or without `inner` held, never the other way round.
    append_queue: AppendQueue,
    /// What `append` checks before taking `inner`, from `inner.config`.
    limits: AppendLimits,
    coalesced: AtomicU64,
}

impl std::fmt::Debug for PartitionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLog")
            .field("dir", &self.dir)
            .finish()
    }
}

/// A validated batch of an append request: where it is in the buffer and its final offsets.
struct Planned {
    pos: usize,
    len: usize,
    base_offset: i64,
}

/// An append whose batches passed the checks that need no log state.
struct Request {
    records: BytesMut,
    planned: Vec<Planned>,
}

/// The limits of those checks, kept beside the config so they are read without the
/// partition mutex (each on its own: a config change racing an append may apply to it or not).
#[derive(Debug)]
struct AppendLimits {
    max_batch: AtomicUsize,
    compact: AtomicBool,
    max_decompressed: AtomicUsize,
    segment_bytes: AtomicU64,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    max_batch: usize,
    compact: bool,
    max_decompressed: usize,
    segment_bytes: u64,
}

impl AppendLimits {
    fn of(config: &LogConfig) -> Self {
        let limits = AppendLimits {
            max_batch: AtomicUsize::new(0),
            compact: AtomicBool::new(false),
            max_decompressed: AtomicUsize::new(0),
            segment_bytes: AtomicU64::new(0),
        };
        limits.set(config);
        limits
    }

    fn set(&self, config: &LogConfig) {
        let max_batch = config.max_message_bytes as usize;
        self.max_batch.store(max_batch, Ordering::Relaxed);
        let compact = config.cleanup_policy.compact;
        self.compact.store(compact, Ordering::Relaxed);
        let max_decompressed = config.max_decompressed_bytes();
        self.max_decompressed
            .store(max_decompressed, Ordering::Relaxed);
        let segment_bytes = config.effective_segment_bytes();
        self.segment_bytes.store(segment_bytes, Ordering::Relaxed);
    }

    fn get(&self) -> Limits {
        Limits {
            max_batch: self.max_batch.load(Ordering::Relaxed),
            compact: self.compact.load(Ordering::Relaxed),
            max_decompressed: self.max_decompressed.load(Ordering::Relaxed),
            segment_bytes: self.segment_bytes.load(Ordering::Relaxed),
        }
    }
}

/// Appends waiting for the partition mutex, oldest first.
#[derive(Default)]
struct AppendQueue {
    entries: Mutex<Vec<Arc<Queued>>>,
    /// `entries` is not empty (read without its lock: an append queued just after a reader
    /// saw `false` is written by its own thread, which finds it unanswered).
    waiting: AtomicBool,
}

impl AppendQueue {
    fn push(&self, q: Arc<Queued>) {
        let mut entries = self.entries.lock();
        entries.push(q);
        self.waiting.store(true, Ordering::Release);
    }

    fn take(&self) -> Vec<Arc<Queued>> {
        if !self.waiting.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut entries = self.entries.lock();
        self.waiting.store(false, Ordering::Release);
        std::mem::take(&mut *entries)
    }
}

/// An append waiting for the partition mutex (see [`PartitionLog::append`]).
struct Queued(Mutex<QueuedState>);

enum QueuedState {
    Waiting(Request),
    /// Being staged and written by the thread holding the mutex.
    Taken,
    Answered(Result<Appended, LogError>),
}

impl Queued {
    fn take_answer(&self) -> Option<Result<Appended, LogError>> {
        let mut state = self.0.lock();
        match std::mem::replace(&mut *state, QueuedState::Taken) {
            QueuedState::Answered(answer) => Some(answer),
            other => {
                *state = other;
                None
            }
        }
    }
}

/// An append's answer, and whether it reached flush.messages (its caller then flushes).
struct Appended {
    info: AppendInfo,
    flush: bool,
}

/// What staging a request decided.
enum Staged {
    /// A retry of a batch already in the log (or in the group being written).
    Duplicate(AppendInfo),
    /// Offsets assigned and stamped; the producer states and transactions it changes.
    Accepted {
        info: AppendInfo,
        producers: HashMap<i64, Option<ProducerEntry>>,
        completed: Vec<CompletedTxn>,
    },
}

thread_local! {
    /// This thread's [`Group`] buffers (see [`PartitionLog::append_queued`]).
    static GROUP: RefCell<Group> = RefCell::default();
}

/// Accepted appends not written yet: one write for all of them.
#[derive(Default)]
struct Group {
    requests: Vec<Request>,
    /// Each accepted request's answer slot (`None`: the writing thread's own) and answer,
    /// and those of duplicates of a batch the group may hold.
    members: Vec<(Option<Arc<Queued>>, AppendInfo)>,
    /// The producer states after the group (over the log's).
    producers: HashMap<i64, Option<ProducerEntry>>,
    completed: Vec<CompletedTxn>,
    bytes: u64,
    records: u64,
}

impl Group {
    /// Empties the group, keeping its buffers.
    fn clear(&mut self) {
        self.requests.clear();
        self.members.clear();
        self.producers.clear();
        self.completed.clear();
        self.bytes = 0;
        self.records = 0;
    }
}

/// Where the answers of a group's appends go: queued ones into their slots, the writing
/// thread's own kept here.
#[derive(Default)]
struct Answers {
    mine: Option<Result<Appended, LogError>>,
}

impl Answers {
    fn give(&mut self, slot: Option<Arc<Queued>>, answer: Result<Appended, LogError>) {
        match slot {
            Some(q) => *q.0.lock() = QueuedState::Answered(answer),
            None => self.mine = Some(answer),
        }
    }
}

/// Checks `request`'s producer sequences against the log's producer states as `group`
/// leaves them, assigns offsets from `next` and stamps them (and the leader epoch, and the
/// append time under LogAppendTime) into its batches.
fn stage(
    inner: &Inner,
    group: &HashMap<i64, Option<ProducerEntry>>,
    request: &mut Request,
    mut next: i64,
    now: i64,
) -> Result<Staged, LogError> {
    let append_time = inner.config.timestamp_type == TimestampType::LogAppendTime;
    let base_offset = next;
    let mut producers: HashMap<i64, Option<ProducerEntry>> = HashMap::new();
    let mut completed = Vec::new();
    let mut record_count: u32 = 0;
    for p in &mut request.planned {
        let header = RecordBatchHeader::parse(&request.records[p.pos..p.pos + p.len])?;
        let last = next + i64::from(header.last_offset_delta());
        if let Some(mut b) = ProducerBatch::of(&header) {
            if append_time {
                b.max_timestamp = now;
            }
            let entry =
                producers
                    .entry(b.producer_id)
                    .or_insert_with(|| match group.get(&b.producer_id) {
                        Some(staged) => staged.clone(),
                        None => inner.producers.producers.get(&b.producer_id).cloned(),
                    });
            match producer_state::check(entry.as_ref(), &b)? {
                SequenceCheck::Duplicate(m) => {
                    return Ok(Staged::Duplicate(duplicate_info(
                        m.first_offset,
                        m.last_offset,
                        &header,
                        inner,
                    )))
                }
                SequenceCheck::Accept => {
                    completed.extend(producer_state::apply(entry, &b, next, last))
                }
            }
        }
        record_count += header.records_count() as u32;
        p.base_offset = next;
        next = last + 1;
    }
    let mut max_timestamp = NO_TIMESTAMP;
    for p in &request.planned {
        let bytes = &mut request.records[p.pos..p.pos + p.len];
        set_base_offset(bytes, p.base_offset)?;
        if let Some(epoch) = inner.leader_epoch {
            set_partition_leader_epoch(bytes, epoch)?;
        }
        if append_time {
            set_log_append_time(bytes, now)?;
        }
        max_timestamp = max_timestamp.max(RecordBatchHeader::parse(bytes)?.max_timestamp());
    }
    Ok(Staged::Accepted {
        info: AppendInfo {
            base_offset,
            last_offset: next - 1,
            log_append_time: if append_time { now } else { -1 },
            max_timestamp,
            record_count,
            duplicate: false,
            log_start_offset: inner.log_start_offset,
        },
        producers,
        completed,
    })
}

impl PartitionLog {
    /// Opens (creating if missing) and recovers the log in `dir`.
    pub fn open(dir: PathBuf, config: LogConfig, clock: Arc<dyn Clock>) -> Result<Self, LogError> {
        Self::open_with_fs(dir, config, clock, Arc::new(StdFs))
    }

    /// [`PartitionLog::open`] on a given file system (a [`crate::SimFs`] in crash tests).
    pub fn open_with_fs(
        dir: PathBuf,
        config: LogConfig,
        clock: Arc<dyn Clock>,
        fs: Arc<dyn Fs>,
    ) -> Result<Self, LogError> {
        Self::open_in(dir, config, clock, fs, HandleCache::global().clone(), false)
    }

    /// [`PartitionLog::open_with_fs`] with the segments' files in `cache`. `dir_clean` says
    /// the whole log dir was shut down cleanly (the broker's log-dir marker, taken before any
    /// log opens): the files are trusted as after this log's own clean-shutdown marker, and
    /// opening writes nothing (no per-partition fsync at start-up).
    pub fn open_in(
        dir: PathBuf,
        config: LogConfig,
        clock: Arc<dyn Clock>,
        fs: Arc<dyn Fs>,
        cache: Arc<HandleCache>,
        dir_clean: bool,
    ) -> Result<Self, LogError> {
        let now = clock.now_ms();
        let files = Files {
            fs: Arc::clone(&fs),
            cache,
        };
        let mut recovery_stats = RecoveryStats::default();
        let (segments, log_start_offset, recovery_point, names) = recovery::open_segments(
            &files,
            dir_clean,
            &dir,
            config.index_interval_bytes,
            now,
            &mut recovery_stats,
        )?;
        let log_end = segments
            .values()
            .next_back()
            .map_or(0, |s| s.meta().next_offset);
        // Whether a file is in `dir` (without a listing, whether it may be).
        let listed = |name: &str| names.as_ref().is_none_or(|n| n.iter().any(|n| n == name));
        let snapshots = match &names {
            Some(names) => names
                .iter()
                .filter_map(|n| crate::segment::parse_file_name(n, producer_state::SNAPSHOT_EXT))
                .collect(),
            None => recovery::list_snapshots(&*fs, &dir)?,
        };
        let mut producers = recovery::load_producer_state_from(
            &*fs,
            &dir,
            snapshots,
            &segments,
            (log_start_offset, log_end),
            now,
            config.producer_id_expiration_ms,
        )?;
        let txn_index =
            crate::txn_index::open(&*fs, &dir, &segments, log_end, &mut producers, |base| {
                listed(&crate::segment::file_name(
                    base,
                    crate::txn_index::TXN_INDEX_EXT,
                ))
            })?;
        // A snapshot at the recovered end (all of it durable now): snapshots of rolls before
        // an unclean restart were still pending and are lost, and the cleaner may remove
        // batches below the active segment that a replay from an older snapshot would need.
        // (Loading removed only snapshots above the end.)
        let snapshot = crate::segment::file_path(&dir, log_end, producer_state::SNAPSHOT_EXT);
        let have_snapshot = match &names {
            Some(names) => {
                let name = crate::segment::file_name(log_end, producer_state::SNAPSHOT_EXT);
                names.contains(&name)
            }
            None => fs.exists(&snapshot),
        };
        if !have_snapshot {
            producers.write_snapshot(&*fs, &dir, log_end)?;
        }
        let mut epochs = if listed(crate::epoch_cache::CHECKPOINT_FILE) {
            EpochCache::load(&*fs, &dir)
        } else {
            EpochCache::default()
        };
        // Recovery may have cut a torn tail: epochs that started in it never happened.
        if epochs.truncate_from_end(log_end) {
            epochs.persist(&*fs, &dir)?;
        }
        debug!(dir = %dir.display(), log_start_offset, log_end, ?recovery_stats, "opened partition log");
        Ok(Self {
            dir,
            fs,
            files,
            clock,
            recovery_stats,
            flush_lock: Mutex::new(()),
            cleaner: Mutex::default(),
            append_queue: AppendQueue::default(),
            limits: AppendLimits::of(&config),
            coalesced: AtomicU64::new(0),
            inner: Mutex::new(Inner {
                config,
                segments,
                log_start_offset,
                producers,
                txn_index,
                flushed_offset: log_end,
                unflushed_segments: Vec::new(),
                recovery_point,
                unflushed_messages: 0,
                last_flush_ms: now,
                closed: false,
                dir_dirty: false,
                pending_snapshots: Vec::new(),
                offline: None,
                epochs,
                leader_epoch: None,
                epochs_unpersisted: false,
            }),
        })
    }

    pub fn set_config(&self, config: LogConfig) {
        let mut inner = self.inner.lock();
        self.limits.set(&config);
        inner.config = config;
    }

    pub fn config(&self) -> LogConfig {
        self.inner.lock().config.clone()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What the open that created this log found and did (recovery work, clean shutdown).
    pub fn recovery_stats(&self) -> &RecoveryStats {
        &self.recovery_stats
    }

    /// Whether a failed fsync or an I/O error with unknown effect took the log offline; every
    /// operation then fails with [`LogError::Offline`] until the log is reopened (recovery).
    pub fn is_offline(&self) -> bool {
        self.inner.lock().offline.is_some()
    }

    /// Appends one or more magic-2 batches as sent by a producer; see the crate doc.
    ///
    /// The checks that need no log state (framing, CRCs, each record's framing, the keys of a
    /// compacted topic, sizes) run before the partition mutex is taken, so producers to one
    /// partition check their batches in parallel. An append that finds the mutex held queues
    /// itself; whoever takes the mutex next stages every queued append with its own (producer
    /// sequences, offsets) and writes all the accepted ones with one vectored write, then
    /// leaves each its answer before releasing the mutex.
    pub fn append(&self, records: BytesMut) -> Result<AppendInfo, LogError> {
        let request = self.check_append(records)?;
        let appended = match self.inner.try_lock() {
            Some(mut inner) => {
                let queued = self.append_queue.take();
                self.append_queued(&mut inner, queued, Some(request))
            }
            None => {
                let me = Arc::new(Queued(Mutex::new(QueuedState::Waiting(request))));
                self.append_queue.push(Arc::clone(&me));
                let mut inner = self.inner.lock();
                // Whoever drained the queue answered it before releasing the mutex; if
                // nobody did, this append is still queued and this thread writes the queue.
                match me.take_answer() {
                    Some(answer) => Some(answer),
                    None => {
                        let queued = self.append_queue.take();
                        self.append_queued(&mut inner, queued, None);
                        me.take_answer()
                    }
                }
            }
        };
        let appended = appended.expect("an append is answered by the thread that writes it")?;
        if appended.flush {
            self.flush_to(appended.info.last_offset + 1)?;
        }
        Ok(appended.info)
    }

    /// Appends written with another append's write (several concurrent appends to this
    /// partition written by one system call): the number saved.
    pub fn coalesced_appends(&self) -> u64 {
        self.coalesced.load(Ordering::Relaxed)
    }

    /// The checks of an append that need no log state; where each batch is.
    fn check_append(&self, records: BytesMut) -> Result<Request, LogError> {
        let limits = self.limits.get();
        let mut planned = Vec::new();
        let mut pos = 0;
        for batch in BatchSplitter::new(&records, limits.max_batch) {
            let header = validate_batch(batch?, Validation::Produce)?;
            validate_records(&header, Validation::Produce)?;
            if limits.compact {
                crate::cleaner::check_keys(&header, limits.max_decompressed)?;
            }
            let len = header.total_size();
            planned.push(Planned {
                pos,
                len,
                base_offset: 0,
            });
            pos += len;
        }
        if planned.is_empty() {
            return Err(LogError::InvalidRecord {
                reason: InvalidRecordReason::NoBatches,
            });
        }
        if records.len() as u64 > limits.segment_bytes {
            return Err(LogError::MessageTooLarge {
                size: records.len(),
                max: limits.segment_bytes as usize,
            });
        }
        Ok(Request { records, planned })
    }

    /// Stages the queued appends (oldest first) and `own` in order and writes the accepted
    /// ones together; answers the queued ones in their slots and returns `own`'s answer. A
    /// request is refused alone (a sequence error, say); a failed write, roll or
    /// transaction-index update fails every request not answered yet, since they were being
    /// written together.
    fn append_queued(
        &self,
        inner: &mut Inner,
        queued: Vec<Arc<Queued>>,
        own: Option<Request>,
    ) -> Option<Result<Appended, LogError>> {
        let waiting = queued.into_iter().filter_map(|q| {
            let state = std::mem::replace(&mut *q.0.lock(), QueuedState::Taken);
            match state {
                QueuedState::Waiting(request) => Some((Some(q), request)),
                _ => None,
            }
        });
        let requests = waiting.chain(own.map(|request| (None, request)));
        // The group's buffers are kept between appends (cleared, not freed), per thread: a
        // thread writes one group at a time, and a buffer per partition would cost memory
        // for every partition of a broker with many.
        let mut group = GROUP.with(RefCell::take);
        let mut answers = Answers::default();
        let mut failure = inner.check_open().err();
        let now = self.clock.now_ms();
        let mut next = inner.log_end_offset();
        for (slot, mut request) in requests {
            if let Some(e) = &failure {
                answers.give(slot, Err(e.copy()));
                continue;
            }
            match stage(inner, &group.producers, &mut request, next, now) {
                Err(e) => answers.give(slot, Err(e)),
                Ok(Staged::Duplicate(info)) if group.requests.is_empty() => {
                    answers.give(slot, Ok(Appended { info, flush: false }));
                }
                // Answered with the group: it may be a retry of a batch the group holds.
                Ok(Staged::Duplicate(info)) => group.members.push((slot, info)),
                Ok(Staged::Accepted {
                    info,
                    producers,
                    completed,
                }) => {
                    let len = request.records.len() as u64;
                    if inner.should_roll(group.bytes, len, info.last_offset, now) {
                        let rolled = self.write_group(inner, &mut group, &mut answers, now);
                        let rolled = rolled.and_then(|()| {
                            // The group is written: is the active segment still too full?
                            if inner.should_roll(0, len, info.last_offset, now) {
                                inner.roll(&self.files, &self.dir)
                            } else {
                                Ok(())
                            }
                        });
                        if let Err(e) = rolled {
                            answers.give(slot, Err(e.copy()));
                            failure = Some(e);
                            continue;
                        }
                    }
                    next = info.last_offset + 1;
                    group.producers.extend(producers);
                    group.completed.extend(completed);
                    group.bytes += len;
                    group.records += u64::from(info.record_count);
                    group.members.push((slot, info));
                    group.requests.push(request);
                }
            }
        }
        if failure.is_none() {
            // Its failure is in the answers of its members, the last requests.
            let _ = self.write_group(inner, &mut group, &mut answers, now);
        }
        GROUP.with(|g| *g.borrow_mut() = group);
        answers.mine
    }

    /// Writes `group` with one write and answers its members; leaves `group` empty.
    fn write_group(
        &self,
        inner: &mut Inner,
        group: &mut Group,
        answers: &mut Answers,
        now: i64,
    ) -> Result<(), LogError> {
        let written = self.write_group_files(inner, group, now);
        match &written {
            Ok(flush) => {
                for (slot, mut info) in group.members.drain(..) {
                    if !info.duplicate {
                        info.log_start_offset = inner.log_start_offset;
                    }
                    let flush = *flush && !info.duplicate;
                    answers.give(slot, Ok(Appended { info, flush }));
                }
            }
            Err(e) => {
                for (slot, _) in group.members.drain(..) {
                    answers.give(slot, Err(e.copy()));
                }
            }
        }
        group.clear();
        written.map(|_| ())
    }

    /// The write of [`Self::write_group`] and the bookkeeping after it; whether
    /// flush.messages was reached.
    fn write_group_files(
        &self,
        inner: &mut Inner,
        group: &mut Group,
        now: i64,
    ) -> Result<bool, LogError> {
        if group.requests.is_empty() {
            return Ok(false);
        }
        if inner.epochs_unpersisted {
            inner.epochs.persist(&*self.fs, &self.dir)?;
            inner.epochs_unpersisted = false;
        }
        {
            let mut headers = Vec::new();
            let mut start = 0;
            for r in &group.requests {
                for p in &r.planned {
                    let bytes = &r.records[p.pos..p.pos + p.len];
                    headers.push((start + p.pos, RecordBatchHeader::parse(bytes)?));
                }
                start += r.records.len();
            }
            if let [one] = &group.requests[..] {
                inner.write_batches(&self.dir, &[&one.records[..]], &headers, now)?;
            } else {
                let parts: Vec<&[u8]> = group.requests.iter().map(|r| &r.records[..]).collect();
                inner.write_batches(&self.dir, &parts, &headers, now)?;
            }
        }
        if !group.producers.is_empty() {
            for (id, entry) in group.producers.drain() {
                if let Some(e) = entry {
                    inner.producers.producers.insert(id, e);
                }
            }
        }
        if let Err(e) =
            crate::txn_index::record_completed(inner, &*self.fs, &self.dir, &group.completed)
        {
            return Err(inner.go_offline(&self.dir, "write transaction index", &e));
        }
        let shared = group.requests.len() as u64 - 1;
        if shared > 0 {
            self.coalesced.fetch_add(shared, Ordering::Relaxed);
            COALESCED_APPENDS.fetch_add(shared, Ordering::Relaxed);
        }
        inner.unflushed_messages += group.records;
        Ok(inner.unflushed_messages >= inner.config.flush_messages)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.inner.lock().log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.inner.lock().log_end_offset()
    }

    /// Bytes in all segment files.
    pub fn size_bytes(&self) -> u64 {
        self.inner.lock().segments.values().map(|s| s.size()).sum()
    }

    /// Number of segments (the active one included).
    pub fn segment_count(&self) -> usize {
        self.inner.lock().segments.len()
    }

    /// The offset consumers may read up to (exclusive; the broker's high watermark on a single
    /// replica): in durable mode (`flush.messages=1`) the flushed offset, since nothing may be
    /// visible before it is fsynced; otherwise the log end offset.
    pub fn visible_end_offset(&self) -> i64 {
        let inner = self.inner.lock();
        if inner.config.flush_messages == 1 {
            inner.flushed_offset
        } else {
            inner.log_end_offset()
        }
    }

    /// Everything below this offset is fsynced.
    pub fn flushed_offset(&self) -> i64 {
        self.inner.lock().flushed_offset
    }

    /// Early writeback (durable mode, [`crate::GroupCommit`]): the byte range of the active
    /// segment appended since the last range handed out, once it is at least `threshold`
    /// bytes (0: never). Each appended byte is handed out at most once.
    pub fn take_writeback(&self, threshold: u64) -> Option<std::ops::Range<u64>> {
        let active = Arc::clone(self.inner.lock().active());
        active.take_writeback(threshold)
    }

    /// fsyncs everything appended so far.
    pub fn flush(&self) -> Result<(), LogError> {
        self.flush_to(i64::MAX)
    }

    /// fsyncs at least up to `offset` (exclusive): rolled segments not synced yet, then the
    /// active one. The fsyncs run without the partition lock (appends and reads go on);
    /// `flush_lock` keeps concurrent flushes from claiming data another flush is still syncing.
    pub fn flush_to(&self, offset: i64) -> Result<(), LogError> {
        self.sync(Some(offset))
    }

    /// Background duty: fsyncs rolled segments that are not synced yet (with their indexes,
    /// the directory entries of the roll and the producer snapshot taken at it), then advances
    /// and persists the recovery point, so an unclean restart scans only the active segment.
    /// Never holds the partition lock across an fsync; cheap when nothing rolled.
    pub fn flush_rolled(&self) -> Result<(), LogError> {
        self.sync(None)
    }

    /// The flush behind `flush_to` (`Some(offset)`: the active segment too, if not flushed
    /// that far) and `flush_rolled`. Returns at once when there is nothing to sync.
    fn sync(&self, offset: Option<i64>) -> Result<(), LogError> {
        let _flushing = self.flush_lock.lock();
        let work = {
            let mut inner = self.inner.lock();
            inner.check_open()?;
            let end = inner.log_end_offset();
            let active = offset
                .filter(|o| inner.flushed_offset < (*o).min(end))
                .map(|_| Arc::clone(inner.active()));
            let rolled_work = !inner.unflushed_segments.is_empty()
                || inner.dir_dirty
                || !inner.pending_snapshots.is_empty();
            if active.is_none() && !rolled_work {
                return Ok(());
            }
            FlushWork {
                rolled: std::mem::take(&mut inner.unflushed_segments),
                target: if active.is_some() {
                    end
                } else {
                    inner.active().base_offset
                },
                active,
                dir: std::mem::take(&mut inner.dir_dirty),
                snapshots: std::mem::take(&mut inner.pending_snapshots),
                recovery_point: inner.recovery_point,
            }
        };
        let result = self.sync_files(&work);
        let mut inner = self.inner.lock();
        match result {
            Ok(()) => {}
            // A new snapshot or checkpoint file could not be written (a full disk, say): only
            // a temporary file is affected, never trusted by recovery, so the work is put back
            // for the next flush and the recovery point stays where it was.
            Err(SyncFailure::Retry(e)) => {
                let mut snapshots = work.snapshots;
                snapshots.append(&mut inner.pending_snapshots);
                inner.pending_snapshots = snapshots;
                inner.dir_dirty |= work.dir;
                return Err(e);
            }
            // The kernel may have dropped the dirty pages it failed to write: what is on disk
            // is unknown until recovery reads it.
            Err(SyncFailure::Fsync(e)) => return Err(inner.go_offline(&self.dir, "fsync", &e)),
        }
        if work.target > inner.flushed_offset {
            inner.flushed_offset = work.target;
        }
        if work.active.is_some() {
            inner.unflushed_messages = 0;
            inner.last_flush_ms = self.clock.now_ms();
        }
        let point = work.point();
        if point > inner.recovery_point {
            inner.recovery_point = point;
        }
        Ok(())
    }

    /// The fsyncs of one flush, in an order that keeps recovery sound: segment data and
    /// indexes, then the directory (their names), then the recovery point that trusts them.
    fn sync_files(&self, work: &FlushWork) -> Result<(), SyncFailure> {
        let fs = &*self.fs;
        for s in &work.rolled {
            s.sync_all(fs).map_err(SyncFailure::Fsync)?;
        }
        if let Some(active) = &work.active {
            active.sync_log().map_err(SyncFailure::Fsync)?;
        }
        for (offset, bytes) in &work.snapshots {
            producer_state::write_snapshot_bytes(fs, &self.dir, *offset, bytes)
                .map_err(SyncFailure::Retry)?;
        }
        if work.dir || !work.snapshots.is_empty() {
            sync_dir(fs, &self.dir).map_err(SyncFailure::Fsync)?;
        }
        let point = work.point();
        if point > work.recovery_point && self.inner.lock().segments.contains_key(&point) {
            recovery::write_recovery_point(fs, &self.dir, point).map_err(SyncFailure::Retry)?;
        }
        Ok(())
    }

    /// Flushes, writes indexes, a producer-state snapshot and the clean-shutdown marker. A
    /// failure (an fsync's above all) takes the log offline: no marker, so the next open
    /// recovers.
    pub fn close(&self) -> Result<(), LogError> {
        self.close_with(true)
    }

    /// [`Self::close`] without this log's clean-shutdown marker and without the fsyncs of
    /// the active segment and the directory: the caller syncs the whole file system
    /// (`syncfs`) once every log in the log dir closed, then marks the log dir clean (as
    /// Kafka's broker does) and opens the logs with `dir_clean` ([`Self::open_in`]). Saves
    /// about five fsyncs per partition at shutdown and one at start-up.
    ///
    /// What recovery relies on without the marker is still synced here, in order: rolled
    /// segments not synced yet and their directory entries before a new recovery point, and
    /// each producer snapshot's contents before its name. Should the process die before the
    /// marker is written, the next open recovers as after a kill -9.
    pub fn close_for_log_dir_marker(&self) -> Result<(), LogError> {
        self.close_with(false)
    }

    fn close_with(&self, marker: bool) -> Result<(), LogError> {
        let _flushing = self.flush_lock.lock();
        let mut inner = self.inner.lock();
        inner.check_open()?;
        self.close_locked(&mut inner, marker)
            .map_err(|e| inner.go_offline(&self.dir, "close", &e))
    }

    fn close_locked(&self, inner: &mut Inner, marker: bool) -> Result<(), LogError> {
        let fs = &*self.fs;
        let active = Arc::clone(inner.active());
        active.finalize()?;
        // Without this log's own marker the caller syncs the file system before trusting
        // anything (see `close_for_log_dir_marker`): only what must be durable before a
        // later step (the recovery point trusts rolled segments and their names) is synced.
        let ordered = marker
            || !inner.unflushed_segments.is_empty()
            || inner.dir_dirty
            || inner.recovery_point != active.base_offset;
        for s in std::mem::take(&mut inner.unflushed_segments) {
            s.sync_all(fs)?;
        }
        if marker {
            active.sync_all(fs)?;
        }
        // The snapshot at the log end below supersedes those the rolls took.
        inner.pending_snapshots.clear();
        if ordered {
            sync_dir(fs, &self.dir)?;
            inner.dir_dirty = false;
        }
        if inner.recovery_point != active.base_offset {
            inner.recovery_point = active.base_offset;
            recovery::write_recovery_point(fs, &self.dir, active.base_offset)?;
        }
        // An identical snapshot at the log end is already durable (snapshots are written
        // with fsyncs): a partition idle since it opened writes nothing here, which is what
        // lets 100,000 of them close in seconds.
        let end = inner.log_end_offset();
        let bytes = inner.producers.encode();
        let snapshot = crate::segment::file_path(&self.dir, end, producer_state::SNAPSHOT_EXT);
        if fs.read(&snapshot).ok().as_deref() != Some(&bytes[..]) {
            producer_state::write_snapshot_bytes(fs, &self.dir, end, &bytes)?;
            if marker {
                sync_dir(fs, &self.dir)?;
            }
        }
        if marker {
            let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
            producer_state::write_durably(fs, &marker, b"")?;
            sync_dir(fs, &self.dir)?;
        }
        inner.closed = true;
        Ok(())
    }

    /// Closes the log (if open) and removes its directory (topic deletion).
    pub fn delete(&self) -> Result<(), LogError> {
        let mut inner = self.inner.lock();
        inner.closed = true;
        self.fs
            .remove_dir_all(&self.dir)
            .map_err(io_err("delete log directory", &self.dir))?;
        if let Some(parent) = self.dir.parent() {
            sync_dir(&*self.fs, parent)?;
        }
        Ok(())
    }
}

/// What one flush makes durable, taken from `Inner` under the lock.
/// Why a flush failed: an fsync of data whose state on disk is now unknown (the log goes
/// offline), or writing a new snapshot or checkpoint through a temporary file (retried).
enum SyncFailure {
    Fsync(LogError),
    Retry(LogError),
}

struct FlushWork {
    /// Rolled segments not fsynced yet (all below `target` when `active` is `None`).
    rolled: Vec<Arc<Segment>>,
    /// The active segment, when the flush covers it.
    active: Option<Arc<Segment>>,
    /// Everything below this is durable once the work is done.
    target: i64,
    /// The directory needs an fsync.
    dir: bool,
    snapshots: Vec<(i64, Vec<u8>)>,
    /// The recovery point when the work was taken.
    recovery_point: i64,
}

impl FlushWork {
    /// The recovery point once the work is done: the base of the segment holding `target`
    /// (every segment below it is fully synced).
    fn point(&self) -> i64 {
        match &self.active {
            Some(a) => a.base_offset,
            None => self.target,
        }
    }
}

fn duplicate_info(
    first: i64,
    last: i64,
    header: &RecordBatchHeader<'_>,
    inner: &Inner,
) -> AppendInfo {
    AppendInfo {
        base_offset: first,
        last_offset: last,
        log_append_time: -1,
        max_timestamp: header.max_timestamp(),
        record_count: header.records_count().max(0) as u32,
        duplicate: true,
        log_start_offset: inner.log_start_offset,
    }
}

/// Appends that queue behind the partition mutex: the test holds the mutex while appenders
/// queue up in a known order, then lets go; the first appender to take the mutex writes the
/// whole queue.
#[cfg(test)]
mod coalescing {
    use std::thread::{self, JoinHandle};
    use std::time::Duration;

    use strom_protocol::record_batch::builder::build_batch;
    use strom_protocol::record_batch::validate_batch;

    use super::*;
    use crate::fs::{Fault, FaultOp, SimFs};
    use crate::ManualClock;

    fn idempotent(producer_id: i64, seq: i32, records: usize) -> BytesMut {
        let value = [b'v'; 50];
        let recs: Vec<_> = (0..records)
            .map(|i| (None, Some(&value[..]), 1_000 + i as i64))
            .collect();
        build_batch(0, &recs, Some((producer_id, 0, seq)))
    }

    fn config() -> LogConfig {
        LogConfig {
            retention_ms: -1,
            ..LogConfig::default()
        }
    }

    fn open_in(dir: PathBuf, fs: Arc<dyn Fs>) -> Arc<PartitionLog> {
        let clock = Arc::new(ManualClock::new(0));
        Arc::new(PartitionLog::open_with_fs(dir, config(), clock, fs).unwrap())
    }

    /// A log on the real disk: its writes go through `pwritev`.
    fn open_real() -> (tempfile::TempDir, Arc<PartitionLog>) {
        let dir = tempfile::tempdir().unwrap();
        let log = open_in(dir.path().join("t-0"), Arc::new(StdFs));
        (dir, log)
    }

    type Answer = JoinHandle<Result<AppendInfo, LogError>>;

    /// Starts one appender per batch while the mutex is held, each queued before the next
    /// starts, then releases the mutex and collects the answers in queue order.
    fn queue_up(
        log: &Arc<PartitionLog>,
        batches: Vec<BytesMut>,
    ) -> Vec<Result<AppendInfo, LogError>> {
        let held = log.inner.lock();
        let mut appenders: Vec<Answer> = Vec::new();
        for (i, batch) in batches.into_iter().enumerate() {
            let appender = Arc::clone(log);
            appenders.push(thread::spawn(move || appender.append(batch)));
            while log.append_queue.entries.lock().len() < i + 1 {
                thread::sleep(Duration::from_millis(1));
            }
        }
        drop(held);
        appenders.into_iter().map(|a| a.join().unwrap()).collect()
    }

    /// Every batch in the log: (base offset, producer id, base sequence).
    fn stored(log: &PartitionLog) -> Vec<(i64, i64, i32)> {
        let mut batches = Vec::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let read = log.read(offset, 1 << 20, None).unwrap();
            let bytes = read.slice.unwrap().read_to_bytes().unwrap();
            for b in BatchSplitter::new(&bytes, usize::MAX) {
                let h = validate_batch(b.unwrap(), Validation::Stored).unwrap();
                batches.push((h.base_offset(), h.producer_id(), h.base_sequence()));
                offset = h.last_offset() + 1;
            }
        }
        batches
    }

    #[test]
    fn queued_appends_are_written_together_in_queue_order() {
        let (_dir, log) = open_real();
        let answers = queue_up(
            &log,
            (0..4)
                .map(|p| idempotent(100 + p, 0, 2 + p as usize))
                .collect(),
        );
        let infos: Vec<AppendInfo> = answers.into_iter().map(Result::unwrap).collect();
        let bases: Vec<i64> = infos.iter().map(|i| i.base_offset).collect();
        assert_eq!(bases, [0, 2, 5, 9]);
        assert!(infos
            .iter()
            .all(|i| !i.duplicate && i.log_start_offset == 0));
        assert_eq!(infos[3].last_offset, 13);
        assert_eq!(log.coalesced_appends(), 3, "four appends, one write");
        assert_eq!(
            stored(&log),
            [(0, 100, 0), (2, 101, 0), (5, 102, 0), (9, 103, 0)]
        );
        assert_eq!(log.log_end_offset(), 14);
    }

    #[test]
    fn a_refused_append_in_a_group_fails_alone() {
        let (_dir, log) = open_real();
        log.append(idempotent(7, 0, 1)).unwrap();
        let answers = queue_up(
            &log,
            vec![
                idempotent(1, 0, 3),
                // A retry of the batch before it, in the same group: its offsets.
                idempotent(1, 0, 3),
                // Producer 7's next sequence is 1.
                idempotent(7, 5, 1),
                idempotent(1, 3, 1),
                idempotent(7, 1, 1),
            ],
        );
        let first = answers[0].as_ref().unwrap();
        assert_eq!(
            (first.base_offset, first.last_offset, first.duplicate),
            (1, 3, false)
        );
        let retry = answers[1].as_ref().unwrap();
        assert_eq!(
            (retry.base_offset, retry.last_offset, retry.duplicate),
            (1, 3, true)
        );
        assert!(matches!(
            answers[2],
            Err(LogError::OutOfOrderSequence {
                producer_id: 7,
                expected: 1,
                received: 5
            })
        ));
        assert_eq!(answers[3].as_ref().unwrap().base_offset, 4);
        assert_eq!(answers[4].as_ref().unwrap().base_offset, 5);
        assert_eq!(log.coalesced_appends(), 2);
        assert_eq!(stored(&log), [(0, 7, 0), (1, 1, 0), (4, 1, 3), (5, 7, 1)]);
        // The producer states the group left are the log's.
        assert!(log.append(idempotent(1, 3, 1)).unwrap().duplicate);
        assert_eq!(log.append(idempotent(1, 4, 1)).unwrap().base_offset, 6);
    }

    #[test]
    fn a_failed_group_write_fails_every_append_in_it_and_the_log_goes_on() {
        let fs = Arc::new(SimFs::new(7));
        let log = open_in(PathBuf::from("/data/t-0"), fs.clone());
        log.append(idempotent(1, 0, 1)).unwrap();
        let size = log.size_bytes();
        fs.inject(Fault::new(FaultOp::Write, 5).path(".log").times(1));
        let answers = queue_up(
            &log,
            vec![
                idempotent(1, 1, 1),
                idempotent(2, 0, 2),
                idempotent(3, 0, 1),
                // A retry of a batch of the group fails with it.
                idempotent(2, 0, 2),
            ],
        );
        assert_eq!(answers.len(), 4);
        for answer in &answers {
            match answer {
                Err(LogError::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(5)),
                other => panic!("expected EIO, got {other:?}"),
            }
        }
        assert_eq!(log.log_end_offset(), 1);
        assert_eq!(log.size_bytes(), size, "the failed write was cut back");
        // Nothing of the group reached the producer states: producer 1 resumes at 1.
        assert_eq!(log.append(idempotent(1, 1, 1)).unwrap().base_offset, 1);
        assert_eq!(log.append(idempotent(2, 0, 2)).unwrap().base_offset, 2);
        assert_eq!(stored(&log), [(0, 1, 0), (1, 1, 1), (2, 2, 0)]);
    }

    #[test]
    fn a_group_that_crosses_the_segment_size_rolls_between_its_appends() {
        let (_dir, log) = open_real();
        let one = idempotent(1, 0, 1).len() as u64;
        log.set_config(LogConfig {
            segment_bytes: one * 2 + one / 2,
            ..config()
        });
        let answers = queue_up(&log, (0..5).map(|p| idempotent(10 + p, 0, 1)).collect());
        let bases: Vec<i64> = answers
            .into_iter()
            .map(|a| a.unwrap().base_offset)
            .collect();
        assert_eq!(bases, [0, 1, 2, 3, 4]);
        assert_eq!(log.segment_count(), 3, "two appends per segment");
        let producers: Vec<i64> = stored(&log).iter().map(|s| s.1).collect();
        assert_eq!(producers, [10, 11, 12, 13, 14]);
    }
}
