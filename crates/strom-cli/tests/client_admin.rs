//! strom-client's admin API against the real broker: topics, partitions, configs, cluster,
//! delete records, and consumer-group listing, description, offsets and deletion.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Server;
use strom_client::admin::{AlterOp, ConfigResource};
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_configs_cluster_and_records() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    let admin = Admin::new(ClientConfig::new(&b)).await.unwrap();

    let mut t = NewTopic::new("adm", 2, 1);
    t.configs.push(("retention.ms".into(), "3600000".into()));
    let r = admin
        .create_topics(&[t.clone(), NewTopic::new("adm2", 1, -1)], false)
        .await
        .unwrap();
    assert!(r.iter().all(|(_, r)| r.is_ok()), "{r:?}");
    let again = admin.create_topics(&[t], false).await.unwrap();
    let err = again[0].1.as_ref().unwrap_err().to_string();
    assert!(err.starts_with("TOPIC_ALREADY_EXISTS"), "{err}");

    let names: Vec<String> = admin
        .list_topics(false)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(names.contains(&"adm".to_string()) && names.contains(&"adm2".to_string()));
    let d = admin.describe_topics(&["adm".into()]).await.unwrap();
    assert_eq!(d[0].partitions.len(), 2);
    let missing = admin.describe_topics(&["nope".into()]).await.unwrap_err();
    assert!(
        missing
            .to_string()
            .starts_with("UNKNOWN_TOPIC_OR_PARTITION"),
        "{missing}"
    );

    admin.create_partitions("adm", 3).await.unwrap();
    let d = admin.describe_topics(&["adm".into()]).await.unwrap();
    assert_eq!(d[0].partitions.len(), 3);

    let res = ConfigResource::Topic("adm".into());
    let cfg = admin.describe_configs(&res, None).await.unwrap();
    let retention = cfg.iter().find(|c| c.name == "retention.ms").unwrap();
    assert_eq!(
        (retention.value.as_deref(), retention.source),
        (Some("3600000"), "DYNAMIC_TOPIC_CONFIG")
    );
    admin
        .alter_configs(
            &res,
            &[("retention.ms".into(), AlterOp::Set, Some("7200000".into()))],
        )
        .await
        .unwrap();
    let cfg = admin
        .describe_configs(&res, Some(&["retention.ms".into()]))
        .await
        .unwrap();
    assert_eq!(cfg[0].value.as_deref(), Some("7200000"));
    admin
        .alter_configs(&res, &[("retention.ms".into(), AlterOp::Delete, None)])
        .await
        .unwrap();
    let cfg = admin
        .describe_configs(&res, Some(&["retention.ms".into()]))
        .await
        .unwrap();
    assert_eq!(cfg[0].source, "DEFAULT_CONFIG");

    let cluster = admin.describe_cluster().await.unwrap();
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(cluster.brokers[0].port as u16, server.port);
    assert!(!cluster.cluster_id.is_empty());

    let p = Producer::new(ProducerConfig::new(&b)).await.unwrap();
    for i in 0..10 {
        p.send(
            ProducerRecord::new("adm")
                .partition(0)
                .value(format!("{i}")),
        )
        .await
        .unwrap();
    }
    p.close().await;
    let tp = TopicPartition::new("adm", 0);
    let low = admin.delete_records(&[(tp.clone(), 4)]).await.unwrap();
    assert_eq!(low.get(&tp), Some(&4));
    let offsets = admin
        .client()
        .list_offsets(&[(tp.clone(), strom_client::EARLIEST)], 0)
        .await
        .unwrap();
    assert_eq!(offsets[&tp].0, 4);

    let deleted = admin.delete_topics(&["adm2".into()]).await.unwrap();
    assert!(deleted[0].1.is_ok());
    let gone = admin.delete_topics(&["adm2".into()]).await.unwrap();
    assert!(gone[0]
        .1
        .as_ref()
        .unwrap_err()
        .to_string()
        .starts_with("UNKNOWN_TOPIC_OR_PARTITION"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_list_describe_offsets_delete() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    let admin = Admin::new(ClientConfig::new(&b)).await.unwrap();
    admin
        .create_topics(&[NewTopic::new("gt", 2, 1)], false)
        .await
        .unwrap();
    let p = Producer::new(ProducerConfig::new(&b)).await.unwrap();
    for i in 0..20 {
        p.send(ProducerRecord::new("gt").partition(i % 2).value("x"))
            .await
            .unwrap();
    }
    p.close().await;

    let mut cfg = ConsumerConfig::new(&b);
    cfg.set("group.id", "adm-group")
        .unwrap()
        .set("auto.offset.reset", "earliest")
        .unwrap();
    let mut c = Consumer::new(cfg).await.unwrap();
    c.subscribe(&["gt"], None).unwrap();
    let mut n = 0;
    while n < 20 {
        n += c.poll(Duration::from_millis(200)).await.unwrap().len();
    }
    c.commit().await.unwrap();

    let groups = admin.list_groups().await.unwrap();
    assert!(
        groups
            .iter()
            .any(|g| g.group_id == "adm-group" && g.protocol_type == "consumer"),
        "{groups:?}"
    );
    let d = admin.describe_groups(&["adm-group".into()]).await.unwrap();
    assert_eq!(d[0].state, "Stable");
    assert_eq!(d[0].members.len(), 1);
    assert_eq!(d[0].members[0].assignment.len(), 2);
    let offsets = admin.list_group_offsets("adm-group").await.unwrap();
    assert_eq!(offsets.values().map(|o| o.offset).sum::<i64>(), 20);

    // An active group refuses deletion and admin offset changes.
    let busy = admin.delete_groups(&["adm-group".into()]).await.unwrap();
    assert!(busy[0].1.is_err());
    c.close().await.unwrap();

    let tp = TopicPartition::new("gt", 0);
    admin
        .alter_group_offsets("adm-group", &BTreeMap::from([(tp.clone(), 3)]))
        .await
        .unwrap();
    assert_eq!(
        admin.list_group_offsets("adm-group").await.unwrap()[&tp].offset,
        3
    );
    let deleted = admin.delete_groups(&["adm-group".into()]).await.unwrap();
    assert!(deleted[0].1.is_ok(), "{deleted:?}");
    assert!(admin
        .list_group_offsets("adm-group")
        .await
        .unwrap()
        .is_empty());
}
