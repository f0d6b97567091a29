//! Consumer groups through the real `strom` binary with librdkafka (the rdkafka crate):
//! partition sharing and takeover, exactly-once delivery across a group, eviction of a
//! member that stops heartbeating, manual and automatic commits, durability across a
//! restart, static membership, `auto.offset.reset`; and the same scenario from kafka-python.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::groups::{self, assigned, make_topic, produce, spread};
use common::{client_config, Server};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::ClientContext;

/// Session timeout of every member: the broker's default minimum.
const SESSION_MS: u64 = 6_000;

fn start_server() -> Server {
    Server::start(&[("group.initial.rebalance.delay.ms", "0")])
}

fn member_config(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("group.id", group)
        .set("session.timeout.ms", SESSION_MS.to_string())
        .set("heartbeat.interval.ms", "500")
        .set("max.poll.interval.ms", "20000")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

fn member(bootstrap: &str, group: &str, topic: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let c: BaseConsumer = member_config(bootstrap, group, extra)
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    c
}

/// A consumed record: (consumer index, partition, offset, value).
type Seen = (usize, i32, i64, i32);

/// Polls every consumer (committing each record synchronously) until `done` holds.
fn poll_until(
    consumers: &[BaseConsumer],
    seen: &mut Vec<Seen>,
    timeout: Duration,
    what: &str,
    done: impl Fn(&[BaseConsumer], &[Seen]) -> bool,
) {
    let record = |i, m: &BorrowedMessage<'_>, value| (i, m.partition(), m.offset(), value);
    groups::poll_until(consumers, seen, timeout, what, record, done);
}

fn values(seen: &[Seen]) -> Vec<i32> {
    let mut v: Vec<i32> = seen.iter().map(|s| s.3).collect();
    v.sort_unstable();
    v
}

#[test]
fn three_members_share_six_partitions_and_two_take_over_when_one_leaves() {
    let server = start_server();
    let b = server.bootstrap();
    make_topic(&b, "shared", 6);
    let mut consumers: Vec<BaseConsumer> = (0..3)
        .map(|i| {
            member(
                &b,
                "sharing",
                "shared",
                &[("client.id", &format!("member-{i}"))],
            )
        })
        .collect();
    let mut seen = Vec::new();
    poll_until(
        &consumers,
        &mut seen,
        Duration::from_secs(40),
        "2+2+2",
        |cs, _| spread(cs, &[2, 2, 2], 6),
    );
    // Produced once the group is stable: a clean run has no rebalance while reading.
    produce(&b, "shared", 6, 0..600);
    poll_until(
        &consumers,
        &mut seen,
        Duration::from_secs(30),
        "600 records",
        |_, s| s.len() >= 600,
    );
    // A clean close sends LeaveGroup: the two others rebalance at once, not after a session.
    drop(consumers.pop());
    let left = Instant::now();
    poll_until(
        &consumers,
        &mut seen,
        Duration::from_secs(20),
        "3+3",
        |cs, _| spread(cs, &[3, 3], 6),
    );
    assert!(
        left.elapsed() < Duration::from_millis(SESSION_MS),
        "takeover took {:?}, longer than the session timeout",
        left.elapsed()
    );
    produce(&b, "shared", 6, 600..660);
    poll_until(
        &consumers,
        &mut seen,
        Duration::from_secs(20),
        "660 records",
        |_, s| s.len() >= 660,
    );
    assert_eq!(
        values(&seen),
        (0..660).collect::<Vec<_>>(),
        "every record exactly once across the group"
    );
}

#[test]
fn round_robin_and_cooperative_sticky_assignors_run_in_the_clients() {
    let server = start_server();
    let b = server.bootstrap();
    for strategy in ["roundrobin", "cooperative-sticky"] {
        let topic = format!("assign-{strategy}");
        make_topic(&b, &topic, 4);
        let extra = [("partition.assignment.strategy", strategy)];
        let consumers: Vec<BaseConsumer> =
            (0..2).map(|_| member(&b, &topic, &topic, &extra)).collect();
        let mut seen = Vec::new();
        poll_until(
            &consumers,
            &mut seen,
            Duration::from_secs(30),
            strategy,
            |cs, _| spread(cs, &[2, 2], 4),
        );
        produce(&b, &topic, 4, 0..200);
        poll_until(
            &consumers,
            &mut seen,
            Duration::from_secs(30),
            strategy,
            |_, s| s.len() >= 200,
        );
        assert_eq!(
            values(&seen),
            (0..200).collect::<Vec<_>>(),
            "{strategy}: each record once"
        );
    }
}

/// A group member speaking the wire protocol by hand: JoinGroup v0 and SyncGroup v0, then
/// silence (no heartbeat, no LeaveGroup) with the connection left open, like a hung process.
mod raw {
    use super::*;

    pub fn put_str(buf: &mut Vec<u8>, s: &str) {
        buf.extend_from_slice(&(s.len() as i16).to_be_bytes());
        buf.extend_from_slice(s.as_bytes());
    }

    fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
        buf.extend_from_slice(&(b.len() as i32).to_be_bytes());
        buf.extend_from_slice(b);
    }

    /// Sends one request (header v1) and returns the response body after the correlation id.
    pub fn call(stream: &mut TcpStream, api_key: i16, version: i16, body: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        frame.extend_from_slice(&api_key.to_be_bytes());
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&7i32.to_be_bytes()); // correlation id
        put_str(&mut frame, "raw-member");
        frame.extend_from_slice(body);
        stream
            .write_all(&(frame.len() as i32).to_be_bytes())
            .expect("write");
        stream.write_all(&frame).expect("write");
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).expect("response length");
        let mut response = vec![0u8; i32::from_be_bytes(len) as usize];
        stream.read_exact(&mut response).expect("response");
        response.split_off(4)
    }

    pub fn read_str(buf: &[u8], at: &mut usize) -> String {
        let len = i16::from_be_bytes([buf[*at], buf[*at + 1]]) as usize;
        let s = String::from_utf8(buf[*at + 2..*at + 2 + len].to_vec()).expect("utf-8");
        *at += 2 + len;
        s
    }

    /// Joins `group` as the only member and syncs; returns the open connection.
    pub fn join_and_sync(bootstrap: &str, group: &str, topic: &str) -> TcpStream {
        let mut stream = TcpStream::connect(bootstrap).expect("connect");
        let mut subscription = Vec::new();
        subscription.extend_from_slice(&0i16.to_be_bytes());
        subscription.extend_from_slice(&1i32.to_be_bytes());
        put_str(&mut subscription, topic);
        put_bytes(&mut subscription, b"");
        let mut join = Vec::new();
        put_str(&mut join, group);
        join.extend_from_slice(&(SESSION_MS as i32).to_be_bytes());
        put_str(&mut join, "");
        put_str(&mut join, "consumer");
        join.extend_from_slice(&1i32.to_be_bytes());
        put_str(&mut join, "range");
        put_bytes(&mut join, &subscription);
        let response = call(&mut stream, 11, 0, &join);
        assert_eq!(&response[..2], &[0, 0], "JoinGroup error");
        let generation = i32::from_be_bytes([response[2], response[3], response[4], response[5]]);
        let mut at = 6;
        let _protocol = read_str(&response, &mut at);
        let leader = read_str(&response, &mut at);
        let member_id = read_str(&response, &mut at);
        assert_eq!(leader, member_id, "the only member leads");
        let mut sync = Vec::new();
        put_str(&mut sync, group);
        sync.extend_from_slice(&generation.to_be_bytes());
        put_str(&mut sync, &member_id);
        sync.extend_from_slice(&1i32.to_be_bytes());
        put_str(&mut sync, &member_id);
        put_bytes(&mut sync, b"");
        let response = call(&mut stream, 14, 0, &sync);
        assert_eq!(&response[..2], &[0, 0], "SyncGroup error");
        stream
    }
}

#[test]
fn find_coordinator_names_this_broker_for_groups_and_transactions() {
    let server = start_server();
    let mut stream = TcpStream::connect(server.bootstrap()).expect("connect");
    // v0: a group key; the answer is this broker's advertised endpoint.
    let mut body = Vec::new();
    raw::put_str(&mut body, "any-group");
    let r = raw::call(&mut stream, 10, 0, &body);
    assert_eq!(&r[..2], &[0, 0], "error code");
    let mut at = 6;
    assert_eq!(raw::read_str(&r, &mut at), "127.0.0.1");
    let port = i32::from_be_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]]);
    assert_eq!(port, i32::from(server.port));
    // v1 with key type 1 (transactions): this broker too (issue 6).
    body.push(1);
    let r = raw::call(&mut stream, 10, 1, &body);
    let error = i16::from_be_bytes([r[4], r[5]]);
    assert_eq!(error, 0, "transaction coordinator error code");
}

#[test]
fn a_member_that_stops_heartbeating_is_evicted_after_the_session_timeout() {
    let server = start_server();
    let b = server.bootstrap();
    make_topic(&b, "evict", 6);
    let _silent = raw::join_and_sync(&b, "evicting", "evict");
    let synced = Instant::now();
    let consumers = vec![member(&b, "evicting", "evict", &[])];
    let mut seen = Vec::new();
    poll_until(
        &consumers,
        &mut seen,
        Duration::from_secs(30),
        "all six partitions",
        |cs, _| spread(cs, &[6], 6),
    );
    let took = synced.elapsed();
    // The rebalance waited for the silent member until its session ran out, no longer.
    assert!(
        took >= Duration::from_millis(SESSION_MS - 500),
        "evicted after only {took:?}"
    );
    assert!(
        took < Duration::from_millis(SESSION_MS + 6_000),
        "evicted after {took:?}"
    );
    let groups = consumers[0]
        .fetch_group_list(Some("evicting"), Duration::from_secs(10))
        .expect("ListGroups/DescribeGroups");
    let group = &groups.groups()[0];
    assert_eq!((group.state(), group.members().len()), ("Stable", 1));
    assert_ne!(group.members()[0].client_id(), "raw-member");
}

#[test]
fn manual_sync_and_async_commits_are_resumed_by_a_new_member() {
    let server = start_server();
    let b = server.bootstrap();
    make_topic(&b, "manual", 1);
    produce(&b, "manual", 1, 0..30);
    let first = member(&b, "manual-group", "manual", &[]);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 10 {
        assert!(Instant::now() < deadline, "read {} of 10", got.len());
        if let Some(m) = first.poll(Duration::from_millis(100)) {
            let m = m.expect("message");
            got.push(m.offset());
            if got.len() == 5 {
                first
                    .commit_message(&m, CommitMode::Sync)
                    .expect("sync commit");
            }
            if got.len() == 10 {
                first
                    .commit_message(&m, CommitMode::Async)
                    .expect("async commit");
            }
        }
    }
    assert_eq!(got, (0..10).collect::<Vec<i64>>());
    wait_for_committed(&first, "manual", 0, 10);
    drop(first);
    let second = member(&b, "manual-group", "manual", &[]);
    let offsets = read_offsets(&second, 20);
    assert_eq!(
        offsets,
        (10..30).collect::<Vec<i64>>(),
        "resumes after the last commit"
    );
}

#[test]
fn auto_commit_is_resumed_by_a_new_member() {
    let server = start_server();
    let b = server.bootstrap();
    make_topic(&b, "auto", 1);
    produce(&b, "auto", 1, 0..30);
    // The usual at-least-once setup: the client's timer commits what the application stored
    // (the rdkafka crate drains prefetched records on close, so they must not be auto-stored).
    let extra = [
        ("enable.auto.commit", "true"),
        ("auto.commit.interval.ms", "100"),
        ("enable.auto.offset.store", "false"),
    ];
    let first = member(&b, "auto-group", "auto", &extra);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut read = 0;
    while read < 12 {
        assert!(Instant::now() < deadline, "read {read} of 12");
        if let Some(m) = first.poll(Duration::from_millis(100)) {
            let m = m.expect("message");
            assert_eq!(m.offset(), read);
            first.store_offset_from_message(&m).expect("store offset");
            read += 1;
        }
    }
    // The timer commits without another poll.
    wait_for_committed(&first, "auto", 0, 12);
    drop(first);
    let second = member(&b, "auto-group", "auto", &extra);
    assert_eq!(read_offsets(&second, 18), (12..30).collect::<Vec<i64>>());
}

fn read_offsets<C: ConsumerContext>(c: &BaseConsumer<C>, count: usize) -> Vec<i64> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < count {
        assert!(
            Instant::now() < deadline,
            "read {} of {count}: {out:?}",
            out.len()
        );
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            out.push(m.expect("message").offset());
        }
    }
    out
}

fn wait_for_committed<C: ConsumerContext>(
    c: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
    offset: i64,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let committed = c.committed(Duration::from_secs(5)).expect("OffsetFetch");
        let got = committed
            .find_partition(topic, partition)
            .map(|e| e.offset().to_raw())
            .unwrap_or_default();
        if got == Some(offset) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "committed {got:?}, expected {offset}"
        );
        // Not polling: a poll would hand out (and auto-store) more records.
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn committed_offsets_and_groups_survive_a_crash() {
    let mut server = start_server();
    let b = server.bootstrap();
    make_topic(&b, "durable", 2);
    produce(&b, "durable", 2, 0..20);
    let consumers = vec![member(&b, "durable-group", "durable", &[])];
    let mut seen = Vec::new();
    poll_until(
        &consumers,
        &mut seen,
        Duration::from_secs(30),
        "20 records",
        |_, s| s.len() >= 20,
    );
    drop(consumers);
    // A simple consumer (assign + commit, generation -1) creates a group by committing.
    let simple: BaseConsumer = member_config(&b, "simple-group", &[])
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("durable", 1, rdkafka::Offset::Offset(4))
        .expect("tpl");
    simple
        .commit(&tpl, CommitMode::Sync)
        .expect("simple commit");
    drop(simple);

    server.kill9();
    server.restart();
    let after: BaseConsumer = member_config(&b, "durable-group", &[])
        .create()
        .expect("consumer");
    let mut wanted = rdkafka::TopicPartitionList::new();
    wanted.add_partition("durable", 0);
    wanted.add_partition("durable", 1);
    let committed = after
        .committed_offsets(wanted, Duration::from_secs(10))
        .expect("OffsetFetch");
    let offsets: Vec<Option<i64>> = committed
        .elements()
        .iter()
        .map(|e| e.offset().to_raw())
        .collect();
    assert_eq!(offsets, vec![Some(10), Some(10)]);
    let listing = after
        .fetch_group_list(None, Duration::from_secs(10))
        .expect("ListGroups");
    let mut names: Vec<(&str, &str)> = listing
        .groups()
        .iter()
        .map(|g| (g.name(), g.state()))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        vec![("durable-group", "Empty"), ("simple-group", "Empty")]
    );
    let simple: BaseConsumer = member_config(&b, "simple-group", &[])
        .create()
        .expect("consumer");
    let mut one = rdkafka::TopicPartitionList::new();
    one.add_partition("durable", 1);
    let committed = simple
        .committed_offsets(one, Duration::from_secs(10))
        .expect("OffsetFetch");
    assert_eq!(committed.elements()[0].offset().to_raw(), Some(4));
}

/// Counts the assignments and revocations a consumer goes through.
#[derive(Clone, Default)]
struct RebalanceCounter(Arc<AtomicUsize>);

impl ClientContext for RebalanceCounter {}

impl ConsumerContext for RebalanceCounter {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Assign(_) | Rebalance::Revoke(_)) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn static_member(
    bootstrap: &str,
    instance: &str,
    counter: &RebalanceCounter,
) -> BaseConsumer<RebalanceCounter> {
    let c: BaseConsumer<RebalanceCounter> = member_config(
        bootstrap,
        "static-group",
        &[("group.instance.id", instance)],
    )
    .create_with_context(counter.clone())
    .expect("consumer");
    c.subscribe(&["static"]).expect("subscribe");
    c
}

#[test]
fn a_static_member_rejoins_without_a_rebalance() {
    let server = start_server();
    let b = server.bootstrap();
    make_topic(&b, "static", 6);
    let (c1, c2) = (RebalanceCounter::default(), RebalanceCounter::default());
    let first = static_member(&b, "instance-1", &c1);
    let other = static_member(&b, "instance-2", &c2);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(assigned(&first).len() == 3 && assigned(&other).len() == 3) {
        assert!(
            Instant::now() < deadline,
            "{:?} {:?}",
            assigned(&first),
            assigned(&other)
        );
        first.poll(Duration::from_millis(20));
        other.poll(Duration::from_millis(20));
    }
    let owned = assigned(&first);
    let rebalances = c2.0.load(Ordering::SeqCst);
    // A static member does not send LeaveGroup when it closes; its restart takes its place.
    drop(first);
    let restarted_at = Instant::now();
    let again = static_member(&b, "instance-1", &RebalanceCounter::default());
    while assigned(&again) != owned {
        assert!(
            Instant::now() < deadline + Duration::from_secs(10),
            "{:?}",
            assigned(&again)
        );
        again.poll(Duration::from_millis(20));
        other.poll(Duration::from_millis(20));
    }
    assert!(
        restarted_at.elapsed() < Duration::from_millis(SESSION_MS),
        "rejoined in {:?}",
        restarted_at.elapsed()
    );
    for _ in 0..25 {
        other.poll(Duration::from_millis(20));
    }
    assert_eq!(
        c2.0.load(Ordering::SeqCst),
        rebalances,
        "the other member saw no rebalance"
    );
    assert_eq!(assigned(&other).len(), 3);
}

#[test]
fn auto_offset_reset_earliest_latest_and_none() {
    let server = start_server();
    let b = server.bootstrap();
    make_topic(&b, "reset", 1);
    produce(&b, "reset", 1, 0..10);
    let earliest = member(&b, "reset-earliest", "reset", &[]);
    assert_eq!(read_offsets(&earliest, 1), vec![0]);

    let latest = member(
        &b,
        "reset-latest",
        "reset",
        &[("auto.offset.reset", "latest")],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while assigned(&latest).is_empty() {
        assert!(Instant::now() < deadline, "latest consumer never assigned");
        assert!(
            latest.poll(Duration::from_millis(50)).is_none(),
            "nothing before the end"
        );
    }
    // Let the consumer resolve "latest" before producing more.
    for _ in 0..20 {
        assert!(
            latest.poll(Duration::from_millis(50)).is_none(),
            "nothing before the end"
        );
    }
    produce(&b, "reset", 1, 10..15);
    assert_eq!(read_offsets(&latest, 5), (10..15).collect::<Vec<i64>>());

    // librdkafka's name for Kafka's "none".
    let none = member(&b, "reset-none", "reset", &[("auto.offset.reset", "error")]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "no error for auto.offset.reset=error"
        );
        match none.poll(Duration::from_millis(100)) {
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset))) => break,
            Some(Ok(m)) => panic!("consumed offset {} without a committed offset", m.offset()),
            Some(Err(e)) => panic!("unexpected error {e}"),
            None => {}
        }
    }
}

#[test]
fn kafka_python_group_scenario() {
    let server = start_server();
    common::run_python_client(&server, "kafka_python_groups.py", "kafka-python groups OK");
}
