//! Partition reassignment (KIP-455: AlterPartitionReassignments, ListPartitionReassignments;
//! what `kafka-reassign-partitions.sh`, `strom cluster decommission` and the balancer drive).
//!
//! A reassignment to `target` from the `original` replicas is a partition change that widens
//! the replica set to `target ++ (original − target)`, noting `adding = target − original` and
//! `removing = original − target`. The added replicas start as followers with empty logs and
//! fetch from the leader; the leader takes them into the ISR once caught up, as any follower.
//! The reassignment completes in the partition change where every target replica is in the
//! ISR ([`super::partitions::change_partition`]): the replica set becomes `target`, the
//! removed replicas leave the ISR, and a removed leader hands over to the first target replica
//! in the ISR. So the ISR never loses a member before its replacement is in sync, and never
//! falls below `min.insync.replicas` on account of the move.
//!
//! Cancelling (a `None` target) reverts to the original replicas: the added ones leave the
//! replica set and the ISR. A new reassignment of a partition already being moved first reverts
//! the one in flight, as Kafka does.

use std::collections::HashMap;

use uuid::Uuid;

use super::partitions::change_partition;
use super::Controller;
use crate::error::ControllerError;
use crate::image::{MetadataImage, PartitionImage};

/// One partition of an AlterPartitionReassignments request: (topic, partition) and its target
/// replicas, `None` to cancel.
pub type ReassignmentRequest = ((String, i32), Option<Vec<i32>>);

/// A reassignment in flight, as ListPartitionReassignments answers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    /// The whole replica set while moving (target first, then the replicas being removed).
    pub replicas: Vec<i32>,
    pub adding: Vec<i32>,
    pub removing: Vec<i32>,
}

/// One partition's outcome of AlterPartitionReassignments.
pub type ReassignmentResult = ((String, i32), Result<(), ControllerError>);

impl PartitionImage {
    /// Whether a reassignment of this partition is in flight.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas the partition will have once its reassignment completes (its replicas
    /// when none is in flight).
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing_replicas.contains(r))
            .collect()
    }

    /// The replicas it had before the reassignment in flight (its replicas when none is).
    pub fn original_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.adding_replicas.contains(r))
            .collect()
    }
}

impl Controller {
    /// Starts (`Some(target)`) or cancels (`None`) the reassignment of each partition. One
    /// commit for every accepted change; each partition is answered on its own.
    pub fn alter_partition_reassignments(
        &mut self,
        requests: Vec<ReassignmentRequest>,
    ) -> Result<Vec<ReassignmentResult>, ControllerError> {
        let image = self.image();
        let policy_of = self.topic_policy();
        let unfenced = |id: i32| image.broker(id).is_some_and(|b| !b.fenced);
        let mut changed: HashMap<(Uuid, i32), PartitionImage> = HashMap::new();
        let mut results = Vec::with_capacity(requests.len());
        for ((topic, partition), target) in requests {
            let name = format!("{topic}-{partition}");
            let outcome = (|| {
                let t = image.topic(&topic).ok_or_else(|| {
                    ControllerError::UnknownTopicOrPartition { name: name.clone() }
                })?;
                let current = changed
                    .get(&(t.topic_id, partition))
                    .or_else(|| t.partitions.get(&partition))
                    .ok_or_else(|| ControllerError::UnknownTopicOrPartition { name: name.clone() })?
                    .clone();
                let policy = policy_of(t);
                let next = match target {
                    Some(target) => {
                        validate_target(&image, &target)?;
                        reassign(&current, &target, policy, &unfenced)
                    }
                    None if !current.is_reassigning() => {
                        return Err(ControllerError::NoReassignmentInProgress {
                            partition: name.clone(),
                        });
                    }
                    None => revert(&current, policy, &unfenced),
                };
                // Never a change that leaves a led partition without a leader, or that drops a
                // replica holding what a leaderless partition acknowledged (its ISR, ELR and
                // last known leader): e.g. cancelling when only an added replica is in sync.
                if let Some(next) = &next {
                    let holders: Vec<i32> = current
                        .isr
                        .iter()
                        .chain(&current.eligible_leader_replicas)
                        .chain(&current.last_known_elr)
                        .copied()
                        .collect();
                    let drops_a_holder = holders.iter().any(|r| !next.replicas.contains(r));
                    if next.leader < 0 && (current.leader >= 0 || drops_a_holder) {
                        return Err(ControllerError::InvalidReplicaAssignment {
                            reason: format!(
                                "{name}: the change would leave the partition without a leader and drop replicas holding the acknowledged data ({holders:?}); let the move complete or the replicas come back first"
                            ),
                        });
                    }
                }
                if let Some(next) = next {
                    changed.insert((t.topic_id, partition), next);
                }
                Ok(())
            })();
            results.push(((topic, partition), outcome));
        }
        let mut records: Vec<_> = changed
            .into_iter()
            .map(|((topic_id, _), p)| (topic_id, p))
            .collect();
        records.sort_by_key(|(id, p)| (*id, p.partition));
        let moved = records.len();
        self.commit(records.iter().map(|(id, p)| p.to_record(*id)).collect())?;
        if moved > 0 {
            tracing::info!(partitions = moved, "partition reassignment changed");
        }
        Ok(results)
    }
}

/// Every reassignment in flight in `image`, or those of `filter`'s partitions, in topic and
/// partition order. Read from the image: any node answers ListPartitionReassignments.
pub fn ongoing_reassignments(
    image: &MetadataImage,
    filter: Option<&[(String, i32)]>,
) -> Vec<OngoingReassignment> {
    let mut out = Vec::new();
    for topic in image.topics() {
        for p in topic.partitions.values() {
            if !p.is_reassigning() {
                continue;
            }
            if let Some(filter) = filter {
                if !filter
                    .iter()
                    .any(|(t, i)| *t == topic.name && *i == p.partition)
                {
                    continue;
                }
            }
            out.push(OngoingReassignment {
                topic: topic.name.clone(),
                partition: p.partition,
                replicas: p.replicas.clone(),
                adding: p.adding_replicas.clone(),
                removing: p.removing_replicas.clone(),
            });
        }
    }
    out
}

/// A target replica list must name registered brokers, each once.
fn validate_target(image: &MetadataImage, target: &[i32]) -> Result<(), ControllerError> {
    if target.is_empty() {
        return Err(ControllerError::InvalidReplicaAssignment {
            reason: "the target replica list is empty".into(),
        });
    }
    for (i, r) in target.iter().enumerate() {
        if target[..i].contains(r) {
            return Err(ControllerError::InvalidReplicaAssignment {
                reason: format!("broker {r} appears twice in the target replicas"),
            });
        }
        if image.broker(*r).is_none() {
            return Err(ControllerError::InvalidReplicaAssignment {
                reason: format!("broker {r} is not registered"),
            });
        }
    }
    Ok(())
}

/// The partition moving to `target` (first reverting a reassignment in flight); `None` if it
/// already has exactly these replicas and nothing is in flight.
fn reassign(
    p: &PartitionImage,
    target: &[i32],
    policy: super::partitions::TopicPolicy,
    unfenced: &dyn Fn(i32) -> bool,
) -> Option<PartitionImage> {
    let original = p.original_replicas();
    let adding: Vec<i32> = target
        .iter()
        .copied()
        .filter(|r| !original.contains(r))
        .collect();
    let removing: Vec<i32> = original
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    let mut replicas = target.to_vec();
    replicas.extend(&removing);
    // Members in sync stay in sync, an added replica that already caught up (and is kept by
    // the new target) included; one no longer a replica leaves.
    let isr = p
        .isr
        .iter()
        .copied()
        .filter(|r| replicas.contains(r))
        .collect();
    change_replicas(p, replicas, adding, removing, isr, policy, unfenced)
}

/// The partition back on its original replicas.
fn revert(
    p: &PartitionImage,
    policy: super::partitions::TopicPolicy,
    unfenced: &dyn Fn(i32) -> bool,
) -> Option<PartitionImage> {
    let original = p.original_replicas();
    let isr = p
        .isr
        .iter()
        .copied()
        .filter(|r| original.contains(r))
        .collect();
    change_replicas(p, original, Vec::new(), Vec::new(), isr, policy, unfenced)
}

/// `p` with a new replica set (and reassignment state) and ISR, its leader re-elected if it
/// left, the reassignment completed if every target replica is already in sync; epochs
/// bumped against `p`. `None` if nothing changes.
fn change_replicas(
    p: &PartitionImage,
    replicas: Vec<i32>,
    adding: Vec<i32>,
    removing: Vec<i32>,
    isr: Vec<i32>,
    policy: super::partitions::TopicPolicy,
    unfenced: &dyn Fn(i32) -> bool,
) -> Option<PartitionImage> {
    let mut base = p.clone();
    base.replicas = replicas;
    base.adding_replicas = adding;
    base.removing_replicas = removing;
    base.eligible_leader_replicas
        .retain(|r| base.replicas.contains(r));
    let mut next = change_partition(&base, isr, policy, unfenced, None).unwrap_or(base);
    let removed = p.replicas.iter().any(|r| !next.replicas.contains(r));
    next.leader_epoch = if next.leader != p.leader || removed {
        p.leader_epoch + 1
    } else {
        p.leader_epoch
    };
    next.partition_epoch = p.partition_epoch;
    if next == *p {
        return None;
    }
    next.partition_epoch = p.partition_epoch + 1;
    Some(next)
}
