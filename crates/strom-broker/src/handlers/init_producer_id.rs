//! InitProducerId (key 22), v0–5. Without a transactional id: a fresh producer id with epoch
//! 0 from a block the controller allocated (a re-initialising idempotent producer, KIP-360,
//! simply gets a new id, as in Kafka). With one: the transaction coordinator bumps the epoch.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::errors::controller_error_code;
use crate::txn::fenced_for_version;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::InitProducerId, 0, 5);
/// PRODUCER_FENCED exists from v4 (KIP-588); older versions get INVALID_PRODUCER_EPOCH.
const FENCED_SINCE: i16 = 4;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: InitProducerIdRequest = decode(&SPEC, header, body)?;
    if !(match request.transactional_id.as_ref() {
        Some(id) => header.authorized(
            broker,
            AclOperation::Write,
            ResourceType::TransactionalId,
            id,
        ),
        // An idempotent producer: WRITE on some topic (KIP-679), else IDEMPOTENT_WRITE on
        // the cluster (whose denial is the one logged).
        None => {
            header.authorized_any(broker, AclOperation::Write, ResourceType::Topic)
                || header.authorized_cluster(broker, AclOperation::IdempotentWrite)
        }
    }) {
        let mut response = InitProducerIdResponse::default();
        response.error_code = if request.transactional_id.is_some() {
            ErrorCode::TransactionalIdAuthorizationFailed.code()
        } else {
            ErrorCode::ClusterAuthorizationFailed.code()
        };
        response.producer_id = ProducerId(-1);
        return respond(&SPEC, header, &response);
    }
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    let mut allocate = || {
        broker
            .allocate_producer_id()
            .map_err(|e| controller_error_code(&e))
    };
    // An empty transactional id is INVALID_REQUEST (the state machine says so), as in Kafka.
    let result = match request.transactional_id.as_ref() {
        None => tokio::task::block_in_place(|| allocate().map(|id| (id, 0))),
        Some(transactional_id) => {
            // v3+ (KIP-360): a producer recovering its own id and epoch.
            let expected = (request.producer_id.0 >= 0)
                .then_some((request.producer_id.0, request.producer_epoch));
            let initialized = tokio::task::block_in_place(|| {
                broker.txns().init_producer_id(
                    broker.as_ref(),
                    transactional_id,
                    request.transaction_timeout_ms,
                    expected,
                    &mut allocate,
                )
            });
            match initialized {
                Ok(ids) => broker
                    .txn_write_replicated(transactional_id)
                    .await
                    .map(|()| ids),
                e => e,
            }
        }
    };
    match result {
        Ok((id, epoch)) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = epoch;
        }
        Err(e) => {
            response.error_code = fenced_for_version(e, header.api_version, FENCED_SINCE).code()
        }
    }
    respond(&SPEC, header, &response)
}
