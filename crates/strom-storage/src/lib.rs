//! strom-storage: the partition log. Segments (`.log`, `.index`, `.timeindex`), append with
//! idempotent-producer checks, reads by offset and time, recovery after a crash, retention and
//! truncation. Knows bytes and offsets, not the network; runs no threads of its own.
//!
//! The broker drives the periodic work: call [`PartitionLog::enforce_retention`] (which also
//! rolls by `segment.ms` and flushes by `flush.ms`) on a timer for every partition.

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
