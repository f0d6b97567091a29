//! DescribeQuorum (key 55), v0–2: the metadata quorum's leader, epoch, high watermark and each
//! voter's log end offset (`kafka-metadata-quorum.sh describe --status / --replication`). Any
//! node answers; the state comes from the active controller, forwarded there when needed.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use kafka_protocol::protocol::StrBytes;
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
                                .map(|v| {
                                    let mut r = ReplicaState::default();
                                    r.replica_id = BrokerId(v.node_id as i32);
                                    r.log_end_offset = v.log_end_offset.map_or(-1, |o| o as i64);
                                    // openraft 0.9 keeps no per-follower fetch times: a voter
                                    // at the high watermark was heard from within the last
                                    // quorum acknowledgement; others are unknown (-1).
                                    let caught_up = v.node_id == q.leader
                                        || v.log_end_offset.is_some_and(|o| o >= q.high_watermark);
                                    let ack = q.millis_since_quorum_ack.unwrap_or(0) as i64;
                                    let seen = if caught_up { now - ack } else { -1 };
                                    r.last_fetch_timestamp = seen;
                                    r.last_caught_up_timestamp = seen;
                                    r
                                })
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
        response.nodes = broker
            .config()
            .controller_quorum_voters()
            .iter()
            .map(|v| {
                let mut listener = Listener::default();
                listener.name = StrBytes::from_string(name.clone());
                listener.host = StrBytes::from_string(v.host.clone());
                listener.port = v.port;
                let mut node = Node::default();
                node.node_id = BrokerId(v.node_id);
                node.listeners = vec![listener];
                node
            })
            .collect();
    }
    respond(&SPEC, header, &response)
}

fn now_ms() -> i64 {
    strom_metadata::controller::ops::now_ms()
}
