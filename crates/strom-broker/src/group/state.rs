//! One classic consumer group as Kafka's coordinator keeps it: members, generation, the
//! Empty → PreparingRebalance → CompletingRebalance → Stable (and Dead) state machine and its
//! join/sync barriers. Pure: time comes in as `now_ms`, a waiting request is a `Ticket`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bytes::Bytes;
use indexmap::IndexMap;
use strom_protocol::ErrorCode;

use super::records::{GroupMetadataValue, GroupRecord, MemberMetadataValue, OffsetCommitValue};
use super::subscription::subscribed_topics;

/// Identifies a JoinGroup or SyncGroup request that waits for a barrier.
pub type Ticket = u64;

/// The protocol type of Kafka consumers; their metadata names the subscribed topics.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Kafka's classic group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka reports in ListGroups and DescribeGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// Parses a state name as ListGroups filters send it (case-insensitive).
    pub fn parse(name: &str) -> Option<GroupState> {
        [
            GroupState::Empty,
            GroupState::PreparingRebalance,
            GroupState::CompletingRebalance,
            GroupState::Stable,
            GroupState::Dead,
        ]
        .into_iter()
        .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// Kafka's allowed previous states for each state.
    fn can_follow(self, previous: GroupState) -> bool {
        use GroupState::*;
        match self {
            Empty => previous == PreparingRebalance,
            PreparingRebalance => matches!(previous, Empty | CompletingRebalance | Stable),
            CompletingRebalance => previous == PreparingRebalance,
            Stable => previous == CompletingRebalance,
            Dead => true,
        }
    }
}

/// Broker settings the group state machine obeys.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: i64,
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.max.size`
    pub max_size: usize,
    /// `offsets.retention.minutes` in ms
    pub offsets_retention_ms: i64,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
}

impl Default for GroupConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            max_size: i32::MAX as usize,
            offsets_retention_ms: 7 * 24 * 60 * 60 * 1000,
            offset_metadata_max_bytes: 4096,
        }
    }
}

/// One protocol a member supports (an assignor name) and its metadata for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocol {
    pub name: String,
    pub metadata: Bytes,
}

/// A member of a group. Invariant: at most one waiting JoinGroup and one waiting SyncGroup.
#[derive(Debug, Clone)]
pub struct Member {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
    pub(super) awaiting_join: Option<Ticket>,
    pub(super) awaiting_sync: Option<Ticket>,
    pub(super) heartbeat_deadline_ms: i64,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|p| p.name == protocol)
            .map(|p| p.metadata.clone())
            .unwrap_or_default()
    }

    fn touch(&mut self, now_ms: i64) {
        self.heartbeat_deadline_ms = now_ms.saturating_add(i64::from(self.session_timeout_ms));
    }

    /// Whether the session timeout has passed. Members waiting in a barrier are kept alive:
    /// the barrier has its own (rebalance) timeout.
    fn session_expired(&self, now_ms: i64) -> bool {
        self.awaiting_join.is_none()
            && self.awaiting_sync.is_none()
            && now_ms >= self.heartbeat_deadline_ms
    }
}

/// What JoinGroup answers (immediately or when the join barrier completes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error: Option<ErrorCode>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader_id: String,
    pub member_id: String,
    /// Every member's metadata, for the leader only.
    pub members: Vec<JoinedMember>,
    pub skip_assignment: bool,
}

impl JoinResult {
    pub fn error(member_id: &str, error: ErrorCode) -> JoinResult {
        JoinResult {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader_id: String::new(),
            member_id: member_id.to_owned(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// A member as the leader sees it in its JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// What SyncGroup answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    pub error: Option<ErrorCode>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: ErrorCode) -> SyncResult {
        SyncResult {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// An answer to a request that was waiting on a barrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(Ticket, JoinResult),
    Sync(Ticket, SyncResult),
}

/// What an operation asks the outside world to do: answer waiting requests and append
/// records to `__consumer_offsets` (before answering, so an answer implies durability).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Effects {
    pub replies: Vec<Reply>,
    pub records: Vec<GroupRecord>,
}

/// The answer to a request: now, or later through `Effects::replies` with this ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<T> {
    Done(T),
    Pending(Ticket),
}

/// A JoinGroup request, already decoded and defaulted by version.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub client_id: String,
    pub client_host: String,
    /// JoinGroup v4+: an unknown member first gets MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
    /// JoinGroup v9+: the leader can be told to skip assignment (KIP-814).
    pub supports_skip_assignment: bool,
}

/// The join barrier of a PreparingRebalance group.
#[derive(Debug, Clone)]
struct JoinBarrier {
    deadline_ms: i64,
    /// Set for the first rebalance of an Empty group (`group.initial.rebalance.delay.ms`).
    initial: Option<InitialDelay>,
}

#[derive(Debug, Clone)]
struct InitialDelay {
    delay_ms: i64,
    /// Rebalance timeout left to extend the delay with while members keep arriving.
    remaining_ms: i64,
    new_member_added: bool,
}

/// One group. Invariants: `leader_id` names a member or is `None` when there are none;
/// `static_members` maps each static member's instance id to its member id.
#[derive(Debug, Clone)]
pub struct Group {
    pub(super) group_id: String,
    pub(super) state: GroupState,
    /// When the state last changed (GroupMetadataValue.current_state_timestamp); -1 unknown.
    pub(super) state_timestamp_ms: i64,
    pub(super) generation_id: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol_name: Option<String>,
    pub(super) leader_id: Option<String>,
    pub(super) members: IndexMap<String, Member>,
    static_members: HashMap<String, String>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the deadline to rejoin.
    pending_members: HashMap<String, i64>,
    join_barrier: Option<JoinBarrier>,
    /// Members of the new generation that have not sent SyncGroup yet, and their deadline.
    pending_sync: HashSet<String>,
    sync_deadline_ms: Option<i64>,
    /// Topics the members consume (consumer protocol only); `None` if unknown.
    pub(super) subscribed_topics: Option<BTreeSet<String>>,
    pub(super) offsets: BTreeMap<(String, i32), OffsetCommitValue>,
}

impl Group {
    pub fn new(group_id: &str, now_ms: i64) -> Group {
        Group {
            group_id: group_id.to_owned(),
            state: GroupState::Empty,
            state_timestamp_ms: now_ms,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: IndexMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            join_barrier: None,
            pending_sync: HashSet::new(),
            sync_deadline_ms: None,
            subscribed_topics: None,
            offsets: BTreeMap::new(),
        }
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }

    pub fn leader_id(&self) -> Option<&str> {
        self.leader_id.as_deref()
    }

    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.get(member_id)
    }

    fn transition(&mut self, to: GroupState, now_ms: i64) {
        assert!(
            to.can_follow(self.state),
            "group {}: illegal transition {:?} -> {:?}",
            self.group_id,
            self.state,
            to
        );
        self.state = to;
        self.state_timestamp_ms = now_ms;
    }

    /// Kafka's `isStaticMemberFenced`: the instance id belongs to another member id.
    fn is_fenced(&self, member_id: &str, instance_id: Option<&str>) -> bool {
        instance_id
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|owner| owner != member_id)
    }

    /// Checks a request of a current member: FENCED_INSTANCE_ID, UNKNOWN_MEMBER_ID and
    /// ILLEGAL_GENERATION in Kafka's order.
    pub(super) fn validate_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), ErrorCode> {
        if self.is_fenced(member_id, instance_id) {
            Err(ErrorCode::FencedInstanceId)
        } else if !self.members.contains_key(member_id) {
            Err(ErrorCode::UnknownMemberId)
        } else if generation_id != self.generation_id {
            Err(ErrorCode::IllegalGeneration)
        } else {
            Ok(())
        }
    }

    /// Protocols every member supports, in the order the first member prefers them.
    fn candidate_protocols(&self, except: Option<&str>) -> Vec<String> {
        let mut others = self
            .members
            .values()
            .filter(|m| Some(m.member_id.as_str()) != except);
        let Some(first) = others.next() else {
            return Vec::new();
        };
        let mut names: Vec<String> = first.protocols.iter().map(|p| p.name.clone()).collect();
        for m in others {
            names.retain(|n| m.protocols.iter().any(|p| &p.name == n));
        }
        names
    }

    /// Kafka's `supportsProtocols`: a new group needs a type and a protocol; otherwise the
    /// type must match and one protocol must be common to every other member.
    fn supports_protocols(
        &self,
        member_id: &str,
        protocol_type: &str,
        protocols: &[Protocol],
    ) -> bool {
        let others = self
            .members
            .keys()
            .filter(|id| id.as_str() != member_id)
            .count();
        if others == 0 {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        let candidates = self.candidate_protocols(Some(member_id));
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|p| candidates.contains(&p.name))
    }

    /// Kafka's `selectProtocol`: every member votes for its most preferred candidate; the
    /// most votes win, ties going to the earlier candidate.
    fn select_protocol(&self) -> String {
        let candidates = self.candidate_protocols(None);
        assert!(
            !candidates.is_empty(),
            "group {}: members share no protocol although joins check it",
            self.group_id
        );
        let mut votes = vec![0usize; candidates.len()];
        for m in self.members.values() {
            if let Some(i) = m
                .protocols
                .iter()
                .find_map(|p| candidates.iter().position(|c| c == &p.name))
            {
                votes[i] += 1;
            }
        }
        let mut best = 0;
        for (i, v) in votes.iter().enumerate() {
            if *v > votes[best] {
                best = i;
            }
        }
        candidates[best].clone()
    }

    fn compute_subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        let protocol = self.protocol_name.as_deref()?;
        let mut all = BTreeSet::new();
        for m in self.members.values() {
            all.extend(subscribed_topics(&m.metadata(protocol))?);
        }
        Some(all)
    }

    /// Kafka's `isSubscribedToTopic`: unknown subscriptions count as subscribed.
    pub(super) fn is_subscribed_to(&self, topic: &str) -> bool {
        self.subscribed_topics
            .as_ref()
            .is_none_or(|t| t.contains(topic))
    }

    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader_id.as_deref() == Some(member_id)
    }

    /// The group's metadata record (written after a generation completes or changes).
    pub(super) fn metadata_record(&self) -> GroupRecord {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let members = self
            .members
            .values()
            .map(|m| MemberMetadataValue {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscription: m.metadata(&protocol),
                assignment: m.assignment.clone(),
            })
            .collect();
        GroupRecord::Group {
            group_id: self.group_id.clone(),
            value: Some(GroupMetadataValue {
                protocol_type: self.protocol_type.clone().unwrap_or_default(),
                generation_id: self.generation_id,
                protocol_name: self.protocol_name.clone(),
                leader_id: self.leader_id.clone(),
                current_state_timestamp_ms: self.state_timestamp_ms,
                members,
            }),
        }
    }

    /// Rebuilds a group from its stored metadata: Stable with its members (whose sessions
    /// start now), or Empty. Offsets are loaded separately.
    pub(super) fn load_metadata(&mut self, value: GroupMetadataValue, now_ms: i64) {
        self.generation_id = value.generation_id;
        self.protocol_type = (!value.protocol_type.is_empty()).then_some(value.protocol_type);
        self.protocol_name = value.protocol_name;
        self.state_timestamp_ms = value.current_state_timestamp_ms;
        self.members.clear();
        self.static_members.clear();
        for m in value.members {
            let protocol = self.protocol_name.clone().unwrap_or_default();
            if let Some(instance) = &m.group_instance_id {
                self.static_members
                    .insert(instance.clone(), m.member_id.clone());
            }
            let mut member = Member {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                protocols: vec![Protocol {
                    name: protocol,
                    metadata: m.subscription,
                }],
                assignment: m.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                heartbeat_deadline_ms: 0,
            };
            member.touch(now_ms);
            self.members.insert(m.member_id, member);
        }
        self.leader_id = value.leader_id.filter(|l| self.members.contains_key(l));
        if self.leader_id.is_none() {
            self.leader_id = self.members.keys().next().cloned();
        }
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        self.subscribed_topics = self.compute_subscribed_topics();
    }

    /// No members and no member ids waiting to join.
    pub(super) fn is_idle(&self) -> bool {
        self.members.is_empty() && self.pending_members.is_empty()
    }

    /// Offsets past retention, by Kafka's rules (KIP-211): in an Empty group, `retention_ms`
    /// after both the commit and the group emptying; in a Stable consumer group, only topics
    /// it no longer consumes, by commit time; in a group that only stores offsets, by commit
    /// time. An explicit expire timestamp (OffsetCommit v2–4) wins.
    pub(super) fn expired_offsets(&self, now_ms: i64, retention_ms: i64) -> Vec<(String, i32)> {
        let consumer = self.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE);
        let (since_empty, spared) = match (&self.protocol_type, self.state) {
            (None, _) => (i64::MIN, None),
            (Some(_), GroupState::Empty) => (self.state_timestamp_ms, None),
            (Some(_), GroupState::Stable) if consumer && self.subscribed_topics.is_some() => {
                (i64::MIN, self.subscribed_topics.as_ref())
            }
            _ => return Vec::new(),
        };
        self.offsets
            .iter()
            .filter(|((topic, _), _)| spared.is_none_or(|s| !s.contains(topic)))
            .filter(|(_, v)| match v.expire_timestamp_ms {
                Some(expire) => now_ms >= expire,
                None => {
                    now_ms.saturating_sub(v.commit_timestamp_ms.max(since_empty)) >= retention_ms
                }
            })
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// Members of the current generation for the leader's JoinGroup response.
    fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata(&protocol),
            })
            .collect()
    }

    fn join_result(&self, member_id: &str, with_members: bool) -> JoinResult {
        JoinResult {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader_id: self.leader_id.clone().unwrap_or_default(),
            member_id: member_id.to_owned(),
            members: if with_members {
                self.joined_members()
            } else {
                Vec::new()
            },
            skip_assignment: false,
        }
    }
}

mod rebalance;

pub use rebalance::SyncRequest;

#[cfg(test)]
mod tests;
