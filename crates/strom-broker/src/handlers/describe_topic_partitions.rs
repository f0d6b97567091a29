//! DescribeTopicPartitions (key 75), v0: topics and their partitions with leaders, replicas,
//! ISR and offline replicas, paged by `response_partition_limit` and a cursor (the Java admin
//! client's describeTopics uses it before falling back to Metadata).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::{MetadataImage, TopicImage};
use strom_protocol::ErrorCode;

use super::{decode, respond, ApiSpec, HandlerResult, RequestContext};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::DescribeTopicPartitions, 0, 0);

/// Kafka's `max.request.partition.size.limit` default: at most this many partitions per
/// response whatever the client asks.
const MAX_PARTITIONS_PER_RESPONSE: usize = 2000;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: DescribeTopicPartitionsRequest = decode(&SPEC, header, body)?;
    let image = broker.image();
    let limit = usize::try_from(request.response_partition_limit)
        .unwrap_or(0)
        .clamp(1, MAX_PARTITIONS_PER_RESPONSE);
    // The topics in name order: every topic when none are named (as Kafka does).
    let listing_all = request.topics.is_empty();
    let mut names: Vec<String> = if listing_all {
        image.topics().map(|t| t.name.clone()).collect()
    } else {
        request
            .topics
            .into_iter()
            .map(|t| t.name.0.to_string())
            .collect()
    };
    names.sort();
    names.dedup();
    let (start_topic, start_partition) = match &request.cursor {
        Some(c) => (Some(c.topic_name.0.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    let mut response = DescribeTopicPartitionsResponse::default();
    let mut budget = limit;
    for name in names {
        if start_topic.as_ref().is_some_and(|s| name < *s) {
            continue;
        }
        let first = if start_topic.as_deref() == Some(name.as_str()) {
            start_partition
        } else {
            0
        };
        // DESCRIBE on each topic: left out of "every topic", refused when named.
        if !header.authorized(
            broker,
            super::AclOperation::Describe,
            super::ResourceType::Topic,
            &name,
        ) {
            if !listing_all {
                let mut t = DescribeTopicPartitionsResponseTopic::default();
                t.name = Some(TopicName(StrBytes::from_string(name)));
                t.error_code = ErrorCode::TopicAuthorizationFailed.code();
                response.topics.push(t);
            }
            continue;
        }
        let Some(topic) = image.topic(&name) else {
            let mut t = DescribeTopicPartitionsResponseTopic::default();
            t.name = Some(TopicName(StrBytes::from_string(name)));
            t.error_code = ErrorCode::UnknownTopicOrPartition.code();
            response.topics.push(t);
            continue;
        };
        if budget == 0 {
            let mut cursor = Cursor::default();
            cursor.topic_name = TopicName(StrBytes::from_string(name));
            cursor.partition_index = first;
            response.next_cursor = Some(cursor);
            break;
        }
        let (mut t, next) = describe(&image, topic, first, &mut budget);
        t.topic_authorized_operations =
            header.authorized_operations(broker, super::ResourceType::Topic, &name);
        response.topics.push(t);
        if let Some(next) = next {
            let mut cursor = Cursor::default();
            cursor.topic_name = TopicName(StrBytes::from_string(name));
            cursor.partition_index = next;
            response.next_cursor = Some(cursor);
            break;
        }
    }
    respond(&SPEC, header, &response)
}

/// The partitions of `topic` from `first`, as many as `budget` allows; returns the partition
/// to continue from if the budget ran out first.
fn describe(
    image: &MetadataImage,
    topic: &TopicImage,
    first: i32,
    budget: &mut usize,
) -> (DescribeTopicPartitionsResponseTopic, Option<i32>) {
    let mut t = DescribeTopicPartitionsResponseTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
    t.topic_id = topic.topic_id;
    t.is_internal = strom_metadata::is_internal(&topic.name);
    let mut next = None;
    for (index, p) in topic.partitions.range(first..) {
        if *budget == 0 {
            next = Some(*index);
            break;
        }
        *budget -= 1;
        let mut out = DescribeTopicPartitionsResponsePartition::default();
        out.partition_index = *index;
        out.leader_id = BrokerId(p.leader);
        out.leader_epoch = p.leader_epoch;
        out.replica_nodes = p.replicas.iter().copied().map(BrokerId).collect();
        out.isr_nodes = p.isr.iter().copied().map(BrokerId).collect();
        // KIP-966: the eligible leader replicas and the last known ELR, as committed.
        out.eligible_leader_replicas = Some(
            p.eligible_leader_replicas
                .iter()
                .copied()
                .map(BrokerId)
                .collect(),
        );
        out.last_known_elr = Some(p.last_known_elr.iter().copied().map(BrokerId).collect());
        out.offline_replicas = offline_replicas(image, &p.replicas);
        t.partitions.push(out);
    }
    (t, next)
}

/// Replicas on brokers that are fenced or unknown (not alive in the metadata).
pub(super) fn offline_replicas(image: &MetadataImage, replicas: &[i32]) -> Vec<BrokerId> {
    replicas
        .iter()
        .copied()
        .filter(|r| image.broker(*r).is_none_or(|b| b.fenced))
        .map(BrokerId)
        .collect()
}
