//! AddOffsetsToTxn (key 25), v0–4: adds the group's `__consumer_offsets` partition to the
//! transaction, so that its TxnOffsetCommit offsets are completed by the transaction's marker.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ApiKey};
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::group::records::partition_for;
use crate::group::{OffsetsLog, OFFSETS_TOPIC};
use crate::txn::fenced_for_version;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::AddOffsetsToTxn, 0, 4);
/// PRODUCER_FENCED exists from v2 (KIP-588); older versions get INVALID_PRODUCER_EPOCH.
const FENCED_SINCE: i16 = 2;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: AddOffsetsToTxnRequest = decode(&SPEC, header, body)?;
    if !(header.authorized(
        broker,
        AclOperation::Write,
        ResourceType::TransactionalId,
        &request.transactional_id.0,
    )) {
        let mut response = AddOffsetsToTxnResponse::default();
        response.error_code = ErrorCode::TransactionalIdAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    if !(header.authorized(
        broker,
        AclOperation::Read,
        ResourceType::Group,
        &request.group_id.0,
    )) {
        let mut response = AddOffsetsToTxnResponse::default();
        response.error_code = ErrorCode::GroupAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    let result = tokio::task::block_in_place(|| {
        let partitions = broker.offsets_partitions()?;
        let partition = partition_for(&request.group_id, partitions);
        broker.txns().add_partitions(
            broker.as_ref(),
            &request.transactional_id,
            request.producer_id.0,
            request.producer_epoch,
            &[(OFFSETS_TOPIC.to_owned(), partition)],
        )
    });
    let result = match result {
        Ok(()) => broker.txn_write_replicated(&request.transactional_id).await,
        e => e,
    };
    let mut response = AddOffsetsToTxnResponse::default();
    if let Err(e) = result {
        response.error_code = fenced_for_version(e, header.api_version, FENCED_SINCE).code();
    }
    respond(&SPEC, header, &response)
}
