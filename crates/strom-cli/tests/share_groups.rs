//! Share groups (KIP-932) against a real `strom server`: several strom-client share
//! consumers split a topic's records, each record held by one member at a time; records of a
//! member that dies are redelivered once its acquisition locks expire; rejected records are
//! never redelivered and a record released too often is archived; the share state survives
//! a restart; and Kafka 4.1's console share consumer and kafka-share-groups.sh work.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{create_topic, Server};
use strom_client::{
    AcknowledgeType, ClientConfig, Producer, ProducerConfig, ProducerRecord, ShareConsumer,
    ShareConsumerConfig, ShareRecord,
};

async fn produce(b: &str, topic: &str, from: usize, to: usize) {
    let p = Producer::new(ProducerConfig::new(b)).await.unwrap();
    let mut acks = Vec::new();
    for i in from..to {
        let rec = ProducerRecord::new(topic)
            .key(format!("k{i}"))
            .value(format!("v{i}"));
        acks.push(p.send(rec).await.unwrap());
    }
    for a in acks {
        a.await.unwrap();
    }
    p.close().await;
}

async fn member(b: &str, group: &str, topic: &str) -> ShareConsumer {
    member_with(b, group, topic, 500).await
}

async fn member_with(b: &str, group: &str, topic: &str, max_records: i32) -> ShareConsumer {
    let mut config = ShareConsumerConfig::new(ClientConfig::new(b), group);
    config.fetch_max_wait = Duration::from_millis(200);
    config.max_poll_records = max_records;
    let mut c = ShareConsumer::new(config).await.unwrap();
    c.subscribe(&[topic]);
    // Joins the group: its partitions' share state starts here (latest). Only for topics
    // with nothing to deliver yet: what this poll got would be accepted by the next one.
    let joined = c.poll(Duration::from_millis(300)).await.unwrap();
    assert!(joined.is_empty(), "{joined:?}");
    c
}

fn value(r: &ShareRecord) -> String {
    String::from_utf8_lossy(r.record.value.as_deref().unwrap_or_default()).into_owned()
}

/// Polls until `want` records came or `within` passed.
async fn poll_n(c: &mut ShareConsumer, want: usize, within: Duration) -> Vec<ShareRecord> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        got.extend(c.poll(Duration::from_millis(300)).await.unwrap());
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn share_consumers_split_records_one_member_at_a_time() {
    let server = Server::start(&[("group.share.heartbeat.interval.ms", "300")]);
    let b = server.bootstrap();
    create_topic(&b, "jobs", 2, &[]).await;
    let mut members = Vec::new();
    for _ in 0..3 {
        // Small fetches, so that the members share the work.
        members.push(member_with(&b, "workers", "jobs", 10).await);
    }
    // Three members, two partitions: every partition read, shared by some members.
    let assigned: BTreeSet<_> = members.iter().flat_map(|m| m.assignment()).collect();
    assert_eq!(assigned.len(), 2, "{assigned:?}");
    produce(&b, "jobs", 0, 90).await;
    let mut tasks = Vec::new();
    for (i, mut m) in members.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut idle = 0;
            while Instant::now() < deadline && idle < 6 {
                let records = m.poll(Duration::from_millis(300)).await.unwrap();
                idle = if records.is_empty() { idle + 1 } else { 0 };
                for r in records {
                    // Accepted explicitly; each stays with this member until then.
                    m.acknowledge(&r, AcknowledgeType::Accept).unwrap();
                    seen.push((
                        r.record.partition,
                        r.record.offset,
                        r.delivery_count,
                        value(&r),
                    ));
                }
                m.commit().await.unwrap();
            }
            m.close().await.unwrap();
            (i, seen)
        }));
    }
    let mut all: BTreeMap<(i32, i64), usize> = BTreeMap::new();
    let mut values = BTreeSet::new();
    let mut busy = 0;
    for t in tasks {
        let (_, seen) = t.await.unwrap();
        if !seen.is_empty() {
            busy += 1;
        }
        for (p, o, count, v) in seen {
            assert_eq!(count, 1, "record {p}/{o} delivered more than once");
            *all.entry((p, o)).or_default() += 1;
            values.insert(v);
        }
    }
    assert!(
        all.values().all(|n| *n == 1),
        "a record went to two members: {all:?}"
    );
    assert_eq!(values.len(), 90, "every record delivered");
    assert!(
        busy >= 2,
        "the records were shared out, not read by one member"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_of_a_dead_member_are_redelivered_after_the_lock_expires() {
    let server = Server::start(&[("group.share.record.lock.duration.ms", "1500")]);
    let b = server.bootstrap();
    create_topic(&b, "tasks", 1, &[]).await;
    let mut dying = member(&b, "g", "tasks").await;
    let mut survivor = member(&b, "g", "tasks").await;
    produce(&b, "tasks", 0, 10).await;
    let held = poll_n(&mut dying, 10, Duration::from_secs(10)).await;
    assert_eq!(held.len(), 10);
    let taken = Instant::now();
    // Killed: dropped without acknowledging or leaving.
    drop(dying);
    // While the locks hold, the other member gets nothing.
    let early = survivor.poll(Duration::from_millis(700)).await.unwrap();
    assert!(early.is_empty(), "{early:?}");
    let again = poll_n(&mut survivor, 10, Duration::from_secs(10)).await;
    assert!(taken.elapsed() >= Duration::from_millis(1400));
    let offsets: Vec<i64> = again.iter().map(|r| r.record.offset).collect();
    assert_eq!(offsets, (0..10).collect::<Vec<_>>());
    assert!(again.iter().all(|r| r.delivery_count == 2), "{again:?}");
    survivor.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rejected_records_stay_gone_and_poison_records_are_archived() {
    let server = Server::start(&[("group.share.delivery.count.limit", "3")]);
    let b = server.bootstrap();
    create_topic(&b, "orders", 1, &[]).await;
    let mut c = member(&b, "g", "orders").await;
    produce(&b, "orders", 0, 5).await;
    let first = poll_n(&mut c, 5, Duration::from_secs(10)).await;
    assert_eq!(first.len(), 5);
    for r in &first {
        let kind = match r.record.offset {
            0 => AcknowledgeType::Reject,
            // The poison record: it fails every time.
            1 => AcknowledgeType::Release,
            _ => AcknowledgeType::Accept,
        };
        c.acknowledge(r, kind).unwrap();
    }
    c.commit().await.unwrap();
    // Offset 1 comes back (delivery 2, then 3); offset 0 never does.
    for delivery in 2..=3 {
        let got = poll_n(&mut c, 1, Duration::from_secs(5)).await;
        let offsets: Vec<(i64, i16)> = got
            .iter()
            .map(|r| (r.record.offset, r.delivery_count))
            .collect();
        assert_eq!(offsets, vec![(1, delivery)]);
        c.acknowledge(&got[0], AcknowledgeType::Release).unwrap();
        c.commit().await.unwrap();
    }
    // Delivered three times: archived. Nothing is left to deliver...
    let none = c.poll(Duration::from_millis(1500)).await.unwrap();
    assert!(none.is_empty(), "{none:?}");
    // ...and the next record is the new one.
    produce(&b, "orders", 5, 6).await;
    let next = poll_n(&mut c, 1, Duration::from_secs(5)).await;
    let offsets: Vec<i64> = next.iter().map(|r| r.record.offset).collect();
    assert_eq!(offsets, vec![5]);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn share_state_survives_a_broker_restart_and_a_crash() {
    let mut server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "events", 1, &[]).await;
    let mut c = member(&b, "g", "events").await;
    produce(&b, "events", 0, 10).await;
    let got = poll_n(&mut c, 10, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 10);
    for r in &got {
        let kind = if r.record.offset < 4 {
            AcknowledgeType::Accept
        } else if r.record.offset == 4 {
            AcknowledgeType::Reject
        } else {
            AcknowledgeType::Release
        };
        c.acknowledge(r, kind).unwrap();
    }
    c.commit().await.unwrap();
    drop(c);
    assert!(server.stop(), "clean stop");
    server.restart();
    let mut config = ShareConsumerConfig::new(ClientConfig::new(&b), "g");
    config.fetch_max_wait = Duration::from_millis(200);
    let mut c = ShareConsumer::new(config).await.unwrap();
    c.subscribe(&["events"]);
    let again = poll_n(&mut c, 5, Duration::from_secs(10)).await;
    let offsets: Vec<(i64, i16)> = again
        .iter()
        .map(|r| (r.record.offset, r.delivery_count))
        .collect();
    // Accepted and rejected records stay done; released ones come back, counted.
    assert_eq!(offsets, (5..10).map(|o| (o, 2)).collect::<Vec<_>>());
    for r in &again {
        let kind = if r.record.offset < 8 {
            AcknowledgeType::Accept
        } else {
            AcknowledgeType::Release
        };
        c.acknowledge(r, kind).unwrap();
    }
    c.commit().await.unwrap();
    // A crash (SIGKILL) keeps what was acknowledged too.
    drop(c);
    server.kill9();
    server.restart();
    let mut config = ShareConsumerConfig::new(ClientConfig::new(&b), "g");
    config.fetch_max_wait = Duration::from_millis(200);
    let mut c = ShareConsumer::new(config).await.unwrap();
    c.subscribe(&["events"]);
    let last = poll_n(&mut c, 2, Duration::from_secs(10)).await;
    let offsets: Vec<(i64, i16)> = last
        .iter()
        .map(|r| (r.record.offset, r.delivery_count))
        .collect();
    assert_eq!(offsets, vec![(8, 3), (9, 3)]);
    c.close().await.unwrap();
}

/// Kafka 4.1's tools, from KAFKA_HOME or the peers' download; `None` (the test says it is
/// skipped) when they are not on this machine.
fn kafka_tool(name: &str) -> Option<String> {
    let home = std::env::var("KAFKA_HOME").unwrap_or_else(|_| {
        format!(
            "{}/.cache/strom-peers/kafka/kafka_2.13-4.1.0",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let tool = format!("{home}/bin/{name}");
    std::path::Path::new(&tool).exists().then_some(tool)
}

fn run_tool(tool: &str, args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The START-OFFSET column of `kafka-share-groups.sh --describe` for partition 0.
fn start_offset(tool: &str, b: &str, group: &str) -> String {
    let (ok, out, err) = run_tool(
        tool,
        &["--bootstrap-server", b, "--describe", "--group", group],
    );
    assert!(ok, "{out}{err}");
    out.lines()
        .find(|l| l.starts_with(group))
        .and_then(|l| l.split_whitespace().nth(3))
        .unwrap_or_else(|| panic!("no partition line: {out}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_console_share_consumer_and_share_groups_tool() {
    let (Some(console), Some(groups), Some(configs)) = (
        kafka_tool("kafka-console-share-consumer.sh"),
        kafka_tool("kafka-share-groups.sh"),
        kafka_tool("kafka-configs.sh"),
    ) else {
        eprintln!(
            "SKIPPED: Kafka 4.1's tools not found (set KAFKA_HOME, or run the peers script \
             that downloads ~/.cache/strom-peers/kafka/kafka_2.13-4.1.0)"
        );
        return;
    };
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "java", 1, &[]).await;
    produce(&b, "java", 0, 10).await;
    // Records produced before the group existed: read from the earliest, a group config.
    let (ok, out, err) = run_tool(
        &configs,
        &[
            "--bootstrap-server",
            &b,
            "--entity-type",
            "groups",
            "--entity-name",
            "jg",
            "--alter",
            "--add-config",
            "share.auto.offset.reset=earliest",
        ],
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run_tool(
        &configs,
        &[
            "--bootstrap-server",
            &b,
            "--entity-type",
            "groups",
            "--entity-name",
            "jg",
            "--describe",
        ],
    );
    assert!(
        ok && out.contains("share.auto.offset.reset=earliest"),
        "{out}{err}"
    );
    let consume = |extra: &[&str], n: &str| {
        let mut args = vec![
            "--bootstrap-server",
            &b,
            "--topic",
            "java",
            "--group",
            "jg",
            "--max-messages",
            n,
            "--timeout-ms",
            "30000",
        ];
        args.extend_from_slice(extra);
        run_tool(&console, &args)
    };
    let (ok, out, err) = consume(&[], "10");
    assert!(ok, "{out}{err}");
    let values: BTreeSet<&str> = out.lines().collect();
    let want: BTreeSet<String> = (0..10).map(|i| format!("v{i}")).collect();
    assert_eq!(values, want.iter().map(String::as_str).collect(), "{err}");
    // The console consumer accepted them on its way out: the start offset moved past all.
    assert_eq!(start_offset(&groups, &b, "jg"), "10");
    let (ok, out, err) = run_tool(&groups, &["--bootstrap-server", &b, "--list"]);
    assert!(ok && out.lines().any(|l| l.trim() == "jg"), "{out}{err}");
    // The console consumer's --reject: rejected records are gone for the whole group.
    produce(&b, "java", 10, 12).await;
    let (ok, out, err) = consume(&["--reject"], "2");
    assert!(ok && out.lines().count() == 2, "{out}{err}");
    assert_eq!(start_offset(&groups, &b, "jg"), "12");
    let mut rust = member(&b, "jg", "java").await;
    let none = rust.poll(Duration::from_millis(1000)).await.unwrap();
    assert!(none.is_empty(), "{none:?}");
    // A Rust member of the same group reads what comes next.
    produce(&b, "java", 12, 13).await;
    let next = poll_n(&mut rust, 1, Duration::from_secs(10)).await;
    assert_eq!(next.iter().map(value).collect::<Vec<_>>(), vec!["v12"]);
    let (ok, out, err) = run_tool(
        &groups,
        &[
            "--bootstrap-server",
            &b,
            "--describe",
            "--group",
            "jg",
            "--members",
        ],
    );
    assert!(
        ok && out.contains(rust.member_id()) && out.contains("java:0"),
        "{out}{err}"
    );
    rust.close().await.unwrap();
    let (ok, out, err) = run_tool(
        &groups,
        &[
            "--bootstrap-server",
            &b,
            "--describe",
            "--group",
            "jg",
            "--state",
        ],
    );
    assert!(ok && out.contains("Empty"), "{out}{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn java_and_rust_share_consumers_split_a_topic() {
    let Some(console) = kafka_tool("kafka-console-share-consumer.sh") else {
        eprintln!(
            "SKIPPED: Kafka 4.1's kafka-console-share-consumer.sh not found (set KAFKA_HOME, \
             or run the peers script that downloads ~/.cache/strom-peers/kafka/kafka_2.13-4.1.0)"
        );
        return;
    };
    let server = Server::start(&[("group.share.heartbeat.interval.ms", "500")]);
    let b = server.bootstrap();
    create_topic(&b, "mixed", 1, &[]).await;
    // The Java member: small fetches, exits 10 s after its last record.
    let java = std::process::Command::new(&console)
        .args([
            "--bootstrap-server",
            &b,
            "--topic",
            "mixed",
            "--group",
            "mixed",
        ])
        .args([
            "--consumer-property",
            "max.poll.records=5",
            "--timeout-ms",
            "10000",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the console share consumer");
    let mut rust = member_with(&b, "mixed", "mixed", 5).await;
    // Both members in the group before anything is produced (the default reset is latest).
    let admin = strom_client::Admin::new(ClientConfig::new(&b))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let described = admin
            .describe_share_groups(&["mixed".to_owned()])
            .await
            .unwrap();
        assert_eq!(described[0].protocol_type, "share");
        if described[0].members.len() >= 2 {
            assert_eq!(described[0].state, "Stable");
            break;
        }
        assert!(Instant::now() < deadline, "the Java member did not join");
        rust.poll(Duration::from_millis(200)).await.unwrap();
    }
    let producer = tokio::spawn({
        let b = b.clone();
        async move {
            for round in 0..8 {
                produce(&b, "mixed", round * 10, round * 10 + 10).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    });
    let mut from_rust = Vec::new();
    let mut idle_since = Instant::now();
    while idle_since.elapsed() < Duration::from_secs(4) {
        let got = rust.poll(Duration::from_millis(300)).await.unwrap();
        if !got.is_empty() {
            idle_since = Instant::now();
        }
        from_rust.extend(got.iter().map(value));
    }
    producer.await.unwrap();
    rust.close().await.unwrap();
    let out = java
        .wait_with_output()
        .expect("console share consumer output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let from_java: Vec<String> = stdout.lines().map(str::to_owned).collect();
    let mut all: BTreeMap<String, usize> = BTreeMap::new();
    for v in from_rust.iter().chain(&from_java) {
        *all.entry(v.clone()).or_default() += 1;
    }
    assert!(
        all.values().all(|n| *n == 1),
        "a record delivered twice: {all:?}"
    );
    assert_eq!(all.len(), 80, "every record delivered once: {all:?}");
    eprintln!(
        "Rust member: {} records, Java member: {} records",
        from_rust.len(),
        from_java.len()
    );
    assert!(
        !from_java.is_empty() && !from_rust.is_empty(),
        "both members got records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn share_group_offsets_are_described_altered_and_deleted() {
    use strom_protocol::kafka_protocol::messages::alter_share_group_offsets_request::{
        AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
    };
    use strom_protocol::kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
    use strom_protocol::kafka_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
    use strom_protocol::kafka_protocol::messages::{
        AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, ApiKey,
        DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse,
        DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, GroupId,
        ListGroupsRequest, ListGroupsResponse, TopicName,
    };
    use strom_protocol::kafka_protocol::protocol::StrBytes;

    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "reset", 1, &[]).await;
    let mut c = member(&b, "g", "reset").await;
    produce(&b, "reset", 0, 5).await;
    assert_eq!(poll_n(&mut c, 5, Duration::from_secs(10)).await.len(), 5);
    c.commit().await.unwrap();
    let mut wire = common::wire::Wire::connect(&b);
    let group = || GroupId(StrBytes::from_static_str("g"));
    let alter_to = |offset: i64| {
        let mut p = AlterShareGroupOffsetsRequestPartition::default();
        p.partition_index = 0;
        p.start_offset = offset;
        let mut t = AlterShareGroupOffsetsRequestTopic::default();
        t.topic_name = TopicName(StrBytes::from_static_str("reset"));
        t.partitions = vec![p];
        let mut req = AlterShareGroupOffsetsRequest::default();
        req.group_id = group();
        req.topics = vec![t];
        req
    };
    let describe = |wire: &mut common::wire::Wire| {
        let mut g = DescribeShareGroupOffsetsRequestGroup::default();
        g.group_id = group();
        // Null: every partition the group has state for.
        g.topics = None;
        let mut req = DescribeShareGroupOffsetsRequest::default();
        req.groups = vec![g];
        let resp: DescribeShareGroupOffsetsResponse =
            wire.call(ApiKey::DescribeShareGroupOffsets, 0, &req);
        assert_eq!(resp.groups[0].error_code, 0);
        resp.groups[0]
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.start_offset))
            .collect::<Vec<_>>()
    };
    assert_eq!(describe(&mut wire), vec![5]);
    // Not while the group has members.
    let resp: AlterShareGroupOffsetsResponse =
        wire.call(ApiKey::AlterShareGroupOffsets, 0, &alter_to(2));
    assert_eq!(resp.error_code, 68, "NON_EMPTY_GROUP");
    c.close().await.unwrap();
    let mut list = ListGroupsRequest::default();
    list.types_filter = vec![StrBytes::from_static_str("share")];
    let listed: ListGroupsResponse = wire.call(ApiKey::ListGroups, 5, &list);
    let row = &listed.groups[0];
    assert_eq!(
        (
            row.group_id.0.as_str(),
            row.group_type.as_str(),
            row.group_state.as_str()
        ),
        ("g", "share", "Empty")
    );
    let resp: AlterShareGroupOffsetsResponse =
        wire.call(ApiKey::AlterShareGroupOffsets, 0, &alter_to(2));
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.responses[0].partitions[0].error_code, 0);
    assert_eq!(describe(&mut wire), vec![2]);
    // The group reads again from offset 2, as first deliveries.
    let mut c = ShareConsumer::new(ShareConsumerConfig::new(ClientConfig::new(&b), "g"))
        .await
        .unwrap();
    c.subscribe(&["reset"]);
    let again = poll_n(&mut c, 3, Duration::from_secs(10)).await;
    let got: Vec<(i64, i16)> = again
        .iter()
        .map(|r| (r.record.offset, r.delivery_count))
        .collect();
    assert_eq!(got, vec![(2, 1), (3, 1), (4, 1)]);
    c.close().await.unwrap();
    let mut t = DeleteShareGroupOffsetsRequestTopic::default();
    t.topic_name = TopicName(StrBytes::from_static_str("reset"));
    let mut req = DeleteShareGroupOffsetsRequest::default();
    req.group_id = group();
    req.topics = vec![t];
    let resp: DeleteShareGroupOffsetsResponse = wire.call(ApiKey::DeleteShareGroupOffsets, 0, &req);
    assert_eq!(resp.error_code, 0);
    assert!(describe(&mut wire).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_group_id_is_either_a_consumer_group_or_a_share_group() {
    use strom_client::{Consumer, ConsumerConfig};
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "both", 1, &[]).await;
    let mut config = ConsumerConfig::new(&b);
    config.set("group.id", "taken").unwrap();
    let mut classic = Consumer::new(config).await.unwrap();
    classic.subscribe(&["both"], None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while classic.assignment().is_empty() {
        assert!(Instant::now() < deadline, "the classic member never joined");
        classic.poll(Duration::from_millis(200)).await.unwrap();
    }
    let mut share = ShareConsumer::new(ShareConsumerConfig::new(ClientConfig::new(&b), "taken"))
        .await
        .unwrap();
    share.subscribe(&["both"]);
    let err = share.poll(Duration::from_millis(300)).await.unwrap_err();
    assert!(err.to_string().contains("GROUP_ID_NOT_FOUND"), "{err}");
    classic.close().await.unwrap();
    // And the other way: a share group's id is refused to a classic member.
    let share = member(&b, "queue", "both").await;
    let mut config = ConsumerConfig::new(&b);
    config.set("group.id", "queue").unwrap();
    let mut classic = Consumer::new(config).await.unwrap();
    classic.subscribe(&["both"], None).unwrap();
    let err = classic.poll(Duration::from_millis(500)).await.unwrap_err();
    assert!(
        err.to_string().contains("INCONSISTENT_GROUP_PROTOCOL"),
        "{err}"
    );
    share.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_committed_share_groups_skip_aborted_and_open_transactions() {
    use strom_client::admin::{AlterOp, ConfigResource};
    let server = Server::start(&[]);
    let b = server.bootstrap();
    create_topic(&b, "tx", 1, &[]).await;
    let admin = strom_client::Admin::new(ClientConfig::new(&b))
        .await
        .unwrap();
    for (group, isolation) in [("rc", "read_committed"), ("ru", "read_uncommitted")] {
        let set = |k: &str, v: &str| (k.to_owned(), AlterOp::Set, Some(v.to_owned()));
        admin
            .alter_configs(
                &ConfigResource::Group(group.to_owned()),
                &[
                    set("share.isolation.level", isolation),
                    set("share.auto.offset.reset", "earliest"),
                ],
            )
            .await
            .unwrap();
    }
    let mut config = ProducerConfig::new(&b);
    config.set("transactional.id", "share-tx").unwrap();
    config.set("linger.ms", "0").unwrap();
    let p = Producer::new(config).await.unwrap();
    p.init_transactions().await.unwrap();
    let send = |values: &'static [&'static str]| {
        let p = &p;
        async move {
            for v in values {
                p.send(ProducerRecord::new("tx").value(*v))
                    .await
                    .unwrap()
                    .await
                    .unwrap();
            }
        }
    };
    p.begin_transaction().unwrap();
    send(&["c0", "c1"]).await;
    p.commit_transaction().await.unwrap();
    p.begin_transaction().unwrap();
    send(&["a0", "a1"]).await;
    p.abort_transaction().await.unwrap();
    p.begin_transaction().unwrap();
    send(&["c2"]).await;
    p.commit_transaction().await.unwrap();
    // Left open: past the last stable offset.
    p.begin_transaction().unwrap();
    send(&["o0"]).await;
    let read = |group: &'static str, want: usize| {
        let b = b.clone();
        async move {
            let mut c = ShareConsumer::new(ShareConsumerConfig::new(ClientConfig::new(&b), group))
                .await
                .unwrap();
            c.subscribe(&["tx"]);
            let got: Vec<String> = poll_n(&mut c, want, Duration::from_secs(10))
                .await
                .iter()
                .map(value)
                .collect();
            (c, got)
        }
    };
    let (mut rc, got) = read("rc", 3).await;
    assert_eq!(got, vec!["c0", "c1", "c2"]);
    let (ru, got) = read("ru", 6).await;
    assert_eq!(got, vec!["c0", "c1", "a0", "a1", "c2", "o0"]);
    ru.close().await.unwrap();
    let more = rc.poll(Duration::from_millis(800)).await.unwrap();
    assert!(more.is_empty(), "{more:?}");
    p.commit_transaction().await.unwrap();
    let got: Vec<String> = poll_n(&mut rc, 1, Duration::from_secs(10))
        .await
        .iter()
        .map(value)
        .collect();
    assert_eq!(got, vec!["o0"]);
    rc.close().await.unwrap();
}
