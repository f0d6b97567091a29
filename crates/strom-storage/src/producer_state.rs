//! Idempotent-producer state of one partition (KIP-98): per producer id the epoch and the last
//! five batches' sequence/offset ranges (to reject gaps and answer retries) and the first
//! offset of its open transaction (for the LSO), and the highest coordinator epoch whose
//! transaction marker it wrote (a marker from an older coordinator is fenced, as in Kafka).
//! Persisted as `<offset>.snapshot` files.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use strom_protocol::record_batch::control::{
    control_record_type, marker_coordinator_epoch, ControlRecordType,
};
use strom_protocol::record_batch::{RecordBatchHeader, NO_SEQUENCE};

use crate::error::{io_err, LogError};
use crate::fs::{Fs, OpenMode};
use crate::segment::sync_dir;
use crate::txn_index::AbortedTxn;

/// Batches remembered per producer for duplicate detection (Kafka: 5 in-flight requests).
pub(crate) const BATCHES_PER_PRODUCER: usize = 5;
pub(crate) const SNAPSHOT_EXT: &str = "snapshot";
const SNAPSHOT_MAGIC: &[u8; 8] = b"STRMPS04";
/// Snapshots written before coordinator epochs (no coordinator epoch); still read.
const SNAPSHOT_MAGIC_V3: &[u8; 8] = b"STRMPS03";
/// Snapshots written before producer expiration (no last timestamp); still read.
const SNAPSHOT_MAGIC_V2: &[u8; 8] = b"STRMPS02";
/// Snapshots written before transactions (no open-transaction offset); still read.
const SNAPSHOT_MAGIC_V1: &[u8; 8] = b"STRMPS01";
/// `last_timestamp` of an entry read from a snapshot older than v3: the opener replaces it
/// with the time of the open, so such producers expire a full expiration period later.
pub(crate) const UNKNOWN_TIMESTAMP: i64 = i64::MIN;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first, at most `BATCHES_PER_PRODUCER`.
    pub batches: VecDeque<BatchMeta>,
    /// Last offset written by this producer (to drop it once retention removed it all).
    pub last_offset: i64,
    /// First offset of the producer's open transaction (KIP-98), if one is open.
    pub current_txn_first_offset: Option<i64>,
    /// Max timestamp of the producer's last batch (as stored); `producer.id.expiration.ms`
    /// counts from here, as in Kafka.
    pub last_timestamp: i64,
    /// Coordinator epoch of the last transaction marker written for this producer (-1: none
    /// yet). A marker with an older one comes from a deposed coordinator.
    pub coordinator_epoch: i32,
}

/// Outcome of checking one batch against the producer's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    Accept,
    Duplicate(BatchMeta),
}

/// The identity of a batch as far as sequence checks go.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    pub last_seq: i32,
    pub transactional: bool,
    /// A control batch ends the producer's transaction; `Some(Commit)` only for a commit
    /// marker (an unreadable marker counts as an abort: its data stays hidden).
    pub control: Option<Option<ControlRecordType>>,
    /// A marker's coordinator epoch (-1 if unreadable; unused for other batches).
    pub coordinator_epoch: i32,
    /// The batch's max timestamp as it is stored (the append time under LogAppendTime).
    pub max_timestamp: i64,
}

/// A transaction a marker ended: `[first_offset, marker_offset]` of `producer_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub marker_offset: i64,
    pub aborted: bool,
}

impl ProducerBatch {
    /// `h` must hold the whole batch for a control batch (its record says commit or abort).
    pub fn of(h: &RecordBatchHeader<'_>) -> Option<Self> {
        (h.producer_id() >= 0).then(|| Self {
            producer_id: h.producer_id(),
            epoch: h.producer_epoch(),
            first_seq: h.base_sequence(),
            last_seq: h.last_sequence(),
            transactional: h.is_transactional(),
            control: h.is_control().then(|| control_record_type(h)),
            coordinator_epoch: marker_coordinator_epoch(h).unwrap_or(-1),
            max_timestamp: h.max_timestamp(),
        })
    }
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

/// Checks `b` against `entry` (None = unknown producer: any sequence is accepted).
pub(crate) fn check(
    entry: Option<&ProducerEntry>,
    b: &ProducerBatch,
) -> Result<SequenceCheck, LogError> {
    let Some(entry) = entry else {
        return Ok(SequenceCheck::Accept);
    };
    if b.epoch < entry.epoch {
        return Err(LogError::InvalidProducerEpoch {
            producer_id: b.producer_id,
            current: entry.epoch,
            received: b.epoch,
        });
    }
    if b.control.is_some() && b.coordinator_epoch < entry.coordinator_epoch {
        return Err(LogError::TransactionCoordinatorFenced {
            producer_id: b.producer_id,
            current: entry.coordinator_epoch,
            received: b.coordinator_epoch,
        });
    }
    if b.first_seq == NO_SEQUENCE {
        return Ok(SequenceCheck::Accept);
    }
    if b.epoch > entry.epoch {
        if b.first_seq != 0 {
            return Err(LogError::OutOfOrderSequence {
                producer_id: b.producer_id,
                expected: 0,
                received: b.first_seq,
            });
        }
        return Ok(SequenceCheck::Accept);
    }
    if let Some(dup) = entry
        .batches
        .iter()
        .find(|m| m.first_seq == b.first_seq && m.last_seq == b.last_seq)
    {
        return Ok(SequenceCheck::Duplicate(*dup));
    }
    match entry.batches.back() {
        Some(last) if next_seq(last.last_seq) != b.first_seq => Err(LogError::OutOfOrderSequence {
            producer_id: b.producer_id,
            expected: next_seq(last.last_seq),
            received: b.first_seq,
        }),
        _ => Ok(SequenceCheck::Accept),
    }
}

/// Records an appended batch at `[first_offset, last_offset]` (no checks: also used for
/// replay). Returns the transaction a marker batch ended, if one was open.
pub(crate) fn apply(
    entry: &mut Option<ProducerEntry>,
    b: &ProducerBatch,
    first_offset: i64,
    last_offset: i64,
) -> Option<CompletedTxn> {
    let e = entry.get_or_insert_with(|| ProducerEntry {
        epoch: b.epoch,
        batches: VecDeque::new(),
        last_offset,
        current_txn_first_offset: None,
        last_timestamp: b.max_timestamp,
        coordinator_epoch: -1,
    });
    if b.epoch != e.epoch {
        // A bumped epoch keeps the open transaction: its (abort) marker still ends it.
        e.epoch = b.epoch;
        e.batches.clear();
    }
    e.last_offset = last_offset;
    e.last_timestamp = b.max_timestamp;
    if let Some(kind) = b.control {
        e.coordinator_epoch = b.coordinator_epoch;
        return e.current_txn_first_offset.take().map(|first| CompletedTxn {
            producer_id: b.producer_id,
            first_offset: first,
            marker_offset: first_offset,
            aborted: kind != Some(ControlRecordType::Commit),
        });
    }
    if b.transactional && e.current_txn_first_offset.is_none() {
        e.current_txn_first_offset = Some(first_offset);
    }
    if b.first_seq == NO_SEQUENCE {
        return None;
    }
    if e.batches.len() == BATCHES_PER_PRODUCER {
        e.batches.pop_front();
    }
    e.batches.push_back(BatchMeta {
        first_seq: b.first_seq,
        last_seq: b.last_seq,
        first_offset,
        last_offset,
    });
    None
}

/// All producers of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProducerState {
    pub producers: HashMap<i64, ProducerEntry>,
    /// Aborted transactions met by `replay` since the state was loaded (not persisted: the
    /// opener moves them into the transaction index).
    pub replayed_aborts: Vec<AbortedTxn>,
}

impl ProducerState {
    /// Replays a stored batch (the whole batch for control batches).
    pub fn replay(&mut self, h: &RecordBatchHeader<'_>) {
        if let Some(b) = ProducerBatch::of(h) {
            let mut entry = self.producers.remove(&b.producer_id);
            let completed = apply(&mut entry, &b, h.base_offset(), h.last_offset());
            if let Some(e) = entry {
                self.producers.insert(b.producer_id, e);
            }
            if let Some(c) = completed.filter(|c| c.aborted) {
                let aborted = self.aborted(&c);
                self.replayed_aborts.push(aborted);
            }
        }
    }

    /// The index entry of an aborted transaction, with the LSO right after its marker
    /// (call once the transaction is no longer open).
    pub fn aborted(&self, c: &CompletedTxn) -> AbortedTxn {
        AbortedTxn {
            producer_id: c.producer_id,
            first_offset: c.first_offset,
            last_offset: c.marker_offset,
            last_stable_offset: self.first_unstable_offset().unwrap_or(c.marker_offset + 1),
        }
    }

    /// The first offset of the earliest open transaction (the LSO when there is one).
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers
            .values()
            .filter_map(|e| e.current_txn_first_offset)
            .min()
    }

    /// `producer.id.expiration.ms`: forgets producers with no open transaction whose last
    /// batch is at least `expiration_ms` older than `now_ms` (Kafka's rule). Their next batch
    /// is accepted with any sequence, as for a new producer. Returns how many went.
    pub fn expire_idle(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Gives entries loaded from pre-v3 snapshots a last timestamp of `now_ms`.
    pub fn stamp_unknown_timestamps(&mut self, now_ms: i64) {
        for e in self.producers.values_mut() {
            if e.last_timestamp == UNKNOWN_TIMESTAMP {
                e.last_timestamp = now_ms;
            }
        }
    }

    /// Forgets producers whose every batch is below `log_start_offset`.
    pub fn remove_expired(&mut self, log_start_offset: i64) {
        self.producers
            .retain(|_, e| e.last_offset >= log_start_offset);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.producers.len() * 64);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&(self.producers.len() as u32).to_be_bytes());
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let e = &self.producers[&id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_offset.to_be_bytes());
            let open = e.current_txn_first_offset.unwrap_or(-1);
            out.extend_from_slice(&open.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            out.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            out.push(e.batches.len() as u8);
            for m in &e.batches {
                out.extend_from_slice(&m.first_seq.to_be_bytes());
                out.extend_from_slice(&m.last_seq.to_be_bytes());
                out.extend_from_slice(&m.first_offset.to_be_bytes());
                out.extend_from_slice(&m.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// `None` if the bytes are not a complete, CRC-valid snapshot.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let (body, crc) = bytes.split_at(bytes.len().checked_sub(4)?);
        let v4 = body.starts_with(SNAPSHOT_MAGIC);
        let v3 = v4 || body.starts_with(SNAPSHOT_MAGIC_V3);
        let v2 = v3 || body.starts_with(SNAPSHOT_MAGIC_V2);
        if crc32c::crc32c(body).to_be_bytes() != crc || !(v2 || body.starts_with(SNAPSHOT_MAGIC_V1))
        {
            return None;
        }
        let mut r = Reader(&body[SNAPSHOT_MAGIC.len()..]);
        let count = r.u32()?;
        let mut producers = HashMap::new();
        for _ in 0..count {
            let id = i64::from_be_bytes(r.take()?);
            let epoch = i16::from_be_bytes(r.take()?);
            let last_offset = i64::from_be_bytes(r.take()?);
            let open = if v2 {
                i64::from_be_bytes(r.take()?)
            } else {
                -1
            };
            let last_timestamp = if v3 {
                i64::from_be_bytes(r.take()?)
            } else {
                UNKNOWN_TIMESTAMP
            };
            let coordinator_epoch = if v4 {
                i32::from_be_bytes(r.take()?)
            } else {
                -1
            };
            let n = r.take::<1>()?[0] as usize;
            if n > BATCHES_PER_PRODUCER {
                return None;
            }
            let mut batches = VecDeque::with_capacity(n);
            for _ in 0..n {
                batches.push_back(BatchMeta {
                    first_seq: i32::from_be_bytes(r.take()?),
                    last_seq: i32::from_be_bytes(r.take()?),
                    first_offset: i64::from_be_bytes(r.take()?),
                    last_offset: i64::from_be_bytes(r.take()?),
                });
            }
            producers.insert(
                id,
                ProducerEntry {
                    epoch,
                    batches,
                    last_offset,
                    current_txn_first_offset: (open >= 0).then_some(open),
                    last_timestamp,
                    coordinator_epoch,
                },
            );
        }
        r.0.is_empty().then_some(Self {
            producers,
            replayed_aborts: Vec::new(),
        })
    }

    /// Writes `<offset>.snapshot` atomically (temp file, fsync, rename, fsync dir).
    pub fn write_snapshot(&self, fs: &dyn Fs, dir: &Path, offset: i64) -> Result<(), LogError> {
        write_snapshot_bytes(fs, dir, offset, &self.encode())?;
        sync_dir(fs, dir)
    }
}

/// Writes encoded state as `<offset>.snapshot` (temp file, fsync, rename); the caller fsyncs
/// the directory.
pub(crate) fn write_snapshot_bytes(
    fs: &dyn Fs,
    dir: &Path,
    offset: i64,
    bytes: &[u8],
) -> Result<(), LogError> {
    let path = crate::segment::file_path(dir, offset, SNAPSHOT_EXT);
    let tmp = path.with_extension("snapshot.tmp");
    write_durably(fs, &tmp, bytes)?;
    fs.rename(&tmp, &path)
        .map_err(io_err("rename snapshot", &path))
}

/// Writes a file (replacing its contents) and fsyncs it.
pub(crate) fn write_durably(fs: &dyn Fs, path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    let f = fs
        .open(path, OpenMode::Truncate)
        .map_err(io_err("create file", path))?;
    f.write_all_at(bytes, 0)
        .map_err(io_err("write file", path))?;
    f.sync_all().map_err(io_err("fsync file", path))
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, tail) = (self.0.get(..N)?, &self.0[N..]);
        self.0 = tail;
        head.try_into().ok()
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pb(epoch: i16, first: i32, last: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: 9,
            epoch,
            first_seq: first,
            last_seq: last,
            transactional: false,
            control: None,
            coordinator_epoch: -1,
            max_timestamp: 1_000,
        }
    }

    /// Kafka's rule: a marker whose coordinator epoch is older than the last marker's for the
    /// producer is fenced; equal or newer is written and remembered, also through a snapshot
    /// (and a v3 snapshot, from before coordinator epochs, reads as "none yet").
    #[test]
    fn markers_from_an_older_coordinator_epoch_are_fenced() {
        let marker = |coordinator_epoch| ProducerBatch {
            transactional: true,
            control: Some(Some(ControlRecordType::Commit)),
            coordinator_epoch,
            ..pb(0, NO_SEQUENCE, NO_SEQUENCE)
        };
        let mut e = None;
        assert_eq!(
            check(e.as_ref(), &marker(5)).unwrap(),
            SequenceCheck::Accept
        );
        apply(&mut e, &marker(5), 10, 10);
        assert_eq!(e.as_ref().unwrap().coordinator_epoch, 5);
        let fenced = check(e.as_ref(), &marker(4)).unwrap_err();
        assert!(
            matches!(
                fenced,
                LogError::TransactionCoordinatorFenced {
                    producer_id: 9,
                    current: 5,
                    received: 4
                }
            ),
            "{fenced}"
        );
        assert_eq!(
            check(e.as_ref(), &marker(5)).unwrap(),
            SequenceCheck::Accept
        );
        assert_eq!(
            check(e.as_ref(), &marker(6)).unwrap(),
            SequenceCheck::Accept
        );
        // Data batches do not carry a coordinator epoch and are never fenced by it.
        assert!(check(e.as_ref(), &pb(0, 0, 0)).is_ok());

        let mut s = ProducerState::default();
        s.producers.insert(9, e.clone().unwrap());
        let back = ProducerState::decode(&s.encode()).unwrap();
        assert_eq!(back.producers[&9].coordinator_epoch, 5);
        assert!(check(back.producers.get(&9), &marker(4)).is_err());
        // A v3 snapshot: the same layout without the coordinator epoch.
        let mut v3 = s.clone();
        v3.producers.get_mut(&9).unwrap().coordinator_epoch = -1;
        let mut bytes = v3.encode();
        bytes.truncate(bytes.len() - 4);
        let at = SNAPSHOT_MAGIC.len() + 4 + 8 + 2 + 8 + 8 + 8;
        bytes.drain(at..at + 4);
        bytes[..8].copy_from_slice(SNAPSHOT_MAGIC_V3);
        let crc = crc32c::crc32c(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(ProducerState::decode(&bytes), Some(v3));
    }

    #[test]
    fn transactions_open_and_end_with_markers() {
        let mut s = ProducerState::default();
        let txn = |first| ProducerBatch {
            transactional: true,
            ..pb(0, first, first)
        };
        let marker = |epoch, kind| ProducerBatch {
            transactional: true,
            control: Some(Some(kind)),
            ..pb(epoch, NO_SEQUENCE, NO_SEQUENCE)
        };
        let mut e = None;
        assert_eq!(apply(&mut e, &txn(0), 10, 10), None);
        assert_eq!(apply(&mut e, &txn(1), 12, 12), None);
        s.producers.insert(9, e.clone().unwrap());
        assert_eq!(s.first_unstable_offset(), Some(10));
        // The open transaction survives a snapshot.
        assert_eq!(ProducerState::decode(&s.encode()), Some(s.clone()));
        // An abort marker with a bumped epoch still ends it.
        let done = apply(&mut e, &marker(1, ControlRecordType::Abort), 13, 13).unwrap();
        assert_eq!(
            (done.first_offset, done.marker_offset, done.aborted),
            (10, 13, true)
        );
        s.producers.insert(9, e.clone().unwrap());
        assert_eq!(s.first_unstable_offset(), None);
        assert_eq!(s.aborted(&done).last_stable_offset, 14);
        // A marker with nothing open completes nothing; a commit is not an abort.
        assert_eq!(
            apply(&mut e, &marker(1, ControlRecordType::Commit), 14, 14),
            None
        );
        apply(
            &mut e,
            &ProducerBatch {
                transactional: true,
                ..pb(1, 0, 0)
            },
            15,
            15,
        );
        let done = apply(&mut e, &marker(1, ControlRecordType::Commit), 16, 16).unwrap();
        assert!(!done.aborted);
    }

    #[test]
    fn sequence_rules() {
        let mut e = None;
        assert_eq!(
            check(e.as_ref(), &pb(0, 17, 17)).unwrap(),
            SequenceCheck::Accept
        );
        apply(&mut e, &pb(0, 0, 4), 100, 104);
        assert!(matches!(
            check(e.as_ref(), &pb(0, 6, 6)),
            Err(LogError::OutOfOrderSequence { expected: 5, .. })
        ));
        assert_eq!(
            check(e.as_ref(), &pb(0, 5, 9)).unwrap(),
            SequenceCheck::Accept
        );
        let dup = check(e.as_ref(), &pb(0, 0, 4)).unwrap();
        assert!(matches!(
            dup,
            SequenceCheck::Duplicate(BatchMeta {
                first_offset: 100,
                last_offset: 104,
                ..
            })
        ));
        assert!(matches!(
            check(e.as_ref(), &pb(1, 3, 3)),
            Err(LogError::OutOfOrderSequence { expected: 0, .. })
        ));
        assert_eq!(
            check(e.as_ref(), &pb(1, 0, 0)).unwrap(),
            SequenceCheck::Accept
        );
        apply(&mut e, &pb(1, 0, 0), 105, 105);
        assert!(matches!(
            check(e.as_ref(), &pb(0, 1, 1)),
            Err(LogError::InvalidProducerEpoch { current: 1, .. })
        ));
    }

    #[test]
    fn keeps_five_batches_and_wraps() {
        let mut e = None;
        for i in 0..7 {
            apply(&mut e, &pb(0, i, i), i64::from(i), i64::from(i));
        }
        let entry = e.clone().unwrap();
        assert_eq!(entry.batches.len(), BATCHES_PER_PRODUCER);
        assert_eq!(entry.batches[0].first_seq, 2);
        apply(&mut e, &pb(0, i32::MAX - 1, i32::MAX), 8, 9);
        assert_eq!(
            check(e.as_ref(), &pb(0, 0, 3)).unwrap(),
            SequenceCheck::Accept
        );
    }

    #[test]
    fn snapshot_round_trip_and_corruption() {
        let mut s = ProducerState::default();
        let mut e = None;
        apply(&mut e, &pb(3, 0, 9), 0, 9);
        s.producers.insert(9, e.unwrap());
        let bytes = s.encode();
        assert_eq!(ProducerState::decode(&bytes), Some(s.clone()));
        let mut bad = bytes.clone();
        bad[12] ^= 1;
        assert_eq!(ProducerState::decode(&bad), None);
        assert_eq!(ProducerState::decode(&bytes[..5]), None);
        s.remove_expired(10);
        assert!(s.producers.is_empty());
    }

    #[test]
    fn idle_producers_expire_unless_a_transaction_is_open() {
        let mut s = ProducerState::default();
        for (id, ts, txn) in [(1, 1_000, false), (2, 5_000, false), (3, 1_000, true)] {
            let mut e = None;
            let b = ProducerBatch {
                producer_id: id,
                transactional: txn,
                max_timestamp: ts,
                ..pb(0, 0, 0)
            };
            apply(&mut e, &b, id, id);
            s.producers.insert(id, e.unwrap());
        }
        // Round trip keeps the timestamps.
        assert_eq!(ProducerState::decode(&s.encode()), Some(s.clone()));
        assert_eq!(s.expire_idle(5_999, 5_000), 0);
        assert_eq!(s.expire_idle(6_000, 5_000), 1);
        let mut left: Vec<i64> = s.producers.keys().copied().collect();
        left.sort_unstable();
        assert_eq!(left, [2, 3]);
        assert_eq!(s.expire_idle(i64::MAX, 5_000), 1);
        assert_eq!(s.producers.keys().copied().collect::<Vec<_>>(), [3]);
    }
}
