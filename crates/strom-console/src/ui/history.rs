//! The console's in-memory history for its charts: every `history_interval` the sampler reads
//! every user partition's end offset (one ListOffsets per leader) and every group's committed
//! offsets (ListGroups, OffsetFetch), and keeps the last hour of the cluster's summed end
//! offset and of each group's total lag. Rates are computed when read.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strom_client::{Admin, TopicPartition, LATEST};
use tokio::sync::watch;

use crate::util::now_ms;

/// How far back the history reaches.
pub const HISTORY_SPAN_MS: i64 = 3_600_000;

/// One sample of the cluster: the sum of every partition's end offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterSample {
    pub t_ms: i64,
    pub end_offsets: i64,
    pub partitions: usize,
}

/// One sample of a group: its total lag over the partitions it has committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LagSample {
    pub t_ms: i64,
    pub lag: i64,
}

/// The samples of the last hour.
#[derive(Debug, Default)]
pub struct History {
    pub cluster: VecDeque<ClusterSample>,
    pub groups: HashMap<String, VecDeque<LagSample>>,
}

impl History {
    /// Adds a sample and drops what is older than the span.
    pub fn record(&mut self, sample: ClusterSample, lags: BTreeMap<String, i64>) {
        let horizon = sample.t_ms - HISTORY_SPAN_MS;
        self.cluster.push_back(sample);
        while self.cluster.front().is_some_and(|s| s.t_ms < horizon) {
            self.cluster.pop_front();
        }
        for (group, lag) in lags {
            self.groups.entry(group).or_default().push_back(LagSample {
                t_ms: sample.t_ms,
                lag,
            });
        }
        self.groups.retain(|_, q| {
            while q.front().is_some_and(|s| s.t_ms < horizon) {
                q.pop_front();
            }
            !q.is_empty()
        });
    }

    /// Messages per second between consecutive cluster samples: `(time, rate)` at the later
    /// sample. A drop of the summed end offsets (a deleted topic) counts as 0.
    pub fn throughput(&self) -> Vec<(i64, f64)> {
        self.cluster
            .iter()
            .zip(self.cluster.iter().skip(1))
            .filter(|(a, b)| b.t_ms > a.t_ms)
            .map(|(a, b)| {
                let d = (b.end_offsets - a.end_offsets).max(0) as f64;
                (b.t_ms, d * 1000.0 / (b.t_ms - a.t_ms) as f64)
            })
            .collect()
    }
}

/// Longest one sample may take: a request stuck in the client's retries (a partition whose
/// leader moves, a group whose coordinator loads) must not stop the history.
fn sample_timeout(interval: Duration) -> Duration {
    (interval * 4).clamp(Duration::from_secs(2), Duration::from_secs(10))
}

/// Every user partition's end offset. One ListOffsets for all of them; if that fails, one per
/// topic, so that one topic in trouble (being deleted, its leader moving) leaves the others'
/// offsets in the sample.
async fn end_offsets(
    admin: &Admin,
    specs: &[(TopicPartition, i64)],
    per_call: Duration,
) -> strom_client::Result<HashMap<TopicPartition, (i64, i64)>> {
    let all = tokio::time::timeout(per_call, admin.client().list_offsets(specs, 0)).await;
    if let Ok(Ok(ends)) = all {
        return Ok(ends);
    }
    let mut by_topic: BTreeMap<&str, Vec<(TopicPartition, i64)>> = BTreeMap::new();
    for (tp, ts) in specs {
        by_topic
            .entry(tp.topic.as_str())
            .or_default()
            .push((tp.clone(), *ts));
    }
    let mut ends = HashMap::new();
    let mut last_error = None;
    for (topic, specs) in by_topic {
        match tokio::time::timeout(per_call, admin.client().list_offsets(&specs, 0)).await {
            Ok(Ok(part)) => ends.extend(part),
            Ok(Err(e)) => {
                tracing::debug!(topic, "console history: end offsets skipped: {e}");
                last_error = Some(e);
            }
            Err(_) => tracing::debug!(topic, "console history: end offsets timed out"),
        }
    }
    match last_error {
        Some(e) if ends.is_empty() && !specs.is_empty() => Err(e),
        _ => Ok(ends),
    }
}

/// Reads one sample: every partition's end offset and every group's lag. A group whose
/// offsets cannot be read in time is left out of this sample.
pub async fn sample_once(
    admin: &Admin,
    interval: Duration,
) -> strom_client::Result<(ClusterSample, BTreeMap<String, i64>)> {
    let per_call = sample_timeout(interval);
    // User topics only: the chart shows what clients produce, not commits or metadata.
    let topics = admin.list_topics(false).await?;
    let specs: Vec<(TopicPartition, i64)> = topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| p.leader >= 0)
                .map(|p| (TopicPartition::new(&t.name, p.partition), LATEST))
        })
        .collect();
    let ends = end_offsets(admin, &specs, per_call).await?;
    let t_ms = now_ms();
    let sample = ClusterSample {
        t_ms,
        end_offsets: ends.values().map(|(o, _)| (*o).max(0)).sum(),
        partitions: ends.len(),
    };
    let mut lags = BTreeMap::new();
    for listing in admin.list_groups().await? {
        let committed = match tokio::time::timeout(
            per_call,
            admin.list_group_offsets(&listing.group_id),
        )
        .await
        {
            Ok(Ok(committed)) => committed,
            Ok(Err(e)) => {
                tracing::debug!(group = %listing.group_id, "console history: offsets skipped: {e}");
                continue;
            }
            Err(_) => {
                tracing::debug!(group = %listing.group_id, "console history: offsets timed out");
                continue;
            }
        };
        if committed.is_empty() {
            continue;
        }
        let lag = committed
            .iter()
            .filter_map(|(tp, c)| {
                let (end, _) = ends.get(tp)?;
                Some((end - c.offset.max(0)).max(0))
            })
            .sum();
        lags.insert(listing.group_id, lag);
    }
    Ok((sample, lags))
}

/// The sampler task: one sample per `interval` until `stop` turns true.
pub async fn run(
    admin: Admin,
    history: Arc<Mutex<History>>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        // The whole sample is bounded too (ListGroups and Metadata retry on their own).
        let sample =
            tokio::time::timeout(sample_timeout(interval) * 3, sample_once(&admin, interval))
                .await
                .unwrap_or_else(|_| {
                    Err(strom_client::Error::Timeout {
                        what: "a console history sample".into(),
                        ms: (sample_timeout(interval) * 3).as_millis() as u64,
                    })
                });
        match sample {
            Ok((sample, lags)) => {
                if failing {
                    tracing::info!("console history: sampling again");
                    failing = false;
                }
                history
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .record(sample, lags)
            }
            // Said once when sampling starts to fail, not at every interval.
            Err(e) if !failing => {
                tracing::warn!("console history: samples skipped until this clears: {e}");
                failing = true;
            }
            Err(e) => tracing::debug!("console history: sample skipped: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t_ms: i64, end_offsets: i64) -> ClusterSample {
        ClusterSample {
            t_ms,
            end_offsets,
            partitions: 1,
        }
    }

    #[test]
    fn rates_between_samples_and_the_hour_is_kept() {
        let mut h = History::default();
        h.record(s(0, 0), BTreeMap::from([("g".to_owned(), 5)]));
        h.record(s(1_000, 100), BTreeMap::new());
        h.record(s(3_000, 50), BTreeMap::new());
        assert_eq!(h.throughput(), vec![(1_000, 100.0), (3_000, 0.0)]);
        assert_eq!(h.groups["g"].len(), 1);
        h.record(s(HISTORY_SPAN_MS + 500, 60), BTreeMap::new());
        assert_eq!(h.cluster.front().unwrap().t_ms, 1_000);
        assert!(!h.groups.contains_key("g"), "the group's samples aged out");
    }
}
