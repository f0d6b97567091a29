//! Many threads appending to one partition (appends that find the partition busy are staged
//! and written together by whoever holds it, see `PartitionLog::append`): every acknowledged
//! batch is in the log exactly once, at the offsets its answer gave, each producer's batches
//! in sequence order, retries answered as duplicates with the original offsets; rolls happen
//! inside groups; an unclean reopen finds the same log and producer states.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::thread;

use bytes::BytesMut;
use strom_protocol::record_batch::builder::build_batch;
use strom_protocol::record_batch::{validate_batch, BatchSplitter, Validation};
use strom_storage::{AppendInfo, LogConfig, PartitionLog, SystemClock};

const THREADS: i64 = 6;
const APPENDS: i32 = 300;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 8 * 1024,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

/// Batches carry the current time: a reopen expires producers whose last batch is older than
/// `producer.id.expiration.ms`.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn open(dir: &Path) -> PartitionLog {
    PartitionLog::open(dir.to_path_buf(), config(), Arc::new(SystemClock)).unwrap()
}

/// Records per batch: each batch's first sequence is `RECORDS` past the one before.
const RECORDS: i32 = 2;

/// Producer `pid`'s batch number `i`.
fn batch(pid: i64, i: i32) -> BytesMut {
    let value = format!("{pid}-{i}");
    let seq = i * RECORDS;
    let recs: Vec<_> = (0..RECORDS)
        .map(|i| (None, Some(value.as_bytes()), now_ms() + i64::from(i)))
        .collect();
    build_batch(0, &recs, Some((pid, 0, seq)))
}

/// Every batch in the log as (base offset, last offset, producer id, base sequence).
fn stored(log: &PartitionLog) -> Vec<(i64, i64, i64, i32)> {
    let mut batches = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read(offset, 1 << 20, None).unwrap();
        let bytes = read.slice.unwrap().read_to_bytes().unwrap();
        for b in BatchSplitter::new(&bytes, usize::MAX) {
            let h = validate_batch(b.unwrap(), Validation::Stored).unwrap();
            let r = (
                h.base_offset(),
                h.last_offset(),
                h.producer_id(),
                h.base_sequence(),
            );
            batches.push(r);
            offset = h.last_offset() + 1;
        }
    }
    batches
}

/// The log holds exactly the acknowledged batches, contiguous, each producer in order.
fn check(log: &PartitionLog, acked: &HashMap<(i64, i32), AppendInfo>) {
    let batches = stored(log);
    assert_eq!(
        batches.len(),
        acked.len(),
        "one stored batch per acknowledged one"
    );
    let mut next = 0;
    let mut next_seq: HashMap<i64, i32> = HashMap::new();
    for &(base, last, pid, seq) in &batches {
        assert_eq!(base, next, "offsets are contiguous");
        next = last + 1;
        let expected = next_seq.entry(pid).or_insert(0);
        assert_eq!(seq, *expected, "producer {pid} in sequence order");
        *expected += RECORDS;
        let info = acked[&(pid, seq / RECORDS)];
        assert_eq!(
            (info.base_offset, info.last_offset),
            (base, last),
            "{pid}-{seq}"
        );
    }
    assert_eq!(log.log_end_offset(), next);
}

#[test]
fn concurrent_appends_to_one_partition_keep_every_batch_once_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(open(dir.path()));
    let appenders: Vec<_> = (0..THREADS)
        .map(|pid| {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                let mut acked = Vec::new();
                for seq in 0..APPENDS {
                    let info = log.append(batch(pid, seq)).unwrap();
                    assert!(!info.duplicate);
                    if seq % 7 == 3 {
                        // A retry of the batch just acknowledged: its offsets, nothing written.
                        let retry = log.append(batch(pid, seq)).unwrap();
                        assert!(retry.duplicate);
                        assert_eq!(
                            (retry.base_offset, retry.last_offset),
                            (info.base_offset, info.last_offset)
                        );
                    }
                    acked.push(((pid, seq), info));
                }
                acked
            })
        })
        .collect();
    let acked: HashMap<(i64, i32), AppendInfo> = appenders
        .into_iter()
        .flat_map(|a| a.join().unwrap())
        .collect();
    check(&log, &acked);
    assert!(
        log.segment_count() > 10,
        "rolls happened: {}",
        log.segment_count()
    );
    eprintln!(
        "{} appends, {} written with another's write, {} segments",
        acked.len(),
        log.coalesced_appends(),
        log.segment_count()
    );
    // An unclean reopen (no close) recovers the same log and producer states.
    drop(log);
    let log = open(dir.path());
    check(&log, &acked);
    for pid in 0..THREADS {
        assert!(log.append(batch(pid, APPENDS - 1)).unwrap().duplicate);
        let end = log.log_end_offset();
        assert_eq!(log.append(batch(pid, APPENDS)).unwrap().base_offset, end);
    }
}
