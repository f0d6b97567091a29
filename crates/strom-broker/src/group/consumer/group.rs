//! One KIP-848 consumer group: members with their epochs, the group epoch, the target
//! assignment and its epoch, and reconciliation (a partition goes to its new owner only once
//! the previous owner has revoked it). Pure: time comes in as `now_ms`.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::assignor::{assign, AssignorInput};
use super::regex::{self, REFRESH_MIN_INTERVAL_MS};
use super::{Assignment, TopicsView};

/// One member. Invariant: `assigned` and `pending_revocation` are disjoint, and no partition
/// is in two members' `assigned ∪ pending_revocation`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    /// `SubscribedTopicRegex` (KIP-848): the member also takes the topics it matches.
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// What the member owns now (sent to it).
    pub assigned: Assignment,
    /// Partitions the member was told to give up and has not yet reported as revoked.
    pub pending_revocation: Assignment,
    pub(super) session_deadline_ms: i64,
    pub(super) revocation_deadline_ms: Option<i64>,
    /// A static member that left with epoch -2: keeps its assignment for its successor.
    pub(super) left_static: bool,
}

impl Member {
    pub(super) fn new(member_id: String, now_ms: i64, session_timeout_ms: i32) -> Member {
        Member {
            member_id,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            rebalance_timeout_ms: 0,
            member_epoch: 0,
            previous_member_epoch: 0,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            session_deadline_ms: now_ms + i64::from(session_timeout_ms),
            revocation_deadline_ms: None,
            left_static: false,
        }
    }

    fn owns(&self, topic: &Uuid, partition: i32) -> bool {
        let has = |a: &Assignment| a.get(topic).is_some_and(|s| s.contains(&partition));
        has(&self.assigned) || has(&self.pending_revocation)
    }
}

/// Group states as KIP-848 names them (ListGroups / ConsumerGroupDescribe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
}

impl ConsumerGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// One consumer group. Invariant: `assignment_epoch <= group_epoch`.
#[derive(Debug, Clone, Default)]
pub struct ConsumerGroup {
    pub group_id: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, Member>,
    pub target: BTreeMap<String, Assignment>,
    /// The assignor that computed the current target.
    pub assignor_name: String,
    /// Partition counts of the subscribed topics when the group epoch last moved.
    pub(super) subscribed_partitions: BTreeMap<Uuid, i32>,
    /// The topic names each regex in use matches (not stored: resolved again after a load).
    pub resolved_regexes: BTreeMap<String, BTreeSet<String>>,
    /// When every regex of the group was last resolved together, and the topic set then.
    regex_refreshed_at_ms: Option<i64>,
    regex_fingerprint: u64,
}

impl ConsumerGroup {
    pub fn new(group_id: &str) -> ConsumerGroup {
        ConsumerGroup {
            group_id: group_id.to_owned(),
            ..ConsumerGroup::default()
        }
    }

    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self.members.values().any(|m| {
            m.member_epoch != self.assignment_epoch
                || !m.pending_revocation.is_empty()
                || Some(&m.assigned) != self.target.get(&m.member_id)
        }) {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// Members that count towards `group.consumer.max.size`.
    pub fn member_for_instance(&self, instance_id: &str) -> Option<&Member> {
        self.members
            .values()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    /// Bumps the group epoch (a membership, subscription or metadata change).
    pub(super) fn bump(&mut self) {
        self.group_epoch += 1;
    }

    /// Removes a member and releases its partitions; the group epoch moves.
    pub(super) fn remove_member(&mut self, member_id: &str) {
        if self.members.remove(member_id).is_some() {
            self.target.remove(member_id);
            self.bump();
        }
    }

    /// The topic names a member subscribes to: its names and what its regex matches.
    pub fn subscribed_names<'a>(&'a self, m: &'a Member) -> BTreeSet<&'a str> {
        let by_regex = m
            .subscribed_topic_regex
            .as_ref()
            .and_then(|r| self.resolved_regexes.get(r))
            .into_iter()
            .flatten();
        m.subscribed_topic_names
            .iter()
            .chain(by_regex)
            .map(String::as_str)
            .collect()
    }

    /// Resolves the regexes the members use: a new one at once, all of them again when the
    /// topic set changed, at most once per `REFRESH_MIN_INTERVAL_MS`. Forgets unused ones.
    pub(super) fn resolve_regexes(&mut self, topics: &TopicsView, now_ms: i64) {
        let in_use: BTreeSet<String> = self
            .members
            .values()
            .filter_map(|m| m.subscribed_topic_regex.clone())
            .collect();
        self.resolved_regexes.retain(|r, _| in_use.contains(r));
        if in_use.is_empty() {
            self.regex_refreshed_at_ms = None;
            return;
        }
        let fingerprint = regex::fingerprint(topics);
        let due = self
            .regex_refreshed_at_ms
            .is_none_or(|at| now_ms >= at + REFRESH_MIN_INTERVAL_MS);
        let refresh_all = due && fingerprint != self.regex_fingerprint;
        for pattern in in_use {
            if !refresh_all && self.resolved_regexes.contains_key(&pattern) {
                continue;
            }
            // Every stored pattern was compiled when a heartbeat brought it; one that no
            // longer compiles (a snapshot from elsewhere) matches nothing.
            let names = match regex::compile(&pattern) {
                Ok(re) => regex::resolve(&re, topics),
                Err(_) => BTreeSet::new(),
            };
            self.resolved_regexes.insert(pattern, names);
        }
        if refresh_all {
            self.regex_refreshed_at_ms = Some(now_ms);
            self.regex_fingerprint = fingerprint;
        }
    }

    /// Bumps the group epoch when a subscribed topic appeared, vanished or grew.
    pub(super) fn refresh_metadata(&mut self, topics: &TopicsView) {
        let now: BTreeMap<Uuid, i32> = self
            .members
            .values()
            .flat_map(|m| self.subscribed_names(m))
            .filter_map(|name| topics.get(name).copied())
            .collect();
        if now != self.subscribed_partitions {
            self.subscribed_partitions = now;
            self.bump();
        }
    }

    /// Computes a new target assignment if the group epoch moved past it.
    pub(super) fn maybe_assign(&mut self, topics: &TopicsView, default_assignor: &str) {
        if self.group_epoch <= self.assignment_epoch {
            return;
        }
        let name = self.chosen_assignor(default_assignor);
        let subscriptions: BTreeMap<String, BTreeSet<Uuid>> = self
            .members
            .values()
            .map(|m| {
                let ids = self
                    .subscribed_names(m)
                    .into_iter()
                    .filter_map(|t| topics.get(t).map(|(id, _)| *id))
                    .collect();
                (m.member_id.clone(), ids)
            })
            .collect();
        let instance_ids: BTreeMap<String, String> = self
            .members
            .values()
            .filter_map(|m| Some((m.member_id.clone(), m.instance_id.clone()?)))
            .collect();
        let partitions: BTreeMap<Uuid, i32> = topics.values().copied().collect();
        let input = AssignorInput {
            subscriptions: &subscriptions,
            instance_ids: &instance_ids,
            partitions: &partitions,
            previous: &self.target,
        };
        // The assignor was validated against `group.consumer.assignors` on the heartbeat.
        self.target = assign(&name, &input).unwrap_or_default();
        self.assignor_name = name;
        self.assignment_epoch = self.group_epoch;
    }

    /// The assignor most members ask for (ties: by name), else the broker's default.
    fn chosen_assignor(&self, default_assignor: &str) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.server_assignor.as_deref() {
                *votes.entry(a).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
            .map_or_else(|| default_assignor.to_owned(), |(a, _)| a.to_owned())
    }

    /// Moves one member towards its target (KIP-848's current assignment builder). `owned`
    /// is what the member reported owning in this heartbeat, if it did.
    pub(super) fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now_ms: i64) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let assignment_epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        if !m.pending_revocation.is_empty() {
            match owned {
                Some(o) if !intersects(o, &m.pending_revocation) => {
                    m.pending_revocation.clear();
                    m.revocation_deadline_ms = None;
                }
                _ => return,
            }
        }
        if m.member_epoch != assignment_epoch {
            let revoke = minus(&m.assigned, &target);
            if !revoke.is_empty() {
                m.assigned = intersect(&m.assigned, &target);
                m.pending_revocation = revoke;
                m.revocation_deadline_ms = Some(now_ms + i64::from(m.rebalance_timeout_ms));
                return;
            }
            m.previous_member_epoch = m.member_epoch;
            m.member_epoch = assignment_epoch;
        }
        // Grant target partitions nobody else holds any more.
        let wanted = minus(&target, &m.assigned);
        let others: Vec<&Member> = self
            .members
            .values()
            .filter(|o| o.member_id != member_id)
            .collect();
        let mut free = Assignment::new();
        for (topic, parts) in &wanted {
            for &p in parts {
                if !others.iter().any(|o| o.owns(topic, p)) {
                    free.entry(*topic).or_default().insert(p);
                }
            }
        }
        let m = self
            .members
            .get_mut(member_id)
            .expect("member checked above");
        for (topic, parts) in free {
            m.assigned.entry(topic).or_default().extend(parts);
        }
    }
}

pub(super) fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(t, ps)| b.get(t).is_some_and(|bs| !ps.is_disjoint(bs)))
}

pub(super) fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .all(|(t, ps)| ps.is_empty() || b.get(t).is_some_and(|bs| ps.is_subset(bs)))
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        let rest: BTreeSet<i32> = match b.get(t) {
            Some(bs) => ps.difference(bs).copied().collect(),
            None => ps.clone(),
        };
        if !rest.is_empty() {
            out.insert(*t, rest);
        }
    }
    out
}

fn intersect(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        if let Some(bs) = b.get(t) {
            let both: BTreeSet<i32> = ps.intersection(bs).copied().collect();
            if !both.is_empty() {
                out.insert(*t, both);
            }
        }
    }
    out
}
