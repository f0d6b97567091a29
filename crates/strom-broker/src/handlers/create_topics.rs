//! CreateTopics (key 19), v2–7: validates against the metadata image (names, partition
//! counts, replication factor against live brokers, explicit assignments, configs) and
//! commits topic records through the controller. `validate_only` commits nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use strom_metadata::ControllerOp;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::CreateTopicRequest;

use super::{decode, respond, ApiSpec, HandlerResult};
use crate::broker::Broker;
use crate::errors::controller_error_code;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::CreateTopics, 2, 7);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: CreateTopicsRequest = decode(&SPEC, header, body)?;
    let version = header.api_version;
    let names: Vec<_> = request.topics.iter().map(|t| t.name.clone()).collect();
    let specs: Vec<CreateTopicRequest> = request
        .topics
        .into_iter()
        .map(|t| CreateTopicRequest {
            name: t.name.0.to_string(),
            num_partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .into_iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.into_iter().map(|b| b.0).collect(),
                    )
                })
                .collect(),
            configs: t
                .configs
                .into_iter()
                .map(|c| (c.name.to_string(), c.value.map(|v| v.to_string())))
                .collect(),
        })
        .collect();
    let validate_only = request.validate_only;
    let overrides: Vec<BTreeMap<String, String>> = specs
        .iter()
        .map(|t| {
            t.configs
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
                .collect()
        })
        .collect();
    let n = specs.len();
    let op = ControllerOp::CreateTopics {
        topics: specs,
        validate_only,
    };
    let mut results = broker.controller_op(op).into_create_topics(n);
    // A forwarded result carries no configs: describe them here, as the controller did.
    for (result, overrides) in results.iter_mut().zip(&overrides) {
        if let Ok(created) = result {
            if created.configs.is_empty() {
                created.configs = strom_metadata::config_describe::describe_topic_configs(
                    overrides,
                    &broker.effective_broker_config(),
                );
            }
        }
    }
    let mut response = CreateTopicsResponse::default();
    response.topics = names
        .into_iter()
        .zip(results)
        .map(|(name, result)| {
            let mut r = CreatableTopicResult::default();
            r.name = name;
            match result {
                Ok(created) => {
                    if version >= 7 {
                        r.topic_id = created.topic_id;
                    }
                    if version >= 5 {
                        r.num_partitions = created.num_partitions;
                        r.replication_factor = created.replication_factor;
                        r.configs = Some(
                            created
                                .configs
                                .into_iter()
                                .map(|c| {
                                    let mut out = CreatableTopicConfigs::default();
                                    out.name = StrBytes::from_string(c.name);
                                    out.value = c.value.map(StrBytes::from_string);
                                    out.read_only = c.read_only;
                                    out.config_source = c.source as i8;
                                    out.is_sensitive = c.is_sensitive;
                                    out
                                })
                                .collect(),
                        );
                    }
                }
                Err(e) => {
                    r.error_code = controller_error_code(&e).code();
                    r.error_message = Some(StrBytes::from_string(e.to_string()));
                    if version >= 5 {
                        r.num_partitions = -1;
                        r.replication_factor = -1;
                    }
                }
            }
            r
        })
        .collect();
    respond(&SPEC, header, &response)
}
