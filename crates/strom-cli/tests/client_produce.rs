//! strom-client's producer against the real broker, checked with librdkafka on the other
//! side: every codec, keyed partitioning identical to librdkafka's `murmur2_random`,
//! idempotence, acks 0/1/all, headers, flush and close.

mod common;

use std::time::Duration;

use common::{consume, create_topic, Server};
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;
use strom_client::{Producer, ProducerConfig, ProducerRecord};

fn config(bootstrap: &str, extra: &[(&str, &str)]) -> ProducerConfig {
    let mut c = ProducerConfig::new(bootstrap);
    for (k, v) in extra {
        c.set(k, v).unwrap();
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_round_trips_to_librdkafka() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&b, &topic, 1, &[]).await;
        let p = Producer::new(config(
            &b,
            &[("compression.type", codec), ("linger.ms", "20")],
        ))
        .await
        .unwrap();
        assert!(p.producer_id().0 >= 0, "idempotent by default");
        let mut futures = Vec::new();
        for i in 0..500 {
            let rec = ProducerRecord::new(topic.clone())
                .key(format!("k{i}"))
                .value(format!("value-{i}-{}", "x".repeat(i % 50)))
                .header("h", Some(format!("{i}").into()));
            futures.push(p.send(rec).await.unwrap());
        }
        p.flush().await;
        for (i, f) in futures.into_iter().enumerate() {
            let md = f.await.unwrap();
            assert_eq!((md.partition, md.offset), (0, i as i64), "{codec}");
        }
        p.close().await;
        let got = consume(
            &b,
            &topic,
            &[0],
            Offset::Beginning,
            500,
            Duration::from_secs(20),
            &[],
        );
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.offset, i as i64);
            assert_eq!(
                r.key.as_deref(),
                Some(format!("k{i}").as_bytes()),
                "{codec}"
            );
            let v = format!("value-{i}-{}", "x".repeat(i % 50));
            assert_eq!(r.value.as_deref(), Some(v.as_bytes()), "{codec}");
            assert_eq!(r.headers[0].0, "h");
            assert_eq!(r.headers[0].1.as_deref(), Some(format!("{i}").as_bytes()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_land_where_librdkafka_murmur2_puts_them() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "keys-strom", 7, &[]).await;
    create_topic(&b, "keys-rdkafka", 7, &[]).await;
    let keys: Vec<String> = ["a", "b", "hello", "21", "foobar", "abc", ""]
        .iter()
        .map(|s| s.to_string())
        .chain((0..50).map(|i| format!("key-{i}")))
        .collect();
    let p = Producer::new(config(&b, &[])).await.unwrap();
    let rd = common::producer(&b, &[("partitioner", "murmur2_random")]);
    for k in &keys {
        let ours = p
            .send(ProducerRecord::new("keys-strom").key(k.clone()).value("v"))
            .await
            .unwrap()
            .await
            .unwrap();
        let theirs = rd
            .send(
                FutureRecord::to("keys-rdkafka")
                    .key(k.as_str())
                    .payload("v"),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        assert_eq!(ours.partition, theirs.partition, "key '{k}'");
        assert_eq!(
            ours.partition,
            strom_client::partitioner::partition_for_key(k.as_bytes(), 7)
        );
    }
    // Java's values: toPositive(murmur2("a")) % 7 etc., computed from the algorithm.
    assert_eq!(strom_client::partitioner::murmur2(b"a"), -1_563_381_124);
    assert_eq!(strom_client::partitioner::murmur2(b"b"), -1_853_091_852);
    assert_eq!(strom_client::partitioner::murmur2(b"hello"), 2_132_663_229);
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_one_all_and_sticky_null_keys() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "acks", 3, &[]).await;
    for acks in ["0", "1", "all"] {
        let p = Producer::new(config(&b, &[("acks", acks), ("batch.size", "1000")]))
            .await
            .unwrap();
        assert_eq!(p.producer_id().0 >= 0, acks == "all");
        let mut fs = Vec::new();
        for i in 0..300 {
            fs.push(
                p.send(ProducerRecord::new("acks").value(format!("{acks}-{i:04}")))
                    .await
                    .unwrap(),
            );
        }
        p.close().await;
        for f in fs {
            let md = f.await.unwrap();
            assert_eq!(md.offset >= 0, acks != "0");
        }
    }
    let got = consume(
        &b,
        "acks",
        &[0, 1, 2],
        Offset::Beginning,
        900,
        Duration::from_secs(20),
        &[],
    );
    assert_eq!(got.len(), 900);
    let spread = (0..3)
        .filter(|p| got.iter().any(|r| r.partition == *p))
        .count();
    assert!(
        spread >= 2,
        "sticky partitioning moves on after batch.size bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_buffer_memory_applies_back_pressure() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "bp", 1, &[]).await;
    let p = Producer::new(config(
        &b,
        &[
            ("buffer.memory", "20000"),
            ("batch.size", "4000"),
            ("linger.ms", "0"),
        ],
    ))
    .await
    .unwrap();
    let mut fs = Vec::new();
    for i in 0..2000 {
        fs.push(
            p.send(ProducerRecord::new("bp").value(vec![i as u8; 200]))
                .await
                .unwrap(),
        );
    }
    p.flush().await;
    let last = fs.pop().unwrap().await.unwrap();
    assert_eq!(last.offset, 1999);
    let too_big = p
        .send(ProducerRecord::new("bp").value(vec![0u8; 30_000]))
        .await;
    assert!(too_big
        .unwrap_err()
        .to_string()
        .starts_with("RECORD_TOO_LARGE"));
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_reconnects_and_retries_across_a_broker_restart() {
    let mut server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "restart", 1, &[]).await;
    let p = Producer::new(config(&b, &[("retry.backoff.ms", "50")]))
        .await
        .unwrap();
    for i in 0..100 {
        p.send(ProducerRecord::new("restart").value(format!("{i}")))
            .await
            .unwrap();
    }
    p.flush().await;
    assert!(server.stop(), "clean shutdown");
    server.restart();
    let mut acks = Vec::new();
    for i in 100..200 {
        let rec = ProducerRecord::new("restart").value(format!("{i}"));
        acks.push(p.send(rec).await.unwrap());
    }
    for (i, a) in acks.into_iter().enumerate() {
        assert_eq!(a.await.unwrap().offset, 100 + i as i64);
    }
    p.close().await;
    let got = consume(
        &b,
        "restart",
        &[0],
        Offset::Beginning,
        200,
        Duration::from_secs(20),
        &[],
    );
    let values: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(values, (0..200).map(|i| i.to_string()).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_topic_is_auto_created_or_reported_by_name() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    let p = Producer::new(config(&b, &[])).await.unwrap();
    let md = p
        .send(ProducerRecord::new("made-on-demand").value("v"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(md.offset, 0);
    p.close().await;

    let server = Server::start(&[("auto.create.topics.enable", "false")]);
    let c = config(&server.bootstrap(), &[("max.block.ms", "1500")]);
    let p = Producer::new(c).await.unwrap();
    let err = p
        .send(ProducerRecord::new("missing").value("v"))
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("UNKNOWN_TOPIC_OR_PARTITION"), "{text}");
    p.close().await;
}
