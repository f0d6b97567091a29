//! Dynamic controller quorums (KIP-853) with real `strom` processes: properties with only
//! `controller.quorum.bootstrap.servers`, directories prepared with `strom storage format`
//! (`--initial-controllers`, `--standalone`, `--no-initial-controllers`), controllers added and
//! removed at runtime with AddRaftVoter / RemoveRaftVoter through `strom cluster
//! add-controller` / `remove-controller`, and the quorum surviving a SIGKILL of its first
//! controller. Times printed are measurements on this machine, not assertions.

mod common;

use std::time::{Duration, Instant};

use common::cluster::{strom, Cluster, Quorum};
use common::wire::Wire;
use kafka_protocol::messages::add_raft_voter_request::Listener;
use kafka_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, ApiKey, RemoveRaftVoterRequest,
    RemoveRaftVoterResponse, UpdateRaftVoterRequest, UpdateRaftVoterResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::Consumer;
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};
use strom_protocol::ErrorCode;

const FAST: &[(&str, &str)] = &[
    ("broker.heartbeat.interval.ms", "300"),
    ("broker.session.timeout.ms", "3000"),
];

const WAIT: Duration = Duration::from_secs(60);

fn tokio_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32, rf: i32) {
    let admin = common::admin(bootstrap);
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(rf));
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = tokio_block(admin.create_topics([&topic], &opts)).expect("create_topics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
}

/// Waits until DescribeQuorum through `via` names a leader other than `not`.
fn wait_new_leader(cluster: &Cluster, via: i32, not: i32) -> (i32, Duration) {
    let started = Instant::now();
    loop {
        let leader = cluster.quorum_leader(via);
        if leader > 0 && leader != not {
            return (leader, started.elapsed());
        }
        assert!(started.elapsed() < WAIT, "no new quorum leader after {not}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// (a) Three combined nodes whose properties name only bootstrap servers, formatted with
/// `--initial-controllers`: they form a quorum, serve librdkafka, report the voter set with
/// its directory ids, and survive a SIGKILL of the active controller.
#[test]
fn initial_controllers_form_a_quorum_from_bootstrap_servers_and_serve_clients() {
    let mut cluster = Cluster::start_quorum(3, 0, Quorum::InitialControllers, FAST);
    let (view, _) = cluster.wait_view(1, WAIT, "three brokers and a controller", |v| {
        v.brokers == [1, 2, 3] && v.controller > 0
    });

    // The voter set comes from the log, seeded by --initial-controllers: directory ids as in
    // each node's meta.properties, endpoints its CONTROLLER listener.
    let q = cluster.describe_quorum(2);
    assert_eq!(q.error_code, 0, "{q:?}");
    assert_eq!(q.voter_ids(), [1, 2, 3], "{q:?}");
    for (id, dir) in &q.voters {
        assert_eq!(*dir, cluster.directory_id(*id), "voter {id}: {q:?}");
        let port = cluster.nodes[id].controller_port;
        assert_eq!(q.endpoints[id], format!("127.0.0.1:{port}"), "{q:?}");
    }
    assert!(q.observers.is_empty(), "{q:?}");

    // Metadata and data through any node; librdkafka reads back what it wrote.
    let follower = [1, 2, 3]
        .into_iter()
        .find(|id| *id != view.controller)
        .unwrap();
    create_topic(&cluster.nodes[&follower].bootstrap(), "dyn", 3, 3);
    cluster.wait_view(3, WAIT, "topic dyn", |v| v.topics.contains_key("dyn"));
    let producer = common::producer(&cluster.bootstrap(), &[("acks", "all")]);
    tokio_block(async {
        for i in 0..60 {
            let key = format!("k{i}");
            producer
                .send(
                    FutureRecord::to("dyn").key(&key).payload("v"),
                    Duration::from_secs(10),
                )
                .await
                .expect("acknowledged");
        }
    });
    let consumer = common::consumer(&cluster.bootstrap(), &[]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("dyn", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut read = 0;
    let deadline = Instant::now() + WAIT;
    while read < 60 && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            assert_eq!(m.payload(), Some(&b"v"[..]));
            read += 1;
        }
    }
    assert_eq!(read, 60, "every acknowledged record read back");

    // SIGKILL of the active controller: another takes over and metadata keeps committing.
    let old = cluster.quorum_leader(follower);
    assert!((1..=3).contains(&old), "leader {old}");
    cluster.kill9(old);
    let survivor = [1, 2, 3].into_iter().find(|id| *id != old).unwrap();
    let (new, took) = wait_new_leader(&cluster, survivor, old);
    eprintln!("dynamic quorum: controller {new} took over {took:?} after SIGKILL of {old}");
    create_topic(&cluster.nodes[&survivor].bootstrap(), "after-kill", 1, 2);
    // The killed node restarts from its formatted directory (the voter set is in its log, the
    // initial set is not applied again) and catches up.
    cluster.restart(old);
    let (back, _) = cluster.wait_view(old, WAIT, "the restarted node caught up", |v| {
        v.topics.contains_key("after-kill") && v.brokers == [1, 2, 3]
    });
    assert!(back.topics.contains_key("dyn"));
    assert_eq!(cluster.describe_quorum(old).voter_ids(), [1, 2, 3]);
}

/// (a) in the other layout: three dedicated controllers formatted with
/// `--initial-controllers` and a broker-only node that finds them through
/// `controller.quorum.bootstrap.servers`; the broker follows a new active controller after a
/// SIGKILL.
#[test]
fn dedicated_initial_controllers_serve_a_broker_through_bootstrap_servers() {
    let mut cluster = Cluster::start_quorum(3, 1, Quorum::InitialControllers, FAST);
    let broker = 4;
    cluster.wait_view(broker, WAIT, "broker 4 registered", |v| v.brokers == [4]);
    let q = cluster.describe_quorum(broker);
    assert_eq!(q.voter_ids(), [1, 2, 3], "{q:?}");
    create_topic(&cluster.nodes[&broker].bootstrap(), "dedicated", 2, 1);
    let old = q.leader;
    cluster.kill9(old);
    let (new, took) = wait_new_leader(&cluster, broker, old);
    eprintln!(
        "dedicated dynamic quorum: controller {new} took over {took:?} after SIGKILL of {old}"
    );
    create_topic(&cluster.nodes[&broker].bootstrap(), "after-kill", 1, 1);
    cluster.wait_view(broker, WAIT, "both topics", |v| {
        v.topics.contains_key("dedicated") && v.topics.contains_key("after-kill")
    });
}

/// (b) and (c): one `--standalone` controller, two more added with AddRaftVoter (`strom
/// cluster add-controller`), the first killed while the quorum carries on, then removed with
/// RemoveRaftVoter (`strom cluster remove-controller`). Bad requests get Kafka error codes.
#[test]
fn controllers_are_added_the_first_is_killed_and_removed() {
    let mut cluster = Cluster::start_quorum(3, 1, Quorum::Standalone, FAST);
    let broker = 4;
    cluster.wait_view(broker, WAIT, "broker 4 registered", |v| v.brokers == [4]);
    let q = cluster.describe_quorum(broker);
    assert_eq!((q.leader, q.voter_ids()), (1, vec![1]), "{q:?}");

    for id in [2, 3] {
        let started = Instant::now();
        let props = cluster.properties_path(id);
        let (ok, out) = cluster.cli(
            broker,
            &["cluster", "add-controller", "--command-config", &props],
        );
        assert!(ok, "add-controller {id}: {out}\n{}", cluster.log(id));
        eprintln!("controller {id} added in {:?}", started.elapsed());
    }
    let q = cluster.describe_quorum(broker);
    assert_eq!(q.voter_ids(), [1, 2, 3], "{q:?}");
    for (id, dir) in &q.voters {
        assert_eq!(*dir, cluster.directory_id(*id), "voter {id}");
    }
    let (ok, out) = cluster.cli(broker, &["cluster", "describe-quorum"]);
    assert!(ok && out.contains("Voter: 3"), "{out}");

    // UpdateRaftVoter: a voter's endpoint re-stated is accepted; an unknown voter is not.
    let port = cluster.nodes[&2].controller_port;
    let dir_2 = strom_metadata::storage::uuid_from_kafka_string(&cluster.directory_id(2)).unwrap();
    let update = |voter_id: i32| {
        let mut l = kafka_protocol::messages::update_raft_voter_request::Listener::default();
        l.name = StrBytes::from_static_str("CONTROLLER");
        l.host = StrBytes::from_static_str("127.0.0.1");
        l.port = port;
        UpdateRaftVoterRequest::default()
            .with_voter_id(voter_id)
            .with_voter_directory_id(dir_2)
            .with_listeners(vec![l])
    };
    let mut wire = Wire::connect(&cluster.nodes[&broker].bootstrap());
    let r: UpdateRaftVoterResponse = wire.call(ApiKey::UpdateRaftVoter, 0, &update(2));
    assert_eq!(r.error_code, 0, "{r:?}");
    let r: UpdateRaftVoterResponse = wire.call(ApiKey::UpdateRaftVoter, 0, &update(9));
    assert_eq!(r.error_code, ErrorCode::VoterNotFound.code(), "{r:?}");
    assert_eq!(
        cluster.describe_quorum(broker).endpoints[&2],
        format!("127.0.0.1:{port}")
    );

    // Adding a voter twice, or removing one under another directory id, is refused.
    let props = cluster.properties_path(3);
    let (ok, out) = cluster.cli(
        broker,
        &["cluster", "add-controller", "--command-config", &props],
    );
    assert!(!ok && out.contains("DUPLICATE_VOTER"), "{out}");
    let other_dir = strom(&["storage", "random-uuid"]);
    let (ok, out) = cluster.cli(
        broker,
        &[
            "cluster",
            "remove-controller",
            "--controller-id",
            "2",
            "--controller-directory-id",
            other_dir.trim(),
        ],
    );
    assert!(!ok && out.contains("VOTER_NOT_FOUND"), "{out}");

    // The first controller dies: the two added ones elect a leader and keep committing.
    create_topic(&cluster.nodes[&broker].bootstrap(), "before", 1, 1);
    cluster.kill9(1);
    let (new, took) = wait_new_leader(&cluster, broker, 1);
    assert!([2, 3].contains(&new));
    eprintln!("standalone-grown quorum: controller {new} took over {took:?} after SIGKILL of 1");
    create_topic(&cluster.nodes[&broker].bootstrap(), "after", 2, 1);
    let (view, _) = cluster.wait_view(broker, WAIT, "both topics", |v| {
        v.topics.contains_key("before") && v.topics.contains_key("after")
    });
    assert_eq!(view.topics["after"].len(), 2);

    // (c) The dead controller is removed: two voters remain, and they still commit.
    let dir_1 = cluster.directory_id(1);
    let (ok, out) = cluster.cli(
        broker,
        &[
            "cluster",
            "remove-controller",
            "--controller-id",
            "1",
            "--controller-directory-id",
            &dir_1,
        ],
    );
    assert!(ok, "remove-controller 1: {out}");
    let q = cluster.describe_quorum(broker);
    assert_eq!(q.voter_ids(), [2, 3], "{q:?}");
    let (ok, out) = cluster.cli(
        broker,
        &["cluster", "remove-controller", "--controller-id", "1"],
    );
    assert!(!ok && out.contains("VOTER_NOT_FOUND"), "{out}");
    create_topic(&cluster.nodes[&broker].bootstrap(), "after-removal", 1, 1);
    cluster.wait_view(broker, WAIT, "topic after-removal", |v| {
        v.topics.contains_key("after-removal")
    });

    // The active controller itself is removed: it steps down once the new voter set commits,
    // the other elects itself, and the last voter cannot be removed.
    let leader = cluster.quorum_leader(broker);
    let other = if leader == 2 { 3 } else { 2 };
    let id = leader.to_string();
    let (ok, out) = cluster.cli(
        broker,
        &["cluster", "remove-controller", "--controller-id", &id],
    );
    assert!(ok, "remove-controller {leader} (the leader): {out}");
    let (new, took) = wait_new_leader(&cluster, broker, leader);
    assert_eq!(new, other);
    eprintln!("removed leader {leader}: {other} leads alone {took:?} later");
    assert_eq!(cluster.describe_quorum(broker).voter_ids(), [other]);
    create_topic(&cluster.nodes[&broker].bootstrap(), "single-voter", 1, 1);
    let id = other.to_string();
    let (ok, out) = cluster.cli(
        broker,
        &["cluster", "remove-controller", "--controller-id", &id],
    );
    assert!(
        !ok && out.contains("INVALID_REQUEST") && out.contains("only voter"),
        "{out}"
    );
}

/// The combined layout grown from one node: node 1 formatted `--standalone`, nodes 2 and 3
/// (broker and controller each) `--no-initial-controllers`. Their brokers serve clients once
/// add-controller made them members; then every node is a voter and a broker.
#[test]
fn combined_nodes_join_a_standalone_quorum() {
    let mut cluster = Cluster::start_quorum(3, 0, Quorum::Standalone, FAST);
    cluster.wait_view(1, WAIT, "node 1 alone", |v| v.brokers == [1]);
    for id in [2, 3] {
        let props = cluster.properties_path(id);
        let (ok, out) = cluster.cli(
            1,
            &["cluster", "add-controller", "--command-config", &props],
        );
        assert!(ok, "add-controller {id}: {out}\n{}", cluster.log(id));
        cluster.wait_listening(id);
    }
    cluster.wait_view(3, WAIT, "three brokers", |v| v.brokers == [1, 2, 3]);
    assert_eq!(cluster.describe_quorum(2).voter_ids(), [1, 2, 3]);
    create_topic(&cluster.nodes[&3].bootstrap(), "grown", 3, 3);
    cluster.wait_view(2, WAIT, "topic grown", |v| v.topics.contains_key("grown"));
    // A controller that joined later restarts from its own log: it is still a voter (the
    // voter set is in the log, not in its formatted --no-initial-controllers state).
    cluster.kill9(3);
    create_topic(&cluster.nodes[&1].bootstrap(), "while-3-down", 1, 2);
    cluster.restart(3);
    cluster.wait_view(3, WAIT, "node 3 caught up", |v| {
        v.topics.contains_key("while-3-down") && v.brokers == [1, 2, 3]
    });
    assert_eq!(cluster.describe_quorum(3).voter_ids(), [1, 2, 3]);
}

/// A voter whose CONTROLLER listener moved corrects its own entry in the log's voter set at
/// start-up (Kafka's voters send UpdateRaftVoter for this), so the others can reach it.
#[test]
fn a_controller_whose_listener_moved_updates_its_own_entry() {
    let mut cluster = Cluster::start_quorum(1, 0, Quorum::Standalone, FAST);
    cluster.wait_view(1, WAIT, "node 1", |v| v.brokers == [1]);
    let old = cluster.nodes[&1].controller_port;
    assert_eq!(
        cluster.describe_quorum(1).endpoints[&1],
        format!("127.0.0.1:{old}")
    );
    assert!(cluster.stop(1));
    let new = common::free_port();
    let path = cluster.properties_path(1);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace(&format!(":{old}"), &format!(":{new}"))).unwrap();
    cluster.nodes.get_mut(&1).unwrap().controller_port = new;
    cluster.restart(1);
    let started = Instant::now();
    let want = format!("127.0.0.1:{new}");
    while cluster.describe_quorum(1).endpoints.get(&1) != Some(&want) {
        assert!(
            started.elapsed() < WAIT,
            "endpoint not updated: {:?}\n{}",
            cluster.describe_quorum(1),
            cluster.log(1)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "own endpoint updated {:?} after the restart",
        started.elapsed()
    );
}

/// A dynamic-quorum node refuses to start from an unformatted directory, naming the command
/// to run; a bad --initial-controllers is a clear error; a single-node broker answers the
/// voter APIs with UNSUPPORTED_VERSION (its quorum is not dynamic) and bad requests with
/// INVALID_REQUEST, never by dropping the connection.
#[test]
fn unformatted_storage_bad_flags_and_static_quorums_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let props = dir.path().join("c.properties");
    std::fs::write(
        &props,
        format!(
            "process.roles=controller\nnode.id=1\ncontroller.quorum.bootstrap.servers=127.0.0.1:{p}\nlisteners=CONTROLLER://127.0.0.1:{p}\ncontroller.listener.names=CONTROLLER\nlistener.security.protocol.map=CONTROLLER:PLAINTEXT\nlog.dirs={d}\n",
            p = common::free_port(),
            d = dir.path().join("data").display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strom"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let config = props.display().to_string();
    let (ok, err) = run(&["server", "--config", &config]);
    assert!(
        !ok && err.contains("is not formatted") && err.contains("strom storage format"),
        "{err}"
    );
    let id = strom(&["storage", "random-uuid"]);
    let (ok, err) = run(&[
        "storage",
        "format",
        "--config",
        &config,
        "--cluster-id",
        id.trim(),
        "--initial-controllers",
        "1@127.0.0.1:9093",
    ]);
    assert!(!ok && err.contains("is not a directory id"), "{err}");
    let (ok, err) = run(&[
        "storage",
        "format",
        "--config",
        &config,
        "--cluster-id",
        id.trim(),
        "--standalone",
        "--no-initial-controllers",
    ]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    let (ok, err) = run(&[
        "storage",
        "format",
        "--config",
        &config,
        "--cluster-id",
        "x",
        "-s",
    ]);
    assert!(!ok && err.contains("invalid cluster id 'x'"), "{err}");

    let server = common::Server::start(&[]);
    let mut wire = Wire::connect(&server.bootstrap());
    let mut listener = Listener::default();
    listener.name = StrBytes::from_static_str("CONTROLLER");
    listener.host = StrBytes::from_static_str("127.0.0.1");
    listener.port = 9093;
    let add = AddRaftVoterRequest::default()
        .with_voter_id(2)
        .with_voter_directory_id(strom_metadata::storage::Uuid::new_v4())
        .with_listeners(vec![listener])
        .with_timeout_ms(1000);
    let r: AddRaftVoterResponse = wire.call(ApiKey::AddRaftVoter, 0, &add);
    assert_eq!(r.error_code, ErrorCode::UnsupportedVersion.code(), "{r:?}");
    assert!(r.error_message.unwrap().contains("single-node"));
    let bad = AddRaftVoterRequest::default().with_voter_id(-5);
    let r: AddRaftVoterResponse = wire.call(ApiKey::AddRaftVoter, 0, &bad);
    assert_eq!(r.error_code, ErrorCode::InvalidRequest.code(), "{r:?}");
    let r: RemoveRaftVoterResponse = wire.call(
        ApiKey::RemoveRaftVoter,
        0,
        &RemoveRaftVoterRequest::default().with_voter_id(1),
    );
    assert_eq!(r.error_code, ErrorCode::UnsupportedVersion.code(), "{r:?}");
}

/// Kafka 4.1's own `kafka-metadata-quorum.sh` against a dynamic Strom quorum: describe
/// --status / --replication, add-controller (from the new controller's properties and
/// meta.properties) and remove-controller. Needs the Kafka distribution (`KAFKA_HOME`, or the
/// peers script's download under ~/.cache/strom-peers).
#[test]
#[ignore = "needs Kafka 4.1's tools: KAFKA_HOME or ~/.cache/strom-peers/kafka/kafka_2.13-4.1.0"]
fn kafka_metadata_quorum_tool_adds_and_removes_controllers() {
    let home = std::env::var("KAFKA_HOME").unwrap_or_else(|_| {
        format!(
            "{}/.cache/strom-peers/kafka/kafka_2.13-4.1.0",
            std::env::var("HOME").unwrap_or_default()
        )
    });
    let tool = format!("{home}/bin/kafka-metadata-quorum.sh");
    assert!(
        std::path::Path::new(&tool).exists(),
        "{tool} not found: set KAFKA_HOME to a Kafka 4.1 distribution"
    );
    let cluster = Cluster::start_quorum(3, 1, Quorum::Standalone, FAST);
    let broker = 4;
    cluster.wait_view(broker, WAIT, "broker 4 registered", |v| v.brokers == [4]);
    let bootstrap = cluster.nodes[&broker].bootstrap();
    let kafka = |args: &[&str]| {
        let out = std::process::Command::new(&tool)
            .args(["--bootstrap-server", &bootstrap])
            .args(args)
            .output()
            .expect("run kafka-metadata-quorum.sh");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, out) = kafka(&["describe", "--status"]);
    let dir_1 = cluster.directory_id(1);
    assert!(ok && out.contains("LeaderId:               1"), "{out}");
    assert!(
        out.contains(&format!("\"directoryId\": \"{dir_1}\"")),
        "{out}"
    );
    let props = cluster.properties_path(2);
    let (ok, out) = kafka(&["--command-config", &props, "add-controller"]);
    assert!(ok && out.contains("Added controller 2"), "{out}");
    let (ok, out) = kafka(&["describe", "--replication"]);
    assert!(ok && out.contains(&cluster.directory_id(2)), "{out}");
    let dir_2 = cluster.directory_id(2);
    let (ok, out) = kafka(&[
        "remove-controller",
        "--controller-id",
        "2",
        "--controller-directory-id",
        &dir_2,
    ]);
    assert!(ok && out.contains("Removed"), "{out}");
    assert_eq!(cluster.describe_quorum(broker).voter_ids(), [1]);
}
