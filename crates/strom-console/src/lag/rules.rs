//! Burrow's consumer-lag evaluation rules as pure functions of a partition's sliding window:
//! no I/O and no clock (the caller passes `now`), so every rule is unit- and property-tested.
//!
//! A window holds one entry per poll: the committed offset, the lag at that time and the
//! time. The rules, in the order they are applied:
//! 1. REWIND: the committed offset went backwards inside the window and has not yet come back
//!    to where it was (Burrow checks rewinds before anything else, lag or not).
//! 2. OK: the current lag is zero (a caught-up consumer is fine whatever its commits do).
//! 3. STOP: the group has no live members and the committed offset has not moved for longer
//!    than `stop_after` (the consumer is gone, leaving lag behind).
//! 4. STALL: a complete window with lag in every entry and the same committed offset in
//!    every entry while the group has members (committing, or alive, but not advancing).
//! 5. WARN: a complete window with lag in every entry that never decreases between two
//!    entries and has grown across the window (moving, but falling behind). Burrow also warns
//!    on a lag that stays exactly the same; a steady consumer at a constant distance is not
//!    warned about here.
//! 6. OK otherwise.

use std::collections::VecDeque;

/// One observation of a group partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The committed offset.
    pub offset: i64,
    /// The partition's end offset minus `offset`, never negative.
    pub lag: i64,
    /// When it was read, in ms since the epoch.
    pub timestamp_ms: i64,
}

/// A partition's status (Burrow's partition statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PartitionStatus {
    Ok,
    Warn,
    Stop,
    Stall,
    Rewind,
}

impl PartitionStatus {
    pub fn name(self) -> &'static str {
        match self {
            PartitionStatus::Ok => "OK",
            PartitionStatus::Warn => "WARN",
            PartitionStatus::Stop => "STOP",
            PartitionStatus::Stall => "STALL",
            PartitionStatus::Rewind => "REWIND",
        }
    }
}

/// A group's status: the worst of its partitions, where STOP, STALL and REWIND count as ERR
/// (as Burrow reports groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GroupStatus {
    NotFound,
    Ok,
    Warn,
    Err,
}

impl GroupStatus {
    pub fn name(self) -> &'static str {
        match self {
            GroupStatus::NotFound => "NOTFOUND",
            GroupStatus::Ok => "OK",
            GroupStatus::Warn => "WARN",
            GroupStatus::Err => "ERR",
        }
    }

    /// The group status a partition status contributes.
    pub fn of(p: PartitionStatus) -> GroupStatus {
        match p {
            PartitionStatus::Ok => GroupStatus::Ok,
            PartitionStatus::Warn => GroupStatus::Warn,
            PartitionStatus::Stop | PartitionStatus::Stall | PartitionStatus::Rewind => {
                GroupStatus::Err
            }
        }
    }
}

/// The thresholds the rules use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Entries in a complete window.
    pub intervals: usize,
    /// STOP after the offset has not moved for this long (ms) in a group without members.
    pub stop_after_ms: i64,
}

/// A group partition's sliding window. Invariant: at most `intervals` entries, oldest first,
/// timestamps not decreasing; `changed_at_ms` is when the current committed offset was first
/// seen (the best a poller knows of the commit time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    entries: VecDeque<Entry>,
    changed_at_ms: i64,
}

impl Window {
    pub fn new(first: Entry) -> Window {
        Window {
            entries: VecDeque::from([first]),
            changed_at_ms: first.timestamp_ms,
        }
    }

    /// Adds an observation, dropping the oldest beyond `intervals` entries.
    pub fn push(&mut self, e: Entry, intervals: usize) {
        let last = self.latest();
        if e.offset != last.offset {
            self.changed_at_ms = e.timestamp_ms;
        }
        self.entries.push_back(Entry {
            timestamp_ms: e.timestamp_ms.max(last.timestamp_ms),
            ..e
        });
        while self.entries.len() > intervals.max(1) {
            self.entries.pop_front();
        }
    }

    pub fn entries(&self) -> &VecDeque<Entry> {
        &self.entries
    }

    pub fn latest(&self) -> Entry {
        *self
            .entries
            .back()
            .expect("a window always holds at least one entry")
    }

    pub fn oldest(&self) -> Entry {
        *self
            .entries
            .front()
            .expect("a window always holds at least one entry")
    }

    pub fn changed_at_ms(&self) -> i64 {
        self.changed_at_ms
    }
}

/// The fraction of a complete window this one holds, 0 to 1 (Burrow's `complete`).
pub fn completeness(len: usize, intervals: usize) -> f64 {
    let intervals = intervals.max(1);
    len.min(intervals) as f64 / intervals as f64
}

/// Applies the rules (see the module doc) to a window.
pub fn evaluate(
    window: &Window,
    now_ms: i64,
    group_active: bool,
    rules: &Rules,
) -> PartitionStatus {
    let entries = window.entries();
    let latest = window.latest();
    if rewound(entries) {
        return PartitionStatus::Rewind;
    }
    if latest.lag == 0 {
        return PartitionStatus::Ok;
    }
    if !group_active && now_ms.saturating_sub(window.changed_at_ms()) > rules.stop_after_ms {
        return PartitionStatus::Stop;
    }
    let complete = entries.len() >= rules.intervals.max(1);
    let lag_throughout = entries.iter().all(|e| e.lag > 0);
    if !complete || !lag_throughout {
        return PartitionStatus::Ok;
    }
    if entries.iter().all(|e| e.offset == latest.offset) {
        return if group_active {
            PartitionStatus::Stall
        } else {
            // Not moving, no members, but not yet for `stop_after`.
            PartitionStatus::Ok
        };
    }
    let never_decreasing = entries
        .iter()
        .zip(entries.iter().skip(1))
        .all(|(a, b)| b.lag >= a.lag);
    if never_decreasing && latest.lag > window.oldest().lag {
        return PartitionStatus::Warn;
    }
    PartitionStatus::Ok
}

/// Whether the offset went backwards in the window and is still below where it had been.
fn rewound(entries: &VecDeque<Entry>) -> bool {
    let Some(latest) = entries.back() else {
        return false;
    };
    let mut peak = i64::MIN;
    let mut rewound_from = None;
    for (prev, next) in entries.iter().zip(entries.iter().skip(1)) {
        peak = peak.max(prev.offset);
        if next.offset < prev.offset {
            rewound_from = Some(rewound_from.map_or(peak, |p: i64| p.max(peak)));
        }
    }
    rewound_from.is_some_and(|peak| latest.offset < peak)
}

/// The group's status from its partitions' (OK for a group with none).
pub fn group_status(partitions: impl IntoIterator<Item = PartitionStatus>) -> GroupStatus {
    partitions
        .into_iter()
        .map(GroupStatus::of)
        .max()
        .unwrap_or(GroupStatus::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const RULES: Rules = Rules {
        intervals: 4,
        stop_after_ms: 10_000,
    };

    /// A window from (offset, lag) pairs one second apart, starting at t = 1000 s.
    fn window(points: &[(i64, i64)]) -> Window {
        let entry = |i: usize, (offset, lag): (i64, i64)| Entry {
            offset,
            lag,
            timestamp_ms: 1_000_000 + 1000 * i as i64,
        };
        let mut w = Window::new(entry(0, points[0]));
        for (i, p) in points.iter().enumerate().skip(1) {
            w.push(entry(i, *p), RULES.intervals);
        }
        w
    }

    fn eval(points: &[(i64, i64)], active: bool) -> PartitionStatus {
        let w = window(points);
        evaluate(&w, w.latest().timestamp_ms + 500, active, &RULES)
    }

    #[test]
    fn caught_up_is_ok_even_without_members() {
        assert_eq!(
            eval(&[(10, 0), (10, 0), (10, 0), (10, 0)], false),
            PartitionStatus::Ok
        );
        let w = window(&[(10, 0)]);
        assert_eq!(evaluate(&w, 10_000_000, false, &RULES), PartitionStatus::Ok);
    }

    #[test]
    fn a_lag_that_grows_while_moving_warns() {
        assert_eq!(
            eval(&[(1, 5), (2, 6), (3, 6), (4, 9)], true),
            PartitionStatus::Warn
        );
        // A lag that goes down once is fine.
        assert_eq!(
            eval(&[(1, 5), (2, 4), (3, 6), (4, 9)], true),
            PartitionStatus::Ok
        );
        // A constant lag while moving is fine.
        assert_eq!(
            eval(&[(1, 5), (2, 5), (3, 5), (4, 5)], true),
            PartitionStatus::Ok
        );
        // Not judged before the window is complete.
        assert_eq!(eval(&[(1, 5), (2, 6), (3, 7)], true), PartitionStatus::Ok);
    }

    #[test]
    fn offsets_that_do_not_move_with_members_stall() {
        assert_eq!(
            eval(&[(7, 3), (7, 3), (7, 4), (7, 9)], true),
            PartitionStatus::Stall
        );
        // A zero lag in the window means it was caught up: not stalled.
        assert_eq!(
            eval(&[(7, 0), (7, 3), (7, 4), (7, 9)], true),
            PartitionStatus::Ok
        );
    }

    #[test]
    fn offsets_that_do_not_move_without_members_stop_after_the_threshold() {
        let w = window(&[(7, 3), (7, 3)]);
        let t0 = w.changed_at_ms();
        assert_eq!(
            evaluate(&w, t0 + 10_000, false, &RULES),
            PartitionStatus::Ok
        );
        assert_eq!(
            evaluate(&w, t0 + 10_001, false, &RULES),
            PartitionStatus::Stop
        );
        // With members it is a stall, judged on the window instead.
        assert_eq!(evaluate(&w, t0 + 10_001, true, &RULES), PartitionStatus::Ok);
        // The last change, not the first entry, starts the clock.
        let w = window(&[(5, 3), (5, 3), (7, 3)]);
        assert_eq!(
            evaluate(&w, w.latest().timestamp_ms + 9_000, false, &RULES),
            PartitionStatus::Ok
        );
    }

    #[test]
    fn an_offset_going_back_is_a_rewind_until_it_recovers() {
        assert_eq!(
            eval(&[(10, 0), (10, 0), (3, 7)], true),
            PartitionStatus::Rewind
        );
        assert_eq!(
            eval(&[(10, 0), (3, 7), (8, 2)], true),
            PartitionStatus::Rewind
        );
        assert_eq!(eval(&[(10, 0), (3, 7), (10, 0)], true), PartitionStatus::Ok);
        // Once the rewind leaves the window it is forgotten.
        assert_eq!(
            eval(&[(10, 1), (3, 8), (4, 7), (5, 6), (6, 5)], true),
            PartitionStatus::Ok
        );
    }

    #[test]
    fn a_group_is_as_bad_as_its_worst_partition() {
        use PartitionStatus::*;
        assert_eq!(group_status([]), GroupStatus::Ok);
        assert_eq!(group_status([Ok, Ok]), GroupStatus::Ok);
        assert_eq!(group_status([Ok, Warn]), GroupStatus::Warn);
        assert_eq!(group_status([Warn, Stall, Ok]), GroupStatus::Err);
        assert_eq!(group_status([Stop]), GroupStatus::Err);
        assert_eq!(group_status([Rewind, Warn]), GroupStatus::Err);
    }

    #[test]
    fn completeness_is_the_filled_fraction() {
        assert_eq!(completeness(0, 4), 0.0);
        assert_eq!(completeness(2, 4), 0.5);
        assert_eq!(completeness(9, 4), 1.0);
        assert_eq!(completeness(1, 0), 1.0);
    }

    fn points() -> impl Strategy<Value = Vec<(i64, i64)>> {
        prop::collection::vec((0i64..50, 0i64..50), 1..12)
    }

    proptest! {
        #[test]
        fn the_window_never_exceeds_its_length(ps in points(), n in 1usize..8) {
            let mut w = Window::new(Entry { offset: ps[0].0, lag: ps[0].1, timestamp_ms: 0 });
            for (i, (o, l)) in ps.iter().enumerate() {
                w.push(Entry { offset: *o, lag: *l, timestamp_ms: i as i64 }, n);
                prop_assert!(w.entries().len() <= n);
                prop_assert_eq!(w.latest().offset, *o);
            }
        }

        #[test]
        fn non_decreasing_offsets_caught_up_now_are_ok(ps in points(), active: bool) {
            let mut ps = ps;
            ps.sort_by_key(|p| p.0);
            if let Some(last) = ps.last_mut() { last.1 = 0; }
            prop_assert_eq!(eval(&ps, active), PartitionStatus::Ok);
        }

        #[test]
        fn a_decreasing_lag_with_advancing_offsets_is_ok(start in 0i64..100, lag in 10i64..100, n in 1usize..8) {
            let ps: Vec<(i64, i64)> = (0..n as i64).map(|i| (start + i, lag - i)).collect();
            prop_assert_eq!(eval(&ps, true), PartitionStatus::Ok);
        }

        #[test]
        fn a_final_offset_below_an_earlier_one_is_a_rewind(ps in points()) {
            let w = window(&ps);
            let es: Vec<Entry> = w.entries().iter().copied().collect();
            let last = es[es.len() - 1].offset;
            let went_back = es.windows(2).any(|p| p[1].offset < p[0].offset);
            let below_earlier = es.iter().any(|e| e.offset > last);
            let s = evaluate(&w, w.latest().timestamp_ms, true, &RULES);
            prop_assert_eq!(s == PartitionStatus::Rewind, went_back && below_earlier);
        }
    }
}
