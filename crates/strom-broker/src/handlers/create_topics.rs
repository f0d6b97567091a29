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
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
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
    // CREATE on the cluster, or on each topic, as Kafka checks; refused topics never reach
    // the controller.
    let may_create_any = header.authorized_cluster(broker, AclOperation::Create);
    // Then the client's controller_mutation_rate (KIP-599), strict from v6: a validation
    // creates nothing and is not charged.
    let mut throttle_ms = 0;
    let refused: Vec<Option<ErrorCode>> = request
        .topics
        .iter()
        .map(|t| {
            if !may_create_any
                && !header.authorized(broker, AclOperation::Create, ResourceType::Topic, &t.name)
            {
                return Some(ErrorCode::TopicAuthorizationFailed);
            }
            if request.validate_only {
                return None;
            }
            let partitions = match (t.assignments.len(), t.num_partitions) {
                (0, n) if n > 0 => n,
                (0, _) => broker.config().num_partitions(),
                (n, _) => n as i32,
            };
            header
                .charge_mutations(broker, &mut throttle_ms, partitions as u64, version >= 6)
                .err()
        })
        .collect();
    let denied: Vec<bool> = refused.iter().map(Option::is_some).collect();
    let specs: Vec<CreateTopicRequest> = request
        .topics
        .into_iter()
        .zip(&denied)
        .filter(|(_, denied)| !**denied)
        .map(|(t, _)| CreateTopicRequest {
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
    let mut results = if n == 0 {
        Vec::new()
    } else {
        broker.controller_op(op).into_create_topics(n)
    };
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
    let mut results = results.into_iter();
    let mut response = CreateTopicsResponse::default();
    response.throttle_time_ms = throttle_ms;
    response.topics = names
        .into_iter()
        .zip(refused)
        .map(|(name, refused)| {
            let mut r = CreatableTopicResult::default();
            if let Some(code) = refused {
                r.error_code = code.code();
                r.error_message = Some(StrBytes::from_static_str(
                    if code == ErrorCode::TopicAuthorizationFailed {
                        "Authorization failed."
                    } else {
                        "The throttling quota has been exceeded (controller_mutation_rate)."
                    },
                ));
                if version >= 5 {
                    r.num_partitions = -1;
                    r.replication_factor = -1;
                }
                r.name = name;
                return r;
            }
            let result = results.next().unwrap_or_else(|| {
                Err(strom_metadata::ControllerError::Storage {
                    reason: "no result from the controller".into(),
                })
            });
            let describe_configs = header.authorized(
                broker,
                AclOperation::DescribeConfigs,
                ResourceType::Topic,
                &name,
            );
            r.name = name;
            match result {
                Ok(created) => {
                    if version >= 7 {
                        r.topic_id = created.topic_id;
                    }
                    if version >= 5 && !describe_configs {
                        // Created, but the principal may not see its configs (Kafka 2.4+).
                        r.topic_config_error_code = ErrorCode::TopicAuthorizationFailed.code();
                        r.num_partitions = -1;
                        r.replication_factor = -1;
                    } else if version >= 5 {
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
