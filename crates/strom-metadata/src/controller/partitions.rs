//! AlterPartition (Kafka's ISR changes): a partition leader asks to shrink its ISR (a follower
//! fell behind for `replica.lag.time.max.ms`) or expand it (a follower caught up). The
//! controller checks the request against the committed state, so a stale leader or a stale
//! view can never change an ISR: the leader and its epoch must be current, the partition
//! epoch must match the one the leader saw, and every new member must be a registered,
//! unfenced replica. Every partition change (here, on fencing and unfencing, on an unclean
//! restart) goes through [`change_partition`], which also keeps KIP-966's eligible leader
//! replicas.

use uuid::Uuid;

use super::Controller;
use crate::error::ControllerError;
use crate::image::{PartitionImage, TopicImage};

/// The partition as committed after an accepted change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlteredPartition {
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    pub partition_epoch: i32,
}

impl AlteredPartition {
    fn of(p: &PartitionImage) -> AlteredPartition {
        AlteredPartition {
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            isr: p.isr.clone(),
            partition_epoch: p.partition_epoch,
        }
    }
}

impl Controller {
    /// The [`TopicPolicy`] of each topic (its overrides over the broker defaults).
    pub(super) fn topic_policy(&self) -> impl Fn(&TopicImage) -> TopicPolicy {
        let broker = self.effective_broker_config();
        move |topic: &TopicImage| {
            let configs = crate::config_defs::effective_topic_configs(&topic.configs, &broker);
            TopicPolicy {
                min_isr: configs
                    .get("min.insync.replicas")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1),
                unclean: configs
                    .get("unclean.leader.election.enable")
                    .is_some_and(|v| v == "true"),
            }
        }
    }

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
        let policy = self.topic_policy()(topic);
        let unfenced = |id: i32| image.broker(id).is_some_and(|b| !b.fenced);
        let Some(next) = change_partition(p, isr, policy, &unfenced, None) else {
            return Ok(AlteredPartition::of(p));
        };
        let altered = AlteredPartition::of(&next);
        self.commit(vec![next.to_record(topic_id)])?;
        tracing::info!(topic = %topic.name, partition, isr = ?altered.isr, "ISR changed");
        Ok(altered)
    }
}

/// What the controller knows of a topic when it changes one of its partitions.
#[derive(Debug, Clone, Copy)]
pub(super) struct TopicPolicy {
    /// `min.insync.replicas` in force (topic override over the broker default).
    pub min_isr: usize,
    /// `unclean.leader.election.enable` in force.
    pub unclean: bool,
}

/// One partition change, as Kafka's PartitionChangeBuilder makes it with
/// `eligible.leader.replicas.version=1` (KIP-966): the target ISR (completing a reassignment
/// in flight when every target replica is in it, see `reassignments`), then
/// - the ELR: cleared (with the last known ELR) when the ISR has at least `min.insync.replicas`
///   members; otherwise the replicas leaving the ISR join it (ELR ∪ old ISR − new ISR), less
///   any replica that restarted after an unclean shutdown;
/// - the leader: the current one if still an unfenced ISR member; else the first unfenced ISR
///   member in replica order; with an empty ISR the first unfenced ELR member, which becomes
///   the ISR alone; with neither, the last known leader if unfenced (as an unclean election,
///   Kafka 4.1's fallback); else, if the topic allows it, any unfenced replica (unclean:
///   it becomes the ISR alone and the ELR is cleared); else none;
/// - the last known ELR: the leader the partition had when its ISR became empty, cleared once
///   it has a leader again.
///
/// Returns the changed partition (epochs bumped: the leader epoch on a new leader, the
/// partition epoch on any change), or `None` if nothing changes.
pub(super) fn change_partition(
    p: &PartitionImage,
    target_isr: Vec<i32>,
    policy: TopicPolicy,
    unfenced: &dyn Fn(i32) -> bool,
    unclean_shutdown: Option<i32>,
) -> Option<PartitionImage> {
    let mut isr = target_isr;
    // A reassignment completes once every target replica is in sync: the replicas being
    // removed leave the replica set and the ISR (a removed leader hands over below).
    let mut replicas = p.replicas.clone();
    let mut adding = p.adding_replicas.clone();
    let mut removing = p.removing_replicas.clone();
    if p.is_reassigning() {
        let target = p.target_replicas();
        if target.iter().all(|r| isr.contains(r)) {
            replicas = target;
            adding.clear();
            removing.clear();
            isr.retain(|r| replicas.contains(r));
        }
    }
    let order = |ids: &mut Vec<i32>| {
        ids.sort_by_key(|id| replicas.iter().position(|r| r == id));
        ids.dedup();
    };
    order(&mut isr);
    let mut elr = p.eligible_leader_replicas.clone();
    if isr.len() >= policy.min_isr {
        elr.clear();
    } else {
        elr.extend(p.isr.iter().copied());
        elr.retain(|r| !isr.contains(r) && replicas.contains(r) && Some(*r) != unclean_shutdown);
        order(&mut elr);
    }

    let valid = |r: i32| (isr.contains(&r) || (isr.is_empty() && elr.contains(&r))) && unfenced(r);
    let mut unclean = false;
    let leader = if p.leader >= 0 && valid(p.leader) {
        p.leader
    } else if let Some(r) = replicas.iter().copied().find(|r| valid(*r)) {
        r
    } else if isr.is_empty()
        && elr.is_empty()
        && p.last_known_elr.len() == 1
        && replicas.contains(&p.last_known_elr[0])
        && unfenced(p.last_known_elr[0])
    {
        unclean = true;
        p.last_known_elr[0]
    } else if let Some(r) = replicas
        .iter()
        .copied()
        .find(|r| policy.unclean && unfenced(*r))
    {
        unclean = true;
        r
    } else {
        -1
    };
    // A leader outside the ISR (elected from the ELR, or uncleanly) becomes the ISR alone.
    if leader >= 0 && !isr.contains(&leader) {
        if elr.contains(&leader) {
            isr = vec![leader];
            elr.retain(|r| *r != leader);
        } else if unclean {
            // Data the ISR acknowledged may be lost: the new leader is the whole ISR.
            isr = vec![leader];
            elr.clear();
        }
    }
    // A replica reassigned away is no longer anyone's last known leader.
    let mut last_known_elr: Vec<i32> = p
        .last_known_elr
        .iter()
        .copied()
        .filter(|r| replicas.contains(r))
        .collect();
    if unclean && leader != p.leader {
        last_known_elr.clear();
    }
    if isr.is_empty()
        && !p.isr.is_empty()
        && p.leader >= 0
        && replicas.contains(&p.leader)
        && p.last_known_elr != [p.leader]
    {
        last_known_elr = vec![p.leader];
    } else if leader >= 0 {
        last_known_elr.clear();
    }

    let mut next = p.clone();
    next.replicas = replicas;
    next.adding_replicas = adding;
    next.removing_replicas = removing;
    next.isr = isr;
    next.eligible_leader_replicas = elr;
    next.last_known_elr = last_known_elr;
    // A new leader, or replicas leaving the replica set, start a new leader epoch: the removed
    // replicas' fetches still in flight carry the old one and are fenced, so a replica removed
    // and added back can never be counted on the offset its deleted log had reached (as Kafka
    // bumps the epoch when a reassignment shrinks the replicas).
    let removed = p.replicas.iter().any(|r| !next.replicas.contains(r));
    next.leader = leader;
    if leader != p.leader || removed {
        next.leader_epoch = p.leader_epoch + 1;
    }
    if next == *p {
        return None;
    }
    next.partition_epoch = p.partition_epoch + 1;
    Some(next)
}
