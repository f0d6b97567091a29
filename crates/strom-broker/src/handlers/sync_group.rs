//! SyncGroup (key 14), v0–5: followers wait for the leader's assignment, which the
//! coordinator stores in `__consumer_offsets` and hands to every member. v3+ carries static
//! member ids, v5 the protocol type and name (checked against the group's).

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::group::{code, SyncRequest, SyncResult};

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::SyncGroup, 0, 5);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: SyncGroupRequest = decode(&SPEC, header, body)?;
    if !(header.authorized(
        broker,
        AclOperation::Read,
        ResourceType::Group,
        &request.group_id.0,
    )) {
        let mut response = SyncGroupResponse::default();
        response.error_code = ErrorCode::GroupAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    let sync = SyncRequest {
        group_id: request.group_id.0.to_string(),
        generation_id: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|i| i.to_string()),
        protocol_type: request.protocol_type.map(|t| t.to_string()),
        protocol_name: request.protocol_name.map(|n| n.to_string()),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let group_id = sync.group_id.clone();
    let mut result = broker.groups().sync(broker.as_ref(), sync).await;
    if result.error.is_none() {
        if let Err(e) = broker.group_write_replicated(&group_id).await {
            result = SyncResult::error(e);
        }
    }
    let mut response = SyncGroupResponse::default();
    response.error_code = code(result.error);
    if header.api_version >= 5 {
        response.protocol_type = result.protocol_type.map(StrBytes::from_string);
        response.protocol_name = result.protocol_name.map(StrBytes::from_string);
    }
    response.assignment = result.assignment;
    respond(&SPEC, header, &response)
}
