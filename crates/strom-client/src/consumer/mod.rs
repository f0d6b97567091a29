//! The consumer: `assign` partitions or `subscribe` to topics (group membership through the
//! coordinator), then `poll` for records. Fetches go to each partition's leader; the next
//! fetch is started while the caller handles the previous batch of records.

mod assignor;
mod config;
mod fetcher;
mod group;
/// The embedded consumer protocol codecs (for admin tools that read group assignments).
pub(crate) mod group_codec {
    pub(crate) use super::group::decode_assignment;
}
mod records;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

pub use assignor::{cooperative_sticky, range, Assignment, MemberSubscription};
pub use config::{Assignor, ConsumerConfig, OffsetReset};
pub use records::ConsumerRecord;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::ops::{EARLIEST, LATEST};
use crate::TopicPartition;
use fetcher::{FetchOutcome, InFlight};
use group::Membership;

/// The records of a fetched record set (share consumer): control batches skipped.
pub(crate) fn parse_records(
    tp: &TopicPartition,
    data: &bytes::Bytes,
) -> Result<Vec<ConsumerRecord>> {
    Ok(records::parse(tp, data, 0, &[])?.records)
}

/// Called from `poll` when the group changes this consumer's partitions.
pub trait RebalanceListener: Send {
    fn on_partitions_revoked(&mut self, _partitions: &[TopicPartition]) {}
    fn on_partitions_assigned(&mut self, _partitions: &[TopicPartition]) {}
    /// Partitions lost without a clean revoke (the member was fenced); defaults to revoked.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition]) {
        self.on_partitions_revoked(partitions)
    }
}

/// Fetch state of one assigned partition.
#[derive(Debug, Clone, Default)]
pub(crate) struct PartitionState {
    /// Next offset to return; `None` until resolved (committed offset or reset).
    pub(crate) position: Option<i64>,
    pub(crate) paused: bool,
    pub(crate) high_watermark: i64,
}

/// A Kafka consumer. Not shared between tasks: every method takes `&mut self`.
pub struct Consumer {
    client: Client,
    config: ConsumerConfig,
    topics: Vec<String>,
    assigned: BTreeMap<TopicPartition, PartitionState>,
    buffer: VecDeque<ConsumerRecord>,
    in_flight: Option<InFlight>,
    group: Option<Membership>,
    listener: Option<Box<dyn RebalanceListener>>,
    last_commit: Instant,
    /// `poll` leaves a pending rebalance to the caller's `rejoin` (see `set_defer_rejoin`).
    defer_rejoin: bool,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("group", &self.config.group_id)
            .field("assigned", &self.assigned.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Consumer {
    pub async fn new(config: ConsumerConfig) -> Result<Consumer> {
        let client = Client::connect(config.client.clone()).await?;
        let group = config.group_id.clone().map(Membership::new);
        Ok(Consumer {
            client,
            config,
            topics: Vec::new(),
            assigned: BTreeMap::new(),
            buffer: VecDeque::new(),
            in_flight: None,
            group,
            listener: None,
            last_commit: Instant::now(),
            defer_rejoin: false,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Manual assignment (no group membership; commits still go to `group.id` if set).
    pub fn assign(&mut self, partitions: &[TopicPartition]) {
        self.topics.clear();
        self.reset_fetches();
        self.assigned = partitions
            .iter()
            .map(|tp| (tp.clone(), PartitionState::default()))
            .collect();
    }

    /// Subscribes to topics through the group coordinator (needs `group.id`).
    pub fn subscribe(
        &mut self,
        topics: &[&str],
        listener: Option<Box<dyn RebalanceListener>>,
    ) -> Result<()> {
        let Some(g) = &self.group else {
            return Err(Error::Config("subscribe needs group.id".into()));
        };
        g.rejoin.store(true, std::sync::atomic::Ordering::Release);
        self.topics = topics.iter().map(|t| t.to_string()).collect();
        self.listener = listener;
        Ok(())
    }

    /// With `on`, `poll` does not rejoin a rebalancing group while this member owns
    /// partitions: it returns no records, `rebalance_pending` turns true, and the caller
    /// finishes its work on the owned partitions (commits offsets, a transaction, state)
    /// before calling `rejoin`. This is how an application does asynchronous work before its
    /// partitions are revoked (what Java's consumer does inside a synchronous
    /// `onPartitionsRevoked`), e.g. Streams committing a task's transaction.
    pub fn set_defer_rejoin(&mut self, on: bool) {
        self.defer_rejoin = on;
    }

    /// The group asked this member to rejoin (a rebalance started, or it was fenced).
    pub fn rebalance_pending(&self) -> bool {
        !self.topics.is_empty()
            && self
                .group
                .as_ref()
                .is_some_and(|g| g.rejoin.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Rejoins the group now if a rebalance is pending, running the rebalance callbacks.
    pub async fn rejoin(&mut self) -> Result<()> {
        self.ensure_group().await
    }

    /// Partitions currently assigned.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assigned.keys().cloned().collect()
    }

    /// The next offset `poll` returns for a partition, if known.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.assigned.get(tp).and_then(|s| s.position)
    }

    /// The high watermark from the last fetch of a partition (for lag).
    pub fn high_watermark(&self, tp: &TopicPartition) -> Option<i64> {
        self.assigned.get(tp).map(|s| s.high_watermark)
    }

    /// Moves a partition's position; buffered records of it are dropped.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        let state = self
            .assigned
            .get_mut(tp)
            .ok_or_else(|| Error::InvalidArgument(format!("{tp} is not assigned")))?;
        state.position = Some(offset);
        self.buffer
            .retain(|r| !(r.topic == tp.topic && r.partition == tp.partition));
        Ok(())
    }

    /// Seeks to the first offset with a timestamp >= `timestamp_ms` (or the end).
    pub async fn seek_to_timestamp(&mut self, timestamp_ms: i64) -> Result<()> {
        self.seek_all(timestamp_ms).await
    }

    pub async fn seek_to_beginning(&mut self) -> Result<()> {
        self.seek_all(EARLIEST).await
    }

    pub async fn seek_to_end(&mut self) -> Result<()> {
        self.seek_all(LATEST).await
    }

    async fn seek_all(&mut self, spec: i64) -> Result<()> {
        let specs: Vec<(TopicPartition, i64)> =
            self.assigned.keys().map(|tp| (tp.clone(), spec)).collect();
        let offsets = self
            .client
            .list_offsets(&specs, self.config.isolation_level)
            .await?;
        let ends = if spec >= 0 {
            let latest: Vec<_> = self
                .assigned
                .keys()
                .map(|tp| (tp.clone(), LATEST))
                .collect();
            Some(
                self.client
                    .list_offsets(&latest, self.config.isolation_level)
                    .await?,
            )
        } else {
            None
        };
        for (tp, (offset, _)) in offsets {
            let offset = match (&ends, offset) {
                (Some(ends), -1) => ends.get(&tp).map_or(0, |e| e.0),
                _ => offset,
            };
            self.seek(&tp, offset)?;
        }
        Ok(())
    }

    pub fn pause(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            if let Some(s) = self.assigned.get_mut(tp) {
                s.paused = true;
            }
        }
        self.buffer.retain(|r| {
            !partitions
                .iter()
                .any(|tp| tp.topic == r.topic && tp.partition == r.partition)
        });
        // Positions only move when records are returned, so the dropped records are
        // fetched again after resume.
    }

    pub fn resume(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            if let Some(s) = self.assigned.get_mut(tp) {
                s.paused = false;
            }
        }
    }

    pub fn paused(&self) -> Vec<TopicPartition> {
        self.assigned
            .iter()
            .filter(|(_, s)| s.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    fn reset_fetches(&mut self) {
        if let Some(f) = self.in_flight.take() {
            f.abort();
        }
        self.buffer.clear();
    }

    /// Returns up to `max.poll.records` records, waiting at most `timeout` for some.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        let deadline = Instant::now() + timeout;
        self.maybe_auto_commit().await?;
        loop {
            if self.defer_rejoin && !self.assigned.is_empty() && self.rebalance_pending() {
                return Ok(Vec::new());
            }
            self.ensure_group().await?;
            self.ensure_positions().await?;
            if !self.buffer.is_empty() {
                let n = self.buffer.len().min(self.config.max_poll_records);
                let out: Vec<ConsumerRecord> = self.buffer.drain(..n).collect();
                for r in &out {
                    if let Some(s) = self
                        .assigned
                        .get_mut(&TopicPartition::new(r.topic.clone(), r.partition))
                    {
                        s.position = Some(r.offset + 1);
                    }
                }
                self.start_fetch();
                return Ok(out);
            }
            self.start_fetch();
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let Some(f) = self.in_flight.as_mut() else {
                tokio::time::sleep(deadline - now).await;
                return Ok(Vec::new());
            };
            match tokio::time::timeout(deadline - now, f.wait()).await {
                Err(_) => return Ok(Vec::new()),
                Ok(outcome) => {
                    self.in_flight = None;
                    self.absorb(outcome?).await?;
                }
            }
        }
    }

    /// Starts a fetch for the partitions with nothing buffered, unless one is in flight.
    ///
    /// One fetch per broker is in flight and answered in order, so a fetch that long-polls
    /// (`fetch.max.wait.ms`) for partitions with nothing new holds back every other partition
    /// of that broker until it expires. While records are still buffered the application has
    /// work, so such a fetch would only delay the partitions it drains meanwhile. Then a fetch
    /// starts only if a partition is known to be behind its high watermark, and it does not
    /// long-poll; the partitions that look idle ride along (so new data there is seen while
    /// busy partitions keep the buffer full). Once the buffer is empty, every partition is
    /// fetched with the long poll.
    fn start_fetch(&mut self) {
        if self.in_flight.is_some() {
            return;
        }
        // Records are buffered in runs per partition (one run per fetched partition).
        let mut buffered: Vec<(&str, i32)> = Vec::new();
        for r in &self.buffer {
            if buffered.last() != Some(&(r.topic.as_str(), r.partition)) {
                buffered.push((r.topic.as_str(), r.partition));
            }
        }
        let busy = !buffered.is_empty();
        let wanted: Vec<(TopicPartition, i64)> = self
            .assigned
            .iter()
            .filter(|(tp, s)| !s.paused && !buffered.contains(&(tp.topic.as_str(), tp.partition)))
            .filter_map(|(tp, s)| s.position.map(|p| (tp.clone(), p)))
            .collect();
        let behind = |(tp, p): &(TopicPartition, i64)| *p < self.assigned[tp].high_watermark;
        if wanted.is_empty() || (busy && !wanted.iter().any(behind)) {
            return;
        }
        let mut config = self.config.clone();
        if busy {
            config.fetch_max_wait = Duration::ZERO;
        }
        self.in_flight = Some(fetcher::start(self.client.clone(), config, wanted));
    }

    /// Applies fetched data: records whose partition is still at the fetched position.
    async fn absorb(&mut self, outcomes: Vec<FetchOutcome>) -> Result<()> {
        let mut reset = Vec::new();
        for o in outcomes {
            let Some(state) = self.assigned.get_mut(&o.tp) else {
                continue;
            };
            if state.position != Some(o.fetch_offset) || state.paused {
                continue;
            }
            match o.result {
                Ok(parsed) => {
                    state.high_watermark = o.high_watermark;
                    if parsed.records.is_empty() {
                        state.position = Some(parsed.next_offset);
                    } else {
                        self.buffer.extend(parsed.records);
                    }
                }
                Err(e) if e.code() == Some(strom_protocol::ErrorCode::OffsetOutOfRange) => {
                    reset.push((o.tp, e))
                }
                Err(e) if e.is_retriable() => self.client.invalidate_metadata(),
                Err(e) => return Err(e),
            }
        }
        for (tp, e) in reset {
            let spec = match self.config.auto_offset_reset {
                OffsetReset::Earliest => EARLIEST,
                OffsetReset::Latest => LATEST,
                OffsetReset::None => return Err(e),
            };
            let offsets = self
                .client
                .list_offsets(&[(tp.clone(), spec)], self.config.isolation_level)
                .await?;
            if let Some((o, _)) = offsets.get(&tp) {
                self.seek(&tp, *o)?;
            }
        }
        Ok(())
    }

    /// Resolves positions: committed offset when in a group, else `auto.offset.reset`.
    async fn ensure_positions(&mut self) -> Result<()> {
        let missing: Vec<TopicPartition> = self
            .assigned
            .iter()
            .filter(|(_, s)| s.position.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let committed = match &self.config.group_id {
            Some(g) => self.client.fetch_committed(g, Some(&missing)).await?,
            None => BTreeMap::new(),
        };
        let mut to_reset = Vec::new();
        for tp in &missing {
            match committed.get(tp) {
                Some(c) => {
                    self.assigned
                        .get_mut(tp)
                        .expect("missing is assigned")
                        .position = Some(c.offset)
                }
                None => to_reset.push(tp.clone()),
            }
        }
        if to_reset.is_empty() {
            return Ok(());
        }
        let spec = match self.config.auto_offset_reset {
            OffsetReset::Earliest => EARLIEST,
            OffsetReset::Latest => LATEST,
            OffsetReset::None => {
                return Err(Error::kafka(
                    strom_protocol::ErrorCode::OffsetOutOfRange,
                    format!(
                        "no committed offset for {} and auto.offset.reset=none",
                        to_reset[0]
                    ),
                ))
            }
        };
        let specs: Vec<_> = to_reset.iter().map(|tp| (tp.clone(), spec)).collect();
        for (tp, (offset, _)) in self
            .client
            .list_offsets(&specs, self.config.isolation_level)
            .await?
        {
            if let Some(s) = self.assigned.get_mut(&tp) {
                s.position = Some(offset);
            }
        }
        Ok(())
    }

    /// Joins or rejoins the group when needed and applies the assignment (with callbacks).
    async fn ensure_group(&mut self) -> Result<()> {
        if self.topics.is_empty() {
            return Ok(());
        }
        let Some(group) = self.group.as_mut() else {
            return Ok(());
        };
        if !group.rejoin.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let owned: Vec<TopicPartition> = self.assigned.keys().cloned().collect();
        let fenced = group.current().generation_id < 0;
        if fenced && !owned.is_empty() {
            // The coordinator dropped this member: its partitions may already be elsewhere,
            // so they are lost, not revoked (no commit).
            if let Some(l) = self.listener.as_mut() {
                l.on_partitions_lost(&owned);
            }
            self.reset_fetches();
            self.assigned.clear();
        }
        let owned: Vec<TopicPartition> = self.assigned.keys().cloned().collect();
        let group = self.group.as_mut().expect("checked above");
        let cooperative = group.cooperative() && group.current().generation_id >= 0;
        if !cooperative && !owned.is_empty() {
            // Eager protocol: give everything up before joining.
            if self.config.enable_auto_commit {
                let _ = self.commit().await;
            }
            if let Some(l) = self.listener.as_mut() {
                l.on_partitions_revoked(&owned);
            }
            self.reset_fetches();
            self.assigned.clear();
        }
        let group = self.group.as_mut().expect("checked above");
        let owned_now: Vec<TopicPartition> = self.assigned.keys().cloned().collect();
        let new = group
            .join(&self.client, &self.config, &self.topics, &owned_now)
            .await?;
        let new_set: BTreeSet<TopicPartition> = new.iter().cloned().collect();
        let revoked: Vec<TopicPartition> = owned_now
            .iter()
            .filter(|tp| !new_set.contains(*tp))
            .cloned()
            .collect();
        let added: Vec<TopicPartition> = new
            .iter()
            .filter(|tp| !self.assigned.contains_key(*tp))
            .cloned()
            .collect();
        if !revoked.is_empty() {
            if self.config.enable_auto_commit {
                let _ = self.commit().await;
            }
            if let Some(l) = self.listener.as_mut() {
                l.on_partitions_revoked(&revoked);
            }
            self.reset_fetches();
            for tp in &revoked {
                self.assigned.remove(tp);
            }
            // KIP-429: after revoking, rejoin so the freed partitions can be handed out.
            if let Some(g) = &self.group {
                g.rejoin.store(true, std::sync::atomic::Ordering::Release);
            }
        }
        for tp in &added {
            self.assigned.insert(tp.clone(), PartitionState::default());
        }
        if let Some(l) = self.listener.as_mut() {
            l.on_partitions_assigned(&added);
        }
        Ok(())
    }

    async fn maybe_auto_commit(&mut self) -> Result<()> {
        if self.config.enable_auto_commit
            && self.config.group_id.is_some()
            && self.last_commit.elapsed() >= self.config.auto_commit_interval
        {
            self.commit().await?;
        }
        Ok(())
    }

    /// Commits the current positions of all assigned partitions (commitSync).
    pub async fn commit(&mut self) -> Result<()> {
        let offsets: BTreeMap<TopicPartition, i64> = self
            .assigned
            .iter()
            .filter_map(|(tp, s)| s.position.map(|p| (tp.clone(), p)))
            .collect();
        self.commit_offsets(&offsets).await
    }

    /// This member's group identity for `Producer::send_offsets_to_transaction` (KIP-447);
    /// `None` without `group.id`.
    pub fn group_metadata(&self) -> Option<crate::ConsumerGroupMetadata> {
        let group_id = self.config.group_id.clone()?;
        let (generation_id, member_id) = match &self.group {
            Some(m) => {
                let g = m.current();
                (g.generation_id, g.member_id)
            }
            None => (-1, String::new()),
        };
        Some(crate::ConsumerGroupMetadata {
            group_id,
            generation_id,
            member_id,
            group_instance_id: self.config.group_instance_id.clone(),
        })
    }

    /// Commits the given offsets (the next offset to read, as in Kafka).
    pub async fn commit_offsets(&mut self, offsets: &BTreeMap<TopicPartition, i64>) -> Result<()> {
        let Some(group) = self.config.group_id.clone() else {
            return Err(Error::Config("commit needs group.id".into()));
        };
        let (generation, member) = match &self.group {
            Some(m) if !self.topics.is_empty() => {
                let g = m.current();
                (g.generation_id, g.member_id)
            }
            _ => (-1, String::new()),
        };
        self.last_commit = Instant::now();
        let r = self
            .client
            .commit_offsets(&group, generation, &member, offsets)
            .await;
        if let Err(e) = &r {
            if matches!(
                e.code(),
                Some(
                    strom_protocol::ErrorCode::RebalanceInProgress
                        | strom_protocol::ErrorCode::IllegalGeneration
                )
            ) {
                if let Some(m) = &self.group {
                    m.rejoin.store(true, std::sync::atomic::Ordering::Release);
                }
            }
        }
        r
    }

    /// The group's committed offsets for these partitions.
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let Some(group) = &self.config.group_id else {
            return Err(Error::Config("committed needs group.id".into()));
        };
        Ok(self
            .client
            .fetch_committed(group, Some(partitions))
            .await?
            .into_iter()
            .map(|(tp, c)| (tp, c.offset))
            .collect())
    }

    /// Commits (if auto-commit is on), leaves the group and closes connections.
    pub async fn close(mut self) -> Result<()> {
        self.reset_fetches();
        if self.config.enable_auto_commit
            && self.config.group_id.is_some()
            && !self.assigned.is_empty()
        {
            let _ = self.commit().await;
        }
        if !self.topics.is_empty() {
            let owned = self.assignment();
            if let Some(l) = self.listener.as_mut() {
                l.on_partitions_revoked(&owned);
            }
            if let Some(mut g) = self.group.take() {
                let _ = g
                    .leave(&self.client, self.config.group_instance_id.as_deref())
                    .await;
            }
        }
        self.client.close().await;
        Ok(())
    }
}
