//! The replica manager: the partitions hosted on this broker. It follows the metadata image:
//! logs are opened for new partitions and removed for deleted topics, and each partition takes
//! the role (leader or follower) the committed metadata gives it.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use strom_metadata::{MetadataDelta, MetadataImage, PartitionImage, TopicImage};
use strom_storage::{Clock, HandleCache, LogConfig, LogError, PartitionLog, StdFs};
use uuid::Uuid;

pub use crate::partition::{Partition, Role, RoleChange};

use strom_metadata::log::METADATA_LOG_DIR_NAME;

/// Each log dir's high watermarks (Kafka's file name and text layout: a version line, a count
/// line, then `topic partition offset` lines), so a restarted follower knows what was committed.
const HW_CHECKPOINT_FILE: &str = "replication-offset-checkpoint";

/// Suffix of a partition directory the metadata does not name (Kafka's `-stray`): renamed,
/// logged and kept, never deleted, so a damaged or foreign metadata log cannot destroy data.
const STRAY_SUFFIX: &str = "-stray";

/// The partitions of this broker, keyed by (topic name, partition index).
pub struct ReplicaManager {
    /// `log.dirs`: a new partition goes to the one holding the fewest partitions, as Kafka
    /// places them; an existing one is found wherever it is.
    roots: Vec<PathBuf>,
    clock: Arc<dyn Clock>,
    partitions: RwLock<HashMap<(String, i32), Arc<Partition>>>,
    /// This broker's id: a partition whose leader it is, it leads.
    local_id: i32,
    /// In a cluster, only partitions with this broker among their replicas are hosted; a
    /// single node hosts every partition of the image.
    only_own_replicas: bool,
    /// High watermarks read from each log dir's checkpoint at start-up, used as partitions
    /// open; and the text last written per log dir (unchanged files are not rewritten).
    checkpoints: parking_lot::Mutex<Checkpoints>,
    /// Durable mode's group commit, one flusher per log dir.
    group_commit: crate::group_commit::LogDirFlushers,
    /// Threads opening logs that are not hosted yet (start-up, topic creation), as Kafka's
    /// `num.recovery.threads.per.data.dir` per log dir.
    open_threads: usize,
    /// Every log dir held the broker's clean-shutdown marker at start-up: logs on disk then
    /// open trusted and without writing (see `PartitionLog::open_in`). Cleared once the
    /// first image's logs are open: a log created later has no such history.
    clean_start: AtomicBool,
    /// Bounds the segment files open at once (`log.open.files.max`).
    handles: Arc<HandleCache>,
}

/// Logs opened in parallel, by directory, waiting for `host` to take them.
type Opened = HashMap<PathBuf, Result<PartitionLog, LogError>>;

#[derive(Default)]
struct Checkpoints {
    loaded: HashMap<PathBuf, HashMap<(String, i32), i64>>,
    written: HashMap<PathBuf, String>,
}

impl ReplicaManager {
    pub fn new(root: PathBuf, clock: Arc<dyn Clock>, local_id: i32) -> Self {
        Self::with_log_dirs(vec![root], clock, local_id)
    }

    /// Partitions spread over `roots` (Kafka's `log.dirs`; at least one).
    pub fn with_log_dirs(roots: Vec<PathBuf>, clock: Arc<dyn Clock>, local_id: i32) -> Self {
        assert!(!roots.is_empty(), "at least one log dir");
        Self {
            roots,
            clock,
            partitions: RwLock::new(HashMap::new()),
            local_id,
            only_own_replicas: false,
            checkpoints: Default::default(),
            group_commit: Default::default(),
            open_threads: 1,
            clean_start: AtomicBool::new(false),
            handles: HandleCache::global().clone(),
        }
    }

    /// Opens logs on `threads` threads per log dir.
    pub fn with_open_threads(mut self, threads: usize) -> Self {
        self.open_threads = threads.max(1);
        self
    }

    /// The logs on disk were all closed cleanly (the broker's log-dir markers were there).
    pub fn with_clean_start(self, clean: bool) -> Self {
        self.clean_start.store(clean, Ordering::Relaxed);
        self
    }

    /// The cache bounding open segment files.
    pub fn handles(&self) -> &Arc<HandleCache> {
        &self.handles
    }

    /// Opens the logs of `wanted` (partition directories not hosted yet) on
    /// `open_threads` threads per log dir: start-up with 100,000 partitions, or the creation
    /// of thousands at once, is bound by file-system round trips, not CPU.
    fn open_logs(&self, wanted: Vec<(PathBuf, LogConfig)>) -> Opened {
        let clean = self.clean_start.load(Ordering::Relaxed);
        let threads = (self.open_threads * self.roots.len())
            .min(wanted.len())
            .max(1);
        let open = |(dir, config): (PathBuf, LogConfig)| {
            let log = PartitionLog::open_in(
                dir.clone(),
                config,
                self.clock.clone(),
                Arc::new(StdFs),
                self.handles.clone(),
                clean,
            );
            (dir, log)
        };
        if threads == 1 {
            return wanted.into_iter().map(open).collect();
        }
        let queue = Mutex::new(wanted.into_iter());
        let opened = Mutex::new(HashMap::new());
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| loop {
                    let Some(item) = queue.lock().next() else {
                        break;
                    };
                    let (dir, log) = open(item);
                    opened.lock().insert(dir, log);
                });
            }
        });
        opened.into_inner()
    }

    /// The partitions of `items` (topic, partition) that are not hosted, with the directory
    /// each goes to and its config: what [`Self::open_logs`] opens ahead of `host`.
    fn unhosted<'a>(
        &self,
        items: impl Iterator<Item = (&'a TopicImage, i32, LogConfig)>,
    ) -> Vec<((String, i32), PathBuf, LogConfig)> {
        let mut out = Vec::new();
        let mut counts = None;
        for (topic, index, config) in items {
            if self.partition(&topic.name, index).is_some() {
                continue;
            }
            let name = format!("{}-{}", topic.name, index);
            let dir = self.place(&name, &mut counts);
            out.push(((topic.name.clone(), index), dir, config));
        }
        out
    }

    /// Hosts only the partitions whose replicas include this broker (cluster mode).
    pub fn hosting_only_own_replicas(mut self) -> Self {
        self.only_own_replicas = true;
        self
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .get(&(topic.to_owned(), index))
            .cloned()
    }

    /// The group-commit flushers of the log dirs (durable mode).
    pub fn group_commit(&self) -> &crate::group_commit::LogDirFlushers {
        &self.group_commit
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().values().cloned().collect()
    }

    /// Brings the hosted logs in line with `image`: opens logs of new partitions, applies
    /// config changes and roles, deletes logs of topics a committed deletion removed.
    /// Returns the partitions whose role changed, and how.
    pub fn sync(
        &self,
        image: &MetadataImage,
        config_for: impl Fn(&str) -> LogConfig,
        min_isr_for: impl Fn(&str) -> i32,
    ) -> Result<Vec<(Arc<Partition>, RoleChange)>, LogError> {
        let mut wanted: HashSet<(String, i32)> = HashSet::new();
        let mut changes = Vec::new();
        let mut pending = Vec::new();
        let now = self.clock.now_ms();
        let unhosted = self.unhosted(image.topics().flat_map(|topic| {
            let log_config = config_for(&topic.name);
            topic
                .partitions
                .iter()
                .filter(|(_, p)| !self.only_own_replicas || p.replicas.contains(&self.local_id))
                .map(move |(index, _)| (&**topic, *index, log_config.clone()))
        }));
        let mut opened = self.open_logs(
            unhosted
                .into_iter()
                .map(|(_, dir, config)| (dir, config))
                .collect(),
        );
        // Logs on disk now are open: from here a log that opens is a new one.
        self.clean_start.store(false, Ordering::Relaxed);
        for topic in image.topics() {
            let log_config = config_for(&topic.name);
            let min_isr = min_isr_for(&topic.name);
            for (index, p) in &topic.partitions {
                if self.only_own_replicas && !p.replicas.contains(&self.local_id) {
                    continue;
                }
                wanted.insert((topic.name.clone(), *index));
                pending.push(self.host(
                    image,
                    topic,
                    p,
                    &log_config,
                    min_isr,
                    true,
                    now,
                    &mut opened,
                )?);
            }
        }
        changes.extend(self.apply_roles(pending, now));
        let stale: Vec<(String, i32)> = self
            .partitions
            .read()
            .keys()
            .filter(|k| !wanted.contains(*k))
            .cloned()
            .collect();
        for key in stale {
            self.remove(image, &key)?;
        }
        Ok(changes)
    }

    /// Hosts partition `p` of `topic` (opening its log if needed) and gives it the role the
    /// image names (with the topic's `min.insync.replicas`, which holds a leader's HW, KIP-966);
    /// `set_config` also applies `log_config` to an already open log. Returns the role change,
    /// if any.
    /// A log [`Self::open_logs`] opened ahead is taken from `opened`.
    #[allow(clippy::too_many_arguments)]
    fn host(
        &self,
        image: &MetadataImage,
        topic: &TopicImage,
        p: &PartitionImage,
        log_config: &LogConfig,
        min_isr: i32,
        set_config: bool,
        now: i64,
        opened: &mut Opened,
    ) -> Result<(Arc<Partition>, Role), LogError> {
        let index = p.partition;
        let key = (topic.name.clone(), index);
        let partition = match self.partition(&topic.name, index) {
            Some(existing) if existing.topic_id == topic.topic_id => {
                if set_config {
                    existing.log.set_config(log_config.clone());
                }
                existing
            }
            existing => {
                if existing.is_some() {
                    // Same name, new topic id: the old topic was deleted and recreated.
                    self.remove(image, &key)?;
                }
                let name = format!("{}-{}", topic.name, index);
                let log = match existing {
                    None => self
                        .dir_for(&name, opened)
                        .and_then(|dir| opened.remove(&dir)),
                    Some(_) => None,
                };
                let log = match log {
                    Some(log) => log?,
                    None => PartitionLog::open_in(
                        self.place(&name, &mut None),
                        log_config.clone(),
                        self.clock.clone(),
                        Arc::new(StdFs),
                        self.handles.clone(),
                        false,
                    )?,
                };
                let hw = self.saved_high_watermark(log.dir(), &topic.name, index);
                let partition = Arc::new(Partition::new(
                    topic.name.clone(),
                    topic.topic_id,
                    index,
                    log,
                    self.local_id,
                    hw,
                ));
                self.partitions.write().insert(key, partition.clone());
                partition
            }
        };
        let _ = now;
        Ok((partition, Role::of(p, min_isr)))
    }

    /// Gives each partition its role, on `open_threads` threads per log dir: becoming leader
    /// in a new epoch writes the leader-epoch checkpoint (a file and an fsync), which at
    /// start-up happens to every partition. Returns the changes in input order.
    fn apply_roles(
        &self,
        pending: Vec<(Arc<Partition>, Role)>,
        now: i64,
    ) -> Vec<(Arc<Partition>, RoleChange)> {
        let apply = |group: &[(Arc<Partition>, Role)]| -> Vec<(Arc<Partition>, RoleChange)> {
            group
                .iter()
                .filter_map(|(p, role)| {
                    let change = p.apply_role(role.clone(), now);
                    (change != RoleChange::None).then(|| (Arc::clone(p), change))
                })
                .collect()
        };
        let threads = (self.open_threads * self.roots.len()).max(1);
        if threads == 1 || pending.len() < 64 {
            return apply(&pending);
        }
        let chunk = pending.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = pending
                .chunks(chunk)
                .map(|group| scope.spawn(move || apply(group)))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a role change panicked"))
                .collect()
        })
    }

    /// Applies what changed between the image the logs follow and `image` (`delta`), touching
    /// only the partitions and topics it names: deleted topics' logs are deleted, created and
    /// changed partitions are opened and take their new role (become leader / become
    /// follower), a partition reassigned away from this broker stops being hosted, and topics
    /// whose overrides changed get their new log config. Same outcome as [`Self::sync`] on
    /// `image`, which the first image and a snapshot still go through.
    pub fn apply_delta(
        &self,
        image: &MetadataImage,
        delta: &MetadataDelta,
        config_for: impl Fn(&str) -> LogConfig,
        min_isr_for: impl Fn(&str) -> i32,
    ) -> Result<Vec<(Arc<Partition>, RoleChange)>, LogError> {
        let now = self.clock.now_ms();
        let mut changes = Vec::new();
        let mut pending = Vec::new();
        for (topic_id, name) in &delta.deleted_topics {
            let hosted: Vec<(String, i32)> = self
                .partitions
                .read()
                .iter()
                .filter(|(k, p)| k.0 == *name && p.topic_id == *topic_id)
                .map(|(k, _)| k.clone())
                .collect();
            for key in hosted {
                self.remove(image, &key)?;
            }
        }
        let unhosted = self.unhosted(delta.changed_partitions.iter().flat_map(
            |(topic_id, indexes)| {
                let topic = image.topic_by_id(*topic_id);
                let config = topic.map(|t| config_for(&t.name));
                indexes.iter().filter_map(move |index| {
                    let (topic, config) = (topic?, config.clone()?);
                    let p = topic.partitions.get(index)?;
                    (!self.only_own_replicas || p.replicas.contains(&self.local_id))
                        .then_some((&**topic, *index, config))
                })
            },
        ));
        let mut opened = self.open_logs(
            unhosted
                .into_iter()
                .map(|(_, dir, config)| (dir, config))
                .collect(),
        );
        for (topic_id, indexes) in &delta.changed_partitions {
            let Some(topic) = image.topic_by_id(*topic_id) else {
                continue;
            };
            let log_config = config_for(&topic.name);
            let min_isr = min_isr_for(&topic.name);
            for index in indexes {
                let Some(p) = topic.partitions.get(index) else {
                    continue;
                };
                if self.only_own_replicas && !p.replicas.contains(&self.local_id) {
                    let key = (topic.name.clone(), *index);
                    if self
                        .partition(&topic.name, *index)
                        .is_some_and(|h| h.topic_id == *topic_id)
                    {
                        self.remove(image, &key)?;
                    }
                    continue;
                }
                pending.push(self.host(
                    image,
                    topic,
                    p,
                    &log_config,
                    min_isr,
                    false,
                    now,
                    &mut opened,
                )?);
            }
        }
        changes.extend(self.apply_roles(pending, now));
        for topic_id in &delta.changed_topic_configs {
            let Some(topic) = image.topic_by_id(*topic_id) else {
                continue;
            };
            let log_config = config_for(&topic.name);
            let min_isr = min_isr_for(&topic.name);
            for (index, image_p) in &topic.partitions {
                if let Some(p) = self
                    .partition(&topic.name, *index)
                    .filter(|p| p.topic_id == *topic_id)
                {
                    p.log.set_config(log_config.clone());
                    // `min.insync.replicas` may have changed: the role carries it.
                    let change = p.apply_role(Role::of(image_p, min_isr), now);
                    if change != RoleChange::None {
                        changes.push((p, change));
                    }
                }
            }
        }
        Ok(changes)
    }

    /// Stops hosting `key`. Its log is deleted only on a committed order: a RemoveTopic record
    /// deleted its topic, or a partition record of the same topic moved the partition's
    /// replicas off this broker (a completed reassignment). A partition that vanished from the
    /// image any other way is a fault: its log is closed and its directory kept as stray.
    fn remove(&self, image: &MetadataImage, key: &(String, i32)) -> Result<(), LogError> {
        let removed = self.partitions.write().remove(key);
        let Some(partition) = removed else {
            return Ok(());
        };
        partition.stop_hosting();
        if image.was_removed(partition.topic_id) {
            tracing::info!(topic = %key.0, partition = key.1, "deleting partition log");
            return partition.log.delete();
        }
        let moved_away = image
            .topic_by_id(partition.topic_id)
            .and_then(|t| t.partitions.get(&key.1))
            .is_some_and(|p| !p.replicas.contains(&self.local_id));
        if moved_away {
            tracing::info!(topic = %key.0, partition = key.1, "partition reassigned away; deleting its log");
            return partition.log.delete();
        }
        tracing::error!(
            topic = %key.0,
            partition = key.1,
            topic_id = %partition.topic_id,
            "partition vanished from the metadata without a deletion; keeping its log as stray"
        );
        if let Err(e) = partition.log.close() {
            tracing::warn!(topic = %key.0, partition = key.1, error = %e, "close failed");
        }
        let root = partition.log.dir().parent().unwrap_or(&self.roots[0]);
        rename_stray(root, &format!("{}-{}", key.0, key.1));
        Ok(())
    }

    /// Where partition directory `name` lives: the log dir that already has it, else the one
    /// hosting the fewest partitions (ties: the first listed).
    /// The directory [`Self::open_logs`] opened for `name`, if it did (the key in `opened`).
    fn dir_for(&self, name: &str, opened: &Opened) -> Option<PathBuf> {
        self.roots
            .iter()
            .map(|r| r.join(name))
            .find(|d| opened.contains_key(d))
    }

    /// `counts` caches the partitions per log dir across calls (counting them walks every
    /// hosted partition: once per batch, not once per new partition).
    fn place(&self, name: &str, counts: &mut Option<HashMap<PathBuf, usize>>) -> PathBuf {
        if let [only] = self.roots.as_slice() {
            return only.join(name);
        }
        let existing: Vec<&PathBuf> = self
            .roots
            .iter()
            .filter(|r| r.join(name).is_dir())
            .collect();
        if let Some(first) = existing.first() {
            if existing.len() > 1 {
                tracing::error!(partition = name, dirs = ?existing, "a partition directory exists in several log dirs; using the first");
            }
            return first.join(name);
        }
        let counts = counts.get_or_insert_with(|| {
            let mut counts: HashMap<PathBuf, usize> =
                self.roots.iter().map(|r| (r.clone(), 0)).collect();
            for p in self.partitions.read().values() {
                if let Some(n) = p.log.dir().parent().and_then(|r| counts.get_mut(r)) {
                    *n += 1;
                }
            }
            counts
        });
        let root = self
            .roots
            .iter()
            .min_by_key(|r| counts[*r])
            .expect("at least one log dir");
        *counts.get_mut(root).expect("counted") += 1;
        root.join(name)
    }

    /// Partition directories under the log dirs (the metadata log's excepted), with the log
    /// dir holding each.
    pub fn partition_dirs_on_disk(&self) -> Vec<(PathBuf, String)> {
        let mut dirs = Vec::new();
        for root in &self.roots {
            let Ok(entries) = std::fs::read_dir(root) else {
                continue;
            };
            dirs.extend(
                entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|name| {
                        name != METADATA_LOG_DIR_NAME && parse_partition_dir(name).is_some()
                    })
                    .map(|name| (root.clone(), name)),
            );
        }
        dirs.sort();
        dirs
    }

    /// At start-up, after the first `sync`: renames partition directories of no hosted
    /// partition (a topic deleted while the broker was down, or data the metadata does not
    /// know) with the stray suffix. Once running, the logs change only through `sync`, so the
    /// data directory is not listed again on every metadata change.
    pub fn mark_stray_dirs(&self) {
        let hosted = self.partitions.read();
        for (root, name) in self.partition_dirs_on_disk() {
            let Some((topic, index)) = parse_partition_dir(&name) else {
                continue;
            };
            let here = hosted
                .get(&(topic.to_owned(), index))
                .is_some_and(|p| p.log.dir().parent() == Some(root.as_path()));
            if !here {
                rename_stray(&root, &name);
            }
        }
    }

    /// Closes every log, on `threads` threads (each close fsyncs several files, so thousands
    /// of partitions close far faster in parallel). Whether every log closed: the caller then
    /// marks the log dirs clean (no per-partition markers, see
    /// `PartitionLog::close_for_log_dir_marker`).
    pub fn close_all(&self, threads: usize) -> bool {
        let partitions = self.all();
        let chunk = partitions.len().div_ceil(threads.max(1)).max(1);
        let failed = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            for group in partitions.chunks(chunk) {
                let failed = &failed;
                scope.spawn(move || {
                    for partition in group {
                        if let Err(e) = partition.log.close_for_log_dir_marker() {
                            failed.store(true, std::sync::atomic::Ordering::Relaxed);
                            tracing::warn!(topic = %partition.topic, partition = partition.index, error = %e, "close failed");
                        }
                    }
                });
            }
        });
        !failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The high watermark the checkpoint of `dir`'s log dir holds for a partition (0 if none).
    fn saved_high_watermark(&self, dir: &Path, topic: &str, index: i32) -> i64 {
        let Some(root) = dir.parent() else { return 0 };
        let mut checkpoints = self.checkpoints.lock();
        let saved = checkpoints
            .loaded
            .entry(root.to_path_buf())
            .or_insert_with(|| read_hw_checkpoint(root));
        saved.get(&(topic.to_owned(), index)).copied().unwrap_or(0)
    }

    /// Writes every log dir's `replication-offset-checkpoint` with its partitions' high
    /// watermarks (Kafka: every `replica.high.watermark.checkpoint.interval.ms`, and at
    /// shutdown). A log dir whose content did not change is not rewritten.
    pub fn checkpoint_high_watermarks(&self) {
        let mut by_root: HashMap<PathBuf, Vec<(String, i32, i64)>> = HashMap::new();
        for p in self.all() {
            if let Some(root) = p.log.dir().parent() {
                by_root.entry(root.to_path_buf()).or_default().push((
                    p.topic.clone(),
                    p.index,
                    p.high_watermark(),
                ));
            }
        }
        for root in &self.roots {
            let mut entries = by_root.remove(root).unwrap_or_default();
            entries.sort();
            let mut text = format!("0\n{}\n", entries.len());
            for (topic, index, hw) in &entries {
                text.push_str(&format!("{topic} {index} {hw}\n"));
            }
            if self.checkpoints.lock().written.get(root) == Some(&text) {
                continue;
            }
            match write_durably(root, HW_CHECKPOINT_FILE, text.as_bytes()) {
                Ok(()) => {
                    self.checkpoints.lock().written.insert(root.clone(), text);
                }
                Err(e) => {
                    tracing::warn!(dir = %root.display(), error = %e, "cannot write the high-watermark checkpoint")
                }
            }
        }
    }

    /// The first log dir.
    pub fn root(&self) -> &Path {
        &self.roots[0]
    }

    /// Every log dir.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }
}

/// Renames `<root>/<name>` to `<name>.<uuid>-stray` (as Kafka names stray logs) and logs it.
fn rename_stray(root: &Path, name: &str) {
    let from = root.join(name);
    let to = root.join(format!("{name}.{}{STRAY_SUFFIX}", Uuid::new_v4().simple()));
    match std::fs::rename(&from, &to) {
        Ok(()) => {
            tracing::warn!(dir = %from.display(), renamed = %to.display(), "partition directory unknown to the metadata kept as stray");
            if let Err(e) = std::fs::File::open(root).and_then(|d| d.sync_all()) {
                tracing::warn!(dir = %root.display(), error = %e, "cannot fsync the data directory");
            }
        }
        Err(e) => {
            tracing::error!(dir = %from.display(), error = %e, "cannot rename stray partition directory")
        }
    }
}

/// Reads a log dir's high-watermark checkpoint; a missing or unreadable one is empty.
fn read_hw_checkpoint(root: &Path) -> HashMap<(String, i32), i64> {
    let path = root.join(HW_CHECKPOINT_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return HashMap::new();
    };
    let parse = || -> Option<HashMap<(String, i32), i64>> {
        let mut lines = text.lines();
        if lines.next()?.trim() != "0" {
            return None;
        }
        let count: usize = lines.next()?.trim().parse().ok()?;
        let mut out = HashMap::new();
        for line in lines.take(count) {
            let mut parts = line.split(' ');
            let (topic, index, hw) = (parts.next()?, parts.next()?, parts.next()?);
            out.insert((topic.to_owned(), index.parse().ok()?), hw.parse().ok()?);
        }
        (out.len() == count).then_some(out)
    };
    parse().unwrap_or_else(|| {
        tracing::warn!(path = %path.display(), "unreadable high-watermark checkpoint ignored");
        HashMap::new()
    })
}

/// Replaces `root/name` with `bytes` through a temporary file, fsynced, then the directory.
fn write_durably(root: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = root.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, root.join(name))?;
    std::fs::File::open(root)?.sync_all()
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
    fn high_watermark_checkpoint_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let text = "0\n2\nmy-topic 0 42\nother 3 7\n";
        std::fs::write(dir.path().join(super::HW_CHECKPOINT_FILE), text).unwrap();
        let read = super::read_hw_checkpoint(dir.path());
        assert_eq!(read.get(&("my-topic".to_string(), 0)), Some(&42));
        assert_eq!(read.get(&("other".to_string(), 3)), Some(&7));
        std::fs::write(dir.path().join(super::HW_CHECKPOINT_FILE), "0\n3\nt 0 1\n").unwrap();
        assert!(
            super::read_hw_checkpoint(dir.path()).is_empty(),
            "short file ignored"
        );
    }

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
                eligible_leader_replicas: vec![],
                last_known_elr: vec![],
                adding_replicas: vec![],
                removing_replicas: vec![],
            },
        ]);
        let replicas = ReplicaManager::new(dir.path().to_path_buf(), Arc::new(SystemClock), 1);
        replicas
            .sync(&image, |_| LogConfig::default(), |_| 1)
            .unwrap();
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

#[cfg(test)]
mod delta_tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::Instant;

    use strom_metadata::quorum::observer::apply_update;
    use strom_metadata::quorum::recent::CommittedEntry;
    use strom_metadata::quorum::state_machine::Applied;
    use strom_metadata::quorum::tcp_codec::{decode, encode, Body, Envelope};
    use strom_metadata::quorum::transport::{MetadataUpdate, QuorumReply};
    use strom_metadata::{ConfigResource, MetadataImage, MetadataRecord};
    use strom_storage::{LogConfig, SystemClock};
    use uuid::Uuid;

    use super::{ReplicaManager, RoleChange};

    /// SplitMix64: a seeded sequence without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn config_for(image: &MetadataImage) -> impl Fn(&str) -> LogConfig + '_ {
        move |topic| {
            let overrides = image
                .topic_config_overrides(topic)
                .cloned()
                .unwrap_or_default();
            crate::broker::log_config_from(&overrides)
        }
    }

    /// What a replica manager hosts: (topic, index) -> (topic id, role, retention.ms), and
    /// the partition directories on disk (stray ones by their partition name).
    #[allow(clippy::type_complexity)]
    fn hosted(
        rm: &ReplicaManager,
    ) -> (
        BTreeMap<(String, i32), (Uuid, super::Role, i64)>,
        Vec<String>,
    ) {
        let parts = rm
            .all()
            .into_iter()
            .map(|p| {
                (
                    (p.topic.clone(), p.index),
                    (p.topic_id, p.role(), p.log.config().retention_ms),
                )
            })
            .collect();
        let mut dirs: Vec<String> = std::fs::read_dir(rm.root())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != super::HW_CHECKPOINT_FILE)
            .map(|n| match n.split_once('.') {
                Some((name, _)) => format!("{name} (stray)"),
                None => n,
            })
            .collect();
        dirs.sort();
        (parts, dirs)
    }

    fn random_batch(
        rng: &mut Rng,
        image: &MetadataImage,
        next_id: &mut u128,
    ) -> Vec<MetadataRecord> {
        let names = ["a", "b", "c"];
        let name = names[rng.below(3) as usize];
        let existing = image.topic(name).cloned();
        let replicas = |rng: &mut Rng| -> Vec<i32> {
            let mut r: Vec<i32> = (1..=3).filter(|_| rng.below(2) == 0).collect();
            if r.is_empty() {
                r.push(1 + rng.below(3) as i32);
            }
            r
        };
        match (rng.below(10), existing) {
            (0..=1, Some(t)) => vec![MetadataRecord::RemoveTopic {
                topic_id: t.topic_id,
            }],
            (2..=3, Some(_)) => vec![MetadataRecord::Config {
                resource: ConfigResource::Topic(name.into()),
                name: "retention.ms".into(),
                value: (rng.below(3) > 0).then(|| (1000 * (1 + rng.below(5))).to_string()),
            }],
            (_, Some(t)) => (0..1 + rng.below(3))
                .map(|_| {
                    let p = rng.below(t.partitions.len() as u64) as i32;
                    let old = &t.partitions[&p];
                    let replicas = replicas(rng);
                    let leader = replicas[rng.below(replicas.len() as u64) as usize];
                    MetadataRecord::Partition {
                        topic_id: t.topic_id,
                        partition: p,
                        isr: replicas.clone(),
                        replicas,
                        leader,
                        leader_epoch: old.leader_epoch + rng.below(2) as i32,
                        partition_epoch: old.partition_epoch + 1,
                        eligible_leader_replicas: vec![],
                        last_known_elr: vec![],
                        adding_replicas: vec![],
                        removing_replicas: vec![],
                    }
                })
                .collect(),
            (_, None) => {
                *next_id += 1;
                let topic_id = Uuid::from_u128(*next_id);
                let mut records = vec![MetadataRecord::Topic {
                    name: name.into(),
                    topic_id,
                }];
                for p in 0..1 + rng.below(4) as i32 {
                    let replicas = replicas(rng);
                    records.push(MetadataRecord::Partition {
                        topic_id,
                        partition: p,
                        isr: replicas.clone(),
                        leader: replicas[0],
                        replicas,
                        leader_epoch: 0,
                        partition_epoch: 0,
                        eligible_leader_replicas: vec![],
                        last_known_elr: vec![],
                        adding_replicas: vec![],
                        removing_replicas: vec![],
                    });
                }
                records
            }
        }
    }

    fn manager(dir: &Path) -> ReplicaManager {
        ReplicaManager::new(dir.to_path_buf(), Arc::new(SystemClock), 1).hosting_only_own_replicas()
    }

    /// Following the deltas ends in the same hosted partitions, roles, configs and directories
    /// as re-deriving everything from each image, with the same role changes reported.
    #[test]
    fn applying_deltas_matches_a_full_sync_at_every_step() {
        let (mut role_changes, mut deletions, mut config_changes) = (0, 0, 0);
        for seed in 0..8 {
            let (full_dir, delta_dir) =
                (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let (full, by_delta) = (manager(full_dir.path()), manager(delta_dir.path()));
            let mut rng = Rng(seed);
            let mut image = MetadataImage::empty();
            let mut next_id = 0;
            for step in 0..60 {
                let batch = random_batch(&mut rng, &image, &mut next_id);
                let (next, delta) = image.apply_with_delta(&batch);
                let changes_full = full.sync(&next, config_for(&next), |_| 1).unwrap();
                let changes_delta = by_delta
                    .apply_delta(&next, &delta, config_for(&next), |_| 1)
                    .unwrap();
                let key = |c: &Vec<(Arc<super::Partition>, RoleChange)>| {
                    let mut v: Vec<_> = c
                        .iter()
                        .map(|(p, ch)| (p.topic.clone(), p.index, *ch as u8))
                        .collect();
                    v.sort();
                    v
                };
                assert_eq!(
                    key(&changes_full),
                    key(&changes_delta),
                    "seed {seed} step {step}: role changes"
                );
                assert_eq!(
                    hosted(&full),
                    hosted(&by_delta),
                    "seed {seed} step {step}: {batch:?}"
                );
                role_changes += changes_delta.len();
                deletions += delta.deleted_topics.len();
                config_changes += delta.changed_topic_configs.len();
                image = next;
            }
        }
        assert!(
            role_changes > 50 && deletions > 5 && config_changes > 5,
            "the sequences exercised little: {role_changes} role changes, {deletions} deletions, {config_changes} config changes"
        );
    }

    /// The figure for the design note: one partition's leader moves in a cluster with 10,000
    /// partitions (10 topics of 1,000 spread over brokers 1-3, this broker hosting the third
    /// naming it: more open logs than the file descriptor limit of this machine allows). Before: the observer receives the whole image and the broker re-derives
    /// every hosted partition; after: one entry, and the delta's one partition.
    /// `cargo test -p strom-broker --release --lib figure -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn figure_single_partition_change_in_10k_partitions() {
        let mut records = Vec::new();
        for t in 0..10u128 {
            let topic_id = Uuid::from_u128(t + 1);
            records.push(MetadataRecord::Topic {
                name: format!("topic-{t}"),
                topic_id,
            });
            for p in 0..1000 {
                let first = 1 + (p % 3);
                records.push(MetadataRecord::Partition {
                    topic_id,
                    partition: p,
                    replicas: vec![first],
                    isr: vec![first],
                    leader: first,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    eligible_leader_replicas: vec![],
                    last_known_elr: vec![],
                    adding_replicas: vec![],
                    removing_replicas: vec![],
                });
            }
        }
        let image = Arc::new(MetadataImage::replay(&records));
        let dir = tempfile::tempdir().unwrap();
        let rm = manager(dir.path());
        rm.sync(&image, config_for(&image), |_| 1).unwrap();
        let hosted = rm.all().len();
        let change = |i: i32| MetadataRecord::Partition {
            topic_id: Uuid::from_u128(1 + (i as u128 % 10)),
            partition: 0,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            leader: if i % 2 == 0 { 2 } else { 1 },
            leader_epoch: i + 1,
            partition_epoch: i + 1,
            eligible_leader_replicas: vec![],
            last_known_elr: vec![],
            adding_replicas: vec![],
            removing_replicas: vec![],
        };
        let frame = |update: MetadataUpdate| {
            let body = Body::Reply(QuorumReply::Metadata(update));
            encode(
                &Envelope {
                    correlation_id: 1,
                    body,
                },
                u32::MAX,
            )
            .unwrap()
        };
        let update = |offset, image, entries| MetadataUpdate {
            leader: Some(1),
            epoch: 1,
            offset: Some(offset),
            image,
            entries,
            members: Default::default(),
        };
        const ROUNDS: i32 = 20;
        let (mut before_bytes, mut after_bytes) = (0, 0);
        let (mut before, mut after) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
        let (mut before_decode, mut after_decode) = (before, after);
        let mut current = Applied::whole(Some(0), Arc::clone(&image));
        for i in 0..ROUNDS {
            let record = change(i);
            let offset = current.offset.unwrap() + 1;
            let next_image = Arc::new(current.image.apply(&record));
            // After: one entry on the wire (measured first: the full sync would apply the
            // role change itself), replayed with its delta, and the delta applied.
            let entry = CommittedEntry {
                offset,
                epoch: 1,
                records: Arc::new(vec![record]),
            };
            let bytes = frame(update(offset, None, vec![entry]));
            after_bytes += bytes.len();
            let t = Instant::now();
            let Body::Reply(QuorumReply::Metadata(u)) = decode(&bytes[4..]).unwrap().body else {
                panic!()
            };
            let next = apply_update(&current, &u).unwrap().unwrap();
            after_decode += t.elapsed();
            let delta = next.delta.clone().unwrap();
            assert_eq!(delta.partition_count(), 1);
            let changes = rm
                .apply_delta(&next.image, &delta, config_for(&next.image), |_| 1)
                .unwrap();
            after += t.elapsed();
            assert_eq!(changes.len(), 1, "one role change");
            // Before: the whole image on the wire, decoded, and a full sync.
            let bytes = frame(update(offset, Some(Arc::clone(&next_image)), Vec::new()));
            before_bytes += bytes.len();
            let t = Instant::now();
            let Body::Reply(QuorumReply::Metadata(u)) = decode(&bytes[4..]).unwrap().body else {
                panic!()
            };
            let whole = apply_update(&current, &u).unwrap().unwrap();
            before_decode += t.elapsed();
            rm.sync(&whole.image, config_for(&whole.image), |_| 1)
                .unwrap();
            before += t.elapsed();
            assert_eq!(*next.image, *whole.image);
            current = next;
        }
        let n = ROUNDS as u32;
        println!(
            "10,000 partitions, {hosted} hosted; per single-partition change over {ROUNDS} changes:\n  before (whole image): {} bytes to the observer, {:?} broker CPU (decode + resync), of which decode {:?}\n  after (entries + delta): {} bytes, {:?} broker CPU (decode + replay + delta), of which decode + replay {:?} (the rest is the role change itself)",
            before_bytes / ROUNDS as usize,
            before / n,
            before_decode / n,
            after_bytes / ROUNDS as usize,
            after / n,
            after_decode / n
        );
        assert!(after_bytes * 100 < before_bytes);
    }
}
