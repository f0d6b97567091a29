//! Client-side partition assignment run by the group leader (the "consumer" embedded
//! protocol): `range` (per topic, contiguous ranges in member order) and `cooperative-sticky`
//! (keep owned partitions, balance the rest, and never hand a partition straight from one
//! member to another in one round: KIP-429's two-phase move).

use std::collections::{BTreeMap, BTreeSet};

use crate::TopicPartition;

/// One member's subscription as decoded from its JoinGroup metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberSubscription {
    pub topics: Vec<String>,
    pub owned: Vec<TopicPartition>,
}

/// `member id -> partitions`, every member present (possibly with nothing).
pub type Assignment = BTreeMap<String, Vec<TopicPartition>>;

/// Kafka's RangeAssignor: for each topic, members subscribed to it sorted by id get
/// `n / m` partitions each, the first `n % m` one more.
pub fn range(
    members: &BTreeMap<String, MemberSubscription>,
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    let mut out: Assignment = members.keys().map(|m| (m.clone(), Vec::new())).collect();
    for (topic, &n) in partitions {
        let subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, s)| s.topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let m = subscribers.len() as i32;
        let (per, extra) = (n / m, n % m);
        let mut next = 0;
        for (i, member) in subscribers.iter().enumerate() {
            let count = per + i32::from((i as i32) < extra);
            let list = out.get_mut(*member).expect("every member has an entry");
            list.extend((next..next + count).map(|p| TopicPartition::new(topic.clone(), p)));
            next += count;
        }
    }
    out
}

/// Cooperative sticky: members keep what they own (up to a fair share), free partitions go
/// to the least loaded subscriber; a partition still owned by someone else is left out this
/// round so its owner can revoke it first.
pub fn cooperative_sticky(
    members: &BTreeMap<String, MemberSubscription>,
    partitions: &BTreeMap<String, i32>,
) -> Assignment {
    let all: BTreeSet<TopicPartition> = partitions
        .iter()
        .flat_map(|(t, &n)| (0..n).map(move |p| TopicPartition::new(t.clone(), p)))
        .collect();
    let total = all.len();
    let count = members.len().max(1);
    let max_quota = total.div_ceil(count);
    let mut owner_before: BTreeMap<TopicPartition, String> = BTreeMap::new();
    let mut out: Assignment = members.keys().map(|m| (m.clone(), Vec::new())).collect();
    // Keep owned partitions that still exist, are still subscribed and unclaimed.
    for (member, sub) in members {
        for tp in &sub.owned {
            if !all.contains(tp) || !sub.topics.contains(&tp.topic) || owner_before.contains_key(tp)
            {
                continue;
            }
            owner_before.insert(tp.clone(), member.clone());
            let list = out.get_mut(member).expect("entry");
            if list.len() < max_quota {
                list.push(tp.clone());
            }
        }
    }
    let assigned: BTreeSet<TopicPartition> = out.values().flatten().cloned().collect();
    for tp in all.iter().filter(|tp| !assigned.contains(*tp)) {
        let target = members
            .iter()
            .filter(|(_, s)| s.topics.contains(&tp.topic))
            .min_by_key(|(m, _)| (out[*m].len(), (*m).clone()))
            .map(|(m, _)| m.clone());
        if let Some(m) = target {
            out.get_mut(&m).expect("entry").push(tp.clone());
        }
    }
    // Rebalance: move from members above the fair share to those below it.
    loop {
        let (max_m, max_n) = out
            .iter()
            .map(|(m, l)| (m.clone(), l.len()))
            .max_by_key(|x| x.1)
            .unwrap_or_default();
        let (min_m, min_n) = out
            .iter()
            .map(|(m, l)| (m.clone(), l.len()))
            .min_by_key(|x| x.1)
            .unwrap_or_default();
        if max_n <= min_n + 1 {
            break;
        }
        let min_topics = &members[&min_m].topics;
        let pos = out[&max_m]
            .iter()
            .rposition(|tp| min_topics.contains(&tp.topic));
        let Some(pos) = pos else { break };
        let tp = out.get_mut(&max_m).expect("entry").remove(pos);
        out.get_mut(&min_m).expect("entry").push(tp);
    }
    // KIP-429: a partition changing owner is withheld until its previous owner revoked it.
    for (member, list) in out.iter_mut() {
        list.retain(|tp| owner_before.get(tp).is_none_or(|prev| prev == member));
        list.sort();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(topics: &[&str], owned: &[(&str, i32)]) -> MemberSubscription {
        MemberSubscription {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            owned: owned
                .iter()
                .map(|(t, p)| TopicPartition::new(*t, *p))
                .collect(),
        }
    }

    fn parts(a: &Assignment, m: &str) -> Vec<(String, i32)> {
        a[m].iter()
            .map(|tp| (tp.topic.clone(), tp.partition))
            .collect()
    }

    #[test]
    fn range_gives_leading_members_the_extra_partitions() {
        let members = BTreeMap::from([
            ("a".to_string(), sub(&["t", "u"], &[])),
            ("b".to_string(), sub(&["t"], &[])),
        ]);
        let topics = BTreeMap::from([("t".to_string(), 3), ("u".to_string(), 2)]);
        let a = range(&members, &topics);
        assert_eq!(
            parts(&a, "a"),
            vec![
                ("t".into(), 0),
                ("t".into(), 1),
                ("u".into(), 0),
                ("u".into(), 1)
            ]
        );
        assert_eq!(parts(&a, "b"), vec![("t".into(), 2)]);
    }

    #[test]
    fn cooperative_sticky_keeps_owned_and_moves_in_two_phases() {
        let topics = BTreeMap::from([("t".to_string(), 4)]);
        let first = BTreeMap::from([("a".to_string(), sub(&["t"], &[]))]);
        let a = cooperative_sticky(&first, &topics);
        assert_eq!(a["a"].len(), 4);
        // b joins: a keeps two, nothing goes to b until a revoked the others.
        let second = BTreeMap::from([
            (
                "a".to_string(),
                sub(&["t"], &[("t", 0), ("t", 1), ("t", 2), ("t", 3)]),
            ),
            ("b".to_string(), sub(&["t"], &[])),
        ]);
        let a2 = cooperative_sticky(&second, &topics);
        assert_eq!(parts(&a2, "a"), vec![("t".into(), 0), ("t".into(), 1)]);
        assert!(a2["b"].is_empty());
        // Next round: a owns 0,1; the free 2,3 go to b.
        let third = BTreeMap::from([
            ("a".to_string(), sub(&["t"], &[("t", 0), ("t", 1)])),
            ("b".to_string(), sub(&["t"], &[])),
        ]);
        let a3 = cooperative_sticky(&third, &topics);
        assert_eq!(parts(&a3, "a"), vec![("t".into(), 0), ("t".into(), 1)]);
        assert_eq!(parts(&a3, "b"), vec![("t".into(), 2), ("t".into(), 3)]);
    }
}
