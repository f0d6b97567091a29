//! OffsetCommit (key 8), v2–9: writes committed offsets (with leader epoch, v6+, and
//! metadata) to `__consumer_offsets` after Kafka's generation/member checks. Simple consumers
//! (generation -1, no member id) may commit to an Empty or unknown group.

use std::collections::HashMap;
use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, OffsetCommitRequest, OffsetCommitResponse};
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::group::{code, CommitAuth, OffsetCommit, TopicPartition};

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::OffsetCommit, 2, 9);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: OffsetCommitRequest = decode(&SPEC, header, body)?;
    let version = header.api_version;
    let image = broker.image();
    // Partitions of unknown topics are refused one by one; the rest go to the coordinator.
    let mut errors: HashMap<TopicPartition, Option<ErrorCode>> = HashMap::new();
    let mut commits = Vec::new();
    // GROUP READ, then TOPIC READ per topic, as Kafka checks a commit.
    let group_denied = !header.authorized(
        broker,
        AclOperation::Read,
        ResourceType::Group,
        &request.group_id.0,
    );
    for topic in &request.topics {
        let known = image.topic(&topic.name.0);
        let topic_denied = !group_denied
            && !header.authorized(
                broker,
                AclOperation::Read,
                ResourceType::Topic,
                &topic.name.0,
            );
        for p in &topic.partitions {
            let tp = (topic.name.0.to_string(), p.partition_index);
            if group_denied {
                continue;
            }
            if topic_denied {
                errors.insert(tp, Some(ErrorCode::TopicAuthorizationFailed));
            } else if known.is_some_and(|t| t.partitions.contains_key(&p.partition_index)) {
                let commit = OffsetCommit {
                    offset: p.committed_offset,
                    leader_epoch: if version >= 6 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                };
                commits.push((tp, commit));
            } else {
                errors.insert(tp, Some(ErrorCode::UnknownTopicOrPartition));
            }
        }
    }
    let auth = CommitAuth {
        generation_id: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        group_instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
        version_9_or_later: version >= 9,
    };
    let retention_ms = if version <= 4 {
        request.retention_time_ms
    } else {
        -1
    };
    let group_error = if group_denied {
        Some(ErrorCode::GroupAuthorizationFailed)
    } else if commits.is_empty() {
        None
    } else {
        let committed = broker.groups().commit(
            broker.as_ref(),
            &request.group_id.0,
            &auth,
            retention_ms,
            commits,
        );
        match committed {
            // Acknowledged once the ISR has the offsets.
            Ok(results) => match broker.group_write_replicated(&request.group_id.0).await {
                Ok(()) => {
                    errors.extend(results);
                    None
                }
                Err(e) => Some(e),
            },
            Err(e) => Some(e),
        }
    };
    let mut response = OffsetCommitResponse::default();
    response.topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let mut out = OffsetCommitResponseTopic::default();
            out.partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let tp = (topic.name.0.to_string(), p.partition_index);
                    let mut r = OffsetCommitResponsePartition::default();
                    r.partition_index = p.partition_index;
                    r.error_code = match (errors.get(&tp), group_error) {
                        (
                            Some(Some(
                                c @ (ErrorCode::UnknownTopicOrPartition
                                | ErrorCode::TopicAuthorizationFailed),
                            )),
                            _,
                        ) => c.code(),
                        (_, Some(group_error)) => group_error.code(),
                        (Some(result), None) => code(*result),
                        (None, None) => 0,
                    };
                    r
                })
                .collect();
            out.name = topic.name;
            out
        })
        .collect();
    respond(&SPEC, header, &response)
}
