//! AddPartitionsToTxn (key 24), v0–5: adds partitions to the producer's transaction before it
//! writes to them. Unknown partitions fail the request: they get UNKNOWN_TOPIC_OR_PARTITION and
//! the others OPERATION_NOT_ATTEMPTED, as in Kafka. v4+ is the batched broker-to-broker form
//! (KIP-890): several transactions per request, each either added or, with `verify_only`,
//! checked to be in the ongoing transaction; it needs CLUSTER_ACTION, as in Kafka.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey};
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::txn::fenced_for_version;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::AddPartitionsToTxn, 0, 5);
/// The first version of the batched broker-to-broker form.
const BATCHED_SINCE: i16 = 4;
/// PRODUCER_FENCED exists from v2 (KIP-588); older versions get INVALID_PRODUCER_EPOCH.
const FENCED_SINCE: i16 = 2;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: AddPartitionsToTxnRequest = decode(&SPEC, header, body)?;
    if header.api_version >= BATCHED_SINCE {
        let response = batched(broker, header, request).await;
        return respond(&SPEC, header, &response);
    }
    let image = broker.image();
    let known = |topic: &str, p: i32| {
        image
            .topic(topic)
            .is_some_and(|t| t.partitions.contains_key(&p))
    };
    // TRANSACTIONAL_ID WRITE, then TOPIC WRITE per topic, as Kafka checks.
    let txn_denied = !header.authorized(
        broker,
        AclOperation::Write,
        ResourceType::TransactionalId,
        &request.v3_and_below_transactional_id,
    );
    let denied: Vec<String> = request
        .v3_and_below_topics
        .iter()
        .filter(|t| {
            !txn_denied
                && !header.authorized(broker, AclOperation::Write, ResourceType::Topic, &t.name.0)
        })
        .map(|t| t.name.0.to_string())
        .collect();
    let refused = |topic: &str, p: i32| -> Option<ErrorCode> {
        if txn_denied {
            Some(ErrorCode::TransactionalIdAuthorizationFailed)
        } else if denied.iter().any(|t| t == topic) {
            Some(ErrorCode::TopicAuthorizationFailed)
        } else if !known(topic, p) {
            Some(ErrorCode::UnknownTopicOrPartition)
        } else {
            None
        }
    };
    let mut partitions = Vec::new();
    let mut any_unknown = false;
    for topic in &request.v3_and_below_topics {
        for p in &topic.partitions {
            any_unknown |= refused(&topic.name.0, *p).is_some();
            partitions.push((topic.name.0.to_string(), *p));
        }
    }
    let error = if any_unknown {
        None
    } else {
        let added = tokio::task::block_in_place(|| {
            broker.txns().add_partitions(
                broker.as_ref(),
                &request.v3_and_below_transactional_id,
                request.v3_and_below_producer_id.0,
                request.v3_and_below_producer_epoch,
                &partitions,
            )
        });
        let added = match added {
            Ok(()) => {
                broker
                    .txn_write_replicated(&request.v3_and_below_transactional_id)
                    .await
            }
            e => e,
        };
        added
            .err()
            .map(|e| fenced_for_version(e, header.api_version, FENCED_SINCE))
    };
    let mut response = AddPartitionsToTxnResponse::default();
    response.results_by_topic_v3_and_below =
        topic_results(&request.v3_and_below_topics, |topic, p| {
            match (any_unknown, refused(topic, p), error) {
                (true, Some(code), _) => code.code(),
                (true, None, _) => ErrorCode::OperationNotAttempted.code(),
                (false, _, Some(e)) => e.code(),
                (false, _, None) => 0,
            }
        });
    respond(&SPEC, header, &response)
}

/// v4+: each transaction is added (or verified) at this coordinator on its own; every
/// partition of a transaction gets that transaction's outcome.
async fn batched(
    broker: &Arc<Broker>,
    header: &RequestContext,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let mut response = AddPartitionsToTxnResponse::default();
    if !header.authorized_cluster(broker, AclOperation::ClusterAction) {
        response.error_code = ErrorCode::ClusterAuthorizationFailed.code();
        return response;
    }
    let image = broker.image();
    for txn in request.transactions {
        let partitions: Vec<(String, i32)> = txn
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
            .collect();
        let unknown = |(topic, p): &(String, i32)| {
            !image
                .topic(topic)
                .is_some_and(|t| t.partitions.contains_key(p))
        };
        let any_unknown = partitions.iter().any(unknown);
        let outcome = if any_unknown {
            Err(ErrorCode::OperationNotAttempted)
        } else {
            // At this broker's coordinator only: the sender found it here;
            // NOT_COORDINATOR sends it to look again.
            crate::txn::implicit::add_here(
                broker,
                &txn.transactional_id,
                (txn.producer_id.0, txn.producer_epoch),
                partitions,
                txn.verify_only,
            )
            .await
        };
        let mut result = AddPartitionsToTxnResult::default();
        result.topic_results = topic_results(&txn.topics, |topic, p| {
            if unknown(&(topic.to_owned(), p)) {
                ErrorCode::UnknownTopicOrPartition.code()
            } else {
                outcome.err().map_or(0, |e| e.code())
            }
        });
        result.transactional_id = txn.transactional_id;
        response.results_by_transaction.push(result);
    }
    response
}

/// The result of every partition of `topics`, each with the error code `code(topic,
/// partition)` gives (0 for success).
fn topic_results(
    topics: &[AddPartitionsToTxnTopic],
    code: impl Fn(&str, i32) -> i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|topic| {
            let mut out = AddPartitionsToTxnTopicResult::default();
            out.name = topic.name.clone();
            out.results_by_partition = topic
                .partitions
                .iter()
                .map(|p| {
                    let mut r = AddPartitionsToTxnPartitionResult::default();
                    r.partition_index = *p;
                    r.partition_error_code = code(&topic.name.0, *p);
                    r
                })
                .collect();
            out
        })
        .collect()
}
