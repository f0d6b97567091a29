//! Share groups (KIP-932): the share-group coordinator (members, heartbeats and the
//! server-side assignment), the share sessions of ShareFetch/ShareAcknowledge, and the
//! share-partition state machines of the partitions this broker leads, persisted to
//! `__share_group_state` (see `state_log`). One lock guards all of it: share traffic is
//! small next to produce and fetch, and one lock keeps persisted snapshots in order.
//!
//! Single node: this broker is every group's coordinator and every partition's leader. In a
//! cluster each broker keeps the share state of the partitions it leads and writes it only
//! while it leads `__share_group_state`'s one partition (see the design note).

pub mod assignor;
pub mod partition;
pub mod state_log;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use strom_metadata::broker_config::BrokerConfig;
use strom_metadata::MetadataImage;
use strom_protocol::record_batch::builder::BatchBuilder;
use strom_protocol::record_batch::control::{control_record_type, ControlRecordType};
use strom_protocol::{BatchSplitter, ErrorCode, RecordBatchHeader};
use uuid::Uuid;

use crate::broker::Broker;
use crate::internal_topic::InternalTopic;
use partition::{Acquired, BatchBounds, Limits, SharePartition};
use state_log::{PartitionKey, StateRecord, STATE_TOPIC};

/// The group configs a share group may set (IncrementalAlterConfigs on GROUP resources),
/// with their defaults.
pub const GROUP_CONFIGS: &[(&str, &str)] = &[
    ("share.auto.offset.reset", "latest"),
    ("share.heartbeat.interval.ms", "5000"),
    ("share.isolation.level", "read_uncommitted"),
    ("share.record.lock.duration.ms", "30000"),
    ("share.session.timeout.ms", "45000"),
];

/// The broker's `group.share.*` settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareConfig {
    pub lock_duration_ms: i64,
    pub delivery_count_limit: i16,
    pub session_timeout_ms: i64,
    pub heartbeat_interval_ms: i32,
    pub max_size: usize,
}

impl ShareConfig {
    pub fn from_broker(config: &BrokerConfig) -> ShareConfig {
        let int = |key: &str, default: i64| {
            config
                .value_and_source(key)
                .0
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(default)
        };
        ShareConfig {
            lock_duration_ms: int("group.share.record.lock.duration.ms", 30_000).max(1),
            delivery_count_limit: int("group.share.delivery.count.limit", 5).clamp(1, 100) as i16,
            session_timeout_ms: int("group.share.session.timeout.ms", 45_000).max(1),
            heartbeat_interval_ms: int("group.share.heartbeat.interval.ms", 5_000)
                .clamp(1, i64::from(i32::MAX)) as i32,
            max_size: int("group.share.max.size", 200).max(1) as usize,
        }
    }
}

/// A topic's partitions by id, as assignments carry them.
pub type TopicPartitions = BTreeMap<Uuid, Vec<i32>>;

#[derive(Debug, Clone)]
pub struct Member {
    pub epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub rack: Option<String>,
    pub subscribed: Vec<String>,
    pub assignment: TopicPartitions,
    last_seen_ms: i64,
}

#[derive(Debug, Clone, Default)]
pub struct ShareGroup {
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, Member>,
}

impl ShareGroup {
    /// Kafka's share group states.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else {
            "Stable"
        }
    }
}

#[derive(Debug)]
struct Session {
    /// The epoch the next request must carry.
    next_epoch: i32,
    partitions: BTreeSet<(Uuid, i32)>,
}

#[derive(Debug, Default)]
struct Inner {
    loaded: bool,
    groups: BTreeMap<String, ShareGroup>,
    /// Group configs set with IncrementalAlterConfigs.
    configs: BTreeMap<String, BTreeMap<String, String>>,
    partitions: HashMap<PartitionKey, SharePartition>,
    sessions: HashMap<(String, String), Session>,
}

/// A heartbeat, decoded.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub rack: Option<String>,
    pub subscribed: Option<Vec<String>>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatAnswer {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// `None`: unchanged since the member's last heartbeat.
    pub assignment: Option<TopicPartitions>,
}

/// What one partition of a ShareFetch got.
#[derive(Debug, Default)]
pub struct FetchedPartition {
    pub records: Bytes,
    pub acquired: Vec<Acquired>,
}

/// One share partition's offsets for DescribeShareGroupOffsets.
#[derive(Debug, Clone, Copy)]
pub struct PartitionOffsets {
    pub topic_id: Uuid,
    pub partition: i32,
    pub start_offset: i64,
}

#[derive(Debug)]
pub struct ShareCoordinator {
    config: ShareConfig,
    inner: Mutex<Inner>,
    pub(crate) topic_creation: Mutex<()>,
}

impl ShareCoordinator {
    pub fn new(config: ShareConfig) -> ShareCoordinator {
        ShareCoordinator {
            config,
            inner: Mutex::default(),
            topic_creation: Mutex::new(()),
        }
    }

    pub fn config(&self) -> &ShareConfig {
        &self.config
    }

    /// Replays `__share_group_state` once (start-up, or the first share request).
    pub fn ensure_loaded(&self, broker: &Broker) {
        let mut inner = self.inner.lock();
        if inner.loaded {
            return;
        }
        let mut records = Vec::new();
        let read = crate::internal_topic::read_batches(broker, STATE_TOPIC, None, &mut |_, b| {
            records_of(&b, |r| records.push(r))
        });
        if let Err(e) = read {
            tracing::warn!(error = %e, "cannot read {STATE_TOPIC}");
        }
        for record in records {
            match record {
                StateRecord::Partition(key, Some(sp)) => {
                    inner.partitions.insert(key, sp);
                }
                StateRecord::Partition(key, None) => {
                    inner.partitions.remove(&key);
                }
                StateRecord::GroupConfig(group, Some(configs)) => {
                    inner.configs.insert(group, configs);
                }
                StateRecord::GroupConfig(group, None) => {
                    inner.configs.remove(&group);
                }
            }
        }
        // Groups with state are listed (Empty) after a restart.
        let groups: Vec<String> = inner.partitions.keys().map(|k| k.group.clone()).collect();
        for group in groups {
            inner.groups.entry(group).or_default();
        }
        tracing::info!(
            partitions = inner.partitions.len(),
            "loaded share group state"
        );
        inner.loaded = true;
    }

    /// The value of a group config: the group's own, else the broker's, else the default.
    fn group_config(&self, inner: &Inner, group: &str, name: &str) -> String {
        if let Some(v) = inner.configs.get(group).and_then(|c| c.get(name)) {
            return v.clone();
        }
        match name {
            "share.record.lock.duration.ms" => self.config.lock_duration_ms.to_string(),
            "share.session.timeout.ms" => self.config.session_timeout_ms.to_string(),
            "share.heartbeat.interval.ms" => self.config.heartbeat_interval_ms.to_string(),
            _ => GROUP_CONFIGS
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
                .unwrap_or_default(),
        }
    }

    fn group_int(&self, inner: &Inner, group: &str, name: &str) -> i64 {
        self.group_config(inner, group, name)
            .parse::<i64>()
            .unwrap_or(1)
            .max(1)
    }

    fn limits(&self, inner: &Inner, group: &str) -> Limits {
        Limits {
            lock_duration_ms: self.group_int(inner, group, "share.record.lock.duration.ms"),
            delivery_count_limit: self.config.delivery_count_limit,
        }
    }

    /// The acquisition lock duration of `group`, for ShareFetch responses.
    pub fn lock_duration_ms(&self, group: &str) -> i64 {
        let inner = self.inner.lock();
        self.limits(&inner, group).lock_duration_ms
    }

    /// The group's configs with their values (DescribeConfigs on a GROUP resource).
    pub fn describe_group_configs(&self, group: &str) -> Vec<(String, String, bool)> {
        let inner = self.inner.lock();
        GROUP_CONFIGS
            .iter()
            .map(|(name, _)| {
                let set = inner
                    .configs
                    .get(group)
                    .is_some_and(|c| c.contains_key(*name));
                (
                    (*name).to_owned(),
                    self.group_config(&inner, group, name),
                    set,
                )
            })
            .collect()
    }

    /// Validates and (unless `validate_only`) applies group config changes: `(name, value)`
    /// with `None` deleting the group's own value. Persisted.
    pub fn alter_group_configs(
        &self,
        broker: &Broker,
        group: &str,
        changes: &[(String, Option<String>)],
        validate_only: bool,
    ) -> Result<(), (ErrorCode, String)> {
        for (name, value) in changes {
            if !GROUP_CONFIGS.iter().any(|(k, _)| k == name) {
                return Err((
                    ErrorCode::InvalidConfig,
                    format!("unknown group config {name}"),
                ));
            }
            let valid = match (name.as_str(), value.as_deref()) {
                (_, None) => true,
                ("share.auto.offset.reset", Some(v)) => {
                    matches!(v, "latest" | "earliest")
                }
                ("share.isolation.level", Some(v)) => {
                    matches!(v, "read_uncommitted" | "read_committed")
                }
                // As the broker's group.share.record.lock.duration.ms allows.
                ("share.record.lock.duration.ms", Some(v)) => {
                    v.parse::<i64>().is_ok_and(|n| n >= 100)
                }
                (_, Some(v)) => v.parse::<i64>().is_ok_and(|n| n >= 1),
            };
            if !valid {
                return Err((
                    ErrorCode::InvalidConfig,
                    format!("invalid value {value:?} for {name}"),
                ));
            }
        }
        if validate_only {
            return Ok(());
        }
        self.ensure_loaded(broker);
        let mut inner = self.inner.lock();
        let configs = inner.configs.entry(group.to_owned()).or_default();
        for (name, value) in changes {
            match value {
                Some(v) => configs.insert(name.clone(), v.clone()),
                None => configs.remove(name),
            };
        }
        let record = StateRecord::GroupConfig(group.to_owned(), Some(configs.clone()));
        self.write(broker, &[record])
            .map_err(|code| (code, "cannot persist the group configs".to_owned()))
    }

    /// The groups with configs set (they may not exist yet).
    pub fn configured_groups(&self) -> Vec<String> {
        self.inner.lock().configs.keys().cloned().collect()
    }

    /// Whether `group` is a share group known here.
    pub fn has_group(&self, group: &str) -> bool {
        self.inner.lock().groups.contains_key(group)
    }

    /// Every share group: `(id, state)`.
    pub fn list_groups(&self) -> Vec<(String, &'static str)> {
        let mut inner = self.inner.lock();
        let now = crate::partition::now_ms();
        let ids: Vec<String> = inner.groups.keys().cloned().collect();
        for id in &ids {
            self.expire_members(&mut inner, id, now);
        }
        inner
            .groups
            .iter()
            .map(|(id, g)| (id.clone(), g.state()))
            .collect()
    }

    /// A copy of the group, members expired first.
    pub fn describe(&self, group: &str) -> Option<ShareGroup> {
        let mut inner = self.inner.lock();
        self.expire_members(&mut inner, group, crate::partition::now_ms());
        inner.groups.get(group).cloned()
    }

    /// The start offsets of the group's share partitions (all, or those of `only`).
    pub fn offsets(&self, group: &str) -> Vec<PartitionOffsets> {
        let inner = self.inner.lock();
        let mut out: Vec<PartitionOffsets> = inner
            .partitions
            .iter()
            .filter(|(k, _)| k.group == group)
            .map(|(k, sp)| PartitionOffsets {
                topic_id: k.topic_id,
                partition: k.partition,
                start_offset: sp.start_offset,
            })
            .collect();
        out.sort_by_key(|o| (o.topic_id, o.partition));
        out
    }

    /// AlterShareGroupOffsets: new start offsets `(topic name, topic id, partition, offset)`
    /// of an empty group's share partitions, each clamped to the log's bounds. The outer
    /// error is the group's; the inner ones are per partition, in order.
    pub fn alter_offsets(
        &self,
        broker: &Broker,
        group: &str,
        offsets: &[(String, Uuid, i32, i64)],
    ) -> Result<Vec<Result<(), ErrorCode>>, ErrorCode> {
        self.ensure_loaded(broker);
        let mut inner = self.inner.lock();
        self.expire_members(&mut inner, group, crate::partition::now_ms());
        match inner.groups.get(group) {
            None => return Err(ErrorCode::GroupIdNotFound),
            Some(g) if !g.members.is_empty() => return Err(ErrorCode::NonEmptyGroup),
            Some(_) => {}
        }
        let mut results = Vec::new();
        let mut records = Vec::new();
        for (topic, topic_id, partition, offset) in offsets {
            let Some(log) = broker.replicas().partition(topic, *partition) else {
                results.push(Err(ErrorCode::UnknownTopicOrPartition));
                continue;
            };
            let offset = (*offset).clamp(log.log.log_start_offset(), log.high_watermark());
            let key = PartitionKey {
                group: group.to_owned(),
                topic_id: *topic_id,
                partition: *partition,
            };
            let sp = SharePartition::starting_at(offset);
            inner.partitions.insert(key.clone(), sp.clone());
            records.push(StateRecord::Partition(key, Some(sp)));
            results.push(Ok(()));
        }
        if !records.is_empty() {
            self.write(broker, &records)?;
        }
        Ok(results)
    }

    /// DeleteShareGroupOffsets: forgets an empty group's share state of `topics` (the next
    /// assignment starts them again per `share.auto.offset.reset`).
    pub fn delete_offsets(
        &self,
        broker: &Broker,
        group: &str,
        topics: &[Uuid],
    ) -> Result<(), ErrorCode> {
        self.ensure_loaded(broker);
        let mut inner = self.inner.lock();
        self.expire_members(&mut inner, group, crate::partition::now_ms());
        match inner.groups.get(group) {
            None => return Err(ErrorCode::GroupIdNotFound),
            Some(g) if !g.members.is_empty() => return Err(ErrorCode::NonEmptyGroup),
            Some(_) => {}
        }
        let keys: Vec<PartitionKey> = inner
            .partitions
            .keys()
            .filter(|k| k.group == group && topics.contains(&k.topic_id))
            .cloned()
            .collect();
        let records: Vec<StateRecord> = keys
            .into_iter()
            .map(|k| {
                inner.partitions.remove(&k);
                StateRecord::Partition(k, None)
            })
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        self.write(broker, &records)
    }

    /// Deletes an empty share group and its state (DeleteGroups).
    pub fn delete_group(&self, broker: &Broker, group: &str) -> Result<(), ErrorCode> {
        self.ensure_loaded(broker);
        let mut inner = self.inner.lock();
        self.expire_members(&mut inner, group, crate::partition::now_ms());
        match inner.groups.get(group) {
            None => return Err(ErrorCode::GroupIdNotFound),
            Some(g) if !g.members.is_empty() => return Err(ErrorCode::NonEmptyGroup),
            Some(_) => {}
        }
        inner.groups.remove(group);
        let keys: Vec<PartitionKey> = inner
            .partitions
            .keys()
            .filter(|k| k.group == group)
            .cloned()
            .collect();
        let mut records: Vec<StateRecord> = keys
            .into_iter()
            .map(|k| {
                inner.partitions.remove(&k);
                StateRecord::Partition(k, None)
            })
            .collect();
        if inner.configs.remove(group).is_some() {
            records.push(StateRecord::GroupConfig(group.to_owned(), None));
        }
        if records.is_empty() {
            return Ok(());
        }
        self.write(broker, &records)
    }

    /// ShareGroupHeartbeat: joins (epoch 0), heartbeats, or leaves (epoch -1).
    pub fn heartbeat(
        &self,
        broker: &Broker,
        request: Heartbeat,
    ) -> Result<HeartbeatAnswer, (ErrorCode, String)> {
        self.ensure_loaded(broker);
        let image = broker.image();
        let now = crate::partition::now_ms();
        let mut inner = self.inner.lock();
        let group_id = request.group_id.clone();
        self.expire_members(&mut inner, &group_id, now);
        let interval = self.group_int(&inner, &group_id, "share.heartbeat.interval.ms") as i32;
        let member_id = if request.member_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            request.member_id.clone()
        };
        if request.member_epoch == -1 {
            let left = inner
                .groups
                .get_mut(&group_id)
                .and_then(|g| g.members.remove(&member_id));
            if left.is_some() {
                self.release_member(broker, &mut inner, &group_id, &member_id);
                inner
                    .sessions
                    .remove(&(group_id.clone(), member_id.clone()));
                self.rebalance(&mut inner, &image, &group_id);
            }
            return Ok(HeartbeatAnswer {
                member_id,
                member_epoch: -1,
                heartbeat_interval_ms: interval,
                assignment: None,
            });
        }
        let max_size = self.config.max_size;
        let group = inner.groups.entry(group_id.clone()).or_default();
        let known = group.members.contains_key(&member_id);
        if request.member_epoch == 0 {
            if !known && group.members.len() >= max_size {
                return Err((
                    ErrorCode::GroupMaxSizeReached,
                    format!("the share group has {max_size} members"),
                ));
            }
            let subscribed = request.subscribed.clone().unwrap_or_default();
            if subscribed.is_empty() {
                return Err((
                    ErrorCode::InvalidRequest,
                    "a joining member must subscribe to topics".into(),
                ));
            }
            group.members.insert(
                member_id.clone(),
                Member {
                    epoch: 0,
                    client_id: request.client_id.clone(),
                    client_host: request.client_host.clone(),
                    rack: request.rack.clone(),
                    subscribed,
                    assignment: TopicPartitions::new(),
                    last_seen_ms: now,
                },
            );
            // A rejoin: the old incarnation's locks are released.
            if known {
                self.release_member(broker, &mut inner, &group_id, &member_id);
            }
            inner
                .groups
                .get_mut(&group_id)
                .expect("just inserted")
                .epoch += 1;
        } else {
            let Some(member) = group.members.get_mut(&member_id) else {
                return Err((
                    ErrorCode::UnknownMemberId,
                    format!("member {member_id} is not in the share group"),
                ));
            };
            if request.member_epoch > member.epoch {
                return Err((
                    ErrorCode::FencedMemberEpoch,
                    format!(
                        "epoch {} is ahead of the member's {}",
                        request.member_epoch, member.epoch
                    ),
                ));
            }
            member.last_seen_ms = now;
            if let Some(subscribed) = &request.subscribed {
                if *subscribed != member.subscribed {
                    member.subscribed = subscribed.clone();
                    group.epoch += 1;
                }
            }
        }
        self.rebalance(&mut inner, &image, &group_id);
        self.initialize_assigned(broker, &mut inner, &group_id);
        let member = &inner.groups[&group_id].members[&member_id];
        let assignment = (request.member_epoch != member.epoch).then(|| member.assignment.clone());
        Ok(HeartbeatAnswer {
            member_id,
            member_epoch: member.epoch,
            heartbeat_interval_ms: interval,
            assignment,
        })
    }

    /// Recomputes the group's assignment; members whose share changed get a new epoch.
    fn rebalance(&self, inner: &mut Inner, image: &MetadataImage, group_id: &str) {
        let Some(group) = inner.groups.get_mut(group_id) else {
            return;
        };
        let subscriptions: BTreeMap<String, Vec<String>> = group
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.subscribed.clone()))
            .collect();
        let target = assignor::assign(&subscriptions, |topic| {
            image
                .topic(topic)
                .map(|t| (t.topic_id, t.partitions.keys().copied().collect()))
        });
        let changed = group
            .members
            .iter()
            .any(|(id, m)| target.get(id).cloned().unwrap_or_default() != m.assignment);
        if changed || group.assignment_epoch != group.epoch {
            if changed {
                group.epoch = group.epoch.max(group.assignment_epoch) + 1;
            }
            group.assignment_epoch = group.epoch;
            let epoch = group.epoch;
            for (id, member) in group.members.iter_mut() {
                member.assignment = target.get(id).cloned().unwrap_or_default();
                member.epoch = epoch;
            }
        }
    }

    /// Creates the state of assigned partitions this broker leads that have none yet, at
    /// the offset `share.auto.offset.reset` says: from then on the group reads them.
    fn initialize_assigned(&self, broker: &Broker, inner: &mut Inner, group_id: &str) {
        let Some(group) = inner.groups.get(group_id) else {
            return;
        };
        let assigned: BTreeSet<(Uuid, i32)> = group
            .members
            .values()
            .flat_map(|m| {
                m.assignment
                    .iter()
                    .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
            })
            .collect();
        let image = broker.image();
        let mut created = Vec::new();
        for (topic_id, partition) in assigned {
            let key = PartitionKey {
                group: group_id.to_owned(),
                topic_id,
                partition,
            };
            if inner.partitions.contains_key(&key) {
                continue;
            }
            let Some(topic) = image.topic_by_id(topic_id) else {
                continue;
            };
            if let Some(sp) = self.initial_state(broker, inner, group_id, &topic.name, partition) {
                inner.partitions.insert(key.clone(), sp.clone());
                created.push(StateRecord::Partition(key, Some(sp)));
            }
        }
        if !created.is_empty() {
            if let Err(code) = self.write(broker, &created) {
                tracing::warn!(?code, "cannot persist new share partitions of {group_id}");
            }
        }
    }

    /// A new share partition of a partition this broker leads.
    fn initial_state(
        &self,
        broker: &Broker,
        inner: &Inner,
        group_id: &str,
        topic: &str,
        partition: i32,
    ) -> Option<SharePartition> {
        let log = broker.replicas().partition(topic, partition)?;
        if !log.is_leader() {
            return None;
        }
        let offset = match self
            .group_config(inner, group_id, "share.auto.offset.reset")
            .as_str()
        {
            "earliest" => log.log.log_start_offset(),
            _ => log.high_watermark(),
        };
        Some(SharePartition::starting_at(offset))
    }

    /// Members silent for longer than the session timeout leave; their locks are released.
    fn expire_members(&self, inner: &mut Inner, group_id: &str, now: i64) {
        let timeout = self.group_int(inner, group_id, "share.session.timeout.ms");
        let Some(group) = inner.groups.get_mut(group_id) else {
            return;
        };
        let expired: Vec<String> = group
            .members
            .iter()
            .filter(|(_, m)| now - m.last_seen_ms > timeout)
            .map(|(id, _)| id.clone())
            .collect();
        if expired.is_empty() {
            return;
        }
        for id in &expired {
            tracing::info!(group = group_id, member = %id, "share group member expired");
            group.members.remove(id);
        }
        group.epoch += 1;
        for id in expired {
            inner.sessions.remove(&(group_id.to_owned(), id.clone()));
            let limits = self.limits(inner, group_id);
            for (key, sp) in inner.partitions.iter_mut() {
                if key.group == group_id {
                    sp.release_member(&id, &limits);
                }
            }
        }
    }

    /// Releases the member's locks on this broker's share partitions of the group
    /// (persisted: the release may have archived records at their delivery limit).
    fn release_member(&self, broker: &Broker, inner: &mut Inner, group_id: &str, member: &str) {
        let limits = self.limits(inner, group_id);
        let mut changed = Vec::new();
        for (key, sp) in inner.partitions.iter_mut() {
            if key.group == group_id && sp.release_member(member, &limits) {
                changed.push(StateRecord::Partition(key.clone(), Some(sp.clone())));
            }
        }
        if !changed.is_empty() {
            if let Err(code) = self.write(broker, &changed) {
                tracing::warn!(?code, "cannot persist released share records");
            }
        }
    }

    /// The share-session step of a ShareFetch or ShareAcknowledge: epoch 0 opens (or
    /// replaces) the member's session with `add`, -1 closes it, any other must be the
    /// session's next. Returns the session's partitions.
    pub fn session(
        &self,
        broker: &Broker,
        group_id: &str,
        member_id: &str,
        epoch: i32,
        add: &[(Uuid, i32)],
        forget: &[(Uuid, i32)],
    ) -> Result<Vec<(Uuid, i32)>, ErrorCode> {
        self.ensure_loaded(broker);
        let mut inner = self.inner.lock();
        self.expire_members(&mut inner, group_id, crate::partition::now_ms());
        // The member must be in the group when this broker coordinates it (always, on a
        // single node).
        if broker.groups().owned.serves_all()
            && !inner
                .groups
                .get(group_id)
                .is_some_and(|g| g.members.contains_key(member_id))
        {
            return Err(ErrorCode::UnknownMemberId);
        }
        let key = (group_id.to_owned(), member_id.to_owned());
        match epoch {
            0 => {
                inner.sessions.insert(
                    key,
                    Session {
                        next_epoch: 1,
                        partitions: add.iter().copied().collect(),
                    },
                );
                Ok(add.to_vec())
            }
            -1 => {
                let session = inner
                    .sessions
                    .remove(&key)
                    .ok_or(ErrorCode::ShareSessionNotFound)?;
                Ok(session.partitions.into_iter().collect())
            }
            n => {
                let session = inner
                    .sessions
                    .get_mut(&key)
                    .ok_or(ErrorCode::ShareSessionNotFound)?;
                if session.next_epoch != n {
                    return Err(ErrorCode::InvalidShareSessionEpoch);
                }
                session.next_epoch = if n == i32::MAX { 1 } else { n + 1 };
                session.partitions.extend(add.iter().copied());
                for f in forget {
                    session.partitions.remove(f);
                }
                Ok(session.partitions.iter().copied().collect())
            }
        }
    }

    /// A closed session: the member's locks on these partitions are released.
    pub fn release_session(
        &self,
        broker: &Broker,
        group_id: &str,
        member_id: &str,
        partitions: &[(Uuid, i32)],
    ) {
        let mut inner = self.inner.lock();
        let limits = self.limits(&inner, group_id);
        let mut changed = Vec::new();
        for (topic_id, partition) in partitions {
            let key = PartitionKey {
                group: group_id.to_owned(),
                topic_id: *topic_id,
                partition: *partition,
            };
            if let Some(sp) = inner.partitions.get_mut(&key) {
                if sp.release_member(member_id, &limits) {
                    changed.push(StateRecord::Partition(key, Some(sp.clone())));
                }
            }
        }
        if !changed.is_empty() {
            if let Err(code) = self.write(broker, &changed) {
                tracing::warn!(?code, "cannot persist released share records");
            }
        }
    }

    /// Applies a member's acknowledgements to one partition: `(first, last, types)`. Any
    /// batch refused makes the partition's answer INVALID_RECORD_STATE; the others apply.
    pub fn acknowledge(
        &self,
        broker: &Broker,
        group_id: &str,
        member_id: &str,
        topic_id: Uuid,
        partition: i32,
        batches: &[(i64, i64, Vec<i8>)],
    ) -> Result<(), ErrorCode> {
        let mut inner = self.inner.lock();
        let limits = self.limits(&inner, group_id);
        let key = PartitionKey {
            group: group_id.to_owned(),
            topic_id,
            partition,
        };
        let Some(sp) = inner.partitions.get_mut(&key) else {
            return Err(ErrorCode::InvalidRecordState);
        };
        sp.expire_locks(crate::partition::now_ms(), &limits);
        let mut error = Ok(());
        for (first, last, types) in batches {
            if let Err(e) = sp.acknowledge(member_id, *first, *last, types, &limits) {
                tracing::debug!(group = group_id, reason = %e.0, "acknowledgement refused");
                error = Err(ErrorCode::InvalidRecordState);
            }
        }
        let snapshot = StateRecord::Partition(key, Some(sp.clone()));
        self.write(broker, &[snapshot])?;
        error
    }

    fn read_committed(&self, inner: &Inner, group: &str) -> bool {
        self.group_config(inner, group, "share.isolation.level") == "read_committed"
    }

    /// Whether the partition has records the group could acquire now (a long poll waits
    /// until one does).
    pub fn has_acquirable(
        &self,
        broker: &Broker,
        group_id: &str,
        topic: &str,
        topic_id: Uuid,
        partition: i32,
    ) -> bool {
        let Some(log) = broker.replicas().partition(topic, partition) else {
            return false;
        };
        let mut inner = self.inner.lock();
        let limits = self.limits(&inner, group_id);
        let key = PartitionKey {
            group: group_id.to_owned(),
            topic_id,
            partition,
        };
        let bound = if self.read_committed(&inner, group_id) {
            log.last_stable_offset()
        } else {
            log.high_watermark()
        };
        match inner.partitions.get_mut(&key) {
            Some(sp) => {
                sp.expire_locks(crate::partition::now_ms(), &limits);
                sp.has_acquirable(bound)
            }
            // Not initialized yet: the next fetch initializes it.
            None => true,
        }
    }

    /// Acquires records of one partition for a member: the log's batches holding them and
    /// the acquired runs. Errors are the partition's error code.
    #[allow(clippy::too_many_arguments)]
    pub fn fetch(
        &self,
        broker: &Broker,
        group_id: &str,
        member_id: &str,
        topic: &str,
        topic_id: Uuid,
        partition: i32,
        max_records: usize,
        max_bytes: usize,
    ) -> Result<FetchedPartition, ErrorCode> {
        let log = broker
            .replicas()
            .partition(topic, partition)
            .ok_or(ErrorCode::UnknownTopicOrPartition)?;
        if !log.is_leader() {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        let log_start = log.log.log_start_offset();
        let now = crate::partition::now_ms();
        let mut inner = self.inner.lock();
        let limits = self.limits(&inner, group_id);
        // read_committed: nothing past the last stable offset, nothing of aborted
        // transactions (their batches count as gaps).
        let read_committed = self.read_committed(&inner, group_id);
        let hw = if read_committed {
            log.last_stable_offset()
        } else {
            log.high_watermark()
        };
        let key = PartitionKey {
            group: group_id.to_owned(),
            topic_id,
            partition,
        };
        let mut changed = false;
        if !inner.partitions.contains_key(&key) {
            let sp = self
                .initial_state(broker, &inner, group_id, topic, partition)
                .ok_or(ErrorCode::NotLeaderOrFollower)?;
            inner.partitions.insert(key.clone(), sp);
            changed = true;
        }
        let sp = inner.partitions.get_mut(&key).expect("present");
        changed |= sp.truncate_below(log_start);
        changed |= sp.expire_locks(now, &limits);
        let mut fetched = FetchedPartition::default();
        if max_records > 0 && sp.has_acquirable(hw) {
            let from = sp.next_fetch_offset();
            let read = log
                .log
                .read(from, max_bytes.max(1), Some(hw))
                .map_err(|e| crate::errors::log_error_code(&e))?;
            let bytes = match read.slice {
                Some(slice) => slice
                    .read_to_bytes()
                    .map_err(|_| ErrorCode::KafkaStorageError)?,
                None => Bytes::new(),
            };
            // Aborted transactions by first offset, descending: the next to open is last.
            let mut pending: Vec<(i64, i64)> = if read_committed {
                let upper = crate::internal_topic::next_offset(&bytes).unwrap_or(from);
                log.log
                    .aborted_transactions(from, upper)
                    .into_iter()
                    .map(|t| (t.producer_id, t.first_offset))
                    .collect()
            } else {
                Vec::new()
            };
            pending.sort_by_key(|a| std::cmp::Reverse(a.1));
            let mut open_aborted: BTreeSet<i64> = BTreeSet::new();
            let mut batches: Vec<(BatchBounds, std::ops::Range<usize>)> = Vec::new();
            let mut position = 0usize;
            for batch in BatchSplitter::new(&bytes, usize::MAX) {
                let Ok(batch) = batch else { break };
                let Ok(header) = RecordBatchHeader::parse(batch) else {
                    break;
                };
                while pending
                    .last()
                    .is_some_and(|(_, first)| *first <= header.last_offset())
                {
                    open_aborted.extend(pending.pop().map(|(pid, _)| pid));
                }
                let aborted = header.is_transactional()
                    && !header.is_control()
                    && open_aborted.contains(&header.producer_id());
                if header.is_control()
                    && control_record_type(&header) == Some(ControlRecordType::Abort)
                {
                    open_aborted.remove(&header.producer_id());
                }
                let range = position..position + batch.len();
                position += batch.len();
                batches.push((
                    BatchBounds {
                        base_offset: header.base_offset(),
                        last_offset: header.last_offset(),
                        control: header.is_control() || aborted,
                    },
                    range,
                ));
            }
            let bounds: Vec<BatchBounds> = batches.iter().map(|(b, _)| *b).collect();
            let acquired = sp.acquire(member_id, &bounds, hw, max_records, now, &limits);
            if !acquired.is_empty() {
                changed = true;
                let mut out = BytesMut::new();
                for (b, range) in &batches {
                    let holds = acquired
                        .iter()
                        .any(|a| a.first_offset <= b.last_offset && a.last_offset >= b.base_offset);
                    if holds && !b.control {
                        out.extend_from_slice(&bytes[range.clone()]);
                    }
                }
                fetched.records = out.freeze();
                fetched.acquired = acquired;
            }
        }
        if changed {
            // The records are acquired either way: failing the fetch would only leave them
            // locked until the lock expires. A lost write loses delivery counts of this
            // fetch if the broker restarts before the next write.
            let snapshot = StateRecord::Partition(key, Some(sp.clone()));
            if let Err(code) = self.write(broker, &[snapshot]) {
                tracing::warn!(?code, "cannot persist share state of {topic}-{partition}");
            }
        }
        Ok(fetched)
    }

    /// Appends state records to `__share_group_state` (created on first use). Called with
    /// the lock held, so snapshots of one key reach the log in the order they were taken.
    fn write(&self, broker: &Broker, records: &[StateRecord]) -> Result<(), ErrorCode> {
        let config = broker.config();
        let topic = InternalTopic {
            name: STATE_TOPIC,
            partitions: 1,
            replication_factor: config.offsets_topic_replication_factor(),
            segment_bytes: config.offsets_topic_segment_bytes(),
            creation: &self.topic_creation,
        };
        topic.ensure(broker)?;
        // In a cluster only the leader of the state partition writes it (see the design
        // note: share state is durable in a cluster only on that broker).
        if config.is_quorum_over_network()
            && !broker
                .replicas()
                .partition(STATE_TOPIC, 0)
                .is_some_and(|p| p.is_leader())
        {
            tracing::debug!("not the leader of {STATE_TOPIC}: share state kept in memory");
            return Ok(());
        }
        let mut builder = BatchBuilder::new(0);
        let now = crate::partition::now_ms();
        for record in records {
            let (key, value) = state_log::encode(record);
            builder.push(Some(&key), value.as_deref(), now);
        }
        crate::internal_topic::append(broker, STATE_TOPIC, 0, builder.build())
    }
}

/// GROUP_ID_NOT_FOUND when `group` is a classic or consumer group: one id, one type.
pub fn other_group_type(broker: &Broker, group: &str) -> Option<ErrorCode> {
    let groups = broker.groups();
    let taken = groups.list_consumer().iter().any(|(id, _)| id == group)
        || groups.list(&[], &[]).iter().any(|g| g.group_id == group);
    taken.then_some(ErrorCode::GroupIdNotFound)
}

/// The state records of a buffer of stored batches.
fn records_of(batches: &[u8], mut visit: impl FnMut(StateRecord)) {
    crate::internal_topic::for_each_batch(STATE_TOPIC, batches, |header| {
        if header.is_control() {
            return;
        }
        for record in header.records() {
            match record
                .map_err(|e| e.to_string())
                .and_then(|r| state_log::decode(r.key, r.value))
            {
                Ok(r) => visit(r),
                Err(e) => tracing::warn!(error = %e, "skipping a record of {STATE_TOPIC}"),
            }
        }
    });
}
