//! Multi-process cluster harness: N real `strom server` processes on loopback, each started
//! from a Kafka-style `server.properties` (process.roles, node.id, controller.quorum.voters or,
//! for a dynamic quorum, controller.quorum.bootstrap.servers after `strom storage format`, a
//! CONTROLLER listener), with fault injection (SIGKILL, SIGTERM, SIGSTOP/SIGCONT, restart,
//! wiped data directory). Every process is killed when the cluster is dropped, paused ones
//! included, so a failing test leaves nothing behind.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, MetadataRequest, MetadataResponse};

use super::faultnet::FaultNet;
use super::free_port;
use super::wire::Wire;

/// One node's process and where it lives.
pub struct Node {
    pub id: i32,
    /// `broker,controller`, `controller` or `broker`.
    pub roles: &'static str,
    pub client_port: u16,
    pub controller_port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    paused: bool,
}

impl Node {
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    fn properties(&self) -> PathBuf {
        self.dir.join("server.properties")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn is_broker(&self) -> bool {
        self.roles.contains("broker")
    }
}

/// How the controllers find each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quorum {
    /// `controller.quorum.voters` (no format step).
    Static,
    /// `controller.quorum.bootstrap.servers`; every controller formatted with
    /// `--initial-controllers` naming all of them (KIP-853).
    InitialControllers,
    /// `controller.quorum.bootstrap.servers`; controller 1 formatted `--standalone`, the
    /// others `--no-initial-controllers` (they wait to be added).
    Standalone,
}

/// A cluster of combined (broker + controller) nodes `1..=n`.
pub struct Cluster {
    pub nodes: BTreeMap<i32, Node>,
    /// The proxies between nodes, for a cluster started with [`Cluster::start_partitionable`].
    pub net: Option<FaultNet>,
    /// Kept (not deleted) when the test fails, so the node logs can be read.
    tmp: Option<tempfile::TempDir>,
}

/// What DescribeQuorum v2 says.
#[derive(Debug, Clone)]
pub struct QuorumView {
    pub error_code: i16,
    pub leader: i32,
    /// (node id, directory id as Kafka prints it)
    pub voters: Vec<(i32, String)>,
    pub observers: Vec<(i32, String)>,
    /// node id -> host:port of its controller endpoint
    pub endpoints: BTreeMap<i32, String>,
}

impl QuorumView {
    pub fn voter_ids(&self) -> Vec<i32> {
        self.voters.iter().map(|(id, _)| *id).collect()
    }
}

/// 16 bytes as Kafka prints a Uuid (base64url, no padding).
fn kafka_uuid(bytes: &[u8; 16]) -> String {
    use strom_metadata::storage::{uuid_to_kafka_string, Uuid};
    uuid_to_kafka_string(&Uuid::from_bytes(*bytes))
}

/// A partition as Metadata describes it: (leader, replicas, ISR).
pub type PartitionView = (i32, Vec<i32>, Vec<i32>);

/// What a node's Metadata response says about the cluster.
#[derive(Debug, Clone)]
pub struct View {
    pub controller: i32,
    pub brokers: Vec<i32>,
    /// topic -> partition -> (leader, replicas, isr)
    pub topics: BTreeMap<String, BTreeMap<i32, PartitionView>>,
    pub topic_ids: BTreeMap<String, uuid::Uuid>,
}

impl Cluster {
    /// Starts `n` nodes with `extra` lines appended to every node's properties, and waits
    /// until each listens for clients (which it does once registered with the quorum).
    pub fn start(n: i32, extra: &[(&str, &str)]) -> Cluster {
        Self::start_layout(n, 0, extra)
    }

    /// `controllers` dedicated controllers (ids 1..) and `brokers` broker-only nodes after
    /// them; with `brokers == 0`, `controllers` combined nodes.
    pub fn start_layout(controllers: i32, brokers: i32, extra: &[(&str, &str)]) -> Cluster {
        Self::start_quorum(controllers, brokers, Quorum::Static, extra)
    }

    /// As [`Cluster::start_layout`], with the controllers' quorum formed as `quorum` says.
    /// Waits for every broker except combined nodes that wait to be added as voters.
    pub fn start_quorum(
        controllers: i32,
        brokers: i32,
        quorum: Quorum,
        extra: &[(&str, &str)],
    ) -> Cluster {
        Self::start_inner(controllers, brokers, quorum, extra, false, None)
    }

    /// `n` combined nodes whose brokers replicate over a listener BROKER of security
    /// protocol `protocol` (`inter.broker.listener.name=BROKER`); clients keep PLAINTEXT.
    /// `extra` holds the BROKER listener's TLS and SASL settings.
    pub fn start_with_inter_broker(n: i32, protocol: &str, extra: &[(&str, &str)]) -> Cluster {
        Self::start_inner(n, 0, Quorum::Static, extra, false, Some(protocol))
    }

    /// `n` combined nodes (static quorum) whose traffic to each other goes through a
    /// [`FaultNet`] (`cluster.net`), so links between nodes can be cut while clients still
    /// reach every node.
    pub fn start_partitionable(n: i32, extra: &[(&str, &str)]) -> Cluster {
        Self::start_inner(n, 0, Quorum::Static, extra, true, None)
    }

    fn start_inner(
        controllers: i32,
        brokers: i32,
        quorum: Quorum,
        extra: &[(&str, &str)],
        partitionable: bool,
        inter_broker: Option<&str>,
    ) -> Cluster {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut nodes = BTreeMap::new();
        let n = controllers + brokers;
        for id in 1..=n {
            let roles = match (brokers, id <= controllers) {
                (0, _) => "broker,controller",
                (_, true) => "controller",
                (_, false) => "broker",
            };
            let dir = tmp.path().join(format!("node-{id}"));
            std::fs::create_dir_all(&dir).unwrap();
            nodes.insert(
                id,
                Node {
                    id,
                    roles,
                    client_port: free_port(),
                    controller_port: free_port(),
                    dir,
                    child: None,
                    paused: false,
                },
            );
        }
        let voters: Vec<String> = nodes
            .values()
            .filter(|n| n.roles.contains("controller"))
            .map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller_port))
            .collect();
        let quorum_line = match quorum {
            Quorum::Static => format!("controller.quorum.voters={}", voters.join(",")),
            Quorum::InitialControllers | Quorum::Standalone => {
                let servers: Vec<String> = nodes
                    .values()
                    .filter(|n| n.roles.contains("controller"))
                    .map(|n| format!("127.0.0.1:{}", n.controller_port))
                    .collect();
                format!("controller.quorum.bootstrap.servers={}", servers.join(","))
            }
        };
        let net = partitionable
            .then(|| FaultNet::new(nodes.values().map(|n| (n.id, n.controller_port)).collect()));
        for node in nodes.values() {
            // What an operator writes for a Kafka 4.1 KRaft cluster, unchanged.
            let listeners = match node.roles {
                "controller" => format!("CONTROLLER://127.0.0.1:{}", node.controller_port),
                "broker" => format!("PLAINTEXT://127.0.0.1:{}", node.client_port),
                _ => format!(
                    "PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
                    node.client_port, node.controller_port
                ),
            };
            let network = match (&net, inter_broker) {
                (Some(net), _) => net.node_lines(node.id, node.client_port),
                (None, Some(protocol)) => format!(
                    "{quorum_line}\n\
                     listeners={listeners},BROKER://127.0.0.1:{broker_port}\n\
                     listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,BROKER:{protocol}\n\
                     inter.broker.listener.name=BROKER\n",
                    broker_port = free_port(),
                ),
                (None, None) => format!(
                    "{quorum_line}\n\
                     listeners={listeners}\n\
                     listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
                ),
            };
            let mut text = format!(
                "process.roles={roles}\n\
                 node.id={id}\n\
                 {network}\
                 controller.listener.names=CONTROLLER\n\
                 log.dirs={data}\n\
                 num.partitions=1\n\
                 offsets.topic.replication.factor=1\n\
                 transaction.state.log.replication.factor=1\n",
                roles = node.roles,
                id = node.id,
                data = node.dir.join("data").display(),
            );
            // `{id}` in a value is the node's id (per-node settings such as `broker.rack`).
            for (k, v) in extra {
                let v = v.replace("{id}", &node.id.to_string());
                text.push_str(&format!("{k}={v}\n"));
            }
            std::fs::write(node.properties(), text).unwrap();
        }
        let mut cluster = Cluster {
            nodes,
            net,
            tmp: Some(tmp),
        };
        cluster.format(quorum);
        let ids: Vec<i32> = cluster.nodes.keys().copied().collect();
        for id in &ids {
            cluster.spawn(*id);
        }
        for id in &ids {
            let waits_to_be_added = quorum == Quorum::Standalone
                && *id != 1
                && cluster.nodes[id].roles.contains("controller");
            if cluster.nodes[id].is_broker() && !waits_to_be_added {
                cluster.wait_listening(*id);
            }
        }
        cluster
    }

    /// Starts a new broker-only node (the next id) that joins the running cluster, as an
    /// operator adds a machine: its properties name the same static quorum, `extra` is
    /// appended. Waits until it listens (registered). Returns its id.
    pub fn add_broker(&mut self, extra: &[(&str, &str)]) -> i32 {
        assert!(self.net.is_none(), "not for a partitionable cluster");
        let id = self.nodes.keys().max().copied().unwrap_or(0) + 1;
        let voters: Vec<String> = self
            .nodes
            .values()
            .filter(|n| n.roles.contains("controller"))
            .map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller_port))
            .collect();
        let dir = self
            .tmp
            .as_ref()
            .expect("temp dir")
            .path()
            .join(format!("node-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let node = Node {
            id,
            roles: "broker",
            client_port: free_port(),
            controller_port: free_port(),
            dir,
            child: None,
            paused: false,
        };
        let mut text = format!(
            "process.roles=broker\n\
             node.id={id}\n\
             controller.quorum.voters={voters}\n\
             listeners=PLAINTEXT://127.0.0.1:{port}\n\
             listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
             controller.listener.names=CONTROLLER\n\
             log.dirs={data}\n\
             num.partitions=1\n\
             offsets.topic.replication.factor=1\n\
             transaction.state.log.replication.factor=1\n",
            voters = voters.join(","),
            port = node.client_port,
            data = node.dir.join("data").display(),
        );
        for (k, v) in extra {
            let v = v.replace("{id}", &id.to_string());
            text.push_str(&format!("{k}={v}\n"));
        }
        std::fs::write(node.properties(), text).unwrap();
        self.nodes.insert(id, node);
        self.spawn(id);
        self.wait_listening(id);
        id
    }

    /// Runs `strom storage format` on every node as `quorum` needs (nothing for a static one).
    fn format(&self, quorum: Quorum) {
        if quorum == Quorum::Static {
            return;
        }
        let cluster_id = strom(&["storage", "random-uuid"]);
        let cluster_id = cluster_id.trim();
        let initial: Vec<String> = self
            .nodes
            .values()
            .filter(|n| n.roles.contains("controller"))
            .map(|n| {
                let dir_id = strom(&["storage", "random-uuid"]);
                format!("{}@127.0.0.1:{}:{}", n.id, n.controller_port, dir_id.trim())
            })
            .collect();
        let initial = initial.join(",");
        for node in self.nodes.values() {
            let config = node.properties().display().to_string();
            let mut args = vec![
                "storage",
                "format",
                "--config",
                &config,
                "--cluster-id",
                cluster_id,
            ];
            if node.roles.contains("controller") {
                match quorum {
                    Quorum::InitialControllers => args.extend(["--initial-controllers", &initial]),
                    Quorum::Standalone if node.id == 1 => args.push("--standalone"),
                    _ => args.push("--no-initial-controllers"),
                }
            }
            strom(&args);
        }
    }

    /// Runs the `strom` CLI with `args` against node `id`'s client listener
    /// (`--bootstrap-server` appended); returns (success, stdout + stderr).
    pub fn cli(&self, id: i32, args: &[&str]) -> (bool, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_strom"))
            .args(args)
            .args(["--bootstrap-server", &self.nodes[&id].bootstrap()])
            .output()
            .expect("run strom");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// The path of node `id`'s server.properties.
    pub fn properties_path(&self, id: i32) -> String {
        self.nodes[&id].properties().display().to_string()
    }

    fn spawn(&mut self, id: i32) {
        let node = self.nodes.get_mut(&id).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(node.log_path())
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_strom"))
            .arg("server")
            .arg("--config")
            .arg(node.properties())
            .env(
                "STROM_LOG",
                std::env::var("STROM_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start strom");
        node.child = Some(child);
        node.paused = false;
    }

    /// Waits until node `id` accepts client connections.
    pub fn wait_listening(&mut self, id: i32) {
        let addr: SocketAddr = self.nodes[&id].bootstrap().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !strom_testkit::accepts(addr, Duration::from_millis(100)) {
            let node = self.nodes.get_mut(&id).unwrap();
            if let Some(Ok(Some(status))) = node.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "node {id} exited before listening: {status}\n{}",
                    self.log(id)
                );
            }
            assert!(
                Instant::now() < deadline,
                "node {id} did not listen within 60 s\n{}",
                self.log(id)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every running node's client address, comma-separated (a client's bootstrap list).
    pub fn bootstrap(&self) -> String {
        self.nodes
            .values()
            .filter(|n| n.is_running() && !n.paused && n.is_broker())
            .map(Node::bootstrap)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn log(&self, id: i32) -> String {
        std::fs::read_to_string(self.nodes[&id].log_path()).unwrap_or_default()
    }

    /// SIGKILL: a crash.
    pub fn kill9(&mut self, id: i32) {
        let node = self.nodes.get_mut(&id).unwrap();
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        node.paused = false;
    }

    /// SIGTERM, waiting for the exit; returns whether it exited cleanly.
    pub fn stop(&mut self, id: i32) -> bool {
        match self.nodes.get_mut(&id).unwrap().child.take() {
            Some(child) => super::terminate(child, Duration::from_secs(30)),
            None => false,
        }
    }

    /// SIGSTOP: the process hangs (a GC pause, a stuck disk) with its sockets open.
    pub fn pause(&mut self, id: i32) {
        let node = self.nodes.get_mut(&id).unwrap();
        signal(node.child.as_ref().expect("running").id(), "-STOP");
        node.paused = true;
    }

    /// SIGCONT after [`Cluster::pause`].
    pub fn resume(&mut self, id: i32) {
        let node = self.nodes.get_mut(&id).unwrap();
        signal(node.child.as_ref().expect("running").id(), "-CONT");
        node.paused = false;
    }

    /// Starts a stopped or killed node again from its properties and data directory.
    pub fn restart(&mut self, id: i32) {
        assert!(!self.nodes[&id].is_running(), "node {id} is running");
        self.spawn(id);
        if self.nodes[&id].is_broker() {
            self.wait_listening(id);
        }
    }

    /// Starts a stopped or killed node again without waiting for it to listen (a node
    /// expected never to join).
    pub fn restart_no_wait(&mut self, id: i32) {
        assert!(!self.nodes[&id].is_running(), "node {id} is running");
        self.spawn(id);
    }

    /// Whether node `id` accepts client connections now.
    pub fn is_listening(&self, id: i32) -> bool {
        let addr: SocketAddr = self.nodes[&id].bootstrap().parse().unwrap();
        strom_testkit::accepts(addr, Duration::from_millis(200))
    }

    /// Deletes a stopped node's data directory (a replaced disk).
    pub fn wipe(&mut self, id: i32) {
        assert!(!self.nodes[&id].is_running(), "node {id} is running");
        let _ = std::fs::remove_dir_all(self.nodes[&id].dir.join("data"));
    }

    /// Metadata (v12, all topics) as node `id` answers it.
    pub fn view(&self, id: i32) -> View {
        let mut wire = Wire::connect(&self.nodes[&id].bootstrap());
        let r: MetadataResponse = wire.call(
            ApiKey::Metadata,
            12,
            &MetadataRequest::default().with_topics(None),
        );
        let mut topics = BTreeMap::new();
        let mut topic_ids = BTreeMap::new();
        for t in r.topics {
            let name = t.name.map(|n| n.0.to_string()).unwrap_or_default();
            topic_ids.insert(name.clone(), t.topic_id);
            let parts = t
                .partitions
                .into_iter()
                .map(|p| {
                    (
                        p.partition_index,
                        (
                            p.leader_id.0,
                            p.replica_nodes.into_iter().map(|b| b.0).collect(),
                            p.isr_nodes.into_iter().map(|b| b.0).collect(),
                        ),
                    )
                })
                .collect();
            topics.insert(name, parts);
        }
        let mut brokers: Vec<i32> = r.brokers.into_iter().map(|b| b.node_id.0).collect();
        brokers.sort();
        View {
            controller: r.controller_id.0,
            brokers,
            topics,
            topic_ids,
        }
    }

    /// DescribeQuorum v2 through node `id`: the leader, voters and observers as
    /// (node id, directory id in Kafka's string form), and each voter's endpoint.
    pub fn describe_quorum(&self, id: i32) -> QuorumView {
        use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
        use kafka_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse, TopicName};
        use kafka_protocol::protocol::StrBytes;
        let mut partition = PartitionData::default();
        partition.partition_index = 0;
        let mut topic = TopicData::default();
        topic.topic_name = TopicName(StrBytes::from_static_str("__cluster_metadata"));
        topic.partitions = vec![partition];
        let mut wire = Wire::connect(&self.nodes[&id].bootstrap());
        let r: DescribeQuorumResponse = wire.call(
            ApiKey::DescribeQuorum,
            2,
            &DescribeQuorumRequest::default().with_topics(vec![topic]),
        );
        let p = &r.topics[0].partitions[0];
        let replicas =
            |list: &[kafka_protocol::messages::describe_quorum_response::ReplicaState]| {
                list.iter()
                    .map(|s| {
                        (
                            s.replica_id.0,
                            kafka_uuid(s.replica_directory_id.as_bytes()),
                        )
                    })
                    .collect()
            };
        QuorumView {
            error_code: p.error_code,
            leader: p.leader_id.0,
            voters: replicas(&p.current_voters),
            observers: replicas(&p.observers),
            endpoints: r
                .nodes
                .iter()
                .map(|n| {
                    let l = &n.listeners[0];
                    (n.node_id.0, format!("{}:{}", l.host, l.port))
                })
                .collect(),
        }
    }

    /// `directory.id` of node `id`'s metadata directory (its `log.dirs`).
    pub fn directory_id(&self, id: i32) -> String {
        let text =
            std::fs::read_to_string(self.nodes[&id].dir.join("data").join("meta.properties"))
                .expect("meta.properties");
        text.lines()
            .find_map(|l| l.strip_prefix("directory.id="))
            .expect("directory.id")
            .to_string()
    }

    /// The active controller as DescribeQuorum through node `id` names it (-1 if unknown).
    pub fn quorum_leader(&self, id: i32) -> i32 {
        use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
        use kafka_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse, TopicName};
        use kafka_protocol::protocol::StrBytes;
        let mut partition = PartitionData::default();
        partition.partition_index = 0;
        let mut topic = TopicData::default();
        topic.topic_name = TopicName(StrBytes::from_static_str("__cluster_metadata"));
        topic.partitions = vec![partition];
        let mut wire = Wire::connect(&self.nodes[&id].bootstrap());
        let r: DescribeQuorumResponse = wire.call(
            ApiKey::DescribeQuorum,
            1,
            &DescribeQuorumRequest::default().with_topics(vec![topic]),
        );
        let p = &r.topics[0].partitions[0];
        if p.error_code == 0 {
            p.leader_id.0
        } else {
            -1
        }
    }

    /// Polls node `id`'s view until `ok` holds; returns it and how long that took.
    pub fn wait_view(
        &self,
        id: i32,
        timeout: Duration,
        what: &str,
        ok: impl Fn(&View) -> bool,
    ) -> (View, Duration) {
        let start = Instant::now();
        loop {
            let view = self.view(id);
            if ok(&view) {
                return (view, start.elapsed());
            }
            assert!(
                start.elapsed() < timeout,
                "node {id}: {what} not seen within {timeout:?}; last view: {view:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Runs the `strom` CLI and returns its stdout; panics with its output if it fails.
pub fn strom(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(args)
        .output()
        .expect("run strom");
    assert!(
        out.status.success(),
        "strom {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(sig).arg(pid.to_string()).status();
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids: Vec<i32> = self.nodes.keys().copied().collect();
        for id in ids {
            if self.nodes[&id].paused {
                self.resume(id);
            }
            self.kill9(id);
        }
        // A failed test keeps its nodes' logs; STROM_KEEP=1 keeps them for passing runs too
        // (to compare timings between runs).
        if std::thread::panicking() || std::env::var_os("STROM_KEEP").is_some() {
            if let Some(tmp) = self.tmp.take() {
                eprintln!("node directories and logs kept in {}", tmp.keep().display());
            }
        }
    }
}
