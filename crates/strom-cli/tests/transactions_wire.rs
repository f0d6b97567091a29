//! Transaction APIs on the wire with exact versions and error codes: timeout validation,
//! transactional produce only to added partitions, fencing answered per request version,
//! and the admin views (DescribeTransactions, ListTransactions, DescribeProducers).

mod common;

use common::wire::Wire;
use common::{create_topic, Server};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_protocol::record_batch::builder::BatchBuilder;

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const PRODUCER_FENCED: i16 = 90;

fn txn_id() -> TransactionalId {
    TransactionalId(StrBytes::from_static_str("wire-tx"))
}

fn init(w: &mut Wire, timeout_ms: i32) -> (i16, i64, i16) {
    let r: InitProducerIdResponse = w.call(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(txn_id()))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

fn add_partitions(w: &mut Wire, version: i16, producer: (i64, i16), topics: &[&str]) -> Vec<i16> {
    let topics = topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(StrBytes::from_string(t.to_string())))
                .with_partitions(vec![0])
        })
        .collect();
    let r: AddPartitionsToTxnResponse = w.call(
        ApiKey::AddPartitionsToTxn,
        version,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(txn_id())
            .with_v3_and_below_producer_id(ProducerId(producer.0))
            .with_v3_and_below_producer_epoch(producer.1)
            .with_v3_and_below_topics(topics),
    );
    r.results_by_topic_v3_and_below
        .iter()
        .map(|t| t.results_by_partition[0].partition_error_code)
        .collect()
}

fn end(w: &mut Wire, version: i16, producer: (i64, i16), commit: bool) -> i16 {
    let r: EndTxnResponse = w.call(
        ApiKey::EndTxn,
        version,
        &EndTxnRequest::default()
            .with_transactional_id(txn_id())
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_committed(commit),
    );
    r.error_code
}

fn produce_txn(w: &mut Wire, producer: (i64, i16), sequence: i32) -> i16 {
    let mut batch = BatchBuilder::new(0);
    batch.producer = Some((producer.0, producer.1, sequence));
    batch.attributes = 0x10;
    batch.push(None, Some(b"v"), 1_700_000_000_000);
    let partition = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(batch.build().freeze()));
    let topic = TopicProduceData::default()
        .with_name(TopicName(StrBytes::from_static_str("wire")))
        .with_partition_data(vec![partition]);
    let req = ProduceRequest::default()
        .with_transactional_id(Some(txn_id()))
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![topic]);
    let r: ProduceResponse = w.call(ApiKey::Produce, 9, &req);
    r.responses[0].partition_responses[0].error_code
}

#[test]
fn transaction_apis_answer_with_kafkas_codes() {
    let server = Server::start(&[("transaction.max.timeout.ms", "60000")]);
    let b = server.bootstrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(create_topic(&b, "wire", 1, &[]));
    let mut w = Wire::connect(&b);
    assert_eq!(init(&mut w, 60_001).0, INVALID_TRANSACTION_TIMEOUT);
    let (code, pid, epoch) = init(&mut w, 30_000);
    assert_eq!((code, epoch), (0, 0));
    let producer = (pid, epoch);
    // Writing before the partition is in the transaction is refused.
    assert_eq!(produce_txn(&mut w, producer, 0), INVALID_TXN_STATE);
    assert_eq!(
        add_partitions(&mut w, 3, producer, &["wire", "no-such-topic"]),
        vec![OPERATION_NOT_ATTEMPTED, UNKNOWN_TOPIC_OR_PARTITION]
    );
    assert_eq!(add_partitions(&mut w, 3, producer, &["wire"]), vec![0]);
    assert_eq!(produce_txn(&mut w, producer, 0), 0);

    let r: DescribeTransactionsResponse = w.call(
        ApiKey::DescribeTransactions,
        0,
        &DescribeTransactionsRequest::default().with_transactional_ids(vec![
            txn_id(),
            TransactionalId(StrBytes::from_static_str("unknown")),
        ]),
    );
    let state = &r.transaction_states[0];
    assert_eq!(
        (
            state.transaction_state.as_str(),
            state.producer_id.0,
            state.transaction_timeout_ms
        ),
        ("Ongoing", pid, 30_000)
    );
    assert_eq!(state.topics[0].partitions, vec![0]);
    assert_eq!(
        r.transaction_states[1].error_code, 105,
        "TRANSACTIONAL_ID_NOT_FOUND"
    );
    let r: ListTransactionsResponse = w.call(
        ApiKey::ListTransactions,
        1,
        &ListTransactionsRequest::default()
            .with_state_filters(vec![
                StrBytes::from_static_str("Ongoing"),
                StrBytes::from_static_str("Bogus"),
            ])
            .with_duration_filter(-1),
    );
    assert_eq!(r.transaction_states.len(), 1);
    assert_eq!(r.transaction_states[0].transactional_id, txn_id());
    assert_eq!(
        r.unknown_state_filters,
        vec![StrBytes::from_static_str("Bogus")]
    );
    let r: DescribeProducersResponse = w.call(
        ApiKey::DescribeProducers,
        0,
        &DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(TopicName(StrBytes::from_static_str("wire")))
            .with_partition_indexes(vec![0])]),
    );
    let p = &r.topics[0].partitions[0].active_producers[0];
    assert_eq!(
        (p.producer_id.0, p.last_sequence, p.current_txn_start_offset),
        (pid, 0, 0)
    );

    // A new instance fences the old epoch; each version gets its own code.
    let (code, pid2, epoch2) = init(&mut w, 30_000);
    assert_eq!(
        (code, pid2, epoch2),
        (0, pid, 2),
        "abort (epoch 1) then bump"
    );
    assert_eq!(end(&mut w, 1, producer, true), INVALID_PRODUCER_EPOCH);
    assert_eq!(end(&mut w, 3, producer, true), PRODUCER_FENCED);
    assert_eq!(
        add_partitions(&mut w, 1, producer, &["wire"]),
        vec![INVALID_PRODUCER_EPOCH]
    );
    assert_eq!(produce_txn(&mut w, producer, 1), INVALID_PRODUCER_EPOCH);
    // Nothing is open for the new epoch: EndTxn has nothing to end.
    assert_eq!(end(&mut w, 3, (pid, 2), true), INVALID_TXN_STATE);
}

const TRANSACTION_COORDINATOR_FENCED: i16 = 52;

/// WriteTxnMarkers v1 for `producer`'s transaction on `wire`-0 from a coordinator in
/// `coordinator_epoch`: the partition's error code.
fn write_marker(w: &mut Wire, producer: (i64, i16), coordinator_epoch: i32, commit: bool) -> i16 {
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    let topic = WritableTxnMarkerTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("wire")))
        .with_partition_indexes(vec![0]);
    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(producer.0))
        .with_producer_epoch(producer.1)
        .with_transaction_result(commit)
        .with_topics(vec![topic])
        .with_coordinator_epoch(coordinator_epoch);
    let r: WriteTxnMarkersResponse = w.call(
        ApiKey::WriteTxnMarkers,
        1,
        &WriteTxnMarkersRequest::default().with_markers(vec![marker]),
    );
    r.markers[0].topics[0].partitions[0].error_code
}

/// The coordinator epoch DescribeProducers reports for `producer` on `wire`-0.
fn described_coordinator_epoch(w: &mut Wire, producer: i64) -> i32 {
    let topic = TopicRequest::default()
        .with_name(TopicName(StrBytes::from_static_str("wire")))
        .with_partition_indexes(vec![0]);
    let r: DescribeProducersResponse = w.call(
        ApiKey::DescribeProducers,
        0,
        &DescribeProducersRequest::default().with_topics(vec![topic]),
    );
    r.topics[0].partitions[0]
        .active_producers
        .iter()
        .find(|p| p.producer_id.0 == producer)
        .map_or(-2, |p| p.coordinator_epoch)
}

/// A partition leader remembers, per producer, the highest coordinator epoch whose marker it
/// wrote and refuses a marker from an older coordinator with TRANSACTION_COORDINATOR_FENCED
/// (a deposed coordinator must not end a transaction its successor owns); the same epoch or a
/// newer one is written. The rule survives a restart (producer state from snapshot and log).
#[test]
fn write_txn_markers_from_an_older_coordinator_epoch_are_fenced() {
    let mut server = Server::start(&[("transaction.max.timeout.ms", "600000")]);
    let b = server.bootstrap();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(create_topic(&b, "wire", 1, &[]));
    let mut w = Wire::connect(&b);
    let (code, pid, epoch) = init(&mut w, 600_000);
    assert_eq!(code, 0);
    let producer = (pid, epoch);
    assert_eq!(add_partitions(&mut w, 3, producer, &["wire"]), vec![0]);
    assert_eq!(produce_txn(&mut w, producer, 0), 0);

    assert_eq!(write_marker(&mut w, producer, 5, false), 0, "first marker");
    assert_eq!(described_coordinator_epoch(&mut w, pid), 5);
    assert_eq!(
        write_marker(&mut w, producer, 4, true),
        TRANSACTION_COORDINATOR_FENCED,
        "a marker from an older coordinator"
    );
    assert_eq!(
        write_marker(&mut w, producer, 5, false),
        0,
        "same epoch: a retry"
    );
    drop(w);

    // A crash: producer state comes back from its snapshot and the log.
    server.kill9();
    server.restart();
    let mut w = Wire::connect(&server.bootstrap());
    assert_eq!(described_coordinator_epoch(&mut w, pid), 5);
    assert_eq!(
        write_marker(&mut w, producer, 4, true),
        TRANSACTION_COORDINATOR_FENCED,
        "still fenced after a restart"
    );
    assert_eq!(
        write_marker(&mut w, producer, 6, false),
        0,
        "a newer coordinator"
    );
    assert_eq!(described_coordinator_epoch(&mut w, pid), 6);
}
