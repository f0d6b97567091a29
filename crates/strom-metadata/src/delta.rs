//! What a step of the metadata log changed: a [`MetadataDelta`] between two images, so a broker
//! touches only the partitions, topics and brokers that changed (become leader, become
//! follower, delete, config change) instead of re-deriving everything from the whole image.
//!
//! Replay records what each record touches ([`Touched`], a superset); [`Touched::finish`] then
//! compares only those items between the image before and after, so a delta is exact: an item
//! is in it if and only if it differs between the two images (a record that rewrites a
//! partition with the same state, or a topic created and deleted in one step, is not).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use uuid::Uuid;

use crate::image::MetadataImage;

/// The difference between two metadata images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataDelta {
    /// Topics in the new image and not in the old one (all their partitions are in
    /// `changed_partitions`).
    pub created_topics: BTreeSet<Uuid>,
    /// Topics in the old image and not in the new one, with their names.
    pub deleted_topics: BTreeMap<Uuid, String>,
    /// Partitions of topics in the new image that are new or whose replicas, ISR, leader or
    /// epochs changed.
    pub changed_partitions: BTreeMap<Uuid, BTreeSet<i32>>,
    /// Ids of topics in the new image whose dynamic config overrides differ (a created topic with
    /// overrides included).
    pub changed_topic_configs: BTreeSet<Uuid>,
    /// Brokers whose registration appeared, changed (endpoint, rack, fencing) or vanished.
    pub changed_brokers: BTreeSet<i32>,
    /// Brokers whose dynamic config overrides changed.
    pub changed_broker_configs: BTreeSet<i32>,
    /// The cluster id or the producer id block changed.
    pub other_changed: bool,
}

impl MetadataDelta {
    /// Whether the two images were equal (as far as brokers care).
    pub fn is_empty(&self) -> bool {
        self == &MetadataDelta::default()
    }

    /// Number of partitions created or changed.
    pub fn partition_count(&self) -> usize {
        self.changed_partitions.values().map(BTreeSet::len).sum()
    }

    /// The delta between any two images, by comparison: topics shared between them (the same
    /// `Arc`, as replay leaves untouched topics) are skipped, so this costs the changed topics
    /// plus a walk of the topic maps. Used when the deltas of the steps in between are not at
    /// hand (a follower that skipped published images).
    pub fn between(old: &MetadataImage, new: &MetadataImage) -> MetadataDelta {
        let mut touched = Touched {
            other: true,
            ..Touched::default()
        };
        let mut topics: BTreeSet<Uuid> = BTreeSet::new();
        for t in old.topics_by_id() {
            match new.topic_by_id(t.topic_id) {
                Some(n) if Arc::ptr_eq(n, t) => {}
                _ => {
                    topics.insert(t.topic_id);
                }
            }
        }
        for t in new.topics_by_id() {
            match old.topic_by_id(t.topic_id) {
                Some(o) if Arc::ptr_eq(o, t) => {}
                _ => {
                    topics.insert(t.topic_id);
                }
            }
        }
        for id in topics {
            touched.topic(id);
            for image in [old, new] {
                if let Some(t) = image.topic_by_id(id) {
                    for p in t.partitions.keys() {
                        touched.partition(id, *p);
                    }
                }
            }
        }
        for image in [old, new] {
            touched.brokers.extend(image.brokers().map(|b| b.broker_id));
            touched.broker_configs.extend(image.broker_config_ids());
        }
        touched.finish(old, new)
    }
}

/// What replaying records touched: a superset of what changed, narrowed by [`Touched::finish`].
#[derive(Debug, Clone, Default)]
pub struct Touched {
    topics: BTreeSet<Uuid>,
    partitions: BTreeSet<(Uuid, i32)>,
    brokers: BTreeSet<i32>,
    broker_configs: BTreeSet<i32>,
    other: bool,
}

impl Touched {
    pub(crate) fn topic(&mut self, id: Uuid) {
        self.topics.insert(id);
    }

    pub(crate) fn partition(&mut self, id: Uuid, partition: i32) {
        self.partitions.insert((id, partition));
    }

    pub(crate) fn broker(&mut self, id: i32) {
        self.brokers.insert(id);
    }

    pub(crate) fn broker_config(&mut self, id: i32) {
        self.broker_configs.insert(id);
    }

    pub(crate) fn other(&mut self) {
        self.other = true;
    }

    /// The exact delta from `old` to `new`, comparing only what was touched.
    pub fn finish(self, old: &MetadataImage, new: &MetadataImage) -> MetadataDelta {
        let mut delta = MetadataDelta::default();
        for id in &self.topics {
            match (old.topic_by_id(*id), new.topic_by_id(*id)) {
                (None, Some(n)) => {
                    delta.created_topics.insert(*id);
                    if !n.partitions.is_empty() {
                        delta
                            .changed_partitions
                            .insert(*id, n.partitions.keys().copied().collect());
                    }
                    if !n.configs.is_empty() {
                        delta.changed_topic_configs.insert(*id);
                    }
                }
                (Some(o), None) => {
                    delta.deleted_topics.insert(*id, o.name.clone());
                }
                (Some(o), Some(n)) => {
                    if o.configs != n.configs {
                        delta.changed_topic_configs.insert(*id);
                    }
                }
                (None, None) => {}
            }
        }
        for (id, p) in &self.partitions {
            if delta.created_topics.contains(id) {
                continue;
            }
            let (Some(o), Some(n)) = (old.topic_by_id(*id), new.topic_by_id(*id)) else {
                continue;
            };
            match n.partitions.get(p) {
                Some(now) if o.partitions.get(p) != Some(now) => {
                    delta.changed_partitions.entry(*id).or_default().insert(*p);
                }
                _ => {}
            }
        }
        for b in self.brokers {
            if old.broker(b) != new.broker(b) {
                delta.changed_brokers.insert(b);
            }
        }
        for b in self.broker_configs {
            if old.broker_configs_ref(b) != new.broker_configs_ref(b) {
                delta.changed_broker_configs.insert(b);
            }
        }
        delta.other_changed = self.other
            && (old.cluster_id() != new.cluster_id()
                || old.next_producer_id_block_start() != new.next_producer_id_block_start());
        delta
    }
}

impl MetadataImage {
    /// The image after `records`, and exactly what they changed.
    pub fn apply_with_delta<'a>(
        &self,
        records: impl IntoIterator<Item = &'a crate::records::MetadataRecord>,
    ) -> (MetadataImage, MetadataDelta) {
        let mut touched = Touched::default();
        let next = self.apply_tracked(records, &mut touched);
        let delta = touched.finish(self, &next);
        (next, delta)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::records::{ConfigResource, MetadataRecord};

    /// A record over a small universe (4 topic ids, 3 names, 3 partitions, 3 brokers), so
    /// sequences keep hitting the same items: creations, changes back and forth, deletions,
    /// recreations under an old name, records for unknown topics.
    fn record() -> impl Strategy<Value = MetadataRecord> {
        let id = (0u128..4).prop_map(Uuid::from_u128);
        let name = (0u8..3).prop_map(|n| format!("t{n}"));
        let brokers = prop::collection::vec(1i32..4, 0..3);
        prop_oneof![
            1 => (id.clone(), name.clone())
                .prop_map(|(topic_id, name)| MetadataRecord::Topic { name, topic_id }),
            4 => (id.clone(), 0i32..3, brokers.clone(), brokers, 0i32..4, 0i32..3, 0i32..3)
                .prop_map(|(topic_id, partition, replicas, isr, leader, le, pe)| {
                    MetadataRecord::Partition {
                        topic_id,
                        partition,
                        replicas,
                        isr,
                        leader,
                        leader_epoch: le,
                        partition_epoch: pe,
                        eligible_leader_replicas: vec![],
                        last_known_elr: vec![],
                        adding_replicas: vec![],
                        removing_replicas: vec![],
                    }
                }),
            1 => id.clone().prop_map(|topic_id| MetadataRecord::RemoveTopic { topic_id }),
            1 => (name, 0u8..2, prop::option::of(0u8..2)).prop_map(|(t, k, v)| MetadataRecord::Config {
                resource: ConfigResource::Topic(t),
                name: format!("k{k}"),
                value: v.map(|v| format!("v{v}")),
            }),
            1 => (1i32..4, 0u8..2, prop::option::of(0u8..2)).prop_map(|(b, k, v)| {
                MetadataRecord::Config {
                    resource: ConfigResource::Broker(b),
                    name: format!("k{k}"),
                    value: v.map(|v| format!("v{v}")),
                }
            }),
            1 => (1i32..4, 0u16..2).prop_map(|(b, port)| MetadataRecord::RegisterBroker {
                listeners: vec![],
                broker_id: b,
                host: "h".into(),
                port,
                rack: None,
            }),
            1 => (1i32..4).prop_map(|broker_id| MetadataRecord::FenceBroker { broker_id }),
            1 => (1i32..4).prop_map(|broker_id| MetadataRecord::UnfenceBroker { broker_id }),
            1 => (0i64..3).prop_map(|n| MetadataRecord::ProducerIds {
                broker_id: 1,
                next_block_start: n * 1000,
                block_size: 1000,
            }),
        ]
    }

    /// Every partition of `image` with its state, by (topic id, index): the naive oracle.
    fn partitions(image: &MetadataImage) -> BTreeMap<(Uuid, i32), crate::PartitionImage> {
        image
            .topics_by_id()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |(i, p)| ((t.topic_id, *i), p.clone()))
            })
            .collect()
    }

    /// Partitions of the new image that are new or differ from the old one.
    fn changed_partitions(old: &MetadataImage, new: &MetadataImage) -> BTreeSet<(Uuid, i32)> {
        let before = partitions(old);
        partitions(new)
            .into_iter()
            .filter(|(k, p)| before.get(k) != Some(p))
            .map(|(k, _)| k)
            .collect()
    }

    fn flatten(delta: &MetadataDelta) -> BTreeSet<(Uuid, i32)> {
        delta
            .changed_partitions
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A snapshot's records rebuild the image exactly (records count included), whatever
        /// led to it: creations, changes, deletions, unregistrations, fencing, overrides. Topic
        /// records the controller would never write (a live id or name reused) are left out.
        #[test]
        fn an_image_rebuilds_exactly_from_its_snapshot_records(
            records in prop::collection::vec(prop_oneof![
                8 => record(),
                1 => (1i32..4).prop_map(|broker_id| MetadataRecord::UnregisterBroker { broker_id }),
                1 => Just(MetadataRecord::Cluster { cluster_id: "c".into() }),
                1 => (0u8..3, 1i8..3, any::<[u8; 4]>(), 4096i32..8192).prop_map(
                    |(u, mechanism, salt, iterations)| MetadataRecord::ScramCredential {
                        user: format!("u{u}"),
                        mechanism,
                        salt: salt.to_vec(),
                        stored_key: vec![u; 32],
                        server_key: vec![mechanism as u8; 32],
                        iterations,
                    }
                ),
                1 => (0u8..3, 1i8..3).prop_map(|(u, mechanism)| {
                    MetadataRecord::RemoveScramCredential { user: format!("u{u}"), mechanism }
                }),
                1 => (0u128..4, 0u8..3).prop_map(|(id, u)| MetadataRecord::Acl {
                    id: Uuid::from_u128(id),
                    binding: crate::acl::AclBinding {
                        resource_type: crate::acl::ResourceType::Topic,
                        resource_name: format!("t{u}"),
                        pattern_type: crate::acl::PatternType::Literal,
                        principal: format!("User:u{u}"),
                        host: "*".into(),
                        operation: crate::acl::AclOperation::Read,
                        permission: crate::acl::AclPermission::Allow,
                    },
                }),
                1 => (0u128..4).prop_map(|id| MetadataRecord::RemoveAcl { id: Uuid::from_u128(id) }),
                1 => (0u8..3, prop::option::of(1u32..100)).prop_map(|(u, v)| MetadataRecord::ClientQuota {
                    entity: crate::quota::QuotaEntity::new(vec![("user".into(), Some(format!("u{u}")))]),
                    key: "producer_byte_rate".into(),
                    value_bits: v.map(|v| f64::from(v).to_bits()),
                }),
            ], 0..80),
        ) {
            let mut image = MetadataImage::empty();
            for r in &records {
                if let MetadataRecord::Topic { name, topic_id } = r {
                    if image.topic_by_id(*topic_id).is_some() || image.topic(name).is_some() {
                        continue;
                    }
                }
                image = image.apply(r);
            }
            let rebuilt = MetadataImage::from_snapshot_records(
                &image.to_records(),
                image.records_applied(),
            );
            prop_assert_eq!(&rebuilt, &image);
            let bytes = crate::records::codec::encode_batch(&image.to_records());
            let decoded = crate::records::codec::decode_batch(&bytes).unwrap();
            prop_assert_eq!(
                MetadataImage::from_snapshot_records(&decoded, image.records_applied()),
                image
            );
        }

        /// Applying records batch by batch with deltas ends in the image replay builds; each
        /// batch's delta names exactly the partitions, topics, configs and brokers that differ
        /// between the images before and after it (so their union covers exactly the
        /// partitions that changed at some step), and equals the comparison of the two images.
        #[test]
        fn deltas_are_exact_and_stepwise_apply_equals_replay(
            records in prop::collection::vec(record(), 0..60),
            cuts in prop::collection::vec(1usize..6, 0..30),
        ) {
            let mut image = MetadataImage::empty();
            let mut union: BTreeSet<(Uuid, i32)> = BTreeSet::new();
            let mut oracle_union: BTreeSet<(Uuid, i32)> = BTreeSet::new();
            let mut rest = records.as_slice();
            let mut cuts = cuts.into_iter();
            while !rest.is_empty() {
                let n = cuts.next().unwrap_or(1).min(rest.len());
                let (batch, tail) = rest.split_at(n);
                rest = tail;
                let (next, delta) = image.apply_with_delta(batch);
                let expected = changed_partitions(&image, &next);
                prop_assert_eq!(&flatten(&delta), &expected);
                prop_assert_eq!(&delta, &MetadataDelta::between(&image, &next));
                for t in image.topics_by_id() {
                    prop_assert_eq!(
                        delta.deleted_topics.contains_key(&t.topic_id),
                        next.topic_by_id(t.topic_id).is_none()
                    );
                }
                for t in next.topics_by_id() {
                    let old = image.topic_by_id(t.topic_id);
                    prop_assert_eq!(delta.created_topics.contains(&t.topic_id), old.is_none());
                    let old_configs = old.map(|o| o.configs.clone()).unwrap_or_default();
                    prop_assert_eq!(
                        delta.changed_topic_configs.contains(&t.topic_id),
                        old_configs != t.configs
                    );
                }
                for b in 1..4 {
                    prop_assert_eq!(
                        delta.changed_brokers.contains(&b),
                        image.broker(b) != next.broker(b)
                    );
                    prop_assert_eq!(
                        delta.changed_broker_configs.contains(&b),
                        image.broker_config_overrides(b) != next.broker_config_overrides(b)
                    );
                }
                union.extend(flatten(&delta));
                oracle_union.extend(expected);
                image = next;
            }
            prop_assert_eq!(&image, &MetadataImage::replay(&records));
            prop_assert_eq!(union, oracle_union);
        }
    }

    #[test]
    fn a_leader_change_touches_one_partition_of_many() {
        let id = Uuid::from_u128(1);
        let mut records = vec![MetadataRecord::Topic {
            name: "big".into(),
            topic_id: id,
        }];
        let partition = |p: i32, leader: i32, epoch: i32| MetadataRecord::Partition {
            topic_id: id,
            partition: p,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            leader,
            leader_epoch: epoch,
            partition_epoch: epoch,
            eligible_leader_replicas: vec![],
            last_known_elr: vec![],
            adding_replicas: vec![],
            removing_replicas: vec![],
        };
        records.extend((0..1000).map(|p| partition(p, 1, 0)));
        let image = MetadataImage::replay(&records);
        let (next, delta) = image.apply_with_delta(&[partition(7, 2, 1)]);
        assert_eq!(delta.partition_count(), 1);
        assert_eq!(delta.changed_partitions[&id], BTreeSet::from([7]));
        assert!(delta.created_topics.is_empty() && delta.deleted_topics.is_empty());
        assert_eq!(next.topic("big").unwrap().partitions[&7].leader, 2);
        // Rewriting the same state changes nothing.
        let (_, same) = next.apply_with_delta(&[partition(7, 2, 1)]);
        assert!(same.is_empty());
    }
}
