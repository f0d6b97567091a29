//! KIP-848 server-side assignors: `uniform` (balanced and sticky to the previous target) and
//! `range` (per topic, contiguous ranges; static members first in instance-id order, then the
//! others in member-id order, as Kafka's server-side RangeAssignor). Pure functions of their
//! inputs.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::Assignment;

/// `group.consumer.assignors` names Strom serves; the first is the default.
pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";

/// What an assignor sees: each member's subscribed topic ids (topics that exist), the
/// partition count of each topic, and the previous target assignment.
pub struct AssignorInput<'a> {
    pub subscriptions: &'a BTreeMap<String, BTreeSet<Uuid>>,
    /// Instance ids of the static members.
    pub instance_ids: &'a BTreeMap<String, String>,
    pub partitions: &'a BTreeMap<Uuid, i32>,
    pub previous: &'a BTreeMap<String, Assignment>,
}

/// Runs the named assignor; `None` if Strom does not know it.
pub fn assign(name: &str, input: &AssignorInput<'_>) -> Option<BTreeMap<String, Assignment>> {
    match name {
        UNIFORM => Some(uniform(input)),
        RANGE => Some(range(input)),
        _ => None,
    }
}

/// Per topic: subscribers in order (static members by instance id, then the others by
/// member id) take contiguous ranges, the first `partitions % subscribers` one partition
/// more. Members with the same topics of the same size get the same partition numbers.
fn range(input: &AssignorInput<'_>) -> BTreeMap<String, Assignment> {
    let mut out: BTreeMap<String, Assignment> = input
        .subscriptions
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    let mut order: Vec<&String> = input.subscriptions.keys().collect();
    // `None` sorts before `Some`: turn it around so that static members come first.
    order.sort_by_key(|m| {
        (
            input.instance_ids.get(*m).is_none(),
            input.instance_ids.get(*m),
            *m,
        )
    });
    for (topic, &count) in input.partitions {
        let subscribers: Vec<&String> = order
            .iter()
            .copied()
            .filter(|m| input.subscriptions[*m].contains(topic))
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let n = subscribers.len() as i32;
        let (quota, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, member) in subscribers.iter().enumerate() {
            let take = quota + i32::from((i as i32) < extra);
            let parts: BTreeSet<i32> = (next..next + take).collect();
            next += take;
            if !parts.is_empty() {
                out.entry((*member).clone())
                    .or_default()
                    .insert(*topic, parts);
            }
        }
    }
    out
}

/// Balanced and sticky: members keep their previous partitions up to the fair share
/// (Kafka's quotas when all subscribe alike, else `ceil(partitions / members)`), the rest
/// go to the least-loaded subscriber (ties: member id), then
/// partitions move from a member with two more than another subscriber until balanced.
fn uniform(input: &AssignorInput<'_>) -> BTreeMap<String, Assignment> {
    let members = input.subscriptions;
    let subscribed: BTreeSet<Uuid> = members.values().flatten().copied().collect();
    let all: Vec<(Uuid, i32)> = subscribed
        .iter()
        .filter_map(|t| input.partitions.get(t).map(|&n| (*t, n)))
        .flat_map(|(t, n)| (0..n).map(move |p| (t, p)))
        .collect();
    let mut owner: BTreeMap<(Uuid, i32), String> = BTreeMap::new();
    let mut load: BTreeMap<&String, usize> = members.keys().map(|m| (m, 0)).collect();
    if members.is_empty() {
        return BTreeMap::new();
    }
    let cap = all.len().div_ceil(members.len());
    // When every member has the same topics, Kafka's shares: each member keeps up to
    // `partitions / members`, and the first `partitions % members` members (by id) that
    // had more keep one more, so a newcomer takes one partition from each of the others.
    let homogeneous = members.values().all(|t| Some(t) == members.values().next());
    let (min_quota, mut extra) = (all.len() / members.len(), all.len() % members.len());
    // 1. Stickiness, up to the fair share.
    for (member, previous) in input.previous {
        let Some(topics) = members.get(member) else {
            continue;
        };
        let keep = if homogeneous {
            let had: usize = previous
                .iter()
                .filter(|(t, _)| topics.contains(*t))
                .map(|(t, ps)| {
                    let count = input.partitions.get(t).copied().unwrap_or(0);
                    ps.iter().filter(|&&p| p < count).count()
                })
                .sum();
            let one_more = had > min_quota && extra > 0;
            extra -= usize::from(one_more);
            min_quota + usize::from(one_more)
        } else {
            cap
        };
        for (topic, parts) in previous {
            let count = input.partitions.get(topic).copied().unwrap_or(0);
            if !topics.contains(topic) {
                continue;
            }
            for &p in parts.iter().filter(|&&p| p < count) {
                let l = load.get_mut(member).expect("member has a load entry");
                if *l < keep && !owner.contains_key(&(*topic, p)) {
                    owner.insert((*topic, p), member.clone());
                    *l += 1;
                }
            }
        }
    }
    // 2. The rest to the least-loaded subscriber (ties: member id order).
    for tp in &all {
        if owner.contains_key(tp) {
            continue;
        }
        let best = members
            .iter()
            .filter(|(_, topics)| topics.contains(&tp.0))
            .min_by_key(|(m, _)| (load[m], (*m).clone()))
            .map(|(m, _)| m.clone());
        if let Some(m) = best {
            *load.get_mut(&m).expect("member has a load entry") += 1;
            owner.insert(*tp, m);
        }
    }
    // 3. Balance: bounded by the number of partitions (each move lowers the spread).
    for _ in 0..all.len() {
        let moved = all.iter().find_map(|tp| {
            let from = owner.get(tp)?;
            let to = members
                .iter()
                .filter(|(m, topics)| *m != from && topics.contains(&tp.0))
                .min_by_key(|(m, _)| (load[m], (*m).clone()))
                .map(|(m, _)| m)?;
            (load[to] + 1 < load[from]).then(|| (*tp, from.clone(), to.clone()))
        });
        let Some((tp, from, to)) = moved else { break };
        *load.get_mut(&from).expect("member has a load entry") -= 1;
        *load.get_mut(&to).expect("member has a load entry") += 1;
        owner.insert(tp, to);
    }
    let mut out: BTreeMap<String, Assignment> = members
        .keys()
        .map(|m| (m.clone(), Assignment::new()))
        .collect();
    for ((topic, p), m) in owner {
        out.entry(m)
            .or_default()
            .entry(topic)
            .or_default()
            .insert(p);
    }
    out
}
