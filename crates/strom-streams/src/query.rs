//! Interactive queries: the stores of this instance's tasks, readable by key, range or
//! window from any thread while the application runs, and which partition (task) owns a key.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use strom_client::partitioner::partition_for_key;

use crate::error::{store_err, Result, StreamsError};
use crate::grouped::window_key;
use crate::ktable::time_key;
use crate::runtime::KafkaStreams;
use crate::serde::{Serde, Windowed};
use crate::store::{self, SharedStore};

/// Open stores by name and partition.
#[derive(Default)]
pub(crate) struct StoreRegistry {
    stores: Mutex<BTreeMap<String, BTreeMap<i32, SharedStore>>>,
}

impl StoreRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeMap<i32, SharedStore>>> {
        self.stores.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub(crate) fn register(&self, name: &str, partition: i32, store: SharedStore) {
        self.lock()
            .entry(name.to_owned())
            .or_default()
            .insert(partition, store);
    }
    pub(crate) fn unregister(&self, name: &str, partition: i32, store: &SharedStore) {
        let mut g = self.lock();
        if let Some(m) = g.get_mut(name) {
            if m.get(&partition).is_some_and(|s| Arc::ptr_eq(s, store)) {
                m.remove(&partition);
            }
        }
    }
    fn snapshot(&self, name: &str) -> BTreeMap<i32, SharedStore> {
        self.lock().get(name).cloned().unwrap_or_default()
    }
}

/// A read-only view of one store across the partitions this instance holds.
pub struct ReadOnlyStore {
    name: String,
    partitions: BTreeMap<i32, SharedStore>,
}

impl std::fmt::Debug for ReadOnlyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadOnlyStore")
            .field("name", &self.name)
            .field("partitions", &self.partitions.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ReadOnlyStore {
    /// Partitions of the store held here.
    pub fn partitions(&self) -> Vec<i32> {
        self.partitions.keys().copied().collect()
    }

    /// The value of a key-value store's key, if this instance holds it.
    pub fn get<K: Serde, V: Serde>(&self, key: &K) -> Result<Option<V>> {
        let kb = key.to_bytes();
        for s in self.partitions.values() {
            if let Some(v) = store::lock(s).get(&kb)? {
                return V::from_bytes(&v)
                    .map(Some)
                    .map_err(|e| store_err(&self.name, e));
            }
        }
        Ok(None)
    }

    /// Every entry with `from <= key <= to` (by key bytes), across the local partitions.
    pub fn range<K: Serde, V: Serde>(&self, from: &K, to: &K) -> Result<Vec<(K, V)>> {
        let (a, b) = (from.to_bytes(), to.to_bytes());
        self.collect(Bound::Included(&a), Bound::Included(&b))
    }

    pub fn all<K: Serde, V: Serde>(&self) -> Result<Vec<(K, V)>> {
        self.collect(Bound::Unbounded, Bound::Unbounded)
    }

    fn collect<K: Serde, V: Serde>(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Result<Vec<(K, V)>> {
        let mut out = Vec::new();
        for s in self.partitions.values() {
            for (k, v) in store::lock(s).range(from, to)? {
                let k = K::from_bytes(&k).map_err(|e| store_err(&self.name, e))?;
                let v = V::from_bytes(&v).map_err(|e| store_err(&self.name, e))?;
                out.push((k, v));
            }
        }
        Ok(out)
    }

    /// A window store's values of `key` in windows starting in `[from, to]`.
    pub fn fetch_windows<K: Serde, V: Serde>(
        &self,
        key: &K,
        from: i64,
        to: i64,
        size_ms: i64,
    ) -> Result<Vec<(Windowed<K>, V)>> {
        let kb = key.to_bytes();
        let lo = time_key(from);
        let hi = window_key(to, &[0xff; 1]);
        let mut out = Vec::new();
        for s in self.partitions.values() {
            for (k, v) in store::lock(s).range(Bound::Included(&lo), Bound::Excluded(&hi))? {
                if k.len() < 8 || k[8..] != kb[..] {
                    continue;
                }
                let start =
                    (u64::from_be_bytes(k[..8].try_into().expect("8 bytes")) ^ (1 << 63)) as i64;
                let v = V::from_bytes(&v).map_err(|e| store_err(&self.name, e))?;
                out.push((
                    Windowed {
                        key: key.clone(),
                        start,
                        end: start + size_ms,
                    },
                    v,
                ));
            }
        }
        out.sort_by_key(|(w, _)| w.start);
        Ok(out)
    }
}

impl KafkaStreams {
    /// The store `name` as this instance holds it now (its local partitions).
    pub fn store(&self, name: &str) -> Result<ReadOnlyStore> {
        let shared = self.shared();
        if !shared.topology.stores.contains_key(name) {
            return Err(StreamsError::Topology(format!("no store named '{name}'")));
        }
        Ok(ReadOnlyStore {
            name: name.to_owned(),
            partitions: shared.stores.snapshot(name),
        })
    }

    /// The partition (task) of store `name` that holds `key`, and whether this instance
    /// holds it (Kafka's `queryMetadataForKey`, within one instance; another instance
    /// answers for the partitions it holds).
    pub fn partition_for_key<K: Serde>(&self, name: &str, key: &K) -> Result<(i32, bool)> {
        let shared = self.shared();
        let sub = shared
            .topology
            .subtopologies
            .iter()
            .find(|s| s.stores.iter().any(|n| n == name))
            .ok_or_else(|| StreamsError::Topology(format!("no store named '{name}'")))?;
        let n = shared
            .tasks_per_subtopology
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&sub.id)
            .copied()
            .ok_or(StreamsError::NotRunning)?;
        let p = partition_for_key(&key.to_bytes(), n);
        Ok((p, shared.stores.snapshot(name).contains_key(&p)))
    }
}

impl KafkaStreams {
    /// The `application.server` of the instance that holds `key` in store `name` now
    /// (Kafka's `queryMetadataForKey(...).activeHost()`), from what every stream thread
    /// publishes to `<application.id>-instances`; `None` if no instance claims its task.
    pub async fn metadata_for_key<K: Serde>(&self, name: &str, key: &K) -> Result<Option<String>> {
        let shared = self.shared();
        let sub = shared
            .topology
            .subtopologies
            .iter()
            .find(|s| s.stores.iter().any(|n| n == name))
            .ok_or_else(|| StreamsError::Topology(format!("no store named '{name}'")))?
            .id;
        let (partition, _) = self.partition_for_key(name, key)?;
        let task = crate::TaskId {
            subtopology: sub,
            partition,
        }
        .to_string();
        let c = &shared.config;
        let mut cc = strom_client::ConsumerConfig::new(&c.bootstrap_servers);
        cc.set("fetch.max.wait.ms", "50")?;
        if c.processing_guarantee == crate::ProcessingGuarantee::ExactlyOnceV2 {
            cc.set("isolation.level", "read_committed")?;
        }
        let mut consumer = strom_client::Consumer::new(cc).await?;
        let tp = strom_client::TopicPartition::new(
            crate::internal_topics::instances_topic(&c.application_id),
            0,
        );
        consumer.assign(std::slice::from_ref(&tp));
        consumer.seek_to_end().await?;
        let end = consumer.position(&tp).unwrap_or(0);
        consumer.seek(&tp, 0)?;
        // The latest record of each thread; the most recent claim of the task wins.
        let mut latest: BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> = BTreeMap::new();
        while consumer.position(&tp).unwrap_or(end) < end {
            for r in consumer.poll(std::time::Duration::from_millis(200)).await? {
                if let Some(k) = r.key {
                    latest.insert(k.to_vec(), (r.offset, r.value.map(|v| v.to_vec())));
                }
            }
        }
        consumer.close().await?;
        let mut best: Option<(i64, String)> = None;
        for (offset, value) in latest.into_values() {
            let Some(v) = value else { continue };
            let text = String::from_utf8_lossy(&v);
            let Some((server, tasks)) = text.split_once('\n') else {
                continue;
            };
            if tasks.split(',').any(|t| t == task) && best.as_ref().is_none_or(|(o, _)| offset > *o)
            {
                best = Some((offset, server.to_owned()));
            }
        }
        Ok(best.map(|(_, s)| s))
    }
}
