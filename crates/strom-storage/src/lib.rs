//! strom-storage: the partition log (segments, sparse indexes, idempotent-producer state, recovery,
//! retention, truncation). Knows bytes and offsets, not the network; runs no threads: the broker
//! calls [`PartitionLog::enforce_retention`] (also rolls by segment.ms, flushes by flush.ms) on a timer.

mod batch_reader;
mod config;
mod error;
mod file_slice;
mod index;
mod log;
mod producer_state;
mod read;
mod recovery;
mod retention;
mod segment;

pub use config::{Clock, LogConfig, ManualClock, SystemClock, TimestampType};
pub use error::LogError;
pub use file_slice::FileSlice;
pub use log::{AppendInfo, PartitionLog};
pub use read::{ReadResult, TimestampOffset};
