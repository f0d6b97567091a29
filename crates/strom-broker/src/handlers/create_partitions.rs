//! CreatePartitions (key 37), v0–3: raises a topic's partition count (never lowers it),
//! with optional explicit assignments for the new partitions.

use std::sync::Arc;
use strom_metadata::ControllerOp;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::errors::controller_error_code;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::CreatePartitions, 0, 3);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: CreatePartitionsRequest = decode(&SPEC, header, body)?;
    let validate_only = request.validate_only;
    let version = header.api_version;
    let mut throttle_ms = 0;
    let image = broker.image();
    let mut response = CreatePartitionsResponse::default();
    response.results = request
        .topics
        .into_iter()
        .map(|t| {
            let assignments: Vec<Vec<i32>> = t
                .assignments
                .unwrap_or_default()
                .into_iter()
                .map(|a| a.broker_ids.into_iter().map(|b| b.0).collect())
                .collect();
            let name = t.name.0.to_string();
            // ALTER on the topic, as Kafka checks.
            if !header.authorized(broker, AclOperation::Alter, ResourceType::Topic, &name) {
                let mut r = CreatePartitionsTopicResult::default();
                r.name = t.name;
                r.error_code = ErrorCode::TopicAuthorizationFailed.code();
                r.error_message = Some(StrBytes::from_static_str("Authorization failed."));
                return r;
            }
            // KIP-599: the partitions added count against controller_mutation_rate, strict
            // from v3.
            let current = image.topic(&name).map_or(0, |t| t.partitions.len() as i64);
            let added = (i64::from(t.count) - current).max(0) as u64;
            if !validate_only && added > 0 {
                if let Err(code) =
                    header.charge_mutations(broker, &mut throttle_ms, added, version >= 3)
                {
                    let mut r = CreatePartitionsTopicResult::default();
                    r.name = t.name;
                    r.error_code = code.code();
                    r.error_message = Some(StrBytes::from_static_str(
                        "The throttling quota has been exceeded (controller_mutation_rate).",
                    ));
                    return r;
                }
            }
            let result = broker
                .controller_op(ControllerOp::CreatePartitions {
                    topic: name,
                    new_total_count: t.count,
                    assignments,
                    validate_only,
                })
                .into_done();
            let mut r = CreatePartitionsTopicResult::default();
            r.name = t.name;
            if let Err(e) = result {
                r.error_code = controller_error_code(&e).code();
                r.error_message = Some(StrBytes::from_string(e.to_string()));
            }
            r
        })
        .collect();
    response.throttle_time_ms = throttle_ms;
    respond(&SPEC, header, &response)
}
