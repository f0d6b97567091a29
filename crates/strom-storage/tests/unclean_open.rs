//! Opening a log after a crash (no clean-shutdown marker) with the least disk work: an empty
//! active segment is opened without an fsync, intact active index files are kept rather than
//! deleted and rebuilt, and a non-empty active segment is still fsynced before the open
//! reports its records flushed (durable mode shows consumers only flushed offsets).

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use strom_protocol::record_batch::builder::BatchBuilder;
use strom_storage::{Fs, HandleCache, LogConfig, ManualClock, PartitionLog, SimFs, SystemClock};

/// One record whose key is `offset` (its offset once appended in order).
fn batch_for(offset: i64) -> BytesMut {
    let mut b = BatchBuilder::new(0);
    b.push(
        Some(offset.to_string().as_bytes()),
        Some(&[7u8; 150][..]),
        1_000 + offset,
    );
    b.build()
}

fn config(flush_messages: u64) -> LogConfig {
    LogConfig {
        segment_bytes: 4_000,
        index_interval_bytes: 256,
        retention_ms: -1,
        flush_messages,
        ..LogConfig::default()
    }
}

fn open_sim(fs: &Arc<SimFs>, config: LogConfig) -> PartitionLog {
    let fs: Arc<dyn Fs> = fs.clone();
    let clock = Arc::new(ManualClock::new(1_000));
    PartitionLog::open_with_fs(PathBuf::from("/data/t-0"), config, clock, fs).unwrap()
}

/// Every offset from the log start to the end, each record keyed by its offset.
fn read_all(log: &PartitionLog) -> Vec<i64> {
    common::keyed_batches(log)
        .into_iter()
        .map(|(base, _)| base)
        .collect()
}

#[test]
fn unflushed_active_segment_is_recovered_whole_and_synced_before_it_counts_as_flushed() {
    for flush_messages in [u64::MAX, 1] {
        let fs = Arc::new(SimFs::new(7));
        let log = open_sim(&fs, config(u64::MAX));
        for o in 0..40 {
            log.append(batch_for(o)).unwrap();
        }
        // Rolled segments synced, the active one's records only in the page cache.
        log.flush_rolled().unwrap();
        let end = log.log_end_offset();
        assert_eq!(end, 40);
        assert!(log.flushed_offset() < end, "{}", log.flushed_offset());
        assert!(log.segment_count() > 1);
        // kill -9: the process is gone, the page cache is not.
        drop(log);
        let log = open_sim(&fs, config(flush_messages));
        assert!(!log.recovery_stats().clean_shutdown);
        assert_eq!(log.recovery_stats().segments_scanned, 1);
        assert_eq!(read_all(&log), (0..40).collect::<Vec<_>>());
        assert_eq!(log.flushed_offset(), end);
        assert_eq!(log.visible_end_offset(), end);
        // The open said everything is flushed: a power loss now must lose nothing.
        drop(log);
        fs.crash();
        let log = open_sim(&fs, config(flush_messages));
        assert_eq!(read_all(&log), (0..40).collect::<Vec<_>>());
        assert_eq!(log.flushed_offset(), end);
        // Appends continue at the right offsets.
        assert_eq!(log.append(batch_for(40)).unwrap().base_offset, 40);
    }
}

#[test]
fn empty_active_segment_opens_without_any_fsync_after_a_crash() {
    let fs = Arc::new(SimFs::new(8));
    let log = open_sim(&fs, config(u64::MAX));
    for o in 0..30 {
        log.append(batch_for(o)).unwrap();
    }
    // Roll by segment.ms to an empty active segment; the rolled one is synced in the
    // background as usual.
    log.set_config(LogConfig {
        segment_ms: 0,
        ..config(u64::MAX)
    });
    log.enforce_retention().unwrap();
    log.flush_rolled().unwrap();
    assert_eq!(log.flushed_offset(), 30);
    let segments = log.segment_count();
    // A fresh log and a log whose active segment holds nothing: both open after a kill -9
    // without an fsync.
    drop(log);
    let log = open_sim(&fs, config(u64::MAX));
    assert_eq!(log.log_end_offset(), 30);
    assert_eq!(log.segment_count(), segments);
    drop(log);
    let fresh = Arc::new(SimFs::new(9));
    drop(open_sim(&fresh, config(u64::MAX)));
    for fs in [&fs, &fresh] {
        let before = fs.sync_counts();
        let log = open_sim(fs, config(u64::MAX));
        assert!(!log.recovery_stats().clean_shutdown);
        assert_eq!(
            fs.sync_counts(),
            before,
            "an unclean open of an idle log fsyncs nothing"
        );
        assert_eq!(log.flushed_offset(), log.log_end_offset());
        drop(log);
    }
    // And the data of the non-empty log is all there and durable.
    fs.crash();
    let log = open_sim(&fs, config(u64::MAX));
    assert_eq!(read_all(&log), (0..30).collect::<Vec<_>>());
}

fn nlink(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().nlink()
}

#[test]
fn intact_active_index_files_are_kept_and_extended_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("t-0");
    let open =
        || PartitionLog::open(log_dir.clone(), config(u64::MAX), Arc::new(SystemClock)).unwrap();
    let log = open();
    for o in 0..10 {
        log.append(batch_for(o)).unwrap();
    }
    // The active segment's index entries live in memory until it is sealed; an unclean
    // open writes the entries its scan rebuilt. Later appends add entries only in memory.
    drop(log); // kill -9
    let log = open();
    for o in 10..14 {
        log.append(batch_for(o)).unwrap();
    }
    let index = log_dir.join(format!("{:020}.index", 0));
    let time_index = log_dir.join(format!("{:020}.timeindex", 0));
    let flushed_entries = std::fs::metadata(&index).unwrap().len();
    assert!(flushed_entries > 0);
    // A second name for each file: if recovery deleted and recreated a file, its old inode
    // keeps only this link.
    let links = dir.path().join("links");
    std::fs::create_dir(&links).unwrap();
    std::fs::hard_link(&index, links.join("index")).unwrap();
    std::fs::hard_link(&time_index, links.join("timeindex")).unwrap();
    drop(log); // kill -9
    let log = open();
    assert!(!log.recovery_stats().clean_shutdown);
    assert_eq!(read_all(&log), (0..14).collect::<Vec<_>>());
    assert_eq!(nlink(&index), 2, "the intact offset index was kept");
    assert_eq!(nlink(&time_index), 2, "the intact time index was kept");
    // The entries the crash lost were appended to the kept file: it matches a full rebuild.
    drop(log);
    std::fs::remove_file(&index).unwrap();
    std::fs::remove_file(&time_index).unwrap();
    let kept = (
        std::fs::read(links.join("index")).unwrap(),
        std::fs::read(links.join("timeindex")).unwrap(),
    );
    assert!(kept.0.len() as u64 > flushed_entries, "entries appended");
    let log = open();
    assert_eq!(read_all(&log), (0..14).collect::<Vec<_>>());
    assert_eq!(
        (
            std::fs::read(&index).unwrap(),
            std::fs::read(&time_index).unwrap()
        ),
        kept
    );
    drop(log);

    // A damaged index (an entry pointing past the data) is replaced, not kept.
    std::fs::hard_link(&index, links.join("index2")).unwrap();
    let mut bytes = std::fs::read(&index).unwrap();
    bytes.extend_from_slice(&[0, 0, 0, 99, 0, 1, 0, 0]);
    std::fs::write(&index, &bytes).unwrap();
    let log = open();
    assert_eq!(read_all(&log), (0..14).collect::<Vec<_>>());
    assert_eq!(nlink(&index), 1, "a damaged index is rebuilt as a new file");
    assert_eq!(std::fs::read(&index).unwrap(), kept.0);
}

fn open_in(fs: &Arc<SimFs>, dir_clean: bool) -> PartitionLog {
    let sim: Arc<dyn Fs> = fs.clone();
    PartitionLog::open_in(
        PathBuf::from("/data/t-0"),
        config(u64::MAX),
        Arc::new(ManualClock::new(1_000)),
        sim,
        HandleCache::new(64),
        dir_clean,
    )
    .unwrap()
}

#[test]
fn a_close_for_the_log_dir_marker_leaves_the_active_segment_to_the_callers_sync() {
    let fs = Arc::new(SimFs::new(11));
    let log = open_in(&fs, false);
    for o in 0..40 {
        log.append(batch_for(o)).unwrap();
    }
    log.flush().unwrap();
    log.close_for_log_dir_marker().unwrap();
    // The caller synced the file system and marked the log dir clean; an idle log then
    // closes again without a single fsync (the stand-alone close still syncs and marks).
    let log = open_in(&fs, true);
    assert!(log.recovery_stats().clean_shutdown);
    let before = fs.sync_counts();
    log.close_for_log_dir_marker().unwrap();
    assert_eq!(
        fs.sync_counts(),
        before,
        "an idle log closes without an fsync"
    );
    let log = open_in(&fs, true);
    let before = fs.sync_counts();
    log.close().unwrap();
    assert!(fs.sync_counts().0 > before.0 && fs.sync_counts().1 > before.1);

    // Records appended and rolls not synced yet: the close syncs the rolled segments before
    // moving the recovery point, so a power loss before the caller's sync (no marker
    // written) loses at most the active segment's unflushed tail.
    let log = open_in(&fs, false);
    for o in 40..80 {
        log.append(batch_for(o)).unwrap();
    }
    let segments = log.segment_count();
    assert!(segments > 3);
    let active_base = fs
        .read_dir(Path::new("/data/t-0"))
        .unwrap()
        .iter()
        .filter_map(|n| n.strip_suffix(".log")?.parse::<i64>().ok())
        .max()
        .unwrap();
    assert!(active_base > 40, "{active_base}");
    log.close_for_log_dir_marker().unwrap();
    fs.crash();
    let log = open_in(&fs, false);
    assert!(!log.recovery_stats().clean_shutdown);
    assert_eq!(
        log.segment_count(),
        segments,
        "every rolled segment survived"
    );
    let seen = read_all(&log);
    assert!(seen.len() as i64 >= active_base, "{} records", seen.len());
    assert_eq!(seen, (0..seen.len() as i64).collect::<Vec<_>>());
    drop(log);

    // Without a crash the same close, synced by the caller, opens clean with everything.
    let fs = Arc::new(SimFs::new(12));
    let log = open_in(&fs, false);
    for o in 0..50 {
        log.append(batch_for(o)).unwrap();
    }
    log.close_for_log_dir_marker().unwrap();
    let log = open_in(&fs, true);
    assert_eq!(read_all(&log), (0..50).collect::<Vec<_>>());
}
