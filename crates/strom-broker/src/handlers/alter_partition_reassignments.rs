//! AlterPartitionReassignments (key 45), v0–1: start or cancel (null replicas) partition
//! reassignments on the active controller, what `kafka-reassign-partitions.sh --execute`
//! and `--cancel` send. v1 (KIP-860) refuses a change of replication factor unless the
//! request allows it, with INVALID_REPLICATION_FACTOR, as Kafka does.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, ApiKey, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::controller::reassignments::ReassignmentRequest;
use strom_metadata::{ControllerError, ControllerOp};

use super::{decode, respond, ApiSpec, HandlerResult, RequestContext};
use crate::broker::Broker;
use crate::errors::controller_error_code;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::AlterPartitionReassignments, 0, 1);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: AlterPartitionReassignmentsRequest = decode(&SPEC, header, body)?;
    if !header.authorized_cluster(broker, super::AclOperation::Alter) {
        let mut response = AlterPartitionReassignmentsResponse::default();
        response.error_code = strom_protocol::ErrorCode::ClusterAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    let allow_rf_change = header.api_version == 0 || request.allow_replication_factor_change;
    let image = broker.image();
    let mut refused: Vec<((String, i32), ControllerError)> = Vec::new();
    let mut wanted: Vec<ReassignmentRequest> = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        for p in topic.partitions {
            let key = (name.clone(), p.partition_index);
            let target: Option<Vec<i32>> = p.replicas.map(|r| r.into_iter().map(|b| b.0).collect());
            if let (false, Some(target)) = (allow_rf_change, &target) {
                let current = image
                    .topic(&name)
                    .and_then(|t| t.partitions.get(&p.partition_index))
                    .map(|p| p.original_replicas().len());
                if current.is_some_and(|n| n != target.len()) {
                    refused.push((
                        key,
                        ControllerError::InvalidReplicationFactor {
                            reason: format!(
                                "the reassignment changes the replication factor from {} to {} and the request does not allow it",
                                current.unwrap_or(0),
                                target.len()
                            ),
                        },
                    ));
                    continue;
                }
            }
            wanted.push((key, target));
        }
    }
    let mut response = AlterPartitionReassignmentsResponse::default();
    response.allow_replication_factor_change = allow_rf_change;
    let mut results: Vec<((String, i32), Result<(), ControllerError>)> = Vec::new();
    if !wanted.is_empty() {
        let requested: Vec<(String, i32)> = wanted.iter().map(|(k, _)| k.clone()).collect();
        match broker
            .controller_op(ControllerOp::AlterPartitionReassignments { partitions: wanted })
            .into_reassignments()
        {
            Ok(r) => results = r,
            Err(e) => {
                // Nothing ran: the top-level code says why, and every partition carries it.
                response.error_code = controller_error_code(&e).code();
                response.error_message = Some(StrBytes::from_string(e.to_string()));
                results = requested.into_iter().map(|k| (k, Err(e.clone()))).collect();
            }
        }
    }
    results.extend(refused.into_iter().map(|(k, e)| (k, Err(e))));
    let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
    for ((topic, partition), result) in results {
        let mut r = ReassignablePartitionResponse::default();
        r.partition_index = partition;
        if let Err(e) = result {
            r.error_code = controller_error_code(&e).code();
            r.error_message = Some(StrBytes::from_string(e.to_string()));
        }
        by_topic.entry(topic).or_default().push(r);
    }
    response.responses = by_topic
        .into_iter()
        .map(|(name, partitions)| {
            let mut t = ReassignableTopicResponse::default();
            t.name = TopicName(StrBytes::from_string(name));
            t.partitions = partitions;
            t
        })
        .collect();
    respond(&SPEC, header, &response)
}
