//! The cleaner's key → latest-offset map over the dirty section of a log. Full keys, not
//! hashes: a collision can never drop a live record. Memory is bounded by a byte budget
//! counted per entry (key bytes plus a fixed overhead); the map stops at a segment boundary.
//! Also the set of aborted transactions, which never enter the map.

use std::collections::HashMap;
use std::sync::Arc;

use strom_protocol::record_batch::RecordBatchHeader;
use tracing::warn;

use super::rewrite::plain_batch;
use crate::batch_reader::BatchReader;
use crate::segment::Segment;
use crate::txn_index::AbortedTxn;

/// Bytes a map entry costs besides its key (hash-table slot, box header, offset).
const ENTRY_OVERHEAD: usize = 48;

/// The aborted transactions of a log (from its `.txnindex`): producer id → (first offset,
/// marker offset) ranges. A transactional batch inside one of its producer's ranges is aborted.
#[derive(Debug, Default)]
pub(crate) struct AbortedSet {
    ranges: HashMap<i64, Vec<(i64, i64)>>,
}

impl AbortedSet {
    pub fn new(aborted: impl IntoIterator<Item = AbortedTxn>) -> Self {
        let mut ranges: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for t in aborted {
            ranges
                .entry(t.producer_id)
                .or_default()
                .push((t.first_offset, t.last_offset));
        }
        Self { ranges }
    }

    /// Whether the transactional batch of `producer_id` at `offset` belongs to an aborted
    /// transaction.
    pub fn contains(&self, producer_id: i64, offset: i64) -> bool {
        self.ranges.get(&producer_id).is_some_and(|r| {
            r.iter()
                .any(|(first, last)| (*first..=*last).contains(&offset))
        })
    }
}

/// Latest offset of every key seen in `[start, end)` of the dirty section.
#[derive(Debug, Default)]
pub(crate) struct OffsetMap {
    latest: HashMap<Box<[u8]>, i64>,
    bytes: usize,
}

impl OffsetMap {
    /// The latest offset recorded for `key`, if the key occurs in the mapped range.
    pub fn latest(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub(crate) fn insert(&mut self, key: &[u8], offset: i64) {
        if let Some(o) = self.latest.get_mut(key) {
            *o = offset;
        } else {
            self.bytes += key.len() + ENTRY_OVERHEAD;
            self.latest.insert(key.into(), offset);
        }
    }

    /// Maps the dirty segments in order, as many as fit in `budget_bytes` (always the first:
    /// a log must make progress). Returns the map and how many segments it covers.
    pub fn build(
        dirty: &[Arc<Segment>],
        aborted: &AbortedSet,
        budget_bytes: usize,
        max_decompressed_bytes: usize,
    ) -> (OffsetMap, usize) {
        let mut map = OffsetMap::default();
        let mut covered = 0;
        for segment in dirty {
            // A segment adds at most as many key bytes as it holds (compressed batches can
            // exceed this a little; the budget is a target, not a hard cap).
            if covered > 0 && map.bytes + segment.size() as usize > budget_bytes {
                break;
            }
            map.add_segment(segment, aborted, max_decompressed_bytes);
            covered += 1;
        }
        (map, covered)
    }

    /// Records every keyed record of the segment's data batches, except those of aborted
    /// transactions (an aborted value must not hide an older committed one).
    fn add_segment(&mut self, segment: &Segment, aborted: &AbortedSet, max_plain: usize) {
        let size = segment.size();
        let mut reader = BatchReader::new(&segment.log, 0, size);
        loop {
            let bytes = match reader.next_batch(true) {
                Ok(Some((_, bytes))) => bytes,
                Ok(None) => break,
                Err(stop) => {
                    warn!(segment = %segment.log_path.display(), ?stop, "cleaner: unreadable batch; map ends here");
                    break;
                }
            };
            let Ok(header) = RecordBatchHeader::parse(bytes) else {
                break;
            };
            if header.is_control()
                || (header.is_transactional()
                    && aborted.contains(header.producer_id(), header.base_offset()))
            {
                continue;
            }
            let Some(plain) = plain_batch(bytes, max_plain) else {
                continue;
            };
            let Ok(plain_header) = RecordBatchHeader::parse(&plain) else {
                continue;
            };
            for record in plain_header.records().map_while(Result::ok) {
                if let Some(key) = record.key {
                    self.insert(key, record.offset);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aborted_ranges_are_per_producer() {
        let t = |producer_id, first_offset, last_offset| AbortedTxn {
            producer_id,
            first_offset,
            last_offset,
            last_stable_offset: 0,
        };
        let set = AbortedSet::new([t(1, 10, 20), t(1, 30, 31), t(2, 5, 6)]);
        assert!(set.contains(1, 10) && set.contains(1, 20) && set.contains(1, 31));
        assert!(!set.contains(1, 21) && !set.contains(1, 9) && !set.contains(2, 10));
        assert!(set.contains(2, 5) && !set.contains(3, 5));
    }

    #[test]
    fn keeps_the_latest_offset_and_counts_bytes() {
        let mut m = OffsetMap::default();
        m.insert(b"a", 1);
        m.insert(b"b", 2);
        m.insert(b"a", 7);
        assert_eq!(m.latest(b"a"), Some(7));
        assert_eq!(m.latest(b"b"), Some(2));
        assert_eq!(m.latest(b"c"), None);
        assert_eq!(m.len(), 2);
        assert_eq!(m.bytes, 2 * (1 + ENTRY_OVERHEAD));
    }
}
