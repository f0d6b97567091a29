//! DescribeShareGroupOffsets (key 90), v0 (Kafka 4.1's): the share-partition start offsets
//! of share groups (`kafka-share-groups.sh --describe`). A null topic list means every
//! partition the group has state for.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::{
    ApiKey, DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, RequestContext, ResourceType};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::DescribeShareGroupOffsets, 0, 0);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: DescribeShareGroupOffsetsRequest = decode(&SPEC, header, body)?;
    let image = broker.image();
    let mut response = DescribeShareGroupOffsetsResponse::default();
    for group in &request.groups {
        let id = group.group_id.0.to_string();
        let mut out = DescribeShareGroupOffsetsResponseGroup::default();
        out.group_id = group.group_id.clone();
        if !header.authorized(broker, AclOperation::Describe, ResourceType::Group, &id) {
            out.error_code = ErrorCode::GroupAuthorizationFailed.code();
            response.groups.push(out);
            continue;
        }
        if !broker.shares().has_group(&id) {
            out.error_code = ErrorCode::GroupIdNotFound.code();
            out.error_message = Some(StrBytes::from_string(format!("Group {id} not found.")));
            response.groups.push(out);
            continue;
        }
        let offsets = broker.shares().offsets(&id);
        let start_of = |topic_id: Uuid, partition: i32| {
            offsets
                .iter()
                .find(|o| o.topic_id == topic_id && o.partition == partition)
                .map(|o| o.start_offset)
        };
        let leader_epoch = |topic_id: Uuid, partition: i32| {
            image
                .topic_by_id(topic_id)
                .and_then(|t| t.partitions.get(&partition))
                .map_or(-1, |p| p.leader_epoch)
        };
        let partition = |topic_id: Uuid, index: i32, start: Option<i64>| {
            let mut p = DescribeShareGroupOffsetsResponsePartition::default();
            p.partition_index = index;
            p.start_offset = start.unwrap_or(-1);
            p.leader_epoch = leader_epoch(topic_id, index);
            p
        };
        match &group.topics {
            Some(topics) => {
                for t in topics {
                    let mut topic = DescribeShareGroupOffsetsResponseTopic::default();
                    topic.topic_name = t.topic_name.clone();
                    match image.topic(&t.topic_name.0) {
                        Some(info) => {
                            topic.topic_id = info.topic_id;
                            topic.partitions = t
                                .partitions
                                .iter()
                                .map(|p| partition(info.topic_id, *p, start_of(info.topic_id, *p)))
                                .collect();
                        }
                        None => {
                            topic.partitions = t
                                .partitions
                                .iter()
                                .map(|p| {
                                    let mut out =
                                        DescribeShareGroupOffsetsResponsePartition::default();
                                    out.partition_index = *p;
                                    out.start_offset = -1;
                                    out.leader_epoch = -1;
                                    out.error_code = ErrorCode::UnknownTopicOrPartition.code();
                                    out
                                })
                                .collect();
                        }
                    }
                    out.topics.push(topic);
                }
            }
            None => {
                let mut by_topic: std::collections::BTreeMap<Uuid, Vec<(i32, i64)>> =
                    Default::default();
                for o in &offsets {
                    by_topic
                        .entry(o.topic_id)
                        .or_default()
                        .push((o.partition, o.start_offset));
                }
                for (topic_id, partitions) in by_topic {
                    let Some(info) = image.topic_by_id(topic_id) else {
                        continue;
                    };
                    if !header.allowed_quietly(
                        broker,
                        AclOperation::Describe,
                        ResourceType::Topic,
                        &info.name,
                    ) {
                        continue;
                    }
                    let mut topic = DescribeShareGroupOffsetsResponseTopic::default();
                    topic.topic_name = TopicName(StrBytes::from_string(info.name.clone()));
                    topic.topic_id = topic_id;
                    topic.partitions = partitions
                        .into_iter()
                        .map(|(p, start)| partition(topic_id, p, Some(start)))
                        .collect();
                    out.topics.push(topic);
                }
            }
        }
        response.groups.push(out);
    }
    respond(&SPEC, header, &response)
}
