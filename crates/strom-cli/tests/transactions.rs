//! Transactions through the real `strom` binary with librdkafka (the rdkafka crate) and
//! kafka-python: commit/abort under both isolation levels, fencing, consume-transform-produce
//! with offsets in the transaction, a broker crash mid-transaction, coordinator timeouts.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{client_config, create_topic, Server};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(15);

fn start_server() -> Server {
    Server::start(&[
        ("group.initial.rebalance.delay.ms", "0"),
        (
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            "100",
        ),
        ("transaction.state.log.num.partitions", "5"),
        ("offsets.topic.num.partitions", "5"),
    ])
}

fn make_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(create_topic(bootstrap, topic, partitions, &[]));
}

fn txn_producer(bootstrap: &str, id: &str, timeout_ms: u32) -> BaseProducer {
    let producer: BaseProducer = client_config(bootstrap)
        .set("transactional.id", id)
        .set("transaction.timeout.ms", timeout_ms.to_string())
        .set("message.timeout.ms", timeout_ms.min(20_000).to_string())
        .set("socket.timeout.ms", timeout_ms.min(10_000).to_string())
        .set("linger.ms", "5")
        .create()
        .expect("transactional producer");
    producer.init_transactions(T).expect("init_transactions");
    producer
}

/// Sends `values` (as strings) round-robin over `partitions` partitions of `topic`.
fn send(producer: &BaseProducer, topic: &str, partitions: i32, values: std::ops::Range<i32>) {
    for i in values {
        let value = i.to_string();
        let record: BaseRecord<'_, (), str> = BaseRecord::to(topic)
            .partition(i % partitions)
            .payload(&value);
        producer
            .send(record)
            .unwrap_or_else(|(e, _)| panic!("send {i}: {e}"));
    }
    producer.poll(Duration::ZERO);
}

fn reader(bootstrap: &str, isolation: &str) -> BaseConsumer {
    client_config(bootstrap)
        .set("group.id", "strom-txn-reader")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation)
        .set("fetch.wait.max.ms", "50")
        .create()
        .expect("consumer")
}

/// Every value readable from the start of `topic` under `isolation`, read until nothing new
/// arrives for `quiet` (after at least `min` values).
fn read_all(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
    min: usize,
    quiet: Duration,
) -> BTreeSet<i32> {
    let consumer = reader(bootstrap, isolation);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).expect("assign");
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + T;
    let mut last_new = Instant::now();
    while Instant::now() < deadline && (seen.len() < min || last_new.elapsed() < quiet) {
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                let v: i32 = std::str::from_utf8(m.payload().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!(seen.insert(v), "value {v} delivered twice");
                last_new = Instant::now();
            }
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    seen
}

/// (latest offset under read_committed = the LSO, latest under read_uncommitted = the HW).
fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> (i64, i64) {
    let latest = |isolation| {
        reader(bootstrap, isolation)
            .fetch_watermarks(topic, partition, T)
            .expect("watermarks")
            .1
    };
    (latest("read_committed"), latest("read_uncommitted"))
}

fn set(r: impl IntoIterator<Item = i32>) -> BTreeSet<i32> {
    r.into_iter().collect()
}

fn is_fenced_or_fatal(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(e) => e.is_fatal() || e.txn_requires_abort(),
        _ => false,
    }
}

#[test]
fn committed_data_is_read_committed_and_aborted_data_only_uncommitted() {
    let server = start_server();
    let b = server.bootstrap();
    make_topic(&b, "tx", 2);
    let producer = txn_producer(&b, "tx-commit", 60_000);
    producer.begin_transaction().unwrap();
    send(&producer, "tx", 2, 0..6);
    producer.commit_transaction(T).expect("commit");
    producer.begin_transaction().unwrap();
    send(&producer, "tx", 2, 6..12);
    producer.flush(T).expect("flush");
    producer.abort_transaction(T).expect("abort");
    // An open transaction holds read_committed readers at its first offset (the LSO).
    producer.begin_transaction().unwrap();
    send(&producer, "tx", 2, 12..16);
    producer.flush(T).expect("flush");
    let (lso, hw) = watermarks(&b, "tx", 0);
    assert!(
        lso < hw,
        "ListOffsets read_committed gives the LSO ({lso}) below the HW ({hw})"
    );
    let quiet = Duration::from_millis(700);
    assert_eq!(read_all(&b, "tx", 2, "read_committed", 6, quiet), set(0..6));
    producer.commit_transaction(T).expect("commit");
    assert_eq!(
        read_all(&b, "tx", 2, "read_committed", 10, quiet),
        set((0..6).chain(12..16))
    );
    assert_eq!(
        read_all(&b, "tx", 2, "read_uncommitted", 16, quiet),
        set(0..16)
    );
}

#[test]
fn a_second_producer_with_the_same_transactional_id_fences_the_first() {
    let server = start_server();
    let b = server.bootstrap();
    make_topic(&b, "fence", 1);
    let old = txn_producer(&b, "tx-fence", 60_000);
    old.begin_transaction().unwrap();
    send(&old, "fence", 1, 0..3);
    old.flush(T).expect("flush");
    // The new instance aborts the old one's open transaction and bumps the epoch.
    let new = txn_producer(&b, "tx-fence", 60_000);
    let err = old
        .commit_transaction(T)
        .expect_err("the old producer is fenced");
    assert!(is_fenced_or_fatal(&err), "unexpected error {err:?}");
    new.begin_transaction().unwrap();
    send(&new, "fence", 1, 10..13);
    new.commit_transaction(T)
        .expect("commit of the new producer");
    let quiet = Duration::from_millis(700);
    assert_eq!(
        read_all(&b, "fence", 1, "read_committed", 3, quiet),
        set(10..13)
    );
    assert_eq!(
        read_all(&b, "fence", 1, "read_uncommitted", 6, quiet),
        set((0..3).chain(10..13))
    );
}

/// The group's committed offset of partition 0 (-1: none). read_committed asks with
/// `require_stable` (KIP-447): offsets staged by an open transaction are then an error.
fn committed_offset(
    bootstrap: &str,
    group: &str,
    topic: &str,
    isolation: &str,
) -> KafkaResult<i64> {
    let c: BaseConsumer = client_config(bootstrap)
        .set("group.id", group)
        .set("isolation.level", isolation)
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = c.committed_offsets(tpl, Duration::from_secs(3))?;
    Ok(match got.elements()[0].offset() {
        Offset::Offset(o) => o,
        _ => -1,
    })
}

#[test]
fn consume_transform_produce_commits_offsets_with_the_transaction() {
    let server = start_server();
    let b = server.bootstrap();
    make_topic(&b, "ctp-in", 1);
    make_topic(&b, "ctp-out", 1);
    let plain: BaseProducer = client_config(&b).create().expect("producer");
    send(&plain, "ctp-in", 1, 0..10);
    plain.flush(T).unwrap();
    let consumer: BaseConsumer = client_config(&b)
        .set("group.id", "ctp")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    consumer.subscribe(&["ctp-in"]).unwrap();
    let mut inputs = Vec::new();
    let deadline = Instant::now() + T;
    while inputs.len() < 10 && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            inputs.push(
                std::str::from_utf8(m.payload().unwrap())
                    .unwrap()
                    .parse::<i32>()
                    .unwrap(),
            );
        }
    }
    assert_eq!(inputs.len(), 10);
    let producer = txn_producer(&b, "tx-ctp", 60_000);
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("ctp-in", 0, Offset::Offset(10))
        .unwrap();
    let metadata = consumer.group_metadata().expect("group metadata");
    // First attempt aborted: neither the output nor the offsets become visible.
    producer.begin_transaction().unwrap();
    send(&producer, "ctp-out", 1, 100..110);
    producer
        .send_offsets_to_transaction(&offsets, &metadata, T)
        .expect("send offsets");
    producer.flush(T).expect("flush");
    producer.abort_transaction(T).expect("abort");
    assert_eq!(
        committed_offset(&b, "ctp", "ctp-in", "read_committed"),
        Ok(-1)
    );
    // Second attempt: offsets appear exactly when the transaction commits.
    producer.begin_transaction().unwrap();
    send(&producer, "ctp-out", 1, 200..210);
    producer
        .send_offsets_to_transaction(&offsets, &metadata, T)
        .expect("send offsets");
    producer.flush(T).unwrap();
    assert_eq!(
        committed_offset(&b, "ctp", "ctp-in", "read_uncommitted"),
        Ok(-1),
        "offsets visible before the commit"
    );
    assert!(
        committed_offset(&b, "ctp", "ctp-in", "read_committed").is_err(),
        "require_stable: UNSTABLE_OFFSET_COMMIT while the transaction is open"
    );
    producer.commit_transaction(T).expect("commit");
    assert_eq!(
        committed_offset(&b, "ctp", "ctp-in", "read_committed"),
        Ok(10)
    );
    let quiet = Duration::from_millis(700);
    assert_eq!(
        read_all(&b, "ctp-out", 1, "read_committed", 10, quiet),
        set(200..210)
    );
}

#[test]
fn a_transaction_survives_a_broker_crash_and_commits() {
    let mut server = start_server();
    let b = server.bootstrap();
    make_topic(&b, "crash", 2);
    let producer = txn_producer(&b, "tx-crash", 60_000);
    producer.begin_transaction().unwrap();
    send(&producer, "crash", 2, 0..8);
    producer.flush(T).expect("flush");
    server.kill9();
    server.restart();
    // The transaction is still open after recovery: the LSO stays at its first offset.
    let quiet = Duration::from_millis(500);
    assert_eq!(watermarks(&b, "crash", 0), (0, 4));
    producer
        .commit_transaction(T)
        .expect("commit after the restart");
    assert_eq!(
        read_all(&b, "crash", 2, "read_committed", 8, quiet),
        set(0..8)
    );
}

#[test]
fn timed_out_transactions_are_aborted_also_across_a_restart() {
    let mut server = start_server();
    let b = server.bootstrap();
    make_topic(&b, "slow", 1);
    // One transaction left open, then the broker crashes: after the restart it times out.
    let crashed = txn_producer(&b, "tx-crashed", 1_500);
    crashed.begin_transaction().unwrap();
    send(&crashed, "slow", 1, 0..3);
    crashed.flush(T).expect("flush");
    server.kill9();
    server.restart();
    // Another one times out on a running broker: its producer is fenced.
    let slow = txn_producer(&b, "tx-slow", 1_500);
    slow.begin_transaction().unwrap();
    send(&slow, "slow", 1, 10..13);
    slow.flush(T).expect("flush");
    std::thread::sleep(Duration::from_millis(2_500));
    let err = slow
        .commit_transaction(T)
        .expect_err("the timed-out transaction is aborted");
    assert!(is_fenced_or_fatal(&err), "unexpected error {err:?}");
    // Both aborted: read_committed readers move past them to later committed data.
    let after = txn_producer(&b, "tx-after", 60_000);
    after.begin_transaction().unwrap();
    send(&after, "slow", 1, 20..22);
    after.commit_transaction(T).expect("commit");
    let quiet = Duration::from_millis(700);
    assert_eq!(
        read_all(&b, "slow", 1, "read_committed", 2, quiet),
        set(20..22)
    );
    assert_eq!(
        read_all(&b, "slow", 1, "read_uncommitted", 8, quiet),
        set((0..3).chain(10..13).chain(20..22))
    );
}

/// kafka-python (a client modelled on the Java one, not on librdkafka) reads the aborted
/// transactions list its own way; it must agree.
#[test]
fn kafka_python_commit_and_abort() {
    let server = start_server();
    common::run_python_client(
        &server,
        "kafka_python_transactions.py",
        "kafka-python transactions OK",
    );
}
