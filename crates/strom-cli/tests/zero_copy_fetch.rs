//! Fetched records sent with sendfile on a plaintext listener (issue 20), read back by
//! librdkafka: many partitions per response, compressed and uncompressed batches,
//! read_committed with aborted transactions, exact record contents, and `/metrics` showing
//! that every record byte went the zero-copy way; then a consumer reading while retention
//! deletes the segments under it. (TLS fetches, the buffered path, are covered by
//! tests/security.rs.)

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::http::http_get;
use common::{client_config, create_topic, Server};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(20);
const PARTITIONS: i32 = 12;

fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> BaseProducer {
    let mut c = client_config(bootstrap);
    c.set("linger.ms", "5").set("message.timeout.ms", "20000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("producer")
}

/// Value of record `i` of a group: its name and number, padded so batches are sizeable.
fn value(group: &str, i: usize) -> String {
    format!("{group}-{i:05}-{}", "x".repeat(i % 300))
}

/// Sends `count` records of `group` round-robin over the partitions; returns what each
/// partition got, in order.
fn send(p: &BaseProducer, topic: &str, group: &str, count: usize) -> Vec<(i32, String)> {
    let mut sent = Vec::new();
    for i in 0..count {
        let partition = (i % PARTITIONS as usize) as i32;
        let v = value(group, i);
        let key = format!("k{i}");
        loop {
            let record = BaseRecord::to(topic)
                .partition(partition)
                .key(&key)
                .payload(&v);
            match p.send(record) {
                Ok(()) => break,
                Err((e, _)) => {
                    assert!(
                        e.to_string().contains("Queue full"),
                        "send {group} {i}: {e}"
                    );
                    p.poll(Duration::from_millis(10));
                }
            }
        }
        sent.push((partition, v));
    }
    p.flush(T).expect("flush");
    sent
}

/// Every record of `topic` under `isolation` as (partition -> [(key, value)] in offset
/// order), reading until `expect` records arrived (and a little more, to see none extra).
fn read(
    bootstrap: &str,
    topic: &str,
    isolation: &str,
    expect: usize,
) -> BTreeMap<i32, Vec<String>> {
    let consumer: BaseConsumer = client_config(bootstrap)
        .set("group.id", "zero-copy-reader")
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .set("check.crcs", "true")
        // Small enough that a fetch holds many partitions but not the whole topic.
        .set("fetch.max.bytes", "65536")
        .set("message.max.bytes", "65536")
        .set("max.partition.fetch.bytes", "16384")
        .set("fetch.wait.max.ms", "50")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    let mut last_offset: BTreeMap<i32, i64> = BTreeMap::new();
    let mut n = 0;
    let deadline = Instant::now() + T;
    let mut extra_until = None;
    loop {
        if n >= expect {
            let until =
                *extra_until.get_or_insert_with(|| Instant::now() + Duration::from_millis(500));
            if Instant::now() > until {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "read {n} of {expect} ({isolation})"
        );
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                let prev = last_offset.insert(m.partition(), m.offset());
                assert!(prev.is_none_or(|o| o < m.offset()), "offsets increase");
                let key = String::from_utf8(m.key().unwrap().to_vec()).unwrap();
                let v = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
                out.entry(m.partition())
                    .or_default()
                    .push(format!("{key}={v}"));
                n += 1;
            }
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    out
}

fn expected(groups: &[&[(i32, String)]]) -> BTreeMap<i32, Vec<String>> {
    let mut out: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for group in groups {
        for (i, (p, v)) in group.iter().enumerate() {
            out.entry(*p).or_default().push(format!("k{i}={v}"));
        }
    }
    out
}

/// The value of one sample of a Prometheus exposition (no labels).
fn sample(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// Sum of a labelled counter's samples for `topic`.
fn topic_sum(text: &str, name: &str, topic: &str) -> u64 {
    let label = format!("topic=\"{topic}\"");
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(&label))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[test]
fn sendfile_serves_many_partitions_compressed_and_transactional_batches_exactly() {
    let http = common::free_port();
    let listener = format!("http://127.0.0.1:{http}");
    let server = Server::start(&[
        ("http.listeners", &listener),
        ("transaction.state.log.num.partitions", "3"),
        ("offsets.topic.num.partitions", "3"),
    ]);
    let b = server.bootstrap();
    let topic = "zc";
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(create_topic(&b, topic, PARTITIONS, &[]));

    let plain = send(
        &producer(&b, &[("compression.type", "none")]),
        topic,
        "plain",
        1200,
    );
    let lz4 = send(
        &producer(&b, &[("compression.type", "lz4")]),
        topic,
        "lz4",
        1200,
    );
    let zstd = send(
        &producer(&b, &[("compression.type", "zstd")]),
        topic,
        "zstd",
        600,
    );
    let txn = producer(
        &b,
        &[("transactional.id", "zc-txn"), ("compression.type", "none")],
    );
    txn.init_transactions(T).unwrap();
    txn.begin_transaction().unwrap();
    let committed = send(&txn, topic, "committed", 600);
    txn.commit_transaction(T).unwrap();
    txn.begin_transaction().unwrap();
    let aborted = send(&txn, topic, "aborted", 600);
    txn.abort_transaction(T).unwrap();
    txn.begin_transaction().unwrap();
    let after = send(&txn, topic, "after", 600);
    txn.commit_transaction(T).unwrap();

    let visible = expected(&[&plain, &lz4, &zstd, &committed, &after]);
    let everything = expected(&[&plain, &lz4, &zstd, &committed, &aborted, &after]);
    let count = |m: &BTreeMap<i32, Vec<String>>| m.values().map(Vec::len).sum::<usize>();
    assert_eq!(read(&b, topic, "read_committed", count(&visible)), visible);
    assert_eq!(
        read(&b, topic, "read_uncommitted", count(&everything)),
        everything
    );

    let (status, text) = http_get(http, "/metrics");
    assert_eq!(status, 200);
    let zero_copy = sample(&text, "strom_network_fetch_zero_copy_bytes_total");
    let copied = sample(&text, "strom_network_fetch_copied_bytes_total");
    let bytes_out = topic_sum(
        &text,
        "kafka_server_brokertopicmetrics_bytesout_total",
        topic,
    );
    let log_size = topic_sum(&text, "kafka_log_log_size", topic);
    assert_eq!(copied, 0, "nothing copied through user space on plaintext");
    assert!(
        zero_copy >= 2 * log_size,
        "both reads sent the whole log: {zero_copy} < 2 x {log_size}"
    );
    assert_eq!(
        zero_copy, bytes_out,
        "bytes out are the bytes sent with sendfile"
    );
}

#[test]
fn a_consumer_reads_exactly_while_retention_deletes_segments() {
    let server = Server::start(&[("log.retention.check.interval.ms", "100")]);
    let b = server.bootstrap();
    let topic = "retained";
    let rt = tokio::runtime::Runtime::new().unwrap();
    // 1 MiB segments, about two kept.
    rt.block_on(create_topic(
        &b,
        topic,
        1,
        &[("segment.bytes", "1048576"), ("retention.bytes", "2097152")],
    ));
    const RECORDS: usize = 12_000; // ~12 MiB of 1 KiB records
    let value = |i: usize| {
        format!(
            "{i:08}-{}",
            char::from(b'a' + (i % 26) as u8).to_string().repeat(1000)
        )
    };
    let producer_thread = {
        let b = b.clone();
        std::thread::spawn(move || {
            let p = producer(&b, &[("acks", "all")]);
            for i in 0..RECORDS {
                let v = value(i);
                let key = i.to_string();
                while let Err((e, _)) =
                    p.send(BaseRecord::to(topic).partition(0).key(&key).payload(&v))
                {
                    assert!(e.to_string().contains("Queue full"), "send {i}: {e}");
                    p.poll(Duration::from_millis(5));
                }
                if i % 1000 == 0 {
                    p.poll(Duration::ZERO);
                }
            }
            p.flush(T).unwrap();
        })
    };
    let consumer: BaseConsumer = client_config(&b)
        .set("group.id", "retention-reader")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("check.crcs", "true")
        .set("max.partition.fetch.bytes", "262144")
        .set("fetch.wait.max.ms", "50")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let (mut read, mut last, mut skipped) = (0usize, -1i64, 0i64);
    while last < RECORDS as i64 - 1 {
        assert!(
            Instant::now() < deadline,
            "read up to offset {last} of {RECORDS}"
        );
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(m)) => {
                let offset = m.offset();
                assert!(offset > last, "offsets increase: {offset} after {last}");
                skipped += offset - last - 1;
                // One producer, one partition: offset i holds record i, intact.
                let i = offset as usize;
                assert_eq!(m.key(), Some(i.to_string().as_bytes()));
                assert!(
                    m.payload() == Some(value(i).as_bytes()),
                    "record {i} intact"
                );
                last = offset;
                read += 1;
                if read % 100 == 0 {
                    // A slow reader: the producer gets ahead and retention deletes segments
                    // around the reader's position.
                    std::thread::sleep(Duration::from_millis(25));
                }
            }
            // Records deleted before they were read: librdkafka resets to the earliest.
            Some(Err(e)) => assert!(
                e.to_string().contains("Offset out of range")
                    || e.to_string().contains("OFFSET_OUT_OF_RANGE"),
                "consume error: {e}"
            ),
            None => {}
        }
    }
    producer_thread.join().unwrap();
    let (low, high) = consumer.fetch_watermarks(topic, 0, T).unwrap();
    assert_eq!(high, RECORDS as i64);
    eprintln!("read {read}, skipped {skipped} deleted before read, log start now {low}");
    assert!(low > 0, "retention deleted segments");
    assert_eq!(read as i64 + skipped, RECORDS as i64);
}
