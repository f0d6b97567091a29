//! SaslAuthenticate (key 36), v0–2: one step of the SASL exchange chosen by SaslHandshake.
//! A failure answers SASL_AUTHENTICATION_FAILED (or ILLEGAL_SASL_STATE) with a message, and
//! the connection closes after the answer (`SaslSession::failed`).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use super::{decode, respond, ApiSpec, HandlerResult, RequestContext};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::SaslAuthenticate, 0, 2);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: SaslAuthenticateRequest = decode(&SPEC, header, body)?;
    let mut response = SaslAuthenticateResponse::default();
    let Some(session) = &header.sasl else {
        response.error_code = ErrorCode::IllegalSaslState.code();
        response.error_message = Some(StrBytes::from_static_str("this listener does not use SASL"));
        return respond(&SPEC, header, &response);
    };
    let image = broker.image();
    let credentials = |user: &str, mechanism: i8| {
        image
            .scram_credential(user, mechanism)
            .map(|c| crate::security::scram::Credential {
                salt: c.salt.clone(),
                stored_key: c.stored_key.clone(),
                server_key: c.server_key.clone(),
                iterations: c.iterations,
            })
    };
    let mut session = session.lock();
    let outcome = session.authenticate(&request.auth_bytes, &credentials);
    match outcome {
        Ok(reply) => {
            response.auth_bytes = Bytes::from(reply);
            // KIP-368: when the session ends; the client re-authenticates before then.
            if header.api_version >= 1 {
                response.session_lifetime_ms = session.session_lifetime_ms();
            }
        }
        Err((code, message)) => {
            tracing::warn!(peer = %header.peer, listener = %header.listener, %message, "SASL authentication failed; closing the connection");
            response.error_code = code.code();
            response.error_message = Some(StrBytes::from_string(message));
        }
    }
    respond(&SPEC, header, &response)
}
