//! DescribeAcls (key 29), v1–3 (v0 was removed in Kafka 4): the ACLs matching a filter,
//! grouped by resource pattern, as `kafka-acls.sh --list` asks. Needs DESCRIBE on the cluster;
//! without an authorizer Kafka answers SECURITY_DISABLED.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{ApiKey, DescribeAclsRequest, DescribeAclsResponse};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::acl::{AclFilter, AclPermission, PatternType};
use strom_metadata::ControllerError;
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, RequestContext, ResourceType};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::DescribeAcls, 1, 3);

/// Kafka's answer to ACL requests on a broker without an authorizer.
pub(super) const NO_AUTHORIZER: &str = "No Authorizer is configured.";

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: DescribeAclsRequest = decode(&SPEC, header, body)?;
    let mut response = DescribeAclsResponse::default();
    response.error_message = None;
    let refusal = acl_refusal(broker, header, AclOperation::Describe)
        .map(|(code, message)| (code, message.to_owned()));
    let filter = filter_from(
        request.resource_type_filter,
        request.resource_name_filter.as_deref(),
        request.pattern_type_filter,
        request.principal_filter.as_deref(),
        request.host_filter.as_deref(),
        request.operation,
        request.permission_type,
    );
    match (refusal, filter) {
        (Some((code, message)), _) | (None, Err((code, message))) => {
            response.error_code = code.code();
            response.error_message = Some(StrBytes::from_string(message));
        }
        (None, Ok(filter)) => {
            let image = broker.image();
            let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
            for b in image.acls().values().filter(|b| filter.matches(b)) {
                let mut d = AclDescription::default();
                d.principal = StrBytes::from_string(b.principal.clone());
                d.host = StrBytes::from_string(b.host.clone());
                d.operation = b.operation.code();
                d.permission_type = b.permission.code();
                by_resource
                    .entry((
                        b.resource_type.code(),
                        b.resource_name.clone(),
                        b.pattern_type.code(),
                    ))
                    .or_default()
                    .push(d);
            }
            response.resources = by_resource
                .into_iter()
                .map(|((resource_type, name, pattern_type), acls)| {
                    let mut r = DescribeAclsResource::default();
                    r.resource_type = resource_type;
                    r.resource_name = StrBytes::from_string(name);
                    r.pattern_type = pattern_type;
                    r.acls = acls;
                    r
                })
                .collect();
        }
    }
    respond(&SPEC, header, &response)
}

/// Why an ACL request is refused before it runs: no authorizer (SECURITY_DISABLED, as Kafka
/// answers), or the principal may not do `operation` on the cluster.
pub(super) fn acl_refusal(
    broker: &Broker,
    header: &RequestContext,
    operation: AclOperation,
) -> Option<(ErrorCode, &'static str)> {
    if broker.authorizer().is_none() {
        Some((ErrorCode::SecurityDisabled, NO_AUTHORIZER))
    } else if !header.authorized_cluster(broker, operation) {
        Some((
            ErrorCode::ClusterAuthorizationFailed,
            "Cluster authorization failed.",
        ))
    } else {
        None
    }
}

/// One result per part of a controller operation over `n` parts: its own results, or the
/// operation's error for every part (also when the controller answered another count).
pub(super) fn per_part<T>(
    results: Result<Vec<Result<T, ControllerError>>, ControllerError>,
    n: usize,
) -> std::vec::IntoIter<Result<T, ControllerError>> {
    match results {
        Ok(r) if r.len() == n => r.into_iter(),
        Ok(_) => (0..n)
            .map(|_| {
                Err(ControllerError::Storage {
                    reason: "the controller answered a different number of results".into(),
                })
            })
            .collect::<Vec<_>>()
            .into_iter(),
        Err(e) => (0..n)
            .map(|_| Err(e.clone()))
            .collect::<Vec<_>>()
            .into_iter(),
    }
}

/// A filter from a request's codes; an unknown code is INVALID_REQUEST, as in Kafka.
#[allow(clippy::too_many_arguments)]
pub(super) fn filter_from(
    resource_type: i8,
    resource_name: Option<&str>,
    pattern_type: i8,
    principal: Option<&str>,
    host: Option<&str>,
    operation: i8,
    permission: i8,
) -> Result<AclFilter, (ErrorCode, String)> {
    let invalid = |what: &str, code: i8| {
        (
            ErrorCode::InvalidRequest,
            format!("unknown {what} code {code} in the ACL filter"),
        )
    };
    Ok(AclFilter {
        resource_type: ResourceType::from_code(resource_type)
            .ok_or_else(|| invalid("resource type", resource_type))?,
        resource_name: resource_name.map(str::to_owned),
        pattern_type: PatternType::from_code(pattern_type)
            .ok_or_else(|| invalid("pattern type", pattern_type))?,
        principal: principal.map(str::to_owned),
        host: host.map(str::to_owned),
        operation: AclOperation::from_code(operation)
            .ok_or_else(|| invalid("operation", operation))?,
        permission: AclPermission::from_code(permission)
            .ok_or_else(|| invalid("permission type", permission))?,
    })
}
