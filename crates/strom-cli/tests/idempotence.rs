//! Idempotent-producer rules on the wire, against the real binary: a retried batch is answered
//! with its original offset and not written twice; a gap in sequence numbers gets
//! OUT_OF_ORDER_SEQUENCE_NUMBER; an older producer epoch gets INVALID_PRODUCER_EPOCH; and the
//! producer state survives a restart.

mod common;

use std::time::Duration;

use common::wire::Wire;
use common::{create_topic, Server};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::record_batch::builder::BatchBuilder;

const PRODUCE_VERSION: i16 = 9;

/// Idempotent-producer calls over the shared bare wire client.
trait Idempotent {
    fn produce(&mut self, producer: (i64, i16), base_sequence: i32, count: usize) -> (i16, i64);
}

impl Idempotent for Wire {
    /// Produces one batch of `count` records; returns (error code, base offset).
    fn produce(&mut self, producer: (i64, i16), base_sequence: i32, count: usize) -> (i16, i64) {
        let mut batch = BatchBuilder::new(0);
        batch.producer = Some((producer.0, producer.1, base_sequence));
        for i in 0..count {
            let value = format!("seq-{}", base_sequence + i as i32);
            // Current timestamps: producer state expires producer.id.expiration.ms after the
            // last batch's timestamp (as in Kafka), so a 2023 timestamp would expire at load.
            batch.push(None, Some(value.as_bytes()), now_ms());
        }
        let partition = PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(batch.build().freeze()));
        let topic = TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("idem")))
            .with_partition_data(vec![partition]);
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![topic]);
        let r: ProduceResponse = self.call(ApiKey::Produce, PRODUCE_VERSION, &req);
        let p = &r.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_gaps_and_stale_epochs() {
    let mut server = Server::start(&[]);
    create_topic(&server.bootstrap(), "idem", 1, &[]).await;
    let mut wire = Wire::connect(&server.bootstrap());
    let producer = wire.init_producer_id();
    assert!(producer.0 >= 0);

    assert_eq!(wire.produce(producer, 0, 3), (0, 0));
    assert_eq!(wire.produce(producer, 3, 2), (0, 3));
    // A retry of the last batch (same sequence range) gets the original offset.
    assert_eq!(wire.produce(producer, 3, 2), (0, 3));
    // So does a retry of an earlier one among the last five.
    assert_eq!(wire.produce(producer, 0, 3), (0, 0));
    // A gap: sequence 7 when 5 is expected.
    assert_eq!(wire.produce(producer, 7, 1).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    // A newer epoch must start at sequence 0; after it, the old epoch is fenced.
    let bumped = (producer.0, producer.1 + 1);
    assert_eq!(wire.produce(bumped, 0, 1), (0, 5));
    assert_eq!(wire.produce(producer, 5, 1).0, INVALID_PRODUCER_EPOCH);

    // Nothing was written twice: six records in all.
    let (_, high) = rdkafka::consumer::Consumer::fetch_watermarks(
        &common::consumer(&server.bootstrap(), &[]),
        "idem",
        0,
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(high, 6);

    // The producer state survives a clean restart and a crash alike.
    assert!(server.stop());
    server.restart();
    let mut wire = Wire::connect(&server.bootstrap());
    assert_eq!(
        wire.produce(bumped, 0, 1),
        (0, 5),
        "duplicate detected after restart"
    );
    assert_eq!(wire.produce(bumped, 1, 1), (0, 6));
    server.kill9();
    server.restart();
    let mut wire = Wire::connect(&server.bootstrap());
    assert_eq!(
        wire.produce(bumped, 1, 1),
        (0, 6),
        "duplicate detected after kill -9"
    );
    assert_eq!(wire.produce(bumped, 3, 1).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    // A fresh producer id is never one handed out before the restart.
    assert!(wire.init_producer_id().0 > producer.0);
}
