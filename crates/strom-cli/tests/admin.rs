//! Admin operations through librdkafka's admin client against the real binary: create
//! (with configs, validate-only, bad input), list, describe configs, alter, partitions,
//! delete records, delete topics.

mod common;

use std::time::Duration;

use common::{admin, create_topic, Server};
use rdkafka::admin::{
    AdminOptions, AlterConfig, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::consumer::Consumer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::TopicPartitionList;

fn opts() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_list_describe_alter_delete() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    let a = admin(&b);

    // Create, with a config override.
    let topic =
        NewTopic::new("orders", 3, TopicReplication::Fixed(1)).set("retention.ms", "3600000");
    let r = a.create_topics(&[topic], &opts()).await.unwrap();
    assert_eq!(r, vec![Ok("orders".to_owned())]);

    // Bad input gets the right Kafka error codes.
    let cases = [
        (
            NewTopic::new("orders", 1, TopicReplication::Fixed(1)),
            RDKafkaErrorCode::TopicAlreadyExists,
        ),
        (
            NewTopic::new("bad name!", 1, TopicReplication::Fixed(1)),
            RDKafkaErrorCode::InvalidTopic,
        ),
        (
            NewTopic::new("zero", 0, TopicReplication::Fixed(1)),
            RDKafkaErrorCode::InvalidPartitions,
        ),
        (
            NewTopic::new("rf3", 1, TopicReplication::Fixed(3)),
            RDKafkaErrorCode::InvalidReplicationFactor,
        ),
        (
            NewTopic::new("badcfg", 1, TopicReplication::Fixed(1)).set("retention.ms", "soon"),
            RDKafkaErrorCode::InvalidConfig,
        ),
    ];
    for (topic, code) in cases {
        let name = topic.name.to_owned();
        let r = a.create_topics(&[topic], &opts()).await.unwrap();
        assert_eq!(r, vec![Err((name, code))]);
    }

    // validate_only creates nothing.
    let r = a
        .create_topics(
            &[NewTopic::new("dry", 1, TopicReplication::Fixed(1))],
            &opts().validate_only(true),
        )
        .await
        .unwrap();
    assert_eq!(r, vec![Ok("dry".to_owned())]);

    // List: the metadata has exactly the created topic with three partitions.
    let md = a
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    let names: Vec<&str> = md.topics().iter().map(|t| t.name()).collect();
    assert_eq!(names, vec!["orders"]);
    assert_eq!(md.topics()[0].partitions().len(), 3);
    assert_eq!(md.brokers().len(), 1);
    assert_eq!(md.brokers()[0].port() as u16, server.port);

    // Describe: every config, the override reported as such.
    let described = a
        .describe_configs(&[ResourceSpecifier::Topic("orders")], &opts())
        .await
        .unwrap();
    let config = described.into_iter().next().unwrap().unwrap();
    let retention = config.get("retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert!(!retention.is_default);
    let cleanup = config.get("cleanup.policy").unwrap();
    assert_eq!(cleanup.value.as_deref(), Some("delete"));
    assert!(cleanup.is_default);
    assert!(config.entries.len() > 20, "all topic configs are described");

    // Alter (the legacy full-set AlterConfigs).
    let alter =
        AlterConfig::new(ResourceSpecifier::Topic("orders")).set("segment.bytes", "1048576");
    let r = a.alter_configs(&[alter], &opts()).await.unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let described = a
        .describe_configs(&[ResourceSpecifier::Topic("orders")], &opts())
        .await
        .unwrap();
    let config = described.into_iter().next().unwrap().unwrap();
    assert_eq!(
        config.get("segment.bytes").unwrap().value.as_deref(),
        Some("1048576")
    );
    assert!(
        config.get("retention.ms").unwrap().is_default,
        "AlterConfigs replaces the whole set"
    );

    // The broker resource describes too.
    let described = a
        .describe_configs(&[ResourceSpecifier::Broker(1)], &opts())
        .await
        .unwrap();
    let config = described.into_iter().next().unwrap().unwrap();
    assert!(config.get("num.partitions").is_some());

    // Partitions: grow 3 → 5; shrinking is refused.
    let r = a
        .create_partitions(&[NewPartitions::new("orders", 5)], &opts())
        .await
        .unwrap();
    assert_eq!(r, vec![Ok("orders".to_owned())]);
    let r = a
        .create_partitions(&[NewPartitions::new("orders", 2)], &opts())
        .await
        .unwrap();
    assert_eq!(
        r,
        vec![Err((
            "orders".to_owned(),
            RDKafkaErrorCode::InvalidPartitions
        ))]
    );
    let md = a
        .inner()
        .fetch_metadata(Some("orders"), Duration::from_secs(10))
        .unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 5);

    // Delete.
    let r = a.delete_topics(&["orders"], &opts()).await.unwrap();
    assert_eq!(r, vec![Ok("orders".to_owned())]);
    let r = a.delete_topics(&["orders"], &opts()).await.unwrap();
    assert_eq!(
        r,
        vec![Err((
            "orders".to_owned(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_advances_the_log_start() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "trim", 1, &[]).await;
    let p = common::producer(&b, &[("acks", "all")]);
    for i in 0..10 {
        let key = format!("{i}");
        let record: rdkafka::producer::FutureRecord<'_, str, str> =
            rdkafka::producer::FutureRecord::to("trim")
                .partition(0)
                .payload("x")
                .key(&key);
        p.send(record, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
    let a = admin(&b);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("trim", 0, rdkafka::Offset::Offset(4))
        .unwrap();
    let result = a.delete_records(&tpl, &opts()).await.unwrap();
    assert_eq!(
        result.find_partition("trim", 0).unwrap().offset(),
        rdkafka::Offset::Offset(4)
    );
    let consumer = common::consumer(&b, &[]);
    let (low, high) = consumer
        .fetch_watermarks("trim", 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!((low, high), (4, 10));
}
