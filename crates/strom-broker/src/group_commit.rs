//! Durable mode (`flush.before.ack.enable`): one group-commit flusher per log dir
//! ([`strom_storage::GroupCommit`]), each on a thread of its own started at the first durable
//! append there. Produce submits the partitions it appended to and waits (async) for the
//! round that covers them; a follower waits (blocking) before it fetches again.
//!
//! Early writeback (off by default; `STROM_EARLY_WRITEBACK=<bytes>` in the broker's
//! environment, e.g. [`EARLY_WRITEBACK_BYTES`]): each log dir then also gets a thread
//! (`strom-wb-N`) where a partition that has taken that many bytes since its last early
//! writeback is flushed at once, so the round that acknowledges it finds less to write. Off
//! because the figures did not show it worth its cost: a little more throughput at 100 B, none
//! at 1 KiB, about twice the p99 at a fixed rate (docs/design/2026-12-05-durability.md).

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

/// The early-writeback threshold: `STROM_EARLY_WRITEBACK` (bytes; `on` =
/// [`EARLY_WRITEBACK_BYTES`]; unset, `off` or 0: none).
fn early_writeback_bytes() -> u64 {
    parse_early_writeback(std::env::var("STROM_EARLY_WRITEBACK").ok().as_deref())
}

fn parse_early_writeback(value: Option<&str>) -> u64 {
    match value {
        None | Some("off") => 0,
        Some("on") => EARLY_WRITEBACK_BYTES,
        Some(v) => v.trim().parse().unwrap_or_else(|_| {
            tracing::warn!(
                value = v,
                "STROM_EARLY_WRITEBACK is not a byte count; early writeback stays off"
            );
            0
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
        assert_eq!(parse_early_writeback(None), 0);
        assert_eq!(parse_early_writeback(Some("off")), 0);
        assert_eq!(parse_early_writeback(Some("0")), 0);
        assert_eq!(parse_early_writeback(Some("on")), EARLY_WRITEBACK_BYTES);
        assert_eq!(parse_early_writeback(Some("262144")), 262_144);
        assert_eq!(parse_early_writeback(Some("lots")), 0);
    }
}
