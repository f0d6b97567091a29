//! JoinGroup (key 11), v0–9: enters the join barrier of a classic group. v4+ first answers
//! MEMBER_ID_REQUIRED (KIP-394), v5+ carries static member ids (KIP-345), v9 may tell a
//! static leader to skip assignment (KIP-814). v0–1 stay for old clients (KAFKA-19444).

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{ApiKey, JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::group::{code, JoinRequest, JoinResult, Protocol};

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::JoinGroup, 0, 9);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: JoinGroupRequest = decode(&SPEC, header, body)?;
    if !(header.authorized(
        broker,
        AclOperation::Read,
        ResourceType::Group,
        &request.group_id.0,
    )) {
        let mut response = JoinGroupResponse::default();
        response.error_code = ErrorCode::GroupAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    // A share group's id is not a classic group's (KIP-932).
    if broker.shares().has_group(&request.group_id.0) {
        let mut response = JoinGroupResponse::default();
        response.error_code = ErrorCode::InconsistentGroupProtocol.code();
        response.member_id = request.member_id;
        return respond(&SPEC, header, &response);
    }
    let version = header.api_version;
    if let Some(reason) = &request.reason {
        tracing::debug!(group = %request.group_id.0, member = %request.member_id, %reason, "JoinGroup");
    }
    let join = JoinRequest {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.map(|i| i.to_string()),
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| Protocol {
                name: p.name.to_string(),
                metadata: p.metadata,
            })
            .collect(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout served as both.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        client_id: header.client_id.clone().unwrap_or_default(),
        // Kafka shows the member's address as "/ip".
        client_host: format!("/{}", header.peer.ip()),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let group_id = join.group_id.clone();
    let mut result = broker.groups().join(broker.as_ref(), join).await;
    if result.error.is_none() {
        if let Err(e) = broker.group_write_replicated(&group_id).await {
            result = JoinResult::error(&result.member_id, e);
        }
    }
    let mut response = JoinGroupResponse::default();
    response.error_code = code(result.error);
    response.generation_id = result.generation_id;
    if version >= 7 {
        response.protocol_type = result.protocol_type.map(StrBytes::from_string);
        response.protocol_name = result.protocol_name.map(StrBytes::from_string);
    } else {
        // Not nullable before v7.
        response.protocol_name = Some(StrBytes::from_string(
            result.protocol_name.unwrap_or_default(),
        ));
    }
    response.leader = StrBytes::from_string(result.leader_id);
    response.skip_assignment = version >= 9 && result.skip_assignment;
    response.member_id = StrBytes::from_string(result.member_id);
    response.members = result
        .members
        .into_iter()
        .map(|m| {
            let mut out = JoinGroupResponseMember::default();
            out.member_id = StrBytes::from_string(m.member_id);
            if version >= 5 {
                out.group_instance_id = m.group_instance_id.map(StrBytes::from_string);
            }
            out.metadata = m.metadata;
            out
        })
        .collect();
    respond(&SPEC, header, &response)
}
