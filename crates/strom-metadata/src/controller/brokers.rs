//! Broker liveness (KRaft's broker heartbeats): the controller remembers when it last heard
//! from each broker (soft state, not in the log), fences a broker silent for longer than
//! `broker.session.timeout.ms`, and unfences it when it heartbeats again. Fencing moves the
//! broker's leaderships to in-sync replicas and takes it out of every ISR in the same batch, so
//! no committed image ever shows a fenced leader.

use super::partitions::{change_partition, TopicPolicy};
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
            let records = unfence_records(&self.image, broker_id, &self.topic_policy());
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
            let records = fence_records(&self.image, broker_id, &self.topic_policy());
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
    /// catching up. After an unclean shutdown (`clean_shutdown` false: the broker found no
    /// clean-shutdown marker in its log directories) it also leaves every ELR (KIP-966), since
    /// its log may have lost its unflushed tail. Then it is registered as
    /// [`Controller::register_broker`] does.
    pub fn register_broker_incarnation(
        &mut self,
        broker_id: i32,
        host: &str,
        port: u16,
        rack: Option<&str>,
        listeners: &[BrokerEndpoint],
        clean_shutdown: bool,
    ) -> Result<(), ControllerError> {
        let policy = self.topic_policy();
        let mut records = Vec::new();
        let mut image = (*self.image).clone();
        let restarted_in_session = image.broker(broker_id).is_some_and(|b| !b.fenced);
        if restarted_in_session {
            let fenced = fence_records(&image, broker_id, &policy);
            image = image.apply_all(&fenced);
            records.extend(fenced);
        }
        if !clean_shutdown {
            let out = unclean_shutdown_records(&image, broker_id, &policy);
            image = image.apply_all(&out);
            records.extend(out);
        }
        if restarted_in_session {
            records.extend(unfence_records(&image, broker_id, &policy));
        }
        if !records.is_empty() {
            self.commit(records)?;
            tracing::info!(
                broker_id,
                clean_shutdown,
                restarted_in_session,
                "broker restarted: leaderships moved, out of every ISR (and every ELR after an unclean shutdown)"
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
        let policy = self.topic_policy();
        self.commit(fence_records(&self.image, broker_id, &policy))?;
        tracing::info!(
            broker_id,
            "controlled shutdown: broker fenced, leaderships moved"
        );
        Ok(())
    }
}

/// FenceBroker plus every partition change it implies: the broker leaves each ISR (joining
/// the ELR where the ISR falls below `min.insync.replicas`), and each partition it led gets a
/// new leader by [`change_partition`]'s rules (an ISR member, else an ELR member, else the
/// last known leader, else an unclean choice where the topic allows it), or none.
fn fence_records(
    image: &MetadataImage,
    broker_id: i32,
    policy: &dyn Fn(&TopicImage) -> TopicPolicy,
) -> Vec<MetadataRecord> {
    let fence = MetadataRecord::FenceBroker { broker_id };
    let fenced = image.apply(&fence);
    let unfenced = |id: i32| fenced.broker(id).is_some_and(|b| !b.fenced);
    let mut records = vec![fence];
    for topic in image.topics() {
        for p in topic.partitions.values() {
            if p.leader != broker_id && !p.isr.contains(&broker_id) {
                continue;
            }
            let isr: Vec<i32> = p.isr.iter().copied().filter(|r| *r != broker_id).collect();
            if let Some(next) = change_partition(p, isr, policy(topic), &unfenced, None) {
                if next.leader >= 0 && !p.isr.contains(&next.leader) {
                    tracing::warn!(topic = %topic.name, partition = p.partition, leader = next.leader, elr = p.eligible_leader_replicas.contains(&next.leader), "leader elected from outside the ISR");
                }
                records.push(next.to_record(topic.topic_id));
            }
        }
    }
    records
}

/// UnfenceBroker plus a leader for every leaderless partition the broker may now lead.
pub(super) fn unfence_records(
    image: &MetadataImage,
    broker_id: i32,
    policy: &dyn Fn(&TopicImage) -> TopicPolicy,
) -> Vec<MetadataRecord> {
    let unfence = MetadataRecord::UnfenceBroker { broker_id };
    let back = image.apply(&unfence);
    let unfenced = |id: i32| back.broker(id).is_some_and(|b| !b.fenced);
    let mut records = vec![unfence];
    for topic in image.topics() {
        for p in topic.partitions.values() {
            if p.leader != -1 || !p.replicas.contains(&broker_id) {
                continue;
            }
            if let Some(next) = change_partition(p, p.isr.clone(), policy(topic), &unfenced, None) {
                records.push(next.to_record(topic.topic_id));
            }
        }
    }
    records
}

/// A broker restarted after an unclean shutdown (KIP-966): its log may have lost its unflushed
/// tail, so it leaves every ELR (and so is never elected from one).
fn unclean_shutdown_records(
    image: &MetadataImage,
    broker_id: i32,
    policy: &dyn Fn(&TopicImage) -> TopicPolicy,
) -> Vec<MetadataRecord> {
    let unfenced = |id: i32| image.broker(id).is_some_and(|b| !b.fenced);
    let mut records = Vec::new();
    for topic in image.topics() {
        for p in topic.partitions.values() {
            if !p.eligible_leader_replicas.contains(&broker_id) {
                continue;
            }
            let isr = p.isr.clone();
            if let Some(next) = change_partition(p, isr, policy(topic), &unfenced, Some(broker_id))
            {
                records.push(next.to_record(topic.topic_id));
            }
        }
    }
    records
}
