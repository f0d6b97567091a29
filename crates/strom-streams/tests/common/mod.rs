//! Test harness: the real `strom` broker from `strom-testkit`, plus what the Streams tests
//! add: reading a topic until a condition holds, value decoders and a Streams config.

#![allow(dead_code, unused_imports)]

use std::collections::BTreeMap;
use std::time::Duration;

use strom_client::ConsumerRecord;
pub use strom_testkit::{
    create_topic, free_port, kv, produce, s, strom_bin, Broker as Server, In, Read,
};

/// Reads `topic` from the beginning until `done(records)` holds or `timeout` passes.
pub async fn read_until(
    b: &str,
    topic: &str,
    committed: bool,
    timeout: Duration,
    done: impl FnMut(&[ConsumerRecord]) -> bool,
) -> Vec<ConsumerRecord> {
    strom_testkit::read(b, topic, Read::new(timeout).committed(committed), done).await
}

pub fn i64v(b: &Option<bytes::Bytes>) -> i64 {
    i64::from_be_bytes(b.as_deref().unwrap_or(&[0; 8]).try_into().unwrap_or([0; 8]))
}

/// The last value per key (as strings) of records.
pub fn latest<V>(
    records: &[ConsumerRecord],
    value: impl Fn(&Option<bytes::Bytes>) -> V,
) -> BTreeMap<String, V> {
    records
        .iter()
        .map(|r| (s(&r.key), value(&r.value)))
        .collect()
}

pub fn config(b: &str, app: &str, state: &std::path::Path) -> strom_streams::StreamsConfig {
    let mut c = strom_streams::StreamsConfig::new(app, b);
    c.set("state.dir", &state.display().to_string()).unwrap();
    c.set("commit.interval.ms", "200").unwrap();
    c.set("consumer.session.timeout.ms", "6000").unwrap();
    c.set("consumer.heartbeat.interval.ms", "300").unwrap();
    c.set("consumer.fetch.max.wait.ms", "100").unwrap();
    c
}
