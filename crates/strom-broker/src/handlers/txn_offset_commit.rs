//! TxnOffsetCommit (key 28), v0–5: offsets committed inside a transaction. They are written
//! to `__consumer_offsets` as transactional records and become visible to the group exactly
//! when the transaction commits (dropped on abort). v3+ carry the member's generation (KIP-447).
//! v5 is transaction protocol v2 (KIP-890): the group's offsets partition joins the
//! transaction here (no AddOffsetsToTxn before it).

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{ApiKey, TxnOffsetCommitRequest, TxnOffsetCommitResponse};
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::group::records::partition_for;
use crate::group::{CommitAuth, OffsetCommit, OffsetsLog, TopicPartition, OFFSETS_TOPIC};

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::TxnOffsetCommit, 0, 5);
/// The first version that adds the offsets partition to the transaction itself.
const IMPLICIT_ADD_SINCE: i16 = 5;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: TxnOffsetCommitRequest = decode(&SPEC, header, body)?;
    let version = header.api_version;
    let image = broker.image();
    let mut unknown: Vec<TopicPartition> = Vec::new();
    let mut denied_topics: Vec<String> = Vec::new();
    let mut commits = Vec::new();
    // TRANSACTIONAL_ID WRITE, GROUP READ, then TOPIC READ per topic, as Kafka checks.
    let refused = if !header.authorized(
        broker,
        AclOperation::Write,
        ResourceType::TransactionalId,
        &request.transactional_id,
    ) {
        Some(ErrorCode::TransactionalIdAuthorizationFailed)
    } else if !header.authorized(
        broker,
        AclOperation::Read,
        ResourceType::Group,
        &request.group_id,
    ) {
        Some(ErrorCode::GroupAuthorizationFailed)
    } else {
        None
    };
    for topic in &request.topics {
        let known = image.topic(&topic.name.0);
        if refused.is_some() {
            continue;
        }
        if !header.authorized(
            broker,
            AclOperation::Read,
            ResourceType::Topic,
            &topic.name.0,
        ) {
            denied_topics.push(topic.name.0.to_string());
            continue;
        }
        for p in &topic.partitions {
            let tp = (topic.name.0.to_string(), p.partition_index);
            if known.is_some_and(|t| t.partitions.contains_key(&p.partition_index)) {
                let commit = OffsetCommit {
                    offset: p.committed_offset,
                    leader_epoch: if version >= 2 {
                        p.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                };
                commits.push((tp, commit));
            } else {
                unknown.push(tp);
            }
        }
    }
    let auth = CommitAuth {
        generation_id: if version >= 3 {
            request.generation_id
        } else {
            -1
        },
        member_id: if version >= 3 {
            request.member_id.to_string()
        } else {
            String::new()
        },
        group_instance_id: request.group_instance_id.as_ref().map(|i| i.to_string()),
        version_9_or_later: false,
    };
    let producer = (request.producer_id.0, request.producer_epoch);
    let added = match (refused, commits.is_empty()) {
        (None, false) if version >= IMPLICIT_ADD_SINCE => Some(
            add_offsets_partition(
                broker,
                &request.transactional_id,
                &request.group_id,
                producer,
            )
            .await,
        ),
        _ => None,
    };
    let outcome = if let Some(code) = refused {
        Err(code)
    } else if commits.is_empty() {
        Ok(Vec::new())
    } else if let Some(Err(code)) = added {
        Err(code)
    } else {
        tokio::task::block_in_place(|| {
            let partitions = broker.offsets_partitions()?;
            let partition = (
                OFFSETS_TOPIC.to_owned(),
                partition_for(&request.group_id, partitions),
            );
            if added.is_none() {
                broker.txns().verify_offsets(
                    &request.transactional_id,
                    producer.0,
                    producer.1,
                    &partition,
                )?;
            }
            broker
                .groups()
                .txn_commit(broker.as_ref(), &request.group_id, &auth, producer, commits)
        })
    };
    let outcome = match outcome {
        Ok(results) if !results.is_empty() => broker
            .group_write_replicated(&request.group_id)
            .await
            .map(|()| results),
        other => other,
    };
    // TxnOffsetCommit has no PRODUCER_FENCED: a fenced producer gets INVALID_PRODUCER_EPOCH.
    let (results, group_error) = match outcome {
        Ok(results) => (results, None),
        Err(ErrorCode::ProducerFenced) => (Vec::new(), Some(ErrorCode::InvalidProducerEpoch)),
        Err(e) => (Vec::new(), Some(e)),
    };
    let mut response = TxnOffsetCommitResponse::default();
    response.topics = request
        .topics
        .into_iter()
        .map(|topic| {
            let mut out = TxnOffsetCommitResponseTopic::default();
            out.partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let tp = (topic.name.0.to_string(), p.partition_index);
                    let code = if denied_topics.iter().any(|t| t == topic.name.0.as_str()) {
                        ErrorCode::TopicAuthorizationFailed.code()
                    } else if unknown.contains(&tp) {
                        ErrorCode::UnknownTopicOrPartition.code()
                    } else if let Some(e) = group_error {
                        e.code()
                    } else {
                        results
                            .iter()
                            .find(|(t, _)| *t == tp)
                            .and_then(|(_, e)| *e)
                            .map_or(0, |e| e.code())
                    };
                    let mut r = TxnOffsetCommitResponsePartition::default();
                    r.partition_index = p.partition_index;
                    r.error_code = code;
                    r
                })
                .collect();
            out.name = topic.name;
            out
        })
        .collect();
    respond(&SPEC, header, &response)
}

/// v5: adds the group's `__consumer_offsets` partition to the producer's transaction at its
/// coordinator (what AddOffsetsToTxn did for v1 clients).
async fn add_offsets_partition(
    broker: &Arc<Broker>,
    transactional_id: &str,
    group_id: &str,
    producer: (i64, i16),
) -> Result<(), ErrorCode> {
    let partitions = tokio::task::block_in_place(|| broker.offsets_partitions())?;
    let partition = (
        OFFSETS_TOPIC.to_owned(),
        partition_for(group_id, partitions),
    );
    crate::txn::implicit::add_to_txn(broker, transactional_id, producer, vec![partition], false)
        .await
}
