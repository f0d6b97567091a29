//! ConsumerGroupHeartbeat (key 68), v0–1: KIP-848's one call for joining, heartbeating,
//! reconciling and leaving a consumer group; the broker computes the assignment. v0 members
//! get their id from the broker, v1 members (KIP-1082) bring their own.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as WireAssignment, TopicPartitions,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse,
};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::group::consumer::{regex, Assignment, HeartbeatRequest, TopicsView};

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::ConsumerGroupHeartbeat, 0, 1);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: ConsumerGroupHeartbeatRequest = decode(&SPEC, header, body)?;
    if !(header.authorized(
        broker,
        AclOperation::Read,
        ResourceType::Group,
        &request.group_id.0,
    )) {
        let mut response = ConsumerGroupHeartbeatResponse::default();
        response.error_code = ErrorCode::GroupAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    tracing::debug!(
        version = header.api_version,
        ?request,
        "ConsumerGroupHeartbeat"
    );
    let mut response = ConsumerGroupHeartbeatResponse::default();
    // A share group's id is not a consumer group's (KIP-932).
    if broker.shares().has_group(&request.group_id.0) {
        response.error_code = ErrorCode::GroupIdNotFound.code();
        response.error_message = Some(StrBytes::from_static_str("the group is a share group"));
        return respond(&SPEC, header, &response);
    }
    if header.api_version >= 1 && request.member_id.is_empty() {
        // KIP-1082: a v1 member generates its own id.
        response.error_code = ErrorCode::InvalidRequest.code();
        response.error_message = Some(StrBytes::from_static_str("member id is required"));
        return respond(&SPEC, header, &response);
    }
    let image = broker.image();
    let group_configs = image.group_config_overrides(&request.group_id.0);
    let group_config = |key: &str| group_configs.get(key).and_then(|v| v.trim().parse().ok());
    let req = HeartbeatRequest {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|s| s.to_string()),
        rack_id: request.rack_id.map(|s| s.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        // An empty regex clears the member's (librdkafka 2.12 sends one beside its names).
        subscribed_topic_regex: request.subscribed_topic_regex.map(|s| s.to_string()),
        server_assignor: request.server_assignor.map(|s| s.to_string()),
        owned: request.topic_partitions.map(|tps| {
            let mut owned = Assignment::new();
            for tp in tps {
                owned.entry(tp.topic_id).or_default().extend(tp.partitions);
            }
            owned
        }),
        client_id: header.client_id.clone().unwrap_or_default(),
        client_host: format!("/{}", header.peer.ip()),
        group_session_timeout_ms: group_config("consumer.session.timeout.ms"),
        group_heartbeat_interval_ms: group_config("consumer.heartbeat.interval.ms"),
    };
    let topics: TopicsView = image
        .topics()
        .map(|t| (t.name.clone(), (t.topic_id, t.partitions.len() as i32)))
        .collect();
    let mut beat = broker
        .groups()
        .consumer_heartbeat(broker.as_ref(), &req, &topics);
    if beat.is_ok() {
        if let Err(e) = broker.group_write_replicated(&req.group_id).await {
            beat = Err(e);
        }
    }
    match beat {
        Ok(r) => {
            response.member_id = Some(StrBytes::from_string(r.member_id));
            response.member_epoch = r.member_epoch;
            response.heartbeat_interval_ms = r.heartbeat_interval_ms;
            response.assignment = r.assignment.map(|a| {
                let mut wire = WireAssignment::default();
                wire.topic_partitions = a
                    .into_iter()
                    .map(|(topic_id, parts): (_, BTreeSet<i32>)| {
                        let mut tp = TopicPartitions::default();
                        tp.topic_id = topic_id;
                        tp.partitions = parts.into_iter().collect();
                        tp
                    })
                    .collect();
                wire
            });
        }
        Err(e) => {
            response.error_code = e.code();
            if e == ErrorCode::InvalidRegularExpression {
                // Kafka's message names the pattern and what is wrong with it.
                let pattern = req.subscribed_topic_regex.unwrap_or_default();
                let reason = regex::compile(&pattern).err().unwrap_or_default();
                response.error_message = Some(StrBytes::from_string(format!(
                    "SubscribedTopicRegex `{pattern}` is not a valid regular expression: {reason}."
                )));
            }
        }
    }
    respond(&SPEC, header, &response)
}
