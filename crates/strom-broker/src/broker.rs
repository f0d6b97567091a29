//! The broker's shared state: its configuration, the controller (single node: this process
//! is broker and controller at once, like Kafka's KRaft combined mode), the current metadata
//! image, and the replica manager. Handlers reach the engines only through this type.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use strom_metadata::quorum::service::MetadataNode;
use strom_metadata::{
    Controller, ControllerError, ControllerOp, ControllerOpResult, CreateTopicRequest,
    MetadataImage,
};
use strom_storage::{Clock, LogConfig, SystemClock, TimestampType};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::BrokerConfig;
use crate::group::consumer::ConsumerGroupConfig;
use crate::group::{GroupConfig, GroupCoordinator};
use crate::metrics::BrokerMetrics;
use crate::replica_manager::ReplicaManager;
use crate::server::ServerError;
use crate::txn::{TxnConfig, TxnCoordinator};

/// Threads closing logs at shutdown when `num.recovery.threads.per.data.dir` is not set:
/// above Kafka's default of 2 because closing is fsync-bound, not CPU-bound.
const SHUTDOWN_THREADS: usize = 8;

/// How often rolled segments are checked for a pending fsync (cheap when nothing rolled).
const ROLLED_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Producer ids handed out by this broker, taken from blocks the controller allocates.
#[derive(Debug, Default)]
struct ProducerIdBlock {
    next: i64,
    end: i64,
}

pub struct Broker {
    config: BrokerConfig,
    /// This node's controller (every node with the controller role; none on a broker-only
    /// node, which forwards every operation).
    controller: Option<Mutex<Controller>>,
    /// The metadata quorum as this node sees it: a voter, or an observer.
    metadata: Arc<dyn MetadataNode>,
    /// Serializes following images (opening and deleting logs). Holds the metadata offset of
    /// `image` once the hosted logs went through a full resync (`None` before: the next image
    /// is applied whole, not as a delta).
    follow_lock: Mutex<Option<Option<u64>>>,
    image: RwLock<Arc<MetadataImage>>,
    replicas: ReplicaManager,
    producer_ids: Mutex<ProducerIdBlock>,
    groups: GroupCoordinator,
    txns: TxnCoordinator,
    /// Share groups (KIP-932): coordinator, sessions and share-partition state.
    shares: crate::share::ShareCoordinator,
    metrics: Arc<BrokerMetrics>,
    /// Set when controlled shutdown starts: heartbeats stop, so the broker stays fenced.
    stopping: std::sync::atomic::AtomicBool,
    /// When the active controller last accepted this broker's heartbeat (ms since the epoch;
    /// cluster mode). Silence longer than the session timeout means the controller has
    /// fenced this broker and may have elected other leaders for its partitions.
    last_heartbeat_ok_ms: std::sync::atomic::AtomicI64,
    /// How this broker connects to other brokers (the inter-broker listener's security).
    outbound: crate::security::outbound::Outbound,
    /// The hosted logs could not follow the last image (a full disk, no file descriptors):
    /// a background task retries until they do.
    logs_behind_image: std::sync::atomic::AtomicBool,
    /// Held for the broker's lifetime: one process per data directory, as Kafka's `.lock`.
    _dir_locks: Vec<std::fs::File>,
    /// Follower replication: one fetcher per leader this broker follows partitions on.
    fetchers: crate::replica_fetcher::ReplicaFetchers,
    /// Replication throttles (`leader.` / `follower.replication.throttled.rate`).
    leader_throttle: crate::throttle::Throttle,
    follower_throttle: crate::throttle::Throttle,
    /// Wakes the ISR check (a follower caught up and may join an ISR).
    isr_wake: tokio::sync::Notify,
    /// Coordinator loads and unloads waiting for their task (cluster mode).
    coordinator_events: crate::internal_topic::CoordinatorEvents,
    /// ACL checks (`authorizer.class.name`); `None` allows every request.
    authorizer: Option<crate::security::authz::Authorizer>,
    /// Produce and fetch byte-rate quotas' sensors.
    client_quotas: crate::client_quotas::ClientQuotaManager,
}

impl Broker {
    /// Opens the metadata log and every partition log under `log.dirs` (recovering them).
    pub fn open(config: BrokerConfig) -> Result<Arc<Broker>, ServerError> {
        let roots = config.log_dirs().to_vec();
        let mut dir_locks = Vec::new();
        for root in &roots {
            std::fs::create_dir_all(root).map_err(|e| {
                ServerError::Startup(format!("cannot create log.dirs {}: {e}", root.display()))
            })?;
            dir_locks.push(lock_data_dir(root)?);
        }
        // Taken now: from here on a crash is an unclean shutdown.
        let clean_shutdown = take_clean_shutdown_markers(&roots);
        tracing::info!(clean_shutdown, "previous shutdown");
        let (mut controller, metadata) = crate::cluster::open_metadata(&config)?;
        let registration = crate::cluster::Registration::of(&config).ok_or_else(|| {
            ServerError::Startup(
                "no client listener configured (listeners=PLAINTEXT://host:port)".into(),
            )
        })?;
        if let (false, Some(controller)) = (config.is_quorum_over_network(), controller.as_mut()) {
            controller
                .register_broker_with_listeners(
                    config.node_id(),
                    &registration.host,
                    registration.port,
                    config.broker_rack(),
                    &registration.listeners,
                )
                .map_err(|e| ServerError::Startup(format!("cannot register broker: {e}")))?;
        }
        // Only a cluster has other brokers to connect to.
        let outbound = if config.is_quorum_over_network() {
            crate::security::outbound::Outbound::of(&config).map_err(ServerError::Startup)?
        } else {
            crate::security::outbound::Outbound::plaintext()
        };
        let image = metadata.image().1;
        let voter = controller.as_ref().map(|c| Arc::clone(c.quorum()));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let open_threads = config
            .static_value("num.recovery.threads.per.data.dir")
            .and_then(|v| v.parse().ok())
            .unwrap_or(SHUTDOWN_THREADS);
        if let Some(max) = config
            .static_value("log.open.files.max")
            .and_then(|v| v.parse::<usize>().ok())
        {
            strom_storage::HandleCache::global().set_max(max);
        }
        let broker = Arc::new(Broker {
            groups: GroupCoordinator::new(GroupConfig::from_broker(&config), clock.clone())
                .with_consumer_config(ConsumerGroupConfig::from_broker(&config)),
            _dir_locks: dir_locks,
            txns: TxnCoordinator::new(TxnConfig::from_broker(&config), clock.clone()),
            shares: crate::share::ShareCoordinator::new(crate::share::ShareConfig::from_broker(
                &config,
            )),
            replicas: {
                let replicas = ReplicaManager::with_log_dirs(roots, clock, config.node_id())
                    .with_open_threads(open_threads)
                    .with_clean_start(clean_shutdown);
                if config.is_quorum_over_network() {
                    replicas.hosting_only_own_replicas()
                } else {
                    replicas
                }
            },
            authorizer: crate::security::authz::Authorizer::from_config(&config),
            client_quotas: Default::default(),
            config,
            controller: controller.map(Mutex::new),
            metadata,
            follow_lock: Mutex::new(None),
            image: RwLock::new(image.clone()),
            producer_ids: Mutex::new(ProducerIdBlock::default()),
            metrics: Arc::default(),
            logs_behind_image: Default::default(),
            stopping: Default::default(),
            last_heartbeat_ok_ms: std::sync::atomic::AtomicI64::new(crate::partition::now_ms()),
            outbound,
            fetchers: Default::default(),
            leader_throttle: Default::default(),
            follower_throttle: Default::default(),
            isr_wake: tokio::sync::Notify::new(),
            coordinator_events: Default::default(),
        });
        if let Some(authorizer) = &broker.authorizer {
            authorizer.refresh(&image);
        }
        if broker.config.is_quorum_over_network() {
            // Coordinators serve the internal partitions this broker leads, loaded as it
            // becomes their leader (`internal_topic::on_role_changes`).
            broker.groups.owned.serve_led_partitions_only();
            broker.txns.owned.serve_led_partitions_only();
            if let Some(voter) = voter {
                voter.set_controller(Arc::new(crate::cluster::ForwardedOps {
                    broker: Arc::downgrade(&broker),
                }));
            }
            crate::cluster::register(
                broker.metadata.as_ref(),
                &broker.config,
                &registration,
                broker.controller.is_some(),
                clean_shutdown,
                |op| broker.execute_locally(op),
            )?;
            broker.follow_latest();
        }
        if let Err(e) = check_metadata_knows_data(&broker.image(), &broker.replicas) {
            // Refused before touching any log: the previous shutdown stays as clean as it was.
            if clean_shutdown {
                write_clean_shutdown_markers(broker.config.log_dirs());
            }
            return Err(e);
        }
        {
            // The first image: a full resync; the images after it are followed as deltas.
            let mut followed = broker.follow_lock.lock();
            let latest = broker.metadata.applied();
            let image = broker.image();
            broker
                .sync_replicas(&image, None)
                .map_err(|e| ServerError::Startup(format!("cannot open partition logs: {e}")))?;
            if Arc::ptr_eq(&latest.image, &image) {
                *followed = Some(latest.offset);
            }
        }
        broker.replicas.mark_stray_dirs();
        if broker.groups.owned.serves_all() {
            broker
                .groups
                .load(broker.as_ref())
                .map_err(|e| ServerError::Startup(format!("cannot load consumer groups: {e}")))?;
            // After the groups: completing a transaction may apply staged offsets.
            broker
                .txns
                .load(broker.as_ref())
                .map_err(|e| ServerError::Startup(format!("cannot load transactions: {e}")))?;
            broker.shares.ensure_loaded(broker.as_ref());
        }
        Ok(broker)
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id()
    }

    /// The client quota sensors.
    pub fn client_quotas(&self) -> &crate::client_quotas::ClientQuotaManager {
        &self.client_quotas
    }

    /// The ACL checks, when `authorizer.class.name` turns them on.
    pub fn authorizer(&self) -> Option<&crate::security::authz::Authorizer> {
        self.authorizer.as_ref()
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    /// Where this broker reaches broker `id`: its endpoint on this broker's
    /// `inter.broker.listener.name` (replica fetching, transaction markers).
    pub fn inter_broker_endpoint(&self, id: i32) -> Option<(String, u16)> {
        let name = self.config.inter_broker_listener()?.name.clone();
        let image = self.image();
        let (host, port) = image.broker(id)?.endpoint(&name)?;
        Some((host.to_owned(), port))
    }

    pub fn replicas(&self) -> &ReplicaManager {
        &self.replicas
    }

    pub fn groups(&self) -> &GroupCoordinator {
        &self.groups
    }

    pub fn txns(&self) -> &TxnCoordinator {
        &self.txns
    }

    /// How this broker connects to other brokers (replica fetches, transaction markers).
    pub(crate) fn outbound(&self) -> &crate::security::outbound::Outbound {
        &self.outbound
    }

    pub fn shares(&self) -> &crate::share::ShareCoordinator {
        &self.shares
    }

    /// Network-path counters and gauges (connections, request and response bytes).
    pub fn metrics(&self) -> &Arc<BrokerMetrics> {
        &self.metrics
    }

    /// One heartbeat to the active controller; re-registers if the controller lost track of
    /// this broker. Blocking.
    fn heartbeat(&self) {
        use std::sync::atomic::Ordering;
        if self.stopping.load(Ordering::Relaxed) {
            return;
        }
        let broker_id = self.node_id();
        let result = self
            .controller_op(ControllerOp::BrokerHeartbeat { broker_id })
            .into_done();
        match result {
            Ok(()) => self
                .last_heartbeat_ok_ms
                .store(crate::partition::now_ms(), Ordering::Relaxed),
            Err(ControllerError::BrokerNotRegistered { .. })
                if self.image().was_unregistered(broker_id) =>
            {
                tracing::debug!(
                    "this broker was unregistered (decommissioned): not registering again until restarted"
                );
            }
            Err(ControllerError::BrokerNotRegistered { .. }) => {
                tracing::warn!(
                    "the active controller does not know this broker; registering again"
                );
                if let Some(registration) = crate::cluster::Registration::of(&self.config) {
                    // This process lost nothing: a clean registration.
                    let op = registration.op(&self.config, true);
                    match self.controller_op(op).into_done() {
                        Ok(()) => self
                            .last_heartbeat_ok_ms
                            .store(crate::partition::now_ms(), Ordering::Relaxed),
                        Err(e) => tracing::warn!(error = %e, "registering again failed"),
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "heartbeat not accepted"),
        }
    }

    /// Cluster mode: the active controller has not accepted a heartbeat of this broker for
    /// longer than `broker.session.timeout.ms`, so it has fenced this broker (or no
    /// controller is active). Leaderships this broker holds may have moved without its
    /// knowing; see `Partition::isr_stalled` for how produce uses this.
    pub fn controller_contact_lost(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.config.is_quorum_over_network()
            && crate::partition::now_ms() - self.last_heartbeat_ok_ms.load(Ordering::Relaxed)
                > i64::from(self.config.broker_session_timeout_ms())
    }

    /// Controlled shutdown: stops heartbeating and asks the active controller to move this
    /// broker's leaderships away (cluster mode; a single node has nowhere to move them).
    pub fn controlled_shutdown(&self) {
        use std::sync::atomic::Ordering;
        if !self.config.is_quorum_over_network() {
            return;
        }
        self.stopping.store(true, Ordering::Relaxed);
        let broker_id = self.node_id();
        match self
            .controller_op(ControllerOp::ControlledShutdown { broker_id })
            .into_done()
        {
            Ok(()) => tracing::info!("controlled shutdown: leaderships moved away"),
            Err(e) => tracing::warn!(error = %e, "controlled shutdown failed; stopping anyway"),
        }
    }

    /// Cluster-mode background work: heartbeats, fencing silent brokers (while this node is
    /// the active controller) and following metadata committed by other nodes.
    fn start_cluster_tasks(self: &Arc<Self>, stop: &watch::Receiver<bool>) {
        let interval =
            Duration::from_millis(self.config.broker_heartbeat_interval_ms().max(1) as u64);
        let session_timeout_ms = i64::from(self.config.broker_session_timeout_ms());
        let broker = Arc::clone(self);
        let mut hb_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = hb_stop.changed() => break,
                    () = tokio::time::sleep(interval) => {}
                }
                let b = Arc::clone(&broker);
                let _ = tokio::task::spawn_blocking(move || b.heartbeat()).await;
            }
        });
        // Checked at half the heartbeat interval: a broker is fenced within
        // session timeout + interval/2 of its last heartbeat.
        let broker = Arc::clone(self);
        let mut fence_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = fence_stop.changed() => break,
                    () = tokio::time::sleep(interval / 2) => {}
                }
                let b = Arc::clone(&broker);
                let _ = tokio::task::spawn_blocking(move || {
                    let Some(controller) = &b.controller else {
                        return;
                    };
                    let fenced = crate::cluster::fence_stale(controller, session_timeout_ms);
                    if !fenced.is_empty() {
                        b.follow_latest();
                    }
                })
                .await;
            }
        });
        // A node whose Raft core stopped (a storage failure, an openraft panic) must not look
        // alive: it would keep answering clients from a frozen image. It exits so a
        // supervisor restarts it, and the quorum carries on without it meanwhile.
        let broker = Arc::clone(self);
        let mut watchdog_stop = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = watchdog_stop.changed() => break,
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                if let Some(reason) = broker.metadata.fatal() {
                    tracing::error!(%reason, "the metadata quorum stopped on this node; exiting");
                    std::process::exit(70);
                }
            }
        });
        // Coordinators load and unload internal partitions as leadership moves.
        tokio::spawn(crate::internal_topic::run_coordinator_events(
            Arc::clone(self),
            stop.clone(),
        ));
        // Followers fetch from their leaders.
        let weak = Arc::downgrade(self);
        let mut fetch_stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = fetch_stop.changed() => {}
                () = crate::replica_fetcher::ReplicaFetchers::run(weak) => {}
            }
        });
        // Leaders keep their ISRs current: every half lag time, and when a follower catches up.
        let broker = Arc::clone(self);
        let mut isr_stop = stop.clone();
        let isr_interval = Duration::from_millis(
            (self.config.replica_lag_time_max_ms() / 2).clamp(100, 5_000) as u64,
        );
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = isr_stop.changed() => break,
                    () = tokio::time::sleep(isr_interval) => {}
                    () = broker.isr_wake.notified() => {}
                }
                let b = Arc::clone(&broker);
                let _ = tokio::task::spawn_blocking(move || b.check_isrs()).await;
            }
        });
        let broker = Arc::clone(self);
        let mut follow_stop = stop.clone();
        let mut applied = self.metadata.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = follow_stop.changed() => break,
                    changed = applied.changed() => if changed.is_err() { break },
                }
                let b = Arc::clone(&broker);
                let _ = tokio::task::spawn_blocking(move || b.follow_latest()).await;
            }
        });
    }

    /// The leader-side replication throttle and its rate now.
    pub fn leader_throttle(&self) -> (&crate::throttle::Throttle, i64) {
        let rate = self.replication_rate(
            "leader.replication.throttled.rate",
            self.config.leader_replication_throttled_rate(),
        );
        (&self.leader_throttle, rate)
    }

    /// The follower-side replication throttle and its rate now.
    pub fn follower_throttle(&self) -> (&crate::throttle::Throttle, i64) {
        let rate = self.replication_rate(
            "follower.replication.throttled.rate",
            self.config.follower_replication_throttled_rate(),
        );
        (&self.follower_throttle, rate)
    }

    /// A throttle rate: this broker's dynamic override (validated when committed), else the
    /// static value. Read per throttled partition on the fetch path, so one map lookup rather
    /// than a rebuilt effective config.
    fn replication_rate(&self, key: &str, static_value: i64) -> i64 {
        self.image()
            .broker_configs_ref(self.node_id())
            .and_then(|c| c.get(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or(static_value)
    }

    /// The broker config with this node's dynamic overrides on top.
    pub fn effective_broker_config(&self) -> BrokerConfig {
        strom_metadata::controller::effective_broker_config(&self.config, &self.image())
    }

    /// The metadata quorum as this node sees it.
    pub fn metadata(&self) -> &Arc<dyn MetadataNode> {
        &self.metadata
    }

    /// The node id of the active controller, if known (this node in single-node mode).
    pub fn active_controller(&self) -> Option<i32> {
        self.metadata
            .leader()
            .leader
            .and_then(|l| i32::try_from(l).ok())
    }

    /// The controller id Metadata and DescribeCluster give clients: the active controller when
    /// it is a live broker, else this broker (it forwards). Clients send admin requests to that
    /// id, so it must be a broker they can reach: with dedicated controllers (no client
    /// listener) Kafka names a broker too.
    pub fn controller_id_for_clients(&self) -> i32 {
        let image = self.image();
        match self.active_controller() {
            Some(id) if image.broker(id).is_some_and(|b| !b.fenced) => id,
            _ => self.node_id(),
        }
    }

    /// Runs a controller operation on the active controller, here or forwarded there, and
    /// returns once it is committed and this node's image shows it (bounded wait).
    pub fn controller_op(&self, op: ControllerOp) -> ControllerOpResult {
        off_runtime(|| {
            let local = self.controller.is_some();
            let answer = crate::cluster::run_op(self.metadata.as_ref(), local, op, |op| {
                self.execute_locally(op)
            });
            self.follow_latest();
            answer.result
        })
    }

    /// Runs `op` on this node's controller (which must be the active one to commit).
    pub(crate) fn execute_locally(&self, op: ControllerOp) -> ControllerOpResult {
        self.with_controller(|c| c.execute(op))
    }

    /// Brings the published image and the hosted logs up to the quorum's latest applied image
    /// (changes committed by another node's controller).
    pub(crate) fn follow_latest(&self) {
        off_runtime(|| {
            let mut followed = self.follow_lock.lock();
            self.follow_applied(&mut followed, &self.metadata.applied());
        });
    }

    /// Publishes `applied` and brings the hosted logs in line with it (the follow lock held,
    /// `followed` the offset the logs follow): with its delta when it starts where the logs
    /// are, else with the delta of the two images; a full resync for the first image, after
    /// a snapshot, and after a failure.
    fn follow_applied(
        &self,
        followed: &mut Option<Option<u64>>,
        applied: &strom_metadata::quorum::state_machine::Applied,
    ) {
        use std::borrow::Cow;
        let old = self.image();
        if followed.is_some_and(|at| at > applied.offset) {
            return;
        }
        if Arc::ptr_eq(&applied.image, &old) {
            if followed.is_some() {
                *followed = Some(applied.offset);
            }
            return;
        }
        let behind = self
            .logs_behind_image
            .load(std::sync::atomic::Ordering::Relaxed);
        let delta = match (*followed, &applied.delta) {
            (Some(at), Some(delta)) if !behind && at == applied.base => {
                Some(Cow::Borrowed(delta.as_ref()))
            }
            (Some(_), Some(_)) if !behind => Some(Cow::Owned(
                strom_metadata::MetadataDelta::between(&old, &applied.image),
            )),
            _ => None,
        };
        self.follow_image(&applied.image, delta.as_deref());
        if let Some(authorizer) = &self.authorizer {
            authorizer.refresh(&applied.image);
        }
        *self.image.write() = Arc::clone(&applied.image);
        *followed = Some(applied.offset);
    }

    /// Runs a controller operation, then publishes the new image and follows it with the
    /// hosted logs. Operations validate against the image and append records (STYLE.md #7).
    /// The controller's commit fsyncs the metadata log and following the image opens logs:
    /// blocking work, so it runs off the async runtime's worker threads ([`off_runtime`]).
    /// Only on a node with the controller role (callers check).
    pub fn with_controller<R>(&self, op: impl FnOnce(&mut Controller) -> R) -> R {
        off_runtime(|| self.with_controller_blocking(op))
    }

    fn with_controller_blocking<R>(&self, op: impl FnOnce(&mut Controller) -> R) -> R {
        // Held until the logs follow the new image, so concurrent operations cannot race to
        // open the same new partition, and a published topic always has its logs.
        let mut controller = self
            .controller
            .as_ref()
            .expect("controller operations run locally only on controllers")
            .lock();
        if let Err(e) = controller.refresh() {
            // The operation's own commit reports it (NOT_CONTROLLER, or a stopped quorum).
            tracing::debug!(error = %e, "metadata image not refreshed");
        }
        let result = op(&mut controller);
        // The quorum's applied state is at least as new as the controller's image.
        let mut followed = self.follow_lock.lock();
        self.follow_applied(&mut followed, &self.metadata.applied());
        result
    }

    /// Brings the hosted logs in line with `image` (the controller lock held), remembering a
    /// failure for the background retry.
    fn follow_image(&self, image: &MetadataImage, delta: Option<&strom_metadata::MetadataDelta>) {
        use std::sync::atomic::Ordering;
        match self.sync_replicas(image, delta) {
            Ok(()) => {
                if self.logs_behind_image.swap(false, Ordering::Relaxed) {
                    tracing::info!("partition logs follow the metadata again");
                }
            }
            Err(e) => {
                self.logs_behind_image.store(true, Ordering::Relaxed);
                tracing::error!(error = %e, "could not apply metadata to partition logs; retrying in the background");
            }
        }
    }

    /// Retries following the image after a failure (background task).
    fn retry_follow_image(&self) {
        if self
            .logs_behind_image
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            let _following = self.follow_lock.lock();
            self.follow_image(&self.image(), None);
        }
    }

    /// Brings the hosted logs in line with `image`: only what `delta` names, or everything
    /// (`None`).
    fn sync_replicas(
        &self,
        image: &MetadataImage,
        delta: Option<&strom_metadata::MetadataDelta>,
    ) -> Result<(), strom_storage::LogError> {
        let config_for = |topic: &str| self.log_config(image, topic);
        let min_isr_for =
            |topic: &str| i32::try_from(self.min_insync_replicas(image, topic)).unwrap_or(i32::MAX);
        // A broker-level config change can move every topic's `min.insync.replicas` default:
        // a full sync then, as for the first image.
        let delta = delta.filter(|d| d.changed_broker_configs.is_empty());
        let changes = match delta {
            Some(delta) => self
                .replicas
                .apply_delta(image, delta, config_for, min_isr_for)?,
            None => self.replicas.sync(image, config_for, min_isr_for)?,
        };
        if !changes.is_empty() {
            self.fetchers.replan.notify_one();
            if self.config.is_quorum_over_network() {
                crate::internal_topic::on_role_changes(self, image, &changes);
            }
        }
        Ok(())
    }

    pub(crate) fn coordinator_events(&self) -> &crate::internal_topic::CoordinatorEvents {
        &self.coordinator_events
    }

    /// The follower fetchers.
    pub(crate) fn fetchers(&self) -> &crate::replica_fetcher::ReplicaFetchers {
        &self.fetchers
    }

    /// A follower caught up: check the ISRs now rather than at the next tick.
    pub(crate) fn isr_check_due(&self) {
        self.isr_wake.notify_one();
    }

    /// Leader duty (Kafka's ISR expiration and expansion): asks the controller to drop ISR
    /// members that fell behind for `replica.lag.time.max.ms` and to add caught-up replicas.
    /// Blocking (controller round trips).
    fn check_isrs(&self) {
        let now = crate::partition::now_ms();
        let lag_ms = self.config.replica_lag_time_max_ms();
        for partition in self.replicas.all() {
            let Some((role, new_isr)) = partition.isr_change_due(now, lag_ms) else {
                continue;
            };
            let op = ControllerOp::AlterPartition {
                broker_id: self.node_id(),
                topic_id: partition.topic_id,
                partition: partition.index,
                leader_epoch: role.leader_epoch,
                partition_epoch: role.partition_epoch,
                new_isr: new_isr.clone(),
            };
            match self.controller_op(op).into_partition() {
                Ok(altered) => {
                    tracing::info!(topic = %partition.topic, partition = partition.index, from = ?role.isr, to = ?altered.isr, "ISR change committed");
                    if role.isr.iter().any(|r| !altered.isr.contains(r)) {
                        self.metrics.isr_shrinks_total.inc();
                    }
                    if altered.isr.iter().any(|r| !role.isr.contains(r)) {
                        self.metrics.isr_expands_total.inc();
                    }
                    self.follow_latest();
                }
                Err(e) => {
                    tracing::info!(topic = %partition.topic, partition = partition.index, error = %e, "ISR change refused");
                    partition.isr_change_failed();
                }
            }
        }
    }

    /// The effective log configuration of a topic: its overrides over the broker defaults.
    pub fn log_config(&self, image: &MetadataImage, topic: &str) -> LogConfig {
        LogConfig {
            // A broker config in Kafka, applied by each partition's producer state.
            producer_id_expiration_ms: i64::from(self.config.producer_id_expiration_ms()),
            ..log_config_from(&self.effective_topic_configs(image, topic))
        }
    }

    /// Every topic config in force for `topic`: overrides over the broker's defaults.
    pub fn effective_topic_configs(
        &self,
        image: &MetadataImage,
        topic: &str,
    ) -> BTreeMap<String, String> {
        let overrides = image
            .topic_config_overrides(topic)
            .cloned()
            .unwrap_or_default();
        strom_metadata::config_defs::effective_topic_configs(&overrides, &self.config)
    }

    /// `min.insync.replicas` in force for `topic`.
    /// Looks up the one config only: the produce path asks once per partition.
    pub fn min_insync_replicas(&self, image: &MetadataImage, topic: &str) -> i64 {
        let none = BTreeMap::new();
        let overrides = image.topic_config_overrides(topic).unwrap_or(&none);
        strom_metadata::config_defs::effective_topic_config(
            overrides,
            &self.config,
            "min.insync.replicas",
        )
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
    }

    /// Creates the topics among `names` that do not exist, with the default partition count
    /// and replication factor (`auto.create.topics.enable`). Invalid names are skipped.
    pub fn auto_create_topics(&self, names: &[&str]) {
        let image = self.image();
        let missing: Vec<CreateTopicRequest> = names
            .iter()
            .filter(|name| image.topic(name).is_none())
            .filter(|name| strom_metadata::validate_topic_name(name).is_ok())
            .map(|name| CreateTopicRequest::with_defaults(*name))
            .collect();
        if missing.is_empty() {
            return;
        }
        let n = missing.len();
        let op = ControllerOp::CreateTopics {
            topics: missing,
            validate_only: false,
        };
        for result in self.controller_op(op).into_create_topics(n) {
            match result {
                Ok(created) => tracing::info!(topic = %created.name, "auto-created topic"),
                Err(e) => tracing::debug!(error = %e, "auto-create refused"),
            }
        }
    }

    /// Hands out the next producer id, asking the controller for a new block when needed.
    pub fn allocate_producer_id(&self) -> Result<i64, ControllerError> {
        let mut ids = self.producer_ids.lock();
        if ids.next >= ids.end {
            let node_id = self.node_id();
            let op = ControllerOp::AllocateProducerIds { broker_id: node_id };
            let (start, size) = self.controller_op(op).into_producer_ids()?;
            ids.next = start;
            ids.end = start + size;
        }
        let id = ids.next;
        ids.next += 1;
        Ok(id)
    }

    /// Periodic work: retention (log.retention.check.interval.ms).
    pub(crate) fn start_background_tasks(
        self: Arc<Self>,
        mut stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let interval =
            Duration::from_millis(self.config.log_retention_check_interval_ms().max(10) as u64);
        if self.config.is_quorum_over_network() {
            self.start_cluster_tasks(&stop);
        }
        let broker = self.clone();
        let groups_stop = stop.clone();
        let offsets_check_ms = crate::group::coordinator::retention_check_interval_ms(&self.config);
        // Session/rebalance timeouts and offset expiry; ends (releasing waiters) on stop.
        tokio::spawn(async move {
            broker
                .groups
                .run_timers(broker.as_ref(), offsets_check_ms, groups_stop)
                .await;
        });
        let txn_broker = self.clone();
        let txn_stop = stop.clone();
        let txn_check_ms = crate::txn::coordinator::abort_check_interval_ms(&self.config);
        // Aborts timed-out transactions (transaction.abort.timed.out.transaction.cleanup.interval.ms).
        tokio::spawn(async move {
            txn_broker
                .txns
                .run_timers(txn_broker.as_ref(), txn_check_ms, txn_stop)
                .await;
        });
        // Compaction (log.cleaner.enable, log.cleaner.backoff.ms).
        crate::log_cleaner::spawn(self.clone(), stop.clone());
        // Rolled segments are fsynced soon after the roll (Kafka schedules that flush at the
        // roll), so the recovery point advances and an unclean restart rescans only the tail;
        // logs that could not follow the metadata (a full disk) are retried on the same tick.
        let flusher = self.clone();
        let mut flush_stop = stop.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(ROLLED_FLUSH_INTERVAL);
            let mut ticks = 0u64;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = flush_stop.changed() => return,
                }
                let broker = flusher.clone();
                ticks += 1;
                // Kafka's replica.high.watermark.checkpoint.interval.ms default: 5 s.
                let checkpoint = ticks.is_multiple_of(5);
                let _ = tokio::task::spawn_blocking(move || {
                    broker.retry_follow_image();
                    broker.flush_rolled_segments();
                    if checkpoint {
                        broker.replicas.checkpoint_high_watermarks();
                    }
                })
                .await;
            }
        });
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = ticker.tick() => {}
                    _ = stop.changed() => return,
                }
                let broker = self.clone();
                let _ = tokio::task::spawn_blocking(move || broker.enforce_retention()).await;
            }
        })
    }

    fn flush_rolled_segments(&self) {
        for partition in self.replicas.all() {
            if let Err(e) = partition.log.flush_rolled() {
                tracing::warn!(topic = %partition.topic, partition = partition.index, error = %e, "flushing rolled segments failed");
            }
        }
    }

    fn enforce_retention(&self) {
        for partition in self.replicas.all() {
            match partition.log.enforce_retention() {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(topic = %partition.topic, partition = partition.index, segments = n, "retention deleted segments")
                }
                Err(e) => {
                    tracing::warn!(topic = %partition.topic, partition = partition.index, error = %e, "retention failed")
                }
            }
        }
    }

    /// Closes every log with a clean-shutdown marker.
    pub fn shutdown(&self) {
        // Kafka's num.recovery.threads.per.data.dir sizes both recovery and shutdown work.
        let threads = self
            .config
            .static_value("num.recovery.threads.per.data.dir")
            .and_then(|v| v.parse().ok())
            .unwrap_or(SHUTDOWN_THREADS);
        self.replicas.checkpoint_high_watermarks();
        let closed = self.replicas.close_all(threads);
        self.metadata.shutdown();
        if closed {
            write_clean_shutdown_markers(self.config.log_dirs());
        }
    }
}

/// Runs blocking work (fsyncs, creating files) without stalling an async worker thread: on
/// the multi-thread runtime the worker first hands its other tasks to a fresh thread
/// (`block_in_place`); outside a runtime (start-up, unit tests) the work simply runs.
pub(crate) fn off_runtime<R>(work: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// A metadata image with no topics over a data directory full of partition logs means the
/// metadata log was lost, damaged or is another cluster's: a fault to report, never a reason
/// to set every log aside. The broker refuses to start until an operator decides.
fn check_metadata_knows_data(
    image: &MetadataImage,
    replicas: &ReplicaManager,
) -> Result<(), ServerError> {
    if image.topic_count() > 0 {
        return Ok(());
    }
    let dirs = replicas.partition_dirs_on_disk();
    if dirs.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = dirs.iter().take(5).map(|(_, d)| d.as_str()).collect();
    Err(ServerError::Startup(format!(
        "the metadata log names no topics, but {} hold {} partition directories ({}{}); \
         refusing to start rather than treat them as strays. Restore the metadata log, or move \
         the directories away if they are not this cluster's",
        replicas
            .roots()
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        dirs.len(),
        shown.join(", "),
        if dirs.len() > shown.len() {
            ", ..."
        } else {
            ""
        }
    )))
}

/// Takes the exclusive lock on `<log.dirs>/.lock`, so a second process cannot open (and
/// recover) logs that a running broker is writing.
/// Written in every log dir once every partition log closed cleanly (flushed, snapshots and
/// recovery points written); taken at the next start. A broker that finds it in every log dir
/// registers as having shut down cleanly (Kafka compares broker epochs from its own
/// clean-shutdown file; Strom has no broker epochs, the marker alone says it).
pub const CLEAN_SHUTDOWN_MARKER: &str = ".strom_cleanshutdown";

/// Logs closed for the log-dir marker left their active segments and directories to one
/// `syncfs` per log dir (`PartitionLog::close_for_log_dir_marker`): the marker is written
/// only once it succeeded. Returns the log dirs marked.
fn write_clean_shutdown_markers(roots: &[std::path::PathBuf]) -> usize {
    let mut marked = 0;
    for root in roots {
        let path = root.join(CLEAN_SHUTDOWN_MARKER);
        let written = std::fs::File::open(root)
            .and_then(|dir| nix::unistd::syncfs(&dir).map_err(std::io::Error::from))
            .and_then(|()| std::fs::File::create(&path))
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::File::open(root)?.sync_all());
        marked += usize::from(written.is_ok());
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the clean-shutdown marker");
        }
    }
    marked
}

/// Whether every log dir holds the clean-shutdown marker; removes them (durably) either way.
fn take_clean_shutdown_markers(roots: &[std::path::PathBuf]) -> bool {
    let mut clean = !roots.is_empty();
    for root in roots {
        let path = root.join(CLEAN_SHUTDOWN_MARKER);
        if !path.exists() {
            clean = false;
            continue;
        }
        let removed =
            std::fs::remove_file(&path).and_then(|()| std::fs::File::open(root)?.sync_all());
        if let Err(e) = removed {
            // A marker that stays could make a later crash look clean: refuse to trust it.
            tracing::warn!(path = %path.display(), error = %e, "cannot remove the clean-shutdown marker");
            clean = false;
        }
    }
    clean
}

fn lock_data_dir(root: &std::path::Path) -> Result<std::fs::File, ServerError> {
    let path = root.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| ServerError::Startup(format!("cannot open {}: {e}", path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServerError::Startup(format!(
            "log.dirs {} is in use by another strom process",
            root.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(ServerError::Startup(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

/// Builds the storage configuration from effective topic config values (Kafka's names).
pub(crate) fn log_config_from(values: &BTreeMap<String, String>) -> LogConfig {
    let mut config = LogConfig::default();
    let num = |key: &str| values.get(key).and_then(|v| v.parse::<i64>().ok());
    if let Some(v) = num("segment.bytes") {
        config.segment_bytes = v.max(1) as u64;
    }
    if let Some(v) = num("segment.ms") {
        config.segment_ms = v;
    }
    if let Some(v) = num("segment.index.bytes") {
        config.segment_index_bytes = v.max(8) as u64;
    }
    if let Some(v) = num("index.interval.bytes") {
        config.index_interval_bytes = v.max(0) as u64;
    }
    if let Some(v) = num("max.message.bytes") {
        config.max_message_bytes = v.clamp(0, i64::from(u32::MAX)) as u32;
    }
    if let Some(v) = num("retention.ms") {
        config.retention_ms = v;
    }
    if let Some(v) = num("retention.bytes") {
        config.retention_bytes = v;
    }
    if let Some(v) = num("flush.messages") {
        config.flush_messages = v.max(1) as u64;
    }
    if let Some(v) = num("flush.ms") {
        config.flush_ms = v;
    }
    if let Some(v) = values.get("flush.before.ack.enable") {
        config.flush_before_ack = v.eq_ignore_ascii_case("true");
    }
    if let Some(v) = values.get("cleanup.policy") {
        config.cleanup_policy = strom_storage::CleanupPolicy::parse(v);
    }
    let ratio = values.get("min.cleanable.dirty.ratio");
    if let Some(v) = ratio.and_then(|v| v.parse().ok()) {
        config.min_cleanable_dirty_ratio = v;
    }
    if let Some(v) = num("min.compaction.lag.ms") {
        config.min_compaction_lag_ms = v;
    }
    if let Some(v) = num("max.compaction.lag.ms") {
        config.max_compaction_lag_ms = v;
    }
    if let Some(v) = num("delete.retention.ms") {
        config.delete_retention_ms = v;
    }
    if let Some(v) = values.get("message.timestamp.type") {
        config.timestamp_type = if v == "LogAppendTime" {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        };
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_shutdown_markers_follow_a_syncfs_and_only_where_it_worked() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("unsynced"), b"written, not fsynced").unwrap();
        assert_eq!(write_clean_shutdown_markers(&[a.clone(), b.clone()]), 2);
        assert!(a.join(CLEAN_SHUTDOWN_MARKER).exists());
        assert!(take_clean_shutdown_markers(&[a.clone(), b.clone()]));
        assert!(!a.join(CLEAN_SHUTDOWN_MARKER).exists());
        // A log dir that cannot be synced (gone) is not marked; the others are, but the next
        // start does not count as clean.
        let gone = dir.path().join("gone");
        assert_eq!(write_clean_shutdown_markers(&[a.clone(), gone.clone()]), 1);
        assert!(a.join(CLEAN_SHUTDOWN_MARKER).exists());
        assert!(!gone.join(CLEAN_SHUTDOWN_MARKER).exists());
        assert!(!take_clean_shutdown_markers(&[a, gone]));
    }

    #[test]
    fn log_config_reads_kafka_names() {
        let values: BTreeMap<String, String> = [
            ("segment.bytes", "1048576"),
            ("retention.ms", "-1"),
            ("flush.messages", "1"),
            ("flush.before.ack.enable", "true"),
            ("message.timestamp.type", "LogAppendTime"),
            ("cleanup.policy", "compact,delete"),
            ("min.cleanable.dirty.ratio", "0.25"),
            ("min.compaction.lag.ms", "7"),
            ("max.compaction.lag.ms", "8"),
            ("delete.retention.ms", "9"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let c = log_config_from(&values);
        assert_eq!(c.segment_bytes, 1_048_576);
        assert_eq!(c.retention_ms, -1);
        assert_eq!(c.flush_messages, 1);
        assert!(c.flush_before_ack);
        assert!(matches!(c.timestamp_type, TimestampType::LogAppendTime));
        assert!(c.cleanup_policy.compact && c.cleanup_policy.delete);
        assert_eq!(c.min_cleanable_dirty_ratio, 0.25);
        assert_eq!(c.min_compaction_lag_ms, 7);
        assert_eq!(c.max_compaction_lag_ms, 8);
        assert_eq!(c.delete_retention_ms, 9);
    }
}
