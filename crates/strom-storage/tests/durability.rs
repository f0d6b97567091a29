//! When data becomes durable: rolls fsync nothing under the partition lock, `flush_rolled`
//! syncs rolled segments in the background and moves the recovery point (so an unclean open
//! scans only the tail), and in durable mode (`flush.messages=1`) consumers see only what was
//! fsynced (`visible_end_offset`), checked by a reader racing the appender.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use strom_protocol::record_batch::builder::BatchBuilder;
use strom_storage::{
    Fs, FsFile, LogConfig, ManualClock, OpenMode, PartitionLog, SimFs, StdFs, SystemClock,
};

fn batch(value_len: usize) -> BytesMut {
    let mut b = BatchBuilder::new(0);
    b.push(Some(b"k"), Some(&vec![7u8; value_len]), 1_000);
    b.build()
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 2_000,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn open_sim(fs: &Arc<SimFs>, config: LogConfig) -> PartitionLog {
    let fs: Arc<dyn Fs> = fs.clone();
    let clock = Arc::new(ManualClock::new(1_000));
    PartitionLog::open_with_fs(PathBuf::from("/data/t-0"), config, clock, fs).unwrap()
}

#[test]
fn rolls_fsync_nothing_and_flush_rolled_moves_the_recovery_point() {
    let fs = Arc::new(SimFs::new(1));
    let log = open_sim(&fs, small_segments());
    let before = fs.sync_counts();
    for _ in 0..40 {
        log.append(batch(300)).unwrap();
    }
    let segments = log.segment_count();
    assert!(segments >= 6, "{segments} segments");
    assert_eq!(
        fs.sync_counts(),
        before,
        "appends and rolls fsync nothing (Kafka's defaults: flush.messages/ms never)"
    );

    log.flush_rolled().unwrap();
    let (file_syncs, dir_syncs) = fs.sync_counts();
    assert!(file_syncs > before.0 && dir_syncs > before.1);
    assert!(log.flushed_offset() > 0 && log.flushed_offset() < log.log_end_offset());
    // Cheap when nothing rolled since: no fsync at all.
    let synced = fs.sync_counts();
    log.flush_rolled().unwrap();
    assert_eq!(fs.sync_counts(), synced);

    // An unclean restart (no close, no clean-shutdown marker) scans only the active segment.
    let end = log.log_end_offset();
    drop(log);
    let log = open_sim(&fs, small_segments());
    let stats = log.recovery_stats().clone();
    assert!(!stats.clean_shutdown);
    assert_eq!(stats.segments_scanned, 1, "{stats:?}");
    assert_eq!(log.segment_count(), segments);
    assert_eq!(log.log_end_offset(), end);

    // Without flush_rolled everything above the old recovery point is scanned again.
    let fs = Arc::new(SimFs::new(2));
    let log = open_sim(&fs, small_segments());
    for _ in 0..40 {
        log.append(batch(300)).unwrap();
    }
    let segments = log.segment_count();
    drop(log);
    let log = open_sim(&fs, small_segments());
    assert_eq!(log.recovery_stats().segments_scanned, segments);
}

#[test]
fn flush_rolled_on_a_real_disk_then_a_crash_keeps_the_rolled_data() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        PartitionLog::open(
            dir.path().join("t-0"),
            small_segments(),
            Arc::new(SystemClock),
        )
        .unwrap()
    };
    let log = open();
    for _ in 0..20 {
        log.append(batch(300)).unwrap();
    }
    log.flush_rolled().unwrap();
    let (segments, end) = (log.segment_count(), log.log_end_offset());
    drop(log);
    let log = open();
    assert_eq!(log.recovery_stats().segments_scanned, 1);
    assert_eq!((log.segment_count(), log.log_end_offset()), (segments, end));
}

/// A real disk whose `.log` fsyncs are slow and counted once they return.
#[derive(Debug, Clone)]
struct CountingFs {
    synced: Arc<AtomicU64>,
}

struct CountingFile {
    inner: Arc<dyn FsFile>,
    path: PathBuf,
    synced: Arc<AtomicU64>,
}

impl fmt::Debug for CountingFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CountingFile")
            .field("path", &self.path)
            .finish()
    }
}

impl CountingFile {
    fn counted(&self, r: io::Result<()>) -> io::Result<()> {
        if self.path.extension().is_some_and(|e| e == "log") {
            std::thread::sleep(Duration::from_micros(300));
            self.synced.fetch_add(1, Ordering::SeqCst);
        }
        r
    }
}

impl FsFile for CountingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.inner.write_at(buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_all(&self) -> io::Result<()> {
        let r = self.inner.sync_all();
        self.counted(r)
    }
    fn sync_data(&self) -> io::Result<()> {
        let r = self.inner.sync_data();
        self.counted(r)
    }
    fn modified_ms(&self) -> io::Result<i64> {
        self.inner.modified_ms()
    }
}

impl Fs for CountingFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FsFile>> {
        Ok(Arc::new(CountingFile {
            inner: StdFs.open(path, mode)?,
            path: path.to_path_buf(),
            synced: Arc::clone(&self.synced),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        StdFs.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        StdFs.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        StdFs.remove_dir_all(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        StdFs.create_dir_all(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        StdFs.read_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        StdFs.sync_dir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        StdFs.exists(path)
    }
}

#[test]
fn durable_mode_shows_readers_only_fsynced_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let synced = Arc::new(AtomicU64::new(0));
    let fs = CountingFs {
        synced: Arc::clone(&synced),
    };
    let config = LogConfig {
        flush_messages: 1,
        ..LogConfig::default()
    };
    let log = PartitionLog::open_with_fs(
        dir.path().join("t-0"),
        config,
        Arc::new(SystemClock),
        Arc::new(fs),
    )
    .unwrap();
    synced.store(0, Ordering::SeqCst);
    const APPENDS: i64 = 300;
    let done = AtomicBool::new(false);
    let observed = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let (mut last, mut observations, mut behind) = (0, 0u64, 0u64);
            while !done.load(Ordering::SeqCst) {
                let visible = log.visible_end_offset();
                let end = log.log_end_offset();
                // One record per append, one .log fsync per append (no rolls): the fsyncs
                // that had returned when `visible` was read cover offsets below it.
                let fsyncs = synced.load(Ordering::SeqCst) as i64;
                assert!(
                    visible <= fsyncs,
                    "offset {visible} visible after {fsyncs} fsyncs"
                );
                assert!(visible >= last, "the visible end went back");
                assert!(visible <= end);
                behind += u64::from(visible < end);
                if visible > 0 {
                    let r = log.read(visible - 1, 1 << 20, Some(visible)).unwrap();
                    assert!(r.slice.is_some(), "a visible offset is readable");
                }
                last = visible;
                observations += 1;
            }
            (observations, behind)
        });
        for i in 0..APPENDS {
            let info = log.append(batch(100)).unwrap();
            assert_eq!(info.base_offset, i);
            assert!(log.visible_end_offset() > i, "acknowledged means visible");
        }
        done.store(true, Ordering::SeqCst);
        reader.join().unwrap()
    });
    assert_eq!(log.visible_end_offset(), APPENDS);
    assert!(observed.0 > 10, "the reader ran: {observed:?}");
    // Without durable mode the log end is visible at once.
    log.set_config(LogConfig::default());
    log.append(batch(10)).unwrap();
    assert_eq!(log.visible_end_offset(), APPENDS + 1);
    assert_eq!(log.flushed_offset(), APPENDS, "not flushed, yet visible");
}
