//! DescribeClientQuotas (key 48), v0–1 (KIP-546): the quotas of the entities a filter
//! matches, as `kafka-configs.sh --describe --entity-type users|clients|ips` asks. Needs
//! DESCRIBE_CONFIGS on the cluster.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::describe_client_quotas_response::{EntityData, EntryData, ValueData};
use kafka_protocol::messages::{ApiKey, DescribeClientQuotasRequest, DescribeClientQuotasResponse};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::quota::{CLIENT_ID, IP, USER};
use strom_protocol::ErrorCode;

use super::{decode, respond, AclOperation, ApiSpec, HandlerResult, RequestContext};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::DescribeClientQuotas, 0, 1);

const MATCH_EXACT: i8 = 0;
const MATCH_DEFAULT: i8 = 1;
const MATCH_ANY: i8 = 2;

/// One filter component: an entity type and which names of it match.
enum NameMatch {
    Exact(String),
    Default,
    Any,
}

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: DescribeClientQuotasRequest = decode(&SPEC, header, body)?;
    let mut response = DescribeClientQuotasResponse::default();
    response.error_message = None;
    let fail = |mut response: DescribeClientQuotasResponse, code: ErrorCode, message: String| {
        response.error_code = code.code();
        response.error_message = Some(StrBytes::from_string(message));
        response.entries = None;
        respond(&SPEC, header, &response)
    };
    if !header.authorized_cluster(broker, AclOperation::DescribeConfigs) {
        return fail(
            response,
            ErrorCode::ClusterAuthorizationFailed,
            "Cluster authorization failed.".into(),
        );
    }
    let mut filter: Vec<(String, NameMatch)> = Vec::new();
    for c in &request.components {
        let entity_type = c.entity_type.to_string();
        if ![USER, CLIENT_ID, IP].contains(&entity_type.as_str()) {
            return fail(
                response,
                ErrorCode::InvalidRequest,
                format!("unknown entity type '{entity_type}'"),
            );
        }
        if filter.iter().any(|(t, _)| *t == entity_type) {
            return fail(
                response,
                ErrorCode::InvalidRequest,
                format!("entity type '{entity_type}' is filtered twice"),
            );
        }
        let name = match (c.match_type, &c._match) {
            (MATCH_EXACT, Some(name)) => NameMatch::Exact(name.to_string()),
            (MATCH_DEFAULT, _) => NameMatch::Default,
            (MATCH_ANY, _) => NameMatch::Any,
            (t, _) => {
                return fail(
                    response,
                    ErrorCode::InvalidRequest,
                    format!("unknown match type {t} (or an exact match without a name)"),
                )
            }
        };
        filter.push((entity_type, name));
    }
    let image = broker.image();
    let entries = image
        .client_quotas()
        .iter()
        .filter(|(entity, _)| {
            let components_match = filter.iter().all(|(t, m)| match (entity.component(t), m) {
                (None, _) => false,
                (Some(_), NameMatch::Any) => true,
                (Some(None), NameMatch::Default) => true,
                (Some(Some(name)), NameMatch::Exact(want)) => name == want,
                _ => false,
            });
            // Strict: the entity has no component the filter does not name.
            let strict_ok = !request.strict || entity.0.len() == filter.len();
            components_match && strict_ok
        })
        .map(|(entity, values)| {
            let mut e = EntryData::default();
            e.entity = entity
                .0
                .iter()
                .map(|(t, name)| {
                    let mut d = EntityData::default();
                    d.entity_type = StrBytes::from_string(t.clone());
                    d.entity_name = name.clone().map(StrBytes::from_string);
                    d
                })
                .collect();
            e.values = values
                .into_iter()
                .map(|(key, value)| {
                    let mut v = ValueData::default();
                    v.key = StrBytes::from_string(key.to_owned());
                    v.value = value;
                    v
                })
                .collect();
            e
        })
        .collect();
    response.entries = Some(entries);
    respond(&SPEC, header, &response)
}
