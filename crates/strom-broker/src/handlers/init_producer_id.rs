//! InitProducerId (key 22), v0–5, for idempotent producers: a fresh producer id with epoch 0
//! from a block the controller allocated (ids are never reused across restarts). As in
//! Kafka, a non-transactional producer that re-initialises (KIP-360) simply gets a new id.
//! Transactional ids arrive with the transaction coordinator.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use strom_protocol::ErrorCode;

use super::{decode, respond, ApiSpec, HandlerResult};
use crate::broker::Broker;
use crate::errors::controller_error_code;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::InitProducerId, 0, 5);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: InitProducerIdRequest = decode(&SPEC, header, body)?;
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    if request.transactional_id.is_some() {
        // Without a transaction coordinator a transactional producer cannot be served.
        response.error_code = ErrorCode::CoordinatorNotAvailable.code();
        return respond(&SPEC, header, &response);
    }
    match tokio::task::block_in_place(|| broker.allocate_producer_id()) {
        Ok(id) => {
            response.producer_id = ProducerId(id);
            response.producer_epoch = 0;
        }
        Err(e) => response.error_code = controller_error_code(&e).code(),
    }
    respond(&SPEC, header, &response)
}
