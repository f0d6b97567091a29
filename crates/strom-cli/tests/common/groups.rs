//! Helpers shared by the consumer-group tests (classic and KIP-848): topics, numbered
//! records spread over partitions, KIP-848 members, polling with commits, and a member's
//! current assignment.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::{client_config, create_topic, Server};

/// A broker for KIP-848 groups: a 6 s session timeout, heartbeats every 300 ms.
pub fn kip848_server() -> Server {
    Server::start(&[
        ("group.consumer.session.timeout.ms", "6000"),
        ("group.consumer.heartbeat.interval.ms", "300"),
    ])
}

/// A member of the KIP-848 protocol (librdkafka refuses the classic session settings there)
/// subscribed to `subscription` (a topic, or a regex starting with `^`), manual commits,
/// reading from the earliest offset, with `extra` settings.
pub fn kip848_member(
    bootstrap: &str,
    group: &str,
    subscription: &str,
    client_id: &str,
    extra: &[(&str, &str)],
) -> BaseConsumer {
    let mut config = client_config(bootstrap);
    config
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("client.id", client_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in extra {
        config.set(*k, *v);
    }
    let c: BaseConsumer = config.create().expect("consumer");
    c.subscribe(&[subscription]).expect("subscribe");
    c
}

/// Polls every consumer, committing each record synchronously, until `done` holds. `record`
/// turns (consumer index, message, its value parsed as a number, else -1) into what `seen`
/// keeps.
pub fn poll_until<T>(
    consumers: &[BaseConsumer],
    seen: &mut Vec<T>,
    timeout: Duration,
    what: &str,
    record: impl Fn(usize, &BorrowedMessage<'_>, i32) -> T,
    done: impl Fn(&[BaseConsumer], &[T]) -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done(consumers, seen) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: assignments {:?}, {} records",
            consumers.iter().map(assigned).collect::<Vec<_>>(),
            seen.len()
        );
        for (i, c) in consumers.iter().enumerate() {
            match c.poll(Duration::from_millis(20)) {
                Some(Ok(m)) => {
                    let value = m
                        .payload_view::<str>()
                        .and_then(Result::ok)
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(-1);
                    seen.push(record(i, &m, value));
                    c.commit_message(&m, CommitMode::Sync).expect("commit");
                }
                Some(Err(e)) => panic!("consumer {i}: {e}"),
                None => {}
            }
        }
    }
}

/// Whether the members hold `sizes` partitions (in any order) that together are each of
/// `0..partitions` exactly once.
pub fn spread(consumers: &[BaseConsumer], sizes: &[usize], partitions: i32) -> bool {
    let owned: Vec<BTreeSet<i32>> = consumers.iter().map(assigned).collect();
    let mut counts: Vec<usize> = owned.iter().map(BTreeSet::len).collect();
    counts.sort_unstable();
    let total: usize = counts.iter().sum();
    let all: BTreeSet<i32> = owned.into_iter().flatten().collect();
    counts == sizes && total == all.len() && all == (0..partitions).collect()
}

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
