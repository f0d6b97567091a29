//! OffsetForLeaderEpoch (key 23), v2–4 (KIP-320): the end offset of a leader epoch, from the
//! leader's epoch cache, which consumers use to detect log truncation after a leader change.
//! Answered by the leader only.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
use strom_protocol::ErrorCode;

use super::{decode, respond, ApiSpec, HandlerResult};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::OffsetForLeaderEpoch, 2, 4);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: OffsetForLeaderEpochRequest = decode(&SPEC, header, body)?;
    let image = broker.image();
    let mut response = OffsetForLeaderEpochResponse::default();
    // A follower (replica_id >= 0) needs CLUSTER_ACTION; a consumer DESCRIBE on each topic.
    let follower_allowed = request.replica_id.0 < 0
        || header.authorized_cluster(broker, super::AclOperation::ClusterAction);
    response.topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let mut out = OffsetForLeaderTopicResult::default();
            let allowed = follower_allowed
                && (request.replica_id.0 >= 0
                    || header.authorized(
                        broker,
                        super::AclOperation::Describe,
                        super::ResourceType::Topic,
                        &topic.topic.0,
                    ));
            out.partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut r = EpochEndOffset::default();
                    r.partition = p.partition;
                    r.leader_epoch = -1;
                    r.end_offset = -1;
                    if !allowed {
                        r.error_code = if request.replica_id.0 >= 0 {
                            ErrorCode::ClusterAuthorizationFailed.code()
                        } else {
                            ErrorCode::TopicAuthorizationFailed.code()
                        };
                        return r;
                    }
                    let Some(partition) = broker
                        .replicas()
                        .partition(topic.topic.0.as_str(), p.partition)
                    else {
                        r.error_code = ErrorCode::UnknownTopicOrPartition.code();
                        return r;
                    };
                    if !partition.is_leader() {
                        r.error_code = ErrorCode::NotLeaderOrFollower.code();
                        return r;
                    }
                    if let Err(code) = partition.check_leader_epoch(&image, p.current_leader_epoch)
                    {
                        r.error_code = code.code();
                        return r;
                    }
                    // An epoch newer than any this log has seen: UNDEFINED epoch and offset.
                    (r.leader_epoch, r.end_offset) =
                        partition.log.end_offset_for_epoch(p.leader_epoch);
                    r
                })
                .collect();
            out.topic = topic.topic;
            out
        })
        .collect();
    respond(&SPEC, header, &response)
}
