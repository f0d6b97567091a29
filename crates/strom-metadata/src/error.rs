//! Typed errors of the metadata crate: what the controller refuses (domain facts the broker maps
//! to Kafka error codes in one place) and what the metadata log could not do on disk.

use std::path::PathBuf;

/// Why a controller operation was refused or could not be committed. Each variant is a fact the
/// broker maps to one Kafka error code (STYLE.md #3); `reason` strings go to `error_message`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ControllerError {
    /// TOPIC_ALREADY_EXISTS.
    #[error("topic '{name}' already exists")]
    TopicAlreadyExists { name: String },
    /// UNKNOWN_TOPIC_OR_PARTITION.
    #[error("this server does not host topic '{name}'")]
    UnknownTopicOrPartition { name: String },
    /// INVALID_TOPIC_EXCEPTION: illegal name, or a name colliding with another through '.'/'_'.
    #[error("invalid topic: {reason}")]
    InvalidTopic { reason: String },
    /// INVALID_PARTITIONS.
    #[error("invalid partitions: {reason}")]
    InvalidPartitions { reason: String },
    /// INVALID_REPLICATION_FACTOR.
    #[error("invalid replication factor: {reason}")]
    InvalidReplicationFactor { reason: String },
    /// INVALID_REPLICA_ASSIGNMENT.
    #[error("invalid replica assignment: {reason}")]
    InvalidReplicaAssignment { reason: String },
    /// INVALID_CONFIG: unknown key or a value its definition rejects.
    #[error("invalid config '{key}': {reason}")]
    InvalidConfig { key: String, reason: String },
    /// TOPIC_DELETION_DISABLED: `delete.topic.enable=false`.
    #[error("topic deletion is disabled (delete.topic.enable=false)")]
    TopicDeletionDisabled,
    /// INVALID_REQUEST: the request contradicts itself (duplicate names, duplicate keys, ...).
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },
    /// BROKER_ID_NOT_REGISTERED: an operation names a broker the image does not know.
    #[error("broker {broker_id} is not registered")]
    BrokerNotRegistered { broker_id: i32 },
    /// The configured `cluster.id` differs from the one stored in the metadata log.
    #[error(
        "configured cluster.id '{configured}' does not match '{stored}' stored in the metadata log"
    )]
    ClusterIdMismatch { configured: String, stored: String },
    /// NOT_CONTROLLER: this node's controller is not the active one (the quorum leader is
    /// `leader`, if known), or leadership moved while the records were pending, so they may or
    /// may not have committed. Retriable: the client re-reads metadata and retries.
    #[error("this node is not the active controller (active: {leader:?})")]
    NotController { leader: Option<i32> },
    /// NOT_LEADER_OR_FOLLOWER: an ISR change from a broker that does not lead the partition.
    #[error("broker {broker_id} is not the leader (the leader is {leader})")]
    NotLeader { broker_id: i32, leader: i32 },
    /// FENCED_LEADER_EPOCH: a request from an older leader epoch.
    #[error("leader epoch {requested} is fenced (current {current})")]
    FencedLeaderEpoch { requested: i32, current: i32 },
    /// INVALID_UPDATE_VERSION: the partition changed since the requester last saw it.
    #[error("partition epoch {requested} is stale (current {current})")]
    InvalidUpdateVersion { requested: i32, current: i32 },
    /// INELIGIBLE_REPLICA: a proposed ISR member cannot be in the ISR.
    #[error("replica {replica} is not eligible for the ISR: {reason}")]
    IneligibleReplica { replica: i32, reason: String },
    /// ELECTION_NOT_NEEDED: the partition already has the leader the election would pick.
    #[error("leader election not needed: {reason}")]
    ElectionNotNeeded { reason: String },

    /// PREFERRED_LEADER_NOT_AVAILABLE: the preferred replica is fenced or out of the ISR.
    #[error("the preferred leader {replica} is not available: {reason}")]
    PreferredLeaderNotAvailable { replica: i32, reason: String },

    /// ELIGIBLE_LEADERS_NOT_AVAILABLE: no replica may lead (unclean election found none alive).
    #[error("no eligible leader: {reason}")]
    EligibleLeadersNotAvailable { reason: String },

    /// NO_REASSIGNMENT_IN_PROGRESS: a cancellation for a partition that is not being moved.
    #[error("no reassignment is in progress for {partition}")]
    NoReassignmentInProgress { partition: String },

    /// UNACCEPTABLE_CREDENTIAL: a SCRAM credential Kafka would refuse (empty user, iterations
    /// out of bounds).
    #[error("unacceptable credential: {reason}")]
    UnacceptableCredential { reason: String },
    /// UNSUPPORTED_SASL_MECHANISM: an unknown SCRAM mechanism.
    #[error("{reason}")]
    UnsupportedSaslMechanism { reason: String },
    /// RESOURCE_NOT_FOUND: deleting a credential that does not exist.
    #[error("{reason}")]
    ResourceNotFound { reason: String },
    /// DUPLICATE_RESOURCE: one resource named twice in a request.
    #[error("{reason}")]
    DuplicateResource { reason: String },

    /// CLUSTER_AUTHORIZATION_FAILED: the broker's authorizer refused the operation before
    /// it reached the controller.
    #[error("Cluster authorization failed.")]
    ClusterAuthorizationFailed,

    /// The records could not be committed (KAFKA_STORAGE_ERROR / UNKNOWN_SERVER_ERROR).
    #[error("metadata log: {reason}")]
    Storage { reason: String },
}

impl From<MetadataLogError> for ControllerError {
    fn from(e: MetadataLogError) -> Self {
        ControllerError::Storage {
            reason: e.to_string(),
        }
    }
}

/// What the metadata log could not do.
#[derive(Debug, thiserror::Error)]
pub enum MetadataLogError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A frame whose checksum is valid but whose payload is not a batch this version understands.
    /// Not a torn write, so it is not truncated away: a newer Strom may have written it.
    #[error(
        "{path}: frame at position {position} has a valid checksum but cannot be decoded: {reason}"
    )]
    UndecodableBatch {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    /// A batch bigger than [`crate::log::MAX_BATCH_BYTES`] was offered for append.
    #[error("metadata batch of {bytes} bytes exceeds the limit of {limit} bytes")]
    BatchTooLarge { bytes: usize, limit: usize },
    /// An earlier append failed part-way; the log refuses writes until it is reopened.
    #[error("metadata log at {path} failed earlier and must be reopened")]
    Failed { path: PathBuf },
}
