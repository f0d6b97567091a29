//! Every group this coordinator owns, and the group APIs over them: the request-level checks
//! Kafka makes before a group is touched, offsets (commit, fetch, delete, expiry), listing,
//! describing, deleting, and replaying `__consumer_offsets`. Pure like `state`.

use std::collections::HashMap;

use bytes::Bytes;
use strom_protocol::ErrorCode;

use super::records::{GroupRecord, OffsetCommitValue};
use super::state::{
    Effects, Group, GroupConfig, GroupState, JoinRequest, JoinResult, Outcome, SyncRequest,
    SyncResult, Ticket, CONSUMER_PROTOCOL_TYPE,
};

/// The only group type the classic protocol has (ListGroups v5 `group_type`).
pub const CLASSIC_GROUP_TYPE: &str = "classic";

/// The longest group id a `__consumer_offsets` key can hold (an int16-length string).
const MAX_GROUP_ID_BYTES: usize = i16::MAX as usize;

/// Kafka's `isValidGroupId`, bounded by what the records can store.
fn valid_group_id(group_id: &str) -> bool {
    !group_id.is_empty() && group_id.len() <= MAX_GROUP_ID_BYTES
}

/// A (topic, partition) pair.
pub type TopicPartition = (String, i32);

/// Who commits offsets: a member of a generation, or a simple consumer (generation -1).
#[derive(Debug, Clone)]
pub struct CommitAuth {
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// OffsetCommit v9+ answers GROUP_ID_NOT_FOUND where older versions get ILLEGAL_GENERATION.
    pub version_9_or_later: bool,
}

/// One row of ListGroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub protocol_type: String,
    pub state: GroupState,
}

/// DescribeGroups' view of one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// DescribeGroups' view of one group; unknown groups are described as Dead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub state: GroupState,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<MemberDescription>,
}

/// All groups of this coordinator. `member_ids` yields the random part of new member ids.
pub struct GroupManager {
    config: GroupConfig,
    groups: HashMap<String, Group>,
    next_ticket: Ticket,
    member_ids: Box<dyn FnMut() -> String + Send>,
}

impl GroupManager {
    pub fn new(config: GroupConfig, member_ids: Box<dyn FnMut() -> String + Send>) -> GroupManager {
        GroupManager {
            config,
            groups: HashMap::new(),
            next_ticket: 1,
            member_ids,
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    pub fn group(&self, group_id: &str) -> Option<&Group> {
        self.groups.get(group_id)
    }

    fn ticket(&mut self) -> Ticket {
        let t = self.next_ticket;
        self.next_ticket += 1;
        t
    }

    /// JoinGroup: group id and session timeout checks, then the group's state machine.
    pub fn join(
        &mut self,
        req: &JoinRequest,
        now_ms: i64,
        fx: &mut Effects,
    ) -> Outcome<JoinResult> {
        let fail = |e| Outcome::Done(JoinResult::error(&req.member_id, e));
        if !valid_group_id(&req.group_id) {
            return fail(ErrorCode::InvalidGroupId);
        }
        let cfg = &self.config;
        if req.session_timeout_ms < cfg.min_session_timeout_ms
            || req.session_timeout_ms > cfg.max_session_timeout_ms
        {
            return fail(ErrorCode::InvalidSessionTimeout);
        }
        if !self.groups.contains_key(&req.group_id) {
            if !req.member_id.is_empty() {
                return fail(ErrorCode::UnknownMemberId);
            }
            self.groups
                .insert(req.group_id.clone(), Group::new(&req.group_id, now_ms));
        }
        let ticket = self.ticket();
        let prefix = req.group_instance_id.as_deref().unwrap_or(&req.client_id);
        let fresh_id = format!("{prefix}-{}", (self.member_ids)());
        let group = self.groups.get_mut(&req.group_id).expect("inserted above");
        let outcome = group.join(req, &self.config, now_ms, ticket, fresh_id, fx);
        self.forget_if_unused(&req.group_id);
        outcome
    }

    /// A group created by a join that failed holds nothing; Kafka would expire it later.
    fn forget_if_unused(&mut self, group_id: &str) {
        let unused = self.groups.get(group_id).is_some_and(|g| {
            g.state() == GroupState::Empty
                && g.generation_id() == 0
                && g.offsets.is_empty()
                && g.is_idle()
        });
        if unused {
            self.groups.remove(group_id);
        }
    }

    pub fn sync(
        &mut self,
        req: &SyncRequest,
        now_ms: i64,
        fx: &mut Effects,
    ) -> Outcome<SyncResult> {
        let ticket = self.ticket();
        match self.groups.get_mut(&req.group_id) {
            None => Outcome::Done(SyncResult::error(ErrorCode::UnknownMemberId)),
            Some(group) => group.sync(req, now_ms, ticket, fx),
        }
    }

    pub fn heartbeat(
        &mut self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), ErrorCode> {
        match self.groups.get_mut(group_id) {
            None => Err(ErrorCode::UnknownMemberId),
            Some(group) => group.heartbeat(member_id, instance_id, generation_id, now_ms),
        }
    }

    /// LeaveGroup for each `(member id, instance id)`; per-member results.
    pub fn leave(
        &mut self,
        group_id: &str,
        leaving: &[(String, Option<String>)],
        now_ms: i64,
        fx: &mut Effects,
    ) -> Result<Vec<Result<String, ErrorCode>>, ErrorCode> {
        let Some(group) = self.groups.get_mut(group_id) else {
            return Ok(leaving
                .iter()
                .map(|_| Err(ErrorCode::UnknownMemberId))
                .collect());
        };
        if group.state() == GroupState::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        Ok(leaving
            .iter()
            .map(|(member, instance)| {
                group.leave(member, instance.as_deref(), &self.config, now_ms, fx)
            })
            .collect())
    }

    /// Kafka's checks before an OffsetCommit is written; counts as the member's heartbeat.
    pub fn validate_commit(
        &mut self,
        group_id: &str,
        auth: &CommitAuth,
        now_ms: i64,
    ) -> Result<(), ErrorCode> {
        if !valid_group_id(group_id) {
            return Err(ErrorCode::InvalidGroupId);
        }
        let Some(group) = self.groups.get_mut(group_id) else {
            // Only a simple consumer may create a group by committing to it.
            return match (auth.generation_id < 0, auth.version_9_or_later) {
                (true, _) => Ok(()),
                (false, true) => Err(ErrorCode::GroupIdNotFound),
                (false, false) => Err(ErrorCode::IllegalGeneration),
            };
        };
        let instance = auth.group_instance_id.as_deref();
        if group.state() == GroupState::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        if auth.generation_id < 0 && group.state() == GroupState::Empty {
            return Ok(());
        }
        group.validate_member(&auth.member_id, instance, auth.generation_id)?;
        if group.state() == GroupState::CompletingRebalance {
            // The member has its new generation but not its assignment yet.
            return Err(ErrorCode::RebalanceInProgress);
        }
        group.touch_member(&auth.member_id, now_ms);
        Ok(())
    }

    /// Applies offsets already validated and written; creates a simple group if needed.
    pub fn apply_commit(
        &mut self,
        group_id: &str,
        offsets: Vec<(TopicPartition, OffsetCommitValue)>,
        now_ms: i64,
    ) {
        let group = self
            .groups
            .entry(group_id.to_owned())
            .or_insert_with(|| Group::new(group_id, now_ms));
        group.offsets.extend(offsets);
    }

    /// The committed offset of each partition (`None`: every partition with one).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Vec<(TopicPartition, Option<OffsetCommitValue>)> {
        let group = self.groups.get(group_id);
        match partitions {
            Some(wanted) => wanted
                .iter()
                .map(|tp| (tp.clone(), group.and_then(|g| g.offsets.get(tp)).cloned()))
                .collect(),
            None => group
                .map(|g| {
                    g.offsets
                        .iter()
                        .map(|(tp, v)| (tp.clone(), Some(v.clone())))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Every committed offset held here: (group, topic, partition, offset).
    pub fn committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        let mut out: Vec<_> = self
            .groups
            .values()
            .flat_map(|g| {
                g.offsets
                    .iter()
                    .map(|((t, p), v)| (g.group_id.clone(), t.clone(), *p, v.offset))
            })
            .collect();
        out.sort();
        out
    }

    /// ListGroups; empty filters match everything. Type filters compare case-insensitively.
    pub fn list(&self, states: &[GroupState], types: &[String]) -> Vec<GroupListing> {
        let type_ok = types.is_empty()
            || types
                .iter()
                .any(|t| t.eq_ignore_ascii_case(CLASSIC_GROUP_TYPE));
        let mut out: Vec<GroupListing> = self
            .groups
            .values()
            .filter(|g| type_ok && g.state() != GroupState::Dead)
            .filter(|g| states.is_empty() || states.contains(&g.state()))
            .map(|g| GroupListing {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                state: g.state(),
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// DescribeGroups: a Stable group shows metadata, assignments and its protocol;
    /// otherwise members are listed without them (as Kafka's group summary does).
    pub fn describe(&self, group_id: &str) -> GroupDescription {
        let Some(g) = self.groups.get(group_id) else {
            return GroupDescription {
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol_name: String::new(),
                members: Vec::new(),
            };
        };
        let stable = g.state() == GroupState::Stable;
        let protocol = g.protocol_name.clone().unwrap_or_default();
        GroupDescription {
            state: g.state(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_name: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        member_metadata(m, &protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    /// The tombstones DeleteGroups would write for one group, without deleting it: only an
    /// Empty group can go, and its offsets go with it.
    pub fn plan_delete_group(&self, group_id: &str) -> Result<Vec<GroupRecord>, ErrorCode> {
        if group_id.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        let group = self
            .groups
            .get(group_id)
            .ok_or(ErrorCode::GroupIdNotFound)?;
        match group.state() {
            GroupState::Dead => Err(ErrorCode::GroupIdNotFound),
            GroupState::Empty => {
                let mut records: Vec<GroupRecord> =
                    offset_tombstones(group_id, group.offsets.keys()).collect();
                records.push(GroupRecord::Group {
                    group_id: group_id.to_owned(),
                    value: None,
                });
                Ok(records)
            }
            _ => Err(ErrorCode::NonEmptyGroup),
        }
    }

    /// DeleteGroups for one group (see `plan_delete_group`).
    pub fn delete_group(
        &mut self,
        group_id: &str,
        now_ms: i64,
        fx: &mut Effects,
    ) -> Result<(), ErrorCode> {
        let records = self.plan_delete_group(group_id)?;
        if let Some(mut group) = self.groups.remove(group_id) {
            group.mark_dead(now_ms);
        }
        fx.records.extend(records);
        Ok(())
    }

    /// OffsetDelete without deleting: per-partition results and the partitions whose
    /// offsets would go, or a group-level error.
    #[allow(clippy::type_complexity)]
    pub fn plan_delete_offsets(
        &self,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Result<
        (
            Vec<(TopicPartition, Option<ErrorCode>)>,
            Vec<TopicPartition>,
        ),
        ErrorCode,
    > {
        if group_id.is_empty() {
            return Err(ErrorCode::InvalidGroupId);
        }
        let group = self
            .groups
            .get(group_id)
            .ok_or(ErrorCode::GroupIdNotFound)?;
        let consumer = group.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE);
        let guarded = match group.state() {
            GroupState::Dead => return Err(ErrorCode::GroupIdNotFound),
            GroupState::Empty => false,
            _ if consumer => true,
            _ => return Err(ErrorCode::NonEmptyGroup),
        };
        let mut results = Vec::with_capacity(partitions.len());
        let mut deleted = Vec::new();
        for tp in partitions {
            if guarded && group.is_subscribed_to(&tp.0) {
                results.push((tp.clone(), Some(ErrorCode::GroupSubscribedToTopic)));
                continue;
            }
            if group.offsets.contains_key(tp) && !deleted.contains(tp) {
                deleted.push(tp.clone());
            }
            results.push((tp.clone(), None));
        }
        Ok((results, deleted))
    }

    /// Removes offsets already tombstoned; returns the tombstones for them.
    pub fn remove_offsets(
        &mut self,
        group_id: &str,
        partitions: &[TopicPartition],
    ) -> Vec<GroupRecord> {
        if let Some(group) = self.groups.get_mut(group_id) {
            for tp in partitions {
                group.offsets.remove(tp);
            }
        }
        offset_tombstones(group_id, partitions.iter()).collect()
    }

    /// OffsetDelete (see `plan_delete_offsets`).
    pub fn delete_offsets(
        &mut self,
        group_id: &str,
        partitions: &[TopicPartition],
        fx: &mut Effects,
    ) -> Result<Vec<(TopicPartition, Option<ErrorCode>)>, ErrorCode> {
        let (results, deleted) = self.plan_delete_offsets(group_id, partitions)?;
        fx.records.extend(self.remove_offsets(group_id, &deleted));
        Ok(results)
    }

    /// Expires sessions and barriers of every group (see `Group::tick`).
    pub fn tick(&mut self, now_ms: i64, fx: &mut Effects) {
        for group in self.groups.values_mut() {
            group.tick(&self.config, now_ms, fx);
        }
    }

    pub fn next_deadline(&self) -> Option<i64> {
        self.groups.values().filter_map(Group::next_deadline).min()
    }

    /// Removes offsets past `offsets.retention.minutes` (KIP-211 rules), then Empty groups
    /// with no offsets left, writing tombstones for both.
    pub fn expire_offsets(&mut self, now_ms: i64, fx: &mut Effects) {
        self.expire_offsets_except(now_ms, fx, &|_| false);
    }

    /// `expire_offsets`, skipping groups for which `active` holds (KIP-848 consumer groups
    /// with members: their offsets do not expire while the group is in use).
    pub fn expire_offsets_except(
        &mut self,
        now_ms: i64,
        fx: &mut Effects,
        active: &dyn Fn(&str) -> bool,
    ) {
        let retention_ms = self.config.offsets_retention_ms;
        let mut dead = Vec::new();
        for (group_id, group) in &mut self.groups {
            if active(group_id) {
                continue;
            }
            let expired = group.expired_offsets(now_ms, retention_ms);
            for tp in &expired {
                group.offsets.remove(tp);
            }
            if !expired.is_empty() {
                tracing::info!(group = %group_id, partitions = expired.len(), "expired committed offsets");
            }
            fx.records
                .extend(offset_tombstones(group_id, expired.iter()));
            if group.state() == GroupState::Empty && group.offsets.is_empty() && group.is_idle() {
                group.mark_dead(now_ms);
                dead.push(group_id.clone());
            }
        }
        for group_id in dead {
            self.groups.remove(&group_id);
            fx.records.push(GroupRecord::Group {
                group_id,
                value: None,
            });
        }
    }

    /// Applies one record of `__consumer_offsets` during replay (later records win).
    pub fn replay(&mut self, record: GroupRecord, now_ms: i64) {
        match record {
            GroupRecord::Offset {
                group_id,
                topic,
                partition,
                value,
            } => match value {
                Some(v) => self.apply_commit(&group_id, vec![((topic, partition), v)], now_ms),
                None => {
                    if let Some(g) = self.groups.get_mut(&group_id) {
                        g.offsets.remove(&(topic, partition));
                    }
                }
            },
            GroupRecord::Group { group_id, value } => match value {
                Some(v) => {
                    let group = self
                        .groups
                        .entry(group_id.clone())
                        .or_insert_with(|| Group::new(&group_id, now_ms));
                    group.load_metadata(v, now_ms);
                }
                None => {
                    // Offsets of a deleted group are tombstoned separately, before this.
                    self.groups.remove(&group_id);
                }
            },
            // KIP-848 groups are replayed by the coordinator's `ConsumerGroups`.
            GroupRecord::ConsumerGroup { .. } => {}
        }
    }

    /// Drops the groups for which `here` holds (their partition moved to another
    /// coordinator), answering their waiting requests NOT_COORDINATOR. Returns how many.
    pub fn unload(&mut self, here: &dyn Fn(&str) -> bool, fx: &mut Effects) -> usize {
        let before = self.groups.len();
        self.groups.retain(|group_id, group| {
            if here(group_id) {
                group.fail_waiting(ErrorCode::NotCoordinator, fx);
                false
            } else {
                true
            }
        });
        before - self.groups.len()
    }

    /// Answers every waiting request with `error` (shutdown).
    pub fn fail_waiting(&mut self, error: ErrorCode, fx: &mut Effects) {
        for group in self.groups.values_mut() {
            group.fail_waiting(error, fx);
        }
    }
}

fn member_metadata(m: &super::state::Member, protocol: &str) -> Bytes {
    m.protocols
        .iter()
        .find(|p| p.name == protocol)
        .map(|p| p.metadata.clone())
        .unwrap_or_default()
}

fn offset_tombstones<'a>(
    group_id: &'a str,
    tps: impl Iterator<Item = &'a TopicPartition> + 'a,
) -> impl Iterator<Item = GroupRecord> + 'a {
    tps.map(move |(topic, partition)| GroupRecord::Offset {
        group_id: group_id.to_owned(),
        topic: topic.clone(),
        partition: *partition,
        value: None,
    })
}

#[cfg(test)]
mod tests;
