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

/// orders-a and orders-b (2 partitions each), other (2), and the internal offsets topic.
fn orders_view() -> TopicsView {
    let mut t = TopicsView::new();
    t.insert("orders-a".into(), (Uuid::from_u128(1), 2));
    t.insert("orders-b".into(), (Uuid::from_u128(2), 2));
    t.insert("other".into(), (Uuid::from_u128(3), 2));
    t.insert("__consumer_offsets".into(), (Uuid::from_u128(4), 50));
    t
}

fn join_regex(member: &str, regex: &str) -> HeartbeatRequest {
    HeartbeatRequest {
        subscribed_topic_names: None,
        subscribed_topic_regex: Some(regex.into()),
        ..join_req(member)
    }
}

fn ids(a: &Assignment) -> BTreeMap<u128, Vec<i32>> {
    a.iter()
        .map(|(t, ps)| (t.as_u128(), ps.iter().copied().collect()))
        .collect()
}

#[test]
fn regex_members_take_the_matched_topics_and_new_ones_after_the_refresh_interval() {
    let mut g = ConsumerGroups::default();
    let mut view = orders_view();
    let r = g
        .heartbeat(&join_regex("a", "orders-.*"), &view, String::new, 0)
        .expect("a joins");
    // Full matches of non-internal topics only: orders-a and orders-b, not other.
    assert_eq!(
        r.assignment.as_ref().map(ids),
        Some([(1, vec![0, 1]), (2, vec![0, 1])].into())
    );
    // A mixed group: b subscribes by name to other and orders-a.
    let mut b = join_req("b");
    b.subscribed_topic_names = Some(vec!["other".into(), "orders-a".into()]);
    g.heartbeat(&b, &view, String::new, 100).expect("b joins");
    let group = g.group("g").expect("group");
    assert_eq!(
        group.resolved_regexes["orders-.*"],
        BTreeSet::from(["orders-a".to_owned(), "orders-b".to_owned()])
    );
    let target = |g: &ConsumerGroups, m: &str| ids(&g.group("g").expect("group").target[m]);
    // uniform: 6 partitions, 3 each; a gives up one of its four, only b takes other.
    assert_eq!(target(&g, "a"), [(1, vec![1]), (2, vec![0, 1])].into());
    assert_eq!(target(&g, "b"), [(1, vec![0]), (3, vec![0, 1])].into());
    let epoch = g.group("g").expect("group").group_epoch;

    // orders-c appears: not before REFRESH_MIN_INTERVAL_MS since the first resolution.
    view.insert("orders-c".into(), (Uuid::from_u128(5), 2));
    let beat = hb("a", 0, &Assignment::new());
    let beat = HeartbeatRequest {
        member_epoch: g.group("g").expect("group").members["a"].member_epoch,
        ..beat
    };
    g.heartbeat(
        &beat,
        &view,
        String::new,
        regex::REFRESH_MIN_INTERVAL_MS - 1,
    )
    .expect("a beats early");
    assert_eq!(g.group("g").expect("group").group_epoch, epoch);
    g.heartbeat(&beat, &view, String::new, regex::REFRESH_MIN_INTERVAL_MS)
        .expect("a beats after the interval");
    let group = g.group("g").expect("group");
    assert_eq!(group.group_epoch, epoch + 1, "one bump for the new topic");
    assert!(group.resolved_regexes["orders-.*"].contains("orders-c"));
    let all: usize = group.target.values().map(count).sum();
    assert_eq!(all, 8, "orders-a, -b, -c and other");
    assert_eq!(count(&group.target["a"]), 4);
    assert!(group.target["a"].contains_key(&Uuid::from_u128(5)));
    assert!(!group.target["b"].contains_key(&Uuid::from_u128(5)));

    // The topic set is unchanged: no further refresh or bump.
    let epoch = group.group_epoch;
    let beat = HeartbeatRequest {
        member_epoch: group.members["a"].member_epoch,
        ..beat
    };
    g.heartbeat(
        &beat,
        &view,
        String::new,
        3 * regex::REFRESH_MIN_INTERVAL_MS,
    )
    .expect("a beats");
    assert_eq!(g.group("g").expect("group").group_epoch, epoch);

    // orders-b is deleted: it leaves a's subscription at the next refresh.
    view.remove("orders-b");
    g.heartbeat(
        &beat,
        &view,
        String::new,
        4 * regex::REFRESH_MIN_INTERVAL_MS,
    )
    .expect("a beats");
    let group = g.group("g").expect("group");
    assert_eq!(group.group_epoch, epoch + 1);
    assert!(!group.target["a"].contains_key(&Uuid::from_u128(2)));
}

#[test]
fn bad_regexes_are_refused_and_an_empty_one_clears_the_subscription() {
    let mut g = ConsumerGroups::default();
    for bad in ["(orders", "[a-", "(a)\\1"] {
        assert_eq!(
            g.heartbeat(&join_regex("a", bad), &orders_view(), String::new, 0),
            Err(ErrorCode::InvalidRegularExpression),
            "{bad}"
        );
    }
    assert!(g.group("g").is_none(), "a refused join leaves no group");
    let r = g
        .heartbeat(
            &join_regex("a", "other|orders-b"),
            &orders_view(),
            String::new,
            0,
        )
        .expect("join");
    assert_eq!(
        r.assignment.as_ref().map(ids),
        Some([(2, vec![0, 1]), (3, vec![0, 1])].into())
    );
    // Switching to names: librdkafka sends the names with an empty regex.
    let mut to_names = hb(
        "a",
        r.member_epoch,
        r.assignment.as_ref().expect("assignment"),
    );
    to_names.subscribed_topic_names = Some(vec!["orders-a".into()]);
    to_names.subscribed_topic_regex = Some(String::new());
    g.heartbeat(&to_names, &orders_view(), String::new, 1)
        .expect("switch");
    let group = g.group("g").expect("group");
    assert_eq!(group.members["a"].subscribed_topic_regex, None);
    assert!(
        group.resolved_regexes.is_empty(),
        "unused regexes are forgotten"
    );
    assert_eq!(ids(&group.target["a"]), [(1, vec![0, 1])].into());
}

fn assign_with(
    name: &str,
    subs: &[(&str, &[u128])],
    statics: &[(&str, &str)],
    partitions: &[(u128, i32)],
    previous: &BTreeMap<String, Assignment>,
) -> BTreeMap<String, BTreeMap<u128, Vec<i32>>> {
    let subscriptions: BTreeMap<String, BTreeSet<Uuid>> = subs
        .iter()
        .map(|(m, ts)| {
            (
                (*m).to_owned(),
                ts.iter().map(|t| Uuid::from_u128(*t)).collect(),
            )
        })
        .collect();
    let instance_ids: BTreeMap<String, String> = statics
        .iter()
        .map(|(m, i)| ((*m).to_owned(), (*i).to_owned()))
        .collect();
    let partitions: BTreeMap<Uuid, i32> = partitions
        .iter()
        .map(|(t, n)| (Uuid::from_u128(*t), *n))
        .collect();
    let input = assignor::AssignorInput {
        subscriptions: &subscriptions,
        instance_ids: &instance_ids,
        partitions: &partitions,
        previous,
    };
    assignor::assign(name, &input)
        .expect("known assignor")
        .into_iter()
        .map(|(m, a)| (m, ids(&a)))
        .collect()
}

#[test]
fn range_co_partitions_and_puts_static_members_first_as_kafka_does() {
    let none = BTreeMap::new();
    // Kafka's RangeAssignor example: two members, T1 and T2 with 3 partitions each.
    let got = assign_with(
        assignor::RANGE,
        &[("m0", &[1, 2]), ("m1", &[1, 2])],
        &[],
        &[(1, 3), (2, 3)],
        &none,
    );
    assert_eq!(got["m0"], [(1, vec![0, 1]), (2, vec![0, 1])].into());
    assert_eq!(got["m1"], [(1, vec![2]), (2, vec![2])].into());
    // Static members come first in instance-id order, whatever their member ids.
    let got = assign_with(
        assignor::RANGE,
        &[("m3", &[1, 2]), ("m2", &[1, 2]), ("a", &[1, 2])],
        &[("m3", "I0"), ("m2", "I1")],
        &[(1, 3), (2, 3)],
        &none,
    );
    assert_eq!(got["m3"], [(1, vec![0]), (2, vec![0])].into());
    assert_eq!(got["m2"], [(1, vec![1]), (2, vec![1])].into());
    assert_eq!(got["a"], [(1, vec![2]), (2, vec![2])].into());
    // Heterogeneous: per topic among its own subscribers; 5 partitions over 2 → 3 + 2.
    let got = assign_with(
        assignor::RANGE,
        &[("a", &[1]), ("b", &[1, 2]), ("c", &[2])],
        &[],
        &[(1, 5), (2, 2)],
        &none,
    );
    assert_eq!(got["a"], [(1, vec![0, 1, 2])].into());
    assert_eq!(got["b"], [(1, vec![3, 4]), (2, vec![0])].into());
    assert_eq!(got["c"], [(2, vec![1])].into());
}

#[test]
fn uniform_spreads_evenly_and_keeps_partitions_where_they_were() {
    let none = BTreeMap::new();
    let subs: [(&str, &[u128]); 3] = [("a", &[1]), ("b", &[1]), ("c", &[1])];
    let got = assign_with(assignor::UNIFORM, &subs, &[], &[(1, 7)], &none);
    assert_eq!(got["a"], [(1, vec![0, 3, 6])].into());
    assert_eq!(got["b"], [(1, vec![1, 4])].into());
    assert_eq!(got["c"], [(1, vec![2, 5])].into());
    // c leaves: a and b keep all they had; c's two partitions go one each.
    let previous: BTreeMap<String, Assignment> = [
        (
            "a".to_owned(),
            [(Uuid::from_u128(1), [0, 3, 6].into())].into(),
        ),
        ("b".to_owned(), [(Uuid::from_u128(1), [1, 4].into())].into()),
    ]
    .into();
    let got = assign_with(assignor::UNIFORM, &subs[..2], &[], &[(1, 7)], &previous);
    assert_eq!(got["a"], [(1, vec![0, 3, 5, 6])].into());
    assert_eq!(got["b"], [(1, vec![1, 2, 4])].into());
    // A new member d takes from the most loaded only: a and b each give up one.
    let previous: BTreeMap<String, Assignment> = [
        (
            "a".to_owned(),
            [(Uuid::from_u128(1), [0, 3, 5, 6].into())].into(),
        ),
        (
            "b".to_owned(),
            [(Uuid::from_u128(1), [1, 2, 4].into())].into(),
        ),
    ]
    .into();
    let got = assign_with(
        assignor::UNIFORM,
        &[("a", &[1]), ("b", &[1]), ("d", &[1])],
        &[],
        &[(1, 7)],
        &previous,
    );
    let sizes: Vec<usize> = got.values().map(|a| a[&1].len()).collect();
    assert_eq!(sizes, [3, 2, 2]);
    assert!(got["a"][&1].iter().all(|p| [0, 3, 5, 6].contains(p)));
    assert!(got["b"][&1].iter().all(|p| [1, 2, 4].contains(p)));
    // Heterogeneous: b alone takes topic 2, and topic 1 balances the total load.
    let got = assign_with(
        assignor::UNIFORM,
        &[("a", &[1]), ("b", &[1, 2])],
        &[],
        &[(1, 4), (2, 2)],
        &none,
    );
    assert_eq!(got["a"], [(1, vec![0, 1, 2])].into());
    assert_eq!(got["b"], [(1, vec![3]), (2, vec![0, 1])].into());
}
