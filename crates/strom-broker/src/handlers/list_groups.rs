//! ListGroups (key 16), v0–5: every group this coordinator owns, with its state (v4+,
//! filterable, KIP-518) and type (v5+, filterable, KIP-848: "classic" or "consumer"; KIP-932: "share").

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{ApiKey, GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::group::manager::CLASSIC_GROUP_TYPE;
use crate::group::GroupState;

/// The group type (and protocol type) of KIP-848 groups.
const CONSUMER_GROUP_TYPE: &str = "consumer";

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::ListGroups, 0, 5);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: ListGroupsRequest = decode(&SPEC, header, body)?;
    let version = header.api_version;
    let states: Vec<GroupState> = request
        .states_filter
        .iter()
        .filter_map(|s| GroupState::parse(s))
        .collect();
    let types: Vec<String> = request.types_filter.iter().map(|t| t.to_string()).collect();
    let mut response = ListGroupsResponse::default();
    response.groups = consumer_groups(broker, &request, version);
    response
        .groups
        .extend(share_groups(broker, &request, version));
    // A filter naming only states that do not exist matches no classic group.
    if states.is_empty() && !request.states_filter.is_empty() {
        return respond(&SPEC, header, &response);
    }
    let classic: Vec<ListedGroup> = broker
        .groups()
        .list(&states, &types)
        .into_iter()
        .map(|g| {
            let mut out = ListedGroup::default();
            out.group_id = GroupId(StrBytes::from_string(g.group_id));
            out.protocol_type = StrBytes::from_string(g.protocol_type);
            if version >= 4 {
                out.group_state = StrBytes::from_static_str(g.state.name());
            }
            if version >= 5 {
                out.group_type = StrBytes::from_static_str(CLASSIC_GROUP_TYPE);
            }
            out
        })
        .collect();
    response.groups.extend(classic);
    // DESCRIBE on the cluster lists every group; without it, the groups the principal may
    // describe, as Kafka does.
    if !header.allowed_quietly(
        broker,
        AclOperation::Describe,
        ResourceType::Cluster,
        super::CLUSTER_RESOURCE_NAME,
    ) {
        response.groups.retain(|g| {
            header.allowed_quietly(
                broker,
                AclOperation::Describe,
                ResourceType::Group,
                &g.group_id.0,
            )
        });
    }
    response
        .groups
        .sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
    respond(&SPEC, header, &response)
}

/// KIP-848 groups, listed as Kafka does: protocol type and group type "consumer", and the
/// consumer-group states (Empty, Assigning, Reconciling, Stable) for the state filter.
fn consumer_groups(broker: &Broker, request: &ListGroupsRequest, version: i16) -> Vec<ListedGroup> {
    typed_groups(request, version, CONSUMER_GROUP_TYPE, || {
        broker.groups().list_consumer()
    })
}

/// KIP-932 share groups: protocol type and group type "share", states Empty and Stable.
fn share_groups(broker: &Broker, request: &ListGroupsRequest, version: i16) -> Vec<ListedGroup> {
    typed_groups(request, version, "share", || broker.shares().list_groups())
}

/// The groups of one group type (which is also their protocol type), `(id, state)` from
/// `list`, through the request's type and state filters.
fn typed_groups(
    request: &ListGroupsRequest,
    version: i16,
    group_type: &'static str,
    list: impl FnOnce() -> Vec<(String, &'static str)>,
) -> Vec<ListedGroup> {
    let type_ok = request.types_filter.is_empty()
        || request
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case(group_type));
    if !type_ok {
        return Vec::new();
    }
    list()
        .into_iter()
        .filter(|(_, state)| {
            request.states_filter.is_empty()
                || request
                    .states_filter
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(state))
        })
        .map(|(group_id, state)| {
            let mut out = ListedGroup::default();
            out.group_id = GroupId(StrBytes::from_string(group_id));
            out.protocol_type = StrBytes::from_static_str(group_type);
            if version >= 4 {
                out.group_state = StrBytes::from_static_str(state);
            }
            if version >= 5 {
                out.group_type = StrBytes::from_static_str(group_type);
            }
            out
        })
        .collect()
}
