//! AlterPartition (Kafka's ISR changes): a partition leader asks to shrink its ISR (a follower
//! fell behind for `replica.lag.time.max.ms`) or expand it (a follower caught up). The
//! controller checks the request against the committed state, so a stale leader or a stale
//! view can never change an ISR: the leader and its epoch must be current, the partition
//! epoch must match the one the leader saw, and every new member must be a registered,
//! unfenced replica.

use uuid::Uuid;

use super::Controller;
use crate::error::ControllerError;
use crate::records::MetadataRecord;

/// The partition as committed after an accepted change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlteredPartition {
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
}

impl Controller {
    /// Replaces the ISR of `topic_id`/`partition` with `new_isr`, on behalf of its leader
    /// `broker_id` in `leader_epoch`, who saw `partition_epoch`.
    pub fn alter_partition(
        &mut self,
        broker_id: i32,
        topic_id: Uuid,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: Vec<i32>,
    ) -> Result<AlteredPartition, ControllerError> {
        let image = self.image();
        let topic = image.topic_by_id(topic_id).ok_or_else(|| {
            ControllerError::UnknownTopicOrPartition {
                name: topic_id.to_string(),
            }
        })?;
        let p = topic.partitions.get(&partition).ok_or_else(|| {
            ControllerError::UnknownTopicOrPartition {
                name: format!("{}-{partition}", topic.name),
            }
        })?;
        if p.leader != broker_id {
            return Err(ControllerError::NotLeader {
                broker_id,
                leader: p.leader,
            });
        }
        if leader_epoch != p.leader_epoch {
            return Err(ControllerError::FencedLeaderEpoch {
                requested: leader_epoch,
                current: p.leader_epoch,
            });
        }
        if partition_epoch != p.partition_epoch {
            return Err(ControllerError::InvalidUpdateVersion {
                requested: partition_epoch,
                current: p.partition_epoch,
            });
        }
        let mut isr = Vec::new();
        for id in new_isr {
            if isr.contains(&id) {
                continue;
            }
            let eligible = p.replicas.contains(&id) && image.broker(id).is_some_and(|b| !b.fenced);
            // A member already in the ISR may stay (its fencing takes it out by itself).
            if !eligible && !p.isr.contains(&id) {
                return Err(ControllerError::IneligibleReplica {
                    replica: id,
                    reason: "not an unfenced replica of the partition".into(),
                });
            }
            isr.push(id);
        }
        if !isr.contains(&broker_id) {
            return Err(ControllerError::IneligibleReplica {
                replica: broker_id,
                reason: "the leader must stay in the ISR".into(),
            });
        }
        // Replica order, so equal ISRs compare equal.
        isr.sort_by_key(|id| p.replicas.iter().position(|r| r == id));
        if isr == p.isr {
            return Ok(AlteredPartition {
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                isr,
                partition_epoch: p.partition_epoch,
            });
        }
        let altered = AlteredPartition {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            isr: isr.clone(),
            partition_epoch: p.partition_epoch + 1,
        };
        self.commit(vec![MetadataRecord::Partition {
            topic_id,
            partition,
            replicas: p.replicas.clone(),
            isr,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch + 1,
        }])?;
        tracing::info!(topic = %topic.name, partition, isr = ?altered.isr, "ISR changed");
        Ok(altered)
    }
}
