//! Grouping and aggregation: `groupByKey` / `groupBy` (through a repartition topic when the
//! key changed), then `count`, `reduce`, `aggregate` into a store with a changelog; and
//! `windowedBy` for tumbling and hopping windows with a grace period.

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::builder::Materialized;
use crate::context::{Ctx, Record, StoreHandle};
use crate::error::Result;
use crate::kstream::KStream;
use crate::ktable::{decode, time_key, Change, KTable};
use crate::node::{erase, Downstream, Node, NodeRef};
use crate::serde::{Serde, Windowed};
use crate::topology::StoreDef;

/// A stream grouped by key, ready to aggregate.
pub struct KGroupedStream<K, V> {
    stream: KStream<K, V>,
}

type Aggregator<K, V, A> = Arc<dyn Fn(&K, V, Option<A>) -> A + Send + Sync>;

impl<K: Serde, V: Serde> KStream<K, V> {
    /// Groups by the current key; repartitions first if an upstream operation changed it.
    pub fn group_by_key(&self) -> KGroupedStream<K, V> {
        let stream = if self.key_changed {
            let name = self.g.borrow_mut().name("KSTREAM-GROUPBY");
            self.repartition_as(&name)
        } else {
            self.clone()
        };
        KGroupedStream { stream }
    }

    /// Groups by a new key (always through a repartition topic).
    pub fn group_by<K2: Serde>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KGroupedStream<K2, V> {
        self.select_key(f).group_by_key()
    }
}

impl<K: Serde, V: Serde> KGroupedStream<K, V> {
    pub(crate) fn clone_grouped(&self) -> KGroupedStream<K, V> {
        KGroupedStream {
            stream: self.stream.clone(),
        }
    }

    pub(crate) fn stream(&self) -> &KStream<K, V> {
        &self.stream
    }

    fn aggregate_with<A: Serde>(
        &self,
        m: Materialized,
        f: Aggregator<K, V, A>,
    ) -> Result<KTable<K, A>> {
        self.stream.g.borrow_mut().add_store(StoreDef {
            name: m.name.clone(),
            kind: m.kind,
            logged: m.logged,
            retention_ms: None,
        })?;
        let name = m.name.clone();
        let updates = self.stream.add_node::<K, Change<A>>(
            "KSTREAM-AGGREGATE",
            vec![m.name.clone()],
            false,
            move |ctx, kids| {
                let node: NodeRef<K, V> = Rc::new(AggregateNode {
                    store: ctx.store(&name)?,
                    f: f.clone(),
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

    /// The number of records per key.
    pub fn count(&self, m: impl Into<Materialized>) -> Result<KTable<K, i64>> {
        self.aggregate_with(
            m.into(),
            Arc::new(|_, _, old: Option<i64>| old.unwrap_or(0) + 1),
        )
    }

    /// Combines the values of a key; the first value is taken as it is.
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        m: impl Into<Materialized>,
    ) -> Result<KTable<K, V>> {
        self.aggregate_with(
            m.into(),
            Arc::new(move |_, v, old| match old {
                Some(o) => reducer(o, v),
                None => v,
            }),
        )
    }

    /// Folds the values of a key into an aggregate that starts at `init()`.
    pub fn aggregate<A: Serde>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        adder: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        m: impl Into<Materialized>,
    ) -> Result<KTable<K, A>> {
        self.aggregate_with(
            m.into(),
            Arc::new(move |k, v, old| adder(k, v, old.unwrap_or_else(&init))),
        )
    }

    /// Aggregates per time window.
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream {
            stream: self.stream.clone(),
            windows,
        }
    }
}

struct AggregateNode<K, V, A> {
    store: StoreHandle,
    f: Aggregator<K, V, A>,
    down: Downstream<K, Change<A>>,
}

impl<K: Serde, V: Serde, A: Serde> Node<K, V> for AggregateNode<K, V, A> {
    fn process(&self, ctx: &mut Ctx, rec: Record<K, V>) -> Result<()> {
        let kb = rec.key.to_bytes();
        let old: Option<A> = decode(&self.store.name, self.store.get(&kb)?)?;
        let new = (self.f)(&rec.key, rec.value, old.clone());
        self.store.put(ctx, &kb, Some(&new.to_bytes()))?;
        self.down.forward(
            ctx,
            Record {
                key: rec.key,
                value: Change {
                    new: Some(new),
                    old,
                },
                timestamp: rec.timestamp,
            },
        )
    }
}

/// Fixed-size time windows: tumbling (`advance == size`) or hopping (`advance < size`),
/// aligned to the epoch, `[start, start + size)`. A record is late, and dropped, once
/// stream time reached its window's end plus `grace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindows {
    pub size_ms: i64,
    pub advance_ms: i64,
    pub grace_ms: i64,
}

impl TimeWindows {
    /// Tumbling windows of `size_ms` with no grace (Kafka's `ofSizeWithNoGrace`).
    pub fn of_size(size_ms: i64) -> TimeWindows {
        let size_ms = size_ms.max(1);
        TimeWindows {
            size_ms,
            advance_ms: size_ms,
            grace_ms: 0,
        }
    }
    /// Hopping windows: a new window every `advance_ms` (clamped to 1..=size).
    pub fn advance_by(mut self, advance_ms: i64) -> TimeWindows {
        self.advance_ms = advance_ms.clamp(1, self.size_ms);
        self
    }
    pub fn grace(mut self, grace_ms: i64) -> TimeWindows {
        self.grace_ms = grace_ms.max(0);
        self
    }
    /// Starts of the windows that contain `ts`, oldest first.
    pub fn windows_for(&self, ts: i64) -> Vec<i64> {
        let mut start = ts - ts.rem_euclid(self.advance_ms);
        let mut out = Vec::new();
        while start > ts - self.size_ms {
            if start >= 0 {
                out.push(start);
            }
            start -= self.advance_ms;
        }
        out.reverse();
        out
    }
}

/// A grouped stream cut into time windows.
pub struct TimeWindowedKStream<K, V> {
    stream: KStream<K, V>,
    windows: TimeWindows,
}

impl<K: Serde, V: Serde> TimeWindowedKStream<K, V> {
    fn aggregate_with<A: Serde>(
        &self,
        m: Materialized,
        f: Aggregator<K, V, A>,
    ) -> Result<KTable<Windowed<K>, A>> {
        let w = self.windows;
        self.stream.g.borrow_mut().add_store(StoreDef {
            name: m.name.clone(),
            kind: m.kind,
            logged: m.logged,
            retention_ms: Some(w.size_ms + w.grace_ms),
        })?;
        let name = m.name.clone();
        let updates = self.stream.add_node::<Windowed<K>, Change<A>>(
            "KSTREAM-WINDOWED-AGGREGATE",
            vec![m.name.clone()],
            false,
            move |ctx, kids| {
                let node: NodeRef<K, V> = Rc::new(WindowAggregateNode {
                    store: ctx.store(&name)?,
                    windows: w,
                    f: f.clone(),
                    down: Downstream::from_built(kids)?,
                    purged_to: std::cell::Cell::new(i64::MIN),
                    _t: PhantomData,
                });
                Ok(erase(node))
            },
        );
        Ok(KTable {
            updates,
            store: Some(m.name),
            grace_ms: Some(w.grace_ms),
        })
    }

    pub fn count(&self, m: impl Into<Materialized>) -> Result<KTable<Windowed<K>, i64>> {
        self.aggregate_with(
            m.into(),
            Arc::new(|_, _, old: Option<i64>| old.unwrap_or(0) + 1),
        )
    }

    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        m: impl Into<Materialized>,
    ) -> Result<KTable<Windowed<K>, V>> {
        self.aggregate_with(
            m.into(),
            Arc::new(move |_, v, old| match old {
                Some(o) => reducer(o, v),
                None => v,
            }),
        )
    }

    pub fn aggregate<A: Serde>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        adder: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        m: impl Into<Materialized>,
    ) -> Result<KTable<Windowed<K>, A>> {
        self.aggregate_with(
            m.into(),
            Arc::new(move |k, v, old| adder(k, v, old.unwrap_or_else(&init))),
        )
    }
}

/// Window store key: window start (sign-flipped BE, so keys sort by start), then the key.
pub(crate) fn window_key(start: i64, key: &[u8]) -> Vec<u8> {
    let mut k = time_key(start).to_vec();
    k.extend_from_slice(key);
    k
}

struct WindowAggregateNode<K, V, A> {
    store: StoreHandle,
    windows: TimeWindows,
    f: Aggregator<K, V, A>,
    down: Downstream<Windowed<K>, Change<A>>,
    purged_to: std::cell::Cell<i64>,
    _t: PhantomData<fn(K)>,
}

impl<K: Serde, V: Serde, A: Serde> WindowAggregateNode<K, V, A> {
    /// Drops windows that can no longer change (local only: the changelog is
    /// `compact,delete` and expires them itself).
    fn purge(&self, stream_time: i64) -> Result<()> {
        let w = &self.windows;
        let cutoff = stream_time - w.size_ms - w.grace_ms;
        if cutoff < self.purged_to.get().saturating_add(w.advance_ms) {
            return Ok(());
        }
        let upper = time_key(cutoff);
        for (k, _) in self.store.range(
            std::ops::Bound::Unbounded,
            std::ops::Bound::Excluded(&upper),
        )? {
            self.store.put_unlogged(&k, None)?;
        }
        self.purged_to.set(cutoff);
        Ok(())
    }
}

impl<K: Serde, V: Serde, A: Serde> Node<K, V> for WindowAggregateNode<K, V, A> {
    fn process(&self, ctx: &mut Ctx, rec: Record<K, V>) -> Result<()> {
        let w = self.windows;
        let kb = rec.key.to_bytes();
        for start in w.windows_for(rec.timestamp) {
            let end = start + w.size_ms;
            if end + w.grace_ms <= ctx.stream_time {
                ctx.dropped_late += 1;
                continue;
            }
            let sk = window_key(start, &kb);
            let old: Option<A> = decode(&self.store.name, self.store.get(&sk)?)?;
            let new = (self.f)(&rec.key, rec.value.clone(), old.clone());
            self.store.put(ctx, &sk, Some(&new.to_bytes()))?;
            self.down.forward(
                ctx,
                Record {
                    key: Windowed {
                        key: rec.key.clone(),
                        start,
                        end,
                    },
                    value: Change {
                        new: Some(new),
                        old,
                    },
                    timestamp: rec.timestamp,
                },
            )?;
        }
        self.purge(ctx.stream_time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_starts() {
        let t = TimeWindows::of_size(10);
        assert_eq!(t.windows_for(0), vec![0]);
        assert_eq!(t.windows_for(19), vec![10]);
        let h = TimeWindows::of_size(10).advance_by(5);
        assert_eq!(h.windows_for(12), vec![5, 10]);
        assert_eq!(h.windows_for(3), vec![0]);
    }
}
