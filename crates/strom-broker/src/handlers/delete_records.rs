//! DeleteRecords (key 21), v0–2: advances a partition's log start offset; whole segments
//! below it are deleted. Offset -1 means "up to the high watermark", as in Kafka. Internal
//! topics refuse it (INVALID_TOPIC_EXCEPTION).

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{ApiKey, DeleteRecordsRequest, DeleteRecordsResponse};
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::errors::log_error_code;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::DeleteRecords, 0, 2);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: DeleteRecordsRequest = decode(&SPEC, header, body)?;
    let mut response = DeleteRecordsResponse::default();
    response.topics = tokio::task::block_in_place(|| {
        request
            .topics
            .into_iter()
            .map(|topic| {
                let mut out = DeleteRecordsTopicResult::default();
                // DELETE on the topic, as Kafka checks.
                let deletable = header.authorized(
                    broker,
                    AclOperation::Delete,
                    ResourceType::Topic,
                    &topic.name.0,
                );
                out.partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut r = DeleteRecordsPartitionResult::default();
                        r.partition_index = p.partition_index;
                        r.low_watermark = -1;
                        let name = topic.name.0.as_str();
                        match broker.replicas().partition(name, p.partition_index) {
                            _ if !deletable => {
                                r.error_code = ErrorCode::TopicAuthorizationFailed.code()
                            }
                            // The coordinators' state: records are removed only by compaction.
                            Some(_) if strom_metadata::is_internal(name) => {
                                r.error_code = ErrorCode::InvalidTopicException.code()
                            }
                            None => r.error_code = ErrorCode::UnknownTopicOrPartition.code(),
                            // Followers follow the leader's log start (replica fetcher).
                            Some(partition) if !partition.is_leader() => {
                                r.error_code = ErrorCode::NotLeaderOrFollower.code()
                            }
                            Some(partition) => {
                                let hw = partition.high_watermark();
                                let target = if p.offset == -1 { hw } else { p.offset };
                                if target < 0 || target > hw {
                                    r.error_code = ErrorCode::OffsetOutOfRange.code();
                                } else {
                                    match partition.log.delete_records(target) {
                                        Ok(low) => r.low_watermark = low,
                                        Err(e) => r.error_code = log_error_code(&e).code(),
                                    }
                                }
                            }
                        }
                        r
                    })
                    .collect();
                out.name = topic.name;
                out
            })
            .collect()
    });
    respond(&SPEC, header, &response)
}
