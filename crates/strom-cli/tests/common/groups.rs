//! Helpers shared by the consumer-group tests (classic and KIP-848): topics, numbered
//! records spread over partitions, and a member's current assignment.

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::{client_config, create_topic};

/// Creates `topic` from a synchronous test.
pub fn make_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(create_topic(bootstrap, topic, partitions, &[]));
}

/// Produces the values `range` as strings, value `i` to partition `i % partitions`.
pub fn produce(bootstrap: &str, topic: &str, partitions: i32, range: std::ops::Range<i32>) {
    let producer: BaseProducer = client_config(bootstrap).create().expect("producer");
    for i in range {
        let value = i.to_string();
        let record: BaseRecord<'_, (), str> = BaseRecord::to(topic)
            .partition(i % partitions)
            .payload(&value);
        producer
            .send(record)
            .unwrap_or_else(|(e, _)| panic!("send {i}: {e}"));
    }
    producer.flush(Duration::from_secs(20)).expect("flush");
}

/// The partitions currently assigned to a member.
pub fn assigned<C: ConsumerContext>(c: &BaseConsumer<C>) -> BTreeSet<i32> {
    c.assignment()
        .map(|a| a.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}
