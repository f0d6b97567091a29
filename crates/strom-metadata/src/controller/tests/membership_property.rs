//! Membership under random histories, seeded and reproducible (proptest; `PROPTEST_CASES`
//! raises the case count, a failure prints its minimal history): brokers register, heartbeat,
//! go silent, come back and shut down in a controlled way while a virtual clock advances and
//! the controller checks for stale brokers. After every step:
//! - a broker is fenced exactly when it missed its session or shut down, and not otherwise;
//! - no fenced broker leads a partition; a leader is always in its partition's ISR;
//! - a partition is leaderless only if every ISR member is fenced (no unclean election);
//! - a fenced broker stays in an ISR only as its last member;
//! - leader and partition epochs never go back.
//!
//! At the end, a reopened controller holds the same image.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

const BROKERS: [i32; 4] = [1, 2, 3, 4];
const SESSION_MS: i64 = 9_000;

#[derive(Debug, Clone)]
enum Step {
    /// Time passes; brokers that are alive heartbeat on the way.
    Tick { ms: i64 },
    /// A broker stops heartbeating (crash, pause, partition).
    Silence(usize),
    /// A silent or stopped broker comes back and registers again.
    Return(usize),
    /// SIGTERM: the broker asks to be fenced first.
    ControlledShutdown(usize),
    /// A topic is created over the brokers the controller sees.
    Create { partitions: i32, rf: i16 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (100..6_000i64).prop_map(|ms| Step::Tick { ms }),
        1 => (0..4usize).prop_map(Step::Silence),
        1 => (0..4usize).prop_map(Step::Return),
        1 => (0..4usize).prop_map(Step::ControlledShutdown),
        1 => (1..5i32, 1..4i16).prop_map(|(partitions, rf)| Step::Create { partitions, rf }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Life {
    Alive,
    Silent,
    Stopped,
}

fn check(
    c: &Controller,
    life: &BTreeMap<i32, Life>,
    last_heard: &BTreeMap<i32, i64>,
    now: i64,
    epochs: &mut BTreeMap<(String, i32), (i32, i32)>,
) -> Result<(), TestCaseError> {
    let image = c.image();
    for id in BROKERS {
        let fenced = image.broker(id).map(|b| b.fenced);
        match life[&id] {
            Life::Alive => prop_assert_eq!(fenced, Some(false), "live broker {} fenced", id),
            Life::Stopped => {
                prop_assert_eq!(fenced, Some(true), "stopped broker {} not fenced", id)
            }
            Life::Silent => {
                let silent_for = now - last_heard[&id];
                if silent_for > SESSION_MS + 1_000 {
                    prop_assert_eq!(
                        fenced,
                        Some(true),
                        "broker {} silent {} ms not fenced",
                        id,
                        silent_for
                    );
                }
                if silent_for <= SESSION_MS {
                    prop_assert_eq!(
                        fenced,
                        Some(false),
                        "broker {} fenced after {} ms",
                        id,
                        silent_for
                    );
                }
            }
        }
    }
    let is_fenced = |id: i32| image.broker(id).is_none_or(|b| b.fenced);
    for topic in image.topics() {
        for p in topic.partitions.values() {
            if p.leader >= 0 {
                prop_assert!(
                    !is_fenced(p.leader),
                    "{}-{} led by fenced {}",
                    topic.name,
                    p.partition,
                    p.leader
                );
                prop_assert!(
                    p.isr.contains(&p.leader),
                    "{}-{} leader {} not in ISR {:?}",
                    topic.name,
                    p.partition,
                    p.leader,
                    p.isr
                );
            } else {
                prop_assert!(
                    p.isr.iter().all(|r| is_fenced(*r)),
                    "{}-{} leaderless with a live ISR member {:?}",
                    topic.name,
                    p.partition,
                    p.isr
                );
            }
            if p.isr.iter().any(|r| is_fenced(*r)) {
                prop_assert!(
                    p.isr.len() == 1,
                    "{}-{} keeps fenced members in ISR {:?}",
                    topic.name,
                    p.partition,
                    p.isr
                );
            }
            let key = (topic.name.clone(), p.partition);
            let before = epochs.insert(key, (p.leader_epoch, p.partition_epoch));
            if let Some((le, pe)) = before {
                prop_assert!(
                    p.leader_epoch >= le && p.partition_epoch >= pe,
                    "{}-{} epochs went back",
                    topic.name,
                    p.partition
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn fencing_follows_heartbeats_and_never_elects_a_fenced_or_out_of_sync_leader(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open(dir.path(), "", &BROKERS);
        let mut now: i64 = 1_000_000;
        let mut life: BTreeMap<i32, Life> = BROKERS.iter().map(|b| (*b, Life::Alive)).collect();
        let mut last_heard: BTreeMap<i32, i64> = BROKERS.iter().map(|b| (*b, now)).collect();
        for id in BROKERS {
            c.broker_heartbeat(id, now).unwrap();
        }
        let mut epochs = BTreeMap::new();
        let mut topics = 0;
        for step in steps {
            match step {
                Step::Tick { ms } => {
                    // Heartbeats every 2 s and the fencing check every 1 s, as the brokers
                    // and the active controller run them.
                    let end = now + ms;
                    while now < end {
                        now = (now + 1_000).min(end);
                        if now % 2_000 < 1_000 {
                            for id in BROKERS {
                                if life[&id] == Life::Alive {
                                    c.broker_heartbeat(id, now).unwrap();
                                    last_heard.insert(id, now);
                                }
                            }
                        }
                        c.fence_stale_brokers(now, SESSION_MS).unwrap();
                    }
                }
                Step::Silence(i) => {
                    let id = BROKERS[i];
                    if life[&id] == Life::Alive {
                        life.insert(id, Life::Silent);
                    }
                }
                Step::Return(i) => {
                    let id = BROKERS[i];
                    c.register_broker(id, "localhost", 9092 + id as u16, None).unwrap();
                    c.broker_heartbeat(id, now).unwrap();
                    life.insert(id, Life::Alive);
                    last_heard.insert(id, now);
                }
                Step::ControlledShutdown(i) => {
                    let id = BROKERS[i];
                    c.controlled_shutdown(id).unwrap();
                    life.insert(id, Life::Stopped);
                }
                Step::Create { partitions, rf } => {
                    topics += 1;
                    let _ = create(&mut c, req(&format!("t{topics}"), partitions, rf));
                }
            }
            check(&c, &life, &last_heard, now, &mut epochs)?;
        }
        let image = c.image();
        drop(c);
        let reopened = open(dir.path(), "", &[]);
        prop_assert_eq!(&*reopened.image(), &*image);
    }
}
