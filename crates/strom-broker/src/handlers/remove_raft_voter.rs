//! RemoveRaftVoter (key 81), v0 (KIP-853): removes a controller from a dynamic quorum's
//! voters (`kafka-metadata-quorum.sh remove-controller`, `strom cluster remove-controller`).
//! The directory id, when given (not the zero Uuid), must match the voter's. Removing the only
//! voter is refused. Runs on the quorum leader, forwarded there when needed.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RemoveRaftVoterRequest, RemoveRaftVoterResponse};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::quorum::{VoterChange, VoterChangeError};

use super::{decode, respond, ApiSpec, HandlerResult, RequestContext};
use crate::broker::Broker;
use crate::cluster::{change_voters, directory_id};
use crate::errors::voter_change_error_code;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::RemoveRaftVoter, 0, 0);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: RemoveRaftVoterRequest = decode(&SPEC, header, body)?;
    if !header.authorized_cluster(broker, super::AclOperation::Alter) {
        let mut response = RemoveRaftVoterResponse::default();
        response.error_code = strom_protocol::ErrorCode::ClusterAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    let result = match u64::try_from(request.voter_id) {
        Ok(node_id) => {
            let change = VoterChange::Remove {
                node_id,
                directory_id: directory_id(&request.voter_directory_id),
            };
            let cluster_id = request.cluster_id.as_ref().map(|c| c.as_str());
            change_voters(broker, cluster_id, change).await
        }
        Err(_) => Err(VoterChangeError::InvalidRequest {
            reason: format!("voter id {} is negative", request.voter_id),
        }),
    };
    let mut response = RemoveRaftVoterResponse::default();
    if let Err(e) = result {
        response.error_code = voter_change_error_code(&e).code();
        response.error_message = Some(StrBytes::from_string(e.to_string()));
    }
    respond(&SPEC, header, &response)
}
