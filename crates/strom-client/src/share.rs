//! The share consumer (KIP-932): a member of a share group. The broker assigns partitions
//! (shared with other members) and hands each record to one member at a time under an
//! acquisition lock; the member acknowledges each delivered record as accepted, released
//! (deliver again, maybe to another member) or rejected (never again).
//!
//! Records of a `poll` that the caller did not acknowledge are accepted by the next `poll`
//! or `commit` (Kafka's implicit acknowledgement). Acknowledgements ride on the next
//! ShareFetch; `commit` sends them at once (ShareAcknowledge) and reports the outcome.
//! A consumer dropped without `close` leaves its records locked until the locks expire.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_protocol::kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckBatch,
};
use strom_protocol::kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic, ForgottenTopic,
};
use strom_protocol::kafka_protocol::messages::{
    ApiKey, GroupId, ShareAcknowledgeRequest, ShareFetchRequest, ShareGroupDescribeRequest,
    ShareGroupHeartbeatRequest, TopicName,
};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use crate::client::Client;
use crate::config::ClientConfig;
use crate::consumer::ConsumerRecord;
use crate::error::{Error, Result};
use crate::util::sb;
use crate::TopicPartition;

/// How a delivered record is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcknowledgeType {
    /// Processed: done.
    Accept,
    /// Not processed: deliver it again (to any member), up to the delivery limit.
    Release,
    /// Unprocessable: never deliver it again.
    Reject,
}

impl AcknowledgeType {
    fn code(self) -> i8 {
        match self {
            AcknowledgeType::Accept => 1,
            AcknowledgeType::Release => 2,
            AcknowledgeType::Reject => 3,
        }
    }
}

/// The acknowledge type of an offset the broker handed out without a record (a gap).
const GAP: i8 = 0;

#[derive(Debug, Clone)]
pub struct ShareConsumerConfig {
    pub client: ClientConfig,
    pub group_id: String,
    /// Most records one ShareFetch acquires.
    pub max_poll_records: i32,
    /// How long the broker may wait for records.
    pub fetch_max_wait: Duration,
    pub fetch_max_bytes: i32,
}

impl ShareConsumerConfig {
    pub fn new(client: ClientConfig, group_id: impl Into<String>) -> Self {
        Self {
            client,
            group_id: group_id.into(),
            max_poll_records: 500,
            fetch_max_wait: Duration::from_millis(500),
            fetch_max_bytes: 52_428_800,
        }
    }
}

/// A record delivered to this member, with how often it has been delivered (1 = first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRecord {
    pub record: ConsumerRecord,
    pub delivery_count: i16,
}

/// One broker's share session with this member.
#[derive(Debug, Default)]
struct Session {
    /// 0 until opened; the next request's epoch after.
    epoch: i32,
    partitions: BTreeSet<(Uuid, i32)>,
}

/// A share-group member. Not shared between tasks: every method takes `&mut self`.
pub struct ShareConsumer {
    client: Client,
    config: ShareConsumerConfig,
    member_id: String,
    member_epoch: i32,
    topics: Vec<String>,
    /// Assigned partitions by topic id, with the topic's name.
    assignment: BTreeMap<(Uuid, i32), String>,
    heartbeat_interval: Duration,
    next_heartbeat: Instant,
    sessions: HashMap<i32, Session>,
    /// Records of the last poll not acknowledged yet: accepted by the next poll.
    delivered: BTreeMap<(Uuid, i32, i64), ()>,
    /// Acknowledgements waiting to be sent, per partition: offset → type.
    pending: BTreeMap<(Uuid, i32), BTreeMap<i64, i8>>,
}

impl std::fmt::Debug for ShareConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareConsumer")
            .field("group", &self.config.group_id)
            .field("member_id", &self.member_id)
            .field("member_epoch", &self.member_epoch)
            .finish()
    }
}

impl ShareConsumer {
    pub async fn new(config: ShareConsumerConfig) -> Result<ShareConsumer> {
        let client = Client::connect(config.client.clone()).await?;
        Ok(ShareConsumer {
            client,
            config,
            member_id: Uuid::new_v4().to_string(),
            member_epoch: 0,
            topics: Vec::new(),
            assignment: BTreeMap::new(),
            heartbeat_interval: Duration::from_secs(5),
            next_heartbeat: Instant::now(),
            sessions: HashMap::new(),
            delivered: BTreeMap::new(),
            pending: BTreeMap::new(),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The partitions the group gave this member (shared with others).
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assignment
            .iter()
            .map(|((_, p), name)| TopicPartition::new(name.clone(), *p))
            .collect()
    }

    /// Joins the share group for `topics` on the next `poll`.
    pub fn subscribe(&mut self, topics: &[&str]) {
        self.topics = topics.iter().map(|t| t.to_string()).collect();
        self.next_heartbeat = Instant::now();
    }

    /// Sets how `record` (from the last `poll`) is settled; sent with the next fetch or
    /// `commit`.
    pub fn acknowledge(&mut self, record: &ShareRecord, kind: AcknowledgeType) -> Result<()> {
        let topic_id = self.topic_id(&record.record.topic, record.record.partition)?;
        let key = (topic_id, record.record.partition, record.record.offset);
        if self.delivered.remove(&key).is_none() {
            return Err(Error::Config(format!(
                "{}-{} offset {} is not a record of the last poll awaiting acknowledgement",
                record.record.topic, record.record.partition, record.record.offset
            )));
        }
        self.pending
            .entry((topic_id, record.record.partition))
            .or_default()
            .insert(record.record.offset, kind.code());
        Ok(())
    }

    fn topic_id(&self, topic: &str, partition: i32) -> Result<Uuid> {
        self.assignment
            .iter()
            .find(|((_, p), name)| *p == partition && name.as_str() == topic)
            .map(|((id, _), _)| *id)
            .or_else(|| {
                self.client
                    .metadata()
                    .topic(topic)
                    .and_then(|t| Uuid::parse_str(&t.topic_id).ok())
            })
            .ok_or_else(|| Error::Config(format!("unknown topic {topic}")))
    }

    /// Accepts the records of the last poll nobody acknowledged.
    fn accept_unacknowledged(&mut self) {
        for (topic_id, partition, offset) in std::mem::take(&mut self.delivered).into_keys() {
            self.pending
                .entry((topic_id, partition))
                .or_default()
                .insert(offset, AcknowledgeType::Accept.code());
        }
    }

    async fn heartbeat(&mut self, leaving: bool) -> Result<()> {
        let coordinator = self.client.coordinator(&self.config.group_id).await?;
        let epoch = if leaving { -1 } else { self.member_epoch };
        let topics = self.topics.clone();
        let group = self.config.group_id.clone();
        let member_id = self.member_id.clone();
        let joining = self.member_epoch == 0;
        let resp = self
            .client
            .send(Some(coordinator), ApiKey::ShareGroupHeartbeat, |_| {
                let mut req = ShareGroupHeartbeatRequest::default();
                req.group_id = GroupId(sb(&group));
                req.member_id = sb(&member_id);
                req.member_epoch = epoch;
                if joining && !leaving {
                    req.subscribed_topic_names =
                        Some(topics.iter().map(|t| TopicName(sb(t))).collect());
                }
                req
            })
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                if e.invalidates_metadata() {
                    self.client.invalidate_coordinator(&self.config.group_id);
                }
                return Err(e);
            }
        };
        if leaving {
            return Error::check(resp.error_code, || "leaving the share group".to_owned());
        }
        match ErrorCode::try_from_code(resp.error_code) {
            None => {}
            Some(ErrorCode::UnknownMemberId | ErrorCode::FencedMemberEpoch) => {
                // Rejoin with a clean slate.
                self.member_epoch = 0;
                self.assignment.clear();
                self.sessions.clear();
                self.delivered.clear();
                self.pending.clear();
                self.next_heartbeat = Instant::now();
                return Ok(());
            }
            Some(code @ (ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable)) => {
                self.client.invalidate_coordinator(&self.config.group_id);
                return Err(Error::kafka(code, "share group heartbeat"));
            }
            Some(code) => {
                return Err(Error::kafka(
                    code,
                    resp.error_message
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| "share group heartbeat".into()),
                ))
            }
        }
        self.member_epoch = resp.member_epoch;
        self.heartbeat_interval = Duration::from_millis(resp.heartbeat_interval_ms.max(100) as u64);
        self.next_heartbeat = Instant::now() + self.heartbeat_interval;
        if let Some(assignment) = resp.assignment {
            let mut ids: Vec<Uuid> = assignment
                .topic_partitions
                .iter()
                .map(|t| t.topic_id)
                .collect();
            ids.dedup();
            let mut names = self.names_of(&ids);
            if names.len() < ids.len() {
                self.client
                    .refresh_metadata(Some(&self.topics), false)
                    .await?;
                names = self.names_of(&ids);
            }
            let mut next = BTreeMap::new();
            for t in assignment.topic_partitions {
                if let Some(name) = names.get(&t.topic_id) {
                    for p in t.partitions {
                        next.insert((t.topic_id, p), name.clone());
                    }
                }
            }
            self.assignment = next;
        }
        Ok(())
    }

    fn names_of(&self, ids: &[Uuid]) -> HashMap<Uuid, String> {
        let md = self.client.metadata();
        md.topics
            .values()
            .filter_map(|t| Some((Uuid::parse_str(&t.topic_id).ok()?, t.name.clone())))
            .filter(|(id, _)| ids.contains(id))
            .collect()
    }

    /// Records acquired for this member, waiting up to `timeout` for some. Records of the
    /// previous poll not acknowledged are accepted first.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ShareRecord>> {
        if self.topics.is_empty() {
            return Err(Error::Config("poll before subscribe".into()));
        }
        self.accept_unacknowledged();
        let deadline = Instant::now() + timeout;
        loop {
            if self.member_epoch == 0 || Instant::now() >= self.next_heartbeat {
                self.heartbeat(false).await?;
            }
            let records = if self.assignment.is_empty() && self.pending.is_empty() {
                Vec::new()
            } else {
                let left = deadline.saturating_duration_since(Instant::now());
                self.fetch(left.min(self.config.fetch_max_wait)).await?
            };
            if !records.is_empty() || Instant::now() >= deadline {
                return Ok(records);
            }
            if self.assignment.is_empty() {
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(left.min(Duration::from_millis(100))).await;
            }
        }
    }

    /// The partitions of the assignment and of pending acknowledgements, by leader.
    fn by_leader(&self) -> BTreeMap<i32, BTreeSet<(Uuid, i32)>> {
        let md = self.client.metadata();
        let mut out: BTreeMap<i32, BTreeSet<(Uuid, i32)>> = BTreeMap::new();
        let mut names: HashMap<Uuid, String> = HashMap::new();
        for ((id, _), name) in &self.assignment {
            names.insert(*id, name.clone());
        }
        let keys = self.assignment.keys().chain(self.pending.keys());
        for (topic_id, partition) in keys {
            let leader = names
                .get(topic_id)
                .and_then(|n| md.leader(&TopicPartition::new(n.clone(), *partition)))
                .unwrap_or(-1);
            out.entry(leader)
                .or_default()
                .insert((*topic_id, *partition));
        }
        out
    }

    async fn fetch(&mut self, max_wait: Duration) -> Result<Vec<ShareRecord>> {
        let mut groups = self.by_leader();
        if let Some(unknown) = groups.remove(&-1) {
            if !unknown.is_empty() {
                self.client
                    .refresh_metadata(Some(&self.topics), false)
                    .await?;
                groups = self.by_leader();
                groups.remove(&-1);
            }
        }
        let mut out = Vec::new();
        for (leader, partitions) in groups {
            // One fetch waits; the others answer at once with what they have.
            let wait = if out.is_empty() {
                max_wait
            } else {
                Duration::ZERO
            };
            out.extend(self.fetch_from(leader, &partitions, wait).await?);
        }
        Ok(out)
    }

    async fn fetch_from(
        &mut self,
        leader: i32,
        partitions: &BTreeSet<(Uuid, i32)>,
        max_wait: Duration,
    ) -> Result<Vec<ShareRecord>> {
        let session = self.sessions.entry(leader).or_default();
        let wanted: BTreeSet<(Uuid, i32)> = partitions
            .iter()
            .filter(|k| self.assignment.contains_key(k))
            .copied()
            .collect();
        let epoch = session.epoch;
        let mut acks: BTreeMap<(Uuid, i32), BTreeMap<i64, i8>> = BTreeMap::new();
        for key in partitions {
            if let Some(a) = self.pending.remove(key) {
                acks.insert(*key, a);
            }
        }
        // Epoch 0 opens the session with every partition; later requests name the new
        // ones, those with acknowledgements, and forget the ones no longer assigned.
        let mut listed: BTreeSet<(Uuid, i32)> = if epoch == 0 {
            wanted.clone()
        } else {
            wanted.difference(&session.partitions).copied().collect()
        };
        listed.extend(acks.keys().copied());
        let forgotten: Vec<(Uuid, i32)> = if epoch == 0 {
            Vec::new()
        } else {
            session.partitions.difference(&wanted).copied().collect()
        };
        let mut topics: BTreeMap<Uuid, FetchTopic> = BTreeMap::new();
        for key in &listed {
            let mut p = FetchPartition::default();
            p.partition_index = key.1;
            p.partition_max_bytes = self.config.fetch_max_bytes;
            if let Some(a) = acks.get(key) {
                p.acknowledgement_batches = ack_batches(a)
                    .into_iter()
                    .map(|(first, last, types)| {
                        let mut b = AcknowledgementBatch::default();
                        b.first_offset = first;
                        b.last_offset = last;
                        b.acknowledge_types = types;
                        b
                    })
                    .collect();
            }
            topics
                .entry(key.0)
                .or_insert_with(|| {
                    let mut t = FetchTopic::default();
                    t.topic_id = key.0;
                    t
                })
                .partitions
                .push(p);
        }
        let mut forgotten_topics: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
        for (t, p) in &forgotten {
            forgotten_topics.entry(*t).or_default().push(*p);
        }
        let mut req = ShareFetchRequest::default();
        req.group_id = Some(GroupId(sb(&self.config.group_id)));
        req.member_id = Some(sb(&self.member_id));
        req.share_session_epoch = epoch;
        req.max_wait_ms = max_wait.as_millis().min(i32::MAX as u128) as i32;
        req.min_bytes = 1;
        req.max_bytes = self.config.fetch_max_bytes;
        req.max_records = self.config.max_poll_records;
        req.batch_size = self.config.max_poll_records;
        req.topics = topics.into_values().collect();
        req.forgotten_topics_data = forgotten_topics
            .into_iter()
            .map(|(id, ps)| {
                let mut f = ForgottenTopic::default();
                f.topic_id = id;
                f.partitions = ps;
                f
            })
            .collect();
        let resp = self
            .client
            .send(Some(leader), ApiKey::ShareFetch, move |_| req)
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                // The session is unknown after a lost connection: start a new one, and
                // keep the acknowledgements for it.
                self.sessions.remove(&leader);
                for (k, a) in acks {
                    self.pending.entry(k).or_default().extend(a);
                }
                return Err(e);
            }
        };
        match ErrorCode::try_from_code(resp.error_code) {
            None => {}
            Some(ErrorCode::ShareSessionNotFound | ErrorCode::InvalidShareSessionEpoch) => {
                self.sessions.remove(&leader);
                return Ok(Vec::new());
            }
            Some(ErrorCode::UnknownMemberId) => {
                self.sessions.remove(&leader);
                self.member_epoch = 0;
                return Ok(Vec::new());
            }
            Some(code) => return Err(Error::kafka(code, "share fetch")),
        }
        let session = self.sessions.entry(leader).or_default();
        session.epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        if epoch == 0 {
            session.partitions = wanted;
        } else {
            session.partitions.extend(wanted);
            for f in &forgotten {
                session.partitions.remove(f);
            }
        }
        let mut out = Vec::new();
        for topic in resp.responses {
            let name = self
                .assignment
                .get(&(
                    topic.topic_id,
                    topic.partitions.first().map_or(0, |p| p.partition_index),
                ))
                .cloned()
                .or_else(|| self.names_of(&[topic.topic_id]).into_values().next());
            for p in topic.partitions {
                if let Some(code) = ErrorCode::try_from_code(p.acknowledge_error_code) {
                    tracing::warn!(
                        partition = p.partition_index,
                        error = %crate::kafka_error_name(code),
                        "share acknowledgement refused"
                    );
                }
                if p.error_code != 0 {
                    tracing::debug!(
                        partition = p.partition_index,
                        code = p.error_code,
                        "share fetch"
                    );
                    self.client.invalidate_metadata();
                    continue;
                }
                let Some(name) = name.clone() else { continue };
                let tp = TopicPartition::new(name, p.partition_index);
                let records = p.records.unwrap_or_else(Bytes::new);
                let parsed = crate::consumer::parse_records(&tp, &records)?;
                let mut by_offset: BTreeMap<i64, ConsumerRecord> =
                    parsed.into_iter().map(|r| (r.offset, r)).collect();
                for run in p.acquired_records {
                    for offset in run.first_offset..=run.last_offset {
                        let key = (topic.topic_id, p.partition_index, offset);
                        match by_offset.remove(&offset) {
                            Some(record) => {
                                self.delivered.insert(key, ());
                                out.push(ShareRecord {
                                    record,
                                    delivery_count: run.delivery_count,
                                });
                            }
                            // Acquired without a record (a gap): settled as such.
                            None => {
                                self.pending
                                    .entry((topic.topic_id, p.partition_index))
                                    .or_default()
                                    .insert(offset, GAP);
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Sends the acknowledgements so far (the last poll's unacknowledged records are
    /// accepted) and waits for the brokers' answers: the partitions refused, if any, as an
    /// error.
    pub async fn commit(&mut self) -> Result<()> {
        self.accept_unacknowledged();
        self.send_acknowledgements(false).await
    }

    async fn send_acknowledgements(&mut self, closing: bool) -> Result<()> {
        let groups = self.by_leader();
        let mut first_error = None;
        for (leader, partitions) in groups {
            if leader < 0 {
                continue;
            }
            let mut acks: BTreeMap<(Uuid, i32), BTreeMap<i64, i8>> = BTreeMap::new();
            for key in &partitions {
                if let Some(a) = self.pending.remove(key) {
                    acks.insert(*key, a);
                }
            }
            let Some(session) = self.sessions.get_mut(&leader) else {
                continue;
            };
            if session.epoch == 0 || (acks.is_empty() && !closing) {
                continue;
            }
            let epoch = if closing { -1 } else { session.epoch };
            let mut topics: BTreeMap<Uuid, AcknowledgeTopic> = BTreeMap::new();
            for (key, a) in &acks {
                let mut p = AcknowledgePartition::default();
                p.partition_index = key.1;
                p.acknowledgement_batches = ack_batches(a)
                    .into_iter()
                    .map(|(first, last, types)| {
                        let mut b = AckBatch::default();
                        b.first_offset = first;
                        b.last_offset = last;
                        b.acknowledge_types = types;
                        b
                    })
                    .collect();
                topics
                    .entry(key.0)
                    .or_insert_with(|| {
                        let mut t = AcknowledgeTopic::default();
                        t.topic_id = key.0;
                        t
                    })
                    .partitions
                    .push(p);
            }
            let mut req = ShareAcknowledgeRequest::default();
            req.group_id = Some(GroupId(sb(&self.config.group_id)));
            req.member_id = Some(sb(&self.member_id));
            req.share_session_epoch = epoch;
            req.topics = topics.into_values().collect();
            let resp = self
                .client
                .send(Some(leader), ApiKey::ShareAcknowledge, move |_| req)
                .await?;
            if closing {
                self.sessions.remove(&leader);
            } else if let Some(s) = self.sessions.get_mut(&leader) {
                s.epoch = if s.epoch == i32::MAX { 1 } else { s.epoch + 1 };
            }
            if let Some(code) = ErrorCode::try_from_code(resp.error_code) {
                self.sessions.remove(&leader);
                first_error.get_or_insert(Error::kafka(code, "share acknowledge"));
                continue;
            }
            for t in resp.responses {
                for p in t.partitions {
                    if let Some(code) = ErrorCode::try_from_code(p.error_code) {
                        first_error.get_or_insert(Error::kafka(
                            code,
                            format!("acknowledging partition {}", p.partition_index),
                        ));
                    }
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Accepts the last poll's unacknowledged records, closes the share sessions (the
    /// broker releases what this member still holds) and leaves the group.
    pub async fn close(mut self) -> Result<()> {
        self.accept_unacknowledged();
        let acked = self.send_acknowledgements(true).await;
        let left = if self.member_epoch > 0 {
            self.heartbeat(true).await
        } else {
            Ok(())
        };
        acked.and(left)
    }
}

impl crate::Admin {
    /// ShareGroupDescribe: share groups with their members and assignments
    /// (`kafka-share-groups.sh --describe --members`).
    pub async fn describe_share_groups(
        &self,
        groups: &[String],
    ) -> Result<Vec<crate::admin::GroupDescription>> {
        let mut out = Vec::new();
        for g in groups {
            let node = self.client().coordinator(g).await?;
            let resp = self
                .client()
                .send(Some(node), ApiKey::ShareGroupDescribe, |_| {
                    let mut req = ShareGroupDescribeRequest::default();
                    req.group_ids = vec![GroupId(sb(g))];
                    req
                })
                .await;
            let resp = self.client().coordinator_result(g, resp)?;
            for d in resp.groups {
                Error::check(d.error_code, || format!("share group '{g}'"))?;
                out.push(crate::admin::GroupDescription {
                    group_id: d.group_id.0.to_string(),
                    state: d.group_state.to_string(),
                    protocol_type: "share".into(),
                    protocol: d.assignor_name.to_string(),
                    members: d
                        .members
                        .into_iter()
                        .map(|m| crate::admin::MemberDescription {
                            member_id: m.member_id.to_string(),
                            group_instance_id: None,
                            client_id: m.client_id.to_string(),
                            client_host: m.client_host.to_string(),
                            assignment: m
                                .assignment
                                .topic_partitions
                                .iter()
                                .flat_map(|t| {
                                    t.partitions.iter().map(|p| {
                                        TopicPartition::new(t.topic_name.0.to_string(), *p)
                                    })
                                })
                                .collect(),
                        })
                        .collect(),
                });
            }
        }
        Ok(out)
    }
}

/// An offset → type map as acknowledgement batches: runs of consecutive offsets, each with
/// one type when the run's types agree, else one type per offset.
fn ack_batches(acks: &BTreeMap<i64, i8>) -> Vec<(i64, i64, Vec<i8>)> {
    let mut out: Vec<(i64, i64, Vec<i8>)> = Vec::new();
    for (offset, kind) in acks {
        match out.last_mut() {
            Some(run) if run.1 + 1 == *offset => {
                run.1 = *offset;
                run.2.push(*kind);
            }
            _ => out.push((*offset, *offset, vec![*kind])),
        }
    }
    for run in &mut out {
        if run.2.iter().all(|k| *k == run.2[0]) {
            run.2.truncate(1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgements_are_sent_as_runs() {
        let acks: BTreeMap<i64, i8> = [(3, 1), (4, 1), (5, 1), (7, 3), (8, 1), (10, 2)]
            .into_iter()
            .collect();
        assert_eq!(
            ack_batches(&acks),
            vec![(3, 5, vec![1]), (7, 8, vec![3, 1]), (10, 10, vec![2])]
        );
        assert!(ack_batches(&BTreeMap::new()).is_empty());
    }
}
