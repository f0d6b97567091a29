//! The transaction coordinator across real `strom` processes, driven with librdkafka: on a
//! 3-node cluster with `transaction.state.log.replication.factor=3`, the broker leading the
//! transactional id's `__transaction_state` partition is SIGKILLed while a transaction is
//! open. The new leader loads the transaction state, markers reach partitions led by other
//! brokers (WriteTxnMarkers), later transactions commit, and a read_committed consumer sees
//! every committed record exactly once and nothing of an aborted transaction.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};

/// One `__transaction_state` partition, so the coordinator of every id is its leader.
const CLUSTER: &[(&str, &str)] = &[
    ("broker.heartbeat.interval.ms", "300"),
    ("broker.session.timeout.ms", "3000"),
    ("replica.lag.time.max.ms", "2000"),
    ("replica.fetch.wait.max.ms", "200"),
    ("transaction.state.log.replication.factor", "3"),
    ("transaction.state.log.num.partitions", "1"),
    ("offsets.topic.replication.factor", "3"),
    (
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "1000",
    ),
];
const TOPIC: &str = "payments";
const PARTITIONS: i32 = 3;
const PER_TXN: usize = 12;
const WAIT: Duration = Duration::from_secs(60);
const TXN_TIMEOUT: Duration = Duration::from_secs(60);

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn producer(bootstrap: &str) -> FutureProducer {
    let p = common::producer(
        bootstrap,
        &[
            ("transactional.id", "failover-txn"),
            ("acks", "all"),
            ("transaction.timeout.ms", "60000"),
        ],
    );
    p.init_transactions(TXN_TIMEOUT).expect("init_transactions");
    p
}

/// Sends transaction `t`'s records; Err if a send failed.
fn send_txn(p: &FutureProducer, t: usize) -> Result<(), KafkaError> {
    block(async {
        for j in 0..PER_TXN {
            let value = format!("t{t}-{j}");
            p.send(
                FutureRecord::<str, str>::to(TOPIC)
                    .payload(&value)
                    .partition((j % PARTITIONS as usize) as i32),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)?;
        }
        Ok(())
    })
}

fn values_of(t: usize) -> Vec<String> {
    (0..PER_TXN).map(|j| format!("t{t}-{j}")).collect()
}

/// The leader of `__transaction_state`-0 once its ISR holds all three replicas.
fn txn_state_leader(cluster: &Cluster, via: i32) -> i32 {
    let (view, _) = cluster.wait_view(via, WAIT, "__transaction_state with a full ISR", |v| {
        v.topics
            .get("__transaction_state")
            .and_then(|t| t.get(&0))
            .is_some_and(|(leader, _, isr)| *leader > 0 && isr.len() == 3)
    });
    view.topics["__transaction_state"][&0].0
}

/// Everything a read_committed consumer reads from the start of every partition.
fn read_committed(bootstrap: &str, expected_at_least: usize) -> Vec<String> {
    let consumer = common::consumer(bootstrap, &[("isolation.level", "read_committed")]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut values = Vec::new();
    let deadline = Instant::now() + WAIT;
    let mut last = Instant::now();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                values.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
                last = Instant::now();
            }
            Some(Err(e)) => eprintln!("poll: {e}"),
            None => {
                if values.len() >= expected_at_least && last.elapsed() > Duration::from_secs(3) {
                    break;
                }
            }
        }
    }
    values
}

#[test]
fn a_transaction_commits_after_its_coordinator_dies() {
    let mut cluster = Cluster::start(3, CLUSTER);
    let bootstrap = cluster.bootstrap();
    let admin = common::admin(&bootstrap);
    let topic = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(3));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in block(admin.create_topics([&topic], &opts)).expect("create_topics") {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }

    let mut committed: BTreeSet<usize> = BTreeSet::new();
    let mut aborted: BTreeSet<usize> = BTreeSet::new();
    // Transactions whose outcome the client could not learn: all of it or none of it.
    let mut unknown: BTreeSet<usize> = BTreeSet::new();

    let p = producer(&bootstrap);
    for t in 0..3 {
        p.begin_transaction().unwrap();
        send_txn(&p, t).unwrap();
        p.commit_transaction(TXN_TIMEOUT).unwrap();
        committed.insert(t);
    }
    // An aborted one, before any fault.
    p.begin_transaction().unwrap();
    send_txn(&p, 3).unwrap();
    p.abort_transaction(TXN_TIMEOUT).unwrap();
    aborted.insert(3);

    // Transaction 4 is open when its coordinator dies.
    let old = txn_state_leader(&cluster, 1);
    // Markers must cross brokers: some partition of the data topic is led elsewhere.
    let leaders: Vec<i32> = cluster.view(1).topics[TOPIC]
        .values()
        .map(|(leader, _, _)| *leader)
        .collect();
    assert!(
        leaders.iter().any(|l| *l != old),
        "every partition led by the coordinator {old}: {leaders:?}"
    );
    p.begin_transaction().unwrap();
    send_txn(&p, 4).unwrap();
    cluster.kill9(old);
    let survivor = (1..=3).find(|id| *id != old).unwrap();
    let (_, took) = cluster.wait_view(survivor, WAIT, "a new transaction coordinator", |v| {
        v.topics
            .get("__transaction_state")
            .and_then(|t| t.get(&0))
            .is_some_and(|(leader, _, _)| *leader > 0 && *leader != old)
    });
    println!("transaction coordinator {old} killed; new leader elected in {took:?}");
    let mut p = Some(p);
    match p.as_ref().unwrap().commit_transaction(TXN_TIMEOUT) {
        Ok(()) => {
            println!("transaction 4 committed through the new coordinator");
            committed.insert(4);
        }
        Err(e) => {
            println!("committing transaction 4 failed: {e}");
            unknown.insert(4);
            // A fresh producer of the same id fences the old one; the coordinator aborts
            // whatever was still open.
            p = None;
        }
    }
    let p = match p {
        Some(p) => p,
        None => producer(&cluster.bootstrap()),
    };

    // Transactions after the failover commit.
    for t in 5..8 {
        let deadline = Instant::now() + WAIT;
        loop {
            p.begin_transaction().unwrap();
            let sent = send_txn(&p, t);
            let result = sent.and_then(|()| p.commit_transaction(TXN_TIMEOUT));
            match result {
                Ok(()) => {
                    committed.insert(t);
                    break;
                }
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "transaction {t} never committed: {e}"
                    );
                    println!("transaction {t}: {e}; aborting and retrying");
                    p.abort_transaction(TXN_TIMEOUT)
                        .unwrap_or_else(|e| panic!("abort of {t}: {e}"));
                    // Its records are aborted: the retry carries the same values, so a
                    // value seen is counted against the committed attempt only.
                }
            }
        }
    }
    assert!(
        committed.contains(&7),
        "no transaction committed after the failover"
    );
    drop(p);

    let expected: usize = committed.len() * PER_TXN;
    let values = read_committed(&cluster.bootstrap(), expected);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for v in &values {
        *counts.entry(v.clone()).or_default() += 1;
    }
    for t in &committed {
        for v in values_of(*t) {
            assert_eq!(
                counts.get(&v).copied(),
                Some(1),
                "committed {v}: {counts:?}"
            );
        }
    }
    for t in &aborted {
        for v in values_of(*t) {
            assert!(
                !counts.contains_key(&v),
                "aborted {v} visible to read_committed"
            );
        }
    }
    for t in &unknown {
        let seen = values_of(*t)
            .iter()
            .filter(|v| counts.contains_key(*v))
            .count();
        assert!(
            seen == 0 || seen == PER_TXN,
            "transaction {t} half visible: {seen} of {PER_TXN}"
        );
        for v in values_of(*t) {
            assert!(counts.get(&v).copied().unwrap_or(0) <= 1, "{v} twice");
        }
    }
    let known: BTreeSet<String> = committed
        .iter()
        .chain(&unknown)
        .flat_map(|t| values_of(*t))
        .collect();
    let unexpected: Vec<&String> = counts.keys().filter(|v| !known.contains(*v)).collect();
    assert!(unexpected.is_empty(), "unexpected records {unexpected:?}");
    println!(
        "read_committed saw {} records: committed {committed:?}, aborted {aborted:?}, unknown {unknown:?}",
        values.len()
    );
}
