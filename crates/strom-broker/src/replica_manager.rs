//! The replica manager: the partitions hosted on this broker, each a partition log plus the
//! waiters of long-polling fetches. It follows the metadata image: logs are opened for new
//! partitions and removed for deleted topics. (Leader/follower roles arrive with replication.)

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use strom_metadata::MetadataImage;
use strom_protocol::ErrorCode;
use strom_storage::{Clock, LogConfig, LogError, PartitionLog};
use tokio::sync::Notify;
use uuid::Uuid;

/// Directory names under log.dirs that are not partition logs of user topics.
const METADATA_LOG_DIR: &str = "__cluster_metadata-0";

/// A partition hosted here. Invariant: `log` lives in `<log.dirs>/<topic>-<index>`.
pub struct Partition {
    pub topic: String,
    pub topic_id: Uuid,
    pub index: i32,
    pub log: PartitionLog,
    waiters: Mutex<Vec<Arc<Notify>>>,
}

impl Partition {
    /// Registers a fetch waiting for data; woken by the next append.
    pub fn register_waiter(&self, waiter: &Arc<Notify>) {
        let mut waiters = self.waiters.lock();
        // Drop registrations of fetches that have already answered.
        waiters.retain(|w| Arc::strong_count(w) > 1);
        if !waiters.iter().any(|w| Arc::ptr_eq(w, waiter)) {
            waiters.push(waiter.clone());
        }
    }

    /// Wakes every fetch waiting on this partition.
    pub fn notify_appended(&self) {
        for waiter in self.waiters.lock().drain(..) {
            waiter.notify_one();
        }
    }

    /// The high watermark. Single node: every appended record is on the whole ISR.
    pub fn high_watermark(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// The last stable offset: the first offset of the earliest open transaction, capped by
    /// the high watermark (KIP-98). read_committed consumers read only below it.
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        self.log
            .first_unstable_offset()
            .map_or(hw, |first| first.min(hw))
    }

    /// KIP-320 fencing: a request that names a leader epoch (>= 0) must name the current one.
    /// Returns the current epoch, or FENCED_LEADER_EPOCH (older) / UNKNOWN_LEADER_EPOCH (newer).
    pub fn check_leader_epoch(
        &self,
        image: &MetadataImage,
        requested: i32,
    ) -> Result<i32, ErrorCode> {
        let epoch = self.leader_epoch(image);
        match requested {
            r if r < 0 || r == epoch => Ok(epoch),
            r if r > epoch => Err(ErrorCode::UnknownLeaderEpoch),
            _ => Err(ErrorCode::FencedLeaderEpoch),
        }
    }

    /// Current leader epoch of this partition (from the metadata image).
    pub fn leader_epoch(&self, image: &MetadataImage) -> i32 {
        image
            .topic(&self.topic)
            .and_then(|t| t.partitions.get(&self.index))
            .map(|p| p.leader_epoch)
            .unwrap_or(0)
    }
}

/// The partitions of this broker, keyed by (topic name, partition index).
pub struct ReplicaManager {
    root: PathBuf,
    clock: Arc<dyn Clock>,
    partitions: RwLock<HashMap<(String, i32), Arc<Partition>>>,
}

impl ReplicaManager {
    pub fn new(root: PathBuf, clock: Arc<dyn Clock>) -> Self {
        Self {
            root,
            clock,
            partitions: RwLock::new(HashMap::new()),
        }
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .get(&(topic.to_owned(), index))
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Brings the hosted logs in line with `image`: opens logs of new partitions, applies
    /// config changes, deletes logs of topics that no longer exist (also on disk at start-up).
    pub fn sync(
        &self,
        image: &MetadataImage,
        config_for: impl Fn(&str) -> LogConfig,
    ) -> Result<(), LogError> {
        let mut wanted: HashSet<(String, i32)> = HashSet::new();
        for topic in image.topics() {
            let log_config = config_for(&topic.name);
            for index in topic.partitions.keys() {
                let key = (topic.name.clone(), *index);
                wanted.insert(key.clone());
                if let Some(existing) = self.partition(&topic.name, *index) {
                    if existing.topic_id == topic.topic_id {
                        existing.log.set_config(log_config.clone());
                        continue;
                    }
                    // Same name, new topic id: the old topic was deleted and recreated.
                    self.remove(&key)?;
                }
                let dir = self.root.join(format!("{}-{}", topic.name, index));
                let log = PartitionLog::open(dir, log_config.clone(), self.clock.clone())?;
                let partition = Arc::new(Partition {
                    topic: topic.name.clone(),
                    topic_id: topic.topic_id,
                    index: *index,
                    log,
                    waiters: Mutex::new(Vec::new()),
                });
                self.partitions.write().insert(key, partition);
            }
        }
        let stale: Vec<(String, i32)> = self
            .partitions
            .read()
            .keys()
            .filter(|k| !wanted.contains(*k))
            .cloned()
            .collect();
        for key in stale {
            self.remove(&key)?;
        }
        self.remove_orphan_dirs(&wanted);
        Ok(())
    }

    fn remove(&self, key: &(String, i32)) -> Result<(), LogError> {
        let removed = self.partitions.write().remove(key);
        if let Some(partition) = removed {
            tracing::info!(topic = %key.0, partition = key.1, "deleting partition log");
            partition.log.delete()?;
            partition.notify_appended();
        }
        Ok(())
    }

    /// Deletes partition directories whose topic was deleted while the broker was down.
    fn remove_orphan_dirs(&self, wanted: &HashSet<(String, i32)>) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == METADATA_LOG_DIR || !entry.path().is_dir() {
                continue;
            }
            let Some((topic, index)) = parse_partition_dir(&name) else {
                continue;
            };
            if !wanted.contains(&(topic.to_owned(), index)) {
                tracing::info!(dir = %name, "removing log directory of a deleted topic");
                if let Err(e) = std::fs::remove_dir_all(entry.path()) {
                    tracing::warn!(dir = %name, error = %e, "could not remove directory");
                }
            }
        }
    }

    /// Closes every log with a clean-shutdown marker, on `threads` threads (each close
    /// fsyncs several files, so thousands of partitions close far faster in parallel).
    pub fn close_all(&self, threads: usize) {
        let partitions = self.all();
        let chunk = partitions.len().div_ceil(threads.max(1)).max(1);
        std::thread::scope(|scope| {
            for group in partitions.chunks(chunk) {
                scope.spawn(move || {
                    for partition in group {
                        if let Err(e) = partition.log.close() {
                            tracing::warn!(topic = %partition.topic, partition = partition.index, error = %e, "close failed");
                        }
                    }
                });
            }
        });
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// `topic-3` → ("topic", 3); topic names may themselves contain '-'.
fn parse_partition_dir(name: &str) -> Option<(&str, i32)> {
    let (topic, index) = name.rsplit_once('-')?;
    let index: i32 = index.parse().ok()?;
    (!topic.is_empty() && index >= 0).then_some((topic, index))
}

#[cfg(test)]
mod tests {
    use super::parse_partition_dir;

    #[test]
    fn partition_dir_names() {
        assert_eq!(parse_partition_dir("orders-0"), Some(("orders", 0)));
        assert_eq!(parse_partition_dir("my-topic-12"), Some(("my-topic", 12)));
        assert_eq!(parse_partition_dir("nodash"), None);
        assert_eq!(parse_partition_dir("-1"), None);
        assert_eq!(parse_partition_dir("t-x"), None);
    }
}

#[cfg(test)]
mod epoch_tests {
    use std::sync::Arc;

    use strom_metadata::{MetadataImage, MetadataRecord};
    use strom_protocol::ErrorCode;
    use strom_storage::{LogConfig, SystemClock};
    use uuid::Uuid;

    use super::ReplicaManager;

    #[test]
    fn leader_epoch_fencing_follows_kip_320() {
        let dir = tempfile::tempdir().unwrap();
        let topic_id = Uuid::new_v4();
        let image = MetadataImage::replay(&[
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id,
            },
            MetadataRecord::Partition {
                topic_id,
                partition: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 3,
                partition_epoch: 0,
            },
        ]);
        let replicas = ReplicaManager::new(dir.path().to_path_buf(), Arc::new(SystemClock));
        replicas.sync(&image, |_| LogConfig::default()).unwrap();
        let p = replicas.partition("t", 0).unwrap();
        assert_eq!(
            p.check_leader_epoch(&image, -1),
            Ok(3),
            "no epoch named: no check"
        );
        assert_eq!(p.check_leader_epoch(&image, 3), Ok(3));
        assert_eq!(
            p.check_leader_epoch(&image, 2),
            Err(ErrorCode::FencedLeaderEpoch)
        );
        assert_eq!(
            p.check_leader_epoch(&image, 4),
            Err(ErrorCode::UnknownLeaderEpoch)
        );
    }
}
