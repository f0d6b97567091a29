//! AlterConfigs (key 33), v0–2: replaces the whole set of a topic's config overrides (keys
//! left out revert to their defaults), as Kafka's legacy AlterConfigs does.

use std::sync::Arc;
use strom_metadata::ControllerOp;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse, ApiKey};
use kafka_protocol::protocol::StrBytes;

use super::{decode, respond, ApiSpec, HandlerResult};
use crate::broker::Broker;
use crate::errors::{config_resource, controller_error_code};

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::AlterConfigs, 0, 2);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: AlterConfigsRequest = decode(&SPEC, header, body)?;
    let validate_only = request.validate_only;
    let mut response = AlterConfigsResponse::default();
    response.responses = request
        .resources
        .into_iter()
        .map(|resource| {
            let mut r = AlterConfigsResourceResponse::default();
            if let Some(code) = header.config_refusal(
                broker,
                super::AclOperation::AlterConfigs,
                resource.resource_type,
                &resource.resource_name,
            ) {
                r.error_code = code.code();
                r.error_message = Some(StrBytes::from_static_str("Authorization failed."));
                r.resource_type = resource.resource_type;
                r.resource_name = resource.resource_name;
                return r;
            }
            let result = config_resource(
                broker,
                resource.resource_type,
                resource.resource_name.as_str(),
            )
            .and_then(|target| {
                let configs: Vec<(String, Option<String>)> = resource
                    .configs
                    .into_iter()
                    .map(|c| (c.name.to_string(), c.value.map(|v| v.to_string())))
                    .collect();
                broker
                    .controller_op(ControllerOp::AlterConfigs {
                        resource: target,
                        configs,
                        validate_only,
                    })
                    .into_done()
            });
            if let Err(e) = result {
                r.error_code = controller_error_code(&e).code();
                r.error_message = Some(StrBytes::from_string(e.to_string()));
            }
            r.resource_type = resource.resource_type;
            r.resource_name = resource.resource_name;
            r
        })
        .collect();
    respond(&SPEC, header, &response)
}
