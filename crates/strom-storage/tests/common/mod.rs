//! Shared by the storage tests that write one record per offset, keyed by that offset.

use strom_protocol::record_batch::{validate_batch, BatchSplitter, Validation};
use strom_storage::PartitionLog;

/// Every batch of `log` from its start to its end as (base offset, last offset), each
/// CRC-valid with its first record keyed by its base offset.
pub fn keyed_batches(log: &PartitionLog) -> Vec<(i64, i64)> {
    let mut batches = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let bytes = log
            .read(offset, 1 << 20, None)
            .unwrap()
            .slice
            .unwrap()
            .read_to_bytes()
            .unwrap();
        for b in BatchSplitter::new(&bytes, usize::MAX) {
            let h = validate_batch(b.unwrap(), Validation::Stored).unwrap();
            let record = h.records().next().unwrap().unwrap();
            assert_eq!(record.key.unwrap(), h.base_offset().to_string().as_bytes());
            batches.push((h.base_offset(), h.last_offset()));
            offset = h.last_offset() + 1;
        }
    }
    batches
}
