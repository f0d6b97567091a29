//! The foreign-key table-table join (KIP-213): rows of the left table `K -> V` join the
//! right table's row at `fk(V)`, though the tables are partitioned by different keys.
//! Left updates become subscriptions (`fk -> (K, hash of V)`, or an unsubscription) sent
//! through a repartition topic co-partitioned with the right table; the right side keeps
//! them in a store, answers each with the right row, and answers every subscriber when a
//! right row changes; answers go back by `K` and meet the left row, and an answer whose
//! hash no longer matches the left row (it changed since) is dropped as stale.

use std::rc::Rc;
use std::sync::Arc;

use crate::context::{Ctx, Record, StoreHandle};
use crate::error::{Result, StreamsError};
use crate::kstream::KStream;
use crate::ktable::{decode, Change, KTable};
use crate::node::{erase, Downstream, Node, NodeRef};
use crate::serde::Serde;
use crate::topology::StoreDef;

/// FNV-1a of a value's bytes: tells an answer for the left row as it is now from one for
/// an older version.
fn value_hash(bytes: &[u8]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// Subscription store key: the foreign key's length (4 bytes BE), the foreign key, the
/// left key. Value: the hash of the subscribing left row (8 bytes BE).
fn sub_key(fkb: &[u8], kb: &[u8]) -> Vec<u8> {
    let mut k = (fkb.len() as u32).to_be_bytes().to_vec();
    k.extend_from_slice(fkb);
    k.extend_from_slice(kb);
    k
}

/// Right side: a subscription arrives (key: foreign key; value: left key and the left
/// row's hash, `None` to unsubscribe).
struct SubscriptionNode<K, KO, VO> {
    subs: StoreHandle,
    right: StoreHandle,
    down: Downstream<K, (Option<VO>, i64)>,
    _t: std::marker::PhantomData<fn(KO)>,
}

impl<K: Serde, KO: Serde, VO: Serde> Node<KO, (K, Option<i64>)> for SubscriptionNode<K, KO, VO> {
    fn process(&self, ctx: &mut Ctx, rec: Record<KO, (K, Option<i64>)>) -> Result<()> {
        let fkb = rec.key.to_bytes();
        let (k, hash) = rec.value;
        let sk = sub_key(&fkb, &k.to_bytes());
        match hash {
            None => self.subs.put(ctx, &sk, None),
            Some(h) => {
                self.subs.put(ctx, &sk, Some(&h.to_be_bytes()))?;
                let vo: Option<VO> = decode(&self.right.name, self.right.get(&fkb)?)?;
                self.down.forward(
                    ctx,
                    Record {
                        key: k,
                        value: (vo, h),
                        timestamp: rec.timestamp,
                    },
                )
            }
        }
    }
}

/// Right side: a right row changed; every subscriber gets the new row, with the hash of
/// the left row version that subscribed.
struct RightChangeNode<K, KO, VO> {
    subs: StoreHandle,
    down: Downstream<K, (Option<VO>, i64)>,
    _t: std::marker::PhantomData<fn(KO)>,
}

impl<K: Serde, KO: Serde, VO: Serde> Node<KO, Change<VO>> for RightChangeNode<K, KO, VO> {
    fn process(&self, ctx: &mut Ctx, rec: Record<KO, Change<VO>>) -> Result<()> {
        let fkb = rec.key.to_bytes();
        let prefix = sub_key(&fkb, &[]);
        let subscribers = self.subs.range(
            std::ops::Bound::Included(&prefix),
            std::ops::Bound::Unbounded,
        )?;
        for (k, h) in subscribers
            .into_iter()
            .take_while(|(k, _)| k.starts_with(&prefix))
        {
            let key = K::from_bytes(&k[prefix.len()..])
                .map_err(|e| crate::error::store_err(&self.subs.name, e))?;
            let h = i64::from_be_bytes(h.as_slice().try_into().unwrap_or([0; 8]));
            self.down.forward(
                ctx,
                Record {
                    key,
                    value: (rec.value.new.clone(), h),
                    timestamp: rec.timestamp,
                },
            )?;
        }
        Ok(())
    }
}

type FkJoiner<V, VO, VR> = Arc<dyn Fn(&V, Option<&VO>) -> Option<VR> + Send + Sync>;

/// Left side: an answer (right row, hash) for left key `K`; joins the current left row.
struct ResponseNode<K, V, VO, VR> {
    left: StoreHandle,
    joiner: FkJoiner<V, VO, VR>,
    down: Downstream<K, Change<VR>>,
}

impl<K: Serde, V: Serde, VO: Serde, VR: Serde> Node<K, (Option<VO>, i64)>
    for ResponseNode<K, V, VO, VR>
{
    fn process(&self, ctx: &mut Ctx, rec: Record<K, (Option<VO>, i64)>) -> Result<()> {
        let Some(lb) = self.left.get(&rec.key.to_bytes())? else {
            return Ok(()); // the left row is gone; its delete was emitted then
        };
        let (vo, h) = rec.value;
        if h != value_hash(&lb) {
            return Ok(()); // an answer for an older version of the left row
        }
        let v: V = decode(&self.left.name, Some(lb))?
            .ok_or_else(|| StreamsError::Topology("decoded left row vanished".into()))?;
        let new = (self.joiner)(&v, vo.as_ref());
        self.down.forward(
            ctx,
            Record {
                key: rec.key,
                value: Change { new, old: None },
                timestamp: rec.timestamp,
            },
        )
    }
}

impl<K: Serde, V: Serde> KTable<K, V> {
    fn fk_join<KO: Serde, VO: Serde, VR: Serde>(
        &self,
        other: &KTable<KO, VO>,
        fk: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: FkJoiner<V, VO, VR>,
        name: &str,
    ) -> Result<KTable<K, VR>> {
        let left_store = self.store.clone().ok_or_else(|| {
            StreamsError::Topology("a foreign-key join needs a materialized left table".into())
        })?;
        let right_store = other.store.clone().ok_or_else(|| {
            StreamsError::Topology("a foreign-key join needs a materialized right table".into())
        })?;
        let subs_store = format!("{name}-subscriptions");
        self.updates.g.borrow_mut().add_store(StoreDef {
            name: subs_store.clone(),
            kind: crate::store::StoreKind::Persistent,
            logged: true,
            retention_ms: None,
        })?;
        // 1. Left changes -> subscriptions, keyed by foreign key, through a repartition topic.
        let fk = Arc::new(fk);
        let fk2 = fk.clone();
        let subscriptions: KStream<KO, (K, Option<i64>)> = self
            .updates
            .flat_map(move |k, c: Change<V>| {
                let mut out = Vec::new();
                let new_fk = c.new.as_ref().map(|v| fk2(v));
                if let Some(old) = &c.old {
                    let old_fk = fk2(old);
                    if new_fk.as_ref().map(Serde::to_bytes) != Some(old_fk.to_bytes()) {
                        out.push((old_fk, (k.clone(), None)));
                    }
                }
                if let (Some(v), Some(f)) = (&c.new, new_fk) {
                    out.push((f, (k.clone(), Some(value_hash(&v.to_bytes())))));
                }
                out
            })
            .repartition_as(&format!("{name}-subscription"));
        // 2. Right side: subscriptions and right changes -> answers keyed by left key.
        let (ss, rs) = (subs_store.clone(), right_store.clone());
        let answers_a = subscriptions.add_node::<K, (Option<VO>, i64)>(
            "KTABLE-FK-SUBSCRIPTION",
            vec![subs_store.clone(), right_store.clone()],
            false,
            move |ctx, kids| {
                let node: NodeRef<KO, (K, Option<i64>)> = Rc::new(SubscriptionNode::<K, KO, VO> {
                    subs: ctx.store(&ss)?,
                    right: ctx.store(&rs)?,
                    down: Downstream::from_built(kids)?,
                    _t: std::marker::PhantomData,
                });
                Ok(erase(node))
            },
        );
        let ss = subs_store.clone();
        let answers_b = other.updates.add_node::<K, (Option<VO>, i64)>(
            "KTABLE-FK-RIGHTCHANGE",
            vec![subs_store.clone()],
            false,
            move |ctx, kids| {
                let node: NodeRef<KO, Change<VO>> = Rc::new(RightChangeNode::<K, KO, VO> {
                    subs: ctx.store(&ss)?,
                    down: Downstream::from_built(kids)?,
                    _t: std::marker::PhantomData,
                });
                Ok(erase(node))
            },
        );
        let answers = answers_a
            .merge(&answers_b)
            .repartition_as(&format!("{name}-response"));
        // 3. Left side: answers meet the current left row.
        let ls = left_store.clone();
        let j = joiner.clone();
        let from_answers = answers.add_node::<K, Change<VR>>(
            "KTABLE-FK-RESPONSE",
            vec![left_store.clone()],
            false,
            move |ctx, kids| {
                let node: NodeRef<K, (Option<VO>, i64)> = Rc::new(ResponseNode::<K, V, VO, VR> {
                    left: ctx.store(&ls)?,
                    joiner: j.clone(),
                    down: Downstream::from_built(kids)?,
                });
                Ok(erase(node))
            },
        );
        // A deleted left row deletes its result at once.
        let deletes = self
            .updates
            .filter(|_, c| c.new.is_none())
            .map_values(|_, _| Change::<VR> {
                new: None,
                old: None,
            });
        Ok(KTable {
            updates: from_answers.merge(&deletes),
            store: None,
            grace_ms: None,
        })
    }

    /// Rows of this table joined with the other table's row at `fk(value)`; rows whose
    /// foreign key the other table lacks are absent (deleted).
    pub fn join_on_foreign_key<KO: Serde, VO: Serde, VR: Serde>(
        &self,
        other: &KTable<KO, VO>,
        fk: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, &VO) -> VR + Send + Sync + 'static,
        name: &str,
    ) -> Result<KTable<K, VR>> {
        self.fk_join(
            other,
            fk,
            Arc::new(move |v, vo| vo.map(|vo| joiner(v, vo))),
            name,
        )
    }

    /// Like `join_on_foreign_key`, keeping rows whose foreign key has no match (`None`).
    pub fn left_join_on_foreign_key<KO: Serde, VO: Serde, VR: Serde>(
        &self,
        other: &KTable<KO, VO>,
        fk: impl Fn(&V) -> KO + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&VO>) -> VR + Send + Sync + 'static,
        name: &str,
    ) -> Result<KTable<K, VR>> {
        self.fk_join(other, fk, Arc::new(move |v, vo| Some(joiner(v, vo))), name)
    }
}
