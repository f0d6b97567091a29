//! ShareGroupHeartbeat (key 76), v1 (Kafka 4.1's): KIP-932's join, heartbeat and leave of
//! a share-group member; the broker computes the assignment (`share::assignor`).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ApiKey, ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, RequestContext, ResourceType};
use crate::broker::Broker;
use crate::share::Heartbeat;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::ShareGroupHeartbeat, 1, 1);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: ShareGroupHeartbeatRequest = decode(&SPEC, header, body)?;
    let mut response = ShareGroupHeartbeatResponse::default();
    let group_id = request.group_id.0.to_string();
    if !header.authorized(broker, AclOperation::Read, ResourceType::Group, &group_id) {
        response.error_code = ErrorCode::GroupAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    // One id, one group type: checked when a member joins.
    let joining = request.member_epoch == 0;
    if let Some(code) = joining
        .then(|| crate::share::other_group_type(broker, &group_id))
        .flatten()
    {
        response.error_code = code.code();
        response.error_message = Some(StrBytes::from_static_str(
            "the group id is used by a group of another type",
        ));
        return respond(&SPEC, header, &response);
    }
    let heartbeat = Heartbeat {
        group_id,
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        rack: request.rack_id.map(|r| r.to_string()),
        subscribed: request
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.0.to_string()).collect()),
        client_id: header.client_id.as_deref().unwrap_or("").to_owned(),
        client_host: format!("/{}", header.peer.ip()),
    };
    let shares = broker.shares();
    let answer = crate::broker::off_runtime(|| shares.heartbeat(broker, heartbeat));
    match answer {
        Ok(answer) => {
            response.member_id = Some(StrBytes::from_string(answer.member_id));
            response.member_epoch = answer.member_epoch;
            response.heartbeat_interval_ms = answer.heartbeat_interval_ms;
            response.assignment = answer.assignment.map(|topics| {
                let mut a = Assignment::default();
                a.topic_partitions = topics
                    .into_iter()
                    .map(|(topic_id, partitions)| {
                        let mut t = TopicPartitions::default();
                        t.topic_id = topic_id;
                        t.partitions = partitions;
                        t
                    })
                    .collect();
                a
            });
        }
        Err((code, message)) => {
            response.error_code = code.code();
            response.error_message = Some(StrBytes::from_string(message));
        }
    }
    respond(&SPEC, header, &response)
}
