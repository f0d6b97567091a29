//! Group commit for one log dir: appends in durable mode (`flush.before.ack.enable`) are
//! acknowledged once an fsync that started after they were written has finished. One flusher
//! per log dir runs rounds back to back, with no sleep: a round takes every log submitted
//! since the previous round started and fsyncs each up to its end at that moment, so all the
//! appends that arrived during one fsync share the next one, across partitions. The caller
//! runs [`GroupCommit::run`] on a thread of its own (this crate starts none) and waits for a
//! round by its number, blocking ([`GroupCommit::wait`]) or through the `round_done` hook.

use std::collections::HashMap;
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

struct State {
    /// Logs submitted since the last round started, keyed by address (one entry per log).
    pending: HashMap<usize, Arc<dyn FlushTarget>>,
    started: Round,
    finished: Round,
    stopped: bool,
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
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            round_done: Box::new(round_done),
        }
    }

    /// Asks for everything appended to `target`'s log so far to be fsynced. Returns the round
    /// that covers it: once [`finished`](Self::finished) reaches it, the log's
    /// `flushed_offset` is past every append made before this call, unless the fsync failed
    /// (the log is then offline).
    pub fn submit(&self, target: Arc<dyn FlushTarget>) -> Round {
        let mut s = self.state.lock();
        let key = Arc::as_ptr(&target) as *const () as usize;
        s.pending.entry(key).or_insert(target);
        let round = s.started + 1;
        drop(s);
        self.work.notify_one();
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
