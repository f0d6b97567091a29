//! DescribeQuorum (key 55), v0–2: the metadata quorum's leader, epoch, high watermark and each
//! voter's log end offset (`kafka-metadata-quorum.sh describe --status / --replication`). Any
//! node answers; the state comes from the active controller, forwarded there when needed. The
//! voter set is the one in the log (it changes in a dynamic quorum, KIP-853): v2 carries each
//! voter's directory id and CONTROLLER endpoint, and observers that joined the membership.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::quorum::{QuorumDescription, VoterState};
use strom_metadata::ControllerOp;
use strom_protocol::ErrorCode;

use super::{decode, respond, ApiSpec, HandlerResult, RequestContext};
use crate::broker::Broker;
use crate::errors::controller_error_code;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::DescribeQuorum, 0, 2);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: DescribeQuorumRequest = decode(&SPEC, header, body)?;
    if !header.authorized_cluster(broker, super::AclOperation::Describe) {
        let mut response = DescribeQuorumResponse::default();
        response.error_code = strom_protocol::ErrorCode::ClusterAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    let version = header.api_version;
    let b = Arc::clone(broker);
    let described = tokio::task::spawn_blocking(move || {
        b.controller_op(ControllerOp::DescribeQuorum).into_quorum()
    })
    .await
    .map_err(|e| strom_metadata::ControllerError::Storage {
        reason: e.to_string(),
    })
    .and_then(|r| r);
    let now = now_ms();
    let mut response = DescribeQuorumResponse::default();
    response.topics = request
        .topics
        .into_iter()
        .map(|t| {
            let is_metadata = t.topic_name.0.as_str() == strom_metadata::CLUSTER_METADATA_TOPIC;
            let mut topic = TopicData::default();
            topic.partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut out = PartitionData::default();
                    out.partition_index = p.partition_index;
                    if !is_metadata || p.partition_index != 0 {
                        out.error_code = ErrorCode::UnknownTopicOrPartition.code();
                        return out;
                    }
                    match &described {
                        Ok(q) => {
                            out.leader_id = BrokerId(q.leader as i32);
                            out.leader_epoch = q.epoch as i32;
                            out.high_watermark = q.high_watermark as i64;
                            out.current_voters = q
                                .voters
                                .iter()
                                .map(|v| replica_state(q, v, now, version))
                                .collect();
                            out.observers = q
                                .observers
                                .iter()
                                .map(|v| replica_state(q, v, now, version))
                                .collect();
                        }
                        Err(e) => {
                            out.error_code = controller_error_code(e).code();
                            if version >= 2 {
                                out.error_message = Some(StrBytes::from_string(e.to_string()));
                            }
                        }
                    }
                    out
                })
                .collect();
            topic.topic_name = t.topic_name;
            topic
        })
        .collect();
    if version >= 2 {
        let name = broker
            .config()
            .controller_listener()
            .map_or_else(|| "CONTROLLER".to_owned(), |l| l.name.clone());
        response.nodes = match &described {
            Ok(q) => q
                .voters
                .iter()
                .chain(&q.observers)
                .filter_map(|v| {
                    let (host, port) = split_endpoint(&v.endpoint)?;
                    Some(node(v.node_id as i32, &name, host, port))
                })
                .collect(),
            Err(_) => broker
                .config()
                .controller_quorum_voters()
                .iter()
                .map(|v| node(v.node_id, &name, &v.host, v.port))
                .collect(),
        };
    }
    respond(&SPEC, header, &response)
}

/// One replica's state. openraft 0.9 keeps no per-follower fetch times: a replica at the high
/// watermark was heard from within the last quorum acknowledgement; others are unknown (-1).
fn replica_state(q: &QuorumDescription, v: &VoterState, now: i64, version: i16) -> ReplicaState {
    let mut r = ReplicaState::default();
    r.replica_id = BrokerId(v.node_id as i32);
    if version >= 2 {
        r.replica_directory_id = v
            .directory_id
            .as_deref()
            .and_then(strom_metadata::storage::uuid_from_kafka_string)
            .unwrap_or_default();
    }
    r.log_end_offset = v.log_end_offset.map_or(-1, |o| o as i64);
    let caught_up =
        v.node_id == q.leader || v.log_end_offset.is_some_and(|o| o >= q.high_watermark);
    let ack = q.millis_since_quorum_ack.unwrap_or(0) as i64;
    let seen = if caught_up { now - ack } else { -1 };
    r.last_fetch_timestamp = seen;
    r.last_caught_up_timestamp = seen;
    r
}

/// `host:port` (IPv6 in brackets) as host and port.
fn split_endpoint(endpoint: &str) -> Option<(&str, u16)> {
    let (host, port) = endpoint.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host, port.parse().ok()?))
}

fn node(node_id: i32, listener_name: &str, host: &str, port: u16) -> Node {
    let mut listener = Listener::default();
    listener.name = StrBytes::from_string(listener_name.to_owned());
    listener.host = StrBytes::from_string(host.to_owned());
    listener.port = port;
    let mut node = Node::default();
    node.node_id = BrokerId(node_id);
    node.listeners = vec![listener];
    node
}

fn now_ms() -> i64 {
    strom_metadata::controller::ops::now_ms()
}
