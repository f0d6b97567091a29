//! Requests both the consumer and the admin client need: ListOffsets (by leader),
//! OffsetFetch and OffsetCommit (at the group coordinator), with retries.

use std::collections::{BTreeMap, HashMap};

use strom_protocol::kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsTopic,
};
use strom_protocol::kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use strom_protocol::kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use strom_protocol::kafka_protocol::messages::{
    ApiKey, ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use strom_protocol::ErrorCode;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::util::{group_id, sb, topic_name};
use crate::TopicPartition;

/// ListOffsets timestamp for the log end offset.
pub const LATEST: i64 = -1;
/// ListOffsets timestamp for the log start offset.
pub const EARLIEST: i64 = -2;

/// A committed offset as OffsetFetch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

fn group_by_topic<T: Clone>(items: &[(TopicPartition, T)]) -> BTreeMap<String, Vec<(i32, T)>> {
    let mut out: BTreeMap<String, Vec<(i32, T)>> = BTreeMap::new();
    for (tp, v) in items {
        out.entry(tp.topic.clone())
            .or_default()
            .push((tp.partition, v.clone()));
    }
    out
}

impl Client {
    /// Offsets for `(partition, timestamp)` pairs: `LATEST`, `EARLIEST` or a time in ms
    /// (the first offset whose timestamp is >= it; -1 when there is none).
    pub async fn list_offsets(
        &self,
        specs: &[(TopicPartition, i64)],
        isolation_level: i8,
    ) -> Result<HashMap<TopicPartition, (i64, i64)>> {
        self.retry("ListOffsets", || {
            self.list_offsets_once(specs, isolation_level)
        })
        .await
    }

    async fn list_offsets_once(
        &self,
        specs: &[(TopicPartition, i64)],
        isolation_level: i8,
    ) -> Result<HashMap<TopicPartition, (i64, i64)>> {
        let mut by_leader: HashMap<i32, Vec<(TopicPartition, i64)>> = HashMap::new();
        // Metadata once per topic, not per partition: `topic_metadata` clones the topic's
        // partition list, which made a 1,000-partition topic cost a million clones.
        let mut seen = std::collections::HashSet::new();
        for (tp, ts) in specs {
            if seen.insert(tp.topic.as_str()) {
                self.topic_metadata(&tp.topic, false).await?;
            }
            let leader = self.metadata().leader(tp).ok_or_else(|| {
                Error::kafka(ErrorCode::LeaderNotAvailable, format!("no leader for {tp}"))
            })?;
            by_leader.entry(leader).or_default().push((tp.clone(), *ts));
        }
        let mut out = HashMap::new();
        for (leader, items) in by_leader {
            let resp = self
                .send(Some(leader), ApiKey::ListOffsets, |_| {
                    let mut req = ListOffsetsRequest::default();
                    req.replica_id = (-1).into();
                    req.isolation_level = isolation_level;
                    req.topics = group_by_topic(&items)
                        .into_iter()
                        .map(|(t, parts)| {
                            let mut lt = ListOffsetsTopic::default();
                            lt.name = topic_name(&t);
                            lt.partitions = parts
                                .into_iter()
                                .map(|(p, ts)| {
                                    let mut lp = ListOffsetsPartition::default();
                                    lp.partition_index = p;
                                    lp.current_leader_epoch = -1;
                                    lp.timestamp = ts;
                                    lp
                                })
                                .collect();
                            lt
                        })
                        .collect();
                    req
                })
                .await?;
            for t in resp.topics {
                for p in t.partitions {
                    let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                    Error::check(p.error_code, || format!("ListOffsets {tp}"))?;
                    out.insert(tp, (p.offset, p.timestamp));
                }
            }
        }
        Ok(out)
    }

    /// The group's committed offsets (`None` = every partition it has committed).
    pub async fn fetch_committed(
        &self,
        group: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<BTreeMap<TopicPartition, CommittedOffset>> {
        self.retry("OffsetFetch", || async {
            let node = self.coordinator(group).await?;
            let resp = self
                .send(Some(node), ApiKey::OffsetFetch, |_| {
                    let mut req = OffsetFetchRequest::default();
                    req.group_id = group_id(group);
                    req.require_stable = true;
                    req.topics = partitions.map(|ps| {
                        let items: Vec<(TopicPartition, ())> =
                            ps.iter().map(|tp| (tp.clone(), ())).collect();
                        group_by_topic(&items)
                            .into_iter()
                            .map(|(t, parts)| {
                                let mut ot = OffsetFetchRequestTopic::default();
                                ot.name = topic_name(&t);
                                ot.partition_indexes = parts.into_iter().map(|(p, _)| p).collect();
                                ot
                            })
                            .collect()
                    });
                    req
                })
                .await;
            let resp = self.coordinator_result(group, resp)?;
            self.coordinator_result(
                group,
                Error::check(resp.error_code, || {
                    format!("OffsetFetch for group '{group}'")
                }),
            )?;
            let mut out = BTreeMap::new();
            for t in resp.topics {
                for p in t.partitions {
                    let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                    Error::check(p.error_code, || format!("OffsetFetch {tp}"))?;
                    if p.committed_offset >= 0 {
                        out.insert(
                            tp,
                            CommittedOffset {
                                offset: p.committed_offset,
                                leader_epoch: p.committed_leader_epoch,
                                metadata: p.metadata.map(|m| m.to_string()),
                            },
                        );
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    /// Commits offsets for a group; `generation` -1 and an empty member id commit as an
    /// admin (the group must have no active members).
    pub async fn commit_offsets(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        offsets: &BTreeMap<TopicPartition, i64>,
    ) -> Result<()> {
        if offsets.is_empty() {
            return Ok(());
        }
        let items: Vec<(TopicPartition, i64)> =
            offsets.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
        let by_topic = group_by_topic(&items);
        self.retry("OffsetCommit", || async {
            let node = self.coordinator(group).await?;
            let resp = self
                .send(Some(node), ApiKey::OffsetCommit, |_| {
                    let mut req = OffsetCommitRequest::default();
                    req.group_id = group_id(group);
                    req.generation_id_or_member_epoch = generation;
                    req.member_id = sb(member_id);
                    req.group_instance_id = None;
                    req.retention_time_ms = -1;
                    req.topics = by_topic
                        .iter()
                        .map(|(t, parts)| {
                            let mut ct = OffsetCommitRequestTopic::default();
                            ct.name = topic_name(t);
                            ct.partitions = parts
                                .iter()
                                .map(|(p, o)| {
                                    let mut cp = OffsetCommitRequestPartition::default();
                                    cp.partition_index = *p;
                                    cp.committed_offset = *o;
                                    cp.committed_leader_epoch = -1;
                                    cp.committed_metadata = Some(sb(""));
                                    cp
                                })
                                .collect();
                            ct
                        })
                        .collect();
                    req
                })
                .await;
            let resp = self.coordinator_result(group, resp)?;
            for t in resp.topics {
                for p in t.partitions {
                    let r = Error::check(p.error_code, || {
                        format!(
                            "OffsetCommit {}-{} for group '{group}'",
                            t.name.0, p.partition_index
                        )
                    });
                    self.coordinator_result(group, r)?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Forgets the cached coordinator when an error says it moved.
    pub(crate) fn coordinator_result<T>(&self, group: &str, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            if matches!(
                e.code(),
                Some(ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable)
            ) || matches!(e, Error::Disconnected { .. } | Error::Connect { .. })
            {
                self.invalidate_coordinator(group);
            }
        }
        r
    }
}
