//! AlterClientQuotas (key 49), v0–1 (KIP-546): sets and removes quotas per entity, as
//! `kafka-configs.sh --alter --add-config producer_byte_rate=... --entity-type users` sends
//! them; stored in the metadata log. Needs ALTER_CONFIGS on the cluster.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::alter_client_quotas_response::{EntityData, EntryData};
use kafka_protocol::messages::{AlterClientQuotasRequest, AlterClientQuotasResponse, ApiKey};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::controller::ops::ControllerOp;
use strom_metadata::quota::QuotaEntity;
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, RequestContext};
use crate::broker::Broker;
use crate::errors::controller_error_code;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::AlterClientQuotas, 0, 1);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: AlterClientQuotasRequest = decode(&SPEC, header, body)?;
    let mut response = AlterClientQuotasResponse::default();
    let entities: Vec<Vec<(String, Option<String>)>> = request
        .entries
        .iter()
        .map(|e| {
            e.entity
                .iter()
                .map(|d| {
                    (
                        d.entity_type.to_string(),
                        d.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect()
        })
        .collect();
    let results: Vec<Result<(), (ErrorCode, String)>> = if !header
        .authorized_cluster(broker, AclOperation::AlterConfigs)
    {
        entities
            .iter()
            .map(|_| {
                Err((
                    ErrorCode::ClusterAuthorizationFailed,
                    "Cluster authorization failed.".to_owned(),
                ))
            })
            .collect()
    } else {
        let alterations = request
            .entries
            .iter()
            .zip(&entities)
            .map(|(e, components)| {
                (
                    QuotaEntity::new(components.clone()),
                    e.ops
                        .iter()
                        .map(|op| (op.key.to_string(), (!op.remove).then(|| op.value.to_bits())))
                        .collect(),
                )
            })
            .collect();
        let n = entities.len();
        match broker
            .controller_op(ControllerOp::AlterClientQuotas {
                alterations,
                validate_only: request.validate_only,
            })
            .into_quotas()
        {
            Ok(results) if results.len() == n => results
                .into_iter()
                .map(|r| r.map_err(|e| (controller_error_code(&e), e.to_string())))
                .collect(),
            Ok(_) => (0..n)
                .map(|_| {
                    Err((
                        ErrorCode::UnknownServerError,
                        "the controller answered a different number of entities".into(),
                    ))
                })
                .collect(),
            Err(e) => (0..n)
                .map(|_| Err((controller_error_code(&e), e.to_string())))
                .collect(),
        }
    };
    response.entries = entities
        .into_iter()
        .zip(results)
        .map(|(components, result)| {
            let mut out = EntryData::default();
            out.error_message = None;
            out.entity = components
                .into_iter()
                .map(|(t, name)| {
                    let mut d = EntityData::default();
                    d.entity_type = StrBytes::from_string(t);
                    d.entity_name = name.map(StrBytes::from_string);
                    d
                })
                .collect();
            if let Err((code, message)) = result {
                out.error_code = code.code();
                out.error_message = Some(StrBytes::from_string(message));
            }
            out
        })
        .collect();
    respond(&SPEC, header, &response)
}
