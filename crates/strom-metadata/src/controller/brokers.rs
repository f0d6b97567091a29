//! Broker liveness (KRaft's broker heartbeats): the controller remembers when it last heard
//! from each broker (soft state, not in the log), fences a broker silent for longer than
//! `broker.session.timeout.ms`, and unfences it when it heartbeats again. Fencing moves the
//! broker's leaderships to in-sync replicas and takes it out of every ISR in the same batch, so
//! no committed image ever shows a fenced leader.

use super::Controller;
use crate::error::ControllerError;
use crate::image::{BrokerEndpoint, MetadataImage, TopicImage};
use crate::records::MetadataRecord;

impl Controller {
    /// A heartbeat from `broker_id` at `now_ms`. A fenced broker is unfenced (and elected
    /// leader of partitions left without one whose ISR still names it).
    pub fn broker_heartbeat(&mut self, broker_id: i32, now_ms: i64) -> Result<(), ControllerError> {
        let broker = self
            .image
            .broker(broker_id)
            .ok_or(ControllerError::BrokerNotRegistered { broker_id })?;
        self.last_contact.insert(broker_id, now_ms);
        if broker.fenced {
            let records = unfence_records(&self.image, broker_id);
            self.commit(records)?;
            tracing::info!(broker_id, "broker unfenced");
        }
        Ok(())
    }

    /// Fences every unfenced broker not heard from for more than `session_timeout_ms` (a broker
    /// the controller has not heard from yet gets a full session from the first check).
    /// Returns the brokers fenced, each committed in a batch of its own.
    pub fn fence_stale_brokers(
        &mut self,
        now_ms: i64,
        session_timeout_ms: i64,
    ) -> Result<Vec<i32>, ControllerError> {
        let stale: Vec<i32> = self
            .image
            .unfenced_brokers()
            .map(|b| b.broker_id)
            .filter(|id| {
                let last = *self.last_contact.entry(*id).or_insert(now_ms);
                now_ms.saturating_sub(last) > session_timeout_ms
            })
            .collect();
        for &broker_id in &stale {
            let records = fence_records(&self.image, broker_id, &self.unclean_election());
            self.commit(records)?;
            tracing::warn!(
                broker_id,
                "broker fenced: no heartbeat within the session timeout"
            );
        }
        Ok(stale)
    }
}

impl Controller {
    /// A broker process starting (Kafka's BrokerRegistration of a new incarnation). If the
    /// broker is still registered and unfenced (it restarted within its session), it is
    /// fenced and unfenced again in one batch: its leaderships move to other in-sync replicas
    /// with a new leader epoch and it leaves every ISR, so a restarted process never resumes
    /// an epoch it led before (its log may have lost unflushed data) and rejoins ISRs only by
    /// catching up. Then it is registered as [`Controller::register_broker`] does.
    pub fn register_broker_incarnation(
        &mut self,
        broker_id: i32,
        host: &str,
        port: u16,
        rack: Option<&str>,
        listeners: &[BrokerEndpoint],
    ) -> Result<(), ControllerError> {
        if self.image.broker(broker_id).is_some_and(|b| !b.fenced) {
            let unclean = self.unclean_election();
            let mut records = fence_records(&self.image, broker_id, &unclean);
            let fenced = self.image.apply_all(&records);
            records.extend(unfence_records(&fenced, broker_id));
            self.commit(records)?;
            tracing::info!(
                broker_id,
                "broker restarted: leaderships moved, out of every ISR"
            );
        }
        self.register_broker_with_listeners(broker_id, host, port, rack, listeners)
    }

    /// Controlled shutdown (Kafka's BrokerHeartbeat with `wantShutDown`): the broker is fenced
    /// now, so its leaderships move to in-sync replicas before it stops serving; it is
    /// unfenced when it registers again.
    pub fn controlled_shutdown(&mut self, broker_id: i32) -> Result<(), ControllerError> {
        let broker = self
            .image
            .broker(broker_id)
            .ok_or(ControllerError::BrokerNotRegistered { broker_id })?;
        self.last_contact.remove(&broker_id);
        if broker.fenced {
            return Ok(());
        }
        let unclean = self.unclean_election();
        self.commit(fence_records(&self.image, broker_id, &unclean))?;
        tracing::info!(
            broker_id,
            "controlled shutdown: broker fenced, leaderships moved"
        );
        Ok(())
    }
}

impl Controller {
    /// Whether a topic allows unclean leader election (`unclean.leader.election.enable`, the
    /// topic's override over the broker default).
    fn unclean_election(&self) -> impl Fn(&TopicImage) -> bool {
        let broker = self.effective_broker_config();
        move |topic: &TopicImage| {
            crate::config_defs::effective_topic_configs(&topic.configs, &broker)
                .get("unclean.leader.election.enable")
                .is_some_and(|v| v == "true")
        }
    }
}

/// FenceBroker plus every partition change it implies: out of each ISR, and each leadership
/// to the first in-sync replica (in replica order) that is not fenced. The last member of an
/// ISR stays in it, so the partition can only be led again by a replica with all its data;
/// until then its leader is -1 — unless the topic allows unclean election, which then picks
/// the first unfenced replica and makes it the whole ISR (acknowledged data may be lost).
fn fence_records(
    image: &MetadataImage,
    broker_id: i32,
    unclean: &dyn Fn(&TopicImage) -> bool,
) -> Vec<MetadataRecord> {
    let usable = |id: &i32| *id != broker_id && image.broker(*id).is_some_and(|b| !b.fenced);
    let mut records = vec![MetadataRecord::FenceBroker { broker_id }];
    for topic in image.topics() {
        for p in topic.partitions.values() {
            let leads = p.leader == broker_id;
            if !leads && !p.isr.contains(&broker_id) {
                continue;
            }
            let mut isr: Vec<i32> = p.isr.iter().copied().filter(|r| *r != broker_id).collect();
            let (leader, leader_epoch) = if leads {
                let next = p
                    .replicas
                    .iter()
                    .copied()
                    .find(|r| isr.contains(r) && usable(r));
                let next = match next {
                    Some(r) => Some(r),
                    None if unclean(topic) => {
                        let r = p.replicas.iter().copied().find(|r| usable(r));
                        if let Some(r) = r {
                            tracing::warn!(topic = %topic.name, partition = p.partition, leader = r, "unclean leader election: a replica outside the ISR leads; data may be lost");
                            isr = vec![r];
                        }
                        r
                    }
                    None => None,
                };
                (next.unwrap_or(-1), p.leader_epoch + 1)
            } else {
                (p.leader, p.leader_epoch)
            };
            if isr.is_empty() {
                isr.push(broker_id);
            }
            records.push(MetadataRecord::Partition {
                topic_id: topic.topic_id,
                partition: p.partition,
                replicas: p.replicas.clone(),
                isr,
                leader,
                leader_epoch,
                partition_epoch: p.partition_epoch + 1,
            });
        }
    }
    records
}

/// UnfenceBroker plus leadership of every leaderless partition whose ISR names the broker.
pub(super) fn unfence_records(image: &MetadataImage, broker_id: i32) -> Vec<MetadataRecord> {
    let mut records = vec![MetadataRecord::UnfenceBroker { broker_id }];
    for topic in image.topics() {
        for p in topic.partitions.values() {
            if p.leader == -1 && p.isr.contains(&broker_id) {
                records.push(MetadataRecord::Partition {
                    topic_id: topic.topic_id,
                    partition: p.partition,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    leader: broker_id,
                    leader_epoch: p.leader_epoch + 1,
                    partition_epoch: p.partition_epoch + 1,
                });
            }
        }
    }
    records
}
