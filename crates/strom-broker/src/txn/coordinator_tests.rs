//! The coordinator over an in-memory `__transaction_state`: a transaction whose markers could
//! not be written stays Prepare*, is completed by the timer, and a restart (replay of the log)
//! finishes one left between PrepareCommit and CompleteCommit.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex as PlMutex;
use strom_storage::ManualClock;

use super::*;
use crate::txn::state::{Completion, TxnState};

#[derive(Default)]
struct MemoryTxnLog {
    batches: PlMutex<Vec<(i32, Bytes)>>,
    markers: PlMutex<Vec<Completion>>,
    /// The coordinator epoch each marker was written with.
    marker_epochs: PlMutex<Vec<i32>>,
    fail_markers: AtomicBool,
}

impl TxnLog for MemoryTxnLog {
    fn txn_partitions(&self) -> Result<i32, ErrorCode> {
        Ok(3)
    }
    fn append_txn_batch(&self, partition: i32, batch: BytesMut) -> Result<(), ErrorCode> {
        self.batches.lock().push((partition, batch.freeze()));
        Ok(())
    }
    fn read_txn_batches(&self, visit: &mut dyn FnMut(i32, Bytes)) -> Result<(), String> {
        for (p, b) in self.batches.lock().iter() {
            visit(*p, b.clone());
        }
        Ok(())
    }
    fn write_markers(&self, c: &Completion, epoch: i32) -> Result<(), ErrorCode> {
        if self.fail_markers.load(Ordering::SeqCst) {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        self.markers.lock().push(c.clone());
        self.marker_epochs.lock().push(epoch);
        Ok(())
    }
}

fn coordinator(clock: &Arc<ManualClock>) -> TxnCoordinator {
    TxnCoordinator::new(
        TxnConfig {
            max_timeout_ms: 60_000,
            id_expiration_ms: 100_000,
        },
        clock.clone(),
    )
}

fn state(c: &TxnCoordinator) -> TxnState {
    c.describe("t").unwrap().state
}

#[test]
fn unfinished_completions_are_retried_and_survive_a_restart() {
    let clock = Arc::new(ManualClock::new(1_000));
    let log = MemoryTxnLog::default();
    let next = AtomicI64::new(7);
    let mut allocate = || Ok(next.fetch_add(1, Ordering::SeqCst));
    let c = coordinator(&clock);
    let (pid, epoch) = c
        .init_producer_id(&log, "t", 10_000, None, &mut allocate)
        .unwrap();
    let tp = ("a".to_owned(), 0);
    c.add_partitions(&log, "t", pid, epoch, std::slice::from_ref(&tp))
        .unwrap();
    log.fail_markers.store(true, Ordering::SeqCst);
    // The decision is durable: EndTxn succeeds, the markers wait.
    c.end_txn(&log, "t", pid, epoch, true).unwrap();
    assert_eq!(state(&c), TxnState::PrepareCommit);
    assert_eq!(
        c.add_partitions(&log, "t", pid, epoch, std::slice::from_ref(&tp)),
        Err(ErrorCode::ConcurrentTransactions)
    );
    c.tick(&log);
    assert_eq!(state(&c), TxnState::PrepareCommit);
    // A restart replays PrepareCommit and finishes it once markers can be written.
    log.fail_markers.store(false, Ordering::SeqCst);
    let restarted = coordinator(&clock);
    restarted.load(&log).unwrap();
    assert_eq!(state(&restarted), TxnState::CompleteCommit);
    let markers = log.markers.lock().clone();
    assert_eq!(markers.len(), 1);
    assert!(markers[0].commit && markers[0].partitions.contains(&tp));
    // The next restart finds it complete: no marker is written again.
    coordinator(&clock).load(&log).unwrap();
    assert_eq!(log.markers.lock().len(), 1);
}

/// Cluster mode: the new coordinator of a partition serves its ids only once loaded, finishes
/// a transaction its predecessor left in PrepareCommit with its own coordinator epoch, and
/// forgets the ids when the partition moves on.
#[test]
fn a_new_coordinator_loads_its_partition_and_finishes_prepared_transactions() {
    let clock = Arc::new(ManualClock::new(1_000));
    let log = MemoryTxnLog::default();
    let mut allocate = || Ok(9);
    let old = coordinator(&clock);
    let (pid, epoch) = old
        .init_producer_id(&log, "t", 10_000, None, &mut allocate)
        .unwrap();
    let tp = ("a".to_owned(), 0);
    old.add_partitions(&log, "t", pid, epoch, std::slice::from_ref(&tp))
        .unwrap();
    log.fail_markers.store(true, Ordering::SeqCst);
    old.end_txn(&log, "t", pid, epoch, true).unwrap();
    log.fail_markers.store(false, Ordering::SeqCst);

    let c = coordinator(&clock);
    c.owned.serve_led_partitions_only();
    let p = partition_for("t", 3);
    assert_eq!(
        c.check_coordinator(&log, "t"),
        Err(ErrorCode::NotCoordinator)
    );
    assert_eq!(
        c.end_txn(&log, "t", pid, epoch, true),
        Err(ErrorCode::NotCoordinator)
    );
    c.owned.begin_load(p, 4);
    assert_eq!(
        c.check_coordinator(&log, "t"),
        Err(ErrorCode::CoordinatorLoadInProgress)
    );
    c.load_partition(&log, p, 4);
    assert_eq!(c.check_coordinator(&log, "t"), Ok(4));
    assert_eq!(state(&c), TxnState::PrepareCommit);
    c.tick(&log);
    assert_eq!(state(&c), TxnState::CompleteCommit);
    assert_eq!(*log.marker_epochs.lock(), vec![4]);
    c.owned.unload(p);
    c.unload_partition(p, 3);
    assert!(c.describe("t").is_none());
    assert_eq!(
        c.check_coordinator(&log, "t"),
        Err(ErrorCode::NotCoordinator)
    );
}

#[test]
fn the_timer_aborts_an_expired_transaction_and_fences_its_producer() {
    let clock = Arc::new(ManualClock::new(1_000));
    let log = MemoryTxnLog::default();
    let mut allocate = || Ok(42);
    let c = coordinator(&clock);
    let (pid, epoch) = c
        .init_producer_id(&log, "t", 500, None, &mut allocate)
        .unwrap();
    c.add_partitions(&log, "t", pid, epoch, &[("a".to_owned(), 1)])
        .unwrap();
    clock.advance(499);
    c.tick(&log);
    assert_eq!(state(&c), TxnState::Ongoing);
    clock.advance(1);
    c.tick(&log);
    assert_eq!(state(&c), TxnState::CompleteAbort);
    let markers = log.markers.lock().clone();
    assert_eq!(
        (markers[0].commit, markers[0].producer_epoch),
        (false, epoch + 1)
    );
    assert_eq!(
        c.end_txn(&log, "t", pid, epoch, true),
        Err(ErrorCode::ProducerFenced)
    );
}

#[test]
fn idle_transactional_ids_expire_with_a_tombstone() {
    let clock = Arc::new(ManualClock::new(1_000));
    let log = MemoryTxnLog::default();
    let mut allocate = || Ok(5);
    let c = coordinator(&clock);
    let (pid, epoch) = c
        .init_producer_id(&log, "t", 500, None, &mut allocate)
        .unwrap();
    c.add_partitions(&log, "t", pid, epoch, &[("a".to_owned(), 0)])
        .unwrap();
    c.end_txn(&log, "t", pid, epoch, true).unwrap();
    clock.advance(99_999);
    c.tick(&log);
    assert!(c.describe("t").is_some());
    clock.advance(1);
    c.tick(&log);
    assert!(c.describe("t").is_none());
    // The tombstone is in the log: a restart does not bring the id back.
    let restarted = coordinator(&clock);
    assert_eq!(restarted.load(&log), Ok(0));
    assert!(restarted.describe("t").is_none());
}

#[test]
fn v2_end_writes_markers_with_the_bumped_epoch() {
    let clock = Arc::new(ManualClock::new(1_000));
    let log = MemoryTxnLog::default();
    let next = AtomicI64::new(7);
    let mut allocate = || Ok(next.fetch_add(1, Ordering::SeqCst));
    let c = coordinator(&clock);
    let (pid, epoch) = c
        .init_producer_id(&log, "t", 10_000, None, &mut allocate)
        .unwrap();
    let tp = ("a".to_owned(), 0);
    c.add_partitions(&log, "t", pid, epoch, std::slice::from_ref(&tp))
        .unwrap();
    assert_eq!(
        c.end_txn_v2(&log, "t", pid, epoch, true, &mut allocate),
        Ok((pid, epoch + 1))
    );
    assert_eq!(state(&c), TxnState::CompleteCommit);
    let markers = log.markers.lock().clone();
    assert_eq!(markers.len(), 1);
    assert_eq!(
        (
            markers[0].producer_id,
            markers[0].producer_epoch,
            markers[0].commit
        ),
        (pid, epoch + 1, true)
    );
    // A restart replays the bumped epoch: the old one stays fenced.
    let restarted = coordinator(&clock);
    restarted.load(&log).unwrap();
    let md = restarted.describe("t").unwrap();
    assert_eq!((md.producer_id, md.producer_epoch), (pid, epoch + 1));
    assert_eq!(
        restarted.add_partitions(&log, "t", pid, epoch, std::slice::from_ref(&tp)),
        Err(ErrorCode::ProducerFenced)
    );
}
