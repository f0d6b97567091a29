//! The record pipeline through a real broker: transforms and the JSON converter on a
//! source, and a sink's error handling: `errors.tolerance=all` with a dead-letter queue and
//! Kafka's context headers (the runtime creates the DLQ topic), and `none`, which fails the task (restartable with onlyFailed).

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value as J};
use strom_client::{Producer, ProducerConfig, ProducerRecord};
use strom_connect::config::Props;
use strom_connect::standalone::Standalone;

async fn start_worker(b: &str, dir: &std::path::Path) -> Standalone {
    let props: Props = [
        ("bootstrap.servers", b.to_owned()),
        ("listeners", "http://127.0.0.1:0".to_owned()),
        (
            "offset.storage.file.filename",
            dir.join("offsets").display().to_string(),
        ),
        ("offset.flush.interval.ms", "50".to_owned()),
        (
            "key.converter",
            "org.apache.kafka.connect.storage.StringConverter".to_owned(),
        ),
        (
            "value.converter",
            "org.apache.kafka.connect.json.JsonConverter".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    Standalone::start(props, Vec::new(), None).await.unwrap()
}

fn text(b: &Option<bytes::Bytes>) -> String {
    String::from_utf8(b.clone().unwrap_or_default().to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_transforms_and_json_converter() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "routed-lines", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "alpha\nbeta\nskip-me\n").unwrap();
    let w = start_worker(&b, dir.path()).await;
    let config = json!({
        "connector.class": "FileStreamSource", "file": input.display().to_string(), "topic": "lines",
        "value.converter.schemas.enable": "true",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "transforms": "hoist,add,key,route,drop,hdr",
        "transforms.hoist.type": "org.apache.kafka.connect.transforms.HoistField$Value",
        "transforms.hoist.field": "line",
        "transforms.add.type": "org.apache.kafka.connect.transforms.InsertField$Value",
        "transforms.add.static.field": "source", "transforms.add.static.value": "strom",
        "transforms.key.type": "org.apache.kafka.connect.transforms.ValueToKey",
        "transforms.key.fields": "line",
        "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
        "transforms.route.regex": "(.*)", "transforms.route.replacement": "routed-$1",
        "transforms.drop.type": "org.apache.kafka.connect.transforms.Filter",
        "transforms.drop.predicate": "isSkip",
        "transforms.hdr.type": "org.apache.kafka.connect.transforms.InsertHeader",
        "transforms.hdr.header": "origin", "transforms.hdr.value.literal": "file",
        "predicates": "isSkip",
        "predicates.isSkip.type": "org.apache.kafka.connect.transforms.predicates.TopicNameMatches",
        "predicates.isSkip.pattern": "never",
    });
    let r = http(
        w.addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "src", "config": config})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let recs = read_topic(&b, "routed-lines", 1, 3, Duration::from_secs(20)).await;
    assert_eq!(recs.len(), 3);
    let value: J = serde_json::from_slice(recs[0].value.as_ref().unwrap()).unwrap();
    assert_eq!(
        value,
        json!({
        "schema": {"type": "struct", "optional": false, "fields": [
            {"type": "string", "optional": false, "field": "line"},
            {"type": "string", "optional": true, "field": "source"}]},
        "payload": {"line": "alpha", "source": "strom"}})
    );
    // The key went through the worker's StringConverter: the struct's text form.
    assert_eq!(text(&recs[1].key), "Struct{line=beta}");
    assert_eq!(
        recs[2].headers,
        vec![("origin".to_owned(), Some(bytes::Bytes::from("file")))]
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_errors_go_to_the_dead_letter_queue_or_fail_the_task() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    create_topic(&b, "events", 1).await;
    let p = Producer::new(ProducerConfig::new(&b)).await.unwrap();
    for v in [
        r#"{"schema":{"type":"string","optional":false},"payload":"ok-1"}"#,
        "not json",
        r#"{"schema":{"type":"string","optional":false},"payload":"ok-2"}"#,
    ] {
        let rec = ProducerRecord::new("events")
            .value(v.as_bytes().to_vec())
            .header("trace", Some("t1".into()));
        p.send(rec).await.unwrap().await.unwrap();
    }
    p.close().await;
    let dir = tempfile::tempdir().unwrap();
    let w = start_worker(&b, dir.path()).await;
    let addr = w.addr;
    let wid = addr.to_string();

    let out = dir.path().join("tolerant.txt");
    let r = http(addr, "POST", "/connectors", Some(&json!({"name": "tolerant", "config": {
        "connector.class": "FileStreamSink", "topics": "events", "file": out.display().to_string(),
        "errors.tolerance": "all", "errors.log.enable": "true", "errors.log.include.messages": "true",
        "errors.deadletterqueue.topic.name": "dlq",
        "errors.deadletterqueue.topic.replication.factor": "1",
        "errors.deadletterqueue.context.headers.enable": "true"}}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    wait_for("two good lines", Duration::from_secs(20), async || {
        (std::fs::read_to_string(&out).unwrap_or_default() == "ok-1\nok-2\n").then_some(())
    })
    .await;
    let dead = read_topic(&b, "dlq", 1, 1, Duration::from_secs(20)).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(text(&dead[0].value), "not json");
    let headers: Vec<(String, String)> = dead[0]
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), text(v)))
        .collect();
    let want = [
        ("trace", "t1"),
        ("__connect.errors.topic", "events"),
        ("__connect.errors.partition", "0"),
        ("__connect.errors.offset", "1"),
        ("__connect.errors.connector.name", "tolerant"),
        ("__connect.errors.task.id", "0"),
        ("__connect.errors.stage", "VALUE_CONVERTER"),
        (
            "__connect.errors.class.name",
            "org.apache.kafka.connect.json.JsonConverter",
        ),
        (
            "__connect.errors.exception.class.name",
            "org.apache.kafka.connect.errors.DataException",
        ),
    ];
    assert_eq!(headers.len(), want.len() + 2, "{headers:?}");
    for (i, (k, v)) in want.iter().enumerate() {
        assert_eq!((headers[i].0.as_str(), headers[i].1.as_str()), (*k, *v));
    }
    assert_eq!(headers[9].0, "__connect.errors.exception.message");
    assert!(
        headers[9].1.starts_with(
            "Converting byte[] to Kafka Connect data failed due to serialization error"
        ),
        "{}",
        headers[9].1
    );

    // Without tolerance the task fails on the bad record, with the reason as its trace.
    let r = http(
        addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "strict", "config": {
        "connector.class": "FileStreamSink", "topics": "events",
        "file": dir.path().join("strict.txt").display().to_string()}})),
    )
    .await;
    assert_eq!(r.status, 201);
    let failed = wait_for(
        "the strict task to fail",
        Duration::from_secs(20),
        async || {
            let s = http(addr, "GET", "/connectors/strict/status", None)
                .await
                .json();
            (s["tasks"][0]["state"] == "FAILED").then_some(s)
        },
    )
    .await;
    assert_eq!(
        failed["connector"],
        json!({"state": "RUNNING", "worker_id": wid})
    );
    let trace = failed["tasks"][0]["trace"].as_str().unwrap();
    assert!(trace.starts_with("Tolerance exceeded in error handler: stage VALUE_CONVERTER with class org.apache.kafka.connect.json.JsonConverter failed"), "{trace}");
    let r = http(
        addr,
        "POST",
        "/connectors/strict/restart?includeTasks=true&onlyFailed=true",
        None,
    )
    .await;
    assert_eq!(r.status, 202);
    assert_eq!(
        r.json()["connector"],
        json!({"state": "RUNNING", "worker_id": wid})
    );
    assert_eq!(r.json()["tasks"][0]["state"], "RESTARTING");
    // The same record fails it again: at-least-once never skips a record silently.
    wait_for(
        "the strict task to fail again",
        Duration::from_secs(20),
        async || {
            let s = http(addr, "GET", "/connectors/strict/tasks/0/status", None)
                .await
                .json();
            (s["state"] == "FAILED").then_some(())
        },
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(dir.path().join("strict.txt"))
            .unwrap_or_default()
            .lines()
            .filter(|l| *l == "ok-2")
            .count(),
        0
    );
    w.stop().await;
}
