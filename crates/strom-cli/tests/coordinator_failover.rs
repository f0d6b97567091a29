//! The group coordinator across real `strom` processes, driven with librdkafka: on a 3-node
//! cluster with `offsets.topic.replication.factor=3`, FindCoordinator names the leader of the
//! group's `__consumer_offsets` partition; SIGKILL of that broker moves the group to the new
//! leader, which loads the partition, keeps every acknowledged commit, and lets the group go
//! on: a new member starts exactly at the last commit (no re-delivery before it).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::wire::Wire;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};

/// One `__consumer_offsets` partition, so the coordinator of every group is its leader.
const CLUSTER: &[(&str, &str)] = &[
    ("broker.heartbeat.interval.ms", "300"),
    ("broker.session.timeout.ms", "3000"),
    ("replica.lag.time.max.ms", "2000"),
    ("replica.fetch.wait.max.ms", "200"),
    ("offsets.topic.replication.factor", "3"),
    ("offsets.topic.num.partitions", "1"),
    ("group.initial.rebalance.delay.ms", "0"),
];
const TOPIC: &str = "orders";
const PARTITIONS: i32 = 3;
const RECORDS: usize = 600;
const WAIT: Duration = Duration::from_secs(60);

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn setup(cluster: &Cluster) {
    let bootstrap = cluster.bootstrap();
    let admin = common::admin(&bootstrap);
    let topic = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(3));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in block(admin.create_topics([&topic], &opts)).expect("create_topics") {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    let producer = common::producer(&bootstrap, &[("acks", "all")]);
    block(async {
        for i in 0..RECORDS {
            let key = format!("k{i}");
            let value = format!("v{i}");
            producer
                .send(
                    FutureRecord::to(TOPIC)
                        .key(&key)
                        .payload(&value)
                        .partition((i % PARTITIONS as usize) as i32),
                    Duration::from_secs(20),
                )
                .await
                .unwrap_or_else(|(e, _)| panic!("produce {i}: {e}"));
        }
    });
}

fn group_consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    let consumer = common::consumer(
        bootstrap,
        &[
            ("group.id", group),
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
            ("max.poll.interval.ms", "60000"),
        ],
    );
    consumer.subscribe(&[TOPIC]).unwrap();
    consumer
}

/// FindCoordinator for `group` through node `via`: (error code, coordinator node id).
fn find_coordinator(cluster: &Cluster, via: i32, group: &str) -> (i16, i32) {
    let mut wire = Wire::connect(&cluster.nodes[&via].bootstrap());
    let request = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(vec![StrBytes::from_string(group.to_owned())]);
    let r: FindCoordinatorResponse = wire.call(ApiKey::FindCoordinator, 4, &request);
    let c = &r.coordinators[0];
    (c.error_code, c.node_id.0)
}

/// Kafka's NOT_COORDINATOR.
const NOT_COORDINATOR: i16 = 16;

/// A Heartbeat for `group` sent to node `via`: its error code.
fn heartbeat_error(cluster: &Cluster, via: i32, group: &str) -> i16 {
    let mut wire = Wire::connect(&cluster.nodes[&via].bootstrap());
    let request = HeartbeatRequest::default()
        .with_group_id(StrBytes::from_string(group.to_owned()).into())
        .with_generation_id(1)
        .with_member_id(StrBytes::from_static_str("someone"));
    let r: HeartbeatResponse = wire.call(ApiKey::Heartbeat, 4, &request);
    r.error_code
}

/// The leader of `__consumer_offsets`-0 once its ISR holds all three replicas.
fn offsets_leader(cluster: &Cluster, via: i32) -> i32 {
    let (view, _) = cluster.wait_view(via, WAIT, "__consumer_offsets with a full ISR", |v| {
        v.topics
            .get("__consumer_offsets")
            .and_then(|t| t.get(&0))
            .is_some_and(|(leader, _, isr)| *leader > 0 && isr.len() == 3)
    });
    view.topics["__consumer_offsets"][&0].0
}

/// Polls `consumer` until `want` more records arrived (or `deadline`), recording the next
/// offset to consume per partition in `positions`; returns the records' (partition, offset).
fn consume(
    consumer: &BaseConsumer,
    want: usize,
    positions: &mut BTreeMap<i32, i64>,
    deadline: Instant,
) -> Vec<(i32, i64)> {
    let mut seen = Vec::new();
    while seen.len() < want {
        assert!(
            Instant::now() < deadline,
            "consumed only {} of {want} records",
            seen.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                seen.push((m.partition(), m.offset()));
                positions.insert(m.partition(), m.offset() + 1);
            }
            Some(Err(e)) => eprintln!("poll: {e}"),
            None => {}
        }
    }
    seen
}

/// Commits `positions` synchronously, retrying while the coordinator moves.
fn commit(consumer: &BaseConsumer, positions: &BTreeMap<i32, i64>, deadline: Instant) {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in positions {
        tpl.add_partition_offset(TOPIC, *p, Offset::Offset(*o))
            .unwrap();
    }
    loop {
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => return,
            Err(e) => {
                assert!(Instant::now() < deadline, "commit never succeeded: {e}");
                eprintln!("commit: {e}; retrying");
                // Keeps the consumer's heartbeats and coordinator lookups going.
                let _ = consumer.poll(Duration::from_millis(200));
            }
        }
    }
}

#[test]
fn group_moves_to_the_new_coordinator_and_keeps_its_commits() {
    let mut cluster = Cluster::start(3, CLUSTER);
    setup(&cluster);
    let group = "failover-group";
    let bootstrap = cluster.bootstrap();
    let deadline = Instant::now() + Duration::from_secs(120);

    let a = group_consumer(&bootstrap, group);
    let mut positions = BTreeMap::new();
    let mut delivered = consume(&a, 200, &mut positions, deadline);
    commit(&a, &positions, deadline);

    // Every broker names the leader of the group's partition as its coordinator.
    let old = offsets_leader(&cluster, 1);
    for via in 1..=3 {
        assert_eq!(
            find_coordinator(&cluster, via, group),
            (0, old),
            "via {via}"
        );
    }
    let committed_before = positions.clone();

    cluster.kill9(old);
    let survivor = (1..=3).find(|id| *id != old).unwrap();
    let (view, took) = cluster.wait_view(survivor, WAIT, "a new coordinator", |v| {
        v.topics
            .get("__consumer_offsets")
            .and_then(|t| t.get(&0))
            .is_some_and(|(leader, _, _)| *leader > 0 && *leader != old)
    });
    let new = view.topics["__consumer_offsets"][&0].0;
    println!("coordinator moved from {old} to {new} in {took:?}");
    let found = Instant::now();
    loop {
        match find_coordinator(&cluster, survivor, group) {
            (0, id) if id == new => break,
            other => {
                assert!(found.elapsed() < WAIT, "FindCoordinator says {other:?}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }

    assert_eq!(
        heartbeat_error(
            &cluster,
            (1..=3).find(|id| *id != old && *id != new).unwrap(),
            group
        ),
        NOT_COORDINATOR
    );

    // The same member carries on against the new coordinator and commits again.
    delivered.extend(consume(&a, 200, &mut positions, deadline));
    commit(&a, &positions, deadline);
    let last_commit = positions.clone();
    assert!(last_commit
        .iter()
        .all(|(p, o)| *o >= committed_before.get(p).copied().unwrap_or(0)));
    drop(a);

    // A new member of the group starts exactly at the last commit.
    let b = group_consumer(&cluster.bootstrap(), group);
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(TOPIC, p);
    }
    let committed = loop {
        match b.committed_offsets(tpl.clone(), Duration::from_secs(10)) {
            Ok(c) => break c,
            Err(e) => {
                assert!(Instant::now() < deadline, "committed offsets: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    for (p, o) in &last_commit {
        let got = committed.find_partition(TOPIC, *p).unwrap().offset();
        assert_eq!(got, Offset::Offset(*o), "committed offset of partition {p}");
    }
    let remaining = RECORDS - last_commit.values().sum::<i64>() as usize;
    let mut b_positions = BTreeMap::new();
    let rest = consume(&b, remaining, &mut b_positions, deadline);
    let mut first: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in &rest {
        first.entry(*p).or_insert(*o);
        assert!(
            *o >= last_commit.get(p).copied().unwrap_or(0),
            "partition {p} offset {o} re-delivered below the last commit {last_commit:?}"
        );
    }
    for (p, o) in &first {
        assert_eq!(
            *o,
            last_commit.get(p).copied().unwrap_or(0),
            "partition {p} resumed elsewhere than the commit"
        );
    }
    // Together the two members saw every record; nothing after the commit twice.
    let mut all: Vec<(i32, i64)> = delivered
        .iter()
        .filter(|(p, o)| *o < last_commit.get(p).copied().unwrap_or(0))
        .chain(rest.iter())
        .copied()
        .collect();
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(
        before,
        all.len(),
        "a record delivered twice after the commit"
    );
    assert_eq!(all.len(), RECORDS, "records missing");
}
