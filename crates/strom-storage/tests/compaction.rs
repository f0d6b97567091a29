//! Log compaction through the public API: convergence to the latest value per key, tombstone
//! delete horizons under a test clock, the dirty ratio and compaction lags, compressed batches,
//! readers and appends during a clean, crashes at every step of the swap, transactions.
//! (The property test against a model is `compaction_model.rs`.)

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::BytesMut;
use strom_protocol::compression::decompress_batch;
use strom_protocol::record_batch::builder::BatchBuilder;
use strom_protocol::record_batch::{
    validate_batch, BatchSplitter, Compression, InvalidRecordReason, RecordBatchHeader, Validation,
};
use strom_storage::{
    CleanerOptions, CleanupPolicy, Clock, LogConfig, LogError, ManualClock, PartitionLog, SwapStep,
};

const T0: i64 = 1_000_000;

/// A record as read back: offset, key, value (None = tombstone).
type Rec = (i64, Vec<u8>, Option<Vec<u8>>);

fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 600,
        index_interval_bytes: 100,
        retention_ms: 1, // would delete everything if compact-only retention ignored it
        cleanup_policy: CleanupPolicy::parse("compact"),
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 1_000,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig, clock: &Arc<ManualClock>) -> PartitionLog {
    PartitionLog::open(dir.to_path_buf(), config, clock.clone()).unwrap()
}

fn keyed(records: &[(&str, Option<&str>)], ts: i64, codec: Compression) -> BytesMut {
    let mut b = BatchBuilder::new(0);
    for (k, v) in records {
        b.push(Some(k.as_bytes()), v.map(str::as_bytes), ts);
    }
    b.build_compressed(codec).unwrap()
}

fn put(log: &PartitionLog, key: &str, value: Option<&str>, ts: i64) -> i64 {
    log.append(keyed(&[(key, value)], ts, Compression::None))
        .unwrap()
        .base_offset
}

fn clean(log: &PartitionLog) -> Option<strom_storage::CleanStats> {
    log.clean(&CleanerOptions::default()).unwrap()
}

/// Reads the whole log from its start, checking CRCs, order and the fetch contract.
fn read_all(log: &PartitionLog) -> Vec<Rec> {
    let mut out: Vec<Rec> = Vec::new();
    let mut offset = log.log_start_offset();
    let mut last_batch_end = -1;
    loop {
        let r = log.read(offset, 4096, None).unwrap();
        let Some(slice) = r.slice else { break };
        let bytes = slice.read_to_bytes().unwrap();
        for batch in BatchSplitter::new(&bytes, usize::MAX) {
            let h = validate_batch(batch.unwrap(), Validation::Stored).unwrap();
            assert!(h.base_offset() > last_batch_end, "batches out of order");
            last_batch_end = h.last_offset();
            offset = h.last_offset() + 1;
            let plain = decompress_batch(h.bytes()).unwrap();
            let ph = RecordBatchHeader::parse(&plain).unwrap();
            for rec in ph.records() {
                let rec = rec.unwrap();
                assert!(
                    out.last().is_none_or(|l| l.0 < rec.offset),
                    "offsets go back"
                );
                assert!(rec.offset <= h.last_offset());
                let key = rec
                    .key
                    .expect("a compacted log holds keyed records")
                    .to_vec();
                out.push((rec.offset, key, rec.value.map(<[u8]>::to_vec)));
            }
        }
    }
    out
}

fn latest_per_key(recs: &[Rec]) -> BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> {
    recs.iter()
        .map(|(o, k, v)| (k.clone(), (*o, v.clone())))
        .collect()
}

/// Writes `rounds` values of each of `keys` keys (one batch per record), then rolls.
fn fill(log: &PartitionLog, keys: usize, rounds: usize, clock: &ManualClock) -> Vec<Rec> {
    let mut written = Vec::new();
    for round in 0..rounds {
        for k in 0..keys {
            let (key, value) = (format!("key-{k}"), format!("value-{k}-{round}"));
            let o = put(log, &key, Some(&value), clock.now_ms());
            written.push((o, key.into_bytes(), Some(value.into_bytes())));
        }
    }
    written
}

/// Rolls the active segment (segment.ms elapsed) so everything written is cleanable.
fn roll(log: &PartitionLog, clock: &ManualClock) {
    let mut c = log.config();
    let old = c.segment_ms;
    c.segment_ms = 1;
    log.set_config(c.clone());
    clock.advance(1);
    log.enforce_retention().unwrap();
    c.segment_ms = old;
    log.set_config(c);
}

#[test]
fn repeated_keys_converge_to_the_latest_value_with_offsets_kept() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let log = open(dir.path(), compact_config(), &clock);
    let written = fill(&log, 7, 30, &clock);
    roll(&log, &clock);
    let before = (log.segment_count(), log.size_bytes(), log.log_end_offset());
    let stats = clean(&log).expect("a dirty compacted log is cleaned");
    assert_eq!(stats.keys_mapped, 7);
    assert_eq!(stats.records_removed, 7 * 29);
    let after = read_all(&log);
    assert_eq!(after.len(), 7, "one record per key: {after:?}");
    assert_eq!(latest_per_key(&after), latest_per_key(&written));
    for rec in &after {
        assert!(
            written.contains(rec),
            "{rec:?} is not what was written at that offset"
        );
    }
    assert!(log.segment_count() < before.0 && log.size_bytes() < before.1 / 10);
    assert_eq!(log.log_end_offset(), before.2, "the log end does not move");
    assert_eq!(log.log_start_offset(), 0, "the log start does not move");
    assert!(clean(&log).is_none(), "nothing dirty is left");
    // Retention by time does not apply to a compact-only log.
    clock.advance(10_000_000);
    log.enforce_retention().unwrap();
    assert_eq!(read_all(&log), after);
    // New writes are appended after the gaps and are cleaned on the next pass.
    put(&log, "key-3", Some("newest"), T0);
    roll(&log, &clock);
    clean(&log).unwrap();
    let again = read_all(&log);
    assert_eq!(again.len(), 7);
    assert_eq!(again.last().unwrap().2.as_deref(), Some(&b"newest"[..]));
    // The cleaned state survives a clean close and reopen, and an unclean one.
    log.close().unwrap();
    let log = open(dir.path(), compact_config(), &clock);
    assert_eq!(read_all(&log), again);
    drop(log);
    let log = open(dir.path(), compact_config(), &clock);
    assert_eq!(read_all(&log), again);
}

#[test]
fn tombstones_vanish_after_delete_retention() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let log = open(dir.path(), compact_config(), &clock);
    fill(&log, 3, 5, &clock);
    put(&log, "key-1", None, T0);
    roll(&log, &clock);
    clean(&log).unwrap();
    let recs = read_all(&log);
    let tomb = recs.iter().find(|r| r.1 == b"key-1").unwrap();
    assert_eq!(
        tomb.2, None,
        "the tombstone is kept, its older values are gone"
    );
    assert_eq!(recs.len(), 3);
    // The log's last batch is never cleaned (nothing would be left to fetch below the end).
    clock.advance(5_000);
    assert!(clean(&log).is_none());
    assert_eq!(read_all(&log), recs);
    let last = log.log_end_offset() - 1;
    assert!(log.read(last, 100, None).unwrap().slice.is_some());
    // Once it is not last, the clean that keeps it stamps its delete horizon...
    put(&log, "key-2", Some("after"), T0);
    roll(&log, &clock);
    clean(&log).unwrap();
    assert_eq!(read_all(&log).len(), 3);
    // ...and delete.retention.ms later it goes.
    clock.advance(999);
    assert!(clean(&log).is_none());
    assert_eq!(read_all(&log).len(), 3);
    clock.advance(1);
    clean(&log).expect("a passed delete horizon makes the log due");
    let recs = read_all(&log);
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert!(recs.iter().all(|r| r.1 != b"key-1" && r.2.is_some()));
}

#[test]
fn dirty_ratio_and_compaction_lags_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let config = LogConfig {
        min_cleanable_dirty_ratio: 0.5,
        min_compaction_lag_ms: 5_000,
        ..compact_config()
    };
    let log = open(dir.path(), config.clone(), &clock);
    fill(&log, 4, 20, &clock);
    roll(&log, &clock);
    assert!(
        clean(&log).is_none(),
        "records younger than min.compaction.lag.ms wait"
    );
    clock.advance(5_000);
    clean(&log).expect("old enough now");
    // A little new dirty data: below the ratio, nothing happens...
    clock.advance(10_000);
    let written = fill(&log, 1, 1, &clock);
    roll(&log, &clock);
    clock.advance(10_000);
    assert!(clean(&log).is_none());
    // ...until max.compaction.lag.ms forces a clean regardless of the ratio.
    log.set_config(LogConfig {
        max_compaction_lag_ms: 5_000,
        ..config
    });
    clean(&log).expect("max.compaction.lag.ms passed");
    let recs = read_all(&log);
    assert_eq!(recs.len(), 4);
    assert!(recs.contains(&written[0]));
}

#[test]
fn compressed_batches_and_missing_keys() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let log = open(dir.path(), compact_config(), &clock);
    for (i, codec) in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .cycle()
    .take(12)
    .enumerate()
    {
        let v = format!("v{i}");
        let b = keyed(
            &[("a", Some(&v)), ("b", Some(&v)), ("c", Some("c"))],
            T0,
            codec,
        );
        log.append(b).unwrap();
    }
    roll(&log, &clock);
    clean(&log).unwrap();
    let recs = read_all(&log);
    let values: Vec<_> = recs.iter().map(|r| (r.1.clone(), r.2.clone())).collect();
    assert_eq!(
        values,
        [("a", "v11"), ("b", "v11"), ("c", "c")]
            .map(|(k, v)| (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec())))
    );
    for codec in [Compression::None, Compression::Zstd] {
        let mut b = BatchBuilder::new(0);
        b.push(Some(b"k"), Some(b"v"), T0)
            .push(None, Some(b"v"), T0)
            .push(Some(b"k"), Some(b"v"), T0)
            .push(None, Some(b"v"), T0);
        let err = log.append(b.build_compressed(codec).unwrap()).unwrap_err();
        // Every keyless record is named, for the producer's per-record errors (KIP-467).
        assert!(
            matches!(
                &err,
                LogError::MissingKeysInCompactedTopic { record_indexes } if record_indexes == &[1, 3]
            ),
            "{err:?}"
        );
    }
}

#[test]
fn readers_and_appends_during_cleaning_see_a_valid_ordered_log() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let log = Arc::new(open(dir.path(), compact_config(), &clock));
    fill(&log, 5, 20, &clock);
    roll(&log, &clock);
    // A slice taken before the clean still reads the old bytes afterwards.
    let old = log.read(0, 1 << 20, None).unwrap().slice.unwrap();
    let old_bytes = old.read_to_bytes().unwrap();
    clean(&log).unwrap();
    assert_eq!(old.read_to_bytes().unwrap(), old_bytes);
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (log, done) = (Arc::clone(&log), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut passes = 0;
            while !done.load(Ordering::SeqCst) || passes < 3 {
                // Whatever the interleaving (checked in read_all: CRCs, order), every key
                // is there.
                assert_eq!(latest_per_key(&read_all(&log)).len(), 5);
                passes += 1;
            }
            passes
        })
    };
    // Cleans counted as they happen: the writer waits halfway for one, so that cleaning
    // overlaps appends however the threads are scheduled (it once finished first on CI).
    let cleaned = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (log, clock, cleaned) = (Arc::clone(&log), Arc::clone(&clock), Arc::clone(&cleaned));
        std::thread::spawn(move || {
            for i in 0..20 {
                fill(&log, 5, 2, &clock);
                roll(&log, &clock);
                if i == 9 {
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                    while cleaned.load(Ordering::SeqCst) == 0 {
                        assert!(std::time::Instant::now() < deadline, "no clean in 60 s");
                        std::thread::sleep(std::time::Duration::from_millis(1));
                    }
                }
            }
        })
    };
    while !writer.is_finished() {
        if clean(&log).is_some() {
            cleaned.fetch_add(1, Ordering::SeqCst);
        }
    }
    let cleans = cleaned.load(Ordering::SeqCst);
    writer.join().unwrap();
    clean(&log);
    done.store(true, Ordering::SeqCst);
    assert!(reader.join().unwrap() >= 3);
    assert!(cleans > 0);
    let recs = read_all(&log);
    assert_eq!(recs.len(), 5, "{recs:?}");
    assert!(recs.iter().all(|r| r.2.as_ref().unwrap().ends_with(b"-1")));
}

#[test]
fn a_crash_at_any_step_of_the_swap_recovers() {
    for step in [
        SwapStep::Written,
        SwapStep::IndexesStaged,
        SwapStep::Committed,
        SwapStep::OldDeleted,
        SwapStep::IndexesInPlace,
        SwapStep::Done,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let log = open(dir.path(), compact_config(), &clock);
        // A key written once keeps the first group non-empty, so its swap is a real one.
        put(&log, "anchor", Some("a"), T0);
        let written = fill(&log, 6, 15, &clock);
        put(&log, "key-0", None, T0);
        roll(&log, &clock);
        let before = read_all(&log);
        let options = CleanerOptions {
            stop_swap_after: Some(step),
            ..CleanerOptions::default()
        };
        log.clean(&options).unwrap().unwrap();
        assert!(matches!(log.read(0, 100, None), Err(LogError::Closed)));
        drop(log); // the crash: no close, no clean-shutdown marker
        let log = open(dir.path(), compact_config(), &clock);
        let after = read_all(&log);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap"))
            .collect();
        assert!(leftovers.is_empty(), "{step:?}: {leftovers:?}");
        if step < SwapStep::Committed {
            assert_eq!(
                after, before,
                "{step:?}: an uncommitted swap is rolled back"
            );
        } else {
            assert!(
                after.len() < before.len(),
                "{step:?}: a committed swap is finished"
            );
        }
        // No lost latest value, no duplicate, offsets as written.
        assert_eq!(latest_per_key(&after), latest_per_key(&before), "{step:?}");
        assert!(after.iter().all(|r| before.contains(r)));
        assert_eq!(log.log_end_offset() as usize, written.len() + 2);
        // The recovered log cleans to the same result as an uninterrupted one.
        clean(&log);
        let recs = read_all(&log);
        assert_eq!(recs.len(), 7, "{step:?}: {recs:?}");
        assert_eq!(latest_per_key(&recs), latest_per_key(&before));
    }
}

#[test]
fn aborted_data_goes_markers_and_the_aborted_index_survive_cleaning_and_crashes() {
    use strom_protocol::record_batch::control::{marker_batch, ControlRecordType};
    for stop in [
        None,
        Some(SwapStep::Committed),
        Some(SwapStep::IndexesInPlace),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(T0));
        let log = open(dir.path(), compact_config(), &clock);
        let txn = |pid: i64, value: &str| {
            let mut b = BatchBuilder::new(0);
            b.producer = Some((pid, 0, 0));
            b.attributes = 0x10;
            b.push(Some(b"a"), Some(value.as_bytes()), T0);
            b.build()
        };
        let steps: Vec<BytesMut> = vec![
            keyed(&[("a", Some("old"))], T0, Compression::None),
            txn(1, "aborted"),
            marker_batch(1, 0, ControlRecordType::Abort, 0, T0),
            txn(2, "committed"),
            marker_batch(2, 0, ControlRecordType::Commit, 0, T0),
            keyed(&[("a", Some("new"))], T0, Compression::None),
            keyed(&[("z", Some("last"))], T0, Compression::None),
        ];
        for batch in steps {
            log.append(batch).unwrap();
            roll(&log, &clock);
        }
        let aborted = log.aborted_transactions(0, i64::MAX);
        assert_eq!(aborted.len(), 1);
        let options = CleanerOptions {
            stop_swap_after: stop,
            ..CleanerOptions::default()
        };
        log.clean(&options).unwrap().unwrap();
        let log = if stop.is_some() {
            drop(log);
            open(dir.path(), compact_config(), &clock)
        } else {
            log
        };
        // "a"@0 and the committed "a"@3 are superseded by "a"@5, the aborted "a"@1 goes;
        // both markers stay, and so does the abort in the index.
        let offsets: Vec<i64> = read_all(&log).iter().map(|r| r.0).collect();
        assert_eq!(offsets, [2, 4, 5, 6], "{stop:?}");
        assert_eq!(log.aborted_transactions(0, i64::MAX), aborted, "{stop:?}");
        // And after an unclean reopen, from the merged `.txnindex` alone.
        drop(log);
        let log = open(dir.path(), compact_config(), &clock);
        assert_eq!(log.aborted_transactions(0, i64::MAX), aborted, "{stop:?}");
    }
}

#[test]
fn an_open_transaction_stops_the_cleaner_until_it_ends() {
    use strom_protocol::record_batch::control::{marker_batch, ControlRecordType};
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let log = open(dir.path(), compact_config(), &clock);
    let mut open_txn = BatchBuilder::new(0);
    open_txn.producer = Some((3, 0, 0));
    open_txn.attributes = 0x10;
    open_txn.push(Some(b"a"), Some(b"in-txn"), T0);
    for batch in [
        keyed(&[("a", Some("1"))], T0, Compression::None),
        open_txn.build(),
        keyed(&[("a", Some("2"))], T0, Compression::None),
        keyed(&[("b", Some("1"))], T0, Compression::None),
    ] {
        log.append(batch).unwrap();
        roll(&log, &clock);
    }
    clean(&log);
    let offsets = |log: &PartitionLog| read_all(log).iter().map(|r| r.0).collect::<Vec<_>>();
    assert_eq!(
        offsets(&log),
        [0, 1, 2, 3],
        "nothing at or after the open transaction"
    );
    log.append(marker_batch(3, 0, ControlRecordType::Commit, 0, T0))
        .unwrap();
    roll(&log, &clock);
    log.append(keyed(&[("z", Some("last"))], T0, Compression::None))
        .unwrap();
    roll(&log, &clock);
    clean(&log).unwrap();
    assert_eq!(offsets(&log), [2, 3, 4, 5]);
}

/// `records` records keyed "bomb" whose values are `value_len` zero bytes each: a few KiB
/// compressed, `records × value_len` once inflated.
fn bomb(codec: Compression, records: usize, value_len: usize) -> BytesMut {
    let zeros = vec![0u8; value_len];
    let mut b = BatchBuilder::new(0);
    for _ in 0..records {
        b.push(Some(b"bomb"), Some(&zeros), T0);
    }
    b.build_compressed(codec).unwrap()
}

#[test]
fn decompression_bombs_are_refused_on_append_and_kept_whole_by_the_cleaner() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let config = LogConfig {
        segment_bytes: 1 << 20,
        max_message_bytes: 100_000,
        ..compact_config()
    };
    // 64 × 100 000 is below the 16 MiB floor.
    let limit = config.max_decompressed_bytes();
    assert_eq!(limit, 16 << 20);
    let log = open(dir.path(), config.clone(), &clock);
    for codec in [Compression::Gzip, Compression::Zstd] {
        let b = bomb(codec, 20, 1 << 20);
        assert!(b.len() < 100_000, "{codec:?} bomb is {} bytes", b.len());
        let err = log.append(b).unwrap_err();
        assert!(
            matches!(
                err,
                LogError::InvalidRecord {
                    reason: InvalidRecordReason::DecompressedTooLarge { max }
                } if max == limit
            ),
            "{codec:?}: {err:?}"
        );
    }
    assert_eq!(log.log_end_offset(), 0, "a refused bomb writes nothing");
    // Below the limit a highly compressible batch is fine.
    log.append(bomb(Compression::Zstd, 4, 1 << 20)).unwrap();

    // A bomb stored while the topic was delete-only: the cleaner neither expands nor drops it.
    let dir = tempfile::tempdir().unwrap();
    let mut delete_only = config.clone();
    delete_only.cleanup_policy = strom_storage::CleanupPolicy::default();
    let log = open(dir.path(), delete_only, &clock);
    let stored = log
        .append(bomb(Compression::Zstd, 20, 1 << 20))
        .unwrap()
        .base_offset;
    let before = log
        .read(stored, 1 << 20, None)
        .unwrap()
        .slice
        .unwrap()
        .read_to_bytes()
        .unwrap();
    for round in 0..3 {
        put(&log, "k", Some(&format!("v{round}")), T0);
    }
    log.set_config(config);
    roll(&log, &clock);
    let stats = clean(&log).unwrap();
    assert_eq!(
        stats.records_removed, 2,
        "the older values of k go: {stats:?}"
    );
    let after = log
        .read(stored, 1 << 20, None)
        .unwrap()
        .slice
        .unwrap()
        .read_to_bytes()
        .unwrap();
    assert_eq!(
        after[..before.len()],
        before[..],
        "the bomb batch is kept whole"
    );
}
