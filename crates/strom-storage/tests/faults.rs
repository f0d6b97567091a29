//! Disk faults: a failed write (ENOSPC, EIO, short write) is rolled back and the log goes on;
//! a failed fsync or a failed rollback takes the log offline until it is reopened; a failed
//! roll (EMFILE, ENOSPC) leaves the log usable. On the simulated disk with injected faults,
//! and on a real 2 MiB tmpfs filled until ENOSPC.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bytes::BytesMut;
use strom_protocol::record_batch::builder::BatchBuilder;
use strom_protocol::record_batch::{set_base_offset, BatchSplitter};
use strom_storage::{
    Fault, FaultOp, Fs, LogConfig, LogError, ManualClock, PartitionLog, SimFs, SystemClock,
};

const ENOSPC: i32 = 28;
const EIO: i32 = 5;
const EMFILE: i32 = 24;

fn batch(tag: u8, value_len: usize) -> BytesMut {
    let mut b = BatchBuilder::new(0);
    b.push(Some(&[tag]), Some(&vec![tag; value_len]), 1_000);
    b.build()
}

/// Appends and remembers the stored bytes of what was acknowledged.
struct Acked {
    batches: Vec<Vec<u8>>,
}

impl Acked {
    fn append(&mut self, log: &PartitionLog, b: BytesMut) -> Result<(), LogError> {
        let info = log.append(b.clone())?;
        let mut stored = b.to_vec();
        set_base_offset(&mut stored, info.base_offset).unwrap();
        self.batches.push(stored);
        Ok(())
    }

    /// The whole log, read back, is exactly the acknowledged batches.
    fn check(&self, log: &PartitionLog) {
        let mut got = Vec::new();
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
                got.push(b.unwrap().to_vec());
            }
            offset = log.log_start_offset() + got.len() as i64;
        }
        assert_eq!(got.len(), self.batches.len(), "batch count");
        assert!(
            got == self.batches,
            "acknowledged batches differ from the log"
        );
        let bytes: usize = self.batches.iter().map(Vec::len).sum();
        assert_eq!(
            log.size_bytes(),
            bytes as u64,
            "no torn bytes left in a segment"
        );
    }
}

fn errno(e: &LogError) -> Option<i32> {
    match e {
        LogError::Io { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

const DIR: &str = "/data/t-0";

/// Bytes in the `.log` files on the simulated disk (committed or not).
fn log_file_bytes(fs: &SimFs) -> u64 {
    fs.read_dir(Path::new(DIR))
        .unwrap()
        .iter()
        .filter(|n| n.ends_with(".log"))
        .map(|n| fs.read(&Path::new(DIR).join(n)).unwrap().len() as u64)
        .sum()
}

fn open_sim(fs: &Arc<SimFs>, config: &LogConfig) -> PartitionLog {
    let fs: Arc<dyn Fs> = fs.clone();
    let clock = Arc::new(ManualClock::new(1_000));
    PartitionLog::open_with_fs(PathBuf::from(DIR), config.clone(), clock, fs).unwrap()
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4_000,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

#[test]
fn a_failed_write_is_rolled_back_and_the_log_goes_on() {
    let fs = Arc::new(SimFs::new(1));
    let log = open_sim(&fs, &config());
    let mut acked = Acked { batches: vec![] };
    for i in 0..5 {
        acked.append(&log, batch(i, 200)).unwrap();
    }
    for code in [ENOSPC, EIO] {
        // ENOSPC lands half the batch first (a short write), EIO nothing.
        fs.inject(Fault::new(FaultOp::Write, code).path(".log").times(1));
        let end = log.log_end_offset();
        let err = acked.append(&log, batch(9, 500)).unwrap_err();
        assert_eq!(errno(&err), Some(code), "{err:?}");
        assert!(!log.is_offline());
        assert_eq!(log.log_end_offset(), end);
        acked.check(&log);
        assert_eq!(
            log_file_bytes(&fs),
            log.size_bytes(),
            "the torn write was cut"
        );
        acked.append(&log, batch(10, 200)).unwrap();
    }
    // A full disk: writes stop part-way; freeing space lets the same append through.
    fs.set_capacity(Some(fs.used_bytes() + 100));
    let err = acked.append(&log, batch(11, 500)).unwrap_err();
    assert_eq!(errno(&err), Some(ENOSPC));
    acked.check(&log);
    assert_eq!(
        log_file_bytes(&fs),
        log.size_bytes(),
        "the short write was cut"
    );
    fs.set_capacity(None);
    acked.append(&log, batch(11, 500)).unwrap();
    log.flush().unwrap();
    // What the log acknowledged survives a crash too.
    fs.crash();
    let log = open_sim(&fs, &config());
    acked.check(&log);
}

#[test]
fn a_failed_fsync_takes_the_log_offline_until_reopened() {
    let fs = Arc::new(SimFs::new(2));
    let durable = LogConfig {
        flush_messages: 1,
        ..config()
    };
    let log = open_sim(&fs, &durable);
    let mut acked = Acked { batches: vec![] };
    acked.append(&log, batch(1, 100)).unwrap();
    fs.inject(Fault::new(FaultOp::Sync, EIO).path(".log").times(1));
    let err = log.append(batch(2, 100)).unwrap_err();
    assert!(matches!(err, LogError::Offline { op: "fsync" }), "{err:?}");
    assert!(log.is_offline());
    assert_eq!(
        log.visible_end_offset(),
        1,
        "the unsynced batch never became visible"
    );
    // Every operation refuses until a reopen.
    let offline = |r: Result<(), LogError>| matches!(r, Err(LogError::Offline { .. }));
    assert!(offline(log.append(batch(3, 10)).map(|_| ())));
    assert!(offline(log.read(0, 100, None).map(|_| ())));
    assert!(offline(log.flush()));
    assert!(offline(log.flush_rolled()));
    assert!(offline(log.close()));
    drop(log);
    // Recovery decides what the failed fsync left: the acknowledged batch at least.
    fs.crash();
    let log = open_sim(&fs, &durable);
    assert!(!log.is_offline());
    assert!(log.log_end_offset() >= 1);
    let mut acked = Acked {
        batches: acked.batches[..1].to_vec(),
    };
    log.truncate_to(1).unwrap();
    acked.check(&log);
    acked.append(&log, batch(4, 10)).unwrap();
    acked.check(&log);
}

#[test]
fn a_failed_rollback_takes_the_log_offline() {
    let fs = Arc::new(SimFs::new(3));
    let log = open_sim(&fs, &config());
    log.append(batch(1, 100)).unwrap();
    fs.inject(Fault::new(FaultOp::Write, ENOSPC).path(".log").times(1));
    fs.inject(Fault::new(FaultOp::SetLen, EIO).path(".log").times(1));
    let err = log.append(batch(2, 100)).unwrap_err();
    assert!(
        matches!(err, LogError::Offline { op } if op.contains("roll back")),
        "{err:?}"
    );
    assert!(log.is_offline());
    assert!(matches!(
        log.read(0, 100, None),
        Err(LogError::Offline { .. })
    ));
    // Reopening cuts the torn half-batch: recovery is the judge.
    drop(log);
    let log = open_sim(&fs, &config());
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(log.recovery_stats().segments_truncated, 1);
    log.append(batch(3, 100)).unwrap();
}

#[test]
fn a_failed_roll_leaves_the_log_usable() {
    let dir = Path::new(DIR);
    // Each of the three files a roll creates, failing in turn.
    for (op, path, code) in [
        (FaultOp::Create, ".log", EMFILE),
        (FaultOp::Create, ".index", EMFILE),
        (FaultOp::Create, ".timeindex", ENOSPC),
    ] {
        let fs = Arc::new(SimFs::new(4));
        let log = open_sim(&fs, &config());
        let mut acked = Acked { batches: vec![] };
        while log.segment_count() == 1 && log.size_bytes() < 3_500 {
            acked.append(&log, batch(1, 400)).unwrap();
        }
        let end = log.log_end_offset();
        fs.inject(Fault::new(op, code).path(path).times(1));
        let err = acked.append(&log, batch(2, 400)).unwrap_err();
        assert_eq!(errno(&err), Some(code), "{path}: {err:?}");
        assert!(!log.is_offline(), "{path}");
        assert_eq!(log.segment_count(), 1);
        for ext in ["log", "index", "timeindex"] {
            let leftover = dir.join(format!("{end:020}.{ext}"));
            assert!(!fs.exists(&leftover), "{path}: {} left", leftover.display());
        }
        acked.check(&log);
        // Once files can be created again, the append rolls.
        acked.append(&log, batch(3, 400)).unwrap();
        assert_eq!(log.segment_count(), 2);
        acked.check(&log);
        drop(log);
        let log = open_sim(&fs, &config());
        acked.check(&log);
    }
    // A roll whose half-created files cannot be removed: the log stops rather than risk a
    // stray segment hiding later appends after a restart.
    let fs = Arc::new(SimFs::new(5));
    let log = open_sim(&fs, &config());
    while log.segment_count() == 1 && log.size_bytes() < 3_500 {
        log.append(batch(1, 400)).unwrap();
    }
    fs.inject(
        Fault::new(FaultOp::Create, EMFILE)
            .path(".timeindex")
            .times(1),
    );
    // (The first removal is the one `Segment::create` does of a stale file of that name.)
    fs.inject(
        Fault::new(FaultOp::Remove, EIO)
            .path(".log")
            .skip(1)
            .times(1),
    );
    let err = log.append(batch(2, 400)).unwrap_err();
    assert!(matches!(err, LogError::Offline { .. }), "{err:?}");
    assert!(log.is_offline());
}

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("running mount");
        assert!(
            out.status.success(),
            "this test needs to mount a tmpfs (run as root): mount failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_real_disk_refuses_appends_keeps_what_it_acknowledged_and_recovers() {
    let mnt = Tmpfs::mount("2m");
    // Room for the filler plus about 1.5 MiB of log.
    let filler = mnt.path().join("filler");
    std::fs::write(&filler, vec![0u8; 512 << 10]).unwrap();
    let dir = mnt.path().join("t-0");
    let config = LogConfig {
        segment_bytes: 256 << 10,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.clone(), config.clone(), Arc::new(SystemClock)).unwrap();
    let mut acked = Acked { batches: vec![] };
    let err = loop {
        let tag = acked.batches.len() as u8;
        match acked.append(&log, batch(tag, 10_000)) {
            Ok(()) => assert!(acked.batches.len() < 1_000, "the disk never filled"),
            Err(e) => break e,
        }
    };
    assert_eq!(errno(&err), Some(ENOSPC), "{err:?}");
    assert!(
        acked.batches.len() > 50,
        "only {} batches",
        acked.batches.len()
    );
    assert!(!log.is_offline());
    acked.check(&log);
    let on_disk: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(on_disk, log.size_bytes(), "the failed write was cut back");
    // The next append fails the same way, and reads keep working.
    assert_eq!(
        errno(&log.append(batch(0, 10_000)).unwrap_err()),
        Some(ENOSPC)
    );
    acked.check(&log);
    // Space comes back: appends go on where they stopped.
    std::fs::remove_file(&filler).unwrap();
    for _ in 0..10 {
        acked.append(&log, batch(7, 10_000)).unwrap();
    }
    acked.check(&log);
    log.close().unwrap();
    let log = PartitionLog::open(dir, config, Arc::new(SystemClock)).unwrap();
    acked.check(&log);
}

/// The background flush of rolled segments writes producer snapshots and the recovery point
/// through temporary files. On a full disk that write fails with a known effect (a temporary
/// file nobody trusts), so the log stays online, keeps taking appends where space allows, and
/// the next flush after space returns finishes the job.
#[test]
fn a_full_disk_during_a_background_flush_is_retried_not_fatal() {
    let fs = Arc::new(SimFs::new(7));
    let log = open_sim(&fs, &config());
    let mut acked = Acked { batches: vec![] };
    // An idempotent producer, so each roll leaves a producer snapshot to write.
    for seq in 0..40 {
        let mut b = BatchBuilder::new(0);
        b.producer = Some((5, 0, seq));
        b.push(Some(b"k"), Some(&[seq as u8; 300]), 1_000);
        acked.append(&log, b.build()).unwrap();
    }
    assert!(log.segment_count() > 2);
    for path in [".snapshot.tmp", "recovery-point.tmp"] {
        fs.inject(Fault::new(FaultOp::Write, ENOSPC).path(path).times(1));
        let err = log.flush_rolled().unwrap_err();
        assert_eq!(errno(&err), Some(ENOSPC), "{path}: {err:?}");
        assert!(
            !log.is_offline(),
            "{path}: a failed snapshot write is no fsync failure"
        );
        acked.check(&log);
    }
    log.flush_rolled().unwrap();
    let durable = log.flushed_offset();
    assert!(durable > 0, "the rolled segments are durable");
    // Everything the flush covers survives a power loss, and an unclean restart scans only
    // the active segment (whose unsynced tail may be lost: it was never flushed).
    fs.crash();
    let log = open_sim(&fs, &config());
    assert_eq!(log.recovery_stats().segments_scanned, 1);
    assert!(log.log_end_offset() >= durable);
    acked.batches.truncate(log.log_end_offset() as usize);
    acked.check(&log);
}
