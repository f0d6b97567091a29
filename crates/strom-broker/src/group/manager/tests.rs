//! The classic group protocol driven without sockets, with the clock in the test's hands:
//! every state transition and every error code the coordinator returns.

use std::collections::HashMap;

use bytes::Bytes;
use strom_protocol::ErrorCode;

use super::*;
use crate::group::state::{Protocol, Reply};
use crate::group::subscription::encode_subscription;

const SESSION: i32 = 10_000;
const REBALANCE: i32 = 30_000;

fn config() -> GroupConfig {
    GroupConfig {
        initial_rebalance_delay_ms: 0,
        min_session_timeout_ms: 1_000,
        max_session_timeout_ms: 60_000,
        max_size: 100,
        offsets_retention_ms: 100_000,
        offset_metadata_max_bytes: 64,
    }
}

fn range(topics: &[&str]) -> Vec<Protocol> {
    vec![Protocol {
        name: "range".into(),
        metadata: encode_subscription(topics, b""),
    }]
}

fn join_request(group: &str, member: &str) -> JoinRequest {
    JoinRequest {
        group_id: group.into(),
        member_id: member.into(),
        group_instance_id: None,
        protocol_type: "consumer".into(),
        protocols: range(&["t"]),
        session_timeout_ms: SESSION,
        rebalance_timeout_ms: REBALANCE,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        require_known_member_id: true,
        supports_skip_assignment: false,
    }
}

fn sync_request(group: &str, member: &str, generation: i32) -> SyncRequest {
    SyncRequest {
        group_id: group.into(),
        generation_id: generation,
        member_id: member.into(),
        group_instance_id: None,
        protocol_type: None,
        protocol_name: None,
        assignments: Vec::new(),
    }
}

/// A coordinator with a test clock; replies to waiting requests are collected by ticket.
struct Harness {
    m: GroupManager,
    now: i64,
    joins: HashMap<Ticket, JoinResult>,
    syncs: HashMap<Ticket, SyncResult>,
    records: Vec<GroupRecord>,
}

impl Harness {
    fn new(config: GroupConfig) -> Harness {
        let mut n = 0;
        Harness {
            m: GroupManager::new(
                config,
                Box::new(move || {
                    n += 1;
                    format!("uuid{n}")
                }),
            ),
            now: 1_000_000,
            joins: HashMap::new(),
            syncs: HashMap::new(),
            records: Vec::new(),
        }
    }

    fn absorb(&mut self, fx: Effects) {
        for reply in fx.replies {
            match reply {
                Reply::Join(t, r) => assert!(
                    self.joins.insert(t, r).is_none(),
                    "ticket {t} answered twice"
                ),
                Reply::Sync(t, r) => assert!(
                    self.syncs.insert(t, r).is_none(),
                    "ticket {t} answered twice"
                ),
            }
        }
        self.records.extend(fx.records);
    }

    fn join(&mut self, req: &JoinRequest) -> Outcome<JoinResult> {
        let mut fx = Effects::default();
        let out = self.m.join(req, self.now, &mut fx);
        self.absorb(fx);
        out
    }

    /// The answer to a join: immediate, or the reply to its ticket (which must exist).
    fn joined(&mut self, out: Outcome<JoinResult>) -> JoinResult {
        match out {
            Outcome::Done(r) => r,
            Outcome::Pending(t) => self.joins.remove(&t).expect("join answered"),
        }
    }

    fn join_now(&mut self, req: &JoinRequest) -> JoinResult {
        let out = self.join(req);
        self.joined(out)
    }

    fn sync_now(&mut self, req: &SyncRequest) -> Option<SyncResult> {
        let out = self.sync(req);
        self.synced(out)
    }

    fn pending_join(&mut self, out: &Outcome<JoinResult>) -> Option<JoinResult> {
        match out {
            Outcome::Done(r) => panic!("expected a waiting join, got {r:?}"),
            Outcome::Pending(t) => self.joins.remove(t),
        }
    }

    fn sync(&mut self, req: &SyncRequest) -> Outcome<SyncResult> {
        let mut fx = Effects::default();
        let out = self.m.sync(req, self.now, &mut fx);
        self.absorb(fx);
        out
    }

    fn synced(&mut self, out: Outcome<SyncResult>) -> Option<SyncResult> {
        match out {
            Outcome::Done(r) => Some(r),
            Outcome::Pending(t) => self.syncs.remove(&t),
        }
    }

    fn heartbeat(&mut self, group: &str, member: &str, generation: i32) -> Result<(), ErrorCode> {
        self.m.heartbeat(group, member, None, generation, self.now)
    }

    fn leave(
        &mut self,
        group: &str,
        members: &[(&str, Option<&str>)],
    ) -> Result<Vec<Result<String, ErrorCode>>, ErrorCode> {
        let members: Vec<(String, Option<String>)> = members
            .iter()
            .map(|(m, i)| ((*m).to_owned(), i.map(str::to_owned)))
            .collect();
        let mut fx = Effects::default();
        let out = self.m.leave(group, &members, self.now, &mut fx);
        self.absorb(fx);
        out
    }

    fn advance(&mut self, ms: i64) {
        self.now += ms;
        let mut fx = Effects::default();
        self.m.tick(self.now, &mut fx);
        self.absorb(fx);
    }

    fn state(&self, group: &str) -> Option<GroupState> {
        self.m.group(group).map(Group::state)
    }

    fn generation(&self, group: &str) -> i32 {
        self.m.group(group).map_or(-1, Group::generation_id)
    }

    /// Gets a member id through MEMBER_ID_REQUIRED and sends the second join.
    fn join_new(&mut self, req: &JoinRequest) -> (String, Outcome<JoinResult>) {
        let first = self.join(req);
        let Outcome::Done(r) = first else {
            panic!("a first join must be answered at once");
        };
        assert_eq!(r.error, Some(ErrorCode::MemberIdRequired));
        assert!(r.member_id.starts_with("client-uuid"), "{}", r.member_id);
        let mut again = req.clone();
        again.member_id = r.member_id.clone();
        let out = self.join(&again);
        (r.member_id, out)
    }

    /// A Stable group of `n` dynamic members, each assigned its own id as bytes. Returns
    /// the member ids, leader first.
    fn stable_group(&mut self, group: &str, n: usize) -> Vec<String> {
        self.stable_group_from(&join_request(group, ""), n)
    }

    fn stable_group_from(&mut self, base: &JoinRequest, n: usize) -> Vec<String> {
        let group = base.group_id.as_str();
        let mut ids = Vec::new();
        let mut waiting = Vec::new();
        for _ in 0..n {
            let (id, out) = self.join_new(base);
            ids.push(id);
            waiting.push(out);
        }
        // The first member completed generation 1 alone (no initial delay); the others
        // started a rebalance that everyone must join.
        let leader = ids[0].clone();
        let first = self.joined(waiting.remove(0));
        assert_eq!(first.error, None);
        if n > 1 {
            let mut again = base.clone();
            again.member_id = leader.clone();
            let out = self.join(&again);
            waiting.insert(0, out);
            let results: Vec<JoinResult> = waiting.into_iter().map(|o| self.joined(o)).collect();
            for r in &results {
                assert_eq!((r.error, r.generation_id), (None, 2), "{r:?}");
            }
        }
        let generation = self.generation(group);
        let assignments = ids
            .iter()
            .map(|id| (id.clone(), Bytes::from(id.clone())))
            .collect();
        let mut waiting_syncs = Vec::new();
        for id in ids.iter().skip(1) {
            waiting_syncs.push(self.sync(&sync_request(group, id, generation)));
        }
        let mut leader_sync = sync_request(group, &leader, generation);
        leader_sync.assignments = assignments;
        waiting_syncs.insert(0, self.sync(&leader_sync));
        for (id, out) in ids.iter().zip(waiting_syncs) {
            let r = self
                .synced(out)
                .expect("sync answered once the leader synced");
            assert_eq!((r.error, r.assignment), (None, Bytes::from(id.clone())));
        }
        assert_eq!(self.state(group), Some(GroupState::Stable));
        ids
    }
}

#[test]
fn first_join_gets_member_id_required_then_a_one_member_generation() {
    let mut h = Harness::new(config());
    let (id, out) = h.join_new(&join_request("g", ""));
    let r = h.joined(out);
    assert_eq!(r.error, None);
    assert_eq!(
        (r.generation_id, r.leader_id.as_str(), r.member_id.as_str()),
        (1, id.as_str(), id.as_str())
    );
    assert_eq!(r.protocol_name.as_deref(), Some("range"));
    assert_eq!(r.protocol_type.as_deref(), Some("consumer"));
    assert_eq!(
        r.members.len(),
        1,
        "the leader gets every member's metadata"
    );
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    let mut sync = sync_request("g", &id, 1);
    sync.assignments = vec![(id.clone(), Bytes::from_static(b"a0"))];
    let out = h.sync(&sync);
    assert_eq!(
        h.synced(out).map(|r| r.assignment),
        Some(Bytes::from_static(b"a0"))
    );
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    let stored = h.records.iter().any(|r| matches!(r, GroupRecord::Group { value: Some(v), .. } if v.generation_id == 1 && v.members.len() == 1));
    assert!(
        stored,
        "the generation is written after the leader's sync: {:?}",
        h.records
    );
}

#[test]
fn old_join_versions_are_admitted_without_member_id_required() {
    let mut h = Harness::new(config());
    let mut req = join_request("g", "");
    req.require_known_member_id = false;
    let out = h.join(&req);
    let r = h.pending_join(&out).expect("barrier completed at once");
    assert_eq!((r.error, r.generation_id), (None, 1));
    assert!(r.member_id.starts_with("client-uuid"));
}

#[test]
fn request_checks_before_the_group() {
    let mut h = Harness::new(config());
    let code = |h: &mut Harness, req: &JoinRequest| h.join_now(req).error;
    let mut req = join_request("", "");
    assert_eq!(code(&mut h, &req), Some(ErrorCode::InvalidGroupId));
    req.group_id = "g".into();
    req.session_timeout_ms = 999;
    assert_eq!(code(&mut h, &req), Some(ErrorCode::InvalidSessionTimeout));
    req.session_timeout_ms = 60_001;
    assert_eq!(code(&mut h, &req), Some(ErrorCode::InvalidSessionTimeout));
    req.session_timeout_ms = SESSION;
    req.member_id = "made-up".into();
    assert_eq!(code(&mut h, &req), Some(ErrorCode::UnknownMemberId));
    // A first member without protocol type or protocols is refused, and leaves no group.
    let mut bad = join_request("g", "");
    bad.protocol_type = String::new();
    assert_eq!(
        code(&mut h, &bad),
        Some(ErrorCode::InconsistentGroupProtocol)
    );
    bad.protocol_type = "consumer".into();
    bad.protocols.clear();
    assert_eq!(
        code(&mut h, &bad),
        Some(ErrorCode::InconsistentGroupProtocol)
    );
    assert!(h.m.list(&[], &[]).is_empty());
}

#[test]
fn inconsistent_protocols_of_a_second_member_are_refused() {
    let mut h = Harness::new(config());
    h.stable_group("g", 1);
    let mut other_type = join_request("g", "");
    other_type.protocol_type = "connect".into();
    assert_eq!(
        h.join_now(&other_type).error,
        Some(ErrorCode::InconsistentGroupProtocol)
    );
    let mut no_common = join_request("g", "");
    no_common.protocols = vec![Protocol {
        name: "sticky".into(),
        metadata: Bytes::new(),
    }];
    assert_eq!(
        h.join_now(&no_common).error,
        Some(ErrorCode::InconsistentGroupProtocol)
    );
    assert_eq!(h.state("g"), Some(GroupState::Stable));
}

#[test]
fn initial_rebalance_delay_waits_and_extends_while_members_arrive() {
    let mut h = Harness::new(GroupConfig {
        initial_rebalance_delay_ms: 3_000,
        ..config()
    });
    let (a, out_a) = h.join_new(&join_request("g", ""));
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    assert!(h.pending_join(&out_a).is_none());
    h.advance(2_000);
    let (b, out_b) = h.join_new(&join_request("g", ""));
    assert!(h.pending_join(&out_b).is_none());
    h.advance(1_000);
    // The delay ran out but a member arrived during it: one more delay.
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    assert!(h.pending_join(&out_a).is_none());
    h.advance(2_999);
    assert!(h.pending_join(&out_a).is_none());
    h.advance(1);
    let ra = h.pending_join(&out_a).expect("leader answered");
    let rb = h.pending_join(&out_b).expect("follower answered");
    assert_eq!((ra.generation_id, rb.generation_id), (1, 1));
    assert_eq!(
        (ra.leader_id.clone(), rb.leader_id.clone()),
        (a.clone(), a.clone())
    );
    assert_eq!(ra.members.len(), 2);
    assert!(rb.members.is_empty(), "followers do not see the members");
    assert_eq!(rb.member_id, b);
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
}

#[test]
fn a_changed_subscription_rebalances_and_the_barrier_completes_when_all_rejoin() {
    let mut h = Harness::new(config());
    let ids = h.stable_group("g", 2);
    let (a, b) = (&ids[0], &ids[1]);
    // A follower rejoining with the same protocols gets the current generation back.
    let same = h.join(&join_request("g", b));
    let r = h.joined(same);
    assert_eq!((r.error, r.generation_id, r.members.len()), (None, 2, 0));
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    // With a new subscription it starts a rebalance.
    let mut changed = join_request("g", b);
    changed.protocols = range(&["t", "u"]);
    let out_b = h.join(&changed);
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(h.heartbeat("g", a, 2), Err(ErrorCode::RebalanceInProgress));
    assert_eq!(
        h.sync_now(&sync_request("g", a, 2)).map(|r| r.error),
        Some(Some(ErrorCode::RebalanceInProgress))
    );
    // Commits of the current generation are still accepted while rebalancing.
    let auth = CommitAuth {
        generation_id: 2,
        member_id: a.clone(),
        group_instance_id: None,
        version_9_or_later: false,
    };
    assert_eq!(h.m.validate_commit("g", &auth, h.now), Ok(()));
    assert!(h.pending_join(&out_b).is_none());
    let out_a = h.join(&join_request("g", a));
    let ra = h
        .pending_join(&out_a)
        .expect("everyone rejoined: done without waiting");
    let rb = h.pending_join(&out_b).expect("answered");
    assert_eq!((ra.generation_id, rb.generation_id), (3, 3));
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    // In CompletingRebalance, the old generation is illegal and the new one heartbeats.
    assert_eq!(h.heartbeat("g", a, 2), Err(ErrorCode::IllegalGeneration));
    assert_eq!(h.heartbeat("g", a, 3), Ok(()));
    let auth3 = CommitAuth {
        generation_id: 3,
        ..auth
    };
    assert_eq!(
        h.m.validate_commit("g", &auth3, h.now),
        Err(ErrorCode::RebalanceInProgress)
    );
    // A member that lost its JoinGroup response asks again and gets the same answer.
    let again = h.join(&join_request("g", a));
    let r = h.joined(again);
    assert_eq!(
        (r.generation_id, r.members.len(), r.leader_id.as_str()),
        (3, 2, a.as_str())
    );
}

#[test]
fn the_leader_rejoining_a_stable_group_rebalances_and_absent_members_are_dropped() {
    let mut h = Harness::new(config());
    // Sessions outlive the rebalance timeout here, so the barrier's own timeout decides.
    let long_session = JoinRequest {
        session_timeout_ms: 60_000,
        ..join_request("g", "")
    };
    let ids = h.stable_group_from(&long_session, 3);
    let rejoin = |id: &str| JoinRequest {
        member_id: id.to_owned(),
        ..long_session.clone()
    };
    let out = h.join(&rejoin(&ids[0]));
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    let out_b = h.join(&rejoin(&ids[1]));
    h.advance(i64::from(REBALANCE) - 1);
    assert!(h.pending_join(&out).is_none());
    h.advance(1);
    let r = h
        .pending_join(&out)
        .expect("rebalance timeout completes the barrier");
    assert_eq!((r.generation_id, r.members.len()), (3, 2));
    assert!(h.pending_join(&out_b).is_some());
    assert_eq!(
        h.heartbeat("g", &ids[2], 2),
        Err(ErrorCode::UnknownMemberId)
    );
}

#[test]
fn a_session_expiring_during_the_join_barrier_completes_it() {
    let mut h = Harness::new(config());
    let ids = h.stable_group("g", 3);
    let out = h.join(&join_request("g", &ids[0]));
    let out_b = h.join(&join_request("g", &ids[1]));
    h.advance(i64::from(SESSION) - 1);
    assert!(h.pending_join(&out).is_none());
    h.advance(1);
    let r = h
        .pending_join(&out)
        .expect("the silent member expired; everyone else has joined");
    assert_eq!((r.generation_id, r.members.len()), (3, 2));
    assert!(h.pending_join(&out_b).is_some());
}

#[test]
fn heartbeat_errors() {
    let mut h = Harness::new(config());
    assert_eq!(h.heartbeat("nope", "m", 1), Err(ErrorCode::UnknownMemberId));
    let ids = h.stable_group("g", 1);
    assert_eq!(
        h.heartbeat("g", "stranger", 1),
        Err(ErrorCode::UnknownMemberId)
    );
    assert_eq!(
        h.heartbeat("g", &ids[0], 0),
        Err(ErrorCode::IllegalGeneration)
    );
    assert_eq!(h.heartbeat("g", &ids[0], 1), Ok(()));
}

#[test]
fn session_timeout_evicts_a_silent_member_and_the_rest_rebalance() {
    let mut h = Harness::new(config());
    let ids = h.stable_group("g", 2);
    let (a, b) = (&ids[0], &ids[1]);
    assert_eq!(h.m.next_deadline(), Some(h.now + i64::from(SESSION)));
    for _ in 0..2 {
        h.advance(4_000);
        assert_eq!(h.heartbeat("g", a, 2), Ok(()), "a keeps heartbeating");
    }
    h.advance(1_999);
    assert!(h.m.group("g").and_then(|g| g.member(b)).is_some());
    h.advance(1);
    // b was silent for the 10 s session timeout.
    assert!(h.m.group("g").and_then(|g| g.member(b)).is_none());
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    assert_eq!(h.heartbeat("g", a, 2), Err(ErrorCode::RebalanceInProgress));
    let out = h.join(&join_request("g", a));
    let r = h.pending_join(&out).expect("the only member rejoined");
    assert_eq!((r.generation_id, r.members.len()), (3, 1));
}

#[test]
fn leave_group_single_and_batched() {
    let mut h = Harness::new(config());
    assert_eq!(
        h.leave("nope", &[("m", None)]),
        Ok(vec![Err(ErrorCode::UnknownMemberId)])
    );
    let ids = h.stable_group("g", 2);
    let results = h.leave(
        "g",
        &[
            (&ids[1], None),
            ("stranger", None),
            ("", Some("no-such-instance")),
        ],
    );
    assert_eq!(
        results,
        Ok(vec![
            Ok(ids[1].clone()),
            Err(ErrorCode::UnknownMemberId),
            Err(ErrorCode::UnknownMemberId)
        ])
    );
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    let before = h.records.len();
    assert_eq!(
        h.leave("g", &[(&ids[0], None)]),
        Ok(vec![Ok(ids[0].clone())])
    );
    // The last member gone: the barrier completes at once into an Empty generation.
    assert_eq!(h.state("g"), Some(GroupState::Empty));
    assert_eq!(h.generation("g"), 3);
    assert!(
        matches!(&h.records[before..], [GroupRecord::Group { value: Some(v), .. }] if v.members.is_empty())
    );
    assert_eq!(
        h.m.list(&[], &[]).len(),
        1,
        "an Empty group is still listed"
    );
}

#[test]
fn a_member_leaving_during_completing_rebalance_voids_waiting_syncs() {
    let mut h = Harness::new(config());
    let ids = h.stable_group("g", 2);
    let out_a = h.join(&join_request("g", &ids[0]));
    let out_b = h.join(&join_request("g", &ids[1]));
    let _ = (h.pending_join(&out_a), h.pending_join(&out_b));
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    let follower_sync = h.sync(&sync_request("g", &ids[1], 3));
    assert!(
        h.synced(follower_sync.clone()).is_none(),
        "waits for the leader"
    );
    h.leave("g", &[(&ids[0], None)]).expect("group exists");
    // The follower's waiting sync was voided by the new rebalance.
    let Outcome::Pending(t) = follower_sync else {
        panic!("pending")
    };
    let r = h.syncs.remove(&t).expect("answered");
    assert_eq!(r.error, Some(ErrorCode::RebalanceInProgress));
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn sync_errors_and_stable_resync() {
    let mut h = Harness::new(config());
    let err = |h: &mut Harness, req: &SyncRequest| h.sync_now(req).and_then(|r| r.error);
    assert_eq!(
        err(&mut h, &sync_request("nope", "m", 1)),
        Some(ErrorCode::UnknownMemberId)
    );
    let ids = h.stable_group("g", 2);
    assert_eq!(
        err(&mut h, &sync_request("g", "stranger", 2)),
        Some(ErrorCode::UnknownMemberId)
    );
    assert_eq!(
        err(&mut h, &sync_request("g", &ids[1], 1)),
        Some(ErrorCode::IllegalGeneration)
    );
    let mut wrong_name = sync_request("g", &ids[1], 2);
    wrong_name.protocol_name = Some("roundrobin".into());
    assert_eq!(
        err(&mut h, &wrong_name),
        Some(ErrorCode::InconsistentGroupProtocol)
    );
    let mut wrong_type = sync_request("g", &ids[1], 2);
    wrong_type.protocol_type = Some("connect".into());
    assert_eq!(
        err(&mut h, &wrong_type),
        Some(ErrorCode::InconsistentGroupProtocol)
    );
    // A Stable group answers with the stored assignment at once.
    let mut ok = sync_request("g", &ids[1], 2);
    ok.protocol_type = Some("consumer".into());
    ok.protocol_name = Some("range".into());
    let r = h.sync_now(&ok).expect("immediate");
    assert_eq!(
        (r.error, r.assignment, r.protocol_name.as_deref()),
        (None, Bytes::from(ids[1].clone()), Some("range"))
    );
}

#[test]
fn the_leader_missing_a_member_in_its_assignment_gives_it_nothing() {
    let mut h = Harness::new(config());
    let (a, out) = h.join_new(&join_request("g", ""));
    h.joined(out);
    let out = h.sync(&sync_request("g", &a, 1));
    assert_eq!(h.synced(out).map(|r| r.assignment), Some(Bytes::new()));
}

#[test]
fn a_leader_that_never_syncs_is_removed_after_the_rebalance_timeout() {
    let mut h = Harness::new(config());
    let ids = h.stable_group("g", 2);
    let out_a = h.join(&join_request("g", &ids[0]));
    let out_b = h.join(&join_request("g", &ids[1]));
    let _ = (h.pending_join(&out_a), h.pending_join(&out_b));
    let follower = h.sync(&sync_request("g", &ids[1], 3));
    // Members waiting in SyncGroup are kept alive; the leader's session keeps it too,
    // until the sync deadline.
    h.advance(5_000);
    assert_eq!(h.heartbeat("g", &ids[0], 3), Ok(()));
    h.advance(i64::from(REBALANCE) - 5_000);
    assert!(
        h.m.group("g").and_then(|g| g.member(&ids[0])).is_none(),
        "leader removed"
    );
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    let Outcome::Pending(t) = follower else {
        panic!("pending")
    };
    assert_eq!(
        h.syncs.remove(&t).map(|r| r.error),
        Some(Some(ErrorCode::RebalanceInProgress))
    );
}

#[test]
fn group_max_size_is_enforced_when_joining() {
    let mut h = Harness::new(GroupConfig {
        max_size: 2,
        ..config()
    });
    let ids = h.stable_group("g", 2);
    let r = h.join_now(&join_request("g", ""));
    assert_eq!(r.error, Some(ErrorCode::GroupMaxSizeReached));
    // While rebalancing, the first two members to join fill the group; a member that
    // rejoins too late is dropped (Kafka's acceptJoiningMember).
    let out_a = h.join(&join_request("g", &ids[0]));
    let mut newcomer = join_request("g", "");
    newcomer.require_known_member_id = false;
    let out_new = h.join(&newcomer);
    assert_eq!(
        h.join_now(&join_request("g", &ids[1])).error,
        Some(ErrorCode::GroupMaxSizeReached)
    );
    let (ra, rn) = (h.pending_join(&out_a), h.pending_join(&out_new));
    assert_eq!(ra.map(|r| r.members.len()), Some(2));
    assert!(rn.is_some());
    assert!(h.m.group("g").and_then(|g| g.member(&ids[1])).is_none());
}

#[test]
fn a_retried_join_replaces_the_waiting_one() {
    let mut h = Harness::new(GroupConfig {
        initial_rebalance_delay_ms: 1_000,
        ..config()
    });
    let (a, first) = h.join_new(&join_request("g", ""));
    let second = h.join(&join_request("g", &a));
    let old = h
        .pending_join(&first)
        .expect("the replaced join is answered");
    assert_eq!(old.error, Some(ErrorCode::RebalanceInProgress));
    h.advance(1_000);
    assert_eq!(h.pending_join(&second).map(|r| r.error), Some(None));
}

#[test]
fn member_ids_handed_out_but_never_used_expire_after_the_session_timeout() {
    let mut h = Harness::new(config());
    let ids = h.stable_group("g", 1);
    // A newcomer gets an id but does not come back: the next barrier waits for it...
    let r = h.join_now(&join_request("g", ""));
    assert_eq!(r.error, Some(ErrorCode::MemberIdRequired));
    let out = h.join(&join_request("g", &ids[0]));
    assert!(h.pending_join(&out).is_none());
    // ...until its session timeout runs out.
    h.advance(i64::from(SESSION));
    let r = h
        .pending_join(&out)
        .expect("completed without the newcomer");
    assert_eq!((r.generation_id, r.members.len()), (2, 1));
}

fn static_join(group: &str, instance: &str, topics: &[&str]) -> JoinRequest {
    JoinRequest {
        group_instance_id: Some(instance.into()),
        protocols: range(topics),
        session_timeout_ms: 60_000,
        ..join_request(group, "")
    }
}

/// A Stable group of a static leader ("i1") and a static follower ("i2").
fn static_pair(h: &mut Harness) -> (String, String) {
    let out1 = h.join(&static_join("g", "i1", &["t"]));
    let r1 = h.joined(out1);
    assert!(
        r1.member_id.starts_with("i1-"),
        "static members skip MEMBER_ID_REQUIRED"
    );
    let out2 = h.join(&static_join("g", "i2", &["t"]));
    let mut leader_again = static_join("g", "i1", &["t"]);
    leader_again.member_id = r1.member_id.clone();
    let out1 = h.join(&leader_again);
    let (r1, r2) = (h.joined(out1), h.joined(out2));
    assert_eq!((r1.generation_id, r2.generation_id), (2, 2));
    let mut leader_sync = sync_request("g", &r1.member_id, 2);
    leader_sync.group_instance_id = Some("i1".into());
    leader_sync.assignments = vec![
        (r1.member_id.clone(), Bytes::from_static(b"p0")),
        (r2.member_id.clone(), Bytes::from_static(b"p1")),
    ];
    let follower = h.sync(&sync_request("g", &r2.member_id, 2));
    h.sync(&leader_sync);
    assert!(h.synced(follower).is_some());
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    (r1.member_id, r2.member_id)
}

#[test]
fn a_static_member_rejoining_with_a_new_id_replaces_the_old_without_rebalance() {
    let mut h = Harness::new(config());
    let (leader, old) = static_pair(&mut h);
    let records_before = h.records.len();
    let r = h.join_now(&static_join("g", "i2", &["t"]));
    assert_eq!(r.error, None);
    assert_ne!(r.member_id, old);
    assert_eq!(
        (r.generation_id, r.leader_id.as_str()),
        (2, leader.as_str())
    );
    assert_eq!(h.state("g"), Some(GroupState::Stable), "no rebalance");
    assert_eq!(
        h.records.len(),
        records_before + 1,
        "the new member id is stored"
    );
    // The old id is fenced everywhere; the new one gets the old assignment.
    assert_eq!(
        h.m.heartbeat("g", &old, Some("i2"), 2, h.now),
        Err(ErrorCode::FencedInstanceId)
    );
    let mut stale = join_request("g", &old);
    stale.group_instance_id = Some("i2".into());
    assert_eq!(h.join_now(&stale).error, Some(ErrorCode::FencedInstanceId));
    let mut sync = sync_request("g", &r.member_id, 2);
    sync.group_instance_id = Some("i2".into());
    assert_eq!(
        h.sync_now(&sync).map(|r| r.assignment),
        Some(Bytes::from_static(b"p1"))
    );
    let auth = CommitAuth {
        generation_id: 2,
        member_id: old.clone(),
        group_instance_id: Some("i2".into()),
        version_9_or_later: false,
    };
    assert_eq!(
        h.m.validate_commit("g", &auth, h.now),
        Err(ErrorCode::FencedInstanceId)
    );
    assert_eq!(
        h.leave("g", &[(&old, Some("i2"))]),
        Ok(vec![Err(ErrorCode::FencedInstanceId)])
    );
    assert_eq!(
        h.heartbeat("g", &leader, 2),
        Ok(()),
        "the rest of the group is undisturbed"
    );
    // A static member may leave by instance id alone (LeaveGroup v3+).
    assert_eq!(h.leave("g", &[("", Some("i2"))]), Ok(vec![Ok(r.member_id)]));
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn a_static_member_rejoining_with_new_topics_rebalances() {
    let mut h = Harness::new(config());
    let (_leader, _old) = static_pair(&mut h);
    let out = h.join(&static_join("g", "i2", &["t", "other"]));
    assert!(matches!(out, Outcome::Pending(_)));
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn a_static_leader_rejoining_is_told_to_skip_assignment_from_v9() {
    let mut h = Harness::new(config());
    let (leader, _) = static_pair(&mut h);
    let old_client = h.join_now(&static_join("g", "i1", &["t"]));
    assert_eq!(h.state("g"), Some(GroupState::Stable));
    assert_eq!(
        old_client.leader_id, leader,
        "before v9 the old leader id keeps it from assigning"
    );
    assert!(old_client.members.is_empty() && !old_client.skip_assignment);
    let mut v9 = static_join("g", "i1", &["t"]);
    v9.supports_skip_assignment = true;
    let new_client = h.join_now(&v9);
    assert_eq!(new_client.leader_id, new_client.member_id);
    assert!(new_client.skip_assignment);
    assert_eq!(new_client.members.len(), 2);
    assert_eq!(h.state("g"), Some(GroupState::Stable));
}

#[test]
fn a_static_member_that_does_not_rejoin_is_kept_until_its_session_expires() {
    let mut h = Harness::new(config());
    let (leader, follower) = static_pair(&mut h);
    let mut rejoin = static_join("g", "i1", &["t"]);
    rejoin.member_id = leader.clone();
    let out = h.join(&rejoin);
    h.advance(i64::from(REBALANCE));
    // Dynamic members would be gone now; the static follower stays in the new generation.
    let r = h.pending_join(&out).expect("completed");
    assert_eq!(r.members.len(), 2);
    assert!(h.m.group("g").and_then(|g| g.member(&follower)).is_some());
}

#[test]
fn a_static_member_joining_during_a_rebalance_replaces_the_old_id_in_the_barrier() {
    let mut h = Harness::new(config());
    let (leader, old) = static_pair(&mut h);
    let mut rejoin = static_join("g", "i1", &["t"]);
    rejoin.member_id = leader.clone();
    let out_leader = h.join(&rejoin);
    let mut old_rejoin = static_join("g", "i2", &["t"]);
    old_rejoin.member_id = old.clone();
    let out_old = h.join(&old_rejoin);
    let _ = (h.pending_join(&out_leader), h.pending_join(&out_old));
    assert_eq!(h.state("g"), Some(GroupState::CompletingRebalance));
    // The restarted instance rejoins with no id: the old id's pending requests are fenced.
    let follower_sync = h.sync(&sync_request("g", &old, 3));
    let out_new = h.join(&static_join("g", "i2", &["t"]));
    let Outcome::Pending(t) = follower_sync else {
        panic!("pending")
    };
    assert_eq!(
        h.syncs.remove(&t).map(|r| r.error),
        Some(Some(ErrorCode::FencedInstanceId))
    );
    assert_eq!(h.state("g"), Some(GroupState::PreparingRebalance));
    let out_leader = h.join(&rejoin);
    let r = h.pending_join(&out_new).expect("all joined");
    assert_eq!(r.generation_id, 4);
    assert!(h.pending_join(&out_leader).is_some());
}

fn offset(value: i64, now: i64) -> OffsetCommitValue {
    OffsetCommitValue {
        offset: value,
        leader_epoch: 1,
        metadata: String::new(),
        commit_timestamp_ms: now,
        expire_timestamp_ms: None,
    }
}

fn simple_auth() -> CommitAuth {
    CommitAuth {
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        version_9_or_later: false,
    }
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    (topic.to_owned(), partition)
}

#[test]
fn offset_commit_checks() {
    let mut h = Harness::new(config());
    let now = h.now;
    // A simple consumer may create a group by committing; a generation may not.
    assert_eq!(h.m.validate_commit("simple", &simple_auth(), now), Ok(()));
    let gen1 = CommitAuth {
        generation_id: 1,
        member_id: "m".into(),
        ..simple_auth()
    };
    assert_eq!(
        h.m.validate_commit("nope", &gen1, now),
        Err(ErrorCode::IllegalGeneration)
    );
    let v9 = CommitAuth {
        version_9_or_later: true,
        ..gen1.clone()
    };
    assert_eq!(
        h.m.validate_commit("nope", &v9, now),
        Err(ErrorCode::GroupIdNotFound)
    );
    assert_eq!(
        h.m.validate_commit("", &simple_auth(), now),
        Err(ErrorCode::InvalidGroupId)
    );
    h.m.apply_commit("simple", vec![(tp("t", 0), offset(5, now))], now);
    assert_eq!(h.state("simple"), Some(GroupState::Empty));
    let listing = h.m.list(&[], &[]);
    assert_eq!(
        listing[0].protocol_type, "",
        "a group that only stores offsets has no protocol type"
    );
    // Members of a live group.
    let ids = h.stable_group("g", 1);
    assert_eq!(
        h.m.validate_commit("g", &simple_auth(), now),
        Err(ErrorCode::UnknownMemberId)
    );
    let member = |generation| CommitAuth {
        generation_id: generation,
        member_id: ids[0].clone(),
        ..simple_auth()
    };
    assert_eq!(
        h.m.validate_commit("g", &member(0), now),
        Err(ErrorCode::IllegalGeneration)
    );
    assert_eq!(h.m.validate_commit("g", &member(1), now), Ok(()));
    // The commit counted as a heartbeat.
    h.advance(i64::from(SESSION) - 1);
    assert_eq!(h.m.validate_commit("g", &member(1), h.now), Ok(()));
    h.advance(i64::from(SESSION) - 1);
    assert_eq!(h.state("g"), Some(GroupState::Stable));
}

#[test]
fn offset_fetch_of_known_unknown_and_all_partitions() {
    let mut h = Harness::new(config());
    let now = h.now;
    h.m.apply_commit(
        "g",
        vec![(tp("t", 0), offset(5, now)), (tp("t", 1), offset(7, now))],
        now,
    );
    let some = h.m.fetch_offsets("g", Some(&[tp("t", 1), tp("t", 9)]));
    assert_eq!(some[0].1.as_ref().map(|v| v.offset), Some(7));
    assert_eq!(some[1].1, None);
    assert_eq!(h.m.fetch_offsets("g", None).len(), 2);
    assert!(h.m.fetch_offsets("nope", None).is_empty());
    assert_eq!(h.m.fetch_offsets("nope", Some(&[tp("t", 0)]))[0].1, None);
}

#[test]
fn list_and_describe_groups() {
    let mut h = Harness::new(config());
    let ids = h.stable_group("stable", 2);
    h.m.apply_commit("simple", vec![(tp("t", 0), offset(1, h.now))], h.now);
    let names = |l: Vec<GroupListing>| l.into_iter().map(|g| g.group_id).collect::<Vec<_>>();
    assert_eq!(names(h.m.list(&[], &[])), vec!["simple", "stable"]);
    assert_eq!(names(h.m.list(&[GroupState::Stable], &[])), vec!["stable"]);
    assert_eq!(
        names(h.m.list(&[GroupState::Empty, GroupState::Dead], &[])),
        vec!["simple"]
    );
    assert_eq!(
        names(h.m.list(&[], &["Classic".into()])),
        vec!["simple", "stable"]
    );
    assert!(h.m.list(&[], &["consumer".into()]).is_empty());
    let d = h.m.describe("stable");
    assert_eq!(
        (d.state, d.protocol_type.as_str(), d.protocol_name.as_str()),
        (GroupState::Stable, "consumer", "range")
    );
    assert_eq!(d.members.len(), 2);
    assert_eq!(d.members[1].assignment, Bytes::from(ids[1].clone()));
    assert!(!d.members[0].metadata.is_empty());
    h.join(&join_request("stable", &ids[0]));
    let d = h.m.describe("stable");
    assert_eq!(
        (d.state, d.protocol_name.as_str()),
        (GroupState::PreparingRebalance, "")
    );
    assert!(d
        .members
        .iter()
        .all(|m| m.assignment.is_empty() && m.metadata.is_empty()));
    assert_eq!(h.m.describe("nope").state, GroupState::Dead);
}

#[test]
fn delete_groups() {
    let mut h = Harness::new(config());
    assert_eq!(
        h.m.delete_group("nope", h.now, &mut Effects::default()),
        Err(ErrorCode::GroupIdNotFound)
    );
    let ids = h.stable_group("g", 1);
    let mut fx = Effects::default();
    assert_eq!(
        h.m.delete_group("g", h.now, &mut fx),
        Err(ErrorCode::NonEmptyGroup)
    );
    h.m.apply_commit("g", vec![(tp("t", 0), offset(1, h.now))], h.now);
    h.leave("g", &[(&ids[0], None)]).expect("exists");
    assert_eq!(h.m.delete_group("g", h.now, &mut fx), Ok(()));
    assert_eq!(h.state("g"), None);
    assert_eq!(
        fx.records,
        vec![
            GroupRecord::Offset {
                group_id: "g".into(),
                topic: "t".into(),
                partition: 0,
                value: None
            },
            GroupRecord::Group {
                group_id: "g".into(),
                value: None
            }
        ]
    );
}

#[test]
fn offset_delete_refuses_topics_the_group_consumes() {
    let mut h = Harness::new(config());
    let mut fx = Effects::default();
    assert_eq!(
        h.m.delete_offsets("nope", &[tp("t", 0)], &mut fx),
        Err(ErrorCode::GroupIdNotFound)
    );
    h.stable_group("g", 1);
    let now = h.now;
    h.m.apply_commit(
        "g",
        vec![(tp("t", 0), offset(1, now)), (tp("old", 0), offset(2, now))],
        now,
    );
    let r =
        h.m.delete_offsets("g", &[tp("t", 0), tp("old", 0)], &mut fx)
            .expect("group-level ok");
    assert_eq!(
        r,
        vec![
            (tp("t", 0), Some(ErrorCode::GroupSubscribedToTopic)),
            (tp("old", 0), None)
        ]
    );
    assert_eq!(fx.records.len(), 1);
    assert_eq!(h.m.fetch_offsets("g", None).len(), 1);
    // A non-consumer group with members refuses at the group level.
    let mut connect = join_request("c", "");
    connect.protocol_type = "connect".into();
    connect.require_known_member_id = false;
    h.join(&connect);
    assert_eq!(
        h.m.delete_offsets("c", &[tp("t", 0)], &mut fx),
        Err(ErrorCode::NonEmptyGroup)
    );
    // An Empty group deletes anything.
    h.m.apply_commit("s", vec![(tp("t", 0), offset(1, now))], now);
    assert_eq!(
        h.m.delete_offsets("s", &[tp("t", 0)], &mut fx),
        Ok(vec![(tp("t", 0), None)])
    );
}

#[test]
fn offsets_of_empty_groups_expire_after_retention_and_then_the_group() {
    let mut h = Harness::new(config());
    let retention = config().offsets_retention_ms;
    let ids = h.stable_group("g", 1);
    let start = h.now;
    h.m.apply_commit(
        "g",
        vec![
            (tp("t", 0), offset(1, start)),
            (tp("gone", 0), offset(1, start)),
        ],
        start,
    );
    let mut explicit = offset(3, start);
    explicit.expire_timestamp_ms = Some(start + 10);
    h.m.apply_commit(
        "simple",
        vec![(tp("t", 0), offset(1, start)), (tp("t", 1), explicit)],
        start,
    );
    let expire = |h: &mut Harness| {
        let mut fx = Effects::default();
        h.m.expire_offsets(h.now, &mut fx);
        fx.records
    };
    // A Stable consumer group keeps what it consumes, loses the rest by commit time.
    h.now += retention;
    assert_eq!(h.heartbeat("g", &ids[0], 1), Ok(()));
    let records = expire(&mut h);
    assert_eq!(h.m.fetch_offsets("g", None).len(), 1, "{records:?}");
    assert_eq!(
        h.m.fetch_offsets("simple", None).len(),
        0,
        "simple groups expire by commit time"
    );
    assert_eq!(h.state("simple"), None, "and go once empty");
    assert!(records.contains(&GroupRecord::Group {
        group_id: "simple".into(),
        value: None
    }));
    // Once Empty, retention counts from when it emptied.
    h.leave("g", &[(&ids[0], None)]).expect("exists");
    h.now += retention - 1;
    expire(&mut h);
    assert_eq!(h.m.fetch_offsets("g", None).len(), 1);
    h.now += 1;
    expire(&mut h);
    assert_eq!(h.state("g"), None);
}

#[test]
fn replaying_the_records_rebuilds_offsets_and_stable_groups() {
    let mut h = Harness::new(config());
    let ids = h.stable_group("g", 2);
    let now = h.now;
    let commits = vec![(tp("t", 0), offset(10, now)), (tp("t", 1), offset(11, now))];
    h.records
        .extend(commits.iter().map(|(tp, v)| GroupRecord::Offset {
            group_id: "g".into(),
            topic: tp.0.clone(),
            partition: tp.1,
            value: Some(v.clone()),
        }));
    h.m.apply_commit("g", commits, now);
    h.records.push(GroupRecord::Offset {
        group_id: "g".into(),
        topic: "t".into(),
        partition: 1,
        value: None,
    });
    h.m.apply_commit("gone", vec![(tp("t", 0), offset(1, now))], now);
    h.records.push(GroupRecord::Group {
        group_id: "gone".into(),
        value: None,
    });
    let mut fresh = Harness::new(config());
    fresh.now = now + 60_000;
    for r in h.records.clone() {
        let (k, v) = crate::group::records::encode(&r);
        let decoded = crate::group::records::decode(Some(&k), v.as_deref()).expect("decodes");
        fresh.m.replay(decoded, fresh.now);
    }
    assert_eq!(fresh.state("g"), Some(GroupState::Stable));
    assert_eq!(fresh.generation("g"), 2);
    assert_eq!(fresh.state("gone"), None);
    let offsets = fresh.m.fetch_offsets("g", None);
    assert_eq!(offsets.len(), 1);
    assert_eq!(
        offsets[0].1.as_ref().map(|v| (v.offset, v.leader_epoch)),
        Some((10, 1))
    );
    // Members carry on with their generation after a restart...
    assert_eq!(fresh.heartbeat("g", &ids[1], 2), Ok(()));
    let sync = fresh.sync(&sync_request("g", &ids[1], 2));
    assert_eq!(
        fresh.synced(sync).map(|r| r.assignment),
        Some(Bytes::from(ids[1].clone()))
    );
    // ...and those that do not come back are expired by their session timeout.
    fresh.advance(i64::from(SESSION) / 2);
    assert_eq!(fresh.heartbeat("g", &ids[1], 2), Ok(()));
    fresh.advance(i64::from(SESSION) / 2);
    assert!(fresh.m.group("g").and_then(|g| g.member(&ids[0])).is_none());
    assert_eq!(fresh.state("g"), Some(GroupState::PreparingRebalance));
}

#[test]
fn shutdown_answers_waiting_requests() {
    let mut h = Harness::new(GroupConfig {
        initial_rebalance_delay_ms: 1_000,
        ..config()
    });
    let (_, out) = h.join_new(&join_request("g", ""));
    let mut fx = Effects::default();
    h.m.fail_waiting(ErrorCode::NotCoordinator, &mut fx);
    h.absorb(fx);
    assert_eq!(
        h.pending_join(&out).map(|r| r.error),
        Some(Some(ErrorCode::NotCoordinator))
    );
}
