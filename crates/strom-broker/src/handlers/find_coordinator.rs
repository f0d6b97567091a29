//! FindCoordinator (key 10), v0–6: one key (v0–3) or a batch of `coordinator_keys` (v4+,
//! KIP-699). Groups (key type 0) and transactional ids (key type 1) are coordinated here,
//! the leader of every `__consumer_offsets` and `__transaction_state` partition.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use super::{decode, respond, ApiSpec, HandlerResult};
use crate::broker::Broker;
use crate::group::{code, OffsetsLog};
use crate::txn::TxnLog;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::FindCoordinator, 0, 6);

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// Where a key's coordinator is, or why it cannot be named.
struct Found {
    error: Option<ErrorCode>,
    message: Option<&'static str>,
    node_id: i32,
    host: String,
    port: i32,
}

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: FindCoordinatorRequest = decode(&SPEC, header, body)?;
    let mut response = FindCoordinatorResponse::default();
    if header.api_version >= 4 {
        response.coordinators = request
            .coordinator_keys
            .into_iter()
            .map(|key| {
                let found = find(broker, request.key_type);
                let mut c = Coordinator::default();
                c.key = key;
                c.node_id = BrokerId(found.node_id);
                c.host = StrBytes::from_string(found.host);
                c.port = found.port;
                c.error_code = code(found.error);
                c.error_message = found.message.map(StrBytes::from_static_str);
                c
            })
            .collect();
    } else {
        let found = find(broker, request.key_type);
        response.error_code = code(found.error);
        if header.api_version >= 1 {
            response.error_message = found.message.map(StrBytes::from_static_str);
        }
        response.node_id = BrokerId(found.node_id);
        response.host = StrBytes::from_string(found.host);
        response.port = found.port;
    }
    respond(&SPEC, header, &response)
}

fn find(broker: &Broker, key_type: i8) -> Found {
    let refused = |error, message| Found {
        error: Some(error),
        message: Some(message),
        node_id: -1,
        host: String::new(),
        port: -1,
    };
    // The coordinator exists once its topic does (created here on first use, as Kafka does).
    match key_type {
        KEY_TYPE_GROUP => {
            if let Err(e) = broker.offsets_partitions() {
                return refused(e, "__consumer_offsets is not available");
            }
        }
        KEY_TYPE_TRANSACTION => {
            if let Err(e) = broker.txn_partitions() {
                return refused(e, "__transaction_state is not available");
            }
        }
        _ => return refused(ErrorCode::InvalidRequest, "unknown coordinator key type"),
    }
    let node_id = broker.node_id();
    let image = broker.image();
    let (host, port) = match image.broker(node_id) {
        Some(b) => (b.host.clone(), i32::from(b.port)),
        None => match broker.config().advertised_client_listener() {
            Some(l) => (l.host.clone(), i32::from(l.port)),
            None => return refused(ErrorCode::CoordinatorNotAvailable, "no advertised listener"),
        },
    };
    Found {
        error: None,
        message: None,
        node_id,
        host,
        port,
    }
}
