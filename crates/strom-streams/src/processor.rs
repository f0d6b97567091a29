//! The processor API, for what the DSL cannot express: a [`Processor`] gets each record,
//! reads and writes the stores it was connected to, forwards any number of records, and
//! schedules punctuations on stream time or wall-clock time.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use crate::builder::StreamsBuilder;
use crate::context::{Ctx, Record, StoreHandle};
use crate::error::{store_err, Result, StreamsError};
use crate::kstream::KStream;
use crate::node::{erase, Downstream, Node, NodeRef};
use crate::serde::Serde;
use crate::store::StoreKind;
use crate::topology::{Punctuate, StoreDef};

/// Kafka's `PunctuationType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunctuationType {
    /// Fires as the task's stream time (record timestamps) passes each interval.
    StreamTime,
    /// Fires on the machine's clock (checked every `punctuate_interval` of the config).
    WallClockTime,
}

/// A processor of records with key `K` and value `V` that forwards `KO`, `VO`.
pub trait Processor<K, V, KO, VO> {
    /// Called once per task before the first record or punctuation.
    fn init(&mut self, _ctx: &mut ProcessorContext<'_, KO, VO>) -> Result<()> {
        Ok(())
    }
    fn process(&mut self, ctx: &mut ProcessorContext<'_, KO, VO>, rec: Record<K, V>) -> Result<()>;
    /// A scheduled punctuation fired at `time` (stream time or wall-clock ms).
    fn punctuate(
        &mut self,
        _ctx: &mut ProcessorContext<'_, KO, VO>,
        _kind: PunctuationType,
        _time: i64,
    ) -> Result<()> {
        Ok(())
    }
}

struct Schedule {
    kind: PunctuationType,
    interval_ms: i64,
    next: i64,
}

/// What a processor can do while it runs.
pub struct ProcessorContext<'a, KO, VO> {
    ctx: &'a mut Ctx,
    stores: &'a BTreeMap<String, StoreHandle>,
    out: Vec<Record<KO, VO>>,
    schedules: &'a RefCell<Vec<Schedule>>,
}

impl<KO, VO> ProcessorContext<'_, KO, VO> {
    /// Passes a record to the next nodes.
    pub fn forward(&mut self, rec: Record<KO, VO>) {
        self.out.push(rec);
    }
    pub fn stream_time(&self) -> i64 {
        self.ctx.stream_time()
    }
    /// Timestamp of the record being processed.
    pub fn timestamp(&self) -> i64 {
        self.ctx.timestamp
    }
    pub fn task(&self) -> &Ctx {
        self.ctx
    }
    /// The task's context, mutable: [`Ctx::send`] writes records of the processor's own
    /// making to a topic, null keys and values (deletes) included, which the DSL's sinks
    /// do not write.
    pub fn task_mut(&mut self) -> &mut Ctx {
        self.ctx
    }
    /// Asks for `punctuate` every `interval_ms` of stream or wall-clock time.
    pub fn schedule(&mut self, interval_ms: i64, kind: PunctuationType) {
        self.schedules.borrow_mut().push(Schedule {
            kind,
            interval_ms: interval_ms.max(1),
            next: i64::MIN,
        });
    }

    fn store(&self, name: &str) -> Result<&StoreHandle> {
        self.stores.get(name).ok_or_else(|| {
            StreamsError::Topology(format!("store '{name}' is not connected to this processor"))
        })
    }

    /// Reads a key of a connected key-value store.
    pub fn get<K: Serde, V: Serde>(&self, store: &str, key: &K) -> Result<Option<V>> {
        let s = self.store(store)?;
        s.get(&key.to_bytes())?
            .map(|b| V::from_bytes(&b).map_err(|e| store_err(store, e)))
            .transpose()
    }

    /// Writes (`None`: deletes) a key of a connected store; the change is logged.
    pub fn put<K: Serde, V: Serde>(
        &mut self,
        store: &str,
        key: &K,
        value: Option<&V>,
    ) -> Result<()> {
        let s = self.store(store)?.clone();
        let vb = value.map(Serde::to_bytes);
        s.put(self.ctx, &key.to_bytes(), vb.as_deref())
    }

    /// Every entry of a connected store, in key-byte order.
    pub fn all<K: Serde, V: Serde>(&self, store: &str) -> Result<Vec<(K, V)>> {
        let s = self.store(store)?;
        s.range(std::ops::Bound::Unbounded, std::ops::Bound::Unbounded)?
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    K::from_bytes(&k).map_err(|e| store_err(store, e))?,
                    V::from_bytes(&v).map_err(|e| store_err(store, e))?,
                ))
            })
            .collect()
    }
}

type Supplier<K, V, KO, VO> = Arc<dyn Fn() -> Box<dyn Processor<K, V, KO, VO>> + Send + Sync>;

struct ProcessorNode<K, V, KO, VO> {
    inner: RefCell<Box<dyn Processor<K, V, KO, VO>>>,
    stores: BTreeMap<String, StoreHandle>,
    schedules: RefCell<Vec<Schedule>>,
    initialized: Cell<bool>,
    down: Downstream<KO, VO>,
}

impl<K, V, KO: Clone + 'static, VO: Clone + 'static> ProcessorNode<K, V, KO, VO> {
    fn run(
        &self,
        ctx: &mut Ctx,
        f: impl FnOnce(
            &mut dyn Processor<K, V, KO, VO>,
            &mut ProcessorContext<'_, KO, VO>,
        ) -> Result<()>,
    ) -> Result<()> {
        let mut pc = ProcessorContext {
            ctx,
            stores: &self.stores,
            out: Vec::new(),
            schedules: &self.schedules,
        };
        let mut p = self.inner.borrow_mut();
        if !self.initialized.get() {
            self.initialized.set(true);
            p.init(&mut pc)?;
        }
        f(p.as_mut(), &mut pc)?;
        let out = std::mem::take(&mut pc.out);
        drop(p);
        for r in out {
            self.down.forward(ctx, r)?;
        }
        Ok(())
    }

    fn fire(&self, ctx: &mut Ctx, kind: PunctuationType, now: i64) -> Result<()> {
        if !self.initialized.get() {
            self.run(ctx, |_, _| Ok(()))?;
        }
        let due = {
            let mut s = self.schedules.borrow_mut();
            let mut due = false;
            for sch in s.iter_mut().filter(|s| s.kind == kind) {
                if sch.next == i64::MIN {
                    sch.next = now - now.rem_euclid(sch.interval_ms) + sch.interval_ms;
                } else if now >= sch.next {
                    due = true;
                    sch.next = now - now.rem_euclid(sch.interval_ms) + sch.interval_ms;
                }
            }
            due
        };
        if due {
            self.run(ctx, |p, pc| p.punctuate(pc, kind, now))?;
        }
        Ok(())
    }
}

impl<K, V, KO: Clone + 'static, VO: Clone + 'static> Node<K, V> for ProcessorNode<K, V, KO, VO> {
    fn process(&self, ctx: &mut Ctx, rec: Record<K, V>) -> Result<()> {
        self.run(ctx, |p, pc| p.process(pc, rec))
    }
}

impl<K, V, KO: Clone + 'static, VO: Clone + 'static> Punctuate for ProcessorNode<K, V, KO, VO> {
    fn on_stream_time(&self, ctx: &mut Ctx) -> Result<()> {
        let now = ctx.stream_time;
        self.fire(ctx, PunctuationType::StreamTime, now)
    }
    fn on_wall_clock(&self, ctx: &mut Ctx, now_ms: i64) -> Result<()> {
        self.fire(ctx, PunctuationType::WallClockTime, now_ms)
    }
}

impl StreamsBuilder {
    /// Adds a key-value store for processors (`KStream::process` names it to connect it).
    pub fn add_state_store(&self, name: &str, kind: StoreKind, logged: bool) -> Result<()> {
        self.g.borrow_mut().add_store(StoreDef {
            name: name.to_owned(),
            kind,
            logged,
            retention_ms: None,
        })
    }
}

impl<K: Serde, V: Serde> KStream<K, V> {
    /// Runs a processor (one instance per task from `supplier`) connected to `stores`.
    pub fn process<KO: Serde, VO: Serde>(
        &self,
        supplier: impl Fn() -> Box<dyn Processor<K, V, KO, VO>> + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<KO, VO> {
        let supplier: Supplier<K, V, KO, VO> = Arc::new(supplier);
        let names: Vec<String> = stores.iter().map(|s| s.to_string()).collect();
        let n2 = names.clone();
        self.add_node::<KO, VO>("KSTREAM-PROCESSOR", names, true, move |ctx, kids| {
            let mut stores = BTreeMap::new();
            for n in &n2 {
                stores.insert(n.clone(), ctx.store(n)?);
            }
            let node = Rc::new(ProcessorNode {
                inner: RefCell::new(supplier()),
                stores,
                schedules: RefCell::new(Vec::new()),
                initialized: Cell::new(false),
                down: Downstream::from_built(kids)?,
            });
            ctx.punctuators.push(node.clone());
            let node: NodeRef<K, V> = node;
            Ok(erase(node))
        })
    }
}
