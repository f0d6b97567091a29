//! KIP-158: a source connector's missing topics are created with its `topic.creation.*`
//! settings (the broker here does not auto-create topics), by group or by default.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;
use strom_client::admin::ConfigResource;
use strom_client::{Admin, ClientConfig};
use strom_connect::config::Props;
use strom_connect::standalone::Standalone;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_topics_are_created_by_group_or_default() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "one\ntwo\n").unwrap();
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
        ("rest.advertised.host.name", "connect-1.example".into()),
        ("rest.advertised.port", "18083".into()),
    ]
    .into_iter()
    .map(|(k, v): (&str, String)| (k.to_owned(), v))
    .collect();
    let w = Standalone::start(worker, Vec::new(), None).await.unwrap();
    let creation = json!({
        "topic.creation.default.replication.factor": "1",
        "topic.creation.default.partitions": "2",
        "topic.creation.groups": "audit",
        "topic.creation.audit.include": "audit.*",
        "topic.creation.audit.partitions": "3",
        "topic.creation.audit.retention.ms": "3600000",
    });
    for (name, topic) in [("plain", "fresh-lines"), ("audited", "audit-lines")] {
        let mut config = json!({"connector.class": "FileStreamSource", "file": input.display().to_string(), "topic": topic});
        for (k, v) in creation.as_object().unwrap() {
            config[k] = v.clone();
        }
        let r = http(
            w.addr,
            "POST",
            "/connectors",
            Some(&json!({"name": name, "config": config})),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // Wait for the topics before reading them (a consumer assigned to a missing topic).
    for name in ["plain", "audited"] {
        wait_for("the source to run", Duration::from_secs(20), async || {
            let s = http(w.addr, "GET", &format!("/connectors/{name}/status"), None)
                .await
                .json();
            assert_ne!(s["tasks"][0]["state"], "FAILED", "{s}");
            let t = http(w.addr, "GET", &format!("/connectors/{name}/topics"), None)
                .await
                .json();
            (t[name]["topics"].as_array().is_some_and(|a| !a.is_empty())).then_some(())
        })
        .await;
    }
    // (This worker advertises itself under another name, as statuses show.)
    let s = http(w.addr, "GET", "/connectors/plain/status", None)
        .await
        .json();
    assert_eq!(s["connector"]["worker_id"], "connect-1.example:18083");
    let plain = read_topic(&b, "fresh-lines", 2, 2, Duration::from_secs(30)).await;
    assert_eq!(plain.len(), 2);
    let audit = read_topic(&b, "audit-lines", 3, 2, Duration::from_secs(30)).await;
    assert_eq!(audit.len(), 2);

    let admin = Admin::new(ClientConfig::new(&b)).await.unwrap();
    let topics = admin
        .describe_topics(&["fresh-lines".to_owned(), "audit-lines".to_owned()])
        .await
        .unwrap();
    assert_eq!(
        (topics[0].partitions.len(), topics[1].partitions.len()),
        (2, 3)
    );
    let retention = |t: &str| {
        let admin = admin.clone();
        let t = t.to_owned();
        async move {
            let c = admin
                .describe_configs(
                    &ConfigResource::Topic(t),
                    Some(&["retention.ms".to_owned()]),
                )
                .await
                .unwrap();
            (c[0].value.clone(), c[0].source)
        }
    };
    let (audit_ms, audit_source) = retention("audit-lines").await;
    assert_eq!(
        (audit_ms.as_deref(), audit_source),
        (Some("3600000"), "DYNAMIC_TOPIC_CONFIG")
    );
    let (_, fresh_source) = retention("fresh-lines").await;
    assert_ne!(fresh_source, "DYNAMIC_TOPIC_CONFIG");

    // Bad settings are reported by validation, as a 400 on create.
    let r = http(
        w.addr,
        "POST",
        "/connectors",
        Some(&json!({"name": "bad", "config": {
        "connector.class": "FileStreamSource", "file": "/tmp/x", "topic": "t",
        "topic.creation.default.partitions": "2"}})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.json()["message"].as_str().unwrap().contains(
        "Missing required configuration \"topic.creation.default.replication.factor\" which has no default value."
    ));
    w.stop().await;
}
