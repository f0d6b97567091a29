//! DescribeGroups (key 15), v0–5: state, protocol and members of each group; metadata and
//! assignments only for a Stable group, as Kafka's group summary. Unknown groups are "Dead".

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{ApiKey, DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::DescribeGroups, 0, 5);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: DescribeGroupsRequest = decode(&SPEC, header, body)?;
    let version = header.api_version;
    let mut response = DescribeGroupsResponse::default();
    response.groups = request
        .groups
        .into_iter()
        .map(|group_id| {
            let mut out = DescribedGroup::default();
            if !header.authorized(
                broker,
                AclOperation::Describe,
                ResourceType::Group,
                &group_id.0,
            ) {
                out.error_code = strom_protocol::ErrorCode::GroupAuthorizationFailed.code();
                out.group_id = group_id;
                return out;
            }
            // Described only by its coordinator (NOT_COORDINATOR elsewhere).
            if let Err(e) = broker
                .groups()
                .check_coordinator(broker.as_ref(), &group_id.0)
            {
                out.error_code = e.code();
                out.group_id = group_id;
                return out;
            }
            // KIP-848: DescribeGroups does not describe consumer groups.
            if broker.groups().is_consumer_group(&group_id.0) {
                out.error_code = strom_protocol::ErrorCode::GroupIdNotFound.code();
                out.group_id = group_id;
                return out;
            }
            let d = broker.groups().describe(&group_id.0);
            out.group_state = StrBytes::from_static_str(d.state.name());
            out.protocol_type = StrBytes::from_string(d.protocol_type);
            out.protocol_data = StrBytes::from_string(d.protocol_name);
            out.members = d
                .members
                .into_iter()
                .map(|m| {
                    let mut dm = DescribedGroupMember::default();
                    dm.member_id = StrBytes::from_string(m.member_id);
                    if version >= 4 {
                        dm.group_instance_id = m.group_instance_id.map(StrBytes::from_string);
                    }
                    dm.client_id = StrBytes::from_string(m.client_id);
                    dm.client_host = StrBytes::from_string(m.client_host);
                    dm.member_metadata = m.metadata;
                    dm.member_assignment = m.assignment;
                    dm
                })
                .collect();
            if version >= 3 && request.include_authorized_operations {
                out.authorized_operations =
                    header.authorized_operations(broker, ResourceType::Group, &group_id.0);
            }
            out.group_id = group_id;
            out
        })
        .collect();
    respond(&SPEC, header, &response)
}
