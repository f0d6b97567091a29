//! The one place where engine errors become Kafka error codes (STYLE.md #3). Every match is
//! exhaustive, so a new error variant forces a decision here.

use strom_metadata::quorum::VoterChangeError;
use strom_metadata::{ConfigResource, ControllerError};
use strom_protocol::ErrorCode;
use strom_storage::LogError;

use crate::broker::Broker;

/// The Kafka error code for a partition-log failure.
pub fn log_error_code(error: &LogError) -> ErrorCode {
    match error {
        LogError::CorruptMessage { .. } => ErrorCode::CorruptMessage,
        LogError::InvalidRecord { .. } => ErrorCode::InvalidRecord,
        LogError::MissingKeysInCompactedTopic { .. } => ErrorCode::InvalidRecord,
        LogError::UnsupportedForMessageFormat { .. } => ErrorCode::UnsupportedForMessageFormat,
        LogError::UnsupportedCompressionType { .. } => ErrorCode::UnsupportedCompressionType,
        LogError::MessageTooLarge { .. } => ErrorCode::MessageTooLarge,
        LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        LogError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequenceNumber,
        LogError::InvalidProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
        LogError::TransactionCoordinatorFenced { .. } => ErrorCode::TransactionCoordinatorFenced,
        LogError::Closed => ErrorCode::NotLeaderOrFollower,
        // Only a follower's append meets it: replication out of step, not a client's fault.
        LogError::OffsetsOutOfOrder { .. } => ErrorCode::UnknownServerError,
        LogError::Io { .. } => ErrorCode::KafkaStorageError,
        LogError::Offline { .. } => ErrorCode::KafkaStorageError,
    }
}

/// The records at fault when a log refused an append for some of its records, and why, as
/// Kafka words it (KIP-467: a Produce response names them by their index in the batch); `None`
/// when the batch as a whole was refused.
pub fn log_record_errors(error: &LogError) -> Option<(&[u32], &'static str)> {
    match error {
        LogError::MissingKeysInCompactedTopic { record_indexes } => Some((
            record_indexes,
            "Compacted topic cannot accept message without key",
        )),
        LogError::CorruptMessage { .. }
        | LogError::InvalidRecord { .. }
        | LogError::UnsupportedForMessageFormat { .. }
        | LogError::UnsupportedCompressionType { .. }
        | LogError::MessageTooLarge { .. }
        | LogError::OffsetOutOfRange { .. }
        | LogError::OutOfOrderSequence { .. }
        | LogError::InvalidProducerEpoch { .. }
        | LogError::TransactionCoordinatorFenced { .. }
        | LogError::OffsetsOutOfOrder { .. }
        | LogError::Closed
        | LogError::Io { .. }
        | LogError::Offline { .. } => None,
    }
}

/// The Kafka error code for a refused or failed controller operation.
pub fn controller_error_code(error: &ControllerError) -> ErrorCode {
    match error {
        ControllerError::TopicAlreadyExists { .. } => ErrorCode::TopicAlreadyExists,
        ControllerError::UnknownTopicOrPartition { .. } => ErrorCode::UnknownTopicOrPartition,
        ControllerError::InvalidTopic { .. } => ErrorCode::InvalidTopicException,
        ControllerError::InvalidPartitions { .. } => ErrorCode::InvalidPartitions,
        ControllerError::InvalidReplicationFactor { .. } => ErrorCode::InvalidReplicationFactor,
        ControllerError::InvalidReplicaAssignment { .. } => ErrorCode::InvalidReplicaAssignment,
        ControllerError::InvalidConfig { .. } => ErrorCode::InvalidConfig,
        ControllerError::InvalidRequest { .. } => ErrorCode::InvalidRequest,
        ControllerError::BrokerNotRegistered { .. } => ErrorCode::BrokerIdNotRegistered,
        ControllerError::ClusterIdMismatch { .. } => ErrorCode::InconsistentClusterId,
        ControllerError::TopicDeletionDisabled => ErrorCode::TopicDeletionDisabled,
        ControllerError::NotController { .. } => ErrorCode::NotController,
        ControllerError::NotLeader { .. } => ErrorCode::NotLeaderOrFollower,
        ControllerError::FencedLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
        ControllerError::InvalidUpdateVersion { .. } => ErrorCode::InvalidUpdateVersion,
        ControllerError::IneligibleReplica { .. } => ErrorCode::IneligibleReplica,
        ControllerError::ElectionNotNeeded { .. } => ErrorCode::ElectionNotNeeded,
        ControllerError::PreferredLeaderNotAvailable { .. } => {
            ErrorCode::PreferredLeaderNotAvailable
        }
        ControllerError::EligibleLeadersNotAvailable { .. } => {
            ErrorCode::EligibleLeadersNotAvailable
        }
        ControllerError::NoReassignmentInProgress { .. } => ErrorCode::NoReassignmentInProgress,
        ControllerError::UnacceptableCredential { .. } => ErrorCode::UnacceptableCredential,
        ControllerError::UnsupportedSaslMechanism { .. } => ErrorCode::UnsupportedSaslMechanism,
        ControllerError::ResourceNotFound { .. } => ErrorCode::ResourceNotFound,
        ControllerError::DuplicateResource { .. } => ErrorCode::DuplicateResource,
        ControllerError::ClusterAuthorizationFailed => ErrorCode::ClusterAuthorizationFailed,
        ControllerError::Storage { .. } => ErrorCode::KafkaStorageError,
    }
}

/// The Kafka error code for a refused or unfinished voter change (KIP-853).
pub fn voter_change_error_code(error: &VoterChangeError) -> ErrorCode {
    match error {
        VoterChangeError::NotLeader { .. } => ErrorCode::NotController,
        VoterChangeError::DuplicateVoter { .. } => ErrorCode::DuplicateVoter,
        VoterChangeError::VoterNotFound { .. } => ErrorCode::VoterNotFound,
        VoterChangeError::InvalidRequest { .. } => ErrorCode::InvalidRequest,
        VoterChangeError::TimedOut { .. } => ErrorCode::RequestTimedOut,
        VoterChangeError::InconsistentClusterId { .. } => ErrorCode::InconsistentClusterId,
        VoterChangeError::StaticQuorum { .. } => ErrorCode::UnsupportedVersion,
    }
}

/// Resolves a config resource of an Alter*Configs request (2 = topic, 4 = broker, 32 = group).
pub(crate) fn config_resource(
    broker: &Broker,
    resource_type: i8,
    name: &str,
) -> Result<ConfigResource, ControllerError> {
    match resource_type {
        2 => Ok(ConfigResource::Topic(name.to_owned())),
        4 if name.is_empty() || name == broker.node_id().to_string() => {
            Ok(ConfigResource::Broker(broker.node_id()))
        }
        4 => Err(ControllerError::InvalidRequest {
            reason: format!("broker '{name}' is not this broker"),
        }),
        32 if name.is_empty() => Err(ControllerError::InvalidRequest {
            reason: "a group config resource needs a group id".to_owned(),
        }),
        32 => Ok(ConfigResource::Group(name.to_owned())),
        other => Err(ControllerError::InvalidRequest {
            reason: format!("config resource type {other} is not supported"),
        }),
    }
}
