//! Behaviour of `PartitionLog` through its public API: append/read, rolling, indexes, timestamps,
//! idempotent producers, retention, DeleteRecords, truncation, close/reopen.

use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use strom_protocol::record_batch::builder::build_batch;
use strom_protocol::record_batch::{BatchSplitter, RecordBatchHeader, TimestampType};
use strom_storage::{LogConfig, LogError, ManualClock, PartitionLog};

fn open(dir: &Path, config: LogConfig, clock: &Arc<ManualClock>) -> PartitionLog {
    PartitionLog::open(dir.to_path_buf(), config, clock.clone()).unwrap()
}

fn batch(n: usize, ts: i64) -> BytesMut {
    let value = [b'v'; 100];
    let recs: Vec<_> = (0..n)
        .map(|i| (None, Some(&value[..]), ts + i as i64))
        .collect();
    build_batch(0, &recs, None)
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 200,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

/// Base offsets of the batches returned by a read from `offset`.
fn read_bases(
    log: &PartitionLog,
    offset: i64,
    max_bytes: usize,
    max_offset: Option<i64>,
) -> Vec<i64> {
    let r = log.read(offset, max_bytes, max_offset).unwrap();
    let Some(slice) = r.slice else {
        return Vec::new();
    };
    let bytes = slice.read_to_bytes().unwrap();
    BatchSplitter::new(&bytes, usize::MAX)
        .map(|b| RecordBatchHeader::parse(b.unwrap()).unwrap().base_offset())
        .collect()
}

#[test]
fn append_assigns_offsets_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000));
    let log = open(dir.path(), LogConfig::default(), &clock);
    let a = log.append(batch(3, 10)).unwrap();
    assert_eq!(
        (
            a.base_offset,
            a.last_offset,
            a.record_count,
            a.max_timestamp
        ),
        (0, 2, 3, 12)
    );
    let b = log.append(batch(2, 20)).unwrap();
    assert_eq!((b.base_offset, b.last_offset), (3, 4));
    assert_eq!(log.log_end_offset(), 5);
    assert_eq!(read_bases(&log, 0, 1 << 20, None), vec![0, 3]);
    assert_eq!(read_bases(&log, 1, 1 << 20, None), vec![0, 3]);
    assert_eq!(read_bases(&log, 4, 1 << 20, None), vec![3]);
    // max_bytes smaller than one batch still returns that batch, and only it.
    assert_eq!(read_bases(&log, 0, 1, None), vec![0]);
    // The high watermark hides batches starting at or after it.
    assert_eq!(read_bases(&log, 0, 1 << 20, Some(3)), vec![0]);
    assert_eq!(read_bases(&log, 3, 1 << 20, Some(3)), Vec::<i64>::new());
    assert!(log.read(5, 100, None).unwrap().slice.is_none());
    assert!(matches!(
        log.read(6, 100, None),
        Err(LogError::OffsetOutOfRange {
            requested: 6,
            log_start: 0,
            log_end: 5
        })
    ));
}

#[test]
fn rejects_bad_batches_without_changing_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let config = LogConfig {
        max_message_bytes: 500,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config, &clock);
    let mut two = batch(1, 1);
    let mut bad = batch(1, 1);
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    two.extend_from_slice(&bad);
    assert!(matches!(
        log.append(two),
        Err(LogError::CorruptMessage { .. })
    ));
    assert!(matches!(
        log.append(batch(10, 1)),
        Err(LogError::MessageTooLarge { max: 500, .. })
    ));
    assert!(matches!(
        log.append(BytesMut::new()),
        Err(LogError::InvalidRecord { .. })
    ));
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
}

#[test]
fn rolls_segments_and_reads_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), small_segments(), &clock);
    for i in 0..40 {
        log.append(batch(2, i * 10)).unwrap();
    }
    assert!(log.segment_count() > 5, "segments: {}", log.segment_count());
    assert!(dir.path().join("00000000000000000000.log").exists());
    for offset in 0..80 {
        let bases = read_bases(&log, offset, 1, None);
        assert_eq!(bases, vec![offset - offset % 2], "read at {offset}");
    }
    let all: Vec<i64> = (0..40).map(|i| i * 2).collect();
    let mut got = Vec::new();
    let mut next = 0;
    while next < 80 {
        let bases = read_bases(&log, next, 4096, None);
        next = bases.last().unwrap() + 2;
        got.extend(bases);
    }
    assert_eq!(got, all);
    log.close().unwrap();
    assert!(matches!(log.append(batch(1, 0)), Err(LogError::Closed)));
    let log = open(dir.path(), small_segments(), &clock);
    assert_eq!(log.log_end_offset(), 80);
    assert_eq!(read_bases(&log, 41, 1, None), vec![40]);
    assert_eq!(log.append(batch(1, 0)).unwrap().base_offset, 80);
}

#[test]
fn segment_ms_rolls_and_time_retention_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_000_000));
    let config = LogConfig {
        segment_ms: 1_000,
        retention_ms: 10_000,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config, &clock);
    log.append(batch(1, 1_000_000)).unwrap();
    clock.advance(2_000);
    log.append(batch(1, 1_002_000)).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.enforce_retention().unwrap(), 0);
    clock.advance(9_500);
    // The first segment (max ts 1_000_000) is now older than retention.ms; the second is not.
    assert_eq!(log.enforce_retention().unwrap(), 1);
    assert_eq!(log.log_start_offset(), 1);
    clock.advance(5_000);
    // Everything expired: the active segment is rolled, then deleted.
    assert_eq!(log.enforce_retention().unwrap(), 1);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 2));
    assert!(log.read(2, 100, None).unwrap().slice.is_none());
    assert_eq!(log.append(batch(1, 0)).unwrap().base_offset, 2);
}

#[test]
fn size_retention_and_delete_records() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), small_segments(), &clock);
    for i in 0..30 {
        log.append(batch(1, i)).unwrap();
    }
    let segments = log.segment_count();
    let mut config = small_segments();
    config.retention_bytes = 2048;
    log.set_config(config);
    let deleted = log.enforce_retention().unwrap();
    assert!(deleted > 0 && log.segment_count() == segments - deleted as usize);
    assert!(log.size_bytes() <= 2048 + 1024);
    let start = log.log_start_offset();
    assert!(matches!(
        log.read(start - 1, 10, None),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.delete_records(25).unwrap(), 25);
    assert_eq!(read_bases(&log, 25, 1, None), vec![25]);
    assert!(log.read(24, 10, None).is_err());
    assert_eq!(log.delete_records(-1).unwrap(), 30);
    assert!(log.delete_records(31).is_err());
    log.close().unwrap();
    let log = open(dir.path(), small_segments(), &clock);
    assert_eq!(log.log_start_offset(), 30);
}

#[test]
fn read_survives_segment_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), small_segments(), &clock);
    for i in 0..20 {
        log.append(batch(1, i)).unwrap();
    }
    let slice = log.read(0, 1 << 20, None).unwrap().slice.unwrap();
    log.delete_records(19).unwrap();
    assert!(!dir.path().join("00000000000000000000.log").exists());
    let bytes = slice.read_to_bytes().unwrap();
    assert_eq!(RecordBatchHeader::parse(&bytes).unwrap().base_offset(), 0);
}

#[test]
fn timestamps_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), small_segments(), &clock);
    for i in 0..30 {
        log.append(batch(2, 1_000 + i * 10)).unwrap(); // records at ts, ts+1
    }
    let find = |t| {
        log.offset_for_timestamp(t)
            .unwrap()
            .map(|x| (x.timestamp, x.offset))
    };
    assert_eq!(find(0), Some((1_000, 0)));
    assert_eq!(find(1_001), Some((1_001, 1)));
    assert_eq!(find(1_002), Some((1_010, 2)));
    assert_eq!(find(1_151), Some((1_151, 31)));
    assert_eq!(find(1_291), Some((1_291, 59)));
    assert_eq!(find(1_292), None);
    let max = log.max_timestamp_offset().unwrap().unwrap();
    assert_eq!((max.timestamp, max.offset), (1_291, 59));
}

#[test]
fn log_append_time_overrides_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(777));
    let config = LogConfig {
        timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let log = open(dir.path(), config, &clock);
    let info = log.append(batch(2, 5)).unwrap();
    assert_eq!((info.log_append_time, info.max_timestamp), (777, 777));
    let bytes = log
        .read(0, 1000, None)
        .unwrap()
        .slice
        .unwrap()
        .read_to_bytes()
        .unwrap();
    let h = strom_protocol::record_batch::validate_batch(
        &bytes,
        strom_protocol::record_batch::Validation::Stored,
    )
    .unwrap();
    assert_eq!(
        (h.timestamp_type(), h.max_timestamp()),
        (TimestampType::LogAppendTime, 777)
    );
    assert_eq!(log.offset_for_timestamp(700).unwrap().unwrap().offset, 0);
}

fn idem(seq: i32, epoch: i16, n: usize) -> BytesMut {
    let recs: Vec<_> = (0..n).map(|_| (None, Some(&b"x"[..]), 1)).collect();
    build_batch(0, &recs, Some((42, epoch, seq)))
}

#[test]
fn idempotent_producer_dedup_and_ordering() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), small_segments(), &clock);
    assert_eq!(log.append(idem(0, 0, 3)).unwrap().base_offset, 0);
    assert_eq!(log.append(idem(3, 0, 2)).unwrap().base_offset, 3);
    let dup = log.append(idem(0, 0, 3)).unwrap();
    assert!(dup.duplicate);
    assert_eq!((dup.base_offset, dup.last_offset), (0, 2));
    assert_eq!(log.log_end_offset(), 5);
    assert!(matches!(
        log.append(idem(9, 0, 1)),
        Err(LogError::OutOfOrderSequence {
            expected: 5,
            received: 9,
            ..
        })
    ));
    assert!(matches!(
        log.append(idem(4, 1, 1)),
        Err(LogError::OutOfOrderSequence { expected: 0, .. })
    ));
    log.append(idem(0, 1, 1)).unwrap();
    assert!(matches!(
        log.append(idem(1, 0, 1)),
        Err(LogError::InvalidProducerEpoch { current: 1, .. })
    ));
    // State survives a clean restart (snapshot) ...
    log.close().unwrap();
    let log = open(dir.path(), small_segments(), &clock);
    assert!(log.append(idem(0, 1, 1)).unwrap().duplicate);
    assert!(log.append(idem(5, 1, 1)).is_err());
    // ... and an unclean one (replay of the log after the last snapshot).
    log.append(idem(1, 1, 1)).unwrap();
    drop(log);
    let log = open(dir.path(), small_segments(), &clock);
    assert!(log.append(idem(1, 1, 1)).unwrap().duplicate);
    assert_eq!(log.append(idem(2, 1, 1)).unwrap().base_offset, 7);
}

#[test]
fn truncate_to_rebuilds_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), small_segments(), &clock);
    for i in 0..30 {
        log.append(idem(i * 2, 0, 2)).unwrap();
    }
    assert!(log.segment_count() > 1);
    log.truncate_to(7).unwrap(); // batch [6,7] goes entirely
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(read_bases(&log, 4, 1 << 20, None), vec![4]);
    assert!(log.append(idem(8, 0, 2)).is_err());
    assert_eq!(log.append(idem(6, 0, 2)).unwrap().base_offset, 6);
    log.truncate_to(0).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!(log.append(idem(100, 0, 1)).unwrap().base_offset, 0);
    log.close().unwrap();
    let log = open(dir.path(), small_segments(), &clock);
    assert_eq!(log.log_end_offset(), 1);
}

#[test]
fn flush_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topic-0");
    let clock = Arc::new(ManualClock::new(0));
    let config = LogConfig {
        flush_messages: 1,
        ..LogConfig::default()
    };
    let log = open(&path, config, &clock);
    log.append(batch(1, 0)).unwrap();
    log.flush_to(1).unwrap();
    log.flush().unwrap();
    log.delete().unwrap();
    assert!(!path.exists());
    assert!(matches!(log.read(0, 1, None), Err(LogError::Closed)));
}

#[test]
fn slice_next_offset_is_the_last_batch_end_from_headers() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(0));
    let log = open(dir.path(), LogConfig::default(), &clock);
    for n in [3, 1, 5, 2] {
        log.append(batch(n, 0)).unwrap(); // offsets 0-2, 3, 4-8, 9-10
    }
    let next = |from, max_bytes, max_offset| {
        log.read(from, max_bytes, max_offset)
            .unwrap()
            .slice
            .unwrap()
            .next_offset()
            .unwrap()
    };
    assert_eq!(next(0, 1 << 20, None), Some(11));
    assert_eq!(next(4, 1 << 20, Some(9)), Some(9), "cut at max_offset");
    assert_eq!(next(0, 1, None), Some(3), "first batch only");
    assert_eq!(next(5, 1 << 20, None), Some(11), "from inside a batch");
    let whole = log.read(0, 1 << 20, None).unwrap().slice.unwrap();
    let bytes = whole.read_to_bytes().unwrap();
    let walked = BatchSplitter::new(&bytes, usize::MAX)
        .map(|b| RecordBatchHeader::parse(b.unwrap()).unwrap().last_offset() + 1)
        .last();
    assert_eq!(whole.next_offset().unwrap(), walked);
}
