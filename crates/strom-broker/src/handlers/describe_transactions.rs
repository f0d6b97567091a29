//! DescribeTransactions (key 65), v0: the coordinator's metadata of each transactional id
//! (state, producer id and epoch, timeout, start time, partitions).

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    ApiKey, DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::txn::TxnLog;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::DescribeTransactions, 0, 0);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: DescribeTransactionsRequest = decode(&SPEC, header, body)?;
    let available = tokio::task::block_in_place(|| broker.txn_partitions());
    let mut response = DescribeTransactionsResponse::default();
    response.transaction_states = request
        .transactional_ids
        .into_iter()
        .map(|id| {
            let mut out = TransactionState::default();
            out.producer_id = ProducerId(-1);
            out.producer_epoch = -1;
            out.transaction_start_time_ms = -1;
            out.transaction_state = StrBytes::from_static_str("");
            let authorized = header.authorized(
                broker,
                AclOperation::Describe,
                ResourceType::TransactionalId,
                &id,
            );
            let found = match &available {
                _ if !authorized => Err(ErrorCode::TransactionalIdAuthorizationFailed),
                Ok(_) => broker
                    .txns()
                    .check_coordinator(broker.as_ref(), &id)
                    .and_then(|_| {
                        broker
                            .txns()
                            .describe(&id)
                            .ok_or(ErrorCode::TransactionalIdNotFound)
                    }),
                Err(e) => Err(*e),
            };
            match found {
                Ok(md) => {
                    out.transaction_state = StrBytes::from_static_str(md.state.name());
                    out.transaction_timeout_ms = md.timeout_ms;
                    out.transaction_start_time_ms = md.start_ms;
                    out.producer_id = ProducerId(md.producer_id);
                    out.producer_epoch = md.producer_epoch;
                    let mut topics: Vec<TopicData> = Vec::new();
                    for (topic, partition) in md.partitions {
                        match topics.last_mut() {
                            Some(t) if t.topic.0.as_str() == topic => t.partitions.push(partition),
                            _ => {
                                let mut t = TopicData::default();
                                t.topic = TopicName(StrBytes::from_string(topic));
                                t.partitions = vec![partition];
                                topics.push(t);
                            }
                        }
                    }
                    // Partitions of topics the principal may not describe are left out.
                    topics.retain(|t| {
                        header.allowed_quietly(
                            broker,
                            AclOperation::Describe,
                            ResourceType::Topic,
                            &t.topic.0,
                        )
                    });
                    out.topics = topics;
                }
                Err(e) => out.error_code = e.code(),
            }
            out.transactional_id = id;
            out
        })
        .collect();
    respond(&SPEC, header, &response)
}
