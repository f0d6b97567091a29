//! Heartbeat (key 12), v0–4: keeps a member's session alive; REBALANCE_IN_PROGRESS tells it
//! to rejoin, ILLEGAL_GENERATION / UNKNOWN_MEMBER_ID / FENCED_INSTANCE_ID that it is out.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, HeartbeatRequest, HeartbeatResponse};
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::group::code;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::Heartbeat, 0, 4);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: HeartbeatRequest = decode(&SPEC, header, body)?;
    if !(header.authorized(
        broker,
        AclOperation::Read,
        ResourceType::Group,
        &request.group_id.0,
    )) {
        let mut response = HeartbeatResponse::default();
        response.error_code = ErrorCode::GroupAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    let result = broker.groups().heartbeat(
        broker.as_ref(),
        &request.group_id.0,
        &request.member_id,
        request.group_instance_id.as_deref(),
        request.generation_id,
    );
    let mut response = HeartbeatResponse::default();
    response.error_code = code(result.err());
    respond(&SPEC, header, &response)
}
