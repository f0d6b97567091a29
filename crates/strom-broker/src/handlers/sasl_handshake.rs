//! SaslHandshake (key 17), v1 (v0, raw SASL tokens after the handshake, was removed in Kafka 4
//! by KIP-896): chooses the SASL mechanism of a SASL listener's connection and lists the
//! enabled ones. On a listener without SASL it is ILLEGAL_SASL_STATE.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use super::{decode, respond, ApiSpec, HandlerResult, RequestContext};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::SaslHandshake, 1, 1);

pub(super) async fn handle(
    _broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: SaslHandshakeRequest = decode(&SPEC, header, body)?;
    let mut response = SaslHandshakeResponse::default();
    match &header.sasl {
        None => response.error_code = ErrorCode::IllegalSaslState.code(),
        Some(session) => {
            let mut session = session.lock();
            if let Err((code, message)) = session.handshake(request.mechanism.as_str()) {
                tracing::info!(peer = %header.peer, %message, "SASL handshake refused");
                response.error_code = code.code();
            }
            response.mechanisms = session
                .mechanisms()
                .iter()
                .map(|m| StrBytes::from_string(m.clone()))
                .collect();
        }
    }
    respond(&SPEC, header, &response)
}
