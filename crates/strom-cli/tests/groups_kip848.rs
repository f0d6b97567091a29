//! KIP-848 consumer groups (`group.protocol=consumer`) through the real `strom` binary with
//! librdkafka: server-side assignment across three members, takeover after a leave, eviction
//! of a silent member, commit and resume, offsets across a restart; and ListGroups/DescribeGroups/ConsumerGroupDescribe
//! as Kafka answers them for such a group.

mod common;

use std::time::{Duration, Instant};

use common::groups::{
    self, assigned, kip848_member, kip848_server as start_server, make_topic, produce, spread,
};
use common::wire::Wire;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId, ListGroupsRequest, ListGroupsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::BaseConsumer;

/// The broker's `group.consumer.session.timeout.ms` in these tests.
const SESSION_MS: u64 = 6_000;
/// GROUP_ID_NOT_FOUND.
const GROUP_ID_NOT_FOUND: i16 = 69;

fn member(bootstrap: &str, group: &str, topic: &str, client_id: &str) -> BaseConsumer {
    kip848_member(bootstrap, group, topic, client_id, &[])
}

/// Polls every consumer, committing each record, until `done` holds; keeps the values.
fn poll_until(
    consumers: &[BaseConsumer],
    seen: &mut Vec<i32>,
    timeout: Duration,
    what: &str,
    done: impl Fn(&[BaseConsumer], &[i32]) -> bool,
) {
    groups::poll_until(consumers, seen, timeout, what, |_, _, v| v, done);
}

fn sorted(mut v: Vec<i32>) -> Vec<i32> {
    v.sort_unstable();
    v
}

#[test]
fn three_members_get_two_partitions_each_and_two_cover_six_after_a_leave() {
    let server = start_server();
    let b = server.bootstrap();
    make_topic(&b, "kip848", 6);
    let mut consumers: Vec<BaseConsumer> = (0..3)
        .map(|i| member(&b, "next-gen", "kip848", &format!("member-{i}")))
        .collect();
    let mut seen = Vec::new();
    poll_until(
        &consumers,
        &mut seen,
        Duration::from_secs(40),
        "2+2+2",
        |cs, _| spread(cs, &[2, 2, 2], 6),
    );
    produce(&b, "kip848", 6, 0..600);
    poll_until(
        &consumers,
        &mut seen,
        Duration::from_secs(30),
        "600",
        |_, s| s.len() >= 600,
    );
    // The group as admin tools see it (KIP-848): listed as type "consumer", not described
    // by DescribeGroups, described by ConsumerGroupDescribe.
    let mut wire = Wire::connect(&b);
    let mut list = ListGroupsRequest::default();
    list.types_filter = vec![StrBytes::from_static_str("consumer")];
    let listed: ListGroupsResponse = wire.call(ApiKey::ListGroups, 5, &list);
    let row = listed
        .groups
        .iter()
        .find(|g| g.group_id.0.as_str() == "next-gen")
        .expect("group listed");
    assert_eq!(row.group_type.as_str(), "consumer");
    assert_eq!(row.group_state.as_str(), "Stable");
    let mut describe = DescribeGroupsRequest::default();
    describe.groups = vec![GroupId(StrBytes::from_static_str("next-gen"))];
    let d: DescribeGroupsResponse = wire.call(ApiKey::DescribeGroups, 5, &describe);
    assert_eq!(d.groups[0].error_code, GROUP_ID_NOT_FOUND);
    let mut cgd = ConsumerGroupDescribeRequest::default();
    cgd.group_ids = vec![GroupId(StrBytes::from_static_str("next-gen"))];
    let d: ConsumerGroupDescribeResponse = wire.call(ApiKey::ConsumerGroupDescribe, 1, &cgd);
    let g = &d.groups[0];
    assert_eq!(g.error_code, 0);
    assert_eq!(g.members.len(), 3);
    assert_eq!(g.assignor_name.as_str(), "uniform");
    assert!(g
        .members
        .iter()
        .all(|m| m.member_epoch == g.assignment_epoch));

    // A clean close leaves with epoch -1: the others take over before any session expires.
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
        "takeover took {:?}",
        left.elapsed()
    );
    produce(&b, "kip848", 6, 600..660);
    poll_until(
        &consumers,
        &mut seen,
        Duration::from_secs(20),
        "660",
        |_, s| s.len() >= 660,
    );
    assert_eq!(
        sorted(seen),
        (0..660).collect::<Vec<_>>(),
        "each record once"
    );
}

#[test]
fn committed_offsets_are_resumed_by_a_new_member_and_survive_a_restart() {
    let mut server = start_server();
    let b = server.bootstrap();
    make_topic(&b, "resume848", 2);
    produce(&b, "resume848", 2, 0..40);
    let mut seen = Vec::new();
    {
        let first = vec![member(&b, "resumers", "resume848", "first")];
        poll_until(&first, &mut seen, Duration::from_secs(30), "20", |_, s| {
            s.len() >= 20
        });
    }
    // The next member of the group starts where the first committed.
    {
        let second = vec![member(&b, "resumers", "resume848", "second")];
        poll_until(&second, &mut seen, Duration::from_secs(30), "40", |_, s| {
            s.len() >= 40
        });
        assert_eq!(sorted(seen.clone()), (0..40).collect::<Vec<_>>());
    }
    assert!(server.stop(), "clean stop");
    server.restart();
    // The group itself was reloaded from `__consumer_offsets`: still a consumer group.
    let listed: ListGroupsResponse =
        Wire::connect(&b).call(ApiKey::ListGroups, 5, &ListGroupsRequest::default());
    let row = listed
        .groups
        .iter()
        .find(|g| g.group_id.0.as_str() == "resumers")
        .expect("group listed after the restart");
    assert_eq!(row.group_type.as_str(), "consumer");
    assert_eq!(row.group_state.as_str(), "Empty");
    // `strom group describe` shows a consumer-protocol group's offsets and lag too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_strom"))
        .args([
            "group", "describe", "resumers", "-b", &b, "--output", "json",
        ])
        .output()
        .expect("run strom group describe");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lag: i64 = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["lag"].as_i64().unwrap())
        .sum();
    let committed: i64 = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["current_offset"].as_i64().unwrap())
        .sum();
    assert_eq!((committed, lag), (40, 0), "{rows}");
    produce(&b, "resume848", 2, 40..50);
    let third = vec![member(&b, "resumers", "resume848", "third")];
    poll_until(&third, &mut seen, Duration::from_secs(30), "50", |_, s| {
        s.len() >= 50
    });
    // Nothing read twice: the restart kept every committed offset.
    assert_eq!(sorted(seen), (0..50).collect::<Vec<_>>());
}

#[test]
fn a_member_that_stops_heartbeating_is_fenced_after_the_session_timeout() {
    let server = start_server();
    let b = server.bootstrap();
    make_topic(&b, "silent848", 6);
    // A member on the wire that joins once and then goes silent (no leave).
    let mut wire = Wire::connect(&b);
    let mut join = ConsumerGroupHeartbeatRequest::default();
    join.group_id = GroupId(StrBytes::from_static_str("silence"));
    join.member_id = StrBytes::from_static_str("silent-member-id-0000");
    join.rebalance_timeout_ms = 30_000;
    join.subscribed_topic_names = Some(vec![TopicName(StrBytes::from_static_str("silent848"))]);
    join.topic_partitions = Some(Vec::new());
    let joined: ConsumerGroupHeartbeatResponse =
        wire.call(ApiKey::ConsumerGroupHeartbeat, 1, &join);
    assert_eq!(joined.error_code, 0);
    assert!(joined.member_epoch > 0);
    let got: usize = joined
        .assignment
        .map(|a| a.topic_partitions.iter().map(|t| t.partitions.len()).sum())
        .unwrap_or_default();
    assert_eq!(got, 6, "alone in the group");

    // librdkafka joins: it gets half once the silent member would have revoked, which it
    // never does, so it waits; after the session timeout the silent member is fenced.
    let started = Instant::now();
    let live = vec![member(&b, "silence", "silent848", "live")];
    let mut seen = Vec::new();
    poll_until(
        &live,
        &mut seen,
        Duration::from_secs(30),
        "all six",
        |cs, _| assigned(&cs[0]).len() == 6,
    );
    assert!(
        started.elapsed() >= Duration::from_millis(SESSION_MS - 1_000),
        "partitions moved after {:?}, before the silent member's session ended",
        started.elapsed()
    );
    let mut beat = join.clone();
    beat.member_epoch = joined.member_epoch;
    let fenced: ConsumerGroupHeartbeatResponse =
        wire.call(ApiKey::ConsumerGroupHeartbeat, 1, &beat);
    assert_eq!(fenced.error_code, 25, "UNKNOWN_MEMBER_ID once fenced");
}

/// IncrementalAlterConfigs on `group` (GROUP config resource): its error code per resource.
fn alter_group_configs(wire: &mut Wire, group: &str, configs: &[(&str, &str)]) -> i16 {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::{
        IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    };
    let mut resource = AlterConfigsResource::default();
    resource.resource_type = 32;
    resource.resource_name = StrBytes::from_string(group.to_owned());
    resource.configs = configs
        .iter()
        .map(|(k, v)| {
            let mut c = AlterableConfig::default();
            c.name = StrBytes::from_string(k.to_string());
            c.config_operation = 0; // SET
            c.value = Some(StrBytes::from_string(v.to_string()));
            c
        })
        .collect();
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = vec![resource];
    let resp: IncrementalAlterConfigsResponse = wire.call(ApiKey::IncrementalAlterConfigs, 1, &req);
    resp.responses[0].error_code
}

/// DescribeConfigs of `group`: (name, value, source) of each group config.
fn describe_group_configs(wire: &mut Wire, group: &str) -> Vec<(String, String, i8)> {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
    let mut resource = DescribeConfigsResource::default();
    resource.resource_type = 32;
    resource.resource_name = StrBytes::from_string(group.to_owned());
    resource.configuration_keys = None; // all of them
    let mut req = DescribeConfigsRequest::default();
    req.resources = vec![resource];
    let resp: DescribeConfigsResponse = wire.call(ApiKey::DescribeConfigs, 4, &req);
    let result = &resp.results[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    result
        .configs
        .iter()
        .map(|c| {
            let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            (c.name.to_string(), value, c.config_source)
        })
        .collect()
}

/// The heartbeat interval a KIP-848 member joining `group` is given.
fn joined_heartbeat_interval(wire: &mut Wire, group: &str) -> i32 {
    let mut join = ConsumerGroupHeartbeatRequest::default();
    join.group_id = GroupId(StrBytes::from_string(group.to_owned()));
    join.member_id = StrBytes::from_string(format!("{group}-member-0000000000"));
    join.rebalance_timeout_ms = 30_000;
    join.subscribed_topic_names = Some(vec![TopicName(StrBytes::from_static_str("tuned848"))]);
    join.topic_partitions = Some(Vec::new());
    let joined: ConsumerGroupHeartbeatResponse =
        wire.call(ApiKey::ConsumerGroupHeartbeat, 1, &join);
    assert_eq!(joined.error_code, 0, "{:?}", joined.error_message);
    joined.heartbeat_interval_ms
}

/// Kafka 4's group configs (the GROUP config resource, which librdkafka's 0081_admin alters
/// and describes): a group's own consumer.heartbeat.interval.ms and consumer.session.timeout.ms
/// override the broker's group.consumer.* for its members only; they can be set before the
/// group exists, are described with source GROUP_CONFIG (8), and unknown keys are refused.
#[test]
fn group_configs_override_the_broker_settings_for_one_group() {
    const GROUP_CONFIG: i8 = 8;
    const STATIC_BROKER_CONFIG: i8 = 4;
    const INVALID_CONFIG: i16 = 40;
    let server = start_server();
    let b = server.bootstrap();
    make_topic(&b, "tuned848", 2);
    let mut wire = Wire::connect(&b);
    let set = [
        ("consumer.heartbeat.interval.ms", "1234"),
        ("consumer.session.timeout.ms", "50000"),
    ];
    assert_eq!(alter_group_configs(&mut wire, "tuned", &set), 0);
    assert_eq!(
        alter_group_configs(&mut wire, "tuned", &[("no.such.config", "1")]),
        INVALID_CONFIG
    );
    // A group's configs include the share-group ones (KIP-932), here at their defaults.
    let (consumer, share): (Vec<_>, Vec<_>) = describe_group_configs(&mut wire, "tuned")
        .into_iter()
        .partition(|(name, _, _)| name.starts_with("consumer."));
    assert!(
        share.len() >= 4
            && share
                .iter()
                .all(|(name, _, source)| name.starts_with("share.") && *source == 5),
        "{share:?}"
    );
    assert_eq!(
        consumer,
        vec![
            (
                "consumer.heartbeat.interval.ms".into(),
                "1234".into(),
                GROUP_CONFIG
            ),
            (
                "consumer.session.timeout.ms".into(),
                "50000".into(),
                GROUP_CONFIG
            ),
        ]
    );
    // Another group keeps the broker's settings (start_server sets both).
    assert_eq!(
        describe_group_configs(&mut wire, "plain")
            .into_iter()
            .filter(|(name, _, _)| name.starts_with("consumer."))
            .collect::<Vec<_>>(),
        vec![
            (
                "consumer.heartbeat.interval.ms".into(),
                "300".into(),
                STATIC_BROKER_CONFIG
            ),
            (
                "consumer.session.timeout.ms".into(),
                "6000".into(),
                STATIC_BROKER_CONFIG
            ),
        ]
    );
    assert_eq!(joined_heartbeat_interval(&mut wire, "tuned"), 1234);
    assert_eq!(joined_heartbeat_interval(&mut wire, "plain"), 300);
}
