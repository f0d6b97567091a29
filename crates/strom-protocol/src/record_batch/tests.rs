//! Unit tests of the batch header view, validation, splitting and rewrites.
use super::builder::{build_batch, BatchBuilder};
use super::*;

fn two_records() -> bytes::BytesMut {
    build_batch(
        0,
        &[
            (Some(b"k1"), Some(b"v1"), 1_000),
            (None, Some(b"v2"), 1_005),
        ],
        Some((7, 1, 40)),
    )
}

#[test]
fn header_fields_round_trip() {
    let buf = two_records();
    let h = validate_batch(&buf, Validation::Produce).unwrap();
    assert_eq!(h.base_offset(), 0);
    assert_eq!(h.magic(), 2);
    assert_eq!(h.total_size(), buf.len());
    assert_eq!(h.records_count(), 2);
    assert_eq!(h.last_offset_delta(), 1);
    assert_eq!(h.base_timestamp(), 1_000);
    assert_eq!(h.max_timestamp(), 1_005);
    assert_eq!((h.producer_id(), h.producer_epoch()), (7, 1));
    assert_eq!((h.base_sequence(), h.last_sequence()), (40, 41));
    assert_eq!(h.compression().unwrap(), Compression::None);
    assert_eq!(h.timestamp_type(), TimestampType::CreateTime);
    assert!(!h.is_transactional() && !h.is_control() && !h.has_delete_horizon());
    validate_records(&h, Validation::Produce).unwrap();
}

#[test]
fn last_sequence_wraps() {
    let mut b = BatchBuilder::new(0);
    b.producer = Some((1, 0, i32::MAX));
    b.push(None, Some(b"a"), 0).push(None, Some(b"b"), 0);
    let buf = b.build();
    let h = RecordBatchHeader::parse(&buf).unwrap();
    assert_eq!(h.last_sequence(), 0);
}

#[test]
fn crc_flip_is_corrupt() {
    let mut buf = two_records();
    let last = buf.len() - 1;
    buf[last] ^= 0x01;
    assert!(matches!(
        validate_batch(&buf, Validation::Stored),
        Err(BatchError::CorruptMessage {
            reason: Corruption::CrcMismatch { .. }
        })
    ));
}

#[test]
fn bad_sizes_and_magic() {
    let buf = two_records();
    let short = &buf[..buf.len() - 3];
    assert!(matches!(
        validate_batch(short, Validation::Stored),
        Err(BatchError::CorruptMessage {
            reason: Corruption::Truncated { .. }
        })
    ));
    let mut long = buf.to_vec();
    long.push(0);
    assert_eq!(
        validate_batch(&long, Validation::Stored).unwrap_err(),
        corrupt(Corruption::TrailingBytes { extra: 1 })
    );
    let mut v1 = buf.to_vec();
    v1[MAGIC] = 1;
    assert_eq!(
        validate_batch(&v1, Validation::Stored).unwrap_err(),
        BatchError::UnsupportedMagic { magic: 1 }
    );
    let mut tiny = buf.to_vec();
    tiny[BATCH_LENGTH..BATCH_LENGTH + 4].copy_from_slice(&10i32.to_be_bytes());
    assert!(validate_batch(&tiny, Validation::Stored).is_err());
}

#[test]
fn count_rules_depend_on_mode() {
    // A compacted batch: 2 records spanning offset deltas 0..=4.
    let mut b = BatchBuilder::new(10);
    b.push(None, Some(b"a"), 5).push(None, Some(b"b"), 6);
    b.offset_deltas = Some(vec![0, 4]);
    let buf = b.build();
    let h = validate_batch(&buf, Validation::Stored).unwrap();
    validate_records(&h, Validation::Stored).unwrap();
    assert_eq!(h.last_offset(), 14);
    assert_eq!(
        validate_batch(&buf, Validation::Produce).unwrap_err(),
        invalid(InvalidRecordReason::CountMismatch {
            records_count: 2,
            last_offset_delta: 4
        })
    );
}

#[test]
fn splitter_splits_and_stops_on_truncation() {
    let mut all = two_records().to_vec();
    let second = build_batch(2, &[(None, Some(b"x"), 3)], None);
    all.extend_from_slice(&second);
    let parts: Vec<_> = BatchSplitter::new(&all, 1 << 20).collect();
    assert_eq!(parts.len(), 2);
    assert!(parts.iter().all(|p| p.is_ok()));

    let cut = &all[..all.len() - 1];
    let parts: Vec<_> = BatchSplitter::new(cut, 1 << 20).collect();
    assert_eq!(parts.len(), 2);
    assert!(parts[1].is_err());

    let too_big = BatchSplitter::new(&all, 20).next().unwrap();
    assert!(matches!(
        too_big,
        Err(BatchError::BatchTooLarge { max: 20, .. })
    ));
}

#[test]
fn rewrites_keep_crc_valid() {
    let mut buf = two_records();
    set_base_offset(&mut buf, 1234).unwrap();
    set_partition_leader_epoch(&mut buf, 9).unwrap();
    let h = validate_batch(&buf, Validation::Produce).unwrap();
    assert_eq!((h.base_offset(), h.partition_leader_epoch()), (1234, 9));
    set_log_append_time(&mut buf, 99_999).unwrap();
    let h = validate_batch(&buf, Validation::Produce).unwrap();
    assert_eq!(h.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(h.max_timestamp(), 99_999);
    assert!(set_base_offset(&mut [0u8; 10], 1).is_err());
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
        check_arbitrary_bytes(&bytes);
    }

    #[test]
    fn mutated_valid_batch_never_panics(pos in 0usize..200, byte in proptest::num::u8::ANY) {
        let mut buf = two_records().to_vec();
        let pos = pos % buf.len();
        buf[pos] = byte;
        check_arbitrary_bytes(&buf);
    }
}

/// Everything a fuzzer would call; must not panic for any input.
fn check_arbitrary_bytes(bytes: &[u8]) {
    crate::record_batch::fuzz_one(bytes);
}
