//! Partition replication across real `strom` processes, driven with librdkafka: with
//! replication factor 3 and acks=all, killing a leader loses no acknowledged record (a
//! Jepsen-style checker counts lost, duplicated, reordered and unexpected records); a killed
//! follower leaves the ISR, comes back, catches up and holds a byte-identical log; with two
//! of three replicas down acks=all is refused with NOT_ENOUGH_REPLICAS. The leader kill runs in
//! durable mode (`flush.before.ack.enable`) too. Times printed are
//! measurements on this machine, not assertions.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::cluster::{Cluster, View};
use common::load::*;
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;

/// The partition's log bytes on a node: every segment file in offset order.
fn log_bytes(data: &Path, topic: &str) -> Vec<u8> {
    let dir = data.join(format!("{topic}-0"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect()
}

/// Waits until the partition log of each of `nodes` equals `leader`'s byte for byte.
fn wait_logs_equal_leader(cluster: &Cluster, topic: &str, leader: i32, nodes: &[i32]) {
    let reference = log_bytes(&cluster.nodes[&leader].dir.join("data"), topic);
    let deadline = Instant::now() + WAIT;
    for id in nodes {
        loop {
            let copy = log_bytes(&cluster.nodes[id].dir.join("data"), topic);
            if copy == reference {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {id}'s log differs from leader {leader}'s ({} vs {} bytes)",
                copy.len(),
                reference.len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn killing_the_leader_under_acks_all_load_loses_nothing() {
    kill_the_leader_under_load("jepsen", &[]);
}

/// Durable mode (group commit): the leader acknowledges after its fsync and the ISR's, the
/// followers fsync before they fetch again.
#[test]
fn killing_the_leader_of_a_durable_topic_under_acks_all_load_loses_nothing() {
    kill_the_leader_under_load("jepsen-durable", &[("flush.before.ack.enable", "true")]);
}

fn kill_the_leader_under_load(topic: &'static str, configs: &[(&str, &str)]) {
    let mut cluster = Cluster::start(3, CLUSTER);
    cluster.wait_view(1, WAIT, "three brokers", |v| v.brokers == [1, 2, 3]);
    let mut configs = configs.to_vec();
    configs.push(("min.insync.replicas", "2"));
    create_topic(&cluster.bootstrap(), topic, &configs);
    wait_partition(&cluster, 1, topic, "a full ISR", |l, isr| {
        l > 0 && isr.len() == 3
    });
    let load = Load::start(cluster.bootstrap(), topic);
    load.wait_acked(300);
    let (leader, _) = partition_state(&cluster, 1, topic);
    let killed_at = Instant::now();
    cluster.kill9(leader);
    let survivor = if leader == 1 { 2 } else { 1 };
    let elected = wait_partition(&cluster, survivor, topic, "a new leader", |l, _| {
        l > 0 && l != leader
    });
    let before = load.acked.load(Ordering::Relaxed);
    load.wait_acked(before + 300);
    let stall = load.longest_stall_after(killed_at);
    let history = load.finish();
    let read = read_all(&cluster.nodes[&survivor].bootstrap(), topic);
    let report = history.check(&read);
    println!(
        "leader {leader} killed: new leader after {elected:?}, produce stalled {stall:?}; \
         acked {}, read {}, lost {}, duplicated {}, reordered {}, unexpected {}",
        report.acked,
        report.read,
        report.lost.len(),
        report.duplicated.len(),
        report.reordered.len(),
        report.unexpected.len()
    );
    assert!(report.acked >= 600, "{report:?}");
    assert!(report.is_clean(), "{report:?}");

    // The old leader comes back, truncates whatever only it had, and rejoins the ISR.
    cluster.restart(leader);
    wait_partition(
        &cluster,
        survivor,
        topic,
        "the old leader back in the ISR",
        |_, isr| isr.len() == 3,
    );
    let (new_leader, _) = partition_state(&cluster, survivor, topic);
    wait_logs_equal_leader(&cluster, topic, new_leader, &[1, 2, 3]);
}

#[test]
fn a_follower_leaves_the_isr_when_dead_and_rejoins_byte_identical() {
    let mut cluster = Cluster::start(3, CLUSTER);
    cluster.wait_view(1, WAIT, "three brokers", |v| v.brokers == [1, 2, 3]);
    let topic = "follow";
    create_topic(&cluster.bootstrap(), topic, &[("min.insync.replicas", "2")]);
    wait_partition(&cluster, 1, topic, "a full ISR", |l, isr| {
        l > 0 && isr.len() == 3
    });
    let (leader, _) = partition_state(&cluster, 1, topic);
    let follower = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    let load = Load::start(cluster.nodes[&leader].bootstrap(), topic);
    load.wait_acked(100);
    cluster.kill9(follower);
    let shrunk = wait_partition(
        &cluster,
        leader,
        topic,
        "the ISR without the dead follower",
        |_, isr| isr.len() == 2 && !isr.contains(&follower),
    );
    let before = load.acked.load(Ordering::Relaxed);
    load.wait_acked(before + 200);
    cluster.restart(follower);
    let rejoined = wait_partition(
        &cluster,
        leader,
        topic,
        "the follower back in the ISR",
        |_, isr| isr.len() == 3,
    );
    let history = load.finish();
    println!("ISR shrank {shrunk:?} after the kill; rejoined {rejoined:?} after the restart");
    let report = history.check(&read_all(&cluster.nodes[&leader].bootstrap(), topic));
    assert!(report.is_clean(), "{report:?}");
    wait_logs_equal_leader(&cluster, topic, leader, &[follower]);
}

/// A rolling restart under acks=all idempotent load: each broker in turn stops on SIGTERM (a
/// controlled shutdown, which moves its leaderships away before it exits), starts again and
/// rejoins every ISR before the next one goes. Nothing acknowledged is lost, duplicated or
/// reordered, and no delivery error reaches the producer.
#[test]
fn a_rolling_restart_under_acks_all_load_loses_nothing() {
    const PARTITIONS: i32 = 6;
    let mut cluster = Cluster::start(3, CLUSTER);
    cluster.wait_view(1, WAIT, "three brokers", |v| v.brokers == [1, 2, 3]);
    let topic = "rolling";
    create_topic_with(
        &cluster.bootstrap(),
        topic,
        PARTITIONS,
        &[("min.insync.replicas", "2")],
    );
    let all_in_sync = |v: &View| {
        v.topics.get(topic).is_some_and(|t| {
            t.len() == PARTITIONS as usize && t.values().all(|(l, _, isr)| *l > 0 && isr.len() == 3)
        })
    };
    cluster.wait_view(1, WAIT, "every ISR full", all_in_sync);
    let load = Load::start_partitions(cluster.bootstrap(), topic, PARTITIONS);
    load.wait_acked(300);
    let mut figures = Vec::new();
    for id in [1, 2, 3] {
        let via = if id == 1 { 2 } else { 1 };
        let leaders = |v: &View| {
            v.topics[topic]
                .values()
                .filter(|(l, _, _)| *l == id)
                .count()
        };
        let led = leaders(&cluster.view(via));
        let stopping = Instant::now();
        assert!(
            cluster.stop(id),
            "node {id} did not shut down cleanly on SIGTERM\n{}",
            cluster.log(id)
        );
        let shutdown = stopping.elapsed();
        let led_after_exit = leaders(&cluster.view(via));
        // The controller takes a stopped broker out of every ISR; only then does "back in
        // every ISR" measure a rejoin.
        let in_isr = |v: &View| {
            v.topics[topic]
                .values()
                .filter(|(_, _, isr)| isr.contains(&id))
                .count()
        };
        let in_isr_after_exit = in_isr(&cluster.view(via));
        cluster.wait_view(via, WAIT, &format!("node {id} out of every ISR"), |v| {
            in_isr(v) == 0
        });
        let restarting = Instant::now();
        cluster.restart(id);
        cluster.wait_view(
            via,
            WAIT,
            &format!("node {id} back in every ISR"),
            all_in_sync,
        );
        let rejoin = restarting.elapsed();
        let before = load.acked.load(Ordering::Relaxed);
        load.wait_acked(before + 200);
        let stall = load.longest_stall_between(stopping, Instant::now());
        println!(
            "node {id}: led {led} of {PARTITIONS} partitions, {led_after_exit} still named \
             leader and {in_isr_after_exit} ISRs still holding it right after its exit; SIGTERM to exit {shutdown:?}; restart to back in \
             every ISR {rejoin:?}; longest produce stall {stall:?}"
        );
        figures.push((id, stall, rejoin));
    }
    let (histories, errors) = load.finish_all();
    let bootstrap = cluster.bootstrap();
    let mut total = common::checker::Report::default();
    for (partition, history) in histories.iter().enumerate() {
        let report = history.check(&read_partition(&bootstrap, topic, partition as i32));
        assert!(report.is_clean(), "partition {partition}: {report:?}");
        total.acked += report.acked;
        total.read += report.read;
    }
    println!(
        "rolling restart: acked {}, read {}, lost 0, duplicated 0, reordered 0, unexpected 0, \
         delivery errors {}; per node (stall, rejoin): {figures:?}",
        total.acked,
        total.read,
        errors.len()
    );
    assert!(errors.is_empty(), "delivery errors: {errors:?}");
    assert!(total.acked >= 900, "{total:?}");
}

#[test]
fn with_two_of_three_replicas_down_acks_all_is_refused_and_nothing_is_lost() {
    // Three controllers (4.. are brokers), so stopping brokers never costs the quorum.
    let mut cluster = Cluster::start_layout(3, 3, CLUSTER);
    let brokers = [4, 5, 6];
    cluster.wait_view(4, WAIT, "three brokers", |v| v.brokers == brokers);
    let topic = "minisr";
    create_topic(&cluster.bootstrap(), topic, &[("min.insync.replicas", "2")]);
    wait_partition(&cluster, 4, topic, "a full ISR", |l, isr| {
        l > 0 && isr.len() == 3
    });
    let (leader, _) = partition_state(&cluster, 4, topic);
    let bootstrap = cluster.nodes[&leader].bootstrap();
    // NOT_ENOUGH_REPLICAS is retriable: without retries the error reaches the application.
    let producer = common::producer(
        &bootstrap,
        &[
            ("acks", "all"),
            ("message.timeout.ms", "5000"),
            ("retries", "0"),
        ],
    );
    // The delivery error's code only (the whole error carries the unsent message).
    let send = |v: &str| {
        block(producer.send(
            FutureRecord::<(), _>::to(topic).payload(v).partition(0),
            Duration::from_secs(10),
        ))
        .map_err(|(e, _)| e)
    };
    send("before").expect("acks=all with a full ISR");
    let followers: Vec<i32> = brokers.into_iter().filter(|id| *id != leader).collect();
    cluster.kill9(followers[0]);
    cluster.pause(followers[1]);
    wait_partition(
        &cluster,
        leader,
        topic,
        "an ISR of the leader alone",
        |_, isr| isr == [leader],
    );
    let code = send("refused").expect_err("acks=all below min.insync.replicas");
    println!("acks=all with an ISR of 1: {code:?}");
    use rdkafka::error::KafkaError::MessageProduction;
    use rdkafka::types::RDKafkaErrorCode as C;
    assert!(
        matches!(code, MessageProduction(C::NotEnoughReplicas)),
        "{code:?}"
    );
    cluster.resume(followers[1]);
    cluster.restart(followers[0]);
    wait_partition(&cluster, leader, topic, "a full ISR again", |_, isr| {
        isr.len() == 3
    });
    send("after").expect("acks=all once the ISR is back");
    let read = read_all(&bootstrap, topic);
    assert_eq!(
        read,
        ["before", "after"],
        "the refused record was never written"
    );
}

/// KIP-392: with the rack-aware selector, the leader sends a consumer that names its rack to
/// the in-sync replica in that rack, which serves it up to its own high watermark; librdkafka
/// with `client.rack` follows the hint and reads everything.
#[test]
fn consumers_read_from_an_in_sync_replica_in_their_rack() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse};
    use kafka_protocol::protocol::StrBytes;

    let mut extra = CLUSTER.to_vec();
    extra.push(("broker.rack", "rack-{id}"));
    extra.push((
        "replica.selector.class",
        "org.apache.kafka.common.replica.RackAwareReplicaSelector",
    ));
    let cluster = Cluster::start(3, &extra);
    cluster.wait_view(1, WAIT, "three brokers", |v| v.brokers == [1, 2, 3]);
    let topic = "racks";
    create_topic(&cluster.bootstrap(), topic, &[]);
    wait_partition(&cluster, 1, topic, "a full ISR", |l, isr| {
        l > 0 && isr.len() == 3
    });
    let (leader, _) = partition_state(&cluster, 1, topic);
    let follower = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    let producer = common::producer(&cluster.bootstrap(), &[("acks", "all")]);
    for i in 0..50 {
        let v = format!("r-{i}");
        block(producer.send(
            FutureRecord::<(), _>::to(topic).payload(&v).partition(0),
            Duration::from_secs(10),
        ))
        .expect("produce");
    }
    let topic_id = cluster.view(1).topic_ids[topic];
    let fetch = |rack: &str| {
        let mut p = FetchPartition::default();
        p.partition = 0;
        p.fetch_offset = 0;
        p.partition_max_bytes = 1 << 20;
        let mut t = FetchTopic::default();
        t.topic_id = topic_id;
        t.partitions = vec![p];
        let mut r = FetchRequest::default();
        r.replica_id = kafka_protocol::messages::BrokerId(-1);
        r.max_wait_ms = 100;
        r.max_bytes = 1 << 20;
        r.session_epoch = -1;
        r.rack_id = StrBytes::from_string(rack.to_string());
        r.topics = vec![t];
        r
    };
    let mut to_leader = common::wire::Wire::connect(&cluster.nodes[&leader].bootstrap());
    let answer: FetchResponse =
        to_leader.call(ApiKey::Fetch, 13, &fetch(&format!("rack-{follower}")));
    let data = &answer.responses[0].partitions[0];
    assert_eq!(data.error_code, 0);
    assert_eq!(
        data.preferred_read_replica.0, follower,
        "the leader redirects to the rack's replica"
    );
    let own: FetchResponse = to_leader.call(ApiKey::Fetch, 13, &fetch(&format!("rack-{leader}")));
    assert_eq!(
        own.responses[0].partitions[0].preferred_read_replica.0, -1,
        "the leader's own rack reads from it"
    );
    // The follower serves the consumer, up to its own high watermark.
    let mut to_follower = common::wire::Wire::connect(&cluster.nodes[&follower].bootstrap());
    let deadline = Instant::now() + WAIT;
    loop {
        let served: FetchResponse = to_follower.call(ApiKey::Fetch, 13, &fetch(""));
        let data = &served.responses[0].partitions[0];
        assert_eq!(data.error_code, 0, "{data:?}");
        if data.high_watermark == 50 && data.records.as_ref().is_some_and(|r| !r.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the follower never served the records: {data:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // librdkafka follows the hint end to end.
    let records = common::consume(
        &cluster.bootstrap(),
        topic,
        &[0],
        Offset::Beginning,
        50,
        WAIT,
        &[("client.rack", &format!("rack-{follower}"))],
    );
    let values: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect();
    assert_eq!(
        values,
        (0..50).map(|i| format!("r-{i}")).collect::<Vec<_>>()
    );
}

/// Broker ids and ports of a Metadata answer from `addr` (any listener of a broker).
fn metadata_endpoints(addr: &str) -> Vec<(i32, i32)> {
    use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};
    let mut wire = common::wire::Wire::connect(addr);
    let answer: MetadataResponse = wire.call(ApiKey::Metadata, 12, &MetadataRequest::default());
    let mut brokers: Vec<(i32, i32)> = answer
        .brokers
        .iter()
        .map(|b| (b.node_id.0, b.port))
        .collect();
    brokers.sort();
    brokers
}

/// A network partition isolates the leader from the other two nodes while clients still
/// reach all three (the links between nodes go through the harness's fault-injecting proxies,
/// configured with Kafka's own listener settings: one inter-broker listener per peer). The
/// isolated leader acknowledges no acks=all write (it can neither replicate nor shrink its
/// ISR without the controller), the majority elects a new leader and carries on, and after
/// healing the old leader truncates the acks=1 records only it had and holds a
/// byte-identical log: one history, no split brain.
#[test]
fn an_isolated_leader_stops_acknowledging_and_the_majority_carries_on() {
    let cluster = Cluster::start_partitionable(3, CLUSTER);
    let net = cluster.net.as_ref().unwrap();
    cluster.wait_view(1, WAIT, "three brokers", |v| v.brokers == [1, 2, 3]);
    // Every listener answers with its own endpoints (inter.broker.listener.name at work).
    let client_ports: Vec<(i32, i32)> = (1..=3)
        .map(|id| (id, i32::from(cluster.nodes[&id].client_port)))
        .collect();
    assert_eq!(
        metadata_endpoints(&cluster.nodes[&1].bootstrap()),
        client_ports
    );
    let r1_ports: Vec<(i32, i32)> = (1..=3)
        .map(|id| (id, i32::from(net.advertised_replication_port(id, 1))))
        .collect();
    let node2_r1 = format!("127.0.0.1:{}", net.replication_port(2, 1));
    assert_eq!(metadata_endpoints(&node2_r1), r1_ports);

    let topic = "split";
    create_topic(&cluster.bootstrap(), topic, &[("min.insync.replicas", "2")]);
    wait_partition(&cluster, 1, topic, "a full ISR", |l, isr| {
        l > 0 && isr.len() == 3
    });
    let load = Load::start(cluster.bootstrap(), topic);
    load.wait_acked(300);
    let (leader, _) = partition_state(&cluster, 1, topic);
    let majority: Vec<i32> = [1, 2, 3].into_iter().filter(|id| *id != leader).collect();
    let controller = cluster.quorum_leader(majority[0]);
    let isolated_at = Instant::now();
    net.isolate(leader);

    // A client that only knows the isolated leader writes with acks=1: the old leader takes
    // these alone (Kafka's acks=1 trade-off); they must not survive the healing.
    let lonely = common::producer(
        &cluster.nodes[&leader].bootstrap(),
        &[("acks", "1"), ("message.timeout.ms", "5000")],
    );
    let mut lonely_acked = 0;
    for i in 0..20 {
        let sent = block(
            lonely.send(
                FutureRecord::<(), _>::to(topic)
                    .payload(&format!("lonely-{i}"))
                    .partition(0),
                Duration::from_secs(10),
            ),
        );
        if sent.is_ok() {
            lonely_acked += 1;
        }
    }

    let elected = wait_partition(
        &cluster,
        majority[0],
        topic,
        "a leader in the majority",
        |l, _| majority.contains(&l),
    );
    let before = load.acked.load(Ordering::Relaxed);
    load.wait_acked(before + 300);
    let stall = load.longest_stall_after(isolated_at);
    // The isolated node still believes it leads, but it cannot have acknowledged acks=all
    // writes the majority lacks: the checker below finds any such write lost.
    net.heal();
    wait_partition(
        &cluster,
        majority[0],
        topic,
        "the old leader back in the ISR",
        |_, isr| isr.len() == 3,
    );
    let history = load.finish();
    let (new_leader, _) = partition_state(&cluster, majority[0], topic);
    let read = read_all(&cluster.nodes[&new_leader].bootstrap(), topic);
    let lonely_kept = read.iter().filter(|v| v.starts_with("lonely-")).count();
    let ours: Vec<String> = read
        .into_iter()
        .filter(|v| !v.starts_with("lonely-"))
        .collect();
    let report = history.check(&ours);
    println!(
        "leader {leader} isolated (active controller {controller}): new leader after {elected:?}, \
         acks=all produce stalled {stall:?}; acks=1 records the isolated leader took: \
         {lonely_acked}, kept after healing: {lonely_kept}; acked {}, read {}, lost {}, \
         duplicated {}, reordered {}, unexpected {}",
        report.acked,
        report.read,
        report.lost.len(),
        report.duplicated.len(),
        report.reordered.len(),
        report.unexpected.len()
    );
    assert!(report.acked >= 600, "{report:?}");
    assert!(report.is_clean(), "{report:?}");
    assert!(
        lonely_acked > 0,
        "the isolated leader took no acks=1 write: the test proved nothing about truncation"
    );
    assert_eq!(
        lonely_kept, 0,
        "acks=1 records of the isolated leader survived"
    );
    wait_logs_equal_leader(&cluster, topic, new_leader, &[1, 2, 3]);
}

/// (ISR, eligible leader replicas, last known ELR) of partition 0 of `topic` from
/// DescribeTopicPartitions v0 on broker `via` (Metadata has no ELR fields).
fn describe_elr(cluster: &Cluster, via: i32, topic: &str) -> (Vec<i32>, Vec<i32>, Vec<i32>) {
    use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;
    use kafka_protocol::messages::{
        ApiKey, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    let mut wire = common::wire::Wire::connect(&cluster.nodes[&via].bootstrap());
    let mut t = TopicRequest::default();
    t.name = TopicName(StrBytes::from_string(topic.to_owned()));
    let mut req = DescribeTopicPartitionsRequest::default();
    req.topics = vec![t];
    req.response_partition_limit = 10;
    let r: DescribeTopicPartitionsResponse = wire.call(ApiKey::DescribeTopicPartitions, 0, &req);
    let p = r
        .topics
        .iter()
        .find(|t| t.error_code == 0)
        .and_then(|t| t.partitions.iter().find(|p| p.partition_index == 0))
        .unwrap_or_else(|| panic!("{topic}-0 not described: {r:?}"));
    let ids = |v: &Option<Vec<kafka_protocol::messages::BrokerId>>| -> Vec<i32> {
        v.as_deref()
            .expect("ELR fields are never null")
            .iter()
            .map(|b| b.0)
            .collect()
    };
    (
        p.isr_nodes.iter().map(|b| b.0).collect(),
        ids(&p.eligible_leader_replicas),
        ids(&p.last_known_elr),
    )
}

/// KIP-966 across real processes: RF 3, min.insync.replicas=2. Both followers stop cleanly
/// (SIGTERM); the ISR shrinks below 2 and the follower that left it last becomes an eligible
/// leader replica (DescribeTopicPartitions shows it). The leader is then SIGKILLed, leaving no
/// ISR; the ELR member restarts and is elected leader from the ELR (no unclean election is
/// allowed), and once the other follower is back no acknowledged record is lost.
#[test]
fn a_clean_elr_member_leads_after_the_whole_isr_is_lost_and_nothing_acknowledged_is_lost() {
    // Three controllers (4.. are brokers), so stopping every broker never costs the quorum.
    let mut cluster = Cluster::start_layout(3, 3, CLUSTER);
    let brokers = [4, 5, 6];
    cluster.wait_view(4, WAIT, "three brokers", |v| v.brokers == brokers);
    let topic = "elr";
    create_topic(&cluster.bootstrap(), topic, &[("min.insync.replicas", "2")]);
    wait_partition(&cluster, 4, topic, "a full ISR", |l, isr| {
        l > 0 && isr.len() == 3
    });
    let (leader, _) = partition_state(&cluster, 4, topic);
    let followers: Vec<i32> = brokers.into_iter().filter(|id| *id != leader).collect();
    let (first, eligible) = (followers[0], followers[1]);
    let load = Load::start(cluster.bootstrap(), topic);
    load.wait_acked(200);

    // One follower stops: the ISR is still at min.insync.replicas, no ELR.
    if !cluster.stop(first) {
        let log = cluster.log(first);
        panic!(
            "{first} did not stop cleanly: {}",
            &log[log.len().saturating_sub(3000)..]
        );
    }
    wait_partition(
        &cluster,
        leader,
        topic,
        "the ISR without the first follower",
        |_, isr| isr.len() == 2 && !isr.contains(&first),
    );
    assert!(describe_elr(&cluster, leader, topic).1.is_empty());
    let before = load.acked.load(Ordering::Relaxed);
    load.wait_acked(before + 200);

    // The other stops: the ISR falls below 2, and the follower joins the ELR.
    if !cluster.stop(eligible) {
        let log = cluster.log(eligible);
        panic!(
            "{eligible} did not stop cleanly: {}",
            &log[log.len().saturating_sub(3000)..]
        );
    }
    wait_partition(
        &cluster,
        leader,
        topic,
        "an ISR of the leader alone",
        |_, isr| isr == [leader],
    );
    let (isr, elr, _) = describe_elr(&cluster, leader, topic);
    println!("ISR below min.insync.replicas: ISR {isr:?}, ELR {elr:?}");
    assert_eq!(
        elr,
        vec![eligible],
        "the follower that left last is eligible"
    );
    let acked_before_kill = load.acked.load(Ordering::Relaxed);

    // The leader crashes: no ISR member is left. The ELR member restarts (it stopped
    // cleanly) and leads; unclean election is off, so only the ELR can explain it.
    cluster.kill9(leader);
    std::thread::sleep(Duration::from_millis(4_000)); // the session timeout fences the leader
    cluster.restart(eligible);
    let elected = wait_partition(
        &cluster,
        eligible,
        topic,
        "the ELR member leading",
        |l, _| l == eligible,
    );
    let (isr, elr, last_known) = describe_elr(&cluster, eligible, topic);
    println!(
        "elected from the ELR {elected:?} after its restart: ISR {isr:?}, ELR {elr:?}, last known ELR {last_known:?}"
    );
    assert_eq!(isr, vec![eligible]);
    assert_eq!(
        elr,
        vec![leader],
        "the crashed leader left the ISR last: eligible"
    );

    // The other follower comes back; acks=all resumes once the ISR is at 2 again.
    cluster.restart(first);
    wait_partition(&cluster, eligible, topic, "an ISR of two", |_, isr| {
        isr.len() >= 2
    });
    let (_, elr, _) = describe_elr(&cluster, eligible, topic);
    assert!(
        elr.is_empty(),
        "the ISR is back at min ISR: no ELR, {elr:?}"
    );
    load.wait_acked(acked_before_kill + 100);
    let history = load.finish();
    // The crashed old leader restarts (unclean) and truncates to the new leader's log.
    cluster.restart(leader);
    wait_partition(&cluster, eligible, topic, "a full ISR", |_, isr| {
        isr.len() == 3
    });
    let read = read_all(&cluster.nodes[&eligible].bootstrap(), topic);
    let report = history.check(&read);
    println!(
        "acked {} ({acked_before_kill} before the leader crashed), read {}, lost {}, duplicated {}, reordered {}, unexpected {}",
        report.acked,
        report.read,
        report.lost.len(),
        report.duplicated.len(),
        report.reordered.len(),
        report.unexpected.len()
    );
    assert!(acked_before_kill >= 400, "{report:?}");
    assert!(report.is_clean(), "{report:?}");
}
