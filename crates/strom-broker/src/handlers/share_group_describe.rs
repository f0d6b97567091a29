//! ShareGroupDescribe (key 77), v1 (Kafka 4.1's): share groups with their members and
//! assignments (`kafka-share-groups.sh --describe --members`).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::share_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ApiKey, ShareGroupDescribeRequest, ShareGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, RequestContext, ResourceType};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::ShareGroupDescribe, 1, 1);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: ShareGroupDescribeRequest = decode(&SPEC, header, body)?;
    let image = broker.image();
    let mut response = ShareGroupDescribeResponse::default();
    for group_id in &request.group_ids {
        let id = group_id.0.to_string();
        let mut out = DescribedGroup::default();
        out.group_id = group_id.clone();
        if !header.authorized(broker, AclOperation::Describe, ResourceType::Group, &id) {
            out.error_code = ErrorCode::GroupAuthorizationFailed.code();
            response.groups.push(out);
            continue;
        }
        let Some(group) = broker.shares().describe(&id) else {
            out.error_code = ErrorCode::GroupIdNotFound.code();
            out.error_message = Some(StrBytes::from_string(format!("Group {id} not found.")));
            response.groups.push(out);
            continue;
        };
        out.group_state = StrBytes::from_static_str(group.state());
        out.group_epoch = group.epoch;
        out.assignment_epoch = group.assignment_epoch;
        out.assignor_name = StrBytes::from_static_str("simple");
        if request.include_authorized_operations {
            out.authorized_operations =
                header.authorized_operations(broker, ResourceType::Group, &id);
        } else {
            out.authorized_operations = i32::MIN;
        }
        out.members = group
            .members
            .iter()
            .map(|(member_id, m)| {
                let mut member = Member::default();
                member.member_id = StrBytes::from_string(member_id.clone());
                member.rack_id = m.rack.clone().map(StrBytes::from_string);
                member.member_epoch = m.epoch;
                member.client_id = StrBytes::from_string(m.client_id.clone());
                member.client_host = StrBytes::from_string(m.client_host.clone());
                member.subscribed_topic_names = m
                    .subscribed
                    .iter()
                    .map(|t| TopicName(StrBytes::from_string(t.clone())))
                    .collect();
                let mut assignment = Assignment::default();
                assignment.topic_partitions = m
                    .assignment
                    .iter()
                    .map(|(topic_id, partitions)| {
                        let mut t = TopicPartitions::default();
                        t.topic_id = *topic_id;
                        t.topic_name = TopicName(StrBytes::from_string(
                            image
                                .topic_by_id(*topic_id)
                                .map(|t| t.name.clone())
                                .unwrap_or_default(),
                        ));
                        t.partitions = partitions.clone();
                        t
                    })
                    .collect();
                member.assignment = assignment;
                member
            })
            .collect();
        response.groups.push(out);
    }
    respond(&SPEC, header, &response)
}
