//! DescribeUserScramCredentials (key 50), v0 (KIP-554): each user's SCRAM mechanisms and
//! iteration counts (never salts or keys); all users when the request names none.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    ApiKey, DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;

use super::{decode, respond, ApiSpec, HandlerResult, RequestContext};
use crate::broker::Broker;

pub(super) const SPEC: ApiSpec = ApiSpec::new(ApiKey::DescribeUserScramCredentials, 0, 0);

pub(super) async fn handle(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: Bytes,
) -> HandlerResult {
    let request: DescribeUserScramCredentialsRequest = decode(&SPEC, header, body)?;
    if !header.authorized_cluster(broker, super::AclOperation::Describe) {
        let mut response = DescribeUserScramCredentialsResponse::default();
        response.error_code = strom_protocol::ErrorCode::ClusterAuthorizationFailed.code();
        return respond(&SPEC, header, &response);
    }
    let image = broker.image();
    let mut response = DescribeUserScramCredentialsResponse::default();
    response.error_message = None;
    let describe = |user: &str| {
        let mut r = DescribeUserScramCredentialsResult::default();
        r.user = StrBytes::from_string(user.to_owned());
        r.error_message = None;
        match image.scram_users().find(|(u, _)| *u == user) {
            Some((_, by_mechanism)) => {
                r.credential_infos = by_mechanism
                    .iter()
                    .map(|(mechanism, c)| {
                        let mut info = CredentialInfo::default();
                        info.mechanism = *mechanism;
                        info.iterations = c.iterations;
                        info
                    })
                    .collect();
            }
            None => {
                r.error_code = ErrorCode::ResourceNotFound.code();
                r.error_message = Some(StrBytes::from_string(format!(
                    "Attempt to describe a user credential that does not exist: {user}"
                )));
            }
        }
        r
    };
    response.results = match &request.users {
        None => image.scram_users().map(|(u, _)| describe(u)).collect(),
        Some(users) if users.is_empty() => image.scram_users().map(|(u, _)| describe(u)).collect(),
        Some(users) => {
            let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
            names
                .iter()
                .map(|name| {
                    if names.iter().filter(|n| *n == name).count() > 1 {
                        let mut r = DescribeUserScramCredentialsResult::default();
                        r.user = StrBytes::from_string((*name).to_owned());
                        r.error_code = ErrorCode::DuplicateResource.code();
                        r.error_message =
                            Some(StrBytes::from_string(format!("Cannot describe SCRAM credentials for the same user twice in a single request: {name}")));
                        r
                    } else {
                        describe(name)
                    }
                })
                .collect()
        }
    };
    respond(&SPEC, header, &response)
}
