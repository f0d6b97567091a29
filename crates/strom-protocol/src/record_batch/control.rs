//! KIP-98 control batches: the commit/abort markers a transaction coordinator writes to each
//! partition of a transaction. Key = (version 0, type), value = (version 0, coordinator epoch).

use bytes::BytesMut;

use super::builder::BatchBuilder;
use super::RecordBatchHeader;

/// Attribute bits of a marker batch: transactional (0x10) and control (0x20).
const MARKER_ATTRIBUTES: i16 = 0x30;

/// Kafka's `ControlRecordType` (only the two a transaction marker uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRecordType {
    Abort,
    Commit,
}

impl ControlRecordType {
    pub fn code(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
        }
    }
}

/// The type of a control batch's first record (`None`: not a control batch, unknown type or
/// malformed). The view must hold the whole batch; control batches are never compressed.
pub fn control_record_type(header: &RecordBatchHeader<'_>) -> Option<ControlRecordType> {
    if !header.is_control() {
        return None;
    }
    let record = header.records().next()?.ok()?;
    let key = record.key?;
    match key.get(2..4).map(|t| i16::from_be_bytes([t[0], t[1]]))? {
        0 => Some(ControlRecordType::Abort),
        1 => Some(ControlRecordType::Commit),
        _ => None,
    }
}

/// The coordinator epoch a transaction marker carries (its value: version 0, then the epoch;
/// `None`: not a control batch or malformed). The view must hold the whole batch.
pub fn marker_coordinator_epoch(header: &RecordBatchHeader<'_>) -> Option<i32> {
    if !header.is_control() {
        return None;
    }
    let record = header.records().next()?.ok()?;
    let value = record.value?;
    let epoch = value.get(2..6)?;
    Some(i32::from_be_bytes([epoch[0], epoch[1], epoch[2], epoch[3]]))
}

/// A marker batch ending `producer_id`'s transaction (sequence -1, one record).
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    kind: ControlRecordType,
    coordinator_epoch: i32,
    timestamp_ms: i64,
) -> BytesMut {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.code().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let mut builder = BatchBuilder::new(0);
    builder.producer = Some((producer_id, producer_epoch, super::NO_SEQUENCE));
    builder.attributes = MARKER_ATTRIBUTES;
    builder.push(Some(&key), Some(&value), timestamp_ms);
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch::builder::build_batch;
    use crate::record_batch::{validate_batch, validate_records, Validation};

    #[test]
    fn markers_are_valid_control_batches() {
        for kind in [ControlRecordType::Commit, ControlRecordType::Abort] {
            let batch = marker_batch(7, 3, kind, 5, 1_000);
            let header = validate_batch(&batch, Validation::Produce).unwrap();
            validate_records(&header, Validation::Produce).unwrap();
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id(), header.producer_epoch()), (7, 3));
            assert_eq!(header.base_sequence(), -1);
            assert_eq!(control_record_type(&header), Some(kind));
            assert_eq!(marker_coordinator_epoch(&header), Some(5));
        }
        let plain = build_batch(0, &[(Some(&[0, 0, 0, 1][..]), None, 1)], Some((7, 3, 0)));
        let header = RecordBatchHeader::parse(&plain).unwrap();
        assert_eq!(control_record_type(&header), None);
        assert_eq!(marker_coordinator_epoch(&header), None);
    }
}
