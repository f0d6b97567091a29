//! UpdateRaftVoter (key 82), v0 (KIP-853): changes a voter's CONTROLLER endpoint in a dynamic
//! quorum (Kafka's controllers send it themselves when their listeners change; here any client
//! may, through any node). The voter and, when given, its directory id must match. The answer
//! names the leader this node knows.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, BrokerId, UpdateRaftVoterRequest, UpdateRaftVoterResponse};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::quorum::{VoterChange, VoterChangeError};

use super::{decode, respond, ApiSpec, HandlerResult, RequestContext};
use crate::broker::Broker;
use crate::cluster::{change_voters, directory_id, voter_endpoint};
use crate::errors::voter_change_error_code;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::UpdateRaftVoter, 0, 0);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: UpdateRaftVoterRequest = decode(&SPEC, header, body)?;
    if !header.authorized_cluster(broker, super::AclOperation::ClusterAction) {
        let mut response = UpdateRaftVoterResponse::default();
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
    let mut response = UpdateRaftVoterResponse::default();
    if let Err(e) = &result {
        response.error_code = voter_change_error_code(e).code();
    }
    let known = broker.metadata().leader();
    response.current_leader.leader_id = BrokerId(
        known
            .leader
            .and_then(|l| i32::try_from(l).ok())
            .unwrap_or(-1),
    );
    response.current_leader.leader_epoch = i32::try_from(known.epoch).unwrap_or(i32::MAX);
    response.current_leader.host = StrBytes::default();
    respond(&SPEC, header, &response)
}

fn change(broker: &Broker, r: &UpdateRaftVoterRequest) -> Result<VoterChange, VoterChangeError> {
    let node_id = u64::try_from(r.voter_id).map_err(|_| VoterChangeError::InvalidRequest {
        reason: format!("voter id {} is negative", r.voter_id),
    })?;
    let listeners = r
        .listeners
        .iter()
        .map(|l| (l.name.as_str(), l.host.as_str(), l.port));
    Ok(VoterChange::Update {
        node_id,
        directory_id: directory_id(&r.voter_directory_id),
        endpoint: voter_endpoint(broker.config(), listeners)?,
    })
}
