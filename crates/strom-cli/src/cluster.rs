//! `strom cluster start`: a local multi-node cluster for development and tests, one `strom
//! server` process per node on loopback (as Redpanda's `rpk container start -n 3`, without
//! containers). Each node gets a Kafka-style `server.properties` in `DIR/node-N/` that an
//! operator could copy to a real machine; Ctrl-C stops every node with a controlled shutdown.
//! Also the dynamic quorum's administration (KIP-853, as `kafka-metadata-quorum.sh`):
//! `add-controller`, `remove-controller` and `describe-quorum`, sent to any broker.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

#[derive(Debug, clap::Args)]
pub(crate) struct ClusterArgs {
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ClusterCommand {
    /// Start N combined broker+controller nodes on 127.0.0.1 and run until Ctrl-C.
    Start(StartArgs),
    /// Make a running controller (formatted with --no-initial-controllers) a voter of the
    /// dynamic quorum (AddRaftVoter), reading its id, directory id and endpoint from its
    /// properties and meta.properties.
    AddController(AddControllerArgs),
    /// Remove a voter from the dynamic quorum (RemoveRaftVoter).
    RemoveController(RemoveControllerArgs),
    /// Print the quorum's leader, epoch, voters and observers (DescribeQuorum).
    DescribeQuorum(QuorumConnArgs),
    /// Brokers, racks, controller, quorum, replicas and leaders per broker, the
    /// under-replicated and offline partitions, and reassignments in progress (`--output
    /// json` for scripts).
    Status(crate::output::ConnArgs),
    /// Plan (`--dry-run`, the default) or run (`--execute`) moves that balance replicas,
    /// leaders and disk usage over the brokers, rack-aware, in bounded steps; `--cancel`
    /// reverts the moves in flight.
    Rebalance(crate::rebalance::RebalanceArgs),
    /// Move every replica off a broker (throttled with `--throttle`), wait until it hosts
    /// none, then unregister it so it can be stopped.
    Decommission(crate::rebalance::DecommissionArgs),
}

#[derive(Debug, clap::Args)]
struct QuorumConnArgs {
    /// A broker to send the request to (it forwards to the quorum leader).
    #[arg(
        long = "bootstrap-server",
        short = 'b',
        default_value = "127.0.0.1:9092"
    )]
    bootstrap: String,
}

#[derive(Debug, clap::Args)]
struct AddControllerArgs {
    #[command(flatten)]
    conn: QuorumConnArgs,
    /// The new controller's server.properties (kafka-metadata-quorum's --command-config).
    #[arg(
        long = "command-config",
        alias = "config",
        short = 'c',
        value_name = "FILE"
    )]
    config: PathBuf,
    /// How long the new controller may take to catch up.
    #[arg(long = "timeout-ms", default_value_t = 30_000)]
    timeout_ms: i32,
}

#[derive(Debug, clap::Args)]
struct RemoveControllerArgs {
    #[command(flatten)]
    conn: QuorumConnArgs,
    /// The voter's node.id.
    #[arg(long = "controller-id", short = 'i')]
    controller_id: i32,
    /// Its metadata directory id (checked against the voter's when given).
    #[arg(long = "controller-directory-id", short = 'd')]
    controller_directory_id: Option<String>,
}

#[derive(Debug, clap::Args)]
struct StartArgs {
    /// Number of nodes (each a broker and a controller voter).
    #[arg(long, short = 'n', default_value_t = 3)]
    nodes: u16,
    /// Where the nodes keep their properties, data and logs (reused on the next start).
    #[arg(long, default_value = "./strom-cluster")]
    dir: PathBuf,
    /// Client port of node 1; node N listens on BASE + 100*(N-1), its CONTROLLER listener
    /// one above.
    #[arg(long, default_value_t = 9092)]
    base_port: u16,
}

pub(crate) fn run(args: ClusterArgs) -> Result<()> {
    match args.command {
        ClusterCommand::Start(args) => start(args),
        ClusterCommand::AddController(args) => add_controller(args),
        ClusterCommand::RemoveController(args) => remove_controller(args),
        ClusterCommand::DescribeQuorum(args) => describe_quorum(args),
        ClusterCommand::Status(args) => status(args),
        ClusterCommand::Rebalance(args) => crate::rebalance::rebalance(args),
        ClusterCommand::Decommission(args) => crate::rebalance::decommission(args),
    }
}

async fn admin(conn: &QuorumConnArgs) -> Result<strom_client::Admin> {
    let mut config = strom_client::ClientConfig::new(&conn.bootstrap);
    config.client_id = "strom-cli".into();
    // A voter change waits for the new voter to catch up and the quorum to commit.
    config.request_timeout = Duration::from_secs(60);
    Ok(strom_client::Admin::new(config).await?)
}

fn add_controller(args: AddControllerArgs) -> Result<()> {
    use strom_metadata::storage;
    let (config, _) = strom_broker::config::BrokerConfig::load(Some(&args.config), &[])
        .context("invalid configuration")?;
    let dir = config.metadata_log_dir();
    let meta = storage::read_meta_properties(dir)?.ok_or_else(|| {
        anyhow::anyhow!(
            "{} is not formatted: format the new controller with `strom storage format --config {} --cluster-id ID --no-initial-controllers` and start it first",
            dir.display(),
            args.config.display()
        )
    })?;
    let directory_id = storage::uuid_from_kafka_string(&meta.directory_id)
        .with_context(|| format!("directory.id {} in meta.properties", meta.directory_id))?;
    let endpoint = storage::controller_endpoint(&config)?;
    let (host, port) = endpoint
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']).to_string(), p.parse().ok()?)))
        .context("controller endpoint")?;
    let listener = config
        .controller_listener()
        .map_or_else(|| "CONTROLLER".to_string(), |l| l.name.clone());
    let voter = strom_client::NewVoter {
        node_id: config.node_id(),
        directory_id: *directory_id.as_bytes(),
        listener,
        host,
        port,
    };
    crate::output::block_on(async {
        let admin = admin(&args.conn).await?;
        admin
            .add_raft_voter(Some(&meta.cluster_id), &voter, args.timeout_ms)
            .await?;
        println!(
            "Added controller {} ({endpoint}, directory id {}) as a voter",
            voter.node_id, meta.directory_id
        );
        Ok(())
    })
}

fn remove_controller(args: RemoveControllerArgs) -> Result<()> {
    let directory_id = match &args.controller_directory_id {
        Some(d) => *strom_metadata::storage::uuid_from_kafka_string(d)
            .with_context(|| format!("--controller-directory-id {d} is not a Kafka Uuid (22 characters of base64url)"))?
            .as_bytes(),
        None => [0; 16],
    };
    crate::output::block_on(async {
        let admin = admin(&args.conn).await?;
        admin
            .remove_raft_voter(None, args.controller_id, directory_id)
            .await?;
        println!("Removed controller {} from the voters", args.controller_id);
        Ok(())
    })
}

fn describe_quorum(args: QuorumConnArgs) -> Result<()> {
    crate::output::block_on(async {
        let admin = admin(&args).await?;
        let q = admin.describe_quorum().await?;
        println!(
            "LeaderId: {}\nLeaderEpoch: {}\nHighWatermark: {}",
            q.leader_id, q.leader_epoch, q.high_watermark
        );
        for (kind, replicas) in [("Voter", &q.voters), ("Observer", &q.observers)] {
            for r in replicas {
                println!(
                    "{kind}: {} directory={} endpoint={} logEndOffset={}",
                    r.node_id,
                    strom_metadata::storage::uuid_to_kafka_string(&uuid_bytes(r.directory_id)),
                    r.endpoint.as_deref().unwrap_or("-"),
                    r.log_end_offset
                );
            }
        }
        Ok(())
    })
}

/// `strom cluster status`: what an operator checks first, from DescribeCluster,
/// DescribeQuorum and Metadata of every topic (internal ones included).
fn status(args: crate::output::ConnArgs) -> Result<()> {
    use std::collections::BTreeMap;

    use serde_json::json;

    crate::output::block_on(async move {
        let admin = strom_client::Admin::new(args.client_config()?).await?;
        let cluster = admin.describe_cluster().await?;
        // A single node without a quorum listener still answers; an error is shown, not fatal.
        let quorum = admin.describe_quorum().await;
        let topics = admin.list_topics(true).await?;
        let reassignments: Vec<serde_json::Value> = admin
            .list_partition_reassignments(None)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                json!({
                    "partition": format!("{}-{}", r.topic, r.partition),
                    "replicas": r.replicas,
                    "adding": r.adding,
                    "removing": r.removing,
                })
            })
            .collect();
        // broker -> (replicas, leaders)
        let mut load: BTreeMap<i32, (usize, usize)> = BTreeMap::new();
        let mut under_replicated = Vec::new();
        let mut offline = Vec::new();
        let mut partitions = 0usize;
        for t in &topics {
            for p in &t.partitions {
                partitions += 1;
                for r in &p.replicas {
                    load.entry(*r).or_default().0 += 1;
                }
                if p.leader >= 0 {
                    load.entry(p.leader).or_default().1 += 1;
                }
                let name = format!("{}-{}", t.name, p.partition);
                let state = json!({"partition": name, "leader": p.leader, "replicas": p.replicas, "isr": p.isr});
                if p.leader < 0 {
                    offline.push(state);
                } else if p.isr.len() < p.replicas.len() {
                    under_replicated.push(state);
                }
            }
        }
        let live: BTreeMap<i32, &strom_client::BrokerInfo> =
            cluster.brokers.iter().map(|b| (b.node_id, b)).collect();
        let mut ids: Vec<i32> = live.keys().chain(load.keys()).copied().collect();
        ids.sort();
        ids.dedup();
        let brokers: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| {
                let (replicas, leaders) = load.get(id).copied().unwrap_or_default();
                let b = live.get(id);
                json!({
                    "id": id,
                    "endpoint": b.map(|b| format!("{}:{}", b.host, b.port)),
                    "rack": b.and_then(|b| b.rack.clone()),
                    "state": if b.is_some() { "live" } else { "fenced or offline" },
                    "controller": *id == cluster.controller_id,
                    "replicas": replicas,
                    "leaders": leaders,
                })
            })
            .collect();
        let quorum_json = match &quorum {
            Ok(q) => json!({
                "leader": q.leader_id,
                "epoch": q.leader_epoch,
                "high_watermark": q.high_watermark,
                "voters": q.voters.iter().map(|v| v.node_id).collect::<Vec<_>>(),
                "observers": q.observers.iter().map(|v| v.node_id).collect::<Vec<_>>(),
            }),
            Err(e) => json!({"error": e.to_string()}),
        };
        if args.output == crate::output::Format::Json {
            let all = json!({
                "cluster_id": cluster.cluster_id,
                "controller": cluster.controller_id,
                "quorum": quorum_json,
                "topics": topics.len(),
                "partitions": partitions,
                "brokers": brokers,
                "under_replicated": under_replicated,
                "offline": offline,
                "reassignments": reassignments,
            });
            println!("{all}");
            return Ok(());
        }
        println!("Cluster: {}", cluster.cluster_id);
        println!("Controller: {}", cluster.controller_id);
        match &quorum {
            Ok(q) => println!(
                "Quorum: leader {} epoch {} high watermark {} voters {:?} observers {:?}",
                q.leader_id,
                q.leader_epoch,
                q.high_watermark,
                q.voters.iter().map(|v| v.node_id).collect::<Vec<_>>(),
                q.observers.iter().map(|v| v.node_id).collect::<Vec<_>>()
            ),
            Err(e) => println!("Quorum: unavailable ({e})"),
        }
        println!(
            "Topics: {}  Partitions: {}  Under-replicated: {}  Offline: {}\n",
            topics.len(),
            partitions,
            under_replicated.len(),
            offline.len()
        );
        let mut table = crate::output::Table::new(&[
            "BROKER", "ENDPOINT", "RACK", "STATE", "REPLICAS", "LEADERS",
        ]);
        for b in &brokers {
            let id = b["id"].clone();
            let shown = if b["controller"] == json!(true) {
                json!(format!("{id} (controller)"))
            } else {
                id
            };
            table.row(vec![
                shown,
                b["endpoint"].clone(),
                b["rack"].clone(),
                b["state"].clone(),
                b["replicas"].clone(),
                b["leaders"].clone(),
            ]);
        }
        table.print(crate::output::Format::Table);
        for (title, list) in [
            ("Under-replicated", &under_replicated),
            ("Offline", &offline),
        ] {
            if list.is_empty() {
                continue;
            }
            println!("\n{title} partitions:");
            let mut t = crate::output::Table::new(&["PARTITION", "LEADER", "REPLICAS", "ISR"]);
            for p in list {
                t.row(vec![
                    p["partition"].clone(),
                    p["leader"].clone(),
                    p["replicas"].clone(),
                    p["isr"].clone(),
                ]);
            }
            t.print(crate::output::Format::Table);
        }
        if !reassignments.is_empty() {
            println!("\nReassignments in progress:");
            let mut t = crate::output::Table::new(&["PARTITION", "REPLICAS", "ADDING", "REMOVING"]);
            for r in &reassignments {
                t.row(vec![
                    r["partition"].clone(),
                    r["replicas"].clone(),
                    r["adding"].clone(),
                    r["removing"].clone(),
                ]);
            }
            t.print(crate::output::Format::Table);
        }
        Ok(())
    })
}

fn uuid_bytes(bytes: [u8; 16]) -> strom_metadata::storage::Uuid {
    strom_metadata::storage::Uuid::from_bytes(bytes)
}

fn ports(base: u16, node: u16) -> Result<(u16, u16)> {
    let client = u32::from(base) + 100 * u32::from(node - 1);
    if client + 1 > u32::from(u16::MAX) {
        bail!("--base-port {base} leaves no room for {node} nodes");
    }
    Ok((client as u16, client as u16 + 1))
}

/// The properties of node `id` of `n`, as an operator would write them for Kafka 4.1.
fn properties(dir: &Path, id: u16, n: u16, base: u16) -> Result<String> {
    let voters = (1..=n)
        .map(|i| ports(base, i).map(|(_, c)| format!("{i}@127.0.0.1:{c}")))
        .collect::<Result<Vec<_>>>()?
        .join(",");
    let (client, controller) = ports(base, id)?;
    Ok(format!(
        "# Written by `strom cluster start`; edit freely, it is reused on the next start.\n\
         process.roles=broker,controller\n\
         node.id={id}\n\
         controller.quorum.voters={voters}\n\
         listeners=PLAINTEXT://127.0.0.1:{client},CONTROLLER://127.0.0.1:{controller}\n\
         controller.listener.names=CONTROLLER\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
         log.dirs={data}\n\
         default.replication.factor={rf}\n",
        data = dir.join("data").display(),
        rf = n.min(3),
    ))
}

fn start(args: StartArgs) -> Result<()> {
    if args.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let exe = std::env::current_exe().context("cannot find the strom binary")?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let root = args.dir.canonicalize()?;
    let mut children: Vec<(u16, Child)> = Vec::new();
    let mut bootstrap = Vec::new();
    for id in 1..=args.nodes {
        let node_dir = root.join(format!("node-{id}"));
        std::fs::create_dir_all(&node_dir)?;
        let props = node_dir.join("server.properties");
        if !props.exists() {
            std::fs::write(
                &props,
                properties(&node_dir, id, args.nodes, args.base_port)?,
            )?;
        }
        let log = std::fs::File::create(node_dir.join("server.log"))?;
        let child = Command::new(&exe)
            .arg("server")
            .arg("--config")
            .arg(&props)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start node {id}"))?;
        children.push((id, child));
        bootstrap.push(format!("127.0.0.1:{}", ports(args.base_port, id)?.0));
    }
    // A node listens for clients once the quorum registered it.
    let deadline = Instant::now() + Duration::from_secs(120);
    for i in 0..children.len() {
        let id = children[i].0;
        while std::net::TcpStream::connect(&bootstrap[i]).is_err() {
            if let Some(status) = children[i].1.try_wait()? {
                stop_all(&mut children);
                bail!(
                    "node {id} exited ({status}); see {}",
                    root.join(format!("node-{id}/server.log")).display()
                );
            }
            if Instant::now() > deadline {
                stop_all(&mut children);
                bail!("node {id} did not start within 120 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    println!(
        "{} nodes up; bootstrap servers: {}\nnode directories (properties, data, server.log) under {}\nCtrl-C stops them all.",
        args.nodes,
        bootstrap.join(","),
        root.display()
    );
    wait_for_ctrl_c();
    println!("stopping {} nodes (controlled shutdown)...", children.len());
    stop_all(&mut children);
    Ok(())
}

/// Blocks until Ctrl-C or SIGTERM, as `strom server` waits for them.
fn wait_for_ctrl_c() {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a signal runtime")
        .block_on(crate::server::shutdown_signal());
}

/// SIGTERM to every node (a controlled shutdown each), then waits; SIGKILL after 30 s.
fn stop_all(children: &mut [(u16, Child)]) {
    for (_, child) in children.iter() {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (id, child) in children.iter_mut() {
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                _ if Instant::now() > deadline => {
                    eprintln!("node {id} did not stop within 30 s; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}
