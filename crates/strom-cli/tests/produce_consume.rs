//! Produce and consume through the real `strom` binary with librdkafka (the rdkafka crate):
//! acks 0/1/all, every compression codec, keys/headers/null values/timestamps, ordering,
//! large messages, size limits, offsets by timestamp, seek, and a restart.

mod common;

use std::time::Duration;

use common::{consume, create_topic, producer, Record, Server};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);

async fn send(
    p: &rdkafka::producer::FutureProducer,
    topic: &str,
    partition: i32,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<(i32, i64), KafkaError> {
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).partition(partition);
    if let Some(k) = key {
        record = record.key(k);
    }
    if let Some(v) = value {
        record = record.payload(v);
    }
    p.send(record, Duration::from_secs(20))
        .await
        .map(|d| (d.partition, d.offset))
        .map_err(|(e, _)| e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_and_compression_round_trip() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "codecs", 1, &[]).await;
    let mut expected = Vec::new();
    for acks in ["0", "1", "all"] {
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
            let p = producer(&b, &[("acks", acks), ("compression.type", codec)]);
            for i in 0..20 {
                let value = format!("{acks}-{codec}-{i}-{}", "x".repeat(200));
                let result = send(&p, "codecs", 0, Some(b"k"), Some(value.as_bytes())).await;
                let (_, offset) =
                    result.unwrap_or_else(|e| panic!("acks={acks} codec={codec}: {e}"));
                if acks != "0" {
                    assert!(offset >= 0, "acks={acks} must report the assigned offset");
                }
                expected.push(value);
            }
            rdkafka::producer::Producer::flush(&p, Duration::from_secs(10)).unwrap();
        }
    }
    let got = consume(
        &b,
        "codecs",
        &[0],
        Offset::Beginning,
        expected.len(),
        TIMEOUT,
        &[],
    );
    let values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(values, expected);
    let offsets: Vec<i64> = got.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..expected.len() as i64).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_headers_nulls_and_timestamps_are_preserved() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "fields", 1, &[]).await;
    let p = producer(&b, &[("acks", "all")]);
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "h1",
            value: Some("v1"),
        })
        .insert(Header {
            key: "empty",
            value: None::<&[u8]>,
        });
    let record: FutureRecord<'_, str, str> = FutureRecord::to("fields")
        .partition(0)
        .key("the-key")
        .payload("the-value")
        .timestamp(1_600_000_000_123)
        .headers(headers);
    p.send(record, Duration::from_secs(10))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    send(&p, "fields", 0, Some(b"tombstone"), None)
        .await
        .unwrap();
    send(&p, "fields", 0, None, Some(b"no-key")).await.unwrap();
    let got = consume(&b, "fields", &[0], Offset::Beginning, 3, TIMEOUT, &[]);
    assert_eq!(got[0].key.as_deref(), Some(&b"the-key"[..]));
    assert_eq!(got[0].value.as_deref(), Some(&b"the-value"[..]));
    assert_eq!(got[0].timestamp, Some(1_600_000_000_123));
    assert_eq!(
        got[0].headers,
        vec![
            ("h1".to_owned(), Some(b"v1".to_vec())),
            ("empty".to_owned(), None)
        ]
    );
    assert_eq!(got[1].key.as_deref(), Some(&b"tombstone"[..]));
    assert_eq!(got[1].value, None);
    assert_eq!(got[2].key, None);
    assert_eq!(got[2].value.as_deref(), Some(&b"no-key"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_messages_keep_their_order_across_partitions() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "ordered", 3, &[]).await;
    let p = producer(&b, &[("acks", "all"), ("enable.idempotence", "true")]);
    // Enqueue in order (send_result does not wait), then wait for every delivery.
    let mut deliveries = Vec::new();
    for i in 0..10_000u32 {
        let partition = (i % 3) as i32;
        let value = i.to_be_bytes();
        let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to("ordered")
            .partition(partition)
            .payload(&value);
        deliveries.push(p.send_result(record).map_err(|(e, _)| e).unwrap());
    }
    for d in deliveries {
        d.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
    let got = consume(
        &b,
        "ordered",
        &[0, 1, 2],
        Offset::Beginning,
        10_000,
        TIMEOUT,
        &[],
    );
    for partition in 0..3 {
        let seq: Vec<u32> = got
            .iter()
            .filter(|r| r.partition == partition)
            .map(|r| u32::from_be_bytes(r.value.clone().unwrap().try_into().unwrap()))
            .collect();
        let first_disorder = seq.windows(2).position(|w| w[0] > w[1]);
        assert_eq!(first_disorder, None, "partition {partition} out of order");
        assert!(seq.iter().all(|v| v % 3 == partition as u32));
        assert_eq!(
            seq.len(),
            (0..10_000u32).filter(|v| v % 3 == partition as u32).count()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_message_and_message_too_large() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "big", 1, &[]).await;
    let p = producer(&b, &[("acks", "all"), ("message.max.bytes", "5000000")]);
    let big = vec![7u8; 900 * 1024];
    send(&p, "big", 0, None, Some(&big)).await.unwrap();
    // 2 MB is over the broker's max.message.bytes (1 MiB default): the broker refuses it.
    let too_big = vec![1u8; 2 * 1024 * 1024];
    let err = send(&p, "big", 0, None, Some(&too_big)).await.unwrap_err();
    assert_eq!(
        err.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge),
        "got {err:?}"
    );
    let got = consume(
        &b,
        "big",
        &[0],
        Offset::Beginning,
        1,
        TIMEOUT,
        &[("fetch.message.max.bytes", "2000000")],
    );
    assert_eq!(got[0].value.as_deref(), Some(&big[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times_and_seek() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "times", 1, &[]).await;
    let p = producer(&b, &[("acks", "1")]);
    for i in 0..10i64 {
        let record: FutureRecord<'_, str, str> = FutureRecord::to("times")
            .partition(0)
            .payload("v")
            .timestamp(1_000_000 + i * 1000);
        p.send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let consumer = common::consumer(&b, &[]);
    let mut query = TopicPartitionList::new();
    query
        .add_partition_offset("times", 0, Offset::Offset(1_004_500))
        .unwrap();
    let found = consumer
        .offsets_for_times(query, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        found.find_partition("times", 0).unwrap().offset(),
        Offset::Offset(5)
    );
    let mut late = TopicPartitionList::new();
    late.add_partition_offset("times", 0, Offset::Offset(9_999_999))
        .unwrap();
    let found = consumer
        .offsets_for_times(late, Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        found.find_partition("times", 0).unwrap().offset(),
        Offset::End
    );
    let (low, high) = consumer
        .fetch_watermarks("times", 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!((low, high), (0, 10));

    let got = consume(&b, "times", &[0], Offset::Offset(7), 3, TIMEOUT, &[]);
    assert_eq!(
        got.iter().map(|r| r.offset).collect::<Vec<_>>(),
        vec![7, 8, 9]
    );
    let got: Vec<Record> = consume(&b, "times", &[0], Offset::OffsetTail(2), 2, TIMEOUT, &[]);
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![8, 9]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reads_everything_back() {
    let mut server = Server::start(&[("log.segment.bytes", "1048576")]);
    let b = server.bootstrap();
    create_topic(&b, "durable", 2, &[("retention.ms", "-1")]).await;
    let p = producer(&b, &[("acks", "all")]);
    for i in 0..2000u32 {
        let value = format!("m{i}-{}", "d".repeat(1500));
        send(&p, "durable", (i % 2) as i32, None, Some(value.as_bytes()))
            .await
            .unwrap();
    }
    drop(p);
    assert!(server.stop(), "clean shutdown on SIGTERM");
    server.restart();
    let got = consume(
        &b,
        "durable",
        &[0, 1],
        Offset::Beginning,
        2000,
        TIMEOUT,
        &[],
    );
    let mut values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    values.sort();
    let mut expected: Vec<String> = (0..2000)
        .map(|i| format!("m{i}-{}", "d".repeat(1500)))
        .collect();
    expected.sort();
    assert_eq!(values, expected);
    // The topic config override survived the restart too.
    let admin = common::admin(&b);
    let configs = admin
        .describe_configs(
            &[rdkafka::admin::ResourceSpecifier::Topic("durable")],
            &rdkafka::admin::AdminOptions::new(),
        )
        .await
        .unwrap();
    let config = configs.into_iter().next().unwrap().unwrap();
    assert_eq!(
        config
            .get("retention.ms")
            .and_then(|e| e.value.clone())
            .as_deref(),
        Some("-1")
    );
}

/// What one producer sent: per partition, (offset the producer was told or -1, value,
/// timestamp the producer set or the broker's LogAppendTime it reported).
type Sent = std::collections::BTreeMap<i32, Vec<(i64, Vec<u8>, i64)>>;

/// Queues `count` records of `size` bytes to both partitions of `topic` at once (so that
/// librdkafka packs them into one request per flush), then waits for every delivery report.
async fn send_many(
    p: &rdkafka::producer::FutureProducer,
    topic: &str,
    label: &str,
    count: usize,
    size: usize,
    sent: &mut Sent,
) {
    let mut pending = Vec::new();
    for i in 0..count {
        let partition = (i % 2) as i32;
        let mut value = format!("{label}/{i}/").into_bytes();
        // Varied padding, so that compression leaves the frames large.
        value.extend((0..size).map(|j| (j * 7 + i * 13) as u8));
        let timestamp = 1_700_000_000_000 + i as i64;
        let record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic)
            .partition(partition)
            .payload(&value[..])
            .timestamp(timestamp);
        let delivery = p.send_result(record).map_err(|(e, _)| e).unwrap();
        pending.push((partition, value, timestamp, delivery));
    }
    for (partition, value, timestamp, delivery) in pending {
        let d = delivery
            .await
            .expect("delivery report")
            .map_err(|(e, _)| e)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(d.partition, partition);
        let ts = match d.timestamp {
            rdkafka::Timestamp::LogAppendTime(t) => t,
            _ => timestamp,
        };
        sent.entry(partition)
            .or_default()
            .push((d.offset, value, ts));
    }
}

/// Reads `topic`'s two partitions to the end and checks them against what was sent: the
/// same values in the same order, each at the offset its producer was told, with the
/// producer's timestamp (CreateTime) or the broker's, as reported to the producer and
/// within the produce's time (LogAppendTime).
fn check_read_back(bootstrap: &str, topic: &str, sent: &Sent, append_time: Option<(i64, i64)>) {
    use rdkafka::Message;
    let consumer = common::consumer(bootstrap, &[("isolation.level", "read_committed")]);
    let mut tpl = TopicPartitionList::new();
    for p in sent.keys() {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let total: usize = sent.values().map(Vec::len).sum();
    let mut got: Sent = Default::default();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while got.values().map(Vec::len).sum::<usize>() < total {
        assert!(
            std::time::Instant::now() < deadline,
            "{topic}: read {got:?}"
        );
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let m = m.unwrap();
        let ts = match (m.timestamp(), append_time) {
            (rdkafka::Timestamp::LogAppendTime(t), Some((from, to))) => {
                assert!((from..=to).contains(&t), "{topic}: append time {t}");
                t
            }
            (rdkafka::Timestamp::CreateTime(t), None) => t,
            (other, _) => panic!("{topic}: unexpected timestamp {other:?}"),
        };
        got.entry(m.partition())
            .or_default()
            .push((m.offset(), m.payload().unwrap().to_vec(), ts));
    }
    for (partition, expected) in sent {
        let read = &got[partition];
        assert_eq!(read.len(), expected.len(), "{topic}-{partition}");
        for (i, (r, e)) in read.iter().zip(expected).enumerate() {
            assert_eq!(r.1, e.1, "{topic}-{partition} record {i}: value");
            // acks=0: no answer, so no offset and no LogAppendTime reached the producer.
            if e.0 >= 0 {
                assert_eq!(r.0, e.0, "{topic}-{partition} record {i}: offset");
            }
            if e.0 >= 0 || append_time.is_none() {
                assert_eq!(r.2, e.2, "{topic}-{partition} record {i}: timestamp");
            }
        }
        assert!(
            read.windows(2).all(|w| w[0].0 < w[1].0),
            "{topic}-{partition}: offsets in order"
        );
    }
}

/// Produce appends a request's records in place, in the request frame (frames larger than
/// the connection's read buffer in a buffer from the frame pool): through acks 0/1/all,
/// compression, an idempotent and a transactional producer, small and large frames, on a
/// CreateTime and a LogAppendTime topic, the log holds exactly what was sent, at the offsets
/// the producers were told, with the right timestamps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_appends_keep_contents_offsets_and_timestamps() {
    use rdkafka::producer::Producer;
    let server = Server::start(&[]);
    let b = server.bootstrap();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let modes: [(&str, &[(&str, &str)]); 4] = [
        ("acks0", &[("acks", "0")]),
        ("acks1-lz4", &[("acks", "1"), ("compression.type", "lz4")]),
        (
            "idempotent-zstd",
            &[("enable.idempotence", "true"), ("compression.type", "zstd")],
        ),
        ("all-gzip", &[("acks", "all"), ("compression.type", "gzip")]),
    ];
    for (topic, configs) in [
        ("create-time", &[][..]),
        (
            "append-time",
            &[("message.timestamp.type", "LogAppendTime")][..],
        ),
    ] {
        create_topic(&b, topic, 2, configs).await;
        let started = now();
        let mut sent = Sent::new();
        for (mode, config) in modes {
            let mut c = vec![("linger.ms", "100"), ("batch.size", "1000000")];
            c.extend_from_slice(config);
            let p = producer(&b, &c);
            // Small frames (a few records), then ~150 KiB ones (read into a pooled buffer).
            send_many(&p, topic, &format!("{mode}-small"), 4, 10, &mut sent).await;
            send_many(&p, topic, &format!("{mode}-large"), 300, 1000, &mut sent).await;
            p.flush(Duration::from_secs(10)).unwrap();
        }
        // Transactional: a large committed transaction, an aborted one, a small committed one.
        let id = format!("txn-{topic}");
        let p = producer(
            &b,
            &[
                ("transactional.id", id.as_str()),
                ("linger.ms", "100"),
                ("batch.size", "1000000"),
            ],
        );
        p.init_transactions(TIMEOUT).unwrap();
        p.begin_transaction().unwrap();
        send_many(&p, topic, "txn-large", 300, 1000, &mut sent).await;
        p.commit_transaction(TIMEOUT).unwrap();
        p.begin_transaction().unwrap();
        let mut aborted = Sent::new();
        send_many(&p, topic, "txn-aborted", 10, 10, &mut aborted).await;
        p.abort_transaction(TIMEOUT).unwrap();
        p.begin_transaction().unwrap();
        send_many(&p, topic, "txn-small", 4, 10, &mut sent).await;
        p.commit_transaction(TIMEOUT).unwrap();
        let append_time = (!configs.is_empty()).then(|| (started, now()));
        if append_time.is_none() {
            // CreateTime: the producer's timestamps, which send_many set.
            for records in sent.values() {
                assert!(records.iter().all(|r| r.2 < started));
            }
        }
        check_read_back(&b, topic, &sent, append_time);
    }
}
