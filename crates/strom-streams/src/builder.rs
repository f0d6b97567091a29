//! `StreamsBuilder`: where a topology starts (streams and tables from topics) and
//! `build()` that turns it into a [`Topology`].

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::error::Result;
use crate::kstream::KStream;
use crate::ktable::KTable;
use crate::node::Downstream;
use crate::serde::Serde;
use crate::source::{RawSource, SourceNode, SourceOut, TimestampExtractor};
use crate::store::StoreKind;
use crate::topology::{Graph, GraphRef, NodeDef, TopicRef, Topology};

/// How a table or aggregation keeps its state: a store name, on disk or in memory, with
/// or without a changelog topic.
#[derive(Debug, Clone)]
pub struct Materialized {
    pub name: String,
    pub kind: StoreKind,
    pub logged: bool,
}

impl Materialized {
    /// A persistent (redb) store with a changelog: Kafka's default.
    pub fn persistent(name: &str) -> Self {
        Materialized {
            name: name.to_owned(),
            kind: StoreKind::Persistent,
            logged: true,
        }
    }
    pub fn in_memory(name: &str) -> Self {
        Materialized {
            name: name.to_owned(),
            kind: StoreKind::InMemory,
            logged: true,
        }
    }
    /// No changelog: the store is lost with its task (only for state that can be rebuilt).
    pub fn without_logging(mut self) -> Self {
        self.logged = false;
        self
    }
}

impl From<&str> for Materialized {
    fn from(name: &str) -> Self {
        Materialized::persistent(name)
    }
}

/// Builds a topology with the DSL.
#[derive(Clone, Default)]
pub struct StreamsBuilder {
    pub(crate) g: GraphRef,
}

impl std::fmt::Debug for StreamsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsBuilder").finish_non_exhaustive()
    }
}

impl StreamsBuilder {
    pub fn new() -> Self {
        StreamsBuilder {
            g: Rc::new(RefCell::new(Graph::default())),
        }
    }

    /// A stream of the records of `topic`.
    pub fn stream<K: Serde, V: Serde>(&self, topic: &str) -> KStream<K, V> {
        add_source(&self.g, vec![TopicRef::User(topic.to_owned())], None)
    }

    /// A stream of several topics (co-partitioned or not: they are one source).
    pub fn streams<K: Serde, V: Serde>(&self, topics: &[&str]) -> KStream<K, V> {
        let topics = topics
            .iter()
            .map(|t| TopicRef::User(t.to_string()))
            .collect();
        add_source(&self.g, topics, None)
    }

    /// A stream whose event time comes from `extractor` instead of record timestamps.
    pub fn stream_with_timestamps<K: Serde, V: Serde>(
        &self,
        topic: &str,
        extractor: TimestampExtractor,
    ) -> KStream<K, V> {
        add_source(
            &self.g,
            vec![TopicRef::User(topic.to_owned())],
            Some(extractor),
        )
    }

    /// A table of the latest value per key of `topic` (a null value deletes the key).
    pub fn table<K: Serde, V: Serde>(
        &self,
        topic: &str,
        materialized: impl Into<Materialized>,
    ) -> Result<KTable<K, V>> {
        let m = materialized.into();
        let source: KStream<K, Option<V>> =
            add_table_source::<K, V>(&self.g, TopicRef::User(topic.to_owned()));
        KTable::from_updates(&source, m)
    }

    /// Finishes the topology.
    pub fn build(self) -> Result<Topology> {
        let g = std::mem::take(&mut *self.g.borrow_mut());
        Topology::new(g)
    }
}

/// Adds a source node reading `topics` as a stream (null values skipped).
pub(crate) fn add_source<K: Serde, V: Serde>(
    g: &GraphRef,
    topics: Vec<TopicRef>,
    extractor: Option<TimestampExtractor>,
) -> KStream<K, V> {
    let factory: crate::topology::Factory = Arc::new(move |_ctx, kids| {
        let node: Rc<dyn RawSource> = Rc::new(SourceNode::<K, V> {
            out: SourceOut::Stream(Downstream::from_built(kids)?),
            extractor: extractor.clone(),
        });
        Ok(Box::new(node))
    });
    source_node(g, topics, factory)
}

/// Adds a source node reading `topic` as table updates (a null value is `None`).
pub(crate) fn add_table_source<K: Serde, V: Serde>(
    g: &GraphRef,
    topic: TopicRef,
) -> KStream<K, Option<V>> {
    let factory: crate::topology::Factory = Arc::new(move |_ctx, kids| {
        let node: Rc<dyn RawSource> = Rc::new(SourceNode::<K, V> {
            out: SourceOut::Table(Downstream::from_built(kids)?),
            extractor: None,
        });
        Ok(Box::new(node))
    });
    source_node(g, vec![topic], factory)
}

fn source_node<K, V>(
    g: &GraphRef,
    topics: Vec<TopicRef>,
    factory: crate::topology::Factory,
) -> KStream<K, V> {
    let mut gm = g.borrow_mut();
    let name = gm.name("KSTREAM-SOURCE");
    let id = gm.add(
        &[],
        NodeDef {
            name,
            children: Vec::new(),
            sources: topics,
            sink: None,
            stores: Vec::new(),
            factory,
        },
    );
    KStream {
        g: g.clone(),
        node: id,
        key_changed: false,
        _t: PhantomData,
    }
}
