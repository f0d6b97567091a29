//! The one list of Kafka APIs Strom serves (STYLE.md #1). Each module states its API key
//! and version range next to its code; ApiVersions is computed from this list, so what is
//! advertised cannot drift from what is handled.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use strom_protocol::header::{encode_response, EncodeError, RequestHeader};
use strom_protocol::ErrorCode;
use thiserror::Error;

use crate::broker::Broker;
use crate::response::Response;
pub(crate) use strom_metadata::acl::{AclOperation, ResourceType, CLUSTER_RESOURCE_NAME};

mod add_offsets_to_txn;
mod add_partitions_to_txn;
mod add_raft_voter;
mod alter_client_quotas;
mod alter_configs;
mod alter_partition_reassignments;
mod alter_share_group_offsets;
mod alter_user_scram_credentials;
mod api_versions;
mod consumer_group_describe;
mod consumer_group_heartbeat;
mod create_acls;
mod create_partitions;
mod create_topics;
mod delete_acls;
mod delete_groups;
mod delete_records;
mod delete_share_group_offsets;
mod delete_topics;
mod describe_acls;
mod describe_client_quotas;
mod describe_cluster;
mod describe_configs;
mod describe_groups;
mod describe_log_dirs;
mod describe_producers;
mod describe_quorum;
mod describe_share_group_offsets;
mod describe_topic_partitions;
mod describe_transactions;
mod describe_user_scram_credentials;
mod elect_leaders;
mod end_txn;
mod fetch;
mod find_coordinator;
mod heartbeat;
mod incremental_alter_configs;
mod init_producer_id;
mod join_group;
mod leave_group;
mod list_config_resources;
mod list_groups;
mod list_offsets;
mod list_partition_reassignments;
mod list_transactions;
mod metadata;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod offset_for_leader_epoch;
mod produce;
mod remove_raft_voter;
mod sasl_authenticate;
mod sasl_handshake;
mod share_acknowledge;
mod share_fetch;
mod share_group_configs;
mod share_group_describe;
mod share_group_heartbeat;
mod sync_group;
mod txn_offset_commit;
mod unregister_broker;
mod update_raft_voter;
mod write_txn_markers;

/// Flush intervals at or above this are Kafka's "never" (Long.MAX_VALUE).
pub(crate) const NEVER_FLUSH: u64 = i64::MAX as u64;

/// `isolation_level` of a read_committed consumer (Fetch, ListOffsets).
pub(crate) const READ_COMMITTED: i8 = 1;

/// An API and the versions Strom advertises for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiSpec {
    pub key: ApiKey,
    pub min_version: i16,
    pub max_version: i16,
}

impl ApiSpec {
    pub const fn new(key: ApiKey, min_version: i16, max_version: i16) -> Self {
        Self {
            key,
            min_version,
            max_version,
        }
    }

    fn supports(&self, version: i16) -> bool {
        (self.min_version..=self.max_version).contains(&version)
    }
}

/// A request's header plus what the connection knows about its sender.
#[derive(Debug)]
pub(crate) struct RequestContext {
    pub header: RequestHeader,
    /// The client's address (Kafka shows it as a group member's `client_host`).
    pub peer: SocketAddr,
    /// The listener the request came in on: Metadata, FindCoordinator and leader hints
    /// answer with the endpoints of this listener, as Kafka does.
    pub listener: std::sync::Arc<str>,
    /// Who the client is: `User:NAME` once authenticated (SASL, or a client certificate),
    /// else `User:ANONYMOUS`.
    pub principal: std::sync::Arc<str>,
    /// The connection's SASL exchange, on SASL listeners.
    pub sasl: Option<std::sync::Arc<parking_lot::Mutex<crate::security::sasl::SaslSession>>>,
    /// Set by a handler whose request took its client over a quota: the connection reads
    /// nothing more for this many milliseconds after the response (Kafka mutes the channel).
    pub throttle_ms: std::sync::atomic::AtomicU32,
    /// Set by a handler whose answer means this broker should not be the client's way in
    /// any more (a leader cut off from the cluster): the connection closes after the
    /// response, so the client reconnects and asks another broker for metadata.
    pub close_after: std::sync::atomic::AtomicBool,
}

impl std::ops::Deref for RequestContext {
    type Target = RequestHeader;
    fn deref(&self) -> &RequestHeader {
        &self.header
    }
}

impl RequestContext {
    /// Counts `bytes` against the client's byte-rate quota of `kind`; when over it, returns
    /// the throttle time for the response's `throttle_time_ms` and mutes the connection for
    /// that long after the response. Zero without quotas.
    pub fn charge_quota(
        &self,
        broker: &Broker,
        kind: crate::client_quotas::QuotaKind,
        bytes: u64,
    ) -> i32 {
        let image = broker.image();
        let quotas = image.client_quotas();
        if quotas.is_empty() {
            return 0;
        }
        let user = self
            .principal
            .strip_prefix("User:")
            .unwrap_or(&self.principal);
        let client_id = self.header.client_id.as_deref().unwrap_or("");
        let wait = broker
            .client_quotas()
            .record(quotas, kind, user, client_id, bytes);
        let ms = u32::try_from(wait.as_millis()).unwrap_or(u32::MAX);
        self.throttle_ms
            .fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
        i32::try_from(ms).unwrap_or(i32::MAX)
    }

    /// Charges one topic's partition creations or deletions to the client's
    /// `controller_mutation_rate` (KIP-599; see `ClientQuotaManager::record_mutations`).
    /// `Err` is the topic's THROTTLING_QUOTA_EXCEEDED answer in strict mode. Either way the
    /// response's throttle time is raised to what the client owes; in permissive mode the
    /// connection is also muted for it.
    pub fn charge_mutations(
        &self,
        broker: &Broker,
        throttle_ms: &mut i32,
        partitions: u64,
        strict: bool,
    ) -> Result<(), ErrorCode> {
        let image = broker.image();
        let quotas = image.client_quotas();
        if quotas.is_empty() {
            return Ok(());
        }
        let user = self
            .principal
            .strip_prefix("User:")
            .unwrap_or(&self.principal);
        let client_id = self.header.client_id.as_deref().unwrap_or("");
        let result = broker
            .client_quotas()
            .record_mutations(quotas, user, client_id, partitions, strict);
        let owed = match result {
            Ok(wait) | Err(wait) => i32::try_from(wait.as_millis()).unwrap_or(i32::MAX),
        };
        *throttle_ms = (*throttle_ms).max(owed);
        if !strict {
            self.throttle_ms
                .fetch_max(owed.max(0) as u32, std::sync::atomic::Ordering::Relaxed);
        }
        result
            .map(|_| ())
            .map_err(|_| ErrorCode::ThrottlingQuotaExceeded)
    }

    /// Whether the authorizer (when one is configured) lets this request's principal do
    /// `operation` to the resource `(resource_type, name)`. Denials go to the audit log.
    pub fn authorized(
        &self,
        broker: &Broker,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        broker.authorizer().is_none_or(|a| {
            a.authorize(
                self.header.api_key,
                &self.principal,
                &self.peer.ip().to_string(),
                operation,
                resource_type,
                name,
            )
        })
    }

    /// `authorized` on the one CLUSTER resource.
    pub fn authorized_cluster(&self, broker: &Broker, operation: AclOperation) -> bool {
        self.authorized(
            broker,
            operation,
            ResourceType::Cluster,
            CLUSTER_RESOURCE_NAME,
        )
    }

    /// Kafka's `*_authorized_operations` bit field for a resource: bit `code` set for each of
    /// the resource type's operations the principal may do (all of them with no authorizer).
    pub fn authorized_operations(
        &self,
        broker: &Broker,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        use AclOperation as Op;
        let operations: &[Op] = match resource_type {
            ResourceType::Topic => &[
                Op::Read,
                Op::Write,
                Op::Create,
                Op::Delete,
                Op::Alter,
                Op::Describe,
                Op::DescribeConfigs,
                Op::AlterConfigs,
            ],
            ResourceType::Group => &[Op::Read, Op::Describe, Op::Delete],
            ResourceType::Cluster => &[
                Op::Create,
                Op::ClusterAction,
                Op::DescribeConfigs,
                Op::AlterConfigs,
                Op::IdempotentWrite,
                Op::Alter,
                Op::Describe,
            ],
            _ => &[],
        };
        operations
            .iter()
            .filter(|op| self.allowed_quietly(broker, **op, resource_type, name))
            .fold(0, |bits, op| bits | (1 << op.code()))
    }

    /// The authorization error for `operation` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on a
    /// config resource (2 = topic, 4 = broker: the cluster's ACLs, 32 = group), if refused.
    pub fn config_refusal(
        &self,
        broker: &Broker,
        operation: AclOperation,
        resource_type: i8,
        name: &str,
    ) -> Option<strom_protocol::ErrorCode> {
        match resource_type {
            2 if !self.authorized(broker, operation, ResourceType::Topic, name) => {
                Some(ErrorCode::TopicAuthorizationFailed)
            }
            4 if !self.authorized_cluster(broker, operation) => {
                Some(ErrorCode::ClusterAuthorizationFailed)
            }
            32 if !self.authorized(broker, operation, ResourceType::Group, name) => {
                Some(ErrorCode::GroupAuthorizationFailed)
            }
            _ => None,
        }
    }

    /// `authorized` without an audit-log line, for listings that filter what they show.
    pub fn allowed_quietly(
        &self,
        broker: &Broker,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        broker.authorizer().is_none_or(|a| {
            a.allows_quietly(
                &self.principal,
                &self.peer.ip().to_string(),
                operation,
                resource_type,
                name,
            )
        })
    }

    /// Whether the principal may do `operation` to some resource of `resource_type`.
    pub fn authorized_any(
        &self,
        broker: &Broker,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        broker.authorizer().is_none_or(|a| {
            a.authorize_any(
                &self.principal,
                &self.peer.ip().to_string(),
                operation,
                resource_type,
            )
        })
    }
}

/// Why a request could not be answered; the connection is closed with a log line.
#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("{api:?} v{version} is not supported (advertised {min}..={max})")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        min: i16,
        max: i16,
    },
    #[error("api {api:?} is not supported")]
    UnsupportedApi { api: ApiKey },
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// What a handler returns: an encoded response frame, or nothing (acks=0 produce).
pub(crate) type HandlerResult = Result<Option<Response>, HandlerError>;

/// A handler's answer once the request's work is done here: the response now, or (Produce in
/// durable mode or with acks=all) the wait for its acknowledgement, which the connection
/// hands to its writer so that it can go on with the next requests (pipelining).
pub(crate) enum Handled {
    Ready(Option<Response>),
    Waiting(std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send>>),
}

/// The end of a waiting answer.
pub(crate) struct Answer {
    pub result: HandlerResult,
    /// As `RequestContext::close_after`: close the connection after this response.
    pub close_after: bool,
}

/// As `dispatch`, but a Produce whose answer waits for a group-commit fsync or the ISR
/// returns that wait instead of awaiting it. Its records are appended before this returns.
pub(crate) async fn dispatch_pipelined(
    broker: &Arc<Broker>,
    header: &RequestContext,
    body: bytes::BytesMut,
) -> Result<Handled, HandlerError> {
    if header.api_key == produce::SPEC.key as i16 && produce::SPEC.supports(header.api_version) {
        return produce::start(broker, header, body).await;
    }
    dispatch(broker, header, body.freeze())
        .await
        .map(Handled::Ready)
}

macro_rules! handlers {
    ($($module:ident),* $(,)?) => {
        /// Every API Strom serves with its advertised versions, in api-key order.
        pub fn supported_apis() -> Vec<ApiSpec> {
            let mut apis = vec![$($module::SPEC),*];
            apis.sort_by_key(|s| s.key as i16);
            apis
        }

        /// Routes a request to its handler after checking the version against the table.
        pub(crate) async fn dispatch(
            broker: &Arc<Broker>,
            header: &RequestContext,
            body: Bytes,
        ) -> HandlerResult {
            let api = ApiKey::try_from(header.api_key)
                .map_err(|_| HandlerError::UnsupportedApi { api: ApiKey::ApiVersions })?;
            $(
                if api == $module::SPEC.key {
                    if !$module::SPEC.supports(header.api_version) {
                        return api_versions::unsupported_version(&$module::SPEC, header);
                    }
                    return $module::handle(broker, header, body).await;
                }
            )*
            Err(HandlerError::UnsupportedApi { api })
        }
    };
}

handlers!(
    produce,
    fetch,
    list_offsets,
    metadata,
    api_versions,
    create_topics,
    delete_topics,
    delete_records,
    init_producer_id,
    offset_for_leader_epoch,
    describe_configs,
    alter_configs,
    create_partitions,
    incremental_alter_configs,
    describe_cluster,
    describe_log_dirs,
    describe_quorum,
    describe_topic_partitions,
    find_coordinator,
    join_group,
    sync_group,
    heartbeat,
    leave_group,
    offset_commit,
    offset_fetch,
    list_groups,
    describe_groups,
    delete_groups,
    offset_delete,
    add_partitions_to_txn,
    add_offsets_to_txn,
    end_txn,
    txn_offset_commit,
    describe_transactions,
    list_transactions,
    describe_producers,
    consumer_group_heartbeat,
    consumer_group_describe,
    add_raft_voter,
    remove_raft_voter,
    update_raft_voter,
    write_txn_markers,
    sasl_handshake,
    sasl_authenticate,
    describe_user_scram_credentials,
    alter_user_scram_credentials,
    elect_leaders,
    alter_partition_reassignments,
    list_partition_reassignments,
    unregister_broker,
    describe_acls,
    create_acls,
    delete_acls,
    describe_client_quotas,
    alter_client_quotas,
    share_group_heartbeat,
    share_group_describe,
    share_fetch,
    share_acknowledge,
    describe_share_group_offsets,
    list_config_resources,
    alter_share_group_offsets,
    delete_share_group_offsets,
);

/// Decodes a request body of the header's version.
pub(crate) fn decode<R: Decodable>(
    spec: &ApiSpec,
    header: &RequestHeader,
    mut body: Bytes,
) -> Result<R, HandlerError> {
    R::decode(&mut body, header.api_version).map_err(|e| HandlerError::Malformed {
        api: spec.key,
        version: header.api_version,
        reason: e.to_string(),
    })
}

/// Encodes a response of the request's version, with the request's correlation id.
pub(crate) fn respond<R: Encodable + HeaderVersion>(
    spec: &ApiSpec,
    header: &RequestHeader,
    response: &R,
) -> HandlerResult {
    Ok(Some(
        encode_response(
            spec.key,
            header.api_version,
            header.correlation_id,
            response,
        )?
        .into(),
    ))
}
