//! The storage crate's error type. Variants are domain facts the broker maps to Kafka error
//! codes in one place; I/O failures carry the operation and path that failed.

use std::io;
use std::path::PathBuf;

use strom_protocol::record_batch::{BatchError, Corruption, InvalidRecordReason};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum LogError {
    #[error("corrupt message: {reason:?}")]
    CorruptMessage { reason: Corruption },
    #[error("invalid record: {reason:?}")]
    InvalidRecord { reason: InvalidRecordReason },
    /// Records without a key sent to a compacted topic (Kafka: "Compacted topic cannot accept
    /// message without key"). The whole append is refused; `record_indexes` are the keyless
    /// records' positions in their batch, for the producer's per-record errors (KIP-467).
    #[error(
        "{} record(s) without a key in a compacted topic, the first at index {}",
        record_indexes.len(),
        record_indexes.first().copied().unwrap_or_default()
    )]
    MissingKeysInCompactedTopic { record_indexes: Vec<u32> },
    #[error("record batch magic {magic} is not supported (only magic 2)")]
    UnsupportedForMessageFormat { magic: i8 },
    #[error("compression codec {codec} is not supported")]
    UnsupportedCompressionType { codec: u8 },
    #[error("message of {size} bytes is larger than the limit of {max} bytes")]
    MessageTooLarge { size: usize, max: usize },
    #[error("offset {requested} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        requested: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("producer {producer_id}: expected sequence {expected}, got {received}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        received: i32,
    },
    #[error("producer {producer_id}: epoch {received} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        current: i16,
        received: i16,
    },
    /// A transaction marker from a coordinator older than the one whose marker this producer
    /// last got (Kafka's TRANSACTION_COORDINATOR_FENCED).
    #[error(
        "producer {producer_id}: marker from coordinator epoch {received}, older than {current}"
    )]
    TransactionCoordinatorFenced {
        producer_id: i64,
        current: i32,
        received: i32,
    },
    /// A follower was sent a batch below its log end offset (replication out of step).
    #[error("batch at offset {base_offset} is below the log end offset {expected_at_least}")]
    OffsetsOutOfOrder {
        base_offset: i64,
        expected_at_least: i64,
    },
    #[error("the log is closed")]
    Closed,
    /// A failed fsync, or a failed write whose rollback failed, left the files in a state
    /// only recovery can judge: every operation fails until the log is reopened.
    #[error("the log is offline after a failed {op}; reopen it to recover")]
    Offline { op: &'static str },
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl LogError {
    /// The same error again, for each of several appends one failed write answers (an I/O
    /// error keeps its OS error code, or its kind and message).
    pub(crate) fn copy(&self) -> LogError {
        match self {
            LogError::CorruptMessage { reason } => LogError::CorruptMessage { reason: *reason },
            LogError::InvalidRecord { reason } => LogError::InvalidRecord { reason: *reason },
            LogError::MissingKeysInCompactedTopic { record_indexes } => {
                LogError::MissingKeysInCompactedTopic {
                    record_indexes: record_indexes.clone(),
                }
            }
            LogError::UnsupportedForMessageFormat { magic } => {
                LogError::UnsupportedForMessageFormat { magic: *magic }
            }
            LogError::UnsupportedCompressionType { codec } => {
                LogError::UnsupportedCompressionType { codec: *codec }
            }
            LogError::MessageTooLarge { size, max } => LogError::MessageTooLarge {
                size: *size,
                max: *max,
            },
            LogError::OffsetOutOfRange {
                requested,
                log_start,
                log_end,
            } => LogError::OffsetOutOfRange {
                requested: *requested,
                log_start: *log_start,
                log_end: *log_end,
            },
            LogError::OutOfOrderSequence {
                producer_id,
                expected,
                received,
            } => LogError::OutOfOrderSequence {
                producer_id: *producer_id,
                expected: *expected,
                received: *received,
            },
            LogError::InvalidProducerEpoch {
                producer_id,
                current,
                received,
            } => LogError::InvalidProducerEpoch {
                producer_id: *producer_id,
                current: *current,
                received: *received,
            },
            LogError::TransactionCoordinatorFenced {
                producer_id,
                current,
                received,
            } => LogError::TransactionCoordinatorFenced {
                producer_id: *producer_id,
                current: *current,
                received: *received,
            },
            LogError::OffsetsOutOfOrder {
                base_offset,
                expected_at_least,
            } => LogError::OffsetsOutOfOrder {
                base_offset: *base_offset,
                expected_at_least: *expected_at_least,
            },
            LogError::Closed => LogError::Closed,
            LogError::Offline { op } => LogError::Offline { op },
            LogError::Io { op, path, source } => LogError::Io {
                op,
                path: path.clone(),
                source: match source.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(source.kind(), source.to_string()),
                },
            },
        }
    }
}

impl From<BatchError> for LogError {
    fn from(e: BatchError) -> Self {
        match e {
            BatchError::CorruptMessage { reason } => LogError::CorruptMessage { reason },
            BatchError::InvalidRecord { reason } => LogError::InvalidRecord { reason },
            BatchError::UnsupportedMagic { magic } => {
                LogError::UnsupportedForMessageFormat { magic }
            }
            BatchError::UnsupportedCompression { codec } => {
                LogError::UnsupportedCompressionType { codec }
            }
            BatchError::BatchTooLarge { size, max } => LogError::MessageTooLarge { size, max },
        }
    }
}

/// Builds a closure that wraps an `io::Error` with the operation and path.
pub(crate) fn io_err(
    op: &'static str,
    path: &std::path::Path,
) -> impl FnOnce(io::Error) -> LogError {
    let path = path.to_path_buf();
    move |source| LogError::Io { op, path, source }
}
