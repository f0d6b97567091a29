//! Sliding windows (Kafka's `SlidingWindows`): two records share a window when their
//! timestamps differ by at most `time_difference`. Each record defines its left window
//! `[t - d, t]`, and a right window `[t + 1, t + 1 + d]` exists while records fall in it;
//! windows are inclusive at both ends. The store keeps a key's raw records for `d + grace`;
//! a record recomputes every window it falls in, so aggregates need only an adder.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;

use crate::builder::Materialized;
use crate::context::{Ctx, Record, StoreHandle};
use crate::error::{store_err, Result};
use crate::grouped::KGroupedStream;
use crate::ktable::{time_key, Change, KTable};
use crate::node::{erase, Downstream, Node, NodeRef};
use crate::serde::{Serde, Windowed};
use crate::topology::StoreDef;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlidingWindows {
    pub time_difference_ms: i64,
    pub grace_ms: i64,
}

impl SlidingWindows {
    pub fn of_time_difference_and_grace(time_difference_ms: i64, grace_ms: i64) -> Self {
        SlidingWindows {
            time_difference_ms: time_difference_ms.max(0),
            grace_ms: grace_ms.max(0),
        }
    }
}

pub struct SlidingWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SlidingWindows,
}

impl<K: Serde, V: Serde> KGroupedStream<K, V> {
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> SlidingWindowedKStream<K, V> {
        SlidingWindowedKStream {
            grouped: self.clone_grouped(),
            windows,
        }
    }
}

type Adder<K, V, A> = Arc<dyn Fn(&K, &V, A) -> A + Send + Sync>;

impl<K: Serde, V: Serde> SlidingWindowedKStream<K, V> {
    /// Folds the records of each window (`Windowed::end` is inclusive here).
    pub fn aggregate<A: Serde>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        adder: impl Fn(&K, &V, A) -> A + Send + Sync + 'static,
        m: impl Into<Materialized>,
    ) -> Result<KTable<Windowed<K>, A>> {
        let m = m.into();
        let w = self.windows;
        let stream = self.grouped.stream();
        stream.g.borrow_mut().add_store(StoreDef {
            name: m.name.clone(),
            kind: m.kind,
            logged: m.logged,
            retention_ms: Some(2 * w.time_difference_ms + w.grace_ms + 1),
        })?;
        let init: Arc<dyn Fn() -> A + Send + Sync> = Arc::new(init);
        let adder: Adder<K, V, A> = Arc::new(adder);
        let name = m.name.clone();
        let updates = stream.add_node::<Windowed<K>, Change<A>>(
            "KSTREAM-SLIDINGWINDOW-AGGREGATE",
            vec![m.name.clone()],
            false,
            move |ctx, kids| {
                let node: NodeRef<K, V> = Rc::new(SlidingNode {
                    store: ctx.store(&name)?,
                    w,
                    init: init.clone(),
                    adder: adder.clone(),
                    down: Downstream::from_built(kids)?,
                    purged_to: std::cell::Cell::new(i64::MIN),
                });
                Ok(erase(node))
            },
        );
        Ok(KTable {
            updates,
            store: Some(m.name),
            // A window [s, e] takes records until stream time passes e + grace.
            grace_ms: Some(w.grace_ms + 1),
        })
    }

    pub fn count(&self, m: impl Into<Materialized>) -> Result<KTable<Windowed<K>, i64>> {
        self.aggregate(|| 0i64, |_, _, n| n + 1, m)
    }
}

/// Record key in the store: key length (4 bytes BE), key, timestamp (sign-flipped BE),
/// input offset (8 bytes BE, so equal timestamps stay apart).
fn record_key(kb: &[u8], ts: i64, offset: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(kb.len() + 20);
    k.extend_from_slice(&(kb.len() as u32).to_be_bytes());
    k.extend_from_slice(kb);
    k.extend_from_slice(&time_key(ts));
    k.extend_from_slice(&offset.to_be_bytes());
    k
}

struct SlidingNode<K, V, A> {
    store: StoreHandle,
    w: SlidingWindows,
    init: Arc<dyn Fn() -> A + Send + Sync>,
    adder: Adder<K, V, A>,
    down: Downstream<Windowed<K>, Change<A>>,
    purged_to: std::cell::Cell<i64>,
}

impl<K: Serde, V: Serde, A: Serde> SlidingNode<K, V, A> {
    /// The key's records with timestamps in `[from, to]`: (timestamp, offset, value).
    fn records(&self, kb: &[u8], from: i64, to: i64) -> Result<Vec<(i64, i64, V)>> {
        let lo = record_key(kb, from, i64::MIN);
        let hi = record_key(kb, to, i64::MAX);
        let n = 4 + kb.len();
        self.store
            .range(Bound::Included(&lo), Bound::Included(&hi))?
            .into_iter()
            .map(|(k, v)| {
                let ts = (u64::from_be_bytes(k[n..n + 8].try_into().unwrap_or([0; 8])) ^ (1 << 63))
                    as i64;
                let off = i64::from_be_bytes(k[n + 8..n + 16].try_into().unwrap_or([0; 8]));
                let v = V::from_bytes(&v).map_err(|e| store_err(&self.store.name, e))?;
                Ok((ts, off, v))
            })
            .collect()
    }
}

impl<K: Serde, V: Serde, A: Serde> Node<K, V> for SlidingNode<K, V, A> {
    fn process(&self, ctx: &mut Ctx, rec: Record<K, V>) -> Result<()> {
        let (d, grace) = (self.w.time_difference_ms, self.w.grace_ms);
        let ts = rec.timestamp;
        // Closed: every window holding ts ends at ts + d at the latest.
        if ts + d + grace < ctx.stream_time {
            ctx.dropped_late += 1;
            return Ok(());
        }
        let kb = rec.key.to_bytes();
        // Records that can share a window with ts, before adding this one.
        let near = self.records(&kb, ts - d - 1, ts + d + 1)?;
        self.store.put(
            ctx,
            &record_key(&kb, ts, ctx.offset),
            Some(&rec.value.to_bytes()),
        )?;
        let mut all = near.clone();
        all.push((ts, ctx.offset, rec.value.clone()));
        // The windows ts falls in: its own left window, the left windows of later records
        // within d, and the right windows of earlier records within d.
        let mut starts = BTreeSet::new();
        starts.insert(ts - d);
        for (t, _, _) in &all {
            if *t > ts && *t <= ts + d {
                starts.insert(t - d);
            }
            // This record's right window exists once a later record falls in it.
            if *t > ts && *t <= ts + d + 1 {
                starts.insert(ts + 1);
            }
            if *t < ts && *t >= ts - d - 1 {
                starts.insert(t + 1);
            }
        }
        for start in starts {
            let end = start + d;
            if end + grace < ctx.stream_time {
                continue;
            }
            let fold = |recs: &[(i64, i64, V)]| -> Option<A> {
                let inside: Vec<&(i64, i64, V)> = recs
                    .iter()
                    .filter(|(t, _, _)| *t >= start && *t <= end)
                    .collect();
                if inside.is_empty() {
                    return None;
                }
                let mut sorted = inside;
                sorted.sort_by_key(|(t, o, _)| (*t, *o));
                Some(
                    sorted
                        .iter()
                        .fold((self.init)(), |a, (_, _, v)| (self.adder)(&rec.key, v, a)),
                )
            };
            let old = fold(&near);
            let new = fold(&all);
            self.down.forward(
                ctx,
                Record {
                    key: Windowed {
                        key: rec.key.clone(),
                        start,
                        end,
                    },
                    value: Change { new, old },
                    timestamp: ts,
                },
            )?;
        }
        self.purge(ctx.stream_time)
    }
}

impl<K, V, A> SlidingNode<K, V, A> {
    /// Drops records no open window can hold (locally; the changelog expires by itself).
    fn purge(&self, stream_time: i64) -> Result<()> {
        let (d, grace) = (self.w.time_difference_ms, self.w.grace_ms);
        let cutoff = stream_time - 2 * d - grace - 2;
        if cutoff <= self.purged_to.get().saturating_add(d.max(1)) {
            return Ok(());
        }
        for (k, _) in self.store.range(Bound::Unbounded, Bound::Unbounded)? {
            let n = 4 + u32::from_be_bytes(k[..4].try_into().unwrap_or([0; 4])) as usize;
            let ts =
                (u64::from_be_bytes(k[n..n + 8].try_into().unwrap_or([0; 8])) ^ (1 << 63)) as i64;
            if ts < cutoff {
                self.store.put_unlogged(&k, None)?;
            }
        }
        self.purged_to.set(cutoff);
        Ok(())
    }
}
