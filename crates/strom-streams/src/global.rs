//! Global tables: every instance holds all partitions of a topic in a store (no tasks, no
//! co-partitioning), kept current by one global thread; `start` waits until it has read
//! up to the topic's end. Streams join them through a key mapper.

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use strom_client::{Consumer, ConsumerConfig, TopicPartition};

use crate::builder::StreamsBuilder;
use crate::context::{Ctx, Record};
use crate::error::{store_err, Result, StreamsError};
use crate::kstream::KStream;
use crate::node::{erase, Downstream, Node, NodeRef};
use crate::runtime::Shared;
use crate::serde::{Serde, SerdeContext};
use crate::store::{self, MemoryStore, SharedStore};
use crate::topology::GlobalDef;

/// A table of all partitions of a topic, on every instance.
pub struct GlobalKTable<K, V> {
    store: String,
    _t: PhantomData<fn() -> (K, V)>,
}

impl<K, V> GlobalKTable<K, V> {
    pub fn store_name(&self) -> &str {
        &self.store
    }
}

impl StreamsBuilder {
    /// A global table of `topic`, held in store `store` on every instance.
    pub fn global_table<K: Serde, V: Serde>(
        &self,
        topic: &str,
        store: &str,
    ) -> Result<GlobalKTable<K, V>> {
        let mut g = self.g.borrow_mut();
        if g.stores.contains_key(store) || g.globals.contains_key(store) {
            return Err(StreamsError::Topology(format!(
                "store '{store}' is defined twice"
            )));
        }
        let backend: Box<dyn store::KvBackend> = Box::new(MemoryStore::default());
        g.globals.insert(
            store.to_owned(),
            GlobalDef {
                topic: topic.to_owned(),
                store: Arc::new(std::sync::Mutex::new(backend)),
                to_store: Arc::new(|sc, k, v| {
                    let key = K::deserialize_for(sc, k)?.to_bytes();
                    let value_ctx = SerdeContext {
                        is_key: false,
                        ..*sc
                    };
                    let value = match v {
                        Some(v) => Some(V::deserialize_for(&value_ctx, v)?.to_bytes()),
                        None => None,
                    };
                    Ok((key, value))
                }),
            },
        );
        Ok(GlobalKTable {
            store: store.to_owned(),
            _t: PhantomData,
        })
    }
}

type GlobalJoiner<K, V, GK, GV, VR> = (
    Arc<dyn Fn(&K, &V) -> GK + Send + Sync>,
    Arc<dyn Fn(&V, Option<&GV>) -> Option<VR> + Send + Sync>,
);

struct GlobalJoinNode<K, V, GK, GV, VR> {
    store: SharedStore,
    name: String,
    f: GlobalJoiner<K, V, GK, GV, VR>,
    down: Downstream<K, VR>,
}

impl<K: Serde, V: Serde, GK: Serde, GV: Serde, VR: Serde> Node<K, V>
    for GlobalJoinNode<K, V, GK, GV, VR>
{
    fn process(&self, ctx: &mut Ctx, rec: Record<K, V>) -> Result<()> {
        let gk = (self.f.0)(&rec.key, &rec.value).to_bytes();
        let found = store::lock(&self.store).get(&gk)?;
        let gv = found
            .map(|b| GV::from_bytes(&b).map_err(|e| store_err(&self.name, e)))
            .transpose()?;
        if let Some(value) = (self.f.1)(&rec.value, gv.as_ref()) {
            self.down.forward(
                ctx,
                Record {
                    key: rec.key,
                    value,
                    timestamp: rec.timestamp,
                },
            )?;
        }
        Ok(())
    }
}

impl<K: Serde, V: Serde> KStream<K, V> {
    fn global_join<GK: Serde, GV: Serde, VR: Serde>(
        &self,
        table: &GlobalKTable<GK, GV>,
        f: GlobalJoiner<K, V, GK, GV, VR>,
    ) -> KStream<K, VR> {
        let name = table.store.clone();
        self.add_node::<K, VR>("KSTREAM-GLOBALJOIN", Vec::new(), false, move |ctx, kids| {
            let node: NodeRef<K, V> = Rc::new(GlobalJoinNode {
                store: ctx.global(&name)?,
                name: name.clone(),
                f: f.clone(),
                down: Downstream::from_built(kids)?,
            });
            Ok(erase(node))
        })
    }

    /// Joins each record with the global table's value at `key_mapper(key, value)`;
    /// records without one are dropped. No co-partitioning needed.
    pub fn join_global<GK: Serde, GV: Serde, VR: Serde>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_mapper: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, &GV) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.global_join(
            table,
            (
                Arc::new(key_mapper),
                Arc::new(move |v, g| g.map(|g| joiner(v, g))),
            ),
        )
    }

    /// Like `join_global`, with `None` where the global table has no value.
    pub fn left_join_global<GK: Serde, GV: Serde, VR: Serde>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key_mapper: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&GV>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.global_join(
            table,
            (
                Arc::new(key_mapper),
                Arc::new(move |v, g| Some(joiner(v, g))),
            ),
        )
    }
}

/// The global thread's work: read every global topic from the start, report when caught
/// up (`bootstrapped`), then keep applying updates until the application stops.
pub(crate) async fn run_global(
    shared: Arc<Shared>,
    bootstrapped: Arc<std::sync::atomic::AtomicBool>,
) -> Result<()> {
    let c = &shared.config;
    let mut cc = ConsumerConfig::new(&c.bootstrap_servers);
    cc.set("client.id", &format!("{}-global", c.application_id))?;
    cc.set("fetch.max.wait.ms", "100")?;
    if c.processing_guarantee == crate::ProcessingGuarantee::ExactlyOnceV2 {
        cc.set("isolation.level", "read_committed")?;
    }
    let mut consumer = Consumer::new(cc).await?;
    let mut tps = Vec::new();
    let mut by_topic = std::collections::BTreeMap::new();
    for g in shared.topology.globals.values() {
        let md = consumer
            .client()
            .refresh_metadata(Some(std::slice::from_ref(&g.topic)), false)
            .await?;
        let n = md.topic(&g.topic).map_or(0, |t| t.partitions.len());
        if n == 0 {
            return Err(StreamsError::Topology(format!(
                "global table topic '{}' does not exist",
                g.topic
            )));
        }
        tps.extend((0..n as i32).map(|p| TopicPartition::new(g.topic.clone(), p)));
        by_topic.insert(g.topic.clone(), (g.store.clone(), g.to_store.clone()));
    }
    consumer.assign(&tps);
    consumer.seek_to_end().await?;
    let ends: Vec<(TopicPartition, i64)> = tps
        .iter()
        .map(|tp| (tp.clone(), consumer.position(tp).unwrap_or(0)))
        .collect();
    consumer.seek_to_beginning().await?;
    loop {
        if !shared.running.load(Ordering::Acquire) || shared.crashed() {
            return Ok(());
        }
        for r in consumer.poll(Duration::from_millis(100)).await? {
            let (Some((store, to_store)), Some(k)) = (by_topic.get(&r.topic), &r.key) else {
                continue;
            };
            let sc = SerdeContext {
                topic: &r.topic,
                is_key: true,
                registry: shared.registry.get(),
            };
            match to_store(&sc, k, r.value.as_deref()) {
                Ok((k, v)) => store::lock(store).put(&k, v.as_deref())?,
                Err(e) => {
                    // The handler's choice, as for task sources.
                    if c.deserialization_handler == crate::DeserializationHandler::LogAndFail {
                        return Err(StreamsError::Deserialization {
                            topic: r.topic.clone(),
                            partition: r.partition,
                            offset: r.offset,
                            part: "record",
                            reason: e.0,
                        });
                    }
                    tracing::warn!(topic = %r.topic, partition = r.partition, offset = r.offset,
                        "skipping a global table record that cannot be deserialized: {e}");
                    shared.metrics.skipped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        if !bootstrapped.load(Ordering::Acquire)
            && ends
                .iter()
                .all(|(tp, end)| consumer.position(tp).unwrap_or(0) >= *end)
        {
            bootstrapped.store(true, Ordering::Release);
        }
    }
}
