//! WriteTxnMarkers (key 27), v1 (flexible; v0 was removed in Kafka 4, KIP-896): a transaction
//! coordinator asks this broker, the leader of each listed partition, to append the commit or
//! abort marker of a producer's transaction. A marker is acknowledged once the ISR has it;
//! NOT_LEADER_OR_FOLLOWER tells the coordinator to look the leader up again and retry.
//! Inter-broker only: clients never send it.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{ApiKey, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use strom_protocol::ErrorCode;

use super::{decode, respond, ApiSpec, HandlerResult};
use crate::broker::Broker;
use crate::txn::broker_log::append_marker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::WriteTxnMarkers, 1, 1);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: WriteTxnMarkersRequest = decode(&SPEC, header, body)?;
    let mut response = WriteTxnMarkersResponse::default();
    // CLUSTER_ACTION on the cluster: only brokers write markers, as Kafka checks.
    let allowed = header.authorized_cluster(broker, super::AclOperation::ClusterAction);
    for marker in request.markers {
        let mut result = WritableTxnMarkerResult::default();
        result.producer_id = marker.producer_id;
        for topic in marker.topics {
            let mut out = WritableTxnMarkerTopicResult::default();
            for index in topic.partition_indexes {
                if !allowed {
                    let mut r = WritableTxnMarkerPartitionResult::default();
                    r.partition_index = index;
                    r.error_code = ErrorCode::ClusterAuthorizationFailed.code();
                    out.partitions.push(r);
                    continue;
                }
                let written = tokio::task::block_in_place(|| {
                    append_marker(
                        broker,
                        &topic.name.0,
                        index,
                        (marker.producer_id.0, marker.producer_epoch),
                        marker.transaction_result,
                        marker.coordinator_epoch,
                    )
                });
                let written = match written {
                    Ok(()) => crate::internal_topic::wait_for_isr(broker, &topic.name.0, index)
                        .await
                        .map_err(|e| match e {
                            // Leadership moved before the ISR had the marker.
                            ErrorCode::NotCoordinator => ErrorCode::NotLeaderOrFollower,
                            ErrorCode::CoordinatorNotAvailable => ErrorCode::RequestTimedOut,
                            other => other,
                        }),
                    Err(e) => Err(e),
                };
                let mut r = WritableTxnMarkerPartitionResult::default();
                r.partition_index = index;
                r.error_code = written.err().map_or(0, |e| e.code());
                out.partitions.push(r);
            }
            out.name = topic.name;
            result.topics.push(out);
        }
        response.markers.push(result);
    }
    respond(&SPEC, header, &response)
}
