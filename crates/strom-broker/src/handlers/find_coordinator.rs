//! FindCoordinator (key 10), v0–6: one key (v0–3) or a batch of `coordinator_keys` (v4+,
//! KIP-699). A group (key type 0) or transactional id (key type 1) is coordinated by the
//! leader of its `__consumer_offsets` / `__transaction_state` partition (hash of the key);
//! COORDINATOR_NOT_AVAILABLE while that partition has no live leader.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{ApiKey, BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, ResourceType};
use crate::broker::Broker;
use crate::group::{code, OffsetsLog, OFFSETS_TOPIC};
use crate::txn::{TxnLog, TXN_STATE_TOPIC};

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
                let found = find(broker, header, request.key_type, &key);
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
        let found = find(broker, header, request.key_type, &request.key);
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

fn find(broker: &Broker, header: &RequestContext, key_type: i8, key: &str) -> Found {
    let listener: &str = &header.listener;
    let refused = |error, message| Found {
        error: Some(error),
        message: Some(message),
        node_id: -1,
        host: String::new(),
        port: -1,
    };
    // DESCRIBE on the group or transactional id, as Kafka checks.
    match key_type {
        KEY_TYPE_GROUP
            if !header.authorized(broker, AclOperation::Describe, ResourceType::Group, key) =>
        {
            return refused(
                ErrorCode::GroupAuthorizationFailed,
                "not authorized for this group",
            )
        }
        KEY_TYPE_TRANSACTION
            if !header.authorized(
                broker,
                AclOperation::Describe,
                ResourceType::TransactionalId,
                key,
            ) =>
        {
            return refused(
                ErrorCode::TransactionalIdAuthorizationFailed,
                "not authorized for this transactional id",
            )
        }
        _ => {}
    }
    // The coordinator exists once its topic does (created here on first use, as Kafka does).
    let (topic, partition) = match key_type {
        KEY_TYPE_GROUP => match broker.offsets_partitions() {
            Ok(n) => (OFFSETS_TOPIC, crate::group::records::partition_for(key, n)),
            Err(e) => return refused(e, "__consumer_offsets is not available"),
        },
        KEY_TYPE_TRANSACTION => match broker.txn_partitions() {
            Ok(n) => (TXN_STATE_TOPIC, crate::txn::records::partition_for(key, n)),
            Err(e) => return refused(e, "__transaction_state is not available"),
        },
        _ => return refused(ErrorCode::InvalidRequest, "unknown coordinator key type"),
    };
    let image = broker.image();
    let leader = image
        .topic(topic)
        .and_then(|t| t.partitions.get(&partition))
        .map_or(-1, |p| p.leader);
    if leader < 0 {
        return refused(
            ErrorCode::CoordinatorNotAvailable,
            "the coordinator's partition has no leader",
        );
    }
    let endpoint = |b: &strom_metadata::image::BrokerRegistration| {
        b.endpoint(listener)
            .map(|(host, port)| (host.to_owned(), i32::from(port)))
    };
    let (host, port) = match image.broker(leader) {
        Some(b) if !b.fenced || leader == broker.node_id() => match endpoint(b) {
            Some(e) => e,
            None => {
                return refused(
                    ErrorCode::CoordinatorNotAvailable,
                    "the coordinator's broker has no endpoint on this listener",
                )
            }
        },
        // This broker without a registered endpoint answers with its listener.
        None if leader == broker.node_id() => match broker.config().advertised_client_listener() {
            Some(l) => (l.host.clone(), i32::from(l.port)),
            None => return refused(ErrorCode::CoordinatorNotAvailable, "no advertised listener"),
        },
        _ => {
            return refused(
                ErrorCode::CoordinatorNotAvailable,
                "the coordinator's broker is not available",
            )
        }
    };
    Found {
        error: None,
        message: None,
        node_id: leader,
        host,
        port,
    }
}
