//! Per-partition log configuration (Kafka topic-config names and defaults) and the clock the
//! log reads time from, so tests can control it (STYLE.md #6).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use strom_protocol::compression::MAX_DECOMPRESSED_BYTES;

pub use strom_protocol::record_batch::TimestampType;

/// `cleanup.policy`: `delete`, `compact`, or both (`compact,delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// Retention by `retention.ms` / `retention.bytes` deletes old segments.
    pub delete: bool,
    /// The cleaner keeps the latest record per key; appends need a key.
    pub compact: bool,
}

impl Default for CleanupPolicy {
    fn default() -> Self {
        Self {
            delete: true,
            compact: false,
        }
    }
}

impl CleanupPolicy {
    /// Parses Kafka's list form (`"compact, delete"`); unknown words are ignored.
    pub fn parse(list: &str) -> Self {
        let words: Vec<&str> = list.split(',').map(str::trim).collect();
        Self {
            delete: words.contains(&"delete"),
            compact: words.contains(&"compact"),
        }
    }
}

/// Kafka topic-level log settings. `Default` gives Kafka's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the active segment's first append is this old.
    pub segment_ms: i64,
    /// `segment.index.bytes`: roll when an index of the active segment is this large.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes`
    pub index_interval_bytes: u64,
    /// `max.message.bytes`: the largest batch accepted.
    pub max_message_bytes: u32,
    /// `retention.ms`, -1 = unlimited.
    pub retention_ms: i64,
    /// `retention.bytes`, -1 = unlimited.
    pub retention_bytes: i64,
    /// `flush.messages`: fsync after this many records (1 = durable mode).
    pub flush_messages: u64,
    /// `flush.ms`: fsync when the last flush is this old (checked by `enforce_retention`).
    pub flush_ms: i64,
    /// `flush.before.ack.enable`: durable mode with group commit. Appends do not fsync
    /// themselves; the broker acknowledges them once the log dir's [`crate::GroupCommit`]
    /// has fsynced them, and a follower fsyncs what it fetched before fetching again.
    pub flush_before_ack: bool,
    /// `message.timestamp.type`
    pub timestamp_type: TimestampType,
    /// `cleanup.policy`
    pub cleanup_policy: CleanupPolicy,
    /// `min.cleanable.dirty.ratio`: clean when dirty bytes / all bytes reach this.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records younger than this are not compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: dirty records older than this force a clean.
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`: how long a tombstone outlives the clean that first kept it.
    pub delete_retention_ms: i64,
    /// `producer.id.expiration.ms` (a broker config in Kafka): how long after its last batch
    /// an idempotent producer with no open transaction is forgotten.
    pub producer_id_expiration_ms: i64,
}

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// See [`LogConfig::max_decompressed_bytes`].
const DECOMPRESSED_PER_MESSAGE_BYTE: usize = 64;
const MIN_DECOMPRESSED_BYTES: usize = 16 << 20;

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * DAY_MS,
            segment_index_bytes: 10 << 20,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            retention_ms: 7 * DAY_MS,
            retention_bytes: -1,
            flush_messages: u64::MAX,
            flush_ms: i64::MAX,
            flush_before_ack: false,
            timestamp_type: TimestampType::CreateTime,
            cleanup_policy: CleanupPolicy::default(),
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: DAY_MS,
            producer_id_expiration_ms: DAY_MS,
        }
    }
}

impl LogConfig {
    /// Largest size a compressed batch may inflate to when the log decompresses it (key check
    /// of compacted topics, the cleaner): 64 × `max.message.bytes` (generous for real data,
    /// whose ratios rarely pass 10-20×), at least 16 MiB so small limits do not refuse normal
    /// batches, at most `MAX_DECOMPRESSED_BYTES` (256 MiB). A zip bomb is refused instead.
    pub fn max_decompressed_bytes(&self) -> usize {
        (self.max_message_bytes as usize)
            .saturating_mul(DECOMPRESSED_PER_MESSAGE_BYTE)
            .clamp(MIN_DECOMPRESSED_BYTES, MAX_DECOMPRESSED_BYTES)
    }

    /// Segment size cap actually used: positions in the index are u32 (Kafka caps at i32::MAX).
    pub(crate) fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.clamp(1, i32::MAX as u64)
    }
}

/// Wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> i64;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock tests move by hand.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    pub fn new(now_ms: i64) -> Self {
        Self {
            now_ms: AtomicI64::new(now_ms),
        }
    }
    pub fn set(&self, now_ms: i64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }
    pub fn advance(&self, ms: i64) {
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}
