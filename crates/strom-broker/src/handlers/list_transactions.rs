//! ListTransactions (key 66), v0–1: transactional ids filtered by state names and producer
//! ids, and (v1, KIP-994) by a minimum running time. Unknown state names are echoed back.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ApiKey, ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::txn::TxnState;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::ListTransactions, 0, 1);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: ListTransactionsRequest = decode(&SPEC, header, body)?;
    let mut response = ListTransactionsResponse::default();
    let mut states = Vec::new();
    for name in &request.state_filters {
        match TxnState::from_name(name) {
            Some(s) => states.push(s),
            None => response.unknown_state_filters.push(name.clone()),
        }
    }
    let producers: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let min_duration_ms = if header.api_version >= 1 {
        request.duration_filter
    } else {
        -1
    };
    let now = strom_storage::Clock::now_ms(&strom_storage::SystemClock);
    response.transaction_states = broker
        .txns()
        .list()
        .into_iter()
        .filter(|md| states.is_empty() || states.contains(&md.state))
        .filter(|md| producers.is_empty() || producers.contains(&md.producer_id))
        .filter(|md| {
            min_duration_ms < 0 || (md.start_ms >= 0 && now - md.start_ms >= min_duration_ms)
        })
        // Only transactional ids the principal may describe, as Kafka lists them.
        .filter(|md| {
            header.allowed_quietly(
                broker,
                AclOperation::Describe,
                ResourceType::TransactionalId,
                &md.transactional_id,
            )
        })
        .map(|md| {
            let mut out = TransactionState::default();
            out.transactional_id = TransactionalId(StrBytes::from_string(md.transactional_id));
            out.producer_id = ProducerId(md.producer_id);
            out.transaction_state = StrBytes::from_static_str(md.state.name());
            out
        })
        .collect();
    respond(&SPEC, header, &response)
}
