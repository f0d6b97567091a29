//! strom-storage: the partition log (segments, sparse indexes, idempotent-producer state, recovery,
//! retention, truncation, compaction). Knows bytes and offsets, not the network; runs no threads
//! (the broker runs each log dir's [`GroupCommit`] flusher on a thread of its own):
//! the broker calls [`PartitionLog::enforce_retention`] (also rolls by segment.ms, expires idle
//! producers, flushes by flush.ms), [`PartitionLog::flush_rolled`] (fsyncs rolled segments,
//! moves the recovery point) and [`PartitionLog::clean`] (compaction) on timers. All file I/O
//! goes through [`Fs`]: [`StdFs`] in production, [`SimFs`] (a disk that forgets what was not
//! fsynced at a crash, and injects faults) in tests.

mod batch_reader;
mod cleaner;
mod config;
mod epoch_cache;
mod error;
mod file_slice;
mod fs;
mod group_commit;
mod handles;
mod index;
mod log;
mod producer_state;
mod read;
mod recovery;
mod replica;
mod retention;
mod segment;
mod txn_index;

pub use cleaner::{CleanStats, CleanerOptions, SwapStep};
pub use config::{CleanupPolicy, Clock, LogConfig, ManualClock, SystemClock, TimestampType};
pub use epoch_cache::{UNDEFINED_EPOCH, UNDEFINED_OFFSET};
pub use error::LogError;
pub use file_slice::FileSlice;
pub use fs::{Fault, FaultOp, Fs, FsFile, OpenMode, SimFs, StdFs};
pub use group_commit::{FlushTarget, GroupCommit, Round, EARLY_WRITEBACK_BYTES};
pub use handles::{HandleCache, HandleStats, DEFAULT_OPEN_FILES_MAX};
pub use log::{coalesced_appends_total, AppendInfo, PartitionLog};
pub use read::{ReadResult, TimestampOffset};
pub use recovery::RecoveryStats;
pub use txn_index::{AbortedTxn, ActiveProducer};
