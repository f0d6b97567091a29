//! ListOffsets (key 2), v1–9: earliest (-2), latest (-1), max timestamp (-3, KIP-734),
//! earliest local (-4) and latest tiered (-5) which equal earliest/latest without tiered
//! storage, and the first offset whose timestamp is at or after a given time. Under
//! read_committed (v2+) latest is the last stable offset.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ListOffsetsRequest, ListOffsetsResponse};
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType, READ_COMMITTED};
use crate::broker::Broker;
use crate::errors::log_error_code;
use crate::replica_manager::Partition;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::ListOffsets, 1, 9);

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: ListOffsetsRequest = decode(&SPEC, header, body)?;
    let version = header.api_version;
    let read_committed = version >= 2 && request.isolation_level == READ_COMMITTED;
    let image = broker.image();
    let mut response = ListOffsetsResponse::default();
    response.topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let mut out = ListOffsetsTopicResponse::default();
            let described = header.authorized(
                broker,
                AclOperation::Describe,
                ResourceType::Topic,
                topic.name.0.as_str(),
            );
            out.partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut r = ListOffsetsPartitionResponse::default();
                    r.partition_index = p.partition_index;
                    r.timestamp = -1;
                    r.offset = -1;
                    if !described {
                        r.error_code = ErrorCode::TopicAuthorizationFailed.code();
                        return r;
                    }
                    match broker
                        .replicas()
                        .partition(topic.name.0.as_str(), p.partition_index)
                    {
                        None => r.error_code = ErrorCode::UnknownTopicOrPartition.code(),
                        Some(partition) if !partition.is_leader() => {
                            r.error_code = ErrorCode::NotLeaderOrFollower.code()
                        }
                        Some(partition) => {
                            let epoch = match partition
                                .check_leader_epoch(&image, p.current_leader_epoch)
                            {
                                Ok(epoch) => epoch,
                                Err(code) => {
                                    r.error_code = code.code();
                                    return r;
                                }
                            };
                            match lookup(&partition, p.timestamp, read_committed) {
                                Ok((timestamp, offset)) => {
                                    r.timestamp = timestamp;
                                    r.offset = offset;
                                    if version >= 4 {
                                        r.leader_epoch = epoch;
                                    }
                                }
                                Err(code) => r.error_code = code.code(),
                            }
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

/// (timestamp, offset) for one query; -1/-1 when no record matches a timestamp query.
fn lookup(
    partition: &Partition,
    query: i64,
    read_committed: bool,
) -> Result<(i64, i64), ErrorCode> {
    let log = &partition.log;
    match query {
        LATEST | LATEST_TIERED if read_committed => Ok((-1, partition.last_stable_offset())),
        LATEST | LATEST_TIERED => Ok((-1, partition.high_watermark())),
        EARLIEST | EARLIEST_LOCAL => Ok((-1, log.log_start_offset())),
        MAX_TIMESTAMP => match log.max_timestamp_offset() {
            Ok(Some(found)) => Ok((found.timestamp, found.offset)),
            Ok(None) => Ok((-1, -1)),
            Err(e) => Err(log_error_code(&e)),
        },
        t if t < 0 => Err(ErrorCode::InvalidRequest),
        t => match log.offset_for_timestamp(t) {
            // read_committed: an offset at or past the LSO is not fetchable yet (as Kafka).
            Ok(Some(found)) if read_committed && found.offset >= partition.last_stable_offset() => {
                Ok((-1, -1))
            }
            Ok(Some(found)) => Ok((found.timestamp, found.offset)),
            Ok(None) => Ok((-1, -1)),
            Err(e) => Err(log_error_code(&e)),
        },
    }
}
