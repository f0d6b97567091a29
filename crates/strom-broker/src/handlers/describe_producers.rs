//! DescribeProducers (key 61), v0: the active producers of each partition as its log's
//! producer state knows them (id, epoch, last sequence, first offset of an open transaction).

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, ProducerId,
};
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::DescribeProducers, 0, 0);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: DescribeProducersRequest = decode(&SPEC, header, body)?;
    let mut response = DescribeProducersResponse::default();
    response.topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let mut out = TopicResponse::default();
            let readable = header.authorized(
                broker,
                AclOperation::Read,
                ResourceType::Topic,
                &topic.name.0,
            );
            out.partitions = topic
                .partition_indexes
                .iter()
                .map(|index| {
                    let mut r = PartitionResponse::default();
                    r.partition_index = *index;
                    match broker.replicas().partition(&topic.name.0, *index) {
                        _ if !readable => r.error_code = ErrorCode::TopicAuthorizationFailed.code(),
                        None => r.error_code = ErrorCode::UnknownTopicOrPartition.code(),
                        Some(partition) => {
                            r.active_producers = partition
                                .log
                                .active_producers()
                                .into_iter()
                                .map(|p| {
                                    let mut s = ProducerState::default();
                                    s.producer_id = ProducerId(p.producer_id);
                                    s.producer_epoch = i32::from(p.producer_epoch);
                                    s.last_sequence = p.last_sequence;
                                    s.last_timestamp = -1;
                                    s.coordinator_epoch = p.coordinator_epoch;
                                    s.current_txn_start_offset = p.current_txn_start_offset;
                                    s
                                })
                                .collect();
                        }
                    }
                    r
                })
                .collect();
            out.name = topic.name;
            out
        })
        .collect();
    respond(&SPEC, header, &response)
}
