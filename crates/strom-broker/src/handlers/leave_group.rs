//! LeaveGroup (key 13), v0–5: one member (v0–2) or a batch of members identified by member
//! id or, for static members, instance id alone (v3+, KIP-345). Leaving starts a rebalance.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{ApiKey, LeaveGroupRequest, LeaveGroupResponse};
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::group::code;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::LeaveGroup, 0, 5);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: LeaveGroupRequest = decode(&SPEC, header, body)?;
    if !(header.authorized(
        broker,
        AclOperation::Read,
        ResourceType::Group,
        &request.group_id.0,
    )) {
        let mut response = LeaveGroupResponse::default();
        response.error_code = ErrorCode::GroupAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    let batched = header.api_version >= 3;
    let identities: Vec<_> = if batched {
        request
            .members
            .iter()
            .map(|m| (m.member_id.clone(), m.group_instance_id.clone()))
            .collect()
    } else {
        vec![(request.member_id.clone(), None)]
    };
    let leaving: Vec<(String, Option<String>)> = identities
        .iter()
        .map(|(m, i)| (m.to_string(), i.as_ref().map(|i| i.to_string())))
        .collect();
    let mut response = LeaveGroupResponse::default();
    let mut left = broker
        .groups()
        .leave(broker.as_ref(), &request.group_id.0, &leaving);
    if left.is_ok() {
        if let Err(e) = broker.group_write_replicated(&request.group_id.0).await {
            left = Err(e);
        }
    }
    match left {
        Err(e) => response.error_code = e.code(),
        Ok(results) if !batched => {
            response.error_code = code(results.into_iter().next().and_then(Result::err))
        }
        Ok(results) => {
            response.members = identities
                .into_iter()
                .zip(results)
                .map(|((member_id, instance_id), result)| {
                    let mut m = MemberResponse::default();
                    m.member_id = member_id;
                    m.group_instance_id = instance_id;
                    m.error_code = code(result.err());
                    m
                })
                .collect();
        }
    }
    respond(&SPEC, header, &response)
}
