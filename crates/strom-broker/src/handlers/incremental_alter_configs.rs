//! IncrementalAlterConfigs (key 44), v0–1 (KIP-339): SET, DELETE (revert to default),
//! APPEND and SUBTRACT (list configs) on single keys of a topic's overrides.

use std::sync::Arc;
use strom_metadata::ControllerOp;

use super::RequestContext;
use bytes::Bytes;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::controller::AlterConfigOp;
use strom_metadata::ControllerError;

use super::{decode, respond, ApiSpec, HandlerResult};
use crate::broker::Broker;
use crate::errors::{config_resource, controller_error_code};

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::IncrementalAlterConfigs, 0, 1);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: IncrementalAlterConfigsRequest = decode(&SPEC, header, body)?;
    let validate_only = request.validate_only;
    let mut response = IncrementalAlterConfigsResponse::default();
    response.responses = request
        .resources
        .into_iter()
        .map(|resource| {
            // Share-group configs (`share.*`) are kept by the share coordinator; a group's
            // other configs (consumer groups) go to the metadata log.
            if resource.resource_type == super::share_group_configs::RESOURCE_GROUP
                && resource
                    .configs
                    .iter()
                    .any(|c| c.name.starts_with("share."))
            {
                return super::share_group_configs::alter(broker, header, resource, validate_only);
            }
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
                let ops = resource
                    .configs
                    .into_iter()
                    .map(|c| {
                        let op = AlterConfigOp::try_from(c.config_operation)?;
                        Ok((c.name.to_string(), op, c.value.map(|v| v.to_string())))
                    })
                    .collect::<Result<Vec<_>, ControllerError>>()?;
                broker
                    .controller_op(ControllerOp::IncrementalAlterConfigs {
                        resource: target,
                        ops,
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
