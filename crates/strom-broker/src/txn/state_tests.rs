//! Tests of the pure transaction state machine: scripted scenarios and a model-based property
//! test with time driven by the test (random operations checked against a small model).

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::txn::records::{decode, encode};

const MAX_TIMEOUT: i32 = 60_000;

fn manager() -> TxnManager {
    TxnManager::new(TxnConfig {
        max_timeout_ms: MAX_TIMEOUT,
        id_expiration_ms: 1_000_000,
    })
}

/// Runs `plan_init` to the end as the coordinator does (abort first, then bump).
fn init(
    m: &mut TxnManager,
    id: &str,
    timeout: i32,
    now: i64,
    next_id: &mut i64,
) -> Result<(i64, i16), ErrorCode> {
    let mut alloc = || {
        *next_id += 1;
        Ok(*next_id)
    };
    loop {
        match m.plan_init(id, timeout, None, now, &mut alloc)? {
            InitPlan::Ready(md) => {
                let out = (md.producer_id, md.producer_epoch);
                m.apply(md);
                return Ok(out);
            }
            InitPlan::AbortFirst(md) => {
                m.apply(md);
                let done = m.plan_complete(id, now).expect("PrepareAbort completes");
                m.apply(done);
            }
        }
    }
}

fn tp(t: &str, p: i32) -> TopicPartition {
    (t.to_owned(), p)
}

#[test]
fn commit_abort_and_fencing() {
    let mut m = manager();
    let mut ids = 100;
    assert_eq!(
        init(&mut m, "t", MAX_TIMEOUT + 1, 0, &mut ids),
        Err(ErrorCode::InvalidTransactionTimeout)
    );
    let (pid, e0) = init(&mut m, "t", 1_000, 0, &mut ids).unwrap();
    assert_eq!((pid, e0), (101, 0));
    assert_eq!(
        m.plan_end("t", pid, 0, true, 1),
        Err(ErrorCode::InvalidTxnState)
    );
    let md = m
        .plan_add_partitions("t", pid, 0, &[tp("a", 0)], 5)
        .unwrap()
        .unwrap();
    assert_eq!((md.state, md.start_ms), (TxnState::Ongoing, 5));
    m.apply(md);
    assert_eq!(
        m.plan_add_partitions("t", pid, 0, &[tp("a", 0)], 6),
        Ok(None)
    );
    assert_eq!(m.verify_partition(pid, 0, &tp("a", 0)), Ok(()));
    assert_eq!(
        m.verify_partition(pid, 0, &tp("a", 1)),
        Err(ErrorCode::InvalidTxnState)
    );
    // A second producer with the same id fences the first and aborts its transaction.
    let (pid2, e1) = init(&mut m, "t", 1_000, 10, &mut ids).unwrap();
    assert_eq!((pid2, e1), (pid, 2));
    assert_eq!(m.get("t").unwrap().state, TxnState::Empty);
    assert_eq!(
        m.plan_end("t", pid, 0, true, 11),
        Err(ErrorCode::ProducerFenced)
    );
    assert_eq!(
        m.verify_partition(pid, 0, &tp("a", 0)),
        Err(ErrorCode::InvalidProducerEpoch)
    );
    let md = m
        .plan_add_partitions("t", pid, 2, &[tp("a", 1)], 12)
        .unwrap()
        .unwrap();
    m.apply(md);
    let md = m.plan_end("t", pid, 2, true, 13).unwrap().unwrap();
    assert_eq!(md.state, TxnState::PrepareCommit);
    m.apply(md.clone());
    let c = TxnManager::completion(&md).unwrap();
    assert!(c.commit && c.partitions.contains(&tp("a", 1)));
    assert_eq!(
        m.plan_add_partitions("t", pid, 2, &[tp("a", 1)], 14),
        Err(ErrorCode::ConcurrentTransactions)
    );
    let done = m.plan_complete("t", 15).unwrap();
    m.apply(done);
    // A retried EndTxn of a completed commit succeeds; the opposite decision does not.
    assert_eq!(m.plan_end("t", pid, 2, true, 16), Ok(None));
    assert_eq!(
        m.plan_end("t", pid, 2, false, 16),
        Err(ErrorCode::InvalidTxnState)
    );
}

#[test]
fn timeout_aborts_with_bumped_epoch() {
    let mut m = manager();
    let mut ids = 0;
    let (pid, _) = init(&mut m, "t", 100, 0, &mut ids).unwrap();
    m.apply(
        m.plan_add_partitions("t", pid, 0, &[tp("a", 0)], 50)
            .unwrap()
            .unwrap(),
    );
    assert_eq!(m.next_timeout(), Some(150));
    assert!(m.plan_timeouts(149).is_empty());
    let expired = m.plan_timeouts(150);
    assert_eq!(expired.len(), 1);
    assert_eq!(
        (expired[0].state, expired[0].producer_epoch),
        (TxnState::PrepareAbort, 1)
    );
    m.apply(expired[0].clone());
    m.apply(m.plan_complete("t", 151).unwrap());
    assert_eq!(
        m.plan_end("t", pid, 0, true, 152),
        Err(ErrorCode::ProducerFenced)
    );
}

/// One step of the property test; indexes pick among a few ids, partitions and epochs.
#[derive(Debug, Clone)]
enum Op {
    Init {
        id: usize,
        timeout: i32,
    },
    Add {
        id: usize,
        partition: i32,
        stale: bool,
    },
    End {
        id: usize,
        commit: bool,
        stale: bool,
    },
    Advance {
        ms: i64,
    },
    Timeouts,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (
            0..3usize,
            prop_oneof![Just(-1), 1..200i32, Just(MAX_TIMEOUT + 1)]
        )
            .prop_map(|(id, timeout)| Op::Init { id, timeout }),
        (0..3usize, 0..4i32, any::<bool>()).prop_map(|(id, partition, stale)| Op::Add {
            id,
            partition,
            stale
        }),
        (0..3usize, any::<bool>(), any::<bool>()).prop_map(|(id, commit, stale)| Op::End {
            id,
            commit,
            stale
        }),
        (0..150i64).prop_map(|ms| Op::Advance { ms }),
        Just(Op::Timeouts),
    ]
}

/// What the model expects of one transactional id.
#[derive(Debug, Clone, Default)]
struct Model {
    producer: Option<(i64, i16)>,
    open: BTreeSet<TopicPartition>,
    committed: bool,
}

proptest! {
    #[test]
    fn state_machine_follows_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let mut m = manager();
        let mut ids = 1_000;
        let mut now = 0i64;
        let mut model: BTreeMap<String, Model> = BTreeMap::new();
        let mut written: Vec<TxnMetadata> = Vec::new();
        for op in ops {
            match op {
                Op::Init { id, timeout } => {
                    let name = format!("t{id}");
                    let result = init(&mut m, &name, timeout, now, &mut ids);
                    if timeout <= 0 || timeout > MAX_TIMEOUT {
                        prop_assert_eq!(result, Err(ErrorCode::InvalidTransactionTimeout));
                        continue;
                    }
                    let (pid, epoch) = result.unwrap();
                    let entry = model.entry(name.clone()).or_default();
                    if let Some((old_pid, old_epoch)) = entry.producer {
                        // Same id, strictly newer epoch: the old producer is fenced.
                        prop_assert_eq!(pid, old_pid);
                        prop_assert!(epoch > old_epoch);
                    }
                    entry.producer = Some((pid, epoch));
                    entry.open.clear();
                    written.push(m.get(&name).unwrap().clone());
                }
                Op::Add { id, partition, stale } => {
                    let name = format!("t{id}");
                    let Some((pid, epoch)) = model.get(&name).and_then(|e| e.producer) else { continue };
                    let epoch = if stale { epoch - 1 } else { epoch };
                    let p = tp("a", partition);
                    let result = m.plan_add_partitions(&name, pid, epoch, std::slice::from_ref(&p), now);
                    if stale {
                        prop_assert_eq!(result, Err(ErrorCode::ProducerFenced));
                        continue;
                    }
                    if let Some(md) = result.unwrap() {
                        written.push(md.clone());
                        m.apply(md);
                    }
                    model.get_mut(&name).unwrap().open.insert(p.clone());
                    prop_assert_eq!(m.verify_partition(pid, epoch, &p), Ok(()));
                }
                Op::End { id, commit, stale } => {
                    let name = format!("t{id}");
                    let Some((pid, epoch)) = model.get(&name).and_then(|e| e.producer) else { continue };
                    let sent = if stale { epoch - 1 } else { epoch };
                    let entry = model.get_mut(&name).unwrap();
                    match m.plan_end(&name, pid, sent, commit, now) {
                        Ok(Some(md)) => {
                            prop_assert!(!stale && !entry.open.is_empty());
                            let c = TxnManager::completion(&md).unwrap();
                            prop_assert_eq!(&c.partitions, &entry.open);
                            prop_assert_eq!(c.commit, commit);
                            m.apply(md.clone());
                            written.push(md);
                            let done = m.plan_complete(&name, now).unwrap();
                            written.push(done.clone());
                            m.apply(done);
                            entry.open.clear();
                            entry.committed = commit;
                        }
                        Ok(None) => prop_assert!(!stale && entry.open.is_empty() && entry.committed == commit),
                        Err(ErrorCode::ProducerFenced) => prop_assert!(stale),
                        Err(e) => {
                            prop_assert_eq!(e, ErrorCode::InvalidTxnState);
                            prop_assert!(entry.open.is_empty());
                        }
                    }
                }
                Op::Advance { ms } => now += ms,
                Op::Timeouts => {
                    for md in m.plan_timeouts(now) {
                        let name = md.transactional_id.clone();
                        let entry = model.get_mut(&name).unwrap();
                        prop_assert!(!entry.open.is_empty());
                        m.apply(md.clone());
                        written.push(md.clone());
                        let done = m.plan_complete(&name, now).unwrap();
                        written.push(done.clone());
                        m.apply(done);
                        entry.producer = Some((md.producer_id, md.producer_epoch));
                        entry.open.clear();
                        entry.committed = false;
                    }
                    prop_assert!(m.next_timeout().is_none_or(|t| t > now));
                }
            }
            // Invariants of every transactional id after every step.
            for md in m.all() {
                let open = matches!(md.state, TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort);
                prop_assert_eq!(open, md.start_ms >= 0);
                prop_assert_eq!(open, !md.partitions.is_empty());
                let expected = model.get(&md.transactional_id).unwrap();
                prop_assert_eq!(&md.partitions, &expected.open);
                prop_assert_eq!(Some((md.producer_id, md.producer_epoch)), expected.producer);
            }
        }
        // Replaying what was written rebuilds the same state (the log is the truth).
        let mut replayed = manager();
        for md in &written {
            let (k, v) = encode(md);
            let (_, md) = decode(Some(&k), Some(&v)).unwrap();
            replayed.apply(md.unwrap());
        }
        for md in m.all() {
            let r = replayed.get(&md.transactional_id).unwrap();
            prop_assert_eq!((r.producer_id, r.producer_epoch, r.state, &r.partitions, r.start_ms),
                (md.producer_id, md.producer_epoch, md.state, &md.partitions, md.start_ms));
        }
    }
}

/// Applies a v2 end as the coordinator does: Prepare*, then Complete*.
fn end_v2(
    m: &mut TxnManager,
    producer: (i64, i16),
    commit: bool,
    now: i64,
    next_id: &mut i64,
) -> Result<(i64, i16), ErrorCode> {
    let mut alloc = || {
        *next_id += 1;
        Ok(*next_id)
    };
    match m.plan_end_v2("t", producer.0, producer.1, commit, now, &mut alloc)? {
        EndPlan::Done(answer) => Ok(answer),
        EndPlan::Write(md, answer) => {
            let rotated = answer.0 != md.producer_id;
            m.apply(md);
            if rotated {
                m.set_next_producer_id("t", answer.0);
            }
            let done = m.plan_complete("t", now).expect("Prepare* completes");
            m.apply(done);
            Ok(answer)
        }
    }
}

#[test]
fn v2_end_bumps_the_epoch_and_fences_the_old_one() {
    let mut m = manager();
    let mut ids = 100;
    let (pid, e0) = init(&mut m, "t", 1_000, 0, &mut ids).unwrap();
    let a = tp("a", 0);
    let md = m
        .plan_add_partitions("t", pid, e0, std::slice::from_ref(&a), 1)
        .unwrap()
        .unwrap();
    m.apply(md);
    // The Prepare* record (and so the markers) carries the bumped epoch.
    let mut alloc = || Ok(999);
    let EndPlan::Write(prepare, answer) = m.plan_end_v2("t", pid, e0, true, 2, &mut alloc).unwrap()
    else {
        panic!("an ongoing transaction is written")
    };
    assert_eq!(prepare.state, TxnState::PrepareCommit);
    assert_eq!(prepare.producer_epoch, e0 + 1);
    assert_eq!(answer, (pid, e0 + 1));
    m.apply(prepare);
    let completion = TxnManager::completion(m.get("t").unwrap()).unwrap();
    assert_eq!(completion.producer_epoch, e0 + 1);
    assert_eq!(completion.partitions, [a.clone()].into_iter().collect());
    let done = m.plan_complete("t", 3).unwrap();
    m.apply(done);
    assert_eq!(m.get("t").unwrap().state, TxnState::CompleteCommit);

    // A retry from the old epoch gets the same answer; an abort from it is fenced.
    assert_eq!(
        end_v2(&mut m, (pid, e0), true, 4, &mut ids),
        Ok((pid, e0 + 1))
    );
    assert_eq!(
        end_v2(&mut m, (pid, e0), false, 4, &mut ids),
        Err(ErrorCode::ProducerFenced)
    );
    // The old epoch may no longer write: produce-time verification refuses it.
    assert_eq!(
        m.verify_partition(pid, e0, &a),
        Err(ErrorCode::InvalidProducerEpoch)
    );
    assert_eq!(
        m.plan_add_partitions("t", pid, e0, std::slice::from_ref(&a), 5),
        Err(ErrorCode::ProducerFenced)
    );
    // The new epoch starts the next transaction by adding (as a v12 produce does).
    let md = m
        .plan_add_partitions("t", pid, e0 + 1, std::slice::from_ref(&a), 6)
        .unwrap()
        .unwrap();
    m.apply(md);
    assert_eq!(m.verify_partition(pid, e0 + 1, &a), Ok(()));
    assert_eq!(
        end_v2(&mut m, (pid, e0 + 1), false, 7, &mut ids),
        Ok((pid, e0 + 2))
    );
    assert_eq!(m.get("t").unwrap().state, TxnState::CompleteAbort);
    // Two epochs back is not a retry.
    assert_eq!(
        end_v2(&mut m, (pid, e0), true, 8, &mut ids),
        Err(ErrorCode::ProducerFenced)
    );
    assert_eq!(
        end_v2(&mut m, (pid + 1, e0 + 2), true, 8, &mut ids),
        Err(ErrorCode::InvalidProducerIdMapping)
    );
}

#[test]
fn v2_abort_without_a_transaction_and_commit_without_one() {
    let mut m = manager();
    let mut ids = 100;
    let (pid, e0) = init(&mut m, "t", 1_000, 0, &mut ids).unwrap();
    // The client cannot know whether a produce added a partition: an abort is accepted
    // from Empty (no markers to write), and it bumps the epoch too.
    assert_eq!(
        end_v2(&mut m, (pid, e0), false, 1, &mut ids),
        Ok((pid, e0 + 1))
    );
    assert_eq!(m.get("t").unwrap().state, TxnState::CompleteAbort);
    assert!(m.get("t").unwrap().partitions.is_empty());
    // A commit with nothing open is an invalid transition, as in Kafka.
    assert_eq!(
        end_v2(&mut m, (pid, e0 + 1), true, 2, &mut ids),
        Err(ErrorCode::InvalidTxnState)
    );
}

#[test]
fn v2_end_at_the_last_epoch_moves_to_a_new_producer_id() {
    let mut m = manager();
    let mut ids = 100;
    let (pid, _) = init(&mut m, "t", 1_000, 0, &mut ids).unwrap();
    let mut md = m.get("t").unwrap().clone();
    md.producer_epoch = MAX_EPOCH;
    m.apply(md);
    let a = tp("a", 0);
    let md = m
        .plan_add_partitions("t", pid, MAX_EPOCH, std::slice::from_ref(&a), 1)
        .unwrap()
        .unwrap();
    m.apply(md);
    let answer = end_v2(&mut m, (pid, MAX_EPOCH), true, 2, &mut ids).unwrap();
    assert_eq!(answer, (ids, 0), "a fresh producer id at epoch 0");
    assert_ne!(answer.0, pid);
    let now = m.get("t").unwrap();
    assert_eq!((now.producer_id, now.producer_epoch), answer);
    assert_eq!(now.state, TxnState::CompleteCommit);
    // The old id is gone: its writes are not verified any more.
    assert_eq!(
        m.verify_partition(pid, MAX_EPOCH, &a),
        Err(ErrorCode::InvalidProducerIdMapping)
    );
    // The new id runs the next transaction.
    let md = m
        .plan_add_partitions("t", answer.0, 0, std::slice::from_ref(&a), 3)
        .unwrap()
        .unwrap();
    m.apply(md);
    assert_eq!(end_v2(&mut m, answer, true, 4, &mut ids), Ok((answer.0, 1)));
}
