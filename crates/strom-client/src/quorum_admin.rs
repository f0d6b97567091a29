//! The admin client's metadata-quorum calls (KIP-853, `kafka-metadata-quorum.sh`):
//! DescribeQuorum, AddRaftVoter and RemoveRaftVoter. Directory ids are Kafka Uuids, passed
//! as raw 16 bytes; the CLI prints and parses them in Kafka's base64url form.

use strom_protocol::kafka_protocol::messages::add_raft_voter_request::Listener;
use strom_protocol::kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use strom_protocol::kafka_protocol::messages::describe_quorum_response::ReplicaState;
use strom_protocol::kafka_protocol::messages::{
    AddRaftVoterRequest, ApiKey, DescribeQuorumRequest, RemoveRaftVoterRequest,
};
use strom_protocol::ErrorCode;

use crate::admin::Admin;
use crate::error::{Error, Result};
use crate::util::{sb, topic_name};

/// The metadata log's topic, whose partition 0 the quorum replicates.
const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";

/// One voter or observer as DescribeQuorum reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    pub node_id: i32,
    /// The zero Uuid when the quorum is static (no directory ids).
    pub directory_id: [u8; 16],
    pub log_end_offset: i64,
    /// `host:port` of its controller endpoint, when the answer (v2) carries one.
    pub endpoint: Option<String>,
}

/// The metadata quorum as DescribeQuorum reports it.
#[derive(Debug, Clone)]
pub struct QuorumInfo {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<QuorumReplica>,
    pub observers: Vec<QuorumReplica>,
}

/// A new voter: its id, directory id and controller endpoint (`listener` name, host, port).
#[derive(Debug, Clone)]
pub struct NewVoter {
    pub node_id: i32,
    pub directory_id: [u8; 16],
    pub listener: String,
    pub host: String,
    pub port: u16,
}

impl Admin {
    /// DescribeQuorum of `__cluster_metadata-0`.
    pub async fn describe_quorum(&self) -> Result<QuorumInfo> {
        let r = self
            .client()
            .send(None, ApiKey::DescribeQuorum, |_| {
                let mut partition = PartitionData::default();
                partition.partition_index = 0;
                let mut topic = TopicData::default();
                topic.topic_name = topic_name(CLUSTER_METADATA_TOPIC);
                topic.partitions = vec![partition];
                DescribeQuorumRequest::default().with_topics(vec![topic])
            })
            .await?;
        Error::check(r.error_code, || {
            format!(
                "DescribeQuorum: {}",
                r.error_message.as_deref().unwrap_or_default()
            )
        })?;
        let p = r
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .ok_or_else(|| Error::Protocol {
                api: "DescribeQuorum".into(),
                reason: "no partition in the answer".into(),
            })?;
        Error::check(p.error_code, || {
            format!(
                "DescribeQuorum: {}",
                p.error_message.as_deref().unwrap_or_default()
            )
        })?;
        let endpoint = |id: i32| {
            r.nodes.iter().find(|n| n.node_id.0 == id).and_then(|n| {
                n.listeners.first().map(|l| {
                    if l.host.contains(':') {
                        format!("[{}]:{}", l.host, l.port)
                    } else {
                        format!("{}:{}", l.host, l.port)
                    }
                })
            })
        };
        let replica = |s: &ReplicaState| QuorumReplica {
            node_id: s.replica_id.0,
            directory_id: *s.replica_directory_id.as_bytes(),
            log_end_offset: s.log_end_offset,
            endpoint: endpoint(s.replica_id.0),
        };
        Ok(QuorumInfo {
            leader_id: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            high_watermark: p.high_watermark,
            voters: p.current_voters.iter().map(replica).collect(),
            observers: p.observers.iter().map(replica).collect(),
        })
    }

    /// AddRaftVoter: `voter` (running, formatted to join as an observer) becomes a voter once
    /// it has caught up, within `timeout_ms`.
    pub async fn add_raft_voter(
        &self,
        cluster_id: Option<&str>,
        voter: &NewVoter,
        timeout_ms: i32,
    ) -> Result<()> {
        let r = self
            .client()
            .send(None, ApiKey::AddRaftVoter, |_| {
                let mut listener = Listener::default();
                listener.name = sb(&voter.listener);
                listener.host = sb(&voter.host);
                listener.port = voter.port;
                AddRaftVoterRequest::default()
                    .with_cluster_id(cluster_id.map(sb))
                    .with_timeout_ms(timeout_ms)
                    .with_voter_id(voter.node_id)
                    .with_voter_directory_id(uuid::Uuid::from_bytes(voter.directory_id))
                    .with_listeners(vec![listener])
            })
            .await?;
        check(r.error_code, r.error_message.as_deref(), "AddRaftVoter")
    }

    /// RemoveRaftVoter: `node_id` (with `directory_id`, or the zero Uuid for any) stops
    /// being a voter.
    pub async fn remove_raft_voter(
        &self,
        cluster_id: Option<&str>,
        node_id: i32,
        directory_id: [u8; 16],
    ) -> Result<()> {
        let r = self
            .client()
            .send(None, ApiKey::RemoveRaftVoter, |_| {
                RemoveRaftVoterRequest::default()
                    .with_cluster_id(cluster_id.map(sb))
                    .with_voter_id(node_id)
                    .with_voter_directory_id(uuid::Uuid::from_bytes(directory_id))
            })
            .await?;
        check(r.error_code, r.error_message.as_deref(), "RemoveRaftVoter")
    }
}

fn check(code: i16, message: Option<&str>, api: &str) -> Result<()> {
    match ErrorCode::try_from_code(code) {
        None => Ok(()),
        Some(code) => Err(Error::kafka(
            code,
            format!("{api}: {}", message.unwrap_or_default()),
        )),
    }
}
