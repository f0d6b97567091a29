//! The broker's side of the metadata quorum: which quorum this node runs (a quorum of one, or
//! a voter of `controller.quorum.voters` on its CONTROLLER listener), running controller
//! operations on the active controller (here, or forwarded there as Kafka's ForwardingManager
//! does), registration, heartbeats, and fencing brokers that stop heartbeating.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use strom_metadata::controller::ops::now_ms;
use strom_metadata::image::{BrokerEndpoint, BrokerRegistration};
use strom_metadata::quorum::node::QuorumNodeOptions;
use strom_metadata::quorum::observer::MetadataObserver;
use strom_metadata::quorum::service::{MetadataNode, QuorumService};
use strom_metadata::quorum::tcp_transport::TcpTransportConfig;
use strom_metadata::quorum::{VoterChange, VoterChangeError};
use strom_metadata::{
    BrokerConfig, Controller, ControllerAnswer, ControllerError, ControllerHandler, ControllerOp,
    ControllerOpResult, MetadataImage,
};

use crate::server::ServerError;

/// How long a forwarding node waits to apply the metadata offset the active controller
/// committed an operation at, before answering anyway (the client then sees the change a
/// moment later, as with any Kafka broker's metadata cache).
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// How long start-up waits for a quorum to register this broker before giving up (the other
/// voters must be started meanwhile).
const REGISTRATION_WAIT: Duration = Duration::from_secs(120);

/// This node's view of the metadata and, on controllers, its controller: a quorum of one in
/// single-node mode (no `controller.quorum.voters`); a voter on the CONTROLLER listener with
/// `process.roles` containing `controller`; an observer of the voters on a broker-only node.
pub(crate) fn open_metadata(
    config: &BrokerConfig,
) -> Result<(Option<Controller>, Arc<dyn MetadataNode>), ServerError> {
    use strom_metadata::broker_config::ProcessRole;
    if config.is_quorum_over_network() && !config.has_role(ProcessRole::Controller) {
        let node_id = u64::try_from(config.node_id()).map_err(|_| {
            ServerError::Startup(format!("node.id {} is negative", config.node_id()))
        })?;
        let transport = quorum_transport(config, false)?;
        let observer = if config.is_dynamic_quorum() {
            MetadataObserver::start_bootstrap(
                node_id,
                config.controller_quorum_bootstrap_servers(),
                transport,
            )
        } else {
            MetadataObserver::start(node_id, config.controller_quorum_voters(), transport)
        }
        .map_err(|e| ServerError::Startup(format!("cannot follow the metadata quorum: {e}")))?;
        tracing::info!(
            node_id,
            voters = config.controller_quorum_voters().len(),
            "broker-only node: following the metadata quorum"
        );
        return Ok((None, Arc::new(observer)));
    }
    let controller = open_controller(config)?;
    let metadata: Arc<dyn MetadataNode> = Arc::clone(controller.quorum()) as _;
    Ok((Some(controller), metadata))
}

/// The quorum transport's settings: the CONTROLLER listener's TLS and SASL, as
/// `listener.security.protocol.map` gives it. `accepts`: this node serves that listener.
fn quorum_transport(
    config: &BrokerConfig,
    accepts: bool,
) -> Result<TcpTransportConfig, ServerError> {
    let security = crate::security::quorum::ControllerListenerSecurity::of(config, accepts)
        .map_err(ServerError::Startup)?;
    Ok(TcpTransportConfig {
        security,
        ..TcpTransportConfig::default()
    })
}

/// Opens this node's quorum and controller from the configuration: a quorum of one in
/// single-node mode (no `controller.quorum.voters`), else a voter on the CONTROLLER listener.
pub fn open_controller(config: &BrokerConfig) -> Result<Controller, ServerError> {
    let startup =
        |what: &str, e: &dyn std::fmt::Display| ServerError::Startup(format!("{what}: {e}"));
    if !config.is_quorum_over_network() {
        return Controller::open(config.metadata_log_dir(), config)
            .map_err(|e| startup("cannot open the metadata log", &e));
    }
    let node_id = u64::try_from(config.node_id())
        .map_err(|_| ServerError::Startup(format!("node.id {} is negative", config.node_id())))?;
    let listener = config.controller_listener().ok_or_else(|| {
        ServerError::Startup(
            "a controller of a multi-node quorum needs a listener named in controller.listener.names (e.g. listeners=PLAINTEXT://:9092,CONTROLLER://:9093 and controller.listener.names=CONTROLLER)".into(),
        )
    })?;
    let bind = listener.bind_address();
    let socket = std::net::TcpListener::bind(&bind).map_err(|e| {
        startup(
            &format!("cannot listen on the CONTROLLER listener {bind}"),
            &e,
        )
    })?;
    let dir = config
        .metadata_log_dir()
        .join(strom_metadata::log::METADATA_LOG_DIR_NAME);
    let options = QuorumNodeOptions {
        transport: quorum_transport(config, true)?,
        ..QuorumNodeOptions::default()
    };
    let quorum = if config.is_dynamic_quorum() {
        let formatted = strom_metadata::storage::read_formatted(config)
            .map_err(|e| ServerError::Startup(e.to_string()))?;
        let initial = formatted.initial_voters.unwrap_or_default();
        tracing::info!(
            node_id,
            controller_listener = %bind,
            initial_voters = initial.len(),
            bootstrap_servers = ?config.controller_quorum_bootstrap_servers(),
            "starting a dynamic metadata quorum (KIP-853)"
        );
        let me = match strom_metadata::storage::controller_endpoint(config) {
            Ok(addr) => Some(strom_metadata::quorum::raft::VoterEndpoint {
                addr,
                directory_id: Some(formatted.meta.directory_id.clone()),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "this controller's entry in the voter set is not kept up to date");
                None
            }
        };
        QuorumService::start_dynamic(
            node_id,
            me,
            initial,
            &dir,
            socket,
            options,
        )
    } else {
        tracing::info!(
            node_id,
            controller_listener = %bind,
            voters = config.controller_quorum_voters().len(),
            "starting a static metadata quorum"
        );
        QuorumService::start_tcp(
            node_id,
            config.controller_quorum_voters(),
            &dir,
            socket,
            options,
        )
    }
    .map_err(|e| startup("cannot start the metadata quorum", &e))?;
    Controller::with_quorum(Arc::new(quorum), config)
        .map_err(|e| startup("cannot open the metadata image", &e))
}

/// A dynamic quorum (KIP-853, `controller.quorum.bootstrap.servers` without
/// `controller.quorum.voters`) starts only from storage `strom storage format` prepared, as
/// Kafka refuses unformatted directories: this checks it and takes `cluster.id` from
/// meta.properties. Single-node mode and static quorums are returned unchanged.
pub fn apply_formatted_storage(config: BrokerConfig) -> Result<BrokerConfig, ServerError> {
    if !config.is_dynamic_quorum() {
        return Ok(config);
    }
    let formatted = strom_metadata::storage::read_formatted(&config)
        .map_err(|e| ServerError::Startup(e.to_string()))?;
    if config.cluster_id().is_some() {
        // read_formatted checked that it matches meta.properties.
        return Ok(config);
    }
    config
        .with_static_value("cluster.id", &formatted.meta.cluster_id)
        .map_err(|e| ServerError::Startup(format!("meta.properties: {e}")))
}

/// Runs `op` on the active controller: here if this node leads the quorum, else forwarded to
/// the leader. `local` runs it here (with the broker's follow-up, e.g. opening logs).
/// Blocking.
pub(crate) fn run_op(
    quorum: &dyn MetadataNode,
    has_controller: bool,
    op: ControllerOp,
    local: impl FnOnce(ControllerOp) -> ControllerOpResult,
) -> ControllerAnswer {
    let leader = quorum.leader().leader;
    if has_controller && leader == Some(quorum.node_id()) {
        let result = local(op);
        return ControllerAnswer {
            result,
            offset: quorum.image().0,
        };
    }
    let not_controller = |leader: Option<u64>| ControllerError::NotController {
        leader: leader.and_then(|l| i32::try_from(l).ok()),
    };
    let Some(leader) = leader else {
        return ControllerAnswer {
            result: op.failed(not_controller(None)),
            offset: None,
        };
    };
    let failed = op.failed(not_controller(Some(leader)));
    match quorum.forward(leader, op) {
        Ok(answer) => {
            wait_applied(quorum, answer.offset);
            answer
        }
        Err(e) => {
            tracing::debug!(leader, error = %e, "forwarding to the active controller failed");
            ControllerAnswer {
                result: failed,
                offset: None,
            }
        }
    }
}

/// Waits (bounded) until the local replica applied `offset`.
fn wait_applied(quorum: &dyn MetadataNode, offset: Option<u64>) {
    let Some(offset) = offset else { return };
    let start = Instant::now();
    while quorum.image().0.is_none_or(|o| o < offset) && start.elapsed() < APPLY_WAIT {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// What this broker registers: every advertised broker listener (an empty, all-interfaces
/// host advertised as 127.0.0.1), and, as its primary endpoint, the inter-broker one.
pub(crate) struct Registration {
    pub host: String,
    pub port: u16,
    pub listeners: Vec<BrokerEndpoint>,
}

impl Registration {
    pub(crate) fn of(config: &BrokerConfig) -> Option<Registration> {
        let listeners: Vec<BrokerEndpoint> = config
            .advertised_broker_listeners()
            .into_iter()
            .map(|l| BrokerEndpoint {
                name: l.name.clone(),
                host: if l.host.is_empty() {
                    "127.0.0.1".to_owned()
                } else {
                    l.host.clone()
                },
                port: l.port,
            })
            .collect();
        let inter_broker = config.inter_broker_listener()?;
        let primary = listeners.iter().find(|l| l.name == inter_broker.name)?;
        Some(Registration {
            host: primary.host.clone(),
            port: primary.port,
            listeners,
        })
    }

    /// Kafka's BrokerRegistration for this broker, with its rack, saying whether its
    /// previous process stopped cleanly (KIP-966: otherwise it leaves every ELR).
    pub(crate) fn op(&self, config: &BrokerConfig, clean_shutdown: bool) -> ControllerOp {
        ControllerOp::RegisterBroker {
            broker_id: config.node_id(),
            host: self.host.clone(),
            port: self.port,
            rack: config.broker_rack().map(str::to_string),
            listeners: self.listeners.clone(),
            clean_shutdown,
        }
    }

    /// Whether `b` is this registration.
    fn is(&self, b: &BrokerRegistration, config: &BrokerConfig) -> bool {
        b.host == self.host
            && b.port == self.port
            && b.listeners == self.listeners
            && b.rack.as_deref() == config.broker_rack()
    }
}

/// Registers this broker with the active controller, retrying until a quorum answers, and
/// waits until the local image shows the registration (so this node has caught up with the
/// metadata log before it serves clients).
pub(crate) fn register(
    quorum: &dyn MetadataNode,
    config: &BrokerConfig,
    registration: &Registration,
    has_controller: bool,
    clean_shutdown: bool,
    local: impl Fn(ControllerOp) -> ControllerOpResult,
) -> Result<Arc<MetadataImage>, ServerError> {
    let broker_id = config.node_id();
    let op = registration.op(config, clean_shutdown);
    let start = Instant::now();
    let mut last_log = Instant::now();
    loop {
        let answer = run_op(quorum, has_controller, op.clone(), &local);
        match answer.result.into_done() {
            Ok(()) => {
                let image = quorum.image().1;
                let registered = image
                    .broker(broker_id)
                    .is_some_and(|b| registration.is(b, config));
                if registered {
                    tracing::info!(broker_id, "registered with the active controller");
                    return Ok(image);
                }
            }
            Err(ControllerError::ClusterIdMismatch { configured, stored }) => {
                return Err(ServerError::Startup(format!(
                    "configured cluster.id {configured} does not match {stored} of the metadata quorum"
                )));
            }
            Err(e) if start.elapsed() >= REGISTRATION_WAIT => {
                return Err(ServerError::Startup(format!(
                    "could not register with the metadata quorum within {REGISTRATION_WAIT:?} (is a majority of the controller quorum running, and, in a dynamic quorum, was this controller added with add-controller?): {e}"
                )));
            }
            Err(e) => {
                if last_log.elapsed() >= Duration::from_secs(5) {
                    tracing::info!(error = %e, "waiting for the metadata quorum to register this broker");
                    last_log = Instant::now();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Serves operations other nodes forward to this node's controller.
pub(crate) struct ForwardedOps {
    pub(crate) broker: std::sync::Weak<crate::broker::Broker>,
}

impl ControllerHandler for ForwardedOps {
    fn handle(&self, op: ControllerOp) -> ControllerAnswer {
        match self.broker.upgrade() {
            Some(broker) => {
                let result = broker.execute_locally(op);
                ControllerAnswer {
                    result,
                    offset: broker.metadata().image().0,
                }
            }
            None => ControllerAnswer {
                result: op.failed(ControllerError::NotController { leader: None }),
                offset: None,
            },
        }
    }
}

/// The active controller's timer: brokers silent for `broker.session.timeout.ms` are fenced
/// (their leaderships move to in-sync replicas), and, every
/// `leader.imbalance.check.interval.seconds`, leaderships go back to preferred replicas
/// (`auto.leader.rebalance.enable`). Runs on every controller; acts only while this node
/// leads. Returns the brokers fenced.
pub(crate) fn fence_stale(controller: &Mutex<Controller>, session_timeout_ms: i64) -> Vec<i32> {
    let mut c = controller.lock();
    if !c.quorum().is_leader() {
        return Vec::new();
    }
    if let Err(e) = c.refresh() {
        tracing::debug!(error = %e, "fencing check skipped");
        return Vec::new();
    }
    let fenced = match c.fence_stale_brokers(now_ms(), session_timeout_ms) {
        Ok(fenced) => fenced,
        Err(e) => {
            tracing::warn!(error = %e, "fencing stale brokers failed");
            Vec::new()
        }
    };
    if let Err(e) = c.maybe_rebalance_leaders(now_ms()) {
        tracing::warn!(error = %e, "automatic leader rebalance failed");
    }
    if let Err(e) = c.maybe_balance(now_ms()) {
        tracing::warn!(error = %e, "balancer round failed");
    }
    fenced
}

/// Runs a voter change (AddRaftVoter, RemoveRaftVoter, UpdateRaftVoter) on the quorum leader
/// for a request to this node, after checking the request's cluster id and that the quorum is
/// dynamic.
pub(crate) async fn change_voters(
    broker: &Arc<crate::broker::Broker>,
    cluster_id: Option<&str>,
    change: VoterChange,
) -> Result<(), VoterChangeError> {
    let config = broker.config();
    if !config.is_quorum_over_network() {
        return Err(VoterChangeError::StaticQuorum {
            reason: "single-node mode, a quorum of one without a CONTROLLER listener".into(),
        });
    }
    if !config.is_dynamic_quorum() {
        return Err(VoterChangeError::StaticQuorum {
            reason: "controller.quorum.voters is set".into(),
        });
    }
    // An empty cluster id (the default of UpdateRaftVoter's non-nullable field) is not given.
    if let Some(requested) = cluster_id.filter(|c| !c.is_empty()) {
        let image = broker.metadata().image().1;
        let actual = image.cluster_id().unwrap_or_default();
        if requested != actual {
            return Err(VoterChangeError::InconsistentClusterId {
                requested: requested.to_string(),
                actual: actual.to_string(),
            });
        }
    }
    let metadata = Arc::clone(broker.metadata());
    tokio::task::spawn_blocking(move || metadata.change_voters(change))
        .await
        .unwrap_or(Err(VoterChangeError::NotLeader { leader: None }))
}

/// The directory id of a voter request (`None` for Kafka's zero Uuid: not given).
pub(crate) fn directory_id(uuid: &uuid::Uuid) -> Option<String> {
    (!uuid.is_nil()).then(|| strom_metadata::storage::uuid_to_kafka_string(uuid))
}

/// The `host:port` of a voter from the listeners of an AddRaftVoter or UpdateRaftVoter
/// request: the one named like this cluster's CONTROLLER listener, else the only one.
pub(crate) fn voter_endpoint<'a>(
    config: &BrokerConfig,
    listeners: impl Iterator<Item = (&'a str, &'a str, u16)>,
) -> Result<String, VoterChangeError> {
    let name = config
        .controller_listener_names()
        .first()
        .map_or("CONTROLLER", String::as_str);
    let all: Vec<_> = listeners.collect();
    let chosen = all
        .iter()
        .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
        .or(if all.len() == 1 { all.first() } else { None });
    let Some((_, host, port)) = chosen else {
        return Err(VoterChangeError::InvalidRequest {
            reason: format!("no endpoint for the {name} listener among the voter's listeners"),
        });
    };
    if host.is_empty() || *port == 0 {
        return Err(VoterChangeError::InvalidRequest {
            reason: format!("the {name} endpoint needs a host and a non-zero port"),
        });
    }
    Ok(if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}
