//! DeleteShareGroupOffsets (key 92), v0 (Kafka 4.1's): forgets an empty share group's state
//! of whole topics (`kafka-share-groups.sh --delete-offsets`).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic;
use kafka_protocol::messages::{
    ApiKey, DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse,
};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, RequestContext, ResourceType};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::DeleteShareGroupOffsets, 0, 0);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: DeleteShareGroupOffsetsRequest = decode(&SPEC, header, body)?;
    let mut response = DeleteShareGroupOffsetsResponse::default();
    let group = request.group_id.0.to_string();
    if !header.authorized(broker, AclOperation::Delete, ResourceType::Group, &group) {
        response.error_code = ErrorCode::GroupAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    let image = broker.image();
    let mut ids = Vec::new();
    for t in &request.topics {
        let mut out = DeleteShareGroupOffsetsResponseTopic::default();
        out.topic_name = t.topic_name.clone();
        let name = t.topic_name.0.as_str();
        if !header.authorized(broker, AclOperation::Read, ResourceType::Topic, name) {
            out.error_code = ErrorCode::TopicAuthorizationFailed.code();
        } else {
            match image.topic(name) {
                Some(info) => {
                    out.topic_id = info.topic_id;
                    ids.push(info.topic_id);
                }
                None => out.error_code = ErrorCode::UnknownTopicOrPartition.code(),
            }
        }
        response.responses.push(out);
    }
    let shares = broker.shares();
    if let Err(code) = crate::broker::off_runtime(|| shares.delete_offsets(broker, &group, &ids)) {
        response.error_code = code.code();
        response.error_message = Some(StrBytes::from_string(format!("group {group}: {code:?}")));
        response.responses.clear();
    }
    respond(&SPEC, header, &response)
}
