//! ConsumerGroupDescribe (key 69), v0–1: KIP-848 groups with their epochs, assignor, and each
//! member's current and target assignment. A classic or unknown group is GROUP_ID_NOT_FOUND.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as WireAssignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::image::MetadataImage;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::group::consumer::Assignment;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::ConsumerGroupDescribe, 0, 1);

/// `member_type` of v1: 1 = a member of the consumer protocol (0 would be classic).
const CONSUMER_MEMBER_TYPE: i8 = 1;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: ConsumerGroupDescribeRequest = decode(&SPEC, header, body)?;
    let image = broker.image();
    let mut response = ConsumerGroupDescribeResponse::default();
    response.groups = request
        .group_ids
        .into_iter()
        .map(|group_id| {
            let mut out = DescribedGroup::default();
            let authorized = header.authorized(
                broker,
                AclOperation::Describe,
                ResourceType::Group,
                &group_id.0,
            );
            let described = if authorized {
                broker
                    .groups()
                    .check_coordinator(broker.as_ref(), &group_id.0)
                    .and_then(|()| broker.groups().consumer_describe(&group_id.0))
            } else {
                Err(strom_protocol::ErrorCode::GroupAuthorizationFailed)
            };
            match described {
                Ok(g) => {
                    out.group_state = StrBytes::from_static_str(g.state().name());
                    out.group_epoch = g.group_epoch;
                    out.assignment_epoch = g.assignment_epoch;
                    out.assignor_name = StrBytes::from_string(g.assignor_name.clone());
                    out.members = g
                        .members
                        .values()
                        .map(|m| {
                            let mut dm = Member::default();
                            dm.member_id = StrBytes::from_string(m.member_id.clone());
                            dm.instance_id = m.instance_id.clone().map(StrBytes::from_string);
                            dm.rack_id = m.rack_id.clone().map(StrBytes::from_string);
                            dm.member_epoch = m.member_epoch;
                            dm.client_id = StrBytes::from_string(m.client_id.clone());
                            dm.client_host = StrBytes::from_string(m.client_host.clone());
                            dm.subscribed_topic_names = m
                                .subscribed_topic_names
                                .iter()
                                .map(|t| TopicName(StrBytes::from_string(t.clone())))
                                .collect();
                            // Kafka answers "" for a member without a regex.
                            dm.subscribed_topic_regex = Some(StrBytes::from_string(
                                m.subscribed_topic_regex.clone().unwrap_or_default(),
                            ));
                            dm.assignment = wire(&image, &m.assigned);
                            let target = g.target.get(&m.member_id).cloned().unwrap_or_default();
                            dm.target_assignment = wire(&image, &target);
                            dm.member_type = CONSUMER_MEMBER_TYPE;
                            dm
                        })
                        .collect();
                    if request.include_authorized_operations {
                        out.authorized_operations =
                            header.authorized_operations(broker, ResourceType::Group, &group_id.0);
                    }
                }
                Err(e) => {
                    out.error_code = e.code();
                    out.error_message = Some(StrBytes::from_string(format!(
                        "group {} is not a consumer group",
                        group_id.0
                    )));
                }
            }
            out.group_id = group_id;
            out
        })
        .collect();
    respond(&SPEC, header, &response)
}

/// An assignment with topic names from the image (a deleted topic keeps an empty name).
fn wire(image: &MetadataImage, a: &Assignment) -> WireAssignment {
    let mut out = WireAssignment::default();
    out.topic_partitions = a
        .iter()
        .map(|(id, parts)| {
            let mut tp = TopicPartitions::default();
            tp.topic_id = *id;
            let name = image
                .topic_by_id(*id)
                .map(|t| t.name.clone())
                .unwrap_or_default();
            tp.topic_name = TopicName(StrBytes::from_string(name));
            tp.partitions = parts.iter().copied().collect();
            tp
        })
        .collect();
    out
}
