//! The admin client's data-movement calls (what `kafka-reassign-partitions.sh` and
//! `kafka-leader-election.sh` send): AlterPartitionReassignments, ListPartitionReassignments,
//! ElectLeaders, and DescribeLogDirs for partition sizes (what a rebalance plan weighs).

use std::collections::BTreeMap;

use strom_protocol::kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use strom_protocol::kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use strom_protocol::kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use strom_protocol::kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, ApiKey, BrokerId, DescribeLogDirsRequest,
    ElectLeadersRequest, ListPartitionReassignmentsRequest, UnregisterBrokerRequest,
};

use crate::admin::Admin;
use crate::error::{Error, Result};
use crate::util::topic_name;

/// A reassignment in flight, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// A partition and its target replicas (`None` cancels its reassignment).
pub type ReassignmentTarget = ((String, i32), Option<Vec<i32>>);

/// One partition's answer to a per-partition admin call.
pub type PartitionOutcome = ((String, i32), Result<()>);

/// Groups `(topic, partition)` keys by topic, in order.
fn by_topic<T>(
    items: impl IntoIterator<Item = ((String, i32), T)>,
) -> BTreeMap<String, Vec<(i32, T)>> {
    let mut out: BTreeMap<String, Vec<(i32, T)>> = BTreeMap::new();
    for ((topic, partition), v) in items {
        out.entry(topic).or_default().push((partition, v));
    }
    out
}

fn outcome(code: i16, message: Option<String>, topic: &str, partition: i32) -> Result<()> {
    Error::check(code, || match message {
        Some(m) if !m.is_empty() => m,
        _ => format!("{topic}-{partition}"),
    })
}

impl Admin {
    /// AlterPartitionReassignments: a target replica list per partition, `None` to cancel.
    /// The request allows replication-factor changes (v1, KIP-860) only if
    /// `allow_replication_factor_change`.
    pub async fn alter_partition_reassignments(
        &self,
        targets: &[ReassignmentTarget],
        allow_replication_factor_change: bool,
    ) -> Result<Vec<PartitionOutcome>> {
        let grouped = by_topic(targets.iter().cloned());
        let resp = self
            .client()
            .send(
                self.controller_id(),
                ApiKey::AlterPartitionReassignments,
                |_| {
                    let mut req = AlterPartitionReassignmentsRequest::default();
                    req.timeout_ms = 60_000;
                    req.allow_replication_factor_change = allow_replication_factor_change;
                    req.topics = grouped
                        .iter()
                        .map(|(name, parts)| {
                            let mut t = ReassignableTopic::default();
                            t.name = topic_name(name);
                            t.partitions = parts
                                .iter()
                                .map(|(index, target)| {
                                    let mut p = ReassignablePartition::default();
                                    p.partition_index = *index;
                                    p.replicas = target
                                        .as_ref()
                                        .map(|r| r.iter().copied().map(BrokerId).collect());
                                    p
                                })
                                .collect();
                            t
                        })
                        .collect();
                    req
                },
            )
            .await?;
        let mut out = Vec::new();
        for t in resp.responses {
            let name = t.name.0.to_string();
            for p in t.partitions {
                let r = outcome(
                    p.error_code,
                    p.error_message.map(|m| m.to_string()),
                    &name,
                    p.partition_index,
                );
                out.push(((name.clone(), p.partition_index), r));
            }
        }
        if out.is_empty() {
            Error::check(resp.error_code, || {
                resp.error_message
                    .as_deref()
                    .unwrap_or("AlterPartitionReassignments")
                    .to_string()
            })?;
        }
        Ok(out)
    }

    /// ListPartitionReassignments: every reassignment in flight, or those of `partitions`.
    pub async fn list_partition_reassignments(
        &self,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<PartitionReassignment>> {
        let grouped = partitions.map(|ps| by_topic(ps.iter().map(|k| (k.clone(), ()))));
        let resp = self
            .client()
            .send(
                self.controller_id(),
                ApiKey::ListPartitionReassignments,
                |_| {
                    let mut req = ListPartitionReassignmentsRequest::default();
                    req.timeout_ms = 30_000;
                    req.topics = grouped.as_ref().map(|g| {
                        g.iter()
                            .map(|(name, parts)| {
                                let mut t = ListPartitionReassignmentsTopics::default();
                                t.name = topic_name(name);
                                t.partition_indexes = parts.iter().map(|(p, _)| *p).collect();
                                t
                            })
                            .collect()
                    });
                    req
                },
            )
            .await?;
        Error::check(resp.error_code, || {
            resp.error_message
                .as_deref()
                .unwrap_or("ListPartitionReassignments")
                .to_string()
        })?;
        let ids = |v: Vec<BrokerId>| v.into_iter().map(|b| b.0).collect::<Vec<_>>();
        let mut out = Vec::new();
        for t in resp.topics {
            for p in t.partitions {
                out.push(PartitionReassignment {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    replicas: ids(p.replicas),
                    adding: ids(p.adding_replicas),
                    removing: ids(p.removing_replicas),
                });
            }
        }
        Ok(out)
    }

    /// ElectLeaders: preferred (`unclean = false`) or unclean elections for `partitions`
    /// (`None`: every partition; only those needing one are answered).
    pub async fn elect_leaders(
        &self,
        unclean: bool,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<PartitionOutcome>> {
        let grouped = partitions.map(|ps| by_topic(ps.iter().map(|k| (k.clone(), ()))));
        let resp = self
            .client()
            .send(self.controller_id(), ApiKey::ElectLeaders, |_| {
                let mut req = ElectLeadersRequest::default();
                req.election_type = i8::from(unclean);
                req.timeout_ms = 30_000;
                req.topic_partitions = grouped.as_ref().map(|g| {
                    g.iter()
                        .map(|(name, parts)| {
                            let mut t = TopicPartitions::default();
                            t.topic = topic_name(name);
                            t.partitions = parts.iter().map(|(p, _)| *p).collect();
                            t
                        })
                        .collect()
                });
                req
            })
            .await?;
        Error::check(resp.error_code, || "ElectLeaders".into())?;
        let mut out = Vec::new();
        for t in resp.replica_election_results {
            let name = t.topic.0.to_string();
            for p in t.partition_result {
                let r = outcome(
                    p.error_code,
                    p.error_message.map(|m| m.to_string()),
                    &name,
                    p.partition_id,
                );
                out.push(((name.clone(), p.partition_id), r));
            }
        }
        Ok(out)
    }

    /// UnregisterBroker: `broker_id` leaves the cluster (refused while it hosts replicas).
    pub async fn unregister_broker(&self, broker_id: i32) -> Result<()> {
        let resp = self
            .client()
            .send(self.controller_id(), ApiKey::UnregisterBroker, |_| {
                let mut req = UnregisterBrokerRequest::default();
                req.broker_id = BrokerId(broker_id);
                req
            })
            .await?;
        Error::check(resp.error_code, || {
            resp.error_message
                .as_deref()
                .map(str::to_string)
                .unwrap_or_else(|| format!("UnregisterBroker {broker_id}"))
        })
    }

    /// DescribeLogDirs of broker `broker_id`: the size in bytes of each partition it hosts.
    pub async fn partition_sizes(&self, broker_id: i32) -> Result<BTreeMap<(String, i32), i64>> {
        let resp = self
            .client()
            .send(Some(broker_id), ApiKey::DescribeLogDirs, |_| {
                // Null topics: every partition the broker hosts.
                let mut req = DescribeLogDirsRequest::default();
                req.topics = None;
                req
            })
            .await?;
        Error::check(resp.error_code, || {
            format!("DescribeLogDirs of broker {broker_id}")
        })?;
        let mut out = BTreeMap::new();
        for dir in resp.results {
            for t in dir.topics {
                for p in t.partitions {
                    *out.entry((t.name.0.to_string(), p.partition_index))
                        .or_insert(0) += p.partition_size;
                }
            }
        }
        Ok(out)
    }
}
