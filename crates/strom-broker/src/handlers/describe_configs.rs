//! DescribeConfigs (key 32), v1–4: every config of a topic, broker or consumer group (Kafka 4's
//! GROUP resource; the group need not exist) with its effective value, source, type and
//! documentation — not only the overrides (PROTOCOL.md), because admin tools and UIs show the
//! whole set.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::config_defs::{
    describe_broker_configs, describe_group_configs, describe_topic_configs, DescribedConfig,
};
use strom_protocol::ErrorCode;

use super::{decode, respond, ApiSpec, HandlerResult};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::DescribeConfigs, 1, 4);
pub(crate) const RESOURCE_TOPIC: i8 = 2;
pub(crate) const RESOURCE_BROKER: i8 = 4;
pub(crate) const RESOURCE_GROUP: i8 = 32;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: DescribeConfigsRequest = decode(&SPEC, header, body)?;
    let version = header.api_version;
    let image = broker.image();
    let mut response = DescribeConfigsResponse::default();
    response.results = request
        .resources
        .into_iter()
        .map(|resource| {
            let mut result = DescribeConfigsResult::default();
            result.resource_type = resource.resource_type;
            result.resource_name = resource.resource_name.clone();
            let name = resource.resource_name.as_str();
            let refused = header.config_refusal(
                broker,
                super::AclOperation::DescribeConfigs,
                resource.resource_type,
                name,
            );
            let described: Result<Vec<DescribedConfig>, (ErrorCode, String)> =
                match (refused, resource.resource_type) {
                    (Some(code), _) => Err((code, "Authorization failed.".to_owned())),
                    (None, RESOURCE_TOPIC) => match image.topic(name) {
                        Some(_) => {
                            let overrides = image
                                .topic_config_overrides(name)
                                .cloned()
                                .unwrap_or_default();
                            Ok(describe_topic_configs(&overrides, broker.config()))
                        }
                        None => Err((
                            ErrorCode::UnknownTopicOrPartition,
                            format!("topic '{name}' does not exist"),
                        )),
                    },
                    (None, RESOURCE_BROKER) => {
                        if name.is_empty() || name == broker.node_id().to_string() {
                            Ok(describe_broker_configs(broker.config()))
                        } else {
                            Err((
                                ErrorCode::InvalidRequest,
                                format!("broker '{name}' is not this broker"),
                            ))
                        }
                    }
                    (None, RESOURCE_GROUP) if name.is_empty() => Err((
                        ErrorCode::InvalidRequest,
                        "a group config resource needs a group id".to_owned(),
                    )),
                    (None, RESOURCE_GROUP) => Ok(describe_group_configs(
                        &image.group_config_overrides(name),
                        broker.config(),
                    )),
                    (None, other) => Err((
                        ErrorCode::InvalidRequest,
                        format!("resource type {other} is not supported"),
                    )),
                };
            match described {
                Ok(configs) => {
                    let keys = resource.configuration_keys.as_ref();
                    result.configs = configs
                        .into_iter()
                        .filter(|c| keys.is_none_or(|k| k.iter().any(|k| k.as_str() == c.name)))
                        .map(|c| {
                            to_wire(
                                c,
                                version,
                                request.include_synonyms,
                                request.include_documentation,
                            )
                        })
                        .collect();
                }
                Err((code, message)) => {
                    result.error_code = code.code();
                    result.error_message = Some(StrBytes::from_string(message));
                }
            }
            // A group's configs are the consumer-group ones (in the metadata log) and the
            // share-group ones (kept by the share coordinator).
            if resource.resource_type == RESOURCE_GROUP && result.error_code == 0 {
                let shares =
                    super::share_group_configs::describe(broker, header, &resource, version);
                result.configs.extend(shares.configs);
            }
            result
        })
        .collect();
    respond(&SPEC, header, &response)
}

fn to_wire(
    c: DescribedConfig,
    version: i16,
    include_synonyms: bool,
    include_documentation: bool,
) -> DescribeConfigsResourceResult {
    let mut out = DescribeConfigsResourceResult::default();
    out.name = StrBytes::from_string(c.name);
    out.value = if c.is_sensitive {
        None
    } else {
        c.value.map(StrBytes::from_string)
    };
    out.read_only = c.read_only;
    out.config_source = c.source as i8;
    out.is_sensitive = c.is_sensitive;
    if include_synonyms {
        out.synonyms = c
            .synonyms
            .into_iter()
            .map(|s| {
                let mut syn = DescribeConfigsSynonym::default();
                syn.name = StrBytes::from_string(s.name);
                syn.value = s.value.map(StrBytes::from_string);
                syn.source = s.source as i8;
                syn
            })
            .collect();
    }
    if version >= 3 {
        out.config_type = c.config_type as i8;
        if include_documentation {
            out.documentation = Some(StrBytes::from_static_str(c.documentation));
        }
    }
    out
}
