//! ElectLeaders (key 43), v0–2: preferred (0) or unclean (1) leader elections on the active
//! controller, what `kafka-leader-election.sh` sends. A null partition list means every
//! partition, and then only partitions that needed an election are answered, as Kafka does.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ApiKey, ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::controller::elections::ElectionType;
use strom_metadata::ControllerOp;
use strom_protocol::ErrorCode;

use super::{decode, respond, ApiSpec, HandlerResult, RequestContext};
use crate::broker::Broker;
use crate::errors::controller_error_code;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::ElectLeaders, 0, 2);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: ElectLeadersRequest = decode(&SPEC, header, body)?;
    if !header.authorized_cluster(broker, super::AclOperation::Alter) {
        let mut response = ElectLeadersResponse::default();
        response.error_code = strom_protocol::ErrorCode::ClusterAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    let mut response = ElectLeadersResponse::default();
    // v0 has no election type: preferred.
    let election = if header.api_version == 0 {
        Some(ElectionType::Preferred)
    } else {
        ElectionType::from_kafka(request.election_type)
    };
    let Some(election) = election else {
        response.error_code = ErrorCode::InvalidRequest.code();
        return respond(&SPEC, header, &response);
    };
    let partitions: Option<Vec<(String, i32)>> = request.topic_partitions.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.topic.0.to_string();
                t.partitions.into_iter().map(move |p| (name.clone(), p))
            })
            .collect()
    });
    let requested = partitions.clone();
    let answer = broker
        .controller_op(ControllerOp::ElectLeaders {
            election,
            partitions,
        })
        .into_elections();
    let results = match answer {
        Ok(results) => results,
        Err(e) => {
            // Nothing ran (no controller, say): every requested partition gets the error,
            // and v1+ the top-level code too.
            if header.api_version >= 1 {
                response.error_code = controller_error_code(&e).code();
            }
            requested
                .unwrap_or_default()
                .into_iter()
                .map(|tp| (tp, Err(e.clone())))
                .collect()
        }
    };
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for ((topic, partition), result) in results {
        let mut r = PartitionResult::default();
        r.partition_id = partition;
        if let Err(e) = result {
            r.error_code = controller_error_code(&e).code();
            r.error_message = Some(StrBytes::from_string(e.to_string()));
        }
        by_topic.entry(topic).or_default().push(r);
    }
    response.replica_election_results = by_topic
        .into_iter()
        .map(|(topic, partition_result)| {
            let mut t = ReplicaElectionResult::default();
            t.topic = TopicName(StrBytes::from_string(topic));
            t.partition_result = partition_result;
            t
        })
        .collect();
    respond(&SPEC, header, &response)
}
