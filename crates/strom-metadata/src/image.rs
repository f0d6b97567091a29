//! The metadata image: an immutable snapshot of cluster state built only by replaying committed
//! records (STYLE.md #7). Shared as `Arc<MetadataImage>`; a change builds a new image.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::delta::Touched;
use crate::records::{ConfigResource, MetadataRecord};

/// Topics whose state belongs to Strom's coordinators (Kafka's internal topics).
pub const INTERNAL_TOPICS: [&str; 2] = ["__consumer_offsets", "__transaction_state"];

/// Whether `name` is one of Kafka's internal topics.
pub fn is_internal(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}

/// The metadata log's own name (Kafka's `__cluster_metadata`): never a topic clients may
/// create, write or see, so no partition directory can ever be `__cluster_metadata-0`.
pub const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";

/// One advertised listener of a broker (Kafka's BrokerEndpoint): clients get the endpoint
/// of the listener they connected on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    /// Upper-cased listener name.
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// A registered broker and its advertised endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub broker_id: i32,
    /// The inter-broker endpoint (`inter.broker.listener.name`).
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
    /// Every advertised broker listener; empty in registrations from before several
    /// listeners were served, where `host:port` is the only endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<BrokerEndpoint>,
    /// Fenced for missing heartbeats: not a leader, not in an ISR, not given new replicas.
    #[serde(default)]
    pub fenced: bool,
}

impl BrokerRegistration {
    /// The endpoint of listener `name` (as Kafka answers Metadata with the endpoints of the
    /// listener the request came in on); `None` if this broker has no such listener. A
    /// registration without listener names has one endpoint, which serves every name.
    pub fn endpoint(&self, name: &str) -> Option<(&str, u16)> {
        if self.listeners.is_empty() {
            return Some((&self.host, self.port));
        }
        self.listeners
            .iter()
            .find(|l| l.name.eq_ignore_ascii_case(name))
            .map(|l| (l.host.as_str(), l.port))
    }
}

/// One partition's replica set and leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// KIP-966 eligible leader replicas (see [`MetadataRecord::Partition`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub eligible_leader_replicas: Vec<i32>,
    /// KIP-966 last known ELR (see [`MetadataRecord::Partition`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_known_elr: Vec<i32>,
    /// Reassignment in flight (see [`MetadataRecord::Partition`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<i32>,
}

impl PartitionImage {
    /// The record that states this partition in full.
    pub fn to_record(&self, topic_id: Uuid) -> MetadataRecord {
        MetadataRecord::Partition {
            topic_id,
            partition: self.partition,
            replicas: self.replicas.clone(),
            isr: self.isr.clone(),
            leader: self.leader,
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            eligible_leader_replicas: self.eligible_leader_replicas.clone(),
            last_known_elr: self.last_known_elr.clone(),
            adding_replicas: self.adding_replicas.clone(),
            removing_replicas: self.removing_replicas.clone(),
        }
    }
}

/// A stored SCRAM credential (RFC 5802): what the server needs to check a client's proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// A topic: its id, partitions by index, and its dynamic config overrides (never defaults).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    pub partitions: BTreeMap<i32, PartitionImage>,
    pub configs: BTreeMap<String, String>,
}

impl TopicImage {
    pub fn is_internal(&self) -> bool {
        is_internal(&self.name)
    }

    /// Replication factor, taken from partition 0 (all partitions share it at creation).
    pub fn replication_factor(&self) -> i16 {
        self.partitions
            .values()
            .next()
            .map_or(0, |p| p.replicas.len() as i16)
    }
}

/// The cluster state at one point of the metadata log.
/// Serializable so a Raft snapshot of the metadata log is this image (`quorum::state_machine`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    cluster_id: Option<String>,
    brokers: BTreeMap<i32, BrokerRegistration>,
    topics_by_id: BTreeMap<Uuid, Arc<TopicImage>>,
    topic_ids_by_name: BTreeMap<String, Uuid>,
    broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    /// Overrides of consumer groups (GROUP config resources), by group id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    group_configs: BTreeMap<String, BTreeMap<String, String>>,
    next_producer_id_block_start: i64,
    /// Ids of topics a RemoveTopic record deleted: the only topics whose logs a broker may
    /// delete. A topic that vanishes from the image any other way is a fault, not an order.
    removed_topic_ids: std::collections::BTreeSet<Uuid>,
    /// Brokers an UnregisterBroker record removed (and no registration since).
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    unregistered_brokers: std::collections::BTreeSet<i32>,
    /// SCRAM credentials by user, then mechanism id (1 = SHA-256, 2 = SHA-512).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    scram_credentials: BTreeMap<String, BTreeMap<i8, ScramCredential>>,
    /// ACLs by the id the controller gave them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    acls: BTreeMap<Uuid, crate::acl::AclBinding>,
    /// Client quotas by entity.
    #[serde(default, skip_serializing_if = "crate::quota::ClientQuotas::is_empty")]
    client_quotas: crate::quota::ClientQuotas,
    /// Number of records replayed into this image (the next metadata offset).
    records_applied: u64,
}

impl MetadataImage {
    /// The image of an empty log.
    pub fn empty() -> MetadataImage {
        MetadataImage::default()
    }

    /// Replays `records` from the empty image.
    pub fn replay<'a>(records: impl IntoIterator<Item = &'a MetadataRecord>) -> MetadataImage {
        MetadataImage::empty().apply_all(records)
    }

    /// The image after one more committed record.
    pub fn apply(&self, record: &MetadataRecord) -> MetadataImage {
        self.apply_all(std::iter::once(record))
    }

    /// The image after a batch of committed records (one copy of the maps for the whole batch;
    /// topics are behind `Arc`, so untouched topics are shared, not copied).
    pub fn apply_all<'a>(
        &self,
        records: impl IntoIterator<Item = &'a MetadataRecord>,
    ) -> MetadataImage {
        self.apply_tracked(records, &mut Touched::default())
    }

    /// [`MetadataImage::apply_all`], noting in `touched` what the records touched.
    pub fn apply_tracked<'a>(
        &self,
        records: impl IntoIterator<Item = &'a MetadataRecord>,
        touched: &mut Touched,
    ) -> MetadataImage {
        let mut next = self.clone();
        for record in records {
            next.replay_one(record, touched);
        }
        next
    }

    /// Every topic, in id order.
    pub fn topics_by_id(&self) -> impl Iterator<Item = &Arc<TopicImage>> + '_ {
        self.topics_by_id.values()
    }

    /// Ids of brokers with dynamic config overrides.
    pub fn broker_config_ids(&self) -> impl Iterator<Item = i32> + '_ {
        self.broker_configs.keys().copied()
    }

    /// Dynamic overrides of a broker, if it has any (no copy).
    pub fn broker_configs_ref(&self, broker_id: i32) -> Option<&BTreeMap<String, String>> {
        self.broker_configs.get(&broker_id)
    }

    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// Registered brokers, in id order.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> + '_ {
        self.brokers.values()
    }

    /// Registered brokers that are not fenced: those clients see and placement uses.
    pub fn unfenced_brokers(&self) -> impl Iterator<Item = &BrokerRegistration> + '_ {
        self.brokers.values().filter(|b| !b.fenced)
    }

    pub fn broker(&self, broker_id: i32) -> Option<&BrokerRegistration> {
        self.brokers.get(&broker_id)
    }

    pub fn topic(&self, name: &str) -> Option<&Arc<TopicImage>> {
        self.topic_ids_by_name
            .get(name)
            .and_then(|id| self.topics_by_id.get(id))
    }

    pub fn topic_by_id(&self, topic_id: Uuid) -> Option<&Arc<TopicImage>> {
        self.topics_by_id.get(&topic_id)
    }

    /// `user`'s SCRAM credential for mechanism id `mechanism` (1 = SHA-256, 2 = SHA-512).
    pub fn scram_credential(&self, user: &str, mechanism: i8) -> Option<&ScramCredential> {
        self.scram_credentials.get(user)?.get(&mechanism)
    }

    /// The client quotas.
    pub fn client_quotas(&self) -> &crate::quota::ClientQuotas {
        &self.client_quotas
    }

    /// Every ACL, by id.
    pub fn acls(&self) -> &BTreeMap<Uuid, crate::acl::AclBinding> {
        &self.acls
    }

    /// Every user with SCRAM credentials, and theirs by mechanism id.
    pub fn scram_users(&self) -> impl Iterator<Item = (&str, &BTreeMap<i8, ScramCredential>)> {
        self.scram_credentials.iter().map(|(u, m)| (u.as_str(), m))
    }

    /// Whether an UnregisterBroker record removed `broker_id` (with no registration since).
    pub fn was_unregistered(&self, broker_id: i32) -> bool {
        self.unregistered_brokers.contains(&broker_id)
    }

    /// Whether a committed RemoveTopic record deleted the topic `topic_id`.
    pub fn was_removed(&self, topic_id: Uuid) -> bool {
        self.removed_topic_ids.contains(&topic_id)
    }

    /// All topics, in name order.
    pub fn topics(&self) -> impl Iterator<Item = &Arc<TopicImage>> + '_ {
        self.topic_ids_by_name
            .values()
            .filter_map(|id| self.topics_by_id.get(id))
    }

    pub fn topic_count(&self) -> usize {
        self.topics_by_id.len()
    }

    /// Dynamic overrides of a topic (`None` if the topic does not exist).
    pub fn topic_config_overrides(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.topic(name).map(|t| &t.configs)
    }

    /// Dynamic overrides of a broker (empty if none were set).
    pub fn broker_config_overrides(&self, broker_id: i32) -> BTreeMap<String, String> {
        self.broker_configs
            .get(&broker_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Overrides of a consumer group (empty if none were set; the group need not exist).
    pub fn group_config_overrides(&self, group_id: &str) -> BTreeMap<String, String> {
        self.group_configs
            .get(group_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Overrides of any config resource (empty if none; `None` for an unknown topic).
    pub fn config_overrides(&self, resource: &ConfigResource) -> Option<BTreeMap<String, String>> {
        match resource {
            ConfigResource::Topic(name) => self.topic_config_overrides(name).cloned(),
            ConfigResource::Broker(id) => Some(self.broker_config_overrides(*id)),
            ConfigResource::Group(group) => Some(self.group_config_overrides(group)),
        }
    }

    /// First producer id of the next block the controller will hand out.
    pub fn next_producer_id_block_start(&self) -> i64 {
        self.next_producer_id_block_start
    }

    /// Number of records replayed into this image.
    pub fn records_applied(&self) -> u64 {
        self.records_applied
    }

    fn replay_one(&mut self, record: &MetadataRecord, touched: &mut Touched) {
        self.records_applied += 1;
        match record {
            MetadataRecord::Cluster { cluster_id } => {
                touched.other();
                self.cluster_id = Some(cluster_id.clone())
            }
            MetadataRecord::RegisterBroker {
                broker_id,
                host,
                port,
                rack,
                listeners,
            } => {
                let registration = BrokerRegistration {
                    broker_id: *broker_id,
                    host: host.clone(),
                    port: *port,
                    rack: rack.clone(),
                    listeners: listeners.clone(),
                    fenced: false,
                };
                touched.broker(*broker_id);
                self.unregistered_brokers.remove(broker_id);
                self.brokers.insert(*broker_id, registration);
            }
            MetadataRecord::ScramCredential {
                user,
                mechanism,
                salt,
                stored_key,
                server_key,
                iterations,
            } => {
                self.scram_credentials
                    .entry(user.clone())
                    .or_default()
                    .insert(
                        *mechanism,
                        ScramCredential {
                            salt: salt.clone(),
                            stored_key: stored_key.clone(),
                            server_key: server_key.clone(),
                            iterations: *iterations,
                        },
                    );
            }
            MetadataRecord::Acl { id, binding } => {
                self.acls.insert(*id, binding.clone());
            }
            MetadataRecord::RemoveAcl { id } => {
                self.acls.remove(id);
            }
            MetadataRecord::ClientQuota {
                entity,
                key,
                value_bits,
            } => {
                self.client_quotas
                    .set(entity, key, value_bits.map(f64::from_bits));
            }
            MetadataRecord::RemoveScramCredential { user, mechanism } => {
                if let Some(by_mechanism) = self.scram_credentials.get_mut(user) {
                    by_mechanism.remove(mechanism);
                    if by_mechanism.is_empty() {
                        self.scram_credentials.remove(user);
                    }
                }
            }
            MetadataRecord::UnregisterBroker { broker_id } => {
                touched.broker(*broker_id);
                self.brokers.remove(broker_id);
                self.unregistered_brokers.insert(*broker_id);
            }
            MetadataRecord::FenceBroker { broker_id }
            | MetadataRecord::UnfenceBroker { broker_id } => {
                let fenced = matches!(record, MetadataRecord::FenceBroker { .. });
                touched.broker(*broker_id);
                match self.brokers.get_mut(broker_id) {
                    Some(b) => b.fenced = fenced,
                    None => {
                        tracing::warn!(broker_id, "fencing record for an unknown broker; skipped")
                    }
                }
            }
            MetadataRecord::Topic { name, topic_id } => {
                let topic = TopicImage {
                    name: name.clone(),
                    topic_id: *topic_id,
                    partitions: BTreeMap::new(),
                    configs: BTreeMap::new(),
                };
                touched.topic(*topic_id);
                if let Some(old) = self.topic_ids_by_name.get(name) {
                    touched.topic(*old);
                }
                if let Some(old) = self.topics_by_id.get(topic_id) {
                    for p in old.partitions.keys() {
                        touched.partition(*topic_id, *p);
                    }
                }
                self.topic_ids_by_name.insert(name.clone(), *topic_id);
                self.topics_by_id.insert(*topic_id, Arc::new(topic));
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
                eligible_leader_replicas,
                last_known_elr,
                adding_replicas,
                removing_replicas,
            } => {
                let Some(topic) = self.topics_by_id.get_mut(topic_id) else {
                    tracing::warn!(%topic_id, partition, "partition record for unknown topic id; skipped");
                    return;
                };
                let image = PartitionImage {
                    partition: *partition,
                    replicas: replicas.clone(),
                    isr: isr.clone(),
                    leader: *leader,
                    leader_epoch: *leader_epoch,
                    partition_epoch: *partition_epoch,
                    eligible_leader_replicas: eligible_leader_replicas.clone(),
                    last_known_elr: last_known_elr.clone(),
                    adding_replicas: adding_replicas.clone(),
                    removing_replicas: removing_replicas.clone(),
                };
                touched.partition(*topic_id, *partition);
                Arc::make_mut(topic).partitions.insert(*partition, image);
            }
            MetadataRecord::Config {
                resource,
                name,
                value,
            } => self.replay_config(resource, name, value.as_deref(), touched),
            MetadataRecord::RemoveTopic { topic_id } => {
                touched.topic(*topic_id);
                if let Some(topic) = self.topics_by_id.remove(topic_id) {
                    self.topic_ids_by_name.remove(&topic.name);
                    self.removed_topic_ids.insert(*topic_id);
                } else {
                    tracing::warn!(%topic_id, "remove record for unknown topic id; skipped");
                }
            }
            MetadataRecord::ProducerIds {
                next_block_start, ..
            } => {
                touched.other();
                self.next_producer_id_block_start = *next_block_start
            }
        }
    }

    /// Records that rebuild this image from the empty one: what a snapshot stores (as Kafka's
    /// snapshots are records). Deleted topics come first as a placeholder topic and its
    /// removal (so their ids stay known as deleted), then unregistered brokers, brokers (and
    /// their fencing), topics with partitions and overrides, broker overrides, and the
    /// producer-id block. [`MetadataImage::from_snapshot_records`] replays them.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        if let Some(cluster_id) = &self.cluster_id {
            out.push(MetadataRecord::Cluster {
                cluster_id: cluster_id.clone(),
            });
        }
        for topic_id in &self.removed_topic_ids {
            out.push(MetadataRecord::Topic {
                name: format!("__removed-{topic_id}"),
                topic_id: *topic_id,
            });
            out.push(MetadataRecord::RemoveTopic {
                topic_id: *topic_id,
            });
        }
        for (user, by_mechanism) in &self.scram_credentials {
            for (mechanism, c) in by_mechanism {
                out.push(MetadataRecord::ScramCredential {
                    user: user.clone(),
                    mechanism: *mechanism,
                    salt: c.salt.clone(),
                    stored_key: c.stored_key.clone(),
                    server_key: c.server_key.clone(),
                    iterations: c.iterations,
                });
            }
        }
        for (entity, values) in self.client_quotas.iter() {
            for (key, value) in values {
                out.push(MetadataRecord::ClientQuota {
                    entity: entity.clone(),
                    key: key.to_owned(),
                    value_bits: Some(value.to_bits()),
                });
            }
        }
        for (id, binding) in &self.acls {
            out.push(MetadataRecord::Acl {
                id: *id,
                binding: binding.clone(),
            });
        }
        for broker_id in &self.unregistered_brokers {
            out.push(MetadataRecord::UnregisterBroker {
                broker_id: *broker_id,
            });
        }
        for b in self.brokers.values() {
            out.push(MetadataRecord::RegisterBroker {
                broker_id: b.broker_id,
                host: b.host.clone(),
                port: b.port,
                rack: b.rack.clone(),
                listeners: b.listeners.clone(),
            });
            if b.fenced {
                out.push(MetadataRecord::FenceBroker {
                    broker_id: b.broker_id,
                });
            }
        }
        for topic in self.topics_by_id.values() {
            out.push(MetadataRecord::Topic {
                name: topic.name.clone(),
                topic_id: topic.topic_id,
            });
            for p in topic.partitions.values() {
                out.push(p.to_record(topic.topic_id));
            }
            for (name, value) in &topic.configs {
                out.push(MetadataRecord::Config {
                    resource: ConfigResource::Topic(topic.name.clone()),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        for (broker_id, configs) in &self.broker_configs {
            for (name, value) in configs {
                out.push(MetadataRecord::Config {
                    resource: ConfigResource::Broker(*broker_id),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        for (group, configs) in &self.group_configs {
            for (name, value) in configs {
                out.push(MetadataRecord::Config {
                    resource: ConfigResource::Group(group.clone()),
                    name: name.clone(),
                    value: Some(value.clone()),
                });
            }
        }
        if self.next_producer_id_block_start != 0 {
            out.push(MetadataRecord::ProducerIds {
                broker_id: -1,
                next_block_start: self.next_producer_id_block_start,
                block_size: 0,
            });
        }
        out
    }

    /// The image [`MetadataImage::to_records`] wrote, with the count of records the original
    /// had replayed (its metadata offset) restored.
    pub fn from_snapshot_records(
        records: &[MetadataRecord],
        records_applied: u64,
    ) -> MetadataImage {
        let mut image = MetadataImage::replay(records);
        image.records_applied = records_applied;
        image
    }

    fn replay_config(
        &mut self,
        resource: &ConfigResource,
        name: &str,
        value: Option<&str>,
        touched: &mut Touched,
    ) {
        let configs = match resource {
            ConfigResource::Broker(id) => {
                touched.broker_config(*id);
                self.broker_configs.entry(*id).or_default()
            }
            // Read by the group coordinator at each heartbeat: no delta to publish.
            ConfigResource::Group(group) => self.group_configs.entry(group.clone()).or_default(),
            ConfigResource::Topic(topic) => {
                let topic_id = self.topic_ids_by_name.get(topic);
                match topic_id.and_then(|id| self.topics_by_id.get_mut(id)) {
                    Some(t) => {
                        touched.topic(t.topic_id);
                        &mut Arc::make_mut(t).configs
                    }
                    None => {
                        tracing::warn!(topic, name, "config record for unknown topic; skipped");
                        return;
                    }
                }
            }
        };
        match value {
            Some(v) => {
                configs.insert(name.to_string(), v.to_string());
            }
            None => {
                configs.remove(name);
            }
        }
        if let ConfigResource::Broker(id) = resource {
            if self.broker_configs.get(id).is_some_and(BTreeMap::is_empty) {
                self.broker_configs.remove(id);
            }
        }
        if let ConfigResource::Group(group) = resource {
            if self
                .group_configs
                .get(group)
                .is_some_and(BTreeMap::is_empty)
            {
                self.group_configs.remove(group);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_records() -> Vec<MetadataRecord> {
        let id = Uuid::from_u128(7);
        vec![
            MetadataRecord::Cluster {
                cluster_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
            },
            MetadataRecord::RegisterBroker {
                broker_id: 1,
                host: "localhost".into(),
                port: 9092,
                rack: None,
                listeners: vec![],
            },
            MetadataRecord::Topic {
                name: "orders".into(),
                topic_id: id,
            },
            MetadataRecord::Partition {
                topic_id: id,
                partition: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
                eligible_leader_replicas: vec![],
                last_known_elr: vec![],
                adding_replicas: vec![],
                removing_replicas: vec![],
            },
            MetadataRecord::Config {
                resource: ConfigResource::Topic("orders".into()),
                name: "retention.ms".into(),
                value: Some("1000".into()),
            },
            MetadataRecord::ProducerIds {
                broker_id: 1,
                next_block_start: 1000,
                block_size: 1000,
            },
        ]
    }

    #[test]
    fn replay_is_deterministic_and_equals_stepwise_apply() {
        let records = sample_records();
        let a = MetadataImage::replay(&records);
        let b = MetadataImage::replay(&records);
        assert_eq!(a, b);
        let stepwise = records
            .iter()
            .fold(MetadataImage::empty(), |img, r| img.apply(r));
        assert_eq!(a, stepwise);
        assert_eq!(a.records_applied(), records.len() as u64);
    }

    #[test]
    fn lookups_by_name_and_id() {
        let image = MetadataImage::replay(&sample_records());
        let t = image.topic("orders").unwrap();
        assert_eq!(image.topic_by_id(t.topic_id).unwrap().name, "orders");
        assert_eq!(t.partitions[&0].leader, 1);
        assert_eq!(t.replication_factor(), 1);
        assert_eq!(
            image.topic_config_overrides("orders").unwrap()["retention.ms"],
            "1000"
        );
        assert_eq!(image.next_producer_id_block_start(), 1000);
        assert_eq!(image.cluster_id(), Some("AAAAAAAAAAAAAAAAAAAAAA"));
        assert_eq!(image.topics().count(), 1);
        assert!(is_internal("__consumer_offsets") && !t.is_internal());
    }

    #[test]
    fn config_delete_and_topic_removal() {
        let records = sample_records();
        let image = MetadataImage::replay(&records);
        let image = image.apply(&MetadataRecord::Config {
            resource: ConfigResource::Topic("orders".into()),
            name: "retention.ms".into(),
            value: None,
        });
        assert!(image.topic_config_overrides("orders").unwrap().is_empty());
        let id = image.topic("orders").unwrap().topic_id;
        let before = image.clone();
        let image = image.apply(&MetadataRecord::RemoveTopic { topic_id: id });
        assert!(image.topic("orders").is_none());
        assert!(image.topic_by_id(id).is_none());
        assert!(image.was_removed(id));
        assert!(!before.was_removed(id));
        // The earlier image is untouched: images are immutable snapshots.
        assert!(before.topic("orders").is_some());
        let image = image.apply(&MetadataRecord::Config {
            resource: ConfigResource::Broker(1),
            name: "log.retention.ms".into(),
            value: Some("5".into()),
        });
        assert_eq!(image.broker_config_overrides(1)["log.retention.ms"], "5");
    }
}
