//! Controller tests: every CreateTopics rule, config alteration semantics, producer id blocks,
//! and that what the controller committed replays to the same image after a reopen.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::*;
use crate::config_defs::{ConfigSource, TOPIC_CONFIGS};
use crate::records::ConfigResource;
use crate::ControllerError as E;
use elections::ElectionType;

fn config(dir: &Path, extra: &str) -> BrokerConfig {
    let text = format!("log.dirs={}\n{extra}", dir.display());
    BrokerConfig::parse(&text, &[]).unwrap().0
}

fn open(dir: &Path, extra: &str, brokers: &[i32]) -> Controller {
    let mut c = Controller::open(dir, &config(dir, extra)).unwrap();
    for &id in brokers {
        c.register_broker(id, "localhost", 9092 + id as u16, None)
            .unwrap();
    }
    c
}

fn req(name: &str, num_partitions: i32, replication_factor: i16) -> CreateTopicRequest {
    CreateTopicRequest {
        name: name.to_string(),
        num_partitions,
        replication_factor,
        assignments: vec![],
        configs: vec![],
    }
}

fn create(c: &mut Controller, r: CreateTopicRequest) -> Result<CreatedTopic, ControllerError> {
    c.create_topics(vec![r], false).pop().unwrap()
}

fn topic_res(name: &str) -> ConfigResource {
    ConfigResource::Topic(name.to_string())
}

fn set(key: &str, value: &str) -> (String, Option<String>) {
    (key.to_string(), Some(value.to_string()))
}

fn op(
    key: &str,
    op: AlterConfigOp,
    value: Option<&str>,
) -> (String, AlterConfigOp, Option<String>) {
    (key.to_string(), op, value.map(str::to_string))
}

#[test]
fn open_bootstraps_a_cluster_id_that_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = open(dir.path(), "", &[]).cluster_id().to_string();
    assert_eq!(id.len(), 22);
    assert!(crate::broker_config::validate_cluster_id(&id).is_ok());
    assert_eq!(open(dir.path(), "", &[]).cluster_id(), id);
    let other = random_cluster_id();
    let configured = config(dir.path(), &format!("cluster.id={other}"));
    let err = Controller::open(dir.path(), &configured).unwrap_err();
    assert!(matches!(err, E::ClusterIdMismatch { .. }));
    let fresh = tempfile::tempdir().unwrap();
    assert_eq!(
        open(fresh.path(), &format!("cluster.id={other}"), &[]).cluster_id(),
        other
    );
}

/// A data directory written before the quorum (JSON frames in
/// `__cluster_metadata-0/00000000000000000000.log`) is moved into the quorum on first start:
/// the same image, the old file kept as `.migrated`, and a second start changes nothing.
#[test]
fn a_pre_quorum_metadata_log_is_migrated_once_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let cluster_id = random_cluster_id();
    let topic_id = uuid::Uuid::new_v4();
    let records = vec![
        MetadataRecord::Cluster {
            cluster_id: cluster_id.clone(),
        },
        MetadataRecord::RegisterBroker {
            broker_id: 1,
            host: "localhost".into(),
            port: 9092,
            rack: None,
            listeners: vec![],
        },
        MetadataRecord::Topic {
            name: "orders".into(),
            topic_id,
        },
        MetadataRecord::Partition {
            topic_id,
            partition: 0,
            replicas: vec![1],
            isr: vec![1],
            leader: 1,
            leader_epoch: 0,
            partition_epoch: 0,
            eligible_leader_replicas: vec![],
            last_known_elr: vec![],
            adding_replicas: vec![],
            removing_replicas: vec![],
        },
    ];
    {
        let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
        log.append(&records[..2]).unwrap();
        log.append(&records[2..]).unwrap();
    }
    let expected = MetadataImage::replay(&records);
    let log_dir = dir.path().join(METADATA_LOG_DIR_NAME);

    let c = Controller::open(dir.path(), &config(dir.path(), "")).unwrap();
    assert_eq!(*c.image(), expected);
    assert_eq!(c.cluster_id(), cluster_id);
    assert!(!log_dir.join(METADATA_LOG_FILE_NAME).exists());
    assert!(log_dir
        .join(format!("{METADATA_LOG_FILE_NAME}.migrated"))
        .exists());
    drop(c);

    let c = Controller::open(dir.path(), &config(dir.path(), "")).unwrap();
    assert_eq!(
        *c.image(),
        expected,
        "a second start migrates nothing again"
    );
    // The old log of a crash between commit and rename is only set aside, never re-applied.
    drop(c);
    std::fs::rename(
        log_dir.join(format!("{METADATA_LOG_FILE_NAME}.migrated")),
        log_dir.join(METADATA_LOG_FILE_NAME),
    )
    .unwrap();
    let c = Controller::open(dir.path(), &config(dir.path(), "")).unwrap();
    assert_eq!(*c.image(), expected);
    assert!(!log_dir.join(METADATA_LOG_FILE_NAME).exists());
}

#[test]
fn base64url_matches_known_vectors() {
    assert_eq!(base64url(&[0; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(base64url(&[0xfb, 0xff, 0xfe]), "-__-");
    assert_eq!(base64url(b"f"), "Zg");
}

#[test]
fn create_topic_with_defaults_and_reopen_gives_the_same_image() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "num.partitions=3", &[1]);
    let created = create(&mut c, req("orders", -1, -1)).unwrap();
    assert_eq!((created.num_partitions, created.replication_factor), (3, 1));
    assert_eq!(created.configs.len(), TOPIC_CONFIGS.len());
    let image = c.image();
    let topic = image.topic("orders").unwrap();
    assert_eq!(topic.topic_id, created.topic_id);
    assert_eq!(topic.partitions.len(), 3);
    assert!(topic
        .partitions
        .values()
        .all(|p| p.leader == 1 && p.isr == vec![1]));
    drop(c);
    assert_eq!(*open(dir.path(), "", &[]).image(), *image);
}

#[test]
fn topic_name_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1]);
    let long = "x".repeat(250);
    for bad in ["", ".", "..", long.as_str(), "a b", "tøpic", "a/b"] {
        let err = create(&mut c, req(bad, 1, 1)).unwrap_err();
        assert!(matches!(err, E::InvalidTopic { .. }), "{bad:?}: {err:?}");
    }
    create(&mut c, req(&"y".repeat(249), 1, 1)).unwrap();
    create(&mut c, req("a-b.c_D9", 1, 1)).unwrap();
    assert!(matches!(
        create(&mut c, req("a-b.c_D9", 1, 1)),
        Err(E::TopicAlreadyExists { .. })
    ));
}

#[test]
fn colliding_and_duplicate_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1]);
    create(&mut c, req("metrics.cpu", 1, 1)).unwrap();
    let err = create(&mut c, req("metrics_cpu", 1, 1)).unwrap_err();
    assert!(matches!(err, E::InvalidTopic { ref reason } if reason.contains("collides")));
    let results = c.create_topics(vec![req("x.y", 1, 1), req("x_y", 1, 1)], false);
    assert!(results[0].is_ok());
    assert!(matches!(results[1], Err(E::InvalidTopic { .. })));
    let results = c.create_topics(vec![req("dup", 1, 1), req("dup", 1, 1)], false);
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(E::InvalidRequest { .. }))));
    assert!(c.image().topic("dup").is_none());
}

#[test]
fn partition_and_replication_factor_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1]);
    for n in [0, -2] {
        assert!(matches!(
            create(&mut c, req("t", n, 1)),
            Err(E::InvalidPartitions { .. })
        ));
    }
    assert!(matches!(
        create(&mut c, req("t", 1, 0)),
        Err(E::InvalidReplicationFactor { .. })
    ));
    let err = create(&mut c, req("t", 1, 2)).unwrap_err();
    assert!(
        matches!(err, E::InvalidReplicationFactor { ref reason } if reason.contains("only 1 broker"))
    );
    assert!(matches!(
        create(&mut c, req("t", 100_001, 1)),
        Err(E::InvalidPartitions { .. })
    ));
    c.register_broker(2, "localhost", 9094, None).unwrap();
    let created = create(&mut c, req("t", 4, 2)).unwrap();
    assert_eq!(created.replication_factor, 2);
    let image = c.image();
    let leaders: Vec<i32> = image
        .topic("t")
        .unwrap()
        .partitions
        .values()
        .map(|p| p.leader)
        .collect();
    assert!(
        leaders.contains(&1) && leaders.contains(&2),
        "leaders spread: {leaders:?}"
    );
}

#[test]
fn manual_assignment_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1, 2]);
    let with = |assignments: Vec<(i32, Vec<i32>)>| CreateTopicRequest {
        assignments,
        ..req("m", -1, -1)
    };
    let bad = [
        vec![(0, vec![1]), (2, vec![2])],
        vec![(0, vec![1]), (0, vec![2])],
        vec![(0, vec![3])],
        vec![(0, vec![1, 1])],
        vec![(0, vec![])],
        vec![(0, vec![1, 2]), (1, vec![2])],
    ];
    for assignments in bad {
        let err = create(&mut c, with(assignments.clone())).unwrap_err();
        assert!(
            matches!(err, E::InvalidReplicaAssignment { .. }),
            "{assignments:?}: {err:?}"
        );
    }
    let mixed = CreateTopicRequest {
        num_partitions: 2,
        ..with(vec![(0, vec![1])])
    };
    assert!(matches!(
        create(&mut c, mixed),
        Err(E::InvalidPartitions { .. })
    ));
    let mixed = CreateTopicRequest {
        replication_factor: 1,
        ..with(vec![(0, vec![1])])
    };
    assert!(matches!(
        create(&mut c, mixed),
        Err(E::InvalidReplicationFactor { .. })
    ));
    let created = create(&mut c, with(vec![(1, vec![1, 2]), (0, vec![2, 1])])).unwrap();
    assert_eq!((created.num_partitions, created.replication_factor), (2, 2));
    assert_eq!(c.image().topic("m").unwrap().partitions[&0].leader, 2);
}

#[test]
fn create_configs_are_validated_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1]);
    let with = |configs: Vec<(String, Option<String>)>| CreateTopicRequest {
        configs,
        ..req("c", 1, 1)
    };
    for configs in [
        vec![set("no.such.key", "1")],
        vec![set("retention.ms", "soon")],
        vec![("retention.ms".to_string(), None)],
    ] {
        assert!(matches!(
            create(&mut c, with(configs)),
            Err(E::InvalidConfig { .. })
        ));
    }
    let dup = with(vec![set("retention.ms", "1"), set("retention.ms", "2")]);
    assert!(matches!(create(&mut c, dup), Err(E::InvalidRequest { .. })));
    let created = create(&mut c, with(vec![set("cleanup.policy", "compact")])).unwrap();
    let policy = created
        .configs
        .iter()
        .find(|d| d.name == "cleanup.policy")
        .unwrap();
    assert_eq!(
        (policy.value.as_deref(), policy.source),
        (Some("compact"), ConfigSource::DynamicTopic)
    );
    assert_eq!(
        c.image().topic_config_overrides("c").unwrap()["cleanup.policy"],
        "compact"
    );
}

#[test]
fn validate_only_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1]);
    let before = c.image();
    let results = c.create_topics(vec![req("v", 2, 1)], true);
    assert_eq!(results[0].as_ref().unwrap().num_partitions, 2);
    assert_eq!(*c.image(), *before);
    create(&mut c, req("w", 1, 1)).unwrap();
    let before = c.image();
    c.create_partitions("w", 3, vec![], true).unwrap();
    c.alter_configs(topic_res("w"), vec![set("retention.ms", "5")], true)
        .unwrap();
    let ops = vec![op("retention.ms", AlterConfigOp::Set, Some("5"))];
    c.incremental_alter_configs(topic_res("w"), ops, true)
        .unwrap();
    assert_eq!(*c.image(), *before);
    drop(c);
    assert_eq!(*open(dir.path(), "", &[]).image(), *before);
}

#[test]
fn delete_topics_and_recreate() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1]);
    let first = CreateTopicRequest {
        configs: vec![set("retention.ms", "5")],
        ..req("d", 1, 1)
    };
    let first = create(&mut c, first).unwrap().topic_id;
    let results = c.delete_topics(vec!["d".into(), "missing".into()]);
    assert_eq!(results[0], Ok(first));
    assert!(matches!(results[1], Err(E::UnknownTopicOrPartition { .. })));
    assert!(c.image().topic("d").is_none() && c.image().topic_by_id(first).is_none());
    let second = create(&mut c, req("d", 1, 1)).unwrap().topic_id;
    assert_ne!(first, second);
    assert!(c.image().topic_config_overrides("d").unwrap().is_empty());
    let results = c.delete_topics(vec!["d".into(), "d".into()]);
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(E::InvalidRequest { .. }))));
    let mut c = open(
        tempfile::tempdir().unwrap().path(),
        "delete.topic.enable=false",
        &[1],
    );
    create(&mut c, req("keep", 1, 1)).unwrap();
    assert_eq!(
        c.delete_topics(vec!["keep".into()])[0],
        Err(E::TopicDeletionDisabled)
    );
}

#[test]
fn create_partitions_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1, 2]);
    create(&mut c, req("p", 2, 1)).unwrap();
    assert!(matches!(
        c.create_partitions("nope", 3, vec![], false),
        Err(E::UnknownTopicOrPartition { .. })
    ));
    assert!(matches!(
        c.create_partitions("p", 1, vec![], false),
        Err(E::InvalidPartitions { .. })
    ));
    assert!(matches!(
        c.create_partitions("p", 2, vec![], false),
        Err(E::InvalidPartitions { .. })
    ));
    let err = c
        .create_partitions("p", 4, vec![vec![1]], false)
        .unwrap_err();
    assert!(matches!(err, E::InvalidReplicaAssignment { .. }));
    let err = c
        .create_partitions("p", 3, vec![vec![1, 2]], false)
        .unwrap_err();
    assert!(matches!(err, E::InvalidReplicaAssignment { .. }));
    let err = c
        .create_partitions("p", 3, vec![vec![9]], false)
        .unwrap_err();
    assert!(matches!(err, E::InvalidReplicaAssignment { .. }));
    c.create_partitions("p", 3, vec![vec![2]], false).unwrap();
    c.create_partitions("p", 5, vec![], false).unwrap();
    let image = c.image();
    let topic = image.topic("p").unwrap();
    assert_eq!(
        topic.partitions.keys().copied().collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert_eq!(topic.partitions[&2].replicas, vec![2]);
}

#[test]
fn alter_configs_replaces_every_override() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1]);
    let t = CreateTopicRequest {
        configs: vec![set("retention.ms", "5"), set("segment.ms", "10")],
        ..req("a", 1, 1)
    };
    create(&mut c, t).unwrap();
    c.alter_configs(
        topic_res("a"),
        vec![set("segment.ms", "20"), set("flush.ms", "7")],
        false,
    )
    .unwrap();
    let overrides = c.image().topic_config_overrides("a").unwrap().clone();
    assert_eq!(overrides.len(), 2);
    assert_eq!(
        (
            overrides["segment.ms"].as_str(),
            overrides["flush.ms"].as_str()
        ),
        ("20", "7")
    );
    let err = c
        .alter_configs(topic_res("a"), vec![set("flush.ms", "-7")], false)
        .unwrap_err();
    assert!(matches!(err, E::InvalidConfig { .. }));
    assert_eq!(c.image().topic_config_overrides("a").unwrap(), &overrides);
    let err = c.alter_configs(topic_res("zz"), vec![], false).unwrap_err();
    assert!(matches!(err, E::UnknownTopicOrPartition { .. }));
    c.alter_configs(topic_res("a"), vec![], false).unwrap();
    assert!(c.image().topic_config_overrides("a").unwrap().is_empty());
}

#[test]
fn incremental_alter_set_delete_append_subtract() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1]);
    create(&mut c, req("i", 1, 1)).unwrap();
    let mut alter = |ops| c.incremental_alter_configs(topic_res("i"), ops, false);
    alter(vec![op("retention.ms", AlterConfigOp::Set, Some("1000"))]).unwrap();
    alter(vec![op(
        "cleanup.policy",
        AlterConfigOp::Append,
        Some("compact"),
    )])
    .unwrap();
    alter(vec![op(
        "cleanup.policy",
        AlterConfigOp::Append,
        Some("compact,delete"),
    )])
    .unwrap();
    let overrides = c.image().topic_config_overrides("i").unwrap().clone();
    assert_eq!(overrides["cleanup.policy"], "delete,compact");
    assert_eq!(overrides["retention.ms"], "1000");
    let mut alter = |ops| c.incremental_alter_configs(topic_res("i"), ops, false);
    alter(vec![op(
        "cleanup.policy",
        AlterConfigOp::Subtract,
        Some("delete"),
    )])
    .unwrap();
    let err = alter(vec![op(
        "cleanup.policy",
        AlterConfigOp::Subtract,
        Some("compact"),
    )])
    .unwrap_err();
    assert!(
        matches!(err, E::InvalidConfig { .. }),
        "an empty cleanup.policy is refused"
    );
    let err = alter(vec![op("retention.ms", AlterConfigOp::Append, Some("1"))]).unwrap_err();
    assert!(matches!(err, E::InvalidConfig { .. }));
    let err = alter(vec![op("retention.ms", AlterConfigOp::Set, None)]).unwrap_err();
    assert!(matches!(err, E::InvalidConfig { .. }));
    let dup = vec![
        op("retention.ms", AlterConfigOp::Delete, None),
        op("retention.ms", AlterConfigOp::Set, Some("1")),
    ];
    assert!(matches!(alter(dup), Err(E::InvalidRequest { .. })));
    alter(vec![
        op("retention.ms", AlterConfigOp::Delete, None),
        op("segment.ms", AlterConfigOp::Delete, None),
    ])
    .unwrap();
    let overrides = c.image().topic_config_overrides("i").unwrap().clone();
    assert_eq!(overrides.keys().collect::<Vec<_>>(), ["cleanup.policy"]);
    assert_eq!(overrides["cleanup.policy"], "compact");
    let described = crate::config_defs::describe_topic_configs(&overrides, c.broker_config());
    let retention = described.iter().find(|d| d.name == "retention.ms").unwrap();
    assert_eq!(
        (retention.value.as_deref(), retention.source),
        (Some("604800000"), ConfigSource::Default)
    );
    assert_eq!(AlterConfigOp::try_from(3), Ok(AlterConfigOp::Subtract));
    assert!(matches!(
        AlterConfigOp::try_from(4),
        Err(E::InvalidRequest { .. })
    ));
}

#[test]
fn broker_config_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1]);
    let ops = vec![op("log.retention.ms", AlterConfigOp::Set, Some("60000"))];
    c.incremental_alter_configs(ConfigResource::Broker(1), ops, false)
        .unwrap();
    assert_eq!(c.effective_broker_config().log_retention_ms(), 60000);
    assert_eq!(
        c.effective_broker_config().topic_defaults()["retention.ms"],
        "60000"
    );
    let err = c.alter_configs(
        ConfigResource::Broker(1),
        vec![set("listeners", "PLAINTEXT://:1")],
        false,
    );
    assert!(matches!(err, Err(E::InvalidRequest { .. })));
    let err = c.alter_configs(
        ConfigResource::Broker(1),
        vec![set("log.retention.ms", "x")],
        false,
    );
    assert!(matches!(err, Err(E::InvalidConfig { .. })));
    let err = c.alter_configs(ConfigResource::Broker(7), vec![], false);
    assert!(matches!(err, Err(E::BrokerNotRegistered { broker_id: 7 })));
    c.alter_configs(ConfigResource::Broker(1), vec![], false)
        .unwrap();
    assert_eq!(
        c.effective_broker_config().log_retention_ms(),
        168 * 3_600_000
    );
}

/// Dynamic broker configs Kafka accepts that Strom keeps without acting on them: tools (and
/// librdkafka's 0081_admin) set them and expect success, as with Kafka.
#[test]
fn informational_dynamic_broker_configs_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1]);
    c.alter_configs(
        ConfigResource::Broker(1),
        vec![set("sasl.kerberos.min.time.before.relogin", "58000")],
        false,
    )
    .unwrap();
    let ops = vec![op("background.threads", AlterConfigOp::Set, Some("9"))];
    c.incremental_alter_configs(ConfigResource::Broker(1), ops, false)
        .unwrap();
    let overrides = c.image().broker_config_overrides(1);
    assert_eq!(overrides["background.threads"], "9");
    assert_eq!(overrides["sasl.kerberos.min.time.before.relogin"], "58000");
    let ops = vec![op("background.threads", AlterConfigOp::Set, Some("0"))];
    let err = c.incremental_alter_configs(ConfigResource::Broker(1), ops, false);
    assert!(matches!(err, Err(E::InvalidConfig { .. })), "{err:?}");
}

/// Group configs (Kafka 4's GROUP resource): set before the group exists, validated against
/// the group catalogue, kept across a reopen (the metadata log and its snapshot image), and
/// removed by DELETE.
#[test]
fn group_config_overrides_persist_and_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1]);
    let group = || ConfigResource::Group("g1".into());
    let ops = vec![op(
        "consumer.session.timeout.ms",
        AlterConfigOp::Set,
        Some("50000"),
    )];
    c.incremental_alter_configs(group(), ops, false).unwrap();
    let ops = vec![op(
        "consumer.session.timeout.ms",
        AlterConfigOp::Set,
        Some("x"),
    )];
    let err = c.incremental_alter_configs(group(), ops, false);
    assert!(matches!(err, Err(E::InvalidConfig { .. })), "{err:?}");
    let ops = vec![op("retention.ms", AlterConfigOp::Set, Some("1"))];
    let err = c.incremental_alter_configs(group(), ops, false);
    assert!(matches!(err, Err(E::InvalidConfig { .. })), "{err:?}");
    drop(c);
    let mut c = open(dir.path(), "", &[]);
    assert_eq!(
        c.image().group_config_overrides("g1")["consumer.session.timeout.ms"],
        "50000"
    );
    assert!(c.image().group_config_overrides("g2").is_empty());
    let snapshot = MetadataImage::replay(&c.image().to_records());
    assert_eq!(
        snapshot.group_config_overrides("g1"),
        c.image().group_config_overrides("g1")
    );
    let ops = vec![op(
        "consumer.session.timeout.ms",
        AlterConfigOp::Delete,
        None,
    )];
    c.incremental_alter_configs(group(), ops, false).unwrap();
    assert!(c.image().group_config_overrides("g1").is_empty());
}

#[test]
fn producer_id_blocks_are_never_reused_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1]);
    assert_eq!(
        c.allocate_producer_id_block(1),
        Ok((0, PRODUCER_ID_BLOCK_SIZE))
    );
    assert_eq!(
        c.allocate_producer_id_block(1),
        Ok((1000, PRODUCER_ID_BLOCK_SIZE))
    );
    assert_eq!(
        c.allocate_producer_id_block(5),
        Err(E::BrokerNotRegistered { broker_id: 5 })
    );
    drop(c);
    let mut c = open(dir.path(), "", &[]);
    assert_eq!(
        c.allocate_producer_id_block(1),
        Ok((2000, PRODUCER_ID_BLOCK_SIZE))
    );
}

#[test]
fn register_broker_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1]);
    let applied = c.image().records_applied();
    c.register_broker(1, "localhost", 9093, None).unwrap();
    assert_eq!(c.image().records_applied(), applied);
    c.register_broker(1, "otherhost", 9093, Some("r1")).unwrap();
    assert_eq!(c.image().broker(1).unwrap().rack.as_deref(), Some("r1"));
    assert!(matches!(
        c.register_broker(-1, "h", 1, None),
        Err(E::InvalidRequest { .. })
    ));
}

mod membership_property;
mod replay_property;

#[test]
fn the_metadata_log_name_is_never_a_topic() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1]);
    let e = create(&mut c, req(crate::CLUSTER_METADATA_TOPIC, 1, 1)).unwrap_err();
    assert!(
        matches!(&e, E::InvalidRequest { reason } if reason.contains("prohibited")),
        "{e}"
    );
    assert!(c.image().topic(crate::CLUSTER_METADATA_TOPIC).is_none());
    // Other '__' names keep Kafka's rules: tools create topics of their own like these.
    create(&mut c, req("__my_tool_state", 1, 1)).unwrap();
    create(&mut c, req("__cluster_metadata2", 1, 1)).unwrap();
}

#[test]
fn internal_topics_cannot_be_deleted_or_lose_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1]);
    let mut offsets = req("__consumer_offsets", 2, 1);
    offsets.configs = vec![set("cleanup.policy", "compact")];
    create(&mut c, offsets).unwrap();
    let deleted = c
        .delete_topics(vec!["__consumer_offsets".into()])
        .pop()
        .unwrap();
    assert!(
        matches!(deleted, Err(E::InvalidTopic { .. })),
        "{deleted:?}"
    );
    assert!(c.image().topic("__consumer_offsets").is_some());

    let res = topic_res("__consumer_offsets");
    for ops in [
        vec![op("cleanup.policy", AlterConfigOp::Set, Some("delete"))],
        vec![op("cleanup.policy", AlterConfigOp::Delete, None)],
        vec![op("cleanup.policy", AlterConfigOp::Append, Some("delete"))],
    ] {
        let e = c
            .incremental_alter_configs(res.clone(), ops, false)
            .unwrap_err();
        assert!(
            matches!(&e, E::InvalidConfig { key, .. } if key == "cleanup.policy"),
            "{e}"
        );
    }
    let e = c
        .alter_configs(res.clone(), vec![set("retention.ms", "1000")], false)
        .unwrap_err();
    assert!(
        matches!(&e, E::InvalidConfig { key, .. } if key == "cleanup.policy"),
        "{e}"
    );
    // Other configs of an internal topic may change.
    c.incremental_alter_configs(
        res,
        vec![op("retention.ms", AlterConfigOp::Set, Some("1000"))],
        false,
    )
    .unwrap();
    assert_eq!(
        c.image()
            .topic_config_overrides("__consumer_offsets")
            .unwrap()["cleanup.policy"],
        "compact"
    );
}

#[test]
fn max_broker_partitions_bounds_create_topics_and_create_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "max.broker.partitions=10", &[1]);
    create(&mut c, req("a", 6, 1)).unwrap();
    let e = create(&mut c, req("b", 5, 1)).unwrap_err();
    assert!(
        matches!(&e, E::InvalidPartitions { reason } if reason.contains("max.broker.partitions=10")),
        "{e}"
    );
    // Several topics in one request count together.
    let results = c.create_topics(vec![req("c", 2, 1), req("d", 3, 1)], false);
    assert!(results[0].is_ok() && results[1].is_err(), "{results:?}");
    assert!(c.image().topic("d").is_none());
    let e = c.create_partitions("a", 9, vec![], false).unwrap_err();
    assert!(matches!(e, E::InvalidPartitions { .. }), "{e}");
    c.create_partitions("a", 8, vec![], false).unwrap();
    assert_eq!(c.image().topic("a").unwrap().partitions.len(), 8);
}

/// Striped, rack-aware placement: with 6 brokers in 3 racks and RF 3, every partition has one
/// replica per rack, and leaders and replicas are spread exactly evenly.
#[test]
fn placement_spreads_leaders_and_replicas_evenly_across_racks() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[]);
    for (id, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "b"), (5, "c"), (6, "c")] {
        c.register_broker(id, "localhost", 9092 + id as u16, Some(rack))
            .unwrap();
    }
    create(&mut c, req("striped", 60, 3)).unwrap();
    let image = c.image();
    let rack_of = |id: i32| image.broker(id).unwrap().rack.clone().unwrap();
    let mut leaders = BTreeMap::new();
    let mut replicas = BTreeMap::new();
    for p in image.topic("striped").unwrap().partitions.values() {
        let racks: BTreeSet<String> = p.replicas.iter().map(|id| rack_of(*id)).collect();
        assert_eq!(racks.len(), 3, "one replica per rack: {:?}", p.replicas);
        assert_eq!(p.leader, p.replicas[0]);
        *leaders.entry(p.leader).or_insert(0) += 1;
        for id in &p.replicas {
            *replicas.entry(*id).or_insert(0) += 1;
        }
    }
    assert!(leaders.values().all(|n| *n == 10), "leaders: {leaders:?}");
    assert!(
        replicas.values().all(|n| *n == 30),
        "replicas: {replicas:?}"
    );

    // More replicas than racks: racks repeat only once every rack is used.
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[]);
    for (id, rack) in [(1, "a"), (2, "a"), (3, "b"), (4, "b")] {
        c.register_broker(id, "localhost", 9092 + id as u16, Some(rack))
            .unwrap();
    }
    create(&mut c, req("two-racks", 8, 3)).unwrap();
    let image = c.image();
    for p in image.topic("two-racks").unwrap().partitions.values() {
        let in_a = p.replicas.iter().filter(|id| **id <= 2).count();
        assert!((1..=2).contains(&in_a), "{:?}", p.replicas);
    }

    // No racks: every broker is its own failure domain; still even.
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1, 2, 3, 4]);
    create(&mut c, req("plain", 8, 2)).unwrap();
    let image = c.image();
    let mut leaders = BTreeMap::new();
    for p in image.topic("plain").unwrap().partitions.values() {
        assert_ne!(p.replicas[0], p.replicas[1]);
        *leaders.entry(p.leader).or_insert(0) += 1;
    }
    assert!(leaders.values().all(|n| *n == 2), "leaders: {leaders:?}");
}

/// A broker silent for longer than the session timeout is fenced: it leads nothing and is in
/// no ISR, leaders move to in-sync replicas with a new leader epoch, new topics avoid it; a
/// heartbeat unfences it; a partition whose whole ISR was fenced waits for its last in-sync
/// replica (no unclean election). The committed image replays identically after a reopen.
#[test]
fn silent_brokers_are_fenced_and_their_leaderships_move_to_in_sync_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1, 2, 3]);
    create(&mut c, req("t", 6, 3)).unwrap();
    let timeout = 1_000;
    assert!(c.fence_stale_brokers(0, timeout).unwrap().is_empty());
    for id in [2, 3] {
        c.broker_heartbeat(id, 900).unwrap();
    }
    assert_eq!(c.fence_stale_brokers(1_500, timeout).unwrap(), vec![1]);
    let image = c.image();
    assert!(image.broker(1).unwrap().fenced);
    let before = image.topic("t").unwrap().clone();
    for p in before.partitions.values() {
        assert_ne!(p.leader, 1, "{p:?}");
        assert!(!p.isr.contains(&1), "{p:?}");
        assert!(p.replicas.contains(&1), "replicas stay: {p:?}");
    }
    let moved = before
        .partitions
        .values()
        .filter(|p| p.leader_epoch == 1)
        .count();
    assert_eq!(
        moved, 2,
        "the two partitions broker 1 led got a new leader epoch"
    );
    // New topics avoid the fenced broker.
    create(&mut c, req("after", 4, 2)).unwrap();
    let image = c.image();
    assert!(image
        .topic("after")
        .unwrap()
        .partitions
        .values()
        .all(|p| !p.replicas.contains(&1)));
    let e = create(&mut c, req("too-wide", 1, 3)).unwrap_err();
    assert!(matches!(e, E::InvalidReplicationFactor { .. }), "{e}");

    // Everyone else goes silent too: the ISR empties, its last members become eligible
    // leader replicas (KIP-966, min.insync.replicas 1), no leader.
    assert_eq!(c.fence_stale_brokers(3_000, timeout).unwrap(), vec![2, 3]);
    let image = c.image();
    for p in image.topic("t").unwrap().partitions.values() {
        assert_eq!(p.leader, -1, "{p:?}");
        assert!(p.isr.is_empty(), "{p:?}");
        assert_eq!(p.eligible_leader_replicas.len(), 1, "{p:?}");
        assert!(!p.eligible_leader_replicas.contains(&1), "{p:?}");
    }
    // Broker 1 is back but was not in sync when fenced: it leads nothing.
    c.broker_heartbeat(1, 3_100).unwrap();
    assert!(!c.image().broker(1).unwrap().fenced);
    assert!(c
        .image()
        .topic("t")
        .unwrap()
        .partitions
        .values()
        .all(|p| p.leader == -1));
    // The last in-sync replica of each partition comes back and leads again.
    let last_isr: Vec<i32> = c
        .image()
        .topic("t")
        .unwrap()
        .partitions
        .values()
        .map(|p| p.eligible_leader_replicas[0])
        .collect();
    for id in [2, 3] {
        c.broker_heartbeat(id, 3_200).unwrap();
    }
    let image = c.image();
    for (p, last) in image.topic("t").unwrap().partitions.values().zip(last_isr) {
        assert_eq!(p.leader, last, "{p:?}");
    }
    // Restarting a fenced broker's registration unfences it too.
    c.fence_stale_brokers(10_000, timeout).unwrap();
    assert!(c.image().broker(2).unwrap().fenced);
    c.register_broker(2, "localhost", 9094, None).unwrap();
    assert!(!c.image().broker(2).unwrap().fenced);

    let image = c.image();
    drop(c);
    let reopened = open(dir.path(), "", &[]);
    assert_eq!(
        *reopened.image(),
        *image,
        "fencing replays to the same image"
    );
}

/// AlterPartition accepts an ISR change only from the current leader in its current epoch who
/// saw the current partition epoch, and only with unfenced replicas; each accepted change
/// bumps the partition epoch, and a repeated one is a no-op.
#[test]
fn alter_partition_is_fenced_by_leader_and_partition_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1, 2, 3]);
    create(&mut c, req("t", 1, 3)).unwrap();
    let topic = c.image().topic("t").unwrap().clone();
    let p = topic.partitions[&0].clone();
    let (id, leader) = (topic.topic_id, p.leader);
    let follower = *p.replicas.iter().find(|r| **r != leader).unwrap();
    let shrunk: Vec<i32> = p.isr.iter().copied().filter(|r| *r != follower).collect();

    let e = c
        .alter_partition(
            follower,
            id,
            0,
            p.leader_epoch,
            p.partition_epoch,
            shrunk.clone(),
        )
        .unwrap_err();
    assert!(matches!(e, E::NotLeader { .. }), "{e}");
    let e = c
        .alter_partition(
            leader,
            id,
            0,
            p.leader_epoch + 1,
            p.partition_epoch,
            shrunk.clone(),
        )
        .unwrap_err();
    assert!(matches!(e, E::FencedLeaderEpoch { .. }), "{e}");
    let e = c
        .alter_partition(
            leader,
            id,
            0,
            p.leader_epoch,
            p.partition_epoch + 1,
            shrunk.clone(),
        )
        .unwrap_err();
    assert!(matches!(e, E::InvalidUpdateVersion { .. }), "{e}");
    let e = c
        .alter_partition(
            leader,
            id,
            0,
            p.leader_epoch,
            p.partition_epoch,
            vec![follower],
        )
        .unwrap_err();
    assert!(
        matches!(e, E::IneligibleReplica { .. }),
        "the leader stays: {e}"
    );

    let altered = c
        .alter_partition(
            leader,
            id,
            0,
            p.leader_epoch,
            p.partition_epoch,
            shrunk.clone(),
        )
        .unwrap();
    assert_eq!(altered.isr, shrunk);
    assert_eq!(altered.partition_epoch, p.partition_epoch + 1);
    assert_eq!(c.image().topic("t").unwrap().partitions[&0].isr, shrunk);

    // The stale partition epoch of the request just served is refused now.
    let e = c
        .alter_partition(
            leader,
            id,
            0,
            p.leader_epoch,
            p.partition_epoch,
            p.isr.clone(),
        )
        .unwrap_err();
    assert!(matches!(e, E::InvalidUpdateVersion { .. }), "{e}");

    // A fenced broker cannot rejoin the ISR.
    c.broker_heartbeat(leader, 0).unwrap();
    let other = *p
        .replicas
        .iter()
        .find(|r| **r != leader && **r != follower)
        .unwrap();
    c.broker_heartbeat(other, 0).unwrap();
    c.fence_stale_brokers(0, 1_000).unwrap();
    c.fence_stale_brokers(5_000, 10_000).unwrap();
    c.controlled_shutdown(follower).unwrap();
    let now = c.image().topic("t").unwrap().partitions[&0].clone();
    let e = c
        .alter_partition(
            leader,
            id,
            0,
            now.leader_epoch,
            now.partition_epoch,
            p.isr.clone(),
        )
        .unwrap_err();
    assert!(
        matches!(e, E::IneligibleReplica { replica, .. } if replica == follower),
        "{e}"
    );
}

/// With `unclean.leader.election.enable=true` on the topic, a partition whose last in-sync
/// replica is fenced is led by an out-of-sync replica; without it, it stays leaderless.
#[test]
fn unclean_election_only_where_the_topic_allows_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1, 2]);
    // Both led by broker 1, replicated on broker 2.
    let placed = |name: &str| CreateTopicRequest {
        assignments: vec![(0, vec![1, 2])],
        ..req(name, -1, -1)
    };
    let mut unclean = placed("unclean");
    unclean.configs = vec![set("unclean.leader.election.enable", "true")];
    create(&mut c, unclean).unwrap();
    create(&mut c, placed("clean")).unwrap();
    for name in ["unclean", "clean"] {
        let t = c.image().topic(name).unwrap().clone();
        let p = &t.partitions[&0];
        // Shrink each ISR to its leader alone, then fence that leader.
        c.alter_partition(
            p.leader,
            t.topic_id,
            0,
            p.leader_epoch,
            p.partition_epoch,
            vec![p.leader],
        )
        .unwrap();
    }
    let lead = |c: &Controller, name: &str| c.image().topic(name).unwrap().partitions[&0].clone();
    let (u, k) = (lead(&c, "unclean"), lead(&c, "clean"));
    assert_eq!((u.leader, k.leader), (1, 1));
    c.controlled_shutdown(1).unwrap();
    let (u2, k2) = (lead(&c, "unclean"), lead(&c, "clean"));
    assert_eq!(
        u2.leader, 2,
        "unclean election picks the other replica: {u2:?}"
    );
    assert_eq!(u2.isr, vec![2]);
    assert_eq!(k2.leader, -1, "no unclean election: {k2:?}");
    assert!(k2.isr.is_empty(), "{k2:?}");
    assert_eq!(
        k2.eligible_leader_replicas,
        vec![k.leader],
        "the last in-sync replica is an eligible leader replica"
    );
    assert!(
        u2.eligible_leader_replicas.is_empty(),
        "unclean: no ELR {u2:?}"
    );
}

/// Broker 1 shut down and came back: it leads nothing and sits in no ISR until it catches up.
/// Returns the controller and the partitions broker 1 prefers to lead.
fn leaderships_moved_off_broker_1(dir: &Path, extra: &str) -> (Controller, Vec<i32>) {
    let mut c = open(dir, extra, &[1, 2, 3]);
    create(&mut c, req("t", 6, 3)).unwrap();
    let preferred_by_1: Vec<i32> = c
        .image()
        .topic("t")
        .unwrap()
        .partitions
        .values()
        .filter(|p| p.replicas[0] == 1)
        .map(|p| p.partition)
        .collect();
    assert_eq!(preferred_by_1.len(), 2);
    c.controlled_shutdown(1).unwrap();
    c.broker_heartbeat(1, 0).unwrap();
    assert!(!c.image().broker(1).unwrap().fenced);
    (c, preferred_by_1)
}

/// Broker 1 caught up on every partition: its leaders put it back into their ISRs.
fn broker_1_back_in_every_isr(c: &mut Controller) {
    let topic = c.image().topic("t").unwrap().clone();
    for p in topic.partitions.values() {
        let mut isr = p.isr.clone();
        isr.push(1);
        c.alter_partition(
            p.leader,
            topic.topic_id,
            p.partition,
            p.leader_epoch,
            p.partition_epoch,
            isr,
        )
        .unwrap();
    }
}

#[test]
fn preferred_elections_move_leadership_back_to_the_first_replica() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, preferred_by_1) = leaderships_moved_off_broker_1(dir.path(), "");
    let tp = |p: i32| ("t".to_string(), p);
    // Out of the ISR, broker 1 may not lead yet.
    let results = c
        .elect_leaders(ElectionType::Preferred, Some(vec![tp(preferred_by_1[0])]))
        .unwrap();
    assert!(
        matches!(
            results[0].1,
            Err(E::PreferredLeaderNotAvailable { replica: 1, .. })
        ),
        "{results:?}"
    );
    broker_1_back_in_every_isr(&mut c);
    let before = c.image().topic("t").unwrap().clone();
    // Every partition: only the two that need it are answered, both elected.
    let results = c.elect_leaders(ElectionType::Preferred, None).unwrap();
    let mut elected: Vec<i32> = results
        .iter()
        .map(|((_, p), r)| {
            assert!(r.is_ok(), "{r:?}");
            *p
        })
        .collect();
    elected.sort();
    assert_eq!(elected, preferred_by_1);
    let after = c.image().topic("t").unwrap().clone();
    for p in after.partitions.values() {
        assert_eq!(p.leader, p.replicas[0], "{p:?}");
        let old = &before.partitions[&p.partition];
        let moved = preferred_by_1.contains(&p.partition);
        assert_eq!(p.leader_epoch, old.leader_epoch + i32::from(moved), "{p:?}");
        assert_eq!(p.isr, old.isr, "an election leaves the ISR alone");
    }
    // Nothing left to do; an explicit partition says so, an unknown one is unknown.
    assert!(c
        .elect_leaders(ElectionType::Preferred, None)
        .unwrap()
        .is_empty());
    let results = c
        .elect_leaders(ElectionType::Preferred, Some(vec![tp(0), tp(99)]))
        .unwrap();
    assert!(
        matches!(results[0].1, Err(E::ElectionNotNeeded { .. })),
        "{results:?}"
    );
    assert!(
        matches!(results[1].1, Err(E::UnknownTopicOrPartition { .. })),
        "{results:?}"
    );
}

#[test]
fn the_automatic_rebalance_runs_on_its_interval_above_the_imbalance_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let (mut c, preferred_by_1) =
        leaderships_moved_off_broker_1(dir.path(), "leader.imbalance.check.interval.seconds=10\n");
    broker_1_back_in_every_isr(&mut c);
    let led_by_1 = |c: &Controller| {
        c.image()
            .topic("t")
            .unwrap()
            .partitions
            .values()
            .filter(|p| p.leader == 1)
            .count()
    };
    assert_eq!(led_by_1(&c), 0);
    // The first check only starts the clock; the next one before the interval does nothing.
    assert_eq!(c.maybe_rebalance_leaders(1_000).unwrap(), 0);
    assert_eq!(c.maybe_rebalance_leaders(10_999).unwrap(), 0);
    assert_eq!(
        c.maybe_rebalance_leaders(11_000).unwrap(),
        preferred_by_1.len()
    );
    assert_eq!(led_by_1(&c), 2);
    // Balanced: nothing moves at the next interval.
    assert_eq!(c.maybe_rebalance_leaders(21_000).unwrap(), 0);

    // Switched off: the imbalance stays.
    let dir = tempfile::tempdir().unwrap();
    let (mut c, _) = leaderships_moved_off_broker_1(
        dir.path(),
        "auto.leader.rebalance.enable=false\nleader.imbalance.check.interval.seconds=1\n",
    );
    broker_1_back_in_every_isr(&mut c);
    assert_eq!(c.maybe_rebalance_leaders(0).unwrap(), 0);
    assert_eq!(c.maybe_rebalance_leaders(60_000).unwrap(), 0);
    assert_eq!(led_by_1(&c), 0);
    // A threshold of 100% never triggers (at most every preferred partition is not led).
    assert_eq!(c.rebalance_leaders(100).unwrap(), 0);
}

#[test]
fn unclean_elections_give_leaderless_partitions_a_live_replica() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = open(dir.path(), "", &[1, 2, 3]);
    create(&mut c, req("t", 3, 3)).unwrap();
    let tp = |p: i32| ("t".to_string(), p);
    // A partition with a leader needs no unclean election.
    let results = c
        .elect_leaders(ElectionType::Unclean, Some(vec![tp(0)]))
        .unwrap();
    assert!(
        matches!(results[0].1, Err(E::ElectionNotNeeded { .. })),
        "{results:?}"
    );
    // Broker 1 is fenced first (out of every ISR), then 2 and 3: no partition has a leader,
    // each ISR keeps its last member.
    for id in [2, 3] {
        c.broker_heartbeat(id, 900).unwrap();
    }
    c.fence_stale_brokers(0, 1_000).unwrap();
    c.fence_stale_brokers(1_500, 1_000).unwrap();
    c.fence_stale_brokers(3_000, 1_000).unwrap();
    assert!(c
        .image()
        .topic("t")
        .unwrap()
        .partitions
        .values()
        .all(|p| p.leader == -1));
    // With nobody alive there is no one to elect.
    let results = c
        .elect_leaders(ElectionType::Unclean, Some(vec![tp(0)]))
        .unwrap();
    assert!(
        matches!(results[0].1, Err(E::EligibleLeadersNotAvailable { .. })),
        "{results:?}"
    );
    // Broker 1, never in sync since, comes back: an unclean election makes it lead alone.
    c.broker_heartbeat(1, 3_100).unwrap();
    let results = c.elect_leaders(ElectionType::Unclean, None).unwrap();
    assert_eq!(results.len(), 3, "{results:?}");
    for p in c.image().topic("t").unwrap().partitions.values() {
        assert_eq!((p.leader, p.isr.clone()), (1, vec![1]), "{p:?}");
    }
}
