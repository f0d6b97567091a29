//! strom-client's consumer against the real broker: records produced by librdkafka with
//! every codec read back by assign(); seek, pause/resume, auto.offset.reset, timestamps,
//! manual commits and committed offsets.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{create_topic, Server};
use rdkafka::producer::FutureRecord;
use strom_client::{
    Consumer, ConsumerConfig, ConsumerRecord, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};

fn config(bootstrap: &str, extra: &[(&str, &str)]) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(bootstrap);
    c.set("fetch.max.wait.ms", "100").unwrap();
    for (k, v) in extra {
        c.set(k, v).unwrap();
    }
    c
}

async fn read(consumer: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            Instant::now() < deadline,
            "read {} of {n} records",
            out.len()
        );
        out.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    out
}

async fn rd_produce(bootstrap: &str, topic: &str, codec: &str, n: usize) {
    let p = common::producer(bootstrap, &[("compression.codec", codec)]);
    let mut fs = Vec::new();
    for i in 0..n {
        let key = format!("k{i}");
        let value = format!("{codec}-{i}");
        let rec = FutureRecord::to(topic)
            .partition(0)
            .key(&key)
            .payload(&value)
            .timestamp(1_000_000 + i as i64);
        fs.push(p.send_result(rec).map_err(|(e, _)| e).unwrap());
    }
    for f in fs {
        f.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_librdkafka_batches_of_every_codec() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("rd-{codec}");
        create_topic(&b, &topic, 1, &[]).await;
        rd_produce(&b, &topic, codec, 300).await;
        let mut c = Consumer::new(config(&b, &[("auto.offset.reset", "earliest")]))
            .await
            .unwrap();
        c.assign(&[TopicPartition::new(topic.clone(), 0)]);
        let got = read(&mut c, 300).await;
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.offset, i as i64, "{codec}");
            assert_eq!(r.key.as_deref(), Some(format!("k{i}").as_bytes()));
            assert_eq!(r.value.as_deref(), Some(format!("{codec}-{i}").as_bytes()));
            assert_eq!(r.timestamp, 1_000_000 + i as i64);
        }
        c.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seek_pause_resume_reset_and_commit() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "nav", 2, &[]).await;
    rd_produce(&b, "nav", "none", 100).await;
    let tp0 = TopicPartition::new("nav", 0);
    let tp1 = TopicPartition::new("nav", 1);

    // latest (the default) starts at the end; earliest at the start.
    let mut c = Consumer::new(config(&b, &[])).await.unwrap();
    c.assign(std::slice::from_ref(&tp0));
    assert!(c.poll(Duration::from_millis(500)).await.unwrap().is_empty());
    assert_eq!(c.position(&tp0), Some(100));

    c.seek(&tp0, 42).unwrap();
    let got = read(&mut c, 1).await;
    assert_eq!(got[0].offset, 42);

    c.seek_to_timestamp(1_000_090).await.unwrap();
    assert_eq!(c.position(&tp0), Some(90));
    c.seek_to_beginning().await.unwrap();
    assert_eq!(c.position(&tp0), Some(0));

    c.pause(std::slice::from_ref(&tp0));
    assert_eq!(c.paused(), vec![tp0.clone()]);
    assert!(c.poll(Duration::from_millis(300)).await.unwrap().is_empty());
    c.resume(std::slice::from_ref(&tp0));
    let got = read(&mut c, 100).await;
    assert_eq!(got.first().map(|r| r.offset), Some(0));
    c.close().await.unwrap();

    // auto.offset.reset=none without a committed offset is an error; commits are kept.
    let mut c = Consumer::new(config(
        &b,
        &[
            ("group.id", "g-manual"),
            ("auto.offset.reset", "none"),
            ("enable.auto.commit", "false"),
        ],
    ))
    .await
    .unwrap();
    c.assign(&[tp0.clone(), tp1.clone()]);
    let err = c.poll(Duration::from_millis(200)).await.unwrap_err();
    assert!(err.to_string().starts_with("OFFSET_OUT_OF_RANGE"), "{err}");
    c.commit_offsets(&BTreeMap::from([(tp0.clone(), 60), (tp1.clone(), 0)]))
        .await
        .unwrap();
    let committed = c.committed(&[tp0.clone(), tp1.clone()]).await.unwrap();
    assert_eq!(committed.get(&tp0), Some(&60));
    let got = read(&mut c, 40).await;
    assert_eq!(got[0].offset, 60);
    c.commit().await.unwrap();
    assert_eq!(
        c.committed(std::slice::from_ref(&tp0))
            .await
            .unwrap()
            .get(&tp0),
        Some(&100)
    );
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_position_resets() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "oor", 1, &[]).await;
    rd_produce(&b, "oor", "none", 10).await;
    let tp = TopicPartition::new("oor", 0);
    let mut c = Consumer::new(config(&b, &[("auto.offset.reset", "earliest")]))
        .await
        .unwrap();
    c.assign(std::slice::from_ref(&tp));
    c.seek(&tp, 5000).unwrap();
    let got = read(&mut c, 10).await;
    assert_eq!(got[0].offset, 0, "OFFSET_OUT_OF_RANGE resets to earliest");
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strom_producer_to_strom_consumer_every_codec_read_committed() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("s2s-{codec}");
        create_topic(&b, &topic, 2, &[]).await;
        let mut pc = ProducerConfig::new(&b);
        pc.set("compression.type", codec).unwrap();
        let p = Producer::new(pc).await.unwrap();
        let mut acks = Vec::new();
        for i in 0..400 {
            let rec = ProducerRecord::new(topic.clone())
                .key(format!("k{i}"))
                .value(format!("{codec}-{i}"))
                .header("n", Some(format!("{i}").into()));
            acks.push(p.send(rec).await.unwrap());
        }
        for a in acks {
            a.await.unwrap();
        }
        p.close().await;
        let mut c = Consumer::new(config(
            &b,
            &[
                ("auto.offset.reset", "earliest"),
                ("isolation.level", "read_committed"),
            ],
        ))
        .await
        .unwrap();
        c.assign(&[
            TopicPartition::new(topic.clone(), 0),
            TopicPartition::new(topic.clone(), 1),
        ]);
        let mut got = read(&mut c, 400).await;
        got.sort_by_key(|r| r.value.clone());
        let mut values: Vec<String> = got
            .iter()
            .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
            .collect();
        values.sort();
        let mut expected: Vec<String> = (0..400).map(|i| format!("{codec}-{i}")).collect();
        expected.sort();
        assert_eq!(values, expected);
        assert!(got
            .iter()
            .all(|r| r.headers.len() == 1 && r.headers[0].0 == "n"));
        c.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_commit_stores_positions_while_polling() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "auto", 1, &[]).await;
    rd_produce(&b, "auto", "none", 30).await;
    let mut c = Consumer::new(config(
        &b,
        &[
            ("group.id", "auto-group"),
            ("auto.offset.reset", "earliest"),
            ("auto.commit.interval.ms", "100"),
        ],
    ))
    .await
    .unwrap();
    c.subscribe(&["auto"], None).unwrap();
    read(&mut c, 30).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    c.poll(Duration::from_millis(50)).await.unwrap();
    // Checked from a second client while the member is still alive.
    let admin = strom_client::Admin::new(strom_client::ClientConfig::new(&b))
        .await
        .unwrap();
    let committed = admin.list_group_offsets("auto-group").await.unwrap();
    assert_eq!(committed[&TopicPartition::new("auto", 0)].offset, 30);
    c.close().await.unwrap();
}

/// One fetch per broker is in flight, answered in order, so a long poll for an idle partition
/// would hold back a busy partition of the same broker until `fetch.max.wait.ms` expires each
/// time the application drains it: here one batch per fetch (`max.partition.fetch.bytes=1`)
/// and a 10 s long poll would make 20 batches take minutes. Read within `read`'s 20 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_partition_does_not_hold_back_a_busy_one() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "skew", 2, &[]).await;
    const BATCHES: usize = 20;
    for _ in 0..BATCHES {
        rd_produce(&b, "skew", "none", 100).await;
    }
    let mut c = Consumer::new(config(
        &b,
        &[
            ("auto.offset.reset", "earliest"),
            ("fetch.max.wait.ms", "10000"),
            ("max.partition.fetch.bytes", "1"),
            ("max.poll.records", "10"),
        ],
    ))
    .await
    .unwrap();
    c.assign(&[
        TopicPartition::new("skew", 0),
        TopicPartition::new("skew", 1),
    ]);
    let got = read(&mut c, BATCHES * 100).await;
    let offsets: Vec<(i32, i64)> = got.iter().map(|r| (r.partition, r.offset)).collect();
    let expected: Vec<(i32, i64)> = (0..(BATCHES * 100) as i64).map(|o| (0, o)).collect();
    assert_eq!(offsets, expected);
    // The idle partition is still fetched once nothing is buffered: a record sent to it now
    // arrives through the long poll.
    let p = common::producer(&b, &[]);
    p.send_result(
        FutureRecord::to("skew")
            .partition(1)
            .key("late")
            .payload("late"),
    )
    .map_err(|(e, _)| e)
    .unwrap()
    .await
    .unwrap()
    .unwrap();
    let late = read(&mut c, 1).await;
    assert_eq!((late[0].partition, late[0].offset), (1, 0));
    assert_eq!(late[0].value.as_deref(), Some(&b"late"[..]));
    c.close().await.unwrap();
}

/// While busy partitions keep records buffered (so the consumer never long-polls), a
/// partition that looked idle is still fetched: a record sent to it arrives long before the
/// busy partitions are read to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_partition_is_still_fetched_while_busy_ones_keep_the_buffer_full() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "busy", 3, &[]).await;
    let p = common::producer(&b, &[]);
    const BATCHES: usize = 20;
    for _ in 0..BATCHES {
        let mut fs = Vec::new();
        for partition in [0, 2] {
            for i in 0..100 {
                let value = format!("{i}");
                let rec = FutureRecord::to("busy")
                    .partition(partition)
                    .key("k")
                    .payload(&value);
                fs.push(p.send_result(rec).map_err(|(e, _)| e).unwrap());
            }
        }
        for f in fs {
            f.await.unwrap().unwrap();
        }
    }
    let mut c = Consumer::new(config(
        &b,
        &[
            ("auto.offset.reset", "earliest"),
            ("max.partition.fetch.bytes", "1"),
            ("max.poll.records", "10"),
        ],
    ))
    .await
    .unwrap();
    c.assign(&[
        TopicPartition::new("busy", 0),
        TopicPartition::new("busy", 1),
        TopicPartition::new("busy", 2),
    ]);
    let mut got = read(&mut c, 50).await;
    p.send_result(
        FutureRecord::to("busy")
            .partition(1)
            .key("late")
            .payload("late"),
    )
    .map_err(|(e, _)| e)
    .unwrap()
    .await
    .unwrap()
    .unwrap();
    let total = 2 * BATCHES * 100 + 1;
    got.extend(read(&mut c, total - got.len()).await);
    let late = got
        .iter()
        .position(|r| r.partition == 1)
        .expect("the record sent to partition 1 was read");
    assert!(
        late < total - 1000,
        "the record of the idle partition came at {late} of {total}: it waited for the busy ones"
    );
    c.close().await.unwrap();
}
