//! ListPartitionReassignments (key 46), v0: the reassignments in flight, all or those of the
//! named partitions (`kafka-reassign-partitions.sh --verify`, `--list`). Answered from this
//! node's metadata image, which holds the same committed partition records the controller
//! has.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::controller::reassignments::ongoing_reassignments;

use super::{decode, respond, ApiSpec, HandlerResult, RequestContext};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::ListPartitionReassignments, 0, 0);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: ListPartitionReassignmentsRequest = decode(&SPEC, header, body)?;
    if !header.authorized_cluster(broker, super::AclOperation::Describe) {
        let mut response = ListPartitionReassignmentsResponse::default();
        response.error_code = strom_protocol::ErrorCode::ClusterAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    let filter: Option<Vec<(String, i32)>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .flat_map(|t| {
                let name = t.name.0.to_string();
                t.partition_indexes
                    .into_iter()
                    .map(move |p| (name.clone(), p))
            })
            .collect()
    });
    let image = broker.image();
    let ids = |v: Vec<i32>| v.into_iter().map(BrokerId).collect::<Vec<_>>();
    let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for r in ongoing_reassignments(&image, filter.as_deref()) {
        let mut p = OngoingPartitionReassignment::default();
        p.partition_index = r.partition;
        p.replicas = ids(r.replicas);
        p.adding_replicas = ids(r.adding);
        p.removing_replicas = ids(r.removing);
        by_topic.entry(r.topic).or_default().push(p);
    }
    let mut response = ListPartitionReassignmentsResponse::default();
    response.topics = by_topic
        .into_iter()
        .map(|(name, partitions)| {
            let mut t = OngoingTopicReassignment::default();
            t.name = TopicName(StrBytes::from_string(name));
            t.partitions = partitions;
            t
        })
        .collect();
    respond(&SPEC, header, &response)
}
