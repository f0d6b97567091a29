//! Transaction protocol v2 (KIP-890) against a real broker: the `transaction.version`
//! feature in ApiVersions; on the wire, partitions added by Produce v12 and TxnOffsetCommit v5
//! themselves, the epoch bump of every EndTxn v5 (retry, fencing of the old epoch), writes
//! outside a transaction refused without leaving the last stable offset stuck; and Kafka 4.1's
//! Java producer speaking v2 (shown by the per-version request counts), its committed records
//! read exactly by a read_committed librdkafka consumer.

mod common;

use std::time::{Duration, Instant};

use common::wire::Wire;
use common::{create_topic, Server};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use strom_protocol::record_batch::builder::BatchBuilder;

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;

fn name(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// COORDINATOR_LOAD_IN_PROGRESS and COORDINATOR_NOT_AVAILABLE: a coordinator just elected
/// (a fresh cluster) answers these until it has read its partition; clients retry.
const COORDINATOR_NOT_READY: [i16; 2] = [14, 15];

fn init(w: &mut Wire, id: &str) -> (i64, i16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r: InitProducerIdResponse = w.call(
            ApiKey::InitProducerId,
            5,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(name(id))))
                .with_transaction_timeout_ms(30_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        );
        if COORDINATOR_NOT_READY.contains(&r.error_code) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        assert_eq!(r.error_code, 0, "InitProducerId");
        return (r.producer_id.0, r.producer_epoch);
    }
}

/// One transactional record `value` to `topic`-0 as Produce v`version`: the error code.
fn produce(
    w: &mut Wire,
    version: i16,
    id: &str,
    topic: &str,
    producer: (i64, i16),
    sequence: i32,
    value: &str,
) -> i16 {
    produce_to(w, version, id, (topic, 0), producer, sequence, value)
}

/// One transactional record `value` to `partition` as Produce v`version`: the error code.
fn produce_to(
    w: &mut Wire,
    version: i16,
    id: &str,
    (topic, index): (&str, i32),
    producer: (i64, i16),
    sequence: i32,
    value: &str,
) -> i16 {
    let mut batch = BatchBuilder::new(0);
    batch.producer = Some((producer.0, producer.1, sequence));
    batch.attributes = 0x10; // transactional
    batch.push(None, Some(value.as_bytes()), 1_700_000_000_000);
    let partition = PartitionProduceData::default()
        .with_index(index)
        .with_records(Some(batch.build().freeze()));
    let req = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(name(id))))
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(name(topic)))
            .with_partition_data(vec![partition])]);
    let r: ProduceResponse = w.call(ApiKey::Produce, version, &req);
    r.responses[0].partition_responses[0].error_code
}

/// EndTxn v5: (error, producer id, epoch) of the answer.
fn end(w: &mut Wire, id: &str, producer: (i64, i16), commit: bool) -> (i16, i64, i16) {
    let r: EndTxnResponse = w.call(
        ApiKey::EndTxn,
        5,
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(name(id)))
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_committed(commit),
    );
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// AddPartitionsToTxn v5 (the batched broker-to-broker form) with `VerifyOnly` for
/// `v2`-0: the partition's error code.
fn verify_only(w: &mut Wire, id: &str, producer: (i64, i16)) -> i16 {
    use kafka_protocol::messages::add_partitions_to_txn_request::{
        AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
    };
    let txn = AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(name(id)))
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_verify_only(true)
        .with_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(TopicName(name("v2")))
            .with_partitions(vec![0])]);
    let r: AddPartitionsToTxnResponse = w.call(
        ApiKey::AddPartitionsToTxn,
        5,
        &AddPartitionsToTxnRequest::default().with_transactions(vec![txn]),
    );
    assert_eq!(r.error_code, 0);
    let t = &r.results_by_transaction[0];
    assert_eq!(t.transactional_id.0.as_str(), id);
    t.topic_results[0].results_by_partition[0].partition_error_code
}

/// ListOffsets v5 latest of `topic`-0 at `isolation` (0: high watermark, 1: LSO).
fn latest(w: &mut Wire, topic: &str, isolation: i8) -> i64 {
    let r: ListOffsetsResponse = w.call(
        ApiKey::ListOffsets,
        5,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(name(topic)))
                .with_partitions(vec![
                    ListOffsetsPartition::default().with_timestamp(-1)
                ])]),
    );
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0, "ListOffsets");
    p.offset
}

/// The record values of `topic` a read_committed librdkafka consumer sees: at least
/// `expected` of them (30 s at most), then whatever else arrives within another second.
fn read_committed(bootstrap: &str, topic: &str, partitions: i32, expected: usize) -> Vec<String> {
    let consumer = common::consumer(bootstrap, &[("isolation.level", "read_committed")]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut settle: Option<Instant> = None;
    while Instant::now() < deadline && settle.is_none_or(|t| Instant::now() < t) {
        if out.len() >= expected && settle.is_none() {
            settle = Some(Instant::now() + Duration::from_secs(1));
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
            }
            Some(Err(e)) => panic!("consume error: {e}"),
            None => {}
        }
    }
    out
}

#[test]
fn v2_on_the_wire_implicit_adds_epoch_bumps_and_no_hanging_transaction() {
    let server = Server::start(&[]);
    let b = server.bootstrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(create_topic(&b, "v2", 1, &[]));
    let mut w = Wire::connect(&b);

    // The feature Kafka 4 clients look for, and the v2 request versions.
    let r: ApiVersionsResponse = w.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let feature = |f: &str| name(f);
    let supported = r
        .supported_features
        .iter()
        .find(|f| f.name == feature("transaction.version"))
        .map(|f| (f.min_version, f.max_version));
    assert_eq!(supported, Some((0, 2)));
    let finalized = r
        .finalized_features
        .iter()
        .find(|f| f.name == feature("transaction.version"))
        .map(|f| f.max_version_level);
    assert_eq!(finalized, Some(2));
    assert!(r.finalized_features_epoch >= 0);
    let max = |key: ApiKey| {
        r.api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| k.max_version)
    };
    assert_eq!(max(ApiKey::Produce), Some(12));
    assert_eq!(max(ApiKey::EndTxn), Some(5));
    assert_eq!(max(ApiKey::TxnOffsetCommit), Some(5));
    assert_eq!(max(ApiKey::AddPartitionsToTxn), Some(5));

    let id = "v2-tx";
    let (pid, e0) = init(&mut w, id);
    assert_eq!(e0, 0);
    // KIP-890 part 1 between brokers: the partition is not in a transaction yet.
    assert_eq!(verify_only(&mut w, id, (pid, 0)), INVALID_TXN_STATE);
    // Produce v12 adds the partition itself: no AddPartitionsToTxn.
    assert_eq!(produce(&mut w, 12, id, "v2", (pid, 0), 0, "committed"), 0);
    assert_eq!(verify_only(&mut w, id, (pid, 0)), 0);
    let r: DescribeTransactionsResponse = w.call(
        ApiKey::DescribeTransactions,
        0,
        &DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(name(id))]),
    );
    let state = &r.transaction_states[0];
    assert_eq!(state.transaction_state.as_str(), "Ongoing");
    assert_eq!(state.topics[0].topic.0.as_str(), "v2");
    // TxnOffsetCommit v5 adds the group's offsets partition itself: no AddOffsetsToTxn.
    let r: TxnOffsetCommitResponse = w.call(
        ApiKey::TxnOffsetCommit,
        5,
        &TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(name(id)))
            .with_group_id(GroupId(name("v2-group")))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(0)
            .with_generation_id(-1)
            .with_member_id(name(""))
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(TopicName(name("v2")))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(42)
                    .with_committed_leader_epoch(-1)])]),
    );
    assert_eq!(
        r.topics[0].partitions[0].error_code, 0,
        "TxnOffsetCommit v5"
    );
    // Open transaction: the LSO stays at its first record.
    assert_eq!(latest(&mut w, "v2", 1), 0);

    // Every end bumps the epoch; a retry from the old epoch gets the same answer.
    assert_eq!(end(&mut w, id, (pid, 0), true), (0, pid, 1));
    assert_eq!(end(&mut w, id, (pid, 0), true), (0, pid, 1));
    // The old epoch is a zombie now.
    assert_eq!(
        produce(&mut w, 12, id, "v2", (pid, 0), 1, "zombie"),
        INVALID_PRODUCER_EPOCH
    );
    // The producer goes on with the bumped epoch (sequences start again at 0).
    assert_eq!(produce(&mut w, 12, id, "v2", (pid, 1), 0, "aborted"), 0);
    assert_eq!(end(&mut w, id, (pid, 1), false), (0, pid, 2));
    assert_eq!(end(&mut w, id, (pid, 0), true).0, 90, "PRODUCER_FENCED");

    // Hanging transactions: a transactional write outside an ongoing transaction is
    // refused (a v1 produce with nothing added; a producer id no coordinator knows), and
    // the last stable offset does not stick behind it.
    assert_eq!(
        produce(&mut w, 11, id, "v2", (pid, 2), 0, "hanging"),
        INVALID_TXN_STATE
    );
    assert_eq!(
        produce(&mut w, 12, id, "v2", (pid + 1000, 0), 0, "stranger"),
        INVALID_TXN_STATE
    );
    let hw = latest(&mut w, "v2", 0);
    assert_eq!(hw, 4, "two records and their two markers");
    assert_eq!(latest(&mut w, "v2", 1), hw, "LSO = high watermark");

    assert_eq!(read_committed(&b, "v2", 1, 1), vec!["committed".to_owned()]);
    let r: OffsetFetchResponse = w.call(
        ApiKey::OffsetFetch,
        5,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(name("v2-group")))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(name("v2")))
                .with_partition_indexes(vec![0])])),
    );
    assert_eq!(r.topics[0].partitions[0].committed_offset, 42);
}

/// Kafka 4.1's tools, from KAFKA_HOME or the peers' download.
fn kafka_tool(tool: &str) -> Option<String> {
    let home = std::env::var("KAFKA_HOME").unwrap_or_else(|_| {
        format!(
            "{}/.cache/strom-peers/kafka/kafka_2.13-4.1.0",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let path = format!("{home}/bin/{tool}");
    std::path::Path::new(&path).exists().then_some(path)
}

fn run_tool(tool: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{tool} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `name{request="api",version="v"}`'s value in a /metrics scrape (0 if absent).
fn by_version(metrics: &str, api: &str, version: i16) -> u64 {
    let prefix = format!(
        "kafka_network_requestmetrics_requests_by_version_total{{request=\"{api}\",version=\"{version}\"}} "
    );
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[test]
fn kafka_java_producer_uses_transactions_v2() {
    let (Some(perf), Some(transactions)) = (
        kafka_tool("kafka-producer-perf-test.sh"),
        kafka_tool("kafka-transactions.sh"),
    ) else {
        eprintln!(
            "SKIPPED: Kafka 4.1's tools not found (set KAFKA_HOME, or run the peers script \
             that downloads ~/.cache/strom-peers/kafka/kafka_2.13-4.1.0)"
        );
        return;
    };
    let http = common::free_port();
    let server = Server::start(&[("http.listeners", &format!("http://127.0.0.1:{http}"))]);
    let b = server.bootstrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(create_topic(&b, "java-v2", 2, &[]));
    const RECORDS: usize = 600;
    run_tool(
        &perf,
        &[
            "--topic",
            "java-v2",
            "--num-records",
            &RECORDS.to_string(),
            "--record-size",
            "20",
            "--throughput",
            "-1",
            "--transactional-id",
            "java-v2-tx",
            "--transaction-duration-ms",
            "100",
            "--producer-props",
            &format!("bootstrap.servers={b}"),
        ],
    );
    // v2 on the wire: Produce v12 and EndTxn v5, never AddPartitionsToTxn or Produce v11.
    let (status, metrics) = common::http::http_get(http, "/metrics");
    assert_eq!(status, 200);
    let ends = by_version(&metrics, "EndTxn", 5);
    assert!(by_version(&metrics, "Produce", 12) > 0, "{metrics}");
    assert!(ends >= 1, "{metrics}");
    assert!(
        !metrics.contains("request=\"AddPartitionsToTxn\"")
            && !metrics.contains("request=\"AddOffsetsToTxn\"")
            && by_version(&metrics, "Produce", 11) == 0,
        "{metrics}"
    );
    // Every end bumped the epoch (from 0 after InitProducerId) and the producer went on
    // with it; the last transaction is committed.
    let mut w = Wire::connect(&b);
    let r: DescribeTransactionsResponse = w.call(
        ApiKey::DescribeTransactions,
        0,
        &DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(name("java-v2-tx"))]),
    );
    let state = &r.transaction_states[0];
    assert_eq!(state.transaction_state.as_str(), "CompleteCommit");
    assert_eq!(i64::from(state.producer_epoch), ends as i64);
    // A zombie with the epoch before the last bump is fenced.
    let zombie = (state.producer_id.0, state.producer_epoch - 1);
    assert_eq!(
        produce(&mut w, 12, "java-v2-tx", "java-v2", zombie, 0, "zombie"),
        INVALID_PRODUCER_EPOCH
    );
    // Exactly the committed records, read by librdkafka at read_committed.
    let records = read_committed(&b, "java-v2", 2, RECORDS);
    assert_eq!(records.len(), RECORDS);
    assert!(records.iter().all(|r| r.len() == 20));
    // Kafka's own admin tool reads the v2 state.
    let listed = run_tool(&transactions, &["--bootstrap-server", &b, "list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("java-v2-tx") && l.contains("CompleteCommit")),
        "{listed}"
    );
    let described = run_tool(
        &transactions,
        &[
            "--bootstrap-server",
            &b,
            "describe",
            "--transactional-id",
            "java-v2-tx",
        ],
    );
    let row = described
        .lines()
        .find(|l| l.contains("java-v2-tx"))
        .unwrap_or_else(|| panic!("{described}"));
    let epoch: i64 = row.split_whitespace().nth(3).unwrap().parse().unwrap();
    assert_eq!(epoch, ends as i64, "{described}");
}

/// On a 3-node cluster the partitions a v2 producer writes are led by brokers other than its
/// transaction coordinator: each leader adds them with AddPartitionsToTxn v5 to the
/// coordinator, and the committed records are all read back at read_committed. (Were a
/// partition not added, its produce would fail, or it would get no marker and its last
/// stable offset would stay behind the records.)
#[test]
fn kafka_java_producer_v2_on_a_cluster() {
    let Some(perf) = kafka_tool("kafka-producer-perf-test.sh") else {
        eprintln!("SKIPPED: Kafka 4.1's tools not found (KAFKA_HOME or the peers' download)");
        return;
    };
    let cluster = common::cluster::Cluster::start(
        3,
        &[
            ("transaction.state.log.replication.factor", "3"),
            ("transaction.state.log.num.partitions", "1"),
            ("offsets.topic.replication.factor", "3"),
        ],
    );
    let b = cluster.bootstrap();
    let admin = common::admin(&b);
    // One replica per partition: three partitions are led by (up to) three brokers.
    let topic =
        rdkafka::admin::NewTopic::new("spread", 6, rdkafka::admin::TopicReplication::Fixed(1));
    let opts = rdkafka::admin::AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let created = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(admin.create_topics([&topic], &opts))
        .expect("create_topics");
    for r in created {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    const RECORDS: usize = 300;
    run_tool(
        &perf,
        &[
            "--topic",
            "spread",
            "--num-records",
            &RECORDS.to_string(),
            "--record-size",
            "20",
            "--throughput",
            "-1",
            "--transactional-id",
            "spread-tx",
            "--transaction-duration-ms",
            "100",
            "--producer-props",
            &format!("bootstrap.servers={b}"),
            "partitioner.class=org.apache.kafka.clients.producer.RoundRobinPartitioner",
            "acks=all",
        ],
    );
    let records = read_committed(&b, "spread", 6, RECORDS);
    assert_eq!(records.len(), RECORDS);
}

/// KIP-890 part 1 in a cluster: a v1 (Produce v11) transactional write to a partition led by
/// a broker that is not the producer's coordinator is verified there with AddPartitionsToTxn
/// v5 `VerifyOnly`: refused with INVALID_TXN_STATE before the partition is added, accepted
/// after.
#[test]
fn v1_produce_is_verified_at_a_remote_coordinator() {
    let cluster = common::cluster::Cluster::start(
        3,
        &[
            ("transaction.state.log.replication.factor", "3"),
            ("transaction.state.log.num.partitions", "1"),
        ],
    );
    let b = cluster.bootstrap();
    let admin = common::admin(&b);
    let topic = rdkafka::admin::NewTopic::new("v1c", 3, rdkafka::admin::TopicReplication::Fixed(1));
    let opts = rdkafka::admin::AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let created = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(admin.create_topics([&topic], &opts))
        .expect("create_topics");
    for r in created {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    let via = *cluster.nodes.keys().next().unwrap();
    let id = "v1-remote-tx";
    // The coordinator (FindCoordinator creates __transaction_state on first use).
    let deadline = Instant::now() + Duration::from_secs(60);
    let coordinator = loop {
        let mut w = Wire::connect(&cluster.nodes[&via].bootstrap());
        let r: FindCoordinatorResponse = w.call(
            ApiKey::FindCoordinator,
            4,
            &FindCoordinatorRequest::default()
                .with_key_type(1)
                .with_coordinator_keys(vec![name(id)]),
        );
        let c = &r.coordinators[0];
        if c.error_code == 0 {
            break c.node_id.0;
        }
        assert!(
            Instant::now() < deadline,
            "FindCoordinator: {}",
            c.error_code
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let (view, _) = cluster.wait_view(via, Duration::from_secs(60), "v1c led", |v| {
        v.topics
            .get("v1c")
            .is_some_and(|t| t.len() == 3 && t.values().all(|p| p.0 > 0))
    });
    let (&index, remote) = view.topics["v1c"]
        .iter()
        .find(|(_, p)| p.0 != coordinator)
        .expect("a partition led away from the coordinator");
    let mut c = Wire::connect(&cluster.nodes[&coordinator].bootstrap());
    let producer = init(&mut c, id);
    let mut leader = Wire::connect(&cluster.nodes[&remote.0].bootstrap());
    assert_eq!(
        produce_to(&mut leader, 11, id, ("v1c", index), producer, 0, "early"),
        INVALID_TXN_STATE
    );
    let r: AddPartitionsToTxnResponse = c.call(
        ApiKey::AddPartitionsToTxn,
        3,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(name(id)))
            .with_v3_and_below_producer_id(ProducerId(producer.0))
            .with_v3_and_below_producer_epoch(producer.1)
            .with_v3_and_below_topics(vec![
                kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(name("v1c")))
                    .with_partitions(vec![index]),
            ]),
    );
    assert_eq!(
        r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    assert_eq!(
        produce_to(&mut leader, 11, id, ("v1c", index), producer, 0, "added"),
        0
    );
    // The next batch of the open transaction needs no second verification.
    assert_eq!(
        produce_to(&mut leader, 11, id, ("v1c", index), producer, 1, "more"),
        0
    );
    let r: EndTxnResponse = c.call(
        ApiKey::EndTxn,
        3,
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(name(id)))
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_committed(true),
    );
    assert_eq!(r.error_code, 0);
}
