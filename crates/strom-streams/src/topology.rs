//! The topology as the DSL builds it: nodes with factories (instantiated once per task),
//! edges, sources and sinks by topic, state stores; `build` cuts it into sub-topologies
//! (connected parts: a repartition topic separates two) which become the tasks.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::Arc;

use crate::context::{Ctx, StoreHandle, TaskId};
use crate::error::{Result, StreamsError};
use crate::node::AnyNode;
use crate::store::{SharedStore, StoreKind};

/// A topic a node reads or writes: the user's, or one the application owns
/// (named `<application.id>-<name>`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum TopicRef {
    User(String),
    Repartition(String),
}

impl TopicRef {
    pub(crate) fn resolve(&self, app_id: &str) -> String {
        match self {
            TopicRef::User(t) => t.clone(),
            TopicRef::Repartition(n) => format!("{app_id}-{n}-repartition"),
        }
    }
}

/// Something a node wants called as time passes (suppression, processor API punctuators).
pub(crate) trait Punctuate {
    /// Stream time advanced to `ctx.stream_time()`.
    fn on_stream_time(&self, _ctx: &mut Ctx) -> Result<()> {
        Ok(())
    }
    /// Wall-clock tick, `now_ms` since the epoch.
    fn on_wall_clock(&self, _ctx: &mut Ctx, _now_ms: i64) -> Result<()> {
        Ok(())
    }
}

/// What a factory gets while a task is built.
pub(crate) struct BuildCtx<'a> {
    pub(crate) app_id: &'a str,
    pub(crate) stores: &'a BTreeMap<String, StoreHandle>,
    pub(crate) globals: &'a BTreeMap<String, GlobalDef>,
    pub(crate) punctuators: Vec<Rc<dyn Punctuate>>,
}

impl BuildCtx<'_> {
    pub(crate) fn global(&self, name: &str) -> Result<SharedStore> {
        self.globals
            .get(name)
            .map(|g| g.store.clone())
            .ok_or_else(|| StreamsError::Topology(format!("no global table store '{name}'")))
    }

    pub(crate) fn store(&self, name: &str) -> Result<StoreHandle> {
        self.stores.get(name).cloned().ok_or_else(|| {
            StreamsError::Topology(format!("store '{name}' is not connected to this node"))
        })
    }
}

pub(crate) type Factory = Arc<dyn Fn(&mut BuildCtx, &[&AnyNode]) -> Result<AnyNode> + Send + Sync>;

pub(crate) struct NodeDef {
    pub(crate) name: String,
    pub(crate) children: Vec<usize>,
    /// Topics this node reads (source nodes only).
    pub(crate) sources: Vec<TopicRef>,
    /// The topic this node writes (sink nodes only).
    pub(crate) sink: Option<TopicRef>,
    pub(crate) stores: Vec<String>,
    pub(crate) factory: Factory,
}

/// A state store of the topology.
#[derive(Debug, Clone)]
pub struct StoreDef {
    pub name: String,
    pub kind: StoreKind,
    pub logged: bool,
    /// Window stores: how long windows are kept (their changelog is `compact,delete`).
    pub retention_ms: Option<i64>,
}

impl StoreDef {
    pub(crate) fn changelog(&self, app_id: &str) -> Option<String> {
        self.logged
            .then(|| format!("{app_id}-{}-changelog", self.name))
    }
}

/// A global table: every instance reads all partitions of `topic` into `store`
/// (in memory, rebuilt from the topic at each start, the topic being its changelog).
pub(crate) struct GlobalDef {
    pub(crate) topic: String,
    pub(crate) store: SharedStore,
    /// Turns a record's key and value from the topic's format into the store's (they differ
    /// for registry serdes: Confluent framing on the topic, the plain datum in the store).
    pub(crate) to_store: StoreFormat,
}

/// Key and value bytes as read from a topic, re-encoded in the store format.
pub(crate) type StoreFormat = Arc<
    dyn Fn(
            &crate::serde::SerdeContext<'_>,
            &[u8],
            Option<&[u8]>,
        ) -> std::result::Result<(Vec<u8>, Option<Vec<u8>>), crate::error::SerdeError>
        + Send
        + Sync,
>;

#[derive(Default)]
pub(crate) struct Graph {
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) stores: BTreeMap<String, StoreDef>,
    pub(crate) globals: BTreeMap<String, GlobalDef>,
    pub(crate) counter: usize,
}

pub(crate) type GraphRef = Rc<RefCell<Graph>>;

impl Graph {
    /// Kafka's generated names: `KSTREAM-FILTER-0000000003`.
    pub(crate) fn name(&mut self, prefix: &str) -> String {
        let n = format!("{prefix}-{:010}", self.counter);
        self.counter += 1;
        n
    }

    pub(crate) fn add(&mut self, parents: &[usize], def: NodeDef) -> usize {
        let id = self.nodes.len();
        self.nodes.push(def);
        for &p in parents {
            self.nodes[p].children.push(id);
        }
        id
    }

    pub(crate) fn add_store(&mut self, def: StoreDef) -> Result<()> {
        if self.stores.contains_key(&def.name) {
            return Err(StreamsError::Topology(format!(
                "store '{}' is defined twice",
                def.name
            )));
        }
        self.stores.insert(def.name.clone(), def);
        Ok(())
    }
}

/// One connected part of the topology; its tasks are its partitions.
#[derive(Debug, Clone)]
pub struct Subtopology {
    pub id: usize,
    pub(crate) nodes: Vec<usize>,
    pub(crate) sources: Vec<TopicRef>,
    pub(crate) sinks: Vec<TopicRef>,
    pub stores: Vec<String>,
}

/// A built topology, shared by every thread of an application.
pub struct Topology {
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) stores: BTreeMap<String, StoreDef>,
    pub(crate) globals: BTreeMap<String, GlobalDef>,
    pub(crate) subtopologies: Vec<Subtopology>,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Topology {
    pub(crate) fn new(graph: Graph) -> Result<Topology> {
        let n = graph.nodes.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn find(p: &mut [usize], x: usize) -> usize {
            let mut r = x;
            while p[r] != r {
                r = p[r];
            }
            p[x] = r;
            r
        }
        let union = |p: &mut Vec<usize>, a: usize, b: usize| {
            let (ra, rb) = (find(p, a), find(p, b));
            if ra != rb {
                p[ra.max(rb)] = ra.min(rb);
            }
        };
        for (i, node) in graph.nodes.iter().enumerate() {
            for &c in &node.children {
                union(&mut parent, i, c);
            }
        }
        // Nodes that share a store belong to the same task (e.g. a table and its joiners).
        let mut by_store: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, node) in graph.nodes.iter().enumerate() {
            for s in &node.stores {
                match by_store.get(s.as_str()) {
                    Some(&j) => union(&mut parent, i, j),
                    None => {
                        by_store.insert(s, i);
                    }
                }
            }
        }
        let mut groups: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for i in 0..n {
            let r = find(&mut parent, i);
            groups.entry(r).or_default().push(i);
        }
        let mut subtopologies = Vec::new();
        for (id, nodes) in groups.into_values().enumerate() {
            let mut sources = BTreeSet::new();
            let mut sinks = BTreeSet::new();
            let mut stores = BTreeSet::new();
            for &i in &nodes {
                sources.extend(graph.nodes[i].sources.iter().cloned());
                sinks.extend(graph.nodes[i].sink.iter().cloned());
                stores.extend(graph.nodes[i].stores.iter().cloned());
            }
            if sources.is_empty() {
                return Err(StreamsError::Topology(format!(
                    "node '{}' is not connected to any source topic",
                    graph.nodes[nodes[0]].name
                )));
            }
            subtopologies.push(Subtopology {
                id,
                nodes,
                sources: sources.into_iter().collect(),
                sinks: sinks.into_iter().collect(),
                stores: stores.into_iter().collect(),
            });
        }
        let mut seen = BTreeMap::new();
        for s in &subtopologies {
            for t in &s.sources {
                if let Some(other) = seen.insert(t.clone(), s.id) {
                    return Err(StreamsError::Topology(format!(
                        "topic {t:?} is read by sub-topologies {other} and {}",
                        s.id
                    )));
                }
            }
        }
        Ok(Topology {
            nodes: graph.nodes,
            stores: graph.stores,
            globals: graph.globals,
            subtopologies,
        })
    }

    pub fn subtopologies(&self) -> &[Subtopology] {
        &self.subtopologies
    }

    /// A text description in the spirit of Kafka's `Topology#describe`.
    pub fn describe(&self) -> String {
        let mut out = String::from("Topologies:\n");
        for s in &self.subtopologies {
            out.push_str(&format!("  Sub-topology: {}\n", s.id));
            for &i in &s.nodes {
                let node = &self.nodes[i];
                let kids: Vec<&str> = node
                    .children
                    .iter()
                    .map(|&c| self.nodes[c].name.as_str())
                    .collect();
                out.push_str(&format!("    {} --> {:?}", node.name, kids));
                if !node.sources.is_empty() {
                    out.push_str(&format!(" (topics: {:?})", node.sources));
                }
                if let Some(t) = &node.sink {
                    out.push_str(&format!(" (topic: {t:?})"));
                }
                if !node.stores.is_empty() {
                    out.push_str(&format!(" (stores: {:?})", node.stores));
                }
                out.push('\n');
            }
        }
        out
    }

    /// The sub-topology that reads `topic` (resolved name).
    pub(crate) fn subtopology_of(&self, app_id: &str, topic: &str) -> Option<usize> {
        self.subtopologies
            .iter()
            .find(|s| s.sources.iter().any(|t| t.resolve(app_id) == topic))
            .map(|s| s.id)
    }
}

/// Built nodes of one task: the source node of each input topic and the punctuators.
pub(crate) struct BuiltTask {
    pub(crate) sources: BTreeMap<String, Rc<dyn crate::source::RawSource>>,
    pub(crate) punctuators: Vec<Rc<dyn Punctuate>>,
}

pub(crate) fn build_task(
    topology: &Topology,
    app_id: &str,
    task: TaskId,
    stores: &BTreeMap<String, StoreHandle>,
) -> Result<BuiltTask> {
    let sub = &topology.subtopologies[task.subtopology];
    let mut ctx = BuildCtx {
        app_id,
        stores,
        globals: &topology.globals,
        punctuators: Vec::new(),
    };
    let mut built: BTreeMap<usize, AnyNode> = BTreeMap::new();
    // Children have larger ids than their parents, so build from the end.
    for &i in sub.nodes.iter().rev() {
        let def = &topology.nodes[i];
        let kids: Vec<&AnyNode> = def
            .children
            .iter()
            .map(|c| {
                built.get(c).ok_or_else(|| {
                    StreamsError::Topology(format!("child {c} of '{}' not built", def.name))
                })
            })
            .collect::<Result<_>>()?;
        let node = (def.factory)(&mut ctx, &kids)?;
        built.insert(i, node);
    }
    let mut sources = BTreeMap::new();
    for &i in &sub.nodes {
        let def = &topology.nodes[i];
        if def.sources.is_empty() {
            continue;
        }
        let node = built
            .get(&i)
            .and_then(|n| n.downcast_ref::<Rc<dyn crate::source::RawSource>>())
            .cloned()
            .ok_or_else(|| StreamsError::Topology(format!("'{}' is not a source", def.name)))?;
        for t in &def.sources {
            sources.insert(t.resolve(app_id), node.clone());
        }
    }
    Ok(BuiltTask {
        sources,
        punctuators: ctx.punctuators,
    })
}

/// Opens the stores of a task (without restoring them).
pub(crate) fn store_handles(
    topology: &Topology,
    app_id: &str,
    task: TaskId,
    open: &mut dyn FnMut(&StoreDef) -> Result<SharedStore>,
) -> Result<BTreeMap<String, StoreHandle>> {
    let mut out = BTreeMap::new();
    for name in &topology.subtopologies[task.subtopology].stores {
        let def = topology
            .stores
            .get(name)
            .ok_or_else(|| StreamsError::Topology(format!("store '{name}' is not defined")))?;
        out.insert(
            name.clone(),
            StoreHandle {
                name: name.clone(),
                store: open(def)?,
                changelog: def.changelog(app_id),
                partition: task.partition,
            },
        );
    }
    Ok(out)
}
