//! DeleteGroups (key 42), v0–2: deletes Empty groups with their committed offsets
//! (tombstones in `__consumer_offsets`), and Empty share groups with their share state;
//! NON_EMPTY_GROUP while members remain.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{ApiKey, DeleteGroupsRequest, DeleteGroupsResponse};

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::group::code;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::DeleteGroups, 0, 2);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: DeleteGroupsRequest = decode(&SPEC, header, body)?;
    let mut response = DeleteGroupsResponse::default();
    for group_id in request.groups_names {
        let mut r = DeletableGroupResult::default();
        let mut deleted = if !header.authorized(
            broker,
            AclOperation::Delete,
            ResourceType::Group,
            &group_id.0,
        ) {
            Err(strom_protocol::ErrorCode::GroupAuthorizationFailed)
        } else if broker.shares().has_group(&group_id.0) {
            // A share group (KIP-932): its state goes from `__share_group_state`.
            let shares = broker.shares();
            let deleted =
                crate::broker::off_runtime(|| shares.delete_group(broker.as_ref(), &group_id.0));
            r.error_code = code(deleted.err());
            r.group_id = group_id;
            response.results.push(r);
            continue;
        } else {
            broker.groups().delete_group(broker.as_ref(), &group_id.0)
        };
        if deleted.is_ok() {
            // The tombstones are acknowledged once the ISR has them.
            deleted = broker.group_write_replicated(&group_id.0).await;
        }
        r.error_code = code(deleted.err());
        r.group_id = group_id;
        response.results.push(r);
    }
    respond(&SPEC, header, &response)
}
