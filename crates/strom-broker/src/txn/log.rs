//! Where the transaction coordinator's writes go: the `TxnLog` seam to `__transaction_state`
//! and to the partitions that receive commit/abort markers, and the framing of metadata
//! batches. The broker implements it in `broker_log.rs`.

use bytes::{Bytes, BytesMut};
use strom_protocol::record_batch::builder::BatchBuilder;
use strom_protocol::ErrorCode;

use super::records::{decode, encode, encode_key};
use super::state::{Completion, TxnMetadata};

/// Kafka's name for the topic of transaction metadata.
pub const TXN_STATE_TOPIC: &str = "__transaction_state";

/// The coordinator's view of storage.
pub trait TxnLog: Send + Sync {
    /// The partition count of `__transaction_state`, creating the topic if needed.
    fn txn_partitions(&self) -> Result<i32, ErrorCode>;
    /// Appends one batch of metadata records; returns once it is in the log.
    fn append_txn_batch(&self, partition: i32, batch: BytesMut) -> Result<(), ErrorCode>;
    /// Every stored batch of `__transaction_state`, in offset order per partition.
    fn read_txn_batches(&self, visit: &mut dyn FnMut(i32, Bytes)) -> Result<(), String>;
    /// The stored batches of one partition, in offset order (a coordinator taking it over).
    fn read_txn_partition_batches(
        &self,
        partition: i32,
        visit: &mut dyn FnMut(Bytes),
    ) -> Result<(), String> {
        self.read_txn_batches(&mut |p, batches| {
            if p == partition {
                visit(batches)
            }
        })
    }
    /// Writes the commit/abort marker of `completion` to each of its partitions (single
    /// node: straight into the partition logs; a cluster would send WriteTxnMarkers).
    fn write_markers(
        &self,
        completion: &Completion,
        coordinator_epoch: i32,
    ) -> Result<(), ErrorCode>;
}

/// One batch holding the metadata record of `md`.
pub fn metadata_batch(md: &TxnMetadata, now_ms: i64) -> BytesMut {
    let (key, value) = encode(md);
    let mut builder = BatchBuilder::new(0);
    builder.push(Some(&key), Some(&value), now_ms);
    builder.build()
}

/// One batch holding the tombstone of an expired transactional id.
pub fn tombstone_batch(transactional_id: &str, now_ms: i64) -> BytesMut {
    let mut builder = BatchBuilder::new(0);
    builder.push(Some(&encode_key(transactional_id)), None, now_ms);
    builder.build()
}

/// Decodes the metadata records of stored batches; unreadable records are logged and skipped.
pub fn metadata_of(batches: &[u8], mut visit: impl FnMut(String, Option<TxnMetadata>)) {
    crate::internal_topic::for_each_batch(TXN_STATE_TOPIC, batches, |header| {
        if header.is_control() {
            return;
        }
        for record in header.records() {
            match record
                .map_err(|e| e.to_string())
                .and_then(|r| decode(r.key, r.value))
            {
                Ok((id, md)) => visit(id, md),
                Err(e) => tracing::warn!(error = %e, "skipping a record of {TXN_STATE_TOPIC}"),
            }
        }
    });
}
