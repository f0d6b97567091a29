//! AlterShareGroupOffsets (key 91), v0 (Kafka 4.1's): sets the start offsets of an empty
//! share group's partitions (`kafka-share-groups.sh --reset-offsets`; the tool resolves
//! --to-earliest/--to-latest/--to-datetime to offsets itself).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition, AlterShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, ApiKey,
};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, RequestContext, ResourceType};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::AlterShareGroupOffsets, 0, 0);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: AlterShareGroupOffsetsRequest = decode(&SPEC, header, body)?;
    let mut response = AlterShareGroupOffsetsResponse::default();
    let group = request.group_id.0.to_string();
    if !header.authorized(broker, AclOperation::Read, ResourceType::Group, &group) {
        response.error_code = ErrorCode::GroupAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    let image = broker.image();
    // Per partition: its topic's id, or why it cannot be altered.
    let mut wanted = Vec::new();
    let mut refused: Vec<Option<ErrorCode>> = Vec::new();
    for t in &request.topics {
        let name = t.topic_name.0.to_string();
        let id = image.topic(&name).map(|i| i.topic_id);
        let allowed = header.authorized(broker, AclOperation::Read, ResourceType::Topic, &name);
        for p in &t.partitions {
            match (id, allowed) {
                (_, false) => refused.push(Some(ErrorCode::TopicAuthorizationFailed)),
                (None, _) => refused.push(Some(ErrorCode::UnknownTopicOrPartition)),
                (Some(id), true) => {
                    refused.push(None);
                    wanted.push((name.clone(), id, p.partition_index, p.start_offset));
                }
            }
        }
    }
    let shares = broker.shares();
    let results = crate::broker::off_runtime(|| shares.alter_offsets(broker, &group, &wanted));
    let mut results = match results {
        Ok(r) => r.into_iter(),
        Err(code) => {
            response.error_code = code.code();
            response.error_message =
                Some(StrBytes::from_string(format!("group {group}: {code:?}")));
            return respond(&SPEC, header, &response);
        }
    };
    let mut refused = refused.into_iter();
    for t in request.topics {
        let mut out = AlterShareGroupOffsetsResponseTopic::default();
        out.topic_id = image
            .topic(&t.topic_name.0)
            .map_or(Uuid::nil(), |i| i.topic_id);
        out.topic_name = t.topic_name;
        for p in t.partitions {
            let mut r = AlterShareGroupOffsetsResponsePartition::default();
            r.partition_index = p.partition_index;
            let code = match refused.next().flatten() {
                Some(code) => Some(code),
                None => results.next().and_then(|r| r.err()),
            };
            r.error_code = code.map_or(0, |c| c.code());
            out.partitions.push(r);
        }
        response.responses.push(out);
    }
    respond(&SPEC, header, &response)
}
