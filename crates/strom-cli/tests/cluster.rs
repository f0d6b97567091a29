//! Three real `strom server` processes form a cluster from Kafka-style properties (combined
//! broker + controller nodes, `controller.quorum.voters`, CONTROLLER listeners) and are driven
//! with librdkafka and raw Kafka requests while nodes are killed (SIGKILL), paused
//! (SIGSTOP/SIGCONT), stopped (SIGTERM), restarted and wiped. Times printed are measurements on
//! this machine, not assertions.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, View};
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};

/// Heartbeats and the session timeout short enough for a test, long enough for a loaded
/// 2-core machine not to fence a live broker.
const FAST: &[(&str, &str)] = &[
    ("broker.heartbeat.interval.ms", "300"),
    ("broker.session.timeout.ms", "3000"),
];

const WAIT: Duration = Duration::from_secs(60);

fn create_topic(bootstrap: &str, name: &str, partitions: i32, rf: i32) {
    let admin = common::admin(bootstrap);
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(rf));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = tokio_block(admin.create_topics([&topic], &opts)).expect("create_topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
}

fn tokio_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// How many partitions each broker leads, and how many replicas it holds.
fn spread(view: &View, topic: &str) -> (BTreeMap<i32, usize>, BTreeMap<i32, usize>) {
    let mut leaders = BTreeMap::new();
    let mut replicas = BTreeMap::new();
    for (leader, reps, _) in view.topics[topic].values() {
        *leaders.entry(*leader).or_insert(0) += 1;
        for r in reps {
            *replicas.entry(*r).or_insert(0) += 1;
        }
    }
    (leaders, replicas)
}

/// Some node other than `not`, running.
fn other_than(cluster: &Cluster, not: &[i32]) -> i32 {
    *cluster
        .nodes
        .keys()
        .find(|id| !not.contains(id) && cluster.nodes[id].is_running())
        .expect("another running node")
}

#[test]
fn three_nodes_form_a_cluster_place_evenly_forward_and_serve_clients() {
    let cluster = Cluster::start(3, FAST);
    let (view, _) = cluster.wait_view(1, WAIT, "three brokers and a controller", |v| {
        v.brokers == [1, 2, 3] && v.controller > 0
    });
    // Every node agrees on the brokers and the active controller.
    for id in [2, 3] {
        let (v, _) = cluster.wait_view(id, WAIT, "the same controller", |v| {
            v.brokers == [1, 2, 3] && v.controller == view.controller
        });
        assert_eq!(v.controller, view.controller);
    }

    // CreateTopics sent to a node that is not the active controller is forwarded.
    let follower = other_than(&cluster, &[view.controller]);
    let started = Instant::now();
    create_topic(&cluster.nodes[&follower].bootstrap(), "even", 6, 3);
    eprintln!(
        "CreateTopics (6 partitions, RF 3) through follower {follower}, forwarded: {:?}",
        started.elapsed()
    );
    let (view, _) = cluster.wait_view(1, WAIT, "topic even", |v| v.topics.contains_key("even"));
    let (leaders, replicas) = spread(&view, "even");
    assert_eq!(
        leaders,
        BTreeMap::from([(1, 2), (2, 2), (3, 2)]),
        "leaders even: {view:?}"
    );
    assert_eq!(replicas, BTreeMap::from([(1, 6), (2, 6), (3, 6)]));
    for (p, (_, reps, isr)) in &view.topics["even"] {
        let mut distinct = reps.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "partition {p}: replicas on 3 brokers");
        assert_eq!(isr.len(), 3);
    }
    // RF above the broker count is refused with INVALID_REPLICATION_FACTOR.
    let admin = common::admin(&cluster.bootstrap());
    let too_many = NewTopic::new("too-many", 1, TopicReplication::Fixed(4));
    let results = tokio_block(admin.create_topics([&too_many], &AdminOptions::new())).unwrap();
    assert!(
        matches!(
            &results[0],
            Err((
                _,
                rdkafka::types::RDKafkaErrorCode::InvalidReplicationFactor
            ))
        ),
        "{results:?}"
    );

    // librdkafka produces to each partition's leader and reads everything back.
    let producer = common::producer(&cluster.bootstrap(), &[("acks", "all")]);
    tokio_block(async {
        for i in 0..300 {
            let key = format!("k{i}");
            let value = format!("v{i}");
            producer
                .send(
                    FutureRecord::to("even").key(&key).payload(&value),
                    Duration::from_secs(10),
                )
                .await
                .expect("acknowledged");
        }
    });
    let consumer = common::consumer(&cluster.bootstrap(), &[]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..6 {
        tpl.add_partition_offset("even", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + WAIT;
    while seen.len() < 300 && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
            *seen.entry(key).or_insert(0) += 1;
        }
    }
    let lost = (0..300)
        .filter(|i| !seen.contains_key(&format!("k{i}")))
        .count();
    let duplicated = seen.values().filter(|n| **n > 1).count();
    assert_eq!((lost, duplicated), (0, 0), "lost and duplicated records");
}

#[test]
fn controller_and_broker_failures_elect_fence_and_unfence() {
    let mut cluster = Cluster::start(3, FAST);
    let (view, _) = cluster.wait_view(1, WAIT, "a controller", |v| {
        v.brokers == [1, 2, 3] && v.controller > 0
    });
    create_topic(&cluster.bootstrap(), "before", 6, 3);
    cluster.wait_view(1, WAIT, "topic before", |v| v.topics.contains_key("before"));

    // SIGKILL the active controller: another takes over with nothing lost.
    let old = view.controller;
    let survivor = other_than(&cluster, &[old]);
    cluster.kill9(old);
    let (after, elected) = cluster.wait_view(survivor, WAIT, "a new controller", |v| {
        v.controller > 0 && v.controller != old
    });
    eprintln!(
        "new active controller {} {elected:?} after SIGKILL of {old}",
        after.controller
    );
    assert!(
        after.topics.contains_key("before"),
        "metadata survives: {after:?}"
    );
    // The dead node is fenced: out of Metadata, no leaderships, out of every ISR.
    let (fenced, took) = cluster.wait_view(survivor, WAIT, "the dead broker fenced", |v| {
        !v.brokers.contains(&old)
    });
    eprintln!(
        "broker {old} fenced {took:?} after the new controller was seen (session timeout 3 s)"
    );
    for (p, (leader, _, isr)) in &fenced.topics["before"] {
        assert_ne!(*leader, old, "partition {p} still led by the dead broker");
        assert!(*leader > 0, "partition {p} has a leader");
        assert!(
            !isr.contains(&old),
            "partition {p}: dead broker left the ISR"
        );
    }
    // Metadata operations keep working through any survivor (forwarded when needed).
    for id in cluster
        .nodes
        .keys()
        .copied()
        .filter(|id| *id != old)
        .collect::<Vec<_>>()
    {
        let name = format!("created-via-{id}");
        let started = Instant::now();
        create_topic(&cluster.nodes[&id].bootstrap(), &name, 2, 2);
        eprintln!(
            "CreateTopics via node {id} with one node down: {:?}",
            started.elapsed()
        );
    }
    // It comes back from its data directory, registers and is unfenced.
    let started = Instant::now();
    cluster.restart(old);
    let (back, _) = cluster.wait_view(survivor, WAIT, "the restarted broker back", |v| {
        v.brokers == [1, 2, 3]
    });
    eprintln!(
        "broker {old} unfenced {:?} after restart",
        started.elapsed()
    );
    for name in ["before", "created-via-1", "created-via-2", "created-via-3"] {
        if name != format!("created-via-{old}") {
            assert!(back.topics.contains_key(name), "{name} in {back:?}");
        }
    }
    let (restarted_view, _) = cluster.wait_view(old, WAIT, "the restarted node caught up", |v| {
        v.topics.len() == back.topics.len()
    });
    assert_eq!(
        restarted_view.topics.keys().collect::<Vec<_>>(),
        back.topics.keys().collect::<Vec<_>>()
    );

    // SIGSTOP a broker that is not the controller: fenced while paused, back after SIGCONT.
    let controller = cluster.view(survivor).controller;
    let paused = other_than(&cluster, &[controller]);
    let watcher = controller;
    cluster.pause(paused);
    let (_, took) = cluster.wait_view(watcher, WAIT, "the paused broker fenced", |v| {
        !v.brokers.contains(&paused)
    });
    eprintln!("paused broker {paused} fenced after {took:?}");
    cluster.resume(paused);
    let (_, took) = cluster.wait_view(watcher, WAIT, "the resumed broker unfenced", |v| {
        v.brokers.contains(&paused)
    });
    eprintln!("resumed broker {paused} unfenced after {took:?}");
}

#[test]
fn sigterm_moves_leaderships_first_and_a_wiped_node_rejoins() {
    let mut cluster = Cluster::start(3, FAST);
    cluster.wait_view(1, WAIT, "three brokers", |v| {
        v.brokers == [1, 2, 3] && v.controller > 0
    });
    create_topic(&cluster.bootstrap(), "rolling", 6, 3);
    let (view, _) = cluster.wait_view(1, WAIT, "topic rolling", |v| {
        v.topics.contains_key("rolling")
    });

    // Controlled shutdown: by the time the process has exited, no partition names it leader.
    let leaving = other_than(&cluster, &[view.controller]);
    assert!(
        cluster.stop(leaving),
        "clean exit on SIGTERM:\n{}",
        cluster.log(leaving)
    );
    let watcher = view.controller;
    let after = cluster.view(watcher);
    for (p, (leader, _, _)) in &after.topics["rolling"] {
        assert_ne!(
            *leader, leaving,
            "partition {p} still led by the stopped broker: {after:?}"
        );
        assert!(*leader > 0);
    }
    assert!(!after.brokers.contains(&leaving), "{after:?}");

    // A replaced disk: the node starts with an empty data directory, catches up from the
    // quorum (log or snapshot) and serves the same metadata.
    cluster.wipe(leaving);
    cluster.restart(leaving);
    let (rejoined, _) = cluster.wait_view(leaving, WAIT, "the wiped node caught up", |v| {
        v.topics.contains_key("rolling") && v.brokers == [1, 2, 3]
    });
    assert_eq!(rejoined.topics["rolling"].len(), 6);
    // The quorum still commits with the wiped node among its voters.
    create_topic(&cluster.nodes[&leaving].bootstrap(), "after-wipe", 1, 3);
    cluster.wait_view(watcher, WAIT, "topic after-wipe", |v| {
        v.topics.contains_key("after-wipe")
    });
}
