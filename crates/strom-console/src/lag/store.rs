//! The lag monitor's memory: per group, per partition, the sliding window of observations and
//! who owns the partition; and the evaluated reports the Burrow API and the notifiers read.
//! Fed one poll at a time (`apply`); knows nothing of Kafka requests.

use std::collections::BTreeMap;

use strom_client::TopicPartition;

use super::rules::{self, Entry, GroupStatus, PartitionStatus, Rules, Window};

/// One group as one poll saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSnapshot {
    /// Whether the group has live members.
    pub active: bool,
    /// Committed offset, end offset and owner (client host, client id) per partition.
    pub partitions: BTreeMap<TopicPartition, PartitionSnapshot>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionSnapshot {
    pub committed: i64,
    pub end_offset: i64,
    pub owner: Option<(String, String)>,
}

#[derive(Debug, Clone)]
struct TrackedPartition {
    window: Window,
    owner: Option<(String, String)>,
}

#[derive(Debug, Clone)]
struct TrackedGroup {
    active: bool,
    partitions: BTreeMap<TopicPartition, TrackedPartition>,
}

/// A partition's evaluation, as the Burrow API reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionReport {
    pub tp: TopicPartition,
    pub owner: String,
    pub client_id: String,
    pub status: PartitionStatus,
    pub start: Entry,
    pub end: Entry,
    pub current_lag: i64,
    pub complete: f64,
    /// The whole window, oldest first.
    pub entries: Vec<Entry>,
}

/// A group's evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupReport {
    pub group: String,
    pub status: GroupStatus,
    /// The fraction of partitions whose window is complete.
    pub complete: f64,
    /// Every partition, by topic and partition.
    pub partitions: Vec<PartitionReport>,
    pub total_lag: i64,
}

impl GroupReport {
    /// The partition with the largest current lag (the first of them on a tie).
    pub fn max_lag(&self) -> Option<&PartitionReport> {
        self.partitions
            .iter()
            .fold(None, |best: Option<&PartitionReport>, p| match best {
                Some(b) if b.current_lag >= p.current_lag => Some(b),
                _ => Some(p),
            })
    }
}

/// Every tracked group. Groups and partitions absent from a poll are forgotten.
#[derive(Debug, Clone)]
pub struct LagStore {
    rules: Rules,
    groups: BTreeMap<String, TrackedGroup>,
}

impl LagStore {
    pub fn new(rules: Rules) -> LagStore {
        LagStore {
            rules,
            groups: BTreeMap::new(),
        }
    }

    pub fn rules(&self) -> Rules {
        self.rules
    }

    /// Records one poll of every group, observed at `now_ms`.
    pub fn apply(&mut self, polled: BTreeMap<String, GroupSnapshot>, now_ms: i64) {
        self.groups.retain(|g, _| polled.contains_key(g));
        for (group, snap) in polled {
            let tracked = self.groups.entry(group).or_insert_with(|| TrackedGroup {
                active: snap.active,
                partitions: BTreeMap::new(),
            });
            tracked.active = snap.active;
            tracked
                .partitions
                .retain(|tp, _| snap.partitions.contains_key(tp));
            for (tp, p) in snap.partitions {
                let entry = Entry {
                    offset: p.committed,
                    lag: (p.end_offset - p.committed).max(0),
                    timestamp_ms: now_ms,
                };
                match tracked.partitions.get_mut(&tp) {
                    Some(t) => {
                        t.window.push(entry, self.rules.intervals);
                        t.owner = p.owner;
                    }
                    None => {
                        tracked.partitions.insert(
                            tp,
                            TrackedPartition {
                                window: Window::new(entry),
                                owner: p.owner,
                            },
                        );
                    }
                }
            }
        }
    }

    /// Forgets a group (Burrow's DELETE); false if it was not tracked.
    pub fn remove(&mut self, group: &str) -> bool {
        self.groups.remove(group).is_some()
    }

    pub fn groups(&self) -> impl Iterator<Item = &str> {
        self.groups.keys().map(String::as_str)
    }

    /// Evaluates a group at `now_ms`; `None` if it is not tracked.
    pub fn report(&self, group: &str, now_ms: i64) -> Option<GroupReport> {
        let g = self.groups.get(group)?;
        let mut partitions = Vec::with_capacity(g.partitions.len());
        for (tp, t) in &g.partitions {
            let (owner, client_id) = t.owner.clone().unwrap_or_default();
            let latest = t.window.latest();
            partitions.push(PartitionReport {
                tp: tp.clone(),
                owner,
                client_id,
                status: rules::evaluate(&t.window, now_ms, g.active, &self.rules),
                start: t.window.oldest(),
                end: latest,
                current_lag: latest.lag,
                complete: rules::completeness(t.window.entries().len(), self.rules.intervals),
                entries: t.window.entries().iter().copied().collect(),
            });
        }
        let complete = if partitions.is_empty() {
            1.0
        } else {
            partitions.iter().filter(|p| p.complete >= 1.0).count() as f64 / partitions.len() as f64
        };
        Some(GroupReport {
            group: group.to_owned(),
            status: rules::group_status(partitions.iter().map(|p| p.status)),
            complete,
            total_lag: partitions.iter().map(|p| p.current_lag).sum(),
            partitions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(active: bool, parts: &[(&str, i32, i64, i64)]) -> GroupSnapshot {
        GroupSnapshot {
            active,
            partitions: parts
                .iter()
                .map(|(t, p, c, e)| {
                    (
                        TopicPartition::new(*t, *p),
                        PartitionSnapshot {
                            committed: *c,
                            end_offset: *e,
                            owner: Some(("/10.0.0.1".into(), "client-1".into())),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn polls_fill_windows_and_reports_sum_the_lag() {
        let mut store = LagStore::new(Rules {
            intervals: 2,
            stop_after_ms: 60_000,
        });
        for (i, (c, e)) in [(5, 5), (6, 9), (7, 12)].into_iter().enumerate() {
            let polled = BTreeMap::from([(
                "g".to_owned(),
                snap(true, &[("t", 0, c, e), ("t", 1, 3, 3)]),
            )]);
            store.apply(polled, 1000 * i as i64);
        }
        let r = store.report("g", 2500).unwrap();
        assert_eq!(r.total_lag, 5);
        assert_eq!(r.complete, 1.0);
        let p0 = &r.partitions[0];
        assert_eq!((p0.start.offset, p0.end.offset, p0.current_lag), (6, 7, 5));
        assert_eq!(p0.status, PartitionStatus::Warn);
        assert_eq!(r.status, GroupStatus::Warn);
        assert_eq!(r.max_lag().unwrap().tp, TopicPartition::new("t", 0));
        assert_eq!(p0.owner, "/10.0.0.1");
        // A group gone from the poll is forgotten, as is a partition no longer committed.
        store.apply(BTreeMap::new(), 3000);
        assert!(store.report("g", 3000).is_none());
        assert!(!store.remove("g"));
    }

    #[test]
    fn lag_is_never_negative() {
        let mut store = LagStore::new(Rules {
            intervals: 3,
            stop_after_ms: 1,
        });
        store.apply(
            BTreeMap::from([("g".to_owned(), snap(false, &[("t", 0, 9, 4)]))]),
            0,
        );
        let r = store.report("g", 10).unwrap();
        assert_eq!(r.total_lag, 0);
        assert_eq!(r.status, GroupStatus::Ok);
        assert!((r.partitions[0].complete - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(r.complete, 0.0);
    }
}
