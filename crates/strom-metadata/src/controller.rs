//! The controller: validates admin operations against the current image, turns them into
//! metadata records, commits them to the log and only then applies them (STYLE.md #7).
//! Single node: append + fsync is the commit; a Raft quorum will take that place later.

mod brokers;
mod configs;
pub mod topics;

use std::path::Path;
use std::sync::Arc;

use crate::broker_config::BrokerConfig;
use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::log::MetadataLog;
use crate::records::MetadataRecord;

pub use configs::AlterConfigOp;
pub use topics::{CreateTopicRequest, CreatedTopic};

/// Producer ids handed to a broker per allocation (KIP-730 blocks, as Kafka).
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// Owns the metadata log and the image built from it. Every operation either commits all of
/// its records or none, and the image only ever reflects committed records.
#[derive(Debug)]
pub struct Controller {
    log: MetadataLog,
    image: Arc<MetadataImage>,
    config: BrokerConfig,
    /// When each broker was last heard from (ms); soft state, rebuilt by heartbeats.
    last_contact: std::collections::BTreeMap<i32, i64>,
}

impl Controller {
    /// Opens the metadata log under `dir` (normally `config.metadata_log_dir()`; the log lives
    /// in its `__cluster_metadata-0`), replays it, and bootstraps the cluster id on first start
    /// (`cluster.id` if configured, else a random one).
    pub fn open(dir: &Path, config: &BrokerConfig) -> Result<Controller, ControllerError> {
        let (log, records) = MetadataLog::open(dir)?;
        let image = MetadataImage::replay(&records);
        tracing::info!(
            records = records.len(),
            topics = image.topic_count(),
            "metadata log replayed"
        );
        let mut controller = Controller {
            log,
            image: Arc::new(image),
            config: config.clone(),
            last_contact: Default::default(),
        };
        match (controller.image.cluster_id(), config.cluster_id()) {
            (Some(stored), Some(configured)) if stored != configured => {
                return Err(ControllerError::ClusterIdMismatch {
                    configured: configured.to_string(),
                    stored: stored.to_string(),
                });
            }
            (Some(_), _) => {}
            (None, configured) => {
                let cluster_id = configured.map_or_else(random_cluster_id, str::to_string);
                tracing::info!(%cluster_id, "bootstrapping a new cluster");
                controller.commit(vec![MetadataRecord::Cluster { cluster_id }])?;
            }
        }
        Ok(controller)
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
        let overrides = self.image.broker_config_overrides(self.config.node_id());
        if overrides.is_empty() {
            return self.config.clone();
        }
        // Validated before commit; a static config changed since then can still conflict.
        self.config
            .with_dynamic_overrides(&overrides)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "ignoring dynamic broker configs that no longer apply");
                self.config.clone()
            })
    }

    /// The cluster id (always set once `open` returned).
    pub fn cluster_id(&self) -> &str {
        self.image
            .cluster_id()
            .expect("open() commits a cluster id before returning")
    }

    /// Registers (or re-registers with a new endpoint) a broker. Idempotent.
    pub fn register_broker(
        &mut self,
        broker_id: i32,
        host: &str,
        port: u16,
        rack: Option<&str>,
    ) -> Result<(), ControllerError> {
        if broker_id < 0 {
            return Err(ControllerError::InvalidRequest {
                reason: format!("broker id {broker_id} is negative"),
            });
        }
        let existing = self.image.broker(broker_id);
        let unchanged =
            existing.is_some_and(|b| b.host == host && b.port == port && b.rack.as_deref() == rack);
        let fenced = existing.is_some_and(|b| b.fenced);
        let mut records = Vec::new();
        if !unchanged {
            records.push(MetadataRecord::RegisterBroker {
                broker_id,
                host: host.to_string(),
                port,
                rack: rack.map(str::to_string),
            });
        }
        // A fenced broker registering again (a restart) is back: as a heartbeat would.
        if fenced {
            records.extend(brokers::unfence_records(&self.image, broker_id));
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

    /// Appends `records` as one batch (the commit) and then applies them to the image.
    fn commit(&mut self, records: Vec<MetadataRecord>) -> Result<(), ControllerError> {
        if records.is_empty() {
            return Ok(());
        }
        self.log.append(&records)?;
        self.image = Arc::new(self.image.apply_all(&records));
        Ok(())
    }
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
mod tests;
