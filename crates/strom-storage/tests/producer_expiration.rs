//! `producer.id.expiration.ms`: idempotent producers idle that long (and with no open
//! transaction) are forgotten by `expire_producers` / `enforce_retention` and stay forgotten
//! across an unclean reopen; their next batch is then accepted with any sequence number, as
//! Kafka 3+ does for a producer it has no state for (KIP-360).

use std::sync::Arc;

use bytes::BytesMut;
use strom_protocol::record_batch::builder::BatchBuilder;
use strom_storage::{Clock, LogConfig, LogError, ManualClock, PartitionLog};

const T0: i64 = 1_000_000;
const EXPIRATION_MS: i64 = 60_000;

fn config() -> LogConfig {
    LogConfig {
        retention_ms: -1,
        producer_id_expiration_ms: EXPIRATION_MS,
        ..LogConfig::default()
    }
}

/// `n` records of producer `pid` (epoch 0) from sequence `seq`, stamped `ts`.
fn batch(pid: i64, seq: i32, n: usize, ts: i64, transactional: bool) -> BytesMut {
    let mut b = BatchBuilder::new(0);
    b.producer = Some((pid, 0, seq));
    if transactional {
        b.attributes = 0x10;
    }
    for _ in 0..n {
        b.push(Some(b"k"), Some(b"v"), ts);
    }
    b.build()
}

fn producer_ids(log: &PartitionLog) -> Vec<i64> {
    log.active_producers()
        .iter()
        .map(|p| p.producer_id)
        .collect()
}

#[test]
fn idle_producers_expire_and_then_any_sequence_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let open = || PartitionLog::open(dir.path().to_path_buf(), config(), clock.clone()).unwrap();
    let log = open();
    log.append(batch(5, 0, 3, T0, false)).unwrap();
    log.append(batch(6, 0, 1, T0, true)).unwrap(); // an open transaction
    log.append(batch(7, 0, 1, T0, false)).unwrap();
    clock.advance(10_000);
    log.append(batch(5, 3, 1, clock.now_ms(), false)).unwrap();
    // While known, a gap is refused.
    assert!(matches!(
        log.append(batch(5, 10, 1, clock.now_ms(), false)),
        Err(LogError::OutOfOrderSequence {
            producer_id: 5,
            expected: 4,
            received: 10
        })
    ));
    // Producer 7 idles for the whole expiration period; 5 for one ms less.
    clock.set(T0 + EXPIRATION_MS - 1);
    assert_eq!(log.expire_producers().unwrap(), 0);
    clock.set(T0 + EXPIRATION_MS);
    log.enforce_retention().unwrap();
    assert_eq!(
        producer_ids(&log),
        [5, 6],
        "7 expired; 6 has a transaction open"
    );
    clock.set(T0 + 10_000 + EXPIRATION_MS);
    assert_eq!(log.expire_producers().unwrap(), 1);
    assert_eq!(producer_ids(&log), [6]);
    // Forgotten: the next batch of 5, whatever its sequence, starts a new history.
    let info = log.append(batch(5, 10, 1, clock.now_ms(), false)).unwrap();
    assert!(!info.duplicate);
    assert!(matches!(
        log.append(batch(5, 12, 1, clock.now_ms(), false)),
        Err(LogError::OutOfOrderSequence { expected: 11, .. })
    ));
    // An unclean reopen replays the log but does not bring the expired producers back.
    drop(log);
    let log = open();
    assert_eq!(producer_ids(&log), [5, 6]);
    log.append(batch(5, 11, 1, clock.now_ms(), false)).unwrap();
}
