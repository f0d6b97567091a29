//! KIP-848's consumer group protocol (ConsumerGroupHeartbeat): server-side assignment, member
//! and group epochs, reconciliation, session and revocation timeouts. A pure state machine
//! (time is `now_ms`); offsets stay with the classic manager, which stores them for both.

pub mod assignor;
mod group;
pub mod regex;
pub mod snapshot;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::records::GroupRecord;

use group::is_subset;
pub use group::{ConsumerGroup, ConsumerGroupState, Member};

/// Partitions by topic id.
pub type Assignment = BTreeMap<Uuid, BTreeSet<i32>>;
/// The topics that exist: name → (topic id, partition count).
pub type TopicsView = BTreeMap<String, (Uuid, i32)>;

/// Member epoch of a leaving member (KIP-848).
pub const LEAVE_EPOCH: i32 = -1;
/// Member epoch of a static member leaving temporarily (it keeps its assignment).
pub const LEAVE_STATIC_EPOCH: i32 = -2;

/// Broker settings of consumer groups (Kafka's `group.consumer.*` keys).
#[derive(Debug, Clone)]
pub struct ConsumerGroupConfig {
    pub session_timeout_ms: i32,
    pub heartbeat_interval_ms: i32,
    pub max_size: usize,
    /// `group.consumer.assignors`; the first is the default.
    pub assignors: Vec<String>,
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        ConsumerGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: i32::MAX as usize,
            assignors: vec![assignor::UNIFORM.to_owned(), assignor::RANGE.to_owned()],
        }
    }
}

/// A ConsumerGroupHeartbeat, decoded. `None` fields were not sent (unchanged).
#[derive(Debug, Clone, Default)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    /// `Some("")` clears the member's regex (librdkafka sends it beside topic names).
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
    /// The group's own `consumer.session.timeout.ms` and `consumer.heartbeat.interval.ms`
    /// (Kafka 4's group configs), when set: they override the broker's `group.consumer.*`.
    pub group_session_timeout_ms: Option<i32>,
    pub group_heartbeat_interval_ms: Option<i32>,
}

/// The answer to a heartbeat; `assignment` is `None` when the member's is unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatResponse {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub assignment: Option<Assignment>,
}

/// Every consumer group of this coordinator.
#[derive(Debug, Default)]
pub struct ConsumerGroups {
    pub config: ConsumerGroupConfig,
    groups: HashMap<String, ConsumerGroup>,
}

impl ConsumerGroups {
    pub fn new(config: ConsumerGroupConfig) -> ConsumerGroups {
        ConsumerGroups {
            config,
            groups: HashMap::new(),
        }
    }

    pub fn group(&self, group_id: &str) -> Option<&ConsumerGroup> {
        self.groups.get(group_id)
    }

    /// Whether `group_id` is a consumer group with members (a classic join must not take it).
    pub fn has_members(&self, group_id: &str) -> bool {
        self.groups
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// Forgets an empty consumer group (DeleteGroups, or a classic group taking the id).
    pub fn remove_if_empty(&mut self, group_id: &str) -> bool {
        if self
            .groups
            .get(group_id)
            .is_some_and(|g| g.members.is_empty())
        {
            self.groups.remove(group_id);
            true
        } else {
            false
        }
    }

    /// Drops the groups for which `here` holds (their partition moved to another coordinator).
    pub fn unload(&mut self, here: &dyn Fn(&str) -> bool) {
        self.groups.retain(|group_id, _| !here(group_id));
    }

    pub fn groups(&self) -> impl Iterator<Item = &ConsumerGroup> + '_ {
        self.groups.values()
    }

    /// The `__consumer_offsets` record of a group as it is now (a tombstone if it is gone).
    pub fn record(&self, group_id: &str) -> GroupRecord {
        GroupRecord::ConsumerGroup {
            group_id: group_id.to_owned(),
            value: self.groups.get(group_id).map(snapshot::encode),
        }
    }

    /// Applies a stored snapshot (start-up); sessions restart at `now_ms`.
    pub fn replay(&mut self, group_id: String, value: Option<&[u8]>, now_ms: i64) {
        let Some(bytes) = value else {
            self.groups.remove(&group_id);
            return;
        };
        match snapshot::decode(&group_id, bytes, now_ms, self.config.session_timeout_ms) {
            Ok(group) => {
                self.groups.insert(group_id, group);
            }
            Err(e) => {
                tracing::warn!(group = %group_id, error = %e, "skipping a consumer group snapshot")
            }
        }
    }

    /// ConsumerGroupHeartbeat. `new_member_id` issues an id to a v0 member that has none.
    pub fn heartbeat(
        &mut self,
        req: &HeartbeatRequest,
        topics: &TopicsView,
        new_member_id: impl FnOnce() -> String,
        now_ms: i64,
    ) -> Result<HeartbeatResponse, ErrorCode> {
        self.validate(req)?;
        if req.member_epoch == LEAVE_EPOCH || req.member_epoch == LEAVE_STATIC_EPOCH {
            return self.leave(req, topics, now_ms);
        }
        let mut config = self.config.clone();
        if let Some(ms) = req.group_session_timeout_ms {
            config.session_timeout_ms = ms;
        }
        if let Some(ms) = req.group_heartbeat_interval_ms {
            config.heartbeat_interval_ms = ms;
        }
        let interval = config.heartbeat_interval_ms;
        let group = if req.member_epoch == 0 {
            self.groups
                .entry(req.group_id.clone())
                .or_insert_with(|| ConsumerGroup::new(&req.group_id))
        } else {
            // Strom does not persist membership yet: after a restart the member is unknown.
            self.groups
                .get_mut(&req.group_id)
                .ok_or(ErrorCode::UnknownMemberId)?
        };
        let member_id = if req.member_id.is_empty() {
            new_member_id()
        } else {
            req.member_id.clone()
        };
        let is_new = !group.members.contains_key(&member_id);
        let before = if req.member_epoch == 0 {
            join(group, req, &member_id, &config, now_ms)?
        } else {
            check_epoch(group, req)?
        };
        let is_new = is_new && group.members[&member_id].member_epoch == 0;
        let changed_subscription = update_member(group, req, &member_id, &config, now_ms);
        if changed_subscription || is_new {
            group.bump();
        }
        group.resolve_regexes(topics, now_ms);
        group.refresh_metadata(topics);
        group.maybe_assign(topics, &config.assignors[0]);
        group.reconcile(&member_id, req.owned.as_ref(), now_ms);
        let m = &group.members[&member_id];
        let full = req.member_epoch == 0 || req.owned.is_some();
        let changed = before.as_ref() != Some(&(m.member_epoch, m.assigned.clone()));
        Ok(HeartbeatResponse {
            member_id,
            member_epoch: m.member_epoch,
            heartbeat_interval_ms: interval,
            assignment: (changed || full).then(|| m.assigned.clone()),
        })
    }

    fn validate(&self, req: &HeartbeatRequest) -> Result<(), ErrorCode> {
        if req.group_id.is_empty() {
            return Err(ErrorCode::InvalidRequest);
        }
        if req.member_epoch != 0 && req.member_id.is_empty() {
            return Err(ErrorCode::InvalidRequest);
        }
        if req.member_epoch == 0 {
            if req.rebalance_timeout_ms < 0 {
                return Err(ErrorCode::InvalidRequest);
            }
            if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                return Err(ErrorCode::InvalidRequest);
            }
        }
        if req.member_epoch == LEAVE_STATIC_EPOCH && req.instance_id.is_none() {
            return Err(ErrorCode::InvalidRequest);
        }
        if let Some(pattern) = req.subscribed_topic_regex.as_deref() {
            if !pattern.is_empty() && regex::compile(pattern).is_err() {
                return Err(ErrorCode::InvalidRegularExpression);
            }
        }
        match &req.server_assignor {
            Some(a) if !self.config.assignors.iter().any(|x| x == a) => {
                Err(ErrorCode::UnsupportedAssignor)
            }
            _ => Ok(()),
        }
    }

    /// Epoch -1 (leave; a static member leaves for good) or -2 (a static member leaves
    /// temporarily and keeps its assignment until its session expires).
    fn leave(
        &mut self,
        req: &HeartbeatRequest,
        topics: &TopicsView,
        now_ms: i64,
    ) -> Result<HeartbeatResponse, ErrorCode> {
        let group = self
            .groups
            .get_mut(&req.group_id)
            .ok_or(ErrorCode::UnknownMemberId)?;
        let member = group
            .members
            .get_mut(&req.member_id)
            .ok_or(ErrorCode::UnknownMemberId)?;
        if req.instance_id.is_some() && member.instance_id != req.instance_id {
            return Err(ErrorCode::FencedInstanceId);
        }
        if req.member_epoch == LEAVE_STATIC_EPOCH {
            member.left_static = true;
        } else {
            group.remove_member(&req.member_id);
            group.resolve_regexes(topics, now_ms);
            group.refresh_metadata(topics);
        }
        Ok(HeartbeatResponse {
            member_id: req.member_id.clone(),
            member_epoch: req.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        })
    }

    /// Fences members whose session or revocation deadline passed; returns the groups that
    /// changed.
    pub fn tick(&mut self, now_ms: i64) -> Vec<String> {
        let mut changed = Vec::new();
        for group in self.groups.values_mut() {
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| {
                    m.session_deadline_ms <= now_ms
                        || m.revocation_deadline_ms.is_some_and(|d| d <= now_ms)
                })
                .map(|m| m.member_id.clone())
                .collect();
            if !expired.is_empty() {
                changed.push(group.group_id.clone());
            }
            for member_id in expired {
                group.remove_member(&member_id);
            }
        }
        changed
    }

    pub fn next_deadline(&self) -> Option<i64> {
        self.groups
            .values()
            .flat_map(|g| g.members.values())
            .flat_map(|m| [Some(m.session_deadline_ms), m.revocation_deadline_ms])
            .flatten()
            .min()
    }

    /// TxnOffsetCommit's check of a consumer group (KIP-848): a producer that names no member
    /// may always commit; a member's epoch may lag (the transaction started earlier) but not
    /// run ahead. `Ok(false)`: not a consumer group (the classic checks apply).
    pub fn validate_txn_commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<bool, ErrorCode> {
        let Some(group) = self.groups.get(group_id) else {
            return Ok(false);
        };
        if member_epoch < 0 && member_id.is_empty() {
            return Ok(true);
        }
        let member = group
            .members
            .get(member_id)
            .ok_or(ErrorCode::UnknownMemberId)?;
        if member_epoch > member.member_epoch {
            return Err(ErrorCode::StaleMemberEpoch);
        }
        Ok(true)
    }

    /// OffsetCommit/OffsetFetch v9's check: the member exists and sends its current epoch.
    /// Returns `Ok(false)` when the group is not a consumer group (the classic checks apply).
    pub fn validate_commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<bool, ErrorCode> {
        let Some(group) = self.groups.get(group_id) else {
            return Ok(false);
        };
        if member_epoch < 0 && member_id.is_empty() {
            // A simple consumer or admin may commit to a group without members.
            return match group.members.is_empty() {
                true => Ok(true),
                false => Err(ErrorCode::UnknownMemberId),
            };
        }
        let member = group
            .members
            .get(member_id)
            .ok_or(ErrorCode::UnknownMemberId)?;
        if member_epoch != member.member_epoch {
            return Err(ErrorCode::StaleMemberEpoch);
        }
        Ok(true)
    }
}

/// Epoch 0: a new member, a rejoin, or a static member taking over its predecessor's
/// assignment. Returns the member's (epoch, assignment) before the request.
fn join(
    group: &mut ConsumerGroup,
    req: &HeartbeatRequest,
    member_id: &str,
    config: &ConsumerGroupConfig,
    now_ms: i64,
) -> Result<Option<(i32, Assignment)>, ErrorCode> {
    if let Some(instance) = req.instance_id.as_deref() {
        if let Some(prev) = group.member_for_instance(instance).cloned() {
            if prev.member_id != member_id {
                if !prev.left_static {
                    return Err(ErrorCode::UnreleasedInstanceId);
                }
                // The successor inherits the epoch and partitions: no rebalance.
                group.members.remove(&prev.member_id);
                let target = group.target.remove(&prev.member_id);
                let mut m = prev;
                m.member_id = member_id.to_owned();
                m.left_static = false;
                group.members.insert(member_id.to_owned(), m);
                if let Some(t) = target {
                    group.target.insert(member_id.to_owned(), t);
                }
                return Ok(None);
            }
        }
    }
    if let Some(m) = group.members.get_mut(member_id) {
        // A rejoin owns nothing: its partitions are released.
        m.assigned.clear();
        m.pending_revocation.clear();
        m.revocation_deadline_ms = None;
        m.member_epoch = 0;
        return Ok(None);
    }
    if group.members.len() >= config.max_size {
        return Err(ErrorCode::GroupMaxSizeReached);
    }
    let m = Member::new(member_id.to_owned(), now_ms, config.session_timeout_ms);
    group.members.insert(member_id.to_owned(), m);
    Ok(None)
}

/// A member's epoch must be its current one, or its previous one when the answer that moved
/// it was lost and it owns nothing beyond its current assignment (else FENCED_MEMBER_EPOCH).
fn check_epoch(
    group: &ConsumerGroup,
    req: &HeartbeatRequest,
) -> Result<Option<(i32, Assignment)>, ErrorCode> {
    let m = group
        .members
        .get(&req.member_id)
        .filter(|m| !m.left_static)
        .ok_or(ErrorCode::UnknownMemberId)?;
    if req.instance_id.is_some() && m.instance_id != req.instance_id {
        return Err(ErrorCode::FencedInstanceId);
    }
    let ok = req.member_epoch == m.member_epoch
        || (req.member_epoch == m.previous_member_epoch
            && req
                .owned
                .as_ref()
                .is_some_and(|o| is_subset(o, &m.assigned)));
    if !ok {
        return Err(ErrorCode::FencedMemberEpoch);
    }
    Ok(Some((m.member_epoch, m.assigned.clone())))
}

/// Copies the request's fields into the member; true if its subscription or assignor changed.
fn update_member(
    group: &mut ConsumerGroup,
    req: &HeartbeatRequest,
    member_id: &str,
    config: &ConsumerGroupConfig,
    now_ms: i64,
) -> bool {
    let m = group
        .members
        .get_mut(member_id)
        .expect("join or check_epoch found the member");
    m.session_deadline_ms = now_ms + i64::from(config.session_timeout_ms);
    m.client_id.clone_from(&req.client_id);
    m.client_host.clone_from(&req.client_host);
    if req.instance_id.is_some() {
        m.instance_id.clone_from(&req.instance_id);
    }
    if req.rack_id.is_some() {
        m.rack_id.clone_from(&req.rack_id);
    }
    if req.rebalance_timeout_ms >= 0 {
        m.rebalance_timeout_ms = req.rebalance_timeout_ms;
    }
    let mut changed = false;
    if let Some(names) = &req.subscribed_topic_names {
        let mut names = names.clone();
        names.sort();
        names.dedup();
        changed |= names != m.subscribed_topic_names;
        m.subscribed_topic_names = names;
    }
    if let Some(pattern) = &req.subscribed_topic_regex {
        let pattern = (!pattern.is_empty()).then(|| pattern.clone());
        changed |= pattern != m.subscribed_topic_regex;
        m.subscribed_topic_regex = pattern;
    }
    if req.server_assignor.is_some() && req.server_assignor != m.server_assignor {
        m.server_assignor.clone_from(&req.server_assignor);
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests;
