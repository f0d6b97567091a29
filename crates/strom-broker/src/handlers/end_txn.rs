//! EndTxn (key 26), v0–5: commits or aborts the producer's transaction. The answer comes
//! once the decision is in `__transaction_state` and the markers are written. v5 is
//! transaction protocol v2 (KIP-890 part 2): every end bumps the producer epoch (the markers
//! carry the new one) and the answer names the producer id and epoch to continue with.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, EndTxnRequest, EndTxnResponse, ProducerId};
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::errors::controller_error_code;
use crate::txn::fenced_for_version;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::EndTxn, 0, 5);
/// The first version of transaction protocol v2 (epoch bump per transaction).
const V2_SINCE: i16 = 5;
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
    let mut allocate = || {
        broker
            .allocate_producer_id()
            .map_err(|e| controller_error_code(&e))
    };
    let result = tokio::task::block_in_place(|| {
        if header.api_version >= V2_SINCE {
            broker.txns().end_txn_v2(
                broker.as_ref(),
                &request.transactional_id,
                request.producer_id.0,
                request.producer_epoch,
                request.committed,
                &mut allocate,
            )
        } else {
            broker
                .txns()
                .end_txn(
                    broker.as_ref(),
                    &request.transactional_id,
                    request.producer_id.0,
                    request.producer_epoch,
                    request.committed,
                )
                .map(|()| (-1, -1))
        }
    });
    let result = match result {
        Ok(next) => broker
            .txn_write_replicated(&request.transactional_id)
            .await
            .map(|()| next),
        e => e,
    };
    let mut response = EndTxnResponse::default();
    // v0–4 have no id and epoch fields (their defaults are not sent).
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    match result {
        Ok((id, epoch)) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = epoch;
        }
        Err(e) => {
            response.error_code = fenced_for_version(e, header.api_version, FENCED_SINCE).code();
        }
    }
    respond(&SPEC, header, &response)
}
