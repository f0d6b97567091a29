//! AddRaftVoter (key 80), v0 (KIP-853): adds a controller to a dynamic quorum, as
//! `kafka-metadata-quorum.sh add-controller` and `strom cluster add-controller` ask. The new
//! controller (formatted with `--no-initial-controllers` and running) joins as an observer,
//! catches up within `timeout_ms`, then becomes a voter. Any node answers; the change runs on
//! the quorum leader, forwarded there when needed.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{AddRaftVoterRequest, AddRaftVoterResponse, ApiKey};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::quorum::{VoterChange, VoterChangeError};

use super::{decode, respond, ApiSpec, HandlerResult, RequestContext};
use crate::broker::Broker;
use crate::cluster::{change_voters, directory_id, voter_endpoint};
use crate::errors::voter_change_error_code;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::AddRaftVoter, 0, 0);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: AddRaftVoterRequest = decode(&SPEC, header, body)?;
    if !header.authorized_cluster(broker, super::AclOperation::Alter) {
        let mut response = AddRaftVoterResponse::default();
        response.error_code = strom_protocol::ErrorCode::ClusterAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    let result = match change(broker, &request) {
        Ok(change) => {
            let cluster_id = request.cluster_id.as_ref().map(|c| c.as_str());
            change_voters(broker, cluster_id, change).await
        }
        Err(e) => Err(e),
    };
    let mut response = AddRaftVoterResponse::default();
    if let Err(e) = result {
        response.error_code = voter_change_error_code(&e).code();
        response.error_message = Some(StrBytes::from_string(e.to_string()));
    }
    respond(&SPEC, header, &response)
}

fn change(broker: &Broker, r: &AddRaftVoterRequest) -> Result<VoterChange, VoterChangeError> {
    let node_id = u64::try_from(r.voter_id).map_err(|_| VoterChangeError::InvalidRequest {
        reason: format!("voter id {} is negative", r.voter_id),
    })?;
    let directory_id =
        directory_id(&r.voter_directory_id).ok_or_else(|| VoterChangeError::InvalidRequest {
            reason: "the new voter's directory id is missing (the zero Uuid); it is directory.id in the metadata.log.dir meta.properties of the new controller".into(),
        })?;
    let listeners = r
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.host.as_str(), l.port));
    let endpoint = voter_endpoint(broker.config(), listeners)?;
    let timeout_ms = u64::try_from(r.timeout_ms).unwrap_or(0).max(1_000);
    Ok(VoterChange::Add {
        node_id,
        directory_id: Some(directory_id),
        endpoint,
        timeout_ms,
    })
}
