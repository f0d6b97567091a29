//! Partition reassignment (KIP-455) rule by rule: the replica set widens while moving, the
//! added replicas join the ISR before the removed ones leave, a removed leader hands over on
//! completion, cancellation reverts, bad targets are refused per partition, and the records
//! replay to the same image.

use super::elr_tests::{alter, open, part};
use super::reassignments::ongoing_reassignments;
use super::*;

/// Topic `name`, one partition on `replicas`, with `min.insync.replicas`.
fn create(c: &mut Controller, name: &str, replicas: Vec<i32>, min_isr: &str) {
    super::elr_tests::create(c, name, replicas, &[("min.insync.replicas", min_isr)]);
}

fn reassign(
    c: &mut Controller,
    name: &str,
    target: Option<Vec<i32>>,
) -> Result<(), ControllerError> {
    let mut results = c
        .alter_partition_reassignments(vec![((name.into(), 0), target)])
        .unwrap();
    assert_eq!(results.len(), 1);
    results.pop().unwrap().1
}

#[test]
fn a_move_widens_the_replicas_waits_for_the_new_ones_in_sync_then_drops_the_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), &[1, 2, 3, 4]);
    create(&mut c, "t", vec![1, 2, 3], "2");
    let before = part(&c, "t");
    reassign(&mut c, "t", Some(vec![4, 2, 3])).unwrap();
    let p = part(&c, "t");
    assert_eq!(p.replicas, vec![4, 2, 3, 1]);
    assert_eq!(p.adding_replicas, vec![4]);
    assert_eq!(p.removing_replicas, vec![1]);
    assert_eq!(
        p.isr,
        vec![2, 3, 1],
        "the ISR keeps every old member while moving"
    );
    assert_eq!(p.leader, 1, "the leader stays until the move completes");
    assert_eq!(p.leader_epoch, before.leader_epoch);
    assert_eq!(p.partition_epoch, before.partition_epoch + 1);
    let listed = ongoing_reassignments(&c.image(), None);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].adding.clone(), listed[0].removing.clone()),
        (vec![4], vec![1])
    );

    // The new replica catches up and joins the ISR: the move completes in that change, the
    // removed leader hands over to the first target replica in sync.
    let p = alter(&mut c, "t", &[1, 2, 3, 4]);
    assert_eq!(p.replicas, vec![4, 2, 3]);
    assert!(
        p.adding_replicas.is_empty() && p.removing_replicas.is_empty(),
        "{p:?}"
    );
    assert_eq!(p.isr, vec![4, 2, 3]);
    assert_eq!(p.leader, 4);
    assert_eq!(p.leader_epoch, before.leader_epoch + 1);
    assert!(ongoing_reassignments(&c.image(), None).is_empty());

    drop(c);
    let c = open(dir.path(), &[]);
    assert_eq!(
        part(&c, "t"),
        p,
        "reassignment records replay to the same partition"
    );
}

#[test]
fn an_old_replica_leaving_the_isr_mid_move_does_not_complete_it_before_the_new_one_is_in() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), &[1, 2, 3, 4, 5]);
    create(&mut c, "t", vec![1, 2, 3], "2");
    let before = part(&c, "t");
    reassign(&mut c, "t", Some(vec![1, 4, 5])).unwrap();
    // 2 falls behind: out of the ISR, but the move is not complete (4 and 5 are not in).
    let p = alter(&mut c, "t", &[1, 3]);
    assert_eq!(p.replicas, vec![1, 4, 5, 2, 3]);
    assert_eq!(p.isr, vec![1, 3]);
    // 4 joins: still not complete.
    let p = alter(&mut c, "t", &[1, 3, 4]);
    assert!(p.is_reassigning());
    assert!(
        p.isr.len() >= 2,
        "never below min.insync.replicas on account of the move"
    );
    // 5 joins: complete; 3 leaves the ISR and the replica set, 1 keeps leading.
    let p = alter(&mut c, "t", &[1, 3, 4, 5]);
    assert_eq!(p.replicas, vec![1, 4, 5]);
    assert_eq!(p.isr, vec![1, 4, 5]);
    assert_eq!(p.leader, 1);
    assert!(!p.is_reassigning());
    // Replicas left: a new leader epoch, though the leader stays, so that a fetch the
    // removed replicas still have in flight is fenced (added back, they start empty).
    assert_eq!(p.leader_epoch, before.leader_epoch + 1);
}

#[test]
fn shrinking_to_replicas_already_in_sync_completes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), &[1, 2, 3]);
    create(&mut c, "t", vec![1, 2, 3], "1");
    reassign(&mut c, "t", Some(vec![2, 3])).unwrap();
    let p = part(&c, "t");
    assert_eq!(
        (p.replicas.clone(), p.isr.clone(), p.leader),
        (vec![2, 3], vec![2, 3], 2)
    );
    assert!(!p.is_reassigning());
    // Reordering the same replicas changes the preferred leader only.
    reassign(&mut c, "t", Some(vec![3, 2])).unwrap();
    let p = part(&c, "t");
    assert_eq!((p.replicas.clone(), p.leader), (vec![3, 2], 2));
    assert!(!p.is_reassigning());
}

#[test]
fn cancelling_reverts_to_the_original_replicas_and_a_second_move_replaces_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), &[1, 2, 3, 4, 5]);
    create(&mut c, "t", vec![1, 2, 3], "2");
    let original = part(&c, "t");
    assert!(matches!(
        reassign(&mut c, "t", None),
        Err(ControllerError::NoReassignmentInProgress { .. })
    ));
    reassign(&mut c, "t", Some(vec![4, 5, 3])).unwrap();
    // A new target replaces the one in flight (computed from the original replicas).
    reassign(&mut c, "t", Some(vec![1, 2, 5])).unwrap();
    let p = part(&c, "t");
    assert_eq!(p.replicas, vec![1, 2, 5, 3]);
    assert_eq!(
        (p.adding_replicas.clone(), p.removing_replicas.clone()),
        (vec![5], vec![3])
    );
    assert_eq!(
        p.leader_epoch,
        original.leader_epoch + 1,
        "the second move dropped replica 4: a new epoch fences its fetches"
    );
    reassign(&mut c, "t", None).unwrap();
    let p = part(&c, "t");
    assert_eq!(p.replicas, original.replicas);
    assert_eq!(p.isr, original.isr);
    assert_eq!(p.leader, original.leader);
    assert!(!p.is_reassigning());
    assert_eq!(
        p.leader_epoch,
        original.leader_epoch + 2,
        "the cancel removed replica 5: another epoch"
    );
}

#[test]
fn bad_targets_are_refused_per_partition_and_good_ones_in_the_same_request_proceed() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), &[1, 2, 3]);
    create(&mut c, "t", vec![1, 2], "1");
    create(&mut c, "u", vec![1, 2], "1");
    let results = c
        .alter_partition_reassignments(vec![
            (("t".into(), 0), Some(vec![])),
            (("t".into(), 0), Some(vec![2, 2])),
            (("t".into(), 0), Some(vec![2, 9])),
            (("t".into(), 7), Some(vec![2, 3])),
            (("nope".into(), 0), Some(vec![2, 3])),
            (("u".into(), 0), Some(vec![2, 3])),
        ])
        .unwrap();
    let errors: Vec<_> = results.iter().map(|(_, r)| r.clone()).collect();
    assert!(matches!(
        errors[0],
        Err(ControllerError::InvalidReplicaAssignment { .. })
    ));
    assert!(matches!(
        errors[1],
        Err(ControllerError::InvalidReplicaAssignment { .. })
    ));
    assert!(matches!(
        errors[2],
        Err(ControllerError::InvalidReplicaAssignment { .. })
    ));
    assert!(matches!(
        errors[3],
        Err(ControllerError::UnknownTopicOrPartition { .. })
    ));
    assert!(matches!(
        errors[4],
        Err(ControllerError::UnknownTopicOrPartition { .. })
    ));
    assert_eq!(errors[5], Ok(()));
    assert_eq!(
        part(&c, "t").replicas,
        vec![1, 2],
        "refused targets change nothing"
    );
    assert_eq!(part(&c, "u").replicas, vec![2, 3, 1]);
}

#[test]
fn a_fenced_removed_replica_does_not_block_completion_and_the_elr_stays_within_the_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), &[1, 2, 3, 4]);
    create(&mut c, "t", vec![1, 2, 3], "3");
    reassign(&mut c, "t", Some(vec![1, 2, 4])).unwrap();
    // The ISR shrinks below min ISR: 3 joins the ELR.
    let p = alter(&mut c, "t", &[1, 2]);
    assert_eq!(p.eligible_leader_replicas, vec![3]);
    // 4 catches up: complete; 3 was being removed, so it leaves the ELR too.
    let p = alter(&mut c, "t", &[1, 2, 4]);
    assert_eq!(p.replicas, vec![1, 2, 4]);
    assert!(
        p.eligible_leader_replicas
            .iter()
            .all(|r| p.replicas.contains(r)),
        "{p:?}"
    );
}

#[test]
fn a_broker_is_unregistered_only_once_it_hosts_nothing_and_a_new_start_registers_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), &[1, 2, 3]);
    create(&mut c, "t", vec![1, 3], "1");
    assert!(matches!(
        c.unregister_broker(3),
        Err(ControllerError::InvalidRequest { .. })
    ));
    assert!(matches!(
        c.unregister_broker(9),
        Err(ControllerError::BrokerNotRegistered { broker_id: 9 })
    ));
    reassign(&mut c, "t", Some(vec![1, 2])).unwrap();
    // In flight, 3 still hosts a replica.
    assert!(c.unregister_broker(3).is_err());
    alter(&mut c, "t", &[1, 3, 2]);
    assert_eq!(part(&c, "t").replicas, vec![1, 2]);
    c.unregister_broker(3).unwrap();
    let image = c.image();
    assert!(image.broker(3).is_none() && image.was_unregistered(3));
    assert!(matches!(
        c.broker_heartbeat(3, 0),
        Err(ControllerError::BrokerNotRegistered { .. })
    ));
    c.register_broker(3, "localhost", 9095, None).unwrap();
    assert!(!c.image().was_unregistered(3) && c.image().broker(3).is_some());
}

#[test]
fn the_continuous_balancer_moves_a_fair_share_onto_a_new_broker_a_step_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "log.dirs={}\nbalancer.enable=true\nbalancer.max.concurrent.moves=2\nbalancer.check.interval.seconds=1\n",
        dir.path().display()
    );
    let config = BrokerConfig::parse(&text, &[]).unwrap().0;
    let mut c = Controller::open(dir.path(), &config).unwrap();
    for id in 1..=3 {
        c.register_broker(id, "localhost", 9092 + id as u16, None)
            .unwrap();
    }
    for i in 0..4 {
        create(
            &mut c,
            &format!("t{i}"),
            vec![1 + i % 3, 1 + (i + 1) % 3],
            "1",
        );
    }
    // Balanced over 1..3 (8 replicas: 3/3/2 at most one apart): nothing to do.
    assert_eq!(c.maybe_balance(1_000).unwrap(), 0);
    c.register_broker(4, "localhost", 9096, None).unwrap();
    let mut now = 2_000;
    let mut rounds = 0;
    loop {
        let started = c.maybe_balance(now).unwrap();
        assert!(
            started <= 2,
            "at most balancer.max.concurrent.moves at once"
        );
        // Every move in flight completes: its new replicas catch up.
        for i in 0..4 {
            let name = format!("t{i}");
            let p = part(&c, &name);
            if p.is_reassigning() {
                assert_eq!(c.maybe_balance(now + 500).unwrap(), 0, "one step at a time");
                let all = p.replicas.clone();
                alter(&mut c, &name, &all);
            }
        }
        now += 1_000;
        rounds += 1;
        if started == 0 || rounds > 20 {
            break;
        }
    }
    let image = c.image();
    let mut counts = std::collections::BTreeMap::new();
    for t in image.topics() {
        for p in t.partitions.values() {
            assert!(!p.is_reassigning());
            for r in &p.replicas {
                *counts.entry(*r).or_insert(0) += 1;
            }
        }
    }
    assert_eq!(
        counts.get(&4),
        Some(&2),
        "the new broker holds its share: {counts:?}"
    );
    assert!(counts.values().all(|n| *n == 2), "{counts:?}");
}

#[test]
fn an_added_replica_in_sync_stays_in_the_isr_across_a_new_move_and_leaves_it_on_a_cancel() {
    // Found by the replication simulation: a new move computed the ISR from the original
    // replicas, dropping an added replica that led, and left a leader outside an empty ISR.
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), &[1, 2, 3, 4, 5, 6]);
    create(&mut c, "t", vec![1, 2, 3], "2");
    reassign(&mut c, "t", Some(vec![4, 5, 6])).unwrap();
    let p = alter(&mut c, "t", &[1, 2, 3, 4]);
    assert!(p.is_reassigning());
    let elected = c
        .elect_leaders(
            super::elections::ElectionType::Preferred,
            Some(vec![("t".into(), 0)]),
        )
        .unwrap();
    assert_eq!(elected[0].1, Ok(()));
    assert_eq!(part(&c, "t").leader, 4);
    reassign(&mut c, "t", Some(vec![4, 5, 3])).unwrap();
    let p = part(&c, "t");
    assert!(p.is_reassigning());
    assert!(p.isr.contains(&4) && p.leader == 4, "{p:?}");
    reassign(&mut c, "t", None).unwrap();
    let p = part(&c, "t");
    // Back on the original replicas, in the order the move listed them (as Kafka reverts).
    let mut replicas = p.replicas.clone();
    replicas.sort();
    assert_eq!(replicas, vec![1, 2, 3]);
    assert!(!p.isr.contains(&4), "{p:?}");
    assert!(p.isr.contains(&p.leader), "the leader is in the ISR: {p:?}");
}

#[test]
fn a_cancel_that_would_drop_every_in_sync_replica_is_refused() {
    // Found by the replication simulation: only the added replica was in sync (the others
    // fell behind); reverting dropped it and left the partition with no leader possible.
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), &[1, 2, 3, 4]);
    create(&mut c, "t", vec![1, 2], "1");
    reassign(&mut c, "t", Some(vec![1, 2, 4])).unwrap();
    // Not complete: 2 is behind. Then 1 falls out too, after 4 joined and took the lead.
    alter(&mut c, "t", &[1, 4]);
    let id = c.image().topic("t").unwrap().topic_id;
    c.elect_leaders(
        super::elections::ElectionType::Preferred,
        Some(vec![("t".into(), 0)]),
    )
    .unwrap();
    let mut p = part(&c, "t");
    if p.leader != 4 {
        // The preferred (first) replica is 1; make 4 lead by moving 1 out of the ISR.
        c.alter_partition(
            p.leader,
            id,
            0,
            p.leader_epoch,
            p.partition_epoch,
            vec![1, 4],
        )
        .unwrap();
        p = part(&c, "t");
    }
    c.controlled_shutdown(1).unwrap();
    let p2 = part(&c, "t");
    assert_eq!(p2.isr, vec![4], "{p2:?} (from {p:?})");
    assert!(matches!(
        reassign(&mut c, "t", None),
        Err(ControllerError::InvalidReplicaAssignment { .. })
    ));
    assert_eq!(part(&c, "t"), p2, "a refused cancel changes nothing");
}
