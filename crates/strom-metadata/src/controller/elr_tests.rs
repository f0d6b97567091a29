//! KIP-966 eligible leader replicas, rule by rule: replicas leaving an ISR that falls below
//! `min.insync.replicas` join the ELR; the ELR is cleared when the ISR is back at min ISR or
//! min ISR changes; an empty ISR elects from the ELR before any unclean election; a broker
//! restarting after an unclean shutdown leaves every ELR; with neither ISR nor ELR the last
//! known leader is elected; old metadata logs (no ELR fields) still read.

use std::path::Path;

use uuid::Uuid;

use super::*;
use crate::image::PartitionImage;
use crate::records::ConfigResource;

pub(super) fn open(dir: &Path, brokers: &[i32]) -> Controller {
    let text = format!("log.dirs={}\n", dir.display());
    let config = BrokerConfig::parse(&text, &[]).unwrap().0;
    let mut c = Controller::open(dir, &config).unwrap();
    for &id in brokers {
        c.register_broker(id, "localhost", 9092 + id as u16, None)
            .unwrap();
    }
    c
}

/// Topic `name`, one partition on `replicas` (led by the first), with `configs`.
pub(super) fn create(
    c: &mut Controller,
    name: &str,
    replicas: Vec<i32>,
    configs: &[(&str, &str)],
) -> Uuid {
    let request = CreateTopicRequest {
        name: name.into(),
        num_partitions: -1,
        replication_factor: -1,
        assignments: vec![(0, replicas)],
        configs: configs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect(),
    };
    c.create_topics(vec![request], false)
        .pop()
        .unwrap()
        .unwrap()
        .topic_id
}

pub(super) fn part(c: &Controller, name: &str) -> PartitionImage {
    c.image().topic(name).unwrap().partitions[&0].clone()
}

/// The leader changes the ISR to `isr` (it must succeed).
pub(super) fn alter(c: &mut Controller, name: &str, isr: &[i32]) -> PartitionImage {
    let p = part(c, name);
    let id = c.image().topic(name).unwrap().topic_id;
    c.alter_partition(
        p.leader,
        id,
        0,
        p.leader_epoch,
        p.partition_epoch,
        isr.to_vec(),
    )
    .unwrap();
    part(c, name)
}

const MIN_ISR_2: &[(&str, &str)] = &[("min.insync.replicas", "2")];

#[test]
fn replicas_leaving_an_isr_below_min_isr_join_the_elr_and_leave_it_when_the_isr_grows_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), &[1, 2, 3]);
    create(&mut c, "t", vec![1, 2, 3], MIN_ISR_2);
    // Down to min ISR: nothing is eligible outside the ISR (3 may lack what [1, 2] acked).
    let p = alter(&mut c, "t", &[1, 2]);
    assert!(p.eligible_leader_replicas.is_empty(), "{p:?}");
    // Below min ISR: the high watermark stands still, so 2 has every committed record.
    let p = alter(&mut c, "t", &[1]);
    assert_eq!(p.eligible_leader_replicas, vec![2], "{p:?}");
    assert!(p.last_known_elr.is_empty(), "{p:?}");
    assert_eq!(p.leader, 1);
    // Back at min ISR: the ELR is cleared.
    let p = alter(&mut c, "t", &[1, 3]);
    assert_eq!(p.isr, vec![1, 3]);
    assert!(p.eligible_leader_replicas.is_empty(), "{p:?}");
    // Fencing the leader of [1, 3] elects 3 from the ISR; 1 joins the ELR.
    c.controlled_shutdown(1).unwrap();
    let p = part(&c, "t");
    assert_eq!((p.leader, p.isr.clone()), (3, vec![3]), "{p:?}");
    assert_eq!(p.eligible_leader_replicas, vec![1], "{p:?}");
}

#[test]
fn an_empty_isr_elects_from_the_elr_before_any_unclean_election() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), &[1, 2, 3]);
    let configs = [
        ("min.insync.replicas", "2"),
        ("unclean.leader.election.enable", "true"),
    ];
    create(&mut c, "t", vec![1, 3, 2], &configs);
    alter(&mut c, "t", &[1, 2]);
    let p = alter(&mut c, "t", &[1]);
    assert_eq!(p.eligible_leader_replicas, vec![2]);
    let before = p.leader_epoch;
    // The last ISR member goes: 2 (ELR, unfenced) leads, not 3 (first unfenced replica in
    // replica order, which an unclean election would pick).
    c.controlled_shutdown(1).unwrap();
    let p = part(&c, "t");
    assert_eq!(p.leader, 2, "{p:?}");
    assert_eq!(p.isr, vec![2], "an ELR leader is the ISR alone: {p:?}");
    assert_eq!(p.eligible_leader_replicas, vec![1], "{p:?}");
    assert_eq!(p.leader_epoch, before + 1);
    assert!(p.last_known_elr.is_empty(), "{p:?}");
}

#[test]
fn an_unclean_restart_leaves_every_elr_and_a_clean_one_is_elected_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), &[1, 2, 3]);
    create(&mut c, "t", vec![1, 2, 3], MIN_ISR_2);
    alter(&mut c, "t", &[1, 2]);
    alter(&mut c, "t", &[1]);
    c.controlled_shutdown(2).unwrap();
    c.controlled_shutdown(1).unwrap();
    let p = part(&c, "t");
    assert_eq!(p.leader, -1, "{p:?}");
    assert!(p.isr.is_empty(), "{p:?}");
    assert_eq!(p.eligible_leader_replicas, vec![1, 2], "{p:?}");
    assert_eq!(p.last_known_elr, vec![1], "the last leader: {p:?}");
    // 1 restarts after a crash: out of the ELR, and not elected though it is unfenced.
    c.register_broker_incarnation(1, "localhost", 9093, None, &[], false)
        .unwrap();
    assert!(!c.image().broker(1).unwrap().fenced);
    let p = part(&c, "t");
    assert_eq!(p.leader, -1, "{p:?}");
    assert_eq!(p.eligible_leader_replicas, vec![2], "{p:?}");
    // 2 restarts after a clean shutdown: it stays eligible and leads.
    c.register_broker_incarnation(2, "localhost", 9094, None, &[], true)
        .unwrap();
    let p = part(&c, "t");
    assert_eq!((p.leader, p.isr.clone()), (2, vec![2]), "{p:?}");
    assert!(p.eligible_leader_replicas.is_empty(), "{p:?}");
    assert!(p.last_known_elr.is_empty(), "{p:?}");
    // A crash while registered and unfenced: out of the ISR (it was the leader), and not
    // kept in the ELR either.
    c.register_broker_incarnation(2, "localhost", 9094, None, &[], false)
        .unwrap();
    let p = part(&c, "t");
    assert!(!p.eligible_leader_replicas.contains(&2), "{p:?}");
}

#[test]
fn with_no_isr_or_elr_member_left_the_last_known_leader_is_elected() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), &[1, 2]);
    create(&mut c, "t", vec![1, 2], &[]);
    alter(&mut c, "t", &[1]);
    c.controlled_shutdown(1).unwrap();
    let p = part(&c, "t");
    assert_eq!(
        (p.leader, p.eligible_leader_replicas.clone()),
        (-1, vec![1])
    );
    assert_eq!(p.last_known_elr, vec![1]);
    c.register_broker_incarnation(1, "localhost", 9093, None, &[], false)
        .unwrap();
    let p = part(&c, "t");
    assert_eq!(
        (p.leader, p.isr.clone()),
        (1, vec![1]),
        "Kafka 4.1 elects the last known leader: {p:?}"
    );
    assert!(p.eligible_leader_replicas.is_empty() && p.last_known_elr.is_empty());
}

#[test]
fn changing_min_insync_replicas_clears_the_elr() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), &[1, 2, 3]);
    create(&mut c, "t", vec![1, 2, 3], MIN_ISR_2);
    create(&mut c, "u", vec![1, 2, 3], MIN_ISR_2);
    for t in ["t", "u"] {
        alter(&mut c, t, &[1, 2]);
        assert_eq!(alter(&mut c, t, &[1]).eligible_leader_replicas, vec![2]);
    }
    let before = part(&c, "t").partition_epoch;
    c.alter_configs(
        ConfigResource::Topic("t".into()),
        vec![("min.insync.replicas".into(), Some("3".into()))],
        false,
    )
    .unwrap();
    let p = part(&c, "t");
    assert!(p.eligible_leader_replicas.is_empty(), "{p:?}");
    assert_eq!(p.partition_epoch, before + 1);
    assert_eq!(
        part(&c, "u").eligible_leader_replicas,
        vec![2],
        "other topics keep theirs"
    );
    // Another config leaves the ELR alone.
    c.alter_configs(
        ConfigResource::Topic("u".into()),
        vec![
            ("min.insync.replicas".into(), Some("2".into())),
            ("retention.ms".into(), Some("1000".into())),
        ],
        false,
    )
    .unwrap();
    assert_eq!(part(&c, "u").eligible_leader_replicas, vec![2]);
    // The broker-level default changing clears every ELR.
    c.alter_configs(
        ConfigResource::Broker(1),
        vec![("min.insync.replicas".into(), Some("1".into()))],
        false,
    )
    .unwrap();
    assert!(part(&c, "u").eligible_leader_replicas.is_empty());
    let image = c.image();
    drop(c);
    assert_eq!(
        *open(dir.path(), &[]).image(),
        *image,
        "ELR changes replay identically"
    );
}

#[test]
fn partition_records_without_elr_fields_still_read_and_empty_ones_are_not_written() {
    let old = r#"{"type":"Partition","topic_id":"00000000-0000-0000-0000-000000000007","partition":0,"replicas":[1,2],"isr":[1],"leader":1,"leader_epoch":3,"partition_epoch":4}"#;
    let record: MetadataRecord = serde_json::from_str(old).unwrap();
    let MetadataRecord::Partition {
        eligible_leader_replicas,
        last_known_elr,
        ..
    } = &record
    else {
        panic!("{record:?}")
    };
    assert!(eligible_leader_replicas.is_empty() && last_known_elr.is_empty());
    assert_eq!(serde_json::to_string(&record).unwrap(), old);
    let mut with = record.clone();
    if let MetadataRecord::Partition {
        eligible_leader_replicas,
        ..
    } = &mut with
    {
        eligible_leader_replicas.push(2);
    }
    let json = serde_json::to_string(&with).unwrap();
    assert!(json.contains(r#""eligible_leader_replicas":[2]"#), "{json}");
    assert_eq!(serde_json::from_str::<MetadataRecord>(&json).unwrap(), with);
}
