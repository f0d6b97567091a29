//! DeleteTopics (key 20), v1–6: by name, or by topic id from v6. The controller removes the
//! topic records; the replica manager then deletes the partition logs.

use std::sync::Arc;
use strom_metadata::ControllerOp;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{ApiKey, DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::ControllerError;
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::errors::controller_error_code;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::DeleteTopics, 1, 6);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: DeleteTopicsRequest = decode(&SPEC, header, body)?;
    let version = header.api_version;
    let image = broker.image();
    // (name as given, id as given, resolved name)
    let wanted: Vec<(Option<String>, uuid::Uuid, Option<String>)> = if version >= 6 {
        request
            .topics
            .into_iter()
            .map(|t| {
                let name = t.name.map(|n| n.0.to_string());
                let resolved = match &name {
                    Some(n) => Some(n.clone()),
                    None => image.topic_by_id(t.topic_id).map(|t| t.name.clone()),
                };
                (name, t.topic_id, resolved)
            })
            .collect()
    } else {
        request
            .topic_names
            .into_iter()
            .map(|n| {
                let n = n.0.to_string();
                (Some(n.clone()), uuid::Uuid::nil(), Some(n))
            })
            .collect()
    };
    // DELETE on each topic, as Kafka checks; refused topics never reach the controller.
    // Then the client's controller_mutation_rate (KIP-599, strict from v5): a topic's
    // partitions count as deleted.
    let mut throttle_ms = 0;
    let refused: Vec<Option<ErrorCode>> = wanted
        .iter()
        .map(|w| {
            let name = w.2.as_deref()?;
            if !header.authorized(broker, AclOperation::Delete, ResourceType::Topic, name) {
                return Some(ErrorCode::TopicAuthorizationFailed);
            }
            let partitions = image.topic(name).map_or(0, |t| t.partitions.len() as u64);
            header
                .charge_mutations(broker, &mut throttle_ms, partitions, version >= 5)
                .err()
        })
        .collect();
    let denied: Vec<bool> = refused.iter().map(Option::is_some).collect();
    let to_delete: Vec<String> = wanted
        .iter()
        .zip(&denied)
        .filter(|(_, denied)| !**denied)
        .filter_map(|(w, _)| w.2.clone())
        .collect();
    let n = to_delete.len();
    let mut results = broker
        .controller_op(ControllerOp::DeleteTopics { names: to_delete })
        .into_delete_topics(n)
        .into_iter();
    let mut response = DeleteTopicsResponse::default();
    response.throttle_time_ms = throttle_ms;
    response.responses = wanted
        .into_iter()
        .zip(refused)
        .map(|((name, id, resolved), refused)| {
            let mut r = DeletableTopicResult::default();
            let result = match (resolved, refused) {
                (Some(_), Some(code)) => {
                    r.error_code = code.code();
                    if code == ErrorCode::ThrottlingQuotaExceeded && version >= 5 {
                        r.error_message = Some(StrBytes::from_static_str(
                            "The throttling quota has been exceeded (controller_mutation_rate).",
                        ));
                    }
                    Ok(uuid::Uuid::nil())
                }
                (Some(_), None) => results
                    .next()
                    .unwrap_or(Err(ControllerError::InvalidRequest {
                        reason: "missing result".to_owned(),
                    })),
                (None, _) => {
                    r.error_code = ErrorCode::UnknownTopicId.code();
                    Ok(uuid::Uuid::nil())
                }
            };
            match result {
                Ok(deleted_id) => {
                    if version >= 6 {
                        r.topic_id = if deleted_id.is_nil() { id } else { deleted_id };
                    }
                }
                Err(e) => {
                    r.error_code = controller_error_code(&e).code();
                    if version >= 5 {
                        r.error_message = Some(StrBytes::from_string(e.to_string()));
                    }
                }
            }
            r.name = name.map(|n| TopicName(StrBytes::from_string(n)));
            r
        })
        .collect();
    respond(&SPEC, header, &response)
}
