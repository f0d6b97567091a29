//! Group configs (KIP-848/932 GROUP config resources, type 32) of share groups, for
//! DescribeConfigs and IncrementalAlterConfigs: `share.auto.offset.reset`,
//! `share.record.lock.duration.ms` and the other `share.*` keys (`share::GROUP_CONFIGS`),
//! kept and persisted by the share coordinator. A group's configs may be set before it
//! exists (`kafka-configs.sh --entity-type groups`), as Kafka allows.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use super::{AclOperation, RequestContext, ResourceType};
use crate::broker::Broker;

/// Kafka's ConfigResource type of a group.
pub(super) const RESOURCE_GROUP: i8 = 32;

/// Kafka's ConfigSource numbers used here.
const SOURCE_GROUP: i8 = 8;
const SOURCE_DEFAULT: i8 = 5;

pub(super) fn describe(
    broker: &Broker,
    header: &RequestContext,
    resource: &DescribeConfigsResource,
    version: i16,
) -> DescribeConfigsResult {
    let mut result = DescribeConfigsResult::default();
    result.resource_type = resource.resource_type;
    result.resource_name = resource.resource_name.clone();
    let group = resource.resource_name.as_str();
    if !header.authorized(
        broker,
        AclOperation::DescribeConfigs,
        ResourceType::Group,
        group,
    ) {
        result.error_code = ErrorCode::GroupAuthorizationFailed.code();
        result.error_message = Some(StrBytes::from_static_str("Authorization failed."));
        return result;
    }
    let keys = resource.configuration_keys.as_ref();
    result.configs = broker
        .shares()
        .describe_group_configs(group)
        .into_iter()
        .filter(|(name, _, _)| keys.is_none_or(|k| k.iter().any(|k| k.as_str() == name)))
        .map(|(name, value, set)| {
            let mut c = DescribeConfigsResourceResult::default();
            let numeric = name.ends_with(".ms");
            c.name = StrBytes::from_string(name);
            c.value = Some(StrBytes::from_string(value));
            c.config_source = if set { SOURCE_GROUP } else { SOURCE_DEFAULT };
            if version >= 3 {
                // INT or STRING, as Kafka's GroupConfig defines them.
                c.config_type = if numeric { 3 } else { 2 };
            }
            c
        })
        .collect();
    result
}

pub(super) fn alter(
    broker: &Broker,
    header: &RequestContext,
    resource: AlterConfigsResource,
    validate_only: bool,
) -> AlterConfigsResourceResponse {
    let mut r = AlterConfigsResourceResponse::default();
    r.resource_type = resource.resource_type;
    r.resource_name = resource.resource_name.clone();
    let group = resource.resource_name.as_str();
    if !header.authorized(
        broker,
        AclOperation::AlterConfigs,
        ResourceType::Group,
        group,
    ) {
        r.error_code = ErrorCode::GroupAuthorizationFailed.code();
        r.error_message = Some(StrBytes::from_static_str("Authorization failed."));
        return r;
    }
    let mut changes = Vec::new();
    for c in &resource.configs {
        match c.config_operation {
            // SET
            0 => changes.push((c.name.to_string(), c.value.as_ref().map(|v| v.to_string()))),
            // DELETE: back to the default.
            1 => changes.push((c.name.to_string(), None)),
            _ => {
                r.error_code = ErrorCode::InvalidConfig.code();
                r.error_message = Some(StrBytes::from_string(format!(
                    "{} is not a list config: only SET and DELETE apply",
                    c.name.as_str()
                )));
                return r;
            }
        }
    }
    if let Err((code, message)) =
        broker
            .shares()
            .alter_group_configs(broker, group, &changes, validate_only)
    {
        r.error_code = code.code();
        r.error_message = Some(StrBytes::from_string(message));
    }
    r
}
