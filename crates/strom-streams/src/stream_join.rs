//! Stream-stream windowed joins (inner, left, outer). Each side keeps its records in a
//! logged store for the join window; a record joins the other side's records of the same
//! key whose timestamps fall in its window. Left and outer joins emit a record without a
//! partner only once its window closed (window end plus grace behind stream time), as
//! Kafka does since 3.1, from a logged buffer of records not yet joined.

use std::cell::Cell;
use std::ops::Bound;
use std::rc::Rc;
use std::sync::Arc;

use crate::context::{Ctx, Record, StoreHandle};
use crate::error::{store_err, Result};
use crate::kstream::KStream;
use crate::ktable::time_key;
use crate::node::{erase, Downstream, Node, NodeRef};
use crate::serde::Serde;
use crate::topology::{Punctuate, StoreDef};

/// How far apart two records' timestamps may be to join: the other side's record may be
/// up to `before_ms` earlier or `after_ms` later. `grace_ms` admits out-of-order records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    pub before_ms: i64,
    pub after_ms: i64,
    pub grace_ms: i64,
}

impl JoinWindows {
    /// `|t1 - t2| <= difference_ms`, no grace (Kafka's `ofTimeDifferenceWithNoGrace`).
    pub fn of_time_difference(difference_ms: i64) -> JoinWindows {
        let d = difference_ms.max(0);
        JoinWindows {
            before_ms: d,
            after_ms: d,
            grace_ms: 0,
        }
    }
    pub fn grace(mut self, grace_ms: i64) -> JoinWindows {
        self.grace_ms = grace_ms.max(0);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Inner,
    Left,
    Outer,
}

type Joiner<V, VO, VR> = Arc<dyn Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync>;

/// Side store key: key length (4 bytes BE), key, timestamp (sign-flipped BE), input offset.
fn side_key(kb: &[u8], ts: i64, offset: i64) -> Vec<u8> {
    let mut k = side_key_at(kb, ts);
    k.extend_from_slice(&offset.to_be_bytes());
    k
}

/// The start of every side key of `kb` at `ts`: it sorts before all of them, whatever their
/// offset (an offset's raw big-endian bytes do not sort by sign, so no offset value can
/// serve as the lowest).
fn side_key_at(kb: &[u8], ts: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(kb.len() + 20);
    k.extend_from_slice(&(kb.len() as u32).to_be_bytes());
    k.extend_from_slice(kb);
    k.extend_from_slice(&time_key(ts));
    k
}

fn from_time_key(b: &[u8]) -> i64 {
    (u64::from_be_bytes(b.try_into().unwrap_or([0; 8])) ^ (1 << 63)) as i64
}

/// Buffer key of a record not joined yet: close time, side (0 left, 1 right), side key.
fn outer_key(close: i64, side: u8, sk: &[u8]) -> Vec<u8> {
    let mut k = time_key(close).to_vec();
    k.push(side);
    k.extend_from_slice(sk);
    k
}

struct Shared<V, VO, VR> {
    kind: Kind,
    w: JoinWindows,
    joiner: Joiner<V, VO, VR>,
}

/// One side of the join: `left` says which. `V1` is this side's value type.
struct SideNode<K, V, VO, VR> {
    left: bool,
    this: StoreHandle,
    other: StoreHandle,
    outer: Option<StoreHandle>,
    shared: Arc<Shared<V, VO, VR>>,
    down: Downstream<K, VR>,
    purged_to: Cell<i64>,
}

impl<K: Serde, V: Serde, VO: Serde, VR: Serde> SideNode<K, V, VO, VR> {
    /// This side's window: partners from `ts - lo` to `ts + hi`.
    fn bounds(&self) -> (i64, i64) {
        let w = &self.shared.w;
        if self.left {
            (w.before_ms, w.after_ms)
        } else {
            (w.after_ms, w.before_ms)
        }
    }

    fn join_values(&self, mine: &[u8], theirs: &[u8]) -> Result<VR> {
        let (lb, rb) = if self.left {
            (mine, theirs)
        } else {
            (theirs, mine)
        };
        let l = V::from_bytes(lb).map_err(|e| store_err(&self.this.name, e))?;
        let r = VO::from_bytes(rb).map_err(|e| store_err(&self.other.name, e))?;
        Ok((self.shared.joiner)(Some(&l), Some(&r)))
    }

    /// Emits buffered records whose window closed without a partner.
    fn emit_unjoined(&self, ctx: &mut Ctx) -> Result<()> {
        let Some(outer) = &self.outer else {
            return Ok(());
        };
        // Closed: stream time passed the close time (a partner at the window's edge
        // arriving while stream time equals it still joins).
        let upper = time_key(ctx.stream_time);
        for (k, v) in outer.range(Bound::Unbounded, Bound::Excluded(&upper))? {
            outer.put(ctx, &k, None)?;
            let (side, sk) = (k[8], &k[9..]);
            let n = u32::from_be_bytes(sk[..4].try_into().unwrap_or([0; 4])) as usize;
            let key = K::from_bytes(&sk[4..4 + n]).map_err(|e| store_err(&outer.name, e))?;
            let ts = from_time_key(&sk[4 + n..12 + n]);
            let value = if side == 0 {
                let l = V::from_bytes(&v).map_err(|e| store_err(&outer.name, e))?;
                (self.shared.joiner)(Some(&l), None)
            } else {
                let r = VO::from_bytes(&v).map_err(|e| store_err(&outer.name, e))?;
                (self.shared.joiner)(None, Some(&r))
            };
            self.down.forward(
                ctx,
                Record {
                    key,
                    value,
                    timestamp: ts,
                },
            )?;
        }
        Ok(())
    }

    fn purge(&self, stream_time: i64) -> Result<()> {
        let w = &self.shared.w;
        let keep = w.before_ms + w.after_ms + w.grace_ms;
        let cutoff = stream_time - keep;
        if cutoff < self.purged_to.get().saturating_add(keep.max(1)) {
            return Ok(());
        }
        for k in [&self.this, &self.other] {
            for (key, _) in k.range(Bound::Unbounded, Bound::Unbounded)? {
                let n = u32::from_be_bytes(key[..4].try_into().unwrap_or([0; 4])) as usize;
                if from_time_key(&key[4 + n..12 + n]) < cutoff {
                    k.put_unlogged(&key, None)?;
                }
            }
        }
        self.purged_to.set(cutoff);
        Ok(())
    }
}

impl<K: Serde, V: Serde, VO: Serde, VR: Serde> SideNode<K, V, VO, VR> {
    fn process_bytes(&self, ctx: &mut Ctx, key: K, vb: Vec<u8>, ts: i64) -> Result<()> {
        let (lo, hi) = self.bounds();
        if ts + hi + self.shared.w.grace_ms < ctx.stream_time {
            ctx.dropped_late += 1;
            return Ok(());
        }
        let kb = key.to_bytes();
        let sk = side_key(&kb, ts, ctx.offset);
        self.this.put(ctx, &sk, Some(&vb))?;
        // Both ends are inclusive, as Kafka's JoinWindows: a partner exactly `lo` before or
        // `hi` after joins. Offsets are never negative, so `i64::MAX` is above them all.
        let from = side_key_at(&kb, ts - lo);
        let to = side_key(&kb, ts + hi, i64::MAX);
        let partners = self
            .other
            .range(Bound::Included(&from), Bound::Included(&to))?;
        let (my_side, their_side) = if self.left { (0u8, 1u8) } else { (1, 0) };
        // The partner's own window reaches `lo` after it (our before is its after).
        let their_hi = lo;
        for (pk, pv) in &partners {
            let pts = from_time_key(&pk[4 + kb.len()..12 + kb.len()]);
            if let Some(outer) = &self.outer {
                let close = pts + their_hi + self.shared.w.grace_ms;
                outer.put(ctx, &outer_key(close, their_side, pk), None)?;
            }
            let value = self.join_values(&vb, pv)?;
            self.down.forward(
                ctx,
                Record {
                    key: key.clone(),
                    value,
                    timestamp: ts.max(pts),
                },
            )?;
        }
        let buffer_me = match self.shared.kind {
            Kind::Inner => false,
            Kind::Left => self.left,
            Kind::Outer => true,
        };
        if partners.is_empty() && buffer_me {
            if let Some(outer) = &self.outer {
                let close = ts + hi + self.shared.w.grace_ms;
                outer.put(ctx, &outer_key(close, my_side, &sk), Some(&vb))?;
            }
        }
        self.emit_unjoined(ctx)?;
        self.purge(ctx.stream_time)
    }
}

impl<K: Serde, V: Serde, VO: Serde, VR: Serde> Punctuate for SideNode<K, V, VO, VR> {
    fn on_stream_time(&self, ctx: &mut Ctx) -> Result<()> {
        self.emit_unjoined(ctx)
    }
}

/// The left side takes `V`, the right side `VO`: two node types over one implementation.
struct LeftNode<K, V, VO, VR>(Rc<SideNode<K, V, VO, VR>>);
struct RightNode<K, V, VO, VR>(Rc<SideNode<K, V, VO, VR>>);

impl<K: Serde, V: Serde, VO: Serde, VR: Serde> Node<K, V> for LeftNode<K, V, VO, VR> {
    fn process(&self, ctx: &mut Ctx, rec: Record<K, V>) -> Result<()> {
        self.0
            .process_bytes(ctx, rec.key, rec.value.to_bytes(), rec.timestamp)
    }
}

impl<K: Serde, V: Serde, VO: Serde, VR: Serde> Node<K, VO> for RightNode<K, V, VO, VR> {
    fn process(&self, ctx: &mut Ctx, rec: Record<K, VO>) -> Result<()> {
        self.0
            .process_bytes(ctx, rec.key, rec.value.to_bytes(), rec.timestamp)
    }
}

impl<K: Serde, V: Serde> KStream<K, V> {
    fn windowed_join<VO: Serde, VR: Serde>(
        &self,
        other: &KStream<K, VO>,
        kind: Kind,
        w: JoinWindows,
        name: &str,
        joiner: Joiner<V, VO, VR>,
    ) -> Result<KStream<K, VR>> {
        let me = if self.key_changed {
            self.repartition()
        } else {
            self.clone()
        };
        let them = if other.key_changed {
            other.repartition()
        } else {
            other.clone()
        };
        let (ls, rs, os) = (
            format!("{name}-this"),
            format!("{name}-other"),
            format!("{name}-outer"),
        );
        let with_outer = kind != Kind::Inner;
        {
            let mut g = self.g.borrow_mut();
            for s in [&ls, &rs] {
                g.add_store(StoreDef {
                    name: s.clone(),
                    kind: crate::store::StoreKind::Persistent,
                    logged: true,
                    retention_ms: Some(w.before_ms + w.after_ms + w.grace_ms),
                })?;
            }
            if with_outer {
                g.add_store(StoreDef {
                    name: os.clone(),
                    kind: crate::store::StoreKind::Persistent,
                    logged: true,
                    retention_ms: None,
                })?;
            }
        }
        let mut stores = vec![ls.clone(), rs.clone()];
        if with_outer {
            stores.push(os.clone());
        }
        let shared = Arc::new(Shared { kind, w, joiner });
        let build = move |ctx: &mut crate::topology::BuildCtx,
                          left: bool|
              -> Result<(StoreHandle, StoreHandle, Option<StoreHandle>)> {
            let (a, b) = if left { (&ls, &rs) } else { (&rs, &ls) };
            let outer = if with_outer {
                Some(ctx.store(&os)?)
            } else {
                None
            };
            Ok((ctx.store(a)?, ctx.store(b)?, outer))
        };
        let build = Arc::new(build);
        let (b1, s1) = (build.clone(), shared.clone());
        let from_left = me.add_node::<K, VR>(
            "KSTREAM-JOINTHIS",
            stores.clone(),
            false,
            move |ctx, kids| {
                let (this, other, outer) = b1(ctx, true)?;
                let side = Rc::new(SideNode {
                    left: true,
                    this,
                    other,
                    outer,
                    shared: s1.clone(),
                    down: Downstream::from_built(kids)?,
                    purged_to: Cell::new(i64::MIN),
                });
                ctx.punctuators.push(side.clone());
                let node: NodeRef<K, V> = Rc::new(LeftNode(side));
                Ok(erase(node))
            },
        );
        let from_right =
            them.add_node::<K, VR>("KSTREAM-JOINOTHER", stores, false, move |ctx, kids| {
                let (this, other, outer) = build(ctx, false)?;
                let side = Rc::new(SideNode {
                    left: false,
                    this,
                    other,
                    outer,
                    shared: shared.clone(),
                    down: Downstream::from_built(kids)?,
                    purged_to: Cell::new(i64::MIN),
                });
                let node: NodeRef<K, VO> = Rc::new(RightNode(side));
                Ok(erase(node))
            });
        Ok(from_left.merge(&from_right))
    }

    /// Records of both streams with equal keys and timestamps within `w`.
    pub fn join_windowed<VO: Serde, VR: Serde>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        w: JoinWindows,
        name: &str,
    ) -> Result<KStream<K, VR>> {
        self.windowed_join(
            other,
            Kind::Inner,
            w,
            name,
            Arc::new(move |l, r| match (l, r) {
                (Some(l), Some(r)) => joiner(l, r),
                _ => unreachable!("an inner join is only called with both sides"),
            }),
        )
    }

    /// Like `join_windowed`; a left record that found no partner by the time its window
    /// closed is emitted with `None`.
    pub fn left_join_windowed<VO: Serde, VR: Serde>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        w: JoinWindows,
        name: &str,
    ) -> Result<KStream<K, VR>> {
        self.windowed_join(
            other,
            Kind::Left,
            w,
            name,
            Arc::new(move |l, r| match l {
                Some(l) => joiner(l, r),
                None => unreachable!("a left join is always called with the left side"),
            }),
        )
    }

    /// Like `join_windowed`; records of either side without a partner in their window are
    /// emitted (with `None` for the missing side) once the window closed.
    pub fn outer_join_windowed<VO: Serde, VR: Serde>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(Option<&V>, Option<&VO>) -> VR + Send + Sync + 'static,
        w: JoinWindows,
        name: &str,
    ) -> Result<KStream<K, VR>> {
        self.windowed_join(other, Kind::Outer, w, name, Arc::new(joiner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lookup range of a record holds every partner from `ts - lo` to `ts + hi`,
    /// including both ends, whatever the partners' offsets. (A lower bound built with offset
    /// `i64::MIN` sorted after every real offset and lost partners exactly `lo` before.)
    #[test]
    fn the_partner_range_includes_both_window_edges() {
        let kb = b"b";
        let (ts, lo, hi) = (1_542, 200, 300);
        let from = side_key_at(kb, ts - lo);
        let to = side_key(kb, ts + hi, i64::MAX);
        for offset in [0, 1, 4, 1 << 40, i64::MAX - 1] {
            for edge in [ts - lo, ts + hi] {
                let k = side_key(kb, edge, offset);
                assert!(from <= k && k <= to, "offset {offset} at {edge}");
            }
            for outside in [ts - lo - 1, ts + hi + 1] {
                let k = side_key(kb, outside, offset);
                assert!(k < from || k > to, "offset {offset} at {outside}");
            }
        }
        // Another key never falls in the range.
        let other = side_key(b"c", ts, 0);
        assert!(other < from || other > to);
    }
}
