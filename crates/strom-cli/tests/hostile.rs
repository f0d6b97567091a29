//! The hostile-client suite (issue 9): what a careless or malicious client sends must get
//! Kafka's error code and must never destroy data or stop the broker. Each test asserts the
//! exact code on the wire, then restarts the real `strom` binary and reads everything back.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::wire::Wire;
use common::{consume, create_topic, producer, Server};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, CreateTopicsResponse, DeleteRecordsRequest,
    DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;
use strom_protocol::record_batch::builder::BatchBuilder;
use strom_protocol::record_batch::control::{marker_batch, ControlRecordType};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_CONFIG: i16 = 40;
const INVALID_REQUEST: i16 = 42;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_RECORD: i16 = 87;

const METADATA: &str = "__cluster_metadata";
const OFFSETS: &str = "__consumer_offsets";

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

fn batch(values: &[&str]) -> BytesMut {
    let mut b = BatchBuilder::new(0);
    for v in values {
        b.push(None, Some(v.as_bytes()), 1_700_000_000_000);
    }
    b.build()
}

/// Produce v9 of raw `records` to one partition; the partition's (error code, message).
fn produce(wire: &mut Wire, topic: &str, partition: i32, records: Bytes) -> (i16, String) {
    let data = PartitionProduceData::default()
        .with_index(partition)
        .with_records(Some(records));
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_partition_data(vec![data])]);
    let r: ProduceResponse = wire.call(ApiKey::Produce, 9, &req);
    let p = &r.responses[0].partition_responses[0];
    let message = p.error_message.as_ref().map(|m| m.to_string());
    (p.error_code, message.unwrap_or_default())
}

fn metadata(wire: &mut Wire, topic: &str, auto_create: bool) -> i16 {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name(topic)))
        ]))
        .with_allow_auto_topic_creation(auto_create);
    let r: MetadataResponse = wire.call(ApiKey::Metadata, 12, &req);
    r.topics[0].error_code
}

/// CreateTopics v7 of one topic; (error code, message).
fn create(wire: &mut Wire, topic: &str, partitions: i32) -> (i16, String) {
    let req = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(topic))
            .with_num_partitions(partitions)
            .with_replication_factor(1)])
        .with_timeout_ms(10_000);
    let r: CreateTopicsResponse = wire.call(ApiKey::CreateTopics, 7, &req);
    let t = &r.topics[0];
    let message = t.error_message.as_ref().map(|m| m.to_string());
    (t.error_code, message.unwrap_or_default())
}

fn latest_offset(wire: &mut Wire, topic: &str, partition: i32) -> i64 {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(name(topic))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(partition)
                .with_timestamp(-1)])]);
    let r: ListOffsetsResponse = wire.call(ApiKey::ListOffsets, 7, &req);
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "ListOffsets {topic}-{partition}");
    p.offset
}

/// Produces `values` to partition 0 of `topic` with librdkafka and waits for every ack.
async fn produce_acked(server: &Server, topic: &str, values: &[String]) {
    let p = producer(&server.bootstrap(), &[("acks", "all")]);
    for v in values {
        p.send(
            FutureRecord::<(), _>::to(topic).payload(v).partition(0),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|(e, _)| panic!("produce to {topic}: {e}"));
    }
}

/// Restarts the broker cleanly and asserts `topic`-0 still holds exactly `values`.
fn restart_and_read_back(server: &mut Server, topic: &str, values: &[String]) {
    assert!(server.stop(), "clean shutdown");
    server.restart();
    let got = consume(
        &server.bootstrap(),
        topic,
        &[0],
        Offset::Beginning,
        values.len(),
        Duration::from_secs(20),
        &[],
    );
    let got: Vec<String> = got
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(got, values, "{topic} after restart");
    let mut wire = Wire::connect(&server.bootstrap());
    assert_eq!(latest_offset(&mut wire, topic, 0), values.len() as i64);
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// The one-liner of the issue, `echo x | kcat -P -t __cluster_metadata`, used to auto-create a
/// topic inside the metadata log's directory and truncate the metadata. Now every path to that
/// name is refused and the broker restarts with its data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_metadata_can_never_be_created_or_written() {
    let mut server = Server::start(&[]);
    create_topic(&server.bootstrap(), "keep", 1, &[]).await;
    let kept = values("keep", 20);
    produce_acked(&server, "keep", &kept).await;

    // What kcat -P does: librdkafka asks Metadata (allowing auto-creation), then produces.
    let p = producer(&server.bootstrap(), &[("message.timeout.ms", "5000")]);
    let delivery = p
        .send(
            FutureRecord::<(), _>::to(METADATA).payload("x"),
            Duration::from_secs(10),
        )
        .await;
    assert!(
        delivery.is_err(),
        "a record reached {METADATA}: {delivery:?}"
    );

    let mut wire = Wire::connect(&server.bootstrap());
    assert_eq!(metadata(&mut wire, METADATA, true), INVALID_TOPIC_EXCEPTION);
    let (code, message) = create(&mut wire, METADATA, 1);
    assert_eq!(code, INVALID_REQUEST, "{message}");
    assert!(message.contains("prohibited"), "{message}");
    let (code, _) = produce(&mut wire, METADATA, 0, batch(&["x"]).freeze());
    assert_eq!(code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(
        metadata(&mut wire, METADATA, false),
        INVALID_TOPIC_EXCEPTION
    );

    // Other '__' names keep Kafka's rules: tools keep topics of their own like these.
    assert_eq!(create(&mut wire, "__my_tool_state", 1).0, 0);
    assert_eq!(
        produce(&mut wire, "__my_tool_state", 0, batch(&["ok"]).freeze()).0,
        0
    );
    drop(wire);
    restart_and_read_back(&mut server, "keep", &kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_never_creates_topics() {
    let mut server = Server::start(&[]);
    let mut wire = Wire::connect(&server.bootstrap());
    let (code, _) = produce(&mut wire, "never-created", 0, batch(&["x"]).freeze());
    assert_eq!(code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(
        metadata(&mut wire, "never-created", false),
        UNKNOWN_TOPIC_OR_PARTITION,
        "produce created the topic"
    );
    // Only Metadata with allow_auto_topic_creation creates, as in Kafka.
    assert_eq!(metadata(&mut wire, "created-by-metadata", true), 0);
    assert_eq!(
        produce(
            &mut wire,
            "created-by-metadata",
            0,
            batch(&["a", "b"]).freeze()
        )
        .0,
        0
    );
    drop(wire);
    restart_and_read_back(
        &mut server,
        "created-by-metadata",
        &["a".to_owned(), "b".to_owned()],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_topics_refuse_client_writes_deletion_and_policy_changes() {
    let mut server = Server::start(&[("offsets.topic.num.partitions", "2")]);
    let mut wire = Wire::connect(&server.bootstrap());
    // FindCoordinator creates __consumer_offsets, as a consumer's first request would.
    let r: FindCoordinatorResponse = wire.call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![StrBytes::from_static_str("g")]),
    );
    assert_eq!(r.coordinators[0].error_code, 0);
    let end_before = latest_offset(&mut wire, OFFSETS, 0);

    let (code, message) = produce(&mut wire, OFFSETS, 0, batch(&["junk"]).freeze());
    assert_eq!(code, INVALID_TOPIC_EXCEPTION, "{message}");
    assert!(message.contains("internal topic"), "{message}");

    let r: DeleteTopicsResponse = wire.call(
        ApiKey::DeleteTopics,
        4,
        &DeleteTopicsRequest::default()
            .with_topic_names(vec![name(OFFSETS)])
            .with_timeout_ms(10_000),
    );
    assert_eq!(r.responses[0].error_code, INVALID_TOPIC_EXCEPTION);

    let r: DeleteRecordsResponse = wire.call(
        ApiKey::DeleteRecords,
        2,
        &DeleteRecordsRequest::default()
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(name(OFFSETS))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(0)
                    .with_offset(-1)])])
            .with_timeout_ms(10_000),
    );
    assert_eq!(
        r.topics[0].partitions[0].error_code,
        INVALID_TOPIC_EXCEPTION
    );

    for (op, value) in [(0i8, Some("delete")), (1, None), (2, Some("delete"))] {
        let config = AlterableConfig::default()
            .with_name(StrBytes::from_static_str("cleanup.policy"))
            .with_config_operation(op)
            .with_value(value.map(StrBytes::from_static_str));
        let r: IncrementalAlterConfigsResponse = wire.call(
            ApiKey::IncrementalAlterConfigs,
            1,
            &IncrementalAlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str(OFFSETS))
                    .with_configs(vec![config]),
            ]),
        );
        assert_eq!(r.responses[0].error_code, INVALID_CONFIG, "op {op}");
    }
    assert_eq!(latest_offset(&mut wire, OFFSETS, 0), end_before);
    drop(wire);

    assert!(server.stop());
    server.restart();
    let mut wire = Wire::connect(&server.bootstrap());
    assert_eq!(metadata(&mut wire, OFFSETS, false), 0, "{OFFSETS} survived");
    assert_eq!(latest_offset(&mut wire, OFFSETS, 0), end_before);
}

/// Control batches, a producer id with a negative sequence and several batches of an
/// idempotent producer in one partition are refused with INVALID_RECORD, a transactional batch
/// hidden behind a plain one with INVALID_TXN_STATE, and none of them reaches the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_refuses_batches_only_the_broker_may_write() {
    let mut server = Server::start(&[]);
    create_topic(&server.bootstrap(), "strict", 1, &[]).await;
    let good = values("good", 3);
    produce_acked(&server, "strict", &good).await;
    let mut wire = Wire::connect(&server.bootstrap());
    let (pid, epoch) = wire.init_producer_id();

    let marker = marker_batch(pid, epoch, ControlRecordType::Commit, 0, 1_700_000_000_000);
    let (code, message) = produce(&mut wire, "strict", 0, marker.freeze());
    assert_eq!(code, INVALID_RECORD, "control batch: {message}");
    assert!(message.contains("control"), "{message}");

    let mut negative = BatchBuilder::new(0);
    negative.producer = Some((pid, epoch, -1));
    negative.push(None, Some(b"x"), 1_700_000_000_000);
    let (code, message) = produce(&mut wire, "strict", 0, negative.build().freeze());
    assert_eq!(code, INVALID_RECORD, "negative sequence: {message}");

    let mut two = BytesMut::new();
    for seq in [0, 1] {
        let mut b = BatchBuilder::new(0);
        b.producer = Some((pid, epoch, seq));
        b.push(None, Some(b"x"), 1_700_000_000_000);
        two.extend_from_slice(&b.build());
    }
    let (code, message) = produce(&mut wire, "strict", 0, two.freeze());
    assert_eq!(code, INVALID_RECORD, "two idempotent batches: {message}");

    // A plain batch first, then a transactional batch of a producer with no transaction.
    let mut hidden = batch(&["plain"]);
    let mut txn = BatchBuilder::new(0);
    txn.producer = Some((pid, epoch, 0));
    txn.attributes = 0x10;
    txn.push(None, Some(b"txn"), 1_700_000_000_000);
    hidden.extend_from_slice(&txn.build());
    // Every batch is checked against the coordinator, not just the first.
    let (code, message) = produce(&mut wire, "strict", 0, hidden.freeze());
    assert_eq!(
        code, INVALID_TXN_STATE,
        "hidden transactional batch: {message}"
    );

    // Plain producers may still send several batches in one request.
    let mut plain = batch(&["p0"]);
    plain.extend_from_slice(&batch(&["p1"]));
    assert_eq!(produce(&mut wire, "strict", 0, plain.freeze()).0, 0);
    drop(wire);
    let mut expected = good;
    expected.extend(["p0".to_owned(), "p1".to_owned()]);
    restart_and_read_back(&mut server, "strict", &expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_counts_are_bounded() {
    let server = Server::start(&[("max.broker.partitions", "120")]);
    let mut wire = Wire::connect(&server.bootstrap());
    let (code, message) = create(&mut wire, "huge", 1_000_000);
    assert_eq!(code, INVALID_PARTITIONS, "{message}");
    assert_eq!(create(&mut wire, "fits", 100).0, 0);
    let (code, message) = create(&mut wire, "overflows", 30);
    assert_eq!(code, INVALID_PARTITIONS, "{message}");
    assert!(message.contains("max.broker.partitions=120"), "{message}");
    assert_eq!(
        metadata(&mut wire, "overflows", false),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    // The broker is fine and keeps serving.
    assert_eq!(produce(&mut wire, "fits", 99, batch(&["ok"]).freeze()).0, 0);
}

fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A partition directory the metadata does not name is renamed `-stray` and kept, with its
/// bytes, never deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_partition_directories_are_kept_as_stray() {
    let mut server = Server::start(&[]);
    create_topic(&server.bootstrap(), "real", 1, &[]).await;
    let kept = values("real", 5);
    produce_acked(&server, "real", &kept).await;
    assert!(server.stop());

    let ghost = server.data_dir().join("ghost-0");
    std::fs::create_dir(&ghost).unwrap();
    std::fs::write(ghost.join("00000000000000000000.log"), b"precious bytes").unwrap();
    server.restart();
    let names = dir_names(server.data_dir());
    assert!(!names.contains(&"ghost-0".to_owned()), "{names:?}");
    let stray: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("ghost-0.") && n.ends_with("-stray"))
        .collect();
    assert_eq!(stray.len(), 1, "{names:?}");
    let bytes = std::fs::read(
        server
            .data_dir()
            .join(stray[0])
            .join("00000000000000000000.log"),
    )
    .unwrap();
    assert_eq!(bytes, b"precious bytes");
    restart_and_read_back(&mut server, "real", &kept);
    // A stray directory is never taken for a partition again.
    assert_eq!(
        dir_names(server.data_dir())
            .iter()
            .filter(|n| n.ends_with("-stray"))
            .count(),
        1
    );
}

/// Runs `strom server` with `settings` and expects it to refuse to start: returns its stderr.
fn start_refused(settings: &[String]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_strom"));
    cmd.arg("server")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for s in settings {
        cmd.arg("--set").arg(s);
    }
    let mut child = cmd.spawn().expect("start strom");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "strom started");
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return err;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("strom kept running with {settings:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A metadata log that names no topics over a data directory holding partitions is a fault:
/// the broker refuses to start and touches nothing; with the metadata back, all is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_metadata_image_over_data_refuses_to_start() {
    let mut server = Server::start(&[]);
    create_topic(&server.bootstrap(), "precious", 2, &[]).await;
    let kept = values("precious", 10);
    produce_acked(&server, "precious", &kept).await;
    assert!(server.stop());

    let data = server.data_dir().to_path_buf();
    let metadata_dir = data.join("__cluster_metadata-0");
    let aside = data.with_file_name("metadata-aside");
    std::fs::rename(&metadata_dir, &aside).unwrap();
    let before = dir_names(&data);
    let port = common::free_port();
    let err = start_refused(&[
        format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
        format!("log.dirs={}", data.display()),
    ]);
    assert!(err.contains("refusing to start"), "{err}");
    assert!(err.contains("precious-0"), "{err}");
    // Nothing renamed or removed (the failed start may leave a fresh metadata log).
    let after: Vec<String> = dir_names(&data)
        .into_iter()
        .filter(|n| n != "__cluster_metadata-0")
        .collect();
    assert_eq!(after, before);

    std::fs::remove_dir_all(&metadata_dir).ok();
    std::fs::rename(&aside, &metadata_dir).unwrap();
    server.restart();
    let got = consume(
        &server.bootstrap(),
        "precious",
        &[0],
        Offset::Beginning,
        kept.len(),
        Duration::from_secs(20),
        &[],
    );
    assert_eq!(got.len(), kept.len());
}

#[test]
fn tls_listeners_without_a_usable_key_store_are_refused_at_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    for listener in ["SSL", "SASL_SSL"] {
        let port = common::free_port();
        let err = start_refused(&[
            format!("listeners={listener}://127.0.0.1:{port}"),
            format!("log.dirs={}", tmp.path().display()),
        ]);
        assert!(
            err.contains("uses TLS but has no key store") && err.contains("ssl.keystore.location"),
            "{listener}: {err}"
        );
        let missing = tmp.path().join("no-such.pem");
        let err = start_refused(&[
            format!("listeners={listener}://127.0.0.1:{port}"),
            format!("log.dirs={}", tmp.path().display()),
            format!("ssl.keystore.location={}", missing.display()),
        ]);
        assert!(
            err.contains("ssl.keystore.location") && err.contains("no-such.pem"),
            "{listener}: {err}"
        );
    }
    // SASL PLAIN alone, with no users in a JAAS config: refused, naming the setting.
    let port = common::free_port();
    let err = start_refused(&[
        format!("listeners=SASL_PLAINTEXT://127.0.0.1:{port}"),
        format!("log.dirs={}", tmp.path().display()),
        "sasl.enabled.mechanisms=PLAIN".into(),
    ]);
    assert!(
        err.contains("listener.name.sasl_plaintext.plain.sasl.jaas.config"),
        "{err}"
    );
}
