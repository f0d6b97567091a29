//! Session windows: a key's records closer than `inactivity_gap` apart form one session;
//! a record that bridges sessions merges them (the merger combines their aggregates).
//! The result table's updates delete the merged sessions and add the new one, so a
//! suppressed session table emits only final sessions.

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

/// Kafka's `SessionWindows`: sessions end after `inactivity_gap_ms` without records;
/// records up to `grace_ms` late still join their session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionWindows {
    pub inactivity_gap_ms: i64,
    pub grace_ms: i64,
}

impl SessionWindows {
    pub fn with_inactivity_gap(gap_ms: i64) -> SessionWindows {
        SessionWindows {
            inactivity_gap_ms: gap_ms.max(0),
            grace_ms: 0,
        }
    }
    pub fn grace(mut self, grace_ms: i64) -> SessionWindows {
        self.grace_ms = grace_ms.max(0);
        self
    }
}

/// A grouped stream cut into sessions.
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
}

impl<K: Serde, V: Serde> KGroupedStream<K, V> {
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream {
            grouped: self.clone_grouped(),
            windows,
        }
    }
}

type Adder<K, V, A> = Arc<dyn Fn(&K, V, A) -> A + Send + Sync>;
type Merger<K, A> = Arc<dyn Fn(&K, A, A) -> A + Send + Sync>;

impl<K: Serde, V: Serde> SessionWindowedKStream<K, V> {
    /// Folds each session's values; `merger` combines two sessions' aggregates.
    pub fn aggregate<A: Serde>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        adder: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        merger: impl Fn(&K, A, A) -> A + Send + Sync + 'static,
        m: impl Into<Materialized>,
    ) -> Result<KTable<Windowed<K>, A>> {
        let m = m.into();
        let w = self.windows;
        let stream = self.grouped.stream();
        stream.g.borrow_mut().add_store(StoreDef {
            name: m.name.clone(),
            kind: m.kind,
            logged: m.logged,
            retention_ms: Some(w.inactivity_gap_ms + w.grace_ms),
        })?;
        let init: Arc<dyn Fn() -> A + Send + Sync> = Arc::new(init);
        let adder: Adder<K, V, A> = Arc::new(adder);
        let merger: Merger<K, A> = Arc::new(merger);
        let name = m.name.clone();
        let updates = stream.add_node::<Windowed<K>, Change<A>>(
            "KSTREAM-SESSION-AGGREGATE",
            vec![m.name.clone()],
            false,
            move |ctx, kids| {
                let node: NodeRef<K, V> = Rc::new(SessionNode {
                    store: ctx.store(&name)?,
                    w,
                    init: init.clone(),
                    adder: adder.clone(),
                    merger: merger.clone(),
                    down: Downstream::from_built(kids)?,
                });
                Ok(erase(node))
            },
        );
        Ok(KTable {
            updates,
            store: Some(m.name),
            // Suppression waits for the gap too: a session is final only then.
            grace_ms: Some(w.inactivity_gap_ms + w.grace_ms),
        })
    }

    /// Records per session.
    pub fn count(&self, m: impl Into<Materialized>) -> Result<KTable<Windowed<K>, i64>> {
        self.aggregate(|| 0i64, |_, _, n| n + 1, |_, a, b| a + b, m)
    }
}

/// Store key: key length (4 bytes BE), key, session end, session start (both
/// sign-flipped BE), so one key's sessions are contiguous and ordered by end.
fn session_key(kb: &[u8], start: i64, end: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(kb.len() + 20);
    k.extend_from_slice(&(kb.len() as u32).to_be_bytes());
    k.extend_from_slice(kb);
    k.extend_from_slice(&time_key(end));
    k.extend_from_slice(&time_key(start));
    k
}

fn untime(b: &[u8]) -> i64 {
    (u64::from_be_bytes(b.try_into().unwrap_or([0; 8])) ^ (1 << 63)) as i64
}

struct SessionNode<K, V, A> {
    store: StoreHandle,
    w: SessionWindows,
    init: Arc<dyn Fn() -> A + Send + Sync>,
    adder: Adder<K, V, A>,
    merger: Merger<K, A>,
    down: Downstream<Windowed<K>, Change<A>>,
}

impl<K: Serde, V: Serde, A: Serde> Node<K, V> for SessionNode<K, V, A> {
    fn process(&self, ctx: &mut Ctx, rec: Record<K, V>) -> Result<()> {
        let (gap, grace) = (self.w.inactivity_gap_ms, self.w.grace_ms);
        let ts = rec.timestamp;
        let kb = rec.key.to_bytes();
        // Sessions of this key ending at or after ts - gap, starting at or before ts + gap.
        let from = session_key(&kb, i64::MIN, ts - gap);
        let mut to = kb.len().to_be_bytes()[4..].to_vec();
        to.extend_from_slice(&kb);
        to.extend_from_slice(&[0xff; 17]);
        let mut start = ts;
        let mut end = ts;
        let mut agg: Option<A> = None;
        let mut removed = Vec::new();
        for (k, v) in self.store.range(
            Bound::Included(&from[..4 + kb.len() + 8]),
            Bound::Excluded(&to),
        )? {
            let n = 4 + kb.len();
            let (s_end, s_start) = (untime(&k[n..n + 8]), untime(&k[n + 8..n + 16]));
            // Closed sessions (end + gap + grace reached) are final: nothing merges in.
            if s_end < ts - gap || s_start > ts + gap || s_end + gap + grace <= ctx.stream_time {
                continue;
            }
            let a = A::from_bytes(&v).map_err(|e| store_err(&self.store.name, e))?;
            start = start.min(s_start);
            end = end.max(s_end);
            agg = Some(match agg {
                None => a.clone(),
                Some(x) => (self.merger)(&rec.key, x, a.clone()),
            });
            removed.push((k, s_start, s_end, a));
        }
        // A session is closed once stream time reached its end + gap + grace (the same
        // point at which suppression emits it): a record that would land in one is late.
        if end + gap + grace <= ctx.stream_time {
            ctx.dropped_late += 1;
            return Ok(());
        }
        let new = (self.adder)(&rec.key, rec.value, agg.unwrap_or_else(|| (self.init)()));
        for (k, s, e, a) in removed {
            self.store.put(ctx, &k, None)?;
            self.down.forward(
                ctx,
                Record {
                    key: Windowed {
                        key: rec.key.clone(),
                        start: s,
                        end: e,
                    },
                    value: Change {
                        new: None,
                        old: Some(a),
                    },
                    timestamp: ts,
                },
            )?;
        }
        self.store
            .put(ctx, &session_key(&kb, start, end), Some(&new.to_bytes()))?;
        self.down.forward(
            ctx,
            Record {
                key: Windowed {
                    key: rec.key,
                    start,
                    end,
                },
                value: Change {
                    new: Some(new),
                    old: None,
                },
                timestamp: ts,
            },
        )
    }
}
