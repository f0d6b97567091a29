//! AlterUserScramCredentials (key 51), v0 (KIP-554): sets and deletes users' SCRAM
//! credentials, as `kafka-configs.sh --alter --add-config 'SCRAM-SHA-256=[password=...]'
//! --entity-type users` sends them. The client sends the salted password; the broker derives
//! StoredKey and ServerKey from it, and only those reach the metadata log.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
};
use kafka_protocol::protocol::StrBytes;
use strom_metadata::controller::ops::ControllerOp;
use strom_metadata::controller::scram::ScramUpsertion;

use super::{decode, respond, ApiSpec, HandlerResult, RequestContext};
use crate::broker::Broker;
use crate::errors::controller_error_code;
use crate::security::scram::Mechanism;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::AlterUserScramCredentials, 0, 0);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: AlterUserScramCredentialsRequest = decode(&SPEC, header, body)?;
    let deletions = request
        .deletions
        .iter()
        .map(|d| (d.name.to_string(), d.mechanism))
        .collect();
    let upsertions = request
        .upsertions
        .iter()
        .map(|u| {
            // An unknown mechanism gets empty keys here; the controller refuses it by id.
            let (stored_key, server_key) = Mechanism::by_id(u.mechanism)
                .map(|m| m.keys(&u.salted_password))
                .unwrap_or_default();
            ScramUpsertion {
                user: u.name.to_string(),
                mechanism: u.mechanism,
                iterations: u.iterations,
                salt: u.salt.to_vec(),
                stored_key,
                server_key,
            }
        })
        .collect();
    let mut response = AlterUserScramCredentialsResponse::default();
    // ALTER on the cluster, as Kafka checks.
    let results = if header.authorized_cluster(broker, super::AclOperation::Alter) {
        broker
            .controller_op(ControllerOp::AlterUserScramCredentials {
                deletions,
                upsertions,
            })
            .into_scram()
    } else {
        Err(strom_metadata::ControllerError::ClusterAuthorizationFailed)
    };
    let users: Vec<String> = request
        .deletions
        .iter()
        .map(|d| d.name.to_string())
        .chain(request.upsertions.iter().map(|u| u.name.to_string()))
        .fold(Vec::new(), |mut users, u| {
            if !users.contains(&u) {
                users.push(u);
            }
            users
        });
    response.results = match results {
        Ok(results) => results
            .into_iter()
            .map(|(user, r)| result(user, r.err()))
            .collect(),
        Err(e) => users
            .into_iter()
            .map(|u| result(u, Some(e.clone())))
            .collect(),
    };
    respond(&SPEC, header, &response)
}

fn result(
    user: String,
    error: Option<strom_metadata::ControllerError>,
) -> AlterUserScramCredentialsResult {
    let mut r = AlterUserScramCredentialsResult::default();
    r.user = StrBytes::from_string(user);
    r.error_message = None;
    if let Some(e) = error {
        r.error_code = controller_error_code(&e).code();
        r.error_message = Some(StrBytes::from_string(e.to_string()));
    }
    r
}
