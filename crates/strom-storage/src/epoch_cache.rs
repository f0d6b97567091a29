//! The leader-epoch cache (KIP-101/KIP-279): for each leader epoch seen in this log, the first
//! offset written in it, persisted in `leader-epoch-checkpoint` (Kafka's text layout: a
//! version line, a count line, then `epoch start_offset` lines). It answers "where does epoch
//! E end?" for OffsetForLeaderEpoch and for Fetch's diverging-epoch check, which is how a
//! follower finds the point where its log and the leader's diverge.

use std::path::Path;

use crate::error::{io_err, LogError};
use crate::fs::Fs;
use crate::producer_state::write_durably;

/// File name in the partition directory.
pub(crate) const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
const VERSION: u32 = 0;

/// No epoch / no offset (Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET).
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_OFFSET: i64 = -1;

/// Epoch start offsets in increasing epoch and offset order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct EpochCache {
    entries: Vec<(i32, i64)>,
}

impl EpochCache {
    /// Reads the checkpoint; a missing or unreadable one gives an empty cache (a log written
    /// before epochs were tracked: its data belongs to no known epoch).
    pub fn load(fs: &dyn Fs, dir: &Path) -> EpochCache {
        let path = dir.join(CHECKPOINT_FILE);
        let Ok(bytes) = fs.read(&path) else {
            return EpochCache::default();
        };
        match parse(&bytes) {
            Some(entries) => EpochCache { entries },
            None => {
                tracing::warn!(path = %path.display(), "unreadable leader-epoch checkpoint ignored");
                EpochCache::default()
            }
        }
    }

    pub fn latest_epoch(&self) -> i32 {
        self.entries.last().map_or(UNDEFINED_EPOCH, |e| e.0)
    }

    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }

    /// Records that `epoch` starts at `start_offset`, if it is newer than the latest epoch.
    /// Returns whether the cache changed (the caller persists it).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 {
            return false;
        }
        match self.entries.last() {
            Some(&(latest, _)) if epoch <= latest => false,
            _ => {
                // An epoch that starts where the previous one did wrote nothing: replace it.
                while self.entries.last().is_some_and(|&(_, o)| o >= start_offset) {
                    self.entries.pop();
                }
                self.entries.push((epoch, start_offset));
                true
            }
        }
    }

    /// Drops the epochs that start at or after `end` (the log was truncated to `end`).
    pub fn truncate_from_end(&mut self, end: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|&(_, o)| o < end);
        self.entries.len() != before
    }

    /// The log now starts at `start`: every epoch is forgotten (a fresh log).
    pub fn clear(&mut self) -> bool {
        let changed = !self.entries.is_empty();
        self.entries.clear();
        changed
    }

    /// Kafka's `endOffsetFor`: the largest epoch <= `requested` and the offset where it ends
    /// (the start of the next higher epoch, or `log_end` for the latest one).
    pub fn end_offset_for(&self, requested: i32, log_end: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
        }
        if self.latest_epoch() == requested {
            return (requested, log_end);
        }
        let Some(higher) = self.entries.iter().position(|&(e, _)| e > requested) else {
            return (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
        };
        let end = self.entries[higher].1;
        match higher.checked_sub(1) {
            // Older than every epoch the cache knows: it ends where the first known one starts.
            None => (requested, end),
            Some(floor) => (self.entries[floor].0, end),
        }
    }

    pub fn persist(&self, fs: &dyn Fs, dir: &Path) -> Result<(), LogError> {
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for (epoch, offset) in &self.entries {
            text.push_str(&format!("{epoch} {offset}\n"));
        }
        let path = dir.join(CHECKPOINT_FILE);
        let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
        write_durably(fs, &tmp, text.as_bytes())?;
        fs.rename(&tmp, &path)
            .map_err(io_err("rename leader-epoch checkpoint", &path))
    }
}

fn parse(bytes: &[u8]) -> Option<Vec<(i32, i64)>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut lines = text.lines();
    if lines.next()?.trim().parse::<u32>().ok()? != VERSION {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries = Vec::with_capacity(count.min(1024));
    for line in lines.take(count) {
        let (e, o) = line.trim().split_once(' ')?;
        let entry = (e.parse().ok()?, o.parse().ok()?);
        if entries
            .last()
            .is_some_and(|&(pe, po): &(i32, i64)| entry.0 <= pe || entry.1 < po)
        {
            return None;
        }
        entries.push(entry);
    }
    (entries.len() == count).then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        EpochCache {
            entries: entries.to_vec(),
        }
    }

    #[test]
    fn end_offset_follows_kafka() {
        let c = cache(&[(1, 0), (3, 10), (5, 20)]);
        assert_eq!(
            c.end_offset_for(5, 30),
            (5, 30),
            "latest epoch ends at the LEO"
        );
        assert_eq!(c.end_offset_for(3, 30), (3, 20));
        assert_eq!(
            c.end_offset_for(4, 30),
            (3, 20),
            "unknown epoch: the floor one"
        );
        assert_eq!(
            c.end_offset_for(0, 30),
            (0, 0),
            "older than all: first start"
        );
        assert_eq!(c.end_offset_for(6, 30), (UNDEFINED_EPOCH, UNDEFINED_OFFSET));
        assert_eq!(
            c.end_offset_for(-1, 30),
            (UNDEFINED_EPOCH, UNDEFINED_OFFSET)
        );
    }

    #[test]
    fn assign_and_truncate() {
        let mut c = EpochCache::default();
        assert!(c.assign(1, 0));
        assert!(!c.assign(1, 5), "same epoch: no change");
        assert!(!c.assign(0, 5), "older epoch: no change");
        assert!(c.assign(2, 0), "an epoch that wrote nothing is replaced");
        assert_eq!(c.entries(), &[(2, 0)]);
        assert!(c.assign(4, 7));
        assert!(c.truncate_from_end(7));
        assert_eq!(c.latest_epoch(), 2);
    }

    #[test]
    fn checkpoint_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let fs = crate::fs::StdFs;
        let c = cache(&[(0, 0), (2, 15)]);
        c.persist(&fs, dir.path()).unwrap();
        assert_eq!(EpochCache::load(&fs, dir.path()), c);
        std::fs::write(dir.path().join(CHECKPOINT_FILE), "0\n2\n3 5\n1 9\n").unwrap();
        assert_eq!(EpochCache::load(&fs, dir.path()), EpochCache::default());
        std::fs::write(dir.path().join(CHECKPOINT_FILE), "0\n3\n1 0\n").unwrap();
        assert_eq!(EpochCache::load(&fs, dir.path()), EpochCache::default());
    }
}
