//! Cluster membership changes an operator drives (`strom cluster decommission`, Kafka's
//! UnregisterBroker) and the continuous balancer (`balancer.enable`): every
//! `balancer.check.interval.seconds`, when no reassignment is in flight and every registered
//! broker is unfenced, the active controller plans with [`crate::balancer`] (replica counts
//! and preferred leaders, rack-aware; partition sizes are not in the metadata, so every
//! replica weighs the same) and starts the plan's first step, at most
//! `balancer.max.concurrent.moves` partitions. A broker that joins gets its share this way
//! without an operator writing a plan; a fenced broker stops the balancer (its replicas are
//! not moved behind an operator's back: a broker may be down for minutes).

use super::Controller;
use crate::balancer::{self, Bounds, BrokerInfo, PartitionInfo};
use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::records::MetadataRecord;

impl Controller {
    /// Removes `broker_id`'s registration. Refused while it still hosts replicas (move them
    /// first: `strom cluster decommission` does). The running process does not register
    /// again on its own; starting it again does.
    pub fn unregister_broker(&mut self, broker_id: i32) -> Result<(), ControllerError> {
        if self.image.broker(broker_id).is_none() {
            return Err(ControllerError::BrokerNotRegistered { broker_id });
        }
        let hosted = replicas_on(&self.image, broker_id);
        if hosted > 0 {
            return Err(ControllerError::InvalidRequest {
                reason: format!(
                    "broker {broker_id} still hosts {hosted} replicas; move them first (strom cluster decommission --broker {broker_id})"
                ),
            });
        }
        self.commit(vec![MetadataRecord::UnregisterBroker { broker_id }])?;
        self.last_contact.remove(&broker_id);
        tracing::info!(broker_id, "broker unregistered");
        Ok(())
    }

    /// One round of the continuous balancer if `balancer.enable` is on and its interval
    /// passed (the active controller calls this on its timer). Returns how many partitions it
    /// started moving.
    pub fn maybe_balance(&mut self, now_ms: i64) -> Result<usize, ControllerError> {
        let config = self.effective_broker_config();
        if !config.balancer_enable() {
            return Ok(0);
        }
        let interval_ms = config
            .balancer_check_interval_seconds()
            .saturating_mul(1000);
        if now_ms < self.next_balance_ms {
            return Ok(0);
        }
        self.next_balance_ms = now_ms.saturating_add(interval_ms);
        let image = self.image();
        let reassigning = image
            .topics()
            .flat_map(|t| t.partitions.values())
            .any(|p| p.is_reassigning());
        if reassigning || image.brokers().any(|b| b.fenced) {
            return Ok(0);
        }
        let bounds = Bounds {
            max_concurrent_moves: usize::try_from(config.balancer_max_concurrent_moves())
                .unwrap_or(1)
                .max(1),
            max_bytes_per_step: u64::MAX,
            balance_leaders: true,
            balance_replicas: true,
        };
        let (brokers, partitions) = model(&image);
        let plan = balancer::plan(&brokers, &partitions, bounds);
        let Some(step) = plan.steps.first() else {
            return Ok(0);
        };
        let requests = step
            .iter()
            .map(|m| ((m.topic.clone(), m.partition), Some(m.to.clone())))
            .collect();
        let results = self.alter_partition_reassignments(requests)?;
        let started = results.iter().filter(|(_, r)| r.is_ok()).count();
        tracing::info!(
            started,
            steps_left = plan.steps.len() - 1,
            "balancer: moving partitions"
        );
        Ok(started)
    }
}

/// How many replicas `broker_id` hosts (counting a reassignment's in flight).
fn replicas_on(image: &MetadataImage, broker_id: i32) -> usize {
    image
        .topics()
        .flat_map(|t| t.partitions.values())
        .filter(|p| p.replicas.contains(&broker_id))
        .count()
}

/// The balancer's view of `image`: every registered broker, every partition with its size
/// unknown (0).
pub fn model(image: &MetadataImage) -> (Vec<BrokerInfo>, Vec<PartitionInfo>) {
    let brokers = image
        .brokers()
        .map(|b| BrokerInfo {
            id: b.broker_id,
            rack: b.rack.clone(),
            excluded: false,
        })
        .collect();
    let partitions = image
        .topics()
        .flat_map(|t| {
            t.partitions.values().map(|p| PartitionInfo {
                topic: t.name.clone(),
                partition: p.partition,
                replicas: p.replicas.clone(),
                bytes: 0,
            })
        })
        .collect();
    (brokers, partitions)
}
