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
    describe_apis(&cluster, follower, view.controller);

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

/// DescribeQuorum (forwarded from a follower), DescribeTopicPartitions with paging, and
/// DescribeLogDirs, as Kafka's tools send them.
fn describe_apis(cluster: &Cluster, follower: i32, controller: i32) {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
    use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    let mut wire = common::wire::Wire::connect(&cluster.nodes[&follower].bootstrap());
    let mut partition = PartitionData::default();
    partition.partition_index = 0;
    let mut topic = TopicData::default();
    topic.topic_name = TopicName(StrBytes::from_static_str("__cluster_metadata"));
    topic.partitions = vec![partition];
    let q: DescribeQuorumResponse = wire.call(
        ApiKey::DescribeQuorum,
        2,
        &DescribeQuorumRequest::default().with_topics(vec![topic]),
    );
    let p = &q.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "{q:?}");
    assert_eq!(p.leader_id.0, controller);
    assert!(p.leader_epoch > 0 && p.high_watermark > 0, "{p:?}");
    let voters: Vec<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
    assert_eq!(voters, [1, 2, 3]);
    for v in &p.current_voters {
        assert!(v.log_end_offset > 0, "voter {v:?} holds entries");
    }
    assert_eq!(
        q.nodes.len(),
        3,
        "v2 lists the voters' CONTROLLER endpoints"
    );

    // Six partitions, two per page: three pages with a cursor between them.
    let mut cursor = None;
    let mut seen = Vec::new();
    for page in 0.. {
        assert!(page < 5, "paging must end");
        let mut req = DescribeTopicPartitionsRequest::default();
        let mut t = TopicRequest::default();
        t.name = TopicName(StrBytes::from_static_str("even"));
        req.topics = vec![t];
        req.response_partition_limit = 2;
        req.cursor = cursor.take();
        let r: DescribeTopicPartitionsResponse =
            wire.call(ApiKey::DescribeTopicPartitions, 0, &req);
        for t in &r.topics {
            assert_eq!(t.error_code, 0);
            for p in &t.partitions {
                assert_eq!(p.replica_nodes.len(), 3);
                assert!(p.offline_replicas.is_empty());
                // Never null: the Java admin client dereferences them.
                assert_eq!(p.eligible_leader_replicas.as_deref(), Some(&[][..]));
                assert_eq!(p.last_known_elr.as_deref(), Some(&[][..]));
                seen.push(p.partition_index);
            }
        }
        match r.next_cursor {
            Some(c) => {
                let mut next = describe_topic_partitions_request::Cursor::default();
                next.topic_name = c.topic_name;
                next.partition_index = c.partition_index;
                cursor = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(seen, [0, 1, 2, 3, 4, 5]);

    // Each broker reports its own log dir and the partitions it hosts (all six: RF 3 of 3).
    let mut dir_topic = DescribableLogDirTopic::default();
    dir_topic.topic = TopicName(StrBytes::from_static_str("even"));
    dir_topic.partitions = (0..6).collect();
    let d: DescribeLogDirsResponse = wire.call(
        ApiKey::DescribeLogDirs,
        4,
        &DescribeLogDirsRequest::default().with_topics(Some(vec![dir_topic])),
    );
    assert_eq!(d.results.len(), 1);
    let dir = &d.results[0];
    assert!(dir.log_dir.ends_with("data"), "{dir:?}");
    assert_eq!(dir.topics[0].partitions.len(), 6);
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
    // `strom cluster status` shows it: fenced, leading nothing, its partitions
    // under-replicated.
    let (ok, out) = cluster.cli(survivor, &["cluster", "status", "--output", "json"]);
    assert!(ok, "{out}");
    let status: serde_json::Value = serde_json::from_str(out.trim()).expect(&out);
    let dead = status["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == old)
        .unwrap_or_else(|| panic!("broker {old} missing: {status}"));
    assert_eq!(dead["state"], "fenced or offline", "{status}");
    assert_eq!(dead["leaders"], 0, "{status}");
    let before_partitions = fenced.topics["before"].len();
    let under: Vec<&str> = status["under_replicated"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["partition"].as_str())
        .filter(|p| p.starts_with("before-"))
        .collect();
    assert_eq!(under.len(), before_partitions, "{status}");
    let offline_before = status["offline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            p["partition"]
                .as_str()
                .is_some_and(|p| p.starts_with("before-"))
        })
        .count();
    assert_eq!(offline_before, 0, "{status}");
    let (ok, table) = cluster.cli(survivor, &["cluster", "status"]);
    assert!(
        ok && table.contains("Under-replicated partitions:"),
        "{table}"
    );
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

/// The other layout: three dedicated controllers (no client listener) and two broker-only
/// nodes that follow the quorum as observers and forward metadata operations to it. The active
/// controller is killed and another takes over; a killed broker is fenced; both come back.
#[test]
fn dedicated_controllers_and_brokers_form_a_cluster_and_survive_failures() {
    let mut cluster = Cluster::start_layout(3, 2, FAST);
    // Metadata names a broker as controller (clients send admin requests there and it
    // forwards); DescribeQuorum names the dedicated active controller.
    cluster.wait_view(4, WAIT, "two brokers", |v| {
        v.brokers == [4, 5] && [4, 5].contains(&v.controller)
    });
    let old = cluster.quorum_leader(4);
    assert!((1..=3).contains(&old), "active controller {old}");
    create_topic(&cluster.nodes[&5].bootstrap(), "split", 4, 2);
    let (view2, _) = cluster.wait_view(4, WAIT, "topic split", |v| v.topics.contains_key("split"));
    let (leaders, replicas) = spread(&view2, "split");
    assert_eq!(leaders, BTreeMap::from([(4, 2), (5, 2)]), "{view2:?}");
    assert_eq!(replicas, BTreeMap::from([(4, 4), (5, 4)]));
    let producer = common::producer(&cluster.bootstrap(), &[("acks", "all")]);
    tokio_block(async {
        for i in 0..40 {
            let key = format!("k{i}");
            producer
                .send(
                    FutureRecord::to("split").key(&key).payload("v"),
                    Duration::from_secs(10),
                )
                .await
                .expect("acknowledged");
        }
    });

    // The active controller dies: the brokers follow the new one and keep creating topics.
    cluster.kill9(old);
    let started = Instant::now();
    while cluster.quorum_leader(4) == old || cluster.quorum_leader(4) <= 0 {
        assert!(started.elapsed() < WAIT, "no new controller");
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    eprintln!("dedicated layout: new controller seen by a broker {took:?} after SIGKILL of {old}");
    create_topic(&cluster.nodes[&4].bootstrap(), "after-failover", 2, 2);
    cluster.wait_view(5, WAIT, "topic after-failover", |v| {
        v.topics.contains_key("after-failover")
    });
    cluster.restart(old);

    // A broker dies: fenced, its leaderships moved to the other; back after a restart.
    cluster.kill9(4);
    let (fenced, took) = cluster.wait_view(5, WAIT, "broker 4 fenced", |v| v.brokers == [5]);
    eprintln!("dedicated layout: broker 4 fenced {took:?} after SIGKILL");
    for (p, (leader, _, _)) in &fenced.topics["split"] {
        assert_eq!(*leader, 5, "partition {p}");
    }
    cluster.restart(4);
    cluster.wait_view(5, WAIT, "broker 4 back", |v| v.brokers == [4, 5]);
    let (restarted, _) = cluster.wait_view(4, WAIT, "broker 4 caught up", |v| {
        v.topics.contains_key("after-failover")
    });
    assert!(restarted.topics.contains_key("split"));
    // Broker-only nodes follow the committed entries, not whole images.
    for broker in [4, 5] {
        let log = cluster.log(broker);
        assert!(
            log.contains("following committed metadata entries"),
            "broker {broker} never fetched entries:\n{log}"
        );
    }
}

/// A dedicated controller needs a quorum to be part of: without `controller.quorum.voters`
/// it refuses to start, with a message saying why.
#[test]
fn a_dedicated_controller_without_voters_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strom"))
        .arg("server")
        .args(["--set", "process.roles=controller"])
        .args(["--set", &format!("log.dirs={}", dir.path().display())])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("needs controller.quorum.voters"),
        "{stderr}"
    );
}

/// Whether every partition of `topic` is led by its first replica.
fn preferred_leaders(view: &View, topic: &str) -> bool {
    view.topics
        .get(topic)
        .is_some_and(|t| !t.is_empty() && t.values().all(|(l, r, _)| Some(l) == r.first()))
}

/// After a restart, a broker's preferred leaderships come back: by Kafka's ElectLeaders (what
/// `kafka-leader-election.sh --election-type preferred --all-topic-partitions` sends), or by
/// the controller itself with `auto.leader.rebalance.enable`.
#[test]
fn leaderships_return_to_preferred_replicas_by_election_or_automatically() {
    use kafka_protocol::messages::{ApiKey, ElectLeadersRequest, ElectLeadersResponse};

    for auto in [false, true] {
        let mut extra = FAST.to_vec();
        extra.push((
            "auto.leader.rebalance.enable",
            if auto { "true" } else { "false" },
        ));
        extra.push(("leader.imbalance.check.interval.seconds", "1"));
        extra.push(("replica.lag.time.max.ms", "2000"));
        let mut cluster = Cluster::start(3, &extra);
        cluster.wait_view(1, WAIT, "three brokers", |v| v.brokers == [1, 2, 3]);
        let topic = "prefer";
        create_topic(&cluster.bootstrap(), topic, 6, 3);
        cluster.wait_view(1, WAIT, "preferred leaders", |v| {
            preferred_leaders(v, topic)
        });
        cluster.stop(1);
        cluster.restart(1);
        let all_in_sync = |v: &View| {
            v.topics
                .get(topic)
                .is_some_and(|t| t.values().all(|(_, _, isr)| isr.len() == 3))
        };
        let (_, took) = cluster.wait_view(2, WAIT, "broker 1 back in every ISR", all_in_sync);
        if auto {
            let (_, back) = cluster.wait_view(2, WAIT, "leaders rebalanced", |v| {
                preferred_leaders(v, topic)
            });
            println!("automatic rebalance: ISR full after {took:?}, leaders back {back:?} later");
            continue;
        }
        // Switched off, the imbalance stays until asked.
        std::thread::sleep(Duration::from_secs(3));
        assert!(!preferred_leaders(&cluster.view(2), topic));
        let mut wire = common::wire::Wire::connect(&cluster.nodes[&3].bootstrap());
        let mut all = ElectLeadersRequest::default();
        all.election_type = 0;
        all.topic_partitions = None;
        all.timeout_ms = 30_000;
        let answer: ElectLeadersResponse = wire.call(ApiKey::ElectLeaders, 2, &all);
        assert_eq!(answer.error_code, 0);
        let elected: usize = answer
            .replica_election_results
            .iter()
            .flat_map(|t| &t.partition_result)
            .inspect(|p| assert_eq!(p.error_code, 0, "{p:?}"))
            .count();
        assert_eq!(
            elected, 2,
            "broker 1 prefers two of six partitions: {answer:?}"
        );
        cluster.wait_view(2, WAIT, "preferred leaders", |v| {
            preferred_leaders(v, topic)
        });
        // Nothing left: an explicit partition is answered ELECTION_NOT_NEEDED (84).
        let mut one = all.clone();
        let mut tp = kafka_protocol::messages::elect_leaders_request::TopicPartitions::default();
        tp.topic = kafka_protocol::messages::TopicName(
            kafka_protocol::protocol::StrBytes::from_static_str(topic),
        );
        tp.partitions = vec![0];
        one.topic_partitions = Some(vec![tp]);
        let answer: ElectLeadersResponse = wire.call(ApiKey::ElectLeaders, 2, &one);
        assert_eq!(
            answer.replica_election_results[0].partition_result[0].error_code,
            84
        );
    }
}
