//! DeleteAcls (key 31), v1–3 (v0 was removed in Kafka 4): removes the ACLs each filter
//! matches and reports them, as `kafka-acls.sh --remove` sends it. Needs ALTER on the
//! cluster; without an authorizer Kafka answers SECURITY_DISABLED.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{ApiKey, DeleteAclsRequest, DeleteAclsResponse};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::acl::AclFilter;
use strom_metadata::controller::ops::ControllerOp;
use strom_protocol::ErrorCode;

use super::describe_acls::{acl_refusal, filter_from, per_part};
use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, RequestContext};
use crate::broker::Broker;
use crate::errors::controller_error_code;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::DeleteAcls, 1, 3);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: DeleteAclsRequest = decode(&SPEC, header, body)?;
    let mut response = DeleteAclsResponse::default();
    let fail = |code: ErrorCode, message: String| {
        let mut r = DeleteAclsFilterResult::default();
        r.error_code = code.code();
        r.error_message = Some(StrBytes::from_string(message));
        r
    };
    let refusal = acl_refusal(broker, header, AclOperation::Alter);
    if let Some((code, message)) = refusal {
        response.filter_results = request
            .filters
            .iter()
            .map(|_| fail(code, message.to_owned()))
            .collect();
        return respond(&SPEC, header, &response);
    }
    let parsed: Vec<Result<AclFilter, (ErrorCode, String)>> = request
        .filters
        .iter()
        .map(|f| {
            filter_from(
                f.resource_type_filter,
                f.resource_name_filter.as_deref(),
                f.pattern_type_filter,
                f.principal_filter.as_deref(),
                f.host_filter.as_deref(),
                f.operation,
                f.permission_type,
            )
        })
        .collect();
    let valid: Vec<AclFilter> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
    let n = valid.len();
    let results = if n == 0 {
        Ok(Vec::new())
    } else {
        broker
            .controller_op(ControllerOp::DeleteAcls { filters: valid })
            .into_delete_acls()
    };
    let mut results = per_part(results, n);
    response.filter_results = parsed
        .into_iter()
        .map(|p| match p {
            Err((code, message)) => fail(code, message),
            Ok(_) => match results.next() {
                Some(Ok(deleted)) => {
                    let mut r = DeleteAclsFilterResult::default();
                    r.error_message = None;
                    r.matching_acls = deleted
                        .into_iter()
                        .map(|b| {
                            let mut m = DeleteAclsMatchingAcl::default();
                            m.error_message = None;
                            m.resource_type = b.resource_type.code();
                            m.resource_name = StrBytes::from_string(b.resource_name);
                            m.pattern_type = b.pattern_type.code();
                            m.principal = StrBytes::from_string(b.principal);
                            m.host = StrBytes::from_string(b.host);
                            m.operation = b.operation.code();
                            m.permission_type = b.permission.code();
                            m
                        })
                        .collect();
                    r
                }
                Some(Err(e)) => fail(controller_error_code(&e), e.to_string()),
                None => fail(ErrorCode::UnknownServerError, "no result".into()),
            },
        })
        .collect();
    respond(&SPEC, header, &response)
}
