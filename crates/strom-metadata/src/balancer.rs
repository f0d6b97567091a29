//! The built-in balancer (Cruise Control's job, in the box): from where replicas are and how
//! big they are, a plan of partition moves that gives every broker its fair share.
//!
//! Goals, in priority order:
//! 1. **No replica on an excluded broker** (one being decommissioned): every one moves.
//! 2. **Replica count**: every broker within one replica of the mean (`⌊total/n⌋` or `⌈…⌉`).
//! 3. **Rack awareness**: a replica moves to a broker whose rack the partition's other
//!    replicas do not use, whenever such a broker can take it; a move never makes a partition
//!    less rack-diverse than it was.
//! 4. **Disk**: among the replicas a full broker can give, the one that brings the two
//!    brokers' bytes closest together moves; then replica swaps between the fullest and the
//!    emptiest broker (counts unchanged) while one shrinks the gap by more than 5 %.
//! 5. **Leader count**: the preferred leader (first replica) of each partition is chosen so
//!    every broker prefers within one of its share, by reordering replica lists: no data
//!    moves, and a preferred election (or `auto.leader.rebalance.enable`) follows.
//!
//! Bounds: the plan is cut into steps of at most `max_concurrent_moves` partitions and
//! `max_bytes_per_step` bytes (a single larger move is a step of its own); an executor runs
//! one step at a time. The planner is pure (no I/O): the CLI feeds it the sizes from
//! DescribeLogDirs, the controller's continuous mode feeds it the image with sizes unknown
//! (every replica weighs the same).

use std::collections::{BTreeMap, BTreeSet};

/// A broker the plan may place replicas on (or must empty, if `excluded`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    pub id: i32,
    pub rack: Option<String>,
    /// Being decommissioned: every replica moves off it and none moves onto it.
    pub excluded: bool,
}

/// A partition as it is now: its replicas (first = preferred leader) and its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub bytes: u64,
}

/// Bounds and switches of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Most partitions moving at once (one step).
    pub max_concurrent_moves: usize,
    /// Most bytes copied in one step (a single larger move is a step alone).
    pub max_bytes_per_step: u64,
    /// Reorder replica lists so preferred leaderships are balanced too.
    pub balance_leaders: bool,
    /// Balance replica counts and bytes; off, the plan only empties excluded brokers (a
    /// decommission moves nothing else).
    pub balance_replicas: bool,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_concurrent_moves: 4,
            max_bytes_per_step: u64::MAX,
            balance_leaders: true,
            balance_replicas: true,
        }
    }
}

/// One partition's change: from its replicas to new ones. `bytes` is what must be copied
/// (its size times the replicas added; 0 for a reorder).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Move {
    pub topic: String,
    pub partition: i32,
    pub from: Vec<i32>,
    pub to: Vec<i32>,
    pub bytes: u64,
}

impl Move {
    /// Whether only the order (the preferred leader) changes.
    pub fn is_reorder(&self) -> bool {
        let mut a = self.from.clone();
        let mut b = self.to.clone();
        a.sort_unstable();
        b.sort_unstable();
        a == b
    }
}

/// A broker's load: replicas, preferred leaderships and bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Load {
    pub replicas: usize,
    pub leaders: usize,
    pub bytes: u64,
}

/// A plan: the moves in steps, and each broker's load before and after.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    pub steps: Vec<Vec<Move>>,
    pub before: BTreeMap<i32, Load>,
    pub after: BTreeMap<i32, Load>,
}

impl Plan {
    pub fn moves(&self) -> impl Iterator<Item = &Move> + '_ {
        self.steps.iter().flatten()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Bytes the plan copies in all.
    pub fn bytes(&self) -> u64 {
        self.moves().map(|m| m.bytes).sum()
    }
}

/// Load of every broker in `brokers` (and any other a replica names) for `assignment`.
pub fn loads(
    brokers: &[BrokerInfo],
    partitions: &[PartitionInfo],
    assignment: &[Vec<i32>],
) -> BTreeMap<i32, Load> {
    let mut out: BTreeMap<i32, Load> = brokers.iter().map(|b| (b.id, Load::default())).collect();
    for (p, replicas) in partitions.iter().zip(assignment) {
        for (i, r) in replicas.iter().enumerate() {
            let l = out.entry(*r).or_default();
            l.replicas += 1;
            l.bytes += p.bytes;
            if i == 0 {
                l.leaders += 1;
            }
        }
    }
    out
}

/// The plan that balances `partitions` over `brokers` within `bounds`.
pub fn plan(brokers: &[BrokerInfo], partitions: &[PartitionInfo], bounds: Bounds) -> Plan {
    let before_assignment: Vec<Vec<i32>> = partitions.iter().map(|p| p.replicas.clone()).collect();
    let mut state = State::new(brokers, partitions);
    state.evacuate_excluded();
    if bounds.balance_replicas {
        state.balance_counts();
        state.balance_bytes();
    }
    if bounds.balance_leaders {
        state.balance_leaders();
    }
    let mut moves = Vec::new();
    for (i, p) in partitions.iter().enumerate() {
        let to = state.assignment[i].clone();
        if to != p.replicas {
            let added = to.iter().filter(|r| !p.replicas.contains(r)).count() as u64;
            moves.push(Move {
                topic: p.topic.clone(),
                partition: p.partition,
                from: p.replicas.clone(),
                to,
                bytes: p.bytes * added,
            });
        }
    }
    // Reorders cost nothing: they go first, all in one step; data moves, largest first, are
    // packed into steps within the bounds.
    let (reorders, mut copies): (Vec<Move>, Vec<Move>) =
        moves.into_iter().partition(Move::is_reorder);
    copies.sort_by(|a, b| {
        b.bytes
            .cmp(&a.bytes)
            .then(a.topic.cmp(&b.topic))
            .then(a.partition.cmp(&b.partition))
    });
    let mut steps: Vec<Vec<Move>> = Vec::new();
    if !reorders.is_empty() {
        steps.push(reorders);
    }
    let mut step: Vec<Move> = Vec::new();
    let mut step_bytes = 0u64;
    for m in copies {
        let full = step.len() >= bounds.max_concurrent_moves.max(1)
            || (!step.is_empty() && step_bytes.saturating_add(m.bytes) > bounds.max_bytes_per_step);
        if full {
            steps.push(std::mem::take(&mut step));
            step_bytes = 0;
        }
        step_bytes = step_bytes.saturating_add(m.bytes);
        step.push(m);
    }
    if !step.is_empty() {
        steps.push(step);
    }
    Plan {
        before: loads(brokers, partitions, &before_assignment),
        after: loads(brokers, partitions, &state.assignment),
        steps,
    }
}

struct State<'a> {
    brokers: &'a [BrokerInfo],
    partitions: &'a [PartitionInfo],
    assignment: Vec<Vec<i32>>,
}

impl<'a> State<'a> {
    fn new(brokers: &'a [BrokerInfo], partitions: &'a [PartitionInfo]) -> State<'a> {
        State {
            brokers,
            partitions,
            assignment: partitions.iter().map(|p| p.replicas.clone()).collect(),
        }
    }

    fn eligible(&self) -> Vec<i32> {
        self.brokers
            .iter()
            .filter(|b| !b.excluded)
            .map(|b| b.id)
            .collect()
    }

    fn rack(&self, id: i32) -> Option<&str> {
        self.brokers
            .iter()
            .find(|b| b.id == id)
            .and_then(|b| b.rack.as_deref())
    }

    fn counts(&self) -> BTreeMap<i32, (usize, u64)> {
        let mut out: BTreeMap<i32, (usize, u64)> =
            self.eligible().into_iter().map(|id| (id, (0, 0))).collect();
        for (p, replicas) in self.partitions.iter().zip(&self.assignment) {
            for r in replicas {
                if let Some(c) = out.get_mut(r) {
                    c.0 += 1;
                    c.1 += p.bytes;
                }
            }
        }
        out
    }

    /// Racks partition `i`'s replicas other than `except` use.
    fn racks_of(&self, i: usize, except: i32) -> BTreeSet<Option<&str>> {
        self.assignment[i]
            .iter()
            .filter(|r| **r != except)
            .map(|r| self.rack(*r))
            .collect()
    }

    /// Whether moving partition `i`'s replica on `from` to `to` keeps it as rack-diverse.
    fn rack_ok(&self, i: usize, from: i32, to: i32) -> bool {
        if self.rack(to).is_none() && self.rack(from).is_none() {
            return true;
        }
        let others = self.racks_of(i, from);
        let diverse_now = !others.contains(&self.rack(from));
        let diverse_after = !others.contains(&self.rack(to));
        diverse_after || !diverse_now
    }

    /// The best destination for partition `i`'s replica on `from`: an eligible broker that
    /// does not host it, keeps rack diversity if any can, with the fewest replicas (then
    /// bytes, then id).
    fn destination(
        &self,
        i: usize,
        from: i32,
        counts: &BTreeMap<i32, (usize, u64)>,
    ) -> Option<i32> {
        let candidates: Vec<i32> = counts
            .keys()
            .copied()
            .filter(|b| *b != from && !self.assignment[i].contains(b))
            .collect();
        let diverse: Vec<i32> = candidates
            .iter()
            .copied()
            .filter(|b| {
                let others = self.racks_of(i, from);
                self.rack(*b).is_none() || !others.contains(&self.rack(*b))
            })
            .collect();
        let pool = if diverse.is_empty() {
            candidates
        } else {
            diverse
        };
        pool.into_iter()
            .min_by_key(|b| (counts[b].0, counts[b].1, *b))
    }

    fn replace(&mut self, i: usize, from: i32, to: i32) {
        for r in &mut self.assignment[i] {
            if *r == from {
                *r = to;
            }
        }
    }

    fn evacuate_excluded(&mut self) {
        let excluded: BTreeSet<i32> = self
            .brokers
            .iter()
            .filter(|b| b.excluded)
            .map(|b| b.id)
            .collect();
        if excluded.is_empty() {
            return;
        }
        // Largest partitions first, so bytes spread as evenly as counts.
        let mut order: Vec<usize> = (0..self.partitions.len()).collect();
        order.sort_by_key(|i| std::cmp::Reverse(self.partitions[*i].bytes));
        for i in order {
            let on: Vec<i32> = self.assignment[i]
                .iter()
                .copied()
                .filter(|r| excluded.contains(r))
                .collect();
            for from in on {
                let counts = self.counts();
                if let Some(to) = self.destination(i, from, &counts) {
                    self.replace(i, from, to);
                }
            }
        }
    }

    fn balance_counts(&mut self) {
        let n = self.eligible().len();
        if n < 2 {
            return;
        }
        // Each move lowers the spread's sum of squares, so this ends; the bound is a guard.
        for _ in 0..self.partitions.len() * 4 + 16 {
            let counts = self.counts();
            let (&max_b, &(max_c, max_bytes)) = counts
                .iter()
                .max_by_key(|(id, c)| (c.0, c.1, std::cmp::Reverse(**id)))
                .unwrap();
            let (&min_b, &(min_c, min_bytes)) = counts
                .iter()
                .min_by_key(|(id, c)| (c.0, c.1, **id))
                .unwrap();
            if max_c <= min_c + 1 {
                return;
            }
            // The replica on max_b whose move to min_b (or, failing rack rules, to the best
            // destination) brings their bytes closest together.
            let target_gap = max_bytes.saturating_sub(min_bytes) / 2;
            let mut best: Option<(usize, i32, u64)> = None;
            for i in 0..self.partitions.len() {
                if !self.assignment[i].contains(&max_b) {
                    continue;
                }
                let to = if !self.assignment[i].contains(&min_b) && self.rack_ok(i, max_b, min_b) {
                    Some(min_b)
                } else {
                    self.destination(i, max_b, &counts)
                        .filter(|to| counts[to].0 + 1 < max_c && self.rack_ok(i, max_b, *to))
                };
                let Some(to) = to else { continue };
                let miss = self.partitions[i].bytes.abs_diff(target_gap);
                if best.is_none_or(|(_, _, m)| miss < m) {
                    best = Some((i, to, miss));
                }
            }
            let Some((i, to, _)) = best else { return };
            self.replace(i, max_b, to);
        }
    }

    fn balance_bytes(&mut self) {
        for _ in 0..self.partitions.len() * 2 + 8 {
            let counts = self.counts();
            if counts.len() < 2 {
                return;
            }
            let (&full, &(_, full_bytes)) = counts
                .iter()
                .max_by_key(|(id, c)| (c.1, std::cmp::Reverse(**id)))
                .unwrap();
            let (&empty, &(_, empty_bytes)) =
                counts.iter().min_by_key(|(id, c)| (c.1, **id)).unwrap();
            let gap = full_bytes - empty_bytes;
            if gap == 0 {
                return;
            }
            // Swap a replica a (on full, not on empty) with b (on empty, not on full), a > b:
            // the gap becomes |gap - 2(a - b)|.
            let mut best: Option<(usize, usize, u64)> = None;
            for a in 0..self.partitions.len() {
                if !self.assignment[a].contains(&full) || self.assignment[a].contains(&empty) {
                    continue;
                }
                if !self.rack_ok(a, full, empty) {
                    continue;
                }
                for b in 0..self.partitions.len() {
                    if !self.assignment[b].contains(&empty) || self.assignment[b].contains(&full) {
                        continue;
                    }
                    let (sa, sb) = (self.partitions[a].bytes, self.partitions[b].bytes);
                    if sa <= sb || !self.rack_ok(b, empty, full) {
                        continue;
                    }
                    let new_gap = gap.abs_diff(2 * (sa - sb));
                    if best.is_none_or(|(_, _, g)| new_gap < g) {
                        best = Some((a, b, new_gap));
                    }
                }
            }
            match best {
                // Only swaps that shrink the gap by more than 5 % are worth the copying.
                Some((a, b, new_gap)) if (new_gap as f64) < gap as f64 * 0.95 => {
                    self.replace(a, full, empty);
                    self.replace(b, empty, full);
                }
                _ => return,
            }
        }
    }

    fn balance_leaders(&mut self) {
        let eligible = self.eligible();
        if eligible.len() < 2 {
            return;
        }
        for _ in 0..self.partitions.len() * 2 + 8 {
            let mut leaders: BTreeMap<i32, usize> = eligible.iter().map(|b| (*b, 0)).collect();
            for a in &self.assignment {
                if let Some(first) = a.first() {
                    if let Some(c) = leaders.get_mut(first) {
                        *c += 1;
                    }
                }
            }
            let (&most, &most_c) = leaders
                .iter()
                .max_by_key(|(id, c)| (**c, std::cmp::Reverse(**id)))
                .unwrap();
            let (&_least, &least_c) = leaders.iter().min_by_key(|(id, c)| (**c, **id)).unwrap();
            if most_c <= least_c + 1 {
                return;
            }
            // A partition `most` prefers to lead whose replicas include a broker leading fewer
            // than most_c - 1: that one becomes first.
            let mut done = false;
            for a in self.assignment.iter_mut() {
                if a.first() != Some(&most) {
                    continue;
                }
                let pick = a
                    .iter()
                    .enumerate()
                    .skip(1)
                    .filter(|(_, r)| leaders.get(r).is_some_and(|c| *c + 1 < most_c))
                    .min_by_key(|(_, r)| (leaders[r], **r))
                    .map(|(pos, _)| pos);
                if let Some(pos) = pick {
                    a.swap(0, pos);
                    done = true;
                    break;
                }
            }
            if !done {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn brokers(n: i32, racks: usize) -> Vec<BrokerInfo> {
        (1..=n)
            .map(|id| BrokerInfo {
                id,
                rack: (racks > 0).then(|| format!("r{}", (id as usize - 1) % racks)),
                excluded: false,
            })
            .collect()
    }

    fn partitions(
        n: usize,
        rf: usize,
        on: &[i32],
        bytes: impl Fn(usize) -> u64,
    ) -> Vec<PartitionInfo> {
        (0..n)
            .map(|i| PartitionInfo {
                topic: "t".into(),
                partition: i as i32,
                replicas: (0..rf).map(|k| on[(i + k) % on.len()]).collect(),
                bytes: bytes(i),
            })
            .collect()
    }

    fn assert_valid(plan: &Plan, parts: &[PartitionInfo], brokers: &[BrokerInfo]) {
        for m in plan.moves() {
            let p = parts
                .iter()
                .find(|p| p.topic == m.topic && p.partition == m.partition)
                .unwrap();
            assert_eq!(m.from, p.replicas);
            assert_eq!(
                m.to.len(),
                p.replicas.len(),
                "the replication factor never changes"
            );
            let set: BTreeSet<i32> = m.to.iter().copied().collect();
            assert_eq!(set.len(), m.to.len(), "no broker twice: {m:?}");
            for r in &m.to {
                let b = brokers.iter().find(|b| b.id == *r).expect("a known broker");
                assert!(!b.excluded, "nothing moves onto an excluded broker: {m:?}");
            }
        }
    }

    #[test]
    fn a_new_broker_gets_its_fair_share_of_replicas_and_leaders() {
        let b = brokers(4, 0);
        let parts = partitions(12, 3, &[1, 2, 3], |_| 1000);
        let plan = plan(&b, &parts, Bounds::default());
        assert_valid(&plan, &parts, &b);
        assert_eq!(plan.before[&4].replicas, 0);
        for (id, l) in &plan.after {
            assert_eq!(
                l.replicas, 9,
                "36 replicas over 4 brokers: broker {id} {l:?}"
            );
            assert_eq!(l.leaders, 3, "broker {id} {l:?}");
        }
        assert_eq!(plan.bytes(), 9 * 1000);
        assert!(plan.steps.iter().all(|s| s.len() <= 4));
    }

    #[test]
    fn a_decommissioned_broker_is_emptied_and_its_replicas_spread() {
        let mut b = brokers(4, 0);
        b[3].excluded = true;
        let parts = partitions(8, 2, &[1, 2, 3, 4], |_| 10);
        let plan = plan(&b, &parts, Bounds::default());
        assert_valid(&plan, &parts, &b);
        assert_eq!(plan.after[&4].replicas, 0);
        let counts: Vec<usize> = (1..=3).map(|id| plan.after[&id].replicas).collect();
        assert!(
            counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
            "{counts:?}"
        );
    }

    #[test]
    fn moves_keep_replicas_in_distinct_racks() {
        // 6 brokers in 3 racks, RF 3: every partition starts with one replica per rack.
        let b = brokers(6, 3);
        let parts = partitions(9, 3, &[1, 2, 3], |_| 1);
        let plan = plan(&b, &parts, Bounds::default());
        assert_valid(&plan, &parts, &b);
        for m in plan.moves() {
            let racks: BTreeSet<_> = m.to.iter().map(|r| (r - 1) % 3).collect();
            assert_eq!(racks.len(), 3, "one replica per rack: {m:?}");
        }
        let counts: Vec<usize> = plan.after.values().map(|l| l.replicas).collect();
        assert!(
            counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
            "{counts:?}"
        );
    }

    #[test]
    fn bytes_are_balanced_when_counts_already_are() {
        let b = brokers(2, 0);
        // Broker 1 holds the big ones.
        let parts: Vec<PartitionInfo> = (0..6)
            .map(|i| PartitionInfo {
                topic: "t".into(),
                partition: i,
                replicas: vec![if i < 3 { 1 } else { 2 }],
                bytes: if i < 3 { 1000 } else { 10 },
            })
            .collect();
        let plan = plan(&b, &parts, Bounds::default());
        assert_valid(&plan, &parts, &b);
        let gap = plan.after[&1].bytes.abs_diff(plan.after[&2].bytes);
        assert!(gap < 1000, "{:?}", plan.after);
        assert_eq!(plan.after[&1].replicas, 3);
    }

    #[test]
    fn steps_respect_the_concurrency_and_byte_bounds() {
        let b = brokers(4, 0);
        let parts = partitions(12, 3, &[1, 2, 3], |i| 100 + i as u64);
        let bounds = Bounds {
            max_concurrent_moves: 2,
            max_bytes_per_step: 250,
            balance_leaders: false,
            balance_replicas: true,
        };
        let plan = plan(&b, &parts, bounds);
        for step in &plan.steps {
            assert!(step.len() <= 2);
            let bytes: u64 = step.iter().map(|m| m.bytes).sum();
            assert!(step.len() == 1 || bytes <= 250, "{step:?}");
        }
    }

    #[test]
    fn a_balanced_cluster_needs_no_plan() {
        let b = brokers(3, 0);
        let parts = partitions(6, 3, &[1, 2, 3], |_| 5);
        assert!(plan(&b, &parts, Bounds::default()).is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn any_cluster_ends_within_one_replica_per_broker(
            n_brokers in 2i32..7,
            racks in 0usize..4,
            n_parts in 1usize..40,
            rf in 1usize..4,
            first_on in 1usize..7,
            sizes in prop::collection::vec(0u64..10_000, 40),
            exclude in prop::option::of(1i32..7),
        ) {
            let mut b = brokers(n_brokers, racks);
            let on: Vec<i32> = (1..=(first_on as i32).min(n_brokers)).collect();
            let rf = rf.min(on.len());
            if let Some(x) = exclude {
                if let Some(br) = b.iter_mut().find(|br| br.id == x) {
                    br.excluded = true;
                }
            }
            let eligible = b.iter().filter(|br| !br.excluded).count();
            prop_assume!(eligible >= rf);
            let parts = partitions(n_parts, rf, &on, |i| sizes[i]);
            let p = plan(&b, &parts, Bounds::default());
            assert_valid(&p, &parts, &b);
            let counts: Vec<usize> = b
                .iter()
                .filter(|br| !br.excluded)
                .map(|br| p.after[&br.id].replicas)
                .collect();
            // Without racks the counts end within one; with racks the rack rule may hold a
            // broker above that (a rack with fewer brokers must take more replicas).
            if racks == 0 {
                prop_assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
                    "{counts:?} {:?}", p.after);
            }
            for m in p.moves() {
                let rack_count = |rs: &[i32]| rs.iter().map(|r| b.iter().find(|br| br.id == *r).unwrap().rack.clone()).collect::<BTreeSet<_>>().len();
                prop_assert!(rack_count(&m.to) >= rack_count(&m.from).min(m.to.len()) || racks == 0 || exclude.is_some(),
                    "a move never loses rack diversity: {m:?}");
            }
            for br in b.iter().filter(|br| br.excluded) {
                prop_assert_eq!(p.after[&br.id].replicas, 0);
            }
            let total: usize = p.after.values().map(|l| l.replicas).sum();
            prop_assert_eq!(total, n_parts * rf);
        }
    }
}
