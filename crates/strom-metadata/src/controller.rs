//! The controller: validates admin operations against the current image, turns them into
//! metadata records, commits them through the metadata quorum and only then sees them in the
//! image (STYLE.md #7). Single node: a quorum of one (commit = its fsync). Cluster: the Raft
//! leader's controller is the active one; elsewhere proposals fail with `NotController`.

pub mod acls;
pub mod balancing;
mod brokers;
mod configs;
pub mod elections;
pub mod ops;
mod partitions;
pub mod quotas;
pub mod reassignments;
pub mod scram;
pub mod topics;

use std::path::Path;
use std::sync::Arc;

use crate::broker_config::BrokerConfig;
use crate::error::ControllerError;
use crate::image::{BrokerEndpoint, MetadataImage};
use crate::log::{MetadataLog, MAX_BATCH_BYTES, METADATA_LOG_DIR_NAME, METADATA_LOG_FILE_NAME};
use crate::quorum::node::QuorumNodeOptions;
use crate::quorum::service::QuorumService;
use crate::quorum::QuorumError;
use crate::records::MetadataRecord;

pub use configs::AlterConfigOp;
pub use ops::{ControllerAnswer, ControllerHandler, ControllerOp, ControllerOpResult};
pub use partitions::AlteredPartition;
pub use topics::{CreateTopicRequest, CreatedTopic};

/// Producer ids handed to a broker per allocation (KIP-730 blocks, as Kafka).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Proposes records to the metadata quorum and reads the image it commits. Every operation
/// either commits all of its records or none, and the image only ever reflects committed
/// records.
#[derive(Debug)]
pub struct Controller {
    quorum: Arc<QuorumService>,
    /// The committed image as of the last [`Controller::refresh`] or commit.
    image: Arc<MetadataImage>,
    config: BrokerConfig,
    /// When each broker was last heard from (ms); soft state, rebuilt by heartbeats.
    last_contact: std::collections::BTreeMap<i32, i64>,
    /// When the automatic leader rebalance runs next (ms; 0 = one interval from the first
    /// check, so a starting cluster settles first).
    next_leader_rebalance_ms: i64,
    /// When the continuous balancer (`balancer.enable`) looks next.
    next_balance_ms: i64,
    /// The leader term in which this controller last caught up with the committed log.
    caught_up_term: Option<u64>,
}

impl Controller {
    /// Single-node mode: opens a quorum of one in `dir`'s `__cluster_metadata-0` (normally
    /// `dir` is `config.metadata_log_dir()`), moves a metadata log written before the quorum
    /// into it on first start, and bootstraps the cluster id (`cluster.id` if configured, else a
    /// random one).
    pub fn open(dir: &Path, config: &BrokerConfig) -> Result<Controller, ControllerError> {
        let quorum_dir = dir.join(METADATA_LOG_DIR_NAME);
        let node_id =
            u64::try_from(config.node_id()).map_err(|_| ControllerError::InvalidRequest {
                reason: format!("node.id {} is negative", config.node_id()),
            })?;
        let quorum = QuorumService::start_local(node_id, &quorum_dir, QuorumNodeOptions::default())
            .map_err(|e| ControllerError::Storage {
                reason: e.to_string(),
            })?;
        // A quorum of one elects itself at once; this bounds a wedged start.
        let known = quorum.wait_for_leader(std::time::Duration::from_secs(30));
        if known.leader != Some(node_id) {
            return Err(ControllerError::Storage {
                reason: format!("the metadata quorum of one did not elect itself: {known:?}"),
            });
        }
        migrate_pre_quorum_log(dir, &quorum)?;
        Controller::with_quorum(Arc::new(quorum), config)
    }

    /// A controller over a running quorum. On the leader, a cluster with no id yet gets one
    /// now; elsewhere the first leader's commit brings it.
    pub fn with_quorum(
        quorum: Arc<QuorumService>,
        config: &BrokerConfig,
    ) -> Result<Controller, ControllerError> {
        let image = quorum.image().1;
        let mut controller = Controller {
            quorum,
            image,
            config: config.clone(),
            last_contact: Default::default(),
            next_leader_rebalance_ms: 0,
            next_balance_ms: 0,
            caught_up_term: None,
        };
        match controller.refresh() {
            // In a cluster the leader may change under us at start: the image is what it is.
            Err(ControllerError::NotController { .. }) => {}
            other => other?,
        }
        tracing::info!(
            offset = controller.quorum.image().0,
            topics = controller.image.topic_count(),
            "metadata image loaded"
        );
        if controller.image.cluster_id().is_none() && controller.quorum.is_leader() {
            match controller.commit(Vec::new()) {
                Err(ControllerError::NotController { .. }) => {}
                other => other?,
            }
        }
        controller.check_cluster_id()?;
        Ok(controller)
    }

    /// The configured `cluster.id` must be the stored one, once there is one.
    pub fn check_cluster_id(&self) -> Result<(), ControllerError> {
        match (self.image.cluster_id(), self.config.cluster_id()) {
            (Some(stored), Some(configured)) if stored != configured => {
                Err(ControllerError::ClusterIdMismatch {
                    configured: configured.to_string(),
                    stored: stored.to_string(),
                })
            }
            _ => Ok(()),
        }
    }

    /// The quorum this controller proposes to.
    pub fn quorum(&self) -> &Arc<QuorumService> {
        &self.quorum
    }

    /// Reads the latest committed image. On the leader it first waits until everything
    /// committed before (by an earlier leader, or before a restart: openraft learns what was
    /// committed only when it commits again) is applied, so an operation never validates
    /// against a stale image.
    pub fn refresh(&mut self) -> Result<(), ControllerError> {
        // Once per term: after the leader applied its own first entry of the term, everything
        // committed before is applied too, and only it commits from then on.
        let known = self.quorum.leader();
        if known.leader == Some(self.quorum.node_id()) && self.caught_up_term != Some(known.epoch) {
            self.quorum.catch_up_as_leader()?;
            self.caught_up_term = Some(known.epoch);
        }
        self.image = self.quorum.image().1;
        Ok(())
    }

    /// The current image (committed state).
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.image)
    }

    /// The static broker configuration the controller validates against.
    pub fn broker_config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The broker config with this node's dynamic overrides from the image on top: what topic
    /// defaults and DescribeConfigs use.
    pub fn effective_broker_config(&self) -> BrokerConfig {
        effective_broker_config(&self.config, &self.image)
    }

    /// The cluster id (always set in single-node mode once `open` returned; in a cluster, from
    /// the first leader's first commit).
    pub fn cluster_id(&self) -> &str {
        self.image.cluster_id().unwrap_or("")
    }

    /// Registers (or re-registers with a new endpoint) a broker with one endpoint.
    /// Idempotent.
    pub fn register_broker(
        &mut self,
        broker_id: i32,
        host: &str,
        port: u16,
        rack: Option<&str>,
    ) -> Result<(), ControllerError> {
        self.register_broker_with_listeners(broker_id, host, port, rack, &[])
    }

    /// Registers (or re-registers with new endpoints) a broker: `host:port` is its
    /// inter-broker endpoint, `listeners` every advertised listener. Idempotent.
    pub fn register_broker_with_listeners(
        &mut self,
        broker_id: i32,
        host: &str,
        port: u16,
        rack: Option<&str>,
        listeners: &[BrokerEndpoint],
    ) -> Result<(), ControllerError> {
        if broker_id < 0 {
            return Err(ControllerError::InvalidRequest {
                reason: format!("broker id {broker_id} is negative"),
            });
        }
        let existing = self.image.broker(broker_id);
        let unchanged = existing.is_some_and(|b| {
            b.host == host
                && b.port == port
                && b.rack.as_deref() == rack
                && b.listeners == listeners
        });
        let fenced = existing.is_some_and(|b| b.fenced);
        let mut records = Vec::new();
        if !unchanged {
            records.push(MetadataRecord::RegisterBroker {
                broker_id,
                host: host.to_string(),
                port,
                rack: rack.map(str::to_string),
                listeners: listeners.to_vec(),
            });
        }
        // A fenced broker registering again (a restart) is back: as a heartbeat would.
        if fenced {
            records.extend(brokers::unfence_records(
                &self.image,
                broker_id,
                &self.topic_policy(),
            ));
        }
        self.commit(records)
    }

    /// Hands `broker_id` the next block of producer ids: returns `(first id, block size)`.
    /// The block is committed before it is returned, so it is never handed out again, even
    /// after a restart.
    pub fn allocate_producer_id_block(
        &mut self,
        broker_id: i32,
    ) -> Result<(i64, i64), ControllerError> {
        if self.image.broker(broker_id).is_none() {
            return Err(ControllerError::BrokerNotRegistered { broker_id });
        }
        let start = self.image.next_producer_id_block_start();
        let next_block_start = start.checked_add(PRODUCER_ID_BLOCK_SIZE).ok_or_else(|| {
            ControllerError::InvalidRequest {
                reason: "producer id space is exhausted".into(),
            }
        })?;
        self.commit(vec![MetadataRecord::ProducerIds {
            broker_id,
            next_block_start,
            block_size: PRODUCER_ID_BLOCK_SIZE,
        }])?;
        Ok((start, PRODUCER_ID_BLOCK_SIZE))
    }

    /// Proposes `records` as one batch and waits until the quorum committed it; the image then
    /// includes it. The first commit of a cluster also records its id.
    fn commit(&mut self, mut records: Vec<MetadataRecord>) -> Result<(), ControllerError> {
        if self.image.cluster_id().is_none() {
            let cluster_id = self
                .config
                .cluster_id()
                .map_or_else(random_cluster_id, str::to_string);
            tracing::info!(%cluster_id, "bootstrapping a new cluster");
            records.insert(0, MetadataRecord::Cluster { cluster_id });
        }
        if records.is_empty() {
            return Ok(());
        }
        let bytes = crate::records::codec::encode_batch(&records).len();
        if bytes > MAX_BATCH_BYTES {
            return Err(ControllerError::InvalidRequest {
                reason: format!(
                    "the metadata records of this request take {bytes} bytes, over the limit of {MAX_BATCH_BYTES}"
                ),
            });
        }
        let result = self.quorum.propose(records);
        // Even a failed proposal may have committed (leadership moved): read what is there.
        self.image = self.quorum.image().1;
        result.map(|_| ()).map_err(ControllerError::from)
    }
}

impl From<QuorumError> for ControllerError {
    fn from(e: QuorumError) -> Self {
        match e {
            QuorumError::NotLeader { leader } | QuorumError::LeadershipLost { leader } => {
                ControllerError::NotController {
                    leader: leader.and_then(|l| i32::try_from(l).ok()),
                }
            }
            QuorumError::Stopped { reason } => ControllerError::Storage { reason },
        }
    }
}

/// Moves a metadata log written before the quorum existed (JSON frames in
/// `__cluster_metadata-0/00000000000000000000.log`) into the quorum as one batch, then renames
/// it `.migrated` (kept, not deleted). A crash before the rename is safe: a quorum that already
/// has records is never written again, the old file is only renamed.
fn migrate_pre_quorum_log(dir: &Path, quorum: &QuorumService) -> Result<(), ControllerError> {
    let log_dir = dir.join(METADATA_LOG_DIR_NAME);
    let old = log_dir.join(METADATA_LOG_FILE_NAME);
    if !old.exists() {
        return Ok(());
    }
    let (_log, records) = MetadataLog::open(dir)?;
    // What the quorum committed before a restart is applied only once the leader commits in
    // its new term: without this wait an already migrated log would look empty here.
    quorum.catch_up_as_leader()?;
    let (_, image) = quorum.image();
    if *image == MetadataImage::empty() && !records.is_empty() {
        tracing::info!(
            records = records.len(),
            "moving the metadata log written before the quorum into it"
        );
        quorum.propose(records)?;
    }
    let storage = |e: std::io::Error| ControllerError::Storage {
        reason: format!(
            "cannot set aside the migrated metadata log {}: {e}",
            old.display()
        ),
    };
    std::fs::rename(
        &old,
        log_dir.join(format!("{METADATA_LOG_FILE_NAME}.migrated")),
    )
    .map_err(storage)?;
    crate::quorum::log_store::sync_dir(&log_dir).map_err(storage)?;
    Ok(())
}

/// `config` with node `config.node_id()`'s dynamic overrides from `image` on top.
pub fn effective_broker_config(config: &BrokerConfig, image: &MetadataImage) -> BrokerConfig {
    let overrides = image.broker_config_overrides(config.node_id());
    if overrides.is_empty() {
        return config.clone();
    }
    // Validated before commit; a static config changed since then can still conflict.
    config
        .with_dynamic_overrides(&overrides)
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "ignoring dynamic broker configs that no longer apply");
            config.clone()
        })
}

/// A random cluster id as Kafka prints it: base64url (no padding) of a random UUID, 22
/// characters, never starting with '-' (it would read as a command-line flag).
pub fn random_cluster_id() -> String {
    loop {
        let id = base64url(uuid::Uuid::new_v4().as_bytes());
        if !id.starts_with('-') {
            return id;
        }
    }
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod elr_tests;
#[cfg(test)]
mod reassignment_tests;
#[cfg(test)]
mod tests;
