//! `KStream`: a record stream and its stateless operations (filter, map, mapValues, flatMap,
//! branch, merge, selectKey, peek, foreach, to, repartition), and the way into grouping.

use std::marker::PhantomData;
use std::sync::Arc;

use crate::context::{Ctx, Record};
use crate::error::{Result, StreamsError};
use crate::node::{erase, AnyNode, Downstream, Node, NodeRef};
use crate::serde::Serde;
use crate::topology::{BuildCtx, GraphRef, NodeDef, TopicRef};

/// A stream of records with key `K` and value `V`.
pub struct KStream<K, V> {
    pub(crate) g: GraphRef,
    pub(crate) node: usize,
    /// The key was changed since the source: grouping must repartition first.
    pub(crate) key_changed: bool,
    pub(crate) _t: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            g: self.g.clone(),
            node: self.node,
            key_changed: self.key_changed,
            _t: PhantomData,
        }
    }
}

type Step<K, V, K2, V2> =
    Arc<dyn Fn(&mut Ctx, Record<K, V>, &mut Vec<Record<K2, V2>>) + Send + Sync>;

/// A node that turns each record into zero or more records (every stateless operation).
struct StepNode<K, V, K2, V2> {
    step: Step<K, V, K2, V2>,
    down: Downstream<K2, V2>,
    buf: std::cell::RefCell<Vec<Record<K2, V2>>>,
}

impl<K, V, K2: Clone + 'static, V2: Clone + 'static> Node<K, V> for StepNode<K, V, K2, V2> {
    fn process(&self, ctx: &mut Ctx, rec: Record<K, V>) -> Result<()> {
        let mut out = std::mem::take(&mut *self.buf.borrow_mut());
        (self.step)(ctx, rec, &mut out);
        let mut r = Ok(());
        for o in out.drain(..) {
            r = self.down.forward(ctx, o);
            if r.is_err() {
                break;
            }
        }
        out.clear();
        *self.buf.borrow_mut() = out;
        r
    }
}

/// A node that writes records to a topic.
struct SinkNode<K, V> {
    topic: String,
    partitioner: Option<Partitioner<K, V>>,
    _t: PhantomData<fn(K, V)>,
}

/// Chooses the partition of a sink record from its key, value and the partition count;
/// `None` leaves it to the producer's default (murmur2 of the key bytes).
pub type Partitioner<K, V> = Arc<dyn Fn(&K, &V) -> Option<i32> + Send + Sync>;

impl<K: Serde, V: Serde> Node<K, V> for SinkNode<K, V> {
    fn process(&self, ctx: &mut Ctx, rec: Record<K, V>) -> Result<()> {
        let partition = self
            .partitioner
            .as_ref()
            .and_then(|p| p(&rec.key, &rec.value));
        let failed = |part: &'static str, e: crate::SerdeError| StreamsError::Serialization {
            topic: self.topic.clone(),
            part,
            reason: e.0,
        };
        let key = rec
            .key
            .serialize_for(&ctx.serde_context(&self.topic, true))
            .map_err(|e| failed("key", e))?;
        let value = rec
            .value
            .serialize_for(&ctx.serde_context(&self.topic, false))
            .map_err(|e| failed("value", e))?;
        ctx.send(
            &self.topic,
            partition,
            Some(key),
            Some(value),
            rec.timestamp,
        );
        if !ctx.headers.is_empty() {
            let headers = ctx.headers.clone();
            if let Some(o) = ctx.out.last_mut() {
                o.headers = headers;
            }
        }
        Ok(())
    }
}

impl<K: Serde, V: Serde> KStream<K, V> {
    pub(crate) fn new(g: GraphRef, node: usize, key_changed: bool) -> Self {
        KStream {
            g,
            node,
            key_changed,
            _t: PhantomData,
        }
    }

    /// Adds a processor node below this stream.
    pub(crate) fn add_node<K2, V2>(
        &self,
        prefix: &str,
        stores: Vec<String>,
        key_changed: bool,
        factory: impl Fn(&mut BuildCtx, &[&AnyNode]) -> Result<AnyNode> + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        K2: Serde,
        V2: Serde,
    {
        let mut g = self.g.borrow_mut();
        let name = g.name(prefix);
        let id = g.add(
            &[self.node],
            NodeDef {
                name,
                children: Vec::new(),
                sources: Vec::new(),
                sink: None,
                stores,
                factory: Arc::new(factory),
            },
        );
        KStream::new(self.g.clone(), id, self.key_changed || key_changed)
    }

    fn step<K2: Serde, V2: Serde>(
        &self,
        prefix: &str,
        key_changed: bool,
        step: impl Fn(&mut Ctx, Record<K, V>, &mut Vec<Record<K2, V2>>) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let step: Step<K, V, K2, V2> = Arc::new(step);
        self.add_node(prefix, Vec::new(), key_changed, move |_ctx, kids| {
            let node: NodeRef<K, V> = std::rc::Rc::new(StepNode {
                step: step.clone(),
                down: Downstream::<K2, V2>::from_built(kids)?,
                buf: Default::default(),
            });
            Ok(erase(node))
        })
    }

    /// Keeps the records for which `pred` holds.
    pub fn filter(&self, pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        self.step("KSTREAM-FILTER", false, move |_, r, out| {
            if pred(&r.key, &r.value) {
                out.push(r)
            }
        })
    }

    /// Drops the records for which `pred` holds.
    pub fn filter_not(
        &self,
        pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.filter(move |k, v| !pred(k, v))
    }

    /// A new key and value for each record (marks the stream for repartitioning).
    pub fn map<K2: Serde, V2: Serde>(
        &self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        self.step("KSTREAM-MAP", true, move |_, r, out| {
            let (key, value) = f(r.key, r.value);
            out.push(Record {
                key,
                value,
                timestamp: r.timestamp,
            })
        })
    }

    /// A new value for each record; the key stays (no repartitioning needed).
    pub fn map_values<V2: Serde>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.step("KSTREAM-MAPVALUES", false, move |_, r, out| {
            let value = f(&r.key, r.value);
            out.push(Record {
                key: r.key,
                value,
                timestamp: r.timestamp,
            })
        })
    }

    /// Zero or more records for each record.
    pub fn flat_map<K2: Serde, V2: Serde, I>(
        &self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        self.step("KSTREAM-FLATMAP", true, move |_, r, out| {
            let ts = r.timestamp;
            out.extend(f(r.key, r.value).into_iter().map(|(key, value)| Record {
                key,
                value,
                timestamp: ts,
            }))
        })
    }

    /// Zero or more values for each record, under the same key.
    pub fn flat_map_values<V2: Serde, I>(
        &self,
        f: impl Fn(&K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        self.step("KSTREAM-FLATMAPVALUES", false, move |_, r, out| {
            let ts = r.timestamp;
            for value in f(&r.key, r.value) {
                out.push(Record {
                    key: r.key.clone(),
                    value,
                    timestamp: ts,
                })
            }
        })
    }

    /// A new key computed from each record (marks the stream for repartitioning).
    pub fn select_key<K2: Serde>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        self.step("KSTREAM-KEY-SELECT", true, move |_, r, out| {
            let key = f(&r.key, &r.value);
            out.push(Record {
                key,
                value: r.value,
                timestamp: r.timestamp,
            })
        })
    }

    /// Calls `f` for each record and passes the record on unchanged.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        self.step("KSTREAM-PEEK", false, move |_, r, out| {
            f(&r.key, &r.value);
            out.push(r)
        })
    }

    /// Calls `f` for each record (a terminal operation).
    pub fn foreach(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        let _: KStream<K, V> = self.step("KSTREAM-FOREACH", false, move |_, r, _| {
            f(&r.key, &r.value);
        });
    }

    /// Splits the stream: each record goes to the first branch whose predicate holds
    /// (Kafka's `split().branch(...)`); records matching none are dropped.
    #[allow(clippy::type_complexity)]
    pub fn branch(
        &self,
        preds: Vec<Box<dyn Fn(&K, &V) -> bool + Send + Sync>>,
    ) -> Vec<KStream<K, V>> {
        let preds: Arc<Vec<Box<dyn Fn(&K, &V) -> bool + Send + Sync>>> = Arc::new(preds);
        let tagged: KStream<K, (i64, V)> = {
            let preds = preds.clone();
            self.add_tagging(preds)
        };
        (0..preds.len())
            .map(|i| {
                let i = i as i64;
                tagged.step("KSTREAM-BRANCHCHILD", false, move |_, r, out| {
                    if r.value.0 == i {
                        out.push(Record {
                            key: r.key,
                            value: r.value.1,
                            timestamp: r.timestamp,
                        })
                    }
                })
            })
            .collect()
    }

    #[allow(clippy::type_complexity)]
    fn add_tagging(
        &self,
        preds: Arc<Vec<Box<dyn Fn(&K, &V) -> bool + Send + Sync>>>,
    ) -> KStream<K, (i64, V)> {
        self.step("KSTREAM-BRANCH", false, move |_, r, out| {
            if let Some(i) = preds.iter().position(|p| p(&r.key, &r.value)) {
                out.push(Record {
                    key: r.key,
                    value: (i as i64, r.value),
                    timestamp: r.timestamp,
                })
            }
        })
    }

    /// The records of both streams.
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let mut g = self.g.borrow_mut();
        let name = g.name("KSTREAM-MERGE");
        let id = g.add(
            &[self.node, other.node],
            NodeDef {
                name,
                children: Vec::new(),
                sources: Vec::new(),
                sink: None,
                stores: Vec::new(),
                factory: Arc::new(|_ctx, kids| {
                    let node: NodeRef<K, V> = std::rc::Rc::new(StepNode {
                        step: Arc::new(|_, r, out| out.push(r)),
                        down: Downstream::<K, V>::from_built(kids)?,
                        buf: Default::default(),
                    });
                    Ok(erase(node))
                }),
            },
        );
        KStream::new(self.g.clone(), id, self.key_changed || other.key_changed)
    }

    /// Writes the stream to a topic, partitioned by the key's bytes.
    pub fn to(&self, topic: &str) {
        self.to_with(topic, None)
    }

    /// Writes the stream to a topic with a partitioner of its own.
    pub fn to_with(&self, topic: &str, partitioner: Option<Partitioner<K, V>>) {
        self.add_sink(TopicRef::User(topic.to_owned()), partitioner);
    }

    pub(crate) fn add_sink(&self, topic: TopicRef, partitioner: Option<Partitioner<K, V>>) {
        let mut g = self.g.borrow_mut();
        let name = g.name("KSTREAM-SINK");
        let t = topic.clone();
        g.add(
            &[self.node],
            NodeDef {
                name,
                children: Vec::new(),
                sources: Vec::new(),
                sink: Some(topic),
                stores: Vec::new(),
                factory: Arc::new(move |ctx, _kids| {
                    let node: NodeRef<K, V> = std::rc::Rc::new(SinkNode {
                        topic: t.resolve(ctx.app_id),
                        partitioner: partitioner.clone(),
                        _t: PhantomData,
                    });
                    Ok(erase(node))
                }),
            },
        );
    }

    /// Sends the stream through an internal repartition topic (`<app>-<name>-repartition`),
    /// so that records with equal keys meet in one task.
    pub fn repartition(&self) -> KStream<K, V> {
        let name = self.g.borrow_mut().name("KSTREAM-REPARTITION");
        self.repartition_as(&name)
    }

    pub(crate) fn repartition_as(&self, name: &str) -> KStream<K, V> {
        let topic = TopicRef::Repartition(name.to_owned());
        self.add_sink(topic.clone(), None);
        crate::builder::add_source::<K, V>(&self.g, vec![topic], None)
    }
}
