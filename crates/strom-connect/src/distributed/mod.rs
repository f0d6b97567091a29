//! Distributed mode (Kafka's `connect-distributed.sh WORKER.properties`): workers with the
//! same `group.id` form a group through the classic group protocol (protocol type
//! `connect`, Kafka's Connect protocol: v1 `compatible`, incremental cooperative, by
//! default, or v0 `default`, eager, with `connect.protocol=eager`); connector configs,
//! statuses and source offsets live in compacted internal topics (see `store`). With the
//! cooperative protocol workers keep running through a rebalance: the leader balances
//! connectors and tasks while leaving each where it runs, takes surplus work back (its
//! worker stops it and rejoins, and the next round hands it out) and hands out at once
//! what nobody runs (new work, or a dead worker's). With the eager one every worker stops
//! everything before rejoining and the leader assigns round-robin. The leader also turns
//! connector configs into task configs and is the one that writes to the config topic:
//! other workers forward REST writes to it (see `rest`).

mod eos;
pub mod http;
pub mod protocol;
mod rest;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value as J};
use strom_client::{Admin, ClientConfig, GroupMember, GroupMemberConfig, Producer, ProducerConfig};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio::task::JoinHandle;

use crate::config::{get_parsed, read_properties, Props};
use crate::connector::{Connector, ConnectorType, Task};
use crate::error::{ConnectError, Result};
use crate::plugins::{ConnectorPlugin, Plugins};
use crate::runner::{run_sink, run_source, TaskContext};
use crate::verifiable::{VerifiableSourceConnector, VERIFIABLE_SOURCE_CLASS};
use crate::worker::{State, Status, TargetState, WorkerConfig};
use protocol::{Assignment, Share, WorkerState};
use store::{ConfigView, Tail, TopicOffsets};

/// How often a worker publishes status changes and the leader checks task configs.
const TICK: Duration = Duration::from_millis(250);
/// How long a stopping task may take before it is aborted.
const TASK_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Distributed-mode worker settings (Kafka Connect's names and defaults).
#[derive(Debug, Clone)]
pub struct DistributedConfig {
    pub group_id: String,
    pub config_topic: String,
    pub offset_topic: String,
    pub status_topic: String,
    pub config_rf: i16,
    pub offset_rf: i16,
    pub status_rf: i16,
    pub offset_partitions: i32,
    pub status_partitions: i32,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub rebalance_timeout: Duration,
    /// `exactly.once.source.support=enabled`.
    pub exactly_once: bool,
    /// `connect.protocol`: `eager` offers only `default`; `compatible` (and `sessioned`,
    /// served as `compatible`) offers incremental cooperative rebalancing first.
    pub cooperative: bool,
}

fn required(props: &Props, key: &str) -> Result<String> {
    props
        .get(key)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ConnectError::WorkerConfig(format!(
                "Missing required configuration \"{key}\" which has no default value."
            ))
        })
}

impl DistributedConfig {
    pub fn from_props(props: &Props) -> Result<DistributedConfig> {
        let num = |k: &str, d: i64| -> Result<i64> {
            get_parsed(props, k, d).map_err(|e| ConnectError::WorkerConfig(e.to_string()))
        };
        let ms = |k: &str, d: i64| -> Result<Duration> {
            Ok(Duration::from_millis(num(k, d)?.max(1) as u64))
        };
        let eos = props
            .get("exactly.once.source.support")
            .map(|s| s.trim().to_ascii_lowercase())
            .unwrap_or_else(|| "disabled".into());
        if !["enabled", "preparing", "disabled"].contains(&eos.as_str()) {
            return Err(ConnectError::WorkerConfig(format!(
                "Invalid value {eos} for configuration exactly.once.source.support: String must be one of: enabled, preparing, disabled"
            )));
        }
        // -1 asks for the broker's default (`default.replication.factor`, `num.partitions`).
        let rf = |k: &str| -> Result<i16> {
            let v = num(k, 3)?;
            Ok(if v < 1 {
                -1
            } else {
                v.min(i16::MAX as i64) as i16
            })
        };
        let parts = |k: &str, d: i64| -> Result<i32> {
            let v = num(k, d)?;
            Ok(if v < 1 {
                -1
            } else {
                v.min(i32::MAX as i64) as i32
            })
        };
        Ok(DistributedConfig {
            group_id: required(props, "group.id")?,
            config_topic: required(props, "config.storage.topic")?,
            offset_topic: required(props, "offset.storage.topic")?,
            status_topic: required(props, "status.storage.topic")?,
            config_rf: rf("config.storage.replication.factor")?,
            offset_rf: rf("offset.storage.replication.factor")?,
            status_rf: rf("status.storage.replication.factor")?,
            offset_partitions: parts("offset.storage.partitions", 25)?,
            status_partitions: parts("status.storage.partitions", 5)?,
            session_timeout: ms("session.timeout.ms", 10_000)?,
            heartbeat_interval: ms("heartbeat.interval.ms", 3_000)?,
            rebalance_timeout: ms("rebalance.timeout.ms", 60_000)?,
            exactly_once: eos == "enabled",
            cooperative: match props
                .get("connect.protocol")
                .map(|s| s.trim().to_ascii_lowercase())
                .as_deref()
            {
                None | Some("compatible") | Some("sessioned") => true,
                Some("eager") => false,
                Some(other) => {
                    return Err(ConnectError::WorkerConfig(format!(
                        "Invalid value {other} for configuration connect.protocol: String must be one of: eager, compatible, sessioned"
                    )))
                }
            },
        })
    }
}

/// Commands the REST side gives the worker loop.
enum Command {
    RestartTask(String, usize, oneshot::Sender<Result<()>>),
}

/// Who leads the group, as this worker last learned it.
#[derive(Debug, Clone, Default)]
struct Leadership {
    is_leader: bool,
    leader_url: Option<String>,
}

/// What every part of a distributed worker shares.
pub struct Herder {
    pub dist: DistributedConfig,
    pub worker: Arc<WorkerConfig>,
    pub plugins: Plugins,
    /// This worker's REST URL (`http://host:port/`), advertised in the group.
    pub url: String,
    /// `host:port`, the `worker_id` of statuses.
    pub worker_id: String,
    view: Arc<Mutex<ConfigView>>,
    statuses: Arc<Mutex<BTreeMap<String, J>>>,
    config_tail: Tail,
    status_tail: Tail,
    offsets: Arc<TopicOffsets>,
    producer: Producer,
    leadership: Mutex<Leadership>,
    commands: mpsc::UnboundedSender<Command>,
    config_changed: Arc<Notify>,
}

impl std::fmt::Debug for Herder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Herder")
            .field("worker_id", &self.worker_id)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Herder {
    pub fn view(&self) -> ConfigView {
        lock(&self.view).clone()
    }

    pub fn statuses(&self) -> BTreeMap<String, J> {
        lock(&self.statuses).clone()
    }

    pub fn offsets(&self) -> &TopicOffsets {
        &self.offsets
    }

    fn leadership(&self) -> Leadership {
        lock(&self.leadership).clone()
    }

    /// Waits until everything written to the config topic so far is in the view.
    pub async fn sync_config(&self) -> Result<()> {
        self.config_tail.read_to_end().await
    }

    pub async fn sync_status(&self) -> Result<()> {
        self.status_tail.read_to_end().await
    }

    pub async fn write_config(&self, records: Vec<(String, Option<Vec<u8>>)>) -> Result<()> {
        store::write(&self.producer, &self.dist.config_topic, records).await?;
        self.sync_config().await
    }

    pub async fn write_status(&self, records: Vec<(String, Option<Vec<u8>>)>) -> Result<()> {
        store::write(&self.producer, &self.dist.status_topic, records).await
    }

    async fn restart_task(&self, name: &str, task: usize) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::RestartTask(name.to_owned(), task, tx))
            .map_err(|_| ConnectError::Task("the worker is shutting down".into()))?;
        rx.await
            .map_err(|_| ConnectError::Task("the worker is shutting down".into()))?
    }
}

/// A task this worker runs.
struct LocalTask {
    config: Props,
    status: Arc<Mutex<Status>>,
    topics: Arc<Mutex<BTreeSet<String>>>,
    target: watch::Sender<TargetState>,
    join: JoinHandle<()>,
}

/// A connector instance this worker runs.
struct LocalConnector {
    config: Props,
    instance: Option<Box<dyn Connector>>,
    status: Status,
}

/// The worker loop's own state.
struct Local {
    connectors: BTreeMap<String, LocalConnector>,
    tasks: BTreeMap<(String, usize), LocalTask>,
    /// Status records as last published (key → value).
    published: BTreeMap<String, J>,
    generation: i32,
    /// The last restart request handled (config topic offset).
    restarts_seen: i64,
    /// Leader: task configs last written per connector, and the shape last assigned.
    written: BTreeMap<String, Vec<Props>>,
    assigned_shape: Option<BTreeMap<String, usize>>,
}

impl Local {
    /// What this worker runs, as the cooperative protocol reports it.
    fn share(&self) -> Share {
        (
            self.connectors.keys().cloned().collect(),
            self.tasks.keys().cloned().collect(),
        )
    }
}

/// Stops the given connectors and tasks (tasks commit their offsets first).
async fn revoke(local: &mut Local, what: &Share) {
    let tasks: Vec<LocalTask> = what
        .1
        .iter()
        .filter_map(|k| local.tasks.remove(k))
        .collect();
    stop_tasks(tasks).await;
    for c in &what.0 {
        if let Some(mut lc) = local.connectors.remove(c) {
            if let Some(mut i) = lc.instance.take() {
                i.stop();
            }
        }
    }
}

fn status_value(s: &Status, worker_id: &str, generation: i32) -> J {
    json!({"state": s.state.name(), "trace": s.trace, "worker_id": worker_id, "generation": generation})
}

fn state_of(t: TargetState) -> State {
    match t {
        TargetState::Started => State::Running,
        TargetState::Paused => State::Paused,
        TargetState::Stopped => State::Stopped,
    }
}

/// The plugins of a distributed worker: the built-ins and Kafka's verifiable source.
pub fn plugins() -> Plugins {
    fn make() -> Box<dyn Connector> {
        Box::new(VerifiableSourceConnector::default())
    }
    let mut p = Plugins::builtin();
    // Only fails if a built-in took the name already, which then serves it.
    let _ = p.register(ConnectorPlugin {
        class: VERIFIABLE_SOURCE_CLASS,
        aliases: &[],
        connector_type: ConnectorType::Source,
        make,
    });
    p
}

/// A running distributed worker.
#[derive(Debug)]
pub struct Distributed {
    pub addr: SocketAddr,
    pub herder: Arc<Herder>,
    server: JoinHandle<()>,
    stop_server: oneshot::Sender<()>,
    stop_loop: watch::Sender<bool>,
    worker_loop: JoinHandle<()>,
}

impl Distributed {
    pub async fn start(props: Props) -> Result<Distributed> {
        let dist = DistributedConfig::from_props(&props)?;
        let mut wprops = props.clone();
        // The standalone worker's check wants an offsets file; distributed mode has a topic.
        wprops.remove("offset.storage.file.filename");
        let worker = WorkerConfig::from_props(wprops)?;
        let listener = tokio::net::TcpListener::bind(worker.listen_addr())
            .await
            .map_err(|e| {
                ConnectError::WorkerConfig(format!("cannot listen on {}: {e}", worker.listener))
            })?;
        let addr = listener.local_addr()?;
        let worker_id = advertised(&worker, addr);
        let url = format!("http://{worker_id}/");
        let bootstrap = worker.bootstrap_servers.clone();

        let admin = Admin::new(ClientConfig::new(&bootstrap)).await?;
        let config_parts =
            store::ensure_topic(&admin, &dist.config_topic, 1, dist.config_rf).await?;
        if config_parts != 1 {
            return Err(ConnectError::WorkerConfig(format!(
                "Topic '{}' supplied via the 'config.storage.topic' property is required to have a single partition in order to guarantee consistency of connector configurations, but it has {config_parts} partitions",
                dist.config_topic
            )));
        }
        let offset_parts = store::ensure_topic(
            &admin,
            &dist.offset_topic,
            dist.offset_partitions,
            dist.offset_rf,
        )
        .await?;
        let status_parts = store::ensure_topic(
            &admin,
            &dist.status_topic,
            dist.status_partitions,
            dist.status_rf,
        )
        .await?;

        let view = Arc::new(Mutex::new(ConfigView::default()));
        let config_changed = Arc::new(Notify::new());
        let (v, n) = (view.clone(), config_changed.clone());
        let config_tail = Tail::start(&bootstrap, &dist.config_topic, 1, false, move |r| {
            let key = r
                .key
                .as_deref()
                .map(|k| String::from_utf8_lossy(k).into_owned());
            if let Some(key) = key {
                lock(&v).apply(&key, r.value.as_deref(), r.offset);
                n.notify_one();
            }
        })
        .await?;
        let statuses = Arc::new(Mutex::new(BTreeMap::new()));
        let s = statuses.clone();
        let status_tail = Tail::start(&bootstrap, &dist.status_topic, status_parts, false, {
            move |r| {
                let Some(key) = r.key.as_deref() else { return };
                let key = String::from_utf8_lossy(key).into_owned();
                let value: Option<J> = r
                    .value
                    .as_deref()
                    .and_then(|v| serde_json::from_slice(v).ok());
                let mut m = lock(&s);
                match value {
                    Some(v) => m.insert(key, v),
                    None => m.remove(&key),
                };
            }
        })
        .await?;
        let offsets =
            Arc::new(TopicOffsets::open(&bootstrap, &dist.offset_topic, offset_parts).await?);
        config_tail.read_to_end().await?;
        status_tail.read_to_end().await?;
        let mut pc = ProducerConfig::new(&bootstrap);
        pc.set("acks", "all")?;
        let producer = Producer::new(pc).await?;
        let (commands, command_rx) = mpsc::unbounded_channel();
        let herder = Arc::new(Herder {
            dist,
            worker: Arc::new(worker),
            plugins: plugins(),
            url,
            worker_id,
            view,
            statuses,
            config_tail,
            status_tail,
            offsets,
            producer,
            leadership: Mutex::new(Leadership::default()),
            commands,
            config_changed,
        });

        let member = GroupMember::connect(ClientConfig::new(&bootstrap), {
            let mut c = GroupMemberConfig::new(&herder.dist.group_id, protocol::PROTOCOL_TYPE);
            c.session_timeout = herder.dist.session_timeout;
            c.heartbeat_interval = herder.dist.heartbeat_interval;
            c.rebalance_timeout = herder.dist.rebalance_timeout;
            c
        })
        .await?;
        let (stop_loop, stopping) = watch::channel(false);
        let worker_loop = tokio::spawn(run_loop(herder.clone(), member, command_rx, stopping));

        let app = rest::router(herder.clone());
        let (stop_server, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(e) = serve.await {
                tracing::error!("Connect REST server failed: {e}");
            }
        });
        tracing::info!(
            "Strom Connect distributed worker {} (group {}) listening on http://{addr}",
            herder.worker_id,
            herder.dist.group_id
        );
        Ok(Distributed {
            addr,
            herder,
            server,
            stop_server,
            stop_loop,
            worker_loop,
        })
    }

    /// Stops every task (committing offsets), leaves the group, stops the REST server.
    pub async fn stop(self) {
        let _ = self.stop_loop.send(true);
        let _ = self.worker_loop.await;
        let _ = self.stop_server.send(());
        let _ = self.server.await;
    }
}

/// `rest.advertised.host.name` / `rest.advertised.port` where set, else the bound address
/// (the machine's host name for a wildcard address, which other workers could not reach).
fn advertised(config: &WorkerConfig, bound: SocketAddr) -> String {
    let host = config
        .props
        .get("rest.advertised.host.name")
        .filter(|h| !h.trim().is_empty())
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|| {
            if bound.ip().is_unspecified() {
                std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_owned())
                    .ok()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "localhost".into())
            } else {
                bound.ip().to_string()
            }
        });
    let port = config
        .props
        .get("rest.advertised.port")
        .and_then(|p| p.trim().parse::<u16>().ok())
        .unwrap_or(bound.port());
    format!("{host}:{port}")
}

/// Runs a distributed worker from Kafka Connect's worker properties until `shutdown`.
pub async fn run(worker_props_path: &Path, shutdown: impl Future<Output = ()>) -> Result<()> {
    let props = read_properties(worker_props_path)?;
    let running = Distributed::start(props).await?;
    shutdown.await;
    running.stop().await;
    Ok(())
}

/// The group loop: join, (lead), sync, run the assignment until the next rebalance.
async fn run_loop(
    h: Arc<Herder>,
    mut member: GroupMember,
    mut commands: mpsc::UnboundedReceiver<Command>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut local = Local {
        connectors: BTreeMap::new(),
        tasks: BTreeMap::new(),
        published: BTreeMap::new(),
        generation: -1,
        restarts_seen: -1,
        written: BTreeMap::new(),
        assigned_shape: None,
    };
    // Restart requests older than this worker are history.
    local.restarts_seen = h.view().offset - 1;
    'rebalance: loop {
        if *stopping.borrow() {
            break;
        }
        // Eager protocol: give everything up before joining.
        if !h.dist.cooperative {
            stop_all(&h, &mut local).await;
        }
        *lock(&h.leadership) = Leadership::default();
        if let Err(e) = h.sync_config().await {
            tracing::warn!("reading the config topic: {e}");
        }
        let running = local.share();
        let joined = async {
            let state = WorkerState {
                url: h.url.clone(),
                config_offset: h.view().offset,
                allocation: None,
            };
            let mut protocols = Vec::new();
            if h.dist.cooperative {
                let v1 = WorkerState {
                    allocation: Some(running),
                    ..state.clone()
                };
                protocols.push((
                    protocol::PROTOCOL_COMPATIBLE.to_owned(),
                    protocol::encode_metadata(&v1),
                ));
            }
            protocols.push((
                protocol::PROTOCOL_DEFAULT.to_owned(),
                protocol::encode_metadata(&state),
            ));
            let joined = member.join(&protocols).await?;
            let (assignments, shape) = if joined.is_leader() {
                lead(&h, &joined)?
            } else {
                (Vec::new(), None)
            };
            let mine = member.sync(&joined, assignments).await?;
            Ok::<_, ConnectError>((joined, mine, shape))
        };
        let (joined, mine, shape) = tokio::select! {
            r = joined => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!("joining group {}: {e}", h.dist.group_id);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue 'rebalance;
                }
            },
            _ = stopping.changed() => break 'rebalance,
        };
        let Some(bytes) = mine else {
            continue 'rebalance;
        };
        let cooperative = joined.protocol.as_deref() == Some(protocol::PROTOCOL_COMPATIBLE);
        let a = match protocol::decode_assignment(bytes) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("{e}; rejoining");
                continue 'rebalance;
            }
        };
        if a.error != protocol::NO_ERROR {
            // A member had read more of the config topic than the leader: all read and rejoin.
            tracing::info!("config offsets differ in the group; reading on and rejoining");
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue 'rebalance;
        }
        local.generation = joined.generation_id;
        local.assigned_shape = shape;
        *lock(&h.leadership) = Leadership {
            is_leader: joined.is_leader(),
            leader_url: Some(a.leader_url.clone()),
        };
        tracing::info!(
            "worker {} joined generation {} ({}, {}): connectors {:?}, tasks {:?}, revoked {:?}",
            h.worker_id,
            joined.generation_id,
            if joined.is_leader() {
                "leader"
            } else {
                "follower"
            },
            joined.protocol.as_deref().unwrap_or(""),
            a.connectors,
            a.tasks,
            a.revoked
        );
        // The assignment was made from the leader's view at `config_offset`.
        let mut tries = 0;
        while h.view().offset < a.config_offset && tries < 3 {
            tries += 1;
            if let Err(e) = h.sync_config().await {
                tracing::warn!("reading the config topic: {e}");
            }
        }
        if h.view().offset < a.config_offset {
            continue 'rebalance;
        }
        if let Err(e) = h.offsets.tail.read_to_end().await {
            tracing::warn!("reading the offsets topic: {e}");
        }
        if cooperative {
            // Stop what was taken away, then rejoin so that others get it.
            revoke(&mut local, &a.revoked).await;
            if !a.revoked.0.is_empty() || !a.revoked.1.is_empty() {
                member.request_rejoin();
            }
        } else {
            // An eager assignment is the whole of it (we may have offered `compatible`).
            let keep: Share = (a.connectors.clone(), a.tasks.clone());
            let mut extra = local.share();
            extra.0.retain(|c| !keep.0.contains(c));
            extra.1.retain(|t| !keep.1.contains(t));
            revoke(&mut local, &extra).await;
        }
        start_assignment(&h, &mut local, &a).await;
        loop {
            tokio::select! {
                _ = member.rebalance_notified() => continue 'rebalance,
                _ = h.config_changed.notified() => {
                    reconcile(&h, &mut local, &member).await;
                }
                Some(cmd) = commands.recv() => match cmd {
                    Command::RestartTask(name, i, reply) => {
                        let r = restart_local_task(&h, &mut local, &name, i).await;
                        let _ = reply.send(r);
                    }
                },
                _ = tokio::time::sleep(TICK) => {
                    if h.leadership().is_leader {
                        leader_duties(&h, &mut local, &member).await;
                    }
                    publish_statuses(&h, &mut local).await;
                }
                _ = stopping.changed() => break 'rebalance,
            }
        }
    }
    stop_all(&h, &mut local).await;
    if let Err(e) = member.leave().await {
        tracing::warn!("leaving group {}: {e}", h.dist.group_id);
    }
}

type Assignments = Vec<(String, Bytes)>;

/// The leader's part of a rebalance: every member's assignment from the config view.
fn lead(
    h: &Herder,
    joined: &strom_client::Joined,
) -> Result<(Assignments, Option<BTreeMap<String, usize>>)> {
    let view = h.view();
    let shape = view.shape();
    let mut current: BTreeMap<String, Share> = BTreeMap::new();
    let mut max_offset = view.offset;
    for m in &joined.members {
        let s = protocol::decode_metadata(m.metadata.clone())?;
        max_offset = max_offset.max(s.config_offset);
        current.insert(m.member_id.clone(), s.allocation.unwrap_or_default());
    }
    let version = i16::from(joined.protocol.as_deref() == Some(protocol::PROTOCOL_COMPATIBLE));
    let split: BTreeMap<String, protocol::Delta> = if version == 1 {
        protocol::cooperative(&current, &shape)
    } else {
        let members: Vec<String> = current.keys().cloned().collect();
        protocol::round_robin(&members, &shape)
            .into_iter()
            .map(|(m, assigned)| {
                (
                    m,
                    protocol::Delta {
                        assigned,
                        revoked: Share::default(),
                    },
                )
            })
            .collect()
    };
    let out = split
        .into_iter()
        .map(|(member, delta)| {
            let (connectors, tasks) = delta.assigned;
            let a = Assignment {
                error: if max_offset > view.offset {
                    // A member has read further than the leader: Kafka's CONFIG_MISMATCH.
                    protocol::CONFIG_MISMATCH
                } else {
                    protocol::NO_ERROR
                },
                leader: joined.member_id.clone(),
                leader_url: h.url.clone(),
                config_offset: view.offset,
                connectors,
                tasks,
                revoked: delta.revoked,
                delay: 0,
            };
            (member, protocol::encode_assignment(&a, version))
        })
        .collect();
    Ok((out, Some(shape)))
}

async fn start_assignment(h: &Arc<Herder>, local: &mut Local, a: &Assignment) {
    if a.error != protocol::NO_ERROR {
        return;
    }
    let view = h.view();
    for c in &a.connectors {
        if local.connectors.contains_key(c) {
            continue;
        }
        if let Some(config) = view.connectors.get(c) {
            start_connector(h, local, c, config.clone(), view.target(c));
        }
    }
    for (c, i) in &a.tasks {
        if local.tasks.contains_key(&(c.clone(), *i)) {
            continue;
        }
        let Some(config) = view.tasks.get(c).and_then(|t| t.get(*i)).cloned() else {
            continue;
        };
        let Some(cc) = view.connectors.get(c).cloned() else {
            continue;
        };
        let t = spawn_task(h, c, *i, cc, config, view.target(c));
        local.tasks.insert((c.clone(), *i), t);
    }
    publish_statuses(h, local).await;
}

fn start_connector(h: &Herder, local: &mut Local, name: &str, config: Props, target: TargetState) {
    let mut lc = LocalConnector {
        config: config.clone(),
        instance: None,
        status: Status {
            state: state_of(target),
            trace: None,
        },
    };
    if target != TargetState::Stopped {
        match h.plugins.connector_for(&config) {
            Ok((_, mut c)) => match c.start(&config) {
                Ok(()) => lc.instance = Some(c),
                Err(e) => {
                    lc.status = Status {
                        state: State::Failed,
                        trace: Some(e.to_string()),
                    }
                }
            },
            Err(e) => {
                lc.status = Status {
                    state: State::Failed,
                    trace: Some(e.to_string()),
                }
            }
        }
    }
    local.connectors.insert(name.to_owned(), lc);
}

fn spawn_task(
    h: &Arc<Herder>,
    name: &str,
    id: usize,
    connector_config: Props,
    task_config: Props,
    target: TargetState,
) -> LocalTask {
    let status = Arc::new(Mutex::new(Status {
        state: State::Unassigned,
        trace: None,
    }));
    let topics = Arc::new(Mutex::new(BTreeSet::new()));
    let (tx, rx) = watch::channel(target);
    let ctx = TaskContext {
        connector: name.to_owned(),
        id,
        connector_config: connector_config.clone(),
        task_config: task_config.clone(),
        worker: h.worker.clone(),
        offsets: h.offsets.clone(),
        status: status.clone(),
        topics: topics.clone(),
        target: rx,
    };
    let join = match h.plugins.connector_for(&connector_config) {
        Err(e) => {
            *lock(&status) = Status {
                state: State::Failed,
                trace: Some(e.to_string()),
            };
            tokio::spawn(async {})
        }
        Ok((_, c)) => match c.create_task() {
            Task::Source(t) if h.dist.exactly_once => {
                let txn_id = format!("{}-{}-{}", h.dist.group_id, name, id);
                tokio::spawn(eos::run_source_eos(ctx, t, txn_id, h.offsets.clone()))
            }
            Task::Source(t) => tokio::spawn(run_source(ctx, t)),
            Task::Sink(t) => tokio::spawn(run_sink(ctx, t)),
        },
    };
    LocalTask {
        config: task_config,
        status,
        topics,
        target: tx,
        join,
    }
}

async fn stop_tasks(tasks: Vec<LocalTask>) {
    for t in &tasks {
        let _ = t.target.send(TargetState::Stopped);
    }
    for mut t in tasks {
        if tokio::time::timeout(TASK_STOP_TIMEOUT, &mut t.join)
            .await
            .is_err()
        {
            tracing::warn!("task did not stop within {TASK_STOP_TIMEOUT:?}; aborting it");
            t.join.abort();
        }
    }
}

/// Stops every task (they commit their offsets) and connector instance.
async fn stop_all(h: &Herder, local: &mut Local) {
    let tasks: Vec<LocalTask> = std::mem::take(&mut local.tasks).into_values().collect();
    stop_tasks(tasks).await;
    for (_, mut c) in std::mem::take(&mut local.connectors) {
        if let Some(mut i) = c.instance.take() {
            i.stop();
        }
    }
    // Statuses the next owner has not overwritten yet stay as they were (Kafka does too).
    let _ = h;
}

async fn restart_local_task(
    h: &Arc<Herder>,
    local: &mut Local,
    name: &str,
    i: usize,
) -> Result<()> {
    let view = h.view();
    let key = (name.to_owned(), i);
    let Some(t) = local.tasks.remove(&key) else {
        return Err(ConnectError::UnknownTask {
            connector: name.to_owned(),
            task: i as i32,
        });
    };
    stop_tasks(vec![t]).await;
    let cc = view.connectors.get(name).cloned().unwrap_or_default();
    let tc = view
        .tasks
        .get(name)
        .and_then(|t| t.get(i))
        .cloned()
        .unwrap_or_default();
    let t = spawn_task(h, name, i, cc, tc, view.target(name));
    local.tasks.insert(key, t);
    Ok(())
}

/// Applies config topic changes to what this worker runs.
async fn reconcile(h: &Arc<Herder>, local: &mut Local, member: &GroupMember) {
    if h.leadership().is_leader {
        leader_duties(h, local, member).await;
    }
    let view = h.view();
    // Tasks: gone → stop; new config → restart; target state → tell them.
    let mut restart = Vec::new();
    let mut gone = Vec::new();
    for ((c, i), t) in &local.tasks {
        match view.tasks.get(c).and_then(|ts| ts.get(*i)) {
            None => gone.push((c.clone(), *i)),
            Some(cfg) if *cfg != t.config => restart.push((c.clone(), *i)),
            Some(_) => {
                let target = view.target(c);
                if *t.target.borrow() != target {
                    let _ = t.target.send(target);
                }
            }
        }
    }
    let stopping: Vec<LocalTask> = gone.iter().filter_map(|k| local.tasks.remove(k)).collect();
    stop_tasks(stopping).await;
    for (c, i) in restart {
        let _ = restart_local_task(h, local, &c, i).await;
    }
    // Connector instances: gone, new config, new target state.
    let names: Vec<String> = local.connectors.keys().cloned().collect();
    for name in names {
        match view.connectors.get(&name) {
            None => {
                if let Some(mut c) = local.connectors.remove(&name) {
                    if let Some(mut i) = c.instance.take() {
                        i.stop();
                    }
                }
            }
            Some(cfg) => {
                let target = view.target(&name);
                let lc = &local.connectors[&name];
                let running = lc.instance.is_some();
                let want_running = target != TargetState::Stopped;
                if *cfg != lc.config || running != want_running {
                    if let Some(mut c) = local.connectors.remove(&name) {
                        if let Some(mut i) = c.instance.take() {
                            i.stop();
                        }
                    }
                    start_connector(h, local, &name, cfg.clone(), target);
                } else if let Some(lc) = local.connectors.get_mut(&name) {
                    if lc.status.state != State::Failed {
                        lc.status.state = state_of(target);
                    }
                }
            }
        }
    }
    // Restart requests.
    let requests: Vec<(i64, String, bool, bool)> = view
        .restarts
        .iter()
        .filter(|r| r.0 > local.restarts_seen)
        .cloned()
        .collect();
    for (offset, name, include_tasks, only_failed) in requests {
        local.restarts_seen = offset;
        let failed = local
            .connectors
            .get(&name)
            .is_some_and(|c| c.status.state == State::Failed);
        if let Some(cfg) = view.connectors.get(&name) {
            if local.connectors.contains_key(&name) && (!only_failed || failed) {
                if let Some(mut c) = local.connectors.remove(&name) {
                    if let Some(mut i) = c.instance.take() {
                        i.stop();
                    }
                }
                start_connector(h, local, &name, cfg.clone(), view.target(&name));
            }
        }
        if include_tasks {
            let mine: Vec<usize> = local
                .tasks
                .iter()
                .filter(|((c, _), t)| {
                    *c == name && (!only_failed || lock(&t.status).state == State::Failed)
                })
                .map(|((_, i), _)| *i)
                .collect();
            for i in mine {
                let _ = restart_local_task(h, local, &name, i).await;
            }
        }
    }
    publish_statuses(h, local).await;
}

/// The leader turns connector configs into task configs, and rebalances when the set of
/// connectors or tasks differs from the one it assigned.
async fn leader_duties(h: &Herder, local: &mut Local, member: &GroupMember) {
    let view = h.view();
    let mut records = Vec::new();
    // Task configs written but not read back yet.
    let mut in_flight = false;
    for (name, config) in &view.connectors {
        let desired = if view.target(name) == TargetState::Stopped {
            Vec::new()
        } else {
            match task_configs_of(h, config) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("connector {name}: cannot compute task configs: {e}");
                    continue;
                }
            }
        };
        if view.tasks.get(name) == Some(&desired) {
            continue;
        }
        if local.written.get(name) == Some(&desired) {
            in_flight = true;
            continue;
        }
        for (i, c) in desired.iter().enumerate() {
            records.push(store::task_record(name, i, c));
        }
        records.push(store::commit_record(name, desired.len()));
        local.written.insert(name.clone(), desired);
    }
    local.written.retain(|n, _| view.connectors.contains_key(n));
    // Task configs just written come back through the topic: rebalance once they have.
    let settled = records.is_empty() && !in_flight;
    if !records.is_empty() {
        if let Err(e) = store::write(&h.producer, &h.dist.config_topic, records).await {
            tracing::warn!("writing task configs: {e}");
            local.written.clear();
        }
    }
    if settled
        && local
            .assigned_shape
            .as_ref()
            .is_some_and(|s| *s != h.view().shape())
    {
        local.assigned_shape = None;
        member.request_rejoin();
    }
}

fn task_configs_of(h: &Herder, config: &Props) -> Result<Vec<Props>> {
    let (_, mut c) = h.plugins.connector_for(config)?;
    c.start(config)?;
    let max: usize = get_parsed(config, "tasks.max", 1usize)?.max(1);
    let out = c.task_configs(max);
    c.stop();
    Ok(out)
}

/// Writes the statuses (and topics) of what this worker runs that changed since last time.
async fn publish_statuses(h: &Herder, local: &mut Local) {
    let mut now: BTreeMap<String, J> = BTreeMap::new();
    for (name, c) in &local.connectors {
        now.insert(
            format!("status-connector-{name}"),
            status_value(&c.status, &h.worker_id, local.generation),
        );
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    for ((name, i), t) in &local.tasks {
        let s = lock(&t.status).clone();
        now.insert(
            format!("status-task-{name}-{i}"),
            status_value(&s, &h.worker_id, local.generation),
        );
        for topic in lock(&t.topics).iter() {
            let key = format!("topic-{topic}-connector-{name}");
            if !local.published.contains_key(&key) {
                now.insert(
                    key,
                    json!({"topic": {"name": topic, "connector": name, "task": i, "discoverTimestamp": stamp}}),
                );
            }
        }
    }
    let changed: Vec<(String, Option<Vec<u8>>)> = now
        .iter()
        .filter(|(k, v)| local.published.get(*k) != Some(v))
        .map(|(k, v)| (k.clone(), Some(v.to_string().into_bytes())))
        .collect();
    if changed.is_empty() {
        return;
    }
    match h.write_status(changed).await {
        Ok(()) => local.published.extend(now),
        Err(e) => tracing::warn!("writing statuses: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> Props {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn worker_settings_with_kafkas_names_and_defaults() {
        let base = [
            ("group.id", "g"),
            ("config.storage.topic", "c"),
            ("offset.storage.topic", "o"),
            ("status.storage.topic", "s"),
        ];
        let c = DistributedConfig::from_props(&props(&base)).unwrap();
        assert_eq!(
            (c.config_rf, c.offset_rf, c.status_rf),
            (3, 3, 3),
            "Kafka's default replication factor"
        );
        assert_eq!((c.offset_partitions, c.status_partitions), (25, 5));
        assert_eq!(c.session_timeout, Duration::from_secs(10));
        assert_eq!(c.heartbeat_interval, Duration::from_secs(3));
        assert_eq!(c.rebalance_timeout, Duration::from_secs(60));
        assert!(!c.exactly_once);
        assert!(
            c.cooperative,
            "connect.protocol defaults to incremental cooperative"
        );

        let mut more = base.to_vec();
        more.extend([
            ("offset.storage.replication.factor", "-1"),
            ("status.storage.partitions", "-1"),
            ("exactly.once.source.support", "enabled"),
            ("session.timeout.ms", "2500"),
            ("connect.protocol", "eager"),
        ]);
        let c = DistributedConfig::from_props(&props(&more)).unwrap();
        assert_eq!((c.offset_rf, c.status_partitions), (-1, -1));
        assert!(c.exactly_once);
        assert_eq!(c.session_timeout, Duration::from_millis(2500));
        assert!(!c.cooperative);

        for missing in [
            "group.id",
            "config.storage.topic",
            "offset.storage.topic",
            "status.storage.topic",
        ] {
            let p: Vec<(&str, &str)> = base
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let e = DistributedConfig::from_props(&props(&p)).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("Missing required configuration \"{missing}\" which has no default value.")
            );
        }
    }
}
