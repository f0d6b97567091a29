//! Joins: stream-table (inner, left: each stream record looks up the table's current
//! value) and table-table (inner, left, outer: an update on either side recomputes the
//! row from both stores). The joined inputs must be co-partitioned; sharing the stores puts
//! both sides in one sub-topology, so one task holds the same partition of both.

use std::rc::Rc;
use std::sync::Arc;

use crate::context::{Ctx, Record, StoreHandle};
use crate::error::{Result, StreamsError};
use crate::kstream::KStream;
use crate::ktable::{decode, Change, KTable};
use crate::node::{erase, Downstream, Node, NodeRef};
use crate::serde::Serde;

type StreamJoiner<V, VT, VR> = Arc<dyn Fn(&V, Option<&VT>) -> Option<VR> + Send + Sync>;

struct StreamTableJoinNode<K, V, VT, VR> {
    table: StoreHandle,
    joiner: StreamJoiner<V, VT, VR>,
    down: Downstream<K, VR>,
    _t: std::marker::PhantomData<fn(VT)>,
}

impl<K: Serde, V: Serde, VT: Serde, VR: Serde> Node<K, V> for StreamTableJoinNode<K, V, VT, VR> {
    fn process(&self, ctx: &mut Ctx, rec: Record<K, V>) -> Result<()> {
        let other: Option<VT> = decode(&self.table.name, self.table.get(&rec.key.to_bytes())?)?;
        if let Some(value) = (self.joiner)(&rec.value, other.as_ref()) {
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

fn table_store<K, V>(t: &KTable<K, V>, op: &str) -> Result<String> {
    t.store.clone().ok_or_else(|| {
        StreamsError::Topology(format!(
            "{op} needs a materialized table (from a topic or an aggregation)"
        ))
    })
}

impl<K: Serde, V: Serde> KStream<K, V> {
    fn stream_table<VT: Serde, VR: Serde>(
        &self,
        table: &KTable<K, VT>,
        op: &str,
        joiner: StreamJoiner<V, VT, VR>,
    ) -> Result<KStream<K, VR>> {
        let store = table_store(table, op)?;
        let me = if self.key_changed {
            self.repartition()
        } else {
            self.clone()
        };
        let s = store.clone();
        Ok(
            me.add_node::<K, VR>("KSTREAM-JOIN", vec![store], false, move |ctx, kids| {
                let node: NodeRef<K, V> = Rc::new(StreamTableJoinNode {
                    table: ctx.store(&s)?,
                    joiner: joiner.clone(),
                    down: Downstream::from_built(kids)?,
                    _t: std::marker::PhantomData,
                });
                Ok(erase(node))
            }),
        )
    }

    /// Each record joined with the table's current value of its key; records whose key
    /// the table lacks are dropped.
    pub fn join<VT: Serde, VR: Serde>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
    ) -> Result<KStream<K, VR>> {
        self.stream_table(table, "join", Arc::new(move |v, t| t.map(|t| joiner(v, t))))
    }

    /// Like `join`, but a record whose key the table lacks is joined with `None`.
    pub fn left_join<VT: Serde, VR: Serde>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> Result<KStream<K, VR>> {
        self.stream_table(table, "left_join", Arc::new(move |v, t| Some(joiner(v, t))))
    }
}

/// Which rows a table-table join keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JoinKind {
    Inner,
    Left,
    Outer,
}

type TableJoiner<V, VO, VR> = Arc<dyn Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync>;

fn combine<V, VO, VR>(
    kind: JoinKind,
    joiner: &TableJoiner<V, VO, VR>,
    l: Option<&V>,
    r: Option<&VO>,
) -> Option<VR> {
    let keep = match kind {
        JoinKind::Inner => l.is_some() && r.is_some(),
        JoinKind::Left => l.is_some(),
        JoinKind::Outer => l.is_some() || r.is_some(),
    };
    keep.then(|| joiner(l, r))
}

fn forward_change<K: Serde, VR: Serde>(
    down: &Downstream<K, Change<VR>>,
    ctx: &mut Ctx,
    key: K,
    new: Option<VR>,
    old: Option<VR>,
    timestamp: i64,
) -> Result<()> {
    if new.is_none() && old.is_none() {
        return Ok(());
    }
    down.forward(
        ctx,
        Record {
            key,
            value: Change { new, old },
            timestamp,
        },
    )
}

/// The left table changed: the right side's value comes from its store.
struct LeftSide<K, V, VO, VR> {
    other: StoreHandle,
    kind: JoinKind,
    joiner: TableJoiner<V, VO, VR>,
    down: Downstream<K, Change<VR>>,
}

impl<K: Serde, V: Serde, VO: Serde, VR: Serde> Node<K, Change<V>> for LeftSide<K, V, VO, VR> {
    fn process(&self, ctx: &mut Ctx, rec: Record<K, Change<V>>) -> Result<()> {
        let r: Option<VO> = decode(&self.other.name, self.other.get(&rec.key.to_bytes())?)?;
        let new = combine(self.kind, &self.joiner, rec.value.new.as_ref(), r.as_ref());
        let old = combine(self.kind, &self.joiner, rec.value.old.as_ref(), r.as_ref());
        forward_change(&self.down, ctx, rec.key, new, old, rec.timestamp)
    }
}

/// The right table changed: the left side's value comes from its store.
struct RightSide<K, V, VO, VR> {
    other: StoreHandle,
    kind: JoinKind,
    joiner: TableJoiner<V, VO, VR>,
    down: Downstream<K, Change<VR>>,
}

impl<K: Serde, V: Serde, VO: Serde, VR: Serde> Node<K, Change<VO>> for RightSide<K, V, VO, VR> {
    fn process(&self, ctx: &mut Ctx, rec: Record<K, Change<VO>>) -> Result<()> {
        let l: Option<V> = decode(&self.other.name, self.other.get(&rec.key.to_bytes())?)?;
        let new = combine(self.kind, &self.joiner, l.as_ref(), rec.value.new.as_ref());
        let old = combine(self.kind, &self.joiner, l.as_ref(), rec.value.old.as_ref());
        forward_change(&self.down, ctx, rec.key, new, old, rec.timestamp)
    }
}

impl<K: Serde, V: Serde> KTable<K, V> {
    fn table_join<VO: Serde, VR: Serde>(
        &self,
        other: &KTable<K, VO>,
        kind: JoinKind,
        joiner: TableJoiner<V, VO, VR>,
    ) -> Result<KTable<K, VR>> {
        let left_store = table_store(self, "table join")?;
        let right_store = table_store(other, "table join")?;
        let stores = vec![left_store.clone(), right_store.clone()];
        let (j1, rs) = (joiner.clone(), right_store.clone());
        let from_left = self.updates.add_node::<K, Change<VR>>(
            "KTABLE-JOINTHIS",
            stores.clone(),
            false,
            move |ctx, kids| {
                let node: NodeRef<K, Change<V>> = Rc::new(LeftSide {
                    other: ctx.store(&rs)?,
                    kind,
                    joiner: j1.clone(),
                    down: Downstream::from_built(kids)?,
                });
                Ok(erase(node))
            },
        );
        let ls = left_store.clone();
        let from_right = other.updates.add_node::<K, Change<VR>>(
            "KTABLE-JOINOTHER",
            stores,
            false,
            move |ctx, kids| {
                let node: NodeRef<K, Change<VO>> = Rc::new(RightSide {
                    other: ctx.store(&ls)?,
                    kind,
                    joiner: joiner.clone(),
                    down: Downstream::from_built(kids)?,
                });
                Ok(erase(node))
            },
        );
        Ok(KTable {
            updates: from_left.merge(&from_right),
            store: None,
            grace_ms: None,
        })
    }

    /// Rows whose key is in both tables.
    pub fn join<VO: Serde, VR: Serde>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
    ) -> Result<KTable<K, VR>> {
        self.table_join(
            other,
            JoinKind::Inner,
            Arc::new(move |l, r| match (l, r) {
                (Some(l), Some(r)) => joiner(l, r),
                // combine() calls the joiner of an inner join only with both sides.
                _ => unreachable!("inner join called without both sides"),
            }),
        )
    }

    /// Rows of this table, with the other's value where it has the key.
    pub fn left_join<VO: Serde, VR: Serde>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> Result<KTable<K, VR>> {
        self.table_join(
            other,
            JoinKind::Left,
            Arc::new(move |l, r| match l {
                Some(l) => joiner(l, r),
                None => unreachable!("left join called without the left side"),
            }),
        )
    }

    /// Rows of either table.
    pub fn outer_join<VO: Serde, VR: Serde>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
    ) -> Result<KTable<K, VR>> {
        self.table_join(other, JoinKind::Outer, Arc::new(joiner))
    }
}
