//! KIP-848 regex subscriptions (`SubscribedTopicRegex`) through the real `strom` binary:
//! librdkafka 2.12 members with `group.protocol=consumer` subscribed to `^orders-.*` share
//! the matched topics, a topic created after the subscription joins it, a topic the regex
//! does not match stays out; ConsumerGroupDescribe shows the members' regex; a bad regex is
//! INVALID_REGULAR_EXPRESSION.

mod common;

use std::time::{Duration, Instant};

use common::groups::{self, kip848_member, kip848_server as start_server, make_topic, produce};
use common::wire::Wire;
use common::{client_config, Server};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, MetadataRequest,
    MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};

/// INVALID_REGULAR_EXPRESSION (Kafka 4.0).
const INVALID_REGULAR_EXPRESSION: i16 = 128;
/// GROUP_ID_NOT_FOUND.
const GROUP_ID_NOT_FOUND: i16 = 69;

fn regex_member(bootstrap: &str, group: &str, pattern: &str, client_id: &str) -> BaseConsumer {
    let refresh = [("topic.metadata.refresh.interval.ms", "1000")];
    kip848_member(bootstrap, group, pattern, client_id, &refresh)
}

/// Polls every member, committing each record, until `done` holds; keeps (topic, value) of
/// every record seen, in order.
fn poll_until(
    consumers: &[BaseConsumer],
    seen: &mut Vec<(String, i32)>,
    timeout: Duration,
    what: &str,
    done: impl Fn(&[(String, i32)]) -> bool,
) {
    let record = |_, m: &BorrowedMessage<'_>, v| (m.topic().to_owned(), v);
    groups::poll_until(consumers, seen, timeout, what, record, |_, s| done(s));
}

fn describe(wire: &mut Wire, group: &str) -> ConsumerGroupDescribeResponse {
    let mut req = ConsumerGroupDescribeRequest::default();
    req.group_ids = vec![GroupId(StrBytes::from_string(group.to_owned()))];
    wire.call(ApiKey::ConsumerGroupDescribe, 0, &req)
}

/// Two members on `^orders-.*`: orders-a and orders-b are shared, `other` is never read,
/// orders-c created after the subscription is picked up (the group's regexes are resolved
/// again when the topic set changes, at most every 10 s), and every record of the three
/// orders topics is consumed exactly once across the members.
#[test]
fn regex_members_share_matched_topics_including_one_created_later() {
    let server = start_server();
    let b = server.bootstrap();
    make_topic(&b, "orders-a", 2);
    make_topic(&b, "orders-b", 2);
    make_topic(&b, "other", 1);
    produce(&b, "orders-a", 2, 0..20);
    produce(&b, "orders-b", 2, 20..40);
    produce(&b, "other", 1, 1000..1010);

    let consumers = vec![
        regex_member(&b, "by-regex", "^orders-.*", "m1"),
        regex_member(&b, "by-regex", "^orders-.*", "m2"),
    ];
    let mut seen = Vec::new();
    poll_until(
        &consumers,
        &mut seen,
        Duration::from_secs(30),
        "orders-a and orders-b",
        |s| s.len() >= 40,
    );
    // Both members hold a share of the four partitions.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let counts: Vec<usize> = consumers
            .iter()
            .map(|c| c.assignment().map(|a| a.count()).unwrap_or(0))
            .collect();
        if counts == [2, 2] {
            break;
        }
        assert!(Instant::now() < deadline, "assignments {counts:?}");
        for c in &consumers {
            assert!(
                c.poll(Duration::from_millis(50)).is_none(),
                "no new records"
            );
        }
    }

    // ConsumerGroupDescribe shows each member's regex (librdkafka sends it parenthesised)
    // and no topic names; the target covers the four orders partitions only.
    let mut wire = Wire::connect(&b);
    let d = describe(&mut wire, "by-regex");
    let group = &d.groups[0];
    assert_eq!(group.error_code, 0);
    assert_eq!(group.members.len(), 2);
    for m in &group.members {
        assert_eq!(
            m.subscribed_topic_regex.as_ref().map(|r| r.as_str()),
            Some("(^orders-.*)")
        );
        assert!(m.subscribed_topic_names.is_empty());
        for tp in &m.target_assignment.topic_partitions {
            assert!(
                tp.topic_name.0.starts_with("orders-"),
                "{:?}",
                tp.topic_name
            );
        }
    }

    // A client that knows a topic only by the id in its assignment asks Metadata by id; the
    // Java client sends such ids with an empty name (not null), which means "by id" too.
    let id = group.members[0].target_assignment.topic_partitions[0].topic_id;
    let mut by_id = MetadataRequest::default();
    let mut asked = MetadataRequestTopic::default();
    asked.topic_id = id;
    asked.name = Some(TopicName(StrBytes::from_static_str("")));
    by_id.topics = Some(vec![asked]);
    let m: MetadataResponse = wire.call(ApiKey::Metadata, 12, &by_id);
    assert_eq!(m.topics.len(), 1);
    assert_eq!(m.topics[0].error_code, 0);
    assert_eq!(m.topics[0].topic_id, id);
    let name = m.topics[0].name.as_ref().map(|n| n.0.to_string());
    assert!(name.is_some_and(|n| n.starts_with("orders-")));

    make_topic(&b, "orders-c", 2);
    produce(&b, "orders-c", 2, 40..60);
    poll_until(
        &consumers,
        &mut seen,
        Duration::from_secs(40),
        "orders-c, created after the subscription",
        |s| s.len() >= 60,
    );
    // A little longer: nothing more arrives (no duplicates, nothing from `other`).
    let quiet = Instant::now() + Duration::from_secs(1);
    while Instant::now() < quiet {
        for c in &consumers {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(20)) {
                panic!("unexpected record from {} at {}", m.topic(), m.offset());
            }
        }
    }
    assert!(
        seen.iter().all(|(t, _)| t.starts_with("orders-")),
        "{seen:?}"
    );
    let mut values: Vec<i32> = seen.iter().map(|(_, v)| *v).collect();
    values.sort_unstable();
    assert_eq!(
        values,
        (0..60).collect::<Vec<_>>(),
        "each record exactly once"
    );
    let c_topic: Vec<i32> = seen
        .iter()
        .filter(|(t, _)| t == "orders-c")
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(c_topic.len(), 20);

    // The group's target now spreads six partitions, three per member.
    let d = describe(&mut wire, "by-regex");
    let sizes: Vec<usize> = d.groups[0]
        .members
        .iter()
        .map(|m| {
            m.target_assignment
                .topic_partitions
                .iter()
                .map(|tp| tp.partitions.len())
                .sum()
        })
        .collect();
    assert_eq!(sizes, [3, 3]);
}

/// A regex RE2 refuses: a raw ConsumerGroupHeartbeat gets code 128 with Kafka's message;
/// librdkafka's member with such a regex never joins; the broker goes on serving the group.
#[test]
fn an_invalid_regex_is_refused_with_invalid_regular_expression() {
    // At info the log is never empty (the listener line), so "no panic in it" means something.
    let options = common::Options {
        capture_log: true,
        log_filter: Some("info".into()),
        ..common::Options::default()
    };
    let server = Server::start_with(&[("group.consumer.heartbeat.interval.ms", "300")], options);
    let b = server.bootstrap();
    make_topic(&b, "orders-a", 1);

    let mut wire = Wire::connect(&b);
    let heartbeat = |wire: &mut Wire, member: &str, regex: &str| {
        let mut join = ConsumerGroupHeartbeatRequest::default();
        join.group_id = GroupId(StrBytes::from_static_str("bad-regex"));
        join.member_id = StrBytes::from_string(member.to_owned());
        join.rebalance_timeout_ms = 30_000;
        join.subscribed_topic_regex = Some(StrBytes::from_string(regex.to_owned()));
        join.topic_partitions = Some(Vec::new());
        let r: ConsumerGroupHeartbeatResponse = wire.call(ApiKey::ConsumerGroupHeartbeat, 1, &join);
        r
    };
    // An unclosed group, a backreference (RE2 has none) and a lookbehind.
    for bad in ["^orders-(", "(a)\\1", "(?<=x)orders"] {
        let r = heartbeat(&mut wire, "raw-member-0000000001", bad);
        assert_eq!(r.error_code, INVALID_REGULAR_EXPRESSION, "{bad}");
        let message = r.error_message.map(|m| m.to_string()).unwrap_or_default();
        assert!(
            message.starts_with(&format!(
                "SubscribedTopicRegex `{bad}` is not a valid regular expression"
            )),
            "{message}"
        );
    }
    // The same member with a good regex joins and gets the matched topic.
    let r = heartbeat(&mut wire, "raw-member-0000000001", "orders-.*");
    assert_eq!(r.error_code, 0, "{:?}", r.error_message);
    let assignment = r.assignment.expect("an assignment");
    assert_eq!(assignment.topic_partitions.len(), 1);
    assert_eq!(assignment.topic_partitions[0].partitions, [0]);

    // librdkafka refuses "^orders-(" itself at subscribe; a backreference passes its own
    // (POSIX) check and reaches the broker. librdkafka 2.12.1 does not know code 128 (it came
    // with Kafka 4.0): it keeps retrying the heartbeat without surfacing it, so the member
    // never joins and never gets partitions.
    let c: BaseConsumer = client_config(&b)
        .set("group.id", "bad-regex-rdkafka")
        .set("group.protocol", "consumer")
        .create()
        .expect("consumer");
    assert!(c.subscribe(&["^orders-("]).is_err());
    c.subscribe(&["^(orders)-\\1"])
        .expect("librdkafka accepts a backreference");
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            panic!("a record from {}", m.topic());
        }
    }
    assert_eq!(c.assignment().map(|a| a.count()).ok(), Some(0));
    let d = describe(&mut wire, "bad-regex-rdkafka");
    assert_eq!(
        d.groups[0].error_code, GROUP_ID_NOT_FOUND,
        "the group was never made"
    );
    let log = server.log();
    assert!(!log.is_empty(), "the log is captured");
    assert!(!log.contains("panicked"), "{log}");
    // The broker is still up and serving.
    let d = describe(&mut wire, "bad-regex");
    assert_eq!(d.groups[0].error_code, 0);
    assert_eq!(d.groups[0].members.len(), 1);
}

/// Kafka 4.1's Java consumer sends `SubscribedTopicRegex` for `subscribe(SubscriptionPattern)`
/// (its console consumer's `--include` resolves a java.util.regex pattern itself and sends
/// topic names). It learns its topics by id from the assignment and asks Metadata by id.
const JAVA_PATTERN_CONSUMER: &str = r#"
import java.time.Duration;
import java.util.Properties;
import org.apache.kafka.clients.consumer.*;

public class PatternConsumer {
    public static void main(String[] args) {
        Properties p = new Properties();
        p.put("bootstrap.servers", args[0]);
        p.put("group.id", args[1]);
        p.put("group.protocol", "consumer");
        p.put("auto.offset.reset", "earliest");
        p.put("key.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
        p.put("value.deserializer", "org.apache.kafka.common.serialization.StringDeserializer");
        int want = Integer.parseInt(args[3]);
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(p)) {
            c.subscribe(new SubscriptionPattern(args[2]));
            int n = 0;
            long deadline = System.currentTimeMillis() + 60000;
            while (n < want && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(100))) {
                    System.out.println("RECORD " + r.topic() + " " + r.value());
                    n++;
                }
            }
            System.out.println("DONE " + n);
        }
    }
}
"#;

/// The Kafka 4.1 distribution (KAFKA_HOME or the peers' download), if it is on this machine.
fn kafka_home() -> Option<String> {
    let home = std::env::var("KAFKA_HOME").unwrap_or_else(|_| {
        format!(
            "{}/.cache/strom-peers/kafka/kafka_2.13-4.1.0",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    std::path::Path::new(&home)
        .join("libs")
        .is_dir()
        .then_some(home)
}

/// A Kafka 4.1 Java consumer subscribed with `SubscriptionPattern("orders-.*")` (RE2/J,
/// resolved by the broker) reads orders-a, then orders-late created after it joined, and
/// never `other`.
#[test]
fn kafka_java_consumer_with_a_subscription_pattern() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let Some(home) = kafka_home() else {
        eprintln!(
            "SKIPPED: Kafka 4.1 not found (set KAFKA_HOME, or run the peers script that \
             downloads ~/.cache/strom-peers/kafka/kafka_2.13-4.1.0)"
        );
        return;
    };
    let server = start_server();
    let b = server.bootstrap();
    make_topic(&b, "orders-a", 2);
    make_topic(&b, "other", 1);
    produce(&b, "orders-a", 2, 0..10);
    produce(&b, "other", 1, 100..105);

    let dir = tempfile::tempdir().expect("temp dir");
    let source = dir.path().join("PatternConsumer.java");
    std::fs::write(&source, JAVA_PATTERN_CONSUMER).expect("write the Java source");
    let mut java = Command::new("java")
        .arg("-cp")
        .arg(format!("{home}/libs/*"))
        .arg(&source)
        .args([b.as_str(), "java-pattern", "orders-.*", "15"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run java");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = java.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let mut next = |what: &str| -> String {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no {what} from the Java consumer; so far {lines:?}"));
        lines.push(line.clone());
        line
    };
    // Joined and reading: the topic made now comes after the subscription.
    assert!(next("first record").starts_with("RECORD orders-a "));
    make_topic(&b, "orders-late", 1);
    produce(&b, "orders-late", 1, 10..15);
    loop {
        if next("records").starts_with("DONE") {
            break;
        }
    }
    let _ = java.wait();
    assert_eq!(
        lines.last().map(String::as_str),
        Some("DONE 15"),
        "{lines:?}"
    );
    let mut values: Vec<i32> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("RECORD "))
        .map(|l| {
            let (topic, value) = l.split_once(' ').expect("topic and value");
            assert!(topic == "orders-a" || topic == "orders-late", "{l}");
            value.parse().expect("a number")
        })
        .collect();
    values.sort_unstable();
    assert_eq!(values, (0..15).collect::<Vec<_>>());
}
