//! Pipelined produce acknowledgements (issue 20) against the real binary in durable mode
//! (`log.flush.before.ack.enable=true`): a connection appends the next produce requests while
//! earlier ones wait for their group-commit fsync, answers strictly in request order, keeps
//! idempotent sequence checks, and handles any other request only after the produce answers
//! before it are decided.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::wire::{read_response, request_frame, Wire};
use common::{consume, create_topic, producer, Server};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse,
    ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;
use strom_protocol::record_batch::builder::BatchBuilder;
use strom_protocol::record_batch::RecordBatchHeader;

const PRODUCE_VERSION: i16 = 9;
const FETCH_VERSION: i16 = 12;
const API_VERSIONS_VERSION: i16 = 3;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A produce request of one batch of `count` records ("p{partition}-{first + i}") to
/// `piped`/`partition`; idempotent when `producer` is `(id, epoch, base sequence)`.
fn produce(
    acks: i16,
    partition: i32,
    first: usize,
    count: usize,
    producer: Option<(i64, i16, i32)>,
) -> ProduceRequest {
    let mut batch = BatchBuilder::new(0);
    batch.producer = producer;
    for i in 0..count {
        let value = format!("p{partition}-{}", first + i);
        batch.push(None, Some(value.as_bytes()), now_ms());
    }
    let data = PartitionProduceData::default()
        .with_index(partition)
        .with_records(Some(batch.build().freeze()));
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("piped")))
            .with_partition_data(vec![data])])
}

/// [`produce`] as a request frame with correlation id `correlation`.
fn produce_frame(
    correlation: i32,
    acks: i16,
    partition: i32,
    first: usize,
    count: usize,
    producer: Option<(i64, i16, i32)>,
) -> Vec<u8> {
    let request = produce(acks, partition, first, count, producer);
    request_frame(ApiKey::Produce, PRODUCE_VERSION, correlation, &request)
}

/// The values of the first `count` records of `piped`/`partition`, with their offsets.
fn read_back(bootstrap: &str, partition: i32, count: usize) -> (Vec<String>, Vec<i64>) {
    let got = consume(
        bootstrap,
        "piped",
        &[partition],
        Offset::Beginning,
        count,
        Duration::from_secs(30),
        &[],
    );
    let values = got
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    (values, got.iter().map(|r| r.offset).collect())
}

/// `count` values "p{partition}-{i}" in order.
fn expected_values(partition: usize, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("p{partition}-{i}")).collect()
}

/// A fetch of `piped`/0 from offset 0, not waiting.
fn fetch() -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("piped")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)])])
}

/// A produce answer's (error code, base offset) for its one partition, after checking its
/// correlation id.
fn produce_answer(stream: &mut TcpStream, correlation: i32) -> (i16, i64) {
    let (id, r): (i32, ProduceResponse) = read_response(stream, ApiKey::Produce, PRODUCE_VERSION);
    assert_eq!(id, correlation, "answers come in request order");
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_produces_fetch_and_api_versions_are_answered_in_request_order() {
    let server = Server::start(&[("log.flush.before.ack.enable", "true")]);
    let bootstrap = server.bootstrap();
    create_topic(&bootstrap, "piped", 2, &[]).await;
    let producer_id = Wire::connect(&bootstrap).init_producer_id();
    let idem = |seq: i32| Some((producer_id.0, producer_id.1, seq));

    // Everything written at once, so the broker has the whole pipeline buffered.
    let requests: Vec<Vec<u8>> = vec![
        // 1-4: idempotent batches of 3 records to partition 0, acks=1 and acks=all.
        produce_frame(1, 1, 0, 0, 3, idem(0)),
        produce_frame(2, -1, 0, 3, 3, idem(3)),
        produce_frame(3, 1, 0, 6, 3, idem(6)),
        produce_frame(4, -1, 0, 9, 3, idem(9)),
        // 5: a fetch of partition 0 after them.
        request_frame(ApiKey::Fetch, FETCH_VERSION, 5, &fetch()),
        // 6: the next batch; 7: a retry of request 2 (a duplicate: its original offset).
        produce_frame(6, 1, 0, 12, 3, idem(12)),
        produce_frame(7, -1, 0, 3, 3, idem(3)),
        // 8: ApiVersions between produces.
        request_frame(
            ApiKey::ApiVersions,
            API_VERSIONS_VERSION,
            8,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("pipelined-test"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        ),
        // 9: a sequence gap, refused; 10: acks=0 to partition 1 (no answer); 11: acks=1 to
        // partition 1 after it; 12: partition 0 goes on after the refused gap.
        produce_frame(9, 1, 0, 99, 1, idem(99)),
        produce_frame(10, 0, 1, 0, 2, None),
        produce_frame(11, 1, 1, 2, 2, None),
        produce_frame(12, -1, 0, 15, 3, idem(15)),
    ];
    let mut stream = TcpStream::connect(&bootstrap).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(&requests.concat()).unwrap();

    for (correlation, base) in [(1, 0), (2, 3), (3, 6), (4, 9)] {
        assert_eq!(produce_answer(&mut stream, correlation), (0, base));
    }
    let (id, r): (i32, FetchResponse) = read_response(&mut stream, ApiKey::Fetch, FETCH_VERSION);
    assert_eq!(
        id, 5,
        "the fetch answer comes after the produce answers before it"
    );
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert_eq!(
        p.high_watermark, 12,
        "the fetch sees every produce before it"
    );
    let mut records = p.records.clone().unwrap_or_default();
    let mut batches = Vec::new();
    while !records.is_empty() {
        let h = RecordBatchHeader::parse(&records).expect("a whole batch");
        batches.push((h.base_offset(), h.base_sequence()));
        let size = h.total_size();
        let _ = records.split_to(size);
    }
    assert_eq!(batches, vec![(0, 0), (3, 3), (6, 6), (9, 9)]);
    assert_eq!(produce_answer(&mut stream, 6), (0, 12));
    assert_eq!(
        produce_answer(&mut stream, 7),
        (0, 3),
        "a duplicate gets its original offset"
    );
    let (id, r): (i32, ApiVersionsResponse) =
        read_response(&mut stream, ApiKey::ApiVersions, API_VERSIONS_VERSION);
    assert_eq!((id, r.error_code), (8, 0));
    assert_eq!(
        produce_answer(&mut stream, 9).0,
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    assert_eq!(
        produce_answer(&mut stream, 11),
        (0, 2),
        "no answer to acks=0, whose records come first"
    );
    assert_eq!(produce_answer(&mut stream, 12), (0, 15));

    // The log holds each record once, in order.
    let (values, offsets) = read_back(&bootstrap, 0, 18);
    assert_eq!(values, expected_values(0, 18));
    assert_eq!(offsets, (0..18).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotent_producer_with_five_in_flight_and_no_linger_keeps_order() {
    const RECORDS: usize = 3000;
    let server = Server::start(&[("log.flush.before.ack.enable", "true")]);
    let bootstrap = server.bootstrap();
    create_topic(&bootstrap, "piped", 2, &[]).await;
    let p = producer(
        &bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("max.in.flight.requests.per.connection", "5"),
            ("linger.ms", "0"),
            ("batch.num.messages", "20"),
        ],
    );
    // Every send queued, in order, before any is awaited: librdkafka keeps five requests in
    // flight on its one connection.
    let values: Vec<String> = (0..RECORDS)
        .map(|i| format!("p{}-{}", i % 2, i / 2))
        .collect();
    let deliveries: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, value)| {
            let record = FutureRecord::<(), _>::to("piped")
                .partition((i % 2) as i32)
                .payload(value);
            p.send_result(record).map_err(|(e, _)| e).expect("queued")
        })
        .collect();
    let mut acknowledged: [Vec<i64>; 2] = Default::default();
    for (i, delivery) in deliveries.into_iter().enumerate() {
        let d = delivery
            .await
            .unwrap()
            .map_err(|(e, _)| e)
            .expect("acknowledged");
        assert_eq!(d.partition, (i % 2) as i32);
        acknowledged[i % 2].push(d.offset);
    }
    for (partition, offsets) in acknowledged.iter().enumerate() {
        assert_eq!(
            offsets,
            &(0..(RECORDS / 2) as i64).collect::<Vec<_>>(),
            "partition {partition}: acknowledged offsets are the send order, once each"
        );
        let (values, _) = read_back(&bootstrap, partition as i32, RECORDS / 2);
        assert_eq!(
            values,
            expected_values(partition, RECORDS / 2),
            "partition {partition}: every record once, in order"
        );
    }
}
