//! A sink's tasks share partitions through the group `connect-<name>`. When a rebalance
//! takes a partition away, the task flushes and commits it first (as Kafka's WorkerSinkTask
//! does on revocation), so with commits otherwise rare (the 60 s default) nothing repeats.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use serde_json::json;
use strom_client::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};
use strom_connect::config::Props;
use strom_connect::standalone::Standalone;

async fn produce(b: &str, range: std::ops::Range<usize>) {
    let p = Producer::new(ProducerConfig::new(b)).await.unwrap();
    let mut acks = Vec::new();
    for i in range {
        let rec = ProducerRecord::new("spread")
            .key(format!("k{}", i % 97).into_bytes())
            .value(format!("v-{i:05}").into_bytes());
        acks.push(p.send(rec).await.unwrap());
    }
    for a in acks {
        a.await.unwrap();
    }
    p.close().await;
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_taken_away_mid_stream_are_committed_first() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "spread", 3).await;
    produce(&b, 0..3000).await;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let worker: Props = [
        ("bootstrap.servers", b.clone()),
        ("listeners", "http://127.0.0.1:0".into()),
        (
            "offset.storage.file.filename",
            dir.path().join("offsets").display().to_string(),
        ),
        (
            "key.converter",
            "org.apache.kafka.connect.storage.StringConverter".into(),
        ),
        (
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter".into(),
        ),
        ("consumer.heartbeat.interval.ms", "200".into()),
    ]
    .into_iter()
    .map(|(k, v): (&str, String)| (k.to_owned(), v))
    .collect();
    let w = Standalone::start(worker, Vec::new(), None).await.unwrap();
    let r = http(
        w.addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "spread-sink", "config": {
        "connector.class": "FileStreamSink", "tasks.max": "1", "topics": "spread",
        "file": out.display().to_string()}})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    wait_for("3000 lines", Duration::from_secs(30), async || {
        (lines(&out).len() >= 3000).then_some(())
    })
    .await;

    // Another member joins the sink's group and takes partitions away, then leaves without
    // committing anything; the partitions go back to the sink task.
    let mut cc = ConsumerConfig::new(&b);
    cc.set("group.id", "connect-spread-sink").unwrap();
    cc.set("enable.auto.commit", "false").unwrap();
    cc.set("heartbeat.interval.ms", "200").unwrap();
    let mut intruder = Consumer::new(cc).await.unwrap();
    intruder.subscribe(&["spread"], None).unwrap();
    wait_for(
        "the intruder to own a partition",
        Duration::from_secs(30),
        async || {
            intruder.poll(Duration::from_millis(100)).await.unwrap();
            (!intruder.assignment().is_empty()).then_some(())
        },
    )
    .await;
    intruder.close().await.unwrap();

    produce(&b, 3000..6000).await;
    wait_for("6000 lines", Duration::from_secs(60), async || {
        (lines(&out).len() >= 6000).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    w.stop().await;
    let all = lines(&out);
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), 6000);
    assert_eq!(all.len(), 6000, "no record was written twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topics_regex_sink_follows_new_matching_topics() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    for t in ["logs-a", "logs-b", "other"] {
        create_topic(&b, t, 1).await;
    }
    let send = |topic: &'static str, value: &'static str| {
        let b = b.clone();
        async move {
            let p = Producer::new(ProducerConfig::new(&b)).await.unwrap();
            let rec = ProducerRecord::new(topic).value(value.as_bytes().to_vec());
            p.send(rec).await.unwrap().await.unwrap();
            p.close().await;
        }
    };
    send("logs-a", "from-a").await;
    send("logs-b", "from-b").await;
    send("other", "from-other").await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let worker: Props = [
        ("bootstrap.servers", b.clone()),
        ("listeners", "http://127.0.0.1:0".into()),
        (
            "offset.storage.file.filename",
            dir.path().join("offsets").display().to_string(),
        ),
        (
            "value.converter",
            "org.apache.kafka.connect.storage.StringConverter".into(),
        ),
        ("consumer.heartbeat.interval.ms", "200".into()),
    ]
    .into_iter()
    .map(|(k, v): (&str, String)| (k.to_owned(), v))
    .collect();
    let w = Standalone::start(worker, Vec::new(), None).await.unwrap();
    let r = http(
        w.addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "logs", "config": {
        "connector.class": "FileStreamSink", "topics.regex": "logs-.*",
        "file": out.display().to_string()}})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    wait_for("two lines", Duration::from_secs(30), async || {
        (lines(&out).len() >= 2).then_some(())
    })
    .await;
    assert_eq!(sorted(lines(&out)), ["from-a", "from-b"]);
    let r = http(w.addr, "GET", "/connectors/logs/topics", None).await;
    assert_eq!(r.json(), json!({"logs": {"topics": ["logs-a", "logs-b"]}}));

    // A topic created later is picked up at the next look (every 5 s).
    create_topic(&b, "logs-c", 1).await;
    send("logs-c", "from-c").await;
    wait_for(
        "the new topic's line",
        Duration::from_secs(30),
        async || (lines(&out).len() >= 3).then_some(()),
    )
    .await;
    assert_eq!(sorted(lines(&out)), ["from-a", "from-b", "from-c"]);
    w.stop().await;
}
