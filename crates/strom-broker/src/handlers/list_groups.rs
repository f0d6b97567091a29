//! ListGroups (key 16), v0–5: every group this coordinator owns, with its state (v4+,
//! filterable, KIP-518) and type (v5+, filterable; all of Strom's groups are "classic").

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{ApiKey, GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use super::{decode, respond, ApiSpec, HandlerResult};
use crate::broker::Broker;
use crate::group::manager::CLASSIC_GROUP_TYPE;
use crate::group::GroupState;

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
    // A filter naming only states that do not exist matches nothing.
    if states.is_empty() && !request.states_filter.is_empty() {
        return respond(&SPEC, header, &response);
    }
    response.groups = broker
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
    respond(&SPEC, header, &response)
}
