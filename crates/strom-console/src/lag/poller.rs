//! The lag poller: every `poll_interval` it reads each group's committed offsets (ListGroups,
//! OffsetFetch), members (DescribeGroups, or ConsumerGroupDescribe for KIP-848 groups) and
//! its partitions' end offsets (ListOffsets) through strom-client's admin API, feeds the
//! store, and sends each group whose status changed to the notifiers. A failed poll is
//! logged and retried at the next tick.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strom_client::{Admin, TopicPartition, LATEST};
use tokio::sync::{mpsc, watch};

use super::rules::GroupStatus;
use super::store::{GroupReport, GroupSnapshot, LagStore, PartitionSnapshot};
use crate::util::now_ms;

/// A group whose status changed, for the notifiers.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusChange {
    pub cluster: String,
    pub previous: GroupStatus,
    pub report: GroupReport,
    pub timestamp_ms: i64,
}

/// Reads one snapshot of every group that has committed offsets.
pub async fn poll_once(admin: &Admin) -> strom_client::Result<BTreeMap<String, GroupSnapshot>> {
    let mut out = BTreeMap::new();
    for listing in admin.list_groups().await? {
        let group = listing.group_id;
        let committed = match admin.list_group_offsets(&group).await {
            Ok(c) if !c.is_empty() => c,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!(%group, "lag poll: offsets of the group not read: {e}");
                continue;
            }
        };
        let mut snap = GroupSnapshot::default();
        let mut owners: HashMap<TopicPartition, (String, String)> = HashMap::new();
        match admin
            .describe_any_groups(std::slice::from_ref(&group))
            .await
        {
            Ok(ds) => {
                for d in ds {
                    snap.active |= !d.members.is_empty();
                    for m in d.members {
                        for tp in m.assignment {
                            owners.insert(tp, (m.client_host.clone(), m.client_id.clone()));
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(%group, "lag poll: group not described: {e}"),
        }
        for (tp, c) in committed {
            let owner = owners.remove(&tp);
            snap.partitions.insert(
                tp,
                PartitionSnapshot {
                    committed: c.offset,
                    end_offset: -1,
                    owner,
                },
            );
        }
        out.insert(group, snap);
    }
    let tps: Vec<TopicPartition> = out
        .values()
        .flat_map(|g| g.partitions.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let ends = end_offsets(admin, &tps).await;
    for g in out.values_mut() {
        g.partitions.retain(|tp, p| match ends.get(tp) {
            Some(end) => {
                p.end_offset = *end;
                true
            }
            // A partition whose end is unknown (a deleted topic) has no lag to judge.
            None => false,
        });
    }
    Ok(out)
}

/// End offsets (high watermarks); partitions that cannot be read are left out.
pub async fn end_offsets(admin: &Admin, tps: &[TopicPartition]) -> HashMap<TopicPartition, i64> {
    let specs: Vec<(TopicPartition, i64)> = tps.iter().map(|tp| (tp.clone(), LATEST)).collect();
    if specs.is_empty() {
        return HashMap::new();
    }
    match admin.client().list_offsets(&specs, 0).await {
        Ok(m) => m.into_iter().map(|(tp, (o, _))| (tp, o)).collect(),
        Err(_) => {
            // One bad topic fails the whole request: ask topic by topic.
            let mut by_topic: BTreeMap<&str, Vec<(TopicPartition, i64)>> = BTreeMap::new();
            for s in &specs {
                by_topic.entry(&s.0.topic).or_default().push(s.clone());
            }
            let mut out = HashMap::new();
            for (topic, specs) in by_topic {
                match admin.client().list_offsets(&specs, 0).await {
                    Ok(m) => out.extend(m.into_iter().map(|(tp, (o, _))| (tp, o))),
                    Err(e) => tracing::debug!(%topic, "lag poll: end offsets not read: {e}"),
                }
            }
            out
        }
    }
}

/// Polls until `stop` turns true; status changes go to `changes`.
pub async fn run(
    admin: Admin,
    cluster: String,
    store: Arc<Mutex<LagStore>>,
    interval: Duration,
    changes: mpsc::Sender<StatusChange>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last: BTreeMap<String, GroupStatus> = BTreeMap::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let polled = match poll_once(&admin).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("lag poll failed: {e}");
                continue;
            }
        };
        let now = now_ms();
        let reports: Vec<GroupReport> = {
            let mut s = store.lock().unwrap_or_else(|p| p.into_inner());
            s.apply(polled, now);
            let groups: Vec<String> = s.groups().map(str::to_owned).collect();
            groups.iter().filter_map(|g| s.report(g, now)).collect()
        };
        last.retain(|g, _| reports.iter().any(|r| &r.group == g));
        for report in reports {
            // A group seen for the first time is announced only when it is not OK.
            let previous = last.get(&report.group).copied().unwrap_or(GroupStatus::Ok);
            last.insert(report.group.clone(), report.status);
            if previous == report.status {
                continue;
            }
            let change = StatusChange {
                cluster: cluster.clone(),
                previous,
                report,
                timestamp_ms: now,
            };
            if changes.try_send(change).is_err() {
                tracing::warn!("lag notifications are backed up; a status change was dropped");
            }
        }
    }
}
