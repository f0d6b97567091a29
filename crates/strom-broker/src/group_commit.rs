//! Durable mode (`flush.before.ack.enable`): one group-commit flusher per log dir
//! ([`strom_storage::GroupCommit`]), each on a thread of its own started at the first durable
//! append there. Produce submits the partitions it appended to and waits (async) for the
//! round that covers them; a follower waits (blocking) before it fetches again.
//!
//! Each log dir also gets an early-writeback thread (`strom-wb-N`): a partition that has taken
//! [`EARLY_WRITEBACK_BYTES`] since its last one is flushed there at once, so the round that
//! acknowledges it finds little left to write (docs/design/2026-12-05-durability.md).
//! `STROM_EARLY_WRITEBACK` in the broker's environment sets the threshold in bytes (`off` or
//! 0: none), for measurements.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use strom_storage::{FlushTarget, GroupCommit, PartitionLog, Round, EARLY_WRITEBACK_BYTES};
use tokio::sync::watch;

use crate::partition::Partition;

impl FlushTarget for Partition {
    fn flush_log(&self) -> &PartitionLog {
        &self.log
    }
}

/// A log dir's flusher and the count of its finished rounds, for async waiters.
pub struct DirFlusher {
    commit: Arc<GroupCommit>,
    rounds: watch::Receiver<Round>,
}

/// An append's place in a log dir's group commit: done when `round` has finished (no
/// flusher: the submit fsynced in place).
pub struct Ticket {
    flusher: Option<Arc<DirFlusher>>,
    round: Round,
}

impl Ticket {
    /// Waits for the round; `false` if `deadline` came first.
    pub async fn wait(&self, deadline: tokio::time::Instant) -> bool {
        let Some(flusher) = &self.flusher else {
            return true;
        };
        let mut rounds = flusher.rounds.clone();
        let covered = tokio::time::timeout_at(
            deadline,
            rounds.wait_for(|finished| *finished >= self.round),
        )
        .await;
        matches!(covered, Ok(Ok(_)))
    }

    /// Blocks the thread until the round has finished.
    pub fn wait_blocking(&self) {
        if let Some(flusher) = &self.flusher {
            flusher.commit.wait(self.round);
        }
    }
}

/// The flushers of this broker's log dirs, keyed by log dir.
#[derive(Default)]
pub struct LogDirFlushers {
    dirs: Mutex<HashMap<PathBuf, Arc<DirFlusher>>>,
}

impl LogDirFlushers {
    /// Asks the flusher of `partition`'s log dir to fsync what was appended to it so far.
    /// If the log dir's flusher thread cannot start, fsyncs here instead.
    pub fn submit(&self, partition: &Arc<Partition>) -> Ticket {
        let root = partition.log.dir().parent().unwrap_or(Path::new("/"));
        let Some(flusher) = self.flusher(root) else {
            if let Err(e) = partition.log.flush() {
                tracing::warn!(topic = %partition.topic, partition = partition.index, error = %e, "fsync failed");
            }
            return Ticket {
                flusher: None,
                round: 0,
            };
        };
        let round = flusher.commit.submit(partition.clone());
        Ticket {
            flusher: Some(flusher),
            round,
        }
    }

    fn flusher(&self, root: &Path) -> Option<Arc<DirFlusher>> {
        let mut dirs = self.dirs.lock();
        if let Some(f) = dirs.get(root) {
            return Some(f.clone());
        }
        let (tx, rx) = watch::channel(0);
        let threshold = early_writeback_bytes();
        let commit = Arc::new(
            GroupCommit::new(move |finished| {
                tx.send_replace(finished);
            })
            .with_early_writeback(threshold),
        );
        let runner = commit.clone();
        let name = format!("strom-fsync-{}", dirs.len());
        if let Err(e) = std::thread::Builder::new()
            .name(name)
            .spawn(move || runner.run())
        {
            tracing::error!(error = %e, "cannot start the group-commit thread; fsyncing in place");
            return None;
        }
        if threshold > 0 {
            let runner = commit.clone();
            let name = format!("strom-wb-{}", dirs.len());
            if let Err(e) = std::thread::Builder::new()
                .name(name)
                .spawn(move || runner.run_writeback())
            {
                // The rounds still run; only their fsyncs find more to write.
                tracing::error!(error = %e, "cannot start the early-writeback thread");
            }
        }
        let flusher = Arc::new(DirFlusher { commit, rounds: rx });
        dirs.insert(root.to_path_buf(), flusher.clone());
        Some(flusher)
    }
}

/// The early-writeback threshold: `STROM_EARLY_WRITEBACK` (bytes, `off` = 0) or the default.
fn early_writeback_bytes() -> u64 {
    parse_early_writeback(std::env::var("STROM_EARLY_WRITEBACK").ok().as_deref())
}

fn parse_early_writeback(value: Option<&str>) -> u64 {
    match value {
        None => EARLY_WRITEBACK_BYTES,
        Some("off") => 0,
        Some(v) => v.trim().parse().unwrap_or_else(|_| {
            tracing::warn!(
                value = v,
                "STROM_EARLY_WRITEBACK is not a byte count; using the default"
            );
            EARLY_WRITEBACK_BYTES
        }),
    }
}

impl Drop for LogDirFlushers {
    fn drop(&mut self) {
        for f in self.dirs.get_mut().values() {
            f.commit.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_writeback_threshold_from_the_environment() {
        assert_eq!(parse_early_writeback(None), EARLY_WRITEBACK_BYTES);
        assert_eq!(parse_early_writeback(Some("off")), 0);
        assert_eq!(parse_early_writeback(Some("0")), 0);
        assert_eq!(parse_early_writeback(Some("262144")), 262_144);
        assert_eq!(parse_early_writeback(Some("lots")), EARLY_WRITEBACK_BYTES);
    }
}
