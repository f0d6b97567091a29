//! The shared core of producer, consumer and admin: bootstrap, the cluster metadata cache,
//! one connection per broker, version negotiation per request, coordinator lookup, and
//! retrying retriable errors with exponential backoff.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use strom_protocol::kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use strom_protocol::kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, MetadataRequest, MetadataResponse,
};
use strom_protocol::kafka_protocol::protocol::Request;
use strom_protocol::ErrorCode;

use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::util::{sb, topic_name};
use crate::TopicPartition;

/// A broker as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline: Vec<i32>,
    pub error: Option<ErrorCode>,
}

/// A topic as metadata describes it; `partitions` is sorted by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub topic_id: String,
    pub is_internal: bool,
    pub error: Option<ErrorCode>,
    pub partitions: Vec<PartitionInfo>,
}

/// A snapshot of the cluster. Replaced whole on refresh, never mutated in place.
#[derive(Debug, Clone)]
pub struct ClusterMetadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerInfo>,
    pub topics: BTreeMap<String, TopicInfo>,
}

impl ClusterMetadata {
    pub fn topic(&self, name: &str) -> Option<&TopicInfo> {
        self.topics.get(name)
    }

    /// Leader of a partition if known and available.
    pub fn leader(&self, tp: &TopicPartition) -> Option<i32> {
        let t = self.topics.get(&tp.topic)?;
        let p = t.partitions.get(usize::try_from(tp.partition).ok()?)?;
        (p.leader >= 0).then_some(p.leader)
    }
}

struct Inner {
    config: ClientConfig,
    metadata: RwLock<Arc<ClusterMetadata>>,
    stale: std::sync::atomic::AtomicBool,
    conns: tokio::sync::Mutex<HashMap<i32, Arc<Connection>>>,
    bootstrap: tokio::sync::Mutex<Option<Arc<Connection>>>,
    coordinators: Mutex<HashMap<String, i32>>,
    refresh: tokio::sync::Mutex<Instant>,
}

/// A handle on the cluster; cheap to clone, shared by producer, consumer and admin.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("bootstrap", &self.inner.config.bootstrap_servers)
            .finish()
    }
}

impl Client {
    /// Connects to a bootstrap server and loads the broker list.
    pub async fn connect(config: ClientConfig) -> Result<Client> {
        if config.bootstrap_servers.is_empty() {
            return Err(Error::Config("bootstrap.servers is empty".into()));
        }
        let client = Client {
            inner: Arc::new(Inner {
                config,
                metadata: RwLock::new(Arc::new(ClusterMetadata {
                    cluster_id: None,
                    controller_id: -1,
                    brokers: BTreeMap::new(),
                    topics: BTreeMap::new(),
                })),
                stale: std::sync::atomic::AtomicBool::new(true),
                conns: tokio::sync::Mutex::new(HashMap::new()),
                bootstrap: tokio::sync::Mutex::new(None),
                coordinators: Mutex::new(HashMap::new()),
                refresh: tokio::sync::Mutex::new(Instant::now()),
            }),
        };
        client.refresh_metadata(Some(&[]), false).await?;
        Ok(client)
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The cached metadata (may lag the cluster; see `refresh_metadata`).
    pub fn metadata(&self) -> Arc<ClusterMetadata> {
        self.inner
            .metadata
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Asks for a refresh before the next leader lookup (after NOT_LEADER and the like).
    pub fn invalidate_metadata(&self) {
        self.inner
            .stale
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Fetches metadata for `topics` (`None` = all topics) and merges it into the cache.
    pub async fn refresh_metadata(
        &self,
        topics: Option<&[String]>,
        allow_auto_create: bool,
    ) -> Result<Arc<ClusterMetadata>> {
        let resp: MetadataResponse = self
            .send(None, ApiKey::Metadata, |_| {
                let mut req = MetadataRequest::default();
                req.allow_auto_topic_creation = allow_auto_create;
                req.topics = topics.map(|ts| {
                    ts.iter()
                        .map(|t| {
                            let mut r = MetadataRequestTopic::default();
                            r.name = Some(topic_name(t));
                            r
                        })
                        .collect()
                });
                req
            })
            .await?;
        let fresh = self.merge_metadata(resp, topics.is_none());
        Ok(fresh)
    }

    fn merge_metadata(&self, resp: MetadataResponse, all: bool) -> Arc<ClusterMetadata> {
        let mut guard = self
            .inner
            .metadata
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let mut md = if all {
            ClusterMetadata {
                topics: BTreeMap::new(),
                ..(**guard).clone()
            }
        } else {
            (**guard).clone()
        };
        md.cluster_id = resp.cluster_id.map(|s| s.to_string());
        md.controller_id = resp.controller_id.0;
        md.brokers = resp
            .brokers
            .into_iter()
            .map(|b| {
                let info = BrokerInfo {
                    node_id: b.node_id.0,
                    host: b.host.to_string(),
                    port: b.port,
                    rack: b.rack.map(|r| r.to_string()),
                };
                (b.node_id.0, info)
            })
            .collect();
        for t in resp.topics {
            let Some(name) = t.name.map(|n| n.0.to_string()) else {
                continue;
            };
            let error = ErrorCode::try_from_code(t.error_code);
            if error == Some(ErrorCode::UnknownTopicOrPartition) {
                md.topics.remove(&name);
                continue;
            }
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .into_iter()
                .map(|p| PartitionInfo {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                    offline: p.offline_replicas.iter().map(|b| b.0).collect(),
                    error: ErrorCode::try_from_code(p.error_code),
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            let info = TopicInfo {
                name: name.clone(),
                topic_id: t.topic_id.to_string(),
                is_internal: t.is_internal,
                error,
                partitions,
            };
            md.topics.insert(name, info);
        }
        let md = Arc::new(md);
        *guard = md.clone();
        self.inner
            .stale
            .store(false, std::sync::atomic::Ordering::Relaxed);
        md
    }

    /// Metadata that includes `topic`, refreshing (once, or if stale) when needed.
    pub(crate) async fn topic_metadata(&self, topic: &str, auto_create: bool) -> Result<TopicInfo> {
        let stale = self.inner.stale.load(std::sync::atomic::Ordering::Relaxed);
        if !stale {
            if let Some(t) = self.metadata().topic(topic) {
                return Ok(t.clone());
            }
        }
        // Coalesce concurrent refreshes: whoever waited behind another one re-checks first.
        let started = Instant::now();
        let mut last = self.inner.refresh.lock().await;
        if *last > started {
            if let Some(t) = self.metadata().topic(topic) {
                return Ok(t.clone());
            }
        }
        let md = self
            .refresh_metadata(Some(&[topic.to_owned()]), auto_create)
            .await?;
        *last = Instant::now();
        md.topic(topic).cloned().ok_or_else(|| {
            Error::kafka(
                ErrorCode::UnknownTopicOrPartition,
                format!("topic '{topic}'"),
            )
        })
    }

    /// Sends a request built for the negotiated version to `node` (or any broker for `None`).
    pub(crate) async fn send<R: Request>(
        &self,
        node: Option<i32>,
        api: ApiKey,
        make: impl FnOnce(i16) -> R,
    ) -> Result<R::Response> {
        let conn = match node {
            Some(id) => self.connection(id).await?,
            None => self.any_connection().await?,
        };
        let version = conn.version(api)?;
        let result = conn.send(&make(version), version).await;
        if let Err(e) = &result {
            if matches!(e, Error::Disconnected { .. } | Error::Timeout { .. }) {
                self.drop_connection(node, &conn).await;
            }
        }
        result
    }

    /// As `send` but also returns the version used (for version-dependent response fields).
    pub(crate) async fn connection_for(&self, node: Option<i32>) -> Result<Arc<Connection>> {
        match node {
            Some(id) => self.connection(id).await,
            None => self.any_connection().await,
        }
    }

    pub(crate) async fn drop_connection(&self, node: Option<i32>, conn: &Arc<Connection>) {
        conn.close("dropped after an error");
        match node {
            Some(id) => {
                let mut conns = self.inner.conns.lock().await;
                if conns.get(&id).is_some_and(|c| Arc::ptr_eq(c, conn)) {
                    conns.remove(&id);
                }
            }
            None => {
                let mut b = self.inner.bootstrap.lock().await;
                if b.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
                    *b = None;
                }
                drop(b);
                let mut conns = self.inner.conns.lock().await;
                conns.retain(|_, c| !Arc::ptr_eq(c, conn));
            }
        }
        self.invalidate_metadata();
    }

    /// The connection to broker `node`, opened on first use.
    pub(crate) async fn connection(&self, node: i32) -> Result<Arc<Connection>> {
        let mut conns = self.inner.conns.lock().await;
        if let Some(c) = conns.get(&node) {
            if !c.is_closed() {
                return Ok(c.clone());
            }
        }
        let addr = {
            let md = self.metadata();
            let b = md.brokers.get(&node).ok_or_else(|| {
                Error::kafka(
                    ErrorCode::BrokerNotAvailable,
                    format!("node {node} is not in metadata"),
                )
            })?;
            format!("{}:{}", b.host, b.port)
        };
        let cfg = &self.inner.config;
        let conn = Connection::connect(
            &addr,
            &cfg.client_id,
            cfg.connect_timeout,
            cfg.request_timeout,
            &cfg.security,
        )
        .await?;
        conns.insert(node, conn.clone());
        Ok(conn)
    }

    /// Any live connection: a broker's, else the bootstrap one (opened on first use).
    async fn any_connection(&self) -> Result<Arc<Connection>> {
        {
            let conns = self.inner.conns.lock().await;
            if let Some(c) = conns.values().find(|c| !c.is_closed()) {
                return Ok(c.clone());
            }
        }
        let mut boot = self.inner.bootstrap.lock().await;
        if let Some(c) = boot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let cfg = &self.inner.config;
        let mut addrs: Vec<String> = cfg.bootstrap_servers.clone();
        addrs.extend(
            self.metadata()
                .brokers
                .values()
                .map(|b| format!("{}:{}", b.host, b.port)),
        );
        let mut last_err = None;
        for addr in addrs {
            match Connection::connect(
                &addr,
                &cfg.client_id,
                cfg.connect_timeout,
                cfg.request_timeout,
                &cfg.security,
            )
            .await
            {
                Ok(c) => {
                    *boot = Some(c.clone());
                    return Ok(c);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::Config("no bootstrap servers".into())))
    }

    /// Runs `op` until it succeeds, fails with a non-retriable error, or `default.api.timeout.ms`
    /// passes; sleeps with exponential backoff in between and refreshes metadata when told to.
    pub(crate) async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let deadline = Instant::now() + self.inner.config.api_timeout;
        let mut attempt = 0u32;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    tracing::debug!(%e, attempt, "{what}: retrying");
                    if e.invalidates_metadata() {
                        self.invalidate_metadata();
                    }
                    tokio::time::sleep(self.inner.config.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The group coordinator's node id (FindCoordinator, cached until invalidated).
    pub(crate) async fn coordinator(&self, group: &str) -> Result<i32> {
        self.find_coordinator(KEY_GROUP, group).await
    }

    /// The node coordinating `key` of `key_type` (0 group, 1 transactional id).
    pub(crate) async fn find_coordinator(&self, key_type: i8, key: &str) -> Result<i32> {
        let group = key;
        let cache_key = coordinator_cache_key(key_type, key);
        if let Some(id) = self.lock_coordinators().get(&cache_key) {
            return Ok(*id);
        }
        let conn = self.any_connection().await?;
        let version = conn.version(ApiKey::FindCoordinator)?;
        let mut req = FindCoordinatorRequest::default();
        req.key_type = key_type;
        if version >= 4 {
            req.coordinator_keys = vec![sb(group)];
        } else {
            req.key = sb(group);
        }
        let resp = conn.send(&req, version).await?;
        let (code, node, host, port) = if version >= 4 {
            let c = resp.coordinators.first().ok_or_else(|| Error::Protocol {
                api: "FindCoordinator".into(),
                reason: "no coordinator in response".into(),
            })?;
            (c.error_code, c.node_id.0, c.host.to_string(), c.port)
        } else {
            (
                resp.error_code,
                resp.node_id.0,
                resp.host.to_string(),
                resp.port,
            )
        };
        Error::check(code, || {
            format!("coordinator of '{group}' (key type {key_type})")
        })?;
        self.note_broker(node, host, port);
        self.lock_coordinators().insert(cache_key, node);
        Ok(node)
    }

    pub(crate) fn invalidate_coordinator(&self, group: &str) {
        self.invalidate_coordinator_of(KEY_GROUP, group);
    }

    pub(crate) fn invalidate_coordinator_of(&self, key_type: i8, key: &str) {
        self.lock_coordinators()
            .remove(&coordinator_cache_key(key_type, key));
    }

    fn lock_coordinators(&self) -> std::sync::MutexGuard<'_, HashMap<String, i32>> {
        self.inner
            .coordinators
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Records a broker address learned outside Metadata (FindCoordinator).
    fn note_broker(&self, node_id: i32, host: String, port: i32) {
        let mut guard = self
            .inner
            .metadata
            .write()
            .unwrap_or_else(|e| e.into_inner());
        if guard.brokers.contains_key(&node_id) {
            return;
        }
        let mut md = (**guard).clone();
        md.brokers.insert(
            node_id,
            BrokerInfo {
                node_id,
                host,
                port,
                rack: None,
            },
        );
        *guard = Arc::new(md);
    }

    /// Closes every connection (in-flight requests fail).
    pub async fn close(&self) {
        for (_, c) in self.inner.conns.lock().await.drain() {
            c.close("client closed");
        }
        if let Some(c) = self.inner.bootstrap.lock().await.take() {
            c.close("client closed");
        }
    }
}

/// FindCoordinator key types.
pub(crate) const KEY_GROUP: i8 = 0;
pub(crate) const KEY_TRANSACTION: i8 = 1;

/// Group ids and transactional ids share one cache; the key type keeps them apart.
fn coordinator_cache_key(key_type: i8, key: &str) -> String {
    format!("{key_type}\u{0}{key}")
}
