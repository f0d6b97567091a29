//! Leader elections an operator (ElectLeaders, `kafka-leader-election.sh`) or the controller
//! itself (`auto.leader.rebalance.enable`) asks for.
//!
//! - A *preferred* election moves leadership back to the first replica of the assignment when
//!   that replica is unfenced and in the ISR: after failures and restarts leaderships pile up
//!   on the survivors, and this spreads them as placement intended.
//! - An *unclean* election gives a leaderless partition a leader: an in-sync replica if one
//!   is alive, else an eligible leader replica (KIP-966: it has every committed record and
//!   leads alone), otherwise any live replica, which becomes the whole ISR and clears the ELR
//!   (acknowledged data may be lost, which is what the operator asked for).
//!
//! The automatic rebalance is Kafka's: per broker, the share of partitions it should lead
//! (first replica) but does not; above `leader.imbalance.per.broker.percentage`, preferred
//! elections for those partitions.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::Controller;
use crate::error::ControllerError;
use crate::image::{MetadataImage, PartitionImage};
use crate::records::MetadataRecord;

/// Kafka's ElectionType: 0 preferred, 1 unclean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

impl ElectionType {
    pub fn from_kafka(v: i8) -> Option<ElectionType> {
        match v {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// One partition's election outcome.
pub type ElectionResult = ((String, i32), Result<(), ControllerError>);

impl Controller {
    /// Runs `election` on `partitions` (`None`: every partition, answering only for those
    /// where an election was needed). One commit for all the changes.
    pub fn elect_leaders(
        &mut self,
        election: ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<ElectionResult>, ControllerError> {
        let image = self.image();
        let all = partitions.is_none();
        let wanted: Vec<(String, i32)> = match partitions {
            Some(p) => p,
            None => image
                .topics()
                .flat_map(|t| t.partitions.keys().map(|p| (t.name.clone(), *p)))
                .collect(),
        };
        let mut records = Vec::new();
        let mut results = Vec::new();
        for (topic, partition) in wanted {
            let outcome = image
                .topic(&topic)
                .and_then(|t| Some((t.topic_id, t.partitions.get(&partition)?)))
                .ok_or_else(|| ControllerError::UnknownTopicOrPartition {
                    name: format!("{topic}-{partition}"),
                })
                .and_then(|(id, p)| elect(&image, id, p, election));
            match outcome {
                Ok(record) => {
                    records.push(record);
                    results.push(((topic, partition), Ok(())));
                }
                Err(ControllerError::ElectionNotNeeded { .. }) if all => {}
                Err(e) => results.push(((topic, partition), Err(e))),
            }
        }
        let elected = records.len();
        self.commit(records)?;
        if elected > 0 {
            tracing::info!(?election, elected, "leader election");
        }
        Ok(results)
    }

    /// Runs [`Controller::rebalance_leaders`] when `auto.leader.rebalance.enable` is on and
    /// `leader.imbalance.check.interval.seconds` passed since the last run (the active
    /// controller calls this on its timer). Returns how many leaderships moved.
    pub fn maybe_rebalance_leaders(&mut self, now_ms: i64) -> Result<usize, ControllerError> {
        let config = self.effective_broker_config();
        if !config.auto_leader_rebalance_enable() {
            return Ok(0);
        }
        let interval_ms = config
            .leader_imbalance_check_interval_seconds()
            .saturating_mul(1000);
        if self.next_leader_rebalance_ms == 0 {
            self.next_leader_rebalance_ms = now_ms.saturating_add(interval_ms);
        }
        if now_ms < self.next_leader_rebalance_ms {
            return Ok(0);
        }
        self.next_leader_rebalance_ms = now_ms.saturating_add(interval_ms);
        self.rebalance_leaders(config.leader_imbalance_per_broker_percentage())
    }

    /// Kafka's automatic leader rebalance: for each broker whose share of partitions it
    /// prefers to lead but does not exceeds `imbalance_percentage`, preferred elections for
    /// those partitions (where the preferred replica can lead). Returns how many moved.
    pub fn rebalance_leaders(
        &mut self,
        imbalance_percentage: i32,
    ) -> Result<usize, ControllerError> {
        let image = self.image();
        // broker -> (partitions it prefers to lead, of which it does not lead)
        let mut preferred: BTreeMap<i32, (usize, Vec<(String, i32)>)> = BTreeMap::new();
        for topic in image.topics() {
            for p in topic.partitions.values() {
                let Some(&first) = p.replicas.first() else {
                    continue;
                };
                let entry = preferred.entry(first).or_default();
                entry.0 += 1;
                if p.leader != first {
                    entry.1.push((topic.name.clone(), p.partition));
                }
            }
        }
        let mut candidates = Vec::new();
        for (broker, (total, not_led)) in preferred {
            let unfenced = image.broker(broker).is_some_and(|b| !b.fenced);
            let ratio = not_led.len() as f64 * 100.0 / total.max(1) as f64;
            if unfenced && !not_led.is_empty() && ratio > f64::from(imbalance_percentage) {
                candidates.extend(not_led);
            }
        }
        if candidates.is_empty() {
            return Ok(0);
        }
        let results = self.elect_leaders(ElectionType::Preferred, Some(candidates))?;
        Ok(results.iter().filter(|(_, r)| r.is_ok()).count())
    }
}

/// The record electing a leader of `p` as `election` says, or why there is none to elect.
fn elect(
    image: &MetadataImage,
    topic_id: Uuid,
    p: &PartitionImage,
    election: ElectionType,
) -> Result<MetadataRecord, ControllerError> {
    let alive = |id: &i32| image.broker(*id).is_some_and(|b| !b.fenced);
    let (leader, isr, eligible_leader_replicas, last_known_elr) = match election {
        ElectionType::Preferred => {
            let preferred = *p.replicas.first().ok_or_else(|| {
                ControllerError::EligibleLeadersNotAvailable {
                    reason: "the partition has no replicas".into(),
                }
            })?;
            if p.leader == preferred {
                return Err(ControllerError::ElectionNotNeeded {
                    reason: format!("replica {preferred} already leads"),
                });
            }
            if !alive(&preferred) {
                return Err(ControllerError::PreferredLeaderNotAvailable {
                    replica: preferred,
                    reason: "the broker is fenced or not registered".into(),
                });
            }
            if !p.isr.contains(&preferred) {
                return Err(ControllerError::PreferredLeaderNotAvailable {
                    replica: preferred,
                    reason: "not in the ISR".into(),
                });
            }
            (
                preferred,
                p.isr.clone(),
                p.eligible_leader_replicas.clone(),
                p.last_known_elr.clone(),
            )
        }
        ElectionType::Unclean => {
            if p.leader >= 0 && alive(&p.leader) {
                return Err(ControllerError::ElectionNotNeeded {
                    reason: format!("replica {} leads", p.leader),
                });
            }
            let elr = &p.eligible_leader_replicas;
            let in_sync = p
                .replicas
                .iter()
                .copied()
                .find(|r| p.isr.contains(r) && alive(r));
            // KIP-966: an eligible leader replica has every committed record; it leads alone.
            let eligible = p
                .replicas
                .iter()
                .copied()
                .find(|r| elr.contains(r) && alive(r));
            match (in_sync, eligible) {
                (Some(r), _) => (r, p.isr.clone(), elr.clone(), Vec::new()),
                (None, Some(r)) => {
                    let rest = elr.iter().copied().filter(|e| *e != r).collect();
                    (r, vec![r], rest, Vec::new())
                }
                (None, None) => {
                    let r = p.replicas.iter().copied().find(alive).ok_or_else(|| {
                        ControllerError::EligibleLeadersNotAvailable {
                            reason: "no replica is alive".into(),
                        }
                    })?;
                    tracing::warn!(topic_id = %topic_id, partition = p.partition, leader = r, "unclean leader election: a replica outside the ISR leads; data may be lost");
                    (r, vec![r], Vec::new(), Vec::new())
                }
            }
        }
    };
    Ok(MetadataRecord::Partition {
        topic_id,
        partition: p.partition,
        replicas: p.replicas.clone(),
        isr,
        leader,
        leader_epoch: p.leader_epoch + 1,
        partition_epoch: p.partition_epoch + 1,
        eligible_leader_replicas,
        last_known_elr,
        adding_replicas: p.adding_replicas.clone(),
        removing_replicas: p.removing_replicas.clone(),
    })
}
