//! Idempotent-producer state of one partition (KIP-98): per producer id the epoch and the last
//! five batches' sequence/offset ranges, used to reject gaps and answer retried batches with
//! their original offsets. Persisted as `<offset>.snapshot` files.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use strom_protocol::record_batch::{RecordBatchHeader, NO_SEQUENCE};

use crate::error::{io_err, LogError};
use crate::segment::sync_dir;

/// Batches remembered per producer for duplicate detection (Kafka: 5 in-flight requests).
pub(crate) const BATCHES_PER_PRODUCER: usize = 5;
pub(crate) const SNAPSHOT_EXT: &str = "snapshot";
const SNAPSHOT_MAGIC: &[u8; 8] = b"STRMPS01";

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
}

impl ProducerBatch {
    pub fn of(h: &RecordBatchHeader<'_>) -> Option<Self> {
        (h.producer_id() >= 0).then(|| Self {
            producer_id: h.producer_id(),
            epoch: h.producer_epoch(),
            first_seq: h.base_sequence(),
            last_seq: h.last_sequence(),
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

/// Records an appended batch at `[first_offset, last_offset]` (no checks: also used for replay).
pub(crate) fn apply(
    entry: &mut Option<ProducerEntry>,
    b: &ProducerBatch,
    first_offset: i64,
    last_offset: i64,
) {
    let e = entry.get_or_insert_with(|| ProducerEntry {
        epoch: b.epoch,
        batches: VecDeque::new(),
        last_offset,
    });
    if b.epoch != e.epoch {
        e.epoch = b.epoch;
        e.batches.clear();
    }
    e.last_offset = last_offset;
    if b.first_seq == NO_SEQUENCE {
        return;
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
}

/// All producers of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProducerState {
    pub producers: HashMap<i64, ProducerEntry>,
}

impl ProducerState {
    /// Replays a stored batch header.
    pub fn replay(&mut self, h: &RecordBatchHeader<'_>) {
        if let Some(b) = ProducerBatch::of(h) {
            let mut entry = self.producers.remove(&b.producer_id);
            apply(&mut entry, &b, h.base_offset(), h.last_offset());
            if let Some(e) = entry {
                self.producers.insert(b.producer_id, e);
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
        if crc32c::crc32c(body).to_be_bytes() != crc || !body.starts_with(SNAPSHOT_MAGIC) {
            return None;
        }
        let mut r = Reader(&body[SNAPSHOT_MAGIC.len()..]);
        let count = r.u32()?;
        let mut producers = HashMap::new();
        for _ in 0..count {
            let id = i64::from_be_bytes(r.take()?);
            let epoch = i16::from_be_bytes(r.take()?);
            let last_offset = i64::from_be_bytes(r.take()?);
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
                },
            );
        }
        r.0.is_empty().then_some(Self { producers })
    }

    /// Writes `<offset>.snapshot` atomically (temp file, fsync, rename, fsync dir).
    pub fn write_snapshot(&self, dir: &Path, offset: i64) -> Result<(), LogError> {
        let path = crate::segment::file_path(dir, offset, SNAPSHOT_EXT);
        let tmp = path.with_extension("snapshot.tmp");
        write_durably(&tmp, &self.encode())?;
        std::fs::rename(&tmp, &path).map_err(io_err("rename snapshot", &path))?;
        sync_dir(dir)
    }
}

/// Writes a file and fsyncs it.
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), LogError> {
    use std::io::Write;
    let mut f = std::fs::File::create(path).map_err(io_err("create file", path))?;
    f.write_all(bytes).map_err(io_err("write file", path))?;
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
        }
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
}
