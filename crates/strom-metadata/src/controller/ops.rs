//! Controller operations as values, so a node that is not the active controller can forward
//! them (as Kafka's ForwardingManager forwards admin requests) and the active controller runs
//! them: the same code path for a local and a forwarded request.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AlterConfigOp, Controller, CreateTopicRequest, CreatedTopic};
use crate::error::ControllerError;
use crate::image::BrokerEndpoint;
use crate::records::ConfigResource;

/// One controller operation, as the broker asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerOp {
    CreateTopics {
        topics: Vec<CreateTopicRequest>,
        validate_only: bool,
    },
    DeleteTopics {
        names: Vec<String>,
    },
    CreatePartitions {
        topic: String,
        new_total_count: i32,
        assignments: Vec<Vec<i32>>,
        validate_only: bool,
    },
    AlterConfigs {
        resource: ConfigResource,
        configs: Vec<(String, Option<String>)>,
        validate_only: bool,
    },
    IncrementalAlterConfigs {
        resource: ConfigResource,
        ops: Vec<(String, AlterConfigOp, Option<String>)>,
        validate_only: bool,
    },
    AllocateProducerIds {
        broker_id: i32,
    },
    /// Kafka's BrokerRegistration: the broker's inter-broker endpoint, every advertised
    /// listener, and its rack.
    RegisterBroker {
        broker_id: i32,
        host: String,
        port: u16,
        rack: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        listeners: Vec<BrokerEndpoint>,
        /// The broker stopped cleanly last time (it found its clean-shutdown marker); absent
        /// (from an older node) counts as unclean, the safe side.
        #[serde(default)]
        clean_shutdown: bool,
    },
    /// Kafka's BrokerHeartbeat; the controller times it with its own clock.
    BrokerHeartbeat {
        broker_id: i32,
    },
    /// UnregisterBroker: a broker with no replicas left leaves the cluster.
    UnregisterBroker {
        broker_id: i32,
    },
    /// A broker stopping on SIGTERM asks for its leaderships to move first.
    ControlledShutdown {
        broker_id: i32,
    },
    /// DescribeQuorum: answered by the leader from its replication state.
    DescribeQuorum,
    /// ElectLeaders (`kafka-leader-election.sh`): `None` = every partition.
    ElectLeaders {
        election: super::elections::ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    },
    /// AlterPartitionReassignments: a target replica list per partition, `None` to cancel.
    AlterPartitionReassignments {
        partitions: Vec<super::reassignments::ReassignmentRequest>,
    },
    /// AlterUserScramCredentials (KIP-554).
    AlterUserScramCredentials {
        deletions: Vec<(String, i8)>,
        upsertions: Vec<super::scram::ScramUpsertion>,
    },
    /// CreateAcls (`kafka-acls.sh --add`).
    CreateAcls {
        bindings: Vec<crate::acl::AclBinding>,
    },
    /// DeleteAcls (`kafka-acls.sh --remove`).
    DeleteAcls {
        filters: Vec<crate::acl::AclFilter>,
    },
    /// AlterClientQuotas (`kafka-configs.sh --alter --entity-type users|clients|ips`).
    AlterClientQuotas {
        alterations: Vec<super::quotas::QuotaAlteration>,
        validate_only: bool,
    },
    /// AlterPartition: a partition leader changes its ISR.
    AlterPartition {
        broker_id: i32,
        topic_id: Uuid,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    },
}

impl ControllerOp {
    /// The answer every part of this operation gets when it could not run at all.
    pub fn failed(&self, error: ControllerError) -> ControllerOpResult {
        match self {
            ControllerOp::CreateTopics { topics, .. } => ControllerOpResult::CreateTopics(
                topics.iter().map(|_| Err(error.clone())).collect(),
            ),
            ControllerOp::DeleteTopics { names } => {
                ControllerOpResult::DeleteTopics(names.iter().map(|_| Err(error.clone())).collect())
            }
            ControllerOp::AllocateProducerIds { .. } => ControllerOpResult::ProducerIds(Err(error)),
            ControllerOp::DescribeQuorum => ControllerOpResult::Quorum(Err(error)),
            ControllerOp::AlterPartition { .. } => ControllerOpResult::Partition(Err(error)),
            ControllerOp::ElectLeaders { .. } => ControllerOpResult::Elections(Err(error)),
            ControllerOp::AlterPartitionReassignments { .. } => {
                ControllerOpResult::Reassignments(Err(error))
            }
            ControllerOp::AlterUserScramCredentials { .. } => ControllerOpResult::Scram(Err(error)),
            ControllerOp::CreateAcls { .. } => ControllerOpResult::CreateAcls(Err(error)),
            ControllerOp::DeleteAcls { .. } => ControllerOpResult::DeleteAcls(Err(error)),
            ControllerOp::AlterClientQuotas { .. } => ControllerOpResult::Quotas(Err(error)),
            _ => ControllerOpResult::Done(Err(error)),
        }
    }
}

/// The outcome of a [`ControllerOp`], shaped as the matching `Controller` method returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerOpResult {
    CreateTopics(Vec<Result<CreatedTopic, ControllerError>>),
    DeleteTopics(Vec<Result<Uuid, ControllerError>>),
    ProducerIds(Result<(i64, i64), ControllerError>),
    Done(Result<(), ControllerError>),
    Quorum(Result<crate::quorum::QuorumDescription, ControllerError>),
    Partition(Result<super::AlteredPartition, ControllerError>),
    Elections(Result<Vec<super::elections::ElectionResult>, ControllerError>),
    Reassignments(Result<Vec<super::reassignments::ReassignmentResult>, ControllerError>),
    /// One result per user.
    Scram(Result<super::scram::UserResults, ControllerError>),
    CreateAcls(Result<super::acls::CreateAclResults, ControllerError>),
    DeleteAcls(Result<super::acls::DeleteAclResults, ControllerError>),
    Quotas(Result<super::quotas::QuotaResults, ControllerError>),
}

impl ControllerOpResult {
    fn mismatch() -> ControllerError {
        ControllerError::Storage {
            reason: "the controller answered a different operation".into(),
        }
    }

    pub fn into_create_topics(self, n: usize) -> Vec<Result<CreatedTopic, ControllerError>> {
        match self {
            ControllerOpResult::CreateTopics(r) if r.len() == n => r,
            _ => (0..n).map(|_| Err(Self::mismatch())).collect(),
        }
    }

    pub fn into_delete_topics(self, n: usize) -> Vec<Result<Uuid, ControllerError>> {
        match self {
            ControllerOpResult::DeleteTopics(r) if r.len() == n => r,
            _ => (0..n).map(|_| Err(Self::mismatch())).collect(),
        }
    }

    pub fn into_producer_ids(self) -> Result<(i64, i64), ControllerError> {
        match self {
            ControllerOpResult::ProducerIds(r) => r,
            _ => Err(Self::mismatch()),
        }
    }

    pub fn into_elections(self) -> Result<Vec<super::elections::ElectionResult>, ControllerError> {
        match self {
            ControllerOpResult::Elections(r) => r,
            _ => Err(Self::mismatch()),
        }
    }

    pub fn into_create_acls(self) -> Result<super::acls::CreateAclResults, ControllerError> {
        match self {
            ControllerOpResult::CreateAcls(r) => r,
            _ => Err(Self::mismatch()),
        }
    }

    pub fn into_delete_acls(self) -> Result<super::acls::DeleteAclResults, ControllerError> {
        match self {
            ControllerOpResult::DeleteAcls(r) => r,
            _ => Err(Self::mismatch()),
        }
    }

    pub fn into_quotas(self) -> Result<super::quotas::QuotaResults, ControllerError> {
        match self {
            ControllerOpResult::Quotas(r) => r,
            _ => Err(Self::mismatch()),
        }
    }

    pub fn into_scram(self) -> Result<super::scram::UserResults, ControllerError> {
        match self {
            ControllerOpResult::Scram(r) => r,
            _ => Err(Self::mismatch()),
        }
    }

    pub fn into_reassignments(
        self,
    ) -> Result<Vec<super::reassignments::ReassignmentResult>, ControllerError> {
        match self {
            ControllerOpResult::Reassignments(r) => r,
            _ => Err(Self::mismatch()),
        }
    }

    pub fn into_quorum(self) -> Result<crate::quorum::QuorumDescription, ControllerError> {
        match self {
            ControllerOpResult::Quorum(r) => r,
            _ => Err(Self::mismatch()),
        }
    }

    pub fn into_partition(self) -> Result<super::AlteredPartition, ControllerError> {
        match self {
            ControllerOpResult::Partition(r) => r,
            _ => Err(Self::mismatch()),
        }
    }

    pub fn into_done(self) -> Result<(), ControllerError> {
        match self {
            ControllerOpResult::Done(r) => r,
            _ => Err(Self::mismatch()),
        }
    }
}

impl Controller {
    /// Runs `op` here (this node must be the active controller for anything to commit).
    pub fn execute(&mut self, op: ControllerOp) -> ControllerOpResult {
        match op {
            ControllerOp::CreateTopics {
                topics,
                validate_only,
            } => ControllerOpResult::CreateTopics(self.create_topics(topics, validate_only)),
            ControllerOp::DeleteTopics { names } => {
                ControllerOpResult::DeleteTopics(self.delete_topics(names))
            }
            ControllerOp::CreatePartitions {
                topic,
                new_total_count,
                assignments,
                validate_only,
            } => ControllerOpResult::Done(self.create_partitions(
                &topic,
                new_total_count,
                assignments,
                validate_only,
            )),
            ControllerOp::AlterConfigs {
                resource,
                configs,
                validate_only,
            } => ControllerOpResult::Done(self.alter_configs(resource, configs, validate_only)),
            ControllerOp::IncrementalAlterConfigs {
                resource,
                ops,
                validate_only,
            } => ControllerOpResult::Done(self.incremental_alter_configs(
                resource,
                ops,
                validate_only,
            )),
            ControllerOp::AllocateProducerIds { broker_id } => {
                ControllerOpResult::ProducerIds(self.allocate_producer_id_block(broker_id))
            }
            ControllerOp::RegisterBroker {
                broker_id,
                host,
                port,
                rack,
                listeners,
                clean_shutdown,
            } => ControllerOpResult::Done(self.register_broker_incarnation(
                broker_id,
                &host,
                port,
                rack.as_deref(),
                &listeners,
                clean_shutdown,
            )),
            ControllerOp::BrokerHeartbeat { broker_id } => {
                ControllerOpResult::Done(self.broker_heartbeat(broker_id, now_ms()))
            }
            ControllerOp::UnregisterBroker { broker_id } => {
                ControllerOpResult::Done(self.unregister_broker(broker_id))
            }
            ControllerOp::AlterUserScramCredentials {
                deletions,
                upsertions,
            } => {
                ControllerOpResult::Scram(self.alter_user_scram_credentials(deletions, upsertions))
            }
            ControllerOp::CreateAcls { bindings } => {
                ControllerOpResult::CreateAcls(self.create_acls(bindings))
            }
            ControllerOp::AlterClientQuotas {
                alterations,
                validate_only,
            } => ControllerOpResult::Quotas(self.alter_client_quotas(alterations, validate_only)),
            ControllerOp::DeleteAcls { filters } => {
                ControllerOpResult::DeleteAcls(self.delete_acls(filters))
            }
            ControllerOp::ControlledShutdown { broker_id } => {
                ControllerOpResult::Done(self.controlled_shutdown(broker_id))
            }
            ControllerOp::AlterPartition {
                broker_id,
                topic_id,
                partition,
                leader_epoch,
                partition_epoch,
                new_isr,
            } => ControllerOpResult::Partition(self.alter_partition(
                broker_id,
                topic_id,
                partition,
                leader_epoch,
                partition_epoch,
                new_isr,
            )),
            ControllerOp::ElectLeaders {
                election,
                partitions,
            } => ControllerOpResult::Elections(self.elect_leaders(election, partitions)),
            ControllerOp::AlterPartitionReassignments { partitions } => {
                ControllerOpResult::Reassignments(self.alter_partition_reassignments(partitions))
            }
            ControllerOp::DescribeQuorum => {
                ControllerOpResult::Quorum(self.quorum().describe().ok_or_else(|| {
                    ControllerError::NotController {
                        leader: self
                            .quorum()
                            .leader()
                            .leader
                            .and_then(|l| i32::try_from(l).ok()),
                    }
                }))
            }
        }
    }
}

/// Wall-clock milliseconds since the epoch (heartbeat and fencing times).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What the active controller answers a forwarded operation: its result, and the metadata
/// offset the forwarding node must have applied to see its effect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerAnswer {
    pub result: ControllerOpResult,
    pub offset: Option<crate::quorum::MetadataOffset>,
}

/// Runs controller operations arriving over the CONTROLLER listener (forwarded by other
/// nodes). Blocking: it proposes to the quorum and waits for the commit.
pub trait ControllerHandler: Send + Sync + 'static {
    fn handle(&self, op: ControllerOp) -> ControllerAnswer;
}
