//! The rebalance protocol of one group, following Kafka's classic coordinator: JoinGroup
//! (MEMBER_ID_REQUIRED, static members, the join barrier), SyncGroup (the sync barrier),
//! Heartbeat, LeaveGroup, and session/rebalance timeout expiry driven by `tick`.

use std::collections::HashMap;

use bytes::Bytes;
use strom_protocol::ErrorCode;

use super::{
    Effects, Group, GroupConfig, GroupState, InitialDelay, JoinBarrier, JoinRequest, JoinResult,
    Member, Outcome, Reply, SyncResult, Ticket, CONSUMER_PROTOCOL_TYPE,
};
use crate::group::subscription::subscribed_topics;

/// A SyncGroup request, decoded.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// SyncGroup v5+: checked against the group's when present.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// The leader's assignment: member id → assignment bytes.
    pub assignments: Vec<(String, Bytes)>,
}

impl Group {
    /// JoinGroup (Kafka's `doJoinGroup`). `fresh_member_id` becomes the member id of an
    /// unknown member; `cfg` supplies the size limit and the initial rebalance delay.
    pub fn join(
        &mut self,
        req: &JoinRequest,
        cfg: &GroupConfig,
        now_ms: i64,
        ticket: Ticket,
        fresh_member_id: String,
        fx: &mut Effects,
    ) -> Outcome<JoinResult> {
        let fail = |e| Outcome::Done(JoinResult::error(&req.member_id, e));
        if self.state == GroupState::Dead {
            return fail(ErrorCode::CoordinatorNotAvailable);
        }
        if !self.supports_protocols(&req.member_id, &req.protocol_type, &req.protocols) {
            return fail(ErrorCode::InconsistentGroupProtocol);
        }
        if !self.accepts_member(&req.member_id, cfg.max_size) {
            // Kafka drops a known member the group has no room for (after a lowered limit).
            if self.members.contains_key(&req.member_id) {
                self.remove_member(&req.member_id, cfg, now_ms, fx);
            }
            return Outcome::Done(JoinResult::error("", ErrorCode::GroupMaxSizeReached));
        }
        if req.member_id.is_empty() {
            self.join_unknown(req, cfg, now_ms, ticket, fresh_member_id, fx)
        } else {
            self.join_known(req, cfg, now_ms, ticket, fx)
        }
    }

    /// Kafka's `acceptJoiningMember` against `group.max.size`.
    fn accepts_member(&self, member_id: &str, max_size: usize) -> bool {
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                let awaiting = self
                    .members
                    .values()
                    .filter(|m| m.awaiting_join.is_some())
                    .count();
                self.members
                    .get(member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || awaiting < max_size
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < max_size
            }
        }
    }

    fn join_unknown(
        &mut self,
        req: &JoinRequest,
        cfg: &GroupConfig,
        now_ms: i64,
        ticket: Ticket,
        new_id: String,
        fx: &mut Effects,
    ) -> Outcome<JoinResult> {
        if let Some(instance) = &req.group_instance_id {
            if let Some(old_id) = self.static_members.get(instance).cloned() {
                return self.replace_static_member(req, cfg, &old_id, new_id, now_ms, ticket, fx);
            }
            // Static members skip MEMBER_ID_REQUIRED (KIP-345).
            return self.add_member_and_rebalance(req, cfg, new_id, now_ms, ticket, fx);
        }
        if req.require_known_member_id {
            let deadline = now_ms.saturating_add(i64::from(req.session_timeout_ms));
            self.pending_members.insert(new_id.clone(), deadline);
            return Outcome::Done(JoinResult::error(&new_id, ErrorCode::MemberIdRequired));
        }
        self.add_member_and_rebalance(req, cfg, new_id, now_ms, ticket, fx)
    }

    fn join_known(
        &mut self,
        req: &JoinRequest,
        cfg: &GroupConfig,
        now_ms: i64,
        ticket: Ticket,
        fx: &mut Effects,
    ) -> Outcome<JoinResult> {
        let id = req.member_id.clone();
        if self.pending_members.contains_key(&id) {
            return self.add_member_and_rebalance(req, cfg, id, now_ms, ticket, fx);
        }
        let instance = req.group_instance_id.as_deref();
        if self.is_fenced(&id, instance) {
            return Outcome::Done(JoinResult::error(&id, ErrorCode::FencedInstanceId));
        }
        let instance_unknown = instance.is_some_and(|i| !self.static_members.contains_key(i));
        let same_protocols = match self.members.get(&id) {
            Some(member) if !instance_unknown => member.protocols == req.protocols,
            _ => return Outcome::Done(JoinResult::error(&id, ErrorCode::UnknownMemberId)),
        };
        let is_leader = self.is_leader(&id);
        match self.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(req, cfg, now_ms, ticket, fx)
            }
            // The member missed its JoinGroup response: send it again.
            GroupState::CompletingRebalance if same_protocols => {
                self.touch_member(&id, now_ms);
                Outcome::Done(self.join_result(&id, is_leader))
            }
            GroupState::Stable if same_protocols && !is_leader => {
                self.touch_member(&id, now_ms);
                Outcome::Done(self.join_result(&id, false))
            }
            // A changed subscription, or the leader rejoining, starts a rebalance.
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(req, cfg, now_ms, ticket, fx)
            }
            GroupState::Empty | GroupState::Dead => {
                Outcome::Done(JoinResult::error(&id, ErrorCode::UnknownMemberId))
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        req: &JoinRequest,
        cfg: &GroupConfig,
        member_id: String,
        now_ms: i64,
        ticket: Ticket,
        fx: &mut Effects,
    ) -> Outcome<JoinResult> {
        self.pending_members.remove(&member_id);
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        let mut member = Member {
            member_id: member_id.clone(),
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            rebalance_timeout_ms: req.rebalance_timeout_ms,
            session_timeout_ms: req.session_timeout_ms,
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            awaiting_join: Some(ticket),
            awaiting_sync: None,
            heartbeat_deadline_ms: 0,
        };
        member.touch(now_ms);
        if let Some(instance) = &req.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member_id.clone());
        }
        self.members.insert(member_id, member);
        if let Some(initial) = self.join_barrier.as_mut().and_then(|b| b.initial.as_mut()) {
            initial.new_member_added = true;
        }
        self.rebalance(cfg, now_ms, fx);
        Outcome::Pending(ticket)
    }

    fn update_member_and_rebalance(
        &mut self,
        req: &JoinRequest,
        cfg: &GroupConfig,
        now_ms: i64,
        ticket: Ticket,
        fx: &mut Effects,
    ) -> Outcome<JoinResult> {
        let member = self
            .members
            .get_mut(&req.member_id)
            .expect("update_member_and_rebalance is called for a current member");
        member.protocols = req.protocols.clone();
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        member.touch(now_ms);
        if let Some(old) = member.awaiting_join.replace(ticket) {
            // A retried JoinGroup replaces the one still waiting; that one must rejoin.
            fx.replies.push(Reply::Join(
                old,
                JoinResult::error(&req.member_id, ErrorCode::RebalanceInProgress),
            ));
        }
        self.rebalance(cfg, now_ms, fx);
        Outcome::Pending(ticket)
    }

    /// A static member came back with a new member id (KIP-345): the old id is fenced and
    /// the new one takes its place, without a rebalance when nothing the leader assigned
    /// from has changed (same selected protocol, same subscribed topics).
    #[allow(clippy::too_many_arguments)]
    fn replace_static_member(
        &mut self,
        req: &JoinRequest,
        cfg: &GroupConfig,
        old_id: &str,
        new_id: String,
        now_ms: i64,
        ticket: Ticket,
        fx: &mut Effects,
    ) -> Outcome<JoinResult> {
        let mut member = self
            .members
            .shift_remove(old_id)
            .expect("static_members maps instance ids to current members");
        if let Some(t) = member.awaiting_join.take() {
            fx.replies.push(Reply::Join(
                t,
                JoinResult::error(old_id, ErrorCode::FencedInstanceId),
            ));
        }
        if let Some(t) = member.awaiting_sync.take() {
            fx.replies.push(Reply::Sync(
                t,
                SyncResult::error(ErrorCode::FencedInstanceId),
            ));
        }
        let old_leader = self.leader_id.clone().unwrap_or_default();
        let protocol = self.protocol_name.clone().unwrap_or_default();
        let old_topics = subscribed_topics(&member.metadata(&protocol));
        member.member_id = new_id.clone();
        member.protocols = req.protocols.clone();
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.session_timeout_ms = req.session_timeout_ms;
        member.client_id = req.client_id.clone();
        member.client_host = req.client_host.clone();
        member.touch(now_ms);
        let new_topics = subscribed_topics(&member.metadata(&protocol));
        if let Some(instance) = &req.group_instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        if self.leader_id.as_deref() == Some(old_id) {
            self.leader_id = Some(new_id.clone());
        }
        if self.pending_sync.remove(old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        match self.state {
            GroupState::Stable => {
                let same_protocol =
                    self.protocol_name.as_deref() == Some(self.select_protocol().as_str());
                let same_topics = self.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE)
                    || old_topics == new_topics;
                if same_protocol && same_topics {
                    fx.records.push(self.metadata_record());
                    return Outcome::Done(self.static_rejoin_result(
                        &new_id,
                        old_leader,
                        req.supports_skip_assignment,
                    ));
                }
                self.await_join(&new_id, ticket);
                self.rebalance(cfg, now_ms, fx);
            }
            GroupState::CompletingRebalance | GroupState::PreparingRebalance => {
                // The leader may already be assigning to the old id: rebalance again.
                self.await_join(&new_id, ticket);
                self.rebalance(cfg, now_ms, fx);
            }
            GroupState::Empty | GroupState::Dead => {
                panic!(
                    "group {}: a static member in state {:?}",
                    self.group_id, self.state
                )
            }
        }
        Outcome::Pending(ticket)
    }

    /// The JoinGroup answer of a static member replaced in a Stable group (KIP-814). A
    /// leader that cannot be told to skip assignment (JoinGroup < v9) is given the old leader
    /// id so it does not assign: a Stable group would not pass the assignment on.
    fn static_rejoin_result(
        &self,
        new_id: &str,
        old_leader: String,
        supports_skip: bool,
    ) -> JoinResult {
        let mut result = self.join_result(new_id, false);
        if self.is_leader(new_id) {
            if supports_skip {
                result.members = self.joined_members();
                result.skip_assignment = true;
            } else {
                result.leader_id = old_leader;
            }
        }
        result
    }

    fn await_join(&mut self, member_id: &str, ticket: Ticket) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.awaiting_join = Some(ticket);
        }
    }

    /// Starts a rebalance if the state allows one, and completes the join barrier if it can.
    fn rebalance(&mut self, cfg: &GroupConfig, now_ms: i64, fx: &mut Effects) {
        if matches!(
            self.state,
            GroupState::Empty | GroupState::CompletingRebalance | GroupState::Stable
        ) {
            self.prepare_rebalance(cfg, now_ms, fx);
        }
        self.maybe_complete_join(now_ms, fx);
    }

    fn prepare_rebalance(&mut self, cfg: &GroupConfig, now_ms: i64, fx: &mut Effects) {
        if self.state == GroupState::CompletingRebalance {
            // Assignments of the abandoned generation are void; waiting syncs must rejoin.
            for m in self.members.values_mut() {
                if let Some(t) = m.awaiting_sync.take() {
                    fx.replies.push(Reply::Sync(
                        t,
                        SyncResult::error(ErrorCode::RebalanceInProgress),
                    ));
                }
                m.assignment = Bytes::new();
            }
        }
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
        let rebalance_timeout = self.rebalance_timeout_ms();
        self.join_barrier = Some(if self.state == GroupState::Empty {
            let delay = cfg.initial_rebalance_delay_ms;
            JoinBarrier {
                deadline_ms: now_ms.saturating_add(delay),
                initial: Some(InitialDelay {
                    delay_ms: delay,
                    remaining_ms: (rebalance_timeout - delay).max(0),
                    new_member_added: false,
                }),
            }
        } else {
            JoinBarrier {
                deadline_ms: now_ms.saturating_add(rebalance_timeout),
                initial: None,
            }
        });
        self.transition(GroupState::PreparingRebalance, now_ms);
    }

    /// Completes the join barrier when every member has rejoined (not during the initial
    /// delay) or its deadline has passed; the initial delay is extended while members arrive.
    pub(crate) fn maybe_complete_join(&mut self, now_ms: i64, fx: &mut Effects) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.pending_members.is_empty()
            && self.members.values().all(|m| m.awaiting_join.is_some());
        let barrier = self
            .join_barrier
            .as_mut()
            .expect("a PreparingRebalance group has a join barrier");
        let expired = now_ms >= barrier.deadline_ms;
        match barrier.initial.as_mut() {
            Some(_) if !expired => return,
            Some(initial) if initial.new_member_added && initial.remaining_ms > 0 => {
                let delay = initial.delay_ms.min(initial.remaining_ms);
                initial.remaining_ms = (initial.remaining_ms - delay).max(0);
                initial.new_member_added = false;
                barrier.deadline_ms = now_ms.saturating_add(delay);
                if delay > 0 {
                    return;
                }
            }
            Some(_) => {}
            None if !(all_joined || expired) => return,
            None => {}
        }
        self.complete_join(now_ms, fx);
    }

    /// Kafka's `onCompleteJoin`: drops dynamic members that did not rejoin, starts the next
    /// generation and answers every waiting JoinGroup (the leader gets all members).
    fn complete_join(&mut self, now_ms: i64, fx: &mut Effects) {
        let not_rejoined: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in not_rejoined {
            self.drop_member(&id, fx);
        }
        if !self.elect_joined_leader() && !self.members.is_empty() {
            // Only static members that have not rejoined are left: wait for their session
            // timeouts, one more rebalance timeout at a time.
            self.join_barrier = Some(JoinBarrier {
                deadline_ms: now_ms.saturating_add(self.rebalance_timeout_ms()),
                initial: None,
            });
            return;
        }
        self.join_barrier = None;
        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.subscribed_topics = None;
            self.transition(GroupState::Empty, now_ms);
            fx.records.push(self.metadata_record());
            return;
        }
        self.protocol_name = Some(self.select_protocol());
        self.subscribed_topics = self.compute_subscribed_topics();
        self.transition(GroupState::CompletingRebalance, now_ms);
        let leader = self.leader_id.clone().unwrap_or_default();
        let all = self.joined_members();
        let (generation, protocol_type, protocol_name) = (
            self.generation_id,
            self.protocol_type.clone(),
            self.protocol_name.clone(),
        );
        for m in self.members.values_mut() {
            if let Some(t) = m.awaiting_join.take() {
                let is_leader = m.member_id == leader;
                fx.replies.push(Reply::Join(
                    t,
                    JoinResult {
                        error: None,
                        generation_id: generation,
                        protocol_type: protocol_type.clone(),
                        protocol_name: protocol_name.clone(),
                        leader_id: leader.clone(),
                        member_id: m.member_id.clone(),
                        members: if is_leader { all.clone() } else { Vec::new() },
                        skip_assignment: false,
                    },
                ));
            }
            m.touch(now_ms);
        }
        self.pending_sync = self.members.keys().cloned().collect();
        self.sync_deadline_ms = Some(now_ms.saturating_add(self.rebalance_timeout_ms()));
    }

    /// Keeps the leader if it rejoined, else picks a member that did; false if none did.
    fn elect_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader_id.clone() else {
            return false;
        };
        if self
            .members
            .get(&leader)
            .is_some_and(|m| m.awaiting_join.is_some())
        {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join.is_some()) {
            Some(m) => {
                self.leader_id = Some(m.member_id.clone());
                true
            }
            None => false,
        }
    }

    /// Removes a member without reacting to it; its waiting requests get UNKNOWN_MEMBER_ID.
    fn drop_member(&mut self, member_id: &str, fx: &mut Effects) {
        let Some(member) = self.members.shift_remove(member_id) else {
            return;
        };
        if let Some(t) = member.awaiting_join {
            fx.replies.push(Reply::Join(
                t,
                JoinResult::error("", ErrorCode::UnknownMemberId),
            ));
        }
        if let Some(t) = member.awaiting_sync {
            fx.replies.push(Reply::Sync(
                t,
                SyncResult::error(ErrorCode::UnknownMemberId),
            ));
        }
        if let Some(instance) = &member.group_instance_id {
            if self
                .static_members
                .get(instance)
                .is_some_and(|id| id == member_id)
            {
                self.static_members.remove(instance);
            }
        }
        self.pending_sync.remove(member_id);
        if self.is_leader(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
    }

    /// Kafka's `removeMemberAndUpdateGroup`: a member left or expired.
    pub(crate) fn remove_member(
        &mut self,
        member_id: &str,
        cfg: &GroupConfig,
        now_ms: i64,
        fx: &mut Effects,
    ) {
        self.drop_member(member_id, fx);
        match self.state {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => self.rebalance(cfg, now_ms, fx),
            GroupState::PreparingRebalance => self.maybe_complete_join(now_ms, fx),
        }
    }

    /// SyncGroup: followers wait for the leader; the leader's assignment is stored and
    /// handed to every member, and the group becomes Stable.
    pub fn sync(
        &mut self,
        req: &SyncRequest,
        now_ms: i64,
        ticket: Ticket,
        fx: &mut Effects,
    ) -> Outcome<SyncResult> {
        let fail = |e| Outcome::Done(SyncResult::error(e));
        if self.state == GroupState::Dead {
            return fail(ErrorCode::CoordinatorNotAvailable);
        }
        if let Err(e) = self.validate_member(
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id,
        ) {
            return fail(e);
        }
        let type_differs = req.protocol_type.is_some() && req.protocol_type != self.protocol_type;
        let name_differs = req.protocol_name.is_some() && req.protocol_name != self.protocol_name;
        if type_differs || name_differs {
            return fail(ErrorCode::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => fail(ErrorCode::UnknownMemberId),
            GroupState::PreparingRebalance => fail(ErrorCode::RebalanceInProgress),
            GroupState::Stable => {
                let member = self
                    .members
                    .get_mut(&req.member_id)
                    .expect("validated member");
                member.touch(now_ms);
                let assignment = member.assignment.clone();
                self.synced(&req.member_id);
                Outcome::Done(self.sync_ok(assignment))
            }
            GroupState::CompletingRebalance => {
                let member = self
                    .members
                    .get_mut(&req.member_id)
                    .expect("validated member");
                member.touch(now_ms);
                if let Some(old) = member.awaiting_sync.replace(ticket) {
                    fx.replies.push(Reply::Sync(
                        old,
                        SyncResult::error(ErrorCode::RebalanceInProgress),
                    ));
                }
                self.synced(&req.member_id);
                if self.is_leader(&req.member_id) {
                    self.complete_sync(&req.assignments, now_ms, fx);
                }
                Outcome::Pending(ticket)
            }
        }
    }

    fn synced(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline_ms = None;
        }
    }

    fn sync_ok(&self, assignment: Bytes) -> SyncResult {
        SyncResult {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            assignment,
        }
    }

    fn complete_sync(&mut self, assignments: &[(String, Bytes)], now_ms: i64, fx: &mut Effects) {
        let by_member: HashMap<&str, &Bytes> =
            assignments.iter().map(|(id, a)| (id.as_str(), a)).collect();
        for m in self.members.values_mut() {
            m.assignment = by_member
                .get(m.member_id.as_str())
                .map(|a| (*a).clone())
                .unwrap_or_default();
        }
        self.transition(GroupState::Stable, now_ms);
        fx.records.push(self.metadata_record());
        let waiting: Vec<(Ticket, Bytes)> = self
            .members
            .values_mut()
            .filter_map(|m| m.awaiting_sync.take().map(|t| (t, m.assignment.clone())))
            .collect();
        for (t, assignment) in waiting {
            fx.replies.push(Reply::Sync(t, self.sync_ok(assignment)));
        }
    }

    /// Heartbeat: keeps the session alive; REBALANCE_IN_PROGRESS tells the member to rejoin.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation_id: i32,
        now_ms: i64,
    ) -> Result<(), ErrorCode> {
        if self.state == GroupState::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        self.validate_member(member_id, instance_id, generation_id)?;
        let state = self.state;
        let member = self.members.get_mut(member_id).expect("validated member");
        match state {
            GroupState::Empty | GroupState::Dead => Err(ErrorCode::UnknownMemberId),
            GroupState::PreparingRebalance => {
                member.touch(now_ms);
                Err(ErrorCode::RebalanceInProgress)
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                member.touch(now_ms);
                Ok(())
            }
        }
    }

    /// Keeps a member alive on its behalf (an offset commit counts as a heartbeat).
    pub(crate) fn touch_member(&mut self, member_id: &str, now_ms: i64) {
        if let Some(m) = self.members.get_mut(member_id) {
            m.touch(now_ms);
        }
    }

    /// One member of a LeaveGroup request; returns the member id that left. A static member
    /// may leave by instance id alone (LeaveGroup v3+, KIP-345).
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        cfg: &GroupConfig,
        now_ms: i64,
        fx: &mut Effects,
    ) -> Result<String, ErrorCode> {
        if self.state == GroupState::Dead {
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        let id = if member_id.is_empty() {
            instance_id
                .and_then(|i| self.static_members.get(i).cloned())
                .ok_or(ErrorCode::UnknownMemberId)?
        } else if self.is_fenced(member_id, instance_id) {
            return Err(ErrorCode::FencedInstanceId);
        } else {
            member_id.to_owned()
        };
        if self.pending_members.remove(&id).is_some() {
            self.maybe_complete_join(now_ms, fx);
            return Ok(id);
        }
        if !self.members.contains_key(&id) {
            return Err(ErrorCode::UnknownMemberId);
        }
        self.remove_member(&id, cfg, now_ms, fx);
        Ok(id)
    }

    /// Expires pending member ids, sessions, and the join and sync barriers due at `now_ms`.
    pub fn tick(&mut self, cfg: &GroupConfig, now_ms: i64, fx: &mut Effects) {
        let before = self.pending_members.len();
        self.pending_members
            .retain(|_, deadline| *deadline > now_ms);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_expired(now_ms))
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.group_id, member = %id, "session timeout: removing member");
            self.remove_member(&id, cfg, now_ms, fx);
        }
        if self.pending_members.len() != before {
            self.maybe_complete_join(now_ms, fx);
        }
        self.maybe_complete_join(now_ms, fx);
        let sync_expired = self.sync_deadline_ms.is_some_and(|d| now_ms >= d);
        if sync_expired
            && matches!(
                self.state,
                GroupState::CompletingRebalance | GroupState::Stable
            )
        {
            let late: Vec<String> = self.pending_sync.drain().collect();
            for id in &late {
                tracing::info!(group = %self.group_id, member = %id, "no SyncGroup within the rebalance timeout: removing member");
                self.drop_member(id, fx);
            }
            self.sync_deadline_ms = None;
            if !late.is_empty() {
                self.rebalance(cfg, now_ms, fx);
            }
        }
    }

    /// The earliest time at which `tick` has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let sessions = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.awaiting_sync.is_none())
            .map(|m| m.heartbeat_deadline_ms);
        let join = (self.state == GroupState::PreparingRebalance)
            .then(|| self.join_barrier.as_ref().map(|b| b.deadline_ms))
            .flatten();
        let sync = self
            .sync_deadline_ms
            .filter(|_| !self.pending_sync.is_empty());
        sessions
            .chain(self.pending_members.values().copied())
            .chain(join)
            .chain(sync)
            .min()
    }

    /// Answers every waiting request with `error` (the coordinator is shutting down).
    pub fn fail_waiting(&mut self, error: ErrorCode, fx: &mut Effects) {
        for m in self.members.values_mut() {
            if let Some(t) = m.awaiting_join.take() {
                fx.replies
                    .push(Reply::Join(t, JoinResult::error(&m.member_id, error)));
            }
            if let Some(t) = m.awaiting_sync.take() {
                fx.replies.push(Reply::Sync(t, SyncResult::error(error)));
            }
        }
    }

    /// Marks the group Dead (deleted, or expired with nothing left).
    pub(crate) fn mark_dead(&mut self, now_ms: i64) {
        self.transition(GroupState::Dead, now_ms);
    }
}
