//! OffsetForLeaderEpoch (key 23), v2–4 (KIP-320): the end offset of a leader epoch, which
//! consumers use to detect log truncation after a leader change. Until replication brings
//! epoch changes, every partition has had a single epoch, so its end offset is the LEO.

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
    response.topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let mut out = OffsetForLeaderTopicResult::default();
            out.partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut r = EpochEndOffset::default();
                    r.partition = p.partition;
                    r.leader_epoch = -1;
                    r.end_offset = -1;
                    let Some(partition) = broker
                        .replicas()
                        .partition(topic.topic.0.as_str(), p.partition)
                    else {
                        r.error_code = ErrorCode::UnknownTopicOrPartition.code();
                        return r;
                    };
                    let epoch = match partition.check_leader_epoch(&image, p.current_leader_epoch) {
                        Ok(epoch) => epoch,
                        Err(code) => {
                            r.error_code = code.code();
                            return r;
                        }
                    };
                    if p.leader_epoch > epoch {
                        // An epoch this log has not seen: Kafka answers UNDEFINED epoch/offset.
                        return r;
                    }
                    r.leader_epoch = epoch;
                    r.end_offset = partition.log.log_end_offset();
                    r
                })
                .collect();
            out.topic = topic.topic;
            out
        })
        .collect();
    respond(&SPEC, header, &response)
}
