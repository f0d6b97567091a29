//! OffsetDelete (key 47), v0: deletes committed offsets of a group (KIP-496). An Empty group
//! loses any; a live consumer group keeps those of topics it is subscribed to
//! (GROUP_SUBSCRIBED_TO_TOPIC); other live groups refuse (NON_EMPTY_GROUP).

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetDeleteRequest, OffsetDeleteResponse};
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::group::{code, TopicPartition};

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::OffsetDelete, 0, 0);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: OffsetDeleteRequest = decode(&SPEC, header, body)?;
    let image = broker.image();
    let mut known = Vec::new();
    let mut response = OffsetDeleteResponse::default();
    // DELETE on the group, then READ on each topic, as Kafka checks.
    if !header.authorized(
        broker,
        AclOperation::Delete,
        ResourceType::Group,
        &request.group_id.0,
    ) {
        response.error_code = ErrorCode::GroupAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    let mut denied: Vec<String> = Vec::new();
    for topic in &request.topics {
        let exists = image.topic(&topic.name.0);
        if !header.authorized(
            broker,
            AclOperation::Read,
            ResourceType::Topic,
            &topic.name.0,
        ) {
            denied.push(topic.name.0.to_string());
            continue;
        }
        for p in &topic.partitions {
            if exists.is_some_and(|t| t.partitions.contains_key(&p.partition_index)) {
                known.push((topic.name.0.to_string(), p.partition_index));
            }
        }
    }
    let deleted = broker
        .groups()
        .delete_offsets(broker.as_ref(), &request.group_id.0, &known);
    let deleted = match deleted {
        Ok(results) => broker
            .group_write_replicated(&request.group_id.0)
            .await
            .map(|()| results),
        e => e,
    };
    let results = match deleted {
        Ok(results) => results,
        Err(e) => {
            response.error_code = e.code();
            return respond(&SPEC, header, &response);
        }
    };
    let result_of = |tp: &TopicPartition| match results.iter().find(|(k, _)| k == tp) {
        Some((_, e)) => code(*e),
        None if denied.contains(&tp.0) => ErrorCode::TopicAuthorizationFailed.code(),
        None => ErrorCode::UnknownTopicOrPartition.code(),
    };
    response.topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let mut out = OffsetDeleteResponseTopic::default();
            out.partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut r = OffsetDeleteResponsePartition::default();
                    r.partition_index = p.partition_index;
                    r.error_code = result_of(&(topic.name.0.to_string(), p.partition_index));
                    r
                })
                .collect();
            out.name = topic.name;
            out
        })
        .collect();
    respond(&SPEC, header, &response)
}
