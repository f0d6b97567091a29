//! Crash tests. A child process (this test binary re-executed with `STROM_CRASH_DIR` set) appends
//! and flushes, printing each flushed offset; the parent SIGKILLs it at random points, reopens the
//! log and checks that every acknowledged batch is there and intact, nothing torn is served, and
//! appends work again. Plus hand-made torn/corrupt tails and damaged indexes.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use strom_protocol::record_batch::builder::build_batch;
use strom_protocol::record_batch::{validate_batch, Validation};
use strom_storage::{LogConfig, PartitionLog, SystemClock};

const DIR_ENV: &str = "STROM_CRASH_DIR";
const MODE_ENV: &str = "STROM_CRASH_MODE";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 << 10,
        index_interval_bytes: 1024,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

/// A batch whose single record's key is its own offset, so content can be checked after a crash.
fn batch_for(offset: i64, value_len: usize) -> bytes::BytesMut {
    let key = offset.to_string();
    let value = vec![(offset % 251) as u8; value_len];
    build_batch(0, &[(Some(key.as_bytes()), Some(&value), offset)], None)
}

/// The child side. Does nothing unless the parent set `STROM_CRASH_DIR`.
#[test]
fn crash_child_process_entry() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return;
    };
    let durable = std::env::var(MODE_ENV).as_deref() == Ok("durable");
    let mut config = config();
    if durable {
        config.flush_messages = 1;
    }
    let log = PartitionLog::open(dir.into(), config, Arc::new(SystemClock)).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(log.log_end_offset() as u64);
    loop {
        let offset = log.log_end_offset();
        let info = log
            .append(batch_for(offset, rng.random_range(0..20_000)))
            .unwrap();
        assert_eq!(info.base_offset, offset);
        if !durable && rng.random_range(0..4) == 0 {
            log.flush().unwrap();
        }
        // In durable mode append fsynced already; otherwise only report what flush covered.
        if durable || rng.random_range(0..4) == 0 {
            log.flush().unwrap();
            println!("acked {}", info.last_offset);
        }
    }
}

/// Checks the whole log: contiguous, CRC-valid batches whose key is their offset.
fn verify_log(log: &PartitionLog) {
    let mut offset = log.log_start_offset();
    for (base, last) in common::keyed_batches(log) {
        assert_eq!(base, offset, "offsets must be contiguous");
        offset = last + 1;
    }
}

fn run_child_and_kill(
    dir: &Path,
    durable: bool,
    acks_before_kill: usize,
    extra_sleep_ms: u64,
) -> Option<i64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "crash_child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_ENV, dir)
        .env(MODE_ENV, if durable { "durable" } else { "flush" })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut acked = None;
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(o) = line.strip_prefix("acked ") {
            acked = Some(o.trim().parse::<i64>().unwrap());
            if acked.unwrap() as usize >= acks_before_kill {
                break;
            }
        }
    }
    std::thread::sleep(Duration::from_millis(extra_sleep_ms));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    acked
}

#[test]
fn sigkill_during_appends_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut acked_total = -1;
    for round in 0..8 {
        let durable = round % 2 == 0;
        let target = (acked_total + 1) as usize + rng.random_range(5..120);
        let acked = run_child_and_kill(dir.path(), durable, target, rng.random_range(0..5));
        let acked = acked.expect("the child acknowledged nothing: it died early");
        assert!(
            acked as usize >= target,
            "the child stopped at {acked} before {target}"
        );
        acked_total = acked;
        let log =
            PartitionLog::open(dir.path().to_path_buf(), config(), Arc::new(SystemClock)).unwrap();
        assert!(
            log.log_end_offset() > acked_total,
            "round {round}: log end {} but offset {acked_total} was acknowledged",
            log.log_end_offset()
        );
        verify_log(&log);
        let next = log.log_end_offset();
        assert_eq!(log.append(batch_for(next, 10)).unwrap().base_offset, next);
        log.flush().unwrap();
        acked_total = next;
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() > 3,
        "the child should have rolled segments"
    );
}

fn write_batches(dir: &Path, n: i64) -> PartitionLog {
    let log = PartitionLog::open(dir.to_path_buf(), config(), Arc::new(SystemClock)).unwrap();
    for o in 0..n {
        log.append(batch_for(o, 300)).unwrap();
    }
    log
}

fn segment0(dir: &Path, ext: &str) -> std::path::PathBuf {
    dir.join(format!("00000000000000000000.{ext}"))
}

#[test]
fn torn_tail_is_cut_at_the_last_valid_batch() {
    let dir = tempfile::tempdir().unwrap();
    drop(write_batches(dir.path(), 10)); // no close: unclean
    let path = segment0(dir.path(), "log");
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - 100).unwrap(); // mid last batch
    let log =
        PartitionLog::open(dir.path().to_path_buf(), config(), Arc::new(SystemClock)).unwrap();
    assert_eq!(log.log_end_offset(), 9);
    assert!(std::fs::metadata(&path).unwrap().len() < len - 100);
    verify_log(&log);
    assert_eq!(log.append(batch_for(9, 5)).unwrap().base_offset, 9);
    verify_log(&log);
}

#[test]
fn flipped_bytes_drop_the_bad_batch_and_everything_after() {
    for (victim, expected_end) in [(9i64, 9i64), (4, 4)] {
        let dir = tempfile::tempdir().unwrap();
        let log = write_batches(dir.path(), 10);
        let slice = log.read(victim, 1, None).unwrap().slice.unwrap();
        drop(log);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(segment0(dir.path(), "log"))
            .unwrap();
        let at = slice.position + slice.len as u64 - 7;
        let mut b = [0u8; 1];
        file.read_exact_at(&mut b, at).unwrap();
        file.write_all_at(&[b[0] ^ 0x5a], at).unwrap();
        let log =
            PartitionLog::open(dir.path().to_path_buf(), config(), Arc::new(SystemClock)).unwrap();
        assert_eq!(log.log_end_offset(), expected_end, "victim {victim}");
        verify_log(&log);
        assert_eq!(
            log.append(batch_for(expected_end, 5)).unwrap().base_offset,
            expected_end
        );
    }
}

#[test]
fn rolled_but_unflushed_segments_are_scanned_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_batches(dir.path(), 2_000); // rolls; never flushed
    assert!(log.segment_count() > 2);
    drop(log);
    // Damage the middle of the first (closed) segment, as a power loss could.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment0(dir.path(), "log"))
        .unwrap();
    let at = file.metadata().unwrap().len() / 2;
    file.write_all_at(&[0xde, 0xad, 0xbe, 0xef], at).unwrap();
    let log =
        PartitionLog::open(dir.path().to_path_buf(), config(), Arc::new(SystemClock)).unwrap();
    assert!(log.log_end_offset() < 2_000 && log.log_end_offset() > 0);
    assert_eq!(
        log.segment_count(),
        1,
        "segments after the damage are unreachable"
    );
    verify_log(&log);
    let end = log.log_end_offset();
    assert_eq!(log.append(batch_for(end, 5)).unwrap().base_offset, end);
}

#[test]
fn damaged_or_missing_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let log = write_batches(dir.path(), 2_000); // several segments
    assert!(log.segment_count() > 2);
    log.close().unwrap();
    std::fs::write(segment0(dir.path(), "index"), [1u8; 13]).unwrap(); // not a multiple of 8
    let mut t = std::fs::read(segment0(dir.path(), "timeindex")).unwrap();
    t.reverse(); // entries no longer increasing
    std::fs::write(segment0(dir.path(), "timeindex"), t).unwrap();
    let second = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "index"))
        .max()
        .unwrap();
    std::fs::remove_file(second).unwrap(); // the active segment's index
    let log =
        PartitionLog::open(dir.path().to_path_buf(), config(), Arc::new(SystemClock)).unwrap();
    assert_eq!(log.log_end_offset(), 2_000);
    verify_log(&log);
    for o in [0i64, 1, 517, 1_999] {
        let bytes = log
            .read(o, 1, None)
            .unwrap()
            .slice
            .unwrap()
            .read_to_bytes()
            .unwrap();
        assert_eq!(
            validate_batch(&bytes, Validation::Stored)
                .unwrap()
                .base_offset(),
            o
        );
    }
    assert_eq!(
        log.offset_for_timestamp(1_500).unwrap().unwrap().offset,
        1_500
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 64, ..Default::default() })]

    /// Whatever follows the valid batches (and whatever the index files hold), opening the log
    /// neither panics nor serves the garbage, and the log takes appends afterwards.
    #[test]
    fn recovery_survives_arbitrary_bytes(
        valid in 0i64..6,
        garbage in proptest::collection::vec(proptest::num::u8::ANY, 0..400),
        index_garbage in proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..64)),
        clean in proptest::bool::ANY,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let log = write_batches(dir.path(), valid);
        if clean {
            log.close().unwrap();
        }
        drop(log);
        let path = segment0(dir.path(), "log");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(&garbage);
        std::fs::write(&path, bytes).unwrap();
        if let Some(g) = index_garbage {
            std::fs::write(segment0(dir.path(), "index"), &g).unwrap();
            std::fs::write(segment0(dir.path(), "timeindex"), &g).unwrap();
        }
        let log = PartitionLog::open(dir.path().to_path_buf(), config(), Arc::new(SystemClock)).unwrap();
        proptest::prop_assert_eq!(log.log_end_offset(), valid);
        verify_log(&log);
        proptest::prop_assert_eq!(log.append(batch_for(valid, 1)).unwrap().base_offset, valid);
    }
}
