//! DescribeCluster (key 60), v0–1: cluster id, controller and brokers as the image has them.

use std::sync::Arc;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use super::{decode, respond, ApiSpec, HandlerResult};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::DescribeCluster, 0, 1);
/// DescribeCluster v1 endpoint_type: 1 = brokers, 2 = controllers (KIP-919).
const ENDPOINT_TYPE_BROKERS: i8 = 1;

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: DescribeClusterRequest = decode(&SPEC, header, body)?;
    let image = broker.image();
    let mut response = DescribeClusterResponse::default();
    if header.api_version >= 1 && request.endpoint_type != ENDPOINT_TYPE_BROKERS {
        response.error_code = ErrorCode::UnsupportedEndpointType.code();
        response.error_message = Some(StrBytes::from_static_str(
            "only broker endpoints are served by this listener",
        ));
        response.endpoint_type = request.endpoint_type;
        return respond(&SPEC, header, &response);
    }
    response.cluster_id = StrBytes::from_string(image.cluster_id().unwrap_or_default().to_owned());
    response.controller_id = BrokerId(broker.controller_id_for_clients());
    response.brokers = image
        .unfenced_brokers()
        .filter_map(|b| Some((b, b.endpoint(&header.listener)?)))
        .map(|(b, (host, port))| {
            let mut d = DescribeClusterBroker::default();
            d.broker_id = BrokerId(b.broker_id);
            d.host = StrBytes::from_string(host.to_owned());
            d.port = i32::from(port);
            d.rack = b.rack.clone().map(StrBytes::from_string);
            d
        })
        .collect();
    if request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = header.authorized_operations(
            broker,
            super::ResourceType::Cluster,
            super::CLUSTER_RESOURCE_NAME,
        );
    }
    respond(&SPEC, header, &response)
}
