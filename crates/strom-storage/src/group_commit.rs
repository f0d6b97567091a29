//! Group commit for one log dir: appends in durable mode (`flush.before.ack.enable`) are
//! acknowledged once an fsync that started after they were written has finished. One flusher
//! per log dir runs rounds back to back, with no sleep: a round takes every log submitted
//! since the previous round started and fsyncs each up to its end at that moment, so all the
//! appends that arrived during one fsync share the next one, across partitions. The caller
//! runs [`GroupCommit::run`] on a thread of its own (this crate starts none) and waits for a
//! round by its number, blocking ([`GroupCommit::wait`]) or through the `round_done` hook.
//!
//! Early writeback (optional, [`GroupCommit::with_early_writeback`]): a log that has taken at
//! least the threshold of new bytes in its active segment since its last early writeback is
//! also handed to a second loop, [`GroupCommit::run_writeback`] (on another thread), which
//! flushes it at once, so that the fsync of the round that acknowledges those bytes finds
//! little left to write. It only ever adds fsyncs: acknowledgements still wait for their round.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::log::PartitionLog;

/// Something holding a partition log the flusher can fsync (the log itself, or the broker's
/// partition around it).
pub trait FlushTarget: Send + Sync {
    fn flush_log(&self) -> &PartitionLog;
}

impl FlushTarget for PartitionLog {
    fn flush_log(&self) -> &PartitionLog {
        self
    }
}

/// A round number: the wait is over once that many rounds have finished.
pub type Round = u64;

/// The early-writeback threshold the broker uses when it is on (`STROM_EARLY_WRITEBACK=on`):
/// 1 MiB of new bytes in a log's active segment. At 1 KiB records and ~200 MB/s into a log dir
/// that is an extra flush every ~5 ms, several per group-commit round, while one flush (a
/// journal commit, ~0.1 ms on a fast disk) stays small against writing the MiB itself (~3 ms
/// at 350 MB/s); below it the extra fsyncs would cost more than they save, above it a round
/// would find several MiB left.
pub const EARLY_WRITEBACK_BYTES: u64 = 1 << 20;

struct State {
    /// Logs submitted since the last round started, keyed by address (one entry per log).
    pending: HashMap<usize, Arc<dyn FlushTarget>>,
    started: Round,
    finished: Round,
    stopped: bool,
    /// Logs due for an early writeback, keyed like `pending`.
    writeback: HashMap<usize, Arc<dyn FlushTarget>>,
}

/// The flusher of one log dir. See the module doc.
pub struct GroupCommit {
    state: Mutex<State>,
    /// The flusher waits here for work.
    work: Condvar,
    /// Blocking waiters wait here for a round to finish.
    done: Condvar,
    /// Called with the number of finished rounds after each round (async waiters' wake-up).
    round_done: Box<dyn Fn(Round) + Send + Sync>,
    /// New bytes in a log's active segment that make it due for an early writeback (0: off).
    writeback_threshold: u64,
    /// The writeback loop waits here for work.
    writeback_work: Condvar,
    /// Early-writeback flushes done (tests, measurement).
    writebacks: AtomicU64,
}

impl std::fmt::Debug for GroupCommit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.state.lock();
        f.debug_struct("GroupCommit")
            .field("started", &s.started)
            .field("finished", &s.finished)
            .finish()
    }
}

impl Default for GroupCommit {
    fn default() -> Self {
        Self::new(|_| {})
    }
}

impl GroupCommit {
    /// A flusher that calls `round_done` (with the count of finished rounds) after each round.
    pub fn new(round_done: impl Fn(Round) + Send + Sync + 'static) -> Self {
        Self {
            state: Mutex::new(State {
                pending: HashMap::new(),
                started: 0,
                finished: 0,
                stopped: false,
                writeback: HashMap::new(),
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            round_done: Box::new(round_done),
            writeback_threshold: 0,
            writeback_work: Condvar::new(),
            writebacks: AtomicU64::new(0),
        }
    }

    /// Turns early writeback on: a log with at least `threshold` new bytes in its active
    /// segment since its last one is handed to [`Self::run_writeback`] at its next submit
    /// (0: off, the default). Whoever sets it runs `run_writeback` on a thread.
    pub fn with_early_writeback(mut self, threshold: u64) -> Self {
        self.writeback_threshold = threshold;
        self
    }

    /// Early-writeback flushes done so far.
    pub fn writebacks(&self) -> u64 {
        self.writebacks.load(Ordering::Relaxed)
    }

    /// Asks for everything appended to `target`'s log so far to be fsynced. Returns the round
    /// that covers it: once [`finished`](Self::finished) reaches it, the log's
    /// `flushed_offset` is past every append made before this call, unless the fsync failed
    /// (the log is then offline).
    pub fn submit(&self, target: Arc<dyn FlushTarget>) -> Round {
        let due = self.writeback_threshold > 0
            && target
                .flush_log()
                .take_writeback(self.writeback_threshold)
                .is_some();
        let mut s = self.state.lock();
        let key = Arc::as_ptr(&target) as *const () as usize;
        if due {
            s.writeback
                .entry(key)
                .or_insert_with(|| Arc::clone(&target));
        }
        s.pending.entry(key).or_insert(target);
        let round = s.started + 1;
        drop(s);
        self.work.notify_one();
        if due {
            self.writeback_work.notify_one();
        }
        round
    }

    /// Rounds finished so far.
    pub fn finished(&self) -> Round {
        self.state.lock().finished
    }

    /// Blocks until round `round` has finished (or the flusher stopped).
    pub fn wait(&self, round: Round) {
        let mut s = self.state.lock();
        while s.finished < round && !s.stopped {
            self.done.wait(&mut s);
        }
    }

    /// Ends [`run`](Self::run) once the logs already submitted are flushed.
    pub fn stop(&self) {
        self.state.lock().stopped = true;
        self.work.notify_all();
        self.writeback_work.notify_all();
    }

    /// The early-writeback loop (see the module doc), until `stop`: flushes each log handed
    /// over by `submit`, as soon as it is handed over. A failed fsync takes the log offline,
    /// as in a round, so no later round acknowledges what it could not write.
    pub fn run_writeback(&self) {
        loop {
            let batch = {
                let mut s = self.state.lock();
                while s.writeback.is_empty() && !s.stopped {
                    self.writeback_work.wait(&mut s);
                }
                if s.stopped {
                    return;
                }
                std::mem::take(&mut s.writeback)
            };
            for target in batch.values() {
                let log = target.flush_log();
                if let Err(e) = log.flush() {
                    tracing::warn!(dir = %log.dir().display(), error = %e, "early writeback: fsync failed");
                }
                self.writebacks.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The flusher loop: one round after another while logs are submitted, until `stop`.
    /// A failed fsync takes its log offline (see `PartitionLog::flush`); the round goes on
    /// with the other logs, and the failed log's waiters see its flushed offset short.
    pub fn run(&self) {
        loop {
            let batch = {
                let mut s = self.state.lock();
                while s.pending.is_empty() && !s.stopped {
                    self.work.wait(&mut s);
                }
                if s.pending.is_empty() {
                    drop(s);
                    self.done.notify_all();
                    return;
                }
                s.started += 1;
                std::mem::take(&mut s.pending)
            };
            for target in batch.values() {
                let log = target.flush_log();
                if let Err(e) = log.flush() {
                    tracing::warn!(dir = %log.dir().display(), error = %e, "group commit: fsync failed");
                }
            }
            drop(batch);
            let finished = {
                let mut s = self.state.lock();
                s.finished += 1;
                s.finished
            };
            self.done.notify_all();
            (self.round_done)(finished);
        }
    }
}
