//! The recent committed entries a voter keeps in memory so observers (broker-only nodes) fetch
//! the records after their applied offset, as KRaft observers fetch the metadata log, instead
//! of the whole image. Bounded: an observer further behind than the ring (or a voter that just
//! restarted or loaded a snapshot, whose ring starts at that point) gets the image instead,
//! KRaft's snapshot fallback.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::{LeaderEpoch, MetadataOffset};
use crate::records::MetadataRecord;

/// Entries kept at most (each a Raft index; blank and membership entries hold no records).
pub const MAX_ENTRIES: usize = 8192;

/// Records kept at most across the kept entries (a 10,000-partition topic creation is one
/// entry of ~10,000 records; the newest entry is always kept, whatever its size).
pub const MAX_RECORDS: usize = 200_000;

/// Records sent at most in one fetch answer (whole entries; at least one entry).
pub const MAX_RECORDS_PER_FETCH: usize = 50_000;

/// One committed entry of the metadata log, as an observer receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedEntry {
    pub offset: MetadataOffset,
    pub epoch: LeaderEpoch,
    /// Empty for the leader's blank and membership entries.
    pub records: Arc<Vec<MetadataRecord>>,
}

#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<CommittedEntry>,
    records: usize,
}

/// A contiguous run of the most recent committed entries, ending at the last applied one.
#[derive(Debug, Default)]
pub struct RecentEntries {
    ring: Mutex<Ring>,
}

impl RecentEntries {
    /// Keeps the entry just applied at `offset`. A gap (entries applied elsewhere, e.g. a
    /// snapshot) empties the ring first: it only ever holds a contiguous run.
    pub fn push(&self, entry: CommittedEntry) {
        let mut ring = self.ring.lock();
        if ring
            .entries
            .back()
            .is_some_and(|last| last.offset + 1 != entry.offset)
        {
            *ring = Ring::default();
        }
        ring.records += entry.records.len();
        ring.entries.push_back(entry);
        while ring.entries.len() > 1
            && (ring.entries.len() > MAX_ENTRIES || ring.records > MAX_RECORDS)
        {
            if let Some(old) = ring.entries.pop_front() {
                ring.records -= old.records.len();
            }
        }
    }

    /// Forgets everything (the state was replaced by a snapshot).
    pub fn clear(&self) {
        *self.ring.lock() = Ring::default();
    }

    /// The entries after `after` up to `upto` (inclusive), whole, at most `max_records`
    /// records (but at least one entry); `None` if the ring no longer (or not yet) holds the
    /// first entry needed: the caller sends the image instead. An observer with nothing
    /// (`after == None`) needs the log from index 0.
    pub fn after(
        &self,
        after: Option<MetadataOffset>,
        upto: MetadataOffset,
        max_records: usize,
    ) -> Option<Vec<CommittedEntry>> {
        let first = after.map_or(0, |a| a + 1);
        let ring = self.ring.lock();
        let front = ring.entries.front()?.offset;
        if front > first {
            return None;
        }
        let mut out = Vec::new();
        let mut records = 0;
        let start = usize::try_from(first - front).ok()?;
        for entry in ring.entries.iter().skip(start) {
            if entry.offset > upto
                || (!out.is_empty() && records + entry.records.len() > max_records)
            {
                break;
            }
            records += entry.records.len();
            out.push(entry.clone());
        }
        Some(out)
    }

    /// Offsets of the first and last entries held.
    pub fn span(&self) -> Option<(MetadataOffset, MetadataOffset)> {
        let ring = self.ring.lock();
        Some((ring.entries.front()?.offset, ring.entries.back()?.offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: u64, records: usize) -> CommittedEntry {
        let record = MetadataRecord::FenceBroker { broker_id: 1 };
        CommittedEntry {
            offset,
            epoch: 1,
            records: Arc::new(vec![record; records]),
        }
    }

    #[test]
    fn serves_a_contiguous_tail_or_nothing() {
        let ring = RecentEntries::default();
        assert_eq!(ring.after(None, 5, 100), None, "empty ring: image");
        for o in 0..5 {
            ring.push(entry(o, 2));
        }
        let all = ring.after(None, 4, 100).unwrap();
        assert_eq!(
            all.iter().map(|e| e.offset).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        let tail = ring.after(Some(2), 4, 100).unwrap();
        assert_eq!(tail.iter().map(|e| e.offset).collect::<Vec<_>>(), [3, 4]);
        // Bounded by `upto` (what the published image covers) and by records.
        let tail = ring.after(Some(0), 2, 100).unwrap();
        assert_eq!(tail.iter().map(|e| e.offset).collect::<Vec<_>>(), [1, 2]);
        let tail = ring.after(Some(0), 4, 3).unwrap();
        assert_eq!(tail.iter().map(|e| e.offset).collect::<Vec<_>>(), [1]);
        assert!(ring.after(Some(4), 4, 100).unwrap().is_empty());
        // A gap (a snapshot was loaded) starts a new run: older offsets need the image.
        ring.push(entry(9, 1));
        assert_eq!(ring.span(), Some((9, 9)));
        assert_eq!(ring.after(Some(4), 9, 100), None);
        assert_eq!(ring.after(Some(8), 9, 100).unwrap().len(), 1);
        ring.clear();
        assert_eq!(ring.span(), None);
    }

    #[test]
    fn the_oldest_entries_go_first() {
        let ring = RecentEntries::default();
        for o in 0..(MAX_ENTRIES as u64 + 10) {
            ring.push(entry(o, 0));
        }
        assert_eq!(ring.span(), Some((10, MAX_ENTRIES as u64 + 9)));
        ring.push(entry(MAX_ENTRIES as u64 + 10, MAX_RECORDS + 1));
        assert_eq!(
            ring.span(),
            Some((MAX_ENTRIES as u64 + 10, MAX_ENTRIES as u64 + 10)),
            "an entry alone over the bound is kept"
        );
    }
}
