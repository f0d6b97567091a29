//! `KTable::group_by` and the grouped table's aggregations: every row update becomes a
//! subtraction of the old row from its old group and an addition of the new row to its
//! new group, sent through a repartition topic; `count`, `reduce` and `aggregate` keep
//! each group's aggregate in a store with a changelog.

use std::rc::Rc;
use std::sync::Arc;

use crate::builder::Materialized;
use crate::context::{Ctx, Record, StoreHandle};
use crate::error::Result;
use crate::kstream::KStream;
use crate::ktable::{decode, Change, KTable};
use crate::node::{erase, Downstream, Node, NodeRef};
use crate::serde::Serde;
use crate::topology::StoreDef;

/// A table regrouped by a new key: `Change { new: Some(v) }` adds a row to its group,
/// `Change { old: Some(v) }` removes one.
pub struct KGroupedTable<K, V> {
    updates: KStream<K, Change<V>>,
}

impl<K: Serde, V: Serde> KTable<K, V> {
    /// Regroups the rows by `f(key, value) -> (group key, group value)`.
    pub fn group_by<K2: Serde, V2: Serde>(
        &self,
        f: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KGroupedTable<K2, V2> {
        let moves = self.updates.flat_map(move |k, c: Change<V>| {
            let mut out = Vec::with_capacity(2);
            if let Some(old) = &c.old {
                let (k2, v2) = f(&k, old);
                out.push((
                    k2,
                    Change {
                        new: None,
                        old: Some(v2),
                    },
                ));
            }
            if let Some(new) = &c.new {
                let (k2, v2) = f(&k, new);
                out.push((
                    k2,
                    Change {
                        new: Some(v2),
                        old: None,
                    },
                ));
            }
            out
        });
        let name = moves.g.borrow_mut().name("KTABLE-GROUPBY");
        KGroupedTable {
            updates: moves.repartition_as(&name),
        }
    }
}

type Step<K, V, A> = Arc<dyn Fn(&K, &V, A) -> A + Send + Sync>;

impl<K: Serde, V: Serde> KGroupedTable<K, V> {
    /// Folds each group's rows: `adder` for a row joining the group, `subtractor` for one
    /// leaving it (Kafka's `KGroupedTable#aggregate`).
    pub fn aggregate<A: Serde>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        adder: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
        subtractor: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
        m: impl Into<Materialized>,
    ) -> Result<KTable<K, A>> {
        let m = m.into();
        self.updates.g.borrow_mut().add_store(StoreDef {
            name: m.name.clone(),
            kind: m.kind,
            logged: m.logged,
            retention_ms: None,
        })?;
        let init: Arc<dyn Fn() -> A + Send + Sync> = Arc::new(init);
        let (add, sub): (Step<K, V, A>, Step<K, V, A>) = (Arc::new(adder), Arc::new(subtractor));
        let name = m.name.clone();
        let updates = self.updates.add_node::<K, Change<A>>(
            "KTABLE-AGGREGATE",
            vec![m.name.clone()],
            false,
            move |ctx, kids| {
                let node: NodeRef<K, Change<V>> = Rc::new(TableAggregateNode {
                    store: ctx.store(&name)?,
                    init: init.clone(),
                    add: add.clone(),
                    sub: sub.clone(),
                    down: Downstream::from_built(kids)?,
                });
                Ok(erase(node))
            },
        );
        Ok(KTable {
            updates,
            store: Some(m.name),
            grace_ms: None,
        })
    }

    /// Rows per group.
    pub fn count(&self, m: impl Into<Materialized>) -> Result<KTable<K, i64>> {
        self.aggregate(|| 0i64, |_, _, n| n + 1, |_, _, n| n - 1, m)
    }
}

struct TableAggregateNode<K, V, A> {
    store: StoreHandle,
    init: Arc<dyn Fn() -> A + Send + Sync>,
    add: Step<K, V, A>,
    sub: Step<K, V, A>,
    down: Downstream<K, Change<A>>,
}

impl<K: Serde, V: Serde, A: Serde> Node<K, Change<V>> for TableAggregateNode<K, V, A> {
    fn process(&self, ctx: &mut Ctx, rec: Record<K, Change<V>>) -> Result<()> {
        let kb = rec.key.to_bytes();
        let old: Option<A> = decode(&self.store.name, self.store.get(&kb)?)?;
        let mut agg = old.clone().unwrap_or_else(|| (self.init)());
        if let Some(v) = &rec.value.old {
            agg = (self.sub)(&rec.key, v, agg);
        }
        if let Some(v) = &rec.value.new {
            agg = (self.add)(&rec.key, v, agg);
        }
        self.store.put(ctx, &kb, Some(&agg.to_bytes()))?;
        self.down.forward(
            ctx,
            Record {
                key: rec.key,
                value: Change {
                    new: Some(agg),
                    old,
                },
                timestamp: rec.timestamp,
            },
        )
    }
}
