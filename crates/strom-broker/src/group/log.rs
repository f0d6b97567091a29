//! Where the coordinator's records go: the `OffsetsLog` seam between the group engine and
//! `__consumer_offsets`, plus the batch framing used to write and replay that topic. The
//! broker implements it over its partition logs; tests use `MemoryLog`.

use bytes::{Bytes, BytesMut};
use strom_protocol::record_batch::builder::BatchBuilder;
use strom_protocol::record_batch::RecordBatchHeader;
use strom_protocol::{BatchSplitter, ErrorCode};

use super::records::{decode, encode, GroupRecord};

/// Kafka's name for the topic of committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// The coordinator's view of `__consumer_offsets`.
pub trait OffsetsLog: Send + Sync {
    /// The topic's partition count, creating the topic first if it does not exist.
    fn offsets_partitions(&self) -> Result<i32, ErrorCode>;
    /// Appends one batch to a partition; returns once it is in the log.
    fn append_batch(&self, partition: i32, batch: BytesMut) -> Result<(), ErrorCode>;
    /// The stored batches of every partition, in offset order; empty if there is no topic.
    fn read_batches(&self, visit: &mut dyn FnMut(i32, Bytes)) -> Result<(), String>;
    /// The stored batches of one partition, in offset order (a coordinator taking it over).
    fn read_partition_batches(
        &self,
        partition: i32,
        visit: &mut dyn FnMut(Bytes),
    ) -> Result<(), String> {
        self.read_batches(&mut |p, batches| {
            if p == partition {
                visit(batches)
            }
        })
    }
}

/// One batch holding `records`, timestamped `now_ms`. `records` must not be empty.
pub fn batch_of(records: &[GroupRecord], now_ms: i64) -> BytesMut {
    let mut builder = BatchBuilder::new(0);
    for record in records {
        let (key, value) = encode(record);
        builder.push(Some(&key), value.as_deref(), now_ms);
    }
    builder.build()
}

/// Decodes the records of a buffer of stored batches, skipping control batches. A record
/// that does not decode is logged and skipped: one bad record must not lose every group.
pub fn records_of(batches: &[u8], mut visit: impl FnMut(GroupRecord)) {
    for batch in BatchSplitter::new(batches, usize::MAX) {
        let batch = match batch {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "unreadable batch in {OFFSETS_TOPIC}; skipping the rest");
                return;
            }
        };
        let plain = match strom_protocol::compression::decompress_batch(batch) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "cannot decompress a batch of {OFFSETS_TOPIC}");
                continue;
            }
        };
        let Ok(header) = RecordBatchHeader::parse(&plain) else {
            continue;
        };
        if header.is_control() {
            continue;
        }
        for record in header.records() {
            match record
                .map_err(|e| e.to_string())
                .and_then(|r| decode(r.key, r.value).map_err(|e| e.to_string()))
            {
                Ok(r) => visit(r),
                Err(e) => {
                    tracing::warn!(error = %e, "skipping an unreadable record of {OFFSETS_TOPIC}")
                }
            }
        }
    }
}

/// An in-memory `__consumer_offsets` for tests: batches per partition, optionally failing.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct MemoryLog {
    pub partitions: i32,
    pub batches: parking_lot::Mutex<std::collections::BTreeMap<i32, Vec<Bytes>>>,
    pub fail_appends: std::sync::atomic::AtomicBool,
}

#[cfg(test)]
impl MemoryLog {
    pub fn new(partitions: i32) -> Self {
        MemoryLog {
            partitions,
            ..Self::default()
        }
    }
}

#[cfg(test)]
impl OffsetsLog for MemoryLog {
    fn offsets_partitions(&self) -> Result<i32, ErrorCode> {
        Ok(self.partitions)
    }

    fn append_batch(&self, partition: i32, batch: BytesMut) -> Result<(), ErrorCode> {
        if self.fail_appends.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(ErrorCode::KafkaStorageError);
        }
        assert!(
            (0..self.partitions).contains(&partition),
            "partition {partition} out of range"
        );
        self.batches
            .lock()
            .entry(partition)
            .or_default()
            .push(batch.freeze());
        Ok(())
    }

    fn read_batches(&self, visit: &mut dyn FnMut(i32, Bytes)) -> Result<(), String> {
        for (p, batches) in self.batches.lock().iter() {
            for b in batches {
                visit(*p, b.clone());
            }
        }
        Ok(())
    }
}
