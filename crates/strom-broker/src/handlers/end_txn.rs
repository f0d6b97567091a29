//! EndTxn (key 26), v0–4: commits or aborts the producer's transaction. The answer comes
//! once the decision is in `__transaction_state` and the markers are written.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, EndTxnRequest, EndTxnResponse, ProducerId};
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::txn::fenced_for_version;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::EndTxn, 0, 4);
/// PRODUCER_FENCED exists from v2 (KIP-588); older versions get INVALID_PRODUCER_EPOCH.
const FENCED_SINCE: i16 = 2;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: EndTxnRequest = decode(&SPEC, header, body)?;
    if !(header.authorized(
        broker,
        AclOperation::Write,
        ResourceType::TransactionalId,
        &request.transactional_id.0,
    )) {
        let mut response = EndTxnResponse::default();
        response.error_code = ErrorCode::TransactionalIdAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    let result = tokio::task::block_in_place(|| {
        broker.txns().end_txn(
            broker.as_ref(),
            &request.transactional_id,
            request.producer_id.0,
            request.producer_epoch,
            request.committed,
        )
    });
    let result = match result {
        Ok(()) => broker.txn_write_replicated(&request.transactional_id).await,
        e => e,
    };
    let mut response = EndTxnResponse::default();
    // v5 (KIP-890) would return the new id and epoch; v0–4 have no such fields.
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    if let Err(e) = result {
        response.error_code = fenced_for_version(e, header.api_version, FENCED_SINCE).code();
    }
    respond(&SPEC, header, &response)
}
