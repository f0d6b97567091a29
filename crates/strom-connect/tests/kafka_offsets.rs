//! Source offsets in a compacted topic in Kafka Connect's format: what one store writes, a
//! new store reads back; removals are tombstones; records written the way Kafka Connect
//! writes them are read; records it cannot read are skipped.

mod common;

use common::*;
use serde_json::json;
use strom_client::{Producer, ProducerConfig, ProducerRecord};
use strom_connect::data::JsonMap;
use strom_connect::kafka_offsets::KafkaOffsetStore;
use strom_connect::offsets::OffsetStore;

fn map(v: serde_json::Value) -> JsonMap {
    v.as_object().cloned().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_survive_in_the_topic_in_kafka_connects_format() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    let store = KafkaOffsetStore::open(&b, "connect-offsets", 5, 1)
        .await
        .unwrap();
    let (a, bb) = (
        map(json!({"filename": "/a"})),
        map(json!({"filename": "/b"})),
    );
    store
        .put(
            "c1",
            vec![
                (a.clone(), Some(map(json!({"position": 1})))),
                (bb.clone(), Some(map(json!({"position": 2})))),
            ],
        )
        .await
        .unwrap();
    store
        .put("c1", vec![(a.clone(), Some(map(json!({"position": 10}))))])
        .await
        .unwrap();
    store
        .put("c2", vec![(a.clone(), Some(map(json!({"position": 3}))))])
        .await
        .unwrap();
    store.put("c1", vec![(bb.clone(), None)]).await.unwrap();
    assert_eq!(
        store.list("c1"),
        vec![(a.clone(), map(json!({"position": 10})))]
    );

    // Written as Kafka Connect writes them (its key field order), and one unreadable record.
    let p = Producer::new(ProducerConfig::new(&b)).await.unwrap();
    for (k, v) in [
        (
            &br#"["legacy",{"filename":"/x"}]"#[..],
            Some(&br#"{"position":42}"#[..]),
        ),
        (b"not json", Some(b"{}")),
    ] {
        let mut rec = ProducerRecord::new("connect-offsets").key(k.to_vec());
        if let Some(v) = v {
            rec = rec.value(v.to_vec());
        }
        p.send(rec).await.unwrap().await.unwrap();
    }
    p.close().await;

    let again = KafkaOffsetStore::open(&b, "connect-offsets", 5, 1)
        .await
        .unwrap();
    assert_eq!(
        again.list("c1"),
        vec![(a.clone(), map(json!({"position": 10})))]
    );
    assert_eq!(
        again.list("c2"),
        vec![(a.clone(), map(json!({"position": 3})))]
    );
    assert_eq!(
        again.list("legacy"),
        vec![(map(json!({"filename": "/x"})), map(json!({"position": 42})))]
    );
    assert_eq!(
        again.reader("c1").offset(&a),
        Some(&map(json!({"position": 10})))
    );

    again.remove_connector("c2").await.unwrap();
    let third = KafkaOffsetStore::open(&b, "connect-offsets", 5, 1)
        .await
        .unwrap();
    assert!(third.list("c2").is_empty());
    assert_eq!(third.list("c1").len(), 1);

    // The topic is compacted, as Kafka Connect's offsets topic must be.
    let admin = strom_client::Admin::new(strom_client::ClientConfig::new(&b))
        .await
        .unwrap();
    let topics = admin
        .describe_topics(&["connect-offsets".to_owned()])
        .await
        .unwrap();
    assert_eq!(topics[0].partitions.len(), 5);
    let configs = admin
        .describe_configs(
            &strom_client::admin::ConfigResource::Topic("connect-offsets".into()),
            Some(&["cleanup.policy".to_owned()]),
        )
        .await
        .unwrap();
    assert_eq!(configs[0].value.as_deref(), Some("compact"));
}
