//! ApiVersions (key 18), v0–4: the versions of every API in the handler table. A request of
//! a version Strom does not know gets the v0-format reply with UNSUPPORTED_VERSION and the
//! list, so the client can pick a version it shares with us (KIP-511). v3+ also carries the
//! feature flags (KIP-584): `transaction.version` supported 0–2 and finalized at 2, which is
//! what makes Kafka 4 clients use transaction protocol v2 (KIP-890).

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::header::encode_response_with_header_version;
use strom_protocol::ErrorCode;

use super::{
    decode, respond, supported_apis, ApiSpec, HandlerError, HandlerResult, RequestContext,
};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::ApiVersions, 0, 4);

pub(super) async fn handle(
    _broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let _request: ApiVersionsRequest = decode(&SPEC, header, body)?;
    respond(&SPEC, header, &response(0))
}

fn response(error_code: i16) -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.error_code = error_code;
    response.api_keys = supported_apis()
        .into_iter()
        .map(|spec| {
            let mut v = ApiVersion::default();
            v.api_key = spec.key as i16;
            v.min_version = spec.min_version;
            v.max_version = spec.max_version;
            v
        })
        .collect();
    for (name, min, max, finalized) in FEATURES {
        let mut supported = SupportedFeatureKey::default();
        supported.name = StrBytes::from_static_str(name);
        supported.min_version = *min;
        supported.max_version = *max;
        response.supported_features.push(supported);
        let mut level = FinalizedFeatureKey::default();
        level.name = StrBytes::from_static_str(name);
        level.min_version_level = *finalized;
        level.max_version_level = *finalized;
        response.finalized_features.push(level);
    }
    // Clients take finalized features only from an epoch above the last one they saw (-1
    // at first); Strom's features never change, so one epoch serves.
    response.finalized_features_epoch = FINALIZED_FEATURES_EPOCH;
    response
}

/// Feature flags (name, supported min, supported max, finalized level). The finalized
/// level is both the min and max level reported, as Kafka reports it.
pub(crate) const FEATURES: &[(&str, i16, i16, i16)] = &[
    // KIP-890: level 2 = transaction protocol v2 (Produce v12, EndTxn v5, TxnOffsetCommit
    // v5, AddPartitionsToTxn v5 between brokers).
    ("transaction.version", 0, 2, 2),
];

const FINALIZED_FEATURES_EPOCH: i64 = 1;

/// The answer to a request whose version is outside `spec`'s range: for ApiVersions the
/// v0-format fallback; other APIs close the connection, as Kafka does.
pub(super) fn unsupported_version(spec: &ApiSpec, header: &RequestContext) -> HandlerResult {
    if spec.key != ApiKey::ApiVersions {
        return Err(HandlerError::UnsupportedVersion {
            api: spec.key,
            version: header.api_version,
            min: spec.min_version,
            max: spec.max_version,
        });
    }
    let body = response(ErrorCode::UnsupportedVersion.code());
    Ok(Some(
        encode_response_with_header_version(
            ApiKey::ApiVersions,
            0,
            0,
            header.correlation_id,
            &body,
        )?
        .into(),
    ))
}
