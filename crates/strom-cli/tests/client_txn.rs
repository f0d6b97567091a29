//! strom-client's idempotent recovery (KIP-360) and transactions (KIP-98) against the real
//! broker: commit and abort seen by read_committed and read_uncommitted consumers of both
//! strom-client and librdkafka, fencing by a second producer, consume-transform-produce.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::wire::Wire;
use common::{consume, create_topic, Server};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::Offset;
use strom_client::{
    Consumer, ConsumerConfig, Error, KafkaCode, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use strom_protocol::record_batch::builder::BatchBuilder;

fn producer_config(bootstrap: &str, extra: &[(&str, &str)]) -> ProducerConfig {
    let mut c = ProducerConfig::new(bootstrap);
    for (k, v) in extra {
        c.set(k, v).unwrap();
    }
    c
}

async fn transactional(bootstrap: &str, id: &str) -> Producer {
    let p = Producer::new(producer_config(
        bootstrap,
        &[("transactional.id", id), ("linger.ms", "0")],
    ))
    .await
    .unwrap();
    p.init_transactions().await.unwrap();
    p
}

/// Values read by a strom-client consumer from the start of `topic`-0 up to its end under
/// `isolation`, stopping after `expect` records or 10 s of nothing new.
async fn strom_values(bootstrap: &str, topic: &str, isolation: &str, expect: usize) -> Vec<String> {
    let mut c = ConsumerConfig::new(bootstrap);
    c.set("isolation.level", isolation).unwrap();
    c.set("auto.offset.reset", "earliest").unwrap();
    let mut consumer = Consumer::new(c).await.unwrap();
    consumer.assign(&[TopicPartition::new(topic, 0)]);
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.len() < expect && Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            out.push(String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned());
        }
    }
    // Anything past `expect` (e.g. aborted records leaking) shows up in a last short poll.
    for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
        out.push(String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned());
    }
    out
}

fn librdkafka_values(bootstrap: &str, topic: &str, isolation: &str, n: usize) -> Vec<String> {
    consume(
        bootstrap,
        topic,
        &[0],
        Offset::Beginning,
        n,
        Duration::from_secs(20),
        &[("isolation.level", isolation)],
    )
    .into_iter()
    .map(|r| String::from_utf8_lossy(&r.value.unwrap_or_default()).into_owned())
    .collect()
}

async fn send_values(p: &Producer, topic: &str, values: &[&str]) {
    let mut futures = Vec::new();
    for v in values {
        let rec = ProducerRecord::new(topic).partition(0).value(v.to_string());
        futures.push(p.send(rec).await.unwrap());
    }
    for f in futures {
        f.await.unwrap();
    }
}

/// One Produce of `count` records with `producer`'s id, epoch and `base_sequence`.
fn raw_produce(
    wire: &mut Wire,
    topic: &str,
    producer: (i64, i16),
    base_sequence: i32,
    count: usize,
    transactional_id: Option<&str>,
) -> i16 {
    let mut batch = BatchBuilder::new(0);
    batch.producer = Some((producer.0, producer.1, base_sequence));
    if transactional_id.is_some() {
        batch.attributes = 0x10;
    }
    for i in 0..count {
        batch.push(None, Some(format!("raw-{i}").as_bytes()), 1_700_000_000_000);
    }
    let partition = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(batch.build().freeze()));
    let topic = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
        .with_partition_data(vec![partition]);
    let req = ProduceRequest::default()
        .with_transactional_id(
            transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.to_owned()))),
        )
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![topic]);
    let r: ProduceResponse = wire.call(ApiKey::Produce, 9, &req);
    r.responses[0].partition_responses[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_gap_reinitialises_the_idempotent_producer() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "kip360", 1, &[]).await;
    let p = Producer::new(producer_config(&b, &[("linger.ms", "0")]))
        .await
        .unwrap();
    let before = p.producer_id();
    let first = p
        .send(ProducerRecord::new("kip360").value("a"))
        .await
        .unwrap();
    assert_eq!(first.await.unwrap().offset, 0);
    // Someone else writes sequences 1..=3 with this producer's id: the broker now expects 4
    // and the producer's next batch (sequence 1) is a gap at its first unacked batch.
    let mut wire = Wire::connect(&b);
    assert_eq!(raw_produce(&mut wire, "kip360", before, 1, 3, None), 0);
    let gap = p
        .send(ProducerRecord::new("kip360").value("b"))
        .await
        .unwrap();
    let err = gap.await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(KafkaCode::OutOfOrderSequenceNumber),
        "{err}"
    );
    // The producer re-initialised and keeps going with sequences from 0.
    let next = p
        .send(ProducerRecord::new("kip360").value("c"))
        .await
        .unwrap();
    assert_eq!(next.await.unwrap().offset, 4);
    assert_ne!(
        p.producer_id(),
        before,
        "a new producer id or epoch after KIP-360"
    );
    let again = p
        .send(ProducerRecord::new("kip360").value("d"))
        .await
        .unwrap();
    assert_eq!(again.await.unwrap().offset, 5);
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_is_visible_to_read_committed_consumers() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "txn-commit", 1, &[]).await;
    let p = transactional(&b, "commit-id").await;
    p.begin_transaction().unwrap();
    let values: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    send_values(&p, "txn-commit", &refs).await;
    p.commit_transaction().await.unwrap();
    assert_eq!(
        strom_values(&b, "txn-commit", "read_committed", 10).await,
        values
    );
    assert_eq!(
        librdkafka_values(&b, "txn-commit", "read_committed", 10),
        values
    );
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_is_invisible_to_read_committed_only() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "txn-abort", 1, &[]).await;
    let p = transactional(&b, "abort-id").await;
    p.begin_transaction().unwrap();
    send_values(&p, "txn-abort", &["x1", "x2", "x3"]).await;
    p.abort_transaction().await.unwrap();
    // The same producer's next transaction commits: it must not be taken for aborted.
    p.begin_transaction().unwrap();
    send_values(&p, "txn-abort", &["ok1", "ok2"]).await;
    p.commit_transaction().await.unwrap();
    let committed = vec!["ok1".to_string(), "ok2".to_string()];
    let all: Vec<String> = ["x1", "x2", "x3", "ok1", "ok2"].map(String::from).to_vec();
    assert_eq!(
        strom_values(&b, "txn-abort", "read_committed", 2).await,
        committed
    );
    assert_eq!(
        librdkafka_values(&b, "txn-abort", "read_committed", 2),
        committed
    );
    assert_eq!(
        strom_values(&b, "txn-abort", "read_uncommitted", 5).await,
        all
    );
    assert_eq!(
        librdkafka_values(&b, "txn-abort", "read_uncommitted", 5),
        all
    );
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_producer_with_the_same_id_fences_the_first() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "txn-fence", 1, &[]).await;
    let first = transactional(&b, "fence-id").await;
    first.begin_transaction().unwrap();
    send_values(&first, "txn-fence", &["old"]).await;
    let second = transactional(&b, "fence-id").await;
    assert!(second.producer_id().1 > first.producer_id().1);
    let err = first.commit_transaction().await.unwrap_err();
    assert!(matches!(err, Error::ProducerFenced(_)), "{err}");
    // Fenced is final: nothing else is allowed.
    let again = first.begin_transaction().unwrap_err();
    assert!(matches!(again, Error::ProducerFenced(_)), "{again}");
    second.begin_transaction().unwrap();
    send_values(&second, "txn-fence", &["new"]).await;
    second.commit_transaction().await.unwrap();
    // The first producer's open transaction was aborted when the second initialised.
    assert_eq!(
        strom_values(&b, "txn-fence", "read_committed", 1).await,
        vec!["new"]
    );
    second.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_commits_offsets_with_the_output() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "ctp-in", 1, &[]).await;
    create_topic(&b, "ctp-out", 1, &[]).await;
    let plain = Producer::new(producer_config(&b, &[])).await.unwrap();
    let inputs: Vec<String> = (0..20).map(|i| format!("in{i}")).collect();
    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    send_values(&plain, "ctp-in", &refs).await;
    plain.close().await;

    let mut cc = ConsumerConfig::new(&b);
    for (k, v) in [
        ("group.id", "ctp-group"),
        ("enable.auto.commit", "false"),
        ("auto.offset.reset", "earliest"),
        ("isolation.level", "read_committed"),
    ] {
        cc.set(k, v).unwrap();
    }
    let mut consumer = Consumer::new(cc).await.unwrap();
    consumer.subscribe(&["ctp-in"], None).unwrap();
    let p = transactional(&b, "ctp-id").await;
    let mut done = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while done < inputs.len() {
        assert!(
            Instant::now() < deadline,
            "transformed {done} of {}",
            inputs.len()
        );
        let records = consumer.poll(Duration::from_millis(200)).await.unwrap();
        if records.is_empty() {
            continue;
        }
        p.begin_transaction().unwrap();
        let mut offsets = BTreeMap::new();
        for r in &records {
            let upper = Bytes::from(r.value.as_deref().unwrap_or_default().to_ascii_uppercase());
            p.send(ProducerRecord::new("ctp-out").partition(0).value(upper))
                .await
                .unwrap();
            offsets.insert(TopicPartition::new(&r.topic, r.partition), r.offset + 1);
        }
        let group = consumer.group_metadata().unwrap();
        assert!(group.generation_id >= 0, "a member of the group");
        p.send_offsets_to_transaction(&offsets, &group)
            .await
            .unwrap();
        p.commit_transaction().await.unwrap();
        done += records.len();
    }
    let committed = consumer
        .committed(&[TopicPartition::new("ctp-in", 0)])
        .await
        .unwrap();
    assert_eq!(committed.get(&TopicPartition::new("ctp-in", 0)), Some(&20));
    let expected: Vec<String> = inputs.iter().map(|v| v.to_ascii_uppercase()).collect();
    assert_eq!(
        librdkafka_values(&b, "ctp-out", "read_committed", 20),
        expected
    );
    p.close().await;
    consumer.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_past_its_timeout_is_aborted_and_the_producer_fenced() {
    let server = Server::start(&[(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "200",
    )]);
    let b = server.bootstrap();
    create_topic(&b, "txn-timeout", 1, &[]).await;
    let p = Producer::new(producer_config(
        &b,
        &[
            ("transactional.id", "timeout-id"),
            ("transaction.timeout.ms", "1000"),
            ("linger.ms", "0"),
        ],
    ))
    .await
    .unwrap();
    p.init_transactions().await.unwrap();
    p.begin_transaction().unwrap();
    send_values(&p, "txn-timeout", &["late"]).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    // The coordinator aborted it with the epoch bumped (KIP-360): the commit is fenced.
    let err = p.commit_transaction().await.unwrap_err();
    assert!(matches!(err, Error::ProducerFenced(_)), "{err}");
    let got = strom_values(&b, "txn-timeout", "read_uncommitted", 1).await;
    assert_eq!(got, vec!["late"], "written, then aborted");
    let next = transactional(&b, "timeout-id").await;
    next.begin_transaction().unwrap();
    send_values(&next, "txn-timeout", &["after"]).await;
    next.commit_transaction().await.unwrap();
    let got = strom_values(&b, "txn-timeout", "read_committed", 1).await;
    assert_eq!(
        got,
        vec!["after"],
        "the timed-out transaction stays invisible"
    );
    next.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sequence_gap_in_a_transaction_makes_it_abortable_then_recovers() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "txn-gap", 1, &[]).await;
    let p = transactional(&b, "gap-id").await;
    p.begin_transaction().unwrap();
    send_values(&p, "txn-gap", &["a"]).await;
    let ids = p.producer_id();
    let mut wire = Wire::connect(&b);
    assert_eq!(
        raw_produce(&mut wire, "txn-gap", ids, 1, 3, Some("gap-id")),
        0
    );
    let gap = p
        .send(ProducerRecord::new("txn-gap").partition(0).value("b"))
        .await
        .unwrap();
    let err = gap.await.unwrap_err();
    assert_eq!(
        err.code(),
        Some(KafkaCode::OutOfOrderSequenceNumber),
        "{err}"
    );
    let err = p.commit_transaction().await.unwrap_err();
    assert!(matches!(err, Error::TransactionAborted(_)), "{err}");
    p.abort_transaction().await.unwrap();
    assert!(
        p.producer_id().1 > ids.1,
        "abort re-initialised with a bumped epoch"
    );
    p.begin_transaction().unwrap();
    send_values(&p, "txn-gap", &["z"]).await;
    p.commit_transaction().await.unwrap();
    assert_eq!(
        strom_values(&b, "txn-gap", "read_committed", 1).await,
        vec!["z"]
    );
    p.close().await;
}
