//! Replication primitives of `PartitionLog`: the leader stamps its epoch and tracks where each
//! epoch starts; a follower appends the leader's batches as they are, so its log is a
//! byte-identical copy; an old leader's unreplicated tail is cut at the point where the epochs
//! diverge; a follower behind the leader's log start restarts empty from it.

use std::path::Path;
use std::sync::Arc;

use bytes::BytesMut;
use strom_protocol::record_batch::builder::build_batch;
use strom_protocol::record_batch::{BatchSplitter, RecordBatchHeader};
use strom_storage::{LogConfig, LogError, ManualClock, PartitionLog, UNDEFINED_EPOCH};

fn open(dir: &Path) -> PartitionLog {
    let clock = Arc::new(ManualClock::new(1_000));
    PartitionLog::open(dir.to_path_buf(), LogConfig::default(), clock).unwrap()
}

fn batch(n: usize, tag: u8) -> BytesMut {
    let value = [tag; 50];
    let recs: Vec<_> = (0..n)
        .map(|i| (None, Some(&value[..]), 1_000 + i as i64))
        .collect();
    build_batch(0, &recs, None)
}

/// Everything from `from` to the log end, as stored.
fn bytes_from(log: &PartitionLog, from: i64) -> BytesMut {
    let mut out = BytesMut::new();
    let mut at = from;
    while at < log.log_end_offset() {
        let read = log.read(at, 1 << 20, None).unwrap();
        let bytes = read.slice.unwrap().read_to_bytes().unwrap();
        let last = BatchSplitter::new(&bytes, usize::MAX)
            .map(|b| RecordBatchHeader::parse(b.unwrap()).unwrap().last_offset())
            .last()
            .unwrap();
        out.extend_from_slice(&bytes);
        at = last + 1;
    }
    out
}

fn epochs_of(bytes: &[u8]) -> Vec<i32> {
    BatchSplitter::new(bytes, usize::MAX)
        .map(|b| {
            RecordBatchHeader::parse(b.unwrap())
                .unwrap()
                .partition_leader_epoch()
        })
        .collect()
}

#[test]
fn a_follower_copies_the_leader_byte_for_byte() {
    let (l, f) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = open(l.path());
    let follower = open(f.path());
    leader.become_leader(3).unwrap();
    follower.become_follower();
    leader.append(batch(2, b'a')).unwrap();
    leader.append(batch(3, b'b')).unwrap();
    assert_eq!(
        epochs_of(&bytes_from(&leader, 0)),
        vec![3, 3],
        "the leader stamps its epoch"
    );

    follower.append_as_follower(bytes_from(&leader, 0)).unwrap();
    leader.become_leader(5).unwrap();
    leader.append(batch(1, b'c')).unwrap();
    follower.append_as_follower(bytes_from(&leader, 5)).unwrap();

    assert_eq!(bytes_from(&follower, 0), bytes_from(&leader, 0));
    assert_eq!(follower.epoch_entries(), vec![(3, 0), (5, 5)]);
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(follower.end_offset_for_epoch(3), (3, 5));
    assert_eq!(follower.end_offset_for_epoch(5), (5, 6));
    assert_eq!(follower.end_offset_for_epoch(9), (UNDEFINED_EPOCH, -1));

    // A batch the follower already has is refused, never written twice.
    let again = follower.append_as_follower(bytes_from(&leader, 5));
    assert!(
        matches!(again, Err(LogError::OffsetsOutOfOrder { .. })),
        "{again:?}"
    );
    assert_eq!(follower.log_end_offset(), 6);
}

#[test]
fn a_returning_leader_truncates_its_divergent_tail() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let old = open(a.path());
    let new = open(b.path());
    old.become_leader(1).unwrap();
    old.append(batch(4, b'x')).unwrap();
    new.append_as_follower(bytes_from(&old, 0)).unwrap();
    // Written by the old leader only (acks=1), then it dies; `new` is elected in epoch 2.
    old.append(batch(2, b'y')).unwrap();
    new.become_leader(2).unwrap();
    new.append(batch(3, b'z')).unwrap();

    // Fetch's divergence check: the follower's last epoch is 1; the leader says epoch 1 ends
    // at 4, below the follower's end of 6, so the follower truncates to 4 and refetches.
    old.become_follower();
    let (epoch, end) = new.end_offset_for_epoch(old.latest_epoch());
    assert_eq!((epoch, end), (1, 4));
    old.truncate_to(end.min(old.log_end_offset())).unwrap();
    old.append_as_follower(bytes_from(&new, 4)).unwrap();
    assert_eq!(bytes_from(&old, 0), bytes_from(&new, 0));
    assert_eq!(old.epoch_entries(), new.epoch_entries());

    // The cache survives a reopen.
    old.close().unwrap();
    drop(old);
    let reopened = open(a.path());
    assert_eq!(reopened.epoch_entries(), vec![(1, 0), (2, 4)]);
}

#[test]
fn a_follower_behind_the_log_start_restarts_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    log.become_leader(0).unwrap();
    log.append(batch(2, b'a')).unwrap();
    log.reset_to(100).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
    assert!(log.epoch_entries().is_empty());
    let mut leader_batch = batch(1, b'b');
    strom_protocol::record_batch::set_base_offset(&mut leader_batch, 100).unwrap();
    strom_protocol::record_batch::set_partition_leader_epoch(&mut leader_batch, 7).unwrap();
    log.append_as_follower(leader_batch).unwrap();
    assert_eq!(log.log_end_offset(), 101);
    assert_eq!(log.epoch_entries(), vec![(7, 100)]);
    log.close().unwrap();
    drop(log);
    let reopened = open(dir.path());
    assert_eq!(
        (reopened.log_start_offset(), reopened.log_end_offset()),
        (100, 101)
    );
}

/// Leadership alone writes no checkpoint (a restart makes every partition a leader in a new
/// epoch): the epoch is answered from memory at once and reaches the file with its first
/// batch. An epoch that never got a batch and is lost in a crash had no data anywhere.
#[test]
fn an_epoch_reaches_the_checkpoint_with_its_first_batch() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("leader-epoch-checkpoint");
    let log = open(dir.path());
    log.become_leader(1).unwrap();
    assert_eq!(log.epoch_entries(), vec![(1, 0)]);
    assert!(
        !checkpoint.exists(),
        "leadership alone wrote the checkpoint"
    );
    log.append(batch(3, b'a')).unwrap();
    assert!(checkpoint.exists());
    // A new epoch without data: answered from memory, not yet in the file.
    log.become_leader(2).unwrap();
    assert_eq!(log.epoch_entries(), vec![(1, 0), (2, 3)]);
    assert_eq!(log.end_offset_for_epoch(1), (1, 3));
    drop(log);
    let crashed = open(dir.path());
    assert_eq!(crashed.epoch_entries(), vec![(1, 0)]);
    crashed.become_leader(3).unwrap();
    crashed.append(batch(1, b'b')).unwrap();
    drop(crashed);
    assert_eq!(open(dir.path()).epoch_entries(), vec![(1, 0), (3, 3)]);
}
