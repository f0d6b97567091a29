//! Transactional data in the partition log: the last stable offset follows open transactions,
//! aborts are indexed for read_committed fetches, and both are rebuilt after a crash (open
//! without a clean shutdown, the `.txnindex` files lost) and carried by snapshots.

use std::sync::Arc;

use bytes::BytesMut;
use strom_protocol::record_batch::builder::BatchBuilder;
use strom_protocol::record_batch::control::{marker_batch, ControlRecordType};
use strom_storage::{AbortedTxn, LogConfig, ManualClock, PartitionLog};

fn open(dir: &std::path::Path) -> PartitionLog {
    let clock = Arc::new(ManualClock::new(1_000));
    PartitionLog::open(dir.to_path_buf(), LogConfig::default(), clock).unwrap()
}

/// A transactional batch of `n` records from producer `pid` (epoch 0) starting at `seq`.
fn txn_batch(pid: i64, seq: i32, n: usize) -> BytesMut {
    let mut b = BatchBuilder::new(0);
    b.producer = Some((pid, 0, seq));
    b.attributes = 0x10;
    for _ in 0..n {
        b.push(Some(b"k"), Some(b"v"), 1_000);
    }
    b.build()
}

fn marker(pid: i64, kind: ControlRecordType) -> BytesMut {
    marker_batch(pid, 0, kind, 0, 1_000)
}

fn txnindex_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txnindex"))
        .collect()
}

#[test]
fn lso_and_aborted_index_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.append(txn_batch(1, 0, 2)).unwrap(); // 0..=1, producer 1
    log.append(txn_batch(2, 0, 3)).unwrap(); // 2..=4, producer 2
    assert_eq!(log.first_unstable_offset(), Some(0));
    log.append(marker(1, ControlRecordType::Abort)).unwrap(); // 5
    assert_eq!(log.first_unstable_offset(), Some(2));
    log.append(marker(2, ControlRecordType::Commit)).unwrap(); // 6
    assert_eq!(log.first_unstable_offset(), None);
    log.append(txn_batch(1, 2, 1)).unwrap(); // 7, producer 1 opens another
    let aborted = AbortedTxn {
        producer_id: 1,
        first_offset: 0,
        last_offset: 5,
        last_stable_offset: 2,
    };
    assert_eq!(log.aborted_transactions(0, 8), vec![aborted]);
    assert_eq!(log.aborted_transactions(6, 8), vec![]);
    assert_eq!(log.aborted_transactions(0, 0), vec![]);
    let producers = log.active_producers();
    assert_eq!(producers[0].current_txn_start_offset, 7);
    assert_eq!(producers[1].current_txn_start_offset, -1);
    // Crash: no close, and the index files are gone; replay rebuilds both.
    drop(log);
    for f in txnindex_files(dir.path()) {
        std::fs::remove_file(f).unwrap();
    }
    let log = open(dir.path());
    assert_eq!(log.first_unstable_offset(), Some(7));
    assert_eq!(log.aborted_transactions(0, 8), vec![aborted]);
    assert_eq!(txnindex_files(dir.path()).len(), 1);
    // A clean close snapshots the open transaction; the reopened log still knows it.
    log.close().unwrap();
    let log = open(dir.path());
    assert_eq!(log.first_unstable_offset(), Some(7));
    assert_eq!(log.aborted_transactions(0, 8), vec![aborted]);
    // Truncation below the abort marker forgets the abort.
    log.truncate_to(5).unwrap();
    assert_eq!(log.aborted_transactions(0, 8), vec![]);
    assert_eq!(log.first_unstable_offset(), Some(0));
}

#[test]
fn an_abort_in_a_rolled_segment_survives_a_power_loss_after_flush_rolled() {
    use strom_storage::{Fs, SimFs};
    let fs = Arc::new(SimFs::new(9));
    let config = LogConfig {
        segment_bytes: 400,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let open = || {
        let clock = Arc::new(ManualClock::new(1_000));
        let fs: Arc<dyn Fs> = fs.clone();
        PartitionLog::open_with_fs("/data/t-0".into(), config.clone(), clock, fs).unwrap()
    };
    let log = open();
    log.append(txn_batch(1, 0, 2)).unwrap(); // 0..=1
    log.append(marker(1, ControlRecordType::Abort)).unwrap(); // 2
    let aborted = log.aborted_transactions(0, 3);
    assert_eq!(aborted.len(), 1);
    // Later segments (and producer snapshots taken after the abort) bury it below the
    // recovery point: no replay after a restart would find it again.
    for _ in 0..8 {
        let mut b = BatchBuilder::new(0);
        b.push(Some(b"k"), Some(&[0u8; 200]), 1_000);
        log.append(b.build()).unwrap();
    }
    assert!(log.segment_count() > 3);
    log.flush_rolled().unwrap();
    fs.crash();
    let log = open();
    assert_eq!(log.recovery_stats().segments_scanned, 1);
    assert_eq!(log.aborted_transactions(0, 3), aborted);
}

/// Coordinator-epoch fencing of transaction markers lives in producer state: a marker older
/// than the last one written for the producer is refused (TRANSACTION_COORDINATOR_FENCED),
/// after a crash (rebuilt from the log, with every snapshot lost), and on a replica that
/// copied the log as a follower and then leads.
#[test]
fn markers_from_a_deposed_coordinator_are_fenced_across_restart_and_replication() {
    use strom_storage::LogError;
    let fenced = |r: Result<strom_storage::AppendInfo, LogError>| {
        matches!(
            r,
            Err(LogError::TransactionCoordinatorFenced {
                current: 7,
                received: 6,
                ..
            })
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.append(txn_batch(1, 0, 2)).unwrap();
    log.append(marker_batch(1, 0, ControlRecordType::Commit, 7, 1_000))
        .unwrap();
    let end = log.log_end_offset();
    let stale = || marker_batch(1, 0, ControlRecordType::Abort, 6, 1_000);
    assert!(
        fenced(log.append(stale())),
        "an older coordinator is fenced"
    );
    assert_eq!(log.log_end_offset(), end, "nothing written");
    // The same or a newer coordinator epoch is accepted.
    log.append(marker_batch(1, 0, ControlRecordType::Commit, 7, 1_000))
        .unwrap();
    // Crash: no close, and every producer snapshot gone: rebuilt from the markers in the log.
    drop(log);
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let p = f.unwrap().path();
        if p.extension().is_some_and(|e| e == "snapshot") {
            std::fs::remove_file(p).unwrap();
        }
    }
    let log = open(dir.path());
    assert!(fenced(log.append(stale())), "fenced after the rebuild");

    // A follower copying the log rebuilds the same state and fences as the next leader.
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = open(copy_dir.path());
    let read = log.read(0, 1 << 20, None).unwrap();
    let bytes = read.slice.unwrap().read_to_bytes().unwrap();
    copy.append_as_follower(BytesMut::from(&bytes[..])).unwrap();
    copy.become_leader(1).unwrap();
    assert!(fenced(copy.append(stale())), "fenced on the new leader");
    copy.append(marker_batch(1, 0, ControlRecordType::Abort, 8, 1_000))
        .unwrap();
}
