//! ListConfigResources (key 74), v0–1: the resources that have configs (KIP-1142; v0 was
//! ListClientMetricsResources). Strom has no client-metrics resources, so v0 answers an
//! empty list; v1 lists topics (2), this broker (4) and groups (32: every group, and the
//! share-group configs set before their group exists) for the types asked (none = all).
//! `kafka-configs.sh --entity-type groups --describe` uses it.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::list_config_resources_response::ConfigResource;
use kafka_protocol::messages::{ApiKey, ListConfigResourcesRequest, ListConfigResourcesResponse};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, RequestContext, ResourceType};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::ListConfigResources, 0, 1);

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const GROUP: i8 = 32;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: ListConfigResourcesRequest = decode(&SPEC, header, body)?;
    let mut response = ListConfigResourcesResponse::default();
    if header.api_version == 0 {
        return respond(&SPEC, header, &response);
    }
    let wants = |t: i8| request.resource_types.is_empty() || request.resource_types.contains(&t);
    if let Some(other) = request
        .resource_types
        .iter()
        .find(|t| ![TOPIC, BROKER, GROUP, 16, 8].contains(*t))
    {
        response.error_code = ErrorCode::UnsupportedVersion.code();
        tracing::debug!(resource_type = other, "ListConfigResources: unknown type");
        return respond(&SPEC, header, &response);
    }
    let mut out = Vec::new();
    let mut push = |resource_type: i8, name: String| {
        let mut r = ConfigResource::default();
        r.resource_type = resource_type;
        r.resource_name = StrBytes::from_string(name);
        out.push(r);
    };
    if wants(TOPIC) {
        let image = broker.image();
        for name in image
            .topics()
            .map(|t| t.name.clone())
            .collect::<BTreeSet<_>>()
        {
            if header.allowed_quietly(
                broker,
                AclOperation::DescribeConfigs,
                ResourceType::Topic,
                &name,
            ) {
                push(TOPIC, name);
            }
        }
    }
    if wants(BROKER)
        && header.allowed_quietly(
            broker,
            AclOperation::DescribeConfigs,
            ResourceType::Cluster,
            super::CLUSTER_RESOURCE_NAME,
        )
    {
        push(BROKER, broker.node_id().to_string());
    }
    if wants(GROUP) {
        let groups = broker.groups();
        let mut names: BTreeSet<String> = groups
            .list_consumer()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        names.extend(groups.list(&[], &[]).into_iter().map(|g| g.group_id));
        names.extend(broker.shares().list_groups().into_iter().map(|(id, _)| id));
        names.extend(broker.shares().configured_groups());
        for name in names {
            if header.allowed_quietly(
                broker,
                AclOperation::DescribeConfigs,
                ResourceType::Group,
                &name,
            ) {
                push(GROUP, name);
            }
        }
    }
    response.config_resources = out;
    respond(&SPEC, header, &response)
}
