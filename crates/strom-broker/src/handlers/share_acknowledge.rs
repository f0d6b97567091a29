//! ShareAcknowledge (key 79), v1 (Kafka 4.1's): a share-group member's acknowledgements
//! (accept, release, reject) without a fetch. It needs an open share session; epoch -1
//! closes it and releases the member's remaining locks.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::share_acknowledge_response::{
    PartitionData, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::{ApiKey, ShareAcknowledgeRequest, ShareAcknowledgeResponse};
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, RequestContext, ResourceType};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::ShareAcknowledge, 1, 1);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: ShareAcknowledgeRequest = decode(&SPEC, header, body)?;
    let mut response = ShareAcknowledgeResponse::default();
    let (group_id, member_id) = match super::share_fetch::share_member(
        broker,
        header,
        request.group_id.as_ref(),
        request.member_id.as_ref(),
    ) {
        Ok(ids) => ids,
        Err(code) => {
            response.error_code = code.code();
            return respond(&SPEC, header, &response);
        }
    };
    let epoch = request.share_session_epoch;
    let shares = broker.shares();
    // Acknowledging needs a session: epoch 0 would open one, which only ShareFetch does.
    if epoch == 0 {
        response.error_code = ErrorCode::InvalidShareSessionEpoch.code();
        return respond(&SPEC, header, &response);
    }
    let session = crate::broker::off_runtime(|| {
        shares.session(broker, &group_id, &member_id, epoch, &[], &[])
    });
    let session = match session {
        Ok(s) => s,
        Err(code) => {
            response.error_code = code.code();
            return respond(&SPEC, header, &response);
        }
    };
    let image = broker.image();
    for topic in &request.topics {
        let name = image.topic_by_id(topic.topic_id).map(|t| t.name.clone());
        let mut out = ShareAcknowledgeTopicResponse::default();
        out.topic_id = topic.topic_id;
        for p in &topic.partitions {
            let code = match &name {
                None => Some(ErrorCode::UnknownTopicId),
                Some(n)
                    if !header.authorized(broker, AclOperation::Read, ResourceType::Topic, n) =>
                {
                    Some(ErrorCode::TopicAuthorizationFailed)
                }
                Some(_) => {
                    let batches: Vec<(i64, i64, Vec<i8>)> = p
                        .acknowledgement_batches
                        .iter()
                        .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone()))
                        .collect();
                    crate::broker::off_runtime(|| {
                        shares.acknowledge(
                            broker,
                            &group_id,
                            &member_id,
                            topic.topic_id,
                            p.partition_index,
                            &batches,
                        )
                    })
                    .err()
                }
            };
            let leader = image
                .topic_by_id(topic.topic_id)
                .and_then(|t| t.partitions.get(&p.partition_index));
            let mut data = PartitionData::default();
            data.partition_index = p.partition_index;
            data.error_code = code.map_or(0, |c| c.code());
            data.current_leader.leader_id = leader.map_or(-1, |l| l.leader);
            data.current_leader.leader_epoch = leader.map_or(-1, |l| l.leader_epoch);
            out.partitions.push(data);
        }
        response.responses.push(out);
    }
    if epoch == -1 {
        crate::broker::off_runtime(|| {
            shares.release_session(broker, &group_id, &member_id, &session)
        });
    }
    respond(&SPEC, header, &response)
}
