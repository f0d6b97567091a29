//! UnregisterBroker (key 64), v0: a broker leaves the cluster (`kafka-cluster.sh unregister
//! --id N`, and the last step of `strom cluster decommission`). Strom refuses while the broker
//! still hosts replicas (INVALID_REQUEST, saying how many): unregistering those would leave
//! partitions under-replicated with no broker to restore them.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, UnregisterBrokerRequest, UnregisterBrokerResponse};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::ControllerOp;

use super::{decode, respond, ApiSpec, HandlerResult, RequestContext};
use crate::broker::Broker;
use crate::errors::controller_error_code;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::UnregisterBroker, 0, 0);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: UnregisterBrokerRequest = decode(&SPEC, header, body)?;
    if !header.authorized_cluster(broker, super::AclOperation::Alter) {
        let mut response = UnregisterBrokerResponse::default();
        response.error_code = strom_protocol::ErrorCode::ClusterAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    let mut response = UnregisterBrokerResponse::default();
    if let Err(e) = broker
        .controller_op(ControllerOp::UnregisterBroker {
            broker_id: request.broker_id.0,
        })
        .into_done()
    {
        response.error_code = controller_error_code(&e).code();
        response.error_message = Some(StrBytes::from_string(e.to_string()));
    }
    respond(&SPEC, header, &response)
}
