//! Log compaction seen by librdkafka against the real binary: a compacted topic converges to
//! one value per key (tombstones gone after delete.retention.ms) while consumers read it from
//! the start, keyless records are refused, aborted transactional data is removed, and
//! `__consumer_offsets` stays small under commits.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{client_config, create_topic, producer, Server};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// A server whose cleaner and segment rolls run every 200 ms.
fn start_server(extra: &[(&str, &str)]) -> Server {
    let mut settings = vec![
        ("log.cleaner.backoff.ms", "200"),
        ("log.retention.check.interval.ms", "200"),
    ];
    settings.extend_from_slice(extra);
    Server::start(&settings)
}

/// Reads partition 0 from the beginning to its end (the LSO for read_committed):
/// `(offset, key, value)` in order.
fn read_from_start(
    bootstrap: &str,
    topic: &str,
    isolation: &str,
) -> Vec<(i64, String, Option<String>)> {
    let mut c = client_config(bootstrap);
    c.set("group.id", "compaction-reader")
        .set("isolation.level", isolation)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "50");
    let consumer: BaseConsumer = c.create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out: Vec<(i64, String, Option<String>)> = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no end of partition after {out:?}"
        );
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let key = String::from_utf8(m.key().expect("keyed").to_vec()).unwrap();
                let value = m.payload().map(|v| String::from_utf8(v.to_vec()).unwrap());
                if let Some(last) = out.last() {
                    assert!(
                        m.offset() > last.0,
                        "offset {} after {}",
                        m.offset(),
                        last.0
                    );
                }
                out.push((m.offset(), key, value));
            }
            Some(Err(KafkaError::PartitionEOF(_))) => return out,
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
}

fn log_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_converges_to_one_value_per_key() {
    let server = start_server(&[]);
    let bootstrap = server.bootstrap();
    let topic = "compacted";
    create_topic(
        &bootstrap,
        topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "500"),
        ],
    )
    .await;
    let producer = producer(&bootstrap, &[("compression.type", "lz4")]);
    let (keys, rounds) = (20, 10);
    let mut expected = BTreeMap::new();
    for round in 0..rounds {
        let mut deliveries = Vec::new();
        for k in 0..keys {
            let (key, value) = (format!("key-{k}"), format!("value-{k}-{round}"));
            let record = FutureRecord::to(topic).key(&key).payload(&value);
            deliveries.push(producer.send_result(record).expect("queued"));
            expected.insert(key, value);
        }
        for d in deliveries {
            d.await.expect("not cancelled").expect("delivered");
        }
        // Past segment.ms: the next append (or the retention check) rolls the segment.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // A tombstone deletes key-0.
    producer
        .send(
            FutureRecord::<str, str>::to(topic).key("key-0"),
            Duration::from_secs(10),
        )
        .await
        .expect("tombstone delivered");
    expected.remove("key-0");
    // The log's last batch is never cleaned: write past the tombstone.
    producer
        .send(
            FutureRecord::to(topic).key("key-1").payload("final"),
            Duration::from_secs(10),
        )
        .await
        .expect("delivered");
    expected.insert("key-1".to_owned(), "final".to_owned());

    // A record without a key is refused: the topic is compacted.
    let refused = producer
        .send(
            FutureRecord::<str, str>::to(topic).payload("no key"),
            Duration::from_secs(10),
        )
        .await
        .expect_err("a keyless record is refused");
    assert!(
        matches!(
            refused.0,
            KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord)
        ),
        "{refused:?}"
    );

    // Consumers read from the start while the cleaner works; each pass is a valid, ordered
    // log (checked in `read_from_start`), and the passes converge.
    let deadline = Instant::now() + Duration::from_secs(60);
    let written = (keys * rounds + 2) as usize;
    let mut passes = 0;
    loop {
        let recs =
            tokio::task::block_in_place(|| read_from_start(&bootstrap, topic, "read_uncommitted"));
        passes += 1;
        let latest: BTreeMap<String, String> = recs
            .iter()
            .filter_map(|(_, k, v)| v.as_ref().map(|v| (k.clone(), v.clone())))
            .collect();
        let converged = recs.len() == expected.len()
            && recs.iter().all(|(_, _, v)| v.is_some())
            && latest == expected;
        if converged {
            println!(
                "converged after {passes} passes: {written} records written, {} left",
                recs.len()
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted in time: {} records left of {written}",
            recs.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offsets_topic_stays_small_under_heavy_commit_traffic() {
    let mut server = start_server(&[
        ("offsets.topic.num.partitions", "1"),
        ("log.roll.ms", "200"),
    ]);
    let bootstrap = server.bootstrap();
    create_topic(&bootstrap, "input", 1, &[]).await;
    let commits = 3000;
    let offsets_dir = server.data_dir().join("__consumer_offsets-0");
    tokio::task::block_in_place(|| {
        let mut c = client_config(&bootstrap);
        c.set("group.id", "heavy-committer")
            .set("enable.auto.commit", "false");
        let consumer: BaseConsumer = c.create().expect("consumer");
        for i in 1..=commits {
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset("input", 0, Offset::Offset(i))
                .unwrap();
            consumer.commit(&tpl, CommitMode::Sync).expect("commit");
        }
    });
    // Every commit appended at least one batch header.
    let written = commits as u64 * strom_protocol::record_batch::HEADER_SIZE as u64;
    println!(
        "__consumer_offsets-0 right after {commits} commits (>= {written} bytes appended): {} bytes of .log",
        log_bytes(&offsets_dir)
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let small = 16 * 1024;
    loop {
        let now = log_bytes(&offsets_dir);
        if now < small {
            println!("__consumer_offsets-0 after cleaning: {now} bytes of .log");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "__consumer_offsets-0 still holds {now} bytes after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        written > 4 * small,
        "the test wrote too little to show anything"
    );

    // The compacted log replays to the same committed offset after a restart.
    assert!(server.stop(), "clean shutdown");
    server.restart();
    let committed = tokio::task::block_in_place(|| {
        let mut c = client_config(&bootstrap);
        c.set("group.id", "heavy-committer")
            .set("enable.auto.commit", "false");
        let consumer: BaseConsumer = c.create().expect("consumer");
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition("input", 0);
        consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .expect("OffsetFetch")
    });
    let offset = committed.find_partition("input", 0).map(|p| p.offset());
    assert_eq!(offset, Some(Offset::Offset(commits)));
}

#[test]
fn transactional_writes_compact_to_the_committed_values() {
    let server = start_server(&[("transaction.state.log.num.partitions", "1")]);
    let bootstrap = server.bootstrap();
    let topic = "txn-compacted";
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(create_topic(
        &bootstrap,
        topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    ));
    let timeout = Duration::from_secs(15);
    let producer: BaseProducer = client_config(&bootstrap)
        .set("transactional.id", "compaction-txn")
        .set("linger.ms", "5")
        .create()
        .expect("transactional producer");
    producer
        .init_transactions(timeout)
        .expect("init_transactions");
    let rounds: [(&[(&str, &str)], bool); 4] = [
        (&[("a", "a-1"), ("b", "b-1")], true),
        (&[("a", "aborted"), ("c", "aborted")], false),
        (&[("b", "b-2")], true),
        (&[("d", "d-1")], true),
    ];
    for (records, commit) in rounds {
        producer.begin_transaction().expect("begin");
        for (k, v) in records {
            producer
                .send(BaseRecord::to(topic).key(*k).payload(*v))
                .unwrap_or_else(|(e, _)| panic!("send: {e}"));
        }
        producer.flush(timeout).expect("delivered");
        if commit {
            producer.commit_transaction(timeout).expect("commit");
        } else {
            producer.abort_transaction(timeout).expect("abort");
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let expected: BTreeMap<String, String> = [("a", "a-1"), ("b", "b-2"), ("d", "d-1")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // Without the isolation filter too: the aborted records themselves are gone.
        let uncommitted = read_from_start(&bootstrap, topic, "read_uncommitted");
        let committed = read_from_start(&bootstrap, topic, "read_committed");
        let values = |recs: &[(i64, String, Option<String>)]| -> Vec<(String, String)> {
            recs.iter()
                .map(|(_, k, v)| (k.clone(), v.clone().unwrap_or_default()))
                .collect()
        };
        let want: Vec<(String, String)> = expected.clone().into_iter().collect();
        let mut got = values(&uncommitted);
        got.sort();
        if got == want {
            let mut got = values(&committed);
            got.sort();
            assert_eq!(got, want, "read_committed after compaction");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted in time: {uncommitted:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// KIP-467 per-record errors: a batch with keyless records sent to a compacted topic is
/// refused as a whole, and the Produce response names the keyless records (record_errors), so
/// librdkafka fails exactly those with INVALID_RECORD and the rest of the batch with
/// INVALID_DIFFERENT_RECORD (librdkafka's 0011_produce_batch checks the counts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_records_in_a_batch_are_named_by_per_record_errors() {
    let server = start_server(&[]);
    let bootstrap = server.bootstrap();
    let topic = "compacted-record-errors";
    create_topic(&bootstrap, topic, 1, &[("cleanup.policy", "compact")]).await;
    // One batch: everything is queued well within linger.ms.
    let producer = producer(
        &bootstrap,
        &[("linger.ms", "500"), ("compression.type", "lz4")],
    );
    let keyless = [0, 4, 7];
    let mut deliveries = Vec::new();
    for i in 0..10 {
        let value = format!("value-{i}");
        let key = format!("key-{i}");
        let mut record = FutureRecord::to(topic).payload(&value).partition(0);
        if !keyless.contains(&i) {
            record = record.key(&key);
        }
        deliveries.push(producer.send_result(record).expect("queued"));
    }
    let mut outcomes = Vec::new();
    for d in deliveries {
        let outcome = d.await.expect("not cancelled");
        outcomes.push(match outcome {
            Ok(delivered) => panic!("delivered to a compacted topic: {delivered:?}"),
            Err((KafkaError::MessageProduction(code), _)) => code,
            Err((e, _)) => panic!("unexpected error {e:?}"),
        });
    }
    let expected: Vec<_> = (0..10)
        .map(|i| {
            if keyless.contains(&i) {
                RDKafkaErrorCode::InvalidRecord
            } else {
                RDKafkaErrorCode::InvalidDifferentRecord
            }
        })
        .collect();
    assert_eq!(outcomes, expected);
}
