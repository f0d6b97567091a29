//! Client quotas against the real binary: AlterClientQuotas / DescribeClientQuotas on the wire
//! (as `kafka-configs.sh --entity-type clients|users` sends them), produce and fetch byte
//! rates answered with `throttle_time_ms` and enforced by muting the connection, and a
//! librdkafka producer held to its quota.

mod common;

use std::time::{Duration, Instant};

use common::wire::Wire;
use common::{create_topic, producer, Server};
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey, ApiVersionsRequest,
    ApiVersionsResponse, DescribeClientQuotasRequest, DescribeClientQuotasResponse, FetchRequest,
    FetchResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::FutureRecord;
use strom_protocol::record_batch::builder::BatchBuilder;

const RATE: f64 = 100_000.0;

fn entity(entity_type: &str, name: Option<&str>) -> EntityData {
    EntityData::default()
        .with_entity_type(StrBytes::from_string(entity_type.into()))
        .with_entity_name(name.map(|n| StrBytes::from_string(n.into())))
}

fn set(wire: &mut Wire, entries: Vec<EntryData>) -> Vec<(i16, Option<String>)> {
    let r: AlterClientQuotasResponse = wire.call(
        ApiKey::AlterClientQuotas,
        1,
        &AlterClientQuotasRequest::default().with_entries(entries),
    );
    r.entries
        .iter()
        .map(|e| {
            (
                e.error_code,
                e.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect()
}

fn op(key: &str, value: f64) -> OpData {
    OpData::default()
        .with_key(StrBytes::from_string(key.into()))
        .with_value(value)
}

fn produce(wire: &mut Wire, topic: &str, bytes: usize) -> ProduceResponse {
    let mut b = BatchBuilder::new(0);
    for _ in 0..bytes / 10_000 {
        b.push(None, Some(vec![7u8; 10_000].as_slice()), 1_700_000_000_000);
    }
    let data = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(b.build().freeze()));
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![data])]);
    wire.call(ApiKey::Produce, 9, &request)
}

/// After a throttled response the connection reads nothing for the throttle time: an
/// ApiVersions sent at once is answered no sooner.
fn assert_muted_for(wire: &mut Wire, throttle_ms: i32) {
    let sent = Instant::now();
    let _: ApiVersionsResponse = wire.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    let waited = sent.elapsed();
    assert!(
        waited >= Duration::from_millis(throttle_ms as u64 * 9 / 10),
        "answered after {waited:?}, throttle {throttle_ms} ms"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn quotas_are_stored_described_and_enforced_on_produce_and_fetch() {
    let server = Server::start(&[]);
    let bootstrap = server.bootstrap();
    create_topic(&bootstrap, "metered", 1, &[]).await;
    let mut wire = Wire::connect(&bootstrap);

    // The default client id gets 100 kB/s each way; invalid entries are refused one by one.
    let results = set(
        &mut wire,
        vec![
            EntryData::default()
                .with_entity(vec![entity("client-id", None)])
                .with_ops(vec![
                    op("producer_byte_rate", RATE),
                    op("consumer_byte_rate", RATE),
                ]),
            EntryData::default()
                .with_entity(vec![entity("group", Some("g"))])
                .with_ops(vec![op("producer_byte_rate", 1.0)]),
            EntryData::default()
                .with_entity(vec![entity("user", Some("alice"))])
                .with_ops(vec![op("connection_creation_rate", 1.0)]),
            EntryData::default()
                .with_entity(vec![entity("user", Some("alice"))])
                .with_ops(vec![op("producer_byte_rate", -5.0)]),
        ],
    );
    assert_eq!(results[0], (0, None));
    for (i, (code, message)) in results.iter().enumerate().skip(1) {
        assert_eq!(*code, 42, "entry {i}: INVALID_REQUEST ({message:?})");
    }

    let described: DescribeClientQuotasResponse = wire.call(
        ApiKey::DescribeClientQuotas,
        1,
        &DescribeClientQuotasRequest::default().with_components(vec![ComponentData::default()
            .with_entity_type(StrBytes::from_static_str("client-id"))
            .with_match_type(1)]),
    );
    assert_eq!(described.error_code, 0);
    let entries = described.entries.expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].entity[0].entity_type.as_str(), "client-id");
    assert_eq!(entries[0].entity[0].entity_name, None);
    let mut values: Vec<(String, f64)> = entries[0]
        .values
        .iter()
        .map(|v| (v.key.to_string(), v.value))
        .collect();
    values.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        values,
        vec![
            ("consumer_byte_rate".to_string(), RATE),
            ("producer_byte_rate".to_string(), RATE)
        ]
    );

    // 300 kB at once, 100 kB/s allowed: about 2 s of throttle, then the connection is muted.
    let r = produce(&mut wire, "metered", 300_000);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    assert!(
        (1_500..=11_000).contains(&r.throttle_time_ms),
        "produce throttle {} ms",
        r.throttle_time_ms
    );
    assert_muted_for(&mut wire, r.throttle_time_ms);

    // Reading the 300 kB back is throttled the same way.
    let fetch = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(i32::MAX)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str("metered")))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(i32::MAX)])]);
    let f: FetchResponse = wire.call(ApiKey::Fetch, 12, &fetch);
    assert_eq!(f.responses[0].partitions[0].error_code, 0);
    assert!(
        (1_500..=11_000).contains(&f.throttle_time_ms),
        "fetch throttle {} ms",
        f.throttle_time_ms
    );
    assert_muted_for(&mut wire, f.throttle_time_ms);

    // A librdkafka producer (its own client id, so its own sensor) cannot beat 100 kB/s:
    // 500 kB take at least 3 s however fast the machine.
    let started = Instant::now();
    {
        let p = producer(&bootstrap, &[("client.id", "bulk"), ("linger.ms", "5")]);
        let payload = vec![1u8; 1_000];
        let sends: Vec<_> = (0..500)
            .map(|_| {
                p.send(
                    FutureRecord::<(), _>::to("metered").payload(&payload),
                    Duration::from_secs(30),
                )
            })
            .collect();
        for s in sends {
            s.await.expect("delivered");
        }
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(3),
        "500 kB at 100 kB/s took {took:?}"
    );
}

/// KIP-612: over an IP's `connection_creation_rate`, new connections are closed (after the
/// throttle time) instead of served.
#[test]
fn connections_over_the_ip_creation_rate_are_closed() {
    let server = Server::start(&[]);
    let bootstrap = server.bootstrap();
    let mut wire = Wire::connect(&bootstrap);
    let results = set(
        &mut wire,
        vec![EntryData::default()
            .with_entity(vec![entity("ip", None)])
            .with_ops(vec![op("connection_creation_rate", 2.0)])],
    );
    assert_eq!(results, vec![(0, None)]);
    // The quota's first second allows two connections; ten at once are mostly refused.
    let mut answered = 0;
    let mut closed = 0;
    for _ in 0..10 {
        let mut c = Wire::connect(&bootstrap);
        let frame =
            common::wire::request_frame(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default());
        if c.send_raw_and_expect_close(&frame) {
            closed += 1;
        } else {
            answered += 1;
        }
    }
    assert!(answered >= 1, "no connection was served");
    assert!(closed >= 5, "{closed} of 10 closed, {answered} answered");
}

fn create_topics(
    wire: &mut Wire,
    version: i16,
    name: &str,
    partitions: i32,
    validate_only: bool,
) -> kafka_protocol::messages::CreateTopicsResponse {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::CreateTopicsRequest;
    let topic = CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_string(name.into())))
        .with_num_partitions(partitions)
        .with_replication_factor(1);
    wire.call(
        ApiKey::CreateTopics,
        version,
        &CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(10_000)
            .with_validate_only(validate_only),
    )
}

/// KIP-599: `controller_mutation_rate` (partitions created or deleted per second). Request
/// versions that know THROTTLING_QUOTA_EXCEEDED are refused per topic while the client is
/// over its rate (nothing is created or deleted); older versions are served and throttled.
#[test]
fn controller_mutations_over_the_rate_are_refused_or_throttled() {
    use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
    use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
    use kafka_protocol::messages::{
        CreatePartitionsRequest, CreatePartitionsResponse, DeleteTopicsRequest,
        DeleteTopicsResponse,
    };
    const THROTTLED: i16 = 89;
    let server = Server::start(&[]);
    let bootstrap = server.bootstrap();
    let mut wire = Wire::connect(&bootstrap);
    let results = set(
        &mut wire,
        vec![EntryData::default()
            .with_entity(vec![entity("client-id", None)])
            .with_ops(vec![op("controller_mutation_rate", 2.0)])],
    );
    assert_eq!(results, vec![(0, None)]);

    // A first burst is allowed to overdraw the rate: 4 partitions at 2/s, throttled after.
    let first = create_topics(&mut wire, 7, "m1", 4, false);
    assert_eq!(first.topics[0].error_code, 0, "{:?}", first.topics[0]);
    assert!(first.throttle_time_ms > 0, "{first:?}");
    // While over the rate: v7 is refused and creates nothing, with the time to wait.
    let refused = create_topics(&mut wire, 7, "m2", 1, false);
    assert_eq!(refused.topics[0].error_code, THROTTLED, "{refused:?}");
    assert!(refused.topics[0]
        .error_message
        .as_ref()
        .is_some_and(|m| m.contains("controller_mutation_rate")));
    assert!(refused.throttle_time_ms > 0);
    // A validation creates nothing and is not charged.
    let validated = create_topics(&mut wire, 7, "m2", 1, true);
    assert_eq!(validated.topics[0].error_code, 0, "{validated:?}");
    // DeleteTopics v6 and CreatePartitions v3 are strict too.
    let deleted: DeleteTopicsResponse = wire.call(
        ApiKey::DeleteTopics,
        6,
        &DeleteTopicsRequest::default()
            .with_topics(vec![DeleteTopicState::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("m1"))))])
            .with_timeout_ms(10_000),
    );
    assert_eq!(deleted.responses[0].error_code, THROTTLED, "{deleted:?}");
    let grown: CreatePartitionsResponse = wire.call(
        ApiKey::CreatePartitions,
        3,
        &CreatePartitionsRequest::default()
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("m1")))
                .with_count(6)])
            .with_timeout_ms(10_000),
    );
    assert_eq!(grown.results[0].error_code, THROTTLED, "{grown:?}");
    // v5 predates the error: the topic is created and the client throttled instead.
    let permissive = create_topics(&mut wire, 5, "m3", 1, false);
    assert_eq!(permissive.topics[0].error_code, 0, "{permissive:?}");
    assert!(permissive.throttle_time_ms > 0, "{permissive:?}");
    assert_muted_for(&mut wire, permissive.throttle_time_ms);

    // Waiting out the throttle lets the refused topic through, and m1 was never deleted
    // nor grown.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let again = create_topics(&mut wire, 7, "m2", 1, false);
        match again.topics[0].error_code {
            0 => break,
            THROTTLED if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(
                u64::try_from(again.throttle_time_ms.max(50)).unwrap(),
            )),
            other => panic!("m2: error {other} after waiting: {again:?}"),
        }
    }
    let m1 = create_topics(&mut wire, 7, "m1", 4, true);
    assert_eq!(
        m1.topics[0].error_code, 36,
        "m1 still exists: TOPIC_ALREADY_EXISTS"
    );
}

/// `listener.name.<l>.max.connection.creation.rate` paces accepting on that listener only:
/// fifteen connections, each answered an ApiVersions, take seconds on a listener limited to
/// five a second and a moment on the other listener.
#[test]
fn a_listener_creation_rate_paces_only_that_listener() {
    let slow_port = common::free_port();
    let server = Server::start_with(
        &[
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,SLOW:PLAINTEXT",
            ),
            ("listener.name.slow.max.connection.creation.rate", "5"),
        ],
        common::Options {
            more_listeners: Some(format!("SLOW://127.0.0.1:{slow_port}")),
            ..Default::default()
        },
    );
    let connect_all = |bootstrap: &str| {
        let start = Instant::now();
        let mut open = Vec::new();
        for _ in 0..15 {
            let mut c = Wire::connect(bootstrap);
            let r: ApiVersionsResponse =
                c.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
            assert_eq!(r.error_code, 0);
            open.push(c);
        }
        start.elapsed()
    };
    let fast = connect_all(&server.bootstrap());
    let slow = connect_all(&format!("127.0.0.1:{slow_port}"));
    assert!(
        slow >= Duration::from_millis(1500) && slow > fast + Duration::from_secs(1),
        "limited listener {slow:?}, other listener {fast:?}"
    );
}
