//! CreateAcls (key 30), v2–3 (v0–1 were removed in Kafka 4): stores ACL bindings in the
//! metadata log, as `kafka-acls.sh --add` sends them. Needs ALTER on the cluster; without an
//! authorizer Kafka answers SECURITY_DISABLED.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{ApiKey, CreateAclsRequest, CreateAclsResponse};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::acl::{AclBinding, AclPermission, PatternType};
use strom_metadata::controller::ops::ControllerOp;
use strom_protocol::ErrorCode;

use super::describe_acls::{acl_refusal, per_part};
use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, RequestContext, ResourceType};
use crate::broker::Broker;
use crate::errors::controller_error_code;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::CreateAcls, 2, 3);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: CreateAclsRequest = decode(&SPEC, header, body)?;
    let mut response = CreateAclsResponse::default();
    let fail = |code: ErrorCode, message: String| {
        let mut r = AclCreationResult::default();
        r.error_code = code.code();
        r.error_message = Some(StrBytes::from_string(message));
        r
    };
    let refusal = acl_refusal(broker, header, AclOperation::Alter);
    if let Some((code, message)) = refusal {
        response.results = request
            .creations
            .iter()
            .map(|_| fail(code, message.to_owned()))
            .collect();
        return respond(&SPEC, header, &response);
    }
    // Bindings with unknown codes are refused here; the controller refuses the rest of
    // what Kafka refuses (ANY/MATCH, bad principals, ...).
    let parsed: Vec<Result<AclBinding, String>> = request
        .creations
        .iter()
        .map(|c| {
            let unknown = |what: &str, code: i8| format!("unknown {what} code {code}");
            Ok(AclBinding {
                resource_type: ResourceType::from_code(c.resource_type)
                    .ok_or_else(|| unknown("resource type", c.resource_type))?,
                resource_name: c.resource_name.to_string(),
                pattern_type: PatternType::from_code(c.resource_pattern_type)
                    .ok_or_else(|| unknown("pattern type", c.resource_pattern_type))?,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: AclOperation::from_code(c.operation)
                    .ok_or_else(|| unknown("operation", c.operation))?,
                permission: AclPermission::from_code(c.permission_type)
                    .ok_or_else(|| unknown("permission type", c.permission_type))?,
            })
        })
        .collect();
    let valid: Vec<AclBinding> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
    let n = valid.len();
    let results = if n == 0 {
        Ok(Vec::new())
    } else {
        broker
            .controller_op(ControllerOp::CreateAcls { bindings: valid })
            .into_create_acls()
    };
    let mut results = per_part(results, n);
    response.results = parsed
        .into_iter()
        .map(|p| match p {
            Err(message) => fail(ErrorCode::InvalidRequest, message),
            Ok(_) => match results.next() {
                Some(Ok(())) => {
                    let mut r = AclCreationResult::default();
                    r.error_message = None;
                    r
                }
                Some(Err(e)) => fail(controller_error_code(&e), e.to_string()),
                None => fail(ErrorCode::UnknownServerError, "no result".into()),
            },
        })
        .collect();
    respond(&SPEC, header, &response)
}
