//! State-machine tests of KIP-848 groups with controlled time: assignment, reconciliation,
//! epochs, leave, static members, session expiry and the error cases.

use super::*;

const T: &str = "t";

fn topics() -> TopicsView {
    let mut t = TopicsView::new();
    t.insert(T.to_owned(), (Uuid::from_u128(7), 6));
    t
}

fn tid() -> Uuid {
    Uuid::from_u128(7)
}

fn join_req(member: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 30_000,
        subscribed_topic_names: Some(vec![T.into()]),
        owned: Some(Assignment::new()),
        ..HeartbeatRequest::default()
    }
}

fn hb(member: &str, epoch: i32, owned: &Assignment) -> HeartbeatRequest {
    HeartbeatRequest {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: Some(owned.clone()),
        ..HeartbeatRequest::default()
    }
}

fn count(a: &Assignment) -> usize {
    a.values().map(BTreeSet::len).sum()
}

/// A member as a client sees it: its epoch and what it owns.
struct Client {
    id: String,
    epoch: i32,
    owned: Assignment,
}

impl Client {
    fn beat(&mut self, g: &mut ConsumerGroups, now: i64) -> Result<(), ErrorCode> {
        let req = if self.epoch == 0 {
            join_req(&self.id)
        } else {
            hb(&self.id, self.epoch, &self.owned)
        };
        let r = g.heartbeat(&req, &topics(), || unreachable!("v1 ids"), now)?;
        self.epoch = r.member_epoch;
        if let Some(a) = r.assignment {
            self.owned = a;
        }
        Ok(())
    }
}

fn client(id: &str) -> Client {
    Client {
        id: id.into(),
        epoch: 0,
        owned: Assignment::new(),
    }
}

/// Heartbeats every client a few rounds; asserts no partition is ever owned twice.
fn settle(g: &mut ConsumerGroups, clients: &mut [Client], now: i64) {
    for _ in 0..4 {
        for i in 0..clients.len() {
            clients[i].beat(g, now).expect("heartbeat");
            let mut seen = BTreeSet::new();
            for o in clients.iter() {
                for p in o.owned.get(&tid()).into_iter().flatten() {
                    assert!(seen.insert(*p), "partition {p} owned twice");
                }
            }
        }
    }
}

#[test]
fn three_members_get_two_each_then_two_cover_six_after_a_leave() {
    let mut g = ConsumerGroups::default();
    let mut cs = vec![client("a"), client("b"), client("c")];
    settle(&mut g, &mut cs, 0);
    for c in &cs {
        assert_eq!(count(&c.owned), 2, "member {}", c.id);
    }
    let group = g.group("g").expect("group");
    assert_eq!(group.state(), ConsumerGroupState::Stable);
    assert_eq!(group.group_epoch, group.assignment_epoch);
    let leave = HeartbeatRequest {
        member_epoch: LEAVE_EPOCH,
        ..hb("c", cs[2].epoch, &Assignment::new())
    };
    let r = g
        .heartbeat(&leave, &topics(), String::new, 1)
        .expect("leave");
    assert_eq!(r.member_epoch, LEAVE_EPOCH);
    cs.pop();
    settle(&mut g, &mut cs, 2);
    assert_eq!(count(&cs[0].owned) + count(&cs[1].owned), 6);
    assert_eq!(count(&cs[0].owned), 3);
}

#[test]
fn a_partition_moves_only_after_its_owner_revoked_it() {
    let mut g = ConsumerGroups::default();
    let mut a = client("a");
    a.beat(&mut g, 0).expect("join a");
    assert_eq!(count(&a.owned), 6);
    let mut b = client("b");
    b.beat(&mut g, 0).expect("join b");
    // b's target is three partitions, all still held by a.
    assert_eq!(count(&b.owned), 0);
    let epoch_before = a.epoch;
    a.beat(&mut g, 0).expect("a told to revoke");
    assert_eq!(count(&a.owned), 3);
    assert_eq!(
        a.epoch, epoch_before,
        "epoch moves only once revocation is done"
    );
    b.beat(&mut g, 0).expect("b still waits");
    assert_eq!(count(&b.owned), 0);
    a.beat(&mut g, 0).expect("a reports the revocation");
    assert!(a.epoch > epoch_before);
    b.beat(&mut g, 0).expect("b gets the freed partitions");
    assert_eq!(count(&b.owned), 3);
    assert_eq!(
        g.group("g").expect("group").state(),
        ConsumerGroupState::Stable
    );
}

#[test]
fn wrong_epochs_unknown_members_and_session_expiry() {
    let mut g = ConsumerGroups::default();
    let mut a = client("a");
    a.beat(&mut g, 0).expect("join");
    let err = g.heartbeat(&hb("a", a.epoch + 5, &a.owned), &topics(), String::new, 1);
    assert_eq!(err, Err(ErrorCode::FencedMemberEpoch));
    let err = g.heartbeat(&hb("zz", 1, &a.owned), &topics(), String::new, 1);
    assert_eq!(err, Err(ErrorCode::UnknownMemberId));
    assert_eq!(g.next_deadline(), Some(45_000));
    g.tick(44_999);
    assert!(g.group("g").expect("group").members.contains_key("a"));
    g.tick(45_000);
    assert_eq!(
        g.group("g").expect("group").state(),
        ConsumerGroupState::Empty
    );
    assert_eq!(a.beat(&mut g, 45_001), Err(ErrorCode::UnknownMemberId));
}

#[test]
fn a_lost_response_may_be_retried_with_the_previous_epoch() {
    let mut g = ConsumerGroups::default();
    let mut a = client("a");
    a.beat(&mut g, 0).expect("join");
    let first = a.epoch;
    let mut b = client("b");
    b.beat(&mut g, 0).expect("join b");
    a.beat(&mut g, 0).expect("told to revoke");
    a.beat(&mut g, 0).expect("revoked; moves to the new epoch");
    assert!(a.epoch > first);
    // The answer carrying the new epoch was lost: the old epoch with a subset is accepted.
    let retry = hb("a", first, &a.owned);
    let r = g
        .heartbeat(&retry, &topics(), String::new, 0)
        .expect("allowed");
    assert_eq!(r.member_epoch, a.epoch);
    // The old epoch with partitions the member no longer has is fenced.
    let mut all = Assignment::new();
    all.insert(tid(), (0..6).collect());
    let err = g.heartbeat(&hb("a", first, &all), &topics(), String::new, 0);
    assert_eq!(err, Err(ErrorCode::FencedMemberEpoch));
}

#[test]
fn static_member_rejoins_with_its_assignment_and_the_instance_is_guarded() {
    let mut g = ConsumerGroups::default();
    let mut req = join_req("a1");
    req.instance_id = Some("i".into());
    let r = g.heartbeat(&req, &topics(), String::new, 0).expect("join");
    let epoch = r.member_epoch;
    let mut other = join_req("a2");
    other.instance_id = Some("i".into());
    assert_eq!(
        g.heartbeat(&other, &topics(), String::new, 0),
        Err(ErrorCode::UnreleasedInstanceId)
    );
    let leave = HeartbeatRequest {
        member_epoch: LEAVE_STATIC_EPOCH,
        instance_id: Some("i".into()),
        ..hb("a1", epoch, &Assignment::new())
    };
    g.heartbeat(&leave, &topics(), String::new, 1)
        .expect("leave");
    let group_epoch = g.group("g").expect("group").group_epoch;
    let r = g
        .heartbeat(&other, &topics(), String::new, 2)
        .expect("take over");
    assert_eq!(r.member_epoch, epoch);
    assert_eq!(r.assignment.map(|a| count(&a)), Some(6));
    assert_eq!(g.group("g").expect("group").group_epoch, group_epoch);
}

#[test]
fn assignor_size_and_request_checks() {
    let mut g = ConsumerGroups::new(ConsumerGroupConfig {
        max_size: 1,
        ..ConsumerGroupConfig::default()
    });
    let mut bad = join_req("a");
    bad.server_assignor = Some("sticky".into());
    assert_eq!(
        g.heartbeat(&bad, &topics(), String::new, 0),
        Err(ErrorCode::UnsupportedAssignor)
    );
    g.heartbeat(&join_req("a"), &topics(), String::new, 0)
        .expect("first");
    assert_eq!(
        g.heartbeat(&join_req("b"), &topics(), String::new, 0),
        Err(ErrorCode::GroupMaxSizeReached)
    );
    let mut v0 = join_req("");
    v0.group_id = "h".into();
    let r = g
        .heartbeat(&v0, &topics(), || "issued".into(), 0)
        .expect("v0");
    assert_eq!(r.member_id, "issued");
    assert_eq!(
        g.validate_commit("h", "issued", r.member_epoch + 1),
        Err(ErrorCode::StaleMemberEpoch)
    );
    assert_eq!(g.validate_commit("h", "issued", r.member_epoch), Ok(true));
    assert_eq!(g.validate_commit("classic", "m", 3), Ok(false));
}

#[test]
fn range_assignor_gives_contiguous_ranges() {
    let mut g = ConsumerGroups::default();
    let mut a = join_req("a");
    a.server_assignor = Some(assignor::RANGE.into());
    let mut b = join_req("b");
    b.server_assignor = Some(assignor::RANGE.into());
    g.heartbeat(&a, &topics(), String::new, 0).expect("a");
    g.heartbeat(&b, &topics(), String::new, 0).expect("b");
    let group = g.group("g").expect("group");
    assert_eq!(group.assignor_name, "range");
    let want_a: BTreeSet<i32> = (0..3).collect();
    assert_eq!(group.target["a"][&tid()], want_a);
    let want_b: BTreeSet<i32> = (3..6).collect();
    assert_eq!(group.target["b"][&tid()], want_b);
}

#[test]
fn transactional_commits_may_lag_but_not_run_ahead() {
    let mut g = ConsumerGroups::default();
    let mut a = client("a");
    a.beat(&mut g, 0).expect("join");
    assert_eq!(g.validate_txn_commit("g", "a", a.epoch - 1), Ok(true));
    assert_eq!(
        g.validate_txn_commit("g", "a", a.epoch + 1),
        Err(ErrorCode::StaleMemberEpoch)
    );
    assert_eq!(g.validate_txn_commit("g", "", -1), Ok(true));
    assert_eq!(
        g.validate_txn_commit("g", "x", 1),
        Err(ErrorCode::UnknownMemberId)
    );
    // A plain commit without a member is refused while the group has members.
    assert_eq!(
        g.validate_commit("g", "", -1),
        Err(ErrorCode::UnknownMemberId)
    );
    assert_eq!(g.validate_txn_commit("classic", "m", 1), Ok(false));
}
